//! Keypairs as the admin API (GraphQL `keypair(s)`, `keypair_list` and the keypair mutations)
//! reads and writes them: the typed row with its owner and projects, create, modify and
//! delete. The reads (`keypair_list`) assemble their statements at run time over
//! `KEYPAIR_COLUMNS`/`KEYPAIR_FROM` and decode with `KeypairRow::decode`.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// One keypair with its owner's email, name and projects.
#[derive(Debug, Clone, PartialEq)]
pub struct KeypairRow {
    pub user_id: Option<String>,
    pub access_key: String,
    pub secret_key: Option<String>,
    pub is_active: bool,
    pub is_admin: bool,
    pub resource_policy: String,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub rate_limit: i32,
    pub num_queries: i32,
    pub user: Uuid,
    pub ssh_public_key: Option<String>,
    pub owner_email: Option<String>,
    pub owner_full_name: Option<String>,
    pub projects: Vec<String>,
}

impl KeypairRow {
    /// Reads a row selected with `KEYPAIR_COLUMNS`.
    pub fn decode(row: &Row) -> Result<KeypairRow, QueryError> {
        Ok(KeypairRow {
            user_id: row.read("user_id")?,
            access_key: row.read("access_key")?,
            secret_key: row.read("secret_key")?,
            is_active: row.read("is_active")?,
            is_admin: row.read("is_admin")?,
            resource_policy: row.read("resource_policy")?,
            created_at: row.read("created_at")?,
            modified_at: row.read("modified_at")?,
            last_used: row.read("last_used")?,
            rate_limit: row.read("rate_limit")?,
            num_queries: row.read("num_queries")?,
            user: row.read("user")?,
            ssh_public_key: row.read("ssh_public_key")?,
            owner_email: row.read("owner_email")?,
            owner_full_name: row.read("owner_full_name")?,
            projects: row.read("projects")?,
        })
    }
}

/// The columns `KeypairRow::decode` reads, over `keypairs k` and its owner `users u`.
macro_rules! keypair_columns {
    () => {
        "k.user_id, k.access_key, k.secret_key, k.is_active, \
         k.is_admin, k.resource_policy, k.created_at, k.modified_at, k.last_used, k.rate_limit, \
         k.num_queries, k.\"user\", k.ssh_public_key, u.email AS owner_email, \
         u.full_name AS owner_full_name, \
         ARRAY(SELECT g.name FROM association_groups_users ag JOIN groups g ON g.id = ag.group_id \
               WHERE ag.user_id = k.\"user\" ORDER BY g.name) AS projects"
    };
}

/// The columns `KeypairRow::decode` reads, over `KEYPAIR_FROM`.
pub const KEYPAIR_COLUMNS: &str = keypair_columns!();

/// A keypair with its owner.
pub const KEYPAIR_FROM: &str = "keypairs k JOIN users u ON u.uuid = k.\"user\"";

/// A keypair to create for the user with the email `owner_email` (keys already generated).
#[derive(Debug, Clone, PartialEq)]
pub struct NewKeypair {
    pub owner_email: String,
    pub access_key: String,
    pub secret_key: String,
    pub is_active: bool,
    pub is_admin: bool,
    pub resource_policy: String,
    pub rate_limit: i32,
}

const INSERT_SQL: &str = concat!(
    "WITH k AS (INSERT INTO keypairs (user_id, access_key, secret_key, is_active, is_admin, \
         resource_policy, rate_limit, num_queries, \"user\") \
     SELECT $1::text, $2::text, $3::text, $4, $5, $6::text, $7, 0, users.uuid FROM users \
     WHERE users.email = $1::text RETURNING *) \
     SELECT ",
    keypair_columns!(),
    " FROM k JOIN users u ON u.uuid = k.\"user\""
);

/// The statements assembled from `keypair_columns!` (for the prepare-every-statement test).
pub const STATEMENTS: &[&str] = &[INSERT_SQL];

/// Inserts a keypair; the new row, or `None` when no user has the owner's email.
pub async fn insert_keypair(
    client: &impl GenericClient,
    keypair: &NewKeypair,
) -> Result<Option<KeypairRow>, QueryError> {
    client
        .query_opt(
            INSERT_SQL,
            &[
                &keypair.owner_email,
                &keypair.access_key,
                &keypair.secret_key,
                &keypair.is_active,
                &keypair.is_admin,
                &keypair.resource_policy,
                &keypair.rate_limit,
            ],
        )
        .await
        .map_err(db_err("creating a keypair"))?
        .as_ref()
        .map(KeypairRow::decode)
        .transpose()
}

/// The changes of `modify_keypair`: a `None` field keeps its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeypairChanges {
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
    pub resource_policy: Option<String>,
    pub rate_limit: Option<i32>,
}

/// Applies `changes` to the keypair `access_key` (and touches `modified_at`); whether it
/// exists.
pub async fn update_keypair(
    client: &impl GenericClient,
    access_key: &str,
    changes: &KeypairChanges,
) -> Result<bool, QueryError> {
    let updated = client
        .execute(
            "UPDATE keypairs SET modified_at = now(), \
                 is_active = coalesce($2::bool, is_active), \
                 is_admin = coalesce($3::bool, is_admin), \
                 resource_policy = coalesce($4::text, resource_policy), \
                 rate_limit = coalesce($5::int4, rate_limit) \
             WHERE access_key = $1",
            &[
                &access_key,
                &changes.is_active,
                &changes.is_admin,
                &changes.resource_policy,
                &changes.rate_limit,
            ],
        )
        .await
        .map_err(db_err("modifying a keypair"))?;
    Ok(updated > 0)
}

/// How many users have `access_key` as their main access key.
pub async fn main_key_users(
    client: &impl GenericClient,
    access_key: &str,
) -> Result<i64, QueryError> {
    client
        .query_one(
            "SELECT count(*) FROM users WHERE main_access_key = $1",
            &[&access_key],
        )
        .await
        .map_err(db_err("counting the users of a main access key"))?
        .read(0)
}

/// Deletes the keypair `access_key`; whether it existed.
pub async fn delete_keypair(
    client: &impl GenericClient,
    access_key: &str,
) -> Result<bool, QueryError> {
    let deleted = client
        .execute("DELETE FROM keypairs WHERE access_key = $1", &[&access_key])
        .await
        .map_err(db_err("deleting a keypair"))?;
    Ok(deleted > 0)
}
