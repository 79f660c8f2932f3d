//! The user mutations: `create_user` (with the user's first keypair, its main access key),
//! `modify_user`, `delete_user` (mark deleted, keypairs inactive) and `purge_user` (remove the
//! user and everything it owns), each in one transaction.

use async_graphql::{Context, InputObject, Object};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::context::GqlRequest;
use super::enums::{USER_ROLE, USER_STATUS};
use super::error::GqlError;
use super::keypair::insert_keypair;
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::sql::SqlParams;
use super::user::{USER_COLUMNS, User};

/// The resource policy and rate limit of the keypair made with a new user, as the original.
const DEFAULT_KEYPAIR_RESOURCE_POLICY: &str = "default";
const DEFAULT_KEYPAIR_RATE_LIMIT: i32 = 10000;

#[derive(InputObject, Debug)]
#[graphql(name = "UserInput", rename_fields = "snake_case")]
pub struct UserInput {
    pub username: String,
    pub password: String,
    pub need_password_change: bool,
    #[graphql(default_with = "Some(\"\".to_owned())")]
    pub full_name: Option<String>,
    #[graphql(default_with = "Some(\"\".to_owned())")]
    pub description: Option<String>,
    #[graphql(default_with = "Some(true)")]
    pub is_active: Option<bool>,
    #[graphql(default_with = "Some(\"active\".to_owned())")]
    pub status: Option<String>,
    #[graphql(default = "default")]
    pub domain_name: String,
    #[graphql(default_with = "Some(\"user\".to_owned())")]
    pub role: Option<String>,
    pub group_ids: Option<Vec<String>>,
    pub allowed_client_ip: Option<Vec<String>>,
    #[graphql(default_with = "Some(false)")]
    pub totp_activated: Option<bool>,
    #[graphql(default_with = "Some(\"default\".to_owned())")]
    pub resource_policy: Option<String>,
    #[graphql(default_with = "Some(false)")]
    pub sudo_session_enabled: Option<bool>,
}

#[derive(InputObject, Debug)]
#[graphql(name = "ModifyUserInput", rename_fields = "snake_case")]
pub struct ModifyUserInput {
    pub username: Option<String>,
    pub password: Option<String>,
    pub need_password_change: Option<bool>,
    pub full_name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub status: Option<String>,
    pub domain_name: Option<String>,
    pub role: Option<String>,
    pub group_ids: Option<Vec<String>>,
    pub allowed_client_ip: Option<Vec<String>>,
    pub totp_activated: Option<bool>,
    pub resource_policy: Option<String>,
    pub sudo_session_enabled: Option<bool>,
    pub main_access_key: Option<String>,
}

#[derive(InputObject, Debug)]
#[graphql(name = "PurgeUserInput", rename_fields = "snake_case")]
pub struct PurgeUserInput {
    #[graphql(default_with = "Some(false)")]
    pub purge_shared_vfolders: Option<bool>,
}

mutation_payload!(CreateUser, "CreateUser", user: User);
mutation_payload!(ModifyUser, "ModifyUser", user: User);
mutation_payload!(DeleteUser, "DeleteUser");
mutation_payload!(PurgeUser, "PurgeUser");

type Step<T> = Result<Outcome<T>, Outcome<T>>;

fn status_label(status: &str) -> Result<&'static str, GqlError> {
    USER_STATUS.label_of(status).ok_or_else(|| {
        GqlError::invalid(format!(
            "status: {status:?} is not one of {}",
            USER_STATUS.labels.join(", ")
        ))
    })
}

fn role_label(role: &str) -> Result<&'static str, GqlError> {
    USER_ROLE.label_of(role).ok_or_else(|| {
        GqlError::invalid(format!(
            "role: {role:?} is not one of {}",
            USER_ROLE.labels.join(", ")
        ))
    })
}

fn parse_group_ids(ids: &[String]) -> Result<Vec<Uuid>, GqlError> {
    ids.iter()
        .map(|id| {
            Uuid::parse_str(id)
                .map_err(|_| GqlError::invalid(format!("group_ids: {id:?} is not a group id")))
        })
        .collect()
}

/// bcrypt is slow on purpose; it runs on a blocking thread.
async fn hash_password(password: String, cost: u32) -> Result<String, GqlError> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(|e| GqlError::Internal(format!("password hashing task: {e}")))?
        .map_err(|e| GqlError::Internal(format!("password hashing: {e}")))
}

