//! `/folders` sharing routes: invitations (`invite`, `invitations/list`, `list-sent`,
//! `accept`, `delete`, `update/{inv_id}`), leaving a shared folder, direct shares of project
//! folders (`share`, `unshare`), the grants list (`GET|POST /folders/_/shared`) and the
//! owner's folder options (`update-options`), as the original 22.09 answers them.
//!
//! Stricter than the original where it leaks or lets a caller change others' data: only the
//! invitee may accept an invitation, `/_/shared` lists the grants of the caller's own and
//! shared folders (all of them for superadmins), `POST /_/shared` needs the folder's owner
//! (or a superadmin), and `share`/`unshare` find project folders in the caller's domain.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::enums::{
    UserRole, VFolderInvitationState, VFolderOwnershipType, VFolderPermission,
};
use bai_schema::queries::vfolder::status;
use bai_schema::queries::vfolder_sharing::{
    self as sharing, Invitation, InvitationSide, SharedGrant,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::vfolder_access::{Needs, db_failed, folder_for, storage_view};
use super::vfolder_reply::python_datetime;
use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::db_client;
use crate::facade::state::AppState;

/// The most emails one invite/share/unshare names: the Web UI sends a handful; the bound keeps
/// one request from turning into an unbounded number of statements.
pub const MAX_EMAILS_PER_REQUEST: usize = 1000;

pub fn register(cfg: &mut web::ServiceConfig) {
    let read = || Access::user().read_allowed();
    let write = || Access::user().all_allowed();
    for path in [
        "/folders/invitations/list-sent",
        "/folders/invitations/list_sent",
    ] {
        cfg.route(path, web::get().to(list_sent_invitations).wrap(read()));
    }
    cfg.route(
        "/folders/invitations/update/{inv_id}",
        web::post().to(update_invitation).wrap(write()),
    );
    cfg.route(
        "/folders/invitations/list",
        web::get().to(list_invitations).wrap(read()),
    );
    cfg.route(
        "/folders/invitations/accept",
        web::post().to(accept_invitation).wrap(write()),
    );
    cfg.route(
        "/folders/invitations/delete",
        web::delete().to(delete_invitation).wrap(write()),
    );
    cfg.route("/folders/_/shared", web::get().to(list_shared).wrap(read()));
    cfg.route(
        "/folders/_/shared",
        web::post().to(update_shared).wrap(write()),
    );
    cfg.route(
        "/folders/{name}/invite",
        web::post().to(invite).wrap(write()),
    );
    cfg.route("/folders/{name}/leave", web::post().to(leave).wrap(write()));
    cfg.route(
        "/folders/{name}/share",
        web::post().to(share).wrap(Access::admin().all_allowed()),
    );
    cfg.route(
        "/folders/{name}/unshare",
        web::delete()
            .to(unshare)
            .wrap(Access::admin().all_allowed()),
    );
    cfg.route(
        "/folders/{name}/update-options",
        web::post().to(update_options).wrap(write()),
    );
}

fn path_name(request: &HttpRequest) -> String {
    request.match_info().get("name").unwrap_or("").to_owned()
}

/// A `VFolderPermissionValidator` value (`ro`, `rw`, `wd`; `null`/absent gives `default`).
fn permission_param(
    params: &ApiParams,
    keys: &[&str],
    default: Option<VFolderPermission>,
) -> Result<Option<VFolderPermission>, Problem> {
    match params.raw(keys) {
        None | Some((_, Value::Null)) => Ok(default),
        Some((key, Value::String(text))) => text
            .parse()
            .map(Some)
            .map_err(|_| invalid_param(key, format!("value {text:?} is not a valid choice"))),
        Some((key, _)) => Err(invalid_param(key, "value is not a string")),
    }
}

/// A required list of strings (`t.List(t.String)`), bounded.
fn string_list(params: &ApiParams, keys: &[&str]) -> Result<Vec<String>, Problem> {
    let key = keys[0];
    let list = params
        .opt_list(keys)?
        .ok_or_else(|| invalid_param(key, "is required"))?;
    if list.len() > MAX_EMAILS_PER_REQUEST {
        return Err(invalid_param(
            key,
            format!("at most {MAX_EMAILS_PER_REQUEST} items are accepted"),
        ));
    }
    list.iter()
        .map(|item| {
            item.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid_param(key, "value is not a string"))
        })
        .collect()
}

