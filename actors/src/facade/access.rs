//! Route access levels: the middleware that guards every route needing a keypair.
//!
//! ```ignore
//! web::resource("/auth/role").route(web::get().to(get_role).wrap(Access::user()))
//! web::resource("/session").route(web::post().to(create).wrap(Access::user().all_allowed()))
//! web::resource("/config/set").route(web::post().to(set).wrap(Access::superadmin()))
//! ```
//! For such a route the request goes through, in the original's order: the date window and
//! the signature (`auth_middleware`), the `num_queries` counter, the rate limit
//! (`rlim_middleware`), the `manager/status` gate (`server_status_required`), and the access
//! level (`auth_required` / `admin_required` / `superadmin_required`, which all answer 401
//! "Unauthorized access"). The handler then finds an [`Authenticated`] in the request, and a
//! successful reply gets the `X-RateLimit-*` headers.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage, web};
use futures::future::LocalBoxFuture;
use redis::aio::ConnectionManager;

use super::auth::AuthContext;
use super::auth::credentials::CachedCredential;
use super::auth::verify::{AuthError, read_claim, verify_client_address, verify_signature};
use super::manager_status::StatusRequirement;
use super::problem::{Problem, ProblemKind};
use super::ratelimit::RateLimitState;
use super::routes::checkout_failed;
use super::state::AppState;
use bai_schema::queries::QueryError;

/// How long `kp:{access_key}:num_queries` lives in the stat database (30 days, as the
/// original's retention of its per-key query counter).
pub const NUM_QUERIES_RETENTION_SECONDS: i64 = 86400 * 30;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLevel {
    /// Any active keypair (`auth_required`).
    User,
    /// A keypair with `is_admin` (`admin_required`).
    Admin,
    /// A keypair whose user is a superadmin (`superadmin_required`).
    Superadmin,
}

impl AccessLevel {
    pub fn admits(self, caller: &AuthContext) -> bool {
        match self {
            AccessLevel::User => true,
            AccessLevel::Admin => caller.is_admin,
            AccessLevel::Superadmin => caller.is_superadmin,
        }
    }
}

/// The guard of one route: an access level and, optionally, the manager status it needs.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    level: AccessLevel,
    status: Option<StatusRequirement>,
}

impl Access {
    pub fn user() -> Access {
        Access {
            level: AccessLevel::User,
            status: None,
        }
    }

    pub fn admin() -> Access {
        Access {
            level: AccessLevel::Admin,
            status: None,
        }
    }

    pub fn superadmin() -> Access {
        Access {
            level: AccessLevel::Superadmin,
            status: None,
        }
    }

    /// The route works while the manager is running or frozen.
    pub fn read_allowed(mut self) -> Access {
        self.status = Some(StatusRequirement::ReadAllowed);
        self
    }

    /// The route writes: it needs the manager running.
    pub fn all_allowed(mut self) -> Access {
        self.status = Some(StatusRequirement::AllAllowed);
        self
    }
}

impl<S> Transform<S, ServiceRequest> for Access
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error> + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = AccessService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AccessService {
            access: *self,
            service: Rc::new(service),
        }))
    }
}

pub struct AccessService<S> {
    access: Access,
    service: Rc<S>,
}

impl<S> Service<ServiceRequest> for AccessService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error> + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let access = self.access;
        Box::pin(async move {
            let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
                let problem = Problem::new(ProblemKind::ServerMisconfigured)
                    .with_msg("the API state is not configured");
                return Ok(request.error_response(problem));
            };
            let rate_limit = match admit(&request, &state, access).await {
                Ok(admitted) => admitted,
                Err(problem) => return Ok(request.error_response(problem)),
            };
            let mut response = service.call(request).await?;
            if response.response().error().is_none() {
                rate_limit.write_headers(response.headers_mut());
            }
            Ok(response)
        })
    }
}

