//! The network of a multi-container session. A single-node cluster (all kernels on one agent)
//! gets a local bridge network `bai-singlenode-<session id>` that the agent creates before the
//! kernels start (`create_local_network`) and removes when the session ends
//! (`destroy_local_network`), as the original does. Multi-node clusters would need an overlay
//! network (Docker swarm) and are not set up here.

use uuid::Uuid;

use crate::agent_rpc::{AgentMethod, AgentRpc, AgentTarget, RpcError};
use crate::wire::Value;

/// The local network name of a single-node cluster session.
pub fn local_network_name(session_id: Uuid) -> String {
    format!("bai-singlenode-{session_id}")
}

/// Whether a session of `mode` with `size` kernels on `agents` agents needs a local network.
pub fn needs_local_network(mode: &str, size: usize, agents: usize) -> bool {
    mode == "single-node" && size > 1 && agents == 1
}

fn agent_kwargs(target: &AgentTarget) -> Vec<(String, Value)> {
    if crate::agent_rpc::methods::uses_ownership_signatures(&target.version) {
        vec![("agent_id".to_owned(), Value::str(target.id.clone()))]
    } else {
        Vec::new()
    }
}

/// `create_local_network(name)` on the agent that runs every kernel of the session.
pub async fn create_local_network(
    rpc: &AgentRpc,
    target: &AgentTarget,
    name: &str,
) -> Result<(), RpcError> {
    rpc.call(
        target,
        AgentMethod::CreateLocalNetwork,
        vec![Value::str(name)],
        agent_kwargs(target),
        None,
    )
    .await
    .map(|_| ())
}

/// `destroy_local_network(name)` once the session's kernels are gone.
pub async fn destroy_local_network(
    rpc: &AgentRpc,
    target: &AgentTarget,
    name: &str,
) -> Result<(), RpcError> {
    rpc.call(
        target,
        AgentMethod::DestroyLocalNetwork,
        vec![Value::str(name)],
        agent_kwargs(target),
        None,
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_node_clusters_on_one_agent_get_a_local_network() {
        assert!(needs_local_network("single-node", 2, 1));
        assert!(!needs_local_network("single-node", 1, 1));
        assert!(!needs_local_network("multi-node", 2, 2));
        assert_eq!(
            local_network_name(Uuid::nil()),
            "bai-singlenode-00000000-0000-0000-0000-000000000000"
        );
    }
}
