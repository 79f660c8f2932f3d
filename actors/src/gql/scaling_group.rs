//! `ScalingGroup`: the scaling group queries, create/modify/delete, and the associations of
//! scaling groups with domains, groups (projects) and keypairs.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use serde_json::{Value, json};
use tokio_postgres::Row;
use uuid::Uuid;

use super::context::GqlRequest;
use super::error::GqlError;
use super::error::GqlResult;
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::permissions::require_superadmin_read;
use super::scalars::{GqlDateTime, JsonString};
use super::sql::{self, Conditions, SqlParams};
use bai_schema::fixture::special::scheduler_opts;

/// A scaling group as the original's GraphQL `ScalingGroup` type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "ScalingGroup", rename_fields = "snake_case")]
pub struct ScalingGroup {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub is_public: Option<bool>,
    pub created_at: Option<GqlDateTime>,
    pub wsproxy_addr: Option<String>,
    /// Shown to superadmins only (it authenticates to the wsproxy).
    pub wsproxy_api_token: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<JsonString>,
    pub scheduler: Option<String>,
    pub scheduler_opts: Option<JsonString>,
    pub use_host_network: Option<bool>,
}

const SGROUP_COLUMNS: &str = "g.name, g.description, g.is_active, g.is_public, g.created_at, \
     g.wsproxy_addr, g.wsproxy_api_token, g.driver, g.driver_opts, g.scheduler, \
     g.scheduler_opts, g.use_host_network";

impl ScalingGroup {
    fn from_row(row: &Row, show_token: bool) -> GqlResult<ScalingGroup> {
        let stored_opts: Value = row.try_get("scheduler_opts")?;
        Ok(ScalingGroup {
            name: Some(row.try_get("name")?),
            description: row.try_get("description")?,
            is_active: Some(row.try_get("is_active")?),
            is_public: Some(row.try_get("is_public")?),
            created_at: Some(GqlDateTime(row.try_get("created_at")?)),
            wsproxy_addr: row.try_get("wsproxy_addr")?,
            wsproxy_api_token: if show_token {
                row.try_get("wsproxy_api_token")?
            } else {
                None
            },
            driver: Some(row.try_get("driver")?),
            driver_opts: Some(JsonString(row.try_get("driver_opts")?)),
            scheduler: Some(row.try_get("scheduler")?),
            scheduler_opts: Some(JsonString(scheduler_opts_output(&stored_opts))),
            use_host_network: Some(row.try_get("use_host_network")?),
        })
    }
}

fn default_scheduler_opts() -> Value {
    json!({"allowed_session_types": ["interactive", "batch"], "pending_timeout": 0.0, "config": {}})
}

/// `ScalingGroupOpts` as a client gives it: the known keys checked and completed with their
/// defaults, as the fixture loader stores them.
pub fn scheduler_opts_input(value: &Value) -> Result<Value, String> {
    scheduler_opts(value)
        .map(Value::Object)
        .map_err(|e| format!("scheduler_opts: {e}"))
}

/// `ScalingGroupOpts.to_json()` of 22.09: `allowed_session_types`, `pending_timeout` (seconds,
/// a float) and `config`.
pub fn scheduler_opts_output(stored: &Value) -> Value {
    let Ok(full) = scheduler_opts(stored) else {
        return default_scheduler_opts();
    };
    let pending_timeout = full
        .get("pending_timeout")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    json!({
        "allowed_session_types": full.get("allowed_session_types").cloned().unwrap_or_else(|| json!(["interactive", "batch"])),
        "pending_timeout": pending_timeout,
        "config": full.get("config").cloned().unwrap_or_else(|| json!({})),
    })
}

async fn load_sgroups(
    request: &GqlRequest,
    join: &str,
    conditions: &Conditions,
    params: &SqlParams,
) -> GqlResult<Vec<ScalingGroup>> {
    let client = sql::connection(&request.db).await?;
    let statement = format!(
        "SELECT {SGROUP_COLUMNS} FROM scaling_groups g {join} {} ORDER BY g.name",
        conditions.where_clause()
    );
    let show_token = request.requester.is_superadmin();
    sql::query(&client, &statement, params)
        .await?
        .iter()
        .map(|row| ScalingGroup::from_row(row, show_token))
        .collect()
}