fn uuid_param(params: &ApiParams, keys: &[&str]) -> Result<Uuid, Problem> {
    let text = params.string(keys)?;
    Uuid::parse_str(&text).map_err(|_| invalid_param(keys[0], "value is not a valid UUID"))
}

fn invitation_not_found() -> Problem {
    Problem::not_found("vfolder invitation")
}

/// One invitation as the original's list routes render it.
fn invitation_json(invitation: &Invitation) -> Value {
    let python_or_none = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(|| "None".to_owned(), python_datetime)
    };
    json!({
        "id": invitation.id.to_string(),
        "inviter": invitation.inviter,
        "invitee": invitation.invitee,
        "perm": invitation.permission.map(|p| p.as_str()),
        "state": invitation.state.map(|s| s.as_str()),
        "created_at": python_or_none(invitation.created_at),
        "modified_at": python_or_none(invitation.modified_at),
        "vfolder_id": invitation.vfolder_id.to_string(),
        "vfolder_name": invitation.vfolder_name,
    })
}

async fn list_of(
    state: &AppState,
    email: &str,
    side: InvitationSide,
) -> Result<HttpResponse, Problem> {
    let client = db_client(state).await?;
    let invitations = sharing::pending_invitations(&client, email, side)
        .await
        .map_err(db_failed(state, "listing vfolder invitations"))?;
    let items: Vec<Value> = invitations.iter().map(invitation_json).collect();
    Ok(reply::json(&json!({"invitations": items})))
}

/// `GET /folders/invitations/list`: the pending invitations the caller received.
async fn list_invitations(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    slog::info!(state.log, "VFOLDER.INVITATIONS";
        "email" => &caller.user.email, "ak" => &caller.access_key);
    list_of(&state, &caller.user.email, InvitationSide::Invitee).await
}

/// `GET /folders/invitations/list-sent`: the pending invitations the caller sent.
async fn list_sent_invitations(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    slog::info!(state.log, "VFOLDER.LIST_SENT_INVITATIONS";
        "email" => &caller.user.email, "ak" => &caller.access_key);
    list_of(&state, &caller.user.email, InvitationSide::Inviter).await
}

/// `POST /folders/invitations/update/{inv_id} {perm}`: the permission of a pending
/// invitation the caller sent.
async fn update_invitation(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let raw_id = request.match_info().get("inv_id").unwrap_or("").to_owned();
    let permission = permission_param(&params, &["perm", "permission"], None)?
        .ok_or_else(|| invalid_param("perm", "is required"))?;
    slog::info!(state.log, "VFOLDER.UPDATE_INVITATION";
        "email" => &caller.user.email, "ak" => &caller.access_key, "inv" => &raw_id);
    let id = Uuid::parse_str(&raw_id).map_err(|_| invitation_not_found())?;
    let client = db_client(&state).await?;
    sharing::update_invitation_permission(&client, id, &caller.user.email, permission)
        .await
        .map_err(db_failed(&state, "changing a vfolder invitation"))?;
    Ok(reply::json(
        &json!({"msg": format!("vfolder invitation updated: {raw_id}.")}),
    ))
}

