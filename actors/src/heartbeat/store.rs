//! Where agent state lives: the `agents` table (PostgreSQL), `agent.last_seen` (Redis db 2),
//! the per-image agent sets (Redis db 3) and the slot types in etcd.

use bai_schema::ResourceSlot;
use bai_schema::enums::AgentStatus;
use bai_schema::queries::QueryError;
use bai_schema::queries::agent_heartbeat::{self, AgentReport, AgentStateRow};
use deadpool_postgres::Pool;
use redis::aio::ConnectionManager;

use super::decide::AgentSnapshot;
use crate::wire::{AgentImage, AgentInfo};

/// The hash in db 2 of agent id → unix time (float seconds) of its last heartbeat.
pub const LAST_SEEN_KEY: &str = "agent.last_seen";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Query(#[from] QueryError),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
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

/// The tracker's snapshot of a row, naming the agent when its slots do not parse.
fn snapshot_of(row: AgentStateRow) -> Result<(String, AgentSnapshot), StoreError> {
    let available_slots =
        ResourceSlot::from_json(&row.available_slots).map_err(|error| StoreError::BadRow {
            agent: row.id.clone(),
            detail: error.to_string(),
        })?;
    Ok((
        row.id,
        AgentSnapshot {
            status: row.status,
            scaling_group: row.scaling_group,
            available_slots,
            addr: row.addr,
            public_host: row.public_host,
            public_key: row.public_key,
            version: row.version,
            compute_plugins: row.compute_plugins,
            architecture: row.architecture,
            auto_terminate_abusing_kernel: row.auto_terminate_abusing_kernel,
        },
    ))
}

/// Every agent's snapshot (to warm the tracker's cache at start).
pub async fn load_all(pool: &Pool) -> Result<Vec<(String, AgentSnapshot)>, StoreError> {
    let client = pool.get().await?;
    let rows = agent_heartbeat::all_agents(&client).await?;
    rows.into_iter().map(snapshot_of).collect()
}

/// The snapshots of these agents (those that have a row).
pub async fn load_some(
    pool: &Pool,
    ids: &[String],
) -> Result<Vec<(String, AgentSnapshot)>, StoreError> {
    let client = pool.get().await?;
    let rows = agent_heartbeat::some_agents(&client, ids).await?;
    rows.into_iter().map(snapshot_of).collect()
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

/// What a heartbeat's `info` writes into the agent's row.
fn report_of<'a>(info: &'a AgentInfo, slots: &'a serde_json::Value) -> AgentReport<'a> {
    AgentReport {
        region: &info.region,
        scaling_group: &info.scaling_group,
        available_slots: slots,
        addr: &info.addr,
        public_host: &info.public_host,
        public_key: info.public_key.as_deref(),
        version: &info.version,
        architecture: &info.architecture,
        compute_plugins: &info.compute_plugins,
        auto_terminate_abusing_kernel: info.auto_terminate_abusing_kernel,
    }
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
    let row = agent_heartbeat::lock_agent(&transaction, agent)
        .await?
        .map(snapshot_of)
        .transpose()?
        .map(|(_, row)| row);
    let wanted = AgentSnapshot::alive_from(info);
    let slots = info.available_slots.to_json();
    let report = report_of(info, &slots);
    let outcome = match decide_heartbeat(row.as_ref(), info) {
        HeartbeatDecision::Unchanged => {
            return Ok((WriteOutcome::Unchanged, row.unwrap_or(wanted)));
        }
        HeartbeatDecision::LeaveRestarting => {
            return Ok((WriteOutcome::LeftRestarting, row.unwrap_or(wanted)));
        }
        HeartbeatDecision::Insert => {
            agent_heartbeat::insert_agent(&transaction, agent, &report)
                .await
                .map_err(|error| map_fk(error, agent, info))?;
            WriteOutcome::Inserted
        }
        HeartbeatDecision::Revive => {
            agent_heartbeat::revive_agent(&transaction, agent, &report)
                .await
                .map_err(|error| map_fk(error, agent, info))?;
            WriteOutcome::Revived
        }
        HeartbeatDecision::Update(columns) => {
            agent_heartbeat::update_agent(&transaction, agent, &report)
                .await
                .map_err(|error| map_fk(error, agent, info))?;
            WriteOutcome::Updated(columns)
        }
    };
    transaction.commit().await?;
    Ok((outcome, wanted))
}

fn map_fk(error: QueryError, agent: &str, info: &AgentInfo) -> StoreError {
    if error.is_foreign_key_violation() {
        StoreError::UnknownScalingGroup {
            agent: agent.to_owned(),
            scaling_group: info.scaling_group.clone(),
        }
    } else {
        StoreError::Query(error)
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
        AgentStatus::Restarting => agent_heartbeat::mark_restarting(&client, agent).await?,
        _ => agent_heartbeat::mark_ended(&client, agent, status).await?,
    };
    Ok(changed > 0)
}

/// `agent_started`: a RESTARTING agent is ALIVE again. A LOST or TERMINATED one is left to
/// its next heartbeat (sent right after), which revives it with every field refreshed and
/// `lost_at` cleared; the original set only the status here and kept a stale `lost_at`.
pub async fn mark_started(pool: &Pool, agent: &str) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let changed = agent_heartbeat::mark_started(&client, agent).await?;
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
    let found = agent_heartbeat::existing_scaling_groups(&client, names).await?;
    Ok(found.into_iter().collect())
}

/// Rows per multi-row INSERT (11 parameters each, far below PostgreSQL's 65,535).
pub const INSERT_CHUNK: usize = 500;

/// Inserts first-contact agents as ALIVE, many rows per statement, in one transaction;
/// an id another worker inserted meanwhile is skipped. Returns the ids inserted.
pub async fn insert_new_agents(
    pool: &Pool,
    agents: &[(&str, &AgentInfo)],
) -> Result<Vec<String>, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let mut inserted = Vec::with_capacity(agents.len());
    for chunk in agents.chunks(INSERT_CHUNK) {
        let slots: Vec<serde_json::Value> = chunk
            .iter()
            .map(|(_, info)| info.available_slots.to_json())
            .collect();
        let reports: Vec<(&str, AgentReport<'_>)> = chunk
            .iter()
            .zip(&slots)
            .map(|((agent, info), slots)| (*agent, report_of(info, slots)))
            .collect();
        inserted.extend(agent_heartbeat::insert_agents(&transaction, &reports).await?);
    }
    transaction.commit().await?;
    Ok(inserted)
}
