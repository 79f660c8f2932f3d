//! Users as the admin mutations (`create_user`, `modify_user`, `delete_user`, `purge_user`)
//! write them: the user row, its main access key, its group memberships, the keypair
//! adjustments of a role change, and what a purge removes or hands over. Each function runs
//! one step inside the caller's transaction.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// A user to create (password already hashed, status and role already checked labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub need_password_change: bool,
    pub full_name: String,
    pub description: String,
    pub status: String,
    pub domain_name: String,
    pub role: String,
    pub allowed_client_ip: Option<Vec<String>>,
    pub totp_activated: bool,
    pub resource_policy: String,
    pub sudo_session_enabled: bool,
}

/// Inserts a user (`status_info` "admin-requested"); its uuid.
pub async fn insert_user(client: &impl GenericClient, user: &NewUser) -> Result<Uuid, QueryError> {
    client
        .query_one(
            "INSERT INTO users (username, email, password, need_password_change, full_name, \
                 description, status, status_info, domain_name, role, allowed_client_ip, \
                 totp_activated, resource_policy, sudo_session_enabled) \
             VALUES ($1, $2, $3, $4, $5, $6, ($7::text)::userstatus, 'admin-requested', $8, \
                 ($9::text)::userrole, $10::text[]::cidr[], $11, $12, $13) RETURNING uuid",
            &[
                &user.username,
                &user.email,
                &user.password_hash,
                &user.need_password_change,
                &user.full_name,
                &user.description,
                &user.status,
                &user.domain_name,
                &user.role,
                &user.allowed_client_ip,
                &user.totp_activated,
                &user.resource_policy,
                &user.sudo_session_enabled,
            ],
        )
        .await
        .map_err(db_err("creating a user"))?
        .read(0)
}

/// Makes `access_key` the main access key of the user `uuid`.
pub async fn set_main_access_key(
    client: &impl GenericClient,
    uuid: Uuid,
    access_key: &str,
) -> Result<(), QueryError> {
    client
        .execute(
            "UPDATE users SET main_access_key = $1 WHERE uuid = $2",
            &[&access_key, &uuid],
        )
        .await
        .map_err(db_err("setting a user's main access key"))?;
    Ok(())
}

/// Makes the user a member of those of `group_ids` that belong to `domain`.
pub async fn join_groups(
    client: &impl GenericClient,
    user: Uuid,
    domain: &str,
    group_ids: &[Uuid],
) -> Result<(), QueryError> {
    client
        .execute(
            "INSERT INTO association_groups_users (user_id, group_id) \
             SELECT $1, g.id FROM groups g WHERE g.domain_name = $2 AND g.id = ANY($3) \
             ON CONFLICT DO NOTHING",
            &[&user, &domain, &group_ids],
        )
        .await
        .map_err(db_err("adding a user to groups"))?;
    Ok(())
}

/// Removes the user from every group.
pub async fn leave_all_groups(client: &impl GenericClient, user: Uuid) -> Result<(), QueryError> {
    client
        .execute(
            "DELETE FROM association_groups_users WHERE user_id = $1",
            &[&user],
        )
        .await
        .map_err(db_err("removing a user from its groups"))?;
    Ok(())
}

/// A user as it is before a change, locked for the rest of the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedUser {
    pub uuid: Uuid,
    pub domain_name: Option<String>,
    pub role: String,
    pub status: String,
}

