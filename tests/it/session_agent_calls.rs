//! The calls on a running kernel, through our RPC client, against the real agent 26.9.6
//! (dummy backend, fake code runner): what each returns, as the routes then relay it.

use std::collections::BTreeMap;
use std::time::Duration;

use bai_actors::agent_rpc::interactive::ExecuteCall;
use bai_actors::agent_rpc::{AgentRpc, AgentTarget, ClusterSpec};
use bai_actors::wire::Value;
use bai_testkit::TestEnv;
use bai_testkit::ports::free_port;
use uuid::Uuid;

use crate::sched_agent_rpc::{launch, quick_timeouts, wait_until_serving};
use crate::sched_support::RealAgent;

/// Bounds each call so a silent agent fails the test instead of hanging it.
async fn bounded<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .unwrap_or_else(|_| panic!("{what} did not return within 20 s"))
}

#[tokio::test]
async fn every_interactive_call_is_answered_by_the_real_agent() {
    let env = TestEnv::new().await;
    let rpc_port = free_port();
    let rpc = AgentRpc::new(quick_timeouts());
    let target = AgentTarget {
        id: "i-agent-calls".into(),
        addr: format!("tcp://127.0.0.1:{rpc_port}"),
        version: "26.9.6".into(),
    };
    let agent = RealAgent::start(&env, "i-agent-calls", rpc_port, 4).await;
    wait_until_serving(&rpc, &target).await;
    let (session_id, kernel_id) = (Uuid::new_v4(), Uuid::new_v4());
    let cluster = ClusterSpec {
        mode: "single-node".into(),
        size: 1,
        replicas: BTreeMap::from([("main".into(), 1)]),
        network_name: "bridge".into(),
    };
    rpc.create_kernels(
        &target,
        session_id,
        &[launch(&agent, session_id, kernel_id)],
        &cluster,
    )
    .await
    .unwrap_or_else(|e| panic!("create_kernels failed: {e}\n{}", agent.process.log()));

    let call = ExecuteCall {
        session_id,
        kernel_id,
        api_major: 6,
        run_id: Some("run-1".into()),
        mode: "query".into(),
        code: "print(1)".into(),
        opts: serde_json::json!({}),
        flush_timeout: 0.2,
    };
    let result = bounded("execute", rpc.execute(&target, &call))
        .await
        .unwrap_or_else(|e| panic!("execute failed: {e}\n{}", agent.process.log()));
    // The dummy agent overrides `execute` itself and never reaches its fake code runner.
    assert_eq!(
        result.get("status").and_then(Value::as_str),
        Some("not-implemented"),
        "{result:?}"
    );

    let logs = bounded("get_logs", rpc.get_logs(&target, kernel_id))
        .await
        .expect("get_logs");
    assert_eq!(logs, "my logs");
    bounded("interrupt_kernel", rpc.interrupt_kernel(&target, kernel_id))
        .await
        .expect("interrupt_kernel");
    bounded(
        "get_completions",
        rpc.get_completions(&target, kernel_id, "pri", &serde_json::json!({})),
    )
    .await
    .expect("get_completions");
    bounded(
        "upload_file",
        rpc.upload_file(&target, kernel_id, "a.txt", b"data".to_vec()),
    )
    .await
    .expect("upload_file");
    let listing = bounded("list_files", rpc.list_files(&target, kernel_id, "."))
        .await
        .expect("list_files");
    assert_eq!(listing.get("files").and_then(Value::as_str), Some(""));
    let tar = bounded(
        "download_file",
        rpc.download_file(&target, kernel_id, "a.txt"),
    )
    .await
    .expect("download_file");
    assert!(tar.is_empty(), "the dummy agent returns no archive");
    bounded(
        "download_single",
        rpc.download_single(&target, kernel_id, "a.txt"),
    )
    .await
    .expect("download_single");
    let commit = bounded(
        "commit",
        rpc.commit(&target, kernel_id, "user@example.com", None),
    )
    .await
    .expect("commit");
    assert!(
        commit.get("bgtask_id").and_then(Value::as_str).is_some(),
        "{commit:?}"
    );
    let status = bounded(
        "get_commit_status",
        rpc.get_commit_status(&target, kernel_id, "user@example.com"),
    )
    .await
    .expect("get_commit_status");
    assert!(
        status.get("status").and_then(Value::as_str).is_some(),
        "{status:?}"
    );
}
