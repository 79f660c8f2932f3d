//! The manager's agent RPC client: one pipelined connection per agent address, and typed calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::connection::{AgentConnection, RpcError, RpcTimeouts};
use super::kernel_config::{KernelLaunch, cluster_info, image_refs, kernel_config};
use super::methods::AgentMethod;
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

/// The connections to every agent this worker talks to.
#[derive(Default)]
pub struct AgentRpc {
    timeouts: RpcTimeouts,
    connections: std::sync::Mutex<HashMap<String, Arc<AgentConnection>>>,
}

impl AgentRpc {
    pub fn new(timeouts: RpcTimeouts) -> AgentRpc {
        AgentRpc {
            timeouts,
            connections: Default::default(),
        }
    }

    fn connection(&self, addr: &str) -> Arc<AgentConnection> {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        connections
            .entry(addr.to_owned())
            .or_insert_with(|| Arc::new(AgentConnection::new(addr, self.timeouts)))
            .clone()
    }

    /// The timeouts every call of this client uses.
    pub fn timeouts(&self) -> RpcTimeouts {
        self.timeouts
    }

    /// How many agent connections this client holds.
    pub fn open_connections(&self) -> usize {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Forgets the connection to `addr` (the agent moved or was lost).
    pub fn forget(&self, addr: &str) {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(addr);
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
        self.connection(&target.addr)
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
