//! Where agent state lives: the `agents` table (PostgreSQL), `agent.last_seen` (Redis db 2),
//! the per-image agent sets (Redis db 3) and the slot types in etcd.

use bai_schema::ResourceSlot;
use bai_schema::enums::AgentStatus;
use deadpool_postgres::Pool;
use redis::aio::ConnectionManager;
use tokio_postgres::error::SqlState;

use super::decide::AgentSnapshot;
use crate::wire::{AgentImage, AgentInfo};

/// The hash in db 2 of agent id → unix time (float seconds) of its last heartbeat.
pub const LAST_SEEN_KEY: &str = "agent.last_seen";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("agent {agent} names scaling group {scaling_group:?}, which does not exist")]
    UnknownScalingGroup {
        agent: String,
        scaling_group: String,
    },
    #[error("agents row {agent}: {detail}")]
    BadRow { agent: String, detail: String },
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(transparent)]
    Fence(#[from] crate::lock::FenceError),
}

const SNAPSHOT_COLUMNS: &str = "id, status, scaling_group, available_slots, addr, public_host, \
     public_key, version, compute_plugins, architecture, auto_terminate_abusing_kernel";

fn snapshot_from_row(row: &tokio_postgres::Row) -> Result<(String, AgentSnapshot), StoreError> {
    let id: String = row.try_get("id")?;
    let slots: serde_json::Value = row.try_get("available_slots")?;
    let available_slots = ResourceSlot::from_json(&slots).map_err(|error| StoreError::BadRow {
        agent: id.clone(),
        detail: error.to_string(),
    })?;
    Ok((
        id,
        AgentSnapshot {
            status: row.try_get("status")?,
            scaling_group: row.try_get("scaling_group")?,
            available_slots,
            addr: row.try_get("addr")?,
            public_host: row.try_get("public_host")?,
            public_key: row.try_get("public_key")?,
            version: row.try_get("version")?,
            compute_plugins: row.try_get("compute_plugins")?,
            architecture: row.try_get("architecture")?,
            auto_terminate_abusing_kernel: row.try_get("auto_terminate_abusing_kernel")?,
        },
    ))
}

/// Every agent's snapshot (to warm the tracker's cache at start).
pub async fn load_all(pool: &Pool) -> Result<Vec<(String, AgentSnapshot)>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(&format!("SELECT {SNAPSHOT_COLUMNS} FROM agents"), &[])
        .await?;
    rows.iter().map(snapshot_from_row).collect()
}

/// The snapshots of these agents (those that have a row).
pub async fn load_some(
    pool: &Pool,
    ids: &[String],
) -> Result<Vec<(String, AgentSnapshot)>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM agents WHERE id = ANY($1)"),
            &[&ids],
        )
        .await?;
    rows.iter().map(snapshot_from_row).collect()
}

/// What a locked write did.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    Inserted,
    Revived,
    Updated(Vec<&'static str>),
    Unchanged,
    LeftRestarting,
}

fn is_unknown_scaling_group(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
}