/// `POST /folders/{name}/invite {perm, emails}`: invites users to a folder the caller owns;
/// 201 with the emails that got a new invitation.
async fn invite(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let name = path_name(&request);
    let permission = permission_param(
        &params,
        &["perm", "permission"],
        Some(VFolderPermission::ReadWrite),
    )?
    .unwrap_or(VFolderPermission::ReadWrite);
    let emails = string_list(&params, &["emails", "user_ids", "userIDs"])?;
    slog::info!(state.log, "VFOLDER.INVITE";
        "email" => &caller.user.email, "ak" => &caller.access_key, "vf" => &name,
        "inv.users" => emails.join(","));
    let view = storage_view(&request)?;
    let mut client = db_client(&state).await?;
    // The original's ensure_vfolder_status(UPDATABLE) over the folders the caller reaches.
    folder_for(
        &client,
        &state,
        &caller,
        &view,
        &name,
        Needs::Read,
        status::UPDATABLE,
    )
    .await?;
    if name.starts_with('.') {
        return Err(Problem::new(ProblemKind::GenericForbidden)
            .with_msg("Cannot share private dot-prefixed vfolders."));
    }
    let transaction = client
        .transaction()
        .await
        .map_err(db_failed(&state, "starting a transaction"))?;
    let folder = sharing::owned_folder_id(&transaction, caller.user_uuid(), &name)
        .await
        .map_err(db_failed(&state, "looking up the folder"))?
        .ok_or_else(|| Problem::not_found("virtual folder"))?;
    let invitees = sharing::invitees(&transaction, &emails, &caller.user.email)
        .await
        .map_err(db_failed(&state, "looking up the invitees"))?;
    if invitees.is_empty() {
        return Err(invitation_not_found());
    }
    let users: Vec<Uuid> = invitees.iter().map(|i| i.user).collect();
    let holders = sharing::count_name_holders(&transaction, &users, &name)
        .await
        .map_err(db_failed(&state, "checking the invitees' folders"))?;
    if holders > 0 {
        return Err(
            Problem::new(ProblemKind::VFolderAlreadyExists).with_data(Value::String(name.clone()))
        );
    }
    let mut invited = Vec::new();
    for invitee in &invitees {
        if invited.contains(&invitee.email) {
            continue;
        }
        let created = sharing::insert_invitation(
            &transaction,
            folder,
            &caller.user.email,
            &invitee.email,
            permission,
        )
        .await
        .map_err(db_failed(&state, "creating an invitation"))?;
        if created {
            invited.push(invitee.email.clone());
        }
    }
    transaction
        .commit()
        .await
        .map_err(db_failed(&state, "committing the invitations"))?;
    Ok(reply::json_with_status(
        StatusCode::CREATED,
        &json!({"invited_ids": invited}),
    ))
}

/// `POST /folders/invitations/accept {inv_id}`: the invitee takes the grant.
async fn accept_invitation(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let raw_id = params.string(&["inv_id"])?;
    slog::info!(state.log, "VFOLDER.ACCEPT_INVITATION";
        "email" => &caller.user.email, "ak" => &caller.access_key, "inv" => &raw_id);
    let id = Uuid::parse_str(&raw_id).map_err(|_| invitation_not_found())?;
    let mut client = db_client(&state).await?;
    let transaction = client
        .transaction()
        .await
        .map_err(db_failed(&state, "starting a transaction"))?;
    let invitation = sharing::lock_pending_invitation(&transaction, id)
        .await
        .map_err(db_failed(&state, "looking up the invitation"))?
        .filter(|invitation| invitation.invitee == caller.user.email)
        .ok_or_else(invitation_not_found)?;
    let holders = sharing::count_name_holders(
        &transaction,
        &[caller.user_uuid()],
        &invitation.vfolder_name,
    )
    .await
    .map_err(db_failed(&state, "checking the caller's folders"))?;
    if holders > 0 {
        return Err(Problem::new(ProblemKind::VFolderAlreadyExists)
            .with_data(Value::String(invitation.vfolder_name.clone())));
    }
    sharing::upsert_permission(
        &transaction,
        invitation.vfolder_id,
        caller.user_uuid(),
        invitation
            .permission
            .unwrap_or(VFolderPermission::ReadWrite),
    )
    .await
    .map_err(db_failed(&state, "granting the folder"))?;
    sharing::set_invitation_state(&transaction, id, VFolderInvitationState::Accepted)
        .await
        .map_err(db_failed(&state, "closing the invitation"))?;
    transaction
        .commit()
        .await
        .map_err(db_failed(&state, "committing the acceptance"))?;
    Ok(reply::json(&json!({})))
}

