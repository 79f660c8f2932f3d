//! Waiting for a session's end, so its open streams close (the original cancels them on
//! `KernelTerminatingEvent`): a future on the worker's event feed that completes when the
//! session's kernel starts terminating or the session is terminated, or when the worker
//! starts to stop.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::event_bus::session_feed::SessionEventRecord;

/// The events after which a kernel's streams have nothing left to talk to.
pub const ENDING_EVENTS: [&str; 4] = [
    "kernel_terminating",
    "kernel_terminated",
    "session_terminated",
    "kernel_cancelled",
];

/// Whether `record` ends the streams of `kernel_id` in `session_id`.
pub fn ends_streams(record: &SessionEventRecord, session_id: Uuid, kernel_id: Uuid) -> bool {
    if !ENDING_EVENTS.contains(&record.name.as_str()) {
        return false;
    }
    if record.name.starts_with("session_") {
        record.subject.session_id == session_id
    } else {
        record.subject.kernel_id == kernel_id
    }
}

/// Why a stream stops before either side closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStop {
    /// The session (or its kernel) ended.
    SessionEnded,
    /// The worker is stopping (SIGTERM).
    ManagerStopping,
}

impl StreamStop {
    /// The close frame's text; both close with 1001 (going away).
    pub fn description(self) -> &'static str {
        match self {
            StreamStop::SessionEnded => "the session was terminated",
            StreamStop::ManagerStopping => "the manager is shutting down",
        }
    }

    /// The close frame every stream sends for this stop: 1001 with [`Self::description`].
    pub fn close_reason(self) -> actix_ws::CloseReason {
        actix_ws::CloseReason {
            code: actix_ws::CloseCode::Away,
            description: Some(self.description().to_owned()),
        }
    }
}

/// Completes when the session ends or the worker starts to stop.
pub async fn stream_stop(
    events: broadcast::Receiver<Arc<SessionEventRecord>>,
    session_id: Uuid,
    kernel_id: Uuid,
    stopping: CancellationToken,
) -> StreamStop {
    tokio::select! {
        () = session_ended(events, session_id, kernel_id) => StreamStop::SessionEnded,
        () = stopping.cancelled() => StreamStop::ManagerStopping,
    }
}

/// Completes when the session ends. A lagging receiver (a burst of other sessions' events)
/// keeps waiting; a feed that stops never completes, so the stream lives on as before.
pub async fn session_ended(
    mut events: broadcast::Receiver<Arc<SessionEventRecord>>,
    session_id: Uuid,
    kernel_id: Uuid,
) {
    loop {
        match events.recv().await {
            Ok(record) if ends_streams(&record, session_id, kernel_id) => return,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bai_schema::queries::session::EventSubject;

    fn record(name: &str, session: u128, kernel: u128) -> SessionEventRecord {
        SessionEventRecord {
            name: name.into(),
            reason: String::new(),
            exit_code: None,
            subject: EventSubject {
                session_id: Uuid::from_u128(session),
                session_name: "s".into(),
                access_key: None,
                domain_name: "default".into(),
                group_id: Uuid::nil(),
                user_uuid: Uuid::nil(),
                kernel_id: Uuid::from_u128(kernel),
                cluster_role: None,
                cluster_idx: None,
            },
        }
    }

    #[test]
    fn only_the_end_of_this_session_ends_its_streams() {
        let (session, kernel) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(ends_streams(
            &record("kernel_terminating", 1, 2),
            session,
            kernel
        ));
        assert!(ends_streams(
            &record("session_terminated", 1, 9),
            session,
            kernel
        ));
        assert!(!ends_streams(
            &record("kernel_terminating", 1, 3),
            session,
            kernel
        ));
        assert!(!ends_streams(
            &record("kernel_started", 1, 2),
            session,
            kernel
        ));
        assert!(!ends_streams(
            &record("session_terminated", 5, 2),
            session,
            kernel
        ));
    }
}
