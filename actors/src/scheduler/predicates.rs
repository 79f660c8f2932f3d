//! Predicates: the checks a pending session must pass before it may take agent slots.
//!
//! The original's checks, in its order, all evaluated so the operator sees every reason at once:
//! reserved time, dependencies, concurrency, then (for non-private sessions) pending-session
//! limits, keypair, user (main access key), group and domain resource limits. Two more guard what
//! the original checks only at enqueue time: the session's resource group must still be allowed
//! for its domain, group or keypair, and each kernel must request at least its image's minimum.

use std::collections::{BTreeMap, BTreeSet};

use bai_schema::{ResourceSlot, SlotAmount, SlotUnit};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::snapshot::{KeypairPolicy, PendingSession, SchedulingSnapshot, SessionKind, Usage};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PredicateFailure {
    pub name: &'static str,
    pub msg: String,
}

/// The result of running every predicate on one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PredicateOutcome {
    pub passed: Vec<&'static str>,
    pub failed: Vec<PredicateFailure>,
}

impl PredicateOutcome {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }

    fn record(&mut self, name: &'static str, failure: Option<String>) {
        match failure {
            None => self.passed.push(name),
            Some(msg) => self.failed.push(PredicateFailure { name, msg }),
        }
    }
}

/// Sessions still PENDING in this pass, per access key, oldest first, with their requests.
#[derive(Debug, Default)]
pub struct PendingQueues {
    by_keypair: BTreeMap<String, BTreeMap<(DateTime<Utc>, Uuid), ResourceSlot>>,
}

impl PendingQueues {
    pub fn new<'a>(sessions: impl IntoIterator<Item = &'a PendingSession>) -> PendingQueues {
        let mut queues = PendingQueues::default();
        for session in sessions {
            queues
                .by_keypair
                .entry(session.access_key.clone())
                .or_default()
                .insert((session.created_at, session.id), session.requested_slots());
        }
        queues
    }

    pub fn remove(&mut self, session: &PendingSession) {
        if let Some(queue) = self.by_keypair.get_mut(&session.access_key) {
            queue.remove(&(session.created_at, session.id));
        }
    }

    fn ahead_of<'a>(
        &'a self,
        session: &PendingSession,
    ) -> impl Iterator<Item = &'a ResourceSlot> + 'a {
        let position = (session.created_at, session.id);
        self.by_keypair
            .get(&session.access_key)
            .into_iter()
            .flat_map(move |queue| queue.range(..position).map(|(_, slots)| slots))
    }
}

/// Runs every predicate for `session` against the pass-local `usage`.
pub fn check_session(
    snapshot: &SchedulingSnapshot,
    usage: &Usage,
    pending: &PendingQueues,
    session: &PendingSession,
) -> PredicateOutcome {
    let mut outcome = PredicateOutcome::default();
    let requested = session.requested_slots();
    let known = &snapshot.known_slots;
    let policy = snapshot.keypair_policies.get(&session.access_key);

    outcome.record("reserved_time", reserved_time(snapshot.now, session));
    outcome.record("dependencies", dependencies(session));
    outcome.record("concurrency", concurrency(policy, usage, session));
    if !session.kind.is_private() {
        let policy_or_default = policy.cloned().unwrap_or_default();
        outcome.record(
            "pending_session_resource_limit",
            pending_resource_limit(&policy_or_default, pending, session, known),
        );
        outcome.record(
            "pending_session_count_limit",
            pending_count_limit(&policy_or_default, pending, session),
        );
        outcome.record(
            "keypair_resource_limit",
            match policy {
                None => Some(format!(
                    "The keypair {} has no resource policy.",
                    session.access_key
                )),
                Some(policy) => quota_exceeded(
                    "keypair",
                    usage.by_keypair.get(&session.access_key),
                    &requested,
                    &allowed_by_policy(policy, known),
                    known,
                ),
            },
        );
        outcome.record(
            "user_resource_limit",
            snapshot
                .user_policies
                .get(&session.user_uuid)
                .and_then(|policy| {
                    quota_exceeded(
                        "main-keypair",
                        usage.by_user.get(&session.user_uuid),
                        &requested,
                        &allowed_by_policy(policy, known),
                        known,
                    )
                }),
        );
        outcome.record(
            "user_group_resource_limit",
            quota_exceeded(
                "group",
                usage.by_group.get(&session.group_id),
                &requested,
                &unlimited_unless_set(snapshot.group_limits.get(&session.group_id), known),
                known,
            ),
        );
        outcome.record(
            "domain_resource_limit",
            quota_exceeded(
                "domain",
                usage.by_domain.get(&session.domain_name),
                &requested,
                &unlimited_unless_set(snapshot.domain_limits.get(&session.domain_name), known),
                known,
            ),
        );
    }
    outcome.record(
        "allowed_scaling_group",
        allowed_scaling_group(snapshot, session),
    );
    outcome.record("image_resource_minimum", image_minimum(snapshot, session));
    outcome
}

fn reserved_time(now: DateTime<Utc>, session: &PendingSession) -> Option<String> {
    match session.starts_at {
        Some(starts_at) if session.kind == SessionKind::Batch && now < starts_at => {
            Some("Before start time".to_owned())
        }
        _ => None,
    }
}

fn dependencies(session: &PendingSession) -> Option<String> {
    (!session.unmet_dependencies.is_empty()).then(|| {
        format!(
            "Waiting dependency sessions to finish as success. ({})",
            session.unmet_dependencies.join(", ")
        )
    })
}

