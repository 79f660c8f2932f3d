//! Helpers of the scheduling tests: the real Backend.AI agent 26.9.6 (dummy backend) on
//! loopback ports, in a scratch folder, stopped with the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bai_testkit::TestEnv;
use bai_testkit::ports::free_port;
use bai_testkit::process::ServiceProcess;

/// The agent's Python: `deploy/peers/agent.sh python` when the project's installer is there,
/// else `$BAI_AGENT_PYTHON`, else the venv `.state/peers/agent`.
pub fn agent_python() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = repo.join("deploy/peers/agent.sh");
    if script.is_file()
        && let Ok(output) = Command::new("bash").arg(&script).arg("python").output()
        && output.status.success()
    {
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !path.is_empty() {
            return PathBuf::from(path);
        }
    }
    if let Some(path) = std::env::var_os("BAI_AGENT_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = repo.join(".state/peers/agent/bin/python");
    assert!(
        venv.is_file(),
        "the real agent is not installed: run deploy/peers/setup.sh (backend.ai-agent 26.9.6 into .state/peers/agent)"
    );
    venv
}

/// A running real agent.
pub struct RealAgent {
    pub id: String,
    pub rpc_port: u16,
    pub process: ServiceProcess,
}

impl RealAgent {
    pub fn rpc_addr(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.rpc_port)
    }

    /// Starts an agent of `env` listening for RPC on `rpc_port` (0 = any free port) and waits
    /// until it serves RPC.
    pub async fn start(env: &TestEnv, id: &str, rpc_port: u16, cpus: u32) -> RealAgent {
        env.etcd_put("nodes/manager/sched-test", "up").await;
        let dir = env.path(&format!("agent-{id}"));
        for sub in ["ipc", "var", "commit", "scratches"] {
            std::fs::create_dir_all(dir.join(sub)).expect("creating the agent's folders");
        }
        let rpc_port = if rpc_port == 0 { free_port() } else { rpc_port };
        let (etcd_host, etcd_port) = env
            .etcd_endpoint
            .trim_start_matches("http://")
            .rsplit_once(':')
            .expect("etcd endpoint host:port");
        let config = format!(
            r#"[etcd]
namespace = "{namespace}"
addr = {{ host = "{etcd_host}", port = {etcd_port} }}
user = ""
password = ""

[agent]
mode = "dummy"
id = "{id}"
initial-resource-group-name = "default"
region = "local"
instance-type = "dummy"
rpc-listen-addr = {{ host = "127.0.0.1", port = {rpc_port} }}
internal-addr = {{ host = "127.0.0.1", port = {internal} }}
announce-internal-addr = {{ host = "127.0.0.1", port = {internal} }}
agent-sock-port = {sock}
ipc-base-path = "{dir}/ipc"
var-base-path = "{dir}/var"
image-commit-path = "{dir}/commit"
pid-file = "{dir}/agent.pid"
metadata-server-bind-host = "127.0.0.1"
metadata-server-port = {metadata}
aiomonitor-termui-port = {termui}
aiomonitor-webui-port = {webui}

[container]
port-range = [{port_lo}, {port_hi}]
bind-host = "127.0.0.1"
stats-type = "docker"
sandbox-type = "docker"
scratch-type = "hostdir"
scratch-root = "{dir}/scratches"

[watcher]
service-addr = {{ host = "127.0.0.1", port = {watcher} }}

[logging]
level = "INFO"
drivers = ["console"]

[logging.console]
colored = false
format = "verbose"

[resource]
reserved-cpu = 0
reserved-mem = "0"
reserved-disk = "0"

[debug]
enabled = false
log-events = true
heartbeat-interval = 2.0
"#,
            namespace = env.namespace,
            internal = free_port(),
            sock = free_port(),
            metadata = free_port(),
            termui = free_port(),
            webui = free_port(),
            watcher = free_port(),
            port_lo = 30000 + (rpc_port % 100) * 100,
            port_hi = 30000 + (rpc_port % 100) * 100 + 99,
            dir = dir.display(),
        );
        std::fs::write(dir.join("agent.toml"), config).expect("writing agent.toml");
        let dummy = format!(
            r#"[agent.delay]
scan-image = 0.1
pull-image = 0.1
push-image = 0.1
purge-images = 0.1
destroy-kernel = 0.1
clean-kernel = 0.1
create-network = 0.1
destroy-network = 0.1

[agent.image]
already-have = []
need-to-pull = []
missing = []

[agent.resource.cpu]
num-core = {cpus}

[agent.resource.memory]
size = 17179869184

[kernel-creation-ctx.delay]
prepare-scratch = 0.1
prepare-ssh = 0.1
spawn = 0.1
start-container = 0.3
mount-krunner = 0.1

[kernel]
use-fake-code-runner = true

[kernel.delay]
check-status = 0.1
get-completions = 0.1
get-logs = 0.1
interrupt-kernel = 0.1
start-service = 0.1
start-model-service = 0.1
shutdown-service = 0.1
commit = 10.0
get-service-apps = 0.1
accept-file = 0.1
download-file = 0.1
download-single = 0.1
list-files = 0.1
"#
        );
        std::fs::write(dir.join("agent.dummy.toml"), dummy).expect("writing agent.dummy.toml");
        let mut command = Command::new(agent_python());
        command
            .args(["-m", "ai.backend.agent.server", "-f", "agent.toml"])
            .current_dir(&dir)
            // No Docker here: point the docker-only stat collector at nothing.
            .env(
                "DOCKER_HOST",
                format!("unix://{}/no-docker.sock", dir.display()),
            );
        let mut process = ServiceProcess::spawn(
            &format!("agent {id}"),
            command,
            &dir.join("agent.log"),
            libc::SIGTERM,
        );
        let rpc: SocketAddr = format!("127.0.0.1:{rpc_port}")
            .parse()
            .expect("loopback addr");
        process.wait_for_port(rpc, Duration::from_secs(90));
        RealAgent {
            id: id.to_owned(),
            rpc_port,
            process,
        }
    }
}

