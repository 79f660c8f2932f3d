//! `compute_session_list` under load: 10,000 sessions (one kernel each) in a bai-manager
//! (`start-server`, `num-proc` workers) on real PostgreSQL, etcd and Redis, and signed
//! `POST /admin/gql` requests carrying the official CLI's `session list` query with
//! `limit: 100`.
//!
//! Measurements, each for `BENCH_SECONDS`:
//! - closed loop: `BENCH_CONNECTIONS` keep-alive connections sending back to back;
//! - fixed rate: `BENCH_RATE` requests per second over the connections, each latency measured
//!   from the request's scheduled time (no coordinated omission);
//!
//! Both for the CLI's default status list (active sessions) and for every status. Then the SQL
//! the query runs, with `EXPLAIN ANALYZE`.
//!
//! `cargo bench --bench gql_sessions`. Knobs: BENCH_SESSIONS (10000), BENCH_SECONDS (10),
//! BENCH_CONNECTIONS (4), BENCH_RATE (100), BENCH_NUM_PROC (2), BENCH_VACUUM (1: vacuum the
//! filled tables as autovacuum would; 0: measure right after the bulk insert).

// Tests and benches read rows with `Row::get`: a drifted schema fails them loudly, which is
// what a test should do (the non-test code may not; see clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "support/signed_load.rs"]
mod signed_load;

use std::sync::Arc;
use std::time::Instant;

use bai_testkit::TestEnv;
use signed_load::{
    Workload, closed_loop, find, fixed_rate, knob, raise_admin_rate_limit, start_manager,
};

/// The official client's `session list` query (23.09.10).
const SESSION_LIST: &str = "query($limit:Int!, $offset:Int!, $status: String, $access_key: String, $filter: String, $order: String) {\n  compute_session_list(\n      limit:$limit, offset:$offset, status:$status, access_key:$access_key, filter:$filter, order:$order) {\n    items { name access_key id group_name main_kernel_id image type status status_info status_changed result }\n    total_count\n  }\n}";

const ACTIVE: &str =
    "PENDING,SCHEDULED,PULLING,PREPARING,RUNNING,RUNNING_DEGRADED,TERMINATING,ERROR";
const EVERY: &str = "PENDING,SCHEDULED,PULLING,PREPARING,RUNNING,RESTARTING,RUNNING_DEGRADED,TERMINATING,TERMINATED,ERROR,CANCELLED";

fn body(status: &str) -> String {
    serde_json::json!({
        "query": SESSION_LIST,
        "variables": {"status": status, "access_key": null, "filter": null, "order": null, "limit": 100, "offset": 0},
    })
    .to_string()
}

/// The CLI's `session list` for `status`; a success is a 200 without GraphQL errors.
fn session_list(label: &str, status: &str) -> Arc<Workload> {
    Arc::new(Workload {
        label: label.to_owned(),
        method: "POST",
        path: "/admin/gql",
        content_type: "application/json",
        body: body(status).into_bytes(),
        accept: |status, body| status == 200 && find(body, b"\"errors\"").is_none(),
    })
}

