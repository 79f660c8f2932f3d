//! The seam between the façade and the session scheduler: the scheduler's recipients for the
//! messages it defines (`scheduler::messages`: destroying placed kernels, fetching a running
//! container's logs, killing every session), and how their errors become problems.
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

use actix::Recipient;

use crate::facade::problem::{Problem, ProblemKind};
pub use crate::scheduler::messages::{
    DestroyOutcome, DestroySession, FetchContainerLogs, KillAllSessions, SessionControlError,
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