fn is_active_condition(
    conditions: &mut Conditions,
    params: &mut SqlParams,
    is_active: Option<bool>,
) {
    if let Some(is_active) = is_active {
        conditions.add(format!("g.is_active = {}", params.push(is_active)));
    }
}

#[derive(Default)]
pub struct ScalingGroupQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ScalingGroupQuery {
    async fn scaling_group(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
    ) -> async_graphql::Result<Option<ScalingGroup>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let Some(name) = name else {
            return Ok(None);
        };
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        conditions.add(format!("g.name = {}", params.push(name)));
        Ok(load_sgroups(request, "", &conditions, &params)
            .await?
            .into_iter()
            .next())
    }

    async fn scaling_groups(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<ScalingGroup>>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        if let Some(name) = name {
            conditions.add(format!("g.name = {}", params.push(name)));
        }
        is_active_condition(&mut conditions, &mut params, is_active);
        Ok(Some(load_sgroups(request, "", &conditions, &params).await?))
    }

    async fn scaling_groups_for_domain(
        &self,
        ctx: &Context<'_>,
        domain: String,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<ScalingGroup>>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        conditions.add(format!("a.domain = {}", params.push(domain)));
        is_active_condition(&mut conditions, &mut params, is_active);
        let join = "JOIN sgroups_for_domains a ON a.scaling_group = g.name";
        Ok(Some(
            load_sgroups(request, join, &conditions, &params).await?,
        ))
    }

    async fn scaling_groups_for_user_group(
        &self,
        ctx: &Context<'_>,
        user_group: String,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<ScalingGroup>>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let group_id = Uuid::parse_str(&user_group).map_err(|_| {
            GqlError::invalid(format!("user_group {user_group:?} is not a group id"))
        })?;
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        conditions.add(format!("a.\"group\" = {}", params.push(group_id)));
        is_active_condition(&mut conditions, &mut params, is_active);
        let join = "JOIN sgroups_for_groups a ON a.scaling_group = g.name";
        Ok(Some(
            load_sgroups(request, join, &conditions, &params).await?,
        ))
    }

    async fn scaling_groups_for_keypair(
        &self,
        ctx: &Context<'_>,
        access_key: String,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<ScalingGroup>>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        conditions.add(format!("a.access_key = {}", params.push(access_key)));
        is_active_condition(&mut conditions, &mut params, is_active);
        let join = "JOIN sgroups_for_keypairs a ON a.scaling_group = g.name";
        Ok(Some(
            load_sgroups(request, join, &conditions, &params).await?,
        ))
    }
}

#[derive(InputObject, Debug)]
#[graphql(name = "CreateScalingGroupInput", rename_fields = "snake_case")]
pub struct CreateScalingGroupInput {
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub is_public: Option<bool>,
    pub wsproxy_addr: Option<String>,
    pub wsproxy_api_token: Option<String>,
    pub driver: String,
    pub driver_opts: Option<JsonString>,
    pub scheduler: String,
    pub scheduler_opts: Option<JsonString>,
    pub use_host_network: Option<bool>,
}

#[derive(InputObject, Debug)]
#[graphql(name = "ModifyScalingGroupInput", rename_fields = "snake_case")]
pub struct ModifyScalingGroupInput {
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub is_public: Option<bool>,
    pub wsproxy_addr: Option<String>,
    pub wsproxy_api_token: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<JsonString>,
    pub scheduler: Option<String>,
    pub scheduler_opts: Option<JsonString>,
    pub use_host_network: Option<bool>,
}

