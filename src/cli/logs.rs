//! `logs ID [--stderr|--both] [--since T] [-t] [-f]`: an experiment's output,
//! cleaned, optionally time-stamped and filtered by time, streamed.
//!
//! Followers read the log files at their own pace, with no process between
//! the experiment and its files: any number may follow, and one more than
//! 4 MiB behind skips ahead with a marker, never slowing the experiment.

use std::time::Duration;

use clap::Args;

use super::output::{CommandOutput, StreamSink, exit};
use crate::lab::{Lab, Principal};
use crate::model::State;
use crate::output::journal::{format_ms, now_ms, parse_since};
use crate::output::{LogLine, LogReader, ReadFrom, Stream};

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

/// How lines are shown: with their write times, as JSON objects.
#[derive(Debug, Clone, Copy)]
struct Dress {
    timestamps: bool,
    json: bool,
}

impl Dress {
    /// Whether lines need their write times.
    fn timed(self) -> bool {
        self.timestamps || self.json
    }

    /// A line of `stream` as shown, with its newline.
    fn line(self, stream: Stream, line: &LogLine) -> String {
        dress(stream, self.json, line.at, "line", &line.text)
    }

    /// The unfinished last line of `stream`: unfinished in text too.
    fn last(self, stream: Stream, line: &LogLine) -> String {
        if !self.timed() {
            return format!("{}\n", line.text);
        }
        let dressed = self.line(stream, line);
        if self.json {
            dressed
        } else {
            dressed.trim_end_matches('\n').to_string()
        }
    }

    /// A note of labbench's (output skipped) in the form of `stream`'s lines.
    fn note(self, stream: Stream, text: &str) -> String {
        dress(stream, self.json, self.json.then(now_ms), "note", text)
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
        Some(at) => format!("{} {text}\n", format_ms(at)),
        None => format!("{text}\n"),
    }
}

/// Reads at most [`CHUNK`] bytes more of `reader`; the lines they finish,
/// as shown, and the bytes read (0 when it has caught up).
fn read_shown(reader: &mut LogReader, how: Dress) -> (String, usize) {
    let stream = reader.stream();
    let mut shown = String::new();
    let read = reader.read(CHUNK, |line| shown.push_str(&how.line(stream, &line)));
    (shown, read)
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
    let since_ms = match args.since.as_deref().map(|t| parse_since(t, now_ms())) {
        None => None,
        Some(Ok(ms)) => Some(ms),
        Some(Err(e)) => {
            let _ = sink
                .err(format!("error: --since: {e}\n").into_bytes())
                .await;
            return exit::USAGE;
        }
    };
    let wanted = if args.both {
        vec![Stream::Stdout, Stream::Stderr]
    } else if args.stderr {
        vec![Stream::Stderr]
    } else {
        vec![Stream::Stdout]
    };
    let how = Dress {
        timestamps: args.timestamps,
        json: args.json,
    };
    let from = since_ms.map_or(ReadFrom::Start, ReadFrom::Since);
    let mut streams = Vec::new();
    for stream in wanted {
        match lab.open_output(p, args.id, stream, from, how.timed()) {
            Ok(reader) => streams.push(reader),
            Err(e) => {
                let out = CommandOutput::from(e);
                let _ = sink.err(out.stderr).await;
                return out.status;
            }
        }
    }
    if streams.iter().any(LogReader::lacks_times) {
        let note = format!(
            "note: experiment {} has no recorded write times (it ran before labbench kept them): \
             showing all output, without times\n",
            args.id
        );
        let _ = sink.err(note.into_bytes()).await;
    }
    if !args.follow {
        for stream in &mut streams {
            if stream_file(stream, how, sink).await.is_err() {
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
    follow(lab, p, args.id, &mut streams, how, sink).await
}

async fn stream_file<S: StreamSink>(
    reader: &mut LogReader,
    how: Dress,
    sink: &mut S,
) -> Result<(), ()> {
    loop {
        let (shown, read) = read_shown(reader, how);
        if read == 0 {
            break;
        }
        if !shown.is_empty() {
            sink.out(shown.into_bytes()).await?;
        }
    }
    if let Some(last) = reader.finish() {
        sink.out(how.last(reader.stream(), &last).into_bytes())
            .await?;
    }
    Ok(())
}

async fn follow<S: StreamSink>(
    lab: &Lab,
    p: &Principal,
    id: u64,
    followed: &mut [LogReader],
    how: Dress,
    sink: &mut S,
) -> u32 {
    let mut changes = lab.queue_changes();
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
        for reader in followed.iter_mut() {
            loop {
                if reader.behind() > MAX_LAG {
                    let skipped = reader.skip_ahead(CHUNK as u64);
                    let marker = how.note(
                        reader.stream(),
                        &format!("[labbench: {skipped} bytes skipped to keep up]"),
                    );
                    if sink.out(marker.into_bytes()).await.is_err() {
                        return exit::OK;
                    }
                }
                let (shown, read) = read_shown(reader, how);
                if read == 0 {
                    break;
                }
                if !shown.is_empty() && sink.out(shown.into_bytes()).await.is_err() {
                    return exit::OK;
                }
            }
        }
        if let Some(state) = finished {
            for reader in followed.iter_mut() {
                if let Some(last) = reader.finish() {
                    let _ = sink
                        .out(how.last(reader.stream(), &last).into_bytes())
                        .await;
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
        let files = crate::output::ExperimentFiles::new_in(dir.path());
        std::fs::write(files.log(Stream::Stdout), "one\ntwo\n").expect("log");
        let header = crate::output::journal::journal_header();
        let how = Dress {
            timestamps: false,
            json: true,
        };
        let lines = |journal: String| {
            std::fs::write(files.journal(), journal).expect("journal");
            let mut log = LogReader::open(&files, Stream::Stdout, ReadFrom::Start, how.timed());
            let (text, _) = read_shown(&mut log, how);
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
