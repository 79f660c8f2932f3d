//! The known resource slot types: the intrinsic `cpu` (count) and `mem` (bytes), merged with
//! etcd `config/resource_slots/<slot> = count|bytes|unique` (which the manager writes when
//! agents report new devices). Cached for `SLOT_TYPES_CACHE_TTL`, as the original does.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bai_schema::slots::{SlotUnit, intrinsic_slot_types};

use crate::etcd::{EtcdError, EtcdStore};

/// The etcd prefix of the slot types.
pub const RESOURCE_SLOTS_PREFIX: &str = "config/resource_slots";

/// How long the slot types read from etcd are reused (the original's 2 s cache).
pub const SLOT_TYPES_CACHE_TTL: Duration = Duration::from_secs(2);

/// Slot name → unit.
pub type SlotTypes = BTreeMap<String, SlotUnit>;

/// Merges the etcd pairs (`<slot>` → unit text) into the intrinsic slots. Values that are
/// not units are skipped: a bad etcd entry must not take the API down.
pub fn merge_slot_types<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> SlotTypes {
    let mut types = intrinsic_slot_types();
    for (slot, unit) in pairs {
        if let Some(unit) = SlotUnit::parse(unit.trim())
            && !slot.is_empty()
            && !slot.contains('/')
        {
            types.insert(slot.to_owned(), unit);
        }
    }
    types
}

#[derive(Default)]
pub struct SlotTypesCache {
    last: RwLock<Option<(Instant, Arc<SlotTypes>)>>,
}

impl SlotTypesCache {
    /// The known slot types, from the cache or etcd.
    pub async fn current(&self, etcd: &EtcdStore) -> Result<Arc<SlotTypes>, EtcdError> {
        if let Some((read_at, types)) = self.last.read().ok().and_then(|guard| guard.clone())
            && read_at.elapsed() < SLOT_TYPES_CACHE_TTL
        {
            return Ok(types);
        }
        let pairs = etcd
            .get_prefix_flat(&format!("{RESOURCE_SLOTS_PREFIX}/"))
            .await?;
        let prefix_len = RESOURCE_SLOTS_PREFIX.len() + 1;
        let types = Arc::new(merge_slot_types(
            pairs
                .iter()
                .filter(|(key, _)| key.len() > prefix_len)
                .map(|(key, value)| (&key[prefix_len..], value.as_str())),
        ));
        if let Ok(mut guard) = self.last.write() {
            *guard = Some((Instant::now(), Arc::clone(&types)));
        }
        Ok(types)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_slots_join_the_intrinsic_ones() {
        let types = merge_slot_types([
            ("cuda.device", "count"),
            ("cuda.mem", "bytes"),
            ("weird", "kilograms"),
        ]);
        assert_eq!(types.get("cpu"), Some(&SlotUnit::Count));
        assert_eq!(types.get("mem"), Some(&SlotUnit::Bytes));
        assert_eq!(types.get("cuda.device"), Some(&SlotUnit::Count));
        assert_eq!(types.get("cuda.mem"), Some(&SlotUnit::Bytes));
        assert!(!types.contains_key("weird"));
    }
}
