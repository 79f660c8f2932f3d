//! The messages the session scheduler handles for the façade: enqueueing a session, cancelling a
//! PENDING one, destroying sessions that are past PENDING, fetching a running container's log and
//! killing every session. They live beside the actor that handles them; the façade reaches them
//! through `facade::session::control`.

use actix::Message;
use bai_schema::queries::QueryError;
use bai_schema::queries::session::{NewKernel, NewSession};
use bai_schema::queries::session_enqueue::Enqueued;
use deadpool_postgres::{Pool, PoolError};
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

/// Store a new session and its kernels PENDING and announce `session_enqueued`; a live session
/// of the same name and owner is reported instead (`Enqueued::NameTaken`).
#[derive(Debug, Message)]
#[rtype(result = "Result<Enqueued, QueueError>")]
pub struct EnqueueSession {
    /// The request pool: work done for a request is paid from the requests' connections, so no
    /// flood of creates can starve the scheduler's own pool.
    pub pool: Pool,
    pub session: NewSession,
    pub kernels: Vec<NewKernel>,
}

/// Cancel a PENDING session (compare-and-set) and announce `kernel_cancelled` and
/// `session_cancelled`; `false` when the scheduler took the session meanwhile.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, QueueError>")]
pub struct CancelPendingSession {
    /// The request pool (see [`EnqueueSession::pool`]).
    pub pool: Pool,
    pub session_id: Uuid,
    pub creation_id: Option<String>,
    /// `user-requested` or `force-terminated`.
    pub reason: String,
}

/// Why a session could not enter or leave the PENDING queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A live session holds the name (its creator died before it could be reported).
    #[error("a live session named {0:?} already exists")]
    NameTaken(String),
    /// `agent_list` names an agent that does not exist.
    #[error("No such agent")]
    NoSuchAgent,
    /// The request pool had no connection to spare.
    #[error("no database connection: {0}")]
    Checkout(PoolError),
    #[error(transparent)]
    Query(QueryError),
}
