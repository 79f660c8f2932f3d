//! `/folders/{name}/…`: the files inside a folder (mkdir, list, rename, move, delete) and the
//! upload and download tokens. The proxy does the work; its tokens (JWTs it signs itself) go
//! back to the client with the proxy's `client_api` URL, which is where the client sends
//! the data. Every path is parsed into a [`VFolderPath`] first (no `..`, no absolute path), as
//! the proxy would follow it out of the folder.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::queries::vfolder::{AccessibleVFolder, status};
use serde_json::{Value, json};

use super::vfolder_access::{Needs, ensure_host_permission, folder_for, storage_view, vfid};
use super::vfolder_reply;
use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::routes::db_client;
use crate::facade::state::AppState;
use crate::storage::permissions::HostPermission;
use crate::storage::{
    EntryName, PathError, ProxyClient, ProxySet, StorageError, VFolderId, VFolderPath,
};

pub fn register(cfg: &mut web::ServiceConfig) {
    let guarded = || Access::user().read_allowed();
    cfg.route(
        "/folders/{name}/mkdir",
        web::post().to(mkdir).wrap(guarded()),
    );
    cfg.route(
        "/folders/{name}/files",
        web::get().to(list_files).wrap(guarded()),
    );
    for path in ["/folders/{name}/rename-file", "/folders/{name}/rename_file"] {
        cfg.route(path, web::post().to(rename_file).wrap(guarded()));
    }
    cfg.route(
        "/folders/{name}/move-file",
        web::post().to(move_file).wrap(guarded()),
    );
    for path in [
        "/folders/{name}/delete-files",
        "/folders/{name}/delete_files",
    ] {
        cfg.route(path, web::delete().to(delete_files).wrap(guarded()));
    }
    cfg.route(
        "/folders/{name}/request-upload",
        web::post().to(request_upload).wrap(guarded()),
    );
    cfg.route(
        "/folders/{name}/request-download",
        web::post().to(request_download).wrap(guarded()),
    );
}

/// The folder of the request with what its proxy call needs.
struct Target {
    view: std::sync::Arc<ProxySet>,
    folder: AccessibleVFolder,
    vfid: VFolderId,
    volume: String,
}

impl Target {
    fn proxy(&self) -> Result<&ProxyClient, Problem> {
        Ok(self.view.client(&self.folder.host)?)
    }
}

/// Finds the folder in the path with `needs` and `statuses`, and checks `host_permission` on
/// its host when the route needs one.
async fn target(
    request: &HttpRequest,
    state: &AppState,
    caller: &Authenticated,
    needs: Needs,
    statuses: &[&str],
    host_permission: Option<HostPermission>,
) -> Result<Target, Problem> {
    let view = storage_view(request)?;
    let name = request.match_info().get("name").unwrap_or("");
    let client = db_client(state).await?;
    let folder = folder_for(&client, state, caller, &view, name, needs, statuses).await?;
    if let Some(permission) = host_permission {
        ensure_host_permission(
            &client,
            state,
            caller,
            &view,
            &folder.host,
            None,
            permission,
        )
        .await?;
    }
    let vfid = vfid(&folder)?;
    let volume = crate::storage::VFolderHost::split(&folder.host).volume;
    Ok(Target {
        view,
        folder,
        vfid,
        volume,
    })
}

fn failed(state: &AppState, doing: &'static str, target: &Target, error: StorageError) -> Problem {
    slog::warn!(state.log, "storage proxy call failed";
        "while" => doing, "host" => &target.folder.host, "vfid" => %target.vfid, "error" => %error);
    error.into()
}

/// 400 naming the parameter and why its path was refused.
fn bad_path(key: &str, error: PathError) -> Problem {
    invalid_param(key, error.to_string())
}

/// The path in the first present key of `keys` (required).
fn path_param(
    params: &ApiParams,
    keys: &[&str],
    parse: fn(&str) -> Result<VFolderPath, PathError>,
) -> Result<VFolderPath, Problem> {
    let text = params.string(keys)?;
    let key = params.raw(keys).map_or(keys[0], |(key, _)| key);
    parse(&text).map_err(|e| bad_path(key, e))
}

/// `POST /folders/{name}/mkdir`: `{path, parents=true, exist_ok=false}` → 201.
async fn mkdir(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let path = path_param(&params, &["path"], VFolderPath::parse_entry)?;
    let parents = params.to_bool(&["parents"], true)?;
    let exist_ok = params.to_bool(&["exist_ok"], false)?;
    let target = target(
        &request,
        &state,
        &caller,
        Needs::ReadWrite,
        status::UPDATABLE,
        None,
    )
    .await?;
    slog::info!(state.log, "VFOLDER.MKDIR"; "email" => &caller.user.email,
        "ak" => &caller.access_key, "vf" => &target.folder.name, "path" => %path);
    target
        .proxy()?
        .mkdir(&target.volume, &target.vfid, &path, parents, exist_ok)
        .await
        .map_err(|e| failed(&state, "making a directory", &target, e))?;
    Ok(HttpResponse::Created().finish())
}

/// `GET /folders/{name}/files`: `{path=""}`.
async fn list_files(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    // An absent or empty path lists the root, as in the original.
    let path = match params.opt_string(&["path"])?.as_deref() {
        None | Some("") => VFolderPath::root(),
        Some(text) => VFolderPath::parse(text).map_err(|e| bad_path("path", e))?,
    };
    let target = target(
        &request,
        &state,
        &caller,
        Needs::Read,
        status::READABLE,
        None,
    )
    .await?;
    slog::info!(state.log, "VFOLDER.LIST_FILES"; "email" => &caller.user.email,
        "ak" => &caller.access_key, "vf" => &target.folder.name, "path" => %path);
    let entries = target
        .proxy()?
        .list_files(&target.volume, &target.vfid, &path)
        .await
        .map_err(|e| failed(&state, "listing files", &target, e))?;
    Ok(reply::json(&vfolder_reply::file_listing(&entries)))
}

