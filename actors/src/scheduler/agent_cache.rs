//! The schedulable agents a worker keeps between its passes: a pass lists every agent's row
//! version and reads again only the rows that changed since, instead of transferring and
//! decoding the slots of every agent (at 10,000 agents that was most of a pass).
//!
//! A row's version is its `xmin`, the transaction that wrote the row as it is now: every
//! `UPDATE` (a heartbeat that changes the slots, a reservation, a freed kernel, an operator's
//! change of group or schedulability) writes a new row with a new one, whichever process made
//! it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bai_schema::ResourceSlot;
use bai_schema::queries::scheduler_load::AgentVersionRow;

use super::load::SLOT_VALUES_SHARED;
use super::snapshot::AgentView;
use crate::shared_values::SharedValues;

#[derive(Debug)]
pub struct AgentCache {
    agents: HashMap<String, CachedAgent>,
    /// The slot values the kept views share: at 10,000 agents, three maps of their own per
    /// agent were about 6 MiB of a worker.
    slots: SharedValues<ResourceSlot>,
}

impl Default for AgentCache {
    fn default() -> Self {
        AgentCache {
            agents: HashMap::new(),
            slots: SharedValues::new(SLOT_VALUES_SHARED),
        }
    }
}

#[derive(Debug)]
struct CachedAgent {
    version: i64,
    view: Arc<AgentView>,
}

impl AgentCache {
    pub fn new() -> Self {
        AgentCache::default()
    }

    /// How many agents are kept.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The slot values to share the rows read again with.
    pub fn shared_slots(&mut self) -> &mut SharedValues<ResourceSlot> {
        &mut self.slots
    }

    /// The listed agents not kept at their listed version: the rows to read again.
    pub fn stale(&self, listing: &[AgentVersionRow]) -> Vec<String> {
        listing
            .iter()
            .filter(|row| {
                self.agents
                    .get(&row.id)
                    .is_none_or(|cached| cached.version != row.version)
            })
            .map(|row| row.id.clone())
            .collect()
    }

    /// Keeps the rows read again (`fresh`, each with its version) and returns the views of the
    /// listed agents, in listing order.
    ///
    /// A stale agent that `fresh` lacks (it stopped being ALIVE or schedulable between the two
    /// reads) is left out. The kept agents of `scaling_groups` that are not in the listing are
    /// forgotten; those of other groups stay for the passes that plan those groups.
    pub fn refresh(
        &mut self,
        scaling_groups: &[String],
        listing: &[AgentVersionRow],
        fresh: Vec<(i64, AgentView)>,
    ) -> Vec<Arc<AgentView>> {
        let mut refreshed: HashSet<String> = HashSet::with_capacity(fresh.len());
        for (version, view) in fresh {
            refreshed.insert(view.id.clone());
            self.agents.insert(
                view.id.clone(),
                CachedAgent {
                    version,
                    view: Arc::new(view),
                },
            );
        }
        let mut listed: HashSet<&str> = HashSet::with_capacity(listing.len());
        let mut views = Vec::with_capacity(listing.len());
        for row in listing {
            let Some(cached) = self.agents.get(&row.id) else {
                continue;
            };
            if cached.version == row.version || refreshed.contains(&row.id) {
                listed.insert(row.id.as_str());
                views.push(Arc::clone(&cached.view));
            }
        }
        self.agents.retain(|id, cached| {
            listed.contains(id.as_str()) || !scaling_groups.contains(&cached.view.scaling_group)
        });
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, group: &str, cpu: i64) -> AgentView {
        AgentView {
            id: id.to_owned(),
            scaling_group: group.to_owned(),
            architecture: "x86_64".to_owned(),
            available_slots: Arc::new(ResourceSlot::from_pairs([("cpu", cpu)])),
            occupied_slots: Default::default(),
            container_count: 0,
            free: Default::default(),
        }
    }

