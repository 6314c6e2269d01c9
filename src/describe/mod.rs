//! Experiments described in text for people: what `show` prints and the
//! Queue tab's details pane shows, from one function, so both say the same;
//! likewise provenance (`provenance`, the experiment page), comparisons
//! (`compare`, History's `d`) and aligned tables.

mod compare;
mod metrics;
mod provenance;
pub mod table;

pub use compare::comparison_lines;
pub use metrics::metrics_lines;
pub use provenance::provenance_lines;

use crate::model::{Experiment, ExperimentSpec, State, Stop, signal_name};
use crate::units::{printable, short_bytes};

/// The details of `e` as `show` prints them; `private_project` says that
/// its project is private.
pub fn experiment_details(e: &Experiment, private_project: bool) -> String {
    let r = &e.spec.resources;
    let mut out = format!(
        "experiment {} {}\n  owner     {} (unix {})\n  state     {}\n  command   {}\n  workdir   {}\n  request   {} CPUs, {} memory, {} GPUs, {} wall time, priority {}\n",
        e.id,
        printable(e.spec.name.as_deref().unwrap_or("")),
        e.owner,
        e.unix_user,
        e.state.name(),
        printable(&e.spec.command.display()),
        printable(&e.spec.workdir.display().to_string()),
        r.cpus,
        short_bytes(r.memory_bytes as f64),
        r.gpus,
        crate::units::human_duration(r.time_limit_secs),
        e.spec.priority
    );
    out.push_str(&spec_details(&e.spec, private_project));
    if let State::Finished {
        exit_code,
        signal,
        stop,
        ..
    } = &e.state
    {
        out.push_str(&format!(
            "  ended     {}\n",
            how_it_ended(*exit_code, *signal, stop.as_ref())
        ));
        let u = &e.usage;
        out.push_str(&format!(
            "  used      {:.1} CPU-seconds, peak memory {}, {:.0} GPU-seconds, peak GPU memory {}\n",
            u.cpu_seconds,
            short_bytes(u.peak_memory_bytes as f64),
            u.gpu_seconds,
            short_bytes(u.peak_gpu_memory_bytes as f64),
        ));
        if let Some(p) = &u.profile {
            out.push_str(&profile_line(p, &e.spec.resources));
        }
        if let Some(hint) = sizing_line(e) {
            out.push_str(&format!("  sizing    {hint}\n"));
        }
    }
    out.push_str("  history\n");
    for t in &e.transitions {
        let when = chrono::DateTime::from_timestamp(t.at, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "    {when}  {:<16} {}\n",
            t.to,
            printable(&t.reason)
        ));
    }
    out
}

/// The lines of `show` for what a spec has beyond its command and request:
/// project, tags, params, environment, inputs, outputs, dependencies,
/// privacy and output limit (none for what is not set).
fn spec_details(spec: &ExperimentSpec, private_project: bool) -> String {
    let mut lines = Vec::new();
    let mut line = |label: &str, value: String| {
        if !value.is_empty() {
            lines.push(format!("  {label:<9} {}\n", printable(&value)));
        }
    };
    let pairs = |pairs: &[(String, String)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let paths = |paths: &[std::path::PathBuf]| {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    line("project", spec.project.clone().unwrap_or_default());
    line("tags", spec.tags.join(" "));
    line("params", pairs(&spec.params));
    line("env", pairs(&spec.env));
    line("inputs", paths(&spec.inputs));
    line("outputs", paths(&spec.outputs));
    line(
        "after",
        spec.after
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    );
    if spec.private || private_project {
        let why = if spec.private {
            ""
        } else {
            " (its project is private)"
        };
        line(
            "private",
            format!("output and command for its owner and admins{why}"),
        );
    }
    if let Some(max) = spec.max_output_bytes {
        line("output", format!("at most {}", short_bytes(max as f64)));
    }
    lines.concat()
}

/// "exit code 0 after SIGTERM from labbench (cancelled by alice)", "killed
/// by SIGSEGV (11)", "never ran".
fn how_it_ended(exit_code: Option<i32>, signal: Option<i32>, stop: Option<&Stop>) -> String {
    let name = |n: i32| match signal_name(n) {
        Some(name) => format!("{name} ({n})"),
        None => format!("signal {n}"),
    };
    let ended = match (exit_code, signal) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(n)) => format!("killed by {}", name(n)),
        (None, None) if stop.is_none() => return "never ran".into(),
        (None, None) => "exit status unknown".into(),
    };
    match stop {
        Some(stop) => format!(
            "{ended}; labbench sent {} ({})",
            name(stop.signal),
            printable(&stop.by)
        ),
        None => ended,
    }
}

/// Comments `show` and the details pane list (the last ones; `comments ID`
/// lists all).
pub const COMMENTS_SHOWN: usize = 5;

