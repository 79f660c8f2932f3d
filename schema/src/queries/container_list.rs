//! The containers (kernels) of the GraphQL `ComputeContainer` type: one by id, a page of one
//! session's, and all of a page of sessions or agents in one statement each, in the caller's
//! scope, with the original's `filter`/`order` names (`ComputeContainer._queryfilter_fieldspec`
//! and `_queryorder_colmap`).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::listing::{Conditions, Listing, SqlParams, query_as};
use super::{QueryError, ReadColumn};
use crate::minilang::enums::KERNEL_STATUS;
use crate::minilang::{self, FieldKind, FilterField, MinilangError, OrderField};

/// The columns [`ContainerRow::decode`] reads, over `kernels k`.
const CONTAINER_COLUMNS: &str = "k.id, k.cluster_idx, k.local_rank, k.cluster_role, \
     k.cluster_hostname, k.session_id, k.image, k.architecture, k.registry, \
     k.status::text AS status, k.status_changed, k.status_info, k.status_data, \
     k.status_history, k.created_at, k.terminated_at, k.starts_at, k.agent, k.agent_addr, \
     k.container_id, k.resource_opts, k.occupied_slots, k.preopen_ports";

/// The original's `DEFAULT_KERNEL_ORDERING`: the most recently changed first.
const DEFAULT_CONTAINER_ORDER: &str =
    "greatest(k.created_at, k.terminated_at, k.status_changed) DESC, k.id";

/// The order of the containers of many sessions or agents.
const GROUPED_ORDER: &str = "k.session_id, k.cluster_idx, k.id";

/// One kernel row.
#[derive(Debug, Clone)]
pub struct ContainerRow {
    pub id: Uuid,
    pub cluster_idx: i32,
    pub local_rank: i32,
    pub cluster_role: String,
    pub cluster_hostname: String,
    pub session_id: Uuid,
    pub image: Option<String>,
    pub architecture: String,
    pub registry: Option<String>,
    pub status: String,
    pub status_changed: Option<DateTime<Utc>>,
    pub status_info: Option<String>,
    pub status_data: Option<serde_json::Value>,
    pub status_history: Option<serde_json::Value>,
    pub created_at: Option<DateTime<Utc>>,
    pub terminated_at: Option<DateTime<Utc>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub agent: Option<String>,
    pub agent_addr: Option<String>,
    pub container_id: Option<String>,
    pub resource_opts: Option<serde_json::Value>,
    pub occupied_slots: serde_json::Value,
    pub preopen_ports: Option<Vec<i32>>,
}

impl ContainerRow {
    pub fn decode(row: &Row) -> Result<ContainerRow, QueryError> {
        Ok(ContainerRow {
            id: row.read("id")?,
            cluster_idx: row.read("cluster_idx")?,
            local_rank: row.read("local_rank")?,
            cluster_role: row.read("cluster_role")?,
            cluster_hostname: row.read("cluster_hostname")?,
            session_id: row.read("session_id")?,
            image: row.read("image")?,
            architecture: row.read("architecture")?,
            registry: row.read("registry")?,
            status: row.read("status")?,
            status_changed: row.read("status_changed")?,
            status_info: row.read("status_info")?,
            status_data: row.read("status_data")?,
            status_history: row.read("status_history")?,
            created_at: row.read("created_at")?,
            terminated_at: row.read("terminated_at")?,
            starts_at: row.read("starts_at")?,
            agent: row.read("agent")?,
            agent_addr: row.read("agent_addr")?,
            container_id: row.read("container_id")?,
            resource_opts: row.read("resource_opts")?,
            occupied_slots: row.read("occupied_slots")?,
            preopen_ports: row.read("preopen_ports")?,
        })
    }
}

/// Whose containers the caller sees: all (`None`s), a domain's, or one keypair's.
#[derive(Debug, Clone, Default)]
pub struct ContainerScope {
    pub domain_name: Option<String>,
    pub access_key: Option<String>,
}

impl ContainerScope {
    fn conditions(&self, params: &mut SqlParams) -> Conditions {
        let mut conditions = Conditions::new();
        if let Some(domain) = &self.domain_name {
            conditions.add(format!("k.domain_name = {}", params.push(domain.clone())));
        }
        if let Some(access_key) = &self.access_key {
            conditions.add(format!(
                "k.access_key = {}",
                params.push(access_key.clone())
            ));
        }
        conditions
    }
}

