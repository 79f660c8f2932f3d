//! `/folders`: virtual folders of users and groups, brokered to the storage proxies.
//!
//! A folder row exists only if its proxy created the folder: creation calls the proxy first
//! and inserts the row in the same transaction (undoing the proxy's folder if the insert
//! fails); deletion marks the row `deleting`, has the proxy delete the folder, then removes
//! the row, and puts the row back to `ready` when the proxy fails. A proxy that cannot be
//! reached answers 503 naming it, and nothing changes.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::enums::{UserRole, VFolderOwnershipType, VFolderPermission, VFolderUsageMode};
use bai_schema::queries::vfolder::{
    self as queries, AccessQuery, FolderPlacement, NameFilter, NewVFolder, accessible_vfolders,
    folder_placement, status,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::vfolder_access::{
    Needs, UserGroups, db_failed, ensure_host_permission, ensure_new_folder_allowed, folder_for,
    folder_not_found, hosts_by_group, hosts_by_user, storage_view, vfid,
};
use super::vfolder_reply;
use crate::facade::access::Access;
use crate::facade::auth::{AuthContext, Authenticated};
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::db_client;
use crate::facade::state::AppState;
use crate::storage::permissions::{HostPermission, NameError, check_folder_name};
use crate::storage::{ProxySet, QuotaScopeId, StorageError, VFolderId};

pub fn register(cfg: &mut web::ServiceConfig) {
    // The `/_/…` routes come before `/{name}` so that `_` is never taken for a folder name.
    cfg.route(
        "/folders/_/hosts",
        web::get()
            .to(list_hosts)
            .wrap(Access::user().read_allowed()),
    );
    for path in ["/folders/_/all-hosts", "/folders/_/all_hosts"] {
        cfg.route(
            path,
            web::get()
                .to(list_all_hosts)
                .wrap(Access::superadmin().read_allowed()),
        );
    }
    for path in ["/folders/_/allowed-types", "/folders/_/allowed_types"] {
        cfg.route(
            path,
            web::get()
                .to(list_allowed_types)
                .wrap(Access::user().read_allowed()),
        );
    }
    cfg.route(
        "/folders/_/perf-metric",
        web::get()
            .to(volume_perf_metric)
            .wrap(Access::superadmin().read_allowed()),
    );
    cfg.route(
        "/folders",
        web::post().to(create).wrap(Access::user().all_allowed()),
    );
    cfg.route(
        "/folders",
        web::get()
            .to(list_folders)
            .wrap(Access::user().read_allowed()),
    );
    cfg.route(
        "/folders",
        web::delete()
            .to(delete_by_id)
            .wrap(Access::superadmin().all_allowed()),
    );
    cfg.route(
        "/folders/{name}",
        web::get().to(get_info).wrap(Access::user().read_allowed()),
    );
    cfg.route(
        "/folders/{name}",
        web::delete()
            .to(delete_by_name)
            .wrap(Access::user().all_allowed()),
    );
    cfg.route(
        "/folders/{name}/rename",
        web::post()
            .to(rename_folder)
            .wrap(Access::user().all_allowed()),
    );
}

/// The folder name in the path.
pub(super) fn path_name(request: &HttpRequest) -> String {
    request.match_info().get("name").unwrap_or("").to_owned()
}

/// A `tx.Slug(allow_dot=True)` parameter.
pub(super) fn slug_param(params: &ApiParams, key: &str) -> Result<String, Problem> {
    let value = params.string(&[key])?;
    match check_folder_name(&value) {
        Ok(()) => Ok(value),
        Err(NameError::Reserved(_)) => Ok(value),
        Err(e) => Err(invalid_param(key, e.to_string())),
    }
}

pub(super) fn enum_param<T: std::str::FromStr>(
    params: &ApiParams,
    key: &str,
    default: T,
) -> Result<T, Problem> {
    match params.raw(&[key]) {
        None | Some((_, Value::Null)) => Ok(default),
        Some((_, Value::String(text))) => text
            .parse()
            .map_err(|_| invalid_param(key, format!("value {text:?} is not a valid choice"))),
        Some(_) => Err(invalid_param(key, "value is not a string")),
    }
}

/// A uuid-or-name parameter (`tx.UUID | t.String | t.Null`).
#[derive(Debug, Clone, PartialEq)]
enum GroupRef {
    Id(Uuid),
    Name(String),
}

fn group_param(params: &ApiParams, keys: &[&str]) -> Result<Option<GroupRef>, Problem> {
    Ok(params
        .opt_string(keys)?
        .map(|text| match Uuid::parse_str(&text) {
            Ok(id) => GroupRef::Id(id),
            Err(_) => GroupRef::Name(text),
        }))
}

pub(super) fn strict_bool(params: &ApiParams, key: &str, default: bool) -> Result<bool, Problem> {
    match params.raw(&[key]) {
        None => Ok(default),
        Some((_, Value::Bool(value))) => Ok(*value),
        Some(_) => Err(invalid_param(key, "value should be True or False")),
    }
}

/// `quota`: a binary size like `"10g"`, `"0"` or a number of bytes.
fn quota_param(params: &ApiParams) -> Result<Option<u64>, Problem> {
    let text = match params.raw(&["quota"]) {
        None | Some((_, Value::Null)) => return Ok(None),
        Some((_, Value::String(text))) => text.clone(),
        Some((_, Value::Number(n))) => n.to_string(),
        Some(_) => return Err(invalid_param("quota", "value is not a valid binary size")),
    };
    bai_schema::slots::parse_binary_size(&text)
        .map(Some)
        .map_err(|_| invalid_param("quota", "value is not a valid binary size"))
}

/// `POST /folders`.
async fn create(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    let name = slug_param(&params, "name")?;
    let requested_host = params.opt_string(&["host"])?;
    let usage_mode = enum_param(&params, "usage_mode", VFolderUsageMode::General)?;
    let permission = enum_param(&params, "permission", VFolderPermission::ReadWrite)?;
    let unmanaged_path = params
        .opt_string(&["unmanaged_path", "unmanagedPath"])?
        .filter(|p| !p.is_empty());
    let group_ref = group_param(&params, &["group", "groupId", "group_id"])?;
    let quota = quota_param(&params)?;
    let cloneable = strict_bool(&params, "cloneable", false)?;
    slog::info!(state.log, "VFOLDER.CREATE";
        "email" => &caller.user.email, "ak" => &caller.access_key, "vf" => &name,
        "vfh" => requested_host.as_deref().unwrap_or(""), "umod" => usage_mode.as_str(),
        "perm" => permission.as_str());

    let host = if unmanaged_path.is_some() {
        if !caller.has_admin_role() {
            return Err(
                Problem::new(ProblemKind::GenericForbidden).with_msg("Insufficient permission")
            );
        }
        String::new()
    } else {
        match requested_host.filter(|h| !h.is_empty()) {
            Some(host) => host,
            None => view.config.default_host.clone().ok_or_else(|| {
                Problem::invalid_params(
                    "You must specify the vfolder host because the default host is not configured.",
                )
            })?,
        }
    };
    if let Err(NameError::Reserved(_)) = check_folder_name(&name) {
        return Err(Problem::invalid_params(format!(
            "{name} is reserved for internal operations."
        )));
    }
    if name.starts_with('.') && name != ".local" && group_ref.is_some() {
        return Err(Problem::invalid_params(
            "dot-prefixed vfolders cannot be a group folder.",
        ));
    }

    let mut client = db_client(&state).await?;
    let (group, max_vfolder_size) = match &group_ref {
        None => {
            let size = queries::user_max_vfolder_size(&client, caller.user_uuid())
                .await
                .map_err(db_failed(&state, "reading the user's resource policy"))?;
            (None, size)
        }
        Some(reference) => {
            let (id, name) = match reference {
                GroupRef::Id(id) => (Some(*id), None),
                GroupRef::Name(name) => (None, Some(name.as_str())),
            };
            let group = queries::find_group(&client, caller.domain_name(), id, name)
                .await
                .map_err(db_failed(&state, "looking up the group"))?
                .ok_or_else(|| {
                    Problem::not_found("user group (or project)").with_data(Value::String(
                        match reference {
                            GroupRef::Id(id) => id.to_string(),
                            GroupRef::Name(name) => name.clone(),
                        },
                    ))
                })?;
            (Some(group.id), group.max_vfolder_size)
        }
    };
    let (ownership_type, quota_scope) = match group {
        Some(group) => {
            if !caller.is_admin {
                return Err(Problem::new(ProblemKind::GenericForbidden).with_msg("no permission"));
            }
            (VFolderOwnershipType::Group, QuotaScopeId::project(group))
        }
        None => (
            VFolderOwnershipType::User,
            QuotaScopeId::user(caller.user_uuid()),
        ),
    };
    if !view.config.allows_type(ownership_type.as_str()) {
        return Err(Problem::invalid_params(format!(
            "{}-owned vfolder is not allowed in this cluster",
            ownership_type.as_str()
        )));
    }

    let transaction = client
        .transaction()
        .await
        .map_err(db_failed(&state, "starting a transaction"))?;
    // Concurrent creates of one owner queue here, so the count and name checks hold.
    queries::lock_owner(&transaction, caller.user_uuid())
        .await
        .map_err(db_failed(&state, "locking the folder owner"))?;
    if unmanaged_path.is_none() {
        ensure_host_permission(
            &transaction,
            &state,
            &caller,
            &view,
            &host,
            group,
            HostPermission::Create,
        )
        .await?;
    }
    ensure_new_folder_allowed(
        &transaction,
        &state,
        &caller,
        &view,
        &name,
        ownership_type == VFolderOwnershipType::User,
    )
    .await?;

    let folder_id = Uuid::new_v4();
    let vfid = VFolderId::new(quota_scope, folder_id);
    let max_size = quota
        .filter(|q| *q > 0)
        .map(|q| i32::try_from(q / (1 << 20)).unwrap_or(i32::MAX));
    let new_folder = NewVFolder {
        id: folder_id,
        name: name.clone(),
        host: host.clone(),
        domain_name: caller.domain_name().to_owned(),
        quota_scope_id: quota_scope.to_string(),
        usage_mode,
        permission,
        max_size,
        creator: caller.user.email.clone(),
        ownership_type,
        user: (ownership_type == VFolderOwnershipType::User).then(|| caller.user_uuid()),
        group,
        cloneable,
    };

    let created_on_proxy = match &unmanaged_path {
        Some(_) => false,
        None => {
            let (proxy, volume) = view.resolve(&host)?;
            let mut options = Map::new();
            if max_vfolder_size > 0 {
                options.insert(
                    "initial_max_size_for_quota_scope".into(),
                    json!(max_vfolder_size),
                );
            }
            proxy
                .create_folder(&volume, &vfid, options)
                .await
                .map_err(|e| proxy_failed(&state, "creating a folder", &host, &vfid, e))?;
            true
        }
    };
    let stored = match queries::insert_vfolder(&transaction, &new_folder).await {
        Ok(_) => transaction
            .commit()
            .await
            .map_err(|e| format!("committing: {e}")),
        Err(e) => Err(e.to_string()),
    };
    if let Err(reason) = stored {
        slog::error!(state.log, "cannot store a created vfolder; removing it from the proxy";
            "vfid" => %vfid, "host" => &host, "error" => &reason);
        if created_on_proxy {
            undo_proxy_create(&state, &view, &host, &vfid).await;
        }
        return Err(Problem::internal(
            "database error while storing the new folder",
        ));
    }
    if let Some(path) = &unmanaged_path {
        slog::info!(state.log, "unmanaged vfolder created"; "vf" => &name, "path" => path);
    }

    let mut body = json!({
        "id": folder_id.simple().to_string(),
        "name": name,
        "quota_scope_id": quota_scope.to_string(),
        "host": host,
        "usage_mode": usage_mode.as_str(),
        "permission": permission.as_str(),
        "max_size": max_size,
        "creator": caller.user.email,
        "ownership_type": ownership_type.as_str(),
        "user": new_folder.user.map(|u| u.to_string()),
        "group": group.map(|g| g.to_string()),
        "cloneable": cloneable,
        "status": status::READY,
    });
    if let Some(path) = unmanaged_path {
        body["unmanaged_path"] = Value::String(path);
    }
    Ok(reply::json_with_status(StatusCode::CREATED, &body))
}

/// Logs a failed proxy call for the operator and turns it into the client's error.
pub(super) fn proxy_failed(
    state: &AppState,
    doing: &'static str,
    host: &str,
    vfid: &VFolderId,
    error: StorageError,
) -> Problem {
    slog::warn!(state.log, "storage proxy call failed";
        "while" => doing, "host" => host, "vfid" => %vfid, "error" => %error);
    error.into()
}

/// Removes a folder the proxy created but the database did not record.
async fn undo_proxy_create(state: &AppState, view: &ProxySet, host: &str, vfid: &VFolderId) {
    let result = match view.resolve(host) {
        Ok((proxy, volume)) => proxy.delete_folder(&volume, vfid).await.map(drop),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        slog::error!(state.log, "an unrecorded folder is left on the storage proxy; delete it by hand";
            "host" => host, "vfid" => %vfid, "error" => %e);
    }
}

/// Who the listing is for (`get_user_scopes`).
async fn user_scope(
    state: &AppState,
    client: &impl deadpool_postgres::GenericClient,
    caller: &AuthContext,
    owner_email: Option<String>,
) -> Result<(Uuid, UserRole), Problem> {
    let Some(email) = owner_email else {
        return Ok((caller.user_uuid(), caller.role()));
    };
    if !caller.is_superadmin {
        return Err(Problem::invalid_params(
            "Only superadmins may have user scopes.",
        ));
    }
    let owner = queries::find_user_by_email(client, &email)
        .await
        .map_err(db_failed(state, "looking up the owner"))?
        .ok_or_else(|| Problem::invalid_params("Cannot delegate an unknown user"))?;
    Ok((owner.uuid, owner.role))
}

/// `GET /folders`.
async fn list_folders(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    let all = params.to_bool(&["all"], false)?;
    let group = match params.opt_string(&["group_id", "groupId"])? {
        None => None,
        Some(text) => Some(
            Uuid::parse_str(&text)
                .map_err(|_| invalid_param("group_id", "value is not a valid UUID"))?,
        ),
    };
    let owner_email = params.opt_string(&["owner_user_email", "ownerUserEmail"])?;
    slog::info!(state.log, "VFOLDER.LIST"; "email" => &caller.user.email, "ak" => &caller.access_key);
    if all {
        return Err(Problem::invalid_params("Deprecated use of 'all' option"));
    }
    let client = db_client(&state).await?;
    let (owner, role) = user_scope(&state, &client, &caller, owner_email).await?;
    let entries = accessible_vfolders(
        &client,
        &AccessQuery {
            group,
            ..AccessQuery::new(
                owner,
                role,
                caller.domain_name(),
                &view.config.vfolder_types,
            )
        },
    )
    .await
    .map_err(db_failed(&state, "listing vfolders"))?;
    let items: Vec<Value> = entries.iter().map(vfolder_reply::list_item).collect();
    Ok(reply::json(&items))
}

/// `GET /folders/{name}`.
async fn get_info(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    let name = path_name(&request);
    slog::info!(state.log, "VFOLDER.GETINFO";
        "email" => &caller.user.email, "ak" => &caller.access_key, "vf" => &name);
    let client = db_client(&state).await?;
    let folder = folder_for(
        &client,
        &state,
        &caller,
        &view,
        &name,
        Needs::Read,
        status::READABLE,
    )
    .await?;
    drop(client);
    let vfid = vfid(&folder)?;
    let (proxy, volume) = view.resolve(&folder.host)?;
    let usage = proxy
        .folder_usage(&volume, &vfid)
        .await
        .map_err(|e| proxy_failed(&state, "reading folder usage", &folder.host, &vfid, e))?;
    Ok(reply::json(&vfolder_reply::info(&folder, usage)))
}

/// `POST /folders/{name}/rename`: changes the name only (the storage side uses ids).
async fn rename_folder(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    let old_name = path_name(&request);
    let new_name = slug_param(&params, "new_name")?;
    slog::info!(state.log, "VFOLDER.RENAME";
        "email" => &caller.user.email, "ak" => &caller.access_key,
        "vf.old" => &old_name, "vf.new" => &new_name);
    let mut client = db_client(&state).await?;
    let transaction = client
        .transaction()
        .await
        .map_err(db_failed(&state, "starting a transaction"))?;
    queries::lock_owner(&transaction, caller.user_uuid())
        .await
        .map_err(db_failed(&state, "locking the folder owner"))?;
    folder_for(
        &transaction,
        &state,
        &caller,
        &view,
        &old_name,
        Needs::Owner,
        status::UPDATABLE,
    )
    .await?;
    let entries = accessible_vfolders(
        &transaction,
        &AccessQuery::new(
            caller.user_uuid(),
            caller.role(),
            caller.domain_name(),
            &view.config.vfolder_types,
        ),
    )
    .await
    .map_err(db_failed(&state, "listing vfolders"))?;
    if entries.iter().any(|entry| entry.name == new_name) {
        return Err(Problem::invalid_params(
            "One of your accessible vfolders already has the name you requested.",
        ));
    }
    if let Some(entry) = entries.iter().find(|entry| entry.name == old_name) {
        if !entry.is_owner {
            return Err(Problem::invalid_params(
                "Cannot change the name of a vfolder that is not owned by myself.",
            ));
        }
        ensure_host_permission(
            &transaction,
            &state,
            &caller,
            &view,
            &entry.host,
            None,
            HostPermission::Modify,
        )
        .await?;
        queries::rename_vfolder(&transaction, entry.id, &new_name)
            .await
            .map_err(db_failed(&state, "renaming the folder"))?;
    }
    transaction
        .commit()
        .await
        .map_err(db_failed(&state, "committing the rename"))?;
    Ok(HttpResponse::Created().finish())
}

/// `DELETE /folders/{name}`.
async fn delete_by_name(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    let name = path_name(&request);
    slog::info!(state.log, "VFOLDER.DELETE";
        "email" => &caller.user.email, "ak" => &caller.access_key, "vf" => &name);
    let client = db_client(&state).await?;
    let entries = accessible_vfolders(
        &client,
        &AccessQuery {
            names: NameFilter::Exact(&name),
            ..AccessQuery::new(
                caller.user_uuid(),
                caller.role(),
                caller.domain_name(),
                &view.config.vfolder_types,
            )
        },
    )
    .await
    .map_err(db_failed(&state, "looking up the folder"))?;
    let folder = match entries.as_slice() {
        [] => return Err(folder_not_found(&name)),
        [folder] => folder.clone(),
        _ => {
            slog::error!(state.log, "VFOLDER.DELETE: several folders match";
                "email" => &caller.user.email, "vf" => &name,
                "hosts" => entries.iter().map(|e| e.host.as_str()).collect::<Vec<_>>().join(","));
            return Err(Problem::new(ProblemKind::TooManyVFoldersFound)
                .with_msg("Multiple folders with the same name.")
                .with_data(Value::Null));
        }
    };
    super::vfolder_access::check_status(&entries, status::DELETABLE)?;
    ensure_host_permission(
        &client,
        &state,
        &caller,
        &view,
        &folder.host,
        None,
        HostPermission::Delete,
    )
    .await?;
    if !folder.is_owner && folder.permission != Some(VFolderPermission::RwDelete) {
        return Err(Problem::invalid_params(
            "Cannot delete the vfolder that is not owned by myself.",
        ));
    }
    delete_folder(
        &state,
        &view,
        &client,
        folder.id,
        &folder.host,
        vfid(&folder)?,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /folders` with `{"id"}` (superadmin).
async fn delete_by_id(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    let id_text = params.string(&["id"])?;
    let id =
        Uuid::parse_str(&id_text).map_err(|_| invalid_param("id", "value is not a valid UUID"))?;
    slog::info!(state.log, "VFOLDER.DELETE_BY_ID";
        "email" => &caller.user.email, "ak" => &caller.access_key, "vf" => %id);
    let client = db_client(&state).await?;
    let FolderPlacement {
        host,
        quota_scope_id,
        status: folder_status,
    } = folder_placement(&client, id)
        .await
        .map_err(db_failed(&state, "looking up the folder"))?
        .ok_or_else(|| folder_not_found(&id.to_string()))?;
    if !status::DELETABLE.contains(&folder_status.as_str()) {
        return Err(Problem::new(ProblemKind::VFolderFilterStatusFailed));
    }
    ensure_host_permission(
        &client,
        &state,
        &caller,
        &view,
        &host,
        None,
        HostPermission::Delete,
    )
    .await?;
    let vfid = VFolderId::from_row(quota_scope_id.as_deref(), id)
        .map_err(|e| Problem::internal(format!("vfolder {id} has a bad quota scope: {e}")))?;
    delete_folder(&state, &view, &client, id, &host, vfid).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes a folder on its proxy, then its row: `ready` → `deleting` (a compare-and-set, so
/// two deletes cannot both run), the proxy's delete (a folder already gone counts as
/// deleted), the row's removal. If the proxy fails the row goes back to `ready`.
pub async fn delete_folder(
    state: &AppState,
    view: &ProxySet,
    client: &impl deadpool_postgres::GenericClient,
    id: Uuid,
    host: &str,
    vfid: VFolderId,
) -> Result<(), Problem> {
    let marked = queries::change_status(client, id, status::DELETABLE, status::DELETING)
        .await
        .map_err(db_failed(state, "marking the folder as deleting"))?;
    if !marked {
        return Err(Problem::new(ProblemKind::VFolderFilterStatusFailed));
    }
    let on_proxy = if host.is_empty() {
        // An unmanaged folder has nothing on a proxy.
        Ok(())
    } else {
        match view.resolve(host) {
            Ok((proxy, volume)) => proxy.delete_folder(&volume, &vfid).await.map(drop),
            Err(e) => Err(e),
        }
    };
    if let Err(error) = on_proxy {
        let restored = queries::change_status(client, id, &[status::DELETING], status::READY).await;
        if let Err(e) = restored {
            slog::error!(state.log, "cannot put a vfolder back to ready after a failed delete";
                "vfid" => %vfid, "error" => %e);
        }
        return Err(proxy_failed(state, "deleting a folder", host, &vfid, error));
    }
    queries::delete_vfolder_row(client, id)
        .await
        .map_err(db_failed(state, "deleting the folder row"))?;
    Ok(())
}

/// `GET /folders/_/hosts`.
async fn list_hosts(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    let group = match params.opt_string(&["group_id", "groupId"])? {
        None => None,
        Some(text) => Some(
            Uuid::parse_str(&text)
                .map_err(|_| invalid_param("group_id", "value is not a valid UUID"))?,
        ),
    };
    slog::info!(state.log, "VFOLDER.LIST_HOSTS"; "email" => &caller.user.email, "ak" => &caller.access_key);
    let domain_admin = caller.role() == UserRole::Admin;
    let client = db_client(&state).await?;
    let mut allowed = crate::storage::permissions::HostPermissionMap::default();
    if view.config.allows_type("user") {
        let groups = group.map_or(UserGroups::All, UserGroups::Only);
        allowed.union_with(&hosts_by_user(&client, &state, &caller, groups).await?);
    }
    if view.config.allows_type("group") {
        allowed.union_with(&hosts_by_group(&client, &state, &caller, group, domain_admin).await?);
    }
    drop(client);
    let volumes = view.all_volumes().await.map_err(|e| {
        slog::warn!(state.log, "cannot list the storage volumes"; "error" => %e);
        Problem::from(e)
    })?;
    let existing: Vec<String> = volumes.iter().map(|v| v.host()).collect();
    allowed.retain_hosts(|host| existing.iter().any(|h| h == host));
    let default = view
        .config
        .default_host
        .clone()
        .filter(|host| allowed.contains_host(host));
    let mut volume_info = Map::new();
    for volume in volumes.iter().filter(|v| allowed.contains_host(&v.host())) {
        let usage = exposed_usage(&state, &view, volume).await?;
        let sftp = view
            .client(&volume.proxy)
            .map(|c| c.config().sftp_scaling_groups.clone())
            .unwrap_or_default();
        volume_info.insert(
            volume.host(),
            json!({
                "backend": volume.info.backend,
                "capabilities": volume.info.capabilities,
                "usage": usage,
                "sftp_scaling_groups": sftp,
            }),
        );
    }
    let hosts: Vec<&str> = allowed.hosts().collect();
    Ok(reply::json(&json!({
        "default": default,
        "allowed": hosts,
        "volume_info": volume_info,
    })))
}

/// How long a volume's usage figures are cached in Redis (the original's 60 s).
pub const VOLUME_USAGE_CACHE_SECONDS: u64 = 60;

/// The usage figures of a volume named by `volumes/exposed_volume_info` (`percentage`,
/// `used`, `total`), cached in the stat database as the original does
/// (`volume.usage.<proxy>.<volume>`, msgpack, 60 s).
async fn exposed_usage(
    state: &AppState,
    view: &ProxySet,
    volume: &crate::storage::ProxyVolume,
) -> Result<Map<String, Value>, Problem> {
    use redis::AsyncCommands;
    let exposed = &view.config.exposed_volume_info;
    let show = |field: &str| exposed.iter().any(|f| f == field);
    let (percentage, used, total) = (
        show("percentage"),
        show("used_bytes"),
        show("capacity_bytes"),
    );
    let mut usage = Map::new();
    if !(percentage || used || total) {
        return Ok(usage);
    }
    let key = format!("volume.usage.{}.{}", volume.proxy, volume.info.name);
    let mut redis = state.redis.stat.clone();
    match redis.get::<_, Option<Vec<u8>>>(&key).await {
        Ok(Some(bytes)) => {
            if let Ok(cached) = rmp_serde::from_slice::<Map<String, Value>>(&bytes) {
                return Ok(cached);
            }
        }
        Ok(None) => {}
        Err(e) => {
            slog::warn!(state.log, "cannot read the volume usage cache"; "key" => &key, "error" => %e)
        }
    }
    let (proxy, _) = view.resolve(&volume.host())?;
    let figures = proxy.fs_usage(&volume.info.name).await?;
    if used {
        usage.insert("used".into(), json!(figures.used_bytes));
    }
    if total {
        usage.insert("total".into(), json!(figures.capacity_bytes));
    }
    if percentage {
        let ratio = if figures.capacity_bytes > 0 {
            figures.used_bytes as f64 / figures.capacity_bytes as f64 * 100.0
        } else {
            0.0
        };
        usage.insert("percentage".into(), json!(ratio));
    }
    if let Ok(bytes) = rmp_serde::to_vec_named(&usage) {
        let stored: Result<(), _> = redis.set_ex(&key, bytes, VOLUME_USAGE_CACHE_SECONDS).await;
        if let Err(e) = stored {
            slog::warn!(state.log, "cannot cache the volume usage"; "key" => &key, "error" => %e);
        }
    }
    Ok(usage)
}

/// `GET /folders/_/all-hosts` (superadmin).
async fn list_all_hosts(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    slog::info!(state.log, "VFOLDER.LIST_ALL_HOSTS"; "email" => &caller.user.email, "ak" => &caller.access_key);
    let volumes = view.all_volumes().await?;
    let mut hosts: Vec<String> = volumes.iter().map(|v| v.host()).collect();
    hosts.sort();
    let default = view
        .config
        .default_host
        .clone()
        .filter(|host| hosts.contains(host));
    Ok(reply::json(&json!({"default": default, "allowed": hosts})))
}

/// `GET /folders/_/allowed-types`.
async fn list_allowed_types(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    slog::info!(state.log, "VFOLDER.LIST_ALLOWED_TYPES"; "email" => &caller.user.email, "ak" => &caller.access_key);
    Ok(reply::json(&view.config.vfolder_types))
}

/// `GET /folders/_/perf-metric` (superadmin): the proxy's figures for a volume.
async fn volume_perf_metric(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    let host = params.string(&["folder_host"])?;
    slog::info!(state.log, "VFOLDER.VOLUME_PERF_METRIC"; "email" => &caller.user.email, "ak" => &caller.access_key);
    let (proxy, volume) = view.resolve(&host)?;
    let metric = proxy.performance_metric(&volume).await?;
    Ok(reply::json(&metric))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_references_are_uuids_or_names() {
        let params =
            ApiParams::from_parts(br#"{"group": "2de2b969-1d04-48a6-af16-0bc8adb3c831"}"#, "")
                .unwrap();
        assert!(matches!(
            group_param(&params, &["group"]).unwrap(),
            Some(GroupRef::Id(_))
        ));
        let params = ApiParams::from_parts(br#"{"groupId": "default"}"#, "").unwrap();
        assert_eq!(
            group_param(&params, &["group", "groupId"]).unwrap(),
            Some(GroupRef::Name("default".into()))
        );
    }

    #[test]
    fn creation_parameters_are_checked_like_trafaret() {
        let params = ApiParams::from_parts(
            br#"{"name": "bad name", "permission": "xx", "quota": "10g", "cloneable": "yes"}"#,
            "",
        )
        .unwrap();
        assert_eq!(
            slug_param(&params, "name").unwrap_err().body()["data"]["name"],
            "value must be a valid slug."
        );
        assert!(enum_param(&params, "permission", VFolderPermission::ReadWrite).is_err());
        assert_eq!(
            enum_param(&params, "usage_mode", VFolderUsageMode::General).unwrap(),
            VFolderUsageMode::General
        );
        assert_eq!(quota_param(&params).unwrap(), Some(10 << 30));
        assert!(strict_bool(&params, "cloneable", false).is_err());
        // Reserved names pass the slug check; the handler refuses them with its own message.
        let params = ApiParams::from_parts(br#"{"name": ".bashrc"}"#, "").unwrap();
        assert_eq!(slug_param(&params, "name").unwrap(), ".bashrc");
    }
}
