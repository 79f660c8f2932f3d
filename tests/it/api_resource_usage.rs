//! `/resource/stats/*/month`, `/resource/usage/*` and `/resource/recalculate-usage` against
//! PostgreSQL and Redis: the Statistics page's time bins and the admins' usage reports, from
//! `kernels.last_stat` or, when a kernel has none stored, the agents' statistics in Redis.

use actix_web::http::Method;
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};

use crate::api_app;
use crate::api_support::{ADMIN_AK, ADMIN_SK, ApiWorld, Signer, USER_AK, USER_SK, USER2_AK, call};
use crate::gql_support::{insert_agent, insert_session};

/// `{"io_read": {"current": "<n>"}, "cpu_used": {"current": "<n>"}}` packed as the agents do.
fn packed_stat(io_read: &str, cpu_used: &str) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_map_len(&mut out, 2).unwrap();
    for (key, value) in [("io_read", io_read), ("cpu_used", cpu_used)] {
        rmp::encode::write_str(&mut out, key).unwrap();
        rmp::encode::write_map_len(&mut out, 1).unwrap();
        rmp::encode::write_str(&mut out, "current").unwrap();
        rmp::encode::write_str(&mut out, value).unwrap();
    }
    out
}

fn busy_bins(bins: &Value) -> Vec<&Value> {
    bins.as_array()
        .unwrap()
        .iter()
        .filter(|bin| bin["num_sessions"]["value"] != 0)
        .collect()
}

