//! The sessions of the GraphQL `ComputeSession` type: one by id, a page with the original's
//! `filter`/`order` names (`ComputeSession._queryfilter_fieldspec` and `_queryorder_colmap`),
//! the dependencies of a page of sessions, and a keypair's sessions, in the caller's scope.
//!
//! A page of sessions is one statement: the sessions with their group, owner and main kernel
//! (a lateral lookup on `ix_kernels_sess_id_role`), ordered by the indexed
//! `greatest(created_at, terminated_at)`; the total count is a second statement sent in the
//! same round trip (`Listing`).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::listing::{Conditions, Listing, SqlParams, enum_in, query_as};
use super::{QueryError, ReadColumn};
use crate::minilang::enums::{SESSION_RESULT, SESSION_STATUS};
use crate::minilang::{self, EnumSpec, FieldKind, FilterField, MinilangError, OrderField};

/// The columns [`SessionRow::decode`] reads: `sessions s`, `groups g`, `users u` and the main
/// kernel `mk`.
const SESSION_COLUMNS: &str = "s.id, s.name, s.session_type, s.tag, s.cluster_mode, \
     s.cluster_size, s.domain_name, s.group_id, s.user_uuid, s.access_key, s.images, \
     s.status::text AS status, s.status_info, s.status_data, s.status_history, s.created_at, \
     s.terminated_at, s.starts_at, s.startup_command, s.result::text AS result, s.agent_ids, \
     s.scaling_group_name, s.vfolder_mounts, s.num_queries, g.name AS group_name, \
     u.email AS user_email, u.full_name, mk.id AS main_kernel_id, mk.architecture, \
     mk.registry, mk.service_ports";

const SESSION_FROM: &str = "sessions s JOIN groups g ON g.id = s.group_id \
     JOIN users u ON u.uuid = s.user_uuid \
     LEFT JOIN LATERAL (SELECT k.id, k.architecture, k.registry, k.service_ports FROM kernels k WHERE k.session_id = s.id AND k.cluster_role = 'main' \
         ORDER BY k.cluster_idx LIMIT 1) mk ON true";

/// The newest activity first, as the original (`ix_sessions_updated_order`).
const DEFAULT_SESSION_ORDER: &str = "greatest(s.created_at, s.terminated_at) DESC, s.id DESC";

static SESSION_TYPE: EnumSpec = EnumSpec {
    pg_type: "text",
    labels: &["INTERACTIVE", "BATCH", "INFERENCE"],
    names: &[],
    accept_lowercase: true,
};

static CLUSTER_MODE: EnumSpec = EnumSpec {
    pg_type: "text",
    labels: &["single-node", "multi-node"],
    names: &["SINGLE_NODE", "MULTI_NODE"],
    accept_lowercase: false,
};

/// The original's `ComputeSession._queryfilter_fieldspec`.
pub const SESSION_FILTER_FIELDS: &[FilterField] = &[
    FilterField {
        name: "id",
        sql: "s.id",
        kind: FieldKind::Uuid,
    },
    FilterField {
        name: "type",
        sql: "s.session_type",
        kind: FieldKind::Enum(&SESSION_TYPE),
    },
    FilterField {
        name: "name",
        sql: "s.name",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "image",
        sql: "s.images",
        kind: FieldKind::TextArray,
    },
    FilterField {
        name: "agent_ids",
        sql: "s.agent_ids",
        kind: FieldKind::TextArray,
    },
    FilterField {
        name: "agent_id",
        sql: "s.agent_ids",
        kind: FieldKind::TextArray,
    },
    FilterField {
        name: "agents",
        sql: "s.agent_ids",
        kind: FieldKind::TextArray,
    },
    FilterField {
        name: "domain_name",
        sql: "s.domain_name",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "group_name",
        sql: "g.name",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "user_email",
        sql: "u.email",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "full_name",
        sql: "u.full_name",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "access_key",
        sql: "s.access_key",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "scaling_group",
        sql: "s.scaling_group_name",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "cluster_mode",
        sql: "s.cluster_mode",
        kind: FieldKind::Enum(&CLUSTER_MODE),
    },
    FilterField {
        name: "cluster_size",
        sql: "s.cluster_size",
        kind: FieldKind::Int,
    },
    FilterField {
        name: "status",
        sql: "s.status",
        kind: FieldKind::Enum(&SESSION_STATUS),
    },
    FilterField {
        name: "status_info",
        sql: "s.status_info",
        kind: FieldKind::Text,
    },
    FilterField {
        name: "result",
        sql: "s.result",
        kind: FieldKind::Enum(&SESSION_RESULT),
    },
    FilterField {
        name: "created_at",
        sql: "s.created_at",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "terminated_at",
        sql: "s.terminated_at",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "starts_at",
        sql: "s.starts_at",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "scheduled_at",
        sql: "(s.status_history->>'SCHEDULED')::timestamptz",
        kind: FieldKind::DateTime,
    },
    FilterField {
        name: "startup_command",
        sql: "s.startup_command",
        kind: FieldKind::Text,
    },
];

