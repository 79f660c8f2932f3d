//! The manager's agent RPC client: a bounded set of pipelined connections, one per agent
//! address (see [`super::pool`] for the bound), and typed calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::connection::{AgentConnection, RpcError, RpcTimeouts};
use super::kernel_config::{KernelLaunch, cluster_info, image_refs, kernel_config};
use super::methods::AgentMethod;
use super::pool::{PoolLimits, Usage, plan_closing};
use crate::metrics::METRICS;
use crate::wire::Value;

/// Which agent to call: its id, RPC address and reported version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTarget {
    pub id: String,
    pub addr: String,
    pub version: String,
}

/// Every live `(kernel_id, session_id)` pair the manager has on one agent. The agent destroys
/// any kernel missing from the list, so this is only ever built from one complete query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullKernelRegistry {
    pairs: Vec<(Uuid, Uuid)>,
}

impl FullKernelRegistry {
    /// `pairs` must be every kernel the manager considers alive on the agent.
    pub fn from_complete_listing(pairs: Vec<(Uuid, Uuid)>) -> FullKernelRegistry {
        FullKernelRegistry { pairs }
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// The connections of one client to the agents it calls: at most `limits.max_open` open, the
/// least recently used idle one closed to make room, and idle ones closed after
/// `limits.idle_after` by a sweep (one task per client, none per connection). A connection with
/// calls in flight is never closed; when every open one has calls in flight, a call to another
/// agent waits (up to its own timeout) until one returns.
pub struct AgentRpc {
    timeouts: RpcTimeouts,
    limits: PoolLimits,
    pool: Arc<Pool>,
}

struct Pool {
    state: std::sync::Mutex<PoolState>,
    /// Signalled when a connection becomes idle or is closed (room for a waiting call).
    freed: Notify,
}

#[derive(Default)]
struct PoolState {
    open: HashMap<String, Entry>,
    sweeper: Option<JoinHandle<()>>,
}

struct Entry {
    connection: Arc<AgentConnection>,
    usage: Usage,
}

impl Pool {
    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the connections `plan` names out of `open`; they close once dropped.
    fn take(open: &mut HashMap<String, Entry>, plan: Vec<String>) -> Vec<Arc<AgentConnection>> {
        let taken: Vec<Arc<AgentConnection>> = plan
            .iter()
            .filter_map(|addr| open.remove(addr))
            .map(|entry| entry.connection)
            .collect();
        count_open(-(taken.len() as i64));
        taken
    }

    /// Closes the idle connections unused for `limits.idle_after`; returns how many.
    fn sweep(&self, limits: PoolLimits) -> usize {
        let closed = {
            let mut state = self.state();
            let plan = plan_closing(
                state
                    .open
                    .iter()
                    .map(|(addr, entry)| (addr.as_str(), entry.usage)),
                0,
                limits,
                Instant::now(),
            );
            let plan: Vec<String> = plan.close.into_iter().map(str::to_owned).collect();
            Pool::take(&mut state.open, plan)
        };
        let count = closed.len();
        // Dropped outside the lock: each drop aborts a reader task and shuts a socket down.
        drop(closed);
        if count > 0 {
            self.freed.notify_waiters();
        }
        count
    }
}

/// Keeps the process-wide `bai_agent_rpc_connections` gauge in step with the pools.
fn count_open(delta: i64) {
    if delta != 0 {
        METRICS
            .agent_rpc_connections
            .fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        count_open(-(self.state().open.len() as i64));
    }
}

/// One call's hold on a connection: counts as in flight until dropped (also when the call is
/// cancelled), then marks the connection used now.
struct Lease {
    pool: Arc<Pool>,
    addr: String,
    connection: Arc<AgentConnection>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let now_idle = {
            let mut state = self.pool.state();
            match state.open.get_mut(&self.addr) {
                // Another entry for the address (this one was forgotten) is not ours to count.
                Some(entry) if Arc::ptr_eq(&entry.connection, &self.connection) => {
                    entry.usage.in_flight = entry.usage.in_flight.saturating_sub(1);
                    entry.usage.last_used = Instant::now();
                    entry.usage.in_flight == 0
                }
                _ => false,
            }
        };
        if now_idle {
            self.pool.freed.notify_waiters();
        }
    }
}

/// Ends the sweep when the last handle to the pool goes (the sweep holds a weak one).
impl Drop for AgentRpc {
    fn drop(&mut self) {
        if let Some(sweeper) = self.pool.state().sweeper.take() {
            sweeper.abort();
        }
    }
}

impl Default for AgentRpc {
    fn default() -> Self {
        AgentRpc::new(RpcTimeouts::default())
    }
}

impl AgentRpc {
    pub fn new(timeouts: RpcTimeouts) -> AgentRpc {
        AgentRpc::with_limits(timeouts, PoolLimits::default())
    }

