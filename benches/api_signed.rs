//! Load test of signed API requests: a bai-manager (`start-server`, `num-proc` workers) on real
//! PostgreSQL, etcd and Redis, and a load generator that signs every request as the official
//! client does (HMAC-SHA256 over method, path, date, host, content type and version).
//!
//! Two measurements per path (`GET /auth/role`, `GET /resource/presets`):
//! - throughput: `BENCH_CONNECTIONS` keep-alive connections in a closed loop for
//!   `BENCH_SECONDS`; requests per second and latency percentiles;
//! - latency at a fixed rate: `BENCH_RATE` requests per second spread over the connections,
//!   each latency measured from the request's scheduled time (no coordinated omission).
//!
//! `cargo bench --bench api_signed`. Knobs: BENCH_SECONDS (10), BENCH_CONNECTIONS (32),
//! BENCH_RATE (2000), BENCH_NUM_PROC (2). `BENCH_TARGET=http://127.0.0.1:PORT` (with
//! BENCH_ACCESS_KEY/BENCH_SECRET_KEY, default the example admin) measures another manager,
//! e.g. the original, instead of starting one.

#[path = "support/signed_load.rs"]
mod signed_load;

use std::sync::Arc;

use bai_testkit::TestEnv;
use signed_load::{
    ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, Target, Workload, closed_loop, fixed_rate, knob,
    raise_admin_rate_limit, start_manager,
};

/// A signed `GET path`, answered 200.
fn get(path: &'static str) -> Arc<Workload> {
    Arc::new(Workload {
        label: format!("GET {path}"),
        method: "GET",
        path,
        content_type: "text/plain",
        body: Vec::new(),
        accept: |status, _| status == 200,
    })
}

fn external_target(endpoint: &str) -> Target {
    let host = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    Target {
        addr: host.parse().expect("BENCH_TARGET must be http://IP:PORT"),
        host,
        access_key: std::env::var("BENCH_ACCESS_KEY").unwrap_or_else(|_| ADMIN_ACCESS_KEY.into()),
        secret_key: std::env::var("BENCH_SECRET_KEY").unwrap_or_else(|_| ADMIN_SECRET_KEY.into()),
    }
}

fn main() {
    let seconds = knob("BENCH_SECONDS", 10);
    let connections = knob("BENCH_CONNECTIONS", 32);
    let rate = knob("BENCH_RATE", 2000);
    let num_proc = knob("BENCH_NUM_PROC", 2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let (_world, target) = match std::env::var("BENCH_TARGET") {
            Ok(endpoint) => (None, external_target(&endpoint)),
            Err(_) => {
                let env = TestEnv::new().await;
                env.load_example_fixtures().await;
                raise_admin_rate_limit(&env.db.connect().await).await;
                let (manager, target) = start_manager(&env, num_proc);
                (Some((env, manager)), target)
            }
        };
        let target = Arc::new(target);
        println!(
            "target {} ({} s per run, {connections} connections, one load-generator thread)",
            target.host, seconds
        );
        // Warm up: caches, prepared statements, connection pools.
        closed_loop(Arc::clone(&target), get("/auth/role"), 4, 2).await;
        for path in ["/auth/role", "/resource/presets"] {
            closed_loop(Arc::clone(&target), get(path), connections, seconds).await;
            fixed_rate(
                Arc::clone(&target),
                get(path),
                rate,
                connections.max(8),
                seconds,
            )
            .await;
        }
    });
}
