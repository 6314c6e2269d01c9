//! Reading the metrics of running experiments: at each tick, the whole new
//! lines of their standard output (`@metric …`) and of `$LABBENCH_METRICS`
//! (JSON), from where the last read ended, at most [`READ_PER_TICK`] bytes
//! of each. Never in the experiment's way: its output goes straight to its
//! files, and this reads them behind it.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::lab::Engine;
use crate::model::{MAX_METRIC_VALUES, MetricSample, MetricSource};
use crate::output::ExperimentFiles;
use crate::output::clean::clean;
use crate::output::metrics::{parse_json_line, parse_output_line};

/// Bytes of each source read per tick at most (a fast writer is caught up
/// over ticks).
const READ_PER_TICK: u64 = 4 << 20;

/// Reads all that experiment `id`, which ended, left in its metric sources
/// (up to 64 reads of each).
pub(super) fn ingest_rest(lab: &Engine, data_dir: &Path, id: u64) {
    for _ in 0..64 {
        if !ingest(lab, data_dir, id) {
            return;
        }
    }
}

/// Reads what experiment `id` added to its metric sources since the last
/// read, and keeps it; whether there was anything. Errors are logged:
/// metrics never stop a run.
pub(super) fn ingest(lab: &Engine, data_dir: &Path, id: u64) -> bool {
    let mut any = false;
    let files = ExperimentFiles::new(data_dir, id);
    for source in MetricSource::ALL {
        let path = match source {
            MetricSource::Stdout => files.stdout(),
            MetricSource::File => files.metrics(),
        };
        match ingest_source(lab, &path, id, source, MAX_METRIC_VALUES) {
            Ok(read) => any |= read,
            Err(e) => tracing::warn!("experiment {id}: cannot read its metrics: {e}"),
        }
    }
    any
}

fn ingest_source(
    lab: &Engine,
    path: &Path,
    id: u64,
    source: MetricSource,
    most: u64,
) -> Result<bool, Box<dyn std::error::Error>> {
    let len = match std::fs::metadata(path) {
        Ok(m) if m.len() > 0 => m.len(),
        _ => return Ok(false),
    };
    let mut read = lab.metrics_read(id, source)?;
    // A full data disk is the records' first: metrics wait (where to read
    // from is kept).
    if len <= read.offset || lab.disk_short().is_some() {
        return Ok(false);
    }
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(read.offset))?;
    let mut bytes = Vec::new();
    file.take(READ_PER_TICK).read_to_end(&mut bytes)?;
    // Whole lines only: the experiment may be halfway through one. A line
    // longer than a whole read is skipped.
    let whole = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => end + 1,
        None if bytes.len() as u64 >= READ_PER_TICK => bytes.len(),
        None => return Ok(false),
    };
    let at = crate::output::journal::now_ms();
    let mut samples = Vec::new();
    let mut start = 0;
    for line in bytes[..whole].split_inclusive(|b| *b == b'\n') {
        let offset = read.offset + start as u64;
        start += line.len();
        let parsed = match source {
            MetricSource::Stdout => parse_output_line(clean(line).trim_end()),
            MetricSource::File => Some(parse_json_line(&String::from_utf8_lossy(line))),
        };
        match parsed {
            None => {}
            Some(Ok(points)) if read.kept + (samples.len() + points.len()) as u64 > most => {
                read.dropped += points.len() as u64;
            }
            Some(Ok(points)) => {
                samples.extend(
                    points
                        .into_iter()
                        .enumerate()
                        .map(|(index, p)| MetricSample {
                            name: p.name,
                            value: p.value,
                            step: p.step,
                            at,
                            source,
                            offset,
                            index: u16::try_from(index).unwrap_or(u16::MAX),
                        }),
                );
            }
            Some(Err(why)) => {
                read.malformed += 1;
                read.last_malformed = Some(why.to_string());
            }
        }
    }
    read.offset += whole as u64;
    read.kept += samples.len() as u64;
    lab.record_metrics(id, source, &samples, &read)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::testing::lab_with_admin;

    /// Lines are read whole, once, from where the last read ended; past the
    /// most kept, values are counted as dropped, not stored.
    #[test]
    fn sources_are_read_once_whole_lines_at_a_time_and_capped() {
        let (dir, lab) = lab_with_admin();
        let engine = lab.engine();
        let path = dir.path().join("stdout.log");
        std::fs::write(
            &path,
            "epoch 1\n@metric loss=0.5 step=1\n@metric loss=0.4 st",
        )
        .expect("log");
        let read =
            |most| ingest_source(&engine, &path, 9, MetricSource::Stdout, most).expect("read");
        assert!(read(3));
        assert!(!read(3), "nothing new: nothing read");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("log");
        use std::io::Write;
        file.write_all(
            b"ep=2\n@metric loss=x\n@metric loss=0.3 acc=0.1 step=3\n@metric loss=0.2\n",
        )
        .expect("more");
        assert!(read(3));
        let state = engine.metrics_read(9, MetricSource::Stdout).expect("state");
        assert_eq!(
            (state.kept, state.dropped, state.malformed),
            (3, 2, 1),
            "{state:?}"
        );
        let stored = lab.store().metrics(9).expect("metrics");
        let values: Vec<(String, f64, Option<u64>)> = stored
            .iter()
            .map(|s| (s.name.clone(), s.value, s.step))
            .collect();
        assert_eq!(
            values,
            [
                ("loss".to_string(), 0.5, Some(1)),
                ("loss".to_string(), 0.4, Some(2)),
                ("loss".to_string(), 0.2, None),
            ]
        );
    }
}