/// `POST /folders/{name}/rename-file`: `{target_path, new_name, is_dir (ignored)}` → `{}`.
async fn rename_file(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let target_path = path_param(&params, &["target_path"], VFolderPath::parse_entry)?;
    let new_name =
        EntryName::parse(&params.string(&["new_name"])?).map_err(|e| bad_path("new_name", e))?;
    params.to_bool(&["is_dir"], false)?;
    let target = target(
        &request,
        &state,
        &caller,
        Needs::ReadWrite,
        status::UPDATABLE,
        Some(HostPermission::Modify),
    )
    .await?;
    slog::info!(state.log, "VFOLDER.RENAME_FILE"; "email" => &caller.user.email,
        "ak" => &caller.access_key, "vf" => &target.folder.name,
        "target_path" => %target_path, "new_name" => %new_name);
    target
        .proxy()?
        .rename_file(&target.volume, &target.vfid, &target_path, &new_name)
        .await
        .map_err(|e| failed(&state, "renaming a file", &target, e))?;
    Ok(reply::json(&json!({})))
}

/// `POST /folders/{name}/move-file`: `{src, dst}` → `{}`.
async fn move_file(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let src = path_param(&params, &["src"], VFolderPath::parse_entry)?;
    let dst = path_param(&params, &["dst"], VFolderPath::parse_entry)?;
    let target = target(
        &request,
        &state,
        &caller,
        Needs::ReadWrite,
        status::UPDATABLE,
        None,
    )
    .await?;
    slog::info!(state.log, "VFOLDER.MOVE_FILE"; "email" => &caller.user.email,
        "ak" => &caller.access_key, "vf" => &target.folder.name, "src" => %src, "dst" => %dst);
    target
        .proxy()?
        .move_file(&target.volume, &target.vfid, &src, &dst)
        .await
        .map_err(|e| failed(&state, "moving a file", &target, e))?;
    Ok(reply::json(&json!({})))
}

/// `DELETE /folders/{name}/delete-files`: `{files: [...], recursive=false}` → `{}`.
async fn delete_files(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let files: Vec<VFolderPath> = params
        .opt_list(&["files"])?
        .ok_or_else(|| invalid_param("files", "is required"))?
        .iter()
        .map(|value| match value {
            Value::String(path) => VFolderPath::parse_entry(path).map_err(|e| bad_path("files", e)),
            _ => Err(invalid_param("files", "value is not a string")),
        })
        .collect::<Result<_, _>>()?;
    let recursive = params.to_bool(&["recursive"], false)?;
    let target = target(
        &request,
        &state,
        &caller,
        Needs::ReadWrite,
        status::UPDATABLE,
        None,
    )
    .await?;
    slog::info!(state.log, "VFOLDER.DELETE_FILES"; "email" => &caller.user.email,
        "ak" => &caller.access_key, "vf" => &target.folder.name,
        "path" => files.iter().map(VFolderPath::as_str).collect::<Vec<_>>().join(","),
        "recursive" => recursive);
    target
        .proxy()?
        .delete_files(&target.volume, &target.vfid, &files, recursive)
        .await
        .map_err(|e| failed(&state, "deleting files", &target, e))?;
    Ok(reply::json(&json!({})))
}

/// `POST /folders/{name}/request-upload`: `{path, size}` → `{token, url}`.
async fn request_upload(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let path = path_param(&params, &["path"], VFolderPath::parse_entry)?;
    if !params.has(&["size"]) {
        return Err(invalid_param("size", "is required"));
    }
    let size = params.to_int(&["size"], 0, i64::MIN)?;
    let target = target(
        &request,
        &state,
        &caller,
        Needs::ReadWrite,
        status::UPDATABLE,
        Some(HostPermission::UploadFile),
    )
    .await?;
    slog::info!(state.log, "VFOLDER.CREATE_UPLOAD_SESSION"; "email" => &caller.user.email,
        "ak" => &caller.access_key, "vf" => &target.folder.name, "path" => %path);
    let proxy = target.proxy()?;
    let token = proxy
        .upload_token(&target.volume, &target.vfid, &path, size)
        .await
        .map_err(|e| failed(&state, "requesting an upload", &target, e))?;
    Ok(reply::json_with_status(
        StatusCode::OK,
        &json!({"token": token, "url": proxy.client_url("upload")}),
    ))
}

/// `POST /folders/{name}/request-download`: `{path|file, archive=false}` → `{token, url}`.
async fn request_download(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let path = path_param(&params, &["path", "file"], VFolderPath::parse)?;
    let archive = params.to_bool(&["archive"], false)?;
    let target = target(
        &request,
        &state,
        &caller,
        Needs::Read,
        status::UPDATABLE,
        Some(HostPermission::DownloadFile),
    )
    .await?;
    slog::info!(state.log, "VFOLDER.CREATE_DOWNLOAD_SESSION"; "email" => &caller.user.email,
        "ak" => &caller.access_key, "vf" => &target.folder.name, "path" => %path);
    let proxy = target.proxy()?;
    let unmanaged = target
        .folder
        .unmanaged_path
        .as_deref()
        .filter(|p| !p.is_empty());
    let token = proxy
        .download_token(&target.volume, &target.vfid, &path, archive, unmanaged)
        .await
        .map_err(|e| failed(&state, "requesting a download", &target, e))?;
    Ok(reply::json(
        &json!({"token": token, "url": proxy.client_url("download")}),
    ))
}
