//! `resources ID [--json|--csv]`: an experiment's use over its run.

use super::output::{CommandOutput, table};
use crate::lab::{Lab, Principal};
use crate::units::{minute_time, short_bytes};

/// Stretches the text form lists (the latest; `--csv` has all).
const STRETCHES_SHOWN: usize = 20;

/// `resources ID`: peak, p95 and mean against the request, and the series.
pub fn resources(lab: &Lab, p: &Principal, id: u64, json: bool, csv: bool) -> CommandOutput {
    let series = match lab.resource_series(p, id) {
        Ok(series) => series,
        Err(e) => return e.into(),
    };
    if json {
        return CommandOutput::json(&series);
    }
    if csv {
        let mut out = String::from("at,secs,cpu_cores,memory_bytes,gpu_memory_bytes\n");
        for s in &series.samples {
            out.push_str(&format!(
                "{},{},{},{},{}\n",
                s.at, s.secs, s.cpu_cores, s.memory_bytes, s.gpu_memory_bytes
            ));
        }
        return CommandOutput::ok(out);
    }
    let Some(profile) = &series.profile else {
        return CommandOutput::ok(format!(
            "experiment {id}: no use measured (it has not run, or ran without a cgroup and without GPUs)\n"
        ));
    };
    let mut out = format!("experiment {id}\n");
    out.push_str(&crate::describe::profile_line(profile, &series.request));
    let rows: Vec<Vec<String>> = series
        .samples
        .iter()
        .rev()
        .take(STRETCHES_SHOWN)
        .rev()
        .map(|s| {
            vec![
                minute_time(s.at),
                format!("{}s", s.secs),
                format!("{:.2}", s.cpu_cores),
                short_bytes(s.memory_bytes as f64),
                short_bytes(s.gpu_memory_bytes as f64),
            ]
        })
        .collect();
    out.push_str(&table(
        &["AT", "STRETCH", "CPU", "MEMORY", "GPU MEMORY"],
        &rows,
    ));
    if series.samples.len() > STRETCHES_SHOWN {
        out.push_str(&format!(
            "the latest {STRETCHES_SHOWN} of {} stretches (--csv has all)\n",
            series.samples.len()
        ));
    }
    CommandOutput::ok(out)
}
