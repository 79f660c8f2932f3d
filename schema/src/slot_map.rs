//! The map behind a `ResourceSlot`: slot names to amounts, kept as a vector sorted by name.
//!
//! A slot map holds two to a handful of entries, and a cluster holds several per agent (its
//! available, occupied and free slots). A `BTreeMap` gives each map a node with room for eleven
//! entries (about 500 bytes); this gives it room for what it holds. Iteration is in name order,
//! as the `BTreeMap`'s was. Names are [`SlotName`]s, held inline.

use crate::slot_name::SlotName;
use crate::slots::SlotAmount;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotMap(Vec<(SlotName, SlotAmount)>);

impl SlotMap {
    pub fn new() -> Self {
        SlotMap(Vec::new())
    }

    fn position(&self, slot: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(name, _)| name.as_str().cmp(slot))
    }

    pub fn get(&self, slot: &str) -> Option<&SlotAmount> {
        self.position(slot).ok().map(|index| &self.0[index].1)
    }

    pub fn contains_key(&self, slot: &str) -> bool {
        self.position(slot).is_ok()
    }

    /// Sets `slot`; returns the amount it replaced.
    pub fn insert(&mut self, slot: impl Into<SlotName>, amount: SlotAmount) -> Option<SlotAmount> {
        let slot = slot.into();
        match self.position(&slot) {
            Ok(index) => Some(std::mem::replace(&mut self.0[index].1, amount)),
            Err(index) => {
                self.0.insert(index, (slot, amount));
                None
            }
        }
    }

    /// The amount of `slot`, inserted as `default` when absent.
    pub fn get_or_insert(&mut self, slot: &str, default: SlotAmount) -> &mut SlotAmount {
        let index = match self.position(slot) {
            Ok(index) => index,
            Err(index) => {
                self.0.insert(index, (SlotName::new(slot), default));
                index
            }
        };
        &mut self.0[index].1
    }

    pub fn remove(&mut self, slot: &str) -> Option<SlotAmount> {
        self.position(slot).ok().map(|index| self.0.remove(index).1)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &SlotAmount)> {
        self.0.iter().map(|(name, amount)| (name.as_str(), amount))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &SlotAmount> {
        self.0.iter().map(|(_, amount)| amount)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// As collecting into a `BTreeMap`: sorted by name, a later entry for the same name wins.
impl<N: Into<SlotName>> FromIterator<(N, SlotAmount)> for SlotMap {
    fn from_iter<I: IntoIterator<Item = (N, SlotAmount)>>(iter: I) -> Self {
        let mut entries: Vec<(SlotName, SlotAmount)> = iter
            .into_iter()
            .map(|(name, amount)| (name.into(), amount))
            .collect();
        // Stable, so equal names keep their order and the last one is kept below.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(SlotName, SlotAmount)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match unique.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => unique.push(entry),
            }
        }
        unique.shrink_to_fit();
        SlotMap(unique)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(n: i64) -> SlotAmount {
        SlotAmount::from(n)
    }

    #[test]
    fn entries_stay_sorted_and_unique_whatever_the_order_they_come_in() {
        let mut map: SlotMap = [
            ("mem".to_owned(), amount(1)),
            ("cpu".to_owned(), amount(2)),
            ("mem".to_owned(), amount(3)),
        ]
        .into_iter()
        .collect();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["cpu", "mem"]);
        assert_eq!(map.get("mem"), Some(&amount(3)));
        assert_eq!(map.insert("cuda.shares".to_owned(), amount(1)), None);
        assert_eq!(map.insert("cpu".to_owned(), amount(4)), Some(amount(2)));
        assert_eq!(
            map.keys().collect::<Vec<_>>(),
            ["cpu", "cuda.shares", "mem"]
        );
        assert_eq!(map.keys().next_back(), Some("mem"));
        *map.get_or_insert("tpu", amount(0)) = amount(7);
        *map.get_or_insert("cpu", amount(0)) = amount(5);
        assert_eq!(map.get("tpu"), Some(&amount(7)));
        assert_eq!(map.get("cpu"), Some(&amount(5)));
        assert_eq!(map.remove("cuda.shares"), Some(amount(1)));
        assert!(!map.contains_key("cuda.shares"));
        assert_eq!(map.len(), 3);
        assert_eq!(
            map.values().copied().collect::<Vec<_>>(),
            [amount(5), amount(3), amount(7)]
        );
    }

    #[test]
    fn maps_with_the_same_entries_are_equal_however_they_were_built() {
        let mut built = SlotMap::new();
        built.insert("mem".to_owned(), amount(1));
        built.insert("cpu".to_owned(), amount(2));
        let collected: SlotMap = [("cpu".to_owned(), amount(2)), ("mem".to_owned(), amount(1))]
            .into_iter()
            .collect();
        assert_eq!(built, collected);
    }
}
