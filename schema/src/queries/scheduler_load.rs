//! The reads of a scheduling pass's snapshot, in a handful of set-based queries: the active
//! resource groups, the schedulable agents, the pending sessions with their kernels and unmet
//! dependencies, the resource policies and limits of their owners, the usage summed in
//! PostgreSQL (one GROUPING SETS query, so a pass never transfers one row per running
//! kernel), the resource groups each owner may use and the images' minimum resources.
//!
//! The rows keep slot columns as raw JSON (the scheduler reads a bad value as empty rather
//! than stopping every pass). These take a `tokio_postgres::GenericClient` (the scheduler
//! holds a plain client), and the contexts of their errors are the scheduler's log wording.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// The kernel statuses whose slots count against user, keypair, group and domain limits, as a
/// SQL list (a macro, so that the statements using it stay `&'static str` constants).
macro_rules! user_occupying_kernel_statuses {
    () => {
        "('SCHEDULED','PREPARING','BUILDING','PULLING','RUNNING','RESTARTING','RESIZING','SUSPENDED','ERROR')"
    };
}

/// Kernel statuses whose slots count against user, keypair, group and domain limits.
pub const USER_OCCUPYING_KERNEL_STATUSES: &str = user_occupying_kernel_statuses!();

/// The statements assembled from the macros above (for the prepare-every-statement test).
pub const STATEMENTS: &[&str] = &[
    COUNTING_AGENTS_SQL,
    KEYPAIR_POLICIES_SQL,
    USER_POLICIES_SQL,
    USAGE_SQL,
];

/// An active resource group.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingGroupRow {
    pub name: String,
    pub scheduler: String,
    pub scheduler_opts: Value,
}

/// The active resource groups by name.
pub async fn active_scaling_groups(
    client: &impl GenericClient,
) -> Result<Vec<ScalingGroupRow>, QueryError> {
    let rows = client
        .query(
            "SELECT name, scheduler, scheduler_opts FROM scaling_groups WHERE is_active ORDER BY name",
            &[],
        )
        .await
        .map_err(db_err("resource groups"))?;
    rows.iter()
        .map(|row| {
            Ok(ScalingGroupRow {
                name: row.read(0)?,
                scheduler: row.read(1)?,
                scheduler_opts: row.read(2)?,
            })
        })
        .collect()
}

/// An ALIVE, schedulable agent.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulableAgentRow {
    pub id: String,
    pub scaling_group: String,
    pub architecture: String,
    pub available_slots: Option<Value>,
    pub occupied_slots: Option<Value>,
    /// Its live containers (0 when they were not counted).
    pub containers: i64,
}

const COUNTING_AGENTS_SQL: &str = concat!(
    "SELECT a.id, a.scaling_group, a.architecture, a.available_slots, a.occupied_slots,
            coalesce(c.containers, 0)
       FROM agents a
       LEFT JOIN (SELECT k.agent, count(*) AS containers FROM kernels k
                   WHERE k.status IN ",
    user_occupying_kernel_statuses!(),
    " AND k.agent IS NOT NULL
                   GROUP BY k.agent) c ON c.agent = a.id
      WHERE a.status = 'ALIVE' AND a.schedulable AND a.scaling_group = ANY($1)"
);

/// The ALIVE, schedulable agents of `scaling_groups`. Their live containers are counted only
/// when `count_containers` (in one grouped scan of the live kernels rather than a subquery per
/// agent).
pub async fn schedulable_agents(
    client: &impl GenericClient,
    scaling_groups: &[String],
    count_containers: bool,
) -> Result<Vec<SchedulableAgentRow>, QueryError> {
    let rows = if count_containers {
        client.query(COUNTING_AGENTS_SQL, &[&scaling_groups]).await
    } else {
        client
            .query(
                "SELECT a.id, a.scaling_group, a.architecture, a.available_slots, a.occupied_slots, 0::bigint
                   FROM agents a
                  WHERE a.status = 'ALIVE' AND a.schedulable AND a.scaling_group = ANY($1)",
                &[&scaling_groups],
            )
            .await
    }
    .map_err(db_err("agents"))?;
    rows.iter().map(schedulable_agent_row).collect()
}

fn schedulable_agent_row(row: &Row) -> Result<SchedulableAgentRow, QueryError> {
    Ok(SchedulableAgentRow {
        id: row.read(0)?,
        scaling_group: row.read(1)?,
        architecture: row.read(2)?,
        available_slots: row.read(3)?,
        occupied_slots: row.read(4)?,
        containers: row.read(5)?,
    })
}

/// An ALIVE, schedulable agent's row version: its `xmin`, the transaction that wrote the row
/// as it is now (every `UPDATE` writes a new one), so an unchanged version means an unchanged
/// row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentVersionRow {
    pub id: String,
    pub version: i64,
}

