//! The messages the session scheduler handles for the façade: destroying sessions that are past
//! PENDING, fetching a running container's log and killing every session. They live beside the
//! actor that handles them; the façade reaches them through `facade::session::control`.

use actix::Message;
use serde_json::Value;
use uuid::Uuid;

/// Destroy a session that is no longer PENDING (`AgentRegistry.destroy_session`): set it
/// TERMINATING, ask the agents to destroy its kernels (or, when `forced`, mark them terminated
/// even if the agents do not answer), and report the main kernel's last statistics.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<DestroyOutcome, SessionControlError>")]
pub struct DestroySession {
    pub session_id: Uuid,
    pub access_key: String,
    pub forced: bool,
    /// `user-requested` or `force-terminated`.
    pub reason: String,
}

/// What `DELETE /session/{name}` replies as `stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct DestroyOutcome {
    /// The main kernel's last statistics (with `"version": 2`), if the agent had any.
    pub main_last_stat: Option<Value>,
}

/// The container log of a kernel that runs on an agent (`get_logs_from_agent`).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<String, SessionControlError>")]
pub struct FetchContainerLogs {
    pub session_id: Uuid,
    pub kernel_id: Uuid,
}

/// Destroy every session (`PUT /manager/status` with `force_kill`).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), SessionControlError>")]
pub struct KillAllSessions;

/// Why the scheduler could not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionControlError {
    /// 403 generic-forbidden, e.g. "Cannot destroy sessions in pulling status".
    #[error("{0}")]
    Forbidden(String),
    /// 404: the session is gone.
    #[error("the session does not exist")]
    NotFound,
    /// 500 kernel-destruction-failed.
    #[error("{0}")]
    AgentFailed(String),
}
