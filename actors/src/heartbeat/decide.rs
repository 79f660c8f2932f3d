//! The heartbeat tracker's decisions, without I/O: what a heartbeat changes in the `agents`
//! row, which status an `agent_terminated` reason leads to, and which agents are lost.

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
            available_slots: info.available_slots.clone(),
            addr: info.addr.clone(),
            public_host: Some(info.public_host.clone()),
            public_key: info.public_key.clone(),
            version: info.version.clone(),
            compute_plugins: info.compute_plugins.clone(),
            architecture: info.architecture.clone(),
            auto_terminate_abusing_kernel: info.auto_terminate_abusing_kernel,
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

    fn info() -> AgentInfo {
        AgentInfo {
            ip: "127.0.0.1".into(),
            region: "local".into(),
            scaling_group: "default".into(),
            addr: "tcp://127.0.0.1:6001".into(),
            public_key: None,
            public_host: "127.0.0.1".into(),
            available_slots: ResourceSlot::from_pairs([("cpu", SlotAmount::from(4))]),
            slot_types: Default::default(),
            version: "26.9.6".into(),
            compute_plugins: serde_json::json!({}),
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
    fn only_changed_columns_are_updated() {
        let row = AgentSnapshot::alive_from(&info());
        let mut moved = info();
        moved.addr = "tcp://10.0.0.2:6001".into();
        moved.available_slots = ResourceSlot::from_pairs([("cpu", SlotAmount::from(8))]);
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
