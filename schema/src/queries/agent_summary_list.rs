//! The agents of the GraphQL `AgentSummary` type, the agents view of every role: one by id and
//! a page, among the scaling groups the caller may use, with the original's `filter`/`order`
//! names (`AgentSummary._queryfilter_fieldspec` and `_queryorder_colmap`).

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::agent_list::{AgentSelection, DEFAULT_AGENT_ORDER};
use super::listing::{Conditions, Listing, SqlParams, query_as};
use super::{QueryError, ReadColumn};
use crate::minilang::enums::AGENT_STATUS;
use crate::minilang::{self, FieldKind, FilterField, MinilangError, OrderField};

/// The columns [`AgentSummaryRow::decode`] reads, over `agents a`.
const SUMMARY_COLUMNS: &str = "a.id, a.status::text AS status, a.scaling_group, a.schedulable, \
     a.available_slots, a.occupied_slots, a.architecture";

/// One agent as every role may see it.
#[derive(Debug, Clone)]
pub struct AgentSummaryRow {
    pub id: String,
    pub status: String,
    pub scaling_group: String,
    pub schedulable: bool,
    pub available_slots: serde_json::Value,
    pub occupied_slots: serde_json::Value,
    pub architecture: String,
}

impl AgentSummaryRow {
    pub fn decode(row: &Row) -> Result<AgentSummaryRow, QueryError> {
        Ok(AgentSummaryRow {
            id: row.read("id")?,
            status: row.read("status")?,
            scaling_group: row.read("scaling_group")?,
            schedulable: row.read("schedulable")?,
            available_slots: row.read("available_slots")?,
            occupied_slots: row.read("occupied_slots")?,
            architecture: row.read("architecture")?,
        })
    }
}

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

fn select(where_clause: &str) -> String {
    format!("SELECT {SUMMARY_COLUMNS} FROM agents a {where_clause}")
}

fn by_id_sql(id: String, scaling_groups: Vec<String>, params: &mut SqlParams) -> String {
    let mut conditions = Conditions::new();
    conditions.add(format!("a.id = {}", params.push(id)));
    conditions.add(format!(
        "a.scaling_group = ANY({})",
        params.push(scaling_groups)
    ));
    select(&conditions.where_clause())
}

/// One agent by id, when it is in one of `scaling_groups`.
pub async fn agent_summary(
    client: &impl GenericClient,
    id: String,
    scaling_groups: Vec<String>,
) -> Result<Option<AgentSummaryRow>, QueryError> {
    let mut params = SqlParams::new();
    let sql = by_id_sql(id, scaling_groups, &mut params);
    let rows = query_as(
        client,
        &sql,
        &params,
        "reading an agent",
        AgentSummaryRow::decode,
    )
    .await?;
    Ok(rows.into_iter().next())
}

/// A page of the agents of some statuses (`selection.statuses`) in `scaling_groups`, filtered
/// and ordered by the client's `filter`/`order`.
pub fn agent_summary_page(
    statuses: Option<Vec<String>>,
    scaling_groups: Vec<String>,
    filter: Option<&str>,
    order: Option<&str>,
) -> Result<Listing, MinilangError> {
    let mut params = SqlParams::new();
    let selection = AgentSelection {
        scaling_group: None,
        statuses,
    };
    let mut conditions = selection.conditions(&mut params);
    conditions.add(format!(
        "a.scaling_group = ANY({})",
        params.push(scaling_groups)
    ));
    if let Some(condition) = minilang::filter_sql(filter, AGENT_SUMMARY_FILTER_FIELDS, &mut params)?
    {
        conditions.add(condition);
    }
    let order_by = match minilang::order_sql(order, AGENT_SUMMARY_ORDER_FIELDS)? {
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
    let groups = vec!["default".to_owned()];
    let mut out = vec![by_id_sql(
        "i-1".into(),
        groups.clone(),
        &mut SqlParams::new(),
    )];
    for (filter, order) in [
        (None, None),
        (Some("status == \"ALIVE\""), Some("-schedulable")),
    ] {
        let page = agent_summary_page(Some(vec!["ALIVE".into()]), groups.clone(), filter, order)?;
        let (page, count) = page.statements(true);
        out.extend([page, count]);
    }
    Ok(out)
}
