//! What one scheduling pass sees: pending sessions, schedulable agents, limits and usage.
//!
//! The snapshot is plain data read from the database in one go; the placement function
//! (`placement::plan_pass`) decides over it without any I/O, so the same snapshot always gives
//! the same plan.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use bai_schema::{ResourceSlot, SlotUnit};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::policy::SchedulingPolicy;
use super::selector::AgentSelectionStrategy;

/// `sessions.session_type`, stored by NAME.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionKind {
    Interactive,
    Batch,
    Inference,
    /// Private sessions (sftp): own concurrency limit, cancelled when a predicate fails.
    System,
}

impl SessionKind {
    pub fn parse(name: &str) -> Option<SessionKind> {
        match name.to_ascii_uppercase().as_str() {
            "INTERACTIVE" => Some(SessionKind::Interactive),
            "BATCH" => Some(SessionKind::Batch),
            "INFERENCE" => Some(SessionKind::Inference),
            "SYSTEM" => Some(SessionKind::System),
            _ => None,
        }
    }

    /// The value the agent expects in `kernel_config.session_type`.
    pub fn value(&self) -> &'static str {
        match self {
            SessionKind::Interactive => "interactive",
            SessionKind::Batch => "batch",
            SessionKind::Inference => "inference",
            SessionKind::System => "system",
        }
    }

    pub fn is_private(&self) -> bool {
        matches!(self, SessionKind::System)
    }
}

/// `sessions.cluster_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterMode {
    SingleNode,
    MultiNode,
}

impl ClusterMode {
    /// Reads both the inserted value (`single-node`) and the inconsistent server default
    /// (`SINGLE_NODE`).
    pub fn parse(text: &str) -> Option<ClusterMode> {
        match text.to_ascii_lowercase().replace('_', "-").as_str() {
            "single-node" => Some(ClusterMode::SingleNode),
            "multi-node" => Some(ClusterMode::MultiNode),
            _ => None,
        }
    }

    pub fn value(&self) -> &'static str {
        match self {
            ClusterMode::SingleNode => "single-node",
            ClusterMode::MultiNode => "multi-node",
        }
    }
}

/// One kernel (container) of a pending session.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingKernel {
    pub id: Uuid,
    pub requested_slots: ResourceSlot,
    pub architecture: String,
    /// Canonical image name, looked up in `SchedulingSnapshot::image_minimums`.
    pub image: String,
    /// An agent a superadmin designated at creation (`kernels.agent` while PENDING).
    pub designated_agent: Option<String>,
}

/// A PENDING session waiting for agents.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingSession {
    pub id: Uuid,
    pub name: String,
    pub access_key: String,
    pub user_uuid: Uuid,
    pub group_id: Uuid,
    pub domain_name: String,
    pub kind: SessionKind,
    pub priority: i32,
    pub created_at: DateTime<Utc>,
    /// The resource group the session was enqueued for.
    pub scaling_group: String,
    pub cluster_mode: ClusterMode,
    pub kernels: Vec<PendingKernel>,
    /// Batch reservation time: the session waits until then.
    pub starts_at: Option<DateTime<Utc>>,
    /// Names and ids of dependency sessions that have not yet TERMINATED with SUCCESS.
    pub unmet_dependencies: Vec<String>,
    /// `status_data.scheduler.retries`.
    pub retries: u32,
}

impl PendingSession {
    /// The sum of the kernels' requests: what a single-node session needs on one agent.
    pub fn requested_slots(&self) -> ResourceSlot {
        self.kernels
            .iter()
            .fold(ResourceSlot::new(), |sum, kernel| {
                &sum + &kernel.requested_slots
            })
    }
}

/// An ALIVE, schedulable agent of a scaling group.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    pub id: String,
    pub scaling_group: String,
    pub architecture: String,
    /// Shared (`Arc`) with the other agents that have the same, like `occupied_slots` (every
    /// idle agent's zeros) and the free slots: a worker keeps a view of every agent between
    /// its passes (see [`super::agent_cache`]).
    pub available_slots: Arc<ResourceSlot>,
    pub occupied_slots: Arc<ResourceSlot>,
    /// Containers the agent runs now (for `config/agent/max-container-count`).
    pub container_count: u32,
    /// `available_slots - occupied_slots`, worked out when loaded or on first use, and then
    /// shared by every pass that plans with this view (views are not changed once shared).
    pub free: FreeSlots,
}

impl AgentView {
    pub fn free_slots(&self) -> Arc<ResourceSlot> {
        Arc::clone(
            self.free
                .0
                .get_or_init(|| Arc::new(&*self.available_slots - &*self.occupied_slots)),
        )
    }
}

/// An agent view's free slots once worked out. Derived from the view's other fields, so it
/// takes no part in comparing views.
#[derive(Debug, Clone, Default)]
pub struct FreeSlots(OnceLock<Arc<ResourceSlot>>);

