//! A test-only route for the graceful-stop tests: with `[debug] enabled = true` and
//! `BAI_TEST_HOLD_MARKER=<path>` in the worker's environment, `POST /_debug/hold` creates the
//! file `<path>` as soon as its handler runs (the request is in flight from then on), then
//! reads the request body to its end and answers 200 with the number of bytes it read. A test
//! sends part of the body, waits for the file, stops the server and sends the rest: a signal
//! of "the worker is handling my request" instead of a sleep.
//!
//! Both conditions are the operator's (the config file and the process environment), as for
//! the fault injection hook; without them the route does not exist.

use std::path::PathBuf;

use actix_web::{HttpResponse, web};
use futures::StreamExt;
use slog::{info, warn};

/// The environment variable naming the file the hold route creates when it is entered.
pub const HOLD_MARKER_ENV: &str = "BAI_TEST_HOLD_MARKER";

/// Where the hold route marks that it was entered.
#[derive(Debug, Clone)]
pub struct HoldMarker(PathBuf);

/// The marker when the debug config and the environment ask for the route.
pub fn marker(debug_enabled: bool, log: &slog::Logger) -> Option<HoldMarker> {
    let path = std::env::var_os(HOLD_MARKER_ENV)?;
    if !debug_enabled {
        warn!(
            log,
            "{HOLD_MARKER_ENV} is ignored unless [debug] enabled = true"
        );
        return None;
    }
    info!(log, "test hold route armed"; "marker" => ?path);
    Some(HoldMarker(PathBuf::from(path)))
}

/// Registers `POST /_debug/hold` when armed.
pub fn configure(cfg: &mut web::ServiceConfig, marker: Option<&HoldMarker>) {
    if let Some(marker) = marker {
        cfg.app_data(web::Data::new(marker.clone()))
            .route("/_debug/hold", web::post().to(hold));
    }
}

async fn hold(
    marker: web::Data<HoldMarker>,
    mut body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    tokio::fs::write(&marker.0, b"entered\n").await?;
    let mut read = 0usize;
    while let Some(chunk) = body.next().await {
        read += chunk?.len();
    }
    Ok(HttpResponse::Ok().body(read.to_string()))
}
