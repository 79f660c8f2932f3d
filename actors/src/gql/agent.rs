//! `Agent`: the `agent`, `agent_list` and `agents` queries (superadmins and monitors), with
//! live statistics from Redis and the agent's containers. Under `[manager] hide-agents` the
//! agent ids and addresses are hidden from everyone but superadmins.

use std::collections::HashMap;

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_schema::queries::agent_list::{self, AgentRow, AgentSelection};

use super::container::{ComputeContainer, containers_of_rows};
use super::context::GqlRequest;
use super::enums::{AGENT_STATUS, parse_status_list};
use super::error::{GqlError, GqlResult};
use super::pagination::{ListSelection, Page};
use super::permissions::require_superadmin_read;
use super::scalars::{GqlDateTime, JsonString};
use super::sql;
use super::stats::live_stats;
use crate::agent_rpc::{AgentMethod, AgentTarget};
use crate::wire::msgpack_json::msgpack_to_json;
use bai_schema::queries::container_list;

/// An agent as the original's GraphQL `Agent` type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "Agent", rename_fields = "snake_case", complex)]
pub struct Agent {
    pub id: Option<ID>,
    pub status: Option<String>,
    pub status_changed: Option<GqlDateTime>,
    pub region: Option<String>,
    pub scaling_group: Option<String>,
    pub schedulable: Option<bool>,
    pub available_slots: Option<JsonString>,
    pub occupied_slots: Option<JsonString>,
    pub addr: Option<String>,
    pub architecture: Option<String>,
    pub first_contact: Option<GqlDateTime>,
    pub lost_at: Option<GqlDateTime>,
    pub live_stat: Option<JsonString>,
    pub version: Option<String>,
    pub compute_plugins: Option<JsonString>,
    /// Where the agent's RPC server listens, even when `addr` is hidden from the caller.
    #[graphql(skip)]
    pub rpc_addr: String,
    /// What the original reports of the agent's local configuration: whether it terminates
    /// abusing kernels (`{"agent": {"auto_terminate_abusing_kernel": ...}}`).
    pub local_config: Option<JsonString>,
    // Legacy fields.
    pub mem_slots: Option<i32>,
    pub cpu_slots: Option<f64>,
    pub gpu_slots: Option<f64>,
    pub tpu_slots: Option<f64>,
    pub used_mem_slots: Option<i32>,
    pub used_cpu_slots: Option<f64>,
    pub used_gpu_slots: Option<f64>,
    pub used_tpu_slots: Option<f64>,
    pub cpu_cur_pct: Option<f64>,
    pub mem_cur_bytes: Option<f64>,
    #[graphql(skip)]
    pub agent_id: String,
    #[graphql(skip)]
    pub containers: Option<Vec<ComputeContainer>>,
}

#[async_graphql::ComplexObject(rename_fields = "snake_case", rename_args = "snake_case")]
impl Agent {
    /// The agent's hardware report by device (`{"cpu": {"status", "status_info",
    /// "metadata"}, ...}`), asked from the agent over RPC (`gather_hwinfo`) as the original
    /// does; null for an agent that is not ALIVE or a worker without agent RPC.
    async fn hardware_metadata(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<JsonString>> {
        let request = GqlRequest::of(ctx)?;
        let Some(rpc) = &request.agent_rpc else {
            return Ok(None);
        };
        if self.status.as_deref() != Some("ALIVE") {
            return Ok(None);
        }
        let target = AgentTarget {
            id: self.agent_id.clone(),
            addr: self.rpc_addr.clone(),
            version: self.version.clone().unwrap_or_default(),
        };
        let reply = rpc
            .call(
                &target,
                AgentMethod::GatherHwinfo,
                Vec::new(),
                Vec::new(),
                Some(HWINFO_TIMEOUT),
            )
            .await
            .map_err(|error| {
                GqlError::Internal(format!("gather_hwinfo on agent {}: {error}", self.agent_id))
            })?;
        Ok(Some(JsonString(msgpack_to_json(&reply))))
    }

    /// The agent's containers, optionally of one kernel status.
    async fn compute_containers(&self, status: Option<String>) -> Option<Vec<ComputeContainer>> {
        let containers = self.containers.as_ref()?;
        Some(
            containers
                .iter()
                .filter(|c| status.is_none() || c.status == status)
                .cloned()
                .collect(),
        )
    }
}

/// How long `hardware_metadata` waits for an agent's `gather_hwinfo` reply.
const HWINFO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The original's `Agent.local_config`.
fn local_config(auto_terminate_abusing_kernel: bool) -> serde_json::Value {
    serde_json::json!({
        "agent": {"auto_terminate_abusing_kernel": auto_terminate_abusing_kernel},
    })
}

/// A slot amount from a stored slot map, as a number.
fn slot(slots: &serde_json::Value, name: &str) -> f64 {
    match slots.get(name) {
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0.0),
        Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    }
}

