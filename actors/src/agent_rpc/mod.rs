//! Manager → agent RPC: callosum over ZeroMQ (a DEALER to each agent's ROUTER).
//!
//! `frame` is the message format, `connection` one self-healing connection, `client` the typed
//! calls over a bounded set of connections (`pool` decides which to close), `methods` which
//! agent versions expose which calls, `kernel_config` and `image_ref` the `create_kernels`
//! payload, and `server` the agent side (for the simulator).

pub mod client;
pub mod connection;
pub mod frame;
pub mod image_ref;
pub mod interactive;
pub mod kernel_config;
pub mod methods;
pub mod pool;

pub use client::{AgentRpc, AgentTarget, ClusterSpec, FullKernelRegistry};
pub use connection::{AgentConnection, RpcError, RpcTimeouts};
pub use image_ref::ImageRef;
pub use kernel_config::{ImageSpec, KernelLaunch};
pub use methods::AgentMethod;
pub use pool::{IDLE_CLOSE_AFTER, MAX_OPEN_CONNECTIONS, PoolLimits};
