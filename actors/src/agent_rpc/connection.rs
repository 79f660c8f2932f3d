//! One callosum connection to one agent: a ZeroMQ DEALER to the agent's ROUTER.
//!
//! Calls are pipelined: each gets the next sequence number, and a reader task hands replies to
//! their callers by sequence number (the agent may answer out of order). The `zeromq` crate never
//! reconnects a DEALER, so any send error, a lost reader or a reply timeout throws the socket
//! away; the next call connects afresh (about 1–2 ms) and repeats the PING/PONG handshake.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;
use zeromq::{DealerSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage};

use super::frame::{self, Message, Payload};
use crate::wire::Value;

/// Timeouts of the RPC client; every one is bounded because `zeromq` has none of its own on
/// receive, and retries a refused connect for 30 s by default.
#[derive(Debug, Clone, Copy)]
pub struct RpcTimeouts {
    /// TCP connect plus the ZMTP greeting.
    pub connect: Duration,
    /// PING → PONG (callosum's own default is 5 s).
    pub handshake: Duration,
    /// Default wait for a reply when the caller does not give one.
    pub reply: Duration,
}

impl Default for RpcTimeouts {
    fn default() -> Self {
        RpcTimeouts {
            connect: Duration::from_secs(5),
            handshake: Duration::from_secs(5),
            // The slowest call we make, create_kernels, returns once containers are up; the
            // dummy agent takes ~1.3 s, a real one pulling nothing well under a minute.
            reply: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot connect to agent RPC at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("agent RPC at {addr} did not answer the PING handshake within {after:?}")]
    Handshake { addr: String, after: Duration },
    #[error("cannot send {method} to agent RPC at {addr}: {reason}")]
    Send {
        addr: String,
        method: String,
        reason: String,
    },
    #[error("agent RPC at {addr} gave no reply to {method} within {after:?}")]
    Timeout {
        addr: String,
        method: String,
        after: Duration,
    },
    #[error("the connection to agent RPC at {addr} broke while waiting for {method}")]
    ConnectionLost { addr: String, method: String },
    #[error("agent RPC at {addr} sent a malformed message: {reason}")]
    Frame { addr: String, reason: String },
    #[error("agent at {addr} failed {method}: {name}: {repr}")]
    Failure {
        addr: String,
        method: String,
        name: String,
        repr: String,
    },
    #[error("agent at {addr} cancelled {method}")]
    Cancelled { addr: String, method: String },
    #[error(
        "no agent connection came free for {method} to {addr} within {after:?}: all {open} open \
         connections have calls in flight"
    )]
    NoFreeConnection {
        addr: String,
        method: String,
        after: Duration,
        open: usize,
    },
    #[error(
        "the agent's version {version:?} does not expose {method}; calling it would stop its RPC server"
    )]
    NotExposed { method: String, version: String },
}

type ReplySlot = oneshot::Sender<Result<Value, RpcError>>;

struct Live {
    send: zeromq::DealerSendHalf,
    pending: Arc<std::sync::Mutex<HashMap<u64, (String, ReplySlot)>>>,
    dead: Arc<AtomicBool>,
    reader: JoinHandle<()>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.reader.abort();
        let pending = std::mem::take(&mut *lock(&self.pending));
        drop(pending);
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A lazily (re)connected callosum client for one agent address.
pub struct AgentConnection {
    addr: String,
    timeouts: RpcTimeouts,
    live: Mutex<Option<Live>>,
    next_seq: std::sync::atomic::AtomicU64,
}

impl AgentConnection {
    pub fn new(addr: impl Into<String>, timeouts: RpcTimeouts) -> AgentConnection {
        AgentConnection {
            addr: addr.into(),
            timeouts,
            live: Mutex::new(None),
            next_seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Calls `method(*args, **kwargs)` and waits up to `timeout` (default: the reply timeout).
    pub async fn call(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Vec<(String, Value)>,
        timeout: Option<Duration>,
    ) -> Result<Value, RpcError> {
        let after = timeout.unwrap_or(self.timeouts.reply);
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let frames = frame::call(method, seq, args, kwargs);
        let (reply_tx, reply_rx) = oneshot::channel();
        {
            let mut guard = self.live.lock().await;
            if guard
                .as_ref()
                .is_some_and(|live| live.dead.load(Ordering::Acquire))
            {
                *guard = None;
            }
            if guard.is_none() {
                *guard = Some(self.connect().await?);
            }
            let Some(live) = guard.as_mut() else {
                return Err(RpcError::ConnectionLost {
                    addr: self.addr.clone(),
                    method: method.to_owned(),
                });
            };
            lock(&live.pending).insert(seq, (method.to_owned(), reply_tx));
            if let Err(error) = live.send.send(to_message(frames)).await {
                *guard = None;
                return Err(RpcError::Send {
                    addr: self.addr.clone(),
                    method: method.to_owned(),
                    reason: error.to_string(),
                });
            }
        }
        match tokio::time::timeout(after, reply_rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_closed)) => Err(RpcError::ConnectionLost {
                addr: self.addr.clone(),
                method: method.to_owned(),
            }),
            Err(_elapsed) => {
                // A silent peer may be a restarted agent the DEALER will never reach again.
                self.discard().await;
                Err(RpcError::Timeout {
                    addr: self.addr.clone(),
                    method: method.to_owned(),
                    after,
                })
            }
        }
    }

