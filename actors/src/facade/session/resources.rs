//! What a new kernel requests, decided without I/O: the image's slot ranges, shared memory,
//! the client's `resources` (or the legacy `instanceCores`/`instanceMemory`), the image minimum
//! and maximum, and the keypair policy's limits. Errors carry the original's messages.

use bai_schema::slots::{ResourceSlot, SlotAmount, SlotUnit, parse_binary_size};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::slot_types::SlotTypes;

/// Shared memory when neither the request nor the image label says (the original's `64m`).
pub const DEFAULT_SHMEM: &str = "64m";

/// The image label with its preferred shared memory.
pub const PREFERRED_SHMEM_LABEL: &str = "ai.backend.resource.preferred.shmem";

/// The slot ranges an image declares (`images.resources`), completed for the known slots
/// (minimum 0, maximum unlimited).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSlotRanges {
    pub min: ResourceSlot,
    pub max: ResourceSlot,
}

fn parse_amount(value: &Value, unit: SlotUnit) -> Option<SlotAmount> {
    let text = match value {
        Value::String(text) => text.trim().to_owned(),
        Value::Number(number) => number.to_string(),
        _ => return None,
    };
    if unit == SlotUnit::Bytes {
        if text.eq_ignore_ascii_case("infinity") {
            return Some(SlotAmount::Infinite);
        }
        parse_binary_size(&text)
            .ok()
            .map(|bytes| SlotAmount::Finite(Decimal::from(bytes)))
    } else {
        SlotAmount::parse(&text).ok()
    }
}

/// `ImageRow.get_slot_ranges`: unknown slots are ignored.
pub fn image_slot_ranges(resources: &Value, known: &SlotTypes) -> ImageSlotRanges {
    let mut min = ResourceSlot::new();
    let mut max = ResourceSlot::new();
    for (slot, unit) in known {
        let range = resources.get(slot);
        let low = range
            .and_then(|r| r.get("min"))
            .and_then(|v| parse_amount(v, *unit))
            .unwrap_or(SlotAmount::ZERO);
        let high = range
            .and_then(|r| r.get("max"))
            .and_then(|v| parse_amount(v, *unit))
            .unwrap_or(SlotAmount::Infinite);
        min.set(slot.clone(), low);
        max.set(slot.clone(), high);
    }
    ImageSlotRanges { min, max }
}

/// A byte count as the original's `BinarySize` `{:s}` format: `64m`, `1g`, `1536m`.
pub fn humanize_bytes(amount: SlotAmount) -> String {
    let Some(bytes) = amount.finite() else {
        return "Infinity".to_owned();
    };
    const UNITS: [&str; 7] = ["", "k", "m", "g", "t", "p", "e"];
    let mut value = bytes;
    let mut index = 0;
    let kib = Decimal::from(1024);
    while index + 1 < UNITS.len() && value >= kib && (value % kib).is_zero() {
        value /= kib;
        index += 1;
    }
    format!("{}{}", value.normalize(), UNITS[index])
}

