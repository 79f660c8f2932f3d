//! `/session`: create (`POST /session`), inspect (`GET /session/{name}`, `/_/match`,
//! `/{name}/logs`, `/_/logs`) and destroy (`DELETE /session/{name}`) compute sessions.

mod abusing_report;
mod commit;
pub(crate) mod create;
mod dependency_graph;
mod destroy;
mod direct_access;
mod execute;
mod files;
mod from_template;
mod info;
mod interaction_edge;
mod pty_relay;
mod rename;
mod restart;
mod session_end;
mod start_service;
mod stream_apps;
mod stream_execute;
mod stream_proxy;
mod stream_pty;
mod task_logs;
mod tcp_relay;

use actix_web::web;
use bai_schema::queries::session::{
    SessionDetail, SessionMatch, Staleness, match_sessions, session_detail,
};
use deadpool_postgres::GenericClient;
use serde_json::json;
use uuid::Uuid;

use crate::facade::access::Access;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::routes::query_failed;
use crate::facade::state::AppState;

pub fn register(cfg: &mut web::ServiceConfig) {
    for path in ["/session", "/session/_/create"] {
        cfg.route(
            path,
            web::post()
                .to(create::create)
                .wrap(Access::user().all_allowed()),
        );
    }
    cfg.route(
        "/session/_/create-from-template",
        web::post()
            .to(from_template::create_from_template)
            .wrap(Access::user().all_allowed()),
    );
    // Before `/session/{session_name}/logs`, which would take `_` for a session name.
    cfg.service(
        web::resource("/session/_/logs")
            .route(
                web::get()
                    .to(task_logs::task_logs)
                    .wrap(Access::user().read_allowed()),
            )
            .route(
                web::head()
                    .to(task_logs::task_logs)
                    .wrap(Access::user().read_allowed()),
            ),
    );
    cfg.route(
        "/session/_/match",
        web::get()
            .to(info::match_sessions)
            .wrap(Access::user().read_allowed()),
    );
    cfg.service(
        web::resource("/session/{session_name}")
            .route(
                web::get()
                    .to(info::get_info)
                    .wrap(Access::user().read_allowed()),
            )
            .route(
                web::delete()
                    .to(destroy::destroy)
                    .wrap(Access::user().read_allowed()),
            )
            .route(
                web::post()
                    .to(execute::execute)
                    .wrap(Access::user().read_allowed()),
            )
            .route(
                web::patch()
                    .to(restart::restart)
                    .wrap(Access::user().read_allowed()),
            ),
    );
    register_interaction(cfg);
    cfg.route(
        "/session/{session_name}/logs",
        web::get()
            .to(info::container_logs)
            .wrap(Access::user().read_allowed()),
    );
}

/// The calls on a running session (execute stream, files, rename, commit, ...).
fn register_interaction(cfg: &mut web::ServiceConfig) {
    let read = || Access::user().read_allowed();
    cfg.route(
        "/stream/session/{session_name}/execute",
        web::get().to(stream_execute::stream_execute).wrap(read()),
    )
    .route(
        "/stream/session/{session_name}/pty",
        web::get().to(stream_pty::stream_pty).wrap(read()),
    )
    .route(
        "/stream/session/{session_name}/apps",
        web::get().to(stream_apps::stream_apps).wrap(read()),
    )
    .route(
        "/session/{session_name}/start-service",
        web::post().to(start_service::start_service).wrap(read()),
    )
    .route(
        "/stream/session/{session_name}/tcpproxy",
        web::get().to(stream_proxy::stream_proxy).wrap(read()),
    )
    .route(
        "/stream/session/{session_name}/httpproxy",
        web::get().to(stream_proxy::stream_proxy).wrap(read()),
    )
    .route(
        "/session/{session_name}/interrupt",
        web::post().to(execute::interrupt).wrap(read()),
    )
    .route(
        "/session/{session_name}/complete",
        web::post().to(execute::complete).wrap(read()),
    )
    .route(
        "/session/{session_name}/upload",
        web::post().to(files::upload).wrap(read()),
    )
    .route(
        "/session/{session_name}/download",
        web::get().to(files::download).wrap(read()),
    )
    .route(
        "/session/{session_name}/download_single",
        web::get().to(files::download_single).wrap(read()),
    )
    .route(
        "/session/{session_name}/files",
        web::get().to(files::list_files).wrap(read()),
    )
    .route(
        "/session/{session_name}/rename",
        web::post()
            .to(rename::rename)
            .wrap(Access::user().all_allowed()),
    )
    .service(
        web::resource("/session/{session_name}/commit")
            .route(web::post().to(commit::commit).wrap(read()))
            .route(web::get().to(commit::commit_status).wrap(read())),
    )
    .route(
        "/session/{session_name}/dependency-graph",
        web::get()
            .to(dependency_graph::dependency_graph)
            .wrap(read()),
    )
    .route(
        "/session/{session_name}/direct-access-info",
        web::get().to(direct_access::direct_access).wrap(read()),
    )
    .route(
        "/session/{session_name}/abusing-report",
        web::get().to(abusing_report::abusing_report).wrap(read()),
    );
}

/// The one session of `owner` that `reference` names; 404 when none or several match.
async fn find_session(
    client: &impl GenericClient,
    reference: &str,
    owner: &str,
    allow_stale: bool,
    state: &AppState,
) -> Result<SessionMatch, Problem> {
    let staleness = if allow_stale {
        Staleness::AllowStale
    } else {
        Staleness::LiveOnly
    };
    let mut matches = match_sessions(client, reference, owner, staleness)
        .await
        .map_err(query_failed(state, "matching sessions"))?;
    match matches.len() {
        0 => Err(Problem::not_found("session")
            .with_msg(format!("Session (id={reference}) does not exist."))),
        1 => Ok(matches.remove(0)),
        _ => Err(
            Problem::new(ProblemKind::TooManySessionsMatched).with_data(json!({
                "matches": matches
                    .iter()
                    .map(|m| json!({"id": m.id.to_string(), "name": m.name, "status": m.status.as_str()}))
                    .collect::<Vec<_>>()
            })),
        ),
    }
}

/// A matched session with its main kernel.
async fn load_detail(
    client: &impl GenericClient,
    session_id: Uuid,
    state: &AppState,
) -> Result<SessionDetail, Problem> {
    session_detail(client, session_id)
        .await
        .map_err(query_failed(state, "reading the session"))?
        .ok_or_else(|| Problem::not_found("session"))
}