/// `[db]` settings of the test's database.
pub fn db_settings(env: &TestEnv) -> bai_schema::DbSettings {
    bai_schema::DbSettings {
        host: env.db.host.clone(),
        port: env.db.port,
        name: env.db.name.clone(),
        user: env.db.user.clone(),
        password: String::new(),
        pool_size: 8,
    }
}

pub async fn db_pool(env: &TestEnv) -> deadpool_postgres::Pool {
    db_settings(env)
        .connect_pool()
        .await
        .unwrap_or_else(|e| panic!("connecting a pool to the test database: {e}"))
}

/// The example fixtures' project (`default` group).
pub const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
pub const ADMIN_AK: &str = "AKIAIOSFODNN7EXAMPLE";
pub const USER_AK: &str = "AKIANABBDUSEREXAMPLE";

/// The example fixtures, with every keypair on an unlimited policy (tests set limits).
pub async fn scheduling_world(env: &TestEnv) -> tokio_postgres::Client {
    env.load_example_fixtures().await;
    let client = env.db.connect().await;
    client
        .batch_execute(
            "INSERT INTO keypair_resource_policies (name, default_for_unspecified, total_resource_slots,
                max_concurrent_sessions, max_containers_per_session)
             VALUES ('sched-test', 'UNLIMITED', '{}', 0, 8);
             UPDATE keypairs SET resource_policy = 'sched-test';",
        )
        .await
        .expect("setting up an unlimited policy");
    client
}

/// Adds `count` ALIVE agents `{prefix}-NNN` to resource group `default`.
pub async fn add_agents(
    client: &tokio_postgres::Client,
    prefix: &str,
    count: usize,
    cpu: u32,
    mem_gib: u64,
) {
    let ids: Vec<String> = (0..count).map(|n| format!("{prefix}-{n:05}")).collect();
    let slots = serde_json::json!({"cpu": cpu.to_string(), "mem": (mem_gib << 30).to_string()});
    client
        .execute(
            "INSERT INTO agents (id, status, status_changed, region, scaling_group, available_slots,
                occupied_slots, addr, version, architecture)
             SELECT id, 'ALIVE', now(), 'local', 'default', $2, '{}',
                    'tcp://127.0.0.1:' || (20000 + ordinality)::text, '26.9.6', 'x86_64'
               FROM unnest($1::varchar[]) WITH ORDINALITY AS t(id, ordinality)",
            &[&ids, &slots],
        )
        .await
        .expect("adding agents");
}

/// Enqueues `count` single-kernel PENDING sessions of `access_key` directly in the database
/// (as `POST /session` stores them), created one millisecond apart; returns their ids in order.
pub async fn enqueue_sessions(
    client: &tokio_postgres::Client,
    access_key: &str,
    count: usize,
    cpu: u32,
    mem_gib: u64,
) -> Vec<uuid::Uuid> {
    enqueue(
        client,
        &SessionSpec {
            access_key,
            scaling_group: "default",
            count,
            cpu,
            mem_gib,
        },
    )
    .await
}

/// What [`enqueue`] creates: `count` sessions of one kernel each, of the keypair's user in the
/// `default` domain and project, for `scaling_group`.
pub struct SessionSpec<'a> {
    pub access_key: &'a str,
    pub scaling_group: &'a str,
    pub count: usize,
    pub cpu: u32,
    pub mem_gib: u64,
}

/// The image every enqueued session runs.
pub const SESSION_IMAGE: &str = "cr.backend.ai/stable/python:3.9-ubuntu20.04";

