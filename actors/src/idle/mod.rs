//! Idle checks and session lifetimes (the original's `manager/idle.py`): which sessions to end
//! because nothing used them, because they used too little, or because they lived too long.
//!
//! `config` reads etcd `config/idle/*`, `checks` decides (plain functions), `keys` and
//! `report` hold the Redis state shared with the UI, and `actor` runs it once per cluster.

pub mod actor;
pub mod checks;
pub mod config;
pub mod keys;
pub mod report;

pub use actor::{DEFAULT_CHECK_INTERVAL, IdleChecker, IdleCheckerDeps};
pub use config::{CheckerKind, IdleConfig};
