//! `ComputeContainer`: one kernel of a session, as the `containers` of a `ComputeSession` and
//! the `compute_containers` of an `Agent`. Loaded in one statement for a whole page of owners.

use async_graphql::{ID, SimpleObject};
use tokio_postgres::Row;
use uuid::Uuid;

use super::context::GqlRequest;
use super::error::GqlResult;
use super::scalars::{GqlDateTime, JsonString};
use super::sql::{self, Conditions, SqlParams};
use super::stats::live_stats;
use bai_schema::minilang::compile::parse_datetime;

/// A container (kernel) as the original's GraphQL `ComputeContainer` type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "ComputeContainer", rename_fields = "snake_case")]
pub struct ComputeContainer {
    pub id: Option<ID>,
    /// Legacy name of `cluster_idx`.
    pub idx: Option<i32>,
    /// Legacy name of `cluster_role`.
    pub role: Option<String>,
    /// Legacy name of `cluster_hostname`.
    pub hostname: Option<String>,
    pub cluster_idx: Option<i32>,
    pub local_rank: Option<i32>,
    pub cluster_role: Option<String>,
    pub cluster_hostname: Option<String>,
    pub session_id: Option<Uuid>,
    pub image: Option<String>,
    pub architecture: Option<String>,
    pub registry: Option<String>,
    pub status: Option<String>,
    pub status_changed: Option<GqlDateTime>,
    pub status_info: Option<String>,
    pub status_data: Option<JsonString>,
    pub created_at: Option<GqlDateTime>,
    pub terminated_at: Option<GqlDateTime>,
    pub starts_at: Option<GqlDateTime>,
    pub scheduled_at: Option<GqlDateTime>,
    pub abusing_report: Option<JsonString>,
    /// Hidden from non-superadmins under `[manager] hide-agents`.
    pub agent: Option<String>,
    /// Hidden from non-superadmins under `[manager] hide-agents`.
    pub agent_addr: Option<String>,
    /// Hidden from non-superadmins under `[manager] hide-agents`.
    pub container_id: Option<String>,
    pub resource_opts: Option<JsonString>,
    pub occupied_slots: Option<JsonString>,
    pub live_stat: Option<JsonString>,
    /// The same as `live_stat` (legacy).
    pub last_stat: Option<JsonString>,
    pub preopen_ports: Option<Vec<i32>>,
}

pub const CONTAINER_COLUMNS: &str = "k.id, k.cluster_idx, k.local_rank, k.cluster_role, \
     k.cluster_hostname, k.session_id, k.image, k.architecture, k.registry, \
     k.status::text AS status, k.status_changed, k.status_info, k.status_data, \
     k.status_history, k.created_at, k.terminated_at, k.starts_at, k.agent, k.agent_addr, \
     k.container_id, k.resource_opts, k.occupied_slots, k.preopen_ports";

fn json_or_none(value: Option<serde_json::Value>) -> Option<JsonString> {
    value.filter(|v| !v.is_null()).map(JsonString)
}

impl ComputeContainer {
    /// The container and its (never hidden, internal) agent id.
    fn from_row(row: &Row, hide_agents: bool) -> GqlResult<(Option<String>, ComputeContainer)> {
        let id: Uuid = row.try_get("id")?;
        let agent: Option<String> = row.try_get("agent")?;
        let history: Option<serde_json::Value> = row.try_get("status_history")?;
        let scheduled_at = history
            .as_ref()
            .and_then(|h| h.get("SCHEDULED"))
            .and_then(|v| v.as_str())
            .and_then(parse_datetime)
            .map(GqlDateTime);
        let timestamp = |column: &str| -> GqlResult<Option<GqlDateTime>> {
            Ok(row
                .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(column)?
                .map(GqlDateTime))
        };
        let cluster_idx: i32 = row.try_get("cluster_idx")?;
        let cluster_role: String = row.try_get("cluster_role")?;
        let cluster_hostname: String = row.try_get("cluster_hostname")?;
        let container = ComputeContainer {
            id: Some(ID(id.to_string())),
            idx: Some(cluster_idx),
            role: Some(cluster_role.clone()),
            hostname: Some(cluster_hostname.clone()),
            cluster_idx: Some(cluster_idx),
            local_rank: Some(row.try_get("local_rank")?),
            cluster_role: Some(cluster_role),
            cluster_hostname: Some(cluster_hostname),
            session_id: Some(row.try_get("session_id")?),
            image: row.try_get("image")?,
            architecture: Some(row.try_get("architecture")?),
            registry: row.try_get("registry")?,
            status: Some(row.try_get("status")?),
            status_changed: timestamp("status_changed")?,
            status_info: row.try_get("status_info")?,
            status_data: json_or_none(row.try_get("status_data")?),
            created_at: timestamp("created_at")?,
            terminated_at: timestamp("terminated_at")?,
            starts_at: timestamp("starts_at")?,
            scheduled_at,
            abusing_report: None,
            agent: if hide_agents { None } else { agent.clone() },
            agent_addr: if hide_agents {
                None
            } else {
                row.try_get("agent_addr")?
            },
            container_id: if hide_agents {
                None
            } else {
                row.try_get("container_id")?
            },
            resource_opts: json_or_none(row.try_get("resource_opts")?),
            occupied_slots: Some(JsonString(row.try_get("occupied_slots")?)),
            live_stat: None,
            last_stat: None,
            preopen_ports: row.try_get("preopen_ports")?,
        };
        Ok((agent, container))
    }
}

/// The containers matching `conditions` (over `kernels k`), ordered by session and cluster
/// index, with their live statistics; each with its agent id.
pub async fn load_containers(
    request: &GqlRequest,
    client: &deadpool_postgres::Object,
    conditions: &Conditions,
    params: &SqlParams,
) -> GqlResult<Vec<(Option<String>, ComputeContainer)>> {
    let statement = format!(
        "SELECT {CONTAINER_COLUMNS} FROM kernels k {} ORDER BY k.session_id, k.cluster_idx, k.id",
        conditions.where_clause()
    );
    let rows = sql::query(client, &statement, params).await?;
    containers_of_rows(request, &rows).await
}

/// Containers from rows of `CONTAINER_COLUMNS`, with their live statistics; each with its
/// agent id.
pub async fn containers_of_rows(
    request: &GqlRequest,
    rows: &[Row],
) -> GqlResult<Vec<(Option<String>, ComputeContainer)>> {
    let hide = request.hides_agents();
    let mut containers = rows
        .iter()
        .map(|row| ComputeContainer::from_row(row, hide))
        .collect::<GqlResult<Vec<_>>>()?;
    let ids: Vec<String> = containers
        .iter()
        .filter_map(|(_, c)| c.id.as_ref().map(|id| id.to_string()))
        .collect();
    for ((_, container), stat) in containers.iter_mut().zip(live_stats(request, &ids).await) {
        container.live_stat = stat.clone().map(JsonString);
        container.last_stat = stat.map(JsonString);
    }
    Ok(containers)
}