/// Applies one heartbeat under `SELECT ... FOR UPDATE`, deciding on the locked row.
pub async fn apply_heartbeat(
    pool: &Pool,
    agent: &str,
    info: &AgentInfo,
) -> Result<(WriteOutcome, AgentSnapshot), StoreError> {
    use super::decide::{HeartbeatDecision, decide_heartbeat};
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let locked = transaction
        .query_opt(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM agents WHERE id = $1 FOR UPDATE"),
            &[&agent],
        )
        .await?;
    let row = locked
        .as_ref()
        .map(snapshot_from_row)
        .transpose()?
        .map(|(_, row)| row);
    let wanted = AgentSnapshot::alive_from(info);
    let slots = info.available_slots.to_json();
    let outcome = match decide_heartbeat(row.as_ref(), info) {
        HeartbeatDecision::Unchanged => {
            return Ok((WriteOutcome::Unchanged, row.unwrap_or(wanted)));
        }
        HeartbeatDecision::LeaveRestarting => {
            return Ok((WriteOutcome::LeftRestarting, row.unwrap_or(wanted)));
        }
        HeartbeatDecision::Insert => {
            transaction
                .execute(
                    "INSERT INTO agents (id, status, status_changed, region, scaling_group, \
                     schedulable, available_slots, occupied_slots, addr, public_host, public_key, \
                     first_contact, lost_at, version, architecture, compute_plugins, \
                     auto_terminate_abusing_kernel) \
                     VALUES ($1, 'ALIVE', now(), $2, $3, true, $4, '{}', $5, $6, $7, now(), NULL, \
                     $8, $9, $10, $11)",
                    &[
                        &agent,
                        &info.region,
                        &info.scaling_group,
                        &slots,
                        &info.addr,
                        &info.public_host,
                        &info.public_key,
                        &info.version,
                        &info.architecture,
                        &info.compute_plugins,
                        &info.auto_terminate_abusing_kernel,
                    ],
                )
                .await
                .map_err(|error| map_fk(error, agent, info))?;
            WriteOutcome::Inserted
        }
        HeartbeatDecision::Revive => {
            transaction
                .execute(
                    "UPDATE agents SET status = 'ALIVE', status_changed = now(), lost_at = NULL, \
                     region = $2, scaling_group = $3, available_slots = $4, addr = $5, \
                     public_host = $6, public_key = $7, version = $8, architecture = $9, \
                     compute_plugins = $10, auto_terminate_abusing_kernel = $11 WHERE id = $1",
                    &[
                        &agent,
                        &info.region,
                        &info.scaling_group,
                        &slots,
                        &info.addr,
                        &info.public_host,
                        &info.public_key,
                        &info.version,
                        &info.architecture,
                        &info.compute_plugins,
                        &info.auto_terminate_abusing_kernel,
                    ],
                )
                .await
                .map_err(|error| map_fk(error, agent, info))?;
            WriteOutcome::Revived
        }
        HeartbeatDecision::Update(columns) => {
            transaction
                .execute(
                    "UPDATE agents SET scaling_group = $2, available_slots = $3, addr = $4, \
                     public_host = $5, public_key = $6, version = $7, architecture = $8, \
                     compute_plugins = $9, auto_terminate_abusing_kernel = $10 WHERE id = $1",
                    &[
                        &agent,
                        &info.scaling_group,
                        &slots,
                        &info.addr,
                        &info.public_host,
                        &info.public_key,
                        &info.version,
                        &info.architecture,
                        &info.compute_plugins,
                        &info.auto_terminate_abusing_kernel,
                    ],
                )
                .await
                .map_err(|error| map_fk(error, agent, info))?;
            WriteOutcome::Updated(columns)
        }
    };
    transaction.commit().await?;
    Ok((outcome, wanted))
}

fn map_fk(error: tokio_postgres::Error, agent: &str, info: &AgentInfo) -> StoreError {
    if is_unknown_scaling_group(&error) {
        StoreError::UnknownScalingGroup {
            agent: agent.to_owned(),
            scaling_group: info.scaling_group.clone(),
        }
    } else {
        StoreError::Db(error)
    }
}

/// Marks an agent LOST, TERMINATED or RESTARTING; returns whether the row changed. LOST and
/// TERMINATED only apply to an agent that is neither already.
pub async fn mark_terminated(
    pool: &Pool,
    agent: &str,
    status: AgentStatus,
) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let changed = match status {
        AgentStatus::Restarting => {
            client
                .execute(
                    "UPDATE agents SET status = 'RESTARTING', status_changed = now() \
                     WHERE id = $1 AND status <> 'RESTARTING'",
                    &[&agent],
                )
                .await?
        }
        _ => {
            client
                .execute(
                    "UPDATE agents SET status = $2, status_changed = now(), lost_at = now() \
                     WHERE id = $1 AND status NOT IN ('LOST', 'TERMINATED')",
                    &[&agent, &status],
                )
                .await?
        }
    };
    Ok(changed > 0)
}

/// `agent_started`: a RESTARTING agent is ALIVE again. A LOST or TERMINATED one is left to
/// its next heartbeat (sent right after), which revives it with every field refreshed and
/// `lost_at` cleared; the original set only the status here and kept a stale `lost_at`.
pub async fn mark_started(pool: &Pool, agent: &str) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let changed = client
        .execute(
            "UPDATE agents SET status = 'ALIVE', status_changed = now() \
             WHERE id = $1 AND status = 'RESTARTING'",
            &[&agent],
        )
        .await?;
    Ok(changed > 0)
}

