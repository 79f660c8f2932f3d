//! `KeyPairResourcePolicy`: the `keypair_resource_policy`/`keypair_resource_policies` queries and
//! the create/modify/delete mutations (superadmin).

use async_graphql::{Context, InputObject, Object, SimpleObject};
use bai_schema::enums::UserRole;
use tokio_postgres::Row;

use super::context::GqlRequest;
use super::error::GqlResult;
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::scalars::{BigInt, GqlDateTime, JsonString};
use super::sql::{self, Conditions, SqlParams};
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

const POLICY_COLUMNS: &str = "p.name, p.created_at, p.default_for_unspecified::text AS \
     default_for_unspecified, p.total_resource_slots, p.max_session_lifetime, \
     p.max_concurrent_sessions, p.max_concurrent_sftp_sessions, p.max_containers_per_session, \
     p.idle_timeout, p.max_vfolder_count, p.max_vfolder_size, p.allowed_vfolder_hosts";

impl KeyPairResourcePolicy {
    fn from_row(row: &Row) -> GqlResult<KeyPairResourcePolicy> {
        Ok(KeyPairResourcePolicy {
            name: Some(row.try_get("name")?),
            created_at: Some(GqlDateTime(row.try_get("created_at")?)),
            default_for_unspecified: Some(row.try_get("default_for_unspecified")?),
            total_resource_slots: Some(JsonString(row.try_get("total_resource_slots")?)),
            max_session_lifetime: Some(row.try_get("max_session_lifetime")?),
            max_concurrent_sessions: Some(row.try_get("max_concurrent_sessions")?),
            max_concurrent_sftp_sessions: Some(row.try_get("max_concurrent_sftp_sessions")?),
            max_containers_per_session: Some(row.try_get("max_containers_per_session")?),
            idle_timeout: Some(BigInt(row.try_get("idle_timeout")?)),
            max_vfolder_count: Some(row.try_get("max_vfolder_count")?),
            max_vfolder_size: Some(BigInt(row.try_get("max_vfolder_size")?)),
            allowed_vfolder_hosts: Some(JsonString(row.try_get("allowed_vfolder_hosts")?)),
        })
    }
}

async fn load_policies(
    request: &GqlRequest,
    conditions: &Conditions,
    params: &SqlParams,
) -> GqlResult<Vec<KeyPairResourcePolicy>> {
    let client = sql::connection(&request.db).await?;
    let statement = format!(
        "SELECT {POLICY_COLUMNS} FROM keypair_resource_policies p {} ORDER BY p.name",
        conditions.where_clause()
    );
    sql::query(&client, &statement, params)
        .await?
        .iter()
        .map(KeyPairResourcePolicy::from_row)
        .collect()
}