/// `DELETE /folders/invitations/delete {inv_id}`: the inviter cancels, the invitee rejects.
async fn delete_invitation(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let raw_id = params.string(&["inv_id"])?;
    slog::info!(state.log, "VFOLDER.DELETE_INVITATION";
        "email" => &caller.user.email, "ak" => &caller.access_key, "inv" => &raw_id);
    let id = Uuid::parse_str(&raw_id).map_err(|_| invitation_not_found())?;
    let mut client = db_client(&state).await?;
    let transaction = client
        .transaction()
        .await
        .map_err(db_failed(&state, "starting a transaction"))?;
    let invitation = sharing::lock_pending_invitation(&transaction, id)
        .await
        .map_err(db_failed(&state, "looking up the invitation"))?
        .ok_or_else(invitation_not_found)?;
    let new_state = if invitation.inviter.as_deref() == Some(caller.user.email.as_str()) {
        VFolderInvitationState::Canceled
    } else if invitation.invitee == caller.user.email {
        VFolderInvitationState::Rejected
    } else {
        return Err(Problem::new(ProblemKind::GenericForbidden)
            .with_msg("Cannot change other user's invitaiton"));
    };
    sharing::set_invitation_state(&transaction, id, new_state)
        .await
        .map_err(db_failed(&state, "closing the invitation"))?;
    transaction
        .commit()
        .await
        .map_err(db_failed(&state, "committing the invitation change"))?;
    Ok(reply::json(&json!({})))
}

/// `POST /folders/{name}/leave {shared_user_uuid?}`: drops the caller's grant (a superadmin
/// may drop anyone's).
async fn leave(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let name = path_name(&request);
    let shared_user = params
        .opt_string(&["shared_user_uuid", "sharedUserUuid"])?
        .map(|text| {
            Uuid::parse_str(&text)
                .map_err(|_| invalid_param("shared_user_uuid", "value is not a valid UUID"))
        })
        .transpose()?;
    let view = storage_view(&request)?;
    let client = db_client(&state).await?;
    let folder = folder_for(
        &client,
        &state,
        &caller,
        &view,
        &name,
        Needs::Read,
        status::UPDATABLE,
    )
    .await?;
    if folder.ownership_type == VFolderOwnershipType::Group {
        return Err(Problem::invalid_params("Cannot leave a group vfolder."));
    }
    let user = match shared_user {
        Some(user) => {
            if user != caller.user_uuid() && caller.role() != UserRole::Superadmin {
                return Err(Problem::new(ProblemKind::InsufficientPrivilege)
                    .with_msg("Insufficient permission."));
            }
            user
        }
        None => {
            if folder.is_owner {
                return Err(Problem::invalid_params(
                    "Cannot leave a vfolder owned by the requesting user.",
                ));
            }
            caller.user_uuid()
        }
    };
    slog::info!(state.log, "VFOLDER.LEAVE";
        "email" => &caller.user.email, "ak" => &caller.access_key, "vfid" => %folder.id,
        "uid" => %user, "perm" => folder.permission.map(|p| p.as_str()).unwrap_or(""));
    sharing::delete_permissions(&client, folder.id, &[user])
        .await
        .map_err(db_failed(&state, "removing the grant"))?;
    Ok(reply::json(&json!({"msg": "left the shared vfolder"})))
}

