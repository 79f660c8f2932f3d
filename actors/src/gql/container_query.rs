//! The container roots: `compute_container(id)` and `compute_container_list(session_id, role,
//! ...)` (a page of one session's kernels), in the caller's scope (users their own keypair's,
//! domain admins their domain's), with the original's filter and order names.

use async_graphql::{Context, ID, Object, SimpleObject};
use uuid::Uuid;

use super::container::{CONTAINER_COLUMNS, ComputeContainer, containers_of_rows};
use super::context::GqlRequest;
use super::enums::KERNEL_STATUS;
use super::error::{GqlError, GqlResult};
use super::pagination::{ListSelection, Page};
use super::permissions::scoped;
use super::sql::{self, Conditions, Listing, SqlParams};
use bai_schema::minilang::{self, FieldKind, FilterField, OrderField};

/// The original's `DEFAULT_KERNEL_ORDERING`: the most recently changed first.
const DEFAULT_CONTAINER_ORDER: &str =
    "greatest(k.created_at, k.terminated_at, k.status_changed) DESC, k.id";

/// The original's `ComputeContainer._queryfilter_fieldspec`.
const CONTAINER_FILTER_FIELDS: &[FilterField] = &[
    FilterField {
        name: "image",
        sql: "k.image",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "architecture",
        sql: "k.architecture",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "agent",
        sql: "k.agent",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "agent_addr",
        sql: "k.agent_addr",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "cluster_idx",
        sql: "k.cluster_idx",
        kind: FieldKind::Int,
    },
    FilterField {
        name: "local_rank",
        sql: "k.local_rank",
        kind: FieldKind::Int,
    },
    FilterField {
        name: "cluster_role",
        sql: "k.cluster_role",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "cluster_hostname",
        sql: "k.cluster_hostname",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "status",
        sql: "k.status",
        kind: FieldKind::Enum(&KERNEL_STATUS),
    },
    FilterField {
        name: "status_info",
        sql: "k.status_info",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "created_at",
        sql: "k.created_at",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "status_changed",
        sql: "k.status_changed",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "terminated_at",
        sql: "k.terminated_at",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "scheduled_at",
        sql: "(k.status_history->>'SCHEDULED')::timestamptz",
        kind: FieldKind::DateTime,
    },
];

/// The original's `ComputeContainer._queryorder_colmap`.
const CONTAINER_ORDER_FIELDS: &[OrderField] = &[
    OrderField {
        name: "image",
        sql: "k.image",
    },
    OrderField {
        name: "architecture",
        sql: "k.architecture",
    },
    OrderField {
        name: "agent",
        sql: "k.agent",
    },
    OrderField {
        name: "agent_addr",
        sql: "k.agent_addr",
    },
    OrderField {
        name: "cluster_idx",
        sql: "k.cluster_idx",
    },
    OrderField {
        name: "local_rank",
        sql: "k.local_rank",
    },
    OrderField {
        name: "cluster_role",
        sql: "k.cluster_role",
    },
    OrderField {
        name: "cluster_hostname",
        sql: "k.cluster_hostname",
    },
    OrderField {
        name: "status",
        sql: "k.status",
    },
    OrderField {
        name: "status_info",
        sql: "k.status_info",
    },
    OrderField {
        name: "status_changed",
        sql: "k.status_changed",
    },
    OrderField {
        name: "created_at",
        sql: "k.created_at",
    },
    OrderField {
        name: "terminated_at",
        sql: "k.terminated_at",
    },
    OrderField {
        name: "scheduled_at",
        sql: "(k.status_history->>'SCHEDULED')",
    },
];

/// A page of containers.
#[derive(SimpleObject)]
#[graphql(name = "ComputeContainerList", rename_fields = "snake_case")]
pub struct ComputeContainerList {
    pub items: Vec<ComputeContainer>,
    pub total_count: i32,
}

/// The caller's scope over `kernels k`: domain admins their domain, users their keypair.
fn container_scope(request: &GqlRequest, params: &mut SqlParams) -> GqlResult<Conditions> {
    let requester = &request.requester;
    let scope = scoped(requester, false, requester.access_key.clone(), None, None)?;
    let mut conditions = Conditions::new();
    if let Some(domain) = scope.domain_name {
        conditions.add(format!("k.domain_name = {}", params.push(domain)));
    }
    if let Some(access_key) = scope.owner {
        conditions.add(format!("k.access_key = {}", params.push(access_key)));
    }
    Ok(conditions)
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
        let mut params = SqlParams::new();
        let mut conditions = container_scope(request, &mut params)?;
        conditions.add(format!("k.id = {}", params.push(id)));
        let statement = format!(
            "SELECT {CONTAINER_COLUMNS} FROM kernels k {}",
            conditions.where_clause()
        );
        let client = sql::connection(&request.db).await?;
        let rows = sql::query(&client, &statement, &params).await?;
        let containers = containers_of_rows(request, &rows).await?;
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
        let mut params = SqlParams::new();
        let mut conditions = container_scope(request, &mut params)?;
        conditions.add(format!("k.session_id = {}", params.push(session_id)));
        if let Some(role) = role {
            conditions.add(format!("k.cluster_role = {}", params.push(role)));
        }
        if let Some(condition) =
            minilang::filter_sql(filter.as_deref(), CONTAINER_FILTER_FIELDS, &mut params)?
        {
            conditions.add(condition);
        }
        let order_by = match minilang::order_sql(order.as_deref(), CONTAINER_ORDER_FIELDS)? {
            Some(order) => format!("{order}, k.id"),
            None => DEFAULT_CONTAINER_ORDER.to_owned(),
        };
        let where_clause = conditions.where_clause();
        let listing = Listing {
            select: format!("SELECT {CONTAINER_COLUMNS} FROM kernels k {where_clause}"),
            count: format!("SELECT count(*) FROM kernels k {where_clause}"),
            order_by,
            cacheable: filter.is_none() && order.is_none(),
            params,
        };
        let selection = ListSelection::of(ctx);
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch(&client, Some(page), selection.items, selection.total_count)
            .await?;
        let items = containers_of_rows(request, &rows)
            .await?
            .into_iter()
            .map(|(_, container)| container)
            .collect();
        Ok(Some(ComputeContainerList {
            items,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_and_order_names_compile() {
        let mut params = SqlParams::new();
        let sql = minilang::filter_sql(
            Some("cluster_role == \"main\" & status == \"RUNNING\""),
            CONTAINER_FILTER_FIELDS,
            &mut params,
        )
        .unwrap()
        .unwrap();
        assert!(sql.contains("k.cluster_role") && sql.contains("k.status"));
        let order = minilang::order_sql(Some("-created_at"), CONTAINER_ORDER_FIELDS)
            .unwrap()
            .unwrap();
        assert!(order.contains("k.created_at"));
    }
}