    fn listed(rows: &[(&str, i64)]) -> Vec<AgentVersionRow> {
        rows.iter()
            .map(|(id, version)| AgentVersionRow {
                id: (*id).to_owned(),
                version: *version,
            })
            .collect()
    }

    fn ids(views: &[Arc<AgentView>]) -> Vec<&str> {
        views.iter().map(|v| v.id.as_str()).collect()
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn an_empty_cache_reads_every_listed_agent() {
        let cache = AgentCache::new();
        assert_eq!(cache.stale(&listed(&[("a", 1), ("b", 2)])), ["a", "b"]);
    }

    #[test]
    fn only_agents_whose_row_changed_are_read_again() {
        let mut cache = AgentCache::new();
        let sg = groups(&["default"]);
        let first = listed(&[("a", 1), ("b", 2)]);
        cache.refresh(
            &sg,
            &first,
            vec![(1, view("a", "default", 4)), (2, view("b", "default", 8))],
        );
        let second = listed(&[("a", 1), ("b", 3)]);
        assert_eq!(cache.stale(&second), ["b"]);
        let views = cache.refresh(&sg, &second, vec![(3, view("b", "default", 16))]);
        assert_eq!(ids(&views), ["a", "b"]);
        assert_eq!(
            views[1].available_slots,
            Arc::new(ResourceSlot::from_pairs([("cpu", 16)]))
        );
        assert!(cache.stale(&second).is_empty());
    }

    #[test]
    fn a_changed_agent_the_second_read_no_longer_finds_is_left_out_and_forgotten() {
        let mut cache = AgentCache::new();
        let sg = groups(&["default"]);
        cache.refresh(
            &sg,
            &listed(&[("a", 1), ("b", 2)]),
            vec![(1, view("a", "default", 4)), (2, view("b", "default", 8))],
        );
        // `b` changed (version 3) and then stopped being schedulable before the second read.
        let listing = listed(&[("a", 1), ("b", 3)]);
        let views = cache.refresh(&sg, &listing, Vec::new());
        assert_eq!(ids(&views), ["a"]);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_row_read_again_counts_even_when_it_changed_once_more_after_the_listing() {
        let mut cache = AgentCache::new();
        let sg = groups(&["default"]);
        let listing = listed(&[("a", 5)]);
        let views = cache.refresh(&sg, &listing, vec![(6, view("a", "default", 4))]);
        assert_eq!(ids(&views), ["a"]);
        // Next pass: the listing shows version 6, which the cache holds.
        assert!(cache.stale(&listed(&[("a", 6)])).is_empty());
    }

    #[test]
    fn agents_gone_from_a_listed_group_are_forgotten_and_other_groups_are_kept() {
        let mut cache = AgentCache::new();
        cache.refresh(
            &groups(&["gpu", "cpu"]),
            &listed(&[("g1", 1), ("c1", 2)]),
            vec![(1, view("g1", "gpu", 4)), (2, view("c1", "cpu", 4))],
        );
        // A pass over `cpu` alone, where `c1` is gone: `g1` stays for the next pass over `gpu`.
        let views = cache.refresh(&groups(&["cpu"]), &[], Vec::new());
        assert!(views.is_empty());
        assert_eq!(cache.len(), 1);
        assert!(cache.stale(&listed(&[("g1", 1)])).is_empty());
    }

    #[test]
    fn an_agent_moved_to_another_group_is_read_again() {
        let mut cache = AgentCache::new();
        cache.refresh(
            &groups(&["cpu"]),
            &listed(&[("a", 1)]),
            vec![(1, view("a", "cpu", 4))],
        );
        // Moving it is an UPDATE: a new version, listed under its new group.
        let listing = listed(&[("a", 2)]);
        assert_eq!(cache.stale(&listing), ["a"]);
        let views = cache.refresh(&groups(&["gpu"]), &listing, vec![(2, view("a", "gpu", 4))]);
        assert_eq!(views[0].scaling_group, "gpu");
    }
}
