//! `Domain`: the `domain`/`domains` queries and the create/modify/delete/purge mutations.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use bai_schema::enums::UserRole;
use tokio_postgres::Row;

use super::context::GqlRequest;
use super::error::{GqlError, GqlResult};
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::permissions::require_superadmin_read;
use super::scalars::{GqlDateTime, JsonString};
use super::sql::{self, Conditions, SqlParams};
use super::validate;

/// A domain as the original's GraphQL `Domain` type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "Domain", rename_fields = "snake_case")]
pub struct Domain {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub created_at: Option<GqlDateTime>,
    pub modified_at: Option<GqlDateTime>,
    pub total_resource_slots: Option<JsonString>,
    pub allowed_vfolder_hosts: Option<JsonString>,
    pub allowed_docker_registries: Option<Vec<String>>,
    pub integration_id: Option<String>,
    /// The scaling groups associated with the domain.
    pub scaling_groups: Option<Vec<String>>,
}

/// The columns `Domain::from_row` reads, over the alias `d`.
const DOMAIN_COLUMNS: &str = "d.name, d.description, d.is_active, d.created_at, d.modified_at, \
     d.total_resource_slots, d.allowed_vfolder_hosts, d.allowed_docker_registries, \
     d.integration_id, \
     ARRAY(SELECT s.scaling_group FROM sgroups_for_domains s WHERE s.domain = d.name \
           ORDER BY s.scaling_group) AS scaling_groups";

impl Domain {
    fn from_row(row: &Row) -> GqlResult<Domain> {
        Ok(Domain {
            name: Some(row.try_get("name")?),
            description: row.try_get("description")?,
            is_active: Some(row.try_get("is_active")?),
            created_at: Some(GqlDateTime(row.try_get("created_at")?)),
            modified_at: Some(GqlDateTime(row.try_get("modified_at")?)),
            total_resource_slots: Some(JsonString(row.try_get("total_resource_slots")?)),
            allowed_vfolder_hosts: Some(JsonString(row.try_get("allowed_vfolder_hosts")?)),
            allowed_docker_registries: Some(row.try_get("allowed_docker_registries")?),
            integration_id: row.try_get("integration_id")?,
            scaling_groups: Some(row.try_get("scaling_groups")?),
        })
    }
}

async fn load_domains(
    client: &deadpool_postgres::Object,
    conditions: &Conditions,
    params: &SqlParams,
) -> GqlResult<Vec<Domain>> {
    let statement = format!(
        "SELECT {DOMAIN_COLUMNS} FROM domains d {} ORDER BY d.name",
        conditions.where_clause()
    );
    sql::query(client, &statement, params)
        .await?
        .iter()
        .map(Domain::from_row)
        .collect()
}

#[derive(Default)]
pub struct DomainQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl DomainQuery {
    /// A domain by name (the caller's own when omitted); admins and users see only their own.
    async fn domain(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
    ) -> async_graphql::Result<Option<Domain>> {
        let request = GqlRequest::of(ctx)?;
        let requester = &request.requester;
        let name = name.unwrap_or_else(|| requester.domain_name.clone());
        let reads_all = matches!(requester.role, UserRole::Superadmin | UserRole::Monitor);
        if !reads_all && name != requester.domain_name {
            return Err(GqlError::NotFound("domain").into());
        }
        let client = sql::connection(&request.db).await?;
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        conditions.add(format!("d.name = {}", params.push(name)));
        Ok(load_domains(&client, &conditions, &params)
            .await?
            .into_iter()
            .next())
    }

    /// Every domain (superadmin).
    async fn domains(
        &self,
        ctx: &Context<'_>,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<Domain>>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let client = sql::connection(&request.db).await?;
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        if let Some(is_active) = is_active {
            conditions.add(format!("d.is_active = {}", params.push(is_active)));
        }
        Ok(Some(load_domains(&client, &conditions, &params).await?))
    }
}

