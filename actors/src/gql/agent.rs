//! `Agent`: the `agent`, `agent_list` and `agents` queries (superadmins and monitors), with
//! live statistics from Redis and the agent's containers. Under `[manager] hide-agents` the
//! agent ids and addresses are hidden from everyone but superadmins.

use std::collections::HashMap;

use async_graphql::{Context, ID, Object, SimpleObject};
use tokio_postgres::Row;

use super::container::{ComputeContainer, load_containers};
use super::context::GqlRequest;
use super::enums::{AGENT_STATUS, parse_status_list};
use super::error::{GqlError, GqlResult};
use super::pagination::{ListSelection, Page};
use super::permissions::require_superadmin_read;
use super::scalars::{GqlDateTime, JsonString};
use super::sql::{self, Conditions, Listing, SqlParams};
use super::stats::live_stats;
use crate::agent_rpc::{AgentMethod, AgentTarget};
use crate::wire::msgpack_json::msgpack_to_json;
use bai_schema::minilang::{self, FieldKind, FilterField, OrderField};

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

const AGENT_COLUMNS: &str = "a.id, a.status::text AS status, a.status_changed, a.region, \
     a.scaling_group, a.schedulable, a.available_slots, a.occupied_slots, a.addr, \
     a.architecture, a.first_contact, a.lost_at, a.version, a.compute_plugins, \
     a.auto_terminate_abusing_kernel";

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
    fn from_row(row: &Row, hide: bool) -> GqlResult<Agent> {
        let id: String = row.try_get("id")?;
        let available: serde_json::Value = row.try_get("available_slots")?;
        let occupied: serde_json::Value = row.try_get("occupied_slots")?;
        let timestamp = |column: &str| -> GqlResult<Option<GqlDateTime>> {
            Ok(row
                .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(column)?
                .map(GqlDateTime))
        };
        Ok(Agent {
            id: if hide { None } else { Some(ID(id.clone())) },
            status: Some(row.try_get("status")?),
            status_changed: timestamp("status_changed")?,
            region: Some(row.try_get("region")?),
            scaling_group: Some(row.try_get("scaling_group")?),
            schedulable: Some(row.try_get("schedulable")?),
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
            addr: if hide {
                None
            } else {
                Some(row.try_get("addr")?)
            },
            architecture: Some(row.try_get("architecture")?),
            first_contact: timestamp("first_contact")?,
            lost_at: timestamp("lost_at")?,
            live_stat: None,
            version: Some(row.try_get("version")?),
            compute_plugins: Some(JsonString(row.try_get("compute_plugins")?)),
            rpc_addr: row.try_get("addr")?,
            local_config: Some(JsonString(local_config(
                row.try_get("auto_terminate_abusing_kernel")?,
            ))),
            cpu_cur_pct: Some(0.0),
            mem_cur_bytes: Some(0.0),
            agent_id: id,
            containers: None,
        })
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
        let mut params = SqlParams::new();
        let mut conditions = Conditions::new();
        conditions.add(format!("k.agent = ANY({})", params.push(ids)));
        let containers = load_containers(request, &client, &conditions, &params).await?;
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

/// The original's `Agent._queryfilter_fieldspec`.
pub const AGENT_FILTER_FIELDS: &[FilterField] = &[
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
        name: "status_changed",
        sql: "a.status_changed",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "region",
        sql: "a.region",
        kind: FieldKind::Text,
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
    FilterField {
        name: "addr",
        sql: "a.addr",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "first_contact",
        sql: "a.first_contact",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "lost_at",
        sql: "a.lost_at",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "version",
        sql: "a.version",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "architecture",
        sql: "a.architecture",
        kind: FieldKind::Text,
    },
];

/// The original's `Agent._queryorder_colmap`.
pub const AGENT_ORDER_FIELDS: &[OrderField] = &[
    OrderField {
        name: "id",
        sql: "a.id",
    },
    OrderField {
        name: "status",
        sql: "a.status",
    },
    OrderField {
        name: "status_changed",
        sql: "a.status_changed",
    },
    OrderField {
        name: "region",
        sql: "a.region",
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
        name: "first_contact",
        sql: "a.first_contact",
    },
    OrderField {
        name: "lost_at",
        sql: "a.lost_at",
    },
    OrderField {
        name: "version",
        sql: "a.version",
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

const DEFAULT_AGENT_ORDER: &str = "a.status, a.scaling_group, a.id";

/// The `scaling_group` and `status` (one status or a comma-separated list) conditions of an
/// agent listing.
pub(super) fn agent_conditions(
    scaling_group: Option<String>,
    status: Option<&str>,
    params: &mut SqlParams,
) -> GqlResult<Conditions> {
    let mut conditions = Conditions::new();
    if let Some(group) = scaling_group {
        conditions.add(format!("a.scaling_group = {}", params.push(group)));
    }
    if let Some(status) = status {
        let labels = parse_status_list(&AGENT_STATUS, "status", status)?;
        conditions.add(format!(
            "a.status = ANY(ARRAY(SELECT unnest({}::text[])::agentstatus))",
            params.push(labels)
        ));
    }
    Ok(conditions)
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
        let statement = format!("SELECT {AGENT_COLUMNS} FROM agents a WHERE a.id = $1");
        let mut params = SqlParams::new();
        params.push(agent_id);
        let rows = sql::query(&client, &statement, &params).await?;
        let hide = request.hides_agents();
        let mut agents = rows
            .iter()
            .map(|r| Agent::from_row(r, hide))
            .collect::<GqlResult<Vec<_>>>()?;
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
        let mut params = SqlParams::new();
        let conditions = agent_conditions(scaling_group, status.as_deref(), &mut params)?;
        let client = sql::connection(&request.db).await?;
        let statement = format!(
            "SELECT {AGENT_COLUMNS} FROM agents a {} ORDER BY {DEFAULT_AGENT_ORDER}",
            conditions.where_clause()
        );
        let rows = sql::query(&client, &statement, &params).await?;
        let hide = request.hides_agents();
        let mut agents = rows
            .iter()
            .map(|r| Agent::from_row(r, hide))
            .collect::<GqlResult<Vec<_>>>()?;
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
        let mut params = SqlParams::new();
        let mut conditions = agent_conditions(scaling_group, status.as_deref(), &mut params)?;
        if let Some(condition) =
            minilang::filter_sql(filter.as_deref(), AGENT_FILTER_FIELDS, &mut params)?
        {
            conditions.add(condition);
        }
        let order_by = match minilang::order_sql(order.as_deref(), AGENT_ORDER_FIELDS)? {
            Some(order) => format!("{order}, a.id"),
            None => DEFAULT_AGENT_ORDER.to_owned(),
        };
        let where_clause = conditions.where_clause();
        let listing = Listing {
            select: format!("SELECT {AGENT_COLUMNS} FROM agents a {where_clause}"),
            count: format!("SELECT count(*) FROM agents a {where_clause}"),
            order_by,
            cacheable: filter.is_none() && order.is_none(),
            params,
        };
        let selection = ListSelection::of(ctx);
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch(&client, Some(page), selection.items, selection.total_count)
            .await?;
        let hide = request.hides_agents();
        let mut items = rows
            .iter()
            .map(|r| Agent::from_row(r, hide))
            .collect::<GqlResult<Vec<_>>>()?;
        complete_agents(ctx, request, &mut items, true).await?;
        Ok(Some(AgentList {
            items,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}
