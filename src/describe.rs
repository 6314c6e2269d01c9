//! Experiments described in text for people: what `show` prints and the
//! Queue tab's details pane shows, from one function, so both say the same.

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

/// An experiment's outcome and comments as `show` and `comments` print
/// them: who said what and when, the text made safe to show.
pub fn discussion_lines(d: &crate::lab::Discussion) -> String {
    let when = |at: i64| {
        chrono::DateTime::from_timestamp(at, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
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
    for c in &d.comments {
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
        for line in c.text.lines() {
            out.push_str(&format!("      {}\n", printable(line)));
        }
    }
    out
}
