//! Reads the snapshot a scheduling pass decides over, in a handful of set-based queries.
//!
//! Usage (occupied slots per keypair, user, group, domain, and per resource group and keypair
//! for DRF) is summed in PostgreSQL with one GROUPING SETS query, so a pass never transfers
//! one row per running kernel.

use bai_schema::queries::ReadColumn;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use bai_schema::{ResourceSlot, SlotAmount, SlotUnit};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::policy::SchedulingPolicy;
use super::selector::AgentSelectionStrategy;
use super::snapshot::*;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the scheduling snapshot ({context}): {source}")]
    Database {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Decode(#[from] bai_schema::queries::DecodeError),
}

fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> LoadError {
    move |source| LoadError::Database { context, source }
}

/// Kernel statuses whose slots count against user, keypair, group and domain limits.
pub const USER_OCCUPYING_KERNEL_STATUSES: &str = "('SCHEDULED','PREPARING','BUILDING','PULLING','RUNNING','RESTARTING','RESIZING','SUSPENDED','ERROR')";

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
}

pub async fn load_snapshot<C: GenericClient>(
    client: &C,
    options: LoadOptions,
) -> Result<SchedulingSnapshot, LoadError> {
    let scaling_groups = load_scaling_groups(client, &options.roundrobin).await?;
    let agents = load_agents(client, options.max_container_count.is_some()).await?;
    let pending = load_pending(client, options.max_pending).await?;

    let access_keys: Vec<String> = pending
        .iter()
        .map(|s| s.access_key.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let users: Vec<Uuid> = pending
        .iter()
        .map(|s| s.user_uuid)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let groups: Vec<Uuid> = pending
        .iter()
        .map(|s| s.group_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let domains: Vec<String> = pending
        .iter()
        .map(|s| s.domain_name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let images: Vec<String> = pending
        .iter()
        .flat_map(|s| s.kernels.iter().map(|k| k.image.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    Ok(SchedulingSnapshot {
        now: options.now,
        known_slots: options.known_slots,
        resource_priority: options.resource_priority,
        max_container_count: options.max_container_count,
        scaling_groups,
        agents,
        keypair_policies: load_keypair_policies(client, &access_keys).await?,
        user_policies: load_user_policies(client, &users).await?,
        group_limits: load_limits_by_uuid(
            client,
            "SELECT id, total_resource_slots FROM groups WHERE id = ANY($1)",
            &groups,
        )
        .await?,
        domain_limits: load_domain_limits(client, &domains).await?,
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
    let rows = client
        .query(
            "SELECT name, scheduler, scheduler_opts FROM scaling_groups WHERE is_active ORDER BY name",
            &[],
        )
        .await
        .map_err(db_err("resource groups"))?;
    rows.iter()
        .map(|row| {
            let name: String = row.decode(0)?;
            let scheduler: String = row.decode(1)?;
            let opts: serde_json::Value = row.decode(2)?;
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
            Ok(ScalingGroupView {
                policy: SchedulingPolicy::parse(&scheduler).unwrap_or(SchedulingPolicy::Fifo),
                selector,
                pending_timeout_secs,
                num_retries_to_skip,
                roundrobin_next_index: roundrobin.get(&name).cloned().unwrap_or_default(),
                name,
            })
        })
        .collect()
}

/// Reads the ALIVE, schedulable agents. Their running containers are counted only when
/// `config/agent/max-container-count` is set (nothing else reads the count), in one grouped
/// scan of the live kernels rather than a subquery per agent.
async fn load_agents<C: GenericClient>(
    client: &C,
    count_containers: bool,
) -> Result<Vec<AgentView>, LoadError> {
    let query = if count_containers {
        format!(
            "SELECT a.id, a.scaling_group, a.architecture, a.available_slots, a.occupied_slots,
                    coalesce(c.containers, 0)
               FROM agents a
               LEFT JOIN (SELECT k.agent, count(*) AS containers FROM kernels k
                           WHERE k.status IN {USER_OCCUPYING_KERNEL_STATUSES} AND k.agent IS NOT NULL
                           GROUP BY k.agent) c ON c.agent = a.id
              WHERE a.status = 'ALIVE' AND a.schedulable"
        )
    } else {
        "SELECT a.id, a.scaling_group, a.architecture, a.available_slots, a.occupied_slots, 0::bigint
           FROM agents a
          WHERE a.status = 'ALIVE' AND a.schedulable"
            .to_owned()
    };
    let rows = client.query(&query, &[]).await.map_err(db_err("agents"))?;
    rows.iter()
        .map(|row| {
            Ok(AgentView {
                id: row.decode(0)?,
                scaling_group: row.decode(1)?,
                architecture: row.decode(2)?,
                available_slots: slots_of(row.decode(3)?),
                occupied_slots: slots_of(row.decode(4)?),
                container_count: row.decode::<_, i64>(5)?.max(0) as u32,
            })
        })
        .collect()
}

async fn load_pending<C: GenericClient>(
    client: &C,
    limit: i64,
) -> Result<Vec<PendingSession>, LoadError> {
    let sessions = client
        .query(
            "SELECT id, coalesce(name, ''), coalesce(access_key, ''), user_uuid, group_id, domain_name,
                    session_type, priority, created_at,
                    coalesce(scaling_group_name, target_sgroup_names[1], 'default'),
                    cluster_mode, starts_at,
                    coalesce((status_data -> 'scheduler' ->> 'retries')::int, 0)
               FROM sessions
              WHERE status = 'PENDING'
              ORDER BY priority DESC, created_at, id
              LIMIT $1",
            &[&limit],
        )
        .await
        .map_err(db_err("pending sessions"))?;
    let ids: Vec<Uuid> = sessions
        .iter()
        .map(|row| row.decode(0))
        .collect::<Result<_, _>>()?;
    let mut kernels: HashMap<Uuid, Vec<PendingKernel>> = HashMap::new();
    for row in client
        .query(
            "SELECT session_id, id, requested_slots, architecture, coalesce(image, ''), agent
               FROM kernels WHERE session_id = ANY($1) AND status = 'PENDING'
              ORDER BY session_id, cluster_idx, id",
            &[&ids],
        )
        .await
        .map_err(db_err("pending kernels"))?
    {
        kernels
            .entry(row.decode(0)?)
            .or_default()
            .push(PendingKernel {
                id: row.decode(1)?,
                requested_slots: slots_of(row.decode(2)?),
                architecture: row.decode(3)?,
                image: row.decode(4)?,
                designated_agent: row.decode(5)?,
            });
    }
    let mut unmet: HashMap<Uuid, Vec<String>> = HashMap::new();
    for row in client
        .query(
            "SELECT d.session_id, coalesce(s.name, ''), s.id
               FROM session_dependencies d JOIN sessions s ON s.id = d.depends_on
              WHERE d.session_id = ANY($1)
                AND NOT (s.status = 'TERMINATED' AND s.result = 'SUCCESS')",
            &[&ids],
        )
        .await
        .map_err(db_err("session dependencies"))?
    {
        let name: String = row.decode(1)?;
        let id: Uuid = row.decode(2)?;
        unmet
            .entry(row.decode(0)?)
            .or_default()
            .push(format!("{name} ({id})"));
    }
    let mut pending = Vec::with_capacity(sessions.len());
    for row in &sessions {
        let id: Uuid = row.decode(0)?;
        let kind_name: String = row.decode(6)?;
        let mode: String = row.decode(10)?;
        // A session without PENDING kernels is not schedulable (it is skipped, as before).
        let Some(session_kernels) = kernels.remove(&id) else {
            continue;
        };
        pending.push(PendingSession {
            id,
            name: row.decode(1)?,
            access_key: row.decode(2)?,
            user_uuid: row.decode(3)?,
            group_id: row.decode(4)?,
            domain_name: row.decode(5)?,
            kind: SessionKind::parse(&kind_name).unwrap_or(SessionKind::Interactive),
            priority: row.decode(7)?,
            created_at: row.decode(8)?,
            scaling_group: row.decode(9)?,
            cluster_mode: ClusterMode::parse(&mode).unwrap_or(ClusterMode::SingleNode),
            kernels: session_kernels,
            starts_at: row.decode(11)?,
            unmet_dependencies: unmet.remove(&id).unwrap_or_default(),
            retries: row.decode::<_, i32>(12)?.max(0) as u32,
        });
    }
    Ok(pending)
}

const POLICY_COLUMNS: &str = "p.total_resource_slots, p.default_for_unspecified::text,
    p.max_concurrent_sessions, p.max_concurrent_sftp_sessions, p.max_pending_session_count,
    p.max_pending_session_resource_slots";

fn policy_of(row: &tokio_postgres::Row, first: usize) -> Result<KeypairPolicy, LoadError> {
    let unspecified: String = row.decode(first + 1)?;
    let pending_slots: Option<serde_json::Value> = row.decode(first + 5)?;
    Ok(KeypairPolicy {
        total_resource_slots: slots_of(row.decode(first)?),
        unspecified_is_unlimited: unspecified == "UNLIMITED",
        max_concurrent_sessions: row.decode(first + 2)?,
        max_concurrent_sftp_sessions: row.decode(first + 3)?,
        max_pending_session_count: row.decode(first + 4)?,
        max_pending_session_resource_slots: pending_slots
            .filter(|v| !v.is_null())
            .map(|v| slots_of(Some(v))),
    })
}

async fn load_keypair_policies<C: GenericClient>(
    client: &C,
    access_keys: &[String],
) -> Result<BTreeMap<String, KeypairPolicy>, LoadError> {
    let rows = client
        .query(
            &format!(
                "SELECT k.access_key, {POLICY_COLUMNS} FROM keypairs k
                   JOIN keypair_resource_policies p ON p.name = k.resource_policy
                  WHERE k.access_key = ANY($1)"
            ),
            &[&access_keys],
        )
        .await
        .map_err(db_err("keypair resource policies"))?;
    rows.iter()
        .map(|row| Ok((row.decode(0)?, policy_of(row, 1)?)))
        .collect()
}

async fn load_user_policies<C: GenericClient>(
    client: &C,
    users: &[Uuid],
) -> Result<BTreeMap<Uuid, KeypairPolicy>, LoadError> {
    let rows = client
        .query(
            &format!(
                "SELECT u.uuid, {POLICY_COLUMNS} FROM users u
                   JOIN keypairs k ON k.access_key = u.main_access_key
                   JOIN keypair_resource_policies p ON p.name = k.resource_policy
                  WHERE u.uuid = ANY($1)"
            ),
            &[&users],
        )
        .await
        .map_err(db_err("users' main keypair policies"))?;
    rows.iter()
        .map(|row| Ok((row.decode(0)?, policy_of(row, 1)?)))
        .collect()
}

async fn load_limits_by_uuid<C: GenericClient>(
    client: &C,
    query: &str,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, ResourceSlot>, LoadError> {
    let rows = client
        .query(query, &[&ids])
        .await
        .map_err(db_err("group limits"))?;
    rows.iter()
        .map(|row| Ok((row.decode(0)?, slots_of(row.decode(1)?))))
        .collect()
}

async fn load_domain_limits<C: GenericClient>(
    client: &C,
    domains: &[String],
) -> Result<BTreeMap<String, ResourceSlot>, LoadError> {
    let rows = client
        .query(
            "SELECT name, total_resource_slots FROM domains WHERE name = ANY($1)",
            &[&domains],
        )
        .await
        .map_err(db_err("domain limits"))?;
    rows.iter()
        .map(|row| Ok((row.decode(0)?, slots_of(row.decode(1)?))))
        .collect()
}

async fn load_usage<C: GenericClient>(client: &C) -> Result<Usage, LoadError> {
    let mut usage = Usage::default();
    // One row per (dimension, owner, slot): GROUPING() tells which dimension a row sums. The
    // kernels are first counted per owner combination and slot map (most kernels share a few
    // request shapes), so the slot maps are expanded and summed once per shape, and the five
    // grouping sets add up a handful of rows instead of each scanning every kernel again.
    let rows = client
        .query(
            &format!(
                "WITH per_shape AS (
                    SELECT k.access_key, k.user_uuid, k.group_id, k.domain_name, k.scaling_group,
                           k.occupied_slots, count(*) AS kernels
                      FROM kernels k
                     WHERE k.status IN {USER_OCCUPYING_KERNEL_STATUSES}
                     GROUP BY 1, 2, 3, 4, 5, 6),
                 per_owner AS (
                    SELECT p.access_key, p.user_uuid, p.group_id, p.domain_name, p.scaling_group,
                           s.key AS slot,
                           sum(CASE WHEN s.value ~ '^-?[0-9.]+$'
                                    THEN s.value::numeric * p.kernels END) AS amount,
                           bool_or(lower(s.value) IN ('infinity', 'inf')) AS infinite
                      FROM per_shape p, jsonb_each_text(p.occupied_slots) s
                     GROUP BY 1, 2, 3, 4, 5, 6)
                 SELECT GROUPING(access_key, user_uuid, group_id, domain_name, scaling_group),
                        access_key, user_uuid, group_id, domain_name, scaling_group,
                        slot, sum(amount)::text, bool_or(infinite)
                   FROM per_owner
                  GROUP BY GROUPING SETS ((access_key, slot), (user_uuid, slot),
                        (group_id, slot), (domain_name, slot),
                        (scaling_group, access_key, slot))"
            ),
            &[],
        )
        .await
        .map_err(db_err("resource usage"))?;
    for row in rows {
        let grouping: i32 = row.decode(0)?;
        let slot: String = row.decode(6)?;
        let sum: Option<String> = row.decode(7)?;
        let infinite: Option<bool> = row.decode(8)?;
        let amount = if infinite.unwrap_or(false) {
            SlotAmount::Infinite
        } else {
            match sum.and_then(|s| s.parse::<Decimal>().ok()) {
                Some(d) => SlotAmount::Finite(d),
                None => continue,
            }
        };
        // GROUPING bits, most significant first: access_key, user, group, domain, sgroup.
        match grouping {
            0b01111 => {
                let ak: Option<String> = row.decode(1)?;
                if let Some(ak) = ak {
                    usage.by_keypair.entry(ak).or_default().set(slot, amount);
                }
            }
            0b10111 => {
                let user: Uuid = row.decode(2)?;
                usage.by_user.entry(user).or_default().set(slot, amount);
            }
            0b11011 => {
                let group: Uuid = row.decode(3)?;
                usage.by_group.entry(group).or_default().set(slot, amount);
            }
            0b11101 => {
                let domain: String = row.decode(4)?;
                usage.by_domain.entry(domain).or_default().set(slot, amount);
            }
            0b01110 => {
                let ak: Option<String> = row.decode(1)?;
                let sgroup: Option<String> = row.decode(5)?;
                if let (Some(ak), Some(sgroup)) = (ak, sgroup) {
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
    for row in client
        .query(
            "SELECT access_key, session_type = 'SYSTEM', count(*) FROM sessions
              WHERE status IN ('SCHEDULED','PULLING','PREPARING','RUNNING','RESTARTING',
                               'RUNNING_DEGRADED','ERROR')
                AND access_key IS NOT NULL
              GROUP BY 1, 2",
            &[],
        )
        .await
        .map_err(db_err("live sessions per keypair"))?
    {
        let ak: String = row.decode(0)?;
        let private: bool = row.decode(1)?;
        let count = row.decode::<_, i64>(2)?.max(0) as u32;
        if private {
            usage.sftp_sessions_by_keypair.insert(ak, count);
        } else {
            usage.sessions_by_keypair.insert(ak, count);
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
    for row in client
        .query(
            "SELECT domain, scaling_group FROM sgroups_for_domains WHERE domain = ANY($1)",
            &[&domains],
        )
        .await
        .map_err(db_err("resource groups of domains"))?
    {
        access
            .by_domain
            .entry(row.decode(0)?)
            .or_default()
            .insert(row.decode(1)?);
    }
    for row in client
        .query(
            "SELECT \"group\", scaling_group FROM sgroups_for_groups WHERE \"group\" = ANY($1)",
            &[&groups],
        )
        .await
        .map_err(db_err("resource groups of projects"))?
    {
        access
            .by_group
            .entry(row.decode(0)?)
            .or_default()
            .insert(row.decode(1)?);
    }
    for row in client
        .query(
            "SELECT access_key, scaling_group FROM sgroups_for_keypairs WHERE access_key = ANY($1)",
            &[&access_keys],
        )
        .await
        .map_err(db_err("resource groups of keypairs"))?
    {
        access
            .by_keypair
            .entry(row.decode(0)?)
            .or_default()
            .insert(row.decode(1)?);
    }
    Ok(access)
}

async fn load_image_minimums<C: GenericClient>(
    client: &C,
    images: &[String],
) -> Result<BTreeMap<String, ResourceSlot>, LoadError> {
    let rows = client
        .query(
            "SELECT name, resources FROM images WHERE name = ANY($1)",
            &[&images],
        )
        .await
        .map_err(db_err("image resource minimums"))?;
    let mut minimums = BTreeMap::new();
    for row in rows {
        let name: String = row.decode(0)?;
        let resources: serde_json::Value = row.decode(1)?;
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
                    minimum.set(slot.clone(), *amount);
                }
            }
        }
        if !minimum.is_empty() {
            minimums.insert(name, minimum);
        }
    }
    Ok(minimums)
}
