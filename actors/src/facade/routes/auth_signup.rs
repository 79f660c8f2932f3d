//! `POST /auth/signup` (the original's `auth.signup`): anyone may create an active user of a
//! domain with its first keypair, answered as `201 {access_key, secret_key}`. The original
//! leaves the gate to a `PRE_SIGNUP` hook plugin and, without one, lets anyone in; here the
//! route is closed (403) unless the operator sets etcd `config/api/allow-signup` to `true`,
//! read on each request.
//!
//! When open: `domain`, `email` and `password` are required, `username` (default: the email),
//! `full_name` and `description` optional, all bounded by their columns; the domain must exist
//! and be active; the email must look like one and be unused. The user (active, `status_info`
//! "user-signup", role user, resource policy `default`, no password change needed), its
//! keypair (active, resource policy `default`, rate limit 1000 as the original's) and its
//! membership of the domain's `default` group, when there is one, are written in one
//! transaction. Neither the password nor the secret key is logged.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use bai_schema::queries::keypair_admin::{NewKeypair, insert_keypair};
use bai_schema::queries::signup::{
    SignupConflict, SignupUser, domain_active, insert_signup_user, join_default_group,
};
use bai_schema::queries::user_admin::set_main_access_key;
use serde_json::json;

use crate::compat::keypair::generate_keypair;
use crate::facade::params::ApiParams;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::auth_self::PASSWORD_BCRYPT_COST;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::state::AppState;

/// The etcd key that opens the route.
pub const ALLOW_SIGNUP_KEY: &str = "config/api/allow-signup";

/// The widths of the columns the values go into (`users.email`, `username`, `full_name`
/// varchar(64), `description` varchar(500)); `domains.name` is varchar(64).
pub const MAX_EMAIL_CHARS: usize = 64;
pub const MAX_USERNAME_CHARS: usize = 64;
pub const MAX_FULL_NAME_CHARS: usize = 64;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
pub const MAX_DOMAIN_CHARS: usize = 64;
/// A bound on the request, not a password policy (bcrypt reads the first 72 bytes).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The rate limit of a signed-up user's keypair (the original's signup).
pub const SIGNUP_KEYPAIR_RATE_LIMIT: i32 = 1000;

pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/signup", web::post().to(signup));
}

/// What is wrong with a sign-up request, before the database is asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignupInputError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("email {0:?} is not an email address")]
    NotAnEmail(String),
}

impl From<SignupInputError> for Problem {
    fn from(error: SignupInputError) -> Problem {
        Problem::invalid_params(error.to_string())
    }
}

/// A checked sign-up request (the password still in clear).
#[derive(Clone, PartialEq, Eq)]
pub struct SignupRequest {
    pub domain: String,
    pub email: String,
    pub password: String,
    pub username: String,
    pub full_name: String,
    pub description: String,
}

impl std::fmt::Debug for SignupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignupRequest")
            .field("domain", &self.domain)
            .field("email", &self.email)
            .field("password", &"****")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Whether etcd's value opens the route: `true` (any case, surrounding blanks ignored).
