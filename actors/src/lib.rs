//! bai-manager's actors, the HTTP façade, the wire formats and the clients for its peers.

pub mod agent_rpc;
pub mod bgtask;
pub mod compat;
pub mod error_log;
pub mod etcd;
pub mod event_bus;
pub mod facade;
#[cfg(test)]
mod fuzz;
pub mod gql;
pub mod heartbeat;
pub mod idle;
pub mod interaction;
pub mod kernel_stats;
pub mod lock;
pub mod metrics;
pub mod redis;
pub mod registry_sync;
pub mod scheduler;
pub mod session_callback;
pub mod shared_values;
pub mod storage;
pub mod supervision;
pub mod wire;