fn concurrency(
    policy: Option<&KeypairPolicy>,
    usage: &Usage,
    session: &PendingSession,
) -> Option<String> {
    let policy = policy?;
    let (limit, running) = if session.kind.is_private() {
        (
            policy.max_concurrent_sftp_sessions,
            usage.sftp_sessions_by_keypair.get(&session.access_key),
        )
    } else {
        (
            policy.max_concurrent_sessions,
            usage.sessions_by_keypair.get(&session.access_key),
        )
    };
    let running = running.copied().unwrap_or(0);
    (limit > 0 && i64::from(running) >= i64::from(limit))
        .then(|| format!("You cannot run more than {limit} concurrent sessions"))
}

/// Only the first `max_pending_session_count` pending sessions of a keypair (oldest first) are
/// considered; the original counted the session itself, so a limit of N blocked the N-th forever.
fn pending_count_limit(
    policy: &KeypairPolicy,
    pending: &PendingQueues,
    session: &PendingSession,
) -> Option<String> {
    let limit = usize::try_from(policy.max_pending_session_count?)
        .ok()
        .filter(|limit| *limit > 0)?;
    let ahead = pending.ahead_of(session).take(limit).count();
    (ahead >= limit).then(|| format!("You cannot create more than {limit} pending session."))
}

fn pending_resource_limit(
    policy: &KeypairPolicy,
    pending: &PendingQueues,
    session: &PendingSession,
    known: &BTreeMap<String, SlotUnit>,
) -> Option<String> {
    let limit = policy
        .max_pending_session_resource_slots
        .as_ref()
        .filter(|limit| !limit.is_empty())?;
    let reached = |total: &ResourceSlot| limit.iter().all(|(slot, max)| total.get(slot) >= *max);
    let mut ahead = ResourceSlot::new();
    for slots in pending.ahead_of(session) {
        ahead = &ahead + slots;
        if reached(&ahead) {
            return Some(format!(
                "Your pending session quota is exceeded. ({})",
                humanize(limit, known)
            ));
        }
    }
    None
}

fn allowed_by_policy(policy: &KeypairPolicy, known: &BTreeMap<String, SlotUnit>) -> ResourceSlot {
    ResourceSlot::from_policy(
        &policy.total_resource_slots,
        policy.unspecified_is_unlimited,
        known.keys(),
    )
}

fn unlimited_unless_set(
    limit: Option<&ResourceSlot>,
    known: &BTreeMap<String, SlotUnit>,
) -> ResourceSlot {
    ResourceSlot::from_policy(&limit.cloned().unwrap_or_default(), true, known.keys())
}

/// `occupied + requested <= allowed`, over the known slots and the slots the limit names.
fn quota_exceeded(
    scope: &str,
    occupied: Option<&ResourceSlot>,
    requested: &ResourceSlot,
    allowed: &ResourceSlot,
    known: &BTreeMap<String, SlotUnit>,
) -> Option<String> {
    let total = match occupied {
        Some(occupied) => occupied + requested,
        None => requested.clone(),
    };
    let within = total
        .iter()
        .filter(|(slot, _)| known.contains_key(*slot) || allowed.contains(slot))
        .all(|(slot, amount)| *amount <= allowed.get(slot));
    (!within).then(|| {
        format!(
            "Your {scope} resource quota is exceeded. ({})",
            humanize(allowed, known)
        )
    })
}

/// Worded as the original's `check_scaling_group` (a predicate until it moved to enqueue time).
fn allowed_scaling_group(
    snapshot: &SchedulingSnapshot,
    session: &PendingSession,
) -> Option<String> {
    (!snapshot.access.allows(session)).then(|| {
        format!(
            "You do not have access to the scaling group '{}'.",
            session.scaling_group
        )
    })
}

fn image_minimum(snapshot: &SchedulingSnapshot, session: &PendingSession) -> Option<String> {
    let mut short: BTreeSet<String> = BTreeSet::new();
    for kernel in &session.kernels {
        let Some(minimum) = snapshot.image_minimums.get(&kernel.image) else {
            continue;
        };
        for (slot, min) in minimum.iter() {
            let requested = kernel.requested_slots.get(slot);
            if requested < *min {
                short.insert(format!(
                    "{}: {slot}={} < {}",
                    kernel.image,
                    humanize_amount(requested, snapshot.known_slots.get(slot)),
                    humanize_amount(*min, snapshot.known_slots.get(slot))
                ));
            }
        }
    }
    (!short.is_empty()).then(|| {
        format!(
            "The resource request is below the image's minimum. ({})",
            short.into_iter().collect::<Vec<_>>().join(", ")
        )
    })
}

/// `k=v` pairs as the original's `to_humanized`: byte slots with a binary suffix.
pub fn humanize(slots: &ResourceSlot, known: &BTreeMap<String, SlotUnit>) -> String {
    slots
        .iter()
        .map(|(slot, amount)| format!("{slot}={}", humanize_amount(*amount, known.get(slot))))
        .collect::<Vec<_>>()
        .join(" ")
}

fn humanize_amount(amount: SlotAmount, unit: Option<&SlotUnit>) -> String {
    let (SlotAmount::Finite(value), Some(SlotUnit::Bytes)) = (amount, unit) else {
        return amount.to_string();
    };
    let Ok(bytes) = u64::try_from(value.trunc()) else {
        return amount.to_string();
    };
    for (suffix, power) in [("p", 5u32), ("t", 4), ("g", 3), ("m", 2), ("k", 1)] {
        let unit_size = 1024u64.pow(power);
        if bytes >= unit_size && bytes % unit_size == 0 {
            return format!("{}{suffix}", bytes / unit_size);
        }
    }
    bytes.to_string()
}