mutation_payload!(CreateScalingGroup, "CreateScalingGroup", scaling_group: ScalingGroup);
mutation_payload!(ModifyScalingGroup, "ModifyScalingGroup");
mutation_payload!(DeleteScalingGroup, "DeleteScalingGroup");
mutation_payload!(
    AssociateScalingGroupWithDomain,
    "AssociateScalingGroupWithDomain"
);
mutation_payload!(
    DisassociateScalingGroupWithDomain,
    "DisassociateScalingGroupWithDomain"
);
mutation_payload!(
    DisassociateAllScalingGroupsWithDomain,
    "DisassociateAllScalingGroupsWithDomain"
);
mutation_payload!(
    AssociateScalingGroupWithUserGroup,
    "AssociateScalingGroupWithUserGroup"
);
mutation_payload!(
    DisassociateScalingGroupWithUserGroup,
    "DisassociateScalingGroupWithUserGroup"
);
mutation_payload!(
    DisassociateAllScalingGroupsWithGroup,
    "DisassociateAllScalingGroupsWithGroup"
);
mutation_payload!(
    AssociateScalingGroupWithKeyPair,
    "AssociateScalingGroupWithKeyPair"
);
mutation_payload!(
    DisassociateScalingGroupWithKeyPair,
    "DisassociateScalingGroupWithKeyPair"
);

type Step<T> = Result<Outcome<T>, Outcome<T>>;

fn opts_input(field: &str, value: Option<&JsonString>) -> Result<Option<Value>, Outcome<()>> {
    match value {
        None => Ok(None),
        Some(JsonString(value)) if field == "driver_opts" => match value {
            Value::Object(_) => Ok(Some(value.clone())),
            _ => Err(Outcome::failure("driver_opts must be a JSON object")),
        },
        Some(JsonString(value)) => scheduler_opts_input(value)
            .map(Some)
            .map_err(Outcome::failure),
    }
}

fn retype<T>(outcome: Outcome<()>) -> Outcome<T> {
    Outcome {
        ok: outcome.ok,
        msg: outcome.msg,
        item: None,
    }
}

async fn create(
    ctx: &Context<'_>,
    name: String,
    props: CreateScalingGroupInput,
) -> Step<ScalingGroup> {
    let (_, client) =
        mutation::begin(ctx, "create_scaling_group", MutationRoles::SuperadminOnly).await?;
    let driver_opts = opts_input("driver_opts", props.driver_opts.as_ref())
        .map_err(retype)?
        .unwrap_or_else(|| json!({}));
    let scheduler_opts = opts_input("scheduler_opts", props.scheduler_opts.as_ref())
        .map_err(retype)?
        .map_or_else(|| scheduler_opts_input(&Value::Null), Ok)
        .map_err(Outcome::failure)?;
    let mut params = SqlParams::new();
    let statement = format!(
        "WITH g AS (INSERT INTO scaling_groups (name, description, is_active, is_public, \
             wsproxy_addr, wsproxy_api_token, driver, driver_opts, scheduler, scheduler_opts, \
             use_host_network) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) RETURNING *) \
         SELECT {SGROUP_COLUMNS} FROM g",
        params.push(name),
        params.push(props.description.unwrap_or_default()),
        params.push(props.is_active.unwrap_or(true)),
        params.push(props.is_public.unwrap_or(true)),
        params.push(props.wsproxy_addr),
        params.push(props.wsproxy_api_token),
        params.push(props.driver),
        params.push(driver_opts),
        params.push(props.scheduler),
        params.push(scheduler_opts),
        params.push(props.use_host_network.unwrap_or(false)),
    );
    match sql::query_opt_raw(&client, &statement, &params).await? {
        Some(row) => Ok(Outcome::success(Some(ScalingGroup::from_row(&row, true)?))),
        None => Ok(Outcome::no_match("CreateScalingGroup")),
    }
}

