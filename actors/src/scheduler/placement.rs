//! The placement decision of one scheduling pass, as a pure function over a snapshot.
//!
//! Per resource group (by name): cancel sessions pending past `pending_timeout`, keep the
//! highest priority, let the policy hand out sessions one at a time, run the predicates against
//! the usage as it stands after the placements made so far in this pass, and let the selector
//! pick agents from the free slots as they stand. Nothing is over-committed within the plan; the
//! reservation transaction re-checks the same capacity in the database.

use std::collections::BTreeMap;

use bai_schema::ResourceSlot;
use uuid::Uuid;

use super::policy::{SessionPicker, highest_priority_only, sort_by_age};
use super::predicates::{PendingQueues, PredicateOutcome, check_session, humanize};
use super::selector::AgentPool;
use super::snapshot::{ClusterMode, PendingSession, ScalingGroupView, SchedulingSnapshot, Usage};

/// One kernel placed on one agent, with the slots it takes there.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelAssignment {
    pub kernel_id: Uuid,
    pub agent_id: String,
    pub slots: ResourceSlot,
}

/// What the pass decided for one session.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// PENDING → SCHEDULED on these agents.
    Scheduled {
        session_id: Uuid,
        scaling_group: String,
        assignments: Vec<KernelAssignment>,
        passed_predicates: Vec<&'static str>,
    },
    /// Stays PENDING (`predicate-checks-failed`), or is CANCELLED if it is a private session.
    PredicatesFailed {
        session_id: Uuid,
        outcome: PredicateOutcome,
        cancel: bool,
    },
    /// Stays PENDING (`no-available-instances`).
    NoAvailableInstances {
        session_id: Uuid,
        msg: String,
        passed_predicates: Vec<&'static str>,
    },
    /// PENDING longer than the group's `pending_timeout`: CANCELLED (`pending-timeout`).
    PendingTimeout { session_id: Uuid },
}

impl Decision {
    pub fn session_id(&self) -> Uuid {
        match self {
            Decision::Scheduled { session_id, .. }
            | Decision::PredicatesFailed { session_id, .. }
            | Decision::NoAvailableInstances { session_id, .. }
            | Decision::PendingTimeout { session_id } => *session_id,
        }
    }
}

/// The decisions of one pass, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassPlan {
    pub decisions: Vec<Decision>,
    /// Round-robin cursors to store back, per resource group and architecture.
    pub roundrobin_next: BTreeMap<String, BTreeMap<String, usize>>,
    /// The agent ids (sorted) each cursor of `roundrobin_next` counts over, per resource group
    /// and architecture: the original stores a digest of them next to the cursor.
    pub roundrobin_members: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl PassPlan {
    pub fn scheduled(&self) -> impl Iterator<Item = (&Uuid, &[KernelAssignment])> {
        self.decisions.iter().filter_map(|decision| match decision {
            Decision::Scheduled {
                session_id,
                assignments,
                ..
            } => Some((session_id, assignments.as_slice())),
            _ => None,
        })
    }
}

const NO_REGION_FOR_SESSION: &str =
    "Could not find a contiguous resource region in any agent big enough to host the session";
/// The original's (23.09) refusal when `config/agent/max-container-count` rules out every agent.
const CONTAINER_LIMIT_REACHED: &str = "No agents found to be available because all agents have reached the hard limit of the number of containers.";
const NO_REGION_FOR_KERNEL: &str = "Could not find a contiguous resource region in any agent big enough to host a kernel in the session";