impl FreeSlots {
    /// Free slots already worked out (by the loader, which shares equal ones).
    pub fn known(free: Arc<ResourceSlot>) -> Self {
        FreeSlots(OnceLock::from(free))
    }
}

impl PartialEq for FreeSlots {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// `scaling_groups` row as the scheduler needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingGroupView {
    pub name: String,
    pub policy: SchedulingPolicy,
    pub selector: AgentSelectionStrategy,
    /// `scheduler_opts.pending_timeout` in seconds; 0 never cancels.
    pub pending_timeout_secs: f64,
    /// FIFO's `num_retries_to_skip` (0 = strict FIFO).
    pub num_retries_to_skip: u32,
    /// Round-robin cursor per architecture, from `resource-group-states/<sg>/agselector.roundrobin`.
    pub roundrobin_next_index: BTreeMap<String, usize>,
}

/// The keypair resource policy of an access key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeypairPolicy {
    pub total_resource_slots: ResourceSlot,
    pub unspecified_is_unlimited: bool,
    pub max_concurrent_sessions: i32,
    pub max_concurrent_sftp_sessions: i32,
    pub max_pending_session_count: Option<i32>,
    pub max_pending_session_resource_slots: Option<ResourceSlot>,
}

impl Default for KeypairPolicy {
    fn default() -> Self {
        KeypairPolicy {
            total_resource_slots: ResourceSlot::new(),
            unspecified_is_unlimited: true,
            max_concurrent_sessions: 0,
            max_concurrent_sftp_sessions: 0,
            max_pending_session_count: None,
            max_pending_session_resource_slots: None,
        }
    }
}

/// What is in use now (over the user-resource-occupying statuses).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub by_keypair: BTreeMap<String, ResourceSlot>,
    pub by_user: BTreeMap<Uuid, ResourceSlot>,
    pub by_group: BTreeMap<Uuid, ResourceSlot>,
    pub by_domain: BTreeMap<String, ResourceSlot>,
    /// Live compute sessions per access key.
    pub sessions_by_keypair: BTreeMap<String, u32>,
    /// Live private (sftp) sessions per access key.
    pub sftp_sessions_by_keypair: BTreeMap<String, u32>,
    /// Occupancy per scaling group and access key, for DRF.
    pub by_scaling_group_keypair: BTreeMap<String, BTreeMap<String, ResourceSlot>>,
}

/// Which scaling groups a domain, a group and a keypair may use (the union applies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalingGroupAccess {
    pub by_domain: BTreeMap<String, BTreeSet<String>>,
    pub by_group: BTreeMap<Uuid, BTreeSet<String>>,
    pub by_keypair: BTreeMap<String, BTreeSet<String>>,
}

impl ScalingGroupAccess {
    pub fn allows(&self, session: &PendingSession) -> bool {
        let in_set = |set: Option<&BTreeSet<String>>| {
            set.is_some_and(|names| names.contains(&session.scaling_group))
        };
        in_set(self.by_domain.get(&session.domain_name))
            || in_set(self.by_group.get(&session.group_id))
            || in_set(self.by_keypair.get(&session.access_key))
    }
}

/// Everything a pass decides over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulingSnapshot {
    pub now: DateTime<Utc>,
    /// `INTRINSIC_SLOTS` merged with etcd `config/resource_slots`.
    pub known_slots: BTreeMap<String, SlotUnit>,
    /// manager.toml `agent-selection-resource-priority`.
    pub resource_priority: Vec<String>,
    /// etcd `config/agent/max-container-count`.
    pub max_container_count: Option<u32>,
    pub scaling_groups: Vec<ScalingGroupView>,
    /// Shared with the worker's agent cache, so a pass copies no agent.
    pub agents: Vec<Arc<AgentView>>,
    pub pending: Vec<PendingSession>,
    /// Keypair policy by access key.
    pub keypair_policies: BTreeMap<String, KeypairPolicy>,
    /// The policy of each user's main access key (for the user limit).
    pub user_policies: BTreeMap<Uuid, KeypairPolicy>,
    /// `groups.total_resource_slots` (missing slots are unlimited).
    pub group_limits: BTreeMap<Uuid, ResourceSlot>,
    /// `domains.total_resource_slots` (missing slots are unlimited).
    pub domain_limits: BTreeMap<String, ResourceSlot>,
    pub usage: Usage,
    pub access: ScalingGroupAccess,
    /// Minimum slots per canonical image name (`images.resources.*.min`).
    pub image_minimums: BTreeMap<String, ResourceSlot>,
}

/// The default of manager.toml `agent-selection-resource-priority`.
pub fn default_resource_priority() -> Vec<String> {
    ["cuda", "rocm", "tpu", "cpu", "mem"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}