/// The original's `ComputeContainer._queryfilter_fieldspec`.
pub const CONTAINER_FILTER_FIELDS: &[FilterField] = &[
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
pub const CONTAINER_ORDER_FIELDS: &[OrderField] = &[
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

fn select(where_clause: &str) -> String {
    format!("SELECT {CONTAINER_COLUMNS} FROM kernels k {where_clause}")
}

/// One container by id, when in `scope`.
pub async fn container(
    client: &impl GenericClient,
    scope: &ContainerScope,
    id: Uuid,
) -> Result<Option<ContainerRow>, QueryError> {
    let mut params = SqlParams::new();
    let mut conditions = scope.conditions(&mut params);
    conditions.add(format!("k.id = {}", params.push(id)));
    let sql = select(&conditions.where_clause());
    let rows = query_as(
        client,
        &sql,
        &params,
        "reading a container",
        ContainerRow::decode,
    )
    .await?;
    Ok(rows.into_iter().next())
}

/// A page of one session's containers (of one cluster role, when given), filtered and
/// ordered by the client's `filter`/`order`.
pub fn session_containers(
    scope: &ContainerScope,
    session_id: Uuid,
    role: Option<String>,
    filter: Option<&str>,
    order: Option<&str>,
) -> Result<Listing, MinilangError> {
    let mut params = SqlParams::new();
    let mut conditions = scope.conditions(&mut params);
    conditions.add(format!("k.session_id = {}", params.push(session_id)));
    if let Some(role) = role {
        conditions.add(format!("k.cluster_role = {}", params.push(role)));
    }
    if let Some(condition) = minilang::filter_sql(filter, CONTAINER_FILTER_FIELDS, &mut params)? {
        conditions.add(condition);
    }
    let order_by = match minilang::order_sql(order, CONTAINER_ORDER_FIELDS)? {
        Some(order) => format!("{order}, k.id"),
        None => DEFAULT_CONTAINER_ORDER.to_owned(),
    };
    let where_clause = conditions.where_clause();
    Ok(Listing {
        select: select(&where_clause),
        count: format!("SELECT count(*) FROM kernels k {where_clause}"),
        order_by,
        cacheable: filter.is_none() && order.is_none(),
        params,
    })
}

/// The containers of `sessions`, ordered by session and cluster index.
pub async fn containers_of_sessions(
    client: &impl GenericClient,
    sessions: Vec<Uuid>,
) -> Result<Vec<ContainerRow>, QueryError> {
    let mut params = SqlParams::new();
    let sql = of_sessions_sql(&mut params, sessions);
    query_as(
        client,
        &sql,
        &params,
        "reading the sessions' containers",
        ContainerRow::decode,
    )
    .await
}

fn of_sessions_sql(params: &mut SqlParams, sessions: Vec<Uuid>) -> String {
    let mut conditions = Conditions::new();
    conditions.add(format!("k.session_id = ANY({})", params.push(sessions)));
    format!(
        "{} ORDER BY {GROUPED_ORDER}",
        select(&conditions.where_clause())
    )
}

/// The containers on `agents`, ordered by session and cluster index.
pub async fn containers_of_agents(
    client: &impl GenericClient,
    agents: Vec<String>,
) -> Result<Vec<ContainerRow>, QueryError> {
    let mut params = SqlParams::new();
    let sql = of_agents_sql(&mut params, agents);
    query_as(
        client,
        &sql,
        &params,
        "reading the agents' containers",
        ContainerRow::decode,
    )
    .await
}

fn of_agents_sql(params: &mut SqlParams, agents: Vec<String>) -> String {
    let mut conditions = Conditions::new();
    conditions.add(format!("k.agent = ANY({})", params.push(agents)));
    format!(
        "{} ORDER BY {GROUPED_ORDER}",
        select(&conditions.where_clause())
    )
}

/// The statements this module assembles (a scoped read by id, the grouped reads, and a
/// session's page without and with a filter and an ordering), for the prepare test.
pub fn statements() -> Result<Vec<String>, MinilangError> {
    let scope = ContainerScope {
        domain_name: Some("default".into()),
        access_key: Some("AKIA".into()),
    };
    let mut params = SqlParams::new();
    let mut by_id = scope.conditions(&mut params);
    by_id.add(format!("k.id = {}", params.push(Uuid::nil())));
    let mut out = vec![
        select(&by_id.where_clause()),
        of_sessions_sql(&mut SqlParams::new(), Vec::new()),
        of_agents_sql(&mut SqlParams::new(), Vec::new()),
    ];
    for (filter, order) in [
        (None, None),
        (Some("status == \"RUNNING\""), Some("-created_at")),
    ] {
        let listing = session_containers(&scope, Uuid::nil(), Some("main".into()), filter, order)?;
        let (page, count) = listing.statements(true);
        out.extend([page, count]);
    }
    Ok(out)
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