const MEBIBYTE: f64 = 1_048_576.0;

impl Agent {
    fn from_row(row: AgentRow, hide: bool) -> Agent {
        let available = row.available_slots;
        let occupied = row.occupied_slots;
        Agent {
            id: if hide { None } else { Some(ID(row.id.clone())) },
            status: Some(row.status),
            status_changed: row.status_changed.map(GqlDateTime),
            region: Some(row.region),
            scaling_group: Some(row.scaling_group),
            schedulable: Some(row.schedulable),
            mem_slots: Some((slot(&available, "mem") / MEBIBYTE) as i32),
            cpu_slots: Some(slot(&available, "cpu")),
            gpu_slots: Some(slot(&available, "cuda.device")),
            tpu_slots: Some(slot(&available, "tpu.device")),
            used_mem_slots: Some((slot(&occupied, "mem") / MEBIBYTE) as i32),
            used_cpu_slots: Some(slot(&occupied, "cpu")),
            used_gpu_slots: Some(slot(&occupied, "cuda.device")),
            used_tpu_slots: Some(slot(&occupied, "tpu.device")),
            available_slots: Some(JsonString(available)),
            occupied_slots: Some(JsonString(occupied)),
            addr: if hide { None } else { Some(row.addr.clone()) },
            architecture: Some(row.architecture),
            first_contact: row.first_contact.map(GqlDateTime),
            lost_at: row.lost_at.map(GqlDateTime),
            live_stat: None,
            version: Some(row.version),
            compute_plugins: Some(JsonString(row.compute_plugins)),
            rpc_addr: row.addr,
            local_config: Some(JsonString(local_config(row.auto_terminate_abusing_kernel))),
            cpu_cur_pct: Some(0.0),
            mem_cur_bytes: Some(0.0),
            agent_id: row.id,
            containers: None,
        }
    }
}