/// The one project folder named `name` a share or unshare acts on.
async fn project_folder(
    client: &deadpool_postgres::Object,
    state: &AppState,
    caller: &Authenticated,
    name: &str,
    verb: &str,
) -> Result<sharing::ProjectFolder, Problem> {
    let domain = (caller.role() != UserRole::Superadmin).then(|| caller.domain_name());
    let mut folders = sharing::project_folders_named(client, name, domain)
        .await
        .map_err(db_failed(state, "looking up the project folder"))?;
    match folders.len() {
        0 => Err(Problem::not_found("virtual folder")
            .with_msg(format!("Only project folders are directly {verb}."))),
        1 => Ok(folders.remove(0)),
        _ => Err(Problem::internal(format!(
            "Multiple project folders found: {name}"
        ))),
    }
}

/// `POST /folders/{name}/share {permission, emails}`: grants a project folder to members of
/// its project directly (201 with the emails shared to).
async fn share(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let name = path_name(&request);
    let permission =
        permission_param(&params, &["permission"], Some(VFolderPermission::ReadWrite))?
            .unwrap_or(VFolderPermission::ReadWrite);
    let emails = string_list(&params, &["emails"])?;
    slog::info!(state.log, "VFOLDER.SHARE";
        "email" => &caller.user.email, "ak" => &caller.access_key, "vf" => &name,
        "perm" => permission.as_str(), "users" => emails.join(","));
    let mut client = db_client(&state).await?;
    let folder = project_folder(&client, &state, &caller, &name, "sharable").await?;
    let members =
        sharing::group_members_by_email(&client, folder.group, &emails, &caller.user.email)
            .await
            .map_err(db_failed(&state, "looking up the project's members"))?;
    if members.is_empty() {
        return Err(Problem::not_found("user"));
    }
    if members.len() < emails.len() {
        let missing: Vec<&str> = emails
            .iter()
            .filter(|email| !members.iter().any(|m| &m.email == *email))
            .map(String::as_str)
            .collect();
        return Err(Problem::not_found("user").with_msg(format!(
            "Some user does not belong to folder's group: {}",
            missing.join(",")
        )));
    }
    let transaction = client
        .transaction()
        .await
        .map_err(db_failed(&state, "starting a transaction"))?;
    for member in &members {
        sharing::upsert_permission(&transaction, folder.id, member.uuid, permission)
            .await
            .map_err(db_failed(&state, "granting the folder"))?;
    }
    transaction
        .commit()
        .await
        .map_err(db_failed(&state, "committing the shares"))?;
    let shared: Vec<&str> = members.iter().map(|m| m.email.as_str()).collect();
    Ok(reply::json_with_status(
        StatusCode::CREATED,
        &json!({"shared_emails": shared}),
    ))
}

/// `DELETE /folders/{name}/unshare {emails}`: removes direct grants of a project folder.
async fn unshare(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let name = path_name(&request);
    let emails = string_list(&params, &["emails"])?;
    slog::info!(state.log, "VFOLDER.UNSHARE";
        "email" => &caller.user.email, "ak" => &caller.access_key, "vf" => &name,
        "users" => emails.join(","));
    let client = db_client(&state).await?;
    let folder = project_folder(&client, &state, &caller, &name, "unsharable").await?;
    let users = sharing::users_by_email(&client, &emails)
        .await
        .map_err(db_failed(&state, "looking up users"))?;
    if users.is_empty() {
        return Err(Problem::not_found("user(s)."));
    }
    let ids: Vec<Uuid> = users.iter().map(|u| u.uuid).collect();
    sharing::delete_permissions(&client, folder.id, &ids)
        .await
        .map_err(db_failed(&state, "removing the grants"))?;
    Ok(reply::json(&json!({"unshared_emails": emails})))
}

fn grant_json(grant: &SharedGrant) -> Value {
    let (owner, folder_type) = match grant.owner_group {
        Some(group) => (group.to_string(), "project"),
        None => (
            grant
                .owner_user
                .map_or_else(|| "None".to_owned(), |u| u.to_string()),
            "user",
        ),
    };
    json!({
        "vfolder_id": grant.vfolder_id.to_string(),
        "vfolder_name": grant.vfolder_name,
        "status": grant.status,
        "owner": owner,
        "type": folder_type,
        "shared_to": {"uuid": grant.shared_to.to_string(), "email": grant.shared_to_email},
        "perm": grant.permission.map(|p| p.as_str()),
    })
}