/// The original's `ComputeSession._queryorder_colmap`.
pub const SESSION_ORDER_FIELDS: &[OrderField] = &[
    OrderField {
        name: "id",
        sql: "s.id",
    },
    OrderField {
        name: "type",
        sql: "s.session_type",
    },
    OrderField {
        name: "name",
        sql: "s.name",
    },
    OrderField {
        name: "image",
        sql: "s.images",
    },
    OrderField {
        name: "agent_ids",
        sql: "s.agent_ids",
    },
    OrderField {
        name: "agent_id",
        sql: "s.agent_ids",
    },
    OrderField {
        name: "agents",
        sql: "s.agent_ids",
    },
    OrderField {
        name: "domain_name",
        sql: "s.domain_name",
    },
    OrderField {
        name: "group_name",
        sql: "g.name",
    },
    OrderField {
        name: "user_email",
        sql: "u.email",
    },
    OrderField {
        name: "full_name",
        sql: "u.full_name",
    },
    OrderField {
        name: "access_key",
        sql: "s.access_key",
    },
    OrderField {
        name: "scaling_group",
        sql: "s.scaling_group_name",
    },
    OrderField {
        name: "cluster_mode",
        sql: "s.cluster_mode",
    },
    OrderField {
        name: "cluster_size",
        sql: "s.cluster_size",
    },
    OrderField {
        name: "status",
        sql: "s.status",
    },
    OrderField {
        name: "status_info",
        sql: "s.status_info",
    },
    OrderField {
        name: "result",
        sql: "s.result",
    },
    OrderField {
        name: "created_at",
        sql: "s.created_at",
    },
    OrderField {
        name: "terminated_at",
        sql: "s.terminated_at",
    },
    OrderField {
        name: "starts_at",
        sql: "s.starts_at",
    },
    OrderField {
        name: "scheduled_at",
        sql: "(s.status_history->>'SCHEDULED')",
    },
];

/// One session row with its group, owner and main kernel.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: Uuid,
    pub name: Option<String>,
    pub session_type: String,
    pub tag: Option<String>,
    pub cluster_mode: String,
    pub cluster_size: i32,
    pub domain_name: String,
    pub group_id: Uuid,
    pub user_uuid: Uuid,
    pub access_key: Option<String>,
    pub images: Option<Vec<String>>,
    pub status: String,
    pub status_info: Option<String>,
    pub status_data: Option<serde_json::Value>,
    pub status_history: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub terminated_at: Option<DateTime<Utc>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub startup_command: Option<String>,
    pub result: String,
    pub agent_ids: Option<Vec<String>>,
    pub scaling_group_name: Option<String>,
    pub vfolder_mounts: Option<serde_json::Value>,
    pub num_queries: i64,
    pub group_name: String,
    pub user_email: String,
    pub full_name: Option<String>,
    pub main_kernel_id: Option<Uuid>,
    pub architecture: Option<String>,
    pub registry: Option<String>,
    pub service_ports: Option<serde_json::Value>,
}

impl SessionRow {
    pub fn decode(row: &Row) -> Result<SessionRow, QueryError> {
        Ok(SessionRow {
            id: row.read("id")?,
            name: row.read("name")?,
            session_type: row.read("session_type")?,
            tag: row.read("tag")?,
            cluster_mode: row.read("cluster_mode")?,
            cluster_size: row.read("cluster_size")?,
            domain_name: row.read("domain_name")?,
            group_id: row.read("group_id")?,
            user_uuid: row.read("user_uuid")?,
            access_key: row.read("access_key")?,
            images: row.read("images")?,
            status: row.read("status")?,
            status_info: row.read("status_info")?,
            status_data: row.read("status_data")?,
            status_history: row.read("status_history")?,
            created_at: row.read("created_at")?,
            terminated_at: row.read("terminated_at")?,
            starts_at: row.read("starts_at")?,
            startup_command: row.read("startup_command")?,
            result: row.read("result")?,
            agent_ids: row.read("agent_ids")?,
            scaling_group_name: row.read("scaling_group_name")?,
            vfolder_mounts: row.read("vfolder_mounts")?,
            num_queries: row.read("num_queries")?,
            group_name: row.read("group_name")?,
            user_email: row.read("user_email")?,
            full_name: row.read("full_name")?,
            main_kernel_id: row.read("main_kernel_id")?,
            architecture: row.read("architecture")?,
            registry: row.read("registry")?,
            service_ports: row.read("service_ports")?,
        })
    }
}