/// Decides one pass. Deterministic: the same snapshot gives the same plan.
pub fn plan_pass(snapshot: &SchedulingSnapshot) -> PassPlan {
    let mut plan = PassPlan::default();
    let mut usage = snapshot.usage.clone();
    let mut queues = PendingQueues::new(&snapshot.pending);

    let mut groups: Vec<&ScalingGroupView> = snapshot.scaling_groups.iter().collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    groups.dedup_by(|a, b| a.name == b.name);

    for group in groups {
        let agents: Vec<_> = snapshot
            .agents
            .iter()
            .filter(|agent| agent.scaling_group == group.name)
            .cloned()
            .collect();
        if agents.is_empty() {
            // As the original: a group without ALIVE agents is not scheduled at all.
            continue;
        }
        let mut pending: Vec<&PendingSession> = snapshot
            .pending
            .iter()
            .filter(|session| session.scaling_group == group.name)
            .collect();
        sort_by_age(&mut pending);
        pending.retain(|session| {
            let timed_out = timed_out(snapshot, group, session);
            if timed_out {
                plan.decisions.push(Decision::PendingTimeout {
                    session_id: session.id,
                });
                queues.remove(session);
            }
            !timed_out
        });
        let pending = highest_priority_only(pending);

        let mut pool = AgentPool::new(
            agents,
            group.selector,
            &snapshot.resource_priority,
            snapshot.max_container_count,
            group.roundrobin_next_index.clone(),
        );
        let capacity = pool.total_capacity();
        let mut picker = SessionPicker::new(
            group.policy,
            &pending,
            group.num_retries_to_skip,
            &capacity,
            usage.by_scaling_group_keypair.get(&group.name),
        );
        while let Some(index) = picker.next_session() {
            let session = pending[index];
            let outcome = check_session(snapshot, &usage, &queues, session);
            if !outcome.ok() {
                let cancel = session.kind.is_private();
                if cancel {
                    queues.remove(session);
                }
                plan.decisions.push(Decision::PredicatesFailed {
                    session_id: session.id,
                    outcome,
                    cancel,
                });
                continue;
            }
            match assign_agents(&mut pool, session) {
                Ok(assignments) => {
                    let requested = session.requested_slots();
                    charge(&mut usage, &group.name, session, &requested);
                    queues.remove(session);
                    picker.placed(&session.access_key, &requested);
                    plan.decisions.push(Decision::Scheduled {
                        session_id: session.id,
                        scaling_group: group.name.clone(),
                        assignments,
                        passed_predicates: outcome.passed,
                    });
                }
                Err(msg) => plan.decisions.push(Decision::NoAvailableInstances {
                    session_id: session.id,
                    msg,
                    passed_predicates: outcome.passed,
                }),
            }
        }
        if !pool.roundrobin_next().is_empty() {
            plan.roundrobin_next
                .insert(group.name.clone(), pool.roundrobin_next().clone());
            plan.roundrobin_members
                .insert(group.name.clone(), pool.roundrobin_members());
        }
    }
    plan
}

fn timed_out(
    snapshot: &SchedulingSnapshot,
    group: &ScalingGroupView,
    session: &PendingSession,
) -> bool {
    if group.pending_timeout_secs <= 0.0 || !group.pending_timeout_secs.is_finite() {
        return false;
    }
    let waited = snapshot.now - session.created_at;
    waited.num_milliseconds() as f64 > group.pending_timeout_secs * 1000.0
}

/// Adds a placed session to the pass-local usage, so later predicates see it.
fn charge(
    usage: &mut Usage,
    scaling_group: &str,
    session: &PendingSession,
    requested: &ResourceSlot,
) {
    let add = |slot: &mut ResourceSlot| *slot = &*slot + requested;
    add(usage
        .by_keypair
        .entry(session.access_key.clone())
        .or_default());
    add(usage.by_user.entry(session.user_uuid).or_default());
    add(usage.by_group.entry(session.group_id).or_default());
    add(usage
        .by_domain
        .entry(session.domain_name.clone())
        .or_default());
    add(usage
        .by_scaling_group_keypair
        .entry(scaling_group.to_owned())
        .or_default()
        .entry(session.access_key.clone())
        .or_default());
    let counts = if session.kind.is_private() {
        &mut usage.sftp_sessions_by_keypair
    } else {
        &mut usage.sessions_by_keypair
    };
    *counts.entry(session.access_key.clone()).or_default() += 1;
}

