//! `ComputeSession`: the `compute_session` and `compute_session_list` queries, over the
//! statements of `bai_schema::queries::session_list` (a page and its count in one round trip).
//! Containers and dependencies, when selected, are one batched statement each for the whole
//! page.

use std::collections::HashMap;

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_schema::ResourceSlot;
use bai_schema::queries::session_list::{self, SessionRow, SessionScope};
use uuid::Uuid;

use super::container::{ComputeContainer, containers_of_rows};
use super::context::GqlRequest;
use super::enums::{SESSION_STATUS, parse_status_list};
use super::error::{GqlError, GqlResult};
use super::pagination::{ListSelection, Page};
use super::permissions::scoped;
use super::scalars::{BigInt, GqlDateTime, JsonString};
use super::sql;
use bai_schema::minilang;
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
    fn from_row(row: SessionRow, hide_agents: bool) -> ComputeSession {
        let history = row.status_history;
        let agent_ids = if hide_agents { None } else { row.agent_ids };
        let mounts: Vec<&serde_json::Value> = row
            .vfolder_mounts
            .as_ref()
            .and_then(|v| v.as_array())
            .map(|items| items.iter().collect())
            .unwrap_or_default();
        ComputeSession {
            id: Some(ID(row.id.to_string())),
            session_id: Some(row.id),
            main_kernel_id: row.main_kernel_id,
            tag: row.tag,
            name: row.name,
            session_type: Some(row.session_type),
            // The kernel role (23.09's `KernelRole`): every kernel here is a compute kernel.
            main_kernel_role: Some("COMPUTE".to_owned()),
            image: Some(
                row.images
                    .and_then(|i| i.into_iter().next())
                    .unwrap_or_default(),
            ),
            architecture: row.architecture,
            registry: row.registry,
            cluster_template: None,
            cluster_mode: Some(row.cluster_mode),
            cluster_size: Some(row.cluster_size),
            domain_name: Some(row.domain_name),
            group_name: Some(row.group_name),
            group_id: Some(row.group_id),
            user_email: Some(row.user_email),
            full_name: row.full_name,
            user_id: Some(row.user_uuid),
            access_key: row.access_key,
            created_user_email: None,
            created_user_id: None,
            status_changed: history_time(history.as_ref(), &row.status),
            scheduled_at: history_time(history.as_ref(), "SCHEDULED"),
            status_history: Some(JsonString(history.unwrap_or_else(|| serde_json::json!({})))),
            status: Some(row.status),
            status_info: row.status_info,
            status_data: row.status_data.filter(|v| !v.is_null()).map(JsonString),
            created_at: Some(GqlDateTime(row.created_at)),
            terminated_at: row.terminated_at.map(GqlDateTime),
            starts_at: row.starts_at.map(GqlDateTime),
            startup_command: row.startup_command,
            result: Some(row.result),
            commit_status: None,
            abusing_reports: None,
            idle_checks: None,
            agents: agent_ids.clone(),
            agent_ids,
            resource_opts: None,
            scaling_group: row.scaling_group_name,
            service_ports: row.service_ports.map(JsonString),
            mounts: Some(
                mounts
                    .iter()
                    .filter_map(|m| m.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                    .collect(),
            ),
            vfolder_mounts: Some(mounts.iter().map(|m| m.to_string()).collect()),
            occupying_slots: None,
            occupied_slots: None,
            num_queries: Some(BigInt(row.num_queries)),
            containers: None,
            dependencies: None,
            inference_metrics: None,
        }
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
        let rows = session_list::dependencies(client, ids)
            .await
            .map_err(GqlError::from)?;
        let hide = request.hides_agents();
        let mut by_session: HashMap<Uuid, Vec<ComputeSession>> = HashMap::new();
        for (dependent, row) in rows {
            by_session
                .entry(dependent)
                .or_default()
                .push(ComputeSession::from_row(row, hide));
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

/// The caller's scope, narrowed by the arguments shared by both queries.
fn session_scope(
    request: &GqlRequest,
    domain_name: Option<String>,
    group_id: Option<String>,
    access_key: Option<String>,
) -> GqlResult<SessionScope> {
    let requester = &request.requester;
    let scope = scoped(
        requester,
        false,
        requester.access_key.clone(),
        domain_name,
        access_key,
    )?;
    let group_id = group_id
        .map(|group_id| {
            Uuid::parse_str(&group_id)
                .map_err(|_| GqlError::invalid(format!("group_id {group_id:?} is not a group id")))
        })
        .transpose()?;
    Ok(SessionScope {
        domain_name: scope.domain_name,
        group_id,
        access_key: scope.owner,
    })
}

/// Sessions from their rows, with agents hidden as the settings say.
fn sessions_of_rows(request: &GqlRequest, rows: Vec<SessionRow>) -> Vec<ComputeSession> {
    let hide = request.hides_agents();
    rows.into_iter()
        .map(|row| ComputeSession::from_row(row, hide))
        .collect()
}

/// A comma-separated `status` argument as stored labels.
fn status_labels(status: Option<&str>) -> GqlResult<Option<Vec<String>>> {
    status
        .map(|status| parse_status_list(&SESSION_STATUS, "status", status))
        .transpose()
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
        let scope = session_scope(request, domain_name, None, access_key)?;
        let selection = SessionSelection::of(ctx.look_ahead());
        let client = sql::connection(&request.db).await?;
        let rows = session_list::session(&client, &scope, id)
            .await
            .map_err(GqlError::from)?;
        let mut sessions = sessions_of_rows(request, rows);
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
        let scope = session_scope(request, domain_name, group_id, access_key)?;
        let statuses = status_labels(status.as_deref())?;
        let listing =
            session_list::session_page(&scope, statuses, filter.as_deref(), order.as_deref())
                .map_err(GqlError::from)?;
        let selection = SessionSelection::of(ctx.look_ahead().field("items"));
        let list = ListSelection::of(ctx);
        let client = sql::connection(&request.db).await?;
        let (rows, total) = listing
            .fetch_as(
                &client,
                Some(page),
                list.items,
                list.total_count,
                SessionRow::decode,
            )
            .await
            .map_err(GqlError::from)?;
        let mut items = sessions_of_rows(request, rows);
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
    let statuses = status_labels(status)?;
    let client = sql::connection(&request.db).await?;
    let rows = session_list::sessions_of_keypair(
        &client,
        access_key.to_owned(),
        statuses,
        KEYPAIR_SESSIONS_LIMIT,
    )
    .await?;
    Ok(sessions_of_rows(request, rows))
}
