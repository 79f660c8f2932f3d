//! Scheduling policies (`scaling_groups.scheduler`): in which order pending sessions are tried.
//!
//! Each pending session is tried at most once per pass. FIFO takes the oldest first (optionally
//! moving sessions that failed `num_retries_to_skip` times to the back), LIFO the newest, and DRF
//! the oldest session of the access key with the lowest dominant share of the group's capacity.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bai_schema::{ResourceSlot, SlotAmount};
use rust_decimal::Decimal;

use super::snapshot::PendingSession;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulingPolicy {
    Fifo,
    Lifo,
    Drf,
}

impl SchedulingPolicy {
    pub fn parse(name: &str) -> Option<SchedulingPolicy> {
        match name.trim().to_ascii_lowercase().as_str() {
            "fifo" => Some(SchedulingPolicy::Fifo),
            "lifo" => Some(SchedulingPolicy::Lifo),
            "drf" => Some(SchedulingPolicy::Drf),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            SchedulingPolicy::Fifo => "fifo",
            SchedulingPolicy::Lifo => "lifo",
            SchedulingPolicy::Drf => "drf",
        }
    }
}

/// Hands out the indices (into the group's pending list) of the sessions to try, in order.
pub enum SessionPicker {
    /// FIFO and LIFO: the order is fixed up front.
    Ordered(VecDeque<usize>),
    Drf(DrfPicker),
}

impl SessionPicker {
    /// `pending` must be sorted by (created_at, id) ascending.
    pub fn new(
        policy: SchedulingPolicy,
        pending: &[&PendingSession],
        num_retries_to_skip: u32,
        total_capacity: &ResourceSlot,
        occupancy_by_keypair: Option<&BTreeMap<String, ResourceSlot>>,
    ) -> SessionPicker {
        match policy {
            SchedulingPolicy::Fifo => {
                let (fresh, skipped): (Vec<usize>, Vec<usize>) =
                    (0..pending.len()).partition(|&i| {
                        num_retries_to_skip == 0 || pending[i].retries < num_retries_to_skip
                    });
                SessionPicker::Ordered(fresh.into_iter().chain(skipped).collect())
            }
            SchedulingPolicy::Lifo => SessionPicker::Ordered((0..pending.len()).rev().collect()),
            SchedulingPolicy::Drf => SessionPicker::Drf(DrfPicker::new(
                pending,
                total_capacity,
                occupancy_by_keypair,
            )),
        }
    }

    pub fn next_session(&mut self) -> Option<usize> {
        match self {
            SessionPicker::Ordered(queue) => queue.pop_front(),
            SessionPicker::Drf(drf) => drf.next_session(),
        }
    }

    /// Tells the picker that the session it handed out last was placed with `requested`.
    pub fn placed(&mut self, access_key: &str, requested: &ResourceSlot) {
        if let SessionPicker::Drf(drf) = self {
            drf.charge(access_key, requested);
        }
    }
}

/// Dominant Resource Fairness over access keys.
pub struct DrfPicker {
    capacity: ResourceSlot,
    occupancy: BTreeMap<String, ResourceSlot>,
    /// Pending session indices per access key, oldest first.
    queues: BTreeMap<String, VecDeque<usize>>,
    /// (share, index of the key's oldest pending session, key): the smallest goes next.
    order: BTreeSet<(Decimal, usize, String)>,
    current_share: BTreeMap<String, Decimal>,
}

impl DrfPicker {
    fn new(
        pending: &[&PendingSession],
        capacity: &ResourceSlot,
        occupancy: Option<&BTreeMap<String, ResourceSlot>>,
    ) -> DrfPicker {
        let mut queues: BTreeMap<String, VecDeque<usize>> = BTreeMap::new();
        for (index, session) in pending.iter().enumerate() {
            queues
                .entry(session.access_key.clone())
                .or_default()
                .push_back(index);
        }
        let mut picker = DrfPicker {
            capacity: capacity.clone(),
            occupancy: occupancy.cloned().unwrap_or_default(),
            queues,
            order: BTreeSet::new(),
            current_share: BTreeMap::new(),
        };
        let keys: Vec<String> = picker.queues.keys().cloned().collect();
        for key in keys {
            picker.enqueue_key(&key);
        }
        picker
    }

    fn enqueue_key(&mut self, access_key: &str) {
        let Some(&head) = self.queues.get(access_key).and_then(|queue| queue.front()) else {
            return;
        };
        let share = dominant_share(
            self.occupancy
                .get(access_key)
                .unwrap_or(&ResourceSlot::new()),
            &self.capacity,
        );
        self.current_share.insert(access_key.to_owned(), share);
        self.order.insert((share, head, access_key.to_owned()));
    }

    fn next_session(&mut self) -> Option<usize> {
        let (_, index, key) = self.order.pop_first()?;
        if let Some(queue) = self.queues.get_mut(&key) {
            queue.pop_front();
        }
        self.enqueue_key(&key);
        Some(index)
    }

    fn charge(&mut self, access_key: &str, requested: &ResourceSlot) {
        let Some(&share) = self.current_share.get(access_key) else {
            return;
        };
        let head = self
            .queues
            .get(access_key)
            .and_then(|queue| queue.front())
            .copied();
        if let Some(head) = head {
            self.order.remove(&(share, head, access_key.to_owned()));
        }
        let occupied = self.occupancy.entry(access_key.to_owned()).or_default();
        *occupied = &*occupied + requested;
        self.enqueue_key(access_key);
    }
}

/// max over slots of occupied / capacity; slots with no capacity are ignored.
pub fn dominant_share(occupied: &ResourceSlot, capacity: &ResourceSlot) -> Decimal {
    occupied
        .iter()
        .filter_map(|(slot, amount)| {
            let used = amount.finite()?;
            match capacity.get(slot) {
                SlotAmount::Finite(total) if total > Decimal::ZERO => used.checked_div(total),
                _ => None,
            }
        })
        .max()
        .unwrap_or(Decimal::ZERO)
}

/// Sorts pending sessions as every policy expects them: oldest first, ties by id.
pub fn sort_by_age(pending: &mut [&PendingSession]) {
    pending.sort_by_key(|session| (session.created_at, session.id));
}

/// Keeps only the sessions of the highest priority, as the original's `prioritize`.
pub fn highest_priority_only(pending: Vec<&PendingSession>) -> Vec<&PendingSession> {
    let Some(top) = pending.iter().map(|session| session.priority).max() else {
        return pending;
    };
    pending
        .into_iter()
        .filter(|session| session.priority == top)
        .collect()
}
