//! The bound on the agent RPC client's connections, against simulated agents on loopback
//! sockets: calls to more agents than the bound all succeed and never hold more connections
//! than it, an agent whose connection was closed answers again, calls in flight on one agent
//! get their replies while other agents' calls push connections out, a call past the bound waits
//! for a connection to come free (up to its timeout), and closed connections release their
//! sockets and tasks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bai_actors::agent_rpc::{
    AgentMethod, AgentRpc, AgentTarget, PoolLimits, RpcError, RpcTimeouts,
};
use bai_actors::metrics::METRICS;
use bai_actors::wire::{Value, WireFormat};
use bai_agent_sim::rpc::{SharedLedger, serve_fleet};
use bai_agent_sim::{SimAgent, StreamWriter};
use bai_testkit::ports::free_port;
use bai_testkit::redis::RedisServer;
use bai_testkit::wait::wait_for;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

/// A generous bound for sockets and tasks to go once closed (never a speed assertion).
const SETTLE: Duration = Duration::from_secs(20);

fn timeouts() -> RpcTimeouts {
    RpcTimeouts {
        connect: Duration::from_secs(5),
        handshake: Duration::from_secs(5),
        reply: Duration::from_secs(20),
    }
}

/// `count` simulated agents serving RPC in this process, and their targets.
struct Fleet {
    _redis: RedisServer,
    _servers: Vec<tokio::task::JoinHandle<Result<(), bai_agent_sim::SimError>>>,
    ledger: SharedLedger,
    targets: Vec<AgentTarget>,
}

impl Fleet {
    async fn start(count: usize) -> Fleet {
        let redis = RedisServer::start();
        let agents: Vec<SimAgent> = (0..count)
            .map(|index| SimAgent::new(format!("i-pool-{index}"), WireFormat::Payload, free_port()))
            .collect();
        let writer = StreamWriter::connect(&redis.addr())
            .await
            .expect("connecting the simulator to Redis");
        let ledger = SharedLedger::default();
        let servers = serve_fleet(&agents, &writer, &ledger);
        let targets = agents
            .iter()
            .map(|agent| AgentTarget {
                id: agent.id.clone(),
                addr: agent.info.addr.clone(),
                version: "26.9.6".into(),
            })
            .collect();
        Fleet {
            _redis: redis,
            _servers: servers,
            ledger,
            targets,
        }
    }

    fn pings_answered(&self) -> u64 {
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .calls
            .get("ping")
            .copied()
            .unwrap_or(0)
    }
}

fn client(max_open: usize, idle_after: Duration) -> AgentRpc {
    AgentRpc::with_limits(
        timeouts(),
        PoolLimits {
            max_open,
            idle_after,
        },
    )
}

