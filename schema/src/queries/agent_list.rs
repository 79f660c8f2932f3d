//! The agents of the GraphQL `Agent` type (superadmins and monitors): one by id, all of a
//! scaling group or of some statuses (legacy `agents`), and a page with the original's
//! `filter`/`order` names (`Agent._queryfilter_fieldspec` and `_queryorder_colmap`).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::listing::{Conditions, Listing, SqlParams, enum_in, query_as};
use super::{QueryError, ReadColumn};
use crate::minilang::enums::AGENT_STATUS;
use crate::minilang::{self, FieldKind, FilterField, MinilangError, OrderField};

/// The columns [`AgentRow::decode`] reads, over `agents a`.
const AGENT_COLUMNS: &str = "a.id, a.status::text AS status, a.status_changed, a.region, \
     a.scaling_group, a.schedulable, a.available_slots, a.occupied_slots, a.addr, \
     a.architecture, a.first_contact, a.lost_at, a.version, a.compute_plugins, \
     a.auto_terminate_abusing_kernel";

/// The original's default ordering of agents.
pub(crate) const DEFAULT_AGENT_ORDER: &str = "a.status, a.scaling_group, a.id";

/// One agent row.
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub id: String,
    pub status: String,
    pub status_changed: Option<DateTime<Utc>>,
    pub region: String,
    pub scaling_group: String,
    pub schedulable: bool,
    pub available_slots: serde_json::Value,
    pub occupied_slots: serde_json::Value,
    pub addr: String,
    pub architecture: String,
    pub first_contact: Option<DateTime<Utc>>,
    pub lost_at: Option<DateTime<Utc>>,
    pub version: String,
    pub compute_plugins: serde_json::Value,
    pub auto_terminate_abusing_kernel: bool,
}

impl AgentRow {
    pub fn decode(row: &Row) -> Result<AgentRow, QueryError> {
        Ok(AgentRow {
            id: row.read("id")?,
            status: row.read("status")?,
            status_changed: row.read("status_changed")?,
            region: row.read("region")?,
            scaling_group: row.read("scaling_group")?,
            schedulable: row.read("schedulable")?,
            available_slots: row.read("available_slots")?,
            occupied_slots: row.read("occupied_slots")?,
            addr: row.read("addr")?,
            architecture: row.read("architecture")?,
            first_contact: row.read("first_contact")?,
            lost_at: row.read("lost_at")?,
            version: row.read("version")?,
            compute_plugins: row.read("compute_plugins")?,
            auto_terminate_abusing_kernel: row.read("auto_terminate_abusing_kernel")?,
        })
    }
}

/// Which agents a listing takes: of one scaling group and of some statuses (stored labels).
#[derive(Debug, Clone, Default)]
pub struct AgentSelection {
    pub scaling_group: Option<String>,
    pub statuses: Option<Vec<String>>,
}

impl AgentSelection {
    /// The `scaling_group` and `status` conditions over `agents a`.
    pub(crate) fn conditions(&self, params: &mut SqlParams) -> Conditions {
        let mut conditions = Conditions::new();
        if let Some(group) = &self.scaling_group {
            conditions.add(format!("a.scaling_group = {}", params.push(group.clone())));
        }
        if let Some(labels) = &self.statuses {
            conditions.add(enum_in(
                "a.status",
                AGENT_STATUS.pg_type,
                labels.clone(),
                params,
            ));
        }
        conditions
    }
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

fn select(where_clause: &str) -> String {
    format!("SELECT {AGENT_COLUMNS} FROM agents a {where_clause}")
}

fn by_id_sql() -> String {
    select("WHERE a.id = $1")
}

/// One agent by id.
pub async fn agent(
    client: &impl GenericClient,
    id: String,
) -> Result<Option<AgentRow>, QueryError> {
    let mut params = SqlParams::new();
    params.push(id);
    let rows = query_as(
        client,
        &by_id_sql(),
        &params,
        "reading an agent",
        AgentRow::decode,
    )
    .await?;
    Ok(rows.into_iter().next())
}

fn all_sql(selection: &AgentSelection, params: &mut SqlParams) -> String {
    let conditions = selection.conditions(params);
    format!(
        "{} ORDER BY {DEFAULT_AGENT_ORDER}",
        select(&conditions.where_clause())
    )
}

/// Every agent of `selection`, in the default order (the legacy `agents` query).
pub async fn agents(
    client: &impl GenericClient,
    selection: &AgentSelection,
) -> Result<Vec<AgentRow>, QueryError> {
    let mut params = SqlParams::new();
    let sql = all_sql(selection, &mut params);
    query_as(client, &sql, &params, "reading agents", AgentRow::decode).await
}

/// A page of the agents of `selection`, filtered and ordered by the client's `filter`/`order`.
pub fn agent_page(
    selection: &AgentSelection,
    filter: Option<&str>,
    order: Option<&str>,
) -> Result<Listing, MinilangError> {
    let mut params = SqlParams::new();
    let mut conditions = selection.conditions(&mut params);
    if let Some(condition) = minilang::filter_sql(filter, AGENT_FILTER_FIELDS, &mut params)? {
        conditions.add(condition);
    }
    let order_by = match minilang::order_sql(order, AGENT_ORDER_FIELDS)? {
        Some(order) => format!("{order}, a.id"),
        None => DEFAULT_AGENT_ORDER.to_owned(),
    };
    let where_clause = conditions.where_clause();
    Ok(Listing {
        select: select(&where_clause),
        count: format!("SELECT count(*) FROM agents a {where_clause}"),
        order_by,
        cacheable: filter.is_none() && order.is_none(),
        params,
    })
}

/// The statements this module assembles, for the prepare test.
pub fn statements() -> Result<Vec<String>, MinilangError> {
    let selection = AgentSelection {
        scaling_group: Some("default".into()),
        statuses: Some(vec!["ALIVE".into()]),
    };
    let mut out = vec![by_id_sql(), all_sql(&selection, &mut SqlParams::new())];
    for (filter, order) in [
        (None, None),
        (Some("schedulable == true"), Some("-first_contact")),
    ] {
        let (page, count) = agent_page(&selection, filter, order)?.statements(true);
        out.extend([page, count]);
    }
    Ok(out)
}
