//! Scaling groups as the admin API (GraphQL `scaling_group(s)` and the scaling group
//! mutations) reads and writes them: typed rows, create, modify, delete, and the associations
//! with domains, groups (projects) and keypairs.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// One scaling group as stored (`scheduler_opts` as stored, not as the API shows it).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingGroupRow {
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub is_public: bool,
    pub created_at: DateTime<Utc>,
    pub wsproxy_addr: Option<String>,
    pub wsproxy_api_token: Option<String>,
    pub driver: String,
    pub driver_opts: Value,
    pub scheduler: String,
    pub scheduler_opts: Value,
    pub use_host_network: bool,
}

impl ScalingGroupRow {
    fn from_row(row: &Row) -> Result<ScalingGroupRow, QueryError> {
        Ok(ScalingGroupRow {
            name: row.read("name")?,
            description: row.read("description")?,
            is_active: row.read("is_active")?,
            is_public: row.read("is_public")?,
            created_at: row.read("created_at")?,
            wsproxy_addr: row.read("wsproxy_addr")?,
            wsproxy_api_token: row.read("wsproxy_api_token")?,
            driver: row.read("driver")?,
            driver_opts: row.read("driver_opts")?,
            scheduler: row.read("scheduler")?,
            scheduler_opts: row.read("scheduler_opts")?,
            use_host_network: row.read("use_host_network")?,
        })
    }
}

/// The columns `ScalingGroupRow::from_row` reads, over the alias `g`.
macro_rules! sgroup_select {
    () => {
        "SELECT g.name, g.description, g.is_active, g.is_public, g.created_at, \
         g.wsproxy_addr, g.wsproxy_api_token, g.driver, g.driver_opts, g.scheduler, \
         g.scheduler_opts, g.use_host_network "
    };
}

/// Which scaling groups a list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScalingGroupScope {
    /// Those named so (any when `None`).
    Named(Option<String>),
    /// Those associated with a domain.
    Domain(String),
    /// Those associated with a group (project).
    Group(Uuid),
    /// Those associated with a keypair.
    Keypair(String),
}

const LIST_SQL: &str = concat!(
    sgroup_select!(),
    "FROM scaling_groups g \
     WHERE ($1::text IS NULL OR g.name = $1::text) AND ($2::bool IS NULL OR g.is_active = $2::bool) \
     ORDER BY g.name"
);

const FOR_DOMAIN_SQL: &str = concat!(
    sgroup_select!(),
    "FROM scaling_groups g JOIN sgroups_for_domains a ON a.scaling_group = g.name \
     WHERE a.domain = $1 AND ($2::bool IS NULL OR g.is_active = $2::bool) ORDER BY g.name"
);

const FOR_GROUP_SQL: &str = concat!(
    sgroup_select!(),
    "FROM scaling_groups g JOIN sgroups_for_groups a ON a.scaling_group = g.name \
     WHERE a.\"group\" = $1 AND ($2::bool IS NULL OR g.is_active = $2::bool) ORDER BY g.name"
);

const FOR_KEYPAIR_SQL: &str = concat!(
    sgroup_select!(),
    "FROM scaling_groups g JOIN sgroups_for_keypairs a ON a.scaling_group = g.name \
     WHERE a.access_key = $1 AND ($2::bool IS NULL OR g.is_active = $2::bool) ORDER BY g.name"
);

/// The statements assembled from `sgroup_select!` (for the prepare-every-statement test).
pub const STATEMENTS: &[&str] = &[
    LIST_SQL,
    FOR_DOMAIN_SQL,
    FOR_GROUP_SQL,
    FOR_KEYPAIR_SQL,
    INSERT_SQL,
    UPDATE_SQL,
];

