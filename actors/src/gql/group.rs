//! `Group` (a user group, or project): the `group`, `groups_by_name` and `groups` queries and
//! the create/modify/delete/purge mutations, which domain admins may run in their own domain.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use bai_schema::enums::UserRole;
use bai_schema::queries::group_admin::{self, GroupChanges, GroupFilter, GroupRow, NewGroup};
use uuid::Uuid;

use super::context::{GqlRequest, Requester};
use super::error::{GqlError, GqlResult};
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::permissions::no_permission_message;
use super::scalars::{GqlDateTime, JsonString};
use super::sql;
use super::validate;

/// A group as the original's GraphQL `Group` type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "Group", rename_fields = "snake_case")]
pub struct Group {
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub created_at: Option<GqlDateTime>,
    pub modified_at: Option<GqlDateTime>,
    pub domain_name: Option<String>,
    pub total_resource_slots: Option<JsonString>,
    pub allowed_vfolder_hosts: Option<JsonString>,
    pub integration_id: Option<String>,
    pub resource_policy: Option<String>,
    /// The scaling groups associated with the group.
    pub scaling_groups: Option<Vec<String>>,
}

impl From<GroupRow> for Group {
    fn from(row: GroupRow) -> Group {
        Group {
            id: Some(row.id),
            name: Some(row.name),
            description: row.description,
            is_active: Some(row.is_active),
            created_at: Some(GqlDateTime(row.created_at)),
            modified_at: Some(GqlDateTime(row.modified_at)),
            domain_name: Some(row.domain_name),
            total_resource_slots: Some(JsonString(row.total_resource_slots)),
            allowed_vfolder_hosts: Some(JsonString(row.allowed_vfolder_hosts)),
            integration_id: row.integration_id,
            resource_policy: Some(row.resource_policy),
            scaling_groups: Some(row.scaling_groups),
        }
    }
}

async fn load_groups(request: &GqlRequest, filter: &GroupFilter) -> GqlResult<Vec<Group>> {
    let client = sql::connection(&request.db).await?;
    Ok(group_admin::list_groups(&client, filter)
        .await?
        .into_iter()
        .map(Group::from)
        .collect())
}

/// The domain a group read is confined to, and whether the caller must be a member, as the
/// original's `resolve_group`/`resolve_groups_by_name`/`resolve_groups`.
fn group_scope(
    requester: &Requester,
    domain_name: Option<String>,
) -> Result<(Option<String>, bool), GqlError> {
    match requester.role {
        UserRole::Superadmin | UserRole::Monitor => Ok((domain_name, false)),
        UserRole::Admin | UserRole::User => {
            if domain_name
                .as_deref()
                .is_some_and(|d| d != requester.domain_name)
            {
                return Err(GqlError::forbidden(
                    "insufficient privilege for another domain",
                ));
            }
            Ok((
                Some(requester.domain_name.clone()),
                requester.role == UserRole::User,
            ))
        }
    }
}

/// The groups a caller may read, as a filter to narrow further.
fn scope_filter(requester: &Requester, domain_name: Option<String>) -> GqlResult<GroupFilter> {
    let (domain_name, members_only) = group_scope(requester, domain_name)?;
    Ok(GroupFilter {
        domain_name,
        member: members_only.then_some(requester.user_uuid),
        ..GroupFilter::default()
    })
}

#[derive(Default)]
pub struct GroupQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl GroupQuery {
    /// A group by id; users see only groups they belong to.
    async fn group(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        domain_name: Option<String>,
    ) -> async_graphql::Result<Option<Group>> {
        let request = GqlRequest::of(ctx)?;
        let filter = GroupFilter {
            id: Some(id),
            ..scope_filter(&request.requester, domain_name)?
        };
        Ok(load_groups(request, &filter).await?.into_iter().next())
    }

    /// Groups with a name (unique only within a domain).
    async fn groups_by_name(
        &self,
        ctx: &Context<'_>,
        name: String,
        domain_name: Option<String>,
    ) -> async_graphql::Result<Option<Vec<Group>>> {
        let request = GqlRequest::of(ctx)?;
        let filter = GroupFilter {
            name: Some(name),
            ..scope_filter(&request.requester, domain_name)?
        };
        Ok(Some(load_groups(request, &filter).await?))
    }