/// The ids and row versions of the ALIVE, schedulable agents of `scaling_groups`: what a pass
/// compares with the agents it keeps, without transferring their slots.
pub async fn schedulable_agent_versions(
    client: &impl GenericClient,
    scaling_groups: &[String],
) -> Result<Vec<AgentVersionRow>, QueryError> {
    let rows = client
        .query(
            "SELECT a.id, a.xmin::text::bigint
               FROM agents a
              WHERE a.status = 'ALIVE' AND a.schedulable AND a.scaling_group = ANY($1)",
            &[&scaling_groups],
        )
        .await
        .map_err(db_err("agents"))?;
    rows.iter()
        .map(|row| {
            Ok(AgentVersionRow {
                id: row.read(0)?,
                version: row.read(1)?,
            })
        })
        .collect()
}

/// The agents among `ids` that are still ALIVE and schedulable in `scaling_groups`, each with
/// its row version (read in the same statement, so the version is the row's).
pub async fn schedulable_agents_by_id(
    client: &impl GenericClient,
    ids: &[String],
    scaling_groups: &[String],
) -> Result<Vec<(i64, SchedulableAgentRow)>, QueryError> {
    let rows = client
        .query(
            "SELECT a.id, a.scaling_group, a.architecture, a.available_slots, a.occupied_slots,
                    0::bigint, a.xmin::text::bigint
               FROM agents a
              WHERE a.id = ANY($1) AND a.status = 'ALIVE' AND a.schedulable
                AND a.scaling_group = ANY($2)",
            &[&ids, &scaling_groups],
        )
        .await
        .map_err(db_err("agents"))?;
    rows.iter()
        .map(|row| Ok((row.read(6)?, schedulable_agent_row(row)?)))
        .collect()
}

/// A PENDING session.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingSessionRow {
    pub id: Uuid,
    pub name: String,
    pub access_key: String,
    pub user_uuid: Uuid,
    pub group_id: Uuid,
    pub domain_name: String,
    pub session_type: String,
    pub priority: i32,
    pub created_at: DateTime<Utc>,
    /// The scaling group it was given, else its first target, else `default`.
    pub scaling_group: String,
    pub cluster_mode: String,
    pub starts_at: Option<DateTime<Utc>>,
    /// `status_data.scheduler.retries` (0 when absent).
    pub retries: i32,
}

/// At most `limit` PENDING sessions, the highest priority and oldest first.
pub async fn pending_sessions(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<PendingSessionRow>, QueryError> {
    let rows = client
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
    rows.iter()
        .map(|row| {
            Ok(PendingSessionRow {
                id: row.read(0)?,
                name: row.read(1)?,
                access_key: row.read(2)?,
                user_uuid: row.read(3)?,
                group_id: row.read(4)?,
                domain_name: row.read(5)?,
                session_type: row.read(6)?,
                priority: row.read(7)?,
                created_at: row.read(8)?,
                scaling_group: row.read(9)?,
                cluster_mode: row.read(10)?,
                starts_at: row.read(11)?,
                retries: row.read(12)?,
            })
        })
        .collect()
}

/// A PENDING kernel of a pending session.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingKernelRow {
    pub session_id: Uuid,
    pub id: Uuid,
    pub requested_slots: Option<Value>,
    pub architecture: String,
    pub image: String,
    pub agent: Option<String>,
}

/// The PENDING kernels of these sessions, by session, cluster index and id.
pub async fn pending_kernels(
    client: &impl GenericClient,
    session_ids: &[Uuid],
) -> Result<Vec<PendingKernelRow>, QueryError> {
    let rows = client
        .query(
            "SELECT session_id, id, requested_slots, architecture, coalesce(image, ''), agent
               FROM kernels WHERE session_id = ANY($1) AND status = 'PENDING'
              ORDER BY session_id, cluster_idx, id",
            &[&session_ids],
        )
        .await
        .map_err(db_err("pending kernels"))?;
    rows.iter()
        .map(|row| {
            Ok(PendingKernelRow {
                session_id: row.read(0)?,
                id: row.read(1)?,
                requested_slots: row.read(2)?,
                architecture: row.read(3)?,
                image: row.read(4)?,
                agent: row.read(5)?,
            })
        })
        .collect()
}

/// A session one of these sessions depends on that has not ended successfully.
#[derive(Debug, Clone, PartialEq)]
pub struct UnmetDependencyRow {
    pub session_id: Uuid,
    pub depends_on_name: String,
    pub depends_on: Uuid,
}

