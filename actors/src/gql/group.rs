//! `Group` (a user group, or project): the `group`, `groups_by_name` and `groups` queries and
//! the create/modify/delete/purge mutations, which domain admins may run in their own domain.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use bai_schema::enums::UserRole;
use tokio_postgres::Row;
use uuid::Uuid;

use super::context::{GqlRequest, Requester};
use super::error::{GqlError, GqlResult};
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::permissions::no_permission_message;
use super::scalars::{GqlDateTime, JsonString};
use super::sql::{self, Conditions, SqlParams};
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

const GROUP_COLUMNS: &str = "g.id, g.name, g.description, g.is_active, g.created_at, \
     g.modified_at, g.domain_name, g.total_resource_slots, g.allowed_vfolder_hosts, \
     g.integration_id, g.resource_policy, \
     ARRAY(SELECT s.scaling_group FROM sgroups_for_groups s WHERE s.\"group\" = g.id \
           ORDER BY s.scaling_group) AS scaling_groups";

impl Group {
    fn from_row(row: &Row) -> GqlResult<Group> {
        Ok(Group {
            id: Some(row.try_get("id")?),
            name: Some(row.try_get("name")?),
            description: row.try_get("description")?,
            is_active: Some(row.try_get("is_active")?),
            created_at: Some(GqlDateTime(row.try_get("created_at")?)),
            modified_at: Some(GqlDateTime(row.try_get("modified_at")?)),
            domain_name: Some(row.try_get("domain_name")?),
            total_resource_slots: Some(JsonString(row.try_get("total_resource_slots")?)),
            allowed_vfolder_hosts: Some(JsonString(row.try_get("allowed_vfolder_hosts")?)),
            integration_id: row.try_get("integration_id")?,
            resource_policy: Some(row.try_get("resource_policy")?),
            scaling_groups: Some(row.try_get("scaling_groups")?),
        })
    }
}

