//! Resource presets and resource occupancy: what `GET /resource/presets` lists and what
//! `POST /resource/check-presets` and session creation compare against (the slots occupied by
//! a keypair, a group or a domain, per scaling group, and what alive agents still have free).

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err, slots_column};
use crate::slots::ResourceSlot;

/// Kernel statuses whose slots count against a user's, group's or domain's limits
/// (`USER_RESOURCE_OCCUPYING_KERNEL_STATUSES`: all but TERMINATING, TERMINATED, PENDING and
/// CANCELLED).
pub const USER_OCCUPYING_SQL: &str =
    "status NOT IN ('TERMINATING', 'TERMINATED', 'PENDING', 'CANCELLED')";

/// Kernel statuses that occupy an agent's slots (`AGENT_RESOURCE_OCCUPYING_KERNEL_STATUSES`).
pub const AGENT_OCCUPYING_SQL: &str = "status NOT IN ('TERMINATED', 'PENDING', 'CANCELLED')";

/// One row of `resource_presets`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourcePreset {
    pub name: String,
    pub resource_slots: ResourceSlot,
    pub shared_memory: Option<i64>,
}

/// Every preset, by name.
pub async fn list_presets(client: &impl GenericClient) -> Result<Vec<ResourcePreset>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT name, resource_slots, shared_memory FROM resource_presets ORDER BY name",
        )
        .await
        .map_err(db_err("preparing the preset list"))?;
    let rows = client
        .query(&statement, &[])
        .await
        .map_err(db_err("listing resource presets"))?;
    rows.into_iter()
        .map(|row| {
            let name: String = row.read(0)?;
            Ok(ResourcePreset {
                resource_slots: slots_column(
                    &row.read::<_, serde_json::Value>(1)?,
                    "resource_presets",
                    "resource_slots",
                    &name,
                )?,
                shared_memory: row.read(2)?,
                name,
            })
        })
        .collect()
}

/// Whose occupancy to sum.
#[derive(Debug, Clone, Copy)]
pub enum OccupancyScope<'a> {
    AccessKey(&'a str),
    Group(Uuid),
    Domain(&'a str),
}

/// The sum of `kernels.occupied_slots` over the user-occupying statuses in a scope.
pub async fn occupied_slots(
    client: &impl GenericClient,
    scope: OccupancyScope<'_>,
) -> Result<ResourceSlot, QueryError> {
    let (column, key, param): (&str, String, &(dyn postgres_types::ToSql + Sync)) = match &scope {
        OccupancyScope::AccessKey(ak) => ("access_key", ak.to_string(), ak),
        OccupancyScope::Group(id) => ("group_id", id.to_string(), id),
        OccupancyScope::Domain(domain) => ("domain_name", domain.to_string(), domain),
    };
    let sql =
        format!("SELECT occupied_slots FROM kernels WHERE {column} = $1 AND {USER_OCCUPYING_SQL}");
    let statement = client
        .prepare_cached(&sql)
        .await
        .map_err(db_err("preparing an occupancy query"))?;
    let rows = client
        .query(&statement, &[param])
        .await
        .map_err(db_err("summing occupied slots"))?;
    let mut total = ResourceSlot::new();
    for row in rows {
        let slots = slots_column(&row.read(0)?, "kernels", "occupied_slots", &key)?;
        total = &total + &slots;
    }
    Ok(total)
}

/// A group of a user, with its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberGroup {
    pub id: Uuid,
    pub total_resource_slots: ResourceSlot,
}

/// The group named `group_name` in `domain` if `user_uuid` is a member of it.
pub async fn find_member_group(
    client: &impl GenericClient,
    user_uuid: Uuid,
    group_name: &str,
    domain: &str,
) -> Result<Option<MemberGroup>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT g.id, g.total_resource_slots FROM groups g
             JOIN association_groups_users a ON a.group_id = g.id
             WHERE a.user_id = $1 AND g.name = $2 AND g.domain_name = $3",
        )
        .await
        .map_err(db_err("preparing the group membership lookup"))?;
    let row = client
        .query_opt(&statement, &[&user_uuid, &group_name, &domain])
        .await
        .map_err(db_err("looking up a group membership"))?;
    row.map(|row| {
        Ok(MemberGroup {
            id: row.read(0)?,
            total_resource_slots: slots_column(
                &row.read(1)?,
                "groups",
                "total_resource_slots",
                group_name,
            )?,
        })
    })
    .transpose()
}

/// `domains.total_resource_slots`, or `None` when there is no such domain.
pub async fn domain_total_slots(
    client: &impl GenericClient,
    domain: &str,
) -> Result<Option<ResourceSlot>, QueryError> {
    let statement = client
        .prepare_cached("SELECT total_resource_slots FROM domains WHERE name = $1")
        .await
        .map_err(db_err("preparing the domain limit lookup"))?;
    let row = client
        .query_opt(&statement, &[&domain])
        .await
        .map_err(db_err("looking up a domain limit"))?;
    row.map(|row| slots_column(&row.read(0)?, "domains", "total_resource_slots", domain))
        .transpose()
}

/// What one user's kernels occupy in each of `scaling_groups` (agent-occupying statuses).
pub async fn user_usage_by_scaling_group(
    client: &impl GenericClient,
    user_uuid: Uuid,
    scaling_groups: &[String],
) -> Result<Vec<(String, ResourceSlot)>, QueryError> {
    let sql = format!(
        "SELECT scaling_group, occupied_slots FROM kernels
         WHERE user_uuid = $1 AND scaling_group = ANY($2) AND {AGENT_OCCUPYING_SQL}"
    );
    let statement = client
        .prepare_cached(&sql)
        .await
        .map_err(db_err("preparing the per-scaling-group usage query"))?;
    let rows = client
        .query(&statement, &[&user_uuid, &scaling_groups])
        .await
        .map_err(db_err("summing usage per scaling group"))?;
    rows.into_iter()
        .map(|row| {
            let group: String = row.read(0)?;
            let slots = slots_column(&row.read(1)?, "kernels", "occupied_slots", &group)?;
            Ok((group, slots))
        })
        .collect()
}

/// An alive agent's capacity: `(scaling group, available, occupied)`.
pub async fn alive_agent_capacity(
    client: &impl GenericClient,
    scaling_groups: &[String],
) -> Result<Vec<(String, ResourceSlot, ResourceSlot)>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT id, scaling_group, available_slots, occupied_slots FROM agents
             WHERE status = 'ALIVE' AND scaling_group = ANY($1)",
        )
        .await
        .map_err(db_err("preparing the agent capacity query"))?;
    let rows = client
        .query(&statement, &[&scaling_groups])
        .await
        .map_err(db_err("reading agent capacity"))?;
    rows.into_iter()
        .map(|row| {
            let id: String = row.read(0)?;
            Ok((
                row.read(1)?,
                slots_column(&row.read(2)?, "agents", "available_slots", &id)?,
                slots_column(&row.read(3)?, "agents", "occupied_slots", &id)?,
            ))
        })
        .collect()
}
