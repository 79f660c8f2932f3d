//! `Domain`: the `domain`/`domains` queries and the create/modify/delete/purge mutations.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use bai_schema::enums::UserRole;
use bai_schema::queries::domain_admin::{self, DomainChanges, DomainRow, NewDomain};

use super::context::GqlRequest;
use super::error::GqlError;
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::permissions::require_superadmin_read;
use super::scalars::{GqlDateTime, JsonString};
use super::sql;
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

impl From<DomainRow> for Domain {
    fn from(row: DomainRow) -> Domain {
        Domain {
            name: Some(row.name),
            description: row.description,
            is_active: Some(row.is_active),
            created_at: Some(GqlDateTime(row.created_at)),
            modified_at: Some(GqlDateTime(row.modified_at)),
            total_resource_slots: Some(JsonString(row.total_resource_slots)),
            allowed_vfolder_hosts: Some(JsonString(row.allowed_vfolder_hosts)),
            allowed_docker_registries: Some(row.allowed_docker_registries),
            integration_id: row.integration_id,
            scaling_groups: Some(row.scaling_groups),
        }
    }
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
        let rows = domain_admin::list_domains(&client, Some(&name), None)
            .await
            .map_err(GqlError::from)?;
        Ok(rows.into_iter().next().map(Domain::from))
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
        let rows = domain_admin::list_domains(&client, None, is_active)
            .await
            .map_err(GqlError::from)?;
        Ok(Some(rows.into_iter().map(Domain::from).collect()))
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
    let domain = NewDomain {
        name,
        description: props.description.unwrap_or_default(),
        is_active: props.is_active.unwrap_or(true),
        total_resource_slots: slots,
        allowed_vfolder_hosts: hosts,
        allowed_docker_registries: props.allowed_docker_registries.unwrap_or_default(),
        integration_id: props.integration_id,
    };
    match domain_admin::insert_domain(&client, &domain).await? {
        Some(row) => Ok(Outcome::success(Some(Domain::from(row)))),
        None => Ok(Outcome::no_match("CreateDomain")),
    }
}

async fn modify_domain(ctx: &Context<'_>, name: String, props: ModifyDomainInput) -> Step<Domain> {
    let (_, client) = mutation::begin(ctx, "modify_domain", MutationRoles::SuperadminOnly).await?;
    if let Some(new_name) = &props.name
        && !validate::is_slug(new_name)
    {
        return Err(Outcome::failure(INVALID_SLUG));
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
    let changes = DomainChanges {
        name: props.name,
        description: props.description,
        is_active: props.is_active,
        total_resource_slots,
        allowed_vfolder_hosts,
        allowed_docker_registries: props.allowed_docker_registries,
        integration_id: props.integration_id,
    };
    match domain_admin::update_domain(&client, &name, &changes).await? {
        Some(row) => Ok(Outcome::success(Some(Domain::from(row)))),
        None => Ok(Outcome::no_match("ModifyDomain")),
    }
}

async fn delete_domain(ctx: &Context<'_>, name: String) -> Step<()> {
    let (_, client) = mutation::begin(ctx, "delete_domain", MutationRoles::SuperadminOnly).await?;
    if domain_admin::deactivate_domain(&client, &name).await? {
        Ok(Outcome::success(None))
    } else {
        Ok(Outcome::no_match("DeleteDomain"))
    }
}

async fn purge_domain(ctx: &Context<'_>, name: String) -> Step<()> {
    let (_, mut client) =
        mutation::begin(ctx, "purge_domain", MutationRoles::SuperadminOnly).await?;
    let transaction = client.transaction().await?;
    let dependents = domain_admin::domain_dependents(&transaction, &name).await?;
    if dependents.active_kernels > 0 {
        return Err(Outcome::failure(
            "unexpected error: Domain has some active kernels. Terminate them first.",
        ));
    }
    if dependents.users > 0 {
        return Err(Outcome::failure(
            "unexpected error: There are users bound to the domain. Remove users first.",
        ));
    }
    if dependents.groups > 0 {
        return Err(Outcome::failure(
            "unexpected error: There are groups bound to the domain. Remove groups first.",
        ));
    }
    if !domain_admin::purge_domain(&transaction, &name).await? {
        return Ok(Outcome::no_match("PurgeDomain"));
    }
    transaction.commit().await?;
    Ok(Outcome::success(None))
}
