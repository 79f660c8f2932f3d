//! `ScalingGroup`: the scaling group queries, create/modify/delete, and the associations of
//! scaling groups with domains, groups (projects) and keypairs.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use bai_schema::queries::scaling_group_admin::{
    self, Associate, NewScalingGroup, ScalingGroupChanges, ScalingGroupRow, ScalingGroupScope,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::context::GqlRequest;
use super::error::GqlError;
use super::error::GqlResult;
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::permissions::require_superadmin_read;
use super::scalars::{GqlDateTime, JsonString};
use super::sql;
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

impl ScalingGroup {
    fn from_row(row: ScalingGroupRow, show_token: bool) -> ScalingGroup {
        ScalingGroup {
            name: Some(row.name),
            description: row.description,
            is_active: Some(row.is_active),
            is_public: Some(row.is_public),
            created_at: Some(GqlDateTime(row.created_at)),
            wsproxy_addr: row.wsproxy_addr,
            wsproxy_api_token: if show_token {
                row.wsproxy_api_token
            } else {
                None
            },
            driver: Some(row.driver),
            driver_opts: Some(JsonString(row.driver_opts)),
            scheduler: Some(row.scheduler),
            scheduler_opts: Some(JsonString(scheduler_opts_output(&row.scheduler_opts))),
            use_host_network: Some(row.use_host_network),
        }
    }
}

fn default_scheduler_opts() -> Value {
    json!({"allowed_session_types": ["interactive", "batch"], "pending_timeout": 0.0, "config": {}})
}

/// A client's `scheduler_opts` that the fixture loader's checks refuse.
#[derive(Debug, thiserror::Error)]
#[error("scheduler_opts: {0}")]
pub struct SchedulerOptsError(#[from] bai_schema::fixture::error::Problem);

/// `ScalingGroupOpts` as a client gives it: the known keys checked and completed with their
/// defaults, as the fixture loader stores them.
pub fn scheduler_opts_input(value: &Value) -> Result<Value, SchedulerOptsError> {
    Ok(Value::Object(scheduler_opts(value)?))
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
    scope: ScalingGroupScope,
    is_active: Option<bool>,
) -> GqlResult<Vec<ScalingGroup>> {
    let client = sql::connection(&request.db).await?;
    let show_token = request.requester.is_superadmin();
    Ok(
        scaling_group_admin::list_scaling_groups(&client, &scope, is_active)
            .await?
            .into_iter()
            .map(|row| ScalingGroup::from_row(row, show_token))
            .collect(),
    )
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
        Ok(
            load_sgroups(request, ScalingGroupScope::Named(Some(name)), None)
                .await?
                .into_iter()
                .next(),
        )
    }

    async fn scaling_groups(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<ScalingGroup>>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        Ok(Some(
            load_sgroups(request, ScalingGroupScope::Named(name), is_active).await?,
        ))
    }

    async fn scaling_groups_for_domain(
        &self,
        ctx: &Context<'_>,
        domain: String,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<ScalingGroup>>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        Ok(Some(
            load_sgroups(request, ScalingGroupScope::Domain(domain), is_active).await?,
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
        Ok(Some(
            load_sgroups(request, ScalingGroupScope::Group(group_id), is_active).await?,
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
        Ok(Some(
            load_sgroups(request, ScalingGroupScope::Keypair(access_key), is_active).await?,
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
            .map_err(|e| Outcome::failure(e.to_string())),
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
        .map_err(|e| Outcome::failure(e.to_string()))?;
    let group = NewScalingGroup {
        name,
        description: props.description.unwrap_or_default(),
        is_active: props.is_active.unwrap_or(true),
        is_public: props.is_public.unwrap_or(true),
        wsproxy_addr: props.wsproxy_addr,
        wsproxy_api_token: props.wsproxy_api_token,
        driver: props.driver,
        driver_opts,
        scheduler: props.scheduler,
        scheduler_opts,
        use_host_network: props.use_host_network.unwrap_or(false),
    };
    match scaling_group_admin::insert_scaling_group(&client, &group).await? {
        Some(row) => Ok(Outcome::success(Some(ScalingGroup::from_row(row, true)))),
        None => Ok(Outcome::no_match("CreateScalingGroup")),
    }
}

async fn modify(ctx: &Context<'_>, name: String, props: ModifyScalingGroupInput) -> Step<()> {
    let (_, client) =
        mutation::begin(ctx, "modify_scaling_group", MutationRoles::SuperadminOnly).await?;
    let changes = ScalingGroupChanges {
        description: props.description,
        is_active: props.is_active,
        is_public: props.is_public,
        wsproxy_addr: props.wsproxy_addr,
        wsproxy_api_token: props.wsproxy_api_token,
        driver: props.driver,
        driver_opts: opts_input("driver_opts", props.driver_opts.as_ref())?,
        scheduler: props.scheduler,
        scheduler_opts: opts_input("scheduler_opts", props.scheduler_opts.as_ref())?,
        use_host_network: props.use_host_network,
    };
    let found = scaling_group_admin::update_scaling_group(&client, &name, &changes).await?;
    Ok(touched(found, "ModifyScalingGroup"))
}

/// Success when the statement touched a row, else "no matching ...".
fn touched(found: bool, payload_type: &str) -> Outcome<()> {
    if found {
        Outcome::success(None)
    } else {
        Outcome::no_match(payload_type)
    }
}

/// What a superadmin-only association mutation does.
enum Change {
    Delete(String),
    Associate(String, Associate),
    Disassociate(String, Associate),
    DisassociateAll(Associate),
}

/// Runs one superadmin-only delete or association mutation.
async fn associate(
    ctx: &Context<'_>,
    mutation_name: &str,
    payload_type: &str,
    change: Change,
) -> Step<()> {
    let (_, client) = mutation::begin(ctx, mutation_name, MutationRoles::SuperadminOnly).await?;
    let found = match &change {
        Change::Delete(name) => scaling_group_admin::delete_scaling_group(&client, name).await?,
        Change::Associate(group, with) => {
            scaling_group_admin::associate(&client, group, with).await?
        }
        Change::Disassociate(group, with) => {
            scaling_group_admin::disassociate(&client, group, with).await?
        }
        Change::DisassociateAll(from) => {
            scaling_group_admin::disassociate_all(&client, from).await?
        }
    };
    Ok(touched(found, payload_type))
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
                Change::Delete(name),
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
                Change::Associate(scaling_group, Associate::Domain(domain)),
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
                Change::Disassociate(scaling_group, Associate::Domain(domain)),
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
                Change::DisassociateAll(Associate::Domain(domain)),
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
                Change::Associate(scaling_group, Associate::Group(user_group)),
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
                Change::Disassociate(scaling_group, Associate::Group(user_group)),
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
                Change::DisassociateAll(Associate::Group(user_group)),
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
                Change::Associate(scaling_group, Associate::Keypair(access_key)),
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
                Change::Disassociate(scaling_group, Associate::Keypair(access_key)),
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
