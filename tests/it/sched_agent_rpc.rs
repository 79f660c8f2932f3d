//! The agent RPC client against the real Backend.AI agent 26.9.6 (dummy backend): handshake,
//! create_kernels with our own ImageRef pickle, destroy_kernel, sync_kernel_registry, the events
//! the agent emits, reconnection after the agent appears, and the method guard.

use std::collections::BTreeMap;
use std::time::Duration;

use bai_actors::agent_rpc::{
    AgentRpc, AgentTarget, ClusterSpec, FullKernelRegistry, ImageSpec, KernelLaunch, RpcError,
    RpcTimeouts,
};
use bai_actors::wire::{Event, KernelEventKind, Value};
use bai_schema::ResourceSlot;
use bai_testkit::TestEnv;
use bai_testkit::ports::free_port;
use uuid::Uuid;

use crate::sched_support::RealAgent;

pub(crate) fn quick_timeouts() -> RpcTimeouts {
    RpcTimeouts {
        connect: Duration::from_secs(2),
        handshake: Duration::from_secs(2),
        reply: Duration::from_secs(30),
    }
}

/// Pings until the agent's RPC loop answers (it binds its port before it serves).
pub(crate) async fn wait_until_serving(rpc: &AgentRpc, target: &AgentTarget) {
    for _ in 0..60 {
        if let Ok(Value::Str(reply)) = rpc.ping(target, "ready?").await
            && reply == "ready?"
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the agent at {} never answered ping", target.addr);
}

pub(crate) fn launch(agent: &RealAgent, session_id: Uuid, kernel_id: Uuid) -> KernelLaunch {
    KernelLaunch {
        kernel_id,
        session_id,
        session_type: "interactive".into(),
        cluster_mode: "single-node".into(),
        cluster_role: "main".into(),
        cluster_idx: 1,
        local_rank: 0,
        cluster_hostname: "main1".into(),
        image: ImageSpec {
            canonical: "cr.backend.ai/testing/python:3.9-ubuntu20.04".into(),
            registry_name: "cr.backend.ai".into(),
            registry_url: "https://cr.backend.ai".into(),
            project: Some("testing".into()),
            architecture: std::env::consts::ARCH.to_owned(),
            digest: format!("sha256:{}", "0".repeat(64)),
            labels: BTreeMap::from([
                ("ai.backend.kernelspec".into(), "1".into()),
                (
                    "ai.backend.features".into(),
                    "batch query uid-match user-input".into(),
                ),
                ("ai.backend.runtime-type".into(), "python".into()),
                ("ai.backend.runtime-path".into(), "/usr/bin/python3".into()),
                (
                    "ai.backend.service-ports".into(),
                    "ipython:pty:3000,jupyter:http:8081".into(),
                ),
            ]),
            is_local: false,
        },
        resource_slots: ResourceSlot::from_pairs([("cpu", 1i64), ("mem", 1i64 << 30)]),
        resource_opts: serde_json::json!({}),
        environ: BTreeMap::from([("BACKENDAI_KERNEL_ID".into(), kernel_id.to_string())]),
        mounts: Vec::new(),
        bootstrap_script: None,
        startup_command: None,
        internal_data: None,
        preopen_ports: Vec::new(),
        idle_timeout: 600,
        owner_user_id: Uuid::new_v4(),
        owner_project_id: None,
        network_id: session_id.to_string(),
        agent_addr: agent.rpc_addr(),
        scaling_group: "default".into(),
        auto_pull: "digest".into(),
    }
}

/// The kernel events about `kernel_id` on the stream so far, in order.
async fn kernel_events(env: &TestEnv, kernel_id: Uuid) -> Vec<(KernelEventKind, String)> {
    crate::event_stream::recorded_events(env)
        .await
        .into_iter()
        .filter_map(|event| match event {
            Event::Kernel(event) if event.kernel_id == kernel_id => {
                Some((event.kind, event.reason))
            }
            _ => None,
        })
        .collect()
}

async fn wait_for_event(
    env: &TestEnv,
    kernel_id: Uuid,
    kind: KernelEventKind,
) -> Vec<(KernelEventKind, String)> {
    for _ in 0..100 {
        let events = kernel_events(env, kernel_id).await;
        if events.iter().any(|(k, _)| *k == kind) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no {kind:?} event for kernel {kernel_id}: {:?}",
        kernel_events(env, kernel_id).await
    );
}

#[tokio::test]
async fn a_kernel_lives_and_dies_on_the_real_agent_through_our_rpc_client() {
    let env = TestEnv::new().await;
    let rpc_port = free_port();
    let rpc = AgentRpc::new(quick_timeouts());
    let target = AgentTarget {
        id: "i-sched-rpc".into(),
        addr: format!("tcp://127.0.0.1:{rpc_port}"),
        version: "26.9.6".into(),
    };

    // Before the agent exists the call fails cleanly, and the client recovers once it is up.
    let early = rpc.ping(&target, "anyone?").await;
    assert!(
        matches!(
            early,
            Err(RpcError::Connect { .. } | RpcError::Handshake { .. })
        ),
        "{early:?}"
    );
    let agent = RealAgent::start(&env, "i-sched-rpc", rpc_port, 4).await;
    assert_eq!(agent.id, target.id);
    wait_until_serving(&rpc, &target).await;

    let session_id = Uuid::new_v4();
    let kernel_id = Uuid::new_v4();
    let launches = vec![launch(&agent, session_id, kernel_id)];
    let cluster = ClusterSpec {
        mode: "single-node".into(),
        size: 1,
        replicas: BTreeMap::from([("main".into(), 1)]),
        network_name: "bridge".into(),
    };
    let created = rpc
        .create_kernels(&target, session_id, &launches, &cluster)
        .await
        .unwrap_or_else(|e| panic!("create_kernels failed: {e}\n{}", agent.process.log()));
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0].get("id").and_then(Value::as_str),
        Some(kernel_id.to_string().as_str())
    );
    assert_eq!(
        created[0].get("agent_addr").and_then(Value::as_str),
        Some(agent.rpc_addr().as_str())
    );
    let events = wait_for_event(&env, kernel_id, KernelEventKind::Started).await;
    let kinds: Vec<KernelEventKind> = events.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        vec![
            KernelEventKind::Preparing,
            KernelEventKind::Creating,
            KernelEventKind::Started
        ]
    );
    assert!(rpc.check_running(&target, kernel_id).await.unwrap());

    // A complete registry keeps the kernel; destroy removes it and reports kernel_terminated.
    rpc.sync_kernel_registry(
        &target,
        &FullKernelRegistry::from_complete_listing(vec![(kernel_id, session_id)]),
    )
    .await
    .unwrap();
    assert!(rpc.check_running(&target, kernel_id).await.unwrap());
    rpc.destroy_kernel(&target, kernel_id, session_id, "user-requested", false)
        .await
        .unwrap();
    let events = wait_for_event(&env, kernel_id, KernelEventKind::Terminated).await;
    assert_eq!(
        events.last().map(|(_, r)| r.as_str()),
        Some("user-requested")
    );
    assert!(!rpc.check_running(&target, kernel_id).await.unwrap());

    // A failure of the handler comes back as a failure, and the connection stays usable.
    let failure = rpc
        .call(
            &target,
            bai_actors::agent_rpc::AgentMethod::PingKernel,
            vec![Value::str("not-a-uuid")],
            Vec::new(),
            None,
        )
        .await;
    assert!(
        matches!(&failure, Err(RpcError::Failure { name, .. }) if name == "ValueError"),
        "{failure:?}"
    );
    assert_eq!(
        rpc.ping(&target, "still here").await.unwrap(),
        Value::str("still here")
    );

    // A method the agent's version lacks is refused locally instead of killing its RPC server.
    let old = AgentTarget {
        version: "23.09.10".into(),
        ..target.clone()
    };
    assert!(matches!(
        rpc.check_running(&old, kernel_id).await,
        Err(RpcError::NotExposed { .. })
    ));
    assert_eq!(
        rpc.ping(&target, "alive").await.unwrap(),
        Value::str("alive")
    );
}