    /// Drops the socket; the next call reconnects.
    pub async fn discard(&self) {
        *self.live.lock().await = None;
    }

    async fn connect(&self) -> Result<Live, RpcError> {
        let connect_err = |reason: String| RpcError::Connect {
            addr: self.addr.clone(),
            reason,
        };
        let mut options = SocketOptions::default();
        options.connect_timeout(self.timeouts.connect);
        let mut socket = DealerSocket::with_options(options);
        tokio::time::timeout(self.timeouts.connect, socket.connect(&self.addr))
            .await
            .map_err(|_| connect_err(format!("no connection within {:?}", self.timeouts.connect)))?
            .map_err(|e| connect_err(e.to_string()))?;
        socket
            .send(to_message(frame::ping()))
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let handshake = async {
            loop {
                let reply = socket
                    .recv()
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
                let frames: Vec<Bytes> = reply.into_vec();
                let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_ref()).collect();
                if let Ok(Message::Pong) = frame::decode(&refs) {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(self.timeouts.handshake, handshake)
            .await
            .map_err(|_| RpcError::Handshake {
                addr: self.addr.clone(),
                after: self.timeouts.handshake,
            })??;
        let (send, recv) = socket.split();
        let pending: Arc<std::sync::Mutex<HashMap<u64, (String, ReplySlot)>>> = Arc::default();
        let dead = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(read_replies(
            recv,
            self.addr.clone(),
            pending.clone(),
            dead.clone(),
        ));
        Ok(Live {
            send,
            pending,
            dead,
            reader,
        })
    }
}

fn to_message(frames: [Vec<u8>; 3]) -> ZmqMessage {
    let frames: Vec<Bytes> = frames.into_iter().map(Bytes::from).collect();
    // Three frames are never empty, so the conversion cannot fail.
    ZmqMessage::try_from(frames).unwrap_or_else(|_| ZmqMessage::from(Vec::<u8>::new()))
}

async fn read_replies(
    mut recv: zeromq::DealerRecvHalf,
    addr: String,
    pending: Arc<std::sync::Mutex<HashMap<u64, (String, ReplySlot)>>>,
    dead: Arc<AtomicBool>,
) {
    loop {
        let message = match recv.recv().await {
            Ok(message) => message,
            Err(_) => break,
        };
        let frames: Vec<Bytes> = message.into_vec();
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_ref()).collect();
        let (header, payload) = match frame::decode(&refs) {
            Ok(Message::Upper { header, payload }) => (header, payload),
            Ok(Message::Ping | Message::Pong) => continue,
            Err(source) => {
                // A reply we cannot parse cannot be matched to its caller; fail them all.
                let waiting = std::mem::take(&mut *lock(&pending));
                for (_, (_, slot)) in waiting {
                    let _ = slot.send(Err(RpcError::Frame {
                        addr: addr.clone(),
                        reason: source.to_string(),
                    }));
                }
                continue;
            }
        };
        let Some((method, slot)) = lock(&pending).remove(&header.seq) else {
            continue; // a reply to a call that already timed out
        };
        let reply = match payload {
            Payload::Result(value) => Ok(value),
            Payload::Failure { name, repr, .. } => Err(RpcError::Failure {
                addr: addr.clone(),
                method,
                name,
                repr,
            }),
            Payload::Cancelled => Err(RpcError::Cancelled {
                addr: addr.clone(),
                method,
            }),
            Payload::Call { .. } => continue,
        };
        let _ = slot.send(reply);
    }
    dead.store(true, Ordering::Release);
    lock(&pending).clear();
}
