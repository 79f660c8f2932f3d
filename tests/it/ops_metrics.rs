//! Metrics and health on the real stack: the operator listener (127.0.0.1, `metrics-port`)
//! serves `/metrics` in the Prometheus text format (checked by a strict parser) whose figures
//! move with the requests made, with a mailbox depth per supervised actor, `/health` and
//! `/ready` (503 naming Redis once it is stopped); the public listener serves none of them.

use bai_testkit::ports::free_port;
use bai_testkit::prometheus::{Scrape, parse};
use serde_json::Value;

use crate::api_support::{ADMIN_AK, ADMIN_SK, Signer};
use crate::hostile_support::HostileWorld;

struct OpsWorld {
    world: HostileWorld,
    ops_port: u16,
}

impl OpsWorld {
    async fn start() -> OpsWorld {
        let ops_port = free_port();
        let mut world = HostileWorld::start(&format!("metrics-port = {ops_port}"), false).await;
        // The supervisor holds the public port; the worker opens the operator port itself.
        world.manager.wait_for_port(ops_port);
        OpsWorld { world, ops_port }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .world
            .http
            .get(format!("http://127.0.0.1:{}{path}", self.ops_port))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e:?}\n{}", self.world.log()));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn scrape(&self) -> Scrape {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200, "{text}");
        parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    async fn json(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get(path).await;
        (status, serde_json::from_str(&text).unwrap())
    }
}

#[tokio::test]
async fn metrics_move_with_the_requests_made() {
    let ops = OpsWorld::start().await;
    let before = ops.scrape().await;
    for family in [
        "bai_http_request_duration_seconds",
        "bai_db_pool_wait_seconds",
        "bai_redis_errors_total",
        "bai_etcd_errors_total",
        "bai_scheduler_pass_duration_seconds",
        "bai_scheduler_placements_total",
        "bai_scheduler_pending_sessions",
        "bai_agent_heartbeats_total",
        "bai_agents_lost_total",
        "bai_agent_rpc_connections",
        "bai_event_lag_seconds",
        "bai_actor_restarts_total",
        "bai_actor_mailbox_depth",
    ] {
        assert!(before.families.contains_key(family), "{family} missing");
    }
    assert_eq!(before.families["bai_actor_mailbox_depth"], "gauge");
    for actor in [
        "scheduler",
        "heartbeat-tracker",
        "registry-sync",
        "storage-broker",
        "lock",
        "session-event-feed",
    ] {
        let depth = before
            .samples
            .iter()
            .find(|s| {
                s.name == "bai_actor_mailbox_depth"
                    && s.labels.get("actor").map(String::as_str) == Some(actor)
            })
            .unwrap_or_else(|| panic!("no mailbox depth for {actor}"));
        // A gauge of whole requests (a timer may be asking the lock actor at this moment, so
        // the value itself is not fixed; that it moves is the unit tests' part).
        assert!(
            depth.value >= 0.0 && depth.value.fract() == 0.0,
            "{actor}: {}",
            depth.value
        );
    }
    let root_ok = [("route", "/"), ("status", "200"), ("worker", "1")];
    let count = "bai_http_request_duration_seconds_count";

    for _ in 0..5 {
        ops.world.assert_serving().await;
    }
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, _) = ops
        .world
        .signed(&admin, reqwest::Method::GET, "/manager/status", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = ops
        .world
        .anonymous(reqwest::Method::GET, "/no/such/route", b"")
        .await;
    assert_eq!(status, 404);

    let after = ops.scrape().await;
    assert_eq!(
        after.sum(count, &root_ok) - before.sum(count, &root_ok),
        5.0
    );
    let status_route = [("route", "/manager/status"), ("status", "200")];
    assert_eq!(
        after.sum(count, &status_route) - before.sum(count, &status_route),
        1.0
    );
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(
        after.sum(count, &unmatched) - before.sum(count, &unmatched),
        1.0
    );
    // The signed request checked out a database connection.
    assert!(
        after.sum("bai_db_pool_wait_seconds_count", &[])
            > before.sum("bai_db_pool_wait_seconds_count", &[])
    );
    // Latency is recorded with the counts.
    assert!(after.sum("bai_http_request_duration_seconds_sum", &root_ok) > 0.0);

    // None of it is on the public listener.
    for path in ["/metrics", "/health", "/ready"] {
        let (status, _) = ops.world.anonymous(reqwest::Method::GET, path, b"").await;
        assert_eq!(status, 404, "{path} on the public listener");
    }
}

#[tokio::test]
async fn readiness_names_the_dependency_that_is_down() {
    let mut ops = OpsWorld::start().await;
    let (status, body) = ops.json("/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = ops.json("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["checks"]["postgresql"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
    assert_eq!(body["checks"]["etcd"], "ok");

    ops.world.env.redis.stop();
    let (status, body) = ops.json("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["failing"], serde_json::json!(["redis"]));
    assert_eq!(body["checks"]["postgresql"], "ok");
    assert_ne!(body["checks"]["redis"], "ok");
    // Liveness does not depend on Redis.
    let (status, _) = ops.json("/health").await;
    assert_eq!(status, 200);
}
