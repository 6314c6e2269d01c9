//! Reading the metrics of running experiments: at each tick, the whole new
//! lines of their standard output (`@metric …`) and of `$LABBENCH_METRICS`
//! (JSON), from where the last read ended, at most [`READ_PER_TICK`] bytes
//! and [`VALUES_PER_READ`] values of each, so that one run's metrics never
//! hold up the runner for long. Never in the experiment's way: its output
//! goes straight to its files, and this reads them behind it. A source
//! rewritten from its start is read again; the rest of a line longer than a
//! read, what a source reports past [`MAX_METRIC_VALUES`] values and what is
//! left after [`READS_AT_END`] reads at the end are skipped and counted.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::lab::Engine;
use crate::model::{
    MAX_METRIC_NAMES, MAX_METRIC_VALUES, MetricSample, MetricSource, MetricSummary,
};
use crate::output::ExperimentFiles;
use crate::output::clean::clean;
use crate::output::metrics::{parse_json_line, parse_output_line};

/// Bytes of each source read per tick at most (a fast writer is caught up
/// over ticks).
const READ_PER_TICK: u64 = 1 << 20;
/// Values kept per read at most: the rest of the bytes read wait for the
/// next tick, so one run's metrics never hold up the runner for long.
const VALUES_PER_READ: usize = 10_000;
/// Reads of each source at a run's end at most; what is left then is
/// counted as skipped.
const READS_AT_END: usize = 64;

/// Reads all that experiment `id`, which ended, left in its metric sources
/// (up to [`READS_AT_END`] reads of each; a last line without its newline
/// counts too).
pub(super) fn ingest_rest(lab: &Engine, data_dir: &Path, id: u64) {
    let files = ExperimentFiles::new(data_dir, id);
    for (source, path) in sources(&files) {
        for read in 0..READS_AT_END {
            let last = read + 1 == READS_AT_END;
            match ingest_source(lab, &path, id, source, MAX_METRIC_VALUES, End::Yes { last }) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!("experiment {id}: cannot read its metrics: {e}");
                    break;
                }
            }
        }
    }
}

/// Reads what experiment `id` added to its metric sources since the last
/// read, and keeps it. `seen`: each source's size when a read last found
/// nothing more (a source that has not grown since is not looked up in the
/// store). Errors are logged: metrics never stop a run.
pub(super) fn ingest(lab: &Engine, data_dir: &Path, id: u64, seen: &mut [u64; 2]) {
    let files = ExperimentFiles::new(data_dir, id);
    for ((source, path), seen) in sources(&files).into_iter().zip(seen.iter_mut()) {
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if len == *seen {
            continue;
        }
        match ingest_source(lab, &path, id, source, MAX_METRIC_VALUES, End::No) {
            Ok(true) => {}
            Ok(false) => *seen = len,
            Err(e) => tracing::warn!("experiment {id}: cannot read its metrics: {e}"),
        }
    }
}

fn sources(files: &ExperimentFiles) -> [(MetricSource, std::path::PathBuf); 2] {
    [
        (MetricSource::Stdout, files.stdout()),
        (MetricSource::File, files.metrics()),
    ]
}

/// Whether a read is of a run that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// It runs: only whole lines are read.
    No,
    /// It ended: a last line without its newline is read too; after the
    /// `last` read, what is left is counted as skipped.
    Yes { last: bool },
}

