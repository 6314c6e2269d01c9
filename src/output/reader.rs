//! [`LogReader`]: one experiment log read incrementally, cleaned, its lines
//! given the time they were written. `logs`, `logs -f` and the TUI's log
//! pane read with it; each reader keeps its own place, so any number may
//! read at their own pace with no process between the experiment and its
//! files.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::clean::LogCleaner;
use super::files::{ExperimentFiles, Stream};
use super::journal::{Timeline, now_ms};

/// Where a reader starts in its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// At the beginning.
    Start,
    /// At the first line written at or after this time (Unix milliseconds;
    /// rounded down to the checkpoint before, so nothing is missed).
    Since(i64),
    /// At the first whole line of the last this many bytes.
    Tail(u64),
}

/// One line of output, cleaned, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The text.
    pub text: String,
    /// When it was written (Unix milliseconds), for a reader opened with
    /// times whose log has them; a line no checkpoint has seen yet gets the
    /// time of reading.
    pub at: Option<i64>,
}

/// Reads one log of one experiment from where it was left.
#[derive(Debug)]
pub struct LogReader {
    stream: Stream,
    path: PathBuf,
    offset: u64,
    cleaner: LogCleaner,
    /// When parts of the log were written (for `Since` and times).
    timeline: Option<Timeline>,
    /// Whether lines are given their write times.
    timed: bool,
    /// Drop the first line: it began before where reading started.
    skip_partial: bool,
    /// Times were asked of a log that has none (from before they were kept).
    untimed: bool,
}

impl LogReader {
    /// A reader of `stream` of the experiment whose files are `files`,
    /// starting `from`; with `timed`, lines carry their write times.
    pub fn open(files: &ExperimentFiles, stream: Stream, from: ReadFrom, timed: bool) -> LogReader {
        let path = files.log(stream);
        let timeline = (timed || matches!(from, ReadFrom::Since(_)))
            .then(|| Timeline::load(&files.journal(), stream));
        let offset = match (from, &timeline) {
            (ReadFrom::Since(at), Some(t)) => t.offset_since(at),
            (ReadFrom::Tail(bytes), _) => std::fs::metadata(&path)
                .map_or(0, |m| m.len())
                .saturating_sub(bytes),
            _ => 0,
        };
        let mut reader = LogReader {
            stream,
            skip_partial: offset > 0 && !byte_before_is_newline(&path, offset),
            path,
            offset,
            cleaner: LogCleaner::default(),
            timeline,
            timed,
            untimed: false,
        };
        reader.untimed = reader.lacks_times();
        reader
    }

    /// Which log it reads.
    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// How far it has read, in bytes of the log.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether times or `Since` were asked of a log that has no recorded
    /// write times (it ran before labbench kept them): its lines come
    /// without times, and `Since` reads it all.
    pub fn lacks_times(&self) -> bool {
        self.timeline.as_ref().is_some_and(Timeline::is_empty)
            && std::fs::metadata(&self.path).is_ok_and(|m| m.len() > 0)
    }

    /// Bytes written that it has not read yet.
    pub fn behind(&self) -> u64 {
        std::fs::metadata(&self.path)
            .map_or(0, |m| m.len())
            .saturating_sub(self.offset)
    }

    /// Skips all but the last `keep` bytes not read yet (from the first
    /// whole line in them); returns how many bytes it skipped.
    pub fn skip_ahead(&mut self, keep: u64) -> u64 {
        let len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        let to = len.saturating_sub(keep).max(self.offset);
        let skipped = to - self.offset;
        if skipped > 0 {
            self.offset = to;
            self.cleaner = LogCleaner::default();
            self.skip_partial = true;
        }
        skipped
    }

