//! Self-service routes behind the Web UI's dialogs: `GET /acl` (the permission names the
//! resource-policy dialogs offer), the caller's SSH keypair (`GET|PATCH|POST
//! /auth/ssh-keypair`), `POST /auth/update-password`, `POST /auth/update-full-name` and
//! `POST /auth/signout`, as the original's `acl.py` and `auth.py`.

use actix_web::{HttpResponse, web};
use bai_schema::queries::keypair::find_login_user;
use bai_schema::queries::user_self as queries;
use serde_json::json;

use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::ssh_keypair;
use crate::facade::state::AppState;
use crate::storage::permissions::HostPermission;

/// The bcrypt cost of passwords set here: the original's 12.
pub const PASSWORD_BCRYPT_COST: u32 = bai_schema::fixture::DEFAULT_BCRYPT_COST;

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/acl",
        web::get()
            .to(get_permission)
            .wrap(Access::user().all_allowed()),
    );
    cfg.service(
        web::resource("/auth/ssh-keypair")
            .route(web::get().to(get_ssh_keypair).wrap(Access::user()))
            .route(web::patch().to(generate_ssh_keypair).wrap(Access::user()))
            .route(web::post().to(upload_ssh_keypair).wrap(Access::user())),
    );
    cfg.route(
        "/auth/update-password",
        web::post().to(update_password).wrap(Access::user()),
    );
    cfg.route(
        "/auth/update-full-name",
        web::post().to(update_full_name).wrap(Access::user()),
    );
    cfg.route(
        "/auth/signout",
        web::post().to(signout).wrap(Access::user()),
    );
}

/// `GET /acl`: `{"vfolder_host_permission_list": [...]}`.
async fn get_permission(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    slog::info!(state.log, "GET_PERMISSION"; "ak" => &caller.access_key);
    let names: Vec<&str> = HostPermission::ALL.iter().map(|p| p.as_str()).collect();
    Ok(reply::json(&json!({"vfolder_host_permission_list": names})))
}

/// `GET /auth/ssh-keypair`: the public key only.
async fn get_ssh_keypair(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    slog::info!(state.log, "AUTH.GET_SSH_KEYPAIR";
        "d" => caller.domain_name(), "ak" => &caller.access_key);
    let client = db_client(&state).await?;
    let public_key = queries::ssh_public_key(&client, &caller.access_key)
        .await
        .map_err(query_failed(&state, "reading the SSH public key"))?;
    Ok(reply::json(&json!({"ssh_public_key": public_key})))
}

/// `PATCH /auth/ssh-keypair`: a fresh keypair, stored and returned to its owner.
async fn generate_ssh_keypair(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    slog::info!(state.log, "AUTH.REFRESH_SSH_KEYPAIR";
        "d" => caller.domain_name(), "ak" => &caller.access_key);
    let pair = web::block(ssh_keypair::generate)
        .await
        .map_err(|_| Problem::internal("the SSH key generation did not finish"))?
        .map_err(|e| Problem::internal(e.to_string()))?;
    let client = db_client(&state).await?;
    queries::set_ssh_keypair(
        &client,
        &caller.access_key,
        &pair.public_key,
        &pair.private_key,
    )
    .await
    .map_err(query_failed(&state, "storing the SSH keypair"))?;
    Ok(reply::json(&json!({
        "ssh_public_key": pair.public_key,
        "ssh_private_key": pair.private_key,
    })))
}

/// The most characters an uploaded key may have: an RSA-16384 private key PEM is about
/// 12.5 KB, so 64 KiB leaves room for any real key and nothing more.
pub const MAX_SSH_KEY_CHARS: usize = 64 * 1024;

/// `POST /auth/ssh-keypair {pubkey, privkey}`: stores the caller's own keypair.
async fn upload_ssh_keypair(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let public_key = format!("{}\n", params.string(&["pubkey"])?.trim_end());
    let private_key = format!("{}\n", params.string(&["privkey"])?.trim_end());
    if public_key.len() > MAX_SSH_KEY_CHARS || private_key.len() > MAX_SSH_KEY_CHARS {
        return Err(Problem::invalid_params(format!(
            "an SSH key must be at most {MAX_SSH_KEY_CHARS} characters"
        )));
    }
    slog::info!(state.log, "AUTH.SAVE_SSH_KEYPAIR";
        "d" => caller.domain_name(), "ak" => &caller.access_key);
    let client = db_client(&state).await?;
    queries::set_ssh_keypair(&client, &caller.access_key, &public_key, &private_key)
        .await
        .map_err(query_failed(&state, "storing the SSH keypair"))?;
    Ok(reply::json(&json!({
        "ssh_public_key": public_key,
        "ssh_private_key": private_key,
    })))
}

