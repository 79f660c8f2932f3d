//! `GET|POST /folders/_/quota`: the legacy per-folder quota, passed to the storage proxy's
//! `volume/quota` as the original does (a 23.09 storage proxy refuses that API as deprecated,
//! and its refusal reaches the caller as the original's `invalid-api-params`). The caller must
//! reach the folder (any folder for superadmins); setting it caps the size at the keypair
//! policy's `max_vfolder_size` and records it as the folder's `max_size`.

use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::enums::UserRole;
use bai_schema::queries::vfolder::{
    self as queries, AccessQuery, NameFilter, accessible_vfolders, status,
};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::vfolder::proxy_failed;
use super::vfolder_access::{db_failed, ensure_host_permission, folder_not_found, storage_view};
use crate::facade::access::Access;
use crate::facade::auth::{AuthContext, Authenticated};
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::db_client;
use crate::facade::state::AppState;
use crate::storage::permissions::HostPermission;
use crate::storage::{ProxySet, VFolderId};

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/folders/_/quota",
        web::get().to(get_quota).wrap(Access::user().read_allowed()),
    );
    cfg.route(
        "/folders/_/quota",
        web::post()
            .to(update_quota)
            .wrap(Access::user().all_allowed()),
    );
}

/// The folder `id` as the caller may reach it, in one of `statuses`: its storage id.
async fn reachable_folder(
    client: &impl deadpool_postgres::GenericClient,
    state: &AppState,
    caller: &AuthContext,
    view: &ProxySet,
    id: Uuid,
    statuses: &[&str],
) -> Result<VFolderId, Problem> {
    let placement = queries::folder_placement(client, id)
        .await
        .map_err(db_failed(state, "looking up the folder"))?
        .ok_or_else(|| folder_not_found(&id.to_string()))?;
    if caller.role() != UserRole::Superadmin {
        let reachable = accessible_vfolders(
            client,
            &AccessQuery {
                names: NameFilter::Any,
                ..AccessQuery::new(
                    caller.user_uuid(),
                    caller.role(),
                    caller.domain_name(),
                    &view.config.vfolder_types,
                )
            },
        )
        .await
        .map_err(db_failed(state, "looking up the caller's folders"))?;
        if !reachable.iter().any(|folder| folder.id == id) {
            return Err(folder_not_found(&id.to_string()));
        }
    }
    if !statuses.contains(&placement.status.as_str()) {
        return Err(Problem::new(ProblemKind::VFolderFilterStatusFailed));
    }
    VFolderId::from_row(placement.quota_scope_id.as_deref(), id)
        .map_err(|e| Problem::internal(format!("vfolder {id} has a bad quota scope: {e}")))
}

fn folder_id(params: &ApiParams) -> Result<Uuid, Problem> {
    let text = params.string(&["id"])?;
    Uuid::parse_str(&text).map_err(|_| invalid_param("id", "value is not a valid UUID"))
}

/// `GET /folders/_/quota?folder_host=…&id=…`: the proxy's reply as it is.
async fn get_quota(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    let host = params.string(&["folder_host"])?;
    let id = folder_id(&params)?;
    slog::info!(state.log, "VFOLDER.GET_QUOTA";
        "email" => &caller.user.email, "vfh" => &host, "vf" => %id);
    let client = db_client(&state).await?;
    let vfid = reachable_folder(&client, &state, &caller, &view, id, status::READABLE).await?;
    let (proxy, volume) = view.resolve(&host)?;
    let reply = proxy
        .folder_quota(Method::GET, &volume, &vfid, None)
        .await
        .map_err(|e| proxy_failed(&state, "reading a folder quota", &host, &vfid, e))?;
    Ok(reply::json(&reply.unwrap_or(Value::Null)))
}

/// `POST /folders/_/quota {folder_host, id, input: {size_bytes}}`: `{"size_bytes": …}` as set.
async fn update_quota(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    let host = params.string(&["folder_host"])?;
    let id = folder_id(&params)?;
    let requested = params
        .opt_object(&["input"])?
        .and_then(|input| input.get("size_bytes"))
        .and_then(|size| match size {
            Value::Number(n) => n.as_i64(),
            Value::String(text) => text.parse().ok(),
            _ => None,
        })
        .ok_or_else(|| invalid_param("input", "size_bytes must be an integer"))?;
    slog::info!(state.log, "VFOLDER.UPDATE_QUOTA";
        "email" => &caller.user.email, "vfh" => &host, "quota" => requested, "vf" => %id);
    let client = db_client(&state).await?;
    let vfid = reachable_folder(&client, &state, &caller, &view, id, status::UPDATABLE).await?;
    if caller.role() != UserRole::Superadmin {
        ensure_host_permission(
            &client,
            &state,
            &caller,
            &view,
            &host,
            None,
            HostPermission::Modify,
        )
        .await?;
    }
    let quota = capped_quota(requested, caller.resource_policy.max_vfolder_size);
    let (proxy, volume) = view.resolve(&host)?;
    proxy
        .folder_quota(Method::PATCH, &volume, &vfid, Some(quota))
        .await
        .map_err(|e| proxy_failed(&state, "setting a folder quota", &host, &vfid, e))?;
    queries::set_max_size(&client, id, max_size_mib(quota))
        .await
        .map_err(db_failed(&state, "recording the folder's size limit"))?;
    Ok(reply::json(&json!({"size_bytes": quota})))
}

/// The original's cap: a policy limit replaces a size that is unlimited or above it.
fn capped_quota(requested: i64, max_vfolder_size: i64) -> i64 {
    if max_vfolder_size > 0 && (requested <= 0 || requested > max_vfolder_size) {
        max_vfolder_size
    } else {
        requested
    }
}

/// Bytes to whole MiB, rounded up (`math.ceil(quota / 2**20)`).
fn max_size_mib(bytes: i64) -> i32 {
    let mib = (bytes.max(0) as u64).div_ceil(1 << 20);
    i32::try_from(mib).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_limit_caps_the_quota() {
        assert_eq!(capped_quota(5 << 20, 0), 5 << 20);
        assert_eq!(capped_quota(0, 10 << 20), 10 << 20);
        assert_eq!(capped_quota(20 << 20, 10 << 20), 10 << 20);
        assert_eq!(capped_quota(3 << 20, 10 << 20), 3 << 20);
    }

    #[test]
    fn sizes_round_up_to_whole_mebibytes() {
        assert_eq!(max_size_mib(1), 1);
        assert_eq!(max_size_mib(1 << 20), 1);
        assert_eq!(max_size_mib((1 << 20) + 1), 2);
        assert_eq!(max_size_mib(-5), 0);
    }
}