/// The scaling groups of `scope`, ordered by name; active or not as `is_active` says (either
/// when `None`).
pub async fn list_scaling_groups(
    client: &impl GenericClient,
    scope: &ScalingGroupScope,
    is_active: Option<bool>,
) -> Result<Vec<ScalingGroupRow>, QueryError> {
    let (sql, key): (&str, &(dyn postgres_types::ToSql + Sync)) = match scope {
        ScalingGroupScope::Named(name) => (LIST_SQL, name),
        ScalingGroupScope::Domain(domain) => (FOR_DOMAIN_SQL, domain),
        ScalingGroupScope::Group(group) => (FOR_GROUP_SQL, group),
        ScalingGroupScope::Keypair(access_key) => (FOR_KEYPAIR_SQL, access_key),
    };
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(db_err("preparing the scaling group list"))?;
    client
        .query(&statement, &[key, &is_active])
        .await
        .map_err(db_err("listing scaling groups"))?
        .iter()
        .map(ScalingGroupRow::from_row)
        .collect()
}

/// A scaling group to create (options already checked and completed).
#[derive(Debug, Clone, PartialEq)]
pub struct NewScalingGroup {
    pub name: String,
    pub description: String,
    pub is_active: bool,
    pub is_public: bool,
    pub wsproxy_addr: Option<String>,
    pub wsproxy_api_token: Option<String>,
    pub driver: String,
    pub driver_opts: Value,
    pub scheduler: String,
    pub scheduler_opts: Value,
    pub use_host_network: bool,
}

const INSERT_SQL: &str = concat!(
    "WITH g AS (INSERT INTO scaling_groups (name, description, is_active, is_public, \
         wsproxy_addr, wsproxy_api_token, driver, driver_opts, scheduler, scheduler_opts, \
         use_host_network) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *) ",
    sgroup_select!(),
    "FROM g"
);

/// Inserts a scaling group and returns it.
pub async fn insert_scaling_group(
    client: &impl GenericClient,
    group: &NewScalingGroup,
) -> Result<Option<ScalingGroupRow>, QueryError> {
    client
        .query_opt(
            INSERT_SQL,
            &[
                &group.name,
                &group.description,
                &group.is_active,
                &group.is_public,
                &group.wsproxy_addr,
                &group.wsproxy_api_token,
                &group.driver,
                &group.driver_opts,
                &group.scheduler,
                &group.scheduler_opts,
                &group.use_host_network,
            ],
        )
        .await
        .map_err(db_err("creating a scaling group"))?
        .as_ref()
        .map(ScalingGroupRow::from_row)
        .transpose()
}

/// The changes of `modify_scaling_group`: a `None` field keeps its value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalingGroupChanges {
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub is_public: Option<bool>,
    pub wsproxy_addr: Option<String>,
    pub wsproxy_api_token: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<Value>,
    pub scheduler: Option<String>,
    pub scheduler_opts: Option<Value>,
    pub use_host_network: Option<bool>,
}

const UPDATE_SQL: &str = "UPDATE scaling_groups SET \
         description = coalesce($2::text, description), \
         is_active = coalesce($3::bool, is_active), \
         is_public = coalesce($4::bool, is_public), \
         wsproxy_addr = coalesce($5::text, wsproxy_addr), \
         wsproxy_api_token = coalesce($6::text, wsproxy_api_token), \
         driver = coalesce($7::text, driver), \
         driver_opts = coalesce($8::jsonb, driver_opts), \
         scheduler = coalesce($9::text, scheduler), \
         scheduler_opts = coalesce($10::jsonb, scheduler_opts), \
         use_host_network = coalesce($11::bool, use_host_network) \
     WHERE name = $1";

/// Applies `changes` to the scaling group `name`; whether it exists (no change at all
/// succeeds when it does).
pub async fn update_scaling_group(
    client: &impl GenericClient,
    name: &str,
    changes: &ScalingGroupChanges,
) -> Result<bool, QueryError> {
    let updated = client
        .execute(
            UPDATE_SQL,
            &[
                &name,
                &changes.description,
                &changes.is_active,
                &changes.is_public,
                &changes.wsproxy_addr,
                &changes.wsproxy_api_token,
                &changes.driver,
                &changes.driver_opts,
                &changes.scheduler,
                &changes.scheduler_opts,
                &changes.use_host_network,
            ],
        )
        .await
        .map_err(db_err("modifying a scaling group"))?;
    Ok(updated > 0)
}

