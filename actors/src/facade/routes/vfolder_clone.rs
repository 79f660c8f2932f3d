//! `POST /folders/{name}/clone`: a copy of a cloneable folder the caller can read, as a new
//! user folder of the caller's, made by the storage proxy's `folder/clone`.
//!
//! As the original, the checks (cloneable source, target host allowed, folder count, name
//! free, one proxy for both) come first, the new row is stored and the source is `cloning`
//! while the proxy copies. Unlike the original, the copy runs within the request (there are no
//! background tasks here): the reply (201) comes when the copy is done, carries no
//! `bgtask_id` (so the official CLI reports completion at once), and a failed copy removes the
//! new row again and answers the proxy's error. The destination's quota scope is the caller's
//! own (the original put it in the source's), created on the proxy when missing.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::enums::{VFolderOwnershipType, VFolderPermission, VFolderUsageMode};
use bai_schema::queries::vfolder::{self as queries, NewVFolder, status};
use serde_json::{Value, json};
use uuid::Uuid;

use super::vfolder::{enum_param, path_name, proxy_failed, slug_param, strict_bool};
use super::vfolder_access::{
    Needs, db_failed, ensure_host_permission, ensure_new_folder_allowed, folder_for, storage_view,
    vfid,
};
use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::db_client;
use crate::facade::state::AppState;
use crate::storage::permissions::{HostPermission, NameError, check_folder_name};
use crate::storage::{QuotaScopeId, VFolderId};

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/folders/{name}/clone",
        web::post().to(clone).wrap(Access::user().all_allowed()),
    );
}

/// What the caller asked for.
struct CloneRequest {
    target_name: String,
    target_host: Option<String>,
    usage_mode: VFolderUsageMode,
    permission: VFolderPermission,
    cloneable: bool,
}

impl CloneRequest {
    fn parse(params: &ApiParams) -> Result<CloneRequest, Problem> {
        Ok(CloneRequest {
            target_name: slug_param(params, "target_name")?,
            target_host: params
                .opt_string(&["target_host"])?
                .filter(|h| !h.is_empty()),
            usage_mode: enum_param(params, "usage_mode", VFolderUsageMode::General)?,
            permission: enum_param(params, "permission", VFolderPermission::ReadWrite)?,
            cloneable: strict_bool(params, "cloneable", false)?,
        })
    }
}

async fn clone(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let view = storage_view(&request)?;
    let name = path_name(&request);
    let wanted = CloneRequest::parse(&params)?;
    slog::info!(state.log, "VFOLDER.CLONE";
        "email" => &caller.user.email, "ak" => &caller.access_key, "vf" => &name,
        "vft" => &wanted.target_name, "vfh" => wanted.target_host.as_deref().unwrap_or(""),
        "umod" => wanted.usage_mode.as_str(), "perm" => wanted.permission.as_str());

    let mut client = db_client(&state).await?;
    let source = folder_for(
        &client,
        &state,
        &caller,
        &view,
        &name,
        Needs::Read,
        status::UPDATABLE,
    )
    .await?;
    if !source.cloneable {
        return Err(Problem::new(ProblemKind::GenericForbidden)
            .with_msg("The source vfolder is not permitted to be cloned."));
    }
    let target_host = match wanted.target_host.clone() {
        Some(host) => host,
        None => view.config.default_host.clone().ok_or_else(|| {
            Problem::invalid_params(
                "You must specify the vfolder host because the default host is not configured.",
            )
        })?,
    };
    let target_name = wanted.target_name.clone();
    if let Err(NameError::Reserved(_)) = check_folder_name(&target_name) {
        return Err(Problem::invalid_params(format!(
            "{target_name} is reserved for internal operations."
        )));
    }
    let (source_proxy, source_volume) = view.resolve(&source.host)?;
    let (target_proxy, target_volume) = view.resolve(&target_host)?;
    if source_proxy.name() != target_proxy.name() {
        return Err(Problem::invalid_params(
            "proxy name of source and target vfolders must be equal.",
        ));
    }
    if !view.config.allows_type("user") {
        return Err(Problem::invalid_params(
            "user vfolder cannot be created in this host",
        ));
    }
    let source_vfid = vfid(&source)?;

    let transaction = client
        .transaction()
        .await
        .map_err(db_failed(&state, "starting a transaction"))?;
    // Concurrent creates and clones of one owner queue here, so the count and name checks hold.
    queries::lock_owner(&transaction, caller.user_uuid())
        .await
        .map_err(db_failed(&state, "locking the folder owner"))?;
    ensure_host_permission(
        &transaction,
        &state,
        &caller,
        &view,
        &target_host,
        None,
        HostPermission::Create,
    )
    .await?;
    ensure_new_folder_allowed(&transaction, &state, &caller, &view, &target_name, true).await?;
    let quota_scope = QuotaScopeId::user(caller.user_uuid());
    let folder_id = Uuid::new_v4();
    let target_vfid = VFolderId::new(quota_scope, folder_id);
    let new_folder = NewVFolder {
        id: folder_id,
        name: target_name.clone(),
        host: target_host.clone(),
        domain_name: caller.domain_name().to_owned(),
        quota_scope_id: quota_scope.to_string(),
        usage_mode: wanted.usage_mode,
        permission: wanted.permission,
        max_size: None,
        creator: caller.user.email.clone(),
        ownership_type: VFolderOwnershipType::User,
        user: Some(caller.user_uuid()),
        group: None,
        cloneable: wanted.cloneable,
    };
    queries::insert_vfolder(&transaction, &new_folder)
        .await
        .map_err(db_failed(&state, "storing the cloned folder"))?;
    let marked =
        queries::change_status(&transaction, source.id, status::UPDATABLE, status::CLONING)
            .await
            .map_err(db_failed(&state, "marking the source folder as cloning"))?;
    if !marked {
        return Err(Problem::new(ProblemKind::VFolderFilterStatusFailed));
    }
    transaction
        .commit()
        .await
        .map_err(db_failed(&state, "committing the clone"))?;

    let copied = match target_proxy
        .ensure_quota_scope(&target_volume, &quota_scope.to_string())
        .await
    {
        Ok(()) => {
            source_proxy
                .clone_folder(&source_volume, &source_vfid, &target_volume, &target_vfid)
                .await
        }
        Err(e) => Err(e),
    };
    // The source is readable and changeable again whatever the copy did.
    let client = db_client(&state).await?;
    if let Err(e) =
        queries::change_status(&client, source.id, &[status::CLONING], status::READY).await
    {
        slog::error!(state.log, "a cloned folder's source stays 'cloning'";
            "vfolder" => %source.id, "error" => %e);
    }
    if let Err(error) = copied {
        if let Err(e) = queries::delete_vfolder_row(&client, folder_id).await {
            slog::error!(state.log, "the row of a failed clone is left behind";
                "vfolder" => %folder_id, "error" => %e);
        }
        return Err(proxy_failed(
            &state,
            "cloning a folder",
            &target_host,
            &target_vfid,
            error,
        ));
    }

    let body = json!({
        "id": folder_id.simple().to_string(),
        "name": target_name,
        "host": target_host,
        "usage_mode": wanted.usage_mode.as_str(),
        "permission": wanted.permission.as_str(),
        "creator": caller.user.email,
        "ownership_type": "user",
        "user": caller.user_uuid().to_string(),
        "group": Value::Null,
        "cloneable": wanted.cloneable,
    });
    Ok(reply::json_with_status(StatusCode::CREATED, &body))
}