pub fn signup_allowed(raw: Option<&str>) -> bool {
    raw.is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// A plausible email: one `@` between a non-empty local part and a dotted domain, no blanks
/// or control characters.
pub fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn bounded(field: &'static str, value: String, max: usize) -> Result<String, SignupInputError> {
    if value.chars().count() > max {
        return Err(SignupInputError::TooLong { field, max });
    }
    Ok(value)
}

fn required(field: &'static str, value: String, max: usize) -> Result<String, SignupInputError> {
    if value.is_empty() {
        return Err(SignupInputError::Empty { field });
    }
    bounded(field, value, max)
}

impl SignupRequest {
    /// Checks the parameters; a missing required one is the usual missing-parameter problem.
    pub fn from_params(params: &ApiParams) -> Result<SignupRequest, Problem> {
        let domain = required("domain", params.string(&["domain"])?, MAX_DOMAIN_CHARS)?;
        let email = required("email", params.string(&["email"])?, MAX_EMAIL_CHARS)?;
        if !looks_like_email(&email) {
            return Err(SignupInputError::NotAnEmail(email).into());
        }
        let password = required(
            "password",
            params.string(&["password"])?,
            MAX_PASSWORD_CHARS,
        )?;
        let username = match params.opt_string(&["username"])? {
            Some(username) => required("username", username, MAX_USERNAME_CHARS)?,
            None => email.clone(),
        };
        let full_name = bounded(
            "full_name",
            params.opt_string(&["full_name"])?.unwrap_or_default(),
            MAX_FULL_NAME_CHARS,
        )?;
        let description = bounded(
            "description",
            params.opt_string(&["description"])?.unwrap_or_default(),
            MAX_DESCRIPTION_CHARS,
        )?;
        Ok(SignupRequest {
            domain,
            email,
            password,
            username,
            full_name,
            description,
        })
    }
}

/// `POST /auth/signup {domain, email, password, username?, full_name?, description?}`.
async fn signup(params: ApiParams, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let allowed = state.etcd.get(ALLOW_SIGNUP_KEY).await.map_err(|e| {
        slog::error!(state.log, "cannot read the sign-up switch"; "key" => ALLOW_SIGNUP_KEY, "error" => %e);
        Problem::internal(format!("cannot read etcd {ALLOW_SIGNUP_KEY}"))
    })?;
    if !signup_allowed(allowed.as_deref()) {
        return Err(
            Problem::new(ProblemKind::GenericForbidden).with_msg(format!(
                "Sign-up is disabled on this manager (etcd {ALLOW_SIGNUP_KEY} is not \"true\")."
            )),
        );
    }
    let request = SignupRequest::from_params(&params)?;
    slog::info!(state.log, "AUTH.SIGNUP"; "domain" => &request.domain, "email" => &request.email);
    let client = db_client(&state).await?;
    match domain_active(&client, &request.domain)
        .await
        .map_err(query_failed(&state, "looking up the sign-up domain"))?
    {
        Some(true) => {}
        Some(false) => {
            return Err(Problem::invalid_params(format!(
                "domain {:?} is not active",
                request.domain
            )));
        }
        None => {
            return Err(Problem::invalid_params(format!(
                "no such domain: {:?}",
                request.domain
            )));
        }
    }
    drop(client);
    let SignupRequest {
        domain,
        email,
        password,
        username,
        full_name,
        description,
    } = request;
    let password_hash = web::block(move || bcrypt::hash(password, PASSWORD_BCRYPT_COST))
        .await
        .map_err(|_| Problem::internal("the password hashing did not finish"))?
        .map_err(|e| Problem::internal(format!("cannot hash the password: {e}")))?;
    let user = SignupUser {
        domain_name: domain,
        email,
        username,
        password_hash,
        full_name,
        description,
    };
    let (access_key, secret_key) = generate_keypair();
    let mut client = db_client(&state).await?;
    let transaction = client
        .transaction()
        .await
        .map_err(query_failed(&state, "starting the sign-up"))?;
    let uuid = match insert_signup_user(&transaction, &user)
        .await
        .map_err(query_failed(&state, "creating the signed-up user"))?
    {
        Ok(uuid) => uuid,
        // Dropping the transaction rolls it back: nothing was written.
        Err(SignupConflict::Email) => {
            return Err(
                Problem::new(ProblemKind::GenericBadRequest).with_msg("Email already exists")
            );
        }
        Err(SignupConflict::Username) => {
            return Err(
                Problem::new(ProblemKind::GenericBadRequest).with_msg("Username already exists")
            );
        }
    };
    let keypair = NewKeypair {
        owner_email: user.email.clone(),
        access_key: access_key.clone(),
        secret_key: secret_key.clone(),
        is_active: true,
        is_admin: false,
        resource_policy: "default".to_owned(),
        rate_limit: SIGNUP_KEYPAIR_RATE_LIMIT,
    };
    insert_keypair(&transaction, &keypair)
        .await
        .map_err(query_failed(
            &state,
            "creating the signed-up user's keypair",
        ))?
        .ok_or_else(|| Problem::internal("Error creating user account"))?;
    set_main_access_key(&transaction, uuid, &access_key)
        .await
        .map_err(query_failed(
            &state,
            "setting the signed-up user's main access key",
        ))?;
    join_default_group(&transaction, uuid, &user.domain_name)
        .await
        .map_err(query_failed(
            &state,
            "adding the signed-up user to the default group",
        ))?;
    transaction
        .commit()
        .await
        .map_err(query_failed(&state, "committing the sign-up"))?;
    slog::info!(state.log, "AUTH.SIGNUP: created"; "email" => &user.email, "access_key" => &access_key);
    Ok(reply::json_with_status(
        StatusCode::CREATED,
        &json!({"access_key": access_key, "secret_key": secret_key}),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    use super::*;

    fn params(value: Value) -> ApiParams {
        let Value::Object(map) = value else {
            panic!("not an object")
        };
        ApiParams::from_object(map)
    }

    #[test]
    fn only_true_opens_the_route() {
        assert!(!signup_allowed(None));
        assert!(!signup_allowed(Some("")));
        assert!(!signup_allowed(Some("yes")));
        assert!(!signup_allowed(Some("false")));
        assert!(signup_allowed(Some("true")));
        assert!(signup_allowed(Some(" TRUE\n")));
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(looks_like_email("jane@example.com"));
        assert!(looks_like_email("a.b+c@sub.example.org"));
        for bad in [
            "",
            "jane",
            "@example.com",
            "jane@",
            "jane@localhost",
            "jane@@example.com",
            "jane@example.com.",
            "jane doe@example.com",
            "jane@.example.com",
            "a@b@example.com",
        ] {
            assert!(!looks_like_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_request_defaults_the_username_and_bounds_every_field() {
        let request = SignupRequest::from_params(&params(json!({
            "domain": "default", "email": "jane@example.com", "password": "pw",
        })))
        .unwrap();
        assert_eq!(request.username, "jane@example.com");
        assert_eq!(request.full_name, "");
        assert!(!format!("{request:?}").contains("pw\""), "{request:?}");

        let long = "x".repeat(65);
        for (key, value) in [
            ("username", long.clone()),
            ("full_name", long.clone()),
            ("description", "d".repeat(501)),
            ("password", "p".repeat(257)),
            ("domain", long.clone()),
            ("email", format!("{long}@example.com")),
        ] {
            let mut body = Map::new();
            body.insert("domain".into(), json!("default"));
            body.insert("email".into(), json!("jane@example.com"));
            body.insert("password".into(), json!("pw"));
            body.insert(key.into(), json!(value));
            let refused = SignupRequest::from_params(&ApiParams::from_object(body));
            assert!(refused.is_err(), "{key} of {} chars", value.len());
        }
        for missing in ["domain", "email", "password"] {
            let mut body = json!({"domain": "default", "email": "j@example.com", "password": "pw"});
            body.as_object_mut().unwrap().remove(missing);
            assert!(
                SignupRequest::from_params(&params(body)).is_err(),
                "{missing}"
            );
        }
        let not_email = SignupRequest::from_params(&params(json!({
            "domain": "default", "email": "jane", "password": "pw",
        })));
        assert!(not_email.is_err());
        let empty_password = SignupRequest::from_params(&params(json!({
            "domain": "default", "email": "j@example.com", "password": "",
        })));
        assert!(empty_password.is_err());
    }
}
