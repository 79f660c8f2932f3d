//! Keypairs joined with their users and resource policies: what request authentication needs,
//! the owner lookups of "act on behalf of" requests, and the login of `POST /auth/authorize`.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err, slots_column};
use crate::enums::{DefaultForUnspecified, UserRole, UserStatus};
use crate::slots::ResourceSlot;

/// One row of `keypair_resource_policies`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeypairResourcePolicy {
    pub name: String,
    pub default_for_unspecified: DefaultForUnspecified,
    pub total_resource_slots: ResourceSlot,
    pub max_session_lifetime: i32,
    pub max_concurrent_sessions: i32,
    pub max_pending_session_count: Option<i32>,
    pub max_pending_session_resource_slots: Option<ResourceSlot>,
    pub max_concurrent_sftp_sessions: i32,
    pub max_containers_per_session: i32,
    pub max_vfolder_count: i32,
    pub max_vfolder_size: i64,
    pub idle_timeout: i64,
    pub allowed_vfolder_hosts: serde_json::Value,
}

/// The user a keypair belongs to (everything but the password and description).
#[derive(Debug, Clone, PartialEq)]
pub struct KeypairUser {
    pub uuid: Uuid,
    pub username: Option<String>,
    pub email: String,
    pub full_name: Option<String>,
    pub domain_name: Option<String>,
    pub role: UserRole,
    pub status: UserStatus,
    /// `users.allowed_client_ip` as CIDR texts; empty means any address.
    pub allowed_client_ip: Vec<String>,
    pub need_password_change: bool,
    pub sudo_session_enabled: bool,
    pub main_access_key: Option<String>,
    /// The user's resource policy name (`user_resource_policies`).
    pub resource_policy: String,
}

/// An active keypair with its user and resource policy: the result of the auth lookup.
#[derive(Clone, PartialEq)]
pub struct KeypairCredential {
    pub access_key: String,
    /// Used only to verify signatures; never logged (see the `Debug` impl) nor sent.
    pub secret_key: String,
    pub is_admin: bool,
    pub rate_limit: i32,
    /// `keypairs.user_id`: the owner's email, kept as a legacy id.
    pub user_id: Option<String>,
    pub user: KeypairUser,
    pub policy: KeypairResourcePolicy,
}

impl std::fmt::Debug for KeypairCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeypairCredential")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<hidden>")
            .field("is_admin", &self.is_admin)
            .field("rate_limit", &self.rate_limit)
            .field("user", &self.user)
            .field("policy", &self.policy.name)
            .finish()
    }
}

const CREDENTIAL_SQL: &str = r#"
SELECT k.access_key, k.secret_key, k.is_admin, k.rate_limit, k.user_id,
       u.uuid, u.username, u.email, u.full_name, u.domain_name, u.role, u.status,
       COALESCE(u.allowed_client_ip::text[], '{}') AS allowed_client_ip,
       u.need_password_change, u.sudo_session_enabled, u.main_access_key,
       u.resource_policy AS user_resource_policy,
       p.name AS policy_name, p.default_for_unspecified, p.total_resource_slots,
       p.max_session_lifetime, p.max_concurrent_sessions, p.max_pending_session_count,
       p.max_pending_session_resource_slots, p.max_concurrent_sftp_sessions,
       p.max_containers_per_session, p.max_vfolder_count, p.max_vfolder_size, p.idle_timeout,
       p.allowed_vfolder_hosts
FROM keypairs k
JOIN users u ON k."user" = u.uuid
JOIN keypair_resource_policies p ON k.resource_policy = p.name
WHERE k.access_key = $1 AND k.is_active
"#;

