//! `/logs/error`: error reports filed by clients (the Web UI's and SDK's error reporter) and
//! agents, as the original's `api/logs.py`: `POST` files one, `GET` pages through the visible
//! ones (superadmins see all, domain admins their domain's users', users their own uncleared
//! ones) and may mark them read, `POST /logs/error/{log_id}/clear` hides one from its user.
//!
//! Differences, on purpose: a severity the table cannot hold (`info`, `debug`) is a 400 where the
//! original failed with a 500, and clearing a log that does not exist or is not visible is a
//! 404 where the original failed an assertion (500).

use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::enums::UserRole;
use bai_schema::queries::error_logs::{
    LogVisibility, NewErrorLog, insert_error_log, list_error_logs, mark_cleared, mark_read,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::state::AppState;

/// The severities `errorlog_severity` holds.
pub const SEVERITIES: &[&str] = &["critical", "error", "warning"];
/// The largest page (`page_size` < 101 in the original).
pub const MAX_PAGE_SIZE: i64 = 100;

pub fn register(cfg: &mut web::ServiceConfig) {
    let user = || Access::user().read_allowed();
    cfg.service(
        web::resource("/logs/error")
            .route(web::post().to(append).wrap(user()))
            .route(web::get().to(list).wrap(user())),
    );
    cfg.service(
        web::resource("/logs/error/{log_id}/clear").route(web::post().to(clear).wrap(user())),
    );
}

/// Whose logs the caller sees.
pub fn visibility(caller: &Authenticated) -> LogVisibility {
    if caller.is_superadmin {
        LogVisibility::All
    } else if caller.role() == UserRole::Admin {
        LogVisibility::Domain(caller.domain_name().to_owned())
    } else {
        LogVisibility::Own(caller.user_uuid())
    }
}

/// `POST /logs/error`.
pub async fn append(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let severity = params.string(&["severity"])?.to_ascii_lowercase();
    if !SEVERITIES.contains(&severity.as_str()) {
        return Err(invalid_param(
            "severity",
            "value is not a valid LogSeverity",
        ));
    }
    let raw_env = params.string(&["context_env"])?;
    let context_env: Value = serde_json::from_str(&raw_env)
        .map_err(|_| invalid_param("context_env", "value is not a JSON string"))?;
    let request_status = match params.raw(&["request_status"]) {
        None | Some((_, Value::Null)) => None,
        Some(_) => Some(
            i32::try_from(params.to_int(&["request_status"], 0, i64::from(i32::MIN))?)
                .map_err(|_| invalid_param("request_status", "value is out of range"))?,
        ),
    };
    let log = NewErrorLog {
        severity,
        source: params.string(&["source"])?,
        user: Some(caller.user_uuid()),
        message: params.string(&["message"])?,
        context_lang: params.string(&["context_lang"])?,
        context_env,
        request_url: params.opt_string(&["request_url"])?,
        request_status,
        traceback: params.opt_string(&["traceback"])?,
    };
    slog::info!(state.log, "CREATE"; "access_key" => &caller.access_key);
    let client = db_client(&state).await?;
    insert_error_log(&client, &log)
        .await
        .map_err(query_failed(&state, "storing an error log"))?;
    Ok(reply::json(&json!({"success": true})))
}

/// `GET /logs/error?mark_read=&page_size=&page_no=`.
pub async fn list(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let mark = params.to_bool(&["mark_read"], false)?;
    let page_size = params.to_int(&["page_size"], 20, i64::MIN)?;
    if page_size > MAX_PAGE_SIZE {
        return Err(invalid_param("page_size", "value should be less than 101"));
    }
    let page_size = page_size.max(0);
    let page_no = params.to_int(&["page_no"], 1, i64::MIN)?;
    slog::info!(state.log, "LIST"; "access_key" => &caller.access_key);
    let visibility = visibility(&caller);
    let is_admin = !matches!(visibility, LogVisibility::Own(_));
    let client = db_client(&state).await?;
    let (rows, count) = list_error_logs(&client, &visibility, page_size, page_no)
        .await
        .map_err(query_failed(&state, "listing error logs"))?;
    let logs: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut item = json!({
                "log_id": row.id.to_string(),
                "created_at": row.created_at.map(|at| at.timestamp_micros() as f64 / 1e6),
                "severity": row.severity,
                "source": row.source,
                "user": row.user.map(|u| u.to_string()),
                "is_read": row.is_read,
                "message": row.message,
                "context_lang": row.context_lang,
                "context_env": row.context_env,
                "request_url": row.request_url,
                "request_status": row.request_status,
                "traceback": row.traceback,
            });
            if is_admin {
                item["is_cleared"] = json!(row.is_cleared);
            }
            item
        })
        .collect();
    if mark && !rows.is_empty() {
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        mark_read(&client, &ids)
            .await
            .map_err(query_failed(&state, "marking error logs read"))?;
    }
    Ok(reply::json(&json!({"logs": logs, "count": count})))
}

/// `POST /logs/error/{log_id}/clear`.
pub async fn clear(
    caller: Authenticated,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let raw_id = request.match_info().get("log_id").unwrap_or_default();
    let log_id = Uuid::parse_str(raw_id).map_err(|_| invalid_param("log_id", "not a UUID"))?;
    slog::info!(state.log, "CLEAR"; "access_key" => &caller.access_key);
    let client = db_client(&state).await?;
    let cleared = mark_cleared(&client, &visibility(&caller), log_id)
        .await
        .map_err(query_failed(&state, "clearing an error log"))?;
    if cleared == 0 {
        return Err(Problem::new(ProblemKind::ObjectNotFound).with_msg("no such error log"));
    }
    Ok(reply::json(&json!({"success": true})))
}
