//! Agent administration on the real stack: `POST /manager/scheduler/operation` includes and
//! excludes agents (their `schedulable` as GraphQL shows it), `modify_agent` moves a 23.09
//! agent to another scaling group (telling the agent over RPC) and refuses it for an agent
//! that cannot take it, and `Agent.hardware_metadata` is the agent's `gather_hwinfo` answer.

use bai_actors::wire::WireFormat;
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_agent_sim::{SimAgent, SimError, StreamWriter};
use bai_testkit::ports::free_port;
use serde_json::{Value, json};

use crate::api_support::{ADMIN_AK, ADMIN_SK, Signer};
use crate::hostile_support::HostileWorld;
use crate::sched_support::add_sim_agents;

const AGENTS: &str = "query { agent_list(limit: 10, offset: 0, order: \"id\") { items { id schedulable scaling_group hardware_metadata } } }";

struct AgentWorld {
    world: HostileWorld,
    ledger: SharedLedger,
    servers: Vec<tokio::task::JoinHandle<Result<(), SimError>>>,
}

impl Drop for AgentWorld {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

/// A manager with two simulated agents serving RPC: `i-ops-old` (23.09) and `i-ops-new`
/// (26.9.6), both ALIVE in scaling group `default`, and a second scaling group `gpu`.
async fn agent_world() -> AgentWorld {
    let world = HostileWorld::start("", false).await;
    let agents = vec![
        SimAgent::new("i-ops-old", WireFormat::Args, free_port()),
        SimAgent::new("i-ops-new", WireFormat::Payload, free_port()),
    ];
    let writer = StreamWriter::connect(&world.env.redis.addr())
        .await
        .expect("connecting the simulator to Redis");
    let ledger = SharedLedger::default();
    let servers = serve_fleet(&agents, &writer, &ledger);
    let db = world.env.db.connect().await;
    db.execute(
        "INSERT INTO scaling_groups (name, driver, scheduler) VALUES ('gpu', 'static', 'fifo')",
        &[],
    )
    .await
    .expect("a second scaling group");
    add_sim_agents(&db, &agents).await;
    AgentWorld {
        world,
        ledger,
        servers,
    }
}

impl AgentWorld {
    async fn gql(&self, query: &str) -> Value {
        let (status, body) = self
            .world
            .signed(
                &Signer::new(ADMIN_AK, ADMIN_SK),
                reqwest::Method::POST,
                "/admin/gql",
                Some(&json!({"query": query})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn agents(&self) -> Vec<Value> {
        let body = self.gql(AGENTS).await;
        assert!(body.get("errors").is_none(), "{body}");
        body["data"]["agent_list"]["items"]
            .as_array()
            .expect("agent items")
            .clone()
    }

    async fn schedulable(&self) -> Vec<(String, bool)> {
        self.agents()
            .await
            .iter()
            .map(|agent| {
                (
                    agent["id"].as_str().unwrap().to_owned(),
                    agent["schedulable"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    async fn operation(&self, signer: &Signer, body: Value) -> (u16, Value) {
        self.world
            .signed(
                signer,
                reqwest::Method::POST,
                "/manager/scheduler/operation",
                Some(&body),
            )
            .await
    }

    fn calls(&self, method: &str) -> u64 {
        let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        ledger.calls.get(method).copied().unwrap_or(0)
    }
}

#[tokio::test]
async fn scheduler_operations_include_and_exclude_agents() {
    let world = agent_world().await;
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let both = |a: bool, b: bool| vec![("i-ops-new".to_owned(), a), ("i-ops-old".to_owned(), b)];
    assert_eq!(world.schedulable().await, both(true, true));

    let reply = world
        .operation(
            &admin,
            json!({"op": "exclude-agents", "args": ["i-ops-old", "i-ops-new"]}),
        )
        .await;
    assert_eq!(reply.0, 204, "{reply:?}");
    assert_eq!(world.schedulable().await, both(false, false));

    let reply = world
        .operation(
            &admin,
            json!({"op": "include-agents", "args": ["i-ops-new"]}),
        )
        .await;
    assert_eq!(reply.0, 204, "{reply:?}");
    assert_eq!(world.schedulable().await, both(true, false));

    // An unknown id changes nothing, not even the known ones.
    let reply = world
        .operation(
            &admin,
            json!({"op": "include-agents", "args": ["i-ops-old", "i-nowhere"]}),
        )
        .await;
    assert_eq!(reply.0, 404, "{reply:?}");
    assert_eq!(reply.1["title"], "No such agent instance.");
    assert_eq!(world.schedulable().await, both(true, false));

    let reply = world
        .operation(&admin, json!({"op": "drain", "args": []}))
        .await;
    assert_eq!(reply.0, 400, "{reply:?}");
    let reply = world
        .operation(&admin, json!({"op": "include-agents", "args": "i-ops-old"}))
        .await;
    assert_eq!(reply.0, 400, "{reply:?}");
    assert_eq!(world.schedulable().await, both(true, false));
}

#[tokio::test]
async fn modify_agent_moves_an_agent_that_can_take_it() {
    let world = agent_world().await;
    let modify = |id: &str| {
        format!(
            "mutation {{ modify_agent(id: \"{id}\", props: {{scaling_group: \"gpu\", schedulable: false}}) {{ ok msg }} }}"
        )
    };
    let body = world.gql(&modify("i-ops-old")).await;
    assert_eq!(
        body["data"]["modify_agent"],
        json!({"ok": true, "msg": "success"}),
        "{body}"
    );
    assert_eq!(world.calls("update_scaling_group"), 1);

    // A 26.9.6 agent has no such call: refused, and the row is left alone.
    let body = world.gql(&modify("i-ops-new")).await;
    assert_eq!(body["data"]["modify_agent"]["ok"], false, "{body}");
    assert!(
        body["data"]["modify_agent"]["msg"]
            .as_str()
            .unwrap()
            .contains("agent.toml"),
        "{body}"
    );
    assert_eq!(world.calls("update_scaling_group"), 1);

    let agents = world.agents().await;
    let by_id = |id: &str| {
        agents
            .iter()
            .find(|agent| agent["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id("i-ops-old")["scaling_group"], "gpu");
    assert_eq!(by_id("i-ops-old")["schedulable"], false);
    assert_eq!(by_id("i-ops-new")["scaling_group"], "default");
    assert_eq!(by_id("i-ops-new")["schedulable"], true);
}

#[tokio::test]
async fn hardware_metadata_is_the_agents_own_report() {
    let world = agent_world().await;
    let agents = world.agents().await;
    assert_eq!(agents.len(), 2);
    for agent in &agents {
        let text = agent["hardware_metadata"]
            .as_str()
            .unwrap_or_else(|| panic!("hardware_metadata of {agent}"));
        let report: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            report["cpu"],
            json!({"status": "healthy", "status_info": null,
                   "metadata": {"agent": agent["id"]}})
        );
        assert_eq!(report["mem"]["status"], "healthy");
    }
    assert_eq!(world.calls("gather_hwinfo"), 2);
}
