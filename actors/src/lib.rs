//! bai-manager's actors, the HTTP façade, the wire formats and the clients for its peers.

pub mod agent_rpc;
pub mod etcd;
pub mod facade;
pub mod redis;
pub mod scheduler;
pub mod wire;
