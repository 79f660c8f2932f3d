//! The agent side of callosum RPC for simulated agents: a ZeroMQ ROUTER per agent that answers
//! the calls the manager makes, with the bodies and events of the 26.9.6 dummy agent:
//! `create_kernels` emits `kernel_preparing`, `kernel_creating`, `kernel_started` and replies
//! with one creation-info map per kernel; `destroy_kernel` emits `kernel_terminated`. Every
//! created kernel id is recorded, so tests can check that no kernel was created twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bai_actors::agent_rpc::frame::{self, Header, Message, Payload};
use bai_actors::wire::{Event, KernelEvent, KernelEventKind, Value, WireFormat};
use bytes::Bytes;
use zeromq::{RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::kernel::{self, KernelFiles};
use crate::terminal::start_terminal;
use crate::{SimAgent, SimError, StreamWriter};

/// What every simulated agent did, shared by the fleet.
#[derive(Debug, Default)]
pub struct RpcLedger {
    /// How many times each kernel id was created (a value above 1 is a double placement).
    pub created: HashMap<String, u32>,
    pub destroyed: HashMap<String, u32>,
    /// Calls by method name.
    pub calls: BTreeMap<String, u64>,
    /// Kernels currently running per agent.
    pub running: HashMap<String, Vec<String>>,
    /// Files uploaded to each kernel.
    pub files: HashMap<String, KernelFiles>,
    /// Interrupts received per kernel.
    pub interrupts: HashMap<String, u32>,
    /// Restarts received per kernel.
    pub restarts: HashMap<String, u32>,
    /// Query code each kernel was asked to run, in order (e.g. a terminal's `%resize 24 80`).
    pub queries: HashMap<String, Vec<String>>,
    /// The fake terminals of kernels of agents made with `with_terminals`, until destroyed.
    pub terminals: HashMap<String, crate::terminal::Terminal>,
}

pub type SharedLedger = Arc<Mutex<RpcLedger>>;

fn ledger(shared: &SharedLedger) -> std::sync::MutexGuard<'_, RpcLedger> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long the simulated container start takes (the dummy's delays add up to ~1.3 s; shorter
/// here so that tests and benchmarks measure the manager, not the simulation).
pub const START_DELAY: Duration = Duration::from_millis(20);

/// The terminal ports the dummy agent reports (container ports 2002/2003, nothing listens).
pub const DUMMY_STDIN_PORT: u16 = 2002;
pub const DUMMY_STDOUT_PORT: u16 = 2003;

/// Binds `agent`'s RPC address and serves until the task is dropped.
pub async fn serve(
    agent: SimAgent,
    writer: StreamWriter,
    ledger: SharedLedger,
) -> Result<(), SimError> {
    serve_with_delay(agent, writer, ledger, START_DELAY).await
}

/// [`serve`] with containers that take `start_delay` to start (a test that kills a manager
/// while it waits for agents wants them slow).
pub async fn serve_with_delay(
    agent: SimAgent,
    writer: StreamWriter,
    ledger: SharedLedger,
    start_delay: Duration,
) -> Result<(), SimError> {
    let mut socket = RouterSocket::new();
    socket
        .bind(&agent.info.addr)
        .await
        .map_err(|e| SimError::Rpc(format!("binding {}: {e}", agent.info.addr)))?;
    let (mut send, mut recv) = socket.split();
    let (reply_tx, mut reply_rx) = tokio::sync::mpsc::unbounded_channel::<ZmqMessage>();
    let sender = tokio::spawn(async move {
        while let Some(message) = reply_rx.recv().await {
            // A reply to a manager that went away fails for that peer only; the others still
            // wait for theirs (a real agent's ROUTER drops it the same way).
            let _ = send.send(message).await;
        }
    });
    loop {
        let message = match recv.recv().await {
            Ok(message) => message,
            Err(_) => break,
        };
        let frames: Vec<Bytes> = message.into_vec();
        if frames.len() != 4 {
            continue;
        }
        let peer = frames[0].clone();
        let refs: Vec<&[u8]> = frames[1..].iter().map(|f| f.as_ref()).collect();
        let reply_tx = reply_tx.clone();
        match frame::decode(&refs) {
            Ok(Message::Ping) => {
                let _ = reply_tx.send(to_message(
                    peer,
                    frame::pong(frames[2].to_vec(), frames[3].to_vec()),
                ));
            }
            Ok(Message::Upper {
                header,
                payload: Payload::Call { args, kwargs: _ },
            }) => {
                let agent = agent.clone();
                let writer = writer.clone();
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let reply = handle(&agent, writer, &ledger, &header, args, start_delay).await;
                    let _ = reply_tx.send(to_message(peer, reply));
                });
            }
            _ => {}
        }
    }
    sender.abort();
    Ok(())
}

