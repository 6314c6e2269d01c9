//! `logs ID [--stderr|--both] [--since T] [-t] [-f]`: an experiment's output,
//! cleaned, optionally time-stamped and filtered by time, streamed.
//!
//! Followers read the log files at their own pace, with no process between
//! the experiment and its files: any number may follow, and one more than
//! 4 MiB behind skips ahead with a marker, never slowing the experiment.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::output::{CommandOutput, StreamSink, exit};
use crate::exec::ExperimentFiles;
use crate::exec::journal::{self as timeline, Stream, Timeline};
use crate::exec::logs::LogCleaner;
use crate::lab::{Lab, Principal};
use crate::model::State;

/// Bytes read at once.
const CHUNK: usize = 64 * 1024;
/// A follower further behind than this skips ahead (with a marker).
const MAX_LAG: u64 = 4 * 1024 * 1024;

/// `logs` flags.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct LogsArgs {
    /// Experiment id.
    pub id: u64,
    /// Standard error instead of standard output.
    #[arg(long, conflicts_with = "both")]
    pub stderr: bool,
    /// Standard output, then standard error.
    #[arg(long)]
    pub both: bool,
    /// Follow until the experiment ends, then exit with its status.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only output written since T: an age (10m, 2h, 1d), an RFC 3339 time, a
    /// local 'YYYY-MM-DD HH:MM' or Unix seconds.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Start each line with the time it was written (UTC, to 0.1 s).
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// A JSON object a line: {"stream", "time" (seconds since the epoch),
    /// "line"}; skips while following say {"stream", "time", "note"}.
    #[arg(long)]
    pub json: bool,
}

/// One log being read: where, how far, and how its lines are dressed.
struct LogStream {
    path: PathBuf,
    stream: Stream,
    offset: u64,
    cleaner: LogCleaner,
    /// When parts of the log were written (loaded for `--since`/`-t`/`--json`).
    timeline: Option<Timeline>,
    timestamps: bool,
    /// A JSON object a line.
    json: bool,
    /// Drop the first line (it began before `--since`).
    skip_partial: bool,
    /// Its log has no recorded write times: lines are shown without.
    untimed: bool,
}

impl LogStream {
    fn open(
        files: &ExperimentFiles,
        stream: Stream,
        since_ms: Option<i64>,
        timestamps: bool,
        json: bool,
    ) -> LogStream {
        let path = files.log(stream);
        let timeline = (since_ms.is_some() || timestamps || json)
            .then(|| Timeline::load(&files.journal(), stream));
        let mut offset = 0;
        let mut skip_partial = false;
        if let (Some(since), Some(t)) = (since_ms, &timeline) {
            offset = t.offset_since(since);
            skip_partial = offset > 0 && !byte_before_is_newline(&path, offset);
        }
        let mut stream = LogStream {
            path,
            stream,
            offset,
            cleaner: LogCleaner::default(),
            timeline,
            timestamps,
            json,
            skip_partial,
            untimed: false,
        };
        stream.untimed = stream.lacks_times();
        stream
    }

    /// Whether a time filter or stamps were asked for a log that has no
    /// checkpoints (written before labbench recorded them).
    fn lacks_times(&self) -> bool {
        self.timeline.as_ref().is_some_and(Timeline::is_empty)
            && std::fs::metadata(&self.path).is_ok_and(|m| m.len() > 0)
    }

    /// Turns raw bytes read at `self.offset` into output text and advances.
    fn take(&mut self, bytes: &[u8]) -> String {
        let base = self.offset;
        self.offset += bytes.len() as u64;
        let timed = self.timestamps || self.json;
        if let Some(t) = self.timeline.as_mut().filter(|_| timed) {
            t.refresh();
        }
        let mut out = String::new();
        let (timeline, skip) = (&self.timeline, &mut self.skip_partial);
        let (stream, json) = (self.stream, self.json);
        let timed = timed && !self.untimed;
        self.cleaner.feed_lines(bytes, |line, end| {
            if std::mem::take(skip) {
                return;
            }
            let at = || {
                timeline
                    .as_ref()
                    .and_then(|t| t.time_of(base + end as u64))
                    .unwrap_or_else(timeline::now_ms)
            };
            out.push_str(&dress(stream, json, timed.then(at), "line", &line));
        });
        out
    }