#[derive(InputObject, Debug)]
#[graphql(name = "DomainInput", rename_fields = "snake_case")]
pub struct DomainInput {
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub total_resource_slots: Option<JsonString>,
    pub allowed_vfolder_hosts: Option<JsonString>,
    pub allowed_docker_registries: Option<Vec<String>>,
    pub integration_id: Option<String>,
}

#[derive(InputObject, Debug)]
#[graphql(name = "ModifyDomainInput", rename_fields = "snake_case")]
pub struct ModifyDomainInput {
    /// A new name for the domain.
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub total_resource_slots: Option<JsonString>,
    pub allowed_vfolder_hosts: Option<JsonString>,
    pub allowed_docker_registries: Option<Vec<String>>,
    pub integration_id: Option<String>,
}

mutation_payload!(CreateDomain, "CreateDomain", domain: Domain);
mutation_payload!(ModifyDomain, "ModifyDomain", domain: Domain);
mutation_payload!(DeleteDomain, "DeleteDomain");
mutation_payload!(PurgeDomain, "PurgeDomain");

const INVALID_SLUG: &str = "invalid name format. slug format required.";

/// Kernel statuses that hold resources on an agent (all but PENDING, TERMINATED, CANCELLED).
pub const RESOURCE_OCCUPYING_KERNEL_STATUSES: &str = "'SCHEDULED', 'PREPARING', 'BUILDING', \
     'PULLING', 'RUNNING', 'RESTARTING', 'RESIZING', 'SUSPENDED', 'TERMINATING', 'ERROR'";

#[derive(Default)]
pub struct DomainMutation;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl DomainMutation {
    async fn create_domain(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: DomainInput,
    ) -> CreateDomain {
        settle(create_domain(ctx, name, props).await)
    }

    async fn modify_domain(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: ModifyDomainInput,
    ) -> ModifyDomain {
        settle(modify_domain(ctx, name, props).await)
    }

    /// Marks the domain inactive.
    async fn delete_domain(&self, ctx: &Context<'_>, name: String) -> DeleteDomain {
        settle(delete_domain(ctx, name).await)
    }

    /// Deletes the domain; it must have no users, groups or active kernels.
    async fn purge_domain(&self, ctx: &Context<'_>, name: String) -> PurgeDomain {
        settle(purge_domain(ctx, name).await)
    }
}

type Step<T> = Result<Outcome<T>, Outcome<T>>;

async fn create_domain(ctx: &Context<'_>, name: String, props: DomainInput) -> Step<Domain> {
    let (_, client) = mutation::begin(ctx, "create_domain", MutationRoles::SuperadminOnly).await?;
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
        "WITH d AS (INSERT INTO domains (name, description, is_active, total_resource_slots, \
              allowed_vfolder_hosts, allowed_docker_registries, integration_id) \
         VALUES ({}, {}, {}, {}, {}, {}, {}) RETURNING *) \
         SELECT {DOMAIN_COLUMNS} FROM d",
        params.push(name),
        params.push(props.description.unwrap_or_default()),
        params.push(props.is_active.unwrap_or(true)),
        params.push(slots),
        params.push(hosts),
        params.push(props.allowed_docker_registries.unwrap_or_default()),
        params.push(props.integration_id),
    );
    let row = sql::query_opt_raw(&client, &statement, &params).await?;
    match row {
        Some(row) => Ok(Outcome::success(Some(Domain::from_row(&row)?))),
        None => Ok(Outcome::no_match("CreateDomain")),
    }
}