async fn load_groups(
    request: &GqlRequest,
    conditions: &Conditions,
    params: &SqlParams,
) -> GqlResult<Vec<Group>> {
    let client = sql::connection(&request.db).await?;
    let statement = format!(
        "SELECT {GROUP_COLUMNS} FROM groups g {} ORDER BY g.domain_name, g.name",
        conditions.where_clause()
    );
    sql::query(&client, &statement, params)
        .await?
        .iter()
        .map(Group::from_row)
        .collect()
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

fn scope_conditions(
    requester: &Requester,
    domain_name: Option<String>,
    params: &mut SqlParams,
) -> Result<Conditions, GqlError> {
    let (domain, members_only) = group_scope(requester, domain_name)?;
    let mut conditions = Conditions::new();
    if let Some(domain) = domain {
        conditions.add(format!("g.domain_name = {}", params.push(domain)));
    }
    if members_only {
        conditions.add(format!(
            "EXISTS (SELECT 1 FROM association_groups_users m WHERE m.group_id = g.id AND m.user_id = {})",
            params.push(requester.user_uuid)
        ));
    }
    Ok(conditions)
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
        let mut params = SqlParams::new();
        let mut conditions = scope_conditions(&request.requester, domain_name, &mut params)?;
        conditions.add(format!("g.id = {}", params.push(id)));
        Ok(load_groups(request, &conditions, &params)
            .await?
            .into_iter()
            .next())
    }

    /// Groups with a name (unique only within a domain).
    async fn groups_by_name(
        &self,
        ctx: &Context<'_>,
        name: String,
        domain_name: Option<String>,
    ) -> async_graphql::Result<Option<Vec<Group>>> {
        let request = GqlRequest::of(ctx)?;
        let mut params = SqlParams::new();
        let mut conditions = scope_conditions(&request.requester, domain_name, &mut params)?;
        conditions.add(format!("g.name = {}", params.push(name)));
        Ok(Some(load_groups(request, &conditions, &params).await?))
    }

    /// Groups: superadmins all, domain admins their domain, users their own groups.
    async fn groups(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<Group>>> {
        let request = GqlRequest::of(ctx)?;
        let mut params = SqlParams::new();
        let mut conditions = scope_conditions(&request.requester, domain_name, &mut params)?;
        // The original ignores `is_active` for users (it returns their groups as they are).
        if let Some(is_active) = is_active.filter(|_| request.requester.role != UserRole::User) {
            conditions.add(format!("g.is_active = {}", params.push(is_active)));
        }
        Ok(Some(load_groups(request, &conditions, &params).await?))
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
        Some(id) => client
            .query_opt(
                "SELECT 1 FROM groups WHERE id = $1 AND domain_name = $2",
                &[&id, &requester.domain_name],
            )
            .await?
            .is_some(),
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
    let mut params = SqlParams::new();
    let statement = format!(
        "WITH g AS (INSERT INTO groups (name, description, is_active, domain_name, \
             total_resource_slots, allowed_vfolder_hosts, integration_id, resource_policy) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}) RETURNING *) SELECT {GROUP_COLUMNS} FROM g",
        params.push(name),
        params.push(props.description.unwrap_or_default()),
        params.push(props.is_active.unwrap_or(true)),
        params.push(props.domain_name),
        params.push(slots),
        params.push(hosts),
        params.push(props.integration_id),
        params.push(
            props
                .resource_policy
                .unwrap_or_else(|| "default".to_owned())
        ),
    );
    match sql::query_opt_raw(&client, &statement, &params).await? {
        Some(row) => Ok(Outcome::success(Some(Group::from_row(&row)?))),
        None => Ok(Outcome::no_match("CreateGroup")),
    }
}

async fn modify_group(ctx: &Context<'_>, gid: Uuid, props: ModifyGroupInput) -> Step<Group> {
    let (request, mut client) =
        mutation::begin(ctx, "modify_group", MutationRoles::AdminOrSuperadmin).await?;
    admin_may_touch(&client, &request.requester, "modify_group", None, Some(gid))
        .await
        .map_err(retype)?;
    let mut params = SqlParams::new();
    let mut sets = Vec::new();
    if let Some(name) = props.name {
        if !validate::is_slug(&name) {
            return Err(Outcome::failure(INVALID_SLUG));
        }
        sets.push(format!("name = {}", params.push(name)));
    }
    if let Some(v) = props.description {
        sets.push(format!("description = {}", params.push(v)));
    }
    if let Some(v) = props.is_active {
        sets.push(format!("is_active = {}", params.push(v)));
    }
    if let Some(v) = props.domain_name {
        if request.requester.role != UserRole::Superadmin && v != request.requester.domain_name {
            return Err(Outcome::failure(no_permission_message("modify_group")));
        }
        sets.push(format!("domain_name = {}", params.push(v)));
    }
    if let Some(JsonString(value)) = &props.total_resource_slots {
        let slots = validate::resource_slots_input("total_resource_slots", value)?;
        sets.push(format!("total_resource_slots = {}", params.push(slots)));
    }
    if let Some(JsonString(value)) = &props.allowed_vfolder_hosts {
        let hosts = validate::vfolder_host_permissions_input("allowed_vfolder_hosts", value)?;
        sets.push(format!("allowed_vfolder_hosts = {}", params.push(hosts)));
    }
    if let Some(v) = props.integration_id {
        sets.push(format!("integration_id = {}", params.push(v)));
    }
    if let Some(v) = props.resource_policy {
        sets.push(format!("resource_policy = {}", params.push(v)));
    }
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
    if sets.is_empty() && mode.is_none() {
        return Ok(Outcome::failure("nothing to update"));
    }
    let transaction = client.transaction().await?;
    match mode {
        Some("add") => {
            transaction
                .execute(
                    "INSERT INTO association_groups_users (user_id, group_id) \
                     SELECT u, $2 FROM unnest($1::uuid[]) AS u",
                    &[&user_uuids, &gid],
                )
                .await?;
        }
        Some(_) => {
            transaction
                .execute(
                    "DELETE FROM association_groups_users WHERE user_id = ANY($1) AND group_id = $2",
                    &[&user_uuids, &gid],
                )
                .await?;
        }
        None => {}
    }
    if sets.is_empty() {
        transaction.commit().await?;
        return Ok(Outcome::success(None));
    }
    sets.push("modified_at = now()".to_owned());
    let statement = format!(
        "WITH g AS (UPDATE groups SET {} WHERE id = {} RETURNING *) SELECT {GROUP_COLUMNS} FROM g",
        sets.join(", "),
        params.push(gid)
    );
    let row = transaction
        .query_opt(statement.as_str(), &params.as_refs())
        .await?;
    let Some(row) = row else {
        return Ok(Outcome::failure("no such group"));
    };
    let group = Group::from_row(&row)?;
    transaction.commit().await?;
    Ok(Outcome::success(Some(group)))
}

async fn delete_group(ctx: &Context<'_>, gid: Uuid) -> Step<()> {
    let (request, client) =
        mutation::begin(ctx, "delete_group", MutationRoles::AdminOrSuperadmin).await?;
    admin_may_touch(&client, &request.requester, "delete_group", None, Some(gid)).await?;
    let count = client
        .execute(
            "UPDATE groups SET is_active = false, integration_id = NULL, modified_at = now() WHERE id = $1",
            &[&gid],
        )
        .await?;
    Ok(if count > 0 {
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
    let active: i64 = transaction
        .query_one(
            "SELECT count(*) FROM kernels WHERE group_id = $1 \
             AND status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')",
            &[&gid],
        )
        .await?
        .get(0);
    if active > 0 {
        return Ok(Outcome::failure(
            "unexpected error: Group has some active session. Terminate them first to proceed removal.",
        ));
    }
    // Group folders' data lives on the storage proxies; until the storage broker deletes it
    // here, a group that still has folders is not purged (nothing is left half-deleted).
    let folders: i64 = transaction
        .query_one(
            "SELECT count(*) FROM vfolders WHERE \"group\" = $1",
            &[&gid],
        )
        .await?
        .get(0);
    if folders > 0 {
        return Ok(Outcome::failure(format!(
            "unexpected error: the group still has {folders} virtual folder(s); delete them first"
        )));
    }
    transaction
        .execute("DELETE FROM kernels WHERE group_id = $1", &[&gid])
        .await?;
    transaction
        .execute("DELETE FROM sessions WHERE group_id = $1", &[&gid])
        .await?;
    transaction
        .execute("DELETE FROM session_templates WHERE group_id = $1", &[&gid])
        .await?;
    let count = transaction
        .execute("DELETE FROM groups WHERE id = $1", &[&gid])
        .await?;
    if count == 0 {
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
