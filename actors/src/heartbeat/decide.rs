//! The heartbeat tracker's decisions, without I/O: what a heartbeat changes in the `agents`
//! row, which status an `agent_terminated` reason leads to, and which agents are lost.

use std::hash::{Hash, Hasher};

use bai_schema::ResourceSlot;
use bai_schema::enums::AgentStatus;

use crate::wire::AgentInfo;

/// The columns of an `agents` row that heartbeats and lifecycle events decide.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSnapshot {
    pub status: AgentStatus,
    pub scaling_group: String,
    pub available_slots: ResourceSlot,
    pub addr: String,
    pub public_host: Option<String>,
    pub public_key: Option<String>,
    pub version: String,
    pub compute_plugins: serde_json::Value,
    pub architecture: String,
    pub auto_terminate_abusing_kernel: bool,
}

impl AgentSnapshot {
    /// The row an ALIVE agent reporting `info` should have.
    pub fn alive_from(info: &AgentInfo) -> AgentSnapshot {
        AgentSnapshot {
            status: AgentStatus::Alive,
            scaling_group: info.scaling_group.clone(),
            available_slots: (*info.available_slots).clone(),
            addr: info.addr.clone(),
            public_host: Some(info.public_host.clone()),
            public_key: info.public_key.clone(),
            version: info.version.clone(),
            compute_plugins: (*info.compute_plugins).clone(),
            architecture: info.architecture.clone(),
            auto_terminate_abusing_kernel: info.auto_terminate_abusing_kernel,
        }
    }
}

/// What the heartbeat tracker keeps of an agent's row between heartbeats: its status and a
/// fingerprint of the columns heartbeats decide. Enough to tell that a heartbeat changes
/// nothing, in 16 bytes rather than a copy of the row (whose `compute_plugins` alone took more
/// than a kilobyte per agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptRow {
    pub status: AgentStatus,
    pub columns: u64,
}

impl AgentSnapshot {
    pub fn kept(&self) -> KeptRow {
        KeptRow {
            status: self.status,
            columns: Columns {
                scaling_group: &self.scaling_group,
                available_slots: &self.available_slots,
                addr: &self.addr,
                public_host: self.public_host.as_deref(),
                public_key: self.public_key.as_deref(),
                version: &self.version,
                compute_plugins: &self.compute_plugins,
                architecture: &self.architecture,
                auto_terminate_abusing_kernel: self.auto_terminate_abusing_kernel,
            }
            .fingerprint(),
        }
    }
}

impl KeptRow {
    /// The row of an ALIVE agent that reported `info`, as [`AgentSnapshot::alive_from`] would
    /// keep it, without copying it.
    pub fn alive(info: &AgentInfo) -> KeptRow {
        KeptRow {
            status: AgentStatus::Alive,
            columns: reported_columns(info).fingerprint(),
        }
    }
}

/// How long `agent`'s cached row is trusted before a heartbeat re-reads it: between half of
/// `longest` and `longest`, the same for an agent every time and spread evenly across agents.
/// Agents that joined together (when a cluster or this manager starts) were otherwise all
/// re-read within the same few seconds, every `longest`: at 10,000 agents, ten thousand rows
/// read in a burst while the heartbeats behind them waited in the event bus.
pub fn trust_cached_row_for(agent: &str, longest: std::time::Duration) -> std::time::Duration {
    let mut hasher = std::hash::DefaultHasher::new();
    agent.hash(&mut hasher);
    let half = longest / 2;
    let spread_millis = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1);
    half + std::time::Duration::from_millis(hasher.finish() % spread_millis)
}

/// Whether a heartbeat reporting `info` leaves a row kept as `kept` unchanged: the row is
/// ALIVE and the columns the heartbeat would write hold what it reports. A fingerprint that
/// differs (or, once in 2^64, collides) only sends the heartbeat to the row itself.
pub fn leaves_unchanged(kept: &KeptRow, info: &AgentInfo) -> bool {
    kept.status == AgentStatus::Alive && kept.columns == reported_columns(info).fingerprint()
}

