//! bai-manager's library: manager.toml, logging, the process supervisor and its workers, and
//! the exit codes. The `bai-manager` binary (`main.rs`) adds the command line on top; tests use
//! these modules directly.

pub mod config;
pub mod exit;
pub mod logging;
pub mod server;
