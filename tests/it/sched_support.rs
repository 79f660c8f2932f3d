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