async fn ping(rpc: &AgentRpc, target: &AgentTarget, message: &str) {
    match rpc.ping(target, message).await {
        Ok(Value::Str(reply)) if reply == message => {}
        other => panic!("ping {message:?} to {} answered {other:?}", target.addr),
    }
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test]
async fn calls_to_more_agents_than_the_bound_all_succeed_within_it() {
    let fleet = Fleet::start(8).await;
    let rpc = client(3, Duration::from_secs(3600));
    // One after the other: each new agent past the third closes the least recently used.
    for (index, target) in fleet.targets.iter().enumerate() {
        ping(&rpc, target, &format!("one {index}")).await;
        assert!(
            rpc.open_connections() <= 3,
            "{} connections open after calling {} agents",
            rpc.open_connections(),
            index + 1
        );
    }
    assert_eq!(rpc.open_connections(), 3);
    // All at once, three rounds over every agent: calls beyond the bound wait for a connection
    // to come free instead of opening more.
    let mut calls: FuturesUnordered<_> = (0..3)
        .flat_map(|round| fleet.targets.iter().map(move |target| (round, target)))
        .map(|(round, target)| {
            let rpc = &rpc;
            async move { ping(rpc, target, &format!("all {round} {}", target.id)).await }
        })
        .collect();
    let mut answered = 0;
    while calls.next().await.is_some() {
        answered += 1;
        assert!(
            rpc.open_connections() <= 3,
            "{} connections open with calls in flight",
            rpc.open_connections()
        );
    }
    assert_eq!(answered, 24);
    assert_eq!(fleet.pings_answered(), 8 + 24);
    drop(calls);
    // The /metrics gauge follows the client (the only one in this test process).
    assert_eq!(
        METRICS.agent_rpc_connections.load(Ordering::Relaxed),
        rpc.open_connections() as i64
    );
    drop(rpc);
    assert_eq!(METRICS.agent_rpc_connections.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_agent_whose_connection_was_closed_answers_again() {
    let fleet = Fleet::start(3).await;
    let rpc = client(2, Duration::from_secs(3600));
    let [first, second, third] = &fleet.targets[..] else {
        panic!("three agents");
    };
    ping(&rpc, first, "before").await;
    ping(&rpc, second, "b").await;
    // The third agent makes room by closing the first's connection (the least recently used).
    ping(&rpc, third, "c").await;
    assert_eq!(rpc.open_connections(), 2);
    // The first agent is called again: a new connection, transparently.
    ping(&rpc, first, "after").await;
    ping(&rpc, first, "and again").await;
    assert_eq!(rpc.open_connections(), 2);
}

#[tokio::test]
async fn calls_in_flight_on_one_agent_get_their_replies_while_others_push_connections_out() {
    let fleet = Fleet::start(7).await;
    let rpc = client(2, Duration::from_secs(3600));
    let (hot, others) = fleet.targets.split_first().expect("agents");
    // Every call starts at once: the hot agent's 200 are in flight together on its one
    // connection while the other agents' 200 take turns on the one connection left, each new
    // agent closing the previous one's connection.
    let hot_calls = (0..200).map(|index| (hot, format!("hot {index}")));
    let other_calls =
        (0..200).map(|index| (&others[index % others.len()], format!("other {index}")));
    let mut calls: FuturesUnordered<_> = hot_calls
        .zip(other_calls)
        .flat_map(|(hot, other)| [hot, other])
        .map(|(target, message)| {
            let rpc = &rpc;
            async move {
                let reply = rpc.ping(target, &message).await;
                (message, reply)
            }
        })
        .collect();
    let mut hot_answered = 0;
    while let Some((message, reply)) = calls.next().await {
        match reply {
            Ok(Value::Str(reply)) if reply == message => {}
            other => panic!("{message:?} answered {other:?}"),
        }
        hot_answered += usize::from(message.starts_with("hot"));
        assert!(rpc.open_connections() <= 2);
    }
    assert_eq!(hot_answered, 200);
    assert_eq!(fleet.pings_answered(), 400);
}

/// A ping that waits at most `within` (for a connection and for the reply).
async fn ping_within(
    rpc: &AgentRpc,
    target: &AgentTarget,
    message: &str,
    within: Duration,
) -> Result<Value, RpcError> {
    rpc.call(
        target,
        AgentMethod::Ping,
        vec![Value::str(message)],
        Vec::new(),
        Some(within),
    )
    .await
}

#[tokio::test]
async fn a_call_past_the_bound_waits_for_a_connection_to_come_free() {
    let fleet = Fleet::start(2).await;
    let rpc = client(1, Duration::from_secs(3600));
    let [busy, other] = &fleet.targets[..] else {
        panic!("two agents");
    };
    // A call in flight on the one connection allowed: started (it is connecting) and not
    // finished while this test does not poll it again.
    let mut in_flight = Box::pin(ping_within(&rpc, busy, "held", Duration::from_secs(60)));
    assert!(futures::poll!(in_flight.as_mut()).is_pending());
    assert_eq!(rpc.open_connections(), 1);
    // Another agent's call finds no connection to close and gives up after its own timeout.
    match ping_within(&rpc, other, "gives up", Duration::from_millis(300)).await {
        Err(RpcError::NoFreeConnection { open: 1, .. }) => {}
        other => panic!("expected NoFreeConnection, got {other:?}"),
    }
    // One that waits longer gets the connection as soon as the held call ends (cancelled here).
    let mut waiting = Box::pin(ping_within(&rpc, other, "waited", Duration::from_secs(60)));
    assert!(futures::poll!(waiting.as_mut()).is_pending());
    assert_eq!(rpc.open_connections(), 1);
    drop(in_flight);
    match waiting.await {
        Ok(Value::Str(reply)) if reply == "waited" => {}
        other => panic!("the waiting call answered {other:?}"),
    }
    assert_eq!(rpc.open_connections(), 1);
    // And the first agent answers again, closing the second's idle connection.
    ping(&rpc, busy, "again").await;
    assert_eq!(rpc.open_connections(), 1);
}

/// One line of `/proc/net/tcp`: local port, remote port, state (1 established, 10 listening)
/// and the inode of the socket (0 once no descriptor holds it).
struct TcpSocket {
    local_port: u16,
    remote_port: u16,
    state: u8,
    inode: u64,
}

fn tcp_sockets() -> Vec<TcpSocket> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port = |address: &str| {
        address
            .rsplit_once(':')
            .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(TcpSocket {
                local_port: port(fields.get(1)?)?,
                remote_port: port(fields.get(2)?)?,
                state: u8::from_str_radix(fields.get(3)?, 16).ok()?,
                inode: fields.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

fn port_of(target: &AgentTarget) -> u16 {
    target
        .addr
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("an agent address ends in its port")
}

#[tokio::test]
async fn closed_connections_release_their_sockets_and_tasks() {
    let fleet = Fleet::start(6).await;
    let ports: Vec<u16> = fleet.targets.iter().map(port_of).collect();
    wait_for("every simulated agent to listen", SETTLE, || async {
        let sockets = tcp_sockets();
        ports.iter().all(|port| {
            sockets
                .iter()
                .any(|socket| socket.local_port == *port && socket.state == 10)
        })
    })
    .await;
    // The client's sockets to the agents that a descriptor still holds.
    let client_sockets = || {
        tcp_sockets()
            .iter()
            .filter(|socket| ports.contains(&socket.remote_port) && socket.inode != 0)
            .count()
    };
    assert_eq!(client_sockets(), 0);
    let tasks = alive_tasks();

    // Idle at once: every connection without calls is closed by the next sweep.
    let rpc = client(4, Duration::ZERO);
    for (index, target) in fleet.targets.iter().enumerate() {
        ping(&rpc, target, &format!("ping {index}")).await;
        assert!(rpc.open_connections() <= 4);
    }
    // Calling a new agent closed the idle ones already (they were all past the idle time).
    assert_eq!(rpc.open_connections(), 1);
    assert_eq!(rpc.close_idle_connections(), 1);
    assert_eq!(rpc.open_connections(), 0);
    wait_for(
        "every client socket of the closed connections to close",
        SETTLE,
        || async {
            match client_sockets() {
                0 => Ok(()),
                open => Err(format!("{open} client sockets still held")),
            }
        },
    )
    .await;
    // The client's reader and writer tasks, and the agents' per-peer tasks, end (the idle
    // sweep of the client is the one task that may remain).
    wait_for(
        "every task of the closed connections to end",
        SETTLE,
        || async {
            match alive_tasks() {
                now if now <= tasks + 1 => Ok(()),
                now => Err(format!("{now} tasks alive, {tasks} before the calls")),
            }
        },
    )
    .await;
    // And every agent still answers, on new connections.
    for (index, target) in fleet.targets.iter().enumerate() {
        ping(&rpc, target, &format!("again {index}")).await;
    }
}
