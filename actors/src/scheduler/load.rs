//! Reads the snapshot a scheduling pass decides over, in a handful of set-based queries.
//!
//! Usage (occupied slots per keypair, user, group, domain, and per resource group and keypair
//! for DRF) is summed in PostgreSQL with one GROUPING SETS query, so a pass never transfers
//! one row per running kernel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bai_schema::queries::scheduler_load::{self as queries, PolicyRow};
use bai_schema::queries::{DecodeError, QueryError};
use bai_schema::{ResourceSlot, SlotAmount, SlotUnit};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::agent_cache::AgentCache;
use super::policy::SchedulingPolicy;
use super::selector::AgentSelectionStrategy;
use super::snapshot::*;
use crate::shared_values::SharedValues;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the scheduling snapshot ({context}): {source}")]
    Database {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Query(QueryError),
    /// A usage row summed over an owner without one (a kernel with no user, group or domain).
    #[error("cannot read column {0} of a usage row: it is NULL")]
    MissingOwner(&'static str),
}

/// A query's failure in the scheduler's words, as before the statements moved to
/// `bai_schema::queries::scheduler_load`: a failed statement names the part of the snapshot.
impl From<QueryError> for LoadError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::Db { context, source } => LoadError::Database { context, source },
            QueryError::Decode { column, source } => {
                LoadError::Decode(DecodeError { column, source })
            }
            other => LoadError::Query(other),
        }
    }
}

/// The distinct values of `values`, in order (the keys a pass reads policies and limits by).
fn distinct<T: Ord>(values: impl Iterator<Item = T>) -> Vec<T> {
    values.collect::<BTreeSet<_>>().into_iter().collect()
}

/// Parses a stored ResourceSlot column, dropping values that do not parse (a bad row must not
/// stop every pass; the loader logs nothing here, the amount counts as absent).
pub fn slots_of(value: Option<serde_json::Value>) -> ResourceSlot {
    value
        .and_then(|v| ResourceSlot::from_json(&v).ok())
        .unwrap_or_default()
}

/// Everything the loader needs besides the database.
pub struct LoadOptions {
    pub now: DateTime<Utc>,
    pub known_slots: BTreeMap<String, SlotUnit>,
    pub resource_priority: Vec<String>,
    pub max_container_count: Option<u32>,
    /// Round-robin cursors per resource group and architecture (kept in etcd).
    pub roundrobin: BTreeMap<String, BTreeMap<String, usize>>,
    /// At most this many pending sessions are read per pass (oldest first by priority).
    pub max_pending: i64,
    /// The agents kept from the previous passes; `None` reads every agent's row each pass.
    pub agent_cache: Option<SharedAgentCache>,
}

/// A worker's [`AgentCache`], held by its pass for the pass's length.
pub type SharedAgentCache = Arc<tokio::sync::Mutex<AgentCache>>;

pub async fn load_snapshot<C: GenericClient>(
    client: &C,
    options: LoadOptions,
) -> Result<SchedulingSnapshot, LoadError> {
    let pending = load_pending(client, options.max_pending).await?;
    if pending.is_empty() {
        // A pass asked for by freed slots often finds nothing waiting: it reads no agents.
        return Ok(SchedulingSnapshot {
            now: options.now,
            known_slots: options.known_slots,
            resource_priority: options.resource_priority,
            max_container_count: options.max_container_count,
            ..SchedulingSnapshot::default()
        });
    }
    let pending_groups: Vec<String> = distinct(pending.iter().map(|s| s.scaling_group.clone()));
    let scaling_groups = load_scaling_groups(client, &options.roundrobin).await?;
    // Only the groups something waits in are planned, so only their agents are read.
    let agents = match (&options.agent_cache, options.max_container_count) {
        // The container count changes without the agent's row; counted, every row is read.
        (Some(cache), None) => {
            load_agents_through(client, &pending_groups, &mut *cache.lock().await).await?
        }
        (_, max_container_count) => {
            load_agents(client, &pending_groups, max_container_count.is_some()).await?
        }
    };

    let access_keys: Vec<String> = distinct(pending.iter().map(|s| s.access_key.clone()));
    let users: Vec<Uuid> = distinct(pending.iter().map(|s| s.user_uuid));
    let groups: Vec<Uuid> = distinct(pending.iter().map(|s| s.group_id));
    let domains: Vec<String> = distinct(pending.iter().map(|s| s.domain_name.clone()));
    let images: Vec<String> = distinct(
        pending
            .iter()
            .flat_map(|s| s.kernels.iter().map(|k| k.image.clone())),
    );

    Ok(SchedulingSnapshot {
        now: options.now,
        known_slots: options.known_slots,
        resource_priority: options.resource_priority,
        max_container_count: options.max_container_count,
        scaling_groups,
        agents,
        keypair_policies: load_keypair_policies(client, &access_keys).await?,
        user_policies: load_user_policies(client, &users).await?,
        group_limits: queries::group_limits(client, &groups)
            .await?
            .into_iter()
            .map(|(id, slots)| (id, slots_of(slots)))
            .collect(),
        domain_limits: queries::domain_limits(client, &domains)
            .await?
            .into_iter()
            .map(|(name, slots)| (name, slots_of(slots)))
            .collect(),
        usage: load_usage(client).await?,
        access: load_access(client, &domains, &groups, &access_keys).await?,
        image_minimums: load_image_minimums(client, &images).await?,
        pending,
    })
}

