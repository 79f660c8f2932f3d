//! `/auth`: the signature test (`GET|POST /auth`, `/auth/test`), the caller's roles
//! (`GET /auth/role`), and the password login that hands out a keypair (`POST /auth/authorize`).

use actix_web::{HttpResponse, web};
use bai_schema::enums::UserStatus;
use bai_schema::queries::group::is_group_member;
use bai_schema::queries::keypair::{find_login_keypair, find_login_user};
use chrono::{TimeDelta, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::state::AppState;

pub fn register(cfg: &mut web::ServiceConfig) {
    for path in ["/auth", "/auth/test"] {
        cfg.service(
            web::resource(path)
                .route(web::get().to(test).wrap(Access::user()))
                .route(web::post().to(test).wrap(Access::user())),
        );
    }
    cfg.service(web::resource("/auth/role").route(web::get().to(get_role).wrap(Access::user())));
    cfg.service(web::resource("/auth/authorize").route(web::post().to(authorize)));
}

/// `GET|POST /auth`: proves the signature works and echoes `echo`.
async fn test(caller: Authenticated, params: ApiParams) -> Result<HttpResponse, Problem> {
    let echo = params.string(&["echo"])?;
    let _ = caller;
    Ok(reply::json(&json!({"authorized": "yes", "echo": echo})))
}

/// `GET /auth/role`: the caller's global, domain and (with `group`) group role.
async fn get_role(
    caller: Authenticated,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let group = params
        .opt_string(&["group"])?
        .map(|text| {
            Uuid::parse_str(&text).map_err(|_| invalid_param("group", "value is not a valid UUID"))
        })
        .transpose()?;
    let group_role = match group {
        None => None,
        Some(group_id) => {
            let client = db_client(&state).await?;
            let member = is_group_member(&client, group_id, caller.user_uuid())
                .await
                .map_err(query_failed(&state, "checking the group membership"))?;
            if !member {
                return Err(Problem::not_found("project (user group)")
                    .with_msg("No such project or you are not the member of it."));
            }
            Some("user")
        }
    };
    Ok(reply::json(&json!({
        "global_role": if caller.is_superadmin { "superadmin" } else { "user" },
        "domain_role": if caller.is_admin { "admin" } else { "user" },
        "group_role": group_role,
    })))
}

/// `POST /auth/authorize`: email and password of a domain's user → the user's keypair
/// (an admin keypair first). This is the one reply that carries a secret key: the caller
/// proved the password.
async fn authorize(params: ApiParams, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let auth_type = params.string(&["type"])?;
    if auth_type != "keypair" && auth_type != "jwt" {
        return Err(invalid_param("type", "value doesn't match any variant"));
    }
    let domain = params.string(&["domain"])?;
    let username = params.string(&["username"])?;
    let password = params.string(&["password"])?;
    if auth_type != "keypair" {
        return Err(Problem::invalid_params("Unsupported authorization type"));
    }
    slog::info!(state.log, "AUTH.AUTHORIZE"; "domain" => &domain, "username" => &username);
    let mismatch =
        || Problem::new(ProblemKind::AuthorizationFailed).with_msg("User credential mismatch.");
    let client = db_client(&state).await?;
    let user = find_login_user(&client, &domain, &username)
        .await
        .map_err(|e| {
            slog::error!(state.log, "login lookup failed"; "error" => %e);
            Problem::internal("cannot look up the user")
        })?
        .ok_or_else(mismatch)?;
    let hash = user.password_hash.clone().ok_or_else(mismatch)?;
    let matches = web::block(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .map_err(|_| Problem::internal("the password check did not finish"))?;
    if !matches {
        return Err(mismatch());
    }
    match user.status {
        UserStatus::BeforeVerification => {
            return Err(Problem::new(ProblemKind::AuthorizationFailed)
                .with_msg("This account needs email verification."));
        }
        UserStatus::Inactive | UserStatus::Deleted => return Err(mismatch()),
        UserStatus::Active => {}
    }
    let keypair = find_login_keypair(&client, user.uuid)
        .await
        .map_err(|e| {
            slog::error!(state.log, "login keypair lookup failed"; "error" => %e);
            Problem::internal("cannot look up the keypair")
        })?
        .ok_or_else(|| {
            Problem::new(ProblemKind::AuthorizationFailed).with_msg("No API keypairs found.")
        })?;
    check_password_age(&state, user.password_changed_at).await?;
    Ok(reply::json(&json!({
        "data": {
            "access_key": keypair.access_key,
            "secret_key": keypair.secret_key,
            "role": user.role.as_str(),
            "status": user.status.as_str(),
        }
    })))
}

/// `config/auth/max_password_age` (e.g. `90d`): an older password must be changed first.
async fn check_password_age(
    state: &AppState,
    changed_at: Option<chrono::DateTime<Utc>>,
) -> Result<(), Problem> {
    let Some(text) = state
        .etcd
        .get("config/auth/max_password_age")
        .await
        .map_err(|e| {
            slog::error!(state.log, "cannot read config/auth/max_password_age"; "error" => %e);
            Problem::internal("cannot read the password policy")
        })?
    else {
        return Ok(());
    };
    let Some(max_age) = parse_duration(&text) else {
        slog::warn!(state.log, "config/auth/max_password_age is not a duration; ignored";
            "value" => &text);
        return Ok(());
    };
    let Some(changed_at) = changed_at else {
        return Ok(());
    };
    let expires = changed_at + max_age;
    if expires < Utc::now() {
        return Err(Problem::new(ProblemKind::PasswordExpired)
            .with_msg(format!("Password expired on {expires}.")));
    }
    Ok(())
}

/// A duration such as `90d`, `12h`, `30m`, `45s`, `2w`, or plain seconds.
pub fn parse_duration(text: &str) -> Option<TimeDelta> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(index) => text.split_at(index),
        None => (text, "s"),
    };
    let number: f64 = number.trim().parse().ok()?;
    let seconds = match unit {
        "w" => number * 7.0 * 86400.0,
        "d" => number * 86400.0,
        "h" => number * 3600.0,
        "m" => number * 60.0,
        "s" => number,
        "ms" => number / 1000.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| TimeDelta::milliseconds((seconds * 1000.0) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_the_originals_time_durations() {
        assert_eq!(parse_duration("90d"), Some(TimeDelta::days(90)));
        assert_eq!(parse_duration("12h"), Some(TimeDelta::hours(12)));
        assert_eq!(parse_duration("1.5m"), Some(TimeDelta::seconds(90)));
        assert_eq!(parse_duration("3600"), Some(TimeDelta::hours(1)));
        assert_eq!(parse_duration("soon"), None);
    }
}
