//! Keypair resource policies as the admin API (GraphQL `keypair_resource_polic(y|ies)` and
//! their mutations) reads and writes them: typed rows, create, modify and delete.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// One keypair resource policy.
#[derive(Debug, Clone, PartialEq)]
pub struct KeypairPolicyRow {
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// `LIMITED` or `UNLIMITED`.
    pub default_for_unspecified: String,
    pub total_resource_slots: Value,
    pub max_session_lifetime: i32,
    pub max_concurrent_sessions: i32,
    pub max_concurrent_sftp_sessions: i32,
    pub max_containers_per_session: i32,
    pub idle_timeout: i64,
    pub max_vfolder_count: i32,
    pub max_vfolder_size: i64,
    pub allowed_vfolder_hosts: Value,
}

impl KeypairPolicyRow {
    fn from_row(row: &Row) -> Result<KeypairPolicyRow, QueryError> {
        Ok(KeypairPolicyRow {
            name: row.read("name")?,
            created_at: row.read("created_at")?,
            default_for_unspecified: row.read("default_for_unspecified")?,
            total_resource_slots: row.read("total_resource_slots")?,
            max_session_lifetime: row.read("max_session_lifetime")?,
            max_concurrent_sessions: row.read("max_concurrent_sessions")?,
            max_concurrent_sftp_sessions: row.read("max_concurrent_sftp_sessions")?,
            max_containers_per_session: row.read("max_containers_per_session")?,
            idle_timeout: row.read("idle_timeout")?,
            max_vfolder_count: row.read("max_vfolder_count")?,
            max_vfolder_size: row.read("max_vfolder_size")?,
            allowed_vfolder_hosts: row.read("allowed_vfolder_hosts")?,
        })
    }
}

/// The columns `KeypairPolicyRow::from_row` reads, over the alias `p`.
macro_rules! policy_select {
    () => {
        "SELECT p.name, p.created_at, p.default_for_unspecified::text AS \
         default_for_unspecified, p.total_resource_slots, p.max_session_lifetime, \
         p.max_concurrent_sessions, p.max_concurrent_sftp_sessions, p.max_containers_per_session, \
         p.idle_timeout, p.max_vfolder_count, p.max_vfolder_size, p.allowed_vfolder_hosts "
    };
}

/// Which policies a list shows; each `None` matches every policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyFilter {
    pub name: Option<String>,
    /// Only the policies of this user's keypairs.
    pub used_by_user: Option<Uuid>,
    /// Only the policy of this keypair.
    pub of_access_key: Option<String>,
}

const LIST_SQL: &str = concat!(
    policy_select!(),
    "FROM keypair_resource_policies p \
     WHERE ($1::text IS NULL OR p.name = $1::text) \
       AND ($2::uuid IS NULL OR p.name IN \
            (SELECT k.resource_policy FROM keypairs k WHERE k.\"user\" = $2::uuid)) \
       AND ($3::text IS NULL OR p.name = \
            (SELECT k.resource_policy FROM keypairs k WHERE k.access_key = $3::text)) \
     ORDER BY p.name"
);

/// The policies `filter` matches, by name.
pub async fn list_policies(
    client: &impl GenericClient,
    filter: &PolicyFilter,
) -> Result<Vec<KeypairPolicyRow>, QueryError> {
    let statement = client
        .prepare_cached(LIST_SQL)
        .await
        .map_err(db_err("preparing the resource policy list"))?;
    client
        .query(
            &statement,
            &[&filter.name, &filter.used_by_user, &filter.of_access_key],
        )
        .await
        .map_err(db_err("listing resource policies"))?
        .iter()
        .map(KeypairPolicyRow::from_row)
        .collect()
}

/// A keypair resource policy to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKeypairPolicy {
    pub name: String,
    /// `LIMITED` or `UNLIMITED`.
    pub default_for_unspecified: String,
    pub total_resource_slots: Value,
    pub max_session_lifetime: i32,
    pub max_concurrent_sessions: i32,
    pub max_concurrent_sftp_sessions: i32,
    pub max_containers_per_session: i32,
    pub idle_timeout: i64,
    pub max_vfolder_count: i32,
    pub max_vfolder_size: i64,
    pub allowed_vfolder_hosts: Value,
}

