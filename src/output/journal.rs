//! The run journal: what the shim noted while the experiment ran, in one
//! small text file per experiment (one inode: creating files is the costly
//! part of starting an experiment on a busy ext4 disk). It gives each log
//! line the time it was written (`logs -t`, `logs --since`) without any
//! process between the experiment and its log files, and it outlives the
//! daemon: a restarted daemon reads how its experiments ended here.
//!
//! - `run MS`: the command is about to start (written before it is, and
//!   nothing starts if it cannot be written). A journal of version 2 made
//!   since the host last booted (its header names the boot) without it
//!   belongs to a command that never started: one whose daemon stopped
//!   between recording its start and letting it go is queued again ("queued
//!   again: the daemon stopped before its command started"). The line is not
//!   synced to disk (that would cost every start a disk flush), so after the
//!   host itself went down its absence says nothing.
//! - `o SIZE MS` / `e SIZE MS`: at Unix time MS (milliseconds), stdout /
//!   stderr had SIZE bytes. Noted every [`CHECKPOINT_EVERY`] while a log grows
//!   and once when the command ends, so the logs themselves stay the raw
//!   output, written straight to their files with no process in the path.
//!   A line's time is the first checkpoint that saw it complete: at most one
//!   interval late, never early.
//! - `exit N` / `signal N`: how the command ended (the last line).
//!
//! The launcher writes [`journal_header`] first; readers skip lines they do
//! not know.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::files::Stream;

/// The journal's first line before its boot: version 2 has the `run` line.
const HEADER_START: &str = "# labbench run journal 2";

/// The journal's first line, written when it is created: its version and
/// the host's boot (`/proc/sys/kernel/random/boot_id`).
pub fn journal_header() -> &'static str {
    static HEADER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HEADER.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|id| id.trim().to_string())
            .unwrap_or_default();
        format!("{HEADER_START} boot {boot}\n")
    })
}

/// How often the shim looks at the size of the logs.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The letter a stream's checkpoints start with.
fn tag(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "o",
        Stream::Stderr => "e",
    }
}

/// How an experiment's command ended, as the shim recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    fn record(self) -> String {
        match self {
            ExitStatus::Code(c) => format!("exit {c}\n"),
            ExitStatus::Signal(s) => format!("signal {s}\n"),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Appends to a journal (the shim's side).
#[derive(Debug)]
pub struct JournalWriter {
    out: std::fs::File,
    /// Each log, open, with the size last noted.
    logs: Vec<(Stream, std::fs::File, Option<u64>)>,
}

impl JournalWriter {
    /// Appends to `out`; checkpoints follow the size of each open log (one
    /// `fstat` each, no path lookup).
    pub fn new(out: std::fs::File, logs: Vec<(Stream, std::fs::File)>) -> JournalWriter {
        JournalWriter {
            out,
            logs: logs.into_iter().map(|(s, f)| (s, f, None)).collect(),
        }
    }

    /// Opens `journal` for appending and each of `logs` for reading.
    pub fn open(journal: &Path, logs: &[(Stream, PathBuf)]) -> std::io::Result<JournalWriter> {
        let out = std::fs::OpenOptions::new().append(true).open(journal)?;
        let logs = logs
            .iter()
            .map(|(s, p)| Ok((*s, std::fs::File::open(p)?)))
            .collect::<std::io::Result<_>>()?;
        Ok(JournalWriter::new(out, logs))
    }

    /// Notes the size of each log that changed since the last checkpoint.
    pub fn checkpoint(&mut self, at_ms: i64) {
        let mut lines = String::new();
        for (stream, file, last) in &mut self.logs {
            let Ok(size) = file.metadata().map(|m| m.len()) else {
                continue;
            };
            if *last != Some(size) {
                lines.push_str(&format!("{} {size} {at_ms}\n", tag(*stream)));
                *last = Some(size);
            }
        }
        if !lines.is_empty() {
            let _ = self.out.write_all(lines.as_bytes());
        }
    }

    /// Records that the command is about to start; it must not start if
    /// this fails.
    pub fn started(&mut self, at_ms: i64) -> std::io::Result<()> {
        self.out.write_all(format!("run {at_ms}\n").as_bytes())
    }

    /// Records how the command ended.
    pub fn exit(&mut self, status: ExitStatus) {
        let _ = self.out.write_all(status.record().as_bytes());
    }
}

/// Whether the journal says its command never started: a version 2
/// journal of this boot without its `run` line (which follows the header at
/// once). A journal that cannot be read, of version 1, or of an earlier
/// boot says nothing.
pub fn never_started(journal: &Path) -> bool {
    let header = journal_header();
    if header.ends_with(" boot \n") {
        return false;
    }
    let mut head = [0u8; 128];
    let Ok(n) = std::fs::File::open(journal).and_then(|mut f| f.read(&mut head)) else {
        return false;
    };
    let head = String::from_utf8_lossy(&head[..n]);
    head.starts_with(header) && !head[header.len()..].starts_with("run ")
}

/// Reads how the command ended from the journal's last line.
pub fn read_exit(journal: &Path) -> Option<ExitStatus> {
    let mut file = std::fs::File::open(journal).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64))).ok()?;
    let mut tail = String::new();
    file.read_to_string(&mut tail).ok()?;
    let (kind, value) = tail.lines().last()?.trim().split_once(' ')?;
    let value: i32 = value.parse().ok()?;
    match kind {
        "exit" => Some(ExitStatus::Code(value)),
        "signal" => Some(ExitStatus::Signal(value)),
        _ => None,
    }
}