/// Enqueues sessions as [`SessionSpec`] says, created one millisecond apart after every session
/// already there; returns their ids in order.
pub async fn enqueue(client: &tokio_postgres::Client, spec: &SessionSpec<'_>) -> Vec<uuid::Uuid> {
    let ids: Vec<uuid::Uuid> = (0..spec.count).map(|_| uuid::Uuid::new_v4()).collect();
    let slots =
        serde_json::json!({"cpu": spec.cpu.to_string(), "mem": (spec.mem_gib << 30).to_string()});
    let group: uuid::Uuid = DEFAULT_GROUP.parse().expect("group id");
    let sgroup = spec.scaling_group.to_owned();
    client
        .execute(
            "WITH owner AS (SELECT \"user\" AS uuid FROM keypairs WHERE access_key = $2),
                  base AS (SELECT greatest(clock_timestamp(),
                                           (SELECT max(created_at) FROM sessions)) AS t0),
                  new AS (SELECT id, ordinality FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, ordinality)),
                  s AS (
                INSERT INTO sessions (id, creation_id, name, session_type, cluster_mode, cluster_size,
                    scaling_group_name, target_sgroup_names, domain_name, group_id, user_uuid, access_key,
                    images, requested_slots, created_at, status, status_history)
                SELECT new.id, left(replace(new.id::text, '-', ''), 22), 's-' || left(new.id::text, 8),
                       'INTERACTIVE', 'single-node', 1, $5, ARRAY[$5]::varchar[], 'default',
                       $4, owner.uuid, $2, ARRAY[$6]::varchar[],
                       $3, base.t0 + new.ordinality * interval '1 millisecond', 'PENDING',
                       jsonb_build_object('PENDING', base.t0)
                  FROM new, owner, base
                RETURNING id, name, user_uuid, created_at)
             INSERT INTO kernels (id, session_id, session_name, session_type, cluster_mode, cluster_size,
                 cluster_role, cluster_idx, local_rank, cluster_hostname, scaling_group, domain_name,
                 group_id, user_uuid, access_key, image, architecture, registry, tag, occupied_slots,
                 requested_slots, created_at, status, status_history)
             SELECT gen_random_uuid(), s.id, s.name, 'INTERACTIVE', 'single-node', 1, 'main', 1, 0, 'main1',
                    $5, 'default', $4, s.user_uuid, $2,
                    $6, 'x86_64', 'cr.backend.ai',
                    '3.9-ubuntu20.04', $3, $3, s.created_at, 'PENDING', '{}'
               FROM s",
            &[&ids, &spec.access_key, &slots, &group, &sgroup, &SESSION_IMAGE],
        )
        .await
        .expect("enqueueing sessions");
    ids
}

pub fn load_options() -> bai_actors::scheduler::load::LoadOptions {
    bai_actors::scheduler::load::LoadOptions {
        now: chrono::Utc::now(),
        known_slots: bai_schema::slots::intrinsic_slot_types(),
        resource_priority: bai_actors::scheduler::snapshot::default_resource_priority(),
        max_container_count: None,
        roundrobin: Default::default(),
        max_pending: 1_000_000,
        // A cache of its own: each pass lists the agents' versions and reads every row.
        agent_cache: Some(Default::default()),
    }
}

pub use bai_testkit::scheduling::over_committed_agents;

/// Adds simulated agents as ALIVE rows of resource group `default` (what the heartbeat tracker
/// would insert), with their RPC address, version and slots.
pub async fn add_sim_agents(client: &tokio_postgres::Client, agents: &[bai_agent_sim::SimAgent]) {
    for agent in agents {
        client
            .execute(
                "INSERT INTO agents (id, status, status_changed, region, scaling_group,
                    available_slots, occupied_slots, addr, version, architecture)
                 VALUES ($1, 'ALIVE', now(), 'local', $2, $3, '{}', $4, $5, 'x86_64')",
                &[
                    &agent.id,
                    &agent.info.scaling_group,
                    &agent.info.available_slots.to_json(),
                    &agent.info.addr,
                    &agent.info.version,
                ],
            )
            .await
            .expect("adding a simulated agent");
    }
}

/// Simulated agents of `format` on free loopback ports, named `{prefix}-NNN`.
pub fn sim_fleet(
    prefix: &str,
    count: usize,
    format: bai_actors::wire::WireFormat,
) -> Vec<bai_agent_sim::SimAgent> {
    (0..count)
        .map(|n| bai_agent_sim::SimAgent::new(format!("{prefix}-{n:03}"), format, free_port()))
        .collect()
}

/// Kernels the simulated agents created more than once (must be none).
pub fn created_twice(ledger: &bai_agent_sim::rpc::SharedLedger) -> Vec<(String, u32)> {
    let ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
    ledger
        .created
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(kernel, count)| (kernel.clone(), *count))
        .collect()
}