async fn modify(ctx: &Context<'_>, name: String, props: ModifyScalingGroupInput) -> Step<()> {
    let (_, client) =
        mutation::begin(ctx, "modify_scaling_group", MutationRoles::SuperadminOnly).await?;
    let mut params = SqlParams::new();
    let mut sets = Vec::new();
    let mut set =
        |column: &str, placeholder: String| sets.push(format!("{column} = {placeholder}"));
    if let Some(v) = props.description {
        set("description", params.push(v));
    }
    if let Some(v) = props.is_active {
        set("is_active", params.push(v));
    }
    if let Some(v) = props.is_public {
        set("is_public", params.push(v));
    }
    if let Some(v) = props.wsproxy_addr {
        set("wsproxy_addr", params.push(v));
    }
    if let Some(v) = props.wsproxy_api_token {
        set("wsproxy_api_token", params.push(v));
    }
    if let Some(v) = props.driver {
        set("driver", params.push(v));
    }
    if let Some(v) = opts_input("driver_opts", props.driver_opts.as_ref())? {
        set("driver_opts", params.push(v));
    }
    if let Some(v) = props.scheduler {
        set("scheduler", params.push(v));
    }
    if let Some(v) = opts_input("scheduler_opts", props.scheduler_opts.as_ref())? {
        set("scheduler_opts", params.push(v));
    }
    if let Some(v) = props.use_host_network {
        set("use_host_network", params.push(v));
    }
    if sets.is_empty() {
        // Nothing to change: succeed when the scaling group exists.
        sets.push("name = name".to_owned());
    }
    let statement = format!(
        "UPDATE scaling_groups SET {} WHERE name = {}",
        sets.join(", "),
        params.push(name)
    );
    affected(&client, &statement, &params, "ModifyScalingGroup").await
}

/// Runs a statement and reports success when it touched a row.
async fn affected(
    client: &deadpool_postgres::Object,
    statement: &str,
    params: &SqlParams,
    payload_type: &str,
) -> Step<()> {
    let count = client.execute(statement, &params.as_refs()).await?;
    if count > 0 {
        Ok(Outcome::success(None))
    } else {
        Ok(Outcome::no_match(payload_type))
    }
}

/// Runs one association statement for a superadmin-only mutation.
async fn associate(
    ctx: &Context<'_>,
    mutation_name: &str,
    payload_type: &str,
    statement: &str,
    params: SqlParams,
) -> Step<()> {
    let (_, client) = mutation::begin(ctx, mutation_name, MutationRoles::SuperadminOnly).await?;
    affected(&client, statement, &params, payload_type).await
}

fn two(
    a: impl tokio_postgres::types::ToSql + Sync + Send + 'static,
    b: impl tokio_postgres::types::ToSql + Sync + Send + 'static,
) -> SqlParams {
    let mut params = SqlParams::new();
    params.push(a);
    params.push(b);
    params
}

fn one(a: impl tokio_postgres::types::ToSql + Sync + Send + 'static) -> SqlParams {
    let mut params = SqlParams::new();
    params.push(a);
    params
}

#[derive(Default)]
pub struct ScalingGroupMutation;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ScalingGroupMutation {
    async fn create_scaling_group(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: CreateScalingGroupInput,
    ) -> CreateScalingGroup {
        settle(create(ctx, name, props).await)
    }

    async fn modify_scaling_group(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: ModifyScalingGroupInput,
    ) -> ModifyScalingGroup {
        settle(modify(ctx, name, props).await)
    }

    async fn delete_scaling_group(&self, ctx: &Context<'_>, name: String) -> DeleteScalingGroup {
        settle(
            associate(
                ctx,
                "delete_scaling_group",
                "DeleteScalingGroup",
                "DELETE FROM scaling_groups WHERE name = $1",
                one(name),
            )
            .await,
        )
    }

    async fn associate_scaling_group_with_domain(
        &self,
        ctx: &Context<'_>,
        scaling_group: String,
        domain: String,
    ) -> AssociateScalingGroupWithDomain {
        settle(
            associate(
                ctx,
                "associate_scaling_group_with_domain",
                "AssociateScalingGroupWithDomain",
                "INSERT INTO sgroups_for_domains (scaling_group, domain) VALUES ($1, $2)",
                two(scaling_group, domain),
            )
            .await,
        )
    }

    async fn disassociate_scaling_group_with_domain(
        &self,
        ctx: &Context<'_>,
        scaling_group: String,
        domain: String,
    ) -> DisassociateScalingGroupWithDomain {
        settle(
            associate(
                ctx,
                "disassociate_scaling_group_with_domain",
                "DisassociateScalingGroupWithDomain",
                "DELETE FROM sgroups_for_domains WHERE scaling_group = $1 AND domain = $2",
                two(scaling_group, domain),
            )
            .await,
        )
    }