/// Checkpoints of one log, read incrementally (the journal may still grow).
#[derive(Debug)]
pub struct Timeline {
    journal: PathBuf,
    stream: Stream,
    read: u64,
    /// `(log size, Unix ms)`, both non-decreasing.
    points: Vec<(u64, i64)>,
}

impl Timeline {
    /// The checkpoints of `stream` so far (none when the journal is missing:
    /// experiments from before labbench kept write times).
    pub fn load(journal: &Path, stream: Stream) -> Timeline {
        let mut timeline = Timeline {
            journal: journal.to_path_buf(),
            stream,
            read: 0,
            points: Vec::new(),
        };
        timeline.refresh();
        timeline
    }

    /// Reads checkpoints added since the last call.
    pub fn refresh(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.journal) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.read)).is_err() {
            return;
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return;
        }
        // Only whole lines: the shim may be halfway through one.
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in String::from_utf8_lossy(&bytes[..whole]).lines() {
            let mut fields = line.split(' ');
            if fields.next() != Some(tag(self.stream)) {
                continue;
            }
            let (Some(Ok(size)), Some(Ok(at))) = (
                fields.next().map(str::parse::<u64>),
                fields.next().map(str::parse::<i64>),
            ) else {
                continue;
            };
            // Keep both columns monotonic even if the clock stepped back.
            let point = match self.points.last() {
                Some(&(o, t)) => (size.max(o), at.max(t)),
                None => (size, at),
            };
            self.points.push(point);
        }
        self.read += whole as u64;
    }

    /// When the byte ending at `end` (exclusive) was first seen in the log;
    /// `None` when no checkpoint has seen it yet.
    pub fn time_of(&self, end: u64) -> Option<i64> {
        let i = self.points.partition_point(|&(offset, _)| offset < end);
        self.points.get(i).map(|&(_, at)| at)
    }

    /// The log offset from which everything was written at or after `at_ms`
    /// (rounded down to the checkpoint before, so nothing is missed).
    pub fn offset_since(&self, at_ms: i64) -> u64 {
        let i = self.points.partition_point(|&(_, t)| t < at_ms);
        match i {
            0 => 0,
            i => self.points[i - 1].0,
        }
    }

    /// Whether any checkpoint exists.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// Formats Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_ms(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "????-??-??T??:??:??.???Z".into())
}