/// `ResourceSlot.to_humanized`: `cpu=1 mem=1g`.
pub fn humanize_slots(slots: &ResourceSlot, known: &SlotTypes) -> String {
    slots
        .iter()
        .map(|(slot, amount)| {
            let text = if known.get(slot) == Some(&SlotUnit::Bytes) {
                humanize_bytes(*amount)
            } else {
                amount.to_string()
            };
            format!("{slot}={text}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What one kernel asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelRequest {
    pub requested: ResourceSlot,
    pub shmem_bytes: u64,
}

/// The legacy creation-config fields of API ≤ v4 clients.
#[derive(Debug, Clone, Default)]
pub struct LegacyResources {
    pub instance_cores: Option<Value>,
    pub instance_memory: Option<Value>,
    pub instance_gpus: Option<Value>,
    pub instance_tpus: Option<Value>,
}

fn bad(msg: impl Into<String>) -> Problem {
    Problem::invalid_params(msg)
}

/// Decides a kernel's requested slots and shared memory (`enqueue_session`), checking them
/// against the image's range: every slot at least the image minimum (plus shared memory for
/// `mem`), none above the maximum, and shared memory below the main memory.
pub fn kernel_request(
    resources: Option<&Map<String, Value>>,
    resource_opts: &Map<String, Value>,
    legacy: &LegacyResources,
    labels: &Value,
    ranges: &ImageSlotRanges,
    known: &SlotTypes,
) -> Result<KernelRequest, Problem> {
    let shmem_text = match resource_opts.get("shmem") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::Null) | None => labels
            .get(PREFERRED_SHMEM_LABEL)
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_SHMEM)
            .to_owned(),
        Some(_) => return Err(bad("resource_opts.shmem must be a size such as \"64m\"")),
    };
    let shmem_bytes = parse_binary_size(&shmem_text)
        .map_err(|_| bad(format!("Invalid shared memory size: {shmem_text}")))?;
    let shmem = SlotAmount::Finite(Decimal::from(shmem_bytes));
    let mut minimum = ranges.min.clone();
    minimum.set("mem", minimum.get("mem") + shmem);

    let requested = match resources {
        Some(resources) => {
            if let Some(unknown) = resources.keys().find(|slot| !known.contains_key(*slot)) {
                return Err(bad(format!("Unknown requested resource slot: {unknown}")));
            }
            let mut requested =
                ResourceSlot::from_user_input(&Value::Object(resources.clone()), known)
                    .map_err(|e| bad(format!("Invalid resource request: {e}")))?;
            // Unspecified (or zero) intrinsic slots get the image minimum.
            for slot in ["cpu", "mem"] {
                if requested.contains(slot) && requested.get(slot).is_zero() {
                    requested.set(slot, minimum.get(slot));
                }
            }
            requested
        }
        None => {
            if legacy.instance_gpus.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(bad("Client upgrade required to use GPUs (v19.03+)."));
            }
            if legacy.instance_tpus.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(bad("Client upgrade required to use TPUs (v19.03+)."));
            }
            let cpu = match legacy.instance_cores.as_ref().filter(|v| !v.is_null()) {
                Some(value) => Value::String(value.to_string().trim_matches('"').to_owned()),
                None => Value::String(minimum.get("cpu").to_string()),
            };
            let mem = match legacy.instance_memory.as_ref().filter(|v| !v.is_null()) {
                // Legacy clients give memory in GiB.
                Some(value) => Value::String(format!("{}g", value.to_string().trim_matches('"'))),
                None => Value::String(minimum.get("mem").to_string()),
            };
            let mut object = Map::new();
            object.insert("cpu".into(), cpu);
            object.insert("mem".into(), mem);
            ResourceSlot::from_user_input(&Value::Object(object), known)
                .map_err(|e| bad(format!("Invalid resource request: {e}")))?
        }
    };

    let below: Vec<String> = minimum
        .iter()
        .filter(|(slot, amount)| requested.get(slot) < **amount)
        .map(|(slot, _)| slot.to_owned())
        .collect();
    if !below.is_empty() {
        return Err(bad(format!(
            "Your resource request is smaller than the minimum required by the image. ({})",
            humanize_slots(&minimum, known)
        )));
    }
    if !requested.fits_within(&ranges.max) {
        return Err(bad(format!(
            "Your resource request is larger than the maximum allowed by the image. ({})",
            humanize_slots(&ranges.max, known)
        )));
    }
    if shmem >= requested.get("mem") {
        return Err(bad(format!(
            "Shared memory should be less than the main memory. (s:{}, m:{})",
            humanize_bytes(shmem),
            humanize_bytes(requested.get("mem"))
        )));
    }
    Ok(KernelRequest {
        requested,
        shmem_bytes,
    })
}

