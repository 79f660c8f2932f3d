//! The container roots: `compute_container(id)` and `compute_container_list(session_id, role,
//! ...)` (a page of one session's kernels), in the caller's scope (users their own keypair's,
//! domain admins their domain's), with the original's filter and order names; the SQL is
//! `bai_schema::queries::container_list`.

use async_graphql::{Context, ID, Object, SimpleObject};
use uuid::Uuid;

use bai_schema::queries::container_list::{self, ContainerRow, ContainerScope};

use super::container::{ComputeContainer, containers_of_rows};
use super::context::GqlRequest;
use super::error::{GqlError, GqlResult};
use super::pagination::{ListSelection, Page};
use super::permissions::scoped;
use super::sql;

/// A page of containers.
#[derive(SimpleObject)]
#[graphql(name = "ComputeContainerList", rename_fields = "snake_case")]
pub struct ComputeContainerList {
    pub items: Vec<ComputeContainer>,
    pub total_count: i32,
}

/// The caller's scope over kernels: domain admins their domain, users their keypair.
fn container_scope(request: &GqlRequest) -> GqlResult<ContainerScope> {
    let requester = &request.requester;
    let scope = scoped(requester, false, requester.access_key.clone(), None, None)?;
    Ok(ContainerScope {
        domain_name: scope.domain_name,
        access_key: scope.owner,
    })
}

fn parse_uuid(name: &str, value: &str) -> GqlResult<Uuid> {
    Uuid::parse_str(value).map_err(|_| GqlError::invalid(format!("{name} {value:?} is not a UUID")))
}

#[derive(Default)]
pub struct ContainerQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ContainerQuery {
    /// One container (kernel) by id, when the caller may see it.
    async fn compute_container(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> async_graphql::Result<Option<ComputeContainer>> {
        let request = GqlRequest::of(ctx)?;
        let scope = container_scope(request)?;
        let client = sql::connection(&request.db).await?;
        let row = container_list::container(&client, &scope, id)
            .await
            .map_err(GqlError::from)?;
        let containers = containers_of_rows(request, row.into_iter().collect()).await;
        Ok(containers.into_iter().next().map(|(_, c)| c))
    }

    /// A page of one session's containers (of one cluster role, when given).
    #[allow(clippy::too_many_arguments)]
    async fn compute_container_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        session_id: ID,
        role: Option<String>,
    ) -> async_graphql::Result<Option<ComputeContainerList>> {
        let request = GqlRequest::of(ctx)?;
        let page = Page::new(limit, offset)?;
        let session_id = parse_uuid("session_id", &session_id)?;
        let scope = container_scope(request)?;
        let listing = container_list::session_containers(
            &scope,
            session_id,
            role,
            filter.as_deref(),
            order.as_deref(),
        )
        .map_err(GqlError::from)?;
        let selection = ListSelection::of(ctx);
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch_as(
                &client,
                Some(page),
                selection.items,
                selection.total_count,
                ContainerRow::decode,
            )
            .await
            .map_err(GqlError::from)?;
        let items = containers_of_rows(request, rows)
            .await
            .into_iter()
            .map(|(_, container)| container)
            .collect();
        Ok(Some(ComputeContainerList {
            items,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}