/// One read of `source` of experiment `id` (at `path`) from where the last
/// ended; whether it moved on. At most `most` values are kept of a source:
/// past them its bytes are skipped unread (and counted).
fn ingest_source(
    lab: &Engine,
    path: &Path,
    id: u64,
    source: MetricSource,
    most: u64,
    end: End,
) -> Result<bool, Box<dyn std::error::Error>> {
    let len = match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() > 0 => m.len(),
        _ => return Ok(false),
    };
    let mut read = lab.metrics_read(id, source)?;
    // Rewritten from its start (a program that opens it anew): read again.
    if len < read.offset {
        read.offset = 0;
        read.in_long_line = false;
    }
    // A full data disk is the records' first: metrics wait (where to read
    // from is kept).
    if len == read.offset || lab.disk_short().is_some() {
        return Ok(false);
    }
    if read.kept >= most || end == (End::Yes { last: true }) {
        read.skipped += len - read.offset;
        read.offset = len;
        lab.record_metrics(id, source, &[], &read)?;
        return Ok(true);
    }
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(read.offset))?;
    let mut bytes = Vec::new();
    file.take(READ_PER_TICK).read_to_end(&mut bytes)?;
    let mut start = 0;
    // The rest of a line longer than a whole read is skipped.
    if read.in_long_line {
        match bytes.iter().position(|b| *b == b'\n') {
            Some(end) => {
                start = end + 1;
                read.in_long_line = false;
            }
            None => {
                read.skipped += bytes.len() as u64;
                read.offset += bytes.len() as u64;
                lab.record_metrics(id, source, &[], &read)?;
                return Ok(true);
            }
        }
    }
    // Whole lines only while it runs: it may be halfway through one.
    let ended = matches!(end, End::Yes { .. }) && read.offset + bytes.len() as u64 == len;
    let whole = match bytes[start..].iter().rposition(|b| *b == b'\n') {
        Some(last) => start + last + 1,
        None if ended => bytes.len(),
        None if bytes.len() as u64 >= READ_PER_TICK => {
            read.skipped += (bytes.len() - start) as u64;
            read.offset += bytes.len() as u64;
            read.in_long_line = true;
            lab.record_metrics(id, source, &[], &read)?;
            return Ok(true);
        }
        None if start > 0 => start,
        None => return Ok(false),
    };
    let whole = if ended { bytes.len() } else { whole };
    let at = crate::output::journal::now_ms();
    let mut samples = Vec::new();
    let mut done = start;
    for line in bytes[start..whole].split_inclusive(|b| *b == b'\n') {
        if samples.len() >= VALUES_PER_READ || read.kept + samples.len() as u64 >= most {
            break;
        }
        let offset = read.offset + done as u64;
        done += line.len();
        let parsed = match source {
            // Only lines that may be metrics are cleaned and parsed.
            MetricSource::Stdout if !line.windows(7).any(|w| w == b"@metric") => None,
            MetricSource::Stdout => parse_output_line(clean(line).trim_end()),
            MetricSource::File => Some(parse_json_line(&String::from_utf8_lossy(line))),
        };
        match parsed {
            None => {}
            Some(Ok(points))
                if points.iter().any(|p| {
                    !read.summary.contains_key(&p.name) && read.summary.len() >= MAX_METRIC_NAMES
                }) =>
            {
                read.malformed += 1;
                read.last_malformed = Some(format!(
                    "more than {MAX_METRIC_NAMES} metric names: further names are not kept"
                ));
            }
            Some(Ok(points)) => {
                for p in &points {
                    read.summary
                        .entry(p.name.clone())
                        .and_modify(|s| s.add(p.value, at))
                        .or_insert_with(|| MetricSummary::of(p.value, at));
                }
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
                read.last_malformed = Some(why.to_string().chars().take(200).collect());
            }
        }
    }
    read.offset += done as u64;
    read.kept += samples.len() as u64;
    lab.record_metrics(id, source, &samples, &read)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::testing::lab_with_admin;
    use std::io::Write;

    fn append(path: &Path, bytes: &[u8]) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        file.write_all(bytes).expect("append");
    }

    fn values(lab: &crate::lab::Lab, id: u64) -> Vec<(String, f64)> {
        let mut values: Vec<(String, f64)> = lab
            .store()
            .metrics(id)
            .expect("metrics")
            .into_iter()
            .map(|s| (s.name, s.value))
            .collect();
        values.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        values
    }

    /// Lines are read whole, once, from where the last read ended; past the
    /// most kept, the rest of the source is skipped unread and counted.
    #[test]
    fn sources_are_read_once_whole_lines_at_a_time_and_capped() {
        let (dir, lab) = lab_with_admin();
        let engine = lab.engine();
        let path = dir.path().join("stdout.log");
        append(
            &path,
            b"epoch 1\n@metric loss=0.5 step=1\n@metric loss=0.4 st",
        );
        let read =
            |end| ingest_source(&engine, &path, 9, MetricSource::Stdout, 3, end).expect("read");
        assert!(read(End::No));
        assert!(!read(End::No), "nothing new: nothing read");
        append(
            &path,
            b"ep=2\n@metric loss=x\n@metric loss=0.3 acc=0.1\n@metric loss=0.2\n",
        );
        assert!(read(End::No));
        assert!(read(End::No), "past the most kept: skipped");
        let state = engine.metrics_read(9, MetricSource::Stdout).expect("state");
        assert_eq!(
            (state.kept, state.malformed, state.skipped),
            (4, 1, "@metric loss=0.2\n".len() as u64),
            "{state:?}"
        );
        assert_eq!(
            values(&lab, 9),
            [
                ("acc".to_string(), 0.1),
                ("loss".to_string(), 0.3),
                ("loss".to_string(), 0.4),
                ("loss".to_string(), 0.5)
            ]
        );
        // The summary kept with the reads says the same.
        let loss = state.summary["loss"];
        assert_eq!(
            (loss.count, loss.last, loss.min, loss.max),
            (3, 0.3, 0.3, 0.5)
        );
        assert_eq!(state.summary["acc"].count, 1);
    }

    /// Past the most metric names a source may have, lines with new names
    /// are refused as malformed; known names go on.
    #[test]
    fn metric_names_are_capped() {
        let (dir, lab) = lab_with_admin();
        let engine = lab.engine();
        let path = dir.path().join("metrics.jsonl");
        let mut lines = String::new();
        for n in 0..=MAX_METRIC_NAMES {
            lines.push_str(&format!("{{\"m{n}\":1}}\n"));
        }
        lines.push_str("{\"m0\":2}\n");
        append(&path, lines.as_bytes());
        while ingest_source(&engine, &path, 5, MetricSource::File, 1_000_000, End::No)
            .expect("read")
        {}
        let state = engine.metrics_read(5, MetricSource::File).expect("state");
        assert_eq!(state.summary.len(), MAX_METRIC_NAMES);
        assert_eq!(state.malformed, 1, "{:?}", state.last_malformed);
        assert_eq!(state.summary["m0"].count, 2);
    }

    /// A source rewritten from its start is read again; the rest of a line
    /// longer than a read is skipped; at the end a last line without its
    /// newline counts.
    #[test]
    fn rewritten_sources_long_lines_and_last_lines() {
        let (dir, lab) = lab_with_admin();
        let engine = lab.engine();
        let path = dir.path().join("metrics.jsonl");
        let read = |end| ingest_source(&engine, &path, 4, MetricSource::File, 100, end);
        append(&path, b"{\"loss\":1,\"step\":1}\n{\"loss\":2,\"step\":2}\n");
        assert!(read(End::No).expect("read"));
        std::fs::write(&path, b"{\"acc\":0.5}\n").expect("rewrite");
        assert!(read(End::No).expect("read"));
        assert!(values(&lab, 4).contains(&("acc".to_string(), 0.5)));
        // A line longer than a read: its rest is skipped, the next line read.
        let mut long = vec![b'x'; READ_PER_TICK as usize + 10];
        long.extend_from_slice(b" {\"stolen\":1}\n{\"after\":2}\n{\"last\":3}");
        append(&path, &long);
        while read(End::No).expect("read") {}
        let names: Vec<String> = values(&lab, 4).into_iter().map(|v| v.0).collect();
        assert!(names.contains(&"after".to_string()), "{names:?}");
        assert!(!names.contains(&"stolen".to_string()), "{names:?}");
        assert!(
            !names.contains(&"last".to_string()),
            "not whole yet: {names:?}"
        );
        assert!(read(End::Yes { last: false }).expect("read at the end"));
        let names: Vec<String> = values(&lab, 4).into_iter().map(|v| v.0).collect();
        assert!(names.contains(&"last".to_string()), "{names:?}");
        let state = engine.metrics_read(4, MetricSource::File).expect("state");
        assert!(state.skipped >= READ_PER_TICK, "{state:?}");
    }
}
