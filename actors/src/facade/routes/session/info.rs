//! `GET /session/{name}` (legacy REST info), `GET /session/_/match` (prefix matcher for
//! completion) and `GET /session/{name}/logs` (the main container's log).

use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::enums::KernelStatus;
use bai_schema::queries::session::{
    Staleness, count_session_query, match_sessions as query_matches,
};
use bai_schema::slots::ResourceSlot;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{find_session, load_detail};
use crate::compat::pyrepr::python_str;
use crate::facade::auth::Authenticated;
use crate::facade::auth::scope::access_key_scope;
use crate::facade::params::ApiParams;
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::session::control::{
    FetchContainerLogs, SessionControl, scheduler_missing, scheduler_unreachable,
};
use crate::facade::state::AppState;

/// `str(ResourceSlot)` in Python: `{'cpu': Decimal('1'), 'mem': Decimal('536870912')}`.
pub fn python_slots_repr(slots: &ResourceSlot) -> String {
    let items: Vec<String> = slots
        .iter()
        .map(|(slot, amount)| format!("'{slot}': Decimal('{amount}')"))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// `str(datetime)` in Python: `2026-11-28 02:15:31.607592+00:00`.
pub fn python_datetime(at: DateTime<Utc>) -> String {
    if at.timestamp_subsec_micros() == 0 {
        at.format("%Y-%m-%d %H:%M:%S+00:00").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
    }
}

/// `GET /session/{name}`: the caller's own session (no `owner_access_key` here).
pub async fn get_info(
    caller: Authenticated,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let reference = request.match_info().get("session_name").unwrap_or_default();
    slog::info!(state.log, "GET_INFO"; "access_key" => &caller.access_key, "session" => reference);
    let client = db_client(&state).await?;
    let found = find_session(&client, reference, &caller.access_key, false, &state).await?;
    count_session_query(&client, found.id)
        .await
        .map_err(query_failed(&state, "counting the session query"))?;
    let kernel = load_detail(&client, found.id, &state).await?;
    let environ = kernel
        .environ
        .as_ref()
        .map(|list| python_str(&json!(list)))
        .unwrap_or_else(|| "None".into());
    let age = (Utc::now() - kernel.created_at).num_milliseconds();
    let checkers = crate::idle::report::enabled_checkers(&state.etcd).await;
    let idle_checks =
        crate::idle::report::idle_check_report(Some(&state.redis.live), &checkers, found.id).await;
    Ok(reply::json(&json!({
        "domainName": kernel.domain_name,
        "groupId": kernel.group_id.to_string(),
        "userId": kernel.user_uuid.to_string(),
        "lang": kernel.image,
        "image": kernel.image,
        "architecture": kernel.architecture,
        "registry": kernel.registry,
        "tag": kernel.tag,
        "containerId": kernel.container_id.clone().unwrap_or_else(|| "None".into()),
        "occupiedSlots": python_slots_repr(&kernel.occupied_slots),
        "occupiedShares": python_str(&kernel.occupied_shares),
        "environ": environ,
        "status": kernel.status.as_str(),
        "statusInfo": kernel.status_info.clone().unwrap_or_else(|| "None".into()),
        "statusData": kernel.status_data,
        "age": age,
        "creationTime": python_datetime(kernel.created_at),
        "terminationTime": kernel.terminated_at.map(python_datetime),
        "numQueriesExecuted": kernel.num_queries + 1,
        "lastStat": kernel.last_stat,
        "idleChecks": idle_checks,
    })))
}

/// `GET /session/_/match?id=PREFIX`.
pub async fn match_sessions(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let prefix = params.string(&["id"])?;
    let client = db_client(&state).await?;
    let matches = query_matches(&client, &prefix, &caller.access_key, Staleness::AllowStale)
        .await
        .map_err(query_failed(&state, "matching sessions"))?;
    let matches: Vec<Value> = matches
        .into_iter()
        .map(|m| json!({"id": m.id.to_string(), "name": m.name, "status": m.status.as_str()}))
        .collect();
    Ok(reply::json(&json!({ "matches": matches })))
}

/// `GET /session/{name}/logs`: the stored log of a finished container, or the agent's.
pub async fn container_logs(
    caller: Authenticated,
    request: HttpRequest,
    params: ApiParams,
    state: web::Data<AppState>,
    control: Option<web::Data<SessionControl>>,
) -> Result<HttpResponse, Problem> {
    let reference = request.match_info().get("session_name").unwrap_or_default();
    let owner_key = params.opt_string(&["owner_access_key"])?;
    let client = db_client(&state).await?;
    let scope = access_key_scope(&caller, &client, owner_key.as_deref()).await?;
    slog::info!(state.log, "GET_CONTAINER_LOG";
        "access_key" => &scope.requester, "owner" => &scope.owner, "session" => reference);
    let found = find_session(&client, reference, &scope.owner, true, &state).await?;
    let kernel = load_detail(&client, found.id, &state).await?;
    let dead = matches!(
        kernel.status,
        KernelStatus::Terminated | KernelStatus::Cancelled
    );
    if let Some(log) = kernel.container_log.as_ref().filter(|_| dead) {
        let logs = String::from_utf8_lossy(log).into_owned();
        return Ok(reply::json(&json!({"result": {"logs": logs}})));
    }
    if kernel.agent.is_none() {
        // Never placed on an agent: no container, so nothing was logged.
        return Ok(reply::json(&json!({"result": {"logs": ""}})));
    }
    let Some(control) = control else {
        return Err(scheduler_missing("reading a running container's log"));
    };
    count_session_query(&client, found.id)
        .await
        .map_err(query_failed(&state, "counting the session query"))?;
    let logs = crate::supervision::tracked(
        crate::scheduler::actor::ACTOR_NAME,
        control.logs.send(FetchContainerLogs {
            session_id: found.id,
            kernel_id: kernel.kernel_id,
        }),
    )
    .await
    .map_err(scheduler_unreachable)??;
    Ok(reply::json(&json!({"result": {"logs": logs}})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_renderings_match_the_originals() {
        let slots = ResourceSlot::from_pairs([("cpu", 1), ("mem", 536870912)]);
        assert_eq!(
            python_slots_repr(&slots),
            "{'cpu': Decimal('1'), 'mem': Decimal('536870912')}"
        );
        let at = DateTime::parse_from_rfc3339("2026-11-28T02:15:31.607592Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(python_datetime(at), "2026-11-28 02:15:31.607592+00:00");
        let at = DateTime::parse_from_rfc3339("2026-11-28T02:15:31Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(python_datetime(at), "2026-11-28 02:15:31+00:00");
        assert_eq!(python_str(&json!(["A=1", "B=2"])), "['A=1', 'B=2']");
    }
}