    /// A note of labbench's (output skipped) in this log's form.
    fn note(&self, text: &str) -> String {
        dress(
            self.stream,
            self.json,
            self.json.then(timeline::now_ms),
            "note",
            text,
        )
    }

    /// The unfinished last line, at the end of the stream.
    fn finish(&mut self) -> String {
        let rest = self.cleaner.finish();
        if rest.is_empty() || std::mem::take(&mut self.skip_partial) {
            return String::new();
        }
        if !self.timestamps && !self.json {
            return rest;
        }
        let at = (!self.untimed).then(|| {
            self.timeline
                .as_mut()
                .and_then(|t| {
                    t.refresh();
                    t.time_of(self.offset)
                })
                .unwrap_or_else(timeline::now_ms)
        });
        let dressed = dress(self.stream, self.json, at, "line", &rest);
        // An unfinished last line stays unfinished in text.
        if self.json {
            dressed
        } else {
            dressed.trim_end_matches('\n').to_string()
        }
    }
}

/// One line of output as shown: a JSON object `{"stream", "time" (null
/// when not known), key: text}` with `json`, else the text, after its time
/// (`at`, milliseconds) when given; ends with a newline.
fn dress(stream: Stream, json: bool, at: Option<i64>, key: &str, text: &str) -> String {
    if json {
        let mut object = serde_json::Map::new();
        object.insert("stream".into(), stream.name().into());
        // null where the log has no recorded write times.
        let time = at.map_or(serde_json::Value::Null, |at| (at as f64 / 1000.0).into());
        object.insert("time".into(), time);
        object.insert(key.into(), text.into());
        return format!("{}\n", serde_json::Value::Object(object));
    }
    match at {
        Some(at) => format!("{} {text}\n", timeline::format_ms(at)),
        None => format!("{text}\n"),
    }
}

fn byte_before_is_newline(path: &Path, offset: u64) -> bool {
    let mut byte = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(offset - 1))?;
            f.read_exact(&mut byte)
        })
        .is_ok_and(|()| byte[0] == b'\n')
}

/// Streams the logs; returns the exit status (with `-f`: the experiment's).
pub async fn logs<S: StreamSink>(lab: &Lab, p: &Principal, args: &LogsArgs, sink: &mut S) -> u32 {
    let experiment = match lab.check_output_readable(p, args.id) {
        Ok(e) => e,
        Err(e) => {
            let out = CommandOutput::from(e);
            let _ = sink.err(out.stderr).await;
            return out.status;
        }
    };
    let since_ms = match args
        .since
        .as_deref()
        .map(|t| timeline::parse_since(t, timeline::now_ms()))
    {
        None => None,
        Some(Ok(ms)) => Some(ms),
        Some(Err(e)) => {
            let _ = sink
                .err(format!("error: --since: {e}\n").into_bytes())
                .await;
            return exit::USAGE;
        }
    };
    let files = ExperimentFiles::new(lab.data_dir(), args.id);
    let wanted = if args.both {
        vec![Stream::Stdout, Stream::Stderr]
    } else if args.stderr {
        vec![Stream::Stderr]
    } else {
        vec![Stream::Stdout]
    };
    let mut streams: Vec<LogStream> = wanted
        .into_iter()
        .map(|stream| LogStream::open(&files, stream, since_ms, args.timestamps, args.json))
        .collect();
    if streams.iter().any(LogStream::lacks_times) {
        let note = format!(
            "note: experiment {} has no recorded write times (it ran before labbench kept them): \
             showing all output, without times\n",
            args.id
        );
        let _ = sink.err(note.into_bytes()).await;
    }
    if !args.follow {
        for stream in &mut streams {
            if stream_file(stream, sink).await.is_err() {
                return exit::OK;
            }
        }
        if matches!(experiment.state, State::Queued | State::Starting { .. }) {
            let _ = sink
                .err(
                    format!("experiment {} has not started yet: no output\n", args.id).into_bytes(),
                )
                .await;
        }
        return exit::OK;
    }
    follow(lab, p, args.id, &mut streams, sink).await
}

