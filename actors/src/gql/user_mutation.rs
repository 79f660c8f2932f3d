//! The user mutations: `create_user` (with the user's first keypair, its main access key),
//! `modify_user`, `delete_user` (mark deleted, keypairs inactive) and `purge_user` (remove the
//! user and everything it owns), each in one transaction.

use async_graphql::{Context, InputObject, Object};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use bai_schema::queries::user_admin::{self, NewUser, UserChanges};

use super::context::GqlRequest;
use super::enums::{USER_ROLE, USER_STATUS};
use super::error::GqlError;
use super::keypair::insert_keypair;
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::user::User;
use bai_schema::queries::user_list;

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
    match user_list::changed_user(client, uuid).await? {
        Some(row) => Ok(Some(User::from_row(row)?)),
        None => Ok(None),
    }
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

    let new_user = NewUser {
        username,
        email: email.clone(),
        password_hash: password,
        need_password_change: props.need_password_change,
        full_name: props.full_name.unwrap_or_default(),
        description: props.description.unwrap_or_default(),
        status: status.to_owned(),
        domain_name: props.domain_name.clone(),
        role: role.to_owned(),
        allowed_client_ip: props.allowed_client_ip,
        totp_activated: props.totp_activated.unwrap_or(false),
        resource_policy: props
            .resource_policy
            .unwrap_or_else(|| "default".to_owned()),
        sudo_session_enabled: props.sudo_session_enabled.unwrap_or(false),
    };
    let transaction = client.transaction().await?;
    let uuid = user_admin::insert_user(&transaction, &new_user).await?;

    // The user's first keypair becomes its main access key.
    let is_admin = matches!(role, "superadmin" | "admin");
    let keypair = insert_keypair(
        &transaction,
        &email,
        status == "active",
        is_admin,
        DEFAULT_KEYPAIR_RESOURCE_POLICY,
        DEFAULT_KEYPAIR_RATE_LIMIT,
    )
    .await?
    .ok_or_else(|| Outcome::failure("unexpected error: the new user vanished"))?;
    user_admin::set_main_access_key(&transaction, uuid, &keypair.access_key).await?;
    if !group_ids.is_empty() {
        user_admin::join_groups(&transaction, uuid, &props.domain_name, &group_ids).await?;
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
    let password_hash = match props.password {
        Some(password) => Some(hash_password(password, request.settings.bcrypt_cost).await?),
        None => None,
    };
    let new_status = match (&props.status, props.is_active) {
        (Some(status), _) => Some(status_label(status)?),
        (None, Some(true)) => Some("active"),
        (None, Some(false)) => Some("inactive"),
        (None, None) => None,
    };
    let new_role = props.role.as_deref().map(role_label).transpose()?;
    let changes = UserChanges {
        username: props.username,
        password_hash,
        need_password_change: props.need_password_change,
        full_name: props.full_name,
        description: props.description,
        status: new_status.map(str::to_owned),
        domain_name: props.domain_name,
        role: new_role.map(str::to_owned),
        allowed_client_ip: props.allowed_client_ip,
        totp_activated: props.totp_activated,
        resource_policy: props.resource_policy,
        sudo_session_enabled: props.sudo_session_enabled,
        main_access_key: props.main_access_key,
    };
    if changes.is_empty() && group_ids.is_none() {
        return Ok(Outcome::failure("nothing to update"));
    }

    let transaction = client.transaction().await?;
    let Some(previous) = user_admin::lock_user(&transaction, &email).await? else {
        return Ok(Outcome::no_match("ModifyUser"));
    };
    let uuid = previous.uuid;
    if let Some(main_access_key) = &changes.main_access_key {
        match user_admin::keypair_owner(&transaction, main_access_key).await? {
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
    let new_domain = user_admin::update_user(&transaction, uuid, &changes).await?;

    if let Some(role) = new_role.filter(|role| *role != previous.role) {
        user_admin::adjust_keypairs_for_role(&transaction, uuid, role).await?;
    }
    if previous.domain_name != new_domain && group_ids.is_none() {
        user_admin::leave_all_groups(&transaction, uuid).await?;
    }
    if let Some(group_ids) = &group_ids {
        user_admin::leave_all_groups(&transaction, uuid).await?;
        user_admin::join_groups(
            &transaction,
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

async fn delete_user(ctx: &Context<'_>, email: String) -> Step<()> {
    let (_, mut client) =
        mutation::begin(ctx, "delete_user", MutationRoles::SuperadminOnly).await?;
    let transaction = client.transaction().await?;
    if !user_admin::mark_user_deleted(&transaction, &email).await? {
        return Ok(Outcome::no_match("DeleteUser"));
    }
    transaction.commit().await?;
    Ok(Outcome::success(None))
}

async fn purge_user(ctx: &Context<'_>, email: String, props: PurgeUserInput) -> Step<()> {
    let (request, mut client) =
        mutation::begin(ctx, "purge_user", MutationRoles::SuperadminOnly).await?;
    let transaction = client.transaction().await?;
    let Some(uuid) = user_admin::lock_user_uuid(&transaction, &email).await? else {
        return Ok(Outcome::no_match("PurgeUser"));
    };
    let blockers = user_admin::purge_blockers(&transaction, uuid).await?;
    if blockers.mounted_vfolders > 0 {
        return Ok(Outcome::failure(
            "unexpected error: Some of user's virtual folders are mounted to active kernels. \
             Terminate those kernels first.",
        ));
    }
    if blockers.active_kernels > 0 {
        return Ok(Outcome::failure(
            "unexpected error: User has some active kernels. Terminate them first.",
        ));
    }
    if !props.purge_shared_vfolders.unwrap_or(false) {
        // The purging admin takes over the user's shared folders.
        let target = &request.requester;
        user_admin::hand_over_shared_vfolders(
            &transaction,
            uuid,
            target.user_uuid,
            &target.email,
            |name| format!("{name}-{}", &Uuid::new_v4().simple().to_string()[..10]),
        )
        .await?;
    }
    // Deleting a folder's data is the storage proxy's work; until the storage broker does it
    // here, a user who still owns folders is not purged (nothing is left half-deleted).
    let folders = user_admin::owned_vfolders(&transaction, uuid).await?;
    if folders > 0 {
        return Ok(Outcome::failure(format!(
            "unexpected error: the user still owns {folders} virtual folder(s); delete them first"
        )));
    }
    let Some(access_keys) = user_admin::purge_user(&transaction, uuid).await? else {
        return Ok(Outcome::no_match("PurgeUser"));
    };
    transaction.commit().await?;
    forget_keypair_counters(request, &access_keys).await;
    Ok(Outcome::success(None))
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
