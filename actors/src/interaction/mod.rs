//! Using a running session: execute code, interrupt, complete, restart, move files, read logs,
//! commit, rename. The façade parses a request and calls [`SessionInteraction`]; this module
//! finds the session's main kernel (SQL in `bai_schema::queries::interaction`), checks that the
//! session can take the call, and makes the agent RPC. Decisions are plain functions
//! ([`target::ready_target`], [`execute::ExecuteRequest::parse`], [`execute::execute_result`])
//! tested without I/O.

pub mod app_connections;
pub mod app_proxy;
pub mod apps;
pub mod error;
pub mod execute;
pub mod pty;
pub mod restarted;
pub mod service;
pub mod stdin_publisher;
pub mod stream_gc;
pub mod target;

pub use error::InteractionError;
pub use service::SessionInteraction;
