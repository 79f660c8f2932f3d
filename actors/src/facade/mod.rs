//! The HTTP façade: actix-web routes, request authentication and error mapping. Handlers
//! translate API calls into database queries and actor messages.

pub mod hello;
pub mod problem;
pub mod state;

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::web;

pub use problem::{Problem, ProblemKind};
pub use state::{AppState, FacadeSettings, RedisConnections};

/// The `Server` header every response carries.
pub const SERVER_HEADER: &str = "BackendAI";

/// Headers added to every response.
pub fn default_headers() -> DefaultHeaders {
    DefaultHeaders::new().add((header::SERVER, SERVER_HEADER))
}

/// Registers every route. `GET /` needs nothing but the version; the rest needs `AppState`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(hello::hello));
}
