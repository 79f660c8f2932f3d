//! Usage statistics: the kernels that existed in a period (with their project, owner and
//! last statistics) for `/resource/usage/*`, and the kernels terminated in the last month for
//! the time-binned `/resource/stats/*/month`.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use super::{QueryError, db_err};

/// A kernel as the usage reports read it.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageKernel {
    pub id: Uuid,
    pub container_id: Option<String>,
    pub session_id: Uuid,
    pub session_name: Option<String>,
    pub access_key: Option<String>,
    pub agent: Option<String>,
    pub domain_name: String,
    pub group_id: Uuid,
    pub attached_devices: Option<Value>,
    pub occupied_slots: Value,
    pub resource_opts: Option<Value>,
    pub vfolder_mounts: Option<Value>,
    pub image: Option<String>,
    pub status: String,
    pub status_info: Option<String>,
    pub status_changed: Option<DateTime<Utc>>,
    pub last_stat: Option<Value>,
    pub status_history: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub terminated_at: Option<DateTime<Utc>>,
    pub cluster_mode: String,
    pub group_name: String,
    pub email: String,
    pub full_name: Option<String>,
}

const PERIOD_SQL: &str = "
SELECT k.id, k.container_id, k.session_id, k.session_name, k.access_key, k.agent,
       k.domain_name, k.group_id, k.attached_devices, k.occupied_slots, k.resource_opts,
       k.vfolder_mounts, k.image, k.status::text, k.status_info, k.status_changed,
       k.last_stat, k.status_history, k.created_at, k.terminated_at, k.cluster_mode,
       g.name, u.email, u.full_name
FROM kernels k JOIN groups g ON g.id = k.group_id JOIN users u ON u.uuid = k.user_uuid
WHERE ((k.terminated_at >= $1 AND k.created_at < $2
        AND k.status IN ('TERMINATED', 'RESTARTING'))
       OR (k.created_at < $2 AND k.status = 'RUNNING'))
  AND ($3::uuid[] IS NULL OR k.group_id = ANY($3))
ORDER BY k.terminated_at ASC NULLS LAST, k.id
";

/// The kernels terminated in `[start, end)` or running and created before `end` (the
/// original's `get_container_stats_for_period`), optionally of some projects only.
pub async fn kernels_in_period(
    client: &impl GenericClient,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    groups: Option<&[Uuid]>,
) -> Result<Vec<UsageKernel>, QueryError> {
    let statement = client
        .prepare_cached(PERIOD_SQL)
        .await
        .map_err(db_err("preparing the usage query"))?;
    let groups: Option<Vec<Uuid>> = groups.map(<[Uuid]>::to_vec);
    let rows = client
        .query(&statement, &[&start, &end, &groups])
        .await
        .map_err(db_err("listing the kernels of a period"))?;
    rows.iter()
        .map(|row| {
            Ok(UsageKernel {
                id: row.try_get(0)?,
                container_id: row.try_get(1)?,
                session_id: row.try_get(2)?,
                session_name: row.try_get(3)?,
                access_key: row.try_get(4)?,
                agent: row.try_get(5)?,
                domain_name: row.try_get(6)?,
                group_id: row.try_get(7)?,
                attached_devices: row.try_get(8)?,
                occupied_slots: row.try_get(9)?,
                resource_opts: row.try_get(10)?,
                vfolder_mounts: row.try_get(11)?,
                image: row.try_get(12)?,
                status: row.try_get(13)?,
                status_info: row.try_get(14)?,
                status_changed: row.try_get(15)?,
                last_stat: row.try_get(16)?,
                status_history: row.try_get(17)?,
                created_at: row.try_get(18)?,
                terminated_at: row.try_get(19)?,
                cluster_mode: row.try_get(20)?,
                group_name: row.try_get(21)?,
                email: row.try_get(22)?,
                full_name: row.try_get(23)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(db_err("reading the kernels of a period"))
}

/// A terminated kernel for the time-binned statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct BinnedKernel {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub terminated_at: DateTime<Utc>,
    pub occupied_slots: Value,
    pub last_stat: Option<Value>,
}

/// The kernels terminated since `since` (of `user` only, when given), oldest first.
pub async fn kernels_terminated_since(
    client: &impl GenericClient,
    since: DateTime<Utc>,
    user: Option<Uuid>,
) -> Result<Vec<BinnedKernel>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT id, created_at, terminated_at, occupied_slots, last_stat FROM kernels \
             WHERE terminated_at >= $1 AND status IN ('TERMINATED', 'RESTARTING') \
               AND ($2::uuid IS NULL OR user_uuid = $2) \
             ORDER BY created_at, id",
        )
        .await
        .map_err(db_err("preparing the monthly statistics query"))?;
    let rows = client
        .query(&statement, &[&since, &user])
        .await
        .map_err(db_err("listing the kernels of the last month"))?;
    rows.iter()
        .map(|row| {
            Ok(BinnedKernel {
                id: row.try_get(0)?,
                created_at: row.try_get(1)?,
                terminated_at: row.try_get(2)?,
                occupied_slots: row.try_get(3)?,
                last_stat: row.try_get(4)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(db_err("reading the kernels of the last month"))
}

/// Stores the last statistics of kernel `id` (kept from Redis when it terminates).
pub async fn set_last_stat(
    client: &impl GenericClient,
    id: Uuid,
    stat: &Value,
) -> Result<(), QueryError> {
    client
        .execute(
            "UPDATE kernels SET last_stat = $2 WHERE id = $1",
            &[&id, &stat],
        )
        .await
        .map_err(db_err("storing a kernel's last statistics"))?;
    Ok(())
}

/// Every agent's id, for a full recount of occupied slots.
pub async fn agent_ids(client: &impl GenericClient) -> Result<Vec<String>, QueryError> {
    let rows = client
        .query("SELECT id FROM agents ORDER BY id", &[])
        .await
        .map_err(db_err("listing agents"))?;
    rows.iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(db_err("reading agent ids"))
}