/// Whether `password` is the current password of the caller (`None` when the user is gone).
async fn password_matches(
    state: &AppState,
    caller: &Authenticated,
    email: &str,
    password: String,
) -> Result<Option<uuid::Uuid>, Problem> {
    let client = db_client(state).await?;
    let Some(user) = find_login_user(&client, caller.domain_name(), email)
        .await
        .map_err(query_failed(state, "looking up the user"))?
    else {
        return Ok(None);
    };
    let Some(hash) = user.password_hash.clone() else {
        return Ok(None);
    };
    let matches = web::block(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .map_err(|_| Problem::internal("the password check did not finish"))?;
    Ok(matches.then_some(user.uuid))
}

/// `POST /auth/update-password {old_password, new_password, new_password2}`.
async fn update_password(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let old_password = params.string(&["old_password"])?;
    let new_password = params.string(&["new_password"])?;
    let new_password2 = params.string(&["new_password2"])?;
    let email = caller.user.email.clone();
    slog::info!(state.log, "AUTH.UPDATE_PASSWORD"; "d" => caller.domain_name(), "email" => &email);
    let Some(user) = password_matches(&state, &caller, &email, old_password).await? else {
        slog::info!(state.log, "AUTH.UPDATE_PASSWORD: old password mismatch"; "email" => &email);
        return Err(
            Problem::new(ProblemKind::AuthorizationFailed).with_msg("Old password mismatch")
        );
    };
    if new_password != new_password2 {
        return Ok(reply::json_with_status(
            actix_web::http::StatusCode::BAD_REQUEST,
            &json!({"error_msg": "new password mismatch"}),
        ));
    }
    let hash = web::block(move || bcrypt::hash(new_password, PASSWORD_BCRYPT_COST))
        .await
        .map_err(|_| Problem::internal("the password hashing did not finish"))?
        .map_err(|e| Problem::internal(format!("cannot hash the password: {e}")))?;
    let client = db_client(&state).await?;
    queries::update_password(&client, user, &hash)
        .await
        .map_err(query_failed(&state, "changing the password"))?;
    Ok(reply::json(&json!({})))
}

/// The longest full name the `users.full_name` column holds.
const MAX_FULL_NAME_CHARS: usize = 64;

/// `POST /auth/update-full-name {email, full_name}`: the caller's own full name.
async fn update_full_name(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let _ = params.string(&["email"])?;
    let full_name = params.string(&["full_name"])?;
    if full_name.chars().count() > MAX_FULL_NAME_CHARS {
        return Err(Problem::invalid_params(format!(
            "full_name must be at most {MAX_FULL_NAME_CHARS} characters"
        )));
    }
    slog::info!(state.log, "AUTH.UPDATE_FULL_NAME";
        "d" => caller.domain_name(), "email" => &caller.user.email);
    let client = db_client(&state).await?;
    let found = queries::update_full_name(
        &client,
        caller.domain_name(),
        &caller.user.email,
        &full_name,
    )
    .await
    .map_err(query_failed(&state, "changing the full name"))?;
    if !found {
        return Ok(reply::json_with_status(
            actix_web::http::StatusCode::BAD_REQUEST,
            &json!({"error_msg": "Unknown user"}),
        ));
    }
    Ok(reply::json(&json!({})))
}

/// `POST /auth/signout {email, password}`: deactivates the caller's own account.
async fn signout(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let email = params.string(&["email", "username"])?;
    let password = params.string(&["password"])?;
    slog::info!(state.log, "AUTH.SIGNOUT"; "d" => caller.domain_name(), "email" => &email);
    if caller.user.email != email {
        return Err(Problem::new(ProblemKind::GenericForbidden).with_msg("Not the account owner"));
    }
    if password_matches(&state, &caller, &email, password)
        .await?
        .is_none()
    {
        return Err(
            Problem::new(ProblemKind::GenericBadRequest).with_msg("Invalid email and/or password")
        );
    }
    let mut client = db_client(&state).await?;
    let transaction = client
        .transaction()
        .await
        .map_err(query_failed(&state, "starting a transaction"))?;
    queries::deactivate_user(&transaction, &email)
        .await
        .map_err(query_failed(&state, "deactivating the user"))?;
    transaction
        .commit()
        .await
        .map_err(query_failed(&state, "committing the sign-out"))?;
    Ok(reply::json(&json!({})))
}
