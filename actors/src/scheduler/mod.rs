//! The session scheduler: PENDING sessions onto agents, and their lifecycle afterwards.
//!
//! The decision is a pure function over a snapshot (`placement::plan_pass`), built from the
//! policy (`policy`), the predicates (`predicates`) and the agent selector (`selector`); the
//! actor around it only reads the snapshot, writes the reservation and dispatches to agents.

pub mod actor;
pub mod agent_cache;
pub mod cluster_network;
pub mod container_log;
pub mod destroy;
pub mod dispatch;
pub mod etcd_state;
pub mod events;
pub mod kernel_events;
pub mod lifecycle;
pub mod load;
pub mod messages;
pub mod pass;
pub mod pass_pacing;
pub mod placement;
pub mod policy;
pub mod predicates;
pub mod queue;
pub mod reconcile;
pub mod reserve;
pub mod selector;
pub mod snapshot;

pub use placement::{Decision, KernelAssignment, PassPlan, plan_pass};
pub use policy::SchedulingPolicy;
pub use selector::AgentSelectionStrategy;
pub use snapshot::SchedulingSnapshot;

#[cfg(test)]
mod placement_tests;
