//! Agent selectors (`scheduler_opts.agent_selection_strategy`): which agent gets a session.
//!
//! Every selector considers only agents of the requested architecture whose free slots
//! (`available - occupied`) cover the request. Among those:
//! * `dispersed` (default) takes the most free resources,
//! * `concentrated` the tightest fit,
//! * `legacy` the biggest agent by total capacity,
//! * `roundrobin` the first fitting agent after the last one chosen (agents ordered by id).
//!
//! The first key is always the number of "extras" (slots the request sets to zero but the agent
//! has), so sessions that need no accelerator avoid accelerator nodes. The remaining keys follow
//! `agent-selection-resource-priority`. Ties go to the smallest agent id, so choices are
//! deterministic. An ordered index per request shape keeps a choice logarithmic in the number of
//! agents instead of a scan over all of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bai_schema::{ResourceSlot, SlotAmount};
use rust_decimal::Decimal;

use super::snapshot::AgentView;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AgentSelectionStrategy {
    Legacy,
    RoundRobin,
    Concentrated,
    #[default]
    Dispersed,
}

impl AgentSelectionStrategy {
    pub fn parse(name: &str) -> Option<AgentSelectionStrategy> {
        match name.trim().to_ascii_lowercase().as_str() {
            "legacy" => Some(AgentSelectionStrategy::Legacy),
            "roundrobin" => Some(AgentSelectionStrategy::RoundRobin),
            "concentrated" => Some(AgentSelectionStrategy::Concentrated),
            "dispersed" => Some(AgentSelectionStrategy::Dispersed),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            AgentSelectionStrategy::Legacy => "legacy",
            AgentSelectionStrategy::RoundRobin => "roundrobin",
            AgentSelectionStrategy::Concentrated => "concentrated",
            AgentSelectionStrategy::Dispersed => "dispersed",
        }
    }
}

/// The requested slot names in selection-priority order. Device sub-slots (`cuda.shares`) rank
/// right after their device (`cuda`); names the priority list does not know come last, by name.
pub fn order_by_priority(requested: &ResourceSlot, resource_priority: &[String]) -> Vec<String> {
    let mut priority: Vec<String> = resource_priority.to_vec();
    for slot in requested.keys().rev() {
        let device = slot.split('.').next().unwrap_or(slot);
        if !priority.iter().any(|known| known == slot)
            && let Some(position) = priority.iter().position(|p| p == device)
        {
            priority.insert(position + 1, slot.to_owned());
        }
    }
    let rank = |slot: &String| {
        priority
            .iter()
            .position(|p| p == slot)
            .unwrap_or(usize::MAX)
    };
    let mut ordered: Vec<String> = requested.keys().map(str::to_owned).collect();
    ordered.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    ordered
}

/// Slots the request sets to zero that the agent has some of.
pub fn num_extras(available: &ResourceSlot, requested: &ResourceSlot) -> u32 {
    requested
        .iter()
        .filter(|(slot, amount)| amount.is_zero() && available.get(slot) > SlotAmount::ZERO)
        .count() as u32
}

/// A slot amount ranked so that ascending order is the selector's order of preference;
/// a slot the agent lacks always ranks last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank(u8, Decimal);

fn rank(amount: Option<SlotAmount>, descending: bool) -> Rank {
    match (amount, descending) {
        (None, _) => Rank(3, Decimal::ZERO),
        (Some(SlotAmount::Infinite), true) => Rank(0, Decimal::ZERO),
        (Some(SlotAmount::Finite(d)), true) => Rank(1, -d),
        (Some(SlotAmount::Finite(d)), false) => Rank(1, d),
        (Some(SlotAmount::Infinite), false) => Rank(2, Decimal::ZERO),
    }
}

type IndexKey = (u32, Vec<Rank>, usize);

/// What distinguishes requests that rank agents the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    architecture: String,
    /// (slot, requested amount is zero), in priority order.
    slots: Vec<(String, bool)>,
}

struct ShapeIndex {
    priorities: Vec<String>,
    zero_slots: ResourceSlot,
    ordered: BTreeSet<IndexKey>,
    key_of: HashMap<usize, IndexKey>,
    extras_present: BTreeMap<u32, usize>,
    /// Requests that found no agent this pass: a request at least as big fails too, because free
    /// capacity only shrinks during a pass (the cache is cleared when a reservation is undone).
    failed: Vec<ResourceSlot>,
}

/// Bound on remembered failed requests per shape, so the check stays cheap.
const MAX_REMEMBERED_FAILURES: usize = 16;

struct PoolAgent {
    view: Arc<AgentView>,
    /// Shared with the view until a placement changes it.
    free: Arc<ResourceSlot>,
    containers: u32,
}