/// The columns a heartbeat decides, as [`AgentSnapshot::alive_from`] would set them.
fn reported_columns(info: &AgentInfo) -> Columns<'_> {
    Columns {
        scaling_group: &info.scaling_group,
        available_slots: &info.available_slots,
        addr: &info.addr,
        public_host: Some(&info.public_host),
        public_key: info.public_key.as_deref(),
        version: &info.version,
        compute_plugins: &info.compute_plugins,
        architecture: &info.architecture,
        auto_terminate_abusing_kernel: info.auto_terminate_abusing_kernel,
    }
}

struct Columns<'a> {
    scaling_group: &'a str,
    available_slots: &'a ResourceSlot,
    addr: &'a str,
    public_host: Option<&'a str>,
    public_key: Option<&'a str>,
    version: &'a str,
    compute_plugins: &'a serde_json::Value,
    architecture: &'a str,
    auto_terminate_abusing_kernel: bool,
}

impl Columns<'_> {
    fn fingerprint(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.scaling_group.hash(&mut hasher);
        for (slot, amount) in self.available_slots.iter() {
            slot.hash(&mut hasher);
            amount.hash(&mut hasher);
        }
        self.addr.hash(&mut hasher);
        self.public_host.hash(&mut hasher);
        self.public_key.hash(&mut hasher);
        self.version.hash(&mut hasher);
        hash_json(self.compute_plugins, &mut hasher);
        self.architecture.hash(&mut hasher);
        self.auto_terminate_abusing_kernel.hash(&mut hasher);
        hasher.finish()
    }
}

/// Hashes a JSON value so that values equal as JSON hash alike: object keys in sorted order,
/// because a row read back from `jsonb` has its keys in PostgreSQL's order, not the agent's.
fn hash_json(value: &serde_json::Value, hasher: &mut impl Hasher) {
    use serde_json::Value;
    match value {
        Value::Null => 0u8.hash(hasher),
        Value::Bool(b) => (1u8, b).hash(hasher),
        Value::Number(n) => {
            2u8.hash(hasher);
            if let Some(i) = n.as_i64() {
                (0u8, i).hash(hasher);
            } else if let Some(u) = n.as_u64() {
                (1u8, u).hash(hasher);
            } else {
                (2u8, n.as_f64().map(f64::to_bits)).hash(hasher);
            }
        }
        Value::String(s) => (3u8, s).hash(hasher),
        Value::Array(items) => {
            (4u8, items.len()).hash(hasher);
            for item in items {
                hash_json(item, hasher);
            }
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(hasher);
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (key, item) in entries {
                key.hash(hasher);
                hash_json(item, hasher);
            }
        }
    }
}

/// What to do with the `agents` row on a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatDecision {
    /// First contact: INSERT as ALIVE.
    Insert,
    /// The row is LOST or TERMINATED: back to ALIVE with every field refreshed, and an
    /// `agent_started("revived")` event.
    Revive,
    /// The row is ALIVE and these columns differ.
    Update(Vec<&'static str>),
    /// Nothing to write.
    Unchanged,
    /// The row is RESTARTING: the original leaves it until the agent's `agent_started`.
    LeaveRestarting,
}

/// The columns of `row` that `info` changes (never `occupied_slots` or `status`).
pub fn changed_columns(row: &AgentSnapshot, info: &AgentInfo) -> Vec<&'static str> {
    let wanted = AgentSnapshot::alive_from(info);
    let mut changed = Vec::new();
    if row.available_slots != wanted.available_slots {
        changed.push("available_slots");
    }
    if row.scaling_group != wanted.scaling_group {
        changed.push("scaling_group");
    }
    if row.addr != wanted.addr {
        changed.push("addr");
    }
    if row.public_host != wanted.public_host {
        changed.push("public_host");
    }
    if row.public_key != wanted.public_key {
        changed.push("public_key");
    }
    if row.version != wanted.version {
        changed.push("version");
    }
    if row.compute_plugins != wanted.compute_plugins {
        changed.push("compute_plugins");
    }
    if row.architecture != wanted.architecture {
        changed.push("architecture");
    }
    if row.auto_terminate_abusing_kernel != wanted.auto_terminate_abusing_kernel {
        changed.push("auto_terminate_abusing_kernel");
    }
    changed
}

