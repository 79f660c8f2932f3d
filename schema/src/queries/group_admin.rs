//! Groups (projects) as the admin API (GraphQL `group(s)` and the group mutations) reads and
//! writes them: typed rows with the group's scaling groups, create, modify (with its members),
//! deactivate and purge.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// One group with the names of its scaling groups.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub domain_name: String,
    pub total_resource_slots: Value,
    pub allowed_vfolder_hosts: Value,
    pub integration_id: Option<String>,
    pub resource_policy: String,
    pub scaling_groups: Vec<String>,
}

impl GroupRow {
    fn from_row(row: &Row) -> Result<GroupRow, QueryError> {
        Ok(GroupRow {
            id: row.read("id")?,
            name: row.read("name")?,
            description: row.read("description")?,
            is_active: row.read("is_active")?,
            created_at: row.read("created_at")?,
            modified_at: row.read("modified_at")?,
            domain_name: row.read("domain_name")?,
            total_resource_slots: row.read("total_resource_slots")?,
            allowed_vfolder_hosts: row.read("allowed_vfolder_hosts")?,
            integration_id: row.read("integration_id")?,
            resource_policy: row.read("resource_policy")?,
            scaling_groups: row.read("scaling_groups")?,
        })
    }
}

/// The columns `GroupRow::from_row` reads, over the alias `g`.
macro_rules! group_select {
    () => {
        "SELECT g.id, g.name, g.description, g.is_active, g.created_at, \
         g.modified_at, g.domain_name, g.total_resource_slots, g.allowed_vfolder_hosts, \
         g.integration_id, g.resource_policy, \
         ARRAY(SELECT s.scaling_group FROM sgroups_for_groups s WHERE s.\"group\" = g.id \
               ORDER BY s.scaling_group) AS scaling_groups "
    };
}

/// Which groups a list shows; each `None` matches every group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFilter {
    pub domain_name: Option<String>,
    /// Only the groups this user belongs to.
    pub member: Option<Uuid>,
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub is_active: Option<bool>,
}

const LIST_SQL: &str = concat!(
    group_select!(),
    "FROM groups g \
     WHERE ($1::text IS NULL OR g.domain_name = $1::text) \
       AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM association_groups_users m \
            WHERE m.group_id = g.id AND m.user_id = $2::uuid)) \
       AND ($3::uuid IS NULL OR g.id = $3::uuid) \
       AND ($4::text IS NULL OR g.name = $4::text) \
       AND ($5::bool IS NULL OR g.is_active = $5::bool) \
     ORDER BY g.domain_name, g.name"
);

/// The groups `filter` matches, ordered by domain and name.
pub async fn list_groups(
    client: &impl GenericClient,
    filter: &GroupFilter,
) -> Result<Vec<GroupRow>, QueryError> {
    let statement = client
        .prepare_cached(LIST_SQL)
        .await
        .map_err(db_err("preparing the group list"))?;
    client
        .query(
            &statement,
            &[
                &filter.domain_name,
                &filter.member,
                &filter.id,
                &filter.name,
                &filter.is_active,
            ],
        )
        .await
        .map_err(db_err("listing groups"))?
        .iter()
        .map(GroupRow::from_row)
        .collect()
}

/// Whether the group `id` belongs to `domain`.
pub async fn group_in_domain(
    client: &impl GenericClient,
    id: Uuid,
    domain: &str,
) -> Result<bool, QueryError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM groups WHERE id = $1 AND domain_name = $2",
            &[&id, &domain],
        )
        .await
        .map_err(db_err("checking a group's domain"))?
        .is_some())
}

/// A group to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGroup {
    pub name: String,
    pub description: String,
    pub is_active: bool,
    pub domain_name: String,
    pub total_resource_slots: Value,
    pub allowed_vfolder_hosts: Value,
    pub integration_id: Option<String>,
    pub resource_policy: String,
}

const INSERT_SQL: &str = concat!(
    "WITH g AS (INSERT INTO groups (name, description, is_active, domain_name, \
         total_resource_slots, allowed_vfolder_hosts, integration_id, resource_policy) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *) ",
    group_select!(),
    "FROM g"
);

/// Inserts a group and returns it.
pub async fn insert_group(
    client: &impl GenericClient,
    group: &NewGroup,
) -> Result<Option<GroupRow>, QueryError> {
    client
        .query_opt(
            INSERT_SQL,
            &[
                &group.name,
                &group.description,
                &group.is_active,
                &group.domain_name,
                &group.total_resource_slots,
                &group.allowed_vfolder_hosts,
                &group.integration_id,
                &group.resource_policy,
            ],
        )
        .await
        .map_err(db_err("creating a group"))?
        .as_ref()
        .map(GroupRow::from_row)
        .transpose()
}

/// The changes of `modify_group` to the group row: a `None` field keeps its value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub domain_name: Option<String>,
    pub total_resource_slots: Option<Value>,
    pub allowed_vfolder_hosts: Option<Value>,
    pub integration_id: Option<String>,
    pub resource_policy: Option<String>,
}

