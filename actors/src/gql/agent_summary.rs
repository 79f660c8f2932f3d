//! `AgentSummary`: the `agent_summary` and `agent_summary_list` queries, the agents view for
//! every role (the Web UI's Summary, Sessions and Agent Summary pages). A caller sees the
//! agents of the scaling groups it may use (its domain's, its projects', its keypair's), or of
//! the one it names; under `[manager] hide-agents` the queries answer "No such agent." as the
//! original does.

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_schema::queries::scaling_group::keypair_allowed_scaling_group_names;
use tokio_postgres::Row;

use super::agent::agent_conditions;
use super::context::GqlRequest;
use super::enums::AGENT_STATUS;
use super::error::{GqlError, GqlResult};
use super::pagination::{ListSelection, Page};
use super::scalars::JsonString;
use super::sql::{self, Conditions, Listing, SqlParams};
use bai_schema::minilang::{self, FieldKind, FilterField, OrderField};

/// An agent as a normal user may see it (the original's `AgentSummary`).
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "AgentSummary", rename_fields = "snake_case")]
pub struct AgentSummary {
    pub id: Option<ID>,
    pub status: Option<String>,
    pub scaling_group: Option<String>,
    pub schedulable: Option<bool>,
    pub available_slots: Option<JsonString>,
    pub occupied_slots: Option<JsonString>,
    pub architecture: Option<String>,
}

/// A page of agent summaries.
#[derive(SimpleObject)]
#[graphql(name = "AgentSummaryList", rename_fields = "snake_case")]
pub struct AgentSummaryList {
    pub items: Vec<AgentSummary>,
    pub total_count: i32,
}

const SUMMARY_COLUMNS: &str = "a.id, a.status::text AS status, a.scaling_group, a.schedulable, \
     a.available_slots, a.occupied_slots, a.architecture";

/// The original's `AgentSummary._queryfilter_fieldspec`.
pub const AGENT_SUMMARY_FILTER_FIELDS: &[FilterField] = &[
    FilterField {
        name: "id",
        sql: "a.id",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "status",
        sql: "a.status",
        kind: FieldKind::Enum(&AGENT_STATUS),
    },
    FilterField {
        name: "scaling_group",
        sql: "a.scaling_group",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "schedulable",
        sql: "a.schedulable",
        kind: FieldKind::Bool,
    },
];

/// The original's `AgentSummary._queryorder_colmap`.
pub const AGENT_SUMMARY_ORDER_FIELDS: &[OrderField] = &[
    OrderField {
        name: "id",
        sql: "a.id",
    },
    OrderField {
        name: "status",
        sql: "a.status",
    },
    OrderField {
        name: "scaling_group",
        sql: "a.scaling_group",
    },
    OrderField {
        name: "schedulable",
        sql: "a.schedulable",
    },
    OrderField {
        name: "available_slots",
        sql: "a.available_slots",
    },
    OrderField {
        name: "occupied_slots",
        sql: "a.occupied_slots",
    },
];

/// The original's default ordering of `load_slice`.
const DEFAULT_SUMMARY_ORDER: &str = "a.status, a.scaling_group, a.id";

impl AgentSummary {
    fn from_row(row: &Row) -> GqlResult<AgentSummary> {
        Ok(AgentSummary {
            id: Some(ID(row.try_get::<_, String>("id")?)),
            status: Some(row.try_get("status")?),
            scaling_group: Some(row.try_get("scaling_group")?),
            schedulable: Some(row.try_get("schedulable")?),
            available_slots: Some(JsonString(row.try_get("available_slots")?)),
            occupied_slots: Some(JsonString(row.try_get("occupied_slots")?)),
            architecture: Some(row.try_get("architecture")?),
        })
    }
}

/// The scaling-group condition: the named group, or every group the caller may use.
async fn scaling_group_condition(
    request: &GqlRequest,
    client: &deadpool_postgres::Object,
    scaling_group: Option<String>,
    params: &mut SqlParams,
) -> GqlResult<String> {
    let names = match scaling_group {
        Some(name) => vec![name],
        None => keypair_allowed_scaling_group_names(client, &request.requester.access_key)
            .await
            .map_err(|e| GqlError::Database(e.to_string()))?,
    };
    Ok(format!("a.scaling_group = ANY({})", params.push(names)))
}

/// The original answers both queries with `ObjectNotFound` while agents are hidden.
fn refuse_when_hidden(request: &GqlRequest) -> GqlResult<()> {
    if request.settings.hide_agents {
        return Err(GqlError::NotFound("agent"));
    }
    Ok(())
}

#[derive(Default)]
pub struct AgentSummaryQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl AgentSummaryQuery {
    /// One agent of a scaling group the caller may use.
    async fn agent_summary(
        &self,
        ctx: &Context<'_>,
        agent_id: String,
    ) -> async_graphql::Result<Option<AgentSummary>> {
        let request = GqlRequest::of(ctx)?;
        refuse_when_hidden(request)?;
        let client = sql::connection(&request.db).await?;
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        conditions.add(format!("a.id = {}", params.push(agent_id)));
        conditions.add(scaling_group_condition(request, &client, None, &mut params).await?);
        let statement = format!(
            "SELECT {SUMMARY_COLUMNS} FROM agents a {}",
            conditions.where_clause()
        );
        let row = sql::query_opt(&client, &statement, &params).await?;
        Ok(row.as_ref().map(AgentSummary::from_row).transpose()?)
    }

    /// A page of the agents of the scaling groups the caller may use (`status` is one agent
    /// status, or a comma-separated list).
    #[allow(clippy::too_many_arguments)]
    async fn agent_summary_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        scaling_group: Option<String>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<AgentSummaryList>> {
        let request = GqlRequest::of(ctx)?;
        refuse_when_hidden(request)?;
        let page = Page::new(limit, offset)?;
        let client = sql::connection(&request.db).await?;
        let mut params = SqlParams::new();
        let mut conditions = agent_conditions(None, status.as_deref(), &mut params)?;
        conditions
            .add(scaling_group_condition(request, &client, scaling_group, &mut params).await?);
        if let Some(condition) =
            minilang::filter_sql(filter.as_deref(), AGENT_SUMMARY_FILTER_FIELDS, &mut params)?
        {
            conditions.add(condition);
        }
        let order_by = match minilang::order_sql(order.as_deref(), AGENT_SUMMARY_ORDER_FIELDS)? {
            Some(order) => format!("{order}, a.id"),
            None => DEFAULT_SUMMARY_ORDER.to_owned(),
        };
        let where_clause = conditions.where_clause();
        let listing = Listing {
            select: format!("SELECT {SUMMARY_COLUMNS} FROM agents a {where_clause}"),
            count: format!("SELECT count(*) FROM agents a {where_clause}"),
            order_by,
            cacheable: filter.is_none() && order.is_none(),
            params,
        };
        let selection = ListSelection::of(ctx);
        let (rows, total) = listing
            .fetch(&client, Some(page), selection.items, selection.total_count)
            .await?;
        let items = rows
            .iter()
            .map(AgentSummary::from_row)
            .collect::<GqlResult<Vec<_>>>()?;
        Ok(Some(AgentSummaryList {
            items,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}