/// The dependencies of these sessions that are not TERMINATED with SUCCESS.
pub async fn unmet_dependencies(
    client: &impl GenericClient,
    session_ids: &[Uuid],
) -> Result<Vec<UnmetDependencyRow>, QueryError> {
    let rows = client
        .query(
            "SELECT d.session_id, coalesce(s.name, ''), s.id
               FROM session_dependencies d JOIN sessions s ON s.id = d.depends_on
              WHERE d.session_id = ANY($1)
                AND NOT (s.status = 'TERMINATED' AND s.result = 'SUCCESS')",
            &[&session_ids],
        )
        .await
        .map_err(db_err("session dependencies"))?;
    rows.iter()
        .map(|row| {
            Ok(UnmetDependencyRow {
                session_id: row.read(0)?,
                depends_on_name: row.read(1)?,
                depends_on: row.read(2)?,
            })
        })
        .collect()
}

/// A keypair resource policy's limits as the scheduler checks them.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRow {
    pub total_resource_slots: Option<Value>,
    /// `default_for_unspecified` as text (`LIMITED` / `UNLIMITED`).
    pub default_for_unspecified: String,
    pub max_concurrent_sessions: i32,
    pub max_concurrent_sftp_sessions: i32,
    pub max_pending_session_count: Option<i32>,
    pub max_pending_session_resource_slots: Option<Value>,
}

/// The policy columns, over the alias `p`, after the key column.
macro_rules! policy_columns {
    () => {
        "p.total_resource_slots, p.default_for_unspecified::text,
    p.max_concurrent_sessions, p.max_concurrent_sftp_sessions, p.max_pending_session_count,
    p.max_pending_session_resource_slots"
    };
}

impl PolicyRow {
    /// Reads the policy columns, which start at column 1 (after the key).
    fn from_row(row: &Row) -> Result<PolicyRow, QueryError> {
        Ok(PolicyRow {
            total_resource_slots: row.read(1)?,
            default_for_unspecified: row.read(2)?,
            max_concurrent_sessions: row.read(3)?,
            max_concurrent_sftp_sessions: row.read(4)?,
            max_pending_session_count: row.read(5)?,
            max_pending_session_resource_slots: row.read(6)?,
        })
    }
}

const KEYPAIR_POLICIES_SQL: &str = concat!(
    "SELECT k.access_key, ",
    policy_columns!(),
    " FROM keypairs k
                   JOIN keypair_resource_policies p ON p.name = k.resource_policy
                  WHERE k.access_key = ANY($1)"
);

const USER_POLICIES_SQL: &str = concat!(
    "SELECT u.uuid, ",
    policy_columns!(),
    " FROM users u
                   JOIN keypairs k ON k.access_key = u.main_access_key
                   JOIN keypair_resource_policies p ON p.name = k.resource_policy
                  WHERE u.uuid = ANY($1)"
);

/// The resource policies of these keypairs.
pub async fn keypair_policies(
    client: &impl GenericClient,
    access_keys: &[String],
) -> Result<Vec<(String, PolicyRow)>, QueryError> {
    let rows = client
        .query(KEYPAIR_POLICIES_SQL, &[&access_keys])
        .await
        .map_err(db_err("keypair resource policies"))?;
    rows.iter()
        .map(|row| Ok((row.read(0)?, PolicyRow::from_row(row)?)))
        .collect()
}

/// The resource policies of these users' main keypairs.
pub async fn user_policies(
    client: &impl GenericClient,
    users: &[Uuid],
) -> Result<Vec<(Uuid, PolicyRow)>, QueryError> {
    let rows = client
        .query(USER_POLICIES_SQL, &[&users])
        .await
        .map_err(db_err("users' main keypair policies"))?;
    rows.iter()
        .map(|row| Ok((row.read(0)?, PolicyRow::from_row(row)?)))
        .collect()
}

/// The total resource slots of these groups (raw JSON).
pub async fn group_limits(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Option<Value>)>, QueryError> {
    let rows = client
        .query(
            "SELECT id, total_resource_slots FROM groups WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(db_err("group limits"))?;
    rows.iter()
        .map(|row| Ok((row.read(0)?, row.read(1)?)))
        .collect()
}

/// The total resource slots of these domains (raw JSON).
pub async fn domain_limits(
    client: &impl GenericClient,
    domains: &[String],
) -> Result<Vec<(String, Option<Value>)>, QueryError> {
    let rows = client
        .query(
            "SELECT name, total_resource_slots FROM domains WHERE name = ANY($1)",
            &[&domains],
        )
        .await
        .map_err(db_err("domain limits"))?;
    rows.iter()
        .map(|row| Ok((row.read(0)?, row.read(1)?)))
        .collect()
}

/// One slot's occupied amount summed over one owner: `grouping` is the `GROUPING()` bits
/// (most significant first: access key, user, group, domain, resource group) telling which of
/// the owner columns the row sums over; the others are NULL.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub grouping: i32,
    pub access_key: Option<String>,
    pub user_uuid: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub domain_name: Option<String>,
    pub scaling_group: Option<String>,
    pub slot: String,
    /// The decimal sum as text (`None` when no amount was numeric).
    pub sum: Option<String>,
    pub infinite: Option<bool>,
}

