//! `KeyPairResourcePolicy`: the `keypair_resource_policy`/`keypair_resource_policies` queries and
//! the create/modify/delete mutations (superadmin).

use async_graphql::{Context, InputObject, Object, SimpleObject};
use bai_schema::enums::UserRole;
use bai_schema::queries::resource_policy_admin::{
    self, KeypairPolicyChanges, KeypairPolicyRow, NewKeypairPolicy, PolicyFilter,
};

use super::context::GqlRequest;
use super::error::GqlResult;
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::scalars::{BigInt, GqlDateTime, JsonString};
use super::sql;
use super::validate;

/// A keypair resource policy as the original's GraphQL type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "KeyPairResourcePolicy", rename_fields = "snake_case")]
pub struct KeyPairResourcePolicy {
    pub name: Option<String>,
    pub created_at: Option<GqlDateTime>,
    pub default_for_unspecified: Option<String>,
    pub total_resource_slots: Option<JsonString>,
    pub max_session_lifetime: Option<i32>,
    pub max_concurrent_sessions: Option<i32>,
    pub max_concurrent_sftp_sessions: Option<i32>,
    pub max_containers_per_session: Option<i32>,
    pub idle_timeout: Option<BigInt>,
    pub max_vfolder_count: Option<i32>,
    pub max_vfolder_size: Option<BigInt>,
    pub allowed_vfolder_hosts: Option<JsonString>,
}

impl From<KeypairPolicyRow> for KeyPairResourcePolicy {
    fn from(row: KeypairPolicyRow) -> KeyPairResourcePolicy {
        KeyPairResourcePolicy {
            name: Some(row.name),
            created_at: Some(GqlDateTime(row.created_at)),
            default_for_unspecified: Some(row.default_for_unspecified),
            total_resource_slots: Some(JsonString(row.total_resource_slots)),
            max_session_lifetime: Some(row.max_session_lifetime),
            max_concurrent_sessions: Some(row.max_concurrent_sessions),
            max_concurrent_sftp_sessions: Some(row.max_concurrent_sftp_sessions),
            max_containers_per_session: Some(row.max_containers_per_session),
            idle_timeout: Some(BigInt(row.idle_timeout)),
            max_vfolder_count: Some(row.max_vfolder_count),
            max_vfolder_size: Some(BigInt(row.max_vfolder_size)),
            allowed_vfolder_hosts: Some(JsonString(row.allowed_vfolder_hosts)),
        }
    }
}

async fn load_policies(
    request: &GqlRequest,
    filter: &PolicyFilter,
) -> GqlResult<Vec<KeyPairResourcePolicy>> {
    let client = sql::connection(&request.db).await?;
    Ok(resource_policy_admin::list_policies(&client, filter)
        .await?
        .into_iter()
        .map(KeyPairResourcePolicy::from)
        .collect())
}

/// Users see only the policies of their own keypairs.
fn own_policies_only(request: &GqlRequest) -> Option<uuid::Uuid> {
    (request.requester.role == UserRole::User).then_some(request.requester.user_uuid)
}

#[derive(Default)]
pub struct ResourcePolicyQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ResourcePolicyQuery {
    /// A policy by name, or the policy of the caller's keypair.
    async fn keypair_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
    ) -> async_graphql::Result<Option<KeyPairResourcePolicy>> {
        let request = GqlRequest::of(ctx)?;
        let filter = match name {
            Some(name) => PolicyFilter {
                name: Some(name),
                used_by_user: own_policies_only(request),
                of_access_key: None,
            },
            None => PolicyFilter {
                of_access_key: Some(request.requester.access_key.clone()),
                ..PolicyFilter::default()
            },
        };
        Ok(load_policies(request, &filter).await?.into_iter().next())
    }

    /// Every policy; users get the policies of their own keypairs.
    async fn keypair_resource_policies(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<KeyPairResourcePolicy>>> {
        let request = GqlRequest::of(ctx)?;
        let filter = PolicyFilter {
            used_by_user: own_policies_only(request),
            ..PolicyFilter::default()
        };
        Ok(Some(load_policies(request, &filter).await?))
    }
}

#[derive(InputObject, Debug)]
#[graphql(
    name = "CreateKeyPairResourcePolicyInput",
    rename_fields = "snake_case"
)]
pub struct CreateKeyPairResourcePolicyInput {
    pub default_for_unspecified: String,
    pub total_resource_slots: Option<JsonString>,
    #[graphql(default_with = "Some(0)")]
    pub max_session_lifetime: Option<i32>,
    pub max_concurrent_sessions: i32,
    #[graphql(default_with = "Some(1)")]
    pub max_concurrent_sftp_sessions: Option<i32>,
    pub max_containers_per_session: i32,
    pub idle_timeout: BigInt,
    pub max_vfolder_count: Option<i32>,
    pub max_vfolder_size: Option<BigInt>,
    pub allowed_vfolder_hosts: Option<JsonString>,
}

#[derive(InputObject, Debug)]
#[graphql(
    name = "ModifyKeyPairResourcePolicyInput",
    rename_fields = "snake_case"
)]
pub struct ModifyKeyPairResourcePolicyInput {
    pub default_for_unspecified: Option<String>,
    pub total_resource_slots: Option<JsonString>,
    pub max_session_lifetime: Option<i32>,
    pub max_concurrent_sessions: Option<i32>,
    pub max_concurrent_sftp_sessions: Option<i32>,
    pub max_containers_per_session: Option<i32>,
    pub idle_timeout: Option<BigInt>,
    pub max_vfolder_count: Option<i32>,
    pub max_vfolder_size: Option<BigInt>,
    pub allowed_vfolder_hosts: Option<JsonString>,
}