/// Deletes the scaling group `name`; whether it existed.
pub async fn delete_scaling_group(
    client: &impl GenericClient,
    name: &str,
) -> Result<bool, QueryError> {
    let deleted = client
        .execute("DELETE FROM scaling_groups WHERE name = $1", &[&name])
        .await
        .map_err(db_err("deleting a scaling group"))?;
    Ok(deleted > 0)
}

/// What a scaling group is associated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Associate {
    Domain(String),
    Group(Uuid),
    Keypair(String),
}

/// Associates `scaling_group` with `with`; whether a row was added (a repeated association
/// fails on the primary key).
pub async fn associate(
    client: &impl GenericClient,
    scaling_group: &str,
    with: &Associate,
) -> Result<bool, QueryError> {
    let inserted =
        match with {
            Associate::Domain(domain) => {
                client
                    .execute(
                        "INSERT INTO sgroups_for_domains (scaling_group, domain) VALUES ($1, $2)",
                        &[&scaling_group, domain],
                    )
                    .await
            }
            Associate::Group(group) => {
                client
                    .execute(
                        "INSERT INTO sgroups_for_groups (scaling_group, \"group\") VALUES ($1, $2)",
                        &[&scaling_group, group],
                    )
                    .await
            }
            Associate::Keypair(access_key) => client
                .execute(
                    "INSERT INTO sgroups_for_keypairs (scaling_group, access_key) VALUES ($1, $2)",
                    &[&scaling_group, access_key],
                )
                .await,
        }
        .map_err(db_err("associating a scaling group"))?;
    Ok(inserted > 0)
}

/// Removes the association of `scaling_group` with `with`; whether there was one.
pub async fn disassociate(
    client: &impl GenericClient,
    scaling_group: &str,
    with: &Associate,
) -> Result<bool, QueryError> {
    let deleted =
        match with {
            Associate::Domain(domain) => {
                client
                    .execute(
                        "DELETE FROM sgroups_for_domains WHERE scaling_group = $1 AND domain = $2",
                        &[&scaling_group, domain],
                    )
                    .await
            }
            Associate::Group(group) => client
                .execute(
                    "DELETE FROM sgroups_for_groups WHERE scaling_group = $1 AND \"group\" = $2",
                    &[&scaling_group, group],
                )
                .await,
            Associate::Keypair(access_key) => client
                .execute(
                    "DELETE FROM sgroups_for_keypairs WHERE scaling_group = $1 AND access_key = $2",
                    &[&scaling_group, access_key],
                )
                .await,
        }
        .map_err(db_err("disassociating a scaling group"))?;
    Ok(deleted > 0)
}

/// Removes every scaling group association of a domain or a group (project); whether there
/// was any.
pub async fn disassociate_all(
    client: &impl GenericClient,
    from: &Associate,
) -> Result<bool, QueryError> {
    let deleted = match from {
        Associate::Domain(domain) => {
            client
                .execute(
                    "DELETE FROM sgroups_for_domains WHERE domain = $1",
                    &[domain],
                )
                .await
        }
        Associate::Group(group) => {
            client
                .execute(
                    "DELETE FROM sgroups_for_groups WHERE \"group\" = $1",
                    &[group],
                )
                .await
        }
        Associate::Keypair(access_key) => {
            client
                .execute(
                    "DELETE FROM sgroups_for_keypairs WHERE access_key = $1",
                    &[access_key],
                )
                .await
        }
    }
    .map_err(db_err("disassociating all scaling groups"))?;
    Ok(deleted > 0)
}