// One row per (dimension, owner, slot): GROUPING() tells which dimension a row sums. The
// kernels are first counted per owner combination and slot map (most kernels share a few
// request shapes), so the slot maps are expanded and summed once per shape, and the five
// grouping sets add up a handful of rows instead of each scanning every kernel again.
const USAGE_SQL: &str = concat!(
    "WITH per_shape AS (
                    SELECT k.access_key, k.user_uuid, k.group_id, k.domain_name, k.scaling_group,
                           k.occupied_slots, count(*) AS kernels
                      FROM kernels k
                     WHERE k.status IN ",
    user_occupying_kernel_statuses!(),
    "
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
);

/// The occupied slots of the live kernels summed per keypair, user, group, domain, and per
/// resource group and keypair.
pub async fn usage(client: &impl GenericClient) -> Result<Vec<UsageRow>, QueryError> {
    let rows = client
        .query(USAGE_SQL, &[])
        .await
        .map_err(db_err("resource usage"))?;
    rows.iter()
        .map(|row| {
            Ok(UsageRow {
                grouping: row.read(0)?,
                access_key: row.read(1)?,
                user_uuid: row.read(2)?,
                group_id: row.read(3)?,
                domain_name: row.read(4)?,
                scaling_group: row.read(5)?,
                slot: row.read(6)?,
                sum: row.read(7)?,
                infinite: row.read(8)?,
            })
        })
        .collect()
}

/// How many live sessions a keypair has, counted apart for SYSTEM (SFTP) sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSessionCountRow {
    pub access_key: String,
    pub system: bool,
    pub count: i64,
}

/// The live sessions per keypair and kind.
pub async fn live_sessions_per_keypair(
    client: &impl GenericClient,
) -> Result<Vec<LiveSessionCountRow>, QueryError> {
    let rows = client
        .query(
            "SELECT access_key, session_type = 'SYSTEM', count(*) FROM sessions
              WHERE status IN ('SCHEDULED','PULLING','PREPARING','RUNNING','RESTARTING',
                               'RUNNING_DEGRADED','ERROR')
                AND access_key IS NOT NULL
              GROUP BY 1, 2",
            &[],
        )
        .await
        .map_err(db_err("live sessions per keypair"))?;
    rows.iter()
        .map(|row| {
            Ok(LiveSessionCountRow {
                access_key: row.read(0)?,
                system: row.read(1)?,
                count: row.read(2)?,
            })
        })
        .collect()
}

/// The resource groups these domains may use, as (domain, resource group).
pub async fn scaling_groups_of_domains(
    client: &impl GenericClient,
    domains: &[String],
) -> Result<Vec<(String, String)>, QueryError> {
    let rows = client
        .query(
            "SELECT domain, scaling_group FROM sgroups_for_domains WHERE domain = ANY($1)",
            &[&domains],
        )
        .await
        .map_err(db_err("resource groups of domains"))?;
    rows.iter()
        .map(|row| Ok((row.read(0)?, row.read(1)?)))
        .collect()
}

/// The resource groups these projects may use, as (project, resource group).
pub async fn scaling_groups_of_groups(
    client: &impl GenericClient,
    groups: &[Uuid],
) -> Result<Vec<(Uuid, String)>, QueryError> {
    let rows = client
        .query(
            "SELECT \"group\", scaling_group FROM sgroups_for_groups WHERE \"group\" = ANY($1)",
            &[&groups],
        )
        .await
        .map_err(db_err("resource groups of projects"))?;
    rows.iter()
        .map(|row| Ok((row.read(0)?, row.read(1)?)))
        .collect()
}

/// The resource groups these keypairs may use, as (access key, resource group).
pub async fn scaling_groups_of_keypairs(
    client: &impl GenericClient,
    access_keys: &[String],
) -> Result<Vec<(String, String)>, QueryError> {
    let rows = client
        .query(
            "SELECT access_key, scaling_group FROM sgroups_for_keypairs WHERE access_key = ANY($1)",
            &[&access_keys],
        )
        .await
        .map_err(db_err("resource groups of keypairs"))?;
    rows.iter()
        .map(|row| Ok((row.read(0)?, row.read(1)?)))
        .collect()
}

/// The `resources` column (per slot `{"min": …, "max": …}`) of these images.
pub async fn image_resources(
    client: &impl GenericClient,
    images: &[String],
) -> Result<Vec<(String, Value)>, QueryError> {
    let rows = client
        .query(
            "SELECT name, resources FROM images WHERE name = ANY($1)",
            &[&images],
        )
        .await
        .map_err(db_err("image resource minimums"))?;
    rows.iter()
        .map(|row| Ok((row.read(0)?, row.read(1)?)))
        .collect()
}