/// Whose sessions the caller sees: narrowed by domain, group and keypair (each when given).
#[derive(Debug, Clone, Default)]
pub struct SessionScope {
    pub domain_name: Option<String>,
    pub group_id: Option<Uuid>,
    pub access_key: Option<String>,
}

impl SessionScope {
    fn conditions(&self, params: &mut SqlParams) -> Conditions {
        let mut conditions = Conditions::new();
        if let Some(domain) = &self.domain_name {
            conditions.add(format!("s.domain_name = {}", params.push(domain.clone())));
        }
        if let Some(group_id) = self.group_id {
            conditions.add(format!("s.group_id = {}", params.push(group_id)));
        }
        if let Some(access_key) = &self.access_key {
            conditions.add(format!(
                "s.access_key = {}",
                params.push(access_key.clone())
            ));
        }
        conditions
    }
}

fn select(where_clause: &str) -> String {
    format!("SELECT {SESSION_COLUMNS} FROM {SESSION_FROM} {where_clause}")
}

fn by_id_sql(scope: &SessionScope, id: Uuid, params: &mut SqlParams) -> String {
    let mut conditions = scope.conditions(params);
    conditions.add(format!("s.id = {}", params.push(id)));
    select(&conditions.where_clause())
}

/// One session by id, when in `scope`.
pub async fn session(
    client: &impl GenericClient,
    scope: &SessionScope,
    id: Uuid,
) -> Result<Vec<SessionRow>, QueryError> {
    let mut params = SqlParams::new();
    let sql = by_id_sql(scope, id, &mut params);
    query_as(
        client,
        &sql,
        &params,
        "reading a session",
        SessionRow::decode,
    )
    .await
}

/// A page of the sessions of `scope` (of some statuses, stored labels, when given), filtered
/// and ordered by the client's `filter`/`order`, the newest activity first by default.
pub fn session_page(
    scope: &SessionScope,
    statuses: Option<Vec<String>>,
    filter: Option<&str>,
    order: Option<&str>,
) -> Result<Listing, MinilangError> {
    let mut params = SqlParams::new();
    let mut conditions = scope.conditions(&mut params);
    if let Some(labels) = statuses {
        conditions.add(enum_in(
            "s.status",
            SESSION_STATUS.pg_type,
            labels,
            &mut params,
        ));
    }
    let filter_sql = minilang::filter_sql(filter, SESSION_FILTER_FIELDS, &mut params)?;
    // The count needs the group and user tables only when the filter reads them.
    let count_from = match &filter_sql {
        Some(f) if f.contains("g.") || f.contains("u.") => {
            "sessions s JOIN groups g ON g.id = s.group_id JOIN users u ON u.uuid = s.user_uuid"
        }
        _ => "sessions s",
    };
    if let Some(condition) = filter_sql {
        conditions.add(condition);
    }
    let order_by = match minilang::order_sql(order, SESSION_ORDER_FIELDS)? {
        Some(order) => format!("{order}, s.id"),
        None => DEFAULT_SESSION_ORDER.to_owned(),
    };
    let where_clause = conditions.where_clause();
    Ok(Listing {
        select: select(&where_clause),
        count: format!("SELECT count(*) FROM {count_from} {where_clause}"),
        order_by,
        cacheable: filter.is_none() && order.is_none(),
        params,
    })
}

fn dependencies_sql() -> String {
    format!(
        "SELECT d.session_id AS dependent, {SESSION_COLUMNS} FROM {SESSION_FROM} \
         JOIN session_dependencies d ON d.depends_on = s.id WHERE d.session_id = ANY($1) \
         ORDER BY s.name"
    )
}

/// The sessions each of `sessions` depends on, by name, as (dependent, dependency) pairs.
pub async fn dependencies(
    client: &impl GenericClient,
    sessions: Vec<Uuid>,
) -> Result<Vec<(Uuid, SessionRow)>, QueryError> {
    let mut params = SqlParams::new();
    params.push(sessions);
    query_as(
        client,
        &dependencies_sql(),
        &params,
        "reading the sessions' dependencies",
        |row| Ok((row.read("dependent")?, SessionRow::decode(row)?)),
    )
    .await
}

