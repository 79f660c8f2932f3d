//! The operator endpoints, served only on the separate metrics listener (127.0.0.1, `[manager]
//! metrics-port`), never on the public one: `GET /metrics` (this worker's figures in the
//! Prometheus text format), `GET /health` (liveness: the worker answers) and `GET /ready`
//! (readiness: PostgreSQL, Redis and etcd answer; 503 naming those that do not).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::facade::state::AppState;
use crate::metrics::render::{Gauges, render};

/// How long one dependency check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Which worker serves this listener (1-based), for the `worker` label.
#[derive(Debug, Clone, Copy)]
pub struct OpsWorker(pub usize);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready));
}

async fn metrics(state: web::Data<AppState>, worker: web::Data<OpsWorker>) -> HttpResponse {
    let status = state.db.status();
    let gauges = Gauges {
        db_pool: (status.size, status.available),
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(render(worker.0, &gauges))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The outcome of one dependency check: `None` when it answered, else why not.
async fn check<F, E>(probe: F) -> Option<String>
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let postgresql = check(async {
        let client = state.db.get().await.map_err(|e| e.to_string())?;
        bai_schema::pool::ping(&client)
            .await
            .map_err(|e| e.to_string())
    });
    let redis = check(async {
        let mut connection = state.redis.stat.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
    });
    let etcd = check(async {
        state
            .etcd
            .get("manager/status")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let (postgresql, redis, etcd) = futures::join!(postgresql, redis, etcd);
    let mut checks = Map::new();
    let mut failing = Vec::new();
    for (name, outcome) in [("postgresql", postgresql), ("redis", redis), ("etcd", etcd)] {
        match outcome {
            None => {
                checks.insert(name.into(), json!("ok"));
            }
            Some(error) => {
                checks.insert(name.into(), json!(error));
                failing.push(Value::from(name));
            }
        }
    }
    let body = json!({"ready": failing.is_empty(), "failing": failing, "checks": checks});
    if failing.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
