//! Domains as the admin API (GraphQL `domain`/`domains` and the domain mutations) reads and
//! writes them: typed rows with the domain's scaling groups, create, modify, deactivate and
//! purge.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;

use super::{QueryError, ReadColumn, db_err};

/// One domain with the names of its scaling groups.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainRow {
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub total_resource_slots: Value,
    pub allowed_vfolder_hosts: Value,
    pub allowed_docker_registries: Vec<String>,
    pub integration_id: Option<String>,
    pub scaling_groups: Vec<String>,
}

impl DomainRow {
    fn from_row(row: &Row) -> Result<DomainRow, QueryError> {
        Ok(DomainRow {
            name: row.read("name")?,
            description: row.read("description")?,
            is_active: row.read("is_active")?,
            created_at: row.read("created_at")?,
            modified_at: row.read("modified_at")?,
            total_resource_slots: row.read("total_resource_slots")?,
            allowed_vfolder_hosts: row.read("allowed_vfolder_hosts")?,
            allowed_docker_registries: row.read("allowed_docker_registries")?,
            integration_id: row.read("integration_id")?,
            scaling_groups: row.read("scaling_groups")?,
        })
    }
}

/// The columns `DomainRow::from_row` reads, over the alias `d` (a macro, so that the
/// statements stay `&'static str` constants the prepare test reads through `STATEMENTS`).
macro_rules! domain_select {
    () => {
        "SELECT d.name, d.description, d.is_active, d.created_at, d.modified_at, \
         d.total_resource_slots, d.allowed_vfolder_hosts, d.allowed_docker_registries, \
         d.integration_id, \
         ARRAY(SELECT s.scaling_group FROM sgroups_for_domains s WHERE s.domain = d.name \
               ORDER BY s.scaling_group) AS scaling_groups "
    };
}

/// The statements assembled from `domain_select!` (for the prepare-every-statement test).
pub const STATEMENTS: &[&str] = &[LIST_SQL, INSERT_SQL, UPDATE_SQL];

const LIST_SQL: &str = concat!(
    domain_select!(),
    "FROM domains d \
     WHERE ($1::text IS NULL OR d.name = $1::text) AND ($2::bool IS NULL OR d.is_active = $2::bool) \
     ORDER BY d.name"
);

/// Domains ordered by name: the one named `name` (any when `None`), active or not as
/// `is_active` says (either when `None`).
pub async fn list_domains(
    client: &impl GenericClient,
    name: Option<&str>,
    is_active: Option<bool>,
) -> Result<Vec<DomainRow>, QueryError> {
    let statement = client
        .prepare_cached(LIST_SQL)
        .await
        .map_err(db_err("preparing the domain list"))?;
    client
        .query(&statement, &[&name, &is_active])
        .await
        .map_err(db_err("listing domains"))?
        .iter()
        .map(DomainRow::from_row)
        .collect()
}

/// A domain to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDomain {
    pub name: String,
    pub description: String,
    pub is_active: bool,
    pub total_resource_slots: Value,
    pub allowed_vfolder_hosts: Value,
    pub allowed_docker_registries: Vec<String>,
    pub integration_id: Option<String>,
}

const INSERT_SQL: &str = concat!(
    "WITH d AS (INSERT INTO domains (name, description, is_active, \
         total_resource_slots, allowed_vfolder_hosts, allowed_docker_registries, integration_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *) ",
    domain_select!(),
    "FROM d"
);

/// Inserts a domain and returns it.
pub async fn insert_domain(
    client: &impl GenericClient,
    domain: &NewDomain,
) -> Result<Option<DomainRow>, QueryError> {
    client
        .query_opt(
            INSERT_SQL,
            &[
                &domain.name,
                &domain.description,
                &domain.is_active,
                &domain.total_resource_slots,
                &domain.allowed_vfolder_hosts,
                &domain.allowed_docker_registries,
                &domain.integration_id,
            ],
        )
        .await
        .map_err(db_err("creating a domain"))?
        .as_ref()
        .map(DomainRow::from_row)
        .transpose()
}

/// The changes of `modify_domain`: a `None` field keeps its value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DomainChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub total_resource_slots: Option<Value>,
    pub allowed_vfolder_hosts: Option<Value>,
    pub allowed_docker_registries: Option<Vec<String>>,
    pub integration_id: Option<String>,
}