    async fn disassociate_all_scaling_groups_with_domain(
        &self,
        ctx: &Context<'_>,
        domain: String,
    ) -> DisassociateAllScalingGroupsWithDomain {
        settle(
            associate(
                ctx,
                "disassociate_all_scaling_groups_with_domain",
                "DisassociateAllScalingGroupsWithDomain",
                "DELETE FROM sgroups_for_domains WHERE domain = $1",
                one(domain),
            )
            .await,
        )
    }

    async fn associate_scaling_group_with_user_group(
        &self,
        ctx: &Context<'_>,
        scaling_group: String,
        user_group: Uuid,
    ) -> AssociateScalingGroupWithUserGroup {
        settle(
            associate(
                ctx,
                "associate_scaling_group_with_user_group",
                "AssociateScalingGroupWithUserGroup",
                "INSERT INTO sgroups_for_groups (scaling_group, \"group\") VALUES ($1, $2)",
                two(scaling_group, user_group),
            )
            .await,
        )
    }

    async fn disassociate_scaling_group_with_user_group(
        &self,
        ctx: &Context<'_>,
        scaling_group: String,
        user_group: Uuid,
    ) -> DisassociateScalingGroupWithUserGroup {
        settle(
            associate(
                ctx,
                "disassociate_scaling_group_with_user_group",
                "DisassociateScalingGroupWithUserGroup",
                "DELETE FROM sgroups_for_groups WHERE scaling_group = $1 AND \"group\" = $2",
                two(scaling_group, user_group),
            )
            .await,
        )
    }

    async fn disassociate_all_scaling_groups_with_group(
        &self,
        ctx: &Context<'_>,
        user_group: Uuid,
    ) -> DisassociateAllScalingGroupsWithGroup {
        settle(
            associate(
                ctx,
                "disassociate_all_scaling_groups_with_group",
                "DisassociateAllScalingGroupsWithGroup",
                "DELETE FROM sgroups_for_groups WHERE \"group\" = $1",
                one(user_group),
            )
            .await,
        )
    }

    async fn associate_scaling_group_with_keypair(
        &self,
        ctx: &Context<'_>,
        scaling_group: String,
        access_key: String,
    ) -> AssociateScalingGroupWithKeyPair {
        settle(
            associate(
                ctx,
                "associate_scaling_group_with_keypair",
                "AssociateScalingGroupWithKeyPair",
                "INSERT INTO sgroups_for_keypairs (scaling_group, access_key) VALUES ($1, $2)",
                two(scaling_group, access_key),
            )
            .await,
        )
    }

    async fn disassociate_scaling_group_with_keypair(
        &self,
        ctx: &Context<'_>,
        scaling_group: String,
        access_key: String,
    ) -> DisassociateScalingGroupWithKeyPair {
        settle(
            associate(
                ctx,
                "disassociate_scaling_group_with_keypair",
                "DisassociateScalingGroupWithKeyPair",
                "DELETE FROM sgroups_for_keypairs WHERE scaling_group = $1 AND access_key = $2",
                two(scaling_group, access_key),
            )
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_opts_are_completed_and_shown_as_22_09() {
        let stored = scheduler_opts_input(&json!({"pending_timeout": "5m", "extra": 1})).unwrap();
        assert_eq!(stored["agent_selection_strategy"], "dispersed");
        assert_eq!(
            scheduler_opts_output(&stored),
            json!({"allowed_session_types": ["interactive", "batch"], "pending_timeout": 300.0, "config": {}})
        );
        assert_eq!(scheduler_opts_output(&json!({})), default_scheduler_opts());
        assert!(scheduler_opts_input(&json!({"allowed_session_types": []})).is_err());
        assert!(scheduler_opts_input(&json!({"allowed_session_types": ["gpu"]})).is_err());
        assert!(scheduler_opts_input(&json!({"pending_timeout": -1})).is_err());
    }
}
