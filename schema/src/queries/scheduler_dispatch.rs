//! The statements of dispatching a scheduled session: claiming it and its kernels
//! (SCHEDULED → PREPARING as a compare-and-set), reading what the kernels' launch needs,
//! marking the kernels as sent to their agents (a compare-and-set on the claim), and what
//! cancelling a session that failed to start reads and records. They run in the caller's
//! transaction or connection (a `tokio_postgres::GenericClient`); the contexts of their errors
//! are the scheduler's log wording.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// Moves a SCHEDULED session to PREPARING with `status_info`, adding `history`; returns how
/// many rows changed (0: another worker claimed it).
pub async fn claim_session(
    client: &impl GenericClient,
    session_id: Uuid,
    history: &Value,
    status_info: &str,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE sessions SET status = 'PREPARING', status_info = $3,
                    status_history = coalesce(status_history, '{}'::jsonb) || $2::jsonb
              WHERE id = $1 AND status = 'SCHEDULED'",
            &[&session_id, history, &status_info],
        )
        .await
        .map_err(db_err("claiming a scheduled session"))
}

/// Moves the session's SCHEDULED kernels to PREPARING at `now` with `status_info`.
pub async fn claim_kernels(
    client: &impl GenericClient,
    session_id: Uuid,
    now: DateTime<Utc>,
    history: &Value,
    status_info: &str,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE kernels SET status = 'PREPARING', status_info = $4, status_changed = $2,
                status_history = coalesce(status_history, '{}'::jsonb) || $3::jsonb
          WHERE session_id = $1 AND status = 'SCHEDULED'",
            &[&session_id, &now, history, &status_info],
        )
        .await
        .map_err(db_err("moving kernels to PREPARING"))
}

/// A PREPARING kernel with what its launch needs from its agent, image and user.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchRow {
    pub id: Uuid,
    pub session_id: Uuid,
    pub session_type: String,
    pub cluster_mode: String,
    pub cluster_size: i32,
    pub cluster_role: String,
    pub cluster_idx: i32,
    pub local_rank: i32,
    pub cluster_hostname: String,
    /// `''` when the kernel has no image.
    pub image: String,
    pub architecture: String,
    /// `''` when the kernel has no registry.
    pub registry: String,
    pub requested_slots: Option<Value>,
    pub resource_opts: Value,
    pub environ: Vec<String>,
    pub vfolder_mounts: Value,
    pub bootstrap_script: Option<String>,
    pub startup_command: Option<String>,
    pub internal_data: Option<Value>,
    pub preopen_ports: Vec<i32>,
    pub user_uuid: Uuid,
    pub group_id: Option<Uuid>,
    pub agent: String,
    /// The kernel's agent address, else its agent's.
    pub agent_addr: String,
    pub agent_version: String,
    pub scaling_group: String,
    pub image_labels: Option<Value>,
    pub image_project: Option<String>,
    pub image_is_local: Option<bool>,
    pub image_digest: Option<String>,
    pub user_email: Option<String>,
    pub user_full_name: Option<String>,
    /// `''` when the kernel has none.
    pub access_key: String,
    /// `''` when the kernel has none.
    pub session_name: String,
}