/// The agents of one scaling group during a pass, with their free slots as placements proceed.
pub struct AgentPool {
    strategy: AgentSelectionStrategy,
    resource_priority: Vec<String>,
    max_container_count: Option<u32>,
    agents: Vec<PoolAgent>,
    by_id: HashMap<String, usize>,
    shapes: HashMap<Shape, ShapeIndex>,
    /// Agent indices per architecture, by id (round robin order).
    by_architecture: BTreeMap<String, Vec<usize>>,
    roundrobin_next: BTreeMap<String, usize>,
}

impl AgentPool {
    pub fn new(
        mut agents: Vec<Arc<AgentView>>,
        strategy: AgentSelectionStrategy,
        resource_priority: &[String],
        max_container_count: Option<u32>,
        roundrobin_next: BTreeMap<String, usize>,
    ) -> AgentPool {
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        agents.dedup_by(|a, b| a.id == b.id);
        let mut by_architecture: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut by_id = HashMap::new();
        let agents: Vec<PoolAgent> = agents
            .into_iter()
            .enumerate()
            .map(|(index, view)| {
                by_architecture
                    .entry(view.architecture.clone())
                    .or_default()
                    .push(index);
                by_id.insert(view.id.clone(), index);
                PoolAgent {
                    free: view.free_slots(),
                    containers: view.container_count,
                    view,
                }
            })
            .collect();
        AgentPool {
            strategy,
            resource_priority: resource_priority.to_vec(),
            max_container_count,
            agents,
            by_id,
            shapes: HashMap::new(),
            by_architecture,
            roundrobin_next,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    pub fn agent_id(&self, index: usize) -> &str {
        &self.agents[index].view.id
    }

    pub fn index_of(&self, agent_id: &str) -> Option<usize> {
        self.by_id.get(agent_id).copied()
    }

    pub fn free_slots(&self, index: usize) -> &ResourceSlot {
        &self.agents[index].free
    }

    /// Sum of the available slots of every agent (the capacity DRF divides by).
    pub fn total_capacity(&self) -> ResourceSlot {
        self.agents.iter().fold(ResourceSlot::new(), |sum, agent| {
            &sum + &agent.view.available_slots
        })
    }

    /// The round-robin cursors after this pass.
    pub fn roundrobin_next(&self) -> &BTreeMap<String, usize> {
        &self.roundrobin_next
    }

    /// The agent ids of each architecture that has a cursor, in round-robin (id) order.
    pub fn roundrobin_members(&self) -> BTreeMap<String, Vec<String>> {
        self.roundrobin_next
            .keys()
            .filter_map(|architecture| {
                let members = self.by_architecture.get(architecture)?;
                let ids = members
                    .iter()
                    .map(|&index| self.agents[index].view.id.clone())
                    .collect();
                Some((architecture.clone(), ids))
            })
            .collect()
    }

    /// Whether every agent of `architecture` is at `config/agent/max-container-count` for
    /// `containers` more containers (the refusal then says so, as the original's does).
    pub fn all_at_container_limit(&self, architecture: &str, containers: u32) -> bool {
        let Some(limit) = self.max_container_count else {
            return false;
        };
        self.by_architecture
            .get(architecture)
            .is_some_and(|members| {
                !members.is_empty()
                    && members
                        .iter()
                        .all(|&index| self.agents[index].containers + containers > limit)
            })
    }

    /// Whether agent `index` can take `requested` in `containers` new containers now.
    pub fn fits(&self, index: usize, requested: &ResourceSlot, containers: u32) -> bool {
        let agent = &self.agents[index];
        if let Some(limit) = self.max_container_count
            && agent.containers + containers > limit
        {
            return false;
        }
        requested.fits_within(&agent.free)
    }

    /// Chooses an agent for `requested` on `architecture`, or `None` if none fits.
    pub fn select(
        &mut self,
        architecture: &str,
        requested: &ResourceSlot,
        containers: u32,
    ) -> Option<usize> {
        if self.strategy == AgentSelectionStrategy::RoundRobin {
            return self.select_roundrobin(architecture, requested, containers);
        }
        let shape = self.shape_of(architecture, requested);
        if !self.shapes.contains_key(&shape) {
            let index = self.build_index(&shape);
            self.shapes.insert(shape.clone(), index);
        }
        let index = self.shapes.get(&shape)?;
        if index
            .failed
            .iter()
            .any(|failed| failed.fits_within(requested))
        {
            return None;
        }
        let chosen = match self.strategy {
            AgentSelectionStrategy::Concentrated => {
                self.scan_concentrated(index, requested, containers)
            }
            AgentSelectionStrategy::Dispersed => self.scan_descending(index, requested, containers),
            _ => self.scan_all(index, requested, containers),
        };
        if chosen.is_none()
            && let Some(index) = self.shapes.get_mut(&shape)
            && index.failed.len() < MAX_REMEMBERED_FAILURES
        {
            index.failed.push(requested.clone());
        }
        chosen
    }

    /// Takes `slots` (and `containers` containers) from agent `index`.
    pub fn reserve(&mut self, index: usize, slots: &ResourceSlot, containers: u32) {
        let agent = &mut self.agents[index];
        agent.free = Arc::new(&*agent.free - slots);
        agent.containers += containers;
        self.reindex(index);
    }

    /// Gives back what `reserve` took (a multi-node session that could not be placed whole).
    pub fn release(&mut self, index: usize, slots: &ResourceSlot, containers: u32) {
        let agent = &mut self.agents[index];
        agent.free = Arc::new(&*agent.free + slots);
        agent.containers = agent.containers.saturating_sub(containers);
        self.reindex(index);
        for shape in self.shapes.values_mut() {
            shape.failed.clear();
        }
    }

    fn shape_of(&self, architecture: &str, requested: &ResourceSlot) -> Shape {
        Shape {
            architecture: architecture.to_owned(),
            slots: order_by_priority(requested, &self.resource_priority)
                .into_iter()
                .map(|slot| {
                    let zero = requested.get(&slot).is_zero();
                    (slot, zero)
                })
                .collect(),
        }
    }

    fn key_for(&self, shape: &ShapeIndex, index: usize) -> IndexKey {
        let agent = &self.agents[index];
        let extras = num_extras(&agent.view.available_slots, &shape.zero_slots);
        let (source, descending) = match self.strategy {
            AgentSelectionStrategy::Legacy => (&*agent.view.available_slots, true),
            AgentSelectionStrategy::Concentrated => (&*agent.free, false),
            _ => (&*agent.free, true),
        };
        let ranks = shape
            .priorities
            .iter()
            .map(|slot| rank(source.amount(slot), descending))
            .collect();
        (extras, ranks, index)
    }

    fn build_index(&self, shape: &Shape) -> ShapeIndex {
        let mut index = ShapeIndex {
            priorities: shape.slots.iter().map(|(slot, _)| slot.clone()).collect(),
            zero_slots: shape
                .slots
                .iter()
                .filter(|(_, zero)| *zero)
                .map(|(slot, _)| (slot.clone(), SlotAmount::ZERO))
                .collect(),
            ordered: BTreeSet::new(),
            key_of: HashMap::new(),
            extras_present: BTreeMap::new(),
            failed: Vec::new(),
        };
        let members = self
            .by_architecture
            .get(&shape.architecture)
            .cloned()
            .unwrap_or_default();
        for agent_index in members {
            let key = self.key_for(&index, agent_index);
            *index.extras_present.entry(key.0).or_default() += 1;
            index.key_of.insert(agent_index, key.clone());
            index.ordered.insert(key);
        }
        index
    }

    fn reindex(&mut self, agent_index: usize) {
        let shapes: Vec<Shape> = self.shapes.keys().cloned().collect();
        for shape in shapes {
            let Some(index) = self.shapes.get(&shape) else {
                continue;
            };
            if !index.key_of.contains_key(&agent_index) {
                continue;
            }
            let new_key = self.key_for(index, agent_index);
            if let Some(index) = self.shapes.get_mut(&shape)
                && let Some(old_key) = index.key_of.insert(agent_index, new_key.clone())
            {
                index.ordered.remove(&old_key);
                index.ordered.insert(new_key);
            }
        }
    }

    fn scan_all(
        &self,
        index: &ShapeIndex,
        requested: &ResourceSlot,
        containers: u32,
    ) -> Option<usize> {
        index
            .ordered
            .iter()
            .map(|(_, _, agent)| *agent)
            .find(|&agent| self.fits(agent, requested, containers))
    }

    /// Dispersed: within each extras group agents come by descending free amount of the first
    /// priority slot, so the scan of a group stops at the first agent short of that slot.
    fn scan_descending(
        &self,
        index: &ShapeIndex,
        requested: &ResourceSlot,
        containers: u32,
    ) -> Option<usize> {
        let first_slot = index.priorities.first();
        for &extras in index.extras_present.keys() {
            let group = index
                .ordered
                .range((extras, Vec::new(), 0)..(extras + 1, Vec::new(), 0));
            for (_, _, agent) in group {
                if self.fits(*agent, requested, containers) {
                    return Some(*agent);
                }
                if let Some(slot) = first_slot
                    && self.agents[*agent].free.get(slot) < requested.get(slot)
                {
                    break;
                }
            }
        }
        None
    }

    /// Concentrated: within each extras group, start at the first agent whose free amount of the
    /// first priority slot covers the request, and take the first that fits entirely.
    fn scan_concentrated(
        &self,
        index: &ShapeIndex,
        requested: &ResourceSlot,
        containers: u32,
    ) -> Option<usize> {
        let start_rank: Vec<Rank> = index
            .priorities
            .first()
            .map(|slot| vec![rank(Some(requested.get(slot)), false)])
            .unwrap_or_default();
        for &extras in index.extras_present.keys() {
            let group = index
                .ordered
                .range((extras, start_rank.clone(), 0)..(extras + 1, Vec::new(), 0));
            for (_, _, agent) in group {
                if self.fits(*agent, requested, containers) {
                    return Some(*agent);
                }
            }
        }
        None
    }

    fn select_roundrobin(
        &mut self,
        architecture: &str,
        requested: &ResourceSlot,
        containers: u32,
    ) -> Option<usize> {
        let members = self.by_architecture.get(architecture)?;
        if members.is_empty() {
            return None;
        }
        let start = self.roundrobin_next.get(architecture).copied().unwrap_or(0) % members.len();
        let found = (0..members.len())
            .map(|offset| (start + offset) % members.len())
            .find(|&position| self.fits(members[position], requested, containers))?;
        let chosen = members[found];
        self.roundrobin_next
            .insert(architecture.to_owned(), (found + 1) % members.len());
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The original's selection, written as a plain scan over every agent.
    fn naive_select(
        agents: &[(AgentView, ResourceSlot)],
        strategy: AgentSelectionStrategy,
        requested: &ResourceSlot,
        priority: &[String],
    ) -> Option<String> {
        let priorities = order_by_priority(requested, priority);
        let fitting = agents
            .iter()
            .filter(|(_, free)| requested.fits_within(free));
        let key = |view: &AgentView, free: &ResourceSlot| -> (u32, Vec<Rank>) {
            let (source, descending) = match strategy {
                AgentSelectionStrategy::Legacy => (&*view.available_slots, true),
                AgentSelectionStrategy::Concentrated => (free, false),
                _ => (free, true),
            };
            (
                num_extras(&view.available_slots, requested),
                priorities
                    .iter()
                    .map(|slot| rank(source.amount(slot), descending))
                    .collect(),
            )
        };
        fitting
            .min_by(|(a, fa), (b, fb)| key(a, fa).cmp(&key(b, fb)).then(a.id.cmp(&b.id)))
            .map(|(view, _)| view.id.clone())
    }

    fn arb_slots() -> impl Strategy<Value = ResourceSlot> {
        (0i64..8, 0i64..8, proptest::option::of(0i64..3)).prop_map(|(cpu, mem, gpu)| {
            let mut slots = ResourceSlot::from_pairs([("cpu", cpu), ("mem", mem)]);
            if let Some(gpu) = gpu {
                slots.set("cuda.device", gpu);
            }
            slots
        })
    }

    proptest! {
        #[test]
        fn indexed_selection_matches_a_full_scan(
            agents in proptest::collection::vec(arb_slots(), 1..15),
            requests in proptest::collection::vec(arb_slots(), 1..30),
            strategy in prop_oneof![
                Just(AgentSelectionStrategy::Legacy),
                Just(AgentSelectionStrategy::Concentrated),
                Just(AgentSelectionStrategy::Dispersed),
            ],
        ) {
            let priority = crate::scheduler::snapshot::default_resource_priority();
            let views: Vec<AgentView> = agents
                .into_iter()
                .enumerate()
                .map(|(n, available)| AgentView {
                    id: format!("i-{n:02}"),
                    scaling_group: "default".to_owned(),
                    architecture: "x86_64".to_owned(),
                    available_slots: Arc::new(available),
                    occupied_slots: Default::default(),
                    container_count: 0,
                    free: Default::default(),
                })
                .collect();
            let mut pool = AgentPool::new(views.iter().cloned().map(Arc::new).collect(), strategy, &priority, None, BTreeMap::new());
            let mut mirror: Vec<(AgentView, ResourceSlot)> =
                views.into_iter().map(|v| { let free = (*v.available_slots).clone(); (v, free) }).collect();
            for request in requests {
                let expected = naive_select(&mirror, strategy, &request, &priority);
                let chosen = pool.select("x86_64", &request, 1);
                prop_assert_eq!(chosen.map(|i| pool.agent_id(i).to_owned()), expected.clone());
                if let Some(index) = chosen {
                    pool.reserve(index, &request, 1);
                    let entry = mirror.iter_mut().find(|(v, _)| Some(&v.id) == expected.as_ref()).unwrap();
                    entry.1 = &entry.1 - &request;
                }
            }
        }
    }
}