/// The user row as the mutation result.
async fn reload_user(
    client: &impl GenericClient,
    uuid: Uuid,
) -> Result<Option<User>, Outcome<User>> {
    let statement = format!(
        "SELECT {USER_COLUMNS}, (SELECT coalesce(json_agg(json_build_object('id', g.id, \
         'name', g.name) ORDER BY g.name), '[]'::json) FROM association_groups_users ag \
         JOIN groups g ON g.id = ag.group_id WHERE ag.user_id = u.uuid) AS groups \
         FROM users u WHERE u.uuid = $1"
    );
    match client.query_opt(&statement, &[&uuid]).await? {
        Some(row) => Ok(Some(User::from_row(&row, true)?)),
        None => Ok(None),
    }
}

/// Associates the user with those of `group_ids` that belong to `domain`.
async fn join_groups(
    client: &impl GenericClient,
    user: Uuid,
    domain: &str,
    group_ids: &[Uuid],
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO association_groups_users (user_id, group_id) \
             SELECT $1, g.id FROM groups g WHERE g.domain_name = $2 AND g.id = ANY($3) \
             ON CONFLICT DO NOTHING",
            &[&user, &domain, &group_ids],
        )
        .await
        .map(|_| ())
}

async fn create_user(ctx: &Context<'_>, email: String, props: UserInput) -> Step<User> {
    let (request, mut client) =
        mutation::begin(ctx, "create_user", MutationRoles::SuperadminOnly).await?;
    let status = match (&props.status, props.is_active) {
        (None, Some(false)) => "inactive",
        (None, _) => "active",
        (Some(status), _) => status_label(status)?,
    };
    let role = role_label(props.role.as_deref().unwrap_or("user"))?;
    let group_ids = parse_group_ids(props.group_ids.as_deref().unwrap_or_default())?;
    let username = if props.username.is_empty() {
        email.clone()
    } else {
        props.username
    };
    let password = hash_password(props.password, request.settings.bcrypt_cost).await?;

    let transaction = client.transaction().await?;
    let mut params = SqlParams::new();
    let statement = format!(
        "INSERT INTO users (username, email, password, need_password_change, full_name, \
             description, status, status_info, domain_name, role, allowed_client_ip, \
             totp_activated, resource_policy, sudo_session_enabled) \
         VALUES ({}, {}, {}, {}, {}, {}, ({}::text)::userstatus, 'admin-requested', {}, \
             ({}::text)::userrole, {}::text[]::cidr[], {}, {}, {}) RETURNING uuid",
        params.push(username),
        params.push(email.clone()),
        params.push(password),
        params.push(props.need_password_change),
        params.push(props.full_name.unwrap_or_default()),
        params.push(props.description.unwrap_or_default()),
        params.push(status.to_owned()),
        params.push(props.domain_name.clone()),
        params.push(role.to_owned()),
        params.push(props.allowed_client_ip),
        params.push(props.totp_activated.unwrap_or(false)),
        params.push(
            props
                .resource_policy
                .unwrap_or_else(|| "default".to_owned())
        ),
        params.push(props.sudo_session_enabled.unwrap_or(false)),
    );
    let uuid: Uuid = transaction
        .query_one(statement.as_str(), &params.as_refs())
        .await?
        .get(0);

    // The user's first keypair becomes its main access key.
    let is_admin = matches!(role, "superadmin" | "admin");
    let keypair = insert_keypair(
        &*transaction,
        &email,
        status == "active",
        is_admin,
        DEFAULT_KEYPAIR_RESOURCE_POLICY,
        DEFAULT_KEYPAIR_RATE_LIMIT,
    )
    .await?
    .ok_or_else(|| Outcome::failure("unexpected error: the new user vanished"))?;
    let access_key: String = keypair.get("access_key");
    transaction
        .execute(
            "UPDATE users SET main_access_key = $1 WHERE uuid = $2",
            &[&access_key, &uuid],
        )
        .await?;
    if !group_ids.is_empty() {
        join_groups(&*transaction, uuid, &props.domain_name, &group_ids).await?;
    }
    let user = reload_user(&*transaction, uuid).await?;
    transaction.commit().await?;
    Ok(Outcome::success(user))
}

