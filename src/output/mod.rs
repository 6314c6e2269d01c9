//! Experiment output: where it lives ([`files`]), when each part of it was
//! written ([`journal`]), how it is made safe to show ([`clean`]) and how it
//! is read, whole or followed ([`reader`]).
//!
//! A leaf: it knows files and formats, not who may read them. Front ends
//! get a [`LogReader`] only from the service (`Lab::open_output`), which
//! applies the read rule first; the executor writes the files.

pub mod clean;
pub mod files;
pub mod journal;
pub mod metrics;
pub mod reader;

pub use clean::LogCleaner;
pub use files::{ExperimentFiles, Stream};
pub use reader::{LogLine, LogReader, ReadFrom};
