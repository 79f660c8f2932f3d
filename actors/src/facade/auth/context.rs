//! `AuthContext`: who is calling. The request pipeline authenticates a request once and
//! leaves an `Authenticated` in it; handlers take `Authenticated` as an argument to get the
//! caller's keypair, user and resource policy. The secret key is not part of it.
//!
//! ```ignore
//! async fn my_handler(caller: Authenticated, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
//!     let ak = &caller.access_key;             // the keypair used to sign the request
//!     if caller.is_superadmin { /* users.role == superadmin */ }
//!     if caller.is_admin { /* keypairs.is_admin: domain admin or superadmin */ }
//!     let domain = caller.domain_name();       // the user's domain
//!     ...
//! }
//! ```
//! A route only carries an `Authenticated` when it is registered with an [`Access`] level
//! (see `facade::access`); elsewhere the extractor answers 401 "Unauthorized access".
//!
//! [`Access`]: crate::facade::access::Access

use std::future::{Ready, ready};
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use bai_schema::enums::UserRole;
use bai_schema::queries::keypair::{KeypairCredential, KeypairResourcePolicy, KeypairUser};
use uuid::Uuid;

use crate::facade::problem::{Problem, ProblemKind};

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthContext {
    /// The access key that signed the request.
    pub access_key: String,
    /// `keypairs.is_admin`: the caller may administer its domain (the original's `is_admin`).
    pub is_admin: bool,
    /// `users.role == superadmin`: the caller may administer everything.
    pub is_superadmin: bool,
    /// `keypairs.rate_limit`: requests allowed per rate-limit window.
    pub rate_limit: i32,
    /// `keypairs.user_id`, the owner's email (a legacy id).
    pub user_id: Option<String>,
    /// The owner of the keypair (no password).
    pub user: KeypairUser,
    /// The keypair's resource policy.
    pub resource_policy: KeypairResourcePolicy,
}

impl AuthContext {
    /// The caller as seen by handlers: everything of the credential but the secret key.
    pub fn from_credential(credential: &KeypairCredential) -> AuthContext {
        AuthContext {
            access_key: credential.access_key.clone(),
            is_admin: credential.is_admin,
            is_superadmin: credential.user.role == UserRole::Superadmin,
            rate_limit: credential.rate_limit,
            user_id: credential.user_id.clone(),
            user: credential.user.clone(),
            resource_policy: credential.policy.clone(),
        }
    }

    pub fn user_uuid(&self) -> Uuid {
        self.user.uuid
    }

    pub fn role(&self) -> UserRole {
        self.user.role
    }

    /// The user's domain (`""` for a user without one, which owns nothing).
    pub fn domain_name(&self) -> &str {
        self.user.domain_name.as_deref().unwrap_or("")
    }

    /// Whether the user's role is admin or superadmin (the check the original uses to let an
    /// admin act on another user's session).
    pub fn has_admin_role(&self) -> bool {
        matches!(self.user.role, UserRole::Admin | UserRole::Superadmin)
    }
}

/// The extractor handlers take: an authenticated caller, shared cheaply.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<AuthContext>);

impl Deref for Authenticated {
    type Target = AuthContext;
    fn deref(&self) -> &AuthContext {
        &self.0
    }
}

impl Authenticated {
    /// The caller of `request`, if the pipeline authenticated it.
    pub fn of(request: &HttpRequest) -> Option<Authenticated> {
        request.extensions().get::<Authenticated>().cloned()
    }
}

impl FromRequest for Authenticated {
    type Error = Problem;
    type Future = Ready<Result<Authenticated, Problem>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(Authenticated::of(request).ok_or_else(|| {
            Problem::new(ProblemKind::AuthorizationFailed).with_msg("Unauthorized access")
        }))
    }
}