/// A request that exceeds the keypair policy can never be scheduled: refuse it at once
/// (412 quota-exceeded) instead of leaving it PENDING forever.
pub fn check_policy_limits(
    requested: &ResourceSlot,
    policy_slots: &ResourceSlot,
    unspecified_unlimited: bool,
    known: &SlotTypes,
) -> Result<(), Problem> {
    let over: Vec<String> = requested
        .iter()
        .filter(|(slot, amount)| {
            let limit = if policy_slots.contains(slot) {
                policy_slots.get(slot)
            } else if unspecified_unlimited {
                SlotAmount::Infinite
            } else {
                SlotAmount::ZERO
            };
            **amount > limit && !amount.is_zero()
        })
        .map(|(slot, _)| slot.to_owned())
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    let limits: ResourceSlot = over
        .iter()
        .map(|slot| {
            let limit = if policy_slots.contains(slot) {
                policy_slots.get(slot)
            } else {
                SlotAmount::ZERO
            };
            (slot.clone(), limit)
        })
        .collect();
    Err(Problem::new(ProblemKind::QuotaExceeded).with_msg(format!(
        "Your resource request exceeds your keypair resource policy ({})",
        humanize_slots(&limits, known)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bai_schema::slots::intrinsic_slot_types;
    use serde_json::json;

    fn ranges(resources: Value) -> ImageSlotRanges {
        image_slot_ranges(&resources, &intrinsic_slot_types())
    }

    fn request(
        resources: Value,
        opts: Value,
        image: &ImageSlotRanges,
    ) -> Result<KernelRequest, Problem> {
        kernel_request(
            resources.as_object(),
            opts.as_object().unwrap(),
            &LegacyResources::default(),
            &json!({}),
            image,
            &intrinsic_slot_types(),
        )
    }

    #[test]
    fn the_captures_request_gets_512m_and_64m_of_shared_memory() {
        let image = ranges(json!({"cpu": {"min": "1"}, "mem": {"min": "256m"}}));
        let got = request(json!({"cpu": "1", "mem": "512m"}), json!({}), &image).unwrap();
        assert_eq!(
            got.requested.to_json(),
            json!({"cpu": "1", "mem": "536870912"})
        );
        assert_eq!(got.shmem_bytes, 64 << 20);
    }

    #[test]
    fn requests_outside_the_image_range_are_refused_with_the_originals_messages() {
        let image = ranges(json!({"cpu": {"min": "2", "max": "4"}, "mem": {"min": "1g"}}));
        let problem = request(json!({"cpu": "1", "mem": "2g"}), json!({}), &image).unwrap_err();
        assert_eq!(
            problem.body()["msg"],
            "Your resource request is smaller than the minimum required by the image. (cpu=2 mem=1088m)"
        );
        let problem = request(json!({"cpu": "8", "mem": "2g"}), json!({}), &image).unwrap_err();
        assert!(
            problem.body()["msg"]
                .as_str()
                .unwrap()
                .starts_with("Your resource request is larger than the maximum"),
        );
        let no_memory_minimum = ranges(json!({"cpu": {"min": "2"}}));
        let problem = request(
            json!({"cpu": "2", "mem": "2g"}),
            json!({"shmem": "2g"}),
            &no_memory_minimum,
        )
        .unwrap_err();
        assert_eq!(
            problem.body()["msg"],
            "Shared memory should be less than the main memory. (s:2g, m:2g)"
        );
        let problem = request(json!({"cpu": "2", "gpu": "1"}), json!({}), &image).unwrap_err();
        assert_eq!(
            problem.body()["msg"],
            "Unknown requested resource slot: gpu"
        );
    }

    #[test]
    fn zero_or_missing_intrinsics_take_the_image_minimum() {
        let image = ranges(json!({"cpu": {"min": "1"}, "mem": {"min": "1g"}}));
        let got = request(json!({"cpu": "0", "mem": "2g"}), json!({}), &image).unwrap();
        assert_eq!(got.requested.get("cpu").to_string(), "1");
        let got = request(Value::Null, json!({}), &image).unwrap();
        // No resources at all: the image minimum, shared memory included.
        assert_eq!(
            got.requested.to_json(),
            json!({"cpu": "1", "mem": "1140850688"})
        );
    }

    #[test]
    fn the_keypair_policy_bounds_what_may_be_requested() {
        let known = intrinsic_slot_types();
        let asked = ResourceSlot::from_pairs([("cpu", 4), ("mem", 1 << 30)]);
        let policy = ResourceSlot::from_pairs([("cpu", 2)]);
        assert!(check_policy_limits(&asked, &policy, true, &known).is_err());
        let policy = ResourceSlot::from_pairs([("cpu", 8)]);
        assert!(check_policy_limits(&asked, &policy, true, &known).is_ok());
        let problem = check_policy_limits(&asked, &policy, false, &known).unwrap_err();
        assert_eq!(problem.status_code(), 412);
        assert_eq!(
            humanize_bytes(SlotAmount::Finite(Decimal::from(1536u64 << 20))),
            "1536m"
        );
    }
}
