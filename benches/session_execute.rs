//! `execute` round trips through the manager to a simulated kernel: signed
//! `POST /session/{id}` (query mode) on a `bai-manager start-server` with one worker, whose
//! session's main kernel runs on a simulated 26.x agent (a real ZeroMQ ROUTER answering
//! callosum `execute` at once).
//!
//! Three figures:
//! - the agent alone: `execute` RPCs from this process straight to the simulated agent
//!   (sequential, one connection), i.e. what the manager cannot go below;
//! - through the manager at a fixed rate (`BENCH_RATE`, default 1,000 req/s), latency counted
//!   from each request's due time;
//! - through the manager in a closed loop (throughput).
//!
//! The manager's added latency is the second minus the first, per percentile.
//! `cargo bench --bench session_execute`. Knobs: BENCH_SECONDS (10), BENCH_RATE (1000),
//! BENCH_CONNECTIONS (16), BENCH_DIRECT_CALLS (5000).

#[allow(dead_code)]
#[path = "support/app_session.rs"]
mod app_session;
#[path = "support/signed_load.rs"]
mod signed_load;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bai_actors::agent_rpc::interactive::ExecuteCall;
use bai_actors::agent_rpc::{AgentRpc, AgentTarget, RpcTimeouts};
use bai_actors::wire::WireFormat;
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_agent_sim::{SimAgent, StreamWriter};
use bai_testkit::TestEnv;
use bai_testkit::ports::free_port;
use signed_load::{Workload, closed_loop, fixed_rate, knob, raise_admin_rate_limit, start_manager};
use uuid::Uuid;

/// Sequential execute RPCs straight to the simulated agent: the floor under every figure.
async fn direct_rpc(agent: &SimAgent, session: Uuid, kernel: Uuid, calls: u64) {
    let rpc = AgentRpc::new(RpcTimeouts::default());
    let target = AgentTarget {
        id: agent.id.clone(),
        addr: agent.info.addr.clone(),
        version: agent.info.version.clone(),
    };
    let call = ExecuteCall {
        session_id: session,
        kernel_id: kernel,
        api_major: 6,
        run_id: None,
        mode: "query".into(),
        code: "print(1)".into(),
        opts: serde_json::json!({}),
        flush_timeout: 2.0,
    };
    for _ in 0..200 {
        rpc.execute(&target, &call).await.expect("warm-up execute");
    }
    let mut latencies = Vec::with_capacity(calls as usize);
    let started = Instant::now();
    for _ in 0..calls {
        let sent = Instant::now();
        rpc.execute(&target, &call).await.expect("execute");
        latencies.push(sent.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "agent alone (sequential execute RPC): {calls} calls, {:.0}/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        calls as f64 / elapsed.as_secs_f64(),
        ms(at(0.50)),
        ms(at(0.90)),
        ms(at(0.99)),
        ms(at(1.0)),
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn main() {
    let seconds = knob("BENCH_SECONDS", 10);
    let rate = knob("BENCH_RATE", 1000);
    let connections = knob("BENCH_CONNECTIONS", 16);
    let direct_calls = knob("BENCH_DIRECT_CALLS", 5000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let env = TestEnv::new().await;
        env.load_example_fixtures().await;
        let db = env.db.connect().await;
        raise_admin_rate_limit(&db).await;
        let agent = SimAgent::new("i-bench-exec", WireFormat::Payload, free_port());
        let writer = StreamWriter::connect(&env.redis.addr())
            .await
            .expect("connecting the simulator to Redis");
        let ledger = SharedLedger::default();
        let _servers = serve_fleet(std::slice::from_ref(&agent), &writer, &ledger);
        let (session, kernel) =
            app_session::running_session(&db, &agent, "bench-exec", serde_json::json!([])).await;
        direct_rpc(&agent, session, kernel, direct_calls).await;

        let (_manager, target) = start_manager(&env, 1);
        let target = Arc::new(target);
        let path: &'static str = Box::leak(format!("/session/{session}").into_boxed_str());
        let workload = Arc::new(Workload {
            label: "POST /session/{id} execute, 1 worker".to_owned(),
            method: "POST",
            path,
            content_type: "application/json",
            body: br#"{"mode": "query", "code": "print(1)", "runId": null}"#.to_vec(),
            accept: |status, body| status == 200 && signed_load::find(body, b"finished").is_some(),
        });
        println!("target {} ({seconds} s per run)", target.host);
        closed_loop(Arc::clone(&target), Arc::clone(&workload), 4, 2).await;
        fixed_rate(
            Arc::clone(&target),
            Arc::clone(&workload),
            rate,
            connections,
            seconds,
        )
        .await;
        closed_loop(Arc::clone(&target), workload, connections, seconds).await;
    });
}