/// HSETs every agent's last-seen time in one round trip; returns, per agent, whether the
/// agent was absent from the hash (first contact, or marked lost/terminated since).
pub async fn touch_last_seen(
    live: &mut ConnectionManager,
    agents: &[(&str, f64)],
) -> Result<Vec<bool>, StoreError> {
    let mut pipe = redis::pipe();
    for (agent, seen) in agents {
        pipe.hset(LAST_SEEN_KEY, *agent, *seen);
    }
    let added: Vec<i64> = pipe.query_async(live).await?;
    Ok(added.into_iter().map(|count| count > 0).collect())
}

pub async fn forget_last_seen(live: &mut ConnectionManager, agent: &str) -> Result<(), StoreError> {
    let _: i64 = redis::cmd("HDEL")
        .arg(LAST_SEEN_KEY)
        .arg(agent)
        .query_async(live)
        .await?;
    Ok(())
}

/// `SADD <image> <agent>` for each image the agent holds (db 3).
pub async fn add_to_image_sets(
    image_db: &mut ConnectionManager,
    agent: &str,
    images: &[AgentImage],
) -> Result<(), StoreError> {
    if images.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for image in images {
        pipe.sadd(&image.canonical, agent).ignore();
    }
    let _: () = pipe.query_async(image_db).await?;
    Ok(())
}

/// How many keys of db 3 one SCAN step looks at.
const IMAGE_SCAN_BATCH: usize = 500;

/// Removes the agent from every image set (db 3).
pub async fn remove_from_image_sets(
    image_db: &mut ConnectionManager,
    agent: &str,
) -> Result<(), StoreError> {
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(IMAGE_SCAN_BATCH)
            .query_async(image_db)
            .await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.srem(key, agent).ignore();
            }
            let _: () = pipe.query_async(image_db).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Of these scaling group names, the ones that exist.
pub async fn existing_scaling_groups(
    pool: &Pool,
    names: &[String],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT name FROM scaling_groups WHERE name = ANY($1)",
            &[&names],
        )
        .await?;
    rows.iter()
        .map(|row| row.try_get::<_, String>(0).map_err(StoreError::from))
        .collect()
}

/// Rows per multi-row INSERT (12 parameters each, far below PostgreSQL's 65,535).
pub const INSERT_CHUNK: usize = 500;

/// Inserts first-contact agents as ALIVE, many rows per statement, in one transaction;
/// an id another worker inserted meanwhile is skipped. Returns the ids inserted.
pub async fn insert_new_agents(
    pool: &Pool,
    agents: &[(&str, &AgentInfo)],
) -> Result<Vec<String>, StoreError> {
    use tokio_postgres::types::ToSql;
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let mut inserted = Vec::with_capacity(agents.len());
    for chunk in agents.chunks(INSERT_CHUNK) {
        let slots: Vec<serde_json::Value> = chunk
            .iter()
            .map(|(_, info)| info.available_slots.to_json())
            .collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * 11);
        let mut values = Vec::with_capacity(chunk.len());
        for (index, ((agent, info), slots)) in chunk.iter().zip(&slots).enumerate() {
            let base = index * 11;
            values.push(format!(
                "(${}, 'ALIVE', now(), ${}, ${}, true, ${}, '{{}}', ${}, ${}, ${}, now(), NULL, ${}, ${}, ${}, ${})",
                base + 1,
                base + 2,
                base + 3,
                base + 4,
                base + 5,
                base + 6,
                base + 7,
                base + 8,
                base + 9,
                base + 10,
                base + 11
            ));
            params.push(agent);
            params.push(&info.region);
            params.push(&info.scaling_group);
            params.push(slots);
            params.push(&info.addr);
            params.push(&info.public_host);
            params.push(&info.public_key);
            params.push(&info.version);
            params.push(&info.architecture);
            params.push(&info.compute_plugins);
            params.push(&info.auto_terminate_abusing_kernel);
        }
        let statement = format!(
            "INSERT INTO agents (id, status, status_changed, region, scaling_group, schedulable, \
             available_slots, occupied_slots, addr, public_host, public_key, first_contact, \
             lost_at, version, architecture, compute_plugins, auto_terminate_abusing_kernel) \
             VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
            values.join(", ")
        );
        let rows = transaction.query(&statement, &params).await?;
        for row in rows {
            inserted.push(row.try_get::<_, String>(0)?);
        }
    }
    transaction.commit().await?;
    Ok(inserted)
}