impl GroupChanges {
    /// Whether nothing of the row changes.
    pub fn is_empty(&self) -> bool {
        *self == GroupChanges::default()
    }
}

const UPDATE_SQL: &str = concat!(
    "WITH g AS (UPDATE groups SET modified_at = now(), \
         name = coalesce($2::text, name), \
         description = coalesce($3::text, description), \
         is_active = coalesce($4::bool, is_active), \
         domain_name = coalesce($5::text, domain_name), \
         total_resource_slots = coalesce($6::jsonb, total_resource_slots), \
         allowed_vfolder_hosts = coalesce($7::jsonb, allowed_vfolder_hosts), \
         integration_id = coalesce($8::text, integration_id), \
         resource_policy = coalesce($9::text, resource_policy) \
     WHERE id = $1 RETURNING *) ",
    group_select!(),
    "FROM g"
);

/// The statements assembled from `group_select!` (for the prepare-every-statement test).
pub const STATEMENTS: &[&str] = &[LIST_SQL, INSERT_SQL, UPDATE_SQL];

/// Applies `changes` to the group `id` (and touches `modified_at`); the changed group, or
/// `None` when there is no such group.
pub async fn update_group(
    client: &impl GenericClient,
    id: Uuid,
    changes: &GroupChanges,
) -> Result<Option<GroupRow>, QueryError> {
    client
        .query_opt(
            UPDATE_SQL,
            &[
                &id,
                &changes.name,
                &changes.description,
                &changes.is_active,
                &changes.domain_name,
                &changes.total_resource_slots,
                &changes.allowed_vfolder_hosts,
                &changes.integration_id,
                &changes.resource_policy,
            ],
        )
        .await
        .map_err(db_err("modifying a group"))?
        .as_ref()
        .map(GroupRow::from_row)
        .transpose()
}

/// Makes `users` members of the group `id` (a repeated membership fails on its key).
pub async fn add_members(
    client: &impl GenericClient,
    id: Uuid,
    users: &[Uuid],
) -> Result<(), QueryError> {
    client
        .execute(
            "INSERT INTO association_groups_users (user_id, group_id) \
             SELECT u, $2 FROM unnest($1::uuid[]) AS u",
            &[&users, &id],
        )
        .await
        .map_err(db_err("adding group members"))?;
    Ok(())
}

/// Removes `users` from the group `id`.
pub async fn remove_members(
    client: &impl GenericClient,
    id: Uuid,
    users: &[Uuid],
) -> Result<(), QueryError> {
    client
        .execute(
            "DELETE FROM association_groups_users WHERE user_id = ANY($1) AND group_id = $2",
            &[&users, &id],
        )
        .await
        .map_err(db_err("removing group members"))?;
    Ok(())
}

/// Marks the group inactive and drops its integration id; whether it exists.
pub async fn deactivate_group(client: &impl GenericClient, id: Uuid) -> Result<bool, QueryError> {
    let updated = client
        .execute(
            "UPDATE groups SET is_active = false, integration_id = NULL, modified_at = now() WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(db_err("deactivating a group"))?;
    Ok(updated > 0)
}

/// What still belongs to a group a purge must not orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupDependents {
    /// Kernels holding agent resources (all but PENDING, TERMINATED, CANCELLED).
    pub active_kernels: i64,
    pub vfolders: i64,
}

/// Counts what still belongs to the group `id`.
pub async fn group_dependents(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<GroupDependents, QueryError> {
    let row = client
        .query_one(
            "SELECT \
               (SELECT count(*) FROM kernels WHERE group_id = $1 \
                 AND status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')) AS active_kernels, \
               (SELECT count(*) FROM vfolders WHERE \"group\" = $1) AS vfolders",
            &[&id],
        )
        .await
        .map_err(db_err("counting what belongs to a group"))?;
    Ok(GroupDependents {
        active_kernels: row.read("active_kernels")?,
        vfolders: row.read("vfolders")?,
    })
}

/// Deletes the group with its (finished) kernels, sessions and session templates; whether
/// the group existed. Run it in a transaction after `group_dependents` found nothing left.
pub async fn purge_group(client: &impl GenericClient, id: Uuid) -> Result<bool, QueryError> {
    client
        .execute("DELETE FROM kernels WHERE group_id = $1", &[&id])
        .await
        .map_err(db_err("deleting a group's kernels"))?;
    client
        .execute("DELETE FROM sessions WHERE group_id = $1", &[&id])
        .await
        .map_err(db_err("deleting a group's sessions"))?;
    client
        .execute("DELETE FROM session_templates WHERE group_id = $1", &[&id])
        .await
        .map_err(db_err("deleting a group's session templates"))?;
    let deleted = client
        .execute("DELETE FROM groups WHERE id = $1", &[&id])
        .await
        .map_err(db_err("deleting a group"))?;
    Ok(deleted > 0)
}
