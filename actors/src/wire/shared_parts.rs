//! One copy of the parts that heartbeats repeat: most agents of a cluster report the same slot
//! types, the same compute plugins, often the same slots and (23.09 agents) the same images,
//! in every heartbeat.
//!
//! Decoded heartbeats wait in the event bus's lanes until the tracker handles them, up to the
//! reader's queue bound (thousands at 10,000 agents when the tracker is behind). Decoded, these
//! parts are most of a heartbeat's memory (maps of owned strings; a 23.09 agent's list of a
//! few dozen images is several KiB), so the heartbeats waiting in a worker share one copy of
//! each value they have in common: the consumer keeps one `SharedParts` from batch to batch.

use std::collections::BTreeMap;

use bai_schema::{ResourceSlot, SlotUnit};

use super::agent_info::{AgentImage, AgentInfo};
use crate::shared_values::SharedValues;

/// Distinct values kept per part: a cluster has a few kinds of node; beyond that, values are
/// left as decoded instead of searched for.
const KINDS_KEPT: usize = 8;

/// The values the decoded heartbeats share; the consumer keeps one from batch to batch.
#[derive(Debug)]
pub struct SharedParts {
    slots: SharedValues<ResourceSlot>,
    slot_types: SharedValues<BTreeMap<String, SlotUnit>>,
    compute_plugins: SharedValues<serde_json::Value>,
    images: SharedValues<Vec<AgentImage>>,
}

impl Default for SharedParts {
    fn default() -> Self {
        SharedParts {
            slots: SharedValues::new(KINDS_KEPT),
            slot_types: SharedValues::new(KINDS_KEPT),
            compute_plugins: SharedValues::new(KINDS_KEPT),
            images: SharedValues::new(KINDS_KEPT),
        }
    }
}

impl SharedParts {
    /// Points `info`'s parts at the equal values seen before, and remembers the new ones.
    pub fn share(&mut self, info: &mut AgentInfo) {
        self.slots.share(&mut info.available_slots);
        self.slot_types.share(&mut info.slot_types);
        self.compute_plugins.share(&mut info.compute_plugins);
        if let Some(images) = &mut info.images {
            self.images.share(images);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
        // The batch's heartbeats stay alive while it is decoded.
        let mut batch = Vec::new();
        for version in 0..KINDS_KEPT + 4 {
            let mut heartbeat = info("16", &version.to_string());
            shared.share(&mut heartbeat);
            batch.push(heartbeat);
        }
        assert_eq!(shared.compute_plugins.len(), KINDS_KEPT);
        let mut late = info("16", &(KINDS_KEPT + 1).to_string());
        let before = Arc::as_ptr(&late.compute_plugins);
        shared.share(&mut late);
        assert_eq!(Arc::as_ptr(&late.compute_plugins), before);
    }
}
