//! Experiment output for the front ends: a reader of a log, given only as
//! the read rule ([`Lab::check_output_readable`]) allows it now.

use super::{Lab, LabResult, Principal};
use crate::output::{ExperimentFiles, LogReader, ReadFrom, Stream};

impl Lab {
    /// A reader of `stream` of experiment `id`'s output for `p`, starting
    /// `from`, its lines with their write times when `timed`. A follower
    /// asks [`Lab::check_output_readable`] again as it goes: a role change
    /// or a project made private ends what it may read.
    pub fn open_output(
        &self,
        p: &Principal,
        id: u64,
        stream: Stream,
        from: ReadFrom,
        timed: bool,
    ) -> LabResult<LogReader> {
        self.check_output_readable(p, id)?;
        let files = ExperimentFiles::new(self.data_dir(), id);
        Ok(LogReader::open(&files, stream, from, timed))
    }
}