async fn stream_file<S: StreamSink>(stream: &mut LogStream, sink: &mut S) -> Result<(), ()> {
    let Ok(mut file) = std::fs::File::open(&stream.path) else {
        return Ok(());
    };
    file.seek(SeekFrom::Start(stream.offset)).map_err(|_| ())?;
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buffer).map_err(|_| ())?;
        if n == 0 {
            break;
        }
        let text = stream.take(&buffer[..n]);
        if !text.is_empty() {
            sink.out(text.into_bytes()).await?;
        }
    }
    let rest = stream.finish();
    if !rest.is_empty() {
        sink.out(rest.into_bytes()).await?;
    }
    Ok(())
}

async fn follow<S: StreamSink>(
    lab: &Lab,
    p: &Principal,
    id: u64,
    followed: &mut [LogStream],
    sink: &mut S,
) -> u32 {
    let mut changes = lab.queue_changes();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        // Read state before draining, so output written just before the end
        // is not missed; the read rule is asked again each time (a role
        // changed, a user removed, an experiment made private).
        let finished = match lab.check_output_readable(p, id) {
            Ok(e) => e.state.is_finished().then_some(e.state),
            // A passing failure (the database reopening): follow on.
            Err(e) if !e.is_refusal() => None,
            Err(e) => {
                let out = CommandOutput::from(e);
                let _ = sink.err(out.stderr).await;
                return out.status;
            }
        };
        for f in followed.iter_mut() {
            loop {
                let Ok(mut file) = std::fs::File::open(&f.path) else {
                    break;
                };
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                if len < f.offset {
                    f.offset = 0; // truncated
                }
                if len - f.offset > MAX_LAG {
                    let skip_to = len - CHUNK as u64;
                    let marker = f.note(&format!(
                        "[labbench: {} bytes skipped to keep up]",
                        skip_to - f.offset
                    ));
                    f.offset = skip_to;
                    f.cleaner = LogCleaner::default();
                    f.skip_partial = true;
                    if sink.out(marker.into_bytes()).await.is_err() {
                        return exit::OK;
                    }
                }
                if file.seek(SeekFrom::Start(f.offset)).is_err() {
                    break;
                }
                let n = file.read(&mut buffer).unwrap_or(0);
                if n == 0 {
                    break;
                }
                let text = f.take(&buffer[..n]);
                if !text.is_empty() && sink.out(text.into_bytes()).await.is_err() {
                    return exit::OK;
                }
            }
        }
        if let Some(state) = finished {
            for f in followed.iter_mut() {
                let rest = f.finish();
                if !rest.is_empty() {
                    let _ = sink.out(rest.into_bytes()).await;
                }
            }
            return state.exit_status().unwrap_or(exit::FAILURE);
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--json` gives each line the time it was written, and null, not the
    /// time of reading, for a log that has no recorded times.
    #[test]
    fn json_lines_carry_write_times_or_null() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = ExperimentFiles::new_in(dir.path());
        std::fs::write(files.log(Stream::Stdout), "one\ntwo\n").expect("log");
        let header = crate::exec::journal::journal_header();
        let lines = |journal: String| {
            std::fs::write(files.journal(), journal).expect("journal");
            let mut log = LogStream::open(&files, Stream::Stdout, None, false, true);
            let text = log.take(b"one\ntwo\n");
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
                .collect::<Vec<_>>()
        };
        let timed = lines(format!(
            "{header}run 1\no 4 1700000000100\no 8 1700000000200\n"
        ));
        assert_eq!(timed[0]["line"], "one");
        assert_eq!(timed[0]["time"], 1_700_000_000.1);
        assert_eq!(timed[1]["time"], 1_700_000_000.2);
        assert_eq!(timed[1]["stream"], "stdout");
        let untimed = lines(header.to_string());
        assert!(untimed.iter().all(|l| l["time"].is_null()), "{untimed:?}");
    }
}
