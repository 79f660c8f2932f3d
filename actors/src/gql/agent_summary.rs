//! `AgentSummary`: the `agent_summary` and `agent_summary_list` queries, the agents view for
//! every role (the Web UI's Summary, Sessions and Agent Summary pages). A caller sees the
//! agents of the scaling groups it may use (its domain's, its projects', its keypair's), or of
//! the one it names; under `[manager] hide-agents` the queries answer "No such agent." as the
//! original does.

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_schema::queries::agent_summary_list::{self, AgentSummaryRow};
use bai_schema::queries::scaling_group::keypair_allowed_scaling_group_names;

use super::context::GqlRequest;
use super::enums::{AGENT_STATUS, parse_status_list};
use super::error::{GqlError, GqlResult};
use super::pagination::{ListSelection, Page};
use super::scalars::JsonString;
use super::sql;

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

impl AgentSummary {
    fn from_row(row: AgentSummaryRow) -> AgentSummary {
        AgentSummary {
            id: Some(ID(row.id)),
            status: Some(row.status),
            scaling_group: Some(row.scaling_group),
            schedulable: Some(row.schedulable),
            available_slots: Some(JsonString(row.available_slots)),
            occupied_slots: Some(JsonString(row.occupied_slots)),
            architecture: Some(row.architecture),
        }
    }
}

/// The scaling groups looked in: the named one, or every group the caller may use.
async fn scaling_groups(
    request: &GqlRequest,
    client: &deadpool_postgres::Object,
    scaling_group: Option<String>,
) -> GqlResult<Vec<String>> {
    match scaling_group {
        Some(name) => Ok(vec![name]),
        None => keypair_allowed_scaling_group_names(client, &request.requester.access_key)
            .await
            .map_err(|e| GqlError::Database(e.to_string())),
    }
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
        let groups = scaling_groups(request, &client, None).await?;
        let row = agent_summary_list::agent_summary(&client, agent_id, groups)
            .await
            .map_err(GqlError::from)?;
        Ok(row.map(AgentSummary::from_row))
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
        let statuses = status
            .as_deref()
            .map(|status| parse_status_list(&AGENT_STATUS, "status", status))
            .transpose()?;
        let groups = scaling_groups(request, &client, scaling_group).await?;
        let listing = agent_summary_list::agent_summary_page(
            statuses,
            groups,
            filter.as_deref(),
            order.as_deref(),
        )
        .map_err(GqlError::from)?;
        let selection = ListSelection::of(ctx);
        let (rows, total) = listing
            .fetch_as(
                &client,
                Some(page),
                selection.items,
                selection.total_count,
                AgentSummaryRow::decode,
            )
            .await
            .map_err(GqlError::from)?;
        Ok(Some(AgentSummaryList {
            items: rows.into_iter().map(AgentSummary::from_row).collect(),
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}
