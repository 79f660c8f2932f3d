//! The PENDING queue's doors: storing a new session and its kernels PENDING (announcing
//! `session_enqueued`), and cancelling a session that is still PENDING (announcing
//! `kernel_cancelled` and `session_cancelled`). The scheduler runs them for the façade
//! (`EnqueueSession`, `CancelPendingSession`), on the connections of the request pool the message
//! brings, so that no flood of requests can starve the scheduler's own pool.

use bai_schema::queries::QueryError;
use bai_schema::queries::session::cancel_pending_session;
use bai_schema::queries::session_enqueue::{Enqueued, enqueue_pending_session};
use chrono::Utc;
use serde_json::Value as JsonValue;
use slog::{Logger, warn};

use super::messages::{CancelPendingSession, EnqueueSession, QueueError};
use crate::wire::{
    Event, EventProducer, KernelEvent, KernelEventKind, SessionEvent, SessionEventKind,
};

/// Stores the session PENDING (or finds the live one that holds its name) and, when it was
/// stored, announces `session_enqueued`.
pub async fn enqueue_session(
    producer: &EventProducer,
    log: &Logger,
    message: EnqueueSession,
) -> Result<Enqueued, QueueError> {
    let mut client = message.pool.get().await.map_err(QueueError::Checkout)?;
    let enqueued =
        enqueue_pending_session(&mut client, &message.session, &message.kernels, Utc::now())
            .await
            .map_err(|error| enqueue_error(error, &message.session.name))?;
    drop(client);
    if enqueued == Enqueued::Created {
        announce(
            producer,
            log,
            Event::Session(SessionEvent {
                kind: SessionEventKind::Enqueued,
                session_id: message.session.id,
                creation_id: Some(message.session.creation_id.clone()),
                reason: String::new(),
                exit_code: None,
            }),
        )
        .await;
    }
    Ok(enqueued)
}

/// What a failed insert means to the requester: the name is held by a session that died before
/// it could be reported, or an agent of `agent_list` does not exist.
fn enqueue_error(error: QueryError, name: &str) -> QueueError {
    if error.is_unique_violation() {
        QueueError::NameTaken(name.to_owned())
    } else if error.is_foreign_key_violation()
        && error.constraint().is_some_and(|c| c.contains("agent"))
    {
        QueueError::NoSuchAgent
    } else {
        QueueError::Query(error)
    }
}

/// PENDING → CANCELLED as a compare-and-set; `Ok(false)` when the scheduler took the session
/// meanwhile (it must then be destroyed the regular way).
pub async fn cancel_pending(
    producer: &EventProducer,
    log: &Logger,
    message: CancelPendingSession,
) -> Result<bool, QueueError> {
    let mut client = message.pool.get().await.map_err(QueueError::Checkout)?;
    let transaction = client.transaction().await.map_err(|source| {
        QueueError::Query(QueryError::Db {
            context: "starting a transaction",
            source,
        })
    })?;
    let cancellation = cancel_pending_session(
        &transaction,
        message.session_id,
        &message.reason,
        Utc::now(),
    )
    .await
    .map_err(QueueError::Query)?;
    transaction.commit().await.map_err(|source| {
        QueueError::Query(QueryError::Db {
            context: "committing the cancellation",
            source,
        })
    })?;
    drop(client);
    if !cancellation.session_cancelled {
        return Ok(false);
    }
    for kernel_id in cancellation.kernel_ids {
        announce(
            producer,
            log,
            Event::Kernel(KernelEvent {
                kind: KernelEventKind::Cancelled,
                kernel_id,
                session_id: message.session_id,
                reason: message.reason.clone(),
                creation_info: JsonValue::Null,
                exit_code: None,
            }),
        )
        .await;
    }
    announce(
        producer,
        log,
        Event::Session(SessionEvent {
            kind: SessionEventKind::Cancelled,
            session_id: message.session_id,
            creation_id: message.creation_id,
            reason: message.reason,
            exit_code: None,
        }),
    )
    .await;
    Ok(true)
}

/// Sends an event; a lost announcement only delays the reaction to it (the scheduler's timer
/// picks the change up), so it is logged, not reported.
async fn announce(producer: &EventProducer, log: &Logger, event: Event) {
    if let Err(error) = producer.produce(&event).await {
        warn!(log, "cannot announce an event; the scheduler's timer will pick the change up";
            "event" => event.name(), "error" => %error);
    }
}
