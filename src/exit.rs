//! Exit statuses of a session's command (`ssh lab@host CMD`), the same
//! whichever front end ran it.

/// Success.
pub const OK: u32 = 0;
/// The action failed (not found, conflict, invalid value, store error).
pub const FAILURE: u32 = 1;
/// Usage error: unknown command or flag, malformed command line.
pub const USAGE: u32 = 2;
/// The caller's role or ownership does not allow the action.
pub const PERMISSION_DENIED: u32 = 77;
/// The host cannot take the request now; trying later may work (EX_TEMPFAIL).
pub const TEMPORARY_FAILURE: u32 = 75;
