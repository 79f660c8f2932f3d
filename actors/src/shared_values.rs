//! One copy of a value that many records repeat, held as an `Arc`: most agents of a cluster
//! report the same slots, slot types and plugins, and an idle agent's occupied slots are the
//! same zeros as every other idle agent's.
//!
//! A few distinct values are kept to compare against; a cluster has a few kinds of node, and
//! beyond that values are left as they are instead of searched for. A kept value that nothing
//! else holds any more makes room for a new one, so a long-lived set follows what is in use.

use std::sync::Arc;

#[derive(Debug)]
pub struct SharedValues<T> {
    kept: Vec<Arc<T>>,
    limit: usize,
}

impl<T: PartialEq> SharedValues<T> {
    /// Keeps at most `limit` distinct values.
    pub fn new(limit: usize) -> Self {
        SharedValues {
            kept: Vec::new(),
            limit,
        }
    }

    /// Points `value` at the kept equal value, or keeps it when there is room.
    pub fn share(&mut self, value: &mut Arc<T>) {
        if let Some(same) = self.find(value) {
            *value = same;
        } else if self.make_room() {
            self.kept.push(Arc::clone(value));
        }
    }

    /// The kept value equal to `value`, or `value` in a new `Arc` (kept when there is room).
    pub fn share_owned(&mut self, value: T) -> Arc<T> {
        if let Some(same) = self.find(&value) {
            return same;
        }
        let value = Arc::new(value);
        if self.make_room() {
            self.kept.push(Arc::clone(&value));
        }
        value
    }

    /// How many distinct values are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.kept.len()
    }

    fn find(&self, value: &T) -> Option<Arc<T>> {
        self.kept
            .iter()
            .find(|kept| ***kept == *value)
            .map(Arc::clone)
    }

    /// Whether a new value can be kept, after letting go of the kept values only this set
    /// still holds.
    fn make_room(&mut self) -> bool {
        if self.kept.len() >= self.limit {
            self.kept.retain(|kept| Arc::strong_count(kept) > 1);
        }
        self.kept.len() < self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_end_up_as_one_copy() {
        let mut shared = SharedValues::new(4);
        let first = shared.share_owned("a".to_owned());
        let mut second = Arc::new("a".to_owned());
        shared.share(&mut second);
        let third = shared.share_owned("a".to_owned());
        assert!(Arc::ptr_eq(&first, &second));
        assert!(Arc::ptr_eq(&first, &third));
        let other = shared.share_owned("b".to_owned());
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(*other, "b");
        assert_eq!(shared.len(), 2);
    }

    #[test]
    fn a_full_set_leaves_new_values_as_they_are() {
        let mut shared = SharedValues::new(2);
        let held: Vec<_> = (0..2).map(|n| shared.share_owned(n)).collect();
        let mut late = Arc::new(7);
        let before = Arc::as_ptr(&late);
        shared.share(&mut late);
        assert_eq!(Arc::as_ptr(&late), before);
        assert_eq!(shared.len(), 2);
        // A kept value is still found when the set is full.
        assert!(Arc::ptr_eq(&shared.share_owned(1), &held[1]));
    }

    #[test]
    fn values_nothing_else_holds_make_room_for_new_ones() {
        let mut shared = SharedValues::new(2);
        let zero = shared.share_owned(0);
        drop(shared.share_owned(1));
        let two = shared.share_owned(2);
        assert_eq!(shared.len(), 2);
        assert!(Arc::ptr_eq(&shared.share_owned(2), &two));
        assert!(Arc::ptr_eq(&shared.share_owned(0), &zero));
    }
}