async fn load_scaling_groups<C: GenericClient>(
    client: &C,
    roundrobin: &BTreeMap<String, BTreeMap<String, usize>>,
) -> Result<Vec<ScalingGroupView>, LoadError> {
    let rows = queries::active_scaling_groups(client).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let name = row.name;
            let scheduler = row.scheduler;
            let opts = row.scheduler_opts;
            let selector = opts
                .get("agent_selection_strategy")
                .and_then(|v| v.as_str())
                .and_then(AgentSelectionStrategy::parse)
                .unwrap_or_default();
            // 23.09 switches round robin on with `"roundrobin": true` beside the strategy.
            let selector = if opts.get("roundrobin").and_then(|v| v.as_bool()) == Some(true) {
                AgentSelectionStrategy::RoundRobin
            } else {
                selector
            };
            let pending_timeout_secs = opts
                .get("pending_timeout")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0);
            let num_retries_to_skip = opts
                .get("config")
                .and_then(|c| c.get("num_retries_to_skip"))
                .and_then(|v| v.as_u64())
                .unwrap_or(0) as u32;
            ScalingGroupView {
                policy: SchedulingPolicy::parse(&scheduler).unwrap_or(SchedulingPolicy::Fifo),
                selector,
                pending_timeout_secs,
                num_retries_to_skip,
                roundrobin_next_index: roundrobin.get(&name).cloned().unwrap_or_default(),
                name,
            }
        })
        .collect())
}

/// Reads the ALIVE, schedulable agents. Their running containers are counted only when
/// `config/agent/max-container-count` is set (nothing else reads the count), in one grouped
/// scan of the live kernels rather than a subquery per agent.
async fn load_agents<C: GenericClient>(
    client: &C,
    scaling_groups: &[String],
    count_containers: bool,
) -> Result<Vec<Arc<AgentView>>, LoadError> {
    let rows = queries::schedulable_agents(client, scaling_groups, count_containers).await?;
    let mut shared = SharedValues::new(SLOT_VALUES_SHARED);
    Ok(rows
        .into_iter()
        .map(|row| Arc::new(agent_view(row, &mut shared)))
        .collect())
}

/// Reads the ALIVE, schedulable agents of `scaling_groups` through `cache`: their row
/// versions, then only the rows that changed since the cache read them.
async fn load_agents_through<C: GenericClient>(
    client: &C,
    scaling_groups: &[String],
    cache: &mut AgentCache,
) -> Result<Vec<Arc<AgentView>>, LoadError> {
    let listing = queries::schedulable_agent_versions(client, scaling_groups).await?;
    let stale = cache.stale(&listing);
    let fresh = if stale.is_empty() {
        Vec::new()
    } else {
        let rows = queries::schedulable_agents_by_id(client, &stale, scaling_groups).await?;
        let shared = cache.shared_slots();
        rows.into_iter()
            .map(|(version, row)| (version, agent_view(row, shared)))
            .collect()
    };
    Ok(cache.refresh(scaling_groups, &listing, fresh))
}

/// Distinct slot values a loader shares among the agents it reads: their kinds of node, the
/// idle agents' zeros and a few shapes of what runs on them.
pub const SLOT_VALUES_SHARED: usize = 16;

/// An agent's view, with its slots (and the free slots worked out from them) shared with the
/// agents read before that have the same.
fn agent_view(
    row: queries::SchedulableAgentRow,
    shared: &mut SharedValues<ResourceSlot>,
) -> AgentView {
    let available = shared.share_owned(slots_of(row.available_slots));
    let occupied = shared.share_owned(slots_of(row.occupied_slots));
    let free = shared.share_owned(&*available - &*occupied);
    AgentView {
        id: row.id,
        scaling_group: row.scaling_group,
        architecture: row.architecture,
        available_slots: available,
        occupied_slots: occupied,
        container_count: row.containers.max(0) as u32,
        free: FreeSlots::known(free),
    }
}