/// Locks the user with `email` (`FOR UPDATE`); `None` when there is none.
pub async fn lock_user(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<LockedUser>, QueryError> {
    let row = client
        .query_opt(
            "SELECT uuid, domain_name, role::text, status::text FROM users WHERE email = $1 FOR UPDATE",
            &[&email],
        )
        .await
        .map_err(db_err("locking a user"))?;
    row.map(|row| {
        Ok(LockedUser {
            uuid: row.read(0)?,
            domain_name: row.read(1)?,
            role: row.read(2)?,
            status: row.read(3)?,
        })
    })
    .transpose()
}

/// The owner of the keypair `access_key`, if it exists.
pub async fn keypair_owner(
    client: &impl GenericClient,
    access_key: &str,
) -> Result<Option<Uuid>, QueryError> {
    client
        .query_opt(
            "SELECT \"user\" FROM keypairs WHERE access_key = $1",
            &[&access_key],
        )
        .await
        .map_err(db_err("looking up a keypair's owner"))?
        .map(|row| row.read(0))
        .transpose()
}

/// The changes of `modify_user`: a `None` field keeps its value. A new password also sets
/// `password_changed_at`; a status other than the current one sets `status_info` to
/// "admin-requested".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub username: Option<String>,
    pub password_hash: Option<String>,
    pub need_password_change: Option<bool>,
    pub full_name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub domain_name: Option<String>,
    pub role: Option<String>,
    pub allowed_client_ip: Option<Vec<String>>,
    pub totp_activated: Option<bool>,
    pub resource_policy: Option<String>,
    pub sudo_session_enabled: Option<bool>,
    pub main_access_key: Option<String>,
}

impl UserChanges {
    /// Whether nothing of the row changes.
    pub fn is_empty(&self) -> bool {
        *self == UserChanges::default()
    }
}

/// Applies `changes` to the user `uuid` (and touches `modified_at`); the user's domain after
/// the change.
pub async fn update_user(
    client: &impl GenericClient,
    uuid: Uuid,
    changes: &UserChanges,
) -> Result<Option<String>, QueryError> {
    client
        .query_one(
            "UPDATE users SET modified_at = now(), \
                 username = coalesce($2::text, username), \
                 password = coalesce($3::text, password), \
                 password_changed_at = CASE WHEN $3::text IS NULL THEN password_changed_at \
                     ELSE now() END, \
                 need_password_change = coalesce($4::bool, need_password_change), \
                 full_name = coalesce($5::text, full_name), \
                 description = coalesce($6::text, description), \
                 status_info = CASE WHEN $7::text IS NOT NULL AND $7::text <> status::text \
                     THEN 'admin-requested' ELSE status_info END, \
                 status = coalesce(($7::text)::userstatus, status), \
                 domain_name = coalesce($8::text, domain_name), \
                 role = coalesce(($9::text)::userrole, role), \
                 allowed_client_ip = coalesce($10::text[]::cidr[], allowed_client_ip), \
                 totp_activated = coalesce($11::bool, totp_activated), \
                 resource_policy = coalesce($12::text, resource_policy), \
                 sudo_session_enabled = coalesce($13::bool, sudo_session_enabled), \
                 main_access_key = coalesce($14::text, main_access_key) \
             WHERE uuid = $1 RETURNING domain_name",
            &[
                &uuid,
                &changes.username,
                &changes.password_hash,
                &changes.need_password_change,
                &changes.full_name,
                &changes.description,
                &changes.status,
                &changes.domain_name,
                &changes.role,
                &changes.allowed_client_ip,
                &changes.totp_activated,
                &changes.resource_policy,
                &changes.sudo_session_enabled,
                &changes.main_access_key,
            ],
        )
        .await
        .map_err(db_err("modifying a user"))?
        .read(0)
}

