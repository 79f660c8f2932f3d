//! Exit codes of `backend.ai mgr` (`ai.backend.cli.types.ExitCode`).

/// The command did what was asked.
pub const OK: i32 = 0;
/// The command failed (a service is down, a key is missing, ...).
pub const FAILURE: i32 = 1;
/// The command line itself is wrong (clap reports these).
pub const INVALID_USAGE: i32 = 2;
/// An operation timed out.
pub const OPERATION_TIMEOUT: i32 = 3;
/// An argument or a configuration value is invalid.
pub const INVALID_ARGUMENT: i32 = 4;
