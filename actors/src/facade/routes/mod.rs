//! The REST routes of the client API, one file per area, and the helpers their handlers share.

pub mod auth;
pub mod auth_self;
pub mod auth_signup;
pub mod background_task;
pub mod config;
pub mod dotfiles;
pub mod events;
pub mod image;
pub mod logs;
pub mod manager;
pub mod resource;
pub mod resource_usage;
pub mod scaling_group;
pub mod session;
pub mod templates;
pub mod vfolder;
pub mod vfolder_access;
pub mod vfolder_clone;
pub mod vfolder_files;
pub mod vfolder_quota;
pub mod vfolder_reply;
pub mod vfolder_sharing;

use actix_web::web;
use deadpool_postgres::Object;

use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::state::AppState;
use crate::metrics::{METRICS, bump};

/// Registers the routes of every area (inside the API scope, see `facade::configure`).
pub fn register(cfg: &mut web::ServiceConfig) {
    auth::register(cfg);
    auth_self::register(cfg);
    auth_signup::register(cfg);
    background_task::register(cfg);
    config::register(cfg);
    dotfiles::register(cfg);
    events::register(cfg);
    image::register(cfg);
    logs::register(cfg);
    manager::register(cfg);
    resource::register(cfg);
    resource_usage::register(cfg);
    scaling_group::register(cfg);
    session::register(cfg);
    templates::register(cfg);
    // Before `vfolder`: `/folders/invitations/…` and `/folders/_/shared` are not folder names.
    vfolder_sharing::register(cfg);
    vfolder_quota::register(cfg);
    vfolder::register(cfg);
    vfolder_clone::register(cfg);
    vfolder_files::register(cfg);
}

/// A pooled database connection; 503 when every connection of the request pool stayed busy
/// for the checkout timeout, 500 naming the cause otherwise.
pub async fn db_client(state: &AppState) -> Result<Object, Problem> {
    let started = std::time::Instant::now();
    let checkout = state.db.get().await;
    METRICS.db_pool_wait.observe(started.elapsed());
    checkout.map_err(|e| {
        bump(&METRICS.db_pool_errors);
        checkout_failed(state, &e)
    })
}

/// The problem for a failed checkout of the request pool (see [`db_client`]).
pub fn checkout_failed(state: &AppState, error: &deadpool_postgres::PoolError) -> Problem {
    if bai_schema::pool::is_checkout_timeout(error) {
        slog::warn!(state.log, "refusing a request: every database connection is busy";
            "pool_size" => state.db.status().max_size);
        return Problem::new(ProblemKind::ServiceUnavailable)
            .with_msg("the manager is overloaded (no free database connection); retry later");
    }
    slog::error!(state.log, "cannot get a database connection"; "error" => %error);
    Problem::internal("the database is unavailable")
}

/// Maps a failed query to 500 after logging what was being done.
pub fn query_failed<'a, E: std::fmt::Display>(
    state: &'a AppState,
    doing: &'static str,
) -> impl FnOnce(E) -> Problem + 'a {
    move |e| {
        slog::error!(state.log, "database query failed"; "while" => doing, "error" => %e);
        Problem::internal(format!("database error while {doing}"))
    }
}

/// Maps a failed etcd request to 500 after logging what was being done.
pub fn etcd_failed<'a, E: std::fmt::Display>(
    state: &'a AppState,
    doing: &'static str,
) -> impl FnOnce(E) -> Problem + 'a {
    move |e| {
        bump(&METRICS.etcd_errors);
        slog::error!(state.log, "etcd request failed"; "while" => doing, "error" => %e);
        Problem::internal(format!("etcd error while {doing}"))
    }
}