fn of_keypair_sql(
    access_key: String,
    statuses: Option<Vec<String>>,
    limit: i64,
    params: &mut SqlParams,
) -> String {
    let mut conditions = Conditions::new();
    conditions.add(format!("s.access_key = {}", params.push(access_key)));
    if let Some(labels) = statuses {
        conditions.add(enum_in("s.status", SESSION_STATUS.pg_type, labels, params));
    }
    let limit = params.push(limit);
    format!(
        "{} ORDER BY {DEFAULT_SESSION_ORDER} LIMIT {limit}",
        select(&conditions.where_clause())
    )
}

/// The newest `limit` sessions of `access_key` (of some statuses, stored labels, when given).
pub async fn sessions_of_keypair(
    client: &impl GenericClient,
    access_key: String,
    statuses: Option<Vec<String>>,
    limit: i64,
) -> Result<Vec<SessionRow>, QueryError> {
    let mut params = SqlParams::new();
    let sql = of_keypair_sql(access_key, statuses, limit, &mut params);
    query_as(
        client,
        &sql,
        &params,
        "reading a keypair's sessions",
        SessionRow::decode,
    )
    .await
}

/// The two statements `compute_session_list` runs for the official CLI's `session list` as a
/// superadmin (a status list, no filter, default order): `$1` the status labels, `$2`/`$3` the
/// limit and offset. For the benchmark's `EXPLAIN ANALYZE` and the documentation.
pub fn cli_session_list_statements() -> Result<(String, String), MinilangError> {
    Ok(session_page(&SessionScope::default(), Some(Vec::new()), None, None)?.statements(true))
}

/// The statements this module assembles, for the prepare test.
pub fn statements() -> Result<Vec<String>, MinilangError> {
    let scope = SessionScope {
        domain_name: Some("default".into()),
        group_id: Some(Uuid::nil()),
        access_key: Some("AKIA".into()),
    };
    let statuses = Some(vec!["RUNNING".to_owned()]);
    let (cli_page, cli_count) = cli_session_list_statements()?;
    let mut out = vec![
        by_id_sql(&scope, Uuid::nil(), &mut SqlParams::new()),
        dependencies_sql(),
        of_keypair_sql("AKIA".into(), statuses.clone(), 100, &mut SqlParams::new()),
        cli_page,
        cli_count,
    ];
    for (filter, order) in [
        (None, None),
        (Some("status == \"RUNNING\""), Some("-created_at")),
        (Some("user_email == \"a@example.com\""), Some("group_name")),
    ] {
        let (page, count) = session_page(&scope, statuses.clone(), filter, order)?.statements(true);
        out.extend([page, count]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_joins_groups_and_users_only_for_a_filter_that_reads_them() {
        let scope = SessionScope::default();
        let plain = session_page(&scope, None, Some("name == \"a\""), None).unwrap();
        assert!(
            plain
                .count
                .starts_with("SELECT count(*) FROM sessions s WHERE")
        );
        let by_owner = session_page(&scope, None, Some("user_email == \"a\""), None).unwrap();
        assert!(
            by_owner.count.contains("JOIN users u"),
            "{}",
            by_owner.count
        );
    }

    #[test]
    fn scope_statuses_and_filter_bind_in_order_and_order_ends_with_the_id() {
        let scope = SessionScope {
            domain_name: Some("default".into()),
            group_id: Some(Uuid::nil()),
            access_key: Some("AKIA".into()),
        };
        let listing = session_page(
            &scope,
            Some(vec!["RUNNING".into()]),
            Some("name == \"a\""),
            Some("-created_at"),
        )
        .unwrap();
        let (page, _) = listing.statements(true);
        for (n, text) in [
            (1, "s.domain_name = $1"),
            (2, "s.group_id = $2"),
            (3, "s.access_key = $3"),
            (4, "unnest($4::text[])::sessionstatus"),
            (5, "s.name = $5"),
        ] {
            assert!(page.contains(text), "${n}: {page}");
        }
        assert!(
            page.ends_with("ORDER BY s.created_at DESC, s.id LIMIT $6 OFFSET $7"),
            "{page}"
        );
        assert!(!listing.cacheable);
        let default = session_page(&SessionScope::default(), None, None, None).unwrap();
        assert_eq!(default.order_by, DEFAULT_SESSION_ORDER);
        assert!(default.cacheable);
    }
}