/// An experiment's outcome and comments as `show` and `comments` print
/// them: who said what and when, the text made safe to show; only the last
/// `most` comments, and of each its first lines, when `most` is given.
pub fn discussion_lines(d: &crate::lab::Discussion, most: Option<usize>) -> String {
    let when = crate::units::minute_time;
    let mut out = String::new();
    if let Some(c) = &d.outcome {
        out.push_str(&format!(
            "  outcome   {} (by {}, {}){}\n",
            c.verdict.name(),
            printable(&c.by),
            when(c.at),
            c.note
                .as_deref()
                .map(|n| format!(": {}", printable(n)))
                .unwrap_or_default()
        ));
    }
    if !d.comments.is_empty() {
        out.push_str("  comments\n");
    }
    let skip = most.map_or(0, |most| d.comments.len().saturating_sub(most));
    if skip > 0 {
        out.push_str(&format!("    ({skip} earlier: comments {})\n", d.id));
    }
    for c in &d.comments[skip..] {
        let edited = if c.edited_at.is_some() {
            ", edited"
        } else {
            ""
        };
        out.push_str(&format!(
            "    #{} {} {}{edited}\n",
            c.id,
            printable(&c.author),
            when(c.at)
        ));
        let lines = most.map_or(usize::MAX, |_| 4);
        for line in c.text.lines().take(lines) {
            let line = printable(line);
            let shown: String = match most {
                Some(_) => line.chars().take(300).collect(),
                None => line,
            };
            out.push_str(&format!("      {shown}\n"));
        }
        if c.text.lines().count() > lines {
            out.push_str("      …\n");
        }
    }
    out
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What a finished run says of its request: memory asked against its peak
/// (with the peak plus 15 % headroom, in whole GiB, as what would have
/// fit), and the CPU cores it used on average against those asked. `None`
/// when nothing was measured or the request fit it well.
pub fn sizing_line(e: &Experiment) -> Option<String> {
    let State::Finished {
        started_at: Some(started),
        ended_at,
        ..
    } = e.state
    else {
        return None;
    };
    let r = &e.spec.resources;
    let peak = e.usage.peak_memory_bytes as f64;
    if peak <= 0.0 {
        return None;
    }
    let asked = r.memory_bytes as f64;
    let fits = ((peak * 1.15) / GIB).ceil().max(1.0);
    let mut said = Vec::new();
    if peak >= 0.9 * asked {
        said.push(format!(
            "peaked at {} of the {} asked: close to the limit, --mem {fits:.0}G leaves room",
            short_bytes(peak),
            short_bytes(asked)
        ));
    } else if fits * GIB < 0.5 * asked {
        said.push(format!(
            "asked {}, peaked at {}: --mem {fits:.0}G would have fit",
            short_bytes(asked),
            short_bytes(peak)
        ));
    }
    let secs = (ended_at - started).max(0) as f64;
    if secs >= 10.0 && r.cpus >= 2.0 {
        let mean = e.usage.cpu_seconds / secs;
        if mean < r.cpus / 2.0 {
            said.push(format!(
                "used {mean:.1} of {} CPUs on average: --cpus {:.0} would do",
                r.cpus,
                mean.ceil().max(1.0)
            ));
        }
    }
    (!said.is_empty()).then(|| said.join("; "))
}

/// Peak, p95 and mean of CPU, memory and GPU memory against the request.
pub fn profile_line(p: &crate::model::UseProfile, asked: &crate::model::Resources) -> String {
    let bytes = |s: &crate::model::Spread| {
        format!(
            "{} / {} / {}",
            short_bytes(s.peak),
            short_bytes(s.p95),
            short_bytes(s.mean)
        )
    };
    let mut line = format!(
        "  profile   peak / p95 / mean over {}: CPU {:.1} / {:.1} / {:.1} of {} cores, memory {} of {}",
        crate::units::human_duration(p.seconds),
        p.cpu_cores.peak,
        p.cpu_cores.p95,
        p.cpu_cores.mean,
        asked.cpus,
        bytes(&p.memory_bytes),
        short_bytes(asked.memory_bytes as f64)
    );
    if p.gpu_memory_bytes.peak > 0.0 {
        line.push_str(&format!(", GPU memory {}", bytes(&p.gpu_memory_bytes)));
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CommandLine, ExperimentSpec, Outcome, ResourceUse, Resources};

    fn run(memory_gib: u64, cpus: f64, peak_bytes: u64, cpu_seconds: f64, secs: i64) -> Experiment {
        Experiment {
            id: 1,
            owner: "ana".into(),
            unix_user: "ana".into(),
            spec: ExperimentSpec {
                name: None,
                project: None,
                tags: Vec::new(),
                command: CommandLine::Argv(vec!["true".into()]),
                workdir: "/tmp".into(),
                env: Vec::new(),
                inputs: Vec::new(),
                outputs: Vec::new(),
                params: Vec::new(),
                after: Vec::new(),
                resources: Resources {
                    cpus,
                    memory_bytes: memory_gib << 30,
                    gpus: 0,
                    time_limit_secs: 3600,
                },
                priority: 0,
                private: false,
                max_output_bytes: None,
            },
            submitted_at: 0,
            state: State::Finished {
                outcome: Outcome::Succeeded,
                exit_code: Some(0),
                signal: None,
                stop: None,
                started_at: Some(100),
                ended_at: 100 + secs,
            },
            transitions: Vec::new(),
            host: "h".into(),
            backend: "local".into(),
            usage: ResourceUse {
                cpu_seconds,
                peak_memory_bytes: peak_bytes,
                ..ResourceUse::default()
            },
        }
    }

    #[test]
    fn a_finished_run_says_what_would_have_fit() {
        let gib = 1u64 << 30;
        let oversized = run(64, 8.0, 9 * gib + gib / 10, 800.0, 1000);
        assert_eq!(
            sizing_line(&oversized).as_deref(),
            Some(
                "asked 64G, peaked at 9.1G: --mem 11G would have fit; \
                 used 0.8 of 8 CPUs on average: --cpus 1 would do"
            )
        );
        let tight = run(8, 1.0, 7 * gib + gib / 2, 10.0, 100);
        assert_eq!(
            sizing_line(&tight).as_deref(),
            Some("peaked at 7.5G of the 8.0G asked: close to the limit, --mem 9G leaves room")
        );
        let fitting = run(8, 2.0, 5 * gib, 150.0, 100);
        assert_eq!(sizing_line(&fitting), None);
        let unmeasured = run(8, 2.0, 0, 150.0, 100);
        assert_eq!(sizing_line(&unmeasured), None);
    }
}