    /// Groups: superadmins all, domain admins their domain, users their own groups.
    async fn groups(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<Group>>> {
        let request = GqlRequest::of(ctx)?;
        let filter = GroupFilter {
            // The original ignores `is_active` for users (it returns their groups as they are).
            is_active: is_active.filter(|_| request.requester.role != UserRole::User),
            ..scope_filter(&request.requester, domain_name)?
        };
        Ok(Some(load_groups(request, &filter).await?))
    }
}

#[derive(InputObject, Debug)]
#[graphql(name = "GroupInput", rename_fields = "snake_case")]
pub struct GroupInput {
    pub description: Option<String>,
    #[graphql(default_with = "Some(true)")]
    pub is_active: Option<bool>,
    pub domain_name: String,
    pub total_resource_slots: Option<JsonString>,
    pub allowed_vfolder_hosts: Option<JsonString>,
    pub integration_id: Option<String>,
    pub resource_policy: Option<String>,
}

#[derive(InputObject, Debug)]
#[graphql(name = "ModifyGroupInput", rename_fields = "snake_case")]
pub struct ModifyGroupInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub domain_name: Option<String>,
    pub total_resource_slots: Option<JsonString>,
    /// `add` or `remove` the users of `user_uuids`.
    pub user_update_mode: Option<String>,
    pub user_uuids: Option<Vec<String>>,
    pub allowed_vfolder_hosts: Option<JsonString>,
    pub integration_id: Option<String>,
    pub resource_policy: Option<String>,
}

mutation_payload!(CreateGroup, "CreateGroup", group: Group);
mutation_payload!(ModifyGroup, "ModifyGroup", group: Group);
mutation_payload!(DeleteGroup, "DeleteGroup");
mutation_payload!(PurgeGroup, "PurgeGroup");

type Step<T> = Result<Outcome<T>, Outcome<T>>;

const INVALID_SLUG: &str = "invalid name format. slug format required.";

/// `privileged_mutation(ADMIN, ...)`: a domain admin may only touch groups of its own domain.
async fn admin_may_touch(
    client: &deadpool_postgres::Object,
    requester: &Requester,
    mutation_name: &str,
    domain: Option<&str>,
    group: Option<Uuid>,
) -> Result<(), Outcome<()>> {
    if requester.role == UserRole::Superadmin {
        return Ok(());
    }
    let domain_ok = domain.is_none_or(|d| d == requester.domain_name);
    let group_ok = match group {
        None => true,
        Some(id) => group_admin::group_in_domain(client, id, &requester.domain_name).await?,
    };
    if domain_ok && group_ok {
        Ok(())
    } else {
        Err(Outcome::failure(no_permission_message(mutation_name)))
    }
}

fn retype<T>(outcome: Outcome<()>) -> Outcome<T> {
    Outcome {
        ok: outcome.ok,
        msg: outcome.msg,
        item: None,
    }
}

async fn create_group(ctx: &Context<'_>, name: String, props: GroupInput) -> Step<Group> {
    let (request, client) =
        mutation::begin(ctx, "create_group", MutationRoles::AdminOrSuperadmin).await?;
    admin_may_touch(
        &client,
        &request.requester,
        "create_group",
        Some(&props.domain_name),
        None,
    )
    .await
    .map_err(retype)?;
    if !validate::is_slug(&name) {
        return Err(Outcome::failure(INVALID_SLUG));
    }
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
    let group = NewGroup {
        name,
        description: props.description.unwrap_or_default(),
        is_active: props.is_active.unwrap_or(true),
        domain_name: props.domain_name,
        total_resource_slots: slots,
        allowed_vfolder_hosts: hosts,
        integration_id: props.integration_id,
        resource_policy: props
            .resource_policy
            .unwrap_or_else(|| "default".to_owned()),
    };
    match group_admin::insert_group(&client, &group).await? {
        Some(row) => Ok(Outcome::success(Some(Group::from(row)))),
        None => Ok(Outcome::no_match("CreateGroup")),
    }
}