/// Fills the live statistics and (when selected) the containers of a page of agents.
async fn complete_agents(
    ctx: &Context<'_>,
    request: &GqlRequest,
    agents: &mut [Agent],
    in_items: bool,
) -> GqlResult<()> {
    let look_ahead = ctx.look_ahead();
    let fields = if in_items {
        look_ahead.field("items")
    } else {
        look_ahead
    };
    let wants_stats = ["live_stat", "cpu_cur_pct", "mem_cur_bytes"]
        .iter()
        .any(|name| fields.field(name).exists());
    if wants_stats {
        let ids: Vec<String> = agents.iter().map(|a| a.agent_id.clone()).collect();
        for (agent, stat) in agents.iter_mut().zip(live_stats(request, &ids).await) {
            let Some(stat) = stat else { continue };
            let number = |value: Option<&serde_json::Value>| {
                value.and_then(|v| {
                    v.as_f64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
            };
            agent.cpu_cur_pct = Some(number(stat.pointer("/node/cpu_util/pct")).unwrap_or(0.0));
            agent.mem_cur_bytes = Some(
                number(stat.pointer("/node/mem/current"))
                    .unwrap_or(0.0)
                    .trunc(),
            );
            agent.live_stat = Some(JsonString(stat));
        }
    }
    if fields.field("compute_containers").exists() {
        let ids: Vec<String> = agents.iter().map(|a| a.agent_id.clone()).collect();
        let client = sql::connection(&request.db).await?;
        let rows = container_list::containers_of_agents(&client, ids)
            .await
            .map_err(GqlError::from)?;
        let containers = containers_of_rows(request, rows).await;
        let mut by_agent: HashMap<String, Vec<ComputeContainer>> = HashMap::new();
        for (agent_id, container) in containers {
            if let Some(agent_id) = agent_id {
                by_agent.entry(agent_id).or_default().push(container);
            }
        }
        for agent in agents.iter_mut() {
            agent.containers = Some(by_agent.remove(&agent.agent_id).unwrap_or_default());
        }
    }
    Ok(())
}

/// The `scaling_group` and `status` (one status or a comma-separated list) of an agent
/// listing.
fn agent_selection(
    scaling_group: Option<String>,
    status: Option<&str>,
) -> GqlResult<AgentSelection> {
    let statuses = status
        .map(|status| parse_status_list(&AGENT_STATUS, "status", status))
        .transpose()?;
    Ok(AgentSelection {
        scaling_group,
        statuses,
    })
}

/// A page of agents.
#[derive(SimpleObject)]
#[graphql(name = "AgentList", rename_fields = "snake_case")]
pub struct AgentList {
    pub items: Vec<Agent>,
    pub total_count: i32,
}

#[derive(Default)]
pub struct AgentQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl AgentQuery {
    async fn agent(
        &self,
        ctx: &Context<'_>,
        agent_id: String,
    ) -> async_graphql::Result<Option<Agent>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let client = sql::connection(&request.db).await?;
        let row = agent_list::agent(&client, agent_id)
            .await
            .map_err(GqlError::from)?;
        let hide = request.hides_agents();
        let mut agents: Vec<Agent> = row.into_iter().map(|r| Agent::from_row(r, hide)).collect();
        complete_agents(ctx, request, &mut agents, false).await?;
        Ok(agents.into_iter().next())
    }

    /// Agents (legacy, not paginated).
    async fn agents(
        &self,
        ctx: &Context<'_>,
        scaling_group: Option<String>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<Vec<Agent>>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let selection = agent_selection(scaling_group, status.as_deref())?;
        let client = sql::connection(&request.db).await?;
        let rows = agent_list::agents(&client, &selection)
            .await
            .map_err(GqlError::from)?;
        let hide = request.hides_agents();
        let mut agents: Vec<Agent> = rows.into_iter().map(|r| Agent::from_row(r, hide)).collect();
        complete_agents(ctx, request, &mut agents, false).await?;
        Ok(Some(agents))
    }

    /// A page of agents (`status` is a comma-separated list of ALIVE, LOST, ...).
    #[allow(clippy::too_many_arguments)]
    async fn agent_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        scaling_group: Option<String>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<AgentList>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let page = Page::new(limit, offset)?;
        let agents = agent_selection(scaling_group, status.as_deref())?;
        let listing = agent_list::agent_page(&agents, filter.as_deref(), order.as_deref())
            .map_err(GqlError::from)?;
        let selection = ListSelection::of(ctx);
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch_as(
                &client,
                Some(page),
                selection.items,
                selection.total_count,
                AgentRow::decode,
            )
            .await
            .map_err(GqlError::from)?;
        let hide = request.hides_agents();
        let mut items: Vec<Agent> = rows.into_iter().map(|r| Agent::from_row(r, hide)).collect();
        complete_agents(ctx, request, &mut items, true).await?;
        Ok(Some(AgentList {
            items,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}