async fn modify_user(ctx: &Context<'_>, email: String, props: ModifyUserInput) -> Step<User> {
    let (request, mut client) =
        mutation::begin(ctx, "modify_user", MutationRoles::SuperadminOnly).await?;
    let group_ids = match &props.group_ids {
        Some(ids) if !ids.is_empty() => Some(parse_group_ids(ids)?),
        _ => None,
    };
    let mut params = SqlParams::new();
    let mut sets: Vec<String> = Vec::new();
    let mut set =
        |column: &str, placeholder: String| sets.push(format!("{column} = {placeholder}"));
    if let Some(v) = props.username {
        set("username", params.push(v));
    }
    let changes_password = props.password.is_some();
    if let Some(password) = props.password {
        let hashed = hash_password(password, request.settings.bcrypt_cost).await?;
        set("password", params.push(hashed));
    }
    if let Some(v) = props.need_password_change {
        set("need_password_change", params.push(v));
    }
    if let Some(v) = props.full_name {
        set("full_name", params.push(v));
    }
    if let Some(v) = props.description {
        set("description", params.push(v));
    }
    let new_status = match (&props.status, props.is_active) {
        (Some(status), _) => Some(status_label(status)?),
        (None, Some(true)) => Some("active"),
        (None, Some(false)) => Some("inactive"),
        (None, None) => None,
    };
    if let Some(status) = new_status {
        set(
            "status",
            format!("({}::text)::userstatus", params.push(status.to_owned())),
        );
    }
    if let Some(v) = &props.domain_name {
        set("domain_name", params.push(v.clone()));
    }
    let new_role = props.role.as_deref().map(role_label).transpose()?;
    if let Some(role) = new_role {
        set(
            "role",
            format!("({}::text)::userrole", params.push(role.to_owned())),
        );
    }
    if let Some(v) = props.allowed_client_ip {
        set(
            "allowed_client_ip",
            format!("{}::text[]::cidr[]", params.push(v)),
        );
    }
    if let Some(v) = props.totp_activated {
        set("totp_activated", params.push(v));
    }
    if let Some(v) = props.resource_policy {
        set("resource_policy", params.push(v));
    }
    if let Some(v) = props.sudo_session_enabled {
        set("sudo_session_enabled", params.push(v));
    }
    if let Some(v) = &props.main_access_key {
        set("main_access_key", params.push(v.clone()));
    }
    if sets.is_empty() && group_ids.is_none() {
        return Ok(Outcome::failure("nothing to update"));
    }
    if changes_password {
        sets.push("password_changed_at = now()".to_owned());
    }

    let transaction = client.transaction().await?;
    let Some(previous) = transaction
        .query_opt(
            "SELECT uuid, domain_name, role::text, status::text FROM users WHERE email = $1 FOR UPDATE",
            &[&email],
        )
        .await?
    else {
        return Ok(Outcome::no_match("ModifyUser"));
    };
    let uuid: Uuid = previous.get(0);
    let previous_domain: Option<String> = previous.get(1);
    let previous_role: String = previous.get(2);
    let previous_status: String = previous.get(3);
    if new_status.is_some_and(|status| status != previous_status) {
        sets.push("status_info = 'admin-requested'".to_owned());
    }
    if let Some(main_access_key) = &props.main_access_key {
        let owner: Option<Uuid> = transaction
            .query_opt(
                "SELECT \"user\" FROM keypairs WHERE access_key = $1",
                &[main_access_key],
            )
            .await?
            .map(|row| row.get(0));
        match owner {
            None => {
                return Ok(Outcome::failure(
                    "unexpected error: Cannot set non-existing access key as the main access key.",
                ));
            }
            Some(owner) if owner != uuid => {
                return Ok(Outcome::failure(
                    "unexpected error: Cannot set another user's access key as the main access key.",
                ));
            }
            Some(_) => {}
        }
    }
    sets.push("modified_at = now()".to_owned());
    let statement = format!(
        "UPDATE users SET {} WHERE uuid = {} RETURNING domain_name",
        sets.join(", "),
        params.push(uuid)
    );
    let updated = transaction
        .query_one(statement.as_str(), &params.as_refs())
        .await?;
    let new_domain: Option<String> = updated.get(0);

    if let Some(role) = new_role.filter(|role| *role != previous_role) {
        adjust_keypairs_for_role(&*transaction, uuid, role).await?;
    }
    if previous_domain != new_domain && group_ids.is_none() {
        transaction
            .execute(
                "DELETE FROM association_groups_users WHERE user_id = $1",
                &[&uuid],
            )
            .await?;
    }
    if let Some(group_ids) = &group_ids {
        transaction
            .execute(
                "DELETE FROM association_groups_users WHERE user_id = $1",
                &[&uuid],
            )
            .await?;
        join_groups(
            &*transaction,
            uuid,
            new_domain.as_deref().unwrap_or_default(),
            group_ids,
        )
        .await?;
    }
    let user = reload_user(&*transaction, uuid).await?;
    transaction.commit().await?;
    Ok(Outcome::success(user))
}