pub fn decide_heartbeat(row: Option<&AgentSnapshot>, info: &AgentInfo) -> HeartbeatDecision {
    let Some(row) = row else {
        return HeartbeatDecision::Insert;
    };
    match row.status {
        AgentStatus::Lost | AgentStatus::Terminated => HeartbeatDecision::Revive,
        AgentStatus::Restarting => HeartbeatDecision::LeaveRestarting,
        AgentStatus::Alive => {
            let changed = changed_columns(row, info);
            if changed.is_empty() {
                HeartbeatDecision::Unchanged
            } else {
                HeartbeatDecision::Update(changed)
            }
        }
    }
}

/// The status an `agent_terminated` event with `reason` leads to.
pub fn status_after_termination(reason: &str) -> AgentStatus {
    match reason {
        "agent-lost" => AgentStatus::Lost,
        "agent-restart" => AgentStatus::Restarting,
        _ => AgentStatus::Terminated,
    }
}

/// The agents whose last heartbeat (`agent.last_seen`, unix seconds) is more than
/// `timeout_seconds` before `now`.
pub fn lost_agents<'a>(
    now: f64,
    last_seen: impl IntoIterator<Item = (&'a str, f64)>,
    timeout_seconds: f64,
) -> Vec<String> {
    let mut lost: Vec<String> = last_seen
        .into_iter()
        .filter(|(_, seen)| now - seen > timeout_seconds)
        .map(|(agent, _)| agent.to_owned())
        .collect();
    lost.sort();
    lost
}

#[cfg(test)]
mod tests {
    use super::*;
    use bai_schema::SlotAmount;

    #[test]
    fn cached_rows_are_trusted_for_a_spread_of_times_each_agent_keeps() {
        use std::time::Duration;
        let longest = Duration::from_secs(60);
        let times: Vec<Duration> = (0..1000)
            .map(|n| trust_cached_row_for(&format!("i-agent-{n:05}"), longest))
            .collect();
        assert!(times.iter().all(|t| *t >= longest / 2 && *t < longest));
        // Spread over the whole range: every 3-second slice gets some, none gets a crowd.
        let mut slices = [0usize; 10];
        for t in &times {
            slices[((t.as_millis() - 30_000) / 3_000) as usize] += 1;
        }
        assert!(
            slices.iter().all(|count| (50..=150).contains(count)),
            "{slices:?}"
        );
        assert_eq!(trust_cached_row_for("i-agent-00007", longest), times[7]);
    }

    fn info() -> AgentInfo {
        AgentInfo {
            ip: "127.0.0.1".into(),
            region: "local".into(),
            scaling_group: "default".into(),
            addr: "tcp://127.0.0.1:6001".into(),
            public_key: None,
            public_host: "127.0.0.1".into(),
            available_slots: ResourceSlot::from_pairs([("cpu", SlotAmount::from(4))]).into(),
            slot_types: Default::default(),
            version: "26.9.6".into(),
            compute_plugins: serde_json::json!({}).into(),
            images: None,
            architecture: "x86_64".into(),
            auto_terminate_abusing_kernel: false,
        }
    }

    #[test]
    fn first_contact_inserts_and_an_unchanged_heartbeat_writes_nothing() {
        let info = info();
        assert_eq!(decide_heartbeat(None, &info), HeartbeatDecision::Insert);
        let row = AgentSnapshot::alive_from(&info);
        assert_eq!(
            decide_heartbeat(Some(&row), &info),
            HeartbeatDecision::Unchanged
        );
    }

