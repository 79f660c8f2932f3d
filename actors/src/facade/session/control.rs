//! The seam between the façade and the session scheduler: the scheduler's recipients for the
//! messages it defines (`scheduler::messages`: enqueueing and cancelling PENDING sessions,
//! destroying placed kernels, fetching a running container's logs, killing every session), and
//! how their errors become problems.
//!
//! The scheduler registers its addresses once per worker, in `start_actors`:
//!
//! ```ignore
//! extensions.add(web::Data::new(SessionQueue {
//!     enqueue: scheduler.clone().recipient(),
//!     cancel: scheduler.clone().recipient(),
//! }));
//! extensions.add(web::Data::new(SessionControl {
//!     destroy: scheduler.clone().recipient(),
//!     logs: scheduler.clone().recipient(),
//!     kill_all: scheduler.recipient(),
//! }));
//! ```
//! Until then, the routes answer 503 `not-implemented`.

use actix::Recipient;

use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::routes::{checkout_failed, query_failed};
use crate::facade::state::AppState;
pub use crate::scheduler::messages::{
    CancelPendingSession, DestroyOutcome, DestroySession, EnqueueSession, FetchContainerLogs,
    KillAllSessions, QueueError, SessionControlError,
};

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

/// The problem for a session that could not enter or leave the PENDING queue; `doing` names
/// the step for the log of a failed query.
pub fn queue_problem(state: &AppState, doing: &'static str, error: QueueError) -> Problem {
    match error {
        QueueError::NameTaken(name) => Problem::new(ProblemKind::SessionAlreadyExists)
            .with_msg(format!("a live session named {name:?} already exists")),
        QueueError::NoSuchAgent => Problem::invalid_params("No such agent"),
        QueueError::Checkout(error) => checkout_failed(state, &error),
        QueueError::Query(error) => query_failed(state, doing)(error),
    }
}

/// The scheduler's doors to the PENDING queue, as handlers find them
/// (`web::Data<SessionQueue>`).
#[derive(Clone)]
pub struct SessionQueue {
    pub enqueue: Recipient<EnqueueSession>,
    pub cancel: Recipient<CancelPendingSession>,
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
