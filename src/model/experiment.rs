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
    /// When a run started at `started_at` (seconds since the epoch) reaches
    /// its wall-time limit; never overflows.
    pub fn ends_by(&self, started_at: i64) -> i64 {
        started_at.saturating_add(i64::try_from(self.time_limit_secs).unwrap_or(i64::MAX))
    }

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
    /// Only its owner and admins may read its output and see what it runs.
    #[serde(default)]
    pub private: bool,
    /// Most bytes its output (stdout, stderr and metrics together) may
    /// take; `None`: the queue's default.
    #[serde(default)]
    pub max_output_bytes: Option<u64>,
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
            private: false,
            max_output_bytes: None,
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
        /// The stop labbench asked for, when it asked (cancel, wall time,
        /// a limit).
        #[serde(default)]
        stop: Option<Stop>,
        /// Start time, when it started.
        started_at: Option<i64>,
        /// End time.
        ended_at: i64,
    },
}

/// A stop labbench asked of a running experiment: the last signal it sent
/// and why. SIGTERM first; SIGKILL once the grace has passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop {
    /// The last signal sent (15 or 9).
    pub signal: i32,
    /// Who or what asked: "cancelled by alice", "wall time limit 2s exceeded".
    pub by: String,
}

/// Exit status of `wait` and `logs -f` for an experiment that ended
/// without an exit code of its own (see [`State::exit_status`]).
pub mod end_status {
    /// Ran past its wall-time limit (as `timeout(1)` reports).
    pub const TIMED_OUT: u32 = 124;
    /// labbench lost it or could not start it (as `timeout(1)` reports
    /// its own failure).
    pub const LOST: u32 = 125;
    /// Cancelled by a user (as a shell reports an interrupted job).
    pub const CANCELLED: u32 = 130;
    /// Ended for exceeding a resource limit (killed, as the kernel's OOM
    /// killer's SIGKILL reads).
    pub const KILLED_BY_LIMIT: u32 = 137;
    /// Killed by signal N (not by labbench): 128 + N.
    pub const SIGNAL_BASE: u32 = 128;
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

    /// The exit status a script sees for a finished experiment (`wait`,
    /// `logs -f`): its own exit code, 128 + N when signal N killed it,
    /// and the fixed statuses of [`end_status`] for ends labbench caused.
    /// `None` while it has not ended.
    pub fn exit_status(&self) -> Option<u32> {
        let State::Finished {
            outcome,
            exit_code,
            signal,
            ..
        } = self
        else {
            return None;
        };
        Some(match outcome {
            Outcome::Succeeded => 0,
            Outcome::TimedOut => end_status::TIMED_OUT,
            Outcome::Cancelled => end_status::CANCELLED,
            Outcome::KilledByLimit => end_status::KILLED_BY_LIMIT,
            Outcome::Lost => end_status::LOST,
            Outcome::Failed => match (exit_code, signal) {
                (Some(code), _) if (1..=255).contains(code) => *code as u32,
                (_, Some(s)) if (1..=127).contains(s) => end_status::SIGNAL_BASE + *s as u32,
                _ => 1,
            },
        })
    }
}

/// The name of signal `n` (`SIGTERM`), for the common ones.
pub fn signal_name(n: i32) -> Option<&'static str> {
    Some(match n {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return None,
    })
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceUse {
    /// CPU time, seconds.
    pub cpu_seconds: f64,
    /// Peak memory, bytes.
    pub peak_memory_bytes: u64,
    /// GPU time (GPUs × seconds).
    pub gpu_seconds: f64,
    /// Peak GPU memory, bytes.
    pub peak_gpu_memory_bytes: u64,
    /// Peak, p95 and mean over the run, where it was measured.
    #[serde(default)]
    pub profile: Option<super::UseProfile>,
    /// The model of the GPUs it held (for prices per model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_model: Option<String>,
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

/// Whether `--env` may not set `name`: labbench sets it for every
/// experiment (the GPUs it assigned, its own `LABBENCH_*` variables).
pub fn is_reserved_env(name: &str) -> bool {
    matches!(name, "CUDA_VISIBLE_DEVICES" | "NVIDIA_VISIBLE_DEVICES")
        || name.starts_with("LABBENCH_")
}

/// Longest duration accepted anywhere (wall-time limits, quotas): 365 days.
/// Every time computed from one then fits an `i64` of seconds.
pub const MAX_DURATION_SECS: u64 = 365 * 86_400;

/// Durations like `90s`, `30m`, `2h`, `1d`, `1h30m` (a bare number is
/// seconds), from 1 s to [`MAX_DURATION_SECS`].
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let secs = parse_any_duration(text)?;
    if secs > MAX_DURATION_SECS {
        return Err(format!(
            "{text:?}: longer than the longest allowed duration, 365d"
        ));
    }
    Ok(secs)
}

fn parse_any_duration(text: &str) -> Result<u64, String> {
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
        assert_eq!(parse_duration("365d"), Ok(MAX_DURATION_SECS));
        for too_long in ["366d", "18446744073709551615", "99999999999999999999d"] {
            let err = parse_duration(too_long).expect_err(too_long);
            assert!(
                err.contains("365d") || err.contains("expected a duration"),
                "{err}"
            );
        }
        assert!(
            parse_duration("18446744073709551615")
                .expect_err("huge")
                .contains("longer than")
        );
    }

    #[test]
    fn state_names() {
        assert_eq!(State::Queued.name(), "queued");
        let done = State::Finished {
            outcome: Outcome::KilledByLimit,
            exit_code: None,
            signal: Some(9),
            stop: None,
            started_at: Some(1),
            ended_at: 2,
        };
        assert_eq!(done.name(), "killed_by_limit");
        assert!(done.is_finished());
    }

    #[test]
    fn every_end_has_a_distinct_documented_exit_status() {
        let end = |outcome, exit_code, signal| State::Finished {
            outcome,
            exit_code,
            signal,
            stop: None,
            started_at: Some(1),
            ended_at: 2,
        };
        assert_eq!(State::Queued.exit_status(), None);
        let cases = [
            (end(Outcome::Succeeded, Some(0), None), 0),
            (end(Outcome::Failed, Some(3), None), 3),
            (end(Outcome::Failed, None, Some(11)), 139),
            (end(Outcome::TimedOut, Some(0), None), 124),
            (end(Outcome::Lost, None, None), 125),
            (end(Outcome::Cancelled, Some(0), None), 130),
            (end(Outcome::Cancelled, None, Some(9)), 130),
            (end(Outcome::KilledByLimit, None, Some(9)), 137),
        ];
        for (state, status) in cases {
            assert_eq!(state.exit_status(), Some(status), "{state:?}");
        }
    }

    #[test]
    fn records_written_before_stops_were_recorded_still_read() {
        let old = r#"{"state":"finished","outcome":"cancelled","exit_code":null,"signal":null,"started_at":1,"ended_at":2}"#;
        let state: State = serde_json::from_str(old).expect("old record");
        assert!(matches!(state, State::Finished { stop: None, .. }));
    }
}