const INSERT_SQL: &str = concat!(
    "WITH p AS (INSERT INTO keypair_resource_policies (name, default_for_unspecified, \
         total_resource_slots, max_session_lifetime, max_concurrent_sessions, \
         max_concurrent_sftp_sessions, max_containers_per_session, idle_timeout, \
         max_vfolder_count, max_vfolder_size, allowed_vfolder_hosts) \
     VALUES ($1, ($2::text)::defaultforunspecified, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     RETURNING *) ",
    policy_select!(),
    "FROM p"
);

/// The statements assembled from `policy_select!` (for the prepare-every-statement test).
pub const STATEMENTS: &[&str] = &[LIST_SQL, INSERT_SQL];

/// Inserts a policy and returns it.
pub async fn insert_policy(
    client: &impl GenericClient,
    policy: &NewKeypairPolicy,
) -> Result<Option<KeypairPolicyRow>, QueryError> {
    client
        .query_opt(
            INSERT_SQL,
            &[
                &policy.name,
                &policy.default_for_unspecified,
                &policy.total_resource_slots,
                &policy.max_session_lifetime,
                &policy.max_concurrent_sessions,
                &policy.max_concurrent_sftp_sessions,
                &policy.max_containers_per_session,
                &policy.idle_timeout,
                &policy.max_vfolder_count,
                &policy.max_vfolder_size,
                &policy.allowed_vfolder_hosts,
            ],
        )
        .await
        .map_err(db_err("creating a resource policy"))?
        .as_ref()
        .map(KeypairPolicyRow::from_row)
        .transpose()
}

/// The changes of `modify_keypair_resource_policy`: a `None` field keeps its value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeypairPolicyChanges {
    pub default_for_unspecified: Option<String>,
    pub total_resource_slots: Option<Value>,
    pub max_session_lifetime: Option<i32>,
    pub max_concurrent_sessions: Option<i32>,
    pub max_concurrent_sftp_sessions: Option<i32>,
    pub max_containers_per_session: Option<i32>,
    pub idle_timeout: Option<i64>,
    pub max_vfolder_count: Option<i32>,
    pub max_vfolder_size: Option<i64>,
    pub allowed_vfolder_hosts: Option<Value>,
}

/// Applies `changes` to the policy `name`; whether it exists (no change at all succeeds
/// when it does).
pub async fn update_policy(
    client: &impl GenericClient,
    name: &str,
    changes: &KeypairPolicyChanges,
) -> Result<bool, QueryError> {
    let updated = client
        .execute(
            "UPDATE keypair_resource_policies SET \
                 default_for_unspecified = \
                     coalesce(($2::text)::defaultforunspecified, default_for_unspecified), \
                 total_resource_slots = coalesce($3::jsonb, total_resource_slots), \
                 max_session_lifetime = coalesce($4::int4, max_session_lifetime), \
                 max_concurrent_sessions = coalesce($5::int4, max_concurrent_sessions), \
                 max_concurrent_sftp_sessions = \
                     coalesce($6::int4, max_concurrent_sftp_sessions), \
                 max_containers_per_session = coalesce($7::int4, max_containers_per_session), \
                 idle_timeout = coalesce($8::int8, idle_timeout), \
                 max_vfolder_count = coalesce($9::int4, max_vfolder_count), \
                 max_vfolder_size = coalesce($10::int8, max_vfolder_size), \
                 allowed_vfolder_hosts = coalesce($11::jsonb, allowed_vfolder_hosts) \
             WHERE name = $1",
            &[
                &name,
                &changes.default_for_unspecified,
                &changes.total_resource_slots,
                &changes.max_session_lifetime,
                &changes.max_concurrent_sessions,
                &changes.max_concurrent_sftp_sessions,
                &changes.max_containers_per_session,
                &changes.idle_timeout,
                &changes.max_vfolder_count,
                &changes.max_vfolder_size,
                &changes.allowed_vfolder_hosts,
            ],
        )
        .await
        .map_err(db_err("modifying a resource policy"))?;
    Ok(updated > 0)
}

/// Deletes the policy `name` (one still used by a keypair is refused by the database);
/// whether it existed.
pub async fn delete_policy(client: &impl GenericClient, name: &str) -> Result<bool, QueryError> {
    let deleted = client
        .execute(
            "DELETE FROM keypair_resource_policies WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(db_err("deleting a resource policy"))?;
    Ok(deleted > 0)
}