/// Runs the pipeline up to the handler; on success the request carries the caller.
async fn admit(
    request: &ServiceRequest,
    state: &AppState,
    access: Access,
) -> Result<RateLimitState, Problem> {
    let caller = authenticate(request, state).await?;
    let rate_limit = match &caller {
        Some(credential) => count_request(state, &credential.caller).await?,
        None => RateLimitState::ANONYMOUS,
    };
    if let Some(requirement) = access.status {
        let status = state
            .pipeline
            .manager_status
            .current(&state.etcd)
            .await
            .map_err(|e| {
                slog::error!(state.log, "cannot read the manager status from etcd"; "error" => %e);
                Problem::internal("cannot read the manager status")
            })?;
        requirement.check(status)?;
    }
    let caller = caller
        .map(|credential| credential.caller)
        .filter(|caller| access.level.admits(caller))
        .ok_or(AuthError::Unauthorized)?;
    request.extensions_mut().insert(caller);
    Ok(rate_limit)
}

/// The keypair that signed the request, or `None` for an unsigned one.
async fn authenticate(
    request: &ServiceRequest,
    state: &AppState,
) -> Result<Option<CachedCredential>, Problem> {
    let Some(claim) = read_claim(request.request())? else {
        return Ok(None);
    };
    let credential = state
        .pipeline
        .credentials
        .lookup(&state.db, claim.access_key())
        .await
        .map_err(|e| match e {
            QueryError::Pool(pool_error) => checkout_failed(state, &pool_error),
            other => {
                slog::error!(state.log, "keypair lookup failed";
                    "access_key" => claim.access_key(), "error" => %other);
                Problem::internal("cannot look up the access key")
            }
        })?
        .ok_or(AuthError::UnknownAccessKey)?;
    verify_signature(request.request(), &claim, &credential)?;
    count_query(state, claim.access_key());
    verify_client_address(request.request(), &credential)?;
    Ok(Some(credential))
}

/// Counts the request in the sliding window; 429 when over the keypair's limit.
///
/// The limit fails closed: when Redis cannot count the request (it is down, or does not answer
/// within [`crate::redis::COMMAND_RESPONSE_TIMEOUT`]), the request is refused at once with 503
/// `service-unavailable` instead of passing uncounted (see "Failure behaviour" in the README).
async fn count_request(state: &AppState, caller: &AuthContext) -> Result<RateLimitState, Problem> {
    let mut redis: ConnectionManager = state.redis.rate_limit.clone();
    let count = state
        .pipeline
        .rate_limiter
        .count_request(&mut redis, &caller.access_key)
        .await
        .map_err(|e| {
            crate::metrics::bump(&crate::metrics::METRICS.redis_errors);
            if let Some(refused) = state.pipeline.rate_limiter.note_refusal() {
                slog::warn!(state.log, "refusing requests: the rate limit cannot be checked in Redis";
                    "access_key" => &caller.access_key, "refused_since_last_line" => refused,
                    "error" => %e);
            }
            Problem::new(ProblemKind::ServiceUnavailable)
                .with_msg("the rate limiter (Redis) is unreachable; retry later")
        })?;
    RateLimitState::after(i64::from(caller.rate_limit), count)
        .ok_or_else(|| Problem::new(ProblemKind::RateLimitExceeded))
}

/// `INCR kp:{ak}:num_queries` in the stat database, off the request's critical path: the
/// counter is statistics, and a lost increment must not fail or slow down the request.
fn count_query(state: &AppState, access_key: &str) {
    let mut redis = state.redis.stat.clone();
    let key = format!("kp:{access_key}:num_queries");
    let log = state.log.clone();
    actix_web::rt::spawn(async move {
        let result: Result<(), redis::RedisError> = redis::pipe()
            .incr(&key, 1)
            .ignore()
            .expire(&key, NUM_QUERIES_RETENTION_SECONDS)
            .ignore()
            .query_async(&mut redis)
            .await;
        // Debug only: when Redis is away the rate limit refuses the request and says so.
        if let Err(e) = result {
            slog::debug!(log, "cannot count the query"; "key" => key, "error" => %e);
        }
    });
}
