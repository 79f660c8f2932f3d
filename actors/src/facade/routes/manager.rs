//! `/manager`: the cluster status (`GET|PUT /manager/status`, the etcd `manager/status` key
//! the gate reads), the announcement banner (`GET|POST /manager/announcement`) and the
//! scheduler operations (`POST /manager/scheduler/operation`: include or exclude agents).

use actix_web::{HttpResponse, web};
use bai_schema::queries::session::count_active_sessions;
use serde_json::json;

use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::manager_status::{MANAGER_STATUS_KEY, ManagerStatus};
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::pipeline::ApiVersion;
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::routes::{db_client, etcd_failed, query_failed};
use crate::facade::session::control::{
    KillAllSessions, SessionControl, scheduler_missing, scheduler_unreachable,
};
use crate::facade::state::AppState;
use crate::wire::events::Trigger;
use crate::wire::{Event, EventProducer};
use bai_schema::queries::agent_admin::set_agents_schedulable;

/// The etcd key of the announcement banner; absent means no announcement.
pub const ANNOUNCEMENT_KEY: &str = "manager/announcement";

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/manager/status")
            .route(web::get().to(get_status))
            .route(web::put().to(put_status).wrap(Access::superadmin())),
    );
    cfg.service(
        web::resource("/manager/announcement")
            .route(web::get().to(get_announcement))
            .route(web::post().to(post_announcement).wrap(Access::superadmin())),
    );
    cfg.route(
        "/manager/scheduler/operation",
        web::post()
            .to(scheduler_operation)
            .wrap(Access::superadmin()),
    );
}

/// The operations of `POST /manager/scheduler/operation` (the original's `SchedulerOps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerOp {
    IncludeAgents,
    ExcludeAgents,
}

impl SchedulerOp {
    pub fn parse(text: &str) -> Option<SchedulerOp> {
        match text {
            "include-agents" => Some(SchedulerOp::IncludeAgents),
            "exclude-agents" => Some(SchedulerOp::ExcludeAgents),
            _ => None,
        }
    }
}

/// The agent ids of `args`: a list of strings, as the original checks it.
pub fn agent_ids(args: Option<&serde_json::Value>) -> Result<Vec<String>, Problem> {
    let invalid = || {
        Problem::invalid_params("Input validation failed for args: a list of agent ids is expected")
    };
    let list = args
        .and_then(serde_json::Value::as_array)
        .ok_or_else(invalid)?;
    list.iter()
        .map(|id| id.as_str().map(str::to_owned).ok_or_else(invalid))
        .collect()
}

/// `POST /manager/scheduler/operation {op, args}`: `include-agents` makes the agents of
/// `args` schedulable again (and asks for a scheduling pass), `exclude-agents` keeps new
/// sessions off them. Every id must name an agent, or nothing changes (404).
async fn scheduler_operation(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
    producer: Option<web::Data<EventProducer>>,
) -> Result<HttpResponse, Problem> {
    let text = params.string(&["op"])?;
    let op = SchedulerOp::parse(&text)
        .ok_or_else(|| invalid_param("op", format!("{text:?} is not a scheduler operation")))?;
    let agents = agent_ids(params.raw(&["args"]).map(|(_, value)| value))?;
    let schedulable = op == SchedulerOp::IncludeAgents;
    slog::info!(state.log, "MANAGER.PERFORM_SCHEDULER_OPS";
        "op" => &text, "agents" => agents.len(), "access_key" => &caller.access_key);
    let client = db_client(&state).await?;
    let changed = set_agents_schedulable(&client, &agents, schedulable)
        .await
        .map_err(|e| {
            slog::error!(state.log, "cannot change the agents' schedulable flag"; "error" => %e);
            Problem::internal("cannot change the agents")
        })?;
    if changed < agents.len() as u64 {
        return Err(Problem::not_found("agent instance"));
    }
    if schedulable && let Some(producer) = producer {
        // Sessions may wait for exactly these agents.
        if let Err(e) = producer.produce(&Event::Trigger(Trigger::DoSchedule)).await {
            slog::warn!(state.log, "cannot ask for a scheduling pass"; "error" => %e);
        }
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /manager/status`: this manager node, the cluster status and the live sessions.
async fn get_status(
    state: web::Data<AppState>,
    version: ApiVersion,
) -> Result<HttpResponse, Problem> {
    let status = state
        .pipeline
        .manager_status
        .current(&state.etcd)
        .await
        .map_err(etcd_failed(&state, "reading the manager status"))?;
    let client = db_client(&state).await?;
    let active_sessions = count_active_sessions(&client)
        .await
        .map_err(query_failed(&state, "counting active sessions"))?;
    let settings = &state.settings;
    Ok(reply::json(&json!({
        "nodes": [{
            "id": settings.manager_id,
            "num_proc": settings.num_proc,
            "service_addr": settings.service_addr,
            "heartbeat_timeout": settings.heartbeat_timeout,
            "ssl_enabled": settings.ssl_enabled,
            "active_sessions": active_sessions,
            "status": status.as_str(),
            "version": settings.manager_version,
            "api_version": [version.major, version.revision],
        }],
        "status": status.as_str(),
        "active_sessions": active_sessions,
    })))
}

/// `PUT /manager/status {status, force_kill}`: freeze or unfreeze the cluster.
async fn put_status(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
    control: Option<web::Data<SessionControl>>,
) -> Result<HttpResponse, Problem> {
    let text = params.string(&["status"])?;
    let status = ManagerStatus::parse(&text)
        .ok_or_else(|| invalid_param("status", format!("{text:?} is not a manager status")))?;
    let force_kill = params.to_bool(&["force_kill"], false)?;
    if force_kill {
        // Killing every session is the scheduler's work (agent RPC); without it, refuse
        // rather than change the status and leave the sessions running.
        let control = control.ok_or_else(|| scheduler_missing("force_kill"))?;
        crate::supervision::tracked(
            crate::scheduler::actor::ACTOR_NAME,
            control.kill_all.send(KillAllSessions),
        )
        .await
        .map_err(scheduler_unreachable)??;
    }
    slog::info!(state.log, "MANAGER.UPDATE_MANAGER_STATUS";
        "status" => status.as_str(), "access_key" => &caller.access_key);
    state
        .etcd
        .put(MANAGER_STATUS_KEY, status.as_str())
        .await
        .map_err(etcd_failed(&state, "writing the manager status"))?;
    state.pipeline.manager_status.invalidate();
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /manager/announcement`.
async fn get_announcement(state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let message = state
        .etcd
        .get(ANNOUNCEMENT_KEY)
        .await
        .map_err(etcd_failed(&state, "reading the announcement"))?;
    Ok(reply::json(&match message {
        Some(message) => json!({"enabled": true, "message": message}),
        None => json!({"enabled": false, "message": ""}),
    }))
}

/// `POST /manager/announcement {enabled, message}`.
async fn post_announcement(
    _caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let enabled = params.to_bool(&["enabled"], false)?;
    let message = params.opt_string(&["message"])?;
    if enabled {
        let message = message.filter(|m| !m.is_empty()).ok_or_else(|| {
            Problem::invalid_params("Empty message not allowed to enable announcement")
        })?;
        state
            .etcd
            .put(ANNOUNCEMENT_KEY, &message)
            .await
            .map_err(etcd_failed(&state, "writing the announcement"))?;
    } else {
        state
            .etcd
            .delete(ANNOUNCEMENT_KEY)
            .await
            .map_err(etcd_failed(&state, "deleting the announcement"))?;
    }
    Ok(HttpResponse::NoContent().finish())
}