/// Users see only the policies of their own keypairs.
fn own_policies_condition(request: &GqlRequest, params: &mut SqlParams) -> Option<String> {
    (request.requester.role == UserRole::User).then(|| {
        format!(
            "p.name IN (SELECT k.resource_policy FROM keypairs k WHERE k.\"user\" = {})",
            params.push(request.requester.user_uuid)
        )
    })
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
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        match name {
            Some(name) => {
                conditions.add(format!("p.name = {}", params.push(name)));
                if let Some(own) = own_policies_condition(request, &mut params) {
                    conditions.add(own);
                }
            }
            None => conditions.add(format!(
                "p.name = (SELECT k.resource_policy FROM keypairs k WHERE k.access_key = {})",
                params.push(request.requester.access_key.clone())
            )),
        }
        Ok(load_policies(request, &conditions, &params)
            .await?
            .into_iter()
            .next())
    }

    /// Every policy; users get the policies of their own keypairs.
    async fn keypair_resource_policies(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<KeyPairResourcePolicy>>> {
        let request = GqlRequest::of(ctx)?;
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        if let Some(own) = own_policies_condition(request, &mut params) {
            conditions.add(own);
        }
        Ok(Some(load_policies(request, &conditions, &params).await?))
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
    let mut params = SqlParams::new();
    let statement = format!(
        "WITH p AS (INSERT INTO keypair_resource_policies (name, default_for_unspecified, \
             total_resource_slots, max_session_lifetime, max_concurrent_sessions, \
             max_concurrent_sftp_sessions, max_containers_per_session, idle_timeout, \
             max_vfolder_count, max_vfolder_size, allowed_vfolder_hosts) \
         VALUES ({}, ({}::text)::defaultforunspecified, {}, {}, {}, {}, {}, {}, {}, {}, {}) RETURNING *) \
         SELECT {POLICY_COLUMNS} FROM p",
        params.push(name),
        params.push(unspecified),
        params.push(slots),
        params.push(props.max_session_lifetime.unwrap_or(0)),
        params.push(props.max_concurrent_sessions),
        params.push(props.max_concurrent_sftp_sessions.unwrap_or(1)),
        params.push(props.max_containers_per_session),
        params.push(props.idle_timeout.0),
        params.push(props.max_vfolder_count.unwrap_or(0)),
        params.push(props.max_vfolder_size.map_or(0, |size| size.0)),
        params.push(hosts),
    );
    match sql::query_opt_raw(&client, &statement, &params).await? {
        Some(row) => Ok(Outcome::success(Some(KeyPairResourcePolicy::from_row(
            &row,
        )?))),
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
    let mut params = SqlParams::new();
    let mut sets = Vec::new();
    if let Some(v) = props.default_for_unspecified {
        let v = default_for_unspecified(&v)?;
        sets.push(format!(
            "default_for_unspecified = ({}::text)::defaultforunspecified",
            params.push(v)
        ));
    }
    if let Some(JsonString(value)) = &props.total_resource_slots {
        let slots = validate::resource_slots_input("total_resource_slots", value)?;
        sets.push(format!("total_resource_slots = {}", params.push(slots)));
    }
    for (column, value) in [
        ("max_session_lifetime", props.max_session_lifetime),
        ("max_concurrent_sessions", props.max_concurrent_sessions),
        (
            "max_concurrent_sftp_sessions",
            props.max_concurrent_sftp_sessions,
        ),
        (
            "max_containers_per_session",
            props.max_containers_per_session,
        ),
        ("max_vfolder_count", props.max_vfolder_count),
    ] {
        if let Some(v) = value {
            sets.push(format!("{column} = {}", params.push(v)));
        }
    }
    if let Some(v) = props.idle_timeout {
        sets.push(format!("idle_timeout = {}", params.push(v.0)));
    }
    if let Some(v) = props.max_vfolder_size {
        sets.push(format!("max_vfolder_size = {}", params.push(v.0)));
    }
    if let Some(JsonString(value)) = &props.allowed_vfolder_hosts {
        let hosts = validate::vfolder_host_permissions_input("allowed_vfolder_hosts", value)?;
        sets.push(format!("allowed_vfolder_hosts = {}", params.push(hosts)));
    }
    if sets.is_empty() {
        sets.push("name = name".to_owned());
    }
    let statement = format!(
        "UPDATE keypair_resource_policies SET {} WHERE name = {}",
        sets.join(", "),
        params.push(name)
    );
    let count = client
        .execute(statement.as_str(), &params.as_refs())
        .await?;
    Ok(if count > 0 {
        Outcome::success(None)
    } else {
        Outcome::no_match("ModifyKeyPairResourcePolicy")
    })
}

async fn delete_policy(ctx: &Context<'_>, name: String) -> Step<()> {
    let (_, client) = mutation::begin(
        ctx,
        "delete_keypair_resource_policy",
        MutationRoles::SuperadminOnly,
    )
    .await?;
    let count = client
        .execute(
            "DELETE FROM keypair_resource_policies WHERE name = $1",
            &[&name],
        )
        .await?;
    Ok(if count > 0 {
        Outcome::success(None)
    } else {
        Outcome::no_match("DeleteKeyPairResourcePolicy")
    })
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
