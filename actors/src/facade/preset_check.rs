//! The arithmetic of `POST /resource/check-presets`, without I/O: the keypair's, group's and
//! domain's limits and usage, what each allowed scaling group has left for the caller, and
//! which presets some alive agent could still run. Follows the original's `check_presets`.

use bai_schema::queries::resource::ResourcePreset;
use bai_schema::slots::{ResourceSlot, SlotAmount};
use serde_json::{Map, Value, json};

use super::slot_types::SlotTypes;

/// Everything the check needs, read from the database and etcd.
#[derive(Debug, Clone, Default)]
pub struct PresetCheckInput {
    pub known: SlotTypes,
    /// The keypair policy's explicit `total_resource_slots` and whether unspecified slots
    /// are unlimited (`default_for_unspecified = UNLIMITED`).
    pub keypair_policy_slots: ResourceSlot,
    pub keypair_unspecified_unlimited: bool,
    pub keypair_occupied: ResourceSlot,
    /// Group and domain limits treat unspecified slots as unlimited.
    pub group_slots: ResourceSlot,
    pub group_occupied: ResourceSlot,
    pub domain_slots: ResourceSlot,
    pub domain_occupied: ResourceSlot,
    /// The allowed scaling groups, in order.
    pub scaling_groups: Vec<String>,
    /// The caller's kernels' occupied slots, by scaling group.
    pub usage_by_scaling_group: Vec<(String, ResourceSlot)>,
    /// Alive agents: `(scaling group, available, occupied)`.
    pub agents: Vec<(String, ResourceSlot, ResourceSlot)>,
    pub presets: Vec<ResourcePreset>,
    /// `config/api/resources/group_resource_visibility`: show group numbers, else `NaN`.
    pub group_visible: bool,
}

/// `ResourceSlot.from_policy`: each known slot, explicit or filled.
pub fn limits_from_policy(
    explicit: &ResourceSlot,
    unspecified_unlimited: bool,
    known: &SlotTypes,
) -> ResourceSlot {
    let fill = if unspecified_unlimited {
        SlotAmount::Infinite
    } else {
        SlotAmount::ZERO
    };
    known
        .keys()
        .map(|slot| {
            let amount = if explicit.contains(slot) {
                explicit.get(slot)
            } else {
                fill
            };
            (slot.clone(), amount)
        })
        .collect()
}

/// `a >= b` of the original: every slot of `b` is covered by `a` (missing counts as zero).
pub fn covers(a: &ResourceSlot, b: &ResourceSlot) -> bool {
    b.iter().all(|(slot, amount)| a.get(slot) >= *amount)
}

fn zeros(known: &SlotTypes) -> ResourceSlot {
    known
        .keys()
        .map(|slot| (slot.clone(), SlotAmount::ZERO))
        .collect()
}

fn nan_slots(known: &SlotTypes) -> Value {
    Value::Object(
        known
            .keys()
            .map(|slot| (slot.clone(), Value::String("NaN".into())))
            .collect(),
    )
}