async fn load_pending<C: GenericClient>(
    client: &C,
    limit: i64,
) -> Result<Vec<PendingSession>, LoadError> {
    let sessions = queries::pending_sessions(client, limit).await?;
    let ids: Vec<Uuid> = sessions.iter().map(|row| row.id).collect();
    let mut kernels: HashMap<Uuid, Vec<PendingKernel>> = HashMap::new();
    for row in queries::pending_kernels(client, &ids).await? {
        kernels
            .entry(row.session_id)
            .or_default()
            .push(PendingKernel {
                id: row.id,
                requested_slots: slots_of(row.requested_slots),
                architecture: row.architecture,
                image: row.image,
                designated_agent: row.agent,
            });
    }
    let mut unmet: HashMap<Uuid, Vec<String>> = HashMap::new();
    for row in queries::unmet_dependencies(client, &ids).await? {
        unmet
            .entry(row.session_id)
            .or_default()
            .push(format!("{} ({})", row.depends_on_name, row.depends_on));
    }
    let mut pending = Vec::with_capacity(sessions.len());
    for row in sessions {
        let id = row.id;
        // A session without PENDING kernels is not schedulable (it is skipped, as before).
        let Some(session_kernels) = kernels.remove(&id) else {
            continue;
        };
        pending.push(PendingSession {
            id,
            name: row.name,
            access_key: row.access_key,
            user_uuid: row.user_uuid,
            group_id: row.group_id,
            domain_name: row.domain_name,
            kind: SessionKind::parse(&row.session_type).unwrap_or(SessionKind::Interactive),
            priority: row.priority,
            created_at: row.created_at,
            scaling_group: row.scaling_group,
            cluster_mode: ClusterMode::parse(&row.cluster_mode).unwrap_or(ClusterMode::SingleNode),
            kernels: session_kernels,
            starts_at: row.starts_at,
            unmet_dependencies: unmet.remove(&id).unwrap_or_default(),
            retries: row.retries.max(0) as u32,
        });
    }
    Ok(pending)
}

fn policy_of(row: PolicyRow) -> KeypairPolicy {
    KeypairPolicy {
        total_resource_slots: slots_of(row.total_resource_slots),
        unspecified_is_unlimited: row.default_for_unspecified == "UNLIMITED",
        max_concurrent_sessions: row.max_concurrent_sessions,
        max_concurrent_sftp_sessions: row.max_concurrent_sftp_sessions,
        max_pending_session_count: row.max_pending_session_count,
        max_pending_session_resource_slots: row
            .max_pending_session_resource_slots
            .filter(|v| !v.is_null())
            .map(|v| slots_of(Some(v))),
    }
}

async fn load_keypair_policies<C: GenericClient>(
    client: &C,
    access_keys: &[String],
) -> Result<BTreeMap<String, KeypairPolicy>, LoadError> {
    let rows = queries::keypair_policies(client, access_keys).await?;
    Ok(rows
        .into_iter()
        .map(|(access_key, row)| (access_key, policy_of(row)))
        .collect())
}

async fn load_user_policies<C: GenericClient>(
    client: &C,
    users: &[Uuid],
) -> Result<BTreeMap<Uuid, KeypairPolicy>, LoadError> {
    let rows = queries::user_policies(client, users).await?;
    Ok(rows
        .into_iter()
        .map(|(user, row)| (user, policy_of(row)))
        .collect())
}