/// A user promoted to (super)admin gets its best keypair active and admin; a user demoted
/// loses admin on its best keypair and its other active admin keypairs are deactivated.
async fn adjust_keypairs_for_role(
    client: &impl GenericClient,
    uuid: Uuid,
    role: &str,
) -> Result<(), tokio_postgres::Error> {
    let keypairs = client
        .query(
            "SELECT access_key, is_admin, is_active FROM keypairs WHERE \"user\" = $1 \
             ORDER BY is_admin DESC, is_active DESC",
            &[&uuid],
        )
        .await?;
    if matches!(role, "superadmin" | "admin") {
        if let Some(first) = keypairs.first() {
            let (is_admin, is_active): (bool, bool) = (first.get(1), first.get(2));
            if !is_admin || !is_active {
                client
                    .execute(
                        "UPDATE keypairs SET is_admin = true, is_active = true WHERE \"user\" = $1",
                        &[&uuid],
                    )
                    .await?;
            }
        }
        return Ok(());
    }
    for (index, keypair) in keypairs.iter().enumerate() {
        let access_key: String = keypair.get(0);
        let (is_admin, is_active): (bool, bool) = (keypair.get(1), keypair.get(2));
        if index == 0 {
            client
                .execute(
                    "UPDATE keypairs SET is_admin = false WHERE access_key = $1",
                    &[&access_key],
                )
                .await?;
        } else if is_admin && is_active {
            client
                .execute(
                    "UPDATE keypairs SET is_active = false WHERE access_key = $1",
                    &[&access_key],
                )
                .await?;
        }
    }
    Ok(())
}

async fn delete_user(ctx: &Context<'_>, email: String) -> Step<()> {
    let (_, mut client) =
        mutation::begin(ctx, "delete_user", MutationRoles::SuperadminOnly).await?;
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "UPDATE keypairs SET is_active = false WHERE user_id = $1",
            &[&email],
        )
        .await?;
    let count = transaction
        .execute(
            "UPDATE users SET status = 'deleted', status_info = 'admin-requested', \
             modified_at = now() WHERE email = $1",
            &[&email],
        )
        .await?;
    if count == 0 {
        return Ok(Outcome::no_match("DeleteUser"));
    }
    transaction.commit().await?;
    Ok(Outcome::success(None))
}

/// Kernel statuses that hold agent resources (the original's
/// `AGENT_RESOURCE_OCCUPYING_KERNEL_STATUSES`).
const ACTIVE_KERNEL_CONDITION: &str = "k.status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')";