/// The PREPARING kernels of `session_ids` to create, by session, cluster index and id.
pub async fn launch_rows(
    client: &impl deadpool_postgres::GenericClient,
    session_ids: &[Uuid],
) -> Result<Vec<LaunchRow>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT k.id, k.session_type, k.cluster_mode, k.cluster_size, k.cluster_role,
                    k.cluster_idx, k.local_rank, k.cluster_hostname, coalesce(k.image, ''),
                    k.architecture, coalesce(k.registry, ''), k.requested_slots,
                    coalesce(k.resource_opts, '{}'::jsonb), coalesce(k.environ, '{}'::text[]),
                    coalesce(k.vfolder_mounts, '[]'::jsonb), k.bootstrap_script, k.startup_command,
                    k.internal_data, coalesce(k.preopen_ports, '{}'::int[]), k.user_uuid, k.group_id,
                    k.agent, coalesce(k.agent_addr, a.addr), a.version, coalesce(k.scaling_group, 'default'),
                    i.labels, i.project, i.is_local, i.config_digest, u.email, u.full_name,
                    coalesce(k.access_key, ''), coalesce(k.session_name, ''), k.session_id
               FROM kernels k
               JOIN agents a ON a.id = k.agent
               LEFT JOIN images i ON i.name = k.image AND i.architecture = k.architecture
               LEFT JOIN users u ON u.uuid = k.user_uuid
              WHERE k.session_id = ANY($1) AND k.status = 'PREPARING'
              ORDER BY k.session_id, k.cluster_idx, k.id",
        )
        .await
        .map_err(db_err("preparing the launch query"))?;
    let rows = client
        .query(&statement, &[&session_ids])
        .await
        .map_err(db_err("reading the kernels to create"))?;
    rows.iter()
        .map(|row| {
            Ok(LaunchRow {
                id: row.read(0)?,
                session_type: row.read(1)?,
                cluster_mode: row.read(2)?,
                cluster_size: row.read(3)?,
                cluster_role: row.read(4)?,
                cluster_idx: row.read(5)?,
                local_rank: row.read(6)?,
                cluster_hostname: row.read(7)?,
                image: row.read(8)?,
                architecture: row.read(9)?,
                registry: row.read(10)?,
                requested_slots: row.read(11)?,
                resource_opts: row.read(12)?,
                environ: row.read(13)?,
                vfolder_mounts: row.read(14)?,
                bootstrap_script: row.read(15)?,
                startup_command: row.read(16)?,
                internal_data: row.read(17)?,
                preopen_ports: row.read(18)?,
                user_uuid: row.read(19)?,
                group_id: row.read(20)?,
                agent: row.read(21)?,
                agent_addr: row.read(22)?,
                agent_version: row.read(23)?,
                scaling_group: row.read(24)?,
                image_labels: row.read(25)?,
                image_project: row.read(26)?,
                image_is_local: row.read(27)?,
                image_digest: row.read(28)?,
                user_email: row.read(29)?,
                user_full_name: row.read(30)?,
                access_key: row.read(31)?,
                session_name: row.read(32)?,
                session_id: row.read(33)?,
            })
        })
        .collect()
}

/// Sets `status_info = sent` on the PREPARING kernels of `session_ids` still `claimed` since
/// `claimed_at` (this claim's `status_changed`); returns the sessions whose kernels it marked,
/// each once (a session left out: the reconciler took its kernels).
pub async fn mark_kernels_sent(
    client: &impl deadpool_postgres::GenericClient,
    session_ids: &[Uuid],
    claimed_at: DateTime<Utc>,
    sent: &str,
    claimed: &str,
) -> Result<Vec<Uuid>, QueryError> {
    let statement = client
        .prepare_cached(
            "UPDATE kernels SET status_info = $3
              WHERE session_id = ANY($1) AND status = 'PREPARING' AND status_info = $4
                AND status_changed = $2
          RETURNING session_id",
        )
        .await
        .map_err(db_err("preparing the sent mark"))?;
    let rows = client
        .query(&statement, &[&session_ids, &claimed_at, &sent, &claimed])
        .await
        .map_err(db_err("marking kernels as sent to their agents"))?;
    let mut marked = rows
        .iter()
        .map(|row| row.read::<_, Uuid>(0))
        .collect::<Result<Vec<_>, _>>()?;
    marked.sort_unstable();
    marked.dedup();
    Ok(marked)
}

/// The distinct agents of a session's kernels (`None` for a kernel without one).
pub async fn session_agents(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<Vec<Option<String>>, QueryError> {
    client
        .query(
            "SELECT DISTINCT agent FROM kernels WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .map_err(db_err("reading a session's agents"))?
        .iter()
        .map(|row| row.read(0))
        .collect()
}

/// The ids of a session's kernels.
pub async fn session_kernel_ids(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<Vec<Uuid>, QueryError> {
    client
        .query(
            "SELECT id FROM kernels WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .map_err(db_err("reading a session's kernels"))?
        .iter()
        .map(|row| row.read(0))
        .collect()
}

/// Replaces a session's `status_data` (why it failed to start).
pub async fn set_session_status_data(
    client: &impl GenericClient,
    session_id: Uuid,
    data: &Value,
) -> Result<u64, QueryError> {
    client
        .execute(
            "UPDATE sessions SET status_data = $2 WHERE id = $1",
            &[&session_id, data],
        )
        .await
        .map_err(db_err("recording why the session failed"))
}
