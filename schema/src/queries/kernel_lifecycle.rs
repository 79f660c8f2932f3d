//! The statements of the session lifecycle after placement: a kernel's conditional status
//! transition (with the columns its start reports), an agent's occupied slots recomputed from
//! its kernels with its row locked, and a session's status stored after it was re-derived from
//! its kernels. They run in the caller's transaction (a `deadpool_postgres::GenericClient`, for
//! its cache of prepared statements: these run a few times per session, and planning each
//! afresh cost PostgreSQL more than running it); the contexts of their errors are the
//! scheduler's log wording. Which statuses a transition may
//! leave and which status a session derives are decided by the scheduler, not here.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};
use crate::enums::{KernelStatus, SessionStatus};

/// Columns a transition may also set (from `kernel_started.creation_info` or the RPC reply);
/// `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelColumns {
    pub container_id: Option<String>,
    pub kernel_host: Option<String>,
    pub repl_in_port: Option<i32>,
    pub repl_out_port: Option<i32>,
    pub stdin_port: Option<i32>,
    pub stdout_port: Option<i32>,
    pub service_ports: Option<Value>,
    pub attached_devices: Option<Value>,
    pub status_data: Option<Value>,
    /// The container's log, kept when the kernel is destroyed. It is set by the transition's
    /// own statement: a second `UPDATE` of the row in the same transaction would re-check the
    /// row's foreign key to its agent (the row is then the transaction's own), taking a lock
    /// on the agent that the event batches take first, in the other order.
    pub container_log: Option<Vec<u8>>,
}

/// A kernel's status change as the scheduler decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelStatusChange<'a> {
    pub kernel_id: Uuid,
    pub to: KernelStatus,
    pub reason: &'a str,
    pub now: DateTime<Utc>,
    /// Merged into `status_history`.
    pub history: &'a Value,
    /// Sets `terminated_at` to `now`.
    pub terminal: bool,
    /// The statuses the kernel may be in for the change to apply.
    pub sources: &'a [KernelStatus],
}

/// The session and agent of a kernel that changed.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitedKernel {
    pub session_id: Uuid,
    pub agent: Option<String>,
}

/// Moves a kernel to `change.to` if it is in one of `change.sources`, setting the `extra`
/// columns that are not `None`; `None` when nothing changed.
pub async fn transit_kernel(
    client: &impl GenericClient,
    change: &KernelStatusChange<'_>,
    extra: &KernelColumns,
) -> Result<Option<TransitedKernel>, QueryError> {
    let statement = client
        .prepare_cached(
            "UPDATE kernels SET status = $2, status_info = $3, status_changed = $4,
                    status_history = coalesce(status_history, '{}'::jsonb) || $5::jsonb,
                    terminated_at = CASE WHEN $6 THEN $4 ELSE terminated_at END,
                    container_id = coalesce($8, container_id),
                    kernel_host = coalesce($9, kernel_host),
                    repl_in_port = coalesce($10, repl_in_port),
                    repl_out_port = coalesce($11, repl_out_port),
                    stdin_port = coalesce($12, stdin_port),
                    stdout_port = coalesce($13, stdout_port),
                    service_ports = coalesce($14, service_ports),
                    attached_devices = coalesce($15, attached_devices),
                    status_data = coalesce($16, status_data),
                    container_log = coalesce($17, container_log)
              WHERE id = $1 AND status = ANY($7)
              RETURNING session_id, agent",
        )
        .await
        .map_err(db_err("preparing a lifecycle statement"))?;
    let row = client
        .query_opt(
            &statement,
            &[
                &change.kernel_id,
                &change.to,
                &change.reason,
                &change.now,
                change.history,
                &change.terminal,
                &change.sources,
                &extra.container_id,
                &extra.kernel_host,
                &extra.repl_in_port,
                &extra.repl_out_port,
                &extra.stdin_port,
                &extra.stdout_port,
                &extra.service_ports,
                &extra.attached_devices,
                &extra.status_data,
                &extra.container_log,
            ],
        )
        .await
        .map_err(db_err("updating a kernel's status"))?;
    row.map(|row| {
        Ok(TransitedKernel {
            session_id: row.read(0)?,
            agent: row.read(1)?,
        })
    })
    .transpose()
}

/// Locks an agent's row until the transaction ends.
pub async fn lock_agent(client: &impl GenericClient, agent: &str) -> Result<u64, QueryError> {
    client
        .execute("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE", &[&agent])
        .await
        .map_err(db_err("locking an agent"))
}