/// Chooses agents for every kernel of `session` and reserves them in the pool, or explains why
/// it cannot (leaving the pool as it was).
fn assign_agents(
    pool: &mut AgentPool,
    session: &PendingSession,
) -> Result<Vec<KernelAssignment>, String> {
    let Some(first) = session.kernels.first() else {
        return Err("The session has no kernels to place.".to_owned());
    };
    let containers = session.kernels.len() as u32;
    match session.cluster_mode {
        ClusterMode::SingleNode => {
            if session
                .kernels
                .iter()
                .any(|kernel| kernel.architecture != first.architecture)
            {
                return Err(
                    "Cannot assign multiple kernels with different architectures' single node session"
                        .to_owned(),
                );
            }
            let requested = session.requested_slots();
            let designated = session
                .kernels
                .iter()
                .find_map(|kernel| kernel.designated_agent.as_deref());
            let agent = match designated {
                Some(agent_id) => designated_agent(pool, agent_id, &requested, containers)
                    .map_err(|e| e.to_string())?,
                None => pool
                    .select(&first.architecture, &requested, containers)
                    .ok_or_else(|| {
                        if pool.all_at_container_limit(&first.architecture, containers) {
                            CONTAINER_LIMIT_REACHED.to_owned()
                        } else {
                            no_region(NO_REGION_FOR_SESSION, &requested)
                        }
                    })?,
            };
            pool.reserve(agent, &requested, containers);
            let agent_id = pool.agent_id(agent).to_owned();
            Ok(session
                .kernels
                .iter()
                .map(|kernel| KernelAssignment {
                    kernel_id: kernel.id,
                    agent_id: agent_id.clone(),
                    slots: kernel.requested_slots.clone(),
                })
                .collect())
        }
        ClusterMode::MultiNode => {
            let mut taken: Vec<(usize, &ResourceSlot)> = Vec::new();
            let mut assignments = Vec::new();
            for kernel in &session.kernels {
                let chosen = match kernel.designated_agent.as_deref() {
                    Some(agent_id) => designated_agent(pool, agent_id, &kernel.requested_slots, 1)
                        .map_err(|e| e.to_string()),
                    None => pool
                        .select(&kernel.architecture, &kernel.requested_slots, 1)
                        .ok_or_else(|| no_region(NO_REGION_FOR_KERNEL, &kernel.requested_slots)),
                };
                match chosen {
                    Ok(agent) => {
                        pool.reserve(agent, &kernel.requested_slots, 1);
                        taken.push((agent, &kernel.requested_slots));
                        assignments.push(KernelAssignment {
                            kernel_id: kernel.id,
                            agent_id: pool.agent_id(agent).to_owned(),
                            slots: kernel.requested_slots.clone(),
                        });
                    }
                    Err(msg) => {
                        for (agent, slots) in taken {
                            pool.release(agent, slots, 1);
                        }
                        return Err(msg);
                    }
                }
            }
            Ok(assignments)
        }
    }
}

/// Why a session's designated agent cannot take it (the text is the session's status_info).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesignatedAgentError {
    #[error(
        "The designated agent {agent} is not an ALIVE, schedulable agent of this resource group."
    )]
    Unavailable { agent: String },
    #[error("The designated agent {agent} does not have enough free resources (free: {free}).")]
    TooSmall { agent: String, free: String },
}

fn designated_agent(
    pool: &AgentPool,
    agent_id: &str,
    requested: &ResourceSlot,
    containers: u32,
) -> Result<usize, DesignatedAgentError> {
    let index = pool
        .index_of(agent_id)
        .ok_or_else(|| DesignatedAgentError::Unavailable {
            agent: agent_id.to_owned(),
        })?;
    if !pool.fits(index, requested, containers) {
        return Err(DesignatedAgentError::TooSmall {
            agent: agent_id.to_owned(),
            free: humanize(pool.free_slots(index), &BTreeMap::new()),
        });
    }
    Ok(index)
}

fn no_region(base: &str, requested: &ResourceSlot) -> String {
    format!(
        "{base} (requested: {})",
        humanize(requested, &BTreeMap::new())
    )
}
