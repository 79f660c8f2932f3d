//! The operator listener of one worker: `/metrics`, `/health` and `/ready` on 127.0.0.1, port
//! `[manager] metrics-port + worker index - 1`, apart from the public listener so that nothing
//! about the manager's internals is exposed to API clients. Off when `metrics-port` is 0.

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use bai_actors::facade::ops_endpoints::{self, OpsWorker};
use bai_actors::facade::state::AppState;

/// The port worker `worker_index` (1-based) serves on, if any.
pub fn port_of(metrics_port: u16, worker_index: usize) -> Option<u16> {
    if metrics_port == 0 {
        return None;
    }
    let port = usize::from(metrics_port) + worker_index.saturating_sub(1);
    u16::try_from(port).ok()
}

/// Starts the listener on the current actix system; answers its handle (to stop it with the
/// worker), or `None` when it is off.
pub fn start(
    metrics_port: u16,
    worker_index: usize,
    state: web::Data<AppState>,
    log: &slog::Logger,
) -> std::io::Result<Option<ServerHandle>> {
    let Some(port) = port_of(metrics_port, worker_index) else {
        return Ok(None);
    };
    let worker = web::Data::new(OpsWorker(worker_index));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(worker.clone())
            .configure(ops_endpoints::configure)
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", port))?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    slog::info!(
        log,
        "worker {worker_index} serving /metrics, /health and /ready on http://127.0.0.1:{port}"
    );
    Ok(Some(handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_gets_its_own_port() {
        assert_eq!(port_of(0, 1), None);
        assert_eq!(port_of(9100, 1), Some(9100));
        assert_eq!(port_of(9100, 3), Some(9102));
        assert_eq!(port_of(65535, 2), None);
    }
}
