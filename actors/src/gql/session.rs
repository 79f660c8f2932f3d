//! `ComputeSession`: the `compute_session` and `compute_session_list` queries.
//!
//! A page of sessions is one statement: the sessions with their group, owner and main kernel
//! (a lateral lookup on `ix_kernels_sess_id_role`), ordered by the indexed
//! `greatest(created_at, terminated_at)`; the total count is a second statement sent in the
//! same round trip. Containers and dependencies, when selected, are one batched statement each
//! for the whole page.

use std::collections::HashMap;

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_schema::ResourceSlot;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::container::{ComputeContainer, containers_of_rows};
use super::context::GqlRequest;
use super::enums::{SESSION_RESULT, SESSION_STATUS, parse_status_list};
use super::error::{GqlError, GqlResult};
use super::pagination::{ListSelection, Page};
use super::permissions::scoped;
use super::scalars::{BigInt, GqlDateTime, JsonString};
use super::sql::{self, Conditions, Listing, SqlParams};
use bai_schema::minilang::{self, EnumSpec, FieldKind, FilterField, OrderField};
use bai_schema::queries::container_list;

/// A session as the original's GraphQL `ComputeSession` type.
#[derive(SimpleObject, Clone, Debug, Default)]
#[graphql(name = "ComputeSession", rename_fields = "snake_case")]
pub struct ComputeSession {
    pub id: Option<ID>,
    /// The same as `id`.
    pub session_id: Option<Uuid>,
    pub main_kernel_id: Option<Uuid>,
    pub tag: Option<String>,
    pub name: Option<String>,
    #[graphql(name = "type")]
    pub session_type: Option<String>,
    pub main_kernel_role: Option<String>,
    pub image: Option<String>,
    pub architecture: Option<String>,
    pub registry: Option<String>,
    pub cluster_template: Option<String>,
    pub cluster_mode: Option<String>,
    pub cluster_size: Option<i32>,
    pub domain_name: Option<String>,
    pub group_name: Option<String>,
    pub group_id: Option<Uuid>,
    pub user_email: Option<String>,
    pub full_name: Option<String>,
    pub user_id: Option<Uuid>,
    pub access_key: Option<String>,
    pub created_user_email: Option<String>,
    pub created_user_id: Option<Uuid>,
    pub status: Option<String>,
    pub status_changed: Option<GqlDateTime>,
    pub status_info: Option<String>,
    pub status_data: Option<JsonString>,
    pub status_history: Option<JsonString>,
    pub created_at: Option<GqlDateTime>,
    pub terminated_at: Option<GqlDateTime>,
    pub starts_at: Option<GqlDateTime>,
    pub scheduled_at: Option<GqlDateTime>,
    pub startup_command: Option<String>,
    pub result: Option<String>,
    pub commit_status: Option<String>,
    pub abusing_reports: Option<Vec<Option<JsonString>>>,
    pub idle_checks: Option<JsonString>,
    /// Hidden from non-superadmins under `[manager] hide-agents`.
    pub agent_ids: Option<Vec<String>>,
    /// The same as `agent_ids` (legacy).
    pub agents: Option<Vec<String>>,
    pub resource_opts: Option<JsonString>,
    pub scaling_group: Option<String>,
    pub service_ports: Option<JsonString>,
    pub mounts: Option<Vec<String>>,
    pub vfolder_mounts: Option<Vec<String>>,
    pub occupying_slots: Option<JsonString>,
    /// The same as `occupying_slots` (legacy).
    pub occupied_slots: Option<JsonString>,
    pub num_queries: Option<BigInt>,
    pub containers: Option<Vec<ComputeContainer>>,
    pub dependencies: Option<Vec<ComputeSession>>,
    pub inference_metrics: Option<JsonString>,
}

/// The columns `ComputeSession::from_row` reads: `sessions s`, `groups g`, `users u` and the
/// main kernel `mk`.
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

/// What the query selected below a session, so work for unselected fields is skipped.
#[derive(Debug, Clone, Copy, Default)]
struct SessionSelection {
    containers: bool,
    dependencies: bool,
    idle_checks: bool,
}

impl SessionSelection {
    fn of(fields: async_graphql::Lookahead<'_>) -> SessionSelection {
        let containers = [
            "containers",
            "occupying_slots",
            "occupied_slots",
            "resource_opts",
            "abusing_reports",
        ]
        .iter()
        .any(|name| fields.field(name).exists());
        SessionSelection {
            containers,
            dependencies: fields.field("dependencies").exists(),
            idle_checks: fields.field("idle_checks").exists(),
        }
    }
}

