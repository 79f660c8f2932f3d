//! The statements of the scheduler's reconciler: marking the kernels and sessions of LOST
//! agents, finding sessions stuck in SCHEDULED and kernels stuck starting or terminating (with
//! their agents), and putting a session the agents never started back to SCHEDULED as a
//! compare-and-set on what the reconciler saw. The contexts of their errors are the
//! reconciler's log wording.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};
use crate::enums::{AgentStatus, KernelStatus};

/// Sets `status_info = 'agent-lost'` on the live kernels of LOST agents that do not have it
/// yet; returns how many rows changed.
pub async fn mark_kernels_of_lost_agents(client: &impl GenericClient) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE kernels k SET status_info = 'agent-lost' FROM agents a
              WHERE a.id = k.agent AND a.status = 'LOST'
                AND k.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')
                AND k.status_info IS DISTINCT FROM 'agent-lost'",
            &[],
        )
        .await
        .map_err(db_err("marking kernels of lost agents"))
}

/// Sets `status_info = 'agent-lost'` on the live sessions with such a kernel; returns how many
/// rows changed.
pub async fn mark_sessions_of_lost_agents(client: &impl GenericClient) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE sessions s SET status_info = 'agent-lost'
              WHERE s.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')
                AND s.status_info IS DISTINCT FROM 'agent-lost'
                AND EXISTS (SELECT 1 FROM kernels k WHERE k.session_id = s.id AND k.status_info = 'agent-lost')",
            &[],
        )
        .await
        .map_err(db_err("marking sessions of lost agents"))
}

/// The sessions SCHEDULED since before `cutoff`.
pub async fn stuck_scheduled_sessions(
    client: &impl GenericClient,
    cutoff: DateTime<Utc>,
) -> Result<Vec<Uuid>, QueryError> {
    let rows = client
        .query(
            "SELECT id FROM sessions WHERE status = 'SCHEDULED'
              AND coalesce((status_history ->> 'SCHEDULED')::timestamptz, created_at) < $1",
            &[&cutoff],
        )
        .await
        .map_err(db_err("finding stuck scheduled sessions"))?;
    rows.iter().map(|row| row.read(0)).collect()
}

/// A kernel stuck starting or terminating, with its agent (when it has a row).
#[derive(Debug, Clone, PartialEq)]
pub struct StuckKernelRow {
    pub id: Uuid,
    pub session_id: Uuid,
    pub status: KernelStatus,
    pub status_info: Option<String>,
    /// `status_changed`, else `created_at`.
    pub changed: Option<DateTime<Utc>>,
    pub agent: Option<String>,
    /// The kernel's agent address, else its agent's.
    pub agent_addr: Option<String>,
    pub agent_version: Option<String>,
    pub agent_status: Option<AgentStatus>,
    /// The session's kernels that are not themselves stuck starting.
    pub others_in_session: i64,
    /// `status_data.reconciler.redispatches` of the session (0 when absent).
    pub redispatches: i32,
}

/// The kernels PREPARING, PULLING or BUILDING since before `cutoff`, and those TERMINATING
/// since before `probe_cutoff`, by session, cluster index and id.
pub async fn stuck_kernels(
    client: &impl GenericClient,
    cutoff: DateTime<Utc>,
    probe_cutoff: DateTime<Utc>,
) -> Result<Vec<StuckKernelRow>, QueryError> {
    let rows = client
        .query(
            "SELECT k.id, k.session_id, k.status, k.status_info, coalesce(k.status_changed, k.created_at),
                    k.agent, coalesce(k.agent_addr, a.addr), a.version, a.status,
                    (SELECT count(*) FROM kernels o WHERE o.session_id = k.session_id
                        AND NOT (o.status IN ('PREPARING', 'PULLING', 'BUILDING')
                                 AND coalesce(o.status_changed, o.created_at) < $1)),
                    coalesce((s.status_data -> 'reconciler' ->> 'redispatches')::int, 0)
               FROM kernels k
               JOIN sessions s ON s.id = k.session_id
               LEFT JOIN agents a ON a.id = k.agent
              WHERE (k.status IN ('PREPARING', 'PULLING', 'BUILDING')
                     AND coalesce(k.status_changed, k.created_at) < $1)
                 OR (k.status = 'TERMINATING'
                     AND coalesce(k.status_changed, k.created_at) < $2)
              ORDER BY k.session_id, k.cluster_idx, k.id",
            &[&cutoff, &probe_cutoff],
        )
        .await
        .map_err(db_err("finding stuck kernels"))?;
    rows.iter()
        .map(|row| {
            Ok(StuckKernelRow {
                agent: row.read(5)?,
                agent_addr: row.read(6)?,
                agent_version: row.read(7)?,
                agent_status: row.read(8)?,
                id: row.read(0)?,
                session_id: row.read(1)?,
                status: row.read(2)?,
                status_info: row.read(3)?,
                changed: row.read(4)?,
                others_in_session: row.read(9)?,
                redispatches: row.read(10)?,
            })
        })
        .collect()
}

/// The kernels of a session as the reconciler saw them (parallel lists).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeenKernels {
    pub ids: Vec<Uuid>,
    pub statuses: Vec<KernelStatus>,
    pub status_infos: Vec<Option<String>>,
    /// `status_changed`, else `created_at`.
    pub changed: Vec<Option<DateTime<Utc>>>,
}

/// Moves the kernels still as `seen` (status, `status_info`, changed time) to SCHEDULED at
/// `now`, adding `history`; returns how many rows changed (fewer than seen: something moved
/// one meanwhile).
pub async fn kernels_back_to_scheduled(
    client: &impl GenericClient,
    seen: &SeenKernels,
    now: DateTime<Utc>,
    history: &Value,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE kernels k SET status = 'SCHEDULED', status_info = 'scheduled',
                    status_changed = $5,
                    status_history = coalesce(k.status_history, '{}'::jsonb) || $6::jsonb
               FROM unnest($1::uuid[], $2::kernelstatus[], $3::text[], $4::timestamptz[])
                    AS v(id, status, info, changed)
              WHERE k.id = v.id AND k.status = v.status
                AND k.status_info IS NOT DISTINCT FROM v.info
                AND coalesce(k.status_changed, k.created_at) IS NOT DISTINCT FROM v.changed",
            &[
                &seen.ids,
                &seen.statuses,
                &seen.status_infos,
                &seen.changed,
                &now,
                history,
            ],
        )
        .await
        .map_err(db_err("moving kernels back to SCHEDULED"))
}

/// Moves a PREPARING or PULLING session to SCHEDULED, adding `history` and setting
/// `status_data.reconciler` to `reconciler`; returns how many rows changed.
pub async fn session_back_to_scheduled(
    client: &impl GenericClient,
    session_id: Uuid,
    history: &Value,
    reconciler: &Value,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE sessions SET status = 'SCHEDULED', status_info = 'scheduled',
                    status_history = coalesce(status_history, '{}'::jsonb) || $2::jsonb,
                    status_data = coalesce(status_data, '{}'::jsonb)
                        || jsonb_build_object('reconciler', $3::jsonb)
              WHERE id = $1 AND status IN ('PREPARING', 'PULLING')",
            &[&session_id, history, reconciler],
        )
        .await
        .map_err(db_err("moving a session back to SCHEDULED"))
}