/// Parses a `--since` value: an age (`90s`, `10m`, `2h`, `1d`), an RFC 3339
/// time (`2026-11-24T10:00:00Z`), a local `YYYY-MM-DD HH:MM[:SS]` or
/// `YYYY-MM-DD`, or Unix seconds. Returns Unix milliseconds.
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs.saturating_mul(1000));
    }
    if let Ok(age) = crate::model::parse_duration(text) {
        return Ok(now_ms.saturating_sub((age as i64).saturating_mul(1000)));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let local = |naive: chrono::NaiveDateTime| {
        use chrono::TimeZone;
        chrono::Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.timestamp_millis())
    };
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(text, format)
            && let Some(ms) = local(naive)
        {
            return Ok(ms);
        }
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(ms) = date.and_hms_opt(0, 0, 0).and_then(local)
    {
        return Ok(ms);
    }
    Err(format!(
        "invalid time {text:?}: give an age (10m, 2h, 1d), an RFC 3339 time \
         (2026-11-24T10:00:00Z), a local 'YYYY-MM-DD HH:MM' or Unix seconds"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_without_its_run_line_says_the_command_never_started() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let says = |text: &str| {
            std::fs::write(&path, text).expect("write");
            never_started(&path)
        };
        let header = journal_header();
        assert!(says(header));
        assert!(!says(&format!("{header}run 1700000000000\n")));
        assert!(!says(&format!("{header}run 1\no 5 2\nexit 0\n")));
        // Version 1 had no run line, and one of an earlier boot may have
        // lost it in the crash: neither says anything.
        assert!(!says("# labbench run journal 1\n"));
        assert!(!says("# labbench run journal 2 boot 0e7a-earlier\n"));
        assert!(!never_started(&dir.path().join("missing")));
    }

    fn timeline_with(points: &[(u64, i64)]) -> (tempfile::TempDir, Timeline) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("stdout.log");
        let journal = dir.path().join("journal");
        std::fs::write(&log, b"").expect("log");
        std::fs::write(&journal, b"").expect("journal");
        let mut writer =
            JournalWriter::open(&journal, &[(Stream::Stdout, log.clone())]).expect("writer");
        for &(size, at) in points {
            std::fs::write(&log, vec![b'x'; size as usize]).expect("grow");
            writer.checkpoint(at);
        }
        (dir, Timeline::load(&journal, Stream::Stdout))
    }

    #[test]
    fn lines_get_the_first_checkpoint_that_saw_them() {
        let (_dir, t) = timeline_with(&[(10, 1_000), (25, 2_000), (40, 3_000)]);
        assert_eq!(t.time_of(1), Some(1_000));
        assert_eq!(t.time_of(10), Some(1_000));
        assert_eq!(t.time_of(11), Some(2_000));
        assert_eq!(t.time_of(40), Some(3_000));
        assert_eq!(t.time_of(41), None);
    }

    #[test]
    fn since_starts_at_the_checkpoint_before() {
        let (_dir, t) = timeline_with(&[(10, 1_000), (25, 2_000), (40, 3_000)]);
        assert_eq!(t.offset_since(0), 0);
        assert_eq!(t.offset_since(1_000), 0);
        assert_eq!(t.offset_since(1_500), 10);
        assert_eq!(t.offset_since(2_500), 25);
        assert_eq!(t.offset_since(9_000), 40);
    }

    #[test]
    fn unchanged_sizes_add_nothing_and_half_lines_wait() {
        let (dir, mut t) = timeline_with(&[(10, 1_000), (10, 2_000), (10, 3_000)]);
        assert_eq!(t.points.len(), 1);
        let journal = dir.path().join("journal");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .expect("open");
        file.write_all(b"o 20 4").expect("half a line");
        t.refresh();
        assert_eq!(t.points.len(), 1, "a torn line is not read");
        file.write_all(b"000\ne 5 4000\n").expect("rest");
        t.refresh();
        assert_eq!(
            t.points,
            vec![(10, 1_000), (20, 4_000)],
            "other streams skipped"
        );
    }

    #[test]
    fn the_exit_record_is_the_last_line() {
        let (dir, _t) = timeline_with(&[(10, 1_000)]);
        let journal = dir.path().join("journal");
        assert_eq!(read_exit(&journal), None, "still running");
        let mut writer = JournalWriter::open(&journal, &[]).expect("writer");
        writer.exit(ExitStatus::Signal(9));
        assert_eq!(read_exit(&journal), Some(ExitStatus::Signal(9)));
        std::fs::write(&journal, "o 1 2\nexit 3\n").expect("write");
        assert_eq!(read_exit(&journal), Some(ExitStatus::Code(3)));
        assert_eq!(read_exit(&dir.path().join("missing")), None);
    }

    #[test]
    fn since_accepts_ages_times_and_seconds() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_since("10m", now), Ok(now - 600_000));
        assert_eq!(
            parse_since("2026-11-24T10:00:00Z", now),
            Ok(1_795_478_400_000 + 10 * 3_600_000)
        );
        assert_eq!(parse_since("1700000000", now), Ok(1_700_000_000_000));
        assert!(parse_since("2026-11-24 10:00", now).is_ok());
        let err = parse_since("yesterday", now).expect_err("rejected");
        assert!(err.contains("invalid time \"yesterday\""), "{err}");
    }

    #[test]
    fn times_format_as_utc() {
        assert_eq!(format_ms(1_795_478_400_123), "2026-11-24T00:00:00.123Z");
    }
}