/// Adjusts the user's keypairs to a new role: a user promoted to (super)admin gets its best
/// keypair active and admin (all of its keypairs, as the original); a user demoted loses admin
/// on its best keypair and its other active admin keypairs are deactivated.
pub async fn adjust_keypairs_for_role(
    client: &impl GenericClient,
    uuid: Uuid,
    role: &str,
) -> Result<(), QueryError> {
    let keypairs = client
        .query(
            "SELECT access_key, is_admin, is_active FROM keypairs WHERE \"user\" = $1 \
             ORDER BY is_admin DESC, is_active DESC",
            &[&uuid],
        )
        .await
        .map_err(db_err("listing a user's keypairs"))?;
    if matches!(role, "superadmin" | "admin") {
        if let Some(first) = keypairs.first() {
            let (is_admin, is_active): (bool, bool) = (first.read(1)?, first.read(2)?);
            if !is_admin || !is_active {
                client
                    .execute(
                        "UPDATE keypairs SET is_admin = true, is_active = true WHERE \"user\" = $1",
                        &[&uuid],
                    )
                    .await
                    .map_err(db_err("promoting a user's keypairs"))?;
            }
        }
        return Ok(());
    }
    for (index, keypair) in keypairs.iter().enumerate() {
        let access_key: String = keypair.read(0)?;
        let (is_admin, is_active): (bool, bool) = (keypair.read(1)?, keypair.read(2)?);
        if index == 0 {
            client
                .execute(
                    "UPDATE keypairs SET is_admin = false WHERE access_key = $1",
                    &[&access_key],
                )
                .await
                .map_err(db_err("demoting a user's keypair"))?;
        } else if is_admin && is_active {
            client
                .execute(
                    "UPDATE keypairs SET is_active = false WHERE access_key = $1",
                    &[&access_key],
                )
                .await
                .map_err(db_err("deactivating a user's admin keypair"))?;
        }
    }
    Ok(())
}

/// Deactivates the keypairs of the user with `email` and marks the user deleted; whether the
/// user exists.
pub async fn mark_user_deleted(
    client: &impl GenericClient,
    email: &str,
) -> Result<bool, QueryError> {
    client
        .execute(
            "UPDATE keypairs SET is_active = false WHERE user_id = $1",
            &[&email],
        )
        .await
        .map_err(db_err("deactivating a user's keypairs"))?;
    let updated = client
        .execute(
            "UPDATE users SET status = 'deleted', status_info = 'admin-requested', \
             modified_at = now() WHERE email = $1",
            &[&email],
        )
        .await
        .map_err(db_err("marking a user deleted"))?;
    Ok(updated > 0)
}

/// Locks the user with `email` for a purge; its uuid, or `None` when there is none.
pub async fn lock_user_uuid(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<Uuid>, QueryError> {
    client
        .query_opt(
            "SELECT uuid FROM users WHERE email = $1 FOR UPDATE",
            &[&email],
        )
        .await
        .map_err(db_err("locking a user"))?
        .map(|row| row.read(0))
        .transpose()
}

/// What keeps a user from being purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeBlockers {
    /// Mounts of the user's folders in kernels holding agent resources (all but PENDING,
    /// TERMINATED, CANCELLED, the original's `AGENT_RESOURCE_OCCUPYING_KERNEL_STATUSES`).
    pub mounted_vfolders: i64,
    /// The user's kernels holding agent resources.
    pub active_kernels: i64,
}

/// Counts what keeps the user `uuid` from being purged.
pub async fn purge_blockers(
    client: &impl GenericClient,
    uuid: Uuid,
) -> Result<PurgeBlockers, QueryError> {
    let row = client
        .query_one(
            "SELECT \
               (SELECT count(*) FROM vfolder_attachment va JOIN vfolders v ON v.id = va.vfolder \
                 JOIN kernels k ON k.id = va.kernel WHERE v.\"user\" = $1 \
                 AND k.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')) AS mounted_vfolders, \
               (SELECT count(*) FROM kernels k WHERE k.user_uuid = $1 \
                 AND k.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')) AS active_kernels",
            &[&uuid],
        )
        .await
        .map_err(db_err("counting what keeps a user from being purged"))?;
    Ok(PurgeBlockers {
        mounted_vfolders: row.read("mounted_vfolders")?,
        active_kernels: row.read("active_kernels")?,
    })
}

/// How many folders the user `uuid` owns.
pub async fn owned_vfolders(client: &impl GenericClient, uuid: Uuid) -> Result<i64, QueryError> {
    client
        .query_one(
            "SELECT count(*) FROM vfolders WHERE \"user\" = $1",
            &[&uuid],
        )
        .await
        .map_err(db_err("counting a user's folders"))?
        .read(0)
}

