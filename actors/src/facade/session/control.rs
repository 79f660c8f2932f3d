//! The seam between the façade and the session scheduler. The façade creates PENDING
//! sessions and cancels ones still PENDING on its own; everything that needs an agent (destroying
//! placed kernels, fetching a running container's logs, killing every session) it asks of the
//! scheduler through these messages.
//!
//! The scheduler registers its addresses once per worker, in `start_actors`:
//!
//! ```ignore
//! extensions.add(web::Data::new(SessionControl {
//!     destroy: scheduler.clone().recipient(),
//!     logs: scheduler.clone().recipient(),
//!     kill_all: scheduler.recipient(),
//! }));
//! ```
//! Until then, the routes answer 503 `not-implemented` for sessions that are past PENDING.

use actix::{Message, Recipient};
use serde_json::Value;
use uuid::Uuid;

use crate::facade::problem::{Problem, ProblemKind};

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

impl From<SessionControlError> for Problem {
    fn from(error: SessionControlError) -> Problem {
        match error {
            SessionControlError::Forbidden(msg) => {
                Problem::new(ProblemKind::GenericForbidden).with_msg(msg)
            }
            SessionControlError::NotFound => Problem::not_found("session"),
            SessionControlError::AgentFailed(msg) => {
                Problem::new(ProblemKind::KernelDestructionFailed).with_msg(msg)
            }
        }
    }
}

/// The scheduler's recipients, as handlers find them (`web::Data<SessionControl>`).
#[derive(Clone)]
pub struct SessionControl {
    pub destroy: Recipient<DestroySession>,
    pub logs: Recipient<FetchContainerLogs>,
    pub kill_all: Recipient<KillAllSessions>,
}

/// The reply when the scheduler is not wired in.
pub fn scheduler_missing(what: &str) -> Problem {
    Problem::new(ProblemKind::QueryNotImplemented).with_msg(format!(
        "{what} needs the session scheduler, which is not running"
    ))
}

/// The reply when the scheduler's mailbox failed (it restarted mid-request).
pub fn scheduler_unreachable(error: actix::MailboxError) -> Problem {
    Problem::new(ProblemKind::ServiceUnavailable)
        .with_msg(format!("the session scheduler did not answer: {error}"))
}
