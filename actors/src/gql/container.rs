//! `ComputeContainer`: one kernel of a session, as the `containers` of a `ComputeSession` and
//! the `compute_containers` of an `Agent`, from the rows of `bai_schema::queries::container_list`
//! (one statement for a whole page of owners).

use async_graphql::{ID, SimpleObject};
use bai_schema::minilang::compile::parse_datetime;
use bai_schema::queries::container_list::ContainerRow;
use uuid::Uuid;

use super::context::GqlRequest;
use super::scalars::{GqlDateTime, JsonString};
use super::stats::live_stats;

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

fn json_or_none(value: Option<serde_json::Value>) -> Option<JsonString> {
    value.filter(|v| !v.is_null()).map(JsonString)
}

impl ComputeContainer {
    /// The container and its (never hidden, internal) agent id.
    fn from_row(row: ContainerRow, hide_agents: bool) -> (Option<String>, ComputeContainer) {
        let scheduled_at = row
            .status_history
            .as_ref()
            .and_then(|h| h.get("SCHEDULED"))
            .and_then(|v| v.as_str())
            .and_then(parse_datetime)
            .map(GqlDateTime);
        let container = ComputeContainer {
            id: Some(ID(row.id.to_string())),
            idx: Some(row.cluster_idx),
            role: Some(row.cluster_role.clone()),
            hostname: Some(row.cluster_hostname.clone()),
            cluster_idx: Some(row.cluster_idx),
            local_rank: Some(row.local_rank),
            cluster_role: Some(row.cluster_role),
            cluster_hostname: Some(row.cluster_hostname),
            session_id: Some(row.session_id),
            image: row.image,
            architecture: Some(row.architecture),
            registry: row.registry,
            status: Some(row.status),
            status_changed: row.status_changed.map(GqlDateTime),
            status_info: row.status_info,
            status_data: json_or_none(row.status_data),
            created_at: row.created_at.map(GqlDateTime),
            terminated_at: row.terminated_at.map(GqlDateTime),
            starts_at: row.starts_at.map(GqlDateTime),
            scheduled_at,
            abusing_report: None,
            agent: if hide_agents { None } else { row.agent.clone() },
            agent_addr: if hide_agents { None } else { row.agent_addr },
            container_id: if hide_agents { None } else { row.container_id },
            resource_opts: json_or_none(row.resource_opts),
            occupied_slots: Some(JsonString(row.occupied_slots)),
            live_stat: None,
            last_stat: None,
            preopen_ports: row.preopen_ports,
        };
        (row.agent, container)
    }
}

/// Containers from their rows, with their live statistics; each with its agent id.
pub async fn containers_of_rows(
    request: &GqlRequest,
    rows: Vec<ContainerRow>,
) -> Vec<(Option<String>, ComputeContainer)> {
    let hide = request.hides_agents();
    let mut containers: Vec<_> = rows
        .into_iter()
        .map(|row| ComputeContainer::from_row(row, hide))
        .collect();
    let ids: Vec<String> = containers
        .iter()
        .filter_map(|(_, c)| c.id.as_ref().map(|id| id.to_string()))
        .collect();
    for ((_, container), stat) in containers.iter_mut().zip(live_stats(request, &ids).await) {
        container.live_stat = stat.clone().map(JsonString);
        container.last_stat = stat.map(JsonString);
    }
    containers
}
