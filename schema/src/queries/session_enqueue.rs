//! Enqueueing a session, idempotent by name: the session and its kernels are stored PENDING in
//! one transaction, or, when a live session of the same name and owner exists (also one that a
//! concurrent request stored a moment ago), that one is reported instead. The database decides
//! the race through `ix_kernels_unique_sess_token`, so any number of concurrent creates with one
//! name end with one session.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use uuid::Uuid;

use super::QueryError;
use super::session::{NewKernel, NewSession, find_live_session_by_name, insert_pending_session};
use crate::enums::SessionStatus;

/// A live session already holding the requested name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingSession {
    pub id: Uuid,
    pub status: SessionStatus,
    /// Its images, the main kernel's first.
    pub images: Vec<String>,
}

/// What [`enqueue_pending_session`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The new session is stored (committed).
    Created,
    /// Nothing was stored: this live session has the name.
    NameTaken(ExistingSession),
}

/// The live session of `access_key` named `name`, if any.
pub async fn find_existing_session(
    client: &Object,
    name: &str,
    access_key: &str,
) -> Result<Option<ExistingSession>, QueryError> {
    Ok(find_live_session_by_name(client, name, access_key)
        .await?
        .map(|(id, status, images)| ExistingSession { id, status, images }))
}

/// Stores `session` and its `kernels` PENDING and commits, unless a live session of the same
/// name and access key exists: then nothing is stored and that session is returned. A unique
/// violation means a concurrent create won the name; its row is committed by the time the
/// violation is reported, so it is looked up and returned.
pub async fn enqueue_pending_session(
    client: &mut Object,
    session: &NewSession,
    kernels: &[NewKernel],
    now: DateTime<Utc>,
) -> Result<Enqueued, QueryError> {
    let transaction = client
        .transaction()
        .await
        .map_err(super::db_err("starting the session transaction"))?;
    match insert_pending_session(&transaction, session, kernels, now).await {
        Ok(()) => {
            transaction
                .commit()
                .await
                .map_err(super::db_err("committing the session"))?;
            Ok(Enqueued::Created)
        }
        Err(error) if error.is_unique_violation() => {
            drop(transaction);
            let winner =
                find_existing_session(&*client, &session.name, &session.access_key).await?;
            match winner {
                Some(existing) => Ok(Enqueued::NameTaken(existing)),
                // The winner died between its commit and our lookup: report the violation,
                // the client may simply retry.
                None => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}