/// `count` sessions with one kernel each, spread over the example users, 30 days and the
/// statuses a busy cluster shows (mostly finished, a fifth running or failed). PENDING is left
/// out: the manager's scheduler would act on it during the run.
///
/// With `vacuum`, the tables end as autovacuum leaves a table of mostly finished sessions (the
/// visibility map set, so the total count is an index-only scan on the status index); without
/// it, as right after a bulk insert, before autovacuum came by (the count reads the whole heap).
async fn fill_sessions(client: &tokio_postgres::Client, count: i32, vacuum: bool) {
    client
        .execute(
            "INSERT INTO sessions (id, name, session_type, domain_name, group_id, user_uuid, access_key, \
                 images, status, status_history, created_at, terminated_at, occupying_slots, \
                 requested_slots, scaling_group_name, result) \
             SELECT uuid_generate_v4(), 'sess-' || n, 'INTERACTIVE', 'default', \
                 '2de2b969-1d04-48a6-af16-0bc8adb3c831', k.\"user\", k.access_key, \
                 ARRAY['cr.backend.ai/stable/python:3.9-ubuntu20.04'], st.status, \
                 jsonb_build_object(st.status::text, (now() - n * interval '4 minutes')::text), \
                 now() - n * interval '4 minutes', \
                 CASE WHEN st.status IN ('TERMINATED', 'CANCELLED') \
                      THEN now() - n * interval '4 minutes' + interval '1 hour' END, \
                 '{\"cpu\": \"1\", \"mem\": \"1073741824\"}', '{\"cpu\": \"1\", \"mem\": \"1073741824\"}', \
                 'default', 'UNDEFINED' \
             FROM generate_series(1, $1::int4) AS n \
             JOIN (SELECT access_key, \"user\", row_number() OVER (ORDER BY access_key) - 1 AS i \
                   FROM keypairs) k ON k.i = n % 5 \
             CROSS JOIN LATERAL (SELECT (CASE WHEN n % 10 < 7 THEN 'TERMINATED' \
                 WHEN n % 10 = 7 THEN 'CANCELLED' WHEN n % 10 = 8 THEN 'RUNNING' \
                 ELSE 'ERROR' END)::sessionstatus AS status) st",
            &[&count],
        )
        .await
        .expect("inserting sessions");
    client
        .execute(
            "INSERT INTO kernels (session_id, session_name, cluster_role, cluster_idx, cluster_hostname, \
                 scaling_group, domain_name, group_id, user_uuid, access_key, image, registry, \
                 occupied_slots, requested_slots, status, created_at, terminated_at) \
             SELECT s.id, s.name, 'main', 1, 'main1', 'default', s.domain_name, s.group_id, \
                 s.user_uuid, s.access_key, s.images[1], 'cr.backend.ai', s.occupying_slots, \
                 s.requested_slots, (CASE WHEN s.status::text = 'TERMINATED' THEN 'TERMINATED' \
                     WHEN s.status::text = 'CANCELLED' THEN 'CANCELLED' \
                     WHEN s.status::text = 'RUNNING' THEN 'RUNNING' ELSE 'ERROR' END)::kernelstatus, \
                 s.created_at, s.terminated_at FROM sessions s",
            &[],
        )
        .await
        .expect("inserting kernels");
    let maintenance = if vacuum {
        "VACUUM ANALYZE sessions, kernels"
    } else {
        "ANALYZE sessions; ANALYZE kernels;"
    };
    client
        .batch_execute(maintenance)
        .await
        .expect("vacuum/analyze");
}

async fn explain(client: &tokio_postgres::Client) {
    let (items, count) = bai_schema::queries::session_list::cli_session_list_statements()
        .expect("no filter to compile");
    let statuses: Vec<String> = ACTIVE.split(',').map(str::to_owned).collect();
    println!("\nSQL of one `session list` (limit 100), as sent:\n{items}\n{count}\n");
    for (label, sql, with_page) in [("items", &items, true), ("count", &count, false)] {
        let statement = format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}");
        let limit: i64 = 100;
        let offset: i64 = 0;
        let rows = if with_page {
            client
                .query(&statement, &[&statuses, &limit, &offset])
                .await
        } else {
            client.query(&statement, &[&statuses]).await
        }
        .expect("explain");
        println!("EXPLAIN ANALYZE ({label}):");
        for row in rows {
            println!("  {}", row.get::<_, String>(0));
        }
    }
}

#[tokio::main]
async fn main() {
    let sessions = knob("BENCH_SESSIONS", 10_000) as i32;
    let seconds = knob("BENCH_SECONDS", 10);
    let connections = knob("BENCH_CONNECTIONS", 4);
    let rate = knob("BENCH_RATE", 100);
    let num_proc = knob("BENCH_NUM_PROC", 2);
    let vacuum = knob("BENCH_VACUUM", 1) != 0;

    let env = TestEnv::new().await;
    env.load_example_fixtures().await;
    let db = env.db.connect().await;
    raise_admin_rate_limit(&db).await;
    let filling = Instant::now();
    fill_sessions(&db, sessions, vacuum).await;
    println!(
        "{sessions} sessions with one kernel each inserted in {:.1} s ({})",
        filling.elapsed().as_secs_f64(),
        if vacuum {
            "then VACUUM ANALYZE, as autovacuum leaves the tables"
        } else {
            "ANALYZE only: the visibility map not yet set"
        }
    );

    let (manager, target) = start_manager(&env, num_proc);
    let target = Arc::new(target);
    println!(
        "bai-manager start-server, num-proc {num_proc}; {} cores on this machine\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Warm up the workers' connections and prepared statements.
    for status in [ACTIVE, EVERY] {
        closed_loop(
            Arc::clone(&target),
            session_list("warm-up", status),
            connections,
            2,
        )
        .await;
    }
    println!();
    for (label, status) in [
        ("session list (active statuses)", ACTIVE),
        ("session list (every status)", EVERY),
    ] {
        let workload = session_list(label, status);
        closed_loop(
            Arc::clone(&target),
            Arc::clone(&workload),
            connections,
            seconds,
        )
        .await;
        fixed_rate(Arc::clone(&target), workload, rate, connections, seconds).await;
    }
    explain(&db).await;
    drop(manager);
}