/// The active keypair `access_key` with its user and policy, or `None` when there is no such
/// active keypair.
pub async fn find_active_credential(
    client: &impl GenericClient,
    access_key: &str,
) -> Result<Option<KeypairCredential>, QueryError> {
    let statement = client
        .prepare_cached(CREDENTIAL_SQL)
        .await
        .map_err(db_err("preparing the keypair lookup"))?;
    let Some(row) = client
        .query_opt(&statement, &[&access_key])
        .await
        .map_err(db_err("looking up a keypair"))?
    else {
        return Ok(None);
    };
    let key = access_key.to_owned();
    let pending_slots: Option<serde_json::Value> =
        row.read("max_pending_session_resource_slots")?;
    let policy = KeypairResourcePolicy {
        name: row.read("policy_name")?,
        default_for_unspecified: row.read("default_for_unspecified")?,
        total_resource_slots: slots_column(
            &row.read::<_, serde_json::Value>("total_resource_slots")?,
            "keypair_resource_policies",
            "total_resource_slots",
            &key,
        )?,
        max_session_lifetime: row.read("max_session_lifetime")?,
        max_concurrent_sessions: row.read("max_concurrent_sessions")?,
        max_pending_session_count: row.read("max_pending_session_count")?,
        max_pending_session_resource_slots: pending_slots
            .map(|value| {
                slots_column(
                    &value,
                    "keypair_resource_policies",
                    "max_pending_session_resource_slots",
                    &key,
                )
            })
            .transpose()?,
        max_concurrent_sftp_sessions: row.read("max_concurrent_sftp_sessions")?,
        max_containers_per_session: row.read("max_containers_per_session")?,
        max_vfolder_count: row.read("max_vfolder_count")?,
        max_vfolder_size: row.read("max_vfolder_size")?,
        idle_timeout: row.read("idle_timeout")?,
        allowed_vfolder_hosts: row.read("allowed_vfolder_hosts")?,
    };
    let user = KeypairUser {
        uuid: row.read("uuid")?,
        username: row.read("username")?,
        email: row.read("email")?,
        full_name: row.read("full_name")?,
        domain_name: row.read("domain_name")?,
        role: row.read("role")?,
        status: row.read("status")?,
        allowed_client_ip: row.read("allowed_client_ip")?,
        need_password_change: row.read("need_password_change")?,
        sudo_session_enabled: row.read("sudo_session_enabled")?,
        main_access_key: row.read("main_access_key")?,
        resource_policy: row.read("user_resource_policy")?,
    };
    Ok(Some(KeypairCredential {
        access_key: row.read("access_key")?,
        secret_key: row
            .read::<_, Option<String>>("secret_key")?
            .unwrap_or_default(),
        is_admin: row.read("is_admin")?,
        rate_limit: row.read("rate_limit")?,
        user_id: row.read("user_id")?,
        user,
        policy,
    }))
}

/// Who owns a keypair: what "on behalf of" checks need.
#[derive(Debug, Clone, PartialEq)]
pub struct KeypairOwner {
    pub access_key: String,
    pub user_uuid: Uuid,
    pub domain_name: Option<String>,
    pub role: UserRole,
    pub resource_policy: String,
}

/// The owner of `access_key` (active or not), or `None` when the key does not exist.
pub async fn find_keypair_owner(
    client: &impl GenericClient,
    access_key: &str,
) -> Result<Option<KeypairOwner>, QueryError> {
    let statement = client
        .prepare_cached(
            r#"SELECT k.access_key, k."user", u.domain_name, u.role, k.resource_policy
               FROM keypairs k JOIN users u ON k."user" = u.uuid
               WHERE k.access_key = $1"#,
        )
        .await
        .map_err(db_err("preparing the keypair owner lookup"))?;
    let row = client
        .query_opt(&statement, &[&access_key])
        .await
        .map_err(db_err("looking up a keypair owner"))?;
    row.map(|row| {
        Ok(KeypairOwner {
            access_key: row.read(0)?,
            user_uuid: row.read(1)?,
            domain_name: row.read(2)?,
            role: row.read(3)?,
            resource_policy: row.read(4)?,
        })
    })
    .transpose()
}

