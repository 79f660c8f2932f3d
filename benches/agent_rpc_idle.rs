//! What idle agent RPC connections cost a manager worker: one `AgentRpc` (on a current-thread
//! runtime, as in a worker) pings BENCH_AGENTS (default 2,000) simulated agents, BENCH_PARALLEL
//! (default 64) at a time, and reports this process's RSS and open descriptors before and after,
//! and how many connections the client still holds. The simulated agents run in a child process
//! (this program started again), so their ROUTER sockets are not counted. `cargo bench --bench
//! agent_rpc_idle` (`--profile dev` for a debug build).
//!
//! Descriptors: each connection is one in this process and one in the child, so the `nofile`
//! limit must be above BENCH_AGENTS plus a few dozen for both. The agents listen on
//! BENCH_PORT_BASE (default 30000) and up.

#[path = "support/proc_stats.rs"]
mod proc_stats;
#[allow(dead_code)]
#[path = "support/signed_load.rs"]
mod signed_load;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Instant;

use bai_actors::agent_rpc::{AgentRpc, AgentTarget, RpcTimeouts};
use bai_actors::wire::WireFormat;
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_agent_sim::{StreamWriter, fleet};
use bai_testkit::redis::RedisServer;
use futures::StreamExt;
use proc_stats::rss_kib;
use signed_load::knob;

/// Set in the child: `<redis addr> <first port> <agents>`.
const FLEET_ROLE: &str = "BENCH_AGENT_RPC_IDLE_FLEET";
const AGENT_PREFIX: &str = "i-rpc-idle-";

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count())
}

/// The child: serves the fleet until its stdin closes (the parent ended).
fn serve(spec: &str) {
    let mut parts = spec.split_whitespace();
    let (Some(redis), Some(port), Some(count)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("{FLEET_ROLE} must be `<redis addr> <first port> <agents>`, not {spec:?}");
    };
    let port: u16 = port.parse().expect("the first port");
    let count: usize = count.parse().expect("the agent count");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let agents = fleet(AGENT_PREFIX, count, WireFormat::Payload, port);
        let writer = StreamWriter::connect(redis)
            .await
            .expect("connecting the simulator to Redis");
        let _servers = serve_fleet(&agents, &writer, &SharedLedger::default());
        println!("serving");
        tokio::task::spawn_blocking(|| {
            let mut rest = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut rest);
        })
        .await
        .expect("waiting for stdin to close");
    });
}

fn main() {
    if let Ok(spec) = std::env::var(FLEET_ROLE) {
        serve(&spec);
        return;
    }
    let agents = knob("BENCH_AGENTS", 2000) as usize;
    let parallel = knob("BENCH_PARALLEL", 64) as usize;
    let redis = RedisServer::start();
    // A fixed range, as in session_e2e (finding 2,000 free ports one by one is slow); below the
    // ephemeral ports and above session_e2e's default 10,000 agents.
    let first_port = knob("BENCH_PORT_BASE", 30000) as u16;
    let mut child = Command::new(std::env::current_exe().expect("this program's path"))
        .env(
            FLEET_ROLE,
            format!("{} {first_port} {agents}", redis.addr()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the simulated agents");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("the child's stdout"))
        .read_line(&mut ready)
        .expect("reading the child's readiness");
    assert_eq!(
        ready.trim(),
        "serving",
        "the simulated agents did not start"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let rpc = AgentRpc::new(RpcTimeouts::default());
        let targets: Vec<AgentTarget> =
            fleet(AGENT_PREFIX, agents, WireFormat::Payload, first_port)
                .into_iter()
                .map(|agent| AgentTarget {
                    id: agent.id.clone(),
                    addr: agent.info.addr.clone(),
                    version: "26.9.6".into(),
                })
                .collect();
        // The first call warms the runtime, the allocator and the client up.
        let Some(first) = targets.first() else {
            return;
        };
        rpc.ping(first, "warm").await.expect("the first ping");
        let (rss_before, fds_before) = (rss_kib("self"), open_descriptors());
        println!(
            "before: RSS {:.1} MiB, {fds_before} descriptors, 1 agent called",
            rss_before / 1024.0
        );
        let started = Instant::now();
        let results: Vec<Result<(), String>> = futures::stream::iter(&targets[1..])
            .map(|target| {
                let rpc = &rpc;
                async move {
                    rpc.ping(target, "idle")
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        let answered = results.iter().filter(|result| result.is_ok()).count();
        if let Some(Err(error)) = results.iter().find(|result| result.is_err()) {
            println!("first failure: {error}");
        }
        let (rss_after, fds_after) = (rss_kib("self"), open_descriptors());
        let called = targets.len() - 1;
        println!(
            "after pinging {called} more agents in {:.1} s ({answered} answered): RSS {:.1} MiB \
             ({:+.1} MiB, {:.1} KiB per agent called), {fds_after} descriptors ({:+}), {} \
             connections held (at most {})",
            started.elapsed().as_secs_f64(),
            rss_after / 1024.0,
            (rss_after - rss_before) / 1024.0,
            (rss_after - rss_before) / called.max(1) as f64,
            fds_after as i64 - fds_before as i64,
            rpc.open_connections(),
            rpc.limits().max_open,
        );
        drop(rpc);
        // The sockets close as their tasks see them dropped.
        let dropped = Instant::now();
        while open_descriptors() > fds_before && dropped.elapsed().as_secs() < 10 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        println!(
            "client dropped: after {:.2} s RSS {:.1} MiB, {} descriptors",
            dropped.elapsed().as_secs_f64(),
            rss_kib("self") / 1024.0,
            open_descriptors()
        );
    });
    drop(child.stdin.take());
    let _ = child.wait();
}