fn to_message(peer: Bytes, frames: [Vec<u8>; 3]) -> ZmqMessage {
    let mut all = vec![peer];
    all.extend(frames.into_iter().map(Bytes::from));
    ZmqMessage::try_from(all).unwrap_or_else(|_| ZmqMessage::from(Vec::<u8>::new()))
}

fn text(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// What `gather_hwinfo` answers: one healthy entry per device kind, shaped as a real agent's
/// `HardwareMetadata` (`status`, `status_info`, `metadata`).
fn hardware_metadata(agent: &SimAgent) -> Value {
    let device = |metadata: Vec<(Value, Value)>| {
        Value::Map(vec![
            (Value::str("status"), Value::str("healthy")),
            (Value::str("status_info"), Value::Nil),
            (Value::str("metadata"), Value::Map(metadata)),
        ])
    };
    Value::Map(vec![
        (
            Value::str("cpu"),
            device(vec![(Value::str("agent"), Value::str(&agent.id))]),
        ),
        (Value::str("mem"), device(Vec::new())),
    ])
}

async fn handle(
    agent: &SimAgent,
    mut writer: StreamWriter,
    shared: &SharedLedger,
    header: &Header,
    args: Vec<Value>,
    start_delay: Duration,
) -> [Vec<u8>; 3] {
    *ledger(shared)
        .calls
        .entry(header.method.clone())
        .or_default() += 1;
    match header.method.as_str() {
        "ping" => frame::result(header, args.first().unwrap_or(&Value::Nil)),
        "gather_hwinfo" => frame::result(header, &hardware_metadata(agent)),
        "sync_kernel_registry"
        | "update_scaling_group"
        | "create_local_network"
        | "destroy_local_network" => frame::result(header, &Value::Nil),
        "check_running" | "check_creating" => {
            let kernel = text(args.first());
            let running = ledger(shared)
                .running
                .get(&agent.id)
                .is_some_and(|kernels| kernels.contains(&kernel));
            frame::result(header, &Value::Bool(running))
        }
        "create_kernels" => {
            let session = text(args.first());
            let kernels: Vec<String> = args
                .get(1)
                .and_then(Value::as_array)
                .map(|ids| ids.iter().map(|id| text(Some(id))).collect())
                .unwrap_or_default();
            let session_ref = &session;
            let events = |kind| {
                kernels.iter().map(move |kernel| {
                    (
                        agent,
                        kernel_event(kind, kernel, session_ref, serde_json::Value::Null),
                    )
                })
            };
            let _ = writer.send_many(events(KernelEventKind::Preparing)).await;
            let _ = writer.send_many(events(KernelEventKind::Creating)).await;
            tokio::time::sleep(start_delay).await;
            // The dummy agent's fixed terminal ports, or those of a fake terminal per kernel.
            let mut terminal_ports = HashMap::new();
            if agent.terminals {
                for kernel in &kernels {
                    match start_terminal().await {
                        Ok(terminal) => {
                            terminal_ports.insert(
                                kernel.clone(),
                                (terminal.stdin_port, terminal.stdout_port),
                            );
                            ledger(shared).terminals.insert(kernel.clone(), terminal);
                        }
                        Err(error) => {
                            return frame::failure(
                                header,
                                "RuntimeError",
                                &format!("RuntimeError('{error}')"),
                                "",
                            );
                        }
                    }
                }
            }
            let ports_of = |kernel: &String| {
                terminal_ports
                    .get(kernel)
                    .copied()
                    .unwrap_or((DUMMY_STDIN_PORT, DUMMY_STDOUT_PORT))
            };
            let started = kernels.iter().map(|kernel| {
                let (stdin_port, stdout_port) = ports_of(kernel);
                let mut info = serde_json::json!({
                    "container_id": "", "kernel_host": "127.0.0.1", "repl_in_port": 2000,
                    "repl_out_port": 2001, "service_ports": [],
                });
                if agent.terminals {
                    info["stdin_port"] = stdin_port.into();
                    info["stdout_port"] = stdout_port.into();
                }
                (
                    agent,
                    kernel_event(KernelEventKind::Started, kernel, &session, info),
                )
            });
            let _ = writer.send_many(started).await;
            {
                let mut ledger = ledger(shared);
                for kernel in &kernels {
                    *ledger.created.entry(kernel.clone()).or_default() += 1;
                    ledger
                        .running
                        .entry(agent.id.clone())
                        .or_default()
                        .push(kernel.clone());
                }
            }
            let replies = kernels
                .iter()
                .map(|kernel| {
                    let (stdin_port, stdout_port) = ports_of(kernel);
                    Value::map_of([
                        ("id", Value::str(kernel.clone())),
                        ("kernel_host", Value::str("127.0.0.1")),
                        ("repl_in_port", Value::Int(2000)),
                        ("repl_out_port", Value::Int(2001)),
                        ("stdin_port", Value::Int(i64::from(stdin_port))),
                        ("stdout_port", Value::Int(i64::from(stdout_port))),
                        ("service_ports", Value::Array(Vec::new())),
                        ("container_id", Value::str("")),
                        ("agent_addr", Value::str(agent.info.addr.clone())),
                        (
                            "scaling_group",
                            Value::str(agent.info.scaling_group.clone()),
                        ),
                    ])
                })
                .collect();
            frame::result(header, &Value::Array(replies))
        }
        "destroy_kernel" => {
            let kernel = text(args.first());
            let session = text(args.get(1));
            let reason = match args.get(2) {
                Some(Value::Str(reason)) => reason.clone(),
                _ => "user-requested".to_owned(),
            };
            let known = {
                let mut ledger = ledger(shared);
                *ledger.destroyed.entry(kernel.clone()).or_default() += 1;
                ledger.terminals.remove(&kernel);
                let running = ledger.running.entry(agent.id.clone()).or_default();
                let before = running.len();
                running.retain(|k| *k != kernel);
                before != running.len()
            };
            let mut event = kernel_event(
                KernelEventKind::Terminated,
                &kernel,
                &session,
                serde_json::Value::Null,
            );
            if let Event::Kernel(kernel_event) = &mut event {
                kernel_event.reason = if known {
                    reason
                } else {
                    "already-terminated".into()
                };
                kernel_event.exit_code = Some(-1);
            }
            let _ = writer.send(agent, &event).await;
            frame::result(header, &Value::Nil)
        }
        "execute" => match kernel::execute_args(agent.format, &args) {
            Some(call) => {
                if call.mode == "query" {
                    ledger(shared)
                        .queries
                        .entry(call.kernel_id.clone())
                        .or_default()
                        .push(call.code.clone());
                }
                frame::result(header, &kernel::execute(&call))
            }
            None => frame::failure(header, "TypeError", "TypeError('execute()')", ""),
        },
        "interrupt_kernel" => {
            *ledger(shared)
                .interrupts
                .entry(text(args.first()))
                .or_default() += 1;
            frame::result(header, &Value::Map(Vec::new()))
        }
        // The kernel runner's answer for an app it started (or had running).
        "start_service" => {
            frame::result(header, &Value::map_of([("status", Value::str("started"))]))
        }
        "get_completions" => frame::result(
            header,
            &Value::map_of([
                ("status", Value::str("finished")),
                ("completions", Value::Array(Vec::new())),
            ]),
        ),
        "restart_kernel" => {
            // 26.x: (session, kernel, image, config); 23.09: (creation id, session, kernel, config).
            let kernel = match agent.format {
                WireFormat::Payload => text(args.get(1)),
                WireFormat::Args => text(args.get(2)),
            };
            let restarts = {
                let mut ledger = ledger(shared);
                let count = ledger.restarts.entry(kernel.clone()).or_default();
                *count += 1;
                *count
            };
            let mut reply = vec![
                ("id", Value::str(kernel.clone())),
                ("kernel_host", Value::str("127.0.0.1")),
                ("repl_in_port", Value::Int(2000)),
                ("repl_out_port", Value::Int(2001)),
                ("service_ports", Value::Array(Vec::new())),
                ("container_id", Value::str(format!("restarted-{restarts}"))),
            ];
            // A new container has a new terminal on new ports, as a real agent's would; the
            // old one goes away with its sockets.
            let had_terminal = ledger(shared).terminals.remove(&kernel).is_some();
            if had_terminal {
                match start_terminal().await {
                    Ok(terminal) => {
                        reply.push(("stdin_port", Value::Int(i64::from(terminal.stdin_port))));
                        reply.push(("stdout_port", Value::Int(i64::from(terminal.stdout_port))));
                        ledger(shared).terminals.insert(kernel.clone(), terminal);
                    }
                    Err(error) => {
                        return frame::failure(
                            header,
                            "RuntimeError",
                            &format!("RuntimeError('{error}')"),
                            "",
                        );
                    }
                }
            }
            frame::result(header, &Value::map_of(reply))
        }
        "upload_file" => {
            let kernel = text(args.first());
            let name = text(args.get(1));
            let data = args
                .get(2)
                .and_then(Value::as_bin)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            ledger(shared)
                .files
                .entry(kernel)
                .or_default()
                .insert(name.trim_start_matches('/').to_owned(), data);
            frame::result(header, &Value::Nil)
        }
        "download_file" | "download_single" => {
            let kernel = text(args.first());
            let path = text(args.get(1));
            let name = path
                .trim_start_matches("/home/work/")
                .trim_start_matches('/');
            let data = ledger(shared)
                .files
                .get(&kernel)
                .and_then(|files| files.get(name).cloned());
            match data {
                Some(data) if header.method == "download_single" => {
                    frame::result(header, &Value::Bin(data))
                }
                Some(data) => frame::result(header, &Value::Bin(kernel::tar_one(name, &data))),
                None => frame::failure(
                    header,
                    "FileNotFoundError",
                    &format!("FileNotFoundError('{path}')"),
                    "",
                ),
            }
        }
        "list_files" => {
            let kernel = text(args.first());
            let path = text(args.get(1));
            let listing = kernel::list_files(
                ledger(shared)
                    .files
                    .get(&kernel)
                    .unwrap_or(&KernelFiles::new()),
                &path,
            );
            frame::result(header, &listing)
        }
        "get_logs" => frame::result(
            header,
            &Value::map_of([(
                "logs",
                Value::str(format!("simulated log of kernel {}\n", text(args.first()))),
            )]),
        ),
        "commit" => {
            let kernel = text(args.first());
            frame::result(
                header,
                &Value::map_of([
                    ("bgtask_id", Value::str(uuid::Uuid::new_v4().to_string())),
                    ("kernel", Value::str(kernel)),
                    ("path", Value::Nil),
                ]),
            )
        }
        "get_commit_status" => frame::result(
            header,
            &Value::map_of([
                ("kernel", Value::str(text(args.first()))),
                ("status", Value::str("ready")),
            ]),
        ),
        other => frame::failure(
            header,
            "KeyError",
            &format!("KeyError('{other}')"),
            "the simulated agent does not expose this method",
        ),
    }
}

fn kernel_event(
    kind: KernelEventKind,
    kernel: &str,
    session: &str,
    creation_info: serde_json::Value,
) -> Event {
    Event::Kernel(KernelEvent {
        kind,
        kernel_id: kernel.parse().unwrap_or_default(),
        session_id: session.parse().unwrap_or_default(),
        reason: String::new(),
        creation_info,
        exit_code: None,
    })
}

/// Starts an RPC server for every agent; returns their tasks (abort to stop).
pub fn serve_fleet(
    agents: &[SimAgent],
    writer: &StreamWriter,
    ledger: &SharedLedger,
) -> Vec<tokio::task::JoinHandle<Result<(), SimError>>> {
    serve_fleet_with_delay(agents, writer, ledger, START_DELAY)
}

/// [`serve_fleet`] with containers that take `start_delay` to start.
pub fn serve_fleet_with_delay(
    agents: &[SimAgent],
    writer: &StreamWriter,
    ledger: &SharedLedger,
    start_delay: Duration,
) -> Vec<tokio::task::JoinHandle<Result<(), SimError>>> {
    agents
        .iter()
        .map(|agent| {
            tokio::spawn(serve_with_delay(
                agent.clone(),
                writer.clone(),
                ledger.clone(),
                start_delay,
            ))
        })
        .collect()
}