/// A keypair resource policy by name.
pub async fn find_resource_policy(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<KeypairResourcePolicy>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT name, default_for_unspecified, total_resource_slots, max_session_lifetime,
                    max_concurrent_sessions, max_pending_session_count,
                    max_pending_session_resource_slots, max_concurrent_sftp_sessions,
                    max_containers_per_session, max_vfolder_count, max_vfolder_size,
                    idle_timeout, allowed_vfolder_hosts
             FROM keypair_resource_policies WHERE name = $1",
        )
        .await
        .map_err(db_err("preparing the resource policy lookup"))?;
    let Some(row) = client
        .query_opt(&statement, &[&name])
        .await
        .map_err(db_err("looking up a keypair resource policy"))?
    else {
        return Ok(None);
    };
    let table = "keypair_resource_policies";
    let pending: Option<serde_json::Value> = row.read("max_pending_session_resource_slots")?;
    Ok(Some(KeypairResourcePolicy {
        name: row.read("name")?,
        default_for_unspecified: row.read("default_for_unspecified")?,
        total_resource_slots: slots_column(
            &row.read::<_, serde_json::Value>("total_resource_slots")?,
            table,
            "total_resource_slots",
            name,
        )?,
        max_session_lifetime: row.read("max_session_lifetime")?,
        max_concurrent_sessions: row.read("max_concurrent_sessions")?,
        max_pending_session_count: row.read("max_pending_session_count")?,
        max_pending_session_resource_slots: pending
            .map(|v| slots_column(&v, table, "max_pending_session_resource_slots", name))
            .transpose()?,
        max_concurrent_sftp_sessions: row.read("max_concurrent_sftp_sessions")?,
        max_containers_per_session: row.read("max_containers_per_session")?,
        max_vfolder_count: row.read("max_vfolder_count")?,
        max_vfolder_size: row.read("max_vfolder_size")?,
        idle_timeout: row.read("idle_timeout")?,
        allowed_vfolder_hosts: row.read("allowed_vfolder_hosts")?,
    }))
}

/// A user as `POST /auth/authorize` sees it: the stored password hash is only compared.
#[derive(Clone)]
pub struct LoginUser {
    pub uuid: Uuid,
    pub email: String,
    pub role: UserRole,
    pub status: UserStatus,
    pub password_hash: Option<String>,
    pub password_changed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The user with `email` in `domain`, if any.
pub async fn find_login_user(
    client: &impl GenericClient,
    domain: &str,
    email: &str,
) -> Result<Option<LoginUser>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT uuid, email, role, status, password, password_changed_at
             FROM users WHERE domain_name = $1 AND email = $2",
        )
        .await
        .map_err(db_err("preparing the login lookup"))?;
    let row = client
        .query_opt(&statement, &[&domain, &email])
        .await
        .map_err(db_err("looking up a user for login"))?;
    row.map(|row| {
        Ok(LoginUser {
            uuid: row.read(0)?,
            email: row.read(1)?,
            role: row.read(2)?,
            status: row.read(3)?,
            password_hash: row.read(4)?,
            password_changed_at: row.read(5)?,
        })
    })
    .transpose()
}

/// An access key / secret key pair handed to a user who logged in.
pub struct IssuedKeypair {
    pub access_key: String,
    pub secret_key: String,
}

/// The user's active keypair, admin keypairs first (as the original picks it).
pub async fn find_login_keypair(
    client: &impl GenericClient,
    user_uuid: Uuid,
) -> Result<Option<IssuedKeypair>, QueryError> {
    let statement = client
        .prepare_cached(
            r#"SELECT access_key, secret_key FROM keypairs
               WHERE "user" = $1 AND is_active
               ORDER BY is_admin DESC, created_at, access_key LIMIT 1"#,
        )
        .await
        .map_err(db_err("preparing the login keypair lookup"))?;
    let row = client
        .query_opt(&statement, &[&user_uuid])
        .await
        .map_err(db_err("looking up the login keypair"))?;
    row.map(|row| {
        Ok(IssuedKeypair {
            access_key: row.read(0)?,
            secret_key: row.read::<_, Option<String>>(1)?.unwrap_or_default(),
        })
    })
    .transpose()
}

/// `keypairs.bootstrap_script` of `access_key` (empty when unset).
pub async fn find_bootstrap_script(
    client: &impl GenericClient,
    access_key: &str,
) -> Result<String, QueryError> {
    let statement = client
        .prepare_cached("SELECT bootstrap_script FROM keypairs WHERE access_key = $1")
        .await
        .map_err(db_err("preparing the bootstrap script lookup"))?;
    let row = client
        .query_opt(&statement, &[&access_key])
        .await
        .map_err(db_err("looking up a keypair bootstrap script"))?;
    Ok(match row {
        Some(row) => row.read::<_, Option<String>>(0)?.unwrap_or_default(),
        None => String::new(),
    })
}
