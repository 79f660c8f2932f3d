//! One copy of the parts that heartbeats repeat: most agents of a cluster report the same slot
//! types, the same compute plugins and often the same slots, in every heartbeat.
//!
//! Decoded heartbeats wait in the event bus's lanes until the tracker handles them, up to the
//! reader's queue bound (thousands at 10,000 agents when the tracker is behind). Each decoded
//! copy of these three parts is about three quarters of a heartbeat's memory (maps of owned
//! strings), so the heartbeats of a batch share one copy of each value they have in common.

use std::collections::BTreeMap;
use std::sync::Arc;

use bai_schema::{ResourceSlot, SlotUnit};

use super::agent_info::AgentInfo;

/// Distinct values kept per part: a cluster has a few kinds of node; beyond that, values are
/// left as decoded instead of searched for.
const KINDS_KEPT: usize = 8;

/// The values seen so far in one batch.
#[derive(Debug, Default)]
pub struct SharedParts {
    slots: Vec<Arc<ResourceSlot>>,
    slot_types: Vec<Arc<BTreeMap<String, SlotUnit>>>,
    compute_plugins: Vec<Arc<serde_json::Value>>,
}

impl SharedParts {
    /// Points `info`'s parts at the equal values seen before, and remembers the new ones.
    pub fn share(&mut self, info: &mut AgentInfo) {
        share_one(&mut self.slots, &mut info.available_slots);
        share_one(&mut self.slot_types, &mut info.slot_types);
        share_one(&mut self.compute_plugins, &mut info.compute_plugins);
    }
}

fn share_one<T: PartialEq>(seen: &mut Vec<Arc<T>>, part: &mut Arc<T>) {
    if let Some(same) = seen.iter().find(|value| ***value == **part) {
        *part = Arc::clone(same);
    } else if seen.len() < KINDS_KEPT {
        seen.push(Arc::clone(part));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bai_schema::SlotAmount;

    fn info(cpu: &str, plugin_version: &str) -> AgentInfo {
        AgentInfo {
            ip: "10.0.0.1".into(),
            region: "local".into(),
            scaling_group: "default".into(),
            addr: "tcp://10.0.0.1:6001".into(),
            public_key: None,
            public_host: "10.0.0.1".into(),
            available_slots: Arc::new(ResourceSlot::from_pairs([(
                "cpu",
                SlotAmount::parse(cpu).unwrap(),
            )])),
            slot_types: Arc::new(BTreeMap::from([("cpu".to_owned(), SlotUnit::Count)])),
            version: "26.1.0".into(),
            compute_plugins: Arc::new(serde_json::json!({"cpu": {"version": plugin_version}})),
            images: None,
            architecture: "x86_64".into(),
            auto_terminate_abusing_kernel: false,
        }
    }

    #[test]
    fn equal_parts_are_shared_and_different_ones_kept_apart() {
        let mut shared = SharedParts::default();
        let mut first = info("16", "26.1.0");
        let mut same = info("16", "26.1.0");
        let mut bigger = info("32", "26.1.0");
        shared.share(&mut first);
        shared.share(&mut same);
        shared.share(&mut bigger);
        assert!(Arc::ptr_eq(&first.available_slots, &same.available_slots));
        assert!(Arc::ptr_eq(&first.slot_types, &same.slot_types));
        assert!(Arc::ptr_eq(&first.compute_plugins, &same.compute_plugins));
        assert!(!Arc::ptr_eq(
            &first.available_slots,
            &bigger.available_slots
        ));
        assert_eq!(bigger.available_slots, info("32", "x").available_slots);
        assert!(Arc::ptr_eq(&first.slot_types, &bigger.slot_types));
        // Sharing changes no value.
        assert_eq!(same, info("16", "26.1.0"));
    }

    #[test]
    fn past_the_kinds_kept_values_stay_as_decoded() {
        let mut shared = SharedParts::default();
        for version in 0..KINDS_KEPT + 4 {
            shared.share(&mut info("16", &version.to_string()));
        }
        assert_eq!(shared.compute_plugins.len(), KINDS_KEPT);
        let mut late = info("16", &(KINDS_KEPT + 1).to_string());
        let before = Arc::as_ptr(&late.compute_plugins);
        shared.share(&mut late);
        assert_eq!(Arc::as_ptr(&late.compute_plugins), before);
    }
}