async fn load_usage<C: GenericClient>(client: &C) -> Result<Usage, LoadError> {
    let mut usage = Usage::default();
    for row in queries::usage(client).await? {
        let slot = row.slot;
        let amount = if row.infinite.unwrap_or(false) {
            SlotAmount::Infinite
        } else {
            match row.sum.and_then(|s| s.parse::<Decimal>().ok()) {
                Some(d) => SlotAmount::Finite(d),
                None => continue,
            }
        };
        // GROUPING bits, most significant first: access_key, user, group, domain, sgroup.
        match row.grouping {
            0b01111 => {
                if let Some(ak) = row.access_key {
                    usage.by_keypair.entry(ak).or_default().set(slot, amount);
                }
            }
            0b10111 => {
                let user = row.user_uuid.ok_or(LoadError::MissingOwner("user_uuid"))?;
                usage.by_user.entry(user).or_default().set(slot, amount);
            }
            0b11011 => {
                let group = row.group_id.ok_or(LoadError::MissingOwner("group_id"))?;
                usage.by_group.entry(group).or_default().set(slot, amount);
            }
            0b11101 => {
                let domain = row
                    .domain_name
                    .ok_or(LoadError::MissingOwner("domain_name"))?;
                usage.by_domain.entry(domain).or_default().set(slot, amount);
            }
            0b01110 => {
                if let (Some(ak), Some(sgroup)) = (row.access_key, row.scaling_group) {
                    usage
                        .by_scaling_group_keypair
                        .entry(sgroup)
                        .or_default()
                        .entry(ak)
                        .or_default()
                        .set(slot, amount);
                }
            }
            _ => {}
        }
    }
    for row in queries::live_sessions_per_keypair(client).await? {
        let count = row.count.max(0) as u32;
        if row.system {
            usage.sftp_sessions_by_keypair.insert(row.access_key, count);
        } else {
            usage.sessions_by_keypair.insert(row.access_key, count);
        }
    }
    Ok(usage)
}

async fn load_access<C: GenericClient>(
    client: &C,
    domains: &[String],
    groups: &[Uuid],
    access_keys: &[String],
) -> Result<ScalingGroupAccess, LoadError> {
    let mut access = ScalingGroupAccess::default();
    for (domain, scaling_group) in queries::scaling_groups_of_domains(client, domains).await? {
        access
            .by_domain
            .entry(domain)
            .or_default()
            .insert(scaling_group);
    }
    for (group, scaling_group) in queries::scaling_groups_of_groups(client, groups).await? {
        access
            .by_group
            .entry(group)
            .or_default()
            .insert(scaling_group);
    }
    for (access_key, scaling_group) in
        queries::scaling_groups_of_keypairs(client, access_keys).await?
    {
        access
            .by_keypair
            .entry(access_key)
            .or_default()
            .insert(scaling_group);
    }
    Ok(access)
}

async fn load_image_minimums<C: GenericClient>(
    client: &C,
    images: &[String],
) -> Result<BTreeMap<String, ResourceSlot>, LoadError> {
    let mut minimums = BTreeMap::new();
    for (name, resources) in queries::image_resources(client, images).await? {
        let Some(object) = resources.as_object() else {
            continue;
        };
        let mut minimum = ResourceSlot::new();
        for (slot, range) in object {
            let raw = match range.get("min") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            let parsed = ResourceSlot::from_user_input(
                &serde_json::json!({ slot.clone(): raw }),
                &bai_schema::slots::intrinsic_slot_types(),
            );
            if let Ok(parsed) = parsed {
                for (slot, amount) in parsed.iter() {
                    minimum.set(slot, *amount);
                }
            }
        }
        if !minimum.is_empty() {
            minimums.insert(name, minimum);
        }
    }
    Ok(minimums)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn row(id: &str, available: Value, occupied: Value) -> queries::SchedulableAgentRow {
        queries::SchedulableAgentRow {
            id: id.to_owned(),
            scaling_group: "default".to_owned(),
            architecture: "x86_64".to_owned(),
            available_slots: Some(available),
            occupied_slots: Some(occupied),
            containers: 0,
        }
    }

    #[test]
    fn agents_with_the_same_slots_share_one_copy_and_free_slots_are_worked_out() {
        let mut shared = SharedValues::new(SLOT_VALUES_SHARED);
        let node = json!({"cpu": "16", "mem": "68719476736"});
        let idle = json!({"cpu": "0", "mem": "0"});
        let first = agent_view(row("i-1", node.clone(), idle.clone()), &mut shared);
        let second = agent_view(row("i-2", node.clone(), idle), &mut shared);
        let busy = agent_view(
            row("i-3", node, json!({"cpu": "4", "mem": "0"})),
            &mut shared,
        );

        assert!(Arc::ptr_eq(&first.available_slots, &second.available_slots));
        assert!(Arc::ptr_eq(&first.available_slots, &busy.available_slots));
        assert!(Arc::ptr_eq(&first.occupied_slots, &second.occupied_slots));
        assert!(Arc::ptr_eq(&first.free_slots(), &second.free_slots()));
        assert!(!Arc::ptr_eq(&first.free_slots(), &busy.free_slots()));
        assert_eq!(
            *busy.free_slots(),
            ResourceSlot::from_pairs([("cpu", 12), ("mem", 68719476736)])
        );
        assert_eq!(
            *first.free_slots(),
            &*first.available_slots - &*first.occupied_slots
        );
    }
}