/// `GET /folders/_/shared {vfolder_id?}`: the per-user grants of folders.
async fn list_shared(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let folder = params
        .opt_string(&["vfolder_id", "vfolderId"])?
        .map(|text| {
            Uuid::parse_str(&text)
                .map_err(|_| invalid_param("vfolder_id", "value is not a valid UUID"))
        })
        .transpose()?;
    slog::info!(state.log, "VFOLDER.LIST_SHARED_VFOLDERS";
        "email" => &caller.user.email, "ak" => &caller.access_key);
    let visible_to = (caller.role() != UserRole::Superadmin).then(|| caller.user_uuid());
    let client = db_client(&state).await?;
    let grants = sharing::shared_grants(&client, visible_to, folder)
        .await
        .map_err(db_failed(&state, "listing shared folders"))?;
    let shared: Vec<Value> = grants.iter().map(grant_json).collect();
    Ok(reply::json(&json!({"shared": shared})))
}

/// `POST /folders/_/shared {vfolder, user, perm}`: changes (or with `perm: null` removes) a
/// user's grant on a folder the caller owns.
async fn update_shared(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let folder = uuid_param(&params, &["vfolder"])?;
    let user = uuid_param(&params, &["user"])?;
    let permission = permission_param(&params, &["perm", "permission"], None)?;
    slog::info!(state.log, "VFOLDER.UPDATE_SHARED_VFOLDER";
        "email" => &caller.user.email, "ak" => &caller.access_key, "vfid" => %folder,
        "uid" => %user, "perm" => permission.map(|p| p.as_str()).unwrap_or("None"));
    let client = db_client(&state).await?;
    let owner = sharing::folder_owner(&client, folder)
        .await
        .map_err(db_failed(&state, "looking up the folder"))?
        .ok_or_else(|| Problem::not_found("virtual folder"))?;
    if owner != Some(caller.user_uuid()) && caller.role() != UserRole::Superadmin {
        return Err(Problem::new(ProblemKind::GenericForbidden)
            .with_msg("Only the folder's owner may change its grants."));
    }
    match permission {
        Some(permission) => {
            sharing::upsert_permission(&client, folder, user, permission)
                .await
                .map_err(db_failed(&state, "changing the grant"))?;
        }
        None => {
            sharing::delete_permissions(&client, folder, &[user])
                .await
                .map_err(db_failed(&state, "removing the grant"))?;
        }
    }
    Ok(reply::json(
        &json!({"msg": "shared vfolder permission updated"}),
    ))
}

/// `POST /folders/{name}/update-options {cloneable?, permission?}`: 201, owner only.
async fn update_options(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let name = path_name(&request);
    let cloneable = match params.raw(&["cloneable"]) {
        None | Some((_, Value::Null)) => None,
        Some((_, Value::Bool(value))) => Some(*value),
        Some(_) => return Err(invalid_param("cloneable", "value should be True or False")),
    };
    let permission = permission_param(&params, &["permission"], None)?;
    let view = storage_view(&request)?;
    let client = db_client(&state).await?;
    let folder = folder_for(
        &client,
        &state,
        &caller,
        &view,
        &name,
        Needs::Owner,
        status::UPDATABLE,
    )
    .await?;
    if !folder.is_owner {
        return Err(Problem::invalid_params(
            "Cannot change the options of a vfolder that is not owned by myself.",
        ));
    }
    let cloneable = cloneable.filter(|c| *c != folder.cloneable);
    let permission = permission.filter(|p| Some(*p) != folder.permission);
    if cloneable.is_some() || permission.is_some() {
        sharing::update_folder_options(&client, folder.id, cloneable, permission)
            .await
            .map_err(db_failed(&state, "changing the folder's options"))?;
    }
    Ok(HttpResponse::Created().finish())
}