    /// Reads at most `max` bytes of what was written since the last read
    /// and gives `each` the lines they finish; returns the bytes read (0
    /// when it has caught up). A log that shrank (truncated) is read again
    /// from its beginning.
    pub fn read(&mut self, max: usize, mut each: impl FnMut(LogLine)) -> usize {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return 0;
        };
        let len = file.metadata().map_or(0, |m| m.len());
        if len < self.offset {
            self.offset = 0;
        }
        let want = (len - self.offset).min(max as u64) as usize;
        let mut bytes = vec![0u8; want];
        let n = match file.seek(SeekFrom::Start(self.offset)) {
            Ok(_) if want > 0 => file.read(&mut bytes).unwrap_or(0),
            _ => 0,
        };
        let base = self.offset;
        self.offset += n as u64;
        let timed = self.timed && !self.untimed;
        if let Some(t) = self.timeline.as_mut().filter(|_| timed) {
            t.refresh();
        }
        let (timeline, skip) = (&self.timeline, &mut self.skip_partial);
        self.cleaner.feed_lines(&bytes[..n], |text, end| {
            if std::mem::take(skip) {
                return;
            }
            let at = timed.then(|| {
                timeline
                    .as_ref()
                    .and_then(|t| t.time_of(base + end as u64))
                    .unwrap_or_else(now_ms)
            });
            each(LogLine { text, at });
        });
        n
    }

    /// The unfinished last line, once the log is complete.
    pub fn finish(&mut self) -> Option<LogLine> {
        let mut text = self.cleaner.finish();
        text.truncate(text.trim_end_matches('\n').len());
        if text.is_empty() || std::mem::take(&mut self.skip_partial) {
            return None;
        }
        let at = (self.timed && !self.untimed).then(|| {
            self.timeline
                .as_mut()
                .and_then(|t| {
                    t.refresh();
                    t.time_of(self.offset)
                })
                .unwrap_or_else(now_ms)
        });
        Some(LogLine { text, at })
    }
}

fn byte_before_is_newline(path: &std::path::Path, offset: u64) -> bool {
    let mut byte = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(offset - 1))?;
            f.read_exact(&mut byte)
        })
        .is_ok_and(|()| byte[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(text: &str, journal: &str) -> (tempfile::TempDir, ExperimentFiles) {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = ExperimentFiles::new_in(dir.path());
        std::fs::write(files.log(Stream::Stdout), text).expect("log");
        let header = super::super::journal::journal_header();
        std::fs::write(files.journal(), format!("{header}{journal}")).expect("journal");
        (dir, files)
    }

    fn lines(reader: &mut LogReader, max: usize) -> Vec<LogLine> {
        let mut lines = Vec::new();
        while reader.read(max, |l| lines.push(l)) > 0 {}
        lines.extend(reader.finish());
        lines
    }

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn lines_come_cleaned_with_their_write_times_in_any_chunks() {
        let (_d, files) = log(
            "one\n\x1b[31mtwo\x1b[0m\nthr",
            "run 1\no 4 1700000000100\no 17 1700000000200\n",
        );
        for max in [1, 3, 64 * 1024] {
            let mut reader = LogReader::open(&files, Stream::Stdout, ReadFrom::Start, true);
            let got = lines(&mut reader, max);
            assert_eq!(texts(&got), ["one", "two", "thr"], "chunks of {max}");
            assert_eq!(got[0].at, Some(1_700_000_000_100));
            assert_eq!(got[1].at, Some(1_700_000_000_200));
        }
        let mut plain = LogReader::open(&files, Stream::Stdout, ReadFrom::Start, false);
        assert!(lines(&mut plain, 1024).iter().all(|l| l.at.is_none()));
    }

    #[test]
    fn since_and_tail_start_at_a_whole_line() {
        let (_d, files) = log(
            "old line\nnew line\nlast\n",
            "o 9 1700000000100\no 23 1700000000300\n",
        );
        let mut since = LogReader::open(
            &files,
            Stream::Stdout,
            ReadFrom::Since(1_700_000_000_200),
            false,
        );
        assert_eq!(texts(&lines(&mut since, 1024)), ["new line", "last"]);
        // The last 8 bytes begin inside "new line": that part is dropped.
        let mut tail = LogReader::open(&files, Stream::Stdout, ReadFrom::Tail(8), false);
        assert_eq!(tail.offset(), 15);
        assert_eq!(texts(&lines(&mut tail, 1024)), ["last"]);
    }

    #[test]
    fn a_log_without_times_is_read_whole_and_untimed() {
        let (_d, files) = log("one\ntwo\n", "");
        let mut reader = LogReader::open(&files, Stream::Stdout, ReadFrom::Since(5), true);
        assert!(reader.lacks_times());
        let got = lines(&mut reader, 1024);
        assert_eq!(texts(&got), ["one", "two"]);
        assert!(got.iter().all(|l| l.at.is_none()), "{got:?}");
    }

    #[test]
    fn a_reader_far_behind_skips_ahead_and_a_truncated_log_is_read_again() {
        let (_d, files) = log("aaaa\nbbbb\ncccc\n", "");
        let mut reader = LogReader::open(&files, Stream::Stdout, ReadFrom::Start, false);
        assert_eq!(reader.behind(), 15);
        assert_eq!(reader.skip_ahead(7), 8);
        assert_eq!(texts(&lines(&mut reader, 1024)), ["cccc"]);
        std::fs::write(files.log(Stream::Stdout), "new\n").expect("truncate");
        assert_eq!(texts(&lines(&mut reader, 1024)), ["new"]);
    }
}