#[actix_web::test]
async fn statistics_and_usage_reports_read_the_kept_and_live_stats() {
    let world = ApiWorld::new().await;
    let db = world.db().await;
    insert_agent(&db, "i-1", "ALIVE", "default").await;
    let (_, stored) = insert_session(&db, "stored-stat", USER_AK, "TERMINATED", Some("i-1")).await;
    let (_, live) = insert_session(&db, "live-stat", USER_AK, "TERMINATED", Some("i-1")).await;
    let (_, unknown) = insert_session(&db, "no-stat", USER_AK, "TERMINATED", Some("i-1")).await;
    let (_, other) = insert_session(&db, "other-user", USER2_AK, "TERMINATED", Some("i-1")).await;
    let (_, running) = insert_session(&db, "running", USER_AK, "RUNNING", Some("i-1")).await;
    let created = Utc::now() - TimeDelta::minutes(50);
    let terminated = created + TimeDelta::minutes(30);
    for kernel in [stored, live, unknown, other] {
        db.execute(
            "UPDATE kernels SET created_at = $2, terminated_at = $3 WHERE id = $1",
            &[&kernel, &created, &terminated],
        )
        .await
        .unwrap();
    }
    db.execute(
        "UPDATE kernels SET last_stat = $2 WHERE id = $1",
        &[
            &stored,
            &json!({"io_read": {"current": "4096"}, "cpu_used": {"current": "1500.5"},
                    "mem": {"capacity": "268435456"}}),
        ],
    )
    .await
    .unwrap();
    let mut redis = redis::Client::open(world.env.redis.url(0))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(live.to_string())
        .arg(packed_stat("1024", "20"))
        .query_async(&mut redis)
        .await
        .unwrap();

    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let get = |signer: &Signer, path: &str| signer.request(Method::GET, path, None).to_request();

    // The Statistics page: the user's three terminated kernels, over their 30 minutes.
    let (status, _, bins) = call(&app, get(&user, "/resource/stats/user/month")).await;
    assert_eq!(status, 200, "{bins}");
    assert_eq!(bins.as_array().unwrap().len(), 2880);
    let busy = busy_bins(&bins);
    assert!((2..=4).contains(&busy.len()), "{} busy bins", busy.len());
    for bin in &busy {
        assert_eq!(bin["num_sessions"]["value"], 3);
        assert_eq!(bin["cpu_allocated"]["value"], 3);
        assert_eq!(bin["mem_allocated"]["value"], 3 * 536_870_912_i64);
        assert_eq!(bin["io_read_bytes"]["value"], 4096 + 1024);
        assert_eq!(bin["mem_allocated"]["unit_hint"], "bytes");
    }
    let (status, _, bins) = call(&app, get(&admin, "/resource/stats/admin/month")).await;
    assert_eq!(status, 200);
    assert_eq!(busy_bins(&bins)[0]["num_sessions"]["value"], 4);
    let (status, _, _) = call(&app, get(&user, "/resource/stats/admin/month")).await;
    assert_eq!(status, 401, "superadmins only");

    // The usage report: kernels with a stored or a live statistic; the one with neither is
    // left out, as the original does.
    let today = Utc::now().date_naive();
    let yesterday = today - TimeDelta::days(1);
    let period = format!(
        "/resource/usage/period?start_date={}&end_date={}",
        yesterday.format("%Y%m%d"),
        today.format("%Y%m%d")
    );
    let (status, _, _) = call(&app, get(&user, &period)).await;
    assert_eq!(status, 401, "superadmins only");
    let (status, _, report) = call(&app, get(&admin, &period)).await;
    assert_eq!(status, 200, "{report}");
    let groups = report.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{report}");
    let group = &groups[0];
    assert_eq!(group["g_name"], "default");
    let infos = group["c_infos"].as_array().unwrap();
    let ids: Vec<&str> = infos.iter().map(|c| c["id"].as_str().unwrap()).collect();
    // The running kernel has no statistic either, so it is left out too.
    assert_eq!(ids.len(), 2, "{report}");
    assert!(ids.contains(&stored.to_string().as_str()));
    assert!(ids.contains(&live.to_string().as_str()));
    assert!(!ids.contains(&running.to_string().as_str()));
    let stored_info = infos
        .iter()
        .find(|c| c["id"] == stored.to_string())
        .unwrap();
    assert_eq!(stored_info["cpu_used"], 1500.5);
    assert_eq!(stored_info["io_read"], 4096);
    assert_eq!(stored_info["mem_used"], 268_435_456);
    assert_eq!(stored_info["mem_allocated"], 536_870_912);
    assert_eq!(stored_info["used_time"], "0:30:00");
    assert_eq!(stored_info["email"], "user@lablup.com");
    assert_eq!(stored_info["status"], "TERMINATED");
    assert_eq!(group["g_io_read"], 4096 + 1024);
    assert_eq!(group["g_cpu_allocated"], 2.0);

    let month = format!("/resource/usage/month?month={}", Utc::now().format("%Y%m"));
    let (status, _, body) = call(&app, get(&admin, &month)).await;
    assert_eq!(status, 200, "{body}");
    for bad in [
        "/resource/usage/month?month=2026",
        "/resource/usage/month?month=202613",
        "/resource/usage/period?start_date=20260101&end_date=20260501",
        "/resource/usage/period?start_date=20260105&end_date=20260101",
    ] {
        let (status, _, body) = call(&app, get(&admin, bad)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Recalculation: the agent's occupied slots become the sum of its running kernels.
    db.execute(
        "UPDATE agents SET occupied_slots = '{\"cpu\": \"99\"}' WHERE id = 'i-1'",
        &[],
    )
    .await
    .unwrap();
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::POST, "/resource/recalculate-usage", None)
            .to_request(),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    let occupied: Value = db
        .query_one("SELECT occupied_slots FROM agents WHERE id = 'i-1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(occupied, json!({"cpu": "1", "mem": "536870912"}));
}

/// A `kernel_terminated` event stores the agent's last statistics of the kernel in
/// `kernels.last_stat`, so the reports keep them after the agent drops its Redis key.
#[actix_web::test]
async fn a_terminated_kernel_keeps_its_last_statistics() {
    use bai_actors::agent_rpc::{AgentRpc, RpcTimeouts};
    use bai_actors::scheduler::dispatch::DispatchDeps;
    use bai_actors::scheduler::events::apply_kernel_event;
    use bai_actors::wire::{KernelEvent, KernelEventKind};

    let world = ApiWorld::new().await;
    let db = world.db().await;
    insert_agent(&db, "i-1", "ALIVE", "default").await;
    let (session, kernel) = insert_session(&db, "ending", USER_AK, "RUNNING", Some("i-1")).await;
    let mut redis = redis::Client::open(world.env.redis.url(0))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(kernel.to_string())
        .arg(packed_stat("8192", "30"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let deps = DispatchDeps {
        pool: world.state.db.clone(),
        rpc: std::sync::Arc::new(AgentRpc::new(RpcTimeouts::default())),
        etcd: None,
        stat_redis: Some(world.state.redis.stat.clone()),
    };
    let event = KernelEvent {
        kind: KernelEventKind::Terminated,
        kernel_id: kernel,
        session_id: session,
        reason: "user-requested".into(),
        creation_info: Value::Null,
        exit_code: Some(0),
    };
    apply_kernel_event(&deps, None, &event).await.unwrap();
    let row = db
        .query_one(
            "SELECT status::text, last_stat FROM kernels WHERE id = $1",
            &[&kernel],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "TERMINATED");
    assert_eq!(
        row.get::<_, Option<Value>>(1),
        Some(json!({"io_read": {"current": "8192"}, "cpu_used": {"current": "30"}}))
    );
}