async fn modify_domain(ctx: &Context<'_>, name: String, props: ModifyDomainInput) -> Step<Domain> {
    let (_, client) = mutation::begin(ctx, "modify_domain", MutationRoles::SuperadminOnly).await?;
    let mut params = SqlParams::new();
    let mut sets = vec!["modified_at = now()".to_owned()];
    if let Some(new_name) = props.name {
        if !validate::is_slug(&new_name) {
            return Err(Outcome::failure(INVALID_SLUG));
        }
        sets.push(format!("name = {}", params.push(new_name)));
    }
    if let Some(description) = props.description {
        sets.push(format!("description = {}", params.push(description)));
    }
    if let Some(is_active) = props.is_active {
        sets.push(format!("is_active = {}", params.push(is_active)));
    }
    if let Some(JsonString(value)) = &props.total_resource_slots {
        let slots = validate::resource_slots_input("total_resource_slots", value)?;
        sets.push(format!("total_resource_slots = {}", params.push(slots)));
    }
    if let Some(JsonString(value)) = &props.allowed_vfolder_hosts {
        let hosts = validate::vfolder_host_permissions_input("allowed_vfolder_hosts", value)?;
        sets.push(format!("allowed_vfolder_hosts = {}", params.push(hosts)));
    }
    if let Some(registries) = props.allowed_docker_registries {
        sets.push(format!(
            "allowed_docker_registries = {}",
            params.push(registries)
        ));
    }
    if let Some(integration_id) = props.integration_id {
        sets.push(format!("integration_id = {}", params.push(integration_id)));
    }
    let statement = format!(
        "WITH d AS (UPDATE domains SET {} WHERE name = {} RETURNING *) SELECT {DOMAIN_COLUMNS} FROM d",
        sets.join(", "),
        params.push(name),
    );
    match sql::query_opt_raw(&client, &statement, &params).await? {
        Some(row) => Ok(Outcome::success(Some(Domain::from_row(&row)?))),
        None => Ok(Outcome::no_match("ModifyDomain")),
    }
}

async fn delete_domain(ctx: &Context<'_>, name: String) -> Step<()> {
    let (_, client) = mutation::begin(ctx, "delete_domain", MutationRoles::SuperadminOnly).await?;
    let updated = client
        .execute(
            "UPDATE domains SET is_active = false, modified_at = now() WHERE name = $1",
            &[&name],
        )
        .await?;
    if updated > 0 {
        Ok(Outcome::success(None))
    } else {
        Ok(Outcome::no_match("DeleteDomain"))
    }
}

async fn purge_domain(ctx: &Context<'_>, name: String) -> Step<()> {
    let (_, mut client) =
        mutation::begin(ctx, "purge_domain", MutationRoles::SuperadminOnly).await?;
    let transaction = client.transaction().await?;
    let active_kernels: i64 = transaction
        .query_one(
            &format!(
                "SELECT count(*) FROM kernels WHERE domain_name = $1 \
                 AND status IN ({RESOURCE_OCCUPYING_KERNEL_STATUSES})"
            ),
            &[&name],
        )
        .await?
        .get(0);
    if active_kernels > 0 {
        return Err(Outcome::failure(
            "unexpected error: Domain has some active kernels. Terminate them first.",
        ));
    }
    let users: i64 = transaction
        .query_one(
            "SELECT count(*) FROM users WHERE domain_name = $1",
            &[&name],
        )
        .await?
        .get(0);
    if users > 0 {
        return Err(Outcome::failure(
            "unexpected error: There are users bound to the domain. Remove users first.",
        ));
    }
    let groups: i64 = transaction
        .query_one(
            "SELECT count(*) FROM groups WHERE domain_name = $1",
            &[&name],
        )
        .await?
        .get(0);
    if groups > 0 {
        return Err(Outcome::failure(
            "unexpected error: There are groups bound to the domain. Remove groups first.",
        ));
    }
    transaction
        .execute("DELETE FROM kernels WHERE domain_name = $1", &[&name])
        .await?;
    transaction
        .execute("DELETE FROM sessions WHERE domain_name = $1", &[&name])
        .await?;
    let deleted = transaction
        .execute("DELETE FROM domains WHERE name = $1", &[&name])
        .await?;
    if deleted == 0 {
        return Ok(Outcome::no_match("PurgeDomain"));
    }
    transaction.commit().await?;
    Ok(Outcome::success(None))
}