fn history_time(history: Option<&serde_json::Value>, status: &str) -> Option<GqlDateTime> {
    history
        .and_then(|h| h.get(status))
        .and_then(|v| v.as_str())
        .and_then(minilang::compile::parse_datetime)
        .map(GqlDateTime)
}

impl ComputeSession {
    fn from_row(row: &Row, hide_agents: bool) -> GqlResult<ComputeSession> {
        let id: Uuid = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let history: Option<serde_json::Value> = row.try_get("status_history")?;
        let images: Option<Vec<String>> = row.try_get("images")?;
        let agent_ids: Option<Vec<String>> = if hide_agents {
            None
        } else {
            row.try_get("agent_ids")?
        };
        let created_at: DateTime<Utc> = row.try_get("created_at")?;
        let vfolder_mounts: Option<serde_json::Value> = row.try_get("vfolder_mounts")?;
        let mounts: Vec<&serde_json::Value> = vfolder_mounts
            .as_ref()
            .and_then(|v| v.as_array())
            .map(|items| items.iter().collect())
            .unwrap_or_default();
        let timestamp = |column: &str| -> GqlResult<Option<GqlDateTime>> {
            Ok(row
                .try_get::<_, Option<DateTime<Utc>>>(column)?
                .map(GqlDateTime))
        };
        Ok(ComputeSession {
            id: Some(ID(id.to_string())),
            session_id: Some(id),
            main_kernel_id: row.try_get("main_kernel_id")?,
            tag: row.try_get("tag")?,
            name: row.try_get("name")?,
            session_type: Some(row.try_get("session_type")?),
            // The kernel role (23.09's `KernelRole`): every kernel here is a compute kernel.
            main_kernel_role: Some("COMPUTE".to_owned()),
            image: Some(
                images
                    .and_then(|i| i.into_iter().next())
                    .unwrap_or_default(),
            ),
            architecture: row.try_get("architecture")?,
            registry: row.try_get("registry")?,
            cluster_template: None,
            cluster_mode: Some(row.try_get("cluster_mode")?),
            cluster_size: Some(row.try_get("cluster_size")?),
            domain_name: Some(row.try_get("domain_name")?),
            group_name: Some(row.try_get("group_name")?),
            group_id: Some(row.try_get("group_id")?),
            user_email: Some(row.try_get("user_email")?),
            full_name: row.try_get("full_name")?,
            user_id: Some(row.try_get("user_uuid")?),
            access_key: row.try_get("access_key")?,
            created_user_email: None,
            created_user_id: None,
            status_changed: history_time(history.as_ref(), &status),
            scheduled_at: history_time(history.as_ref(), "SCHEDULED"),
            status_history: Some(JsonString(history.unwrap_or_else(|| serde_json::json!({})))),
            status: Some(status),
            status_info: row.try_get("status_info")?,
            status_data: row
                .try_get::<_, Option<serde_json::Value>>("status_data")?
                .filter(|v| !v.is_null())
                .map(JsonString),
            created_at: Some(GqlDateTime(created_at)),
            terminated_at: timestamp("terminated_at")?,
            starts_at: timestamp("starts_at")?,
            startup_command: row.try_get("startup_command")?,
            result: Some(row.try_get("result")?),
            commit_status: None,
            abusing_reports: None,
            idle_checks: None,
            agents: agent_ids.clone(),
            agent_ids,
            resource_opts: None,
            scaling_group: row.try_get("scaling_group_name")?,
            service_ports: row
                .try_get::<_, Option<serde_json::Value>>("service_ports")?
                .map(JsonString),
            mounts: Some(
                mounts
                    .iter()
                    .filter_map(|m| m.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                    .collect(),
            ),
            vfolder_mounts: Some(mounts.iter().map(|m| m.to_string()).collect()),
            occupying_slots: None,
            occupied_slots: None,
            num_queries: Some(BigInt(row.try_get("num_queries")?)),
            containers: None,
            dependencies: None,
            inference_metrics: None,
        })
    }

    /// Fills the fields computed from the session's containers.
    fn attach_containers(&mut self, containers: Vec<ComputeContainer>) {
        let mut total = ResourceSlot::new();
        let mut resource_opts = serde_json::Map::new();
        for container in &containers {
            if let Some(JsonString(slots)) = &container.occupied_slots
                && let Ok(slots) = ResourceSlot::from_json(slots)
            {
                total = &total + &slots;
            }
            if let Some(hostname) = &container.cluster_hostname {
                let opts = container
                    .resource_opts
                    .as_ref()
                    .map_or(serde_json::Value::Null, |o| o.0.clone());
                resource_opts.insert(hostname.clone(), opts);
            }
        }
        self.occupying_slots = Some(JsonString(total.to_json()));
        self.occupied_slots = self.occupying_slots.clone();
        self.resource_opts = Some(JsonString(serde_json::Value::Object(resource_opts)));
        self.abusing_reports = Some(vec![None; containers.len()]);
        self.containers = Some(containers);
    }
}

/// Completes a page of sessions with their containers and dependencies (one statement each).
async fn complete_sessions(
    request: &GqlRequest,
    client: &deadpool_postgres::Object,
    sessions: &mut [ComputeSession],
    selection: SessionSelection,
) -> GqlResult<()> {
    let ids: Vec<Uuid> = sessions.iter().filter_map(|s| s.session_id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    if selection.idle_checks {
        // What the idle checkers last reported (`get_idle_check_report`).
        let checkers = match &request.etcd {
            Some(etcd) => crate::idle::report::enabled_checkers(etcd).await,
            None => vec![crate::idle::CheckerKind::SessionLifetime],
        };
        for session in sessions.iter_mut() {
            if let Some(id) = session.session_id {
                let report = crate::idle::report::idle_check_report(
                    request.redis_live.as_ref(),
                    &checkers,
                    id,
                )
                .await;
                session.idle_checks = Some(JsonString(report));
            }
        }
    }
    if selection.containers {
        let rows = container_list::containers_of_sessions(client, ids.clone())
            .await
            .map_err(GqlError::from)?;
        let mut by_session: HashMap<Uuid, Vec<ComputeContainer>> = HashMap::new();
        for (_, container) in containers_of_rows(request, rows).await {
            if let Some(session_id) = container.session_id {
                by_session.entry(session_id).or_default().push(container);
            }
        }
        for session in sessions.iter_mut() {
            let containers = session
                .session_id
                .and_then(|id| by_session.remove(&id))
                .unwrap_or_default();
            session.attach_containers(containers);
        }
    }
    if selection.dependencies {
        let statement = format!(
            "SELECT d.session_id AS dependent, {SESSION_COLUMNS} FROM {SESSION_FROM} \
             JOIN session_dependencies d ON d.depends_on = s.id WHERE d.session_id = ANY($1) \
             ORDER BY s.name"
        );
        let mut params = SqlParams::new();
        params.push(ids);
        let hide = request.hides_agents();
        let mut by_session: HashMap<Uuid, Vec<ComputeSession>> = HashMap::new();
        for row in sql::query(client, &statement, &params).await? {
            let dependent: Uuid = row.try_get("dependent")?;
            by_session
                .entry(dependent)
                .or_default()
                .push(ComputeSession::from_row(&row, hide)?);
        }
        for session in sessions.iter_mut() {
            session.dependencies = Some(
                session
                    .session_id
                    .and_then(|id| by_session.remove(&id))
                    .unwrap_or_default(),
            );
        }
    }
    Ok(())
}

/// A page of sessions.
#[derive(SimpleObject)]
#[graphql(name = "ComputeSessionList", rename_fields = "snake_case")]
pub struct ComputeSessionList {
    pub items: Vec<ComputeSession>,
    pub total_count: i32,
}

/// The scope and intrinsic filters shared by both queries.
fn scope_conditions(
    request: &GqlRequest,
    domain_name: Option<String>,
    group_id: Option<String>,
    access_key: Option<String>,
    params: &mut SqlParams,
) -> GqlResult<Conditions> {
    let requester = &request.requester;
    let scope = scoped(
        requester,
        false,
        requester.access_key.clone(),
        domain_name,
        access_key,
    )?;
    let mut conditions = Conditions::new();
    if let Some(domain) = scope.domain_name {
        conditions.add(format!("s.domain_name = {}", params.push(domain)));
    }
    if let Some(group_id) = group_id {
        let group_id = Uuid::parse_str(&group_id)
            .map_err(|_| GqlError::invalid(format!("group_id {group_id:?} is not a group id")))?;
        conditions.add(format!("s.group_id = {}", params.push(group_id)));
    }
    if let Some(access_key) = scope.owner {
        conditions.add(format!("s.access_key = {}", params.push(access_key)));
    }
    Ok(conditions)
}

#[derive(Default)]
pub struct SessionQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl SessionQuery {
    /// A session by id; users see only their own, domain admins their domain's.
    async fn compute_session(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        domain_name: Option<String>,
        access_key: Option<String>,
    ) -> async_graphql::Result<Option<ComputeSession>> {
        let request = GqlRequest::of(ctx)?;
        let mut params = SqlParams::new();
        let mut conditions = scope_conditions(request, domain_name, None, access_key, &mut params)?;
        conditions.add(format!("s.id = {}", params.push(id)));
        let selection = SessionSelection::of(ctx.look_ahead());
        let statement = format!(
            "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM} {}",
            conditions.where_clause()
        );
        let client = sql::connection(&request.db).await?;
        let hide = request.hides_agents();
        let mut sessions = sql::query(&client, &statement, &params)
            .await?
            .iter()
            .map(|row| ComputeSession::from_row(row, hide))
            .collect::<GqlResult<Vec<_>>>()?;
        complete_sessions(request, &client, &mut sessions, selection).await?;
        Ok(sessions.into_iter().next())
    }

    /// A page of sessions (`status` is a comma-separated list of session statuses).
    #[allow(clippy::too_many_arguments)]
    async fn compute_session_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        domain_name: Option<String>,
        group_id: Option<String>,
        access_key: Option<String>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<ComputeSessionList>> {
        let request = GqlRequest::of(ctx)?;
        let page = Page::new(limit, offset)?;
        let mut params = SqlParams::new();
        let mut conditions =
            scope_conditions(request, domain_name, group_id, access_key, &mut params)?;
        if let Some(status) = &status {
            let labels = parse_status_list(&SESSION_STATUS, "status", status)?;
            conditions.add(format!(
                "s.status = ANY(ARRAY(SELECT unnest({}::text[])::sessionstatus))",
                params.push(labels)
            ));
        }
        let filter_sql =
            minilang::filter_sql(filter.as_deref(), SESSION_FILTER_FIELDS, &mut params)?;
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
        let order_by = match minilang::order_sql(order.as_deref(), SESSION_ORDER_FIELDS)? {
            Some(order) => format!("{order}, s.id"),
            None => DEFAULT_SESSION_ORDER.to_owned(),
        };
        let selection = SessionSelection::of(ctx.look_ahead().field("items"));
        let where_clause = conditions.where_clause();
        let listing = Listing {
            select: format!("SELECT {SESSION_COLUMNS} FROM {SESSION_FROM} {where_clause}"),
            count: format!("SELECT count(*) FROM {count_from} {where_clause}"),
            order_by,
            cacheable: filter.is_none() && order.is_none(),
            params,
        };
        let list = ListSelection::of(ctx);
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch(&client, Some(page), list.items, list.total_count)
            .await?;
        let hide = request.hides_agents();
        let mut items = rows
            .iter()
            .map(|row| ComputeSession::from_row(row, hide))
            .collect::<GqlResult<Vec<_>>>()?;
        complete_sessions(request, &client, &mut items, selection).await?;
        Ok(Some(ComputeSessionList {
            items,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}

/// The most sessions `KeyPair.compute_sessions` lists (the newest), so one keypair with a long
/// history cannot make one field read its whole history.
pub const KEYPAIR_SESSIONS_LIMIT: i64 = 100;

/// The sessions of `access_key` (`KeyPair.compute_sessions`), newest first, optionally of
/// some statuses (comma-separated). The caller already sees the keypair.
pub async fn sessions_of_keypair(
    request: &GqlRequest,
    access_key: &str,
    status: Option<&str>,
) -> GqlResult<Vec<ComputeSession>> {
    let mut params = SqlParams::new();
    let mut conditions = Conditions::new();
    conditions.add(format!(
        "s.access_key = {}",
        params.push(access_key.to_owned())
    ));
    if let Some(status) = status {
        let labels = parse_status_list(&SESSION_STATUS, "status", status)?;
        conditions.add(format!(
            "s.status = ANY(ARRAY(SELECT unnest({}::text[])::sessionstatus))",
            params.push(labels)
        ));
    }
    let limit = params.push(KEYPAIR_SESSIONS_LIMIT);
    let statement = format!(
        "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM} {} ORDER BY {DEFAULT_SESSION_ORDER} LIMIT {limit}",
        conditions.where_clause()
    );
    let client = sql::connection(&request.db).await?;
    let rows = sql::query(&client, &statement, &params).await?;
    let hide = request.hides_agents();
    rows.iter()
        .map(|row| ComputeSession::from_row(row, hide))
        .collect()
}

/// The two statements `compute_session_list` runs for the official CLI's `session list` as a
/// superadmin (a status list, no filter, default order): `$1` the status labels, `$2`/`$3` the
/// limit and offset. For the benchmark's `EXPLAIN ANALYZE` and the documentation.
pub fn cli_session_list_statements() -> (String, String) {
    let mut params = SqlParams::new();
    let mut conditions = Conditions::new();
    conditions.add(format!(
        "s.status = ANY(ARRAY(SELECT unnest({}::text[])::sessionstatus))",
        params.push(Vec::<String>::new())
    ));
    let where_clause = conditions.where_clause();
    (
        format!(
            "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM} {where_clause} ORDER BY {DEFAULT_SESSION_ORDER} LIMIT $2 OFFSET $3"
        ),
        format!("SELECT count(*) FROM sessions s {where_clause}"),
    )
}