const UPDATE_SQL: &str = concat!(
    "WITH d AS (UPDATE domains SET modified_at = now(), \
         name = coalesce($2::text, name), \
         description = coalesce($3::text, description), \
         is_active = coalesce($4::bool, is_active), \
         total_resource_slots = coalesce($5::jsonb, total_resource_slots), \
         allowed_vfolder_hosts = coalesce($6::jsonb, allowed_vfolder_hosts), \
         allowed_docker_registries = coalesce($7::varchar[], allowed_docker_registries), \
         integration_id = coalesce($8::text, integration_id) \
     WHERE name = $1 RETURNING *) ",
    domain_select!(),
    "FROM d"
);

/// Applies `changes` to the domain `name` (and touches `modified_at`); the changed domain, or
/// `None` when there is no such domain.
pub async fn update_domain(
    client: &impl GenericClient,
    name: &str,
    changes: &DomainChanges,
) -> Result<Option<DomainRow>, QueryError> {
    client
        .query_opt(
            UPDATE_SQL,
            &[
                &name,
                &changes.name,
                &changes.description,
                &changes.is_active,
                &changes.total_resource_slots,
                &changes.allowed_vfolder_hosts,
                &changes.allowed_docker_registries,
                &changes.integration_id,
            ],
        )
        .await
        .map_err(db_err("modifying a domain"))?
        .as_ref()
        .map(DomainRow::from_row)
        .transpose()
}

/// The registries the domain `name` may pull images from; `None` when there is no such
/// domain.
pub async fn allowed_docker_registries(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<Vec<String>>, QueryError> {
    client
        .query_opt(
            "SELECT allowed_docker_registries FROM domains WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(db_err("reading a domain's allowed registries"))?
        .map(|row| row.read(0))
        .transpose()
}

/// Marks the domain inactive; whether it exists.
pub async fn deactivate_domain(
    client: &impl GenericClient,
    name: &str,
) -> Result<bool, QueryError> {
    let updated = client
        .execute(
            "UPDATE domains SET is_active = false, modified_at = now() WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(db_err("deactivating a domain"))?;
    Ok(updated > 0)
}

/// What still belongs to a domain a purge must not orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainDependents {
    /// Kernels holding agent resources (all but PENDING, TERMINATED, CANCELLED).
    pub active_kernels: i64,
    pub users: i64,
    pub groups: i64,
}

/// Counts what still belongs to the domain `name`.
pub async fn domain_dependents(
    client: &impl GenericClient,
    name: &str,
) -> Result<DomainDependents, QueryError> {
    let row = client
        .query_one(
            "SELECT \
               (SELECT count(*) FROM kernels WHERE domain_name = $1 AND status IN ('SCHEDULED', \
                 'PREPARING', 'BUILDING', 'PULLING', 'RUNNING', 'RESTARTING', 'RESIZING', \
                 'SUSPENDED', 'TERMINATING', 'ERROR')) AS active_kernels, \
               (SELECT count(*) FROM users WHERE domain_name = $1) AS users, \
               (SELECT count(*) FROM groups WHERE domain_name = $1) AS groups",
            &[&name],
        )
        .await
        .map_err(db_err("counting what belongs to a domain"))?;
    Ok(DomainDependents {
        active_kernels: row.read("active_kernels")?,
        users: row.read("users")?,
        groups: row.read("groups")?,
    })
}

/// Deletes the domain with its (finished) sessions and kernels; whether the domain existed.
/// Run it in a transaction after `domain_dependents` found nothing active.
pub async fn purge_domain(client: &impl GenericClient, name: &str) -> Result<bool, QueryError> {
    client
        .execute("DELETE FROM kernels WHERE domain_name = $1", &[&name])
        .await
        .map_err(db_err("deleting a domain's kernels"))?;
    client
        .execute("DELETE FROM sessions WHERE domain_name = $1", &[&name])
        .await
        .map_err(db_err("deleting a domain's sessions"))?;
    let deleted = client
        .execute("DELETE FROM domains WHERE name = $1", &[&name])
        .await
        .map_err(db_err("deleting a domain"))?;
    Ok(deleted > 0)
}