async fn modify_group(ctx: &Context<'_>, gid: Uuid, props: ModifyGroupInput) -> Step<Group> {
    let (request, mut client) =
        mutation::begin(ctx, "modify_group", MutationRoles::AdminOrSuperadmin).await?;
    admin_may_touch(&client, &request.requester, "modify_group", None, Some(gid))
        .await
        .map_err(retype)?;
    if let Some(name) = &props.name
        && !validate::is_slug(name)
    {
        return Err(Outcome::failure(INVALID_SLUG));
    }
    if let Some(domain) = &props.domain_name
        && request.requester.role != UserRole::Superadmin
        && *domain != request.requester.domain_name
    {
        return Err(Outcome::failure(no_permission_message("modify_group")));
    }
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
    let changes = GroupChanges {
        name: props.name,
        description: props.description,
        is_active: props.is_active,
        domain_name: props.domain_name,
        total_resource_slots,
        allowed_vfolder_hosts,
        integration_id: props.integration_id,
        resource_policy: props.resource_policy,
    };
    let mode = match props.user_update_mode.as_deref() {
        None => None,
        Some(mode @ ("add" | "remove")) => Some(mode),
        Some(_) => {
            return Err(Outcome::failure(
                "unexpected error: invalid user_update_mode",
            ));
        }
    };
    let user_uuids = props
        .user_uuids
        .unwrap_or_default()
        .iter()
        .map(|id| {
            Uuid::parse_str(id)
                .map_err(|_| GqlError::invalid(format!("user_uuids: {id:?} is not a user id")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mode = mode.filter(|_| !user_uuids.is_empty());
    if changes.is_empty() && mode.is_none() {
        return Ok(Outcome::failure("nothing to update"));
    }
    let transaction = client.transaction().await?;
    match mode {
        Some("add") => group_admin::add_members(&transaction, gid, &user_uuids).await?,
        Some(_) => group_admin::remove_members(&transaction, gid, &user_uuids).await?,
        None => {}
    }
    if changes.is_empty() {
        transaction.commit().await?;
        return Ok(Outcome::success(None));
    }
    let Some(row) = group_admin::update_group(&transaction, gid, &changes).await? else {
        return Ok(Outcome::failure("no such group"));
    };
    transaction.commit().await?;
    Ok(Outcome::success(Some(Group::from(row))))
}

async fn delete_group(ctx: &Context<'_>, gid: Uuid) -> Step<()> {
    let (request, client) =
        mutation::begin(ctx, "delete_group", MutationRoles::AdminOrSuperadmin).await?;
    admin_may_touch(&client, &request.requester, "delete_group", None, Some(gid)).await?;
    Ok(if group_admin::deactivate_group(&client, gid).await? {
        Outcome::success(None)
    } else {
        Outcome::no_match("DeleteGroup")
    })
}

async fn purge_group(ctx: &Context<'_>, gid: Uuid) -> Step<()> {
    let (request, mut client) =
        mutation::begin(ctx, "purge_group", MutationRoles::AdminOrSuperadmin).await?;
    admin_may_touch(&client, &request.requester, "purge_group", None, Some(gid)).await?;
    let transaction = client.transaction().await?;
    let dependents = group_admin::group_dependents(&transaction, gid).await?;
    if dependents.active_kernels > 0 {
        return Ok(Outcome::failure(
            "unexpected error: Group has some active session. Terminate them first to proceed removal.",
        ));
    }
    // Group folders' data lives on the storage proxies; until the storage broker deletes it
    // here, a group that still has folders is not purged (nothing is left half-deleted).
    if dependents.vfolders > 0 {
        return Ok(Outcome::failure(format!(
            "unexpected error: the group still has {} virtual folder(s); delete them first",
            dependents.vfolders
        )));
    }
    if !group_admin::purge_group(&transaction, gid).await? {
        return Ok(Outcome::no_match("PurgeGroup"));
    }
    transaction.commit().await?;
    Ok(Outcome::success(None))
}

#[derive(Default)]
pub struct GroupMutation;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl GroupMutation {
    async fn create_group(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: GroupInput,
    ) -> CreateGroup {
        settle(create_group(ctx, name, props).await)
    }

    async fn modify_group(
        &self,
        ctx: &Context<'_>,
        gid: Uuid,
        props: ModifyGroupInput,
    ) -> ModifyGroup {
        settle(modify_group(ctx, gid, props).await)
    }

    /// Marks the group inactive.
    async fn delete_group(&self, ctx: &Context<'_>, gid: Uuid) -> DeleteGroup {
        settle(delete_group(ctx, gid).await)
    }

    /// Deletes the group with its (terminated) sessions; it must have no active sessions.
    async fn purge_group(&self, ctx: &Context<'_>, gid: Uuid) -> PurgeGroup {
        settle(purge_group(ctx, gid).await)
    }
}
