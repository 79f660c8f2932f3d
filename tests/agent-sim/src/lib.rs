//! Simulated Backend.AI agents in one process: each has an id, an RPC address, slots and a
//! wire format, and puts heartbeats and lifecycle events on the Redis `events` stream exactly
//! as a real agent of that generation would. A test tool: the real agent stays the judge of
//! compatibility.
//!
//! Extension point for RPC: every [`SimAgent`] has the `addr` it advertises; a callosum
//! server answering the manager's calls binds there (a `rpc` module beside this one, started
//! per agent by the fleet).

pub mod kernel;
pub mod rpc;
pub mod terminal;

use std::collections::BTreeMap;
use std::time::Duration;

use bai_actors::wire::entry::{EVENT_STREAM, render_entry};
use bai_actors::wire::{AgentImage, AgentInfo, Event, WireFormat};
use bai_schema::{ResourceSlot, SlotAmount, SlotUnit};
use redis::aio::MultiplexedConnection;

/// 26.x agents cap the stream themselves when they add to it (`XADD events MAXLEN ~ 128`).
pub const AGENT_26_STREAM_MAXLEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("encoding: {0}")]
    Encode(#[from] bai_actors::wire::EventError),
    #[error("rpc: {0}")]
    Rpc(String),
}

/// One simulated agent.
#[derive(Debug, Clone)]
pub struct SimAgent {
    pub id: String,
    pub format: WireFormat,
    pub info: AgentInfo,
    /// Whether its kernels get a fake terminal ([`terminal`]) on real loopback ports; off by
    /// default (kernels then report the dummy agent's fixed ports and listen on none).
    pub terminals: bool,
}

impl SimAgent {
    /// An agent of the dummy kind: `cpu` (count) and `mem` (bytes) slots, version by format.
    pub fn new(id: impl Into<String>, format: WireFormat, rpc_port: u16) -> SimAgent {
        let version = match format {
            WireFormat::Args => "23.09.10",
            WireFormat::Payload => "26.9.6",
        };
        let mut slot_types = BTreeMap::new();
        slot_types.insert("cpu".to_owned(), SlotUnit::Count);
        slot_types.insert("mem".to_owned(), SlotUnit::Bytes);
        SimAgent {
            id: id.into(),
            format,
            info: AgentInfo {
                ip: "127.0.0.1".into(),
                region: "local".into(),
                scaling_group: "default".into(),
                addr: format!("tcp://127.0.0.1:{rpc_port}"),
                public_key: None,
                public_host: "127.0.0.1".into(),
                available_slots: ResourceSlot::from_pairs([
                    ("cpu", SlotAmount::from(4)),
                    ("mem", SlotAmount::from(8_589_934_592)),
                ])
                .into(),
                slot_types: slot_types.into(),
                version: version.into(),
                compute_plugins: serde_json::json!({
                    "cpu": {"version": version}, "mem": {"version": version}
                })
                .into(),
                images: match format {
                    WireFormat::Args => Some(Default::default()),
                    WireFormat::Payload => None,
                },
                architecture: "x86_64".into(),
                auto_terminate_abusing_kernel: false,
            },
            terminals: false,
        }
    }

    pub fn with_slot(mut self, slot: &str, unit: SlotUnit, amount: SlotAmount) -> SimAgent {
        std::sync::Arc::make_mut(&mut self.info.available_slots).set(slot, amount);
        std::sync::Arc::make_mut(&mut self.info.slot_types).insert(slot.to_owned(), unit);
        self
    }

    pub fn with_scaling_group(mut self, scaling_group: &str) -> SimAgent {
        self.info.scaling_group = scaling_group.to_owned();
        self
    }

    pub fn with_images(mut self, images: Vec<AgentImage>) -> SimAgent {
        self.info.images = Some(std::sync::Arc::new(images));
        self
    }

    /// Kernels of this agent get a fake terminal that echoes stdin to stdout.
    pub fn with_terminals(mut self) -> SimAgent {
        self.terminals = true;
        self
    }

    pub fn heartbeat(&self) -> Event {
        Event::AgentHeartbeat(std::sync::Arc::new(self.info.clone()))
    }
}

/// Adds entries to the stream, as the agents do.
#[derive(Clone)]
pub struct StreamWriter {
    connection: MultiplexedConnection,
}

impl StreamWriter {
    /// Connects to `redis_addr` (`host:port`), db 4.
    pub async fn connect(redis_addr: &str) -> Result<StreamWriter, SimError> {
        let client = redis::Client::open(format!("redis://{redis_addr}/4"))?;
        let connection = client.get_multiplexed_async_connection().await?;
        Ok(StreamWriter { connection })
    }

    fn command(agent: &SimAgent, event: &Event) -> Result<redis::Cmd, SimError> {
        let mut command = redis::cmd("XADD");
        command.arg(EVENT_STREAM);
        if agent.format == WireFormat::Payload {
            command.arg("MAXLEN").arg("~").arg(AGENT_26_STREAM_MAXLEN);
        }
        command.arg("*");
        for (key, value) in render_entry(event, &agent.id, agent.format)? {
            command.arg(key).arg(value);
        }
        Ok(command)
    }

    /// Adds `event` from `agent`; returns the stream id.
    pub async fn send(&mut self, agent: &SimAgent, event: &Event) -> Result<String, SimError> {
        Ok(Self::command(agent, event)?
            .query_async(&mut self.connection)
            .await?)
    }

    /// Adds one heartbeat per agent in one round trip; returns the stream ids in order.
    pub async fn heartbeat_all(&mut self, agents: &[SimAgent]) -> Result<Vec<String>, SimError> {
        self.send_many(agents.iter().map(|agent| (agent, agent.heartbeat())))
            .await
    }

    pub async fn send_many<'a>(
        &mut self,
        events: impl Iterator<Item = (&'a SimAgent, Event)>,
    ) -> Result<Vec<String>, SimError> {
        let mut pipe = redis::pipe();
        for (agent, event) in events {
            pipe.add_command(Self::command(agent, &event)?);
        }
        Ok(pipe.query_async(&mut self.connection).await?)
    }
}

/// `count` agents named `<prefix><n>`, RPC ports from `first_port`.
pub fn fleet(prefix: &str, count: usize, format: WireFormat, first_port: u16) -> Vec<SimAgent> {
    (0..count)
        .map(|index| {
            SimAgent::new(
                format!("{prefix}{index}"),
                format,
                first_port.wrapping_add(index as u16),
            )
        })
        .collect()
}

/// Heartbeats every agent once per `interval`, spread evenly in `slices` pipelined groups
/// over the interval (as independent agents would be), for `rounds` intervals.
pub async fn run_heartbeats(
    writer: &mut StreamWriter,
    agents: &[SimAgent],
    interval: Duration,
    slices: usize,
    rounds: u64,
) -> Result<u64, SimError> {
    let slices = slices.clamp(1, agents.len().max(1));
    let chunk = agents.len().div_ceil(slices).max(1);
    let tick = interval / slices as u32;
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0;
    for _ in 0..rounds {
        for group in agents.chunks(chunk) {
            ticker.tick().await;
            sent += writer.heartbeat_all(group).await?.len() as u64;
        }
    }
    Ok(sent)
}
