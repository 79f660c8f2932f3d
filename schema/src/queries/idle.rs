//! The sessions the idle checker looks at: the main kernel of every RUNNING session, with its
//! keypair's resource policy limits and its owner's creation time (the original's
//! `IdleCheckerHost._do_idle_check` query).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// One running session as the idle checkers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleCandidate {
    pub kernel_id: Uuid,
    pub session_id: Uuid,
    pub access_key: Option<String>,
    /// `INTERACTIVE`, `BATCH` or `INFERENCE`.
    pub session_type: String,
    pub created_at: DateTime<Utc>,
    pub occupied_slots: Value,
    pub cluster_size: i32,
    pub user_created_at: Option<DateTime<Utc>>,
    /// The keypair policy's `idle_timeout` (seconds; negative means "use the checker's").
    pub idle_timeout: i64,
    /// The keypair policy's `max_session_lifetime` (seconds; 0 means none).
    pub max_session_lifetime: i32,
    /// The RUNNING kernels of the session (all of a cluster session's containers).
    pub live_kernel_ids: Vec<Uuid>,
}

/// Every RUNNING session's main kernel, and the database's clock (the checkers measure ages
/// against it, as the original does with `SELECT now()`).
pub async fn idle_candidates(
    client: &impl GenericClient,
) -> Result<(DateTime<Utc>, Vec<IdleCandidate>), QueryError> {
    let now: DateTime<Utc> = client
        .query_one("SELECT now()", &[])
        .await
        .map_err(db_err("reading the database clock"))?
        .read(0)?;
    let rows = client
        .query(
            "SELECT k.id, k.session_id, k.session_type, k.created_at, k.occupied_slots,
                    k.cluster_size, u.created_at, p.idle_timeout, p.max_session_lifetime,
                    ARRAY(SELECT c.id FROM kernels c
                           WHERE c.session_id = k.session_id AND c.status = 'RUNNING'
                           ORDER BY c.cluster_idx, c.id),
                    k.access_key
               FROM kernels k
               JOIN keypairs kp ON kp.access_key = k.access_key
               JOIN keypair_resource_policies p ON p.name = kp.resource_policy
               LEFT JOIN users u ON u.uuid = k.user_uuid
              WHERE k.status = 'RUNNING' AND k.cluster_role = 'main'",
            &[],
        )
        .await
        .map_err(db_err("listing the sessions to check for idleness"))?;
    let candidates = rows
        .iter()
        .map(|row| {
            Ok(IdleCandidate {
                kernel_id: row.read(0)?,
                session_id: row.read(1)?,
                session_type: row.read(2)?,
                created_at: row.read(3)?,
                occupied_slots: row.read(4)?,
                cluster_size: row.read(5)?,
                user_created_at: row.read(6)?,
                idle_timeout: row.read(7)?,
                max_session_lifetime: row.read(8)?,
                live_kernel_ids: row.read(9)?,
                access_key: row.read(10)?,
            })
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    Ok((now, candidates))
}