/// Locks the agent's row, then recomputes its occupied slots from its kernels that occupy it
/// (all but PENDING, TERMINATED, CANCELLED): two statements, in this order.
pub async fn recalc_agent_occupancy(
    client: &impl GenericClient,
    agent: &str,
) -> Result<(), QueryError> {
    lock_agent(client, agent).await?;
    let statement = client
        .prepare_cached(
            "UPDATE agents a SET occupied_slots = coalesce((
                SELECT jsonb_object_agg(t.key, trim_scale(t.total)::text) FROM (
                    SELECT s.key, sum(s.value::numeric) AS total
                      FROM kernels k, jsonb_each_text(k.occupied_slots) s
                     WHERE k.agent = a.id AND k.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')
                       AND s.value ~ '^-?[0-9.]+$'
                     GROUP BY s.key) t), '{}'::jsonb)
              WHERE a.id = $1",
        )
        .await
        .map_err(db_err("preparing a lifecycle statement"))?;
    client
        .execute(&statement, &[&agent])
        .await
        .map_err(db_err("recomputing an agent's occupied slots"))?;
    Ok(())
}

/// A session's status and creation id (`''` when it has none).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStatusRow {
    pub status: SessionStatus,
    pub creation_id: String,
}

/// Locks a session's row and reads its status; `None` when there is no such session.
pub async fn lock_session(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<Option<SessionStatusRow>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT status, coalesce(creation_id, '') FROM sessions WHERE id = $1 FOR UPDATE",
        )
        .await
        .map_err(db_err("preparing a lifecycle statement"))?;
    let row = client
        .query_opt(&statement, &[&session_id])
        .await
        .map_err(db_err("locking a session"))?;
    row.map(|row| {
        Ok(SessionStatusRow {
            status: row.read(0)?,
            creation_id: row.read(1)?,
        })
    })
    .transpose()
}

/// The statuses of a session's kernels.
pub async fn session_kernel_statuses(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<Vec<KernelStatus>, QueryError> {
    let statement = client
        .prepare_cached("SELECT status FROM kernels WHERE session_id = $1")
        .await
        .map_err(db_err("preparing a lifecycle statement"))?;
    client
        .query(&statement, &[&session_id])
        .await
        .map_err(db_err("reading a session's kernels"))?
        .iter()
        .map(|row| row.read(0))
        .collect()
}

/// A session's status change as the scheduler derived it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStatusChange<'a> {
    pub session_id: Uuid,
    pub to: SessionStatus,
    pub reason: &'a str,
    /// Merged into `status_history`.
    pub history: &'a Value,
    /// Sets `terminated_at` to `now`.
    pub terminal: bool,
    pub now: DateTime<Utc>,
    /// Recomputes `occupying_slots` from the session's kernels.
    pub recompute_occupying: bool,
}

/// Stores a session's new status.
pub async fn set_session_status(
    client: &impl GenericClient,
    change: &SessionStatusChange<'_>,
) -> Result<(), QueryError> {
    let statement = client
        .prepare_cached(
            "UPDATE sessions s SET status = $2, status_info = $3,
                    status_history = coalesce(s.status_history, '{}'::jsonb) || $4::jsonb,
                    terminated_at = CASE WHEN $5 THEN $6 ELSE s.terminated_at END,
                    occupying_slots = CASE WHEN $7 THEN coalesce((
                        SELECT jsonb_object_agg(t.key, trim_scale(t.total)::text) FROM (
                            SELECT e.key, sum(e.value::numeric) AS total
                              FROM kernels k, jsonb_each_text(k.occupied_slots) e
                             WHERE k.session_id = s.id AND e.value ~ '^-?[0-9.]+$'
                             GROUP BY e.key) t), '{}'::jsonb)
                        ELSE s.occupying_slots END
              WHERE s.id = $1",
        )
        .await
        .map_err(db_err("preparing a lifecycle statement"))?;
    client
        .execute(
            &statement,
            &[
                &change.session_id,
                &change.to,
                &change.reason,
                change.history,
                &change.terminal,
                &change.now,
                &change.recompute_occupying,
            ],
        )
        .await
        .map_err(db_err("updating a session's status"))?;
    Ok(())
}

/// Locks the agents of `kernel_ids` in id order (the order the reservation locks them in).
pub async fn lock_agents_of_kernels(
    client: &impl GenericClient,
    kernel_ids: &[Uuid],
) -> Result<u64, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT a.id FROM agents a
              WHERE a.id IN (SELECT k.agent FROM kernels k WHERE k.id = ANY($1))
              ORDER BY a.id FOR UPDATE OF a",
        )
        .await
        .map_err(db_err("preparing a lifecycle statement"))?;
    client
        .execute(&statement, &[&kernel_ids])
        .await
        .map_err(db_err("locking the agents of ending kernels"))
}

/// A session's status and creation id (`''` when it has none), without locking its row;
/// `None` when there is no such session.
pub async fn session_status(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<Option<SessionStatusRow>, QueryError> {
    let statement = client
        .prepare_cached("SELECT status, coalesce(creation_id, '') FROM sessions WHERE id = $1")
        .await
        .map_err(db_err("preparing a lifecycle statement"))?;
    let row = client
        .query_opt(&statement, &[&session_id])
        .await
        .map_err(db_err("reading a session"))?;
    row.map(|row| {
        Ok(SessionStatusRow {
            status: row.read(0)?,
            creation_id: row.read(1)?,
        })
    })
    .transpose()
}