/// Gives the shared folders (those with per-user permissions) of the user `from` to the
/// user `to` (whose email is `to_email`), renaming a folder whose name `to` already uses with
/// `rename`.
pub async fn hand_over_shared_vfolders(
    client: &impl GenericClient,
    from: Uuid,
    to: Uuid,
    to_email: &str,
    rename: impl Fn(&str) -> String,
) -> Result<(), QueryError> {
    let shared = client
        .query(
            "SELECT DISTINCT v.id, v.name FROM vfolders v JOIN vfolder_permissions p ON p.vfolder = v.id \
             WHERE v.\"user\" = $1",
            &[&from],
        )
        .await
        .map_err(db_err("listing a user's shared folders"))?;
    if shared.is_empty() {
        return Ok(());
    }
    let taken: Vec<String> = client
        .query("SELECT name FROM vfolders WHERE \"user\" = $1", &[&to])
        .await
        .map_err(db_err("listing the new owner's folder names"))?
        .iter()
        .map(|row| row.read(0))
        .collect::<Result<_, _>>()?;
    let folders: Vec<(Uuid, String)> = shared
        .iter()
        .map(|row| Ok((row.read(0)?, row.read(1)?)))
        .collect::<Result<_, QueryError>>()?;
    let ids: Vec<Uuid> = folders.iter().map(|(id, _)| *id).collect();
    client
        .execute(
            "DELETE FROM vfolder_invitations WHERE invitee = $1 AND vfolder = ANY($2)",
            &[&to_email, &ids],
        )
        .await
        .map_err(db_err("dropping invitations to handed-over folders"))?;
    client
        .execute(
            "DELETE FROM vfolder_permissions WHERE \"user\" = $1 AND vfolder = ANY($2)",
            &[&to, &ids],
        )
        .await
        .map_err(db_err("dropping permissions on handed-over folders"))?;
    for (id, name) in folders {
        let name = if taken.contains(&name) {
            rename(&name)
        } else {
            name
        };
        client
            .execute(
                "UPDATE vfolders SET \"user\" = $1, name = $2 WHERE id = $3",
                &[&to, &name, &id],
            )
            .await
            .map_err(db_err("handing a folder over"))?;
    }
    Ok(())
}

/// Deletes the user `uuid` with its folder permissions, kernels, sessions, session templates
/// and keypairs; the access keys deleted, or `None` when the user did not exist. Run it in a
/// transaction after `purge_blockers` and `owned_vfolders` found nothing.
pub async fn purge_user(
    client: &impl GenericClient,
    uuid: Uuid,
) -> Result<Option<Vec<String>>, QueryError> {
    client
        .execute(
            "DELETE FROM vfolder_permissions WHERE \"user\" = $1",
            &[&uuid],
        )
        .await
        .map_err(db_err("deleting a user's folder permissions"))?;
    client
        .execute("DELETE FROM kernels WHERE user_uuid = $1", &[&uuid])
        .await
        .map_err(db_err("deleting a user's kernels"))?;
    client
        .execute("DELETE FROM sessions WHERE user_uuid = $1", &[&uuid])
        .await
        .map_err(db_err("deleting a user's sessions"))?;
    client
        .execute(
            "DELETE FROM session_templates WHERE user_uuid = $1",
            &[&uuid],
        )
        .await
        .map_err(db_err("deleting a user's session templates"))?;
    let access_keys: Vec<String> = client
        .query(
            "DELETE FROM keypairs WHERE \"user\" = $1 RETURNING access_key",
            &[&uuid],
        )
        .await
        .map_err(db_err("deleting a user's keypairs"))?
        .iter()
        .map(|row| row.read(0))
        .collect::<Result<_, _>>()?;
    let deleted = client
        .execute("DELETE FROM users WHERE uuid = $1", &[&uuid])
        .await
        .map_err(db_err("deleting a user"))?;
    Ok((deleted > 0).then_some(access_keys))
}