mutation_payload!(CreateKeyPairResourcePolicy, "CreateKeyPairResourcePolicy", resource_policy: KeyPairResourcePolicy);
mutation_payload!(ModifyKeyPairResourcePolicy, "ModifyKeyPairResourcePolicy");
mutation_payload!(DeleteKeyPairResourcePolicy, "DeleteKeyPairResourcePolicy");

type Step<T> = Result<Outcome<T>, Outcome<T>>;

fn default_for_unspecified(value: &str) -> Result<String, Outcome<()>> {
    match value {
        "LIMITED" | "UNLIMITED" => Ok(value.to_owned()),
        other => Err(Outcome::failure(format!(
            "default_for_unspecified: {other:?} is not LIMITED or UNLIMITED"
        ))),
    }
}

fn retype<T>(outcome: Outcome<()>) -> Outcome<T> {
    Outcome {
        ok: outcome.ok,
        msg: outcome.msg,
        item: None,
    }
}

async fn create_policy(
    ctx: &Context<'_>,
    name: String,
    props: CreateKeyPairResourcePolicyInput,
) -> Step<KeyPairResourcePolicy> {
    let (_, client) = mutation::begin(
        ctx,
        "create_keypair_resource_policy",
        MutationRoles::SuperadminOnly,
    )
    .await?;
    let unspecified = default_for_unspecified(&props.default_for_unspecified).map_err(retype)?;
    let slots = match &props.total_resource_slots {
        Some(JsonString(value)) => validate::resource_slots_input("total_resource_slots", value)?,
        None => serde_json::json!({}),
    };
    let hosts = match &props.allowed_vfolder_hosts {
        Some(JsonString(value)) => {
            validate::vfolder_host_permissions_input("allowed_vfolder_hosts", value)?
        }
        None => serde_json::json!({}),
    };
    let policy = NewKeypairPolicy {
        name,
        default_for_unspecified: unspecified,
        total_resource_slots: slots,
        max_session_lifetime: props.max_session_lifetime.unwrap_or(0),
        max_concurrent_sessions: props.max_concurrent_sessions,
        max_concurrent_sftp_sessions: props.max_concurrent_sftp_sessions.unwrap_or(1),
        max_containers_per_session: props.max_containers_per_session,
        idle_timeout: props.idle_timeout.0,
        max_vfolder_count: props.max_vfolder_count.unwrap_or(0),
        max_vfolder_size: props.max_vfolder_size.map_or(0, |size| size.0),
        allowed_vfolder_hosts: hosts,
    };
    match resource_policy_admin::insert_policy(&client, &policy).await? {
        Some(row) => Ok(Outcome::success(Some(KeyPairResourcePolicy::from(row)))),
        None => Ok(Outcome::no_match("CreateKeyPairResourcePolicy")),
    }
}

async fn modify_policy(
    ctx: &Context<'_>,
    name: String,
    props: ModifyKeyPairResourcePolicyInput,
) -> Step<()> {
    let (_, client) = mutation::begin(
        ctx,
        "modify_keypair_resource_policy",
        MutationRoles::SuperadminOnly,
    )
    .await?;
    let default_for_unspecified = props
        .default_for_unspecified
        .as_deref()
        .map(default_for_unspecified)
        .transpose()?;
    let total_resource_slots = match &props.total_resource_slots {
        Some(JsonString(value)) => Some(validate::resource_slots_input(
            "total_resource_slots",
            value,
        )?),
        None => None,
    };
    let allowed_vfolder_hosts = match &props.allowed_vfolder_hosts {
        Some(JsonString(value)) => Some(validate::vfolder_host_permissions_input(
            "allowed_vfolder_hosts",
            value,
        )?),
        None => None,
    };
    let changes = KeypairPolicyChanges {
        default_for_unspecified,
        total_resource_slots,
        max_session_lifetime: props.max_session_lifetime,
        max_concurrent_sessions: props.max_concurrent_sessions,
        max_concurrent_sftp_sessions: props.max_concurrent_sftp_sessions,
        max_containers_per_session: props.max_containers_per_session,
        idle_timeout: props.idle_timeout.map(|v| v.0),
        max_vfolder_count: props.max_vfolder_count,
        max_vfolder_size: props.max_vfolder_size.map(|v| v.0),
        allowed_vfolder_hosts,
    };
    Ok(
        if resource_policy_admin::update_policy(&client, &name, &changes).await? {
            Outcome::success(None)
        } else {
            Outcome::no_match("ModifyKeyPairResourcePolicy")
        },
    )
}

async fn delete_policy(ctx: &Context<'_>, name: String) -> Step<()> {
    let (_, client) = mutation::begin(
        ctx,
        "delete_keypair_resource_policy",
        MutationRoles::SuperadminOnly,
    )
    .await?;
    Ok(
        if resource_policy_admin::delete_policy(&client, &name).await? {
            Outcome::success(None)
        } else {
            Outcome::no_match("DeleteKeyPairResourcePolicy")
        },
    )
}

#[derive(Default)]
pub struct ResourcePolicyMutation;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ResourcePolicyMutation {
    async fn create_keypair_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: CreateKeyPairResourcePolicyInput,
    ) -> CreateKeyPairResourcePolicy {
        settle(create_policy(ctx, name, props).await)
    }

    async fn modify_keypair_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: ModifyKeyPairResourcePolicyInput,
    ) -> ModifyKeyPairResourcePolicy {
        settle(modify_policy(ctx, name, props).await)
    }

    /// Deletes the policy; one still used by a keypair is refused by the database.
    async fn delete_keypair_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> DeleteKeyPairResourcePolicy {
        settle(delete_policy(ctx, name).await)
    }
}