    #[test]
    fn a_kept_row_tells_an_unchanged_heartbeat_from_every_change_the_row_would_see() {
        let mut info = info();
        info.compute_plugins =
            serde_json::json!({"cpu": {"version": "1.0", "n": 4}, "mem": {}}).into();
        let kept = AgentSnapshot::alive_from(&info).kept();
        assert_eq!(kept, KeptRow::alive(&info));
        assert!(leaves_unchanged(&kept, &info));

        let changes: [fn(&mut AgentInfo); 9] = [
            |i| i.scaling_group = "gpu".into(),
            |i| i.available_slots = ResourceSlot::from_pairs([("cpu", SlotAmount::from(8))]).into(),
            |i| i.addr = "tcp://10.0.0.2:6001".into(),
            |i| i.public_host = "10.0.0.2".into(),
            |i| i.public_key = Some("key".into()),
            |i| i.version = "26.9.7".into(),
            |i| std::sync::Arc::make_mut(&mut i.compute_plugins)["cpu"]["n"] = serde_json::json!(8),
            |i| i.architecture = "aarch64".into(),
            |i| i.auto_terminate_abusing_kernel = true,
        ];
        for change in changes {
            let mut changed = info.clone();
            change(&mut changed);
            assert!(
                !decide_heartbeat(Some(&AgentSnapshot::alive_from(&info)), &changed)
                    .eq(&HeartbeatDecision::Unchanged)
            );
            assert!(!leaves_unchanged(&kept, &changed), "{changed:?}");
        }

        let lost = KeptRow {
            status: AgentStatus::Lost,
            ..kept
        };
        assert!(!leaves_unchanged(&lost, &info));
    }

    #[test]
    fn a_row_read_back_from_jsonb_keeps_the_fingerprint_of_the_heartbeat_that_wrote_it() {
        let mut info = info();
        info.compute_plugins =
            serde_json::json!({"mem": {"b": 1, "a": [1, 2.5]}, "cpu": {}}).into();
        let mut row = AgentSnapshot::alive_from(&info);
        // PostgreSQL returns jsonb objects with their keys in its own order.
        row.compute_plugins = serde_json::json!({"cpu": {}, "mem": {"a": [1, 2.5], "b": 1}});
        assert!(leaves_unchanged(&row.kept(), &info));
        assert_eq!(
            decide_heartbeat(Some(&row), &info),
            HeartbeatDecision::Unchanged
        );
    }

    #[test]
    fn only_changed_columns_are_updated() {
        let row = AgentSnapshot::alive_from(&info());
        let mut moved = info();
        moved.addr = "tcp://10.0.0.2:6001".into();
        moved.available_slots = ResourceSlot::from_pairs([("cpu", SlotAmount::from(8))]).into();
        assert_eq!(
            decide_heartbeat(Some(&row), &moved),
            HeartbeatDecision::Update(vec!["available_slots", "addr"])
        );
    }

    #[test]
    fn lost_and_terminated_agents_are_revived_restarting_ones_left() {
        let mut row = AgentSnapshot::alive_from(&info());
        for status in [AgentStatus::Lost, AgentStatus::Terminated] {
            row.status = status;
            assert_eq!(
                decide_heartbeat(Some(&row), &info()),
                HeartbeatDecision::Revive
            );
        }
        row.status = AgentStatus::Restarting;
        assert_eq!(
            decide_heartbeat(Some(&row), &info()),
            HeartbeatDecision::LeaveRestarting
        );
    }

    #[test]
    fn termination_reasons_map_to_statuses() {
        assert_eq!(status_after_termination("agent-lost"), AgentStatus::Lost);
        assert_eq!(
            status_after_termination("agent-restart"),
            AgentStatus::Restarting
        );
        assert_eq!(
            status_after_termination("shutdown"),
            AgentStatus::Terminated
        );
    }

    #[test]
    fn agents_silent_longer_than_the_timeout_are_lost() {
        let seen = [("i-old", 100.0), ("i-fresh", 150.0), ("i-edge", 120.0)];
        assert_eq!(lost_agents(160.0, seen, 40.0), vec!["i-old".to_owned()]);
    }
}