    /// A client with other bounds than [`MAX_OPEN_CONNECTIONS`](super::pool::MAX_OPEN_CONNECTIONS)
    /// and [`IDLE_CLOSE_AFTER`](super::pool::IDLE_CLOSE_AFTER) (tests use small ones).
    pub fn with_limits(timeouts: RpcTimeouts, limits: PoolLimits) -> AgentRpc {
        AgentRpc {
            timeouts,
            limits: PoolLimits {
                max_open: limits.max_open.max(1),
                ..limits
            },
            pool: Arc::new(Pool {
                state: Default::default(),
                freed: Notify::new(),
            }),
        }
    }

    /// A lease on the connection to `addr`, opened (lazily: the call connects it) when there is
    /// room; waits up to `wait` for room, closing idle connections as the bound requires.
    async fn lease(&self, addr: &str, method: &str, wait: Duration) -> Result<Lease, RpcError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let freed = self.pool.freed.notified();
            tokio::pin!(freed);
            let (lease, closed, open) = {
                let mut state = self.pool.state();
                if let Some(entry) = state.open.get_mut(addr) {
                    entry.usage.in_flight += 1;
                    return Ok(Lease {
                        pool: self.pool.clone(),
                        addr: addr.to_owned(),
                        connection: entry.connection.clone(),
                    });
                }
                // Registered before looking, so a connection freed from now on wakes us.
                freed.as_mut().enable();
                let plan = plan_closing(
                    state
                        .open
                        .iter()
                        .map(|(addr, entry)| (addr.as_str(), entry.usage)),
                    1,
                    self.limits,
                    Instant::now(),
                );
                let room = plan.room;
                let plan: Vec<String> = plan.close.into_iter().map(str::to_owned).collect();
                let closed = Pool::take(&mut state.open, plan);
                let lease = room.then(|| {
                    let connection = Arc::new(AgentConnection::new(addr, self.timeouts));
                    count_open(1);
                    state.open.insert(
                        addr.to_owned(),
                        Entry {
                            connection: connection.clone(),
                            usage: Usage {
                                in_flight: 1,
                                last_used: Instant::now(),
                            },
                        },
                    );
                    Lease {
                        pool: self.pool.clone(),
                        addr: addr.to_owned(),
                        connection,
                    }
                });
                if lease.is_some() {
                    self.ensure_sweeper(&mut state);
                }
                (lease, closed, state.open.len())
            };
            drop(closed);
            if let Some(lease) = lease {
                return Ok(lease);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(RpcError::NoFreeConnection {
                    addr: addr.to_owned(),
                    method: method.to_owned(),
                    after: wait,
                    open,
                });
            }
        }
    }

    /// Starts the idle sweep unless it runs (it is per client and ends with it).
    fn ensure_sweeper(&self, state: &mut PoolState) {
        if state
            .sweeper
            .as_ref()
            .is_some_and(|sweeper| !sweeper.is_finished())
        {
            return;
        }
        let pool = Arc::downgrade(&self.pool);
        let limits = self.limits;
        // Closes an idle connection between `idle_after` and 1.25 × `idle_after` after its
        // last use.
        let every = (limits.idle_after / 4).max(Duration::from_secs(1));
        state.sweeper = Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                pool.sweep(limits);
            }
        }));
    }

    /// The timeouts every call of this client uses.
    pub fn timeouts(&self) -> RpcTimeouts {
        self.timeouts
    }

    /// The bounds of this client's connections.
    pub fn limits(&self) -> PoolLimits {
        self.limits
    }

    /// How many agent connections this client holds open (each connected, or connecting on its
    /// first call).
    pub fn open_connections(&self) -> usize {
        self.pool.state().open.len()
    }

    /// Closes the idle connections unused for the idle time now, without waiting for the
    /// periodic sweep; returns how many were closed.
    pub fn close_idle_connections(&self) -> usize {
        self.pool.sweep(self.limits)
    }

    /// Forgets the connection to `addr` (the agent moved or was lost); calls in flight on it
    /// still get their replies, and it closes when the last returns.
    pub fn forget(&self, addr: &str) {
        let forgotten = self.pool.state().open.remove(addr);
        if forgotten.is_some() {
            count_open(-1);
            self.pool.freed.notify_waiters();
        }
    }

    /// Calls `method` if the agent's version exposes it.
    pub async fn call(
        &self,
        target: &AgentTarget,
        method: AgentMethod,
        args: Vec<Value>,
        kwargs: Vec<(String, Value)>,
        timeout: Option<Duration>,
    ) -> Result<Value, RpcError> {
        if !method.exposed_by(&target.version) {
            return Err(RpcError::NotExposed {
                method: method.name().to_owned(),
                version: target.version.clone(),
            });
        }
        let wait = timeout.unwrap_or(self.timeouts.reply);
        let lease = self.lease(&target.addr, method.name(), wait).await?;
        lease
            .connection
            .call(method.name(), args, kwargs, timeout)
            .await
    }

    pub async fn ping(&self, target: &AgentTarget, message: &str) -> Result<Value, RpcError> {
        self.call(
            target,
            AgentMethod::Ping,
            vec![Value::str(message)],
            Vec::new(),
            Some(self.timeouts.handshake),
        )
        .await
    }

    /// `create_kernels` for the kernels of one session placed on this agent; returns the
    /// agent's per-kernel creation info (in kernel order).
    pub async fn create_kernels(
        &self,
        target: &AgentTarget,
        session_id: Uuid,
        launches: &[KernelLaunch],
        cluster: &ClusterSpec,
    ) -> Result<Vec<Value>, RpcError> {
        let args = vec![
            Value::str(session_id.to_string()),
            Value::Array(
                launches
                    .iter()
                    .map(|l| Value::str(l.kernel_id.to_string()))
                    .collect(),
            ),
            Value::Array(launches.iter().map(kernel_config).collect()),
            cluster_info(
                &cluster.mode,
                cluster.size,
                &cluster.replicas,
                &cluster.network_name,
            ),
            image_refs(launches),
        ];
        let reply = self
            .call(
                target,
                AgentMethod::CreateKernels,
                args,
                vec![("agent_id".to_owned(), Value::str(target.id.clone()))],
                None,
            )
            .await?;
        Ok(reply.as_array().map(<[Value]>::to_vec).unwrap_or_default())
    }

    /// `destroy_kernel`: returns once the agent has cleaned the kernel up; the agent then emits
    /// `kernel_terminated` (unless `suppress_events`).
    pub async fn destroy_kernel(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
        session_id: Uuid,
        reason: &str,
        suppress_events: bool,
    ) -> Result<(), RpcError> {
        self.call(
            target,
            AgentMethod::DestroyKernel,
            vec![
                Value::str(kernel_id.to_string()),
                Value::str(session_id.to_string()),
                Value::str(reason),
            ],
            vec![
                ("suppress_events".to_owned(), Value::Bool(suppress_events)),
                ("agent_id".to_owned(), Value::str(target.id.clone())),
            ],
            None,
        )
        .await
        .map(|_| ())
    }

    /// `sync_kernel_registry` with the complete list of the agent's kernels.
    pub async fn sync_kernel_registry(
        &self,
        target: &AgentTarget,
        registry: &FullKernelRegistry,
    ) -> Result<(), RpcError> {
        let pairs = registry
            .pairs
            .iter()
            .map(|(kernel, session)| {
                Value::Array(vec![
                    Value::str(kernel.to_string()),
                    Value::str(session.to_string()),
                ])
            })
            .collect();
        self.call(
            target,
            AgentMethod::SyncKernelRegistry,
            vec![Value::Array(pairs)],
            Vec::new(),
            None,
        )
        .await
        .map(|_| ())
    }

    /// A health probe of the 25.x+ agents: is the kernel registered and running?
    pub async fn check_running(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
    ) -> Result<bool, RpcError> {
        let reply = self
            .call(
                target,
                AgentMethod::CheckRunning,
                vec![Value::str(kernel_id.to_string())],
                vec![("agent_id".to_owned(), Value::str(target.id.clone()))],
                None,
            )
            .await?;
        Ok(reply.as_bool().unwrap_or(false))
    }

    /// A health probe of the 25.x+ agents: is the kernel being created, or registered at all?
    pub async fn check_creating(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
    ) -> Result<bool, RpcError> {
        let reply = self
            .call(
                target,
                AgentMethod::CheckCreating,
                vec![Value::str(kernel_id.to_string())],
                vec![("agent_id".to_owned(), Value::str(target.id.clone()))],
                None,
            )
            .await?;
        Ok(reply.as_bool().unwrap_or(false))
    }
}

/// The cluster of a session as one agent sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    pub mode: String,
    pub size: usize,
    pub replicas: std::collections::BTreeMap<String, usize>,
    pub network_name: String,
}