/// The reply body of `check-presets`.
pub fn check_presets(input: &PresetCheckInput) -> Value {
    let known = &input.known;
    let keypair_limits = limits_from_policy(
        &input.keypair_policy_slots,
        input.keypair_unspecified_unlimited,
        known,
    );
    let keypair_using = input.keypair_occupied.normalized_to(known.keys());
    let mut keypair_remaining = &keypair_limits - &keypair_using;

    let group_limits = limits_from_policy(&input.group_slots, true, known);
    let group_using = input.group_occupied.normalized_to(known.keys());
    let group_remaining = &group_limits - &group_using;

    let domain_limits = limits_from_policy(&input.domain_slots, true, known);
    let domain_using = input.domain_occupied.normalized_to(known.keys());
    let domain_remaining = &domain_limits - &domain_using;

    for slot in known.keys() {
        let least = keypair_remaining
            .get(slot)
            .min(group_remaining.get(slot))
            .min(domain_remaining.get(slot));
        keypair_remaining.set(slot.clone(), least);
    }

    let mut per_group: Vec<(String, ResourceSlot, ResourceSlot)> = input
        .scaling_groups
        .iter()
        .map(|name| (name.clone(), zeros(known), zeros(known)))
        .collect();
    for (group, slots) in &input.usage_by_scaling_group {
        if let Some(entry) = per_group.iter_mut().find(|(name, _, _)| name == group) {
            entry.1 = &entry.1 + slots;
        }
    }
    let mut total_remaining = zeros(known);
    let mut agent_free: Vec<ResourceSlot> = Vec::with_capacity(input.agents.len());
    for (group, available, occupied) in &input.agents {
        let free = &(available - occupied) + &zeros(known);
        total_remaining = &total_remaining + &free;
        if let Some(entry) = per_group.iter_mut().find(|(name, _, _)| name == group) {
            entry.2 = &entry.2 + &free;
        }
        agent_free.push(free);
    }
    for (_, _, remaining) in &mut per_group {
        for slot in known.keys() {
            if remaining.contains(slot) {
                let capped = keypair_remaining.get(slot).min(remaining.get(slot));
                remaining.set(slot.clone(), capped);
            }
        }
    }
    for slot in known.keys() {
        let capped = keypair_remaining.get(slot).min(total_remaining.get(slot));
        total_remaining.set(slot.clone(), capped);
    }

    let presets: Vec<Value> = input
        .presets
        .iter()
        .map(|preset| {
            let slots = preset.resource_slots.normalized_to(known.keys());
            let allocatable = agent_free
                .iter()
                .any(|free| covers(free, &slots) && covers(&keypair_remaining, &slots));
            json!({
                "name": preset.name,
                "resource_slots": slots.to_json(),
                "shared_memory": preset.shared_memory.map(|bytes| bytes.to_string()),
                "allocatable": allocatable,
            })
        })
        .collect();

    let scaling_groups: Map<String, Value> = per_group
        .into_iter()
        .map(|(name, using, remaining)| {
            (
                name,
                json!({"using": using.to_json(), "remaining": remaining.to_json()}),
            )
        })
        .collect();

    let (group_limits, group_using, group_remaining) = if input.group_visible {
        (
            group_limits.to_json(),
            group_using.to_json(),
            group_remaining.to_json(),
        )
    } else {
        (nan_slots(known), nan_slots(known), nan_slots(known))
    };
    json!({
        "keypair_limits": keypair_limits.to_json(),
        "keypair_using": keypair_using.to_json(),
        "keypair_remaining": keypair_remaining.to_json(),
        "scaling_group_remaining": total_remaining.to_json(),
        "scaling_groups": scaling_groups,
        "presets": presets,
        "group_limits": group_limits,
        "group_using": group_using,
        "group_remaining": group_remaining,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bai_schema::slots::intrinsic_slot_types;

    fn slots(pairs: &[(&str, i64)]) -> ResourceSlot {
        ResourceSlot::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)))
    }

    fn preset(name: &str, cpu: i64, mem: i64) -> ResourcePreset {
        ResourcePreset {
            name: name.into(),
            resource_slots: slots(&[("cpu", cpu), ("mem", mem)]),
            shared_memory: None,
        }
    }

    /// The capture of the real manager (#60): unlimited policy, no agents, hidden groups.
    #[test]
    fn an_empty_cluster_answers_like_the_capture() {
        let input = PresetCheckInput {
            known: intrinsic_slot_types(),
            keypair_unspecified_unlimited: true,
            scaling_groups: vec!["default".into()],
            presets: vec![preset("cpu01-small", 1, 1073741824)],
            ..Default::default()
        };
        let reply = check_presets(&input);
        assert_eq!(
            reply["keypair_limits"],
            json!({"cpu": "Infinity", "mem": "Infinity"})
        );
        assert_eq!(reply["keypair_using"], json!({"cpu": "0", "mem": "0"}));
        assert_eq!(
            reply["keypair_remaining"],
            json!({"cpu": "Infinity", "mem": "Infinity"})
        );
        assert_eq!(
            reply["scaling_group_remaining"],
            json!({"cpu": "0", "mem": "0"})
        );
        assert_eq!(
            reply["scaling_groups"],
            json!({"default": {"using": {"cpu": "0", "mem": "0"}, "remaining": {"cpu": "0", "mem": "0"}}})
        );
        assert_eq!(
            reply["presets"],
            json!([{"name": "cpu01-small", "resource_slots": {"cpu": "1", "mem": "1073741824"},
                    "shared_memory": null, "allocatable": false}])
        );
        assert_eq!(reply["group_limits"], json!({"cpu": "NaN", "mem": "NaN"}));
    }

    #[test]
    fn agents_make_presets_allocatable_within_every_limit() {
        let input = PresetCheckInput {
            known: intrinsic_slot_types(),
            keypair_policy_slots: slots(&[("cpu", 6)]),
            keypair_unspecified_unlimited: true,
            keypair_occupied: slots(&[("cpu", 2), ("mem", 1 << 30)]),
            domain_slots: slots(&[("mem", 8 << 30)]),
            domain_occupied: slots(&[("mem", 2 << 30)]),
            scaling_groups: vec!["default".into(), "gpu".into()],
            usage_by_scaling_group: vec![(
                "default".into(),
                slots(&[("cpu", 2), ("mem", 1 << 30)]),
            )],
            agents: vec![
                (
                    "default".into(),
                    slots(&[("cpu", 8), ("mem", 16 << 30)]),
                    slots(&[("cpu", 2), ("mem", 1 << 30)]),
                ),
                (
                    "gpu".into(),
                    slots(&[("cpu", 2), ("mem", 4 << 30)]),
                    slots(&[]),
                ),
            ],
            presets: vec![
                preset("small", 1, 1 << 30),
                preset("wide", 5, 1 << 30),
                preset("fat", 1, 7 << 30),
            ],
            group_visible: true,
            ..Default::default()
        };
        let reply = check_presets(&input);
        // cpu: the keypair limit 6 minus 2 used; mem: the domain's 8 GiB minus 2 GiB used.
        assert_eq!(
            reply["keypair_remaining"],
            json!({"cpu": "4", "mem": "6442450944"})
        );
        assert_eq!(
            reply["scaling_groups"]["default"]["remaining"],
            json!({"cpu": "4", "mem": "6442450944"})
        );
        assert_eq!(
            reply["scaling_groups"]["gpu"]["remaining"],
            json!({"cpu": "2", "mem": "4294967296"})
        );
        assert_eq!(
            reply["scaling_groups"]["default"]["using"],
            json!({"cpu": "2", "mem": "1073741824"})
        );
        let allocatable: Vec<bool> = reply["presets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["allocatable"].as_bool().unwrap())
            .collect();
        // "wide" fits no agent's free cpu within the keypair's 4; "fat" exceeds the domain.
        assert_eq!(allocatable, vec![true, false, false]);
        assert_eq!(
            reply["group_limits"],
            json!({"cpu": "Infinity", "mem": "Infinity"})
        );
    }
}
