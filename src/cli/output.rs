//! What a command produces: bytes for stdout and stderr and an exit status.

use crate::lab::LabError;

pub use crate::exit;

/// The result of running one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Exit status.
    pub status: u32,
}

impl CommandOutput {
    /// Success with `text` on stdout.
    pub fn ok(text: impl Into<String>) -> Self {
        CommandOutput {
            stdout: text.into().into_bytes(),
            ..Self::default()
        }
    }

    /// Failure `status` with `message` (a newline is added) on stderr.
    pub fn error(status: u32, message: impl std::fmt::Display) -> Self {
        CommandOutput {
            stderr: format!("{message}\n").into_bytes(),
            status,
            ..Self::default()
        }
    }

    /// A JSON document on stdout.
    pub fn json<T: serde::Serialize>(value: &T) -> Self {
        match serde_json::to_string_pretty(value) {
            Ok(text) => Self::ok(text + "\n"),
            Err(e) => Self::error(exit::FAILURE, format!("error: cannot encode JSON: {e}")),
        }
    }
}

impl From<LabError> for CommandOutput {
    fn from(e: LabError) -> Self {
        let status = match e {
            LabError::PermissionDenied(_) => exit::PERMISSION_DENIED,
            LabError::Unavailable(_) => exit::TEMPORARY_FAILURE,
            _ => exit::FAILURE,
        };
        CommandOutput::error(status, format!("error: {e}"))
    }
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

pub use crate::describe::table::{TableLayout, table};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let text = table(
            &["NAME", "ROLE"],
            &[
                vec!["alice".into(), "admin".into()],
                vec!["b".into(), "viewer".into()],
            ],
        );
        assert_eq!(text, "NAME   ROLE\nalice  admin\nb      viewer\n");
    }

    #[test]
    fn permission_errors_exit_77() {
        let out = CommandOutput::from(LabError::PermissionDenied("no".into()));
        assert_eq!(out.status, exit::PERMISSION_DENIED);
        assert_eq!(out.stderr, b"error: permission denied: no\n");
    }
}
