use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandLine {
    /// Program and arguments, run without a shell.
    Argv(Vec<String>),
    /// A string run by `/bin/sh -c`.
    Shell(String),
}

impl CommandLine {
    /// The command as one line for people.
    pub fn display(&self) -> String {
        match self {
            CommandLine::Argv(argv) => shell_words::join(argv),
            CommandLine::Shell(line) => line.clone(),
        }
    }
}

/// Resources an experiment asks for; the executor enforces them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU cores (may be fractional).
    pub cpus: f64,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// Whole GPUs.
    pub gpus: u32,
    /// Wall-time limit, seconds.
    pub time_limit_secs: u64,
}

impl Resources {
    /// A short summary for tables: `4c 16G 1g 02:00:00`.
    pub fn summary(&self) -> String {
        format!(
            "{}c {} {}g {}",
            self.cpus,
            crate::units::short_bytes(self.memory_bytes as f64),
            self.gpus,
            crate::units::human_duration(self.time_limit_secs)
        )
    }
}

/// Column titles of experiment lists (`ls` and the Queue tab).
pub const EXPERIMENT_COLUMNS: [&str; 7] = [
    "ID",
    "NAME",
    "OWNER",
    "STATE",
    "AGE",
    "REQUEST",
    "WAIT REASON",
];

/// Everything a user submits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSpec {
    /// Short name.
    pub name: Option<String>,
    /// Project it belongs to.
    pub project: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// The command.
    pub command: CommandLine,
    /// Working directory (absolute).
    pub workdir: PathBuf,
    /// Environment additions.
    pub env: Vec<(String, String)>,
    /// Declared inputs.
    pub inputs: Vec<PathBuf>,
    /// Declared outputs.
    pub outputs: Vec<PathBuf>,
    /// Parameters, recorded for comparison.
    pub params: Vec<(String, String)>,
    /// Experiments that must succeed first.
    pub after: Vec<u64>,
    /// Requested resources.
    pub resources: Resources,
    /// Higher runs first.
    pub priority: i32,
}

impl ExperimentSpec {
    /// A spec with only a command, a working directory and resources (no
    /// name, project, tags, environment, declarations or dependencies).
    pub fn new(command: CommandLine, workdir: PathBuf, resources: Resources) -> ExperimentSpec {
        ExperimentSpec {
            name: None,
            project: None,
            tags: Vec::new(),
            command,
            workdir,
            env: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: Vec::new(),
            after: Vec::new(),
            resources,
            priority: 0,
        }
    }
}

/// How an experiment ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Exit status 0.
    Succeeded,
    /// Non-zero exit status or killed by a signal.
    Failed,
    /// Cancelled by a user.
    Cancelled,
    /// Ran past its wall-time limit.
    TimedOut,
    /// Killed for exceeding a resource limit (memory, …).
    KilledByLimit,
    /// Vanished while the daemon was down, or could not be started.
    Lost,
}

/// Where an experiment is in its life. Each state carries its own data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Waiting for resources, quota or dependencies.
    Queued,
    /// Resources reserved; the process is being started.
    Starting {
        /// GPU indices reserved.
        gpus: Vec<u32>,
    },
    /// Running on the host.
    Running {
        /// Start time, seconds since the epoch.
        started_at: i64,
        /// Process id of the leader (also its process group and session).
        pid: u32,
        /// The leader's start time (ticks after boot), to tell it from a reused pid.
        #[serde(default)]
        pid_start_time: u64,
        /// cgroup path, relative to each controller's mount, when confined by cgroups.
        cgroup: Option<String>,
        /// GPU indices assigned.
        gpus: Vec<u32>,
    },
    /// Finished, one way or another.
    Finished {
        /// How it ended.
        outcome: Outcome,
        /// Exit code, when it exited.
        exit_code: Option<i32>,
        /// Signal that ended it, when one did.
        signal: Option<i32>,
        /// Start time, when it started.
        started_at: Option<i64>,
        /// End time.
        ended_at: i64,
    },
}

impl State {
    /// The short name (`queued`, `running`, `succeeded`, …).
    pub fn name(&self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Starting { .. } => "starting",
            State::Running { .. } => "running",
            State::Finished { outcome, .. } => match outcome {
                Outcome::Succeeded => "succeeded",
                Outcome::Failed => "failed",
                Outcome::Cancelled => "cancelled",
                Outcome::TimedOut => "timed_out",
                Outcome::KilledByLimit => "killed_by_limit",
                Outcome::Lost => "lost",
            },
        }
    }

    /// True once the experiment can no longer change.
    pub fn is_finished(&self) -> bool {
        matches!(self, State::Finished { .. })
    }
}

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// When, seconds since the epoch.
    pub at: i64,
    /// New state's name.
    pub to: String,
    /// Why, in words.
    pub reason: String,
}

/// Resources an experiment consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceUse {
    /// CPU time, seconds.
    pub cpu_seconds: f64,
    /// Peak memory, bytes.
    pub peak_memory_bytes: u64,
    /// GPU time (GPUs × seconds).
    pub gpu_seconds: f64,
    /// Peak GPU memory, bytes.
    pub peak_gpu_memory_bytes: u64,
}

/// An experiment: its spec, owner, state and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Monotonic id.
    pub id: u64,
    /// Owning lab user.
    pub owner: String,
    /// Unix account it runs as.
    pub unix_user: String,
    /// What was asked.
    pub spec: ExperimentSpec,
    /// Submission time, seconds since the epoch.
    pub submitted_at: i64,
    /// Current state.
    pub state: State,
    /// Every state change, oldest first.
    pub transitions: Vec<Transition>,
    /// Host it ran on.
    pub host: String,
    /// Backend (`local`, later `slurm`).
    pub backend: String,
    /// What it consumed.
    pub usage: ResourceUse,
}

impl Experiment {
    /// Seconds it has been running (running), ran (finished) or waited (queued).
    pub fn age_secs(&self, now: i64) -> u64 {
        let secs = match &self.state {
            State::Running { started_at, .. } => now - started_at,
            State::Finished {
                started_at: Some(s),
                ended_at,
                ..
            } => ended_at - s,
            _ => now - self.submitted_at,
        };
        secs.max(0) as u64
    }
}

/// Sizes like `512M`, `8G`, `1.5T` (binary units; a bare number is bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a size like 512M or 8G"))?;
    let factor: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => 1024.0,
        "M" | "MB" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TB" | "TIB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("{text:?}: expected a size like 512M or 8G")),
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?}: size out of range"));
    }
    Ok(bytes as u64)
}

/// Durations like `90s`, `30m`, `2h`, `1d`, `1h30m` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let err = || format!("{text:?}: expected a duration like 90s, 30m, 2h or 1h30m");
    let t = text.trim();
    if t.is_empty() {
        return Err(err());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return if secs > 0 { Ok(secs) } else { Err(err()) };
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(err()),
        };
        let n: u64 = number.parse().map_err(|_| err())?;
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(err)?)
            .ok_or_else(err)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(err());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_clear_errors() {
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("100"), Ok(100));
        let err = parse_size("8Q").expect_err("bad unit");
        assert!(err.contains("expected a size like 512M or 8G"), "{err}");
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("45"), Ok(45));
        assert!(parse_duration("2w").is_err());
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("10").is_ok());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn state_names() {
        assert_eq!(State::Queued.name(), "queued");
        let done = State::Finished {
            outcome: Outcome::KilledByLimit,
            exit_code: None,
            signal: Some(9),
            started_at: Some(1),
            ended_at: 2,
        };
        assert_eq!(done.name(), "killed_by_limit");
        assert!(done.is_finished());
    }
}
