//! The HTTP façade: actix-web routes, request authentication and error mapping. Handlers
//! translate API calls into database queries and actor messages.
//!
//! Every route lives inside one scope wrapped by [`pipeline::RequestPipeline`] (CORS,
//! `X-Method-Override`, API version check, problem+json for unknown paths and methods).
//! Routes that need a keypair are wrapped with an [`access::Access`] level; their handlers
//! take an [`auth::Authenticated`] argument. To add routes, register them in
//! [`api_routes`] (a service registered outside the scope would never be reached).

pub mod access;
pub mod auth;
pub mod body_deadline;
pub mod connection_activity;
pub mod dotfile_list;
pub mod event_feed;
pub mod hello;
pub mod image_import;
pub mod json_nesting;
pub mod manager_status;
pub mod ops_endpoints;
pub mod params;
pub mod pipeline;
pub mod preset_check;
pub mod problem;
pub mod ratelimit;
pub mod reply;
pub mod routes;
pub mod session;
pub mod slot_types;
pub mod ssh_keypair;
pub mod state;
pub mod storage_problem;
pub mod template_check;
pub mod usage_report;

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::web;

pub use access::{Access, AccessLevel};
pub use auth::{AuthContext, Authenticated};
pub use params::ApiParams;
pub use problem::{Problem, ProblemKind};
pub use state::{AppState, FacadeSettings, PipelineState, RedisConnections};

/// The `Server` header every response carries.
pub const SERVER_HEADER: &str = "BackendAI";

/// Headers added to every response.
pub fn default_headers() -> DefaultHeaders {
    DefaultHeaders::new().add((header::SERVER, SERVER_HEADER))
}

/// Registers the API: one scope for every path, with the request pipeline around it.
/// Needs `web::Data<AppState>` in the app (and optionally `web::Data<hello::ManagerVersion>`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(pipeline::RequestPipeline)
            .configure(api_routes)
            .default_service(web::to(pipeline::not_found)),
    );
}

/// Every route of the API. Each area registers its own routes.
pub fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(hello::hello));
    routes::register(cfg);
    crate::gql::http::register(cfg);
}