async fn purge_user(ctx: &Context<'_>, email: String, props: PurgeUserInput) -> Step<()> {
    let (request, mut client) =
        mutation::begin(ctx, "purge_user", MutationRoles::SuperadminOnly).await?;
    let transaction = client.transaction().await?;
    let Some(row) = transaction
        .query_opt(
            "SELECT uuid FROM users WHERE email = $1 FOR UPDATE",
            &[&email],
        )
        .await?
    else {
        return Ok(Outcome::no_match("PurgeUser"));
    };
    let uuid: Uuid = row.get(0);

    let mounted: i64 = transaction
        .query_one(
            &format!(
                "SELECT count(*) FROM vfolder_attachment va JOIN vfolders v ON v.id = va.vfolder \
                 JOIN kernels k ON k.id = va.kernel WHERE v.\"user\" = $1 AND {ACTIVE_KERNEL_CONDITION}"
            ),
            &[&uuid],
        )
        .await?
        .get(0);
    if mounted > 0 {
        return Ok(Outcome::failure(
            "unexpected error: Some of user's virtual folders are mounted to active kernels. \
             Terminate those kernels first.",
        ));
    }
    let active: i64 = transaction
        .query_one(
            &format!("SELECT count(*) FROM kernels k WHERE k.user_uuid = $1 AND {ACTIVE_KERNEL_CONDITION}"),
            &[&uuid],
        )
        .await?
        .get(0);
    if active > 0 {
        return Ok(Outcome::failure(
            "unexpected error: User has some active kernels. Terminate them first.",
        ));
    }
    if !props.purge_shared_vfolders.unwrap_or(false) {
        migrate_shared_vfolders(&*transaction, uuid, &request.requester).await?;
    }
    // Deleting a folder's data is the storage proxy's work; until the storage broker does it
    // here, a user who still owns folders is not purged (nothing is left half-deleted).
    let folders: i64 = transaction
        .query_one(
            "SELECT count(*) FROM vfolders WHERE \"user\" = $1",
            &[&uuid],
        )
        .await?
        .get(0);
    if folders > 0 {
        return Ok(Outcome::failure(format!(
            "unexpected error: the user still owns {folders} virtual folder(s); delete them first"
        )));
    }
    for statement in [
        "DELETE FROM vfolder_permissions WHERE \"user\" = $1",
        "DELETE FROM kernels WHERE user_uuid = $1",
        "DELETE FROM sessions WHERE user_uuid = $1",
        "DELETE FROM session_templates WHERE user_uuid = $1",
    ] {
        transaction.execute(statement, &[&uuid]).await?;
    }
    let access_keys: Vec<String> = transaction
        .query(
            "DELETE FROM keypairs WHERE \"user\" = $1 RETURNING access_key",
            &[&uuid],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let count = transaction
        .execute("DELETE FROM users WHERE uuid = $1", &[&uuid])
        .await?;
    if count == 0 {
        return Ok(Outcome::no_match("PurgeUser"));
    }
    transaction.commit().await?;
    forget_keypair_counters(request, &access_keys).await;
    Ok(Outcome::success(None))
}

/// Gives the user's shared folders (those with per-user permissions) to the purging admin,
/// renaming a folder whose name the admin already uses.
async fn migrate_shared_vfolders(
    client: &impl GenericClient,
    user: Uuid,
    target: &super::context::Requester,
) -> Result<(), tokio_postgres::Error> {
    let shared = client
        .query(
            "SELECT DISTINCT v.id, v.name FROM vfolders v JOIN vfolder_permissions p ON p.vfolder = v.id \
             WHERE v.\"user\" = $1",
            &[&user],
        )
        .await?;
    if shared.is_empty() {
        return Ok(());
    }
    let taken: Vec<String> = client
        .query(
            "SELECT name FROM vfolders WHERE \"user\" = $1",
            &[&target.user_uuid],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let ids: Vec<Uuid> = shared.iter().map(|row| row.get(0)).collect();
    client
        .execute(
            "DELETE FROM vfolder_invitations WHERE invitee = $1 AND vfolder = ANY($2)",
            &[&target.email, &ids],
        )
        .await?;
    client
        .execute(
            "DELETE FROM vfolder_permissions WHERE \"user\" = $1 AND vfolder = ANY($2)",
            &[&target.user_uuid, &ids],
        )
        .await?;
    for row in &shared {
        let id: Uuid = row.get(0);
        let mut name: String = row.get(1);
        if taken.contains(&name) {
            name = format!("{name}-{}", &Uuid::new_v4().simple().to_string()[..10]);
        }
        client
            .execute(
                "UPDATE vfolders SET \"user\" = $1, name = $2 WHERE id = $3",
                &[&target.user_uuid, &name, &id],
            )
            .await?;
    }
    Ok(())
}

/// Drops the Redis counters of deleted keypairs.
async fn forget_keypair_counters(request: &GqlRequest, access_keys: &[String]) {
    let Some(redis) = &request.redis_stat else {
        return;
    };
    if access_keys.is_empty() {
        return;
    }
    let keys: Vec<String> = access_keys
        .iter()
        .flat_map(|ak| {
            [
                format!("keypair.concurrency_used.{ak}"),
                format!("keypair.sftp_concurrency_used.{ak}"),
            ]
        })
        .collect();
    let mut connection = redis.clone();
    let _: Result<i64, _> = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut connection)
        .await;
}

#[derive(Default)]
pub struct UserMutation;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl UserMutation {
    async fn create_user(&self, ctx: &Context<'_>, email: String, props: UserInput) -> CreateUser {
        settle(create_user(ctx, email, props).await)
    }

    async fn modify_user(
        &self,
        ctx: &Context<'_>,
        email: String,
        props: ModifyUserInput,
    ) -> ModifyUser {
        settle(modify_user(ctx, email, props).await)
    }

    /// Marks the user deleted and deactivates its keypairs.
    async fn delete_user(&self, ctx: &Context<'_>, email: String) -> DeleteUser {
        settle(delete_user(ctx, email).await)
    }

    /// Removes the user with its keypairs, sessions and (unshared) folders.
    async fn purge_user(
        &self,
        ctx: &Context<'_>,
        email: String,
        props: PurgeUserInput,
    ) -> PurgeUser {
        settle(purge_user(ctx, email, props).await)
    }
}
