//! `/scaling-groups`: the scaling groups the caller may use in a group (project), and the
//! wsproxy version of one of them.

use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::queries::scaling_group::{GroupRef, allowed_scaling_groups};
use serde_json::json;

use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::state::AppState;
use crate::interaction::app_proxy::{AppProxyError, shared_client};

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/scaling-groups",
        web::get().to(list).wrap(Access::user().read_allowed()),
    );
    cfg.route(
        "/scaling-groups/{scaling_group}/wsproxy-version",
        web::get()
            .to(wsproxy_version)
            .wrap(Access::user().read_allowed()),
    );
}

const GROUP_KEYS: [&str; 3] = ["group", "group_id", "group_name"];

/// `GET /scaling-groups?group=<id or name>`: non-admins see only public ones.
async fn list(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let group = GroupRef::parse(&params.string(&GROUP_KEYS)?);
    slog::info!(state.log, "SGROUPS.LIST";
        "access_key" => &caller.access_key, "group" => ?group, "domain" => caller.domain_name());
    let client = db_client(&state).await?;
    let groups = allowed_scaling_groups(&client, caller.domain_name(), &group, &caller.access_key)
        .await
        .map_err(query_failed(&state, "listing the allowed scaling groups"))?;
    let names: Vec<_> = groups
        .into_iter()
        .filter(|group| caller.is_admin || group.is_public)
        .map(|group| json!({"name": group.name}))
        .collect();
    Ok(reply::json(&json!({ "scaling_groups": names })))
}

/// `GET /scaling-groups/{sg}/wsproxy-version`: `v1` without a wsproxy, else the `api_version`
/// the configured wsproxy's `GET /status` reports (500 server-misconfigured when it cannot be
/// asked, as the original).
async fn wsproxy_version(
    caller: Authenticated,
    request: HttpRequest,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let name = request
        .match_info()
        .get("scaling_group")
        .unwrap_or_default();
    let group = GroupRef::parse(&params.opt_string(&GROUP_KEYS)?.unwrap_or_default());
    let client = db_client(&state).await?;
    let groups = allowed_scaling_groups(&client, caller.domain_name(), &group, &caller.access_key)
        .await
        .map_err(query_failed(&state, "listing the allowed scaling groups"))?;
    let found = groups
        .into_iter()
        .find(|group| group.name == name)
        .ok_or_else(|| Problem::not_found("scaling group"))?;
    match found.wsproxy_addr.filter(|addr| !addr.is_empty()) {
        None => Ok(reply::json(&json!({"wsproxy_version": "v1"}))),
        Some(addr) => {
            let proxy = shared_client().map_err(|e| app_proxy_failed(&state, e))?;
            let status = proxy
                .status(&addr)
                .await
                .map_err(|e| app_proxy_failed(&state, e))?;
            let version = status.get("api_version").cloned().ok_or_else(|| {
                app_proxy_failed(
                    &state,
                    AppProxyError::BadReply {
                        addr: addr.clone(),
                        reason: "no api_version in /status".into(),
                    },
                )
            })?;
            Ok(reply::json(&json!({ "wsproxy_version": version })))
        }
    }
}

/// A wsproxy that cannot be asked is a misconfigured scaling group, as the original says.
fn app_proxy_failed(state: &AppState, error: AppProxyError) -> Problem {
    slog::error!(state.log, "cannot ask the scaling group's wsproxy"; "error" => %error);
    Problem::new(crate::facade::problem::ProblemKind::ServerMisconfigured)
        .with_msg(error.to_string())
}
