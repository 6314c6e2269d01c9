//! `logs ID [--stderr|--both] [-f]`: an experiment's output, cleaned, streamed.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use clap::Args;

use super::output::{CommandOutput, exit};
use crate::exec::ExperimentFiles;
use crate::exec::logs::LogCleaner;
use crate::lab::{Lab, Principal};
use crate::model::{Outcome, State};

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
}

/// Where streamed output goes; writes wait while the reader is slow.
pub trait StreamSink: Send {
    /// Standard output bytes; an error means the reader is gone.
    fn out(&mut self, bytes: Vec<u8>) -> impl Future<Output = Result<(), ()>> + Send;
    /// Standard error bytes.
    fn err(&mut self, bytes: Vec<u8>) -> impl Future<Output = Result<(), ()>> + Send;
}

/// Collects streamed output (for callers that want it whole).
#[derive(Debug, Default)]
pub struct CollectSink(pub CommandOutput);

impl StreamSink for CollectSink {
    async fn out(&mut self, bytes: Vec<u8>) -> Result<(), ()> {
        self.0.stdout.extend(bytes);
        Ok(())
    }

    async fn err(&mut self, bytes: Vec<u8>) -> Result<(), ()> {
        self.0.stderr.extend(bytes);
        Ok(())
    }
}

/// Streams the logs; returns the exit status (with `-f`: the experiment's).
pub async fn logs<S: StreamSink>(lab: &Lab, p: &Principal, args: &LogsArgs, sink: &mut S) -> u32 {
    let experiment = match lab.experiment(p, args.id) {
        Ok(e) => e,
        Err(e) => {
            let out = CommandOutput::from(e);
            let _ = sink.err(out.stderr).await;
            return out.status;
        }
    };
    let files = ExperimentFiles::new(lab.data_dir(), args.id);
    let paths = if args.both {
        vec![files.stdout(), files.stderr()]
    } else if args.stderr {
        vec![files.stderr()]
    } else {
        vec![files.stdout()]
    };
    if !args.follow {
        for path in &paths {
            if stream_file(path, sink).await.is_err() {
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
    follow(lab, p, args.id, &paths, sink).await
}

async fn stream_file<S: StreamSink>(path: &Path, sink: &mut S) -> Result<(), ()> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut cleaner = LogCleaner::default();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buffer).map_err(|_| ())?;
        if n == 0 {
            break;
        }
        let text = cleaner.feed(&buffer[..n]);
        if !text.is_empty() {
            sink.out(text.into_bytes()).await?;
        }
    }
    let rest = cleaner.finish();
    if !rest.is_empty() {
        sink.out(rest.into_bytes()).await?;
    }
    Ok(())
}

struct Followed {
    path: std::path::PathBuf,
    offset: u64,
    cleaner: LogCleaner,
}

async fn follow<S: StreamSink>(
    lab: &Lab,
    p: &Principal,
    id: u64,
    paths: &[std::path::PathBuf],
    sink: &mut S,
) -> u32 {
    let mut followed: Vec<Followed> = paths
        .iter()
        .map(|path| Followed {
            path: path.clone(),
            offset: 0,
            cleaner: LogCleaner::default(),
        })
        .collect();
    let mut changes = lab.queue_changes();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        // Read state before draining, so output written just before the end is not missed.
        let finished = match lab.experiment(p, id) {
            Ok(e) => e.state.is_finished().then_some(e.state),
            Err(e) => {
                let _ = sink.err(format!("error: {e}\n").into_bytes()).await;
                return exit::FAILURE;
            }
        };
        for f in &mut followed {
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
                    let marker = format!(
                        "[labbench: {} bytes skipped to keep up]\n",
                        skip_to - f.offset
                    );
                    f.offset = skip_to;
                    f.cleaner = LogCleaner::default();
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
                f.offset += n as u64;
                let text = f.cleaner.feed(&buffer[..n]);
                if !text.is_empty() && sink.out(text.into_bytes()).await.is_err() {
                    return exit::OK;
                }
            }
        }
        if let Some(state) = finished {
            for f in &mut followed {
                let rest = f.cleaner.finish();
                if !rest.is_empty() {
                    let _ = sink.out(rest.into_bytes()).await;
                }
            }
            return match state {
                State::Finished {
                    outcome: Outcome::Succeeded,
                    ..
                } => exit::OK,
                State::Finished {
                    exit_code: Some(code),
                    ..
                } if code > 0 => (code as u32).min(255),
                _ => exit::FAILURE,
            };
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
    }
}
