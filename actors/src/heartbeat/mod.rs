//! The heartbeat tracker: keeps the `agents` view in step with what agents say. On
//! `agent_heartbeat` it refreshes `agent.last_seen`, inserts, updates (only what changed) or
//! revives the agent's row, records its images and new slot types; on `agent_started` /
//! `agent_terminated` it moves the agent's status; and once per second (on one worker) it
//! reports silent agents lost.
//!
//! An unchanged heartbeat costs one Redis HSET and no PostgreSQL statement: the tracker keeps
//! each agent's row in memory, and `HSET agent.last_seen` tells it when an agent was absent
//! from the hash (first contact, or marked lost/terminated by any worker since, which deletes
//! the field), in which case it re-reads the row.

pub mod decide;
pub mod store;
pub mod sweep;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bai_schema::SlotUnit;
use bai_schema::enums::AgentStatus;
use deadpool_postgres::Pool;
use redis::aio::ConnectionManager;

use self::decide::{
    AgentSnapshot, HeartbeatDecision, KeptRow, decide_heartbeat, leaves_unchanged,
    status_after_termination,
};
use self::store::{StoreError, WriteOutcome};
use self::sweep::{LostAgentSweep, unix_now};
use crate::etcd::EtcdStore;
use crate::event_bus::{EventBatch, EventInterest, ReceivedEvent, Unhandled};
use crate::lock::ClusterLocks;
use crate::wire::{AgentInfo, Event, EventProducer};

/// How often the lost-agent sweep runs (the original's `check_agent_lost` timer).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a cached row is trusted before the next heartbeat re-reads it (each agent's
/// own time is between half of it and it: [`decide::trust_cached_row_for`]); bounds how long
/// a change made by another worker or by hand can go unnoticed.
pub const CACHE_REVALIDATE_AFTER: Duration = Duration::from_secs(60);
/// Where the known slot types live in etcd (`<prefix><slot>` = count|bytes|unique).
pub const SLOT_TYPES_PREFIX: &str = "config/resource_slots/";
/// The original's `[manager] heartbeat-timeout` default.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(40);

/// The events the tracker handles.
pub fn interest() -> EventInterest {
    EventInterest::names(&["agent_heartbeat", "agent_started", "agent_terminated"])
}

/// What the tracker needs to reach.
#[derive(Clone)]
pub struct TrackerDeps {
    pub pool: Pool,
    /// The lock actor: the lost-agent sweep runs under its `AgentLostSweep` lock.
    pub locks: ClusterLocks,
    /// Redis db 2.
    pub live: ConnectionManager,
    /// Redis db 3.
    pub images: ConnectionManager,
    pub producer: EventProducer,
    pub etcd: EtcdStore,
}

#[derive(Debug, Clone)]
pub struct TrackerSettings {
    pub heartbeat_timeout: Duration,
    pub sweep_interval: Duration,
    /// This worker's name (for logs).
    pub worker: String,
}

/// Counters a test or a benchmark can read.
#[derive(Debug, Clone, Default, PartialEq, Eq, MessageResponse)]
pub struct TrackerStats {
    pub heartbeats: u64,
    pub inserted: u64,
    pub updated: u64,
    pub revived: u64,
    pub marked_terminated: u64,
    pub ignored: u64,
    pub errors: u64,
}

#[derive(Message)]
#[rtype(result = "TrackerStats")]
pub struct GetTrackerStats;

struct CachedAgent {
    row: KeptRow,
    images_fingerprint: Option<u64>,
    /// Until when a heartbeat may trust `row` without reading it again: the agent's own time
    /// after the read ([`decide::trust_cached_row_for`]), worked out once per read.
    trusted_until: Instant,
}

struct TrackerCore {
    log: slog::Logger,
    deps: TrackerDeps,
    cache: HashMap<String, CachedAgent>,
    known_slot_types: HashMap<String, SlotUnit>,
    slot_types_loaded: bool,
    stats: TrackerStats,
}

pub struct HeartbeatTracker {
    log: slog::Logger,
    settings: TrackerSettings,
    core: Arc<tokio::sync::Mutex<TrackerCore>>,
    sweep: Arc<tokio::sync::Mutex<LostAgentSweep>>,
}

impl HeartbeatTracker {
    pub fn new(log: slog::Logger, deps: TrackerDeps, settings: TrackerSettings) -> Self {
        let sweep = LostAgentSweep::new(
            log.new(slog::o!("worker" => settings.worker.clone())),
            deps.live.clone(),
            deps.producer.clone(),
            settings.heartbeat_timeout,
            deps.locks.clone(),
            deps.pool.clone(),
        );
        HeartbeatTracker {
            log: log.clone(),
            settings,
            core: Arc::new(tokio::sync::Mutex::new(TrackerCore {
                log,
                deps,
                cache: HashMap::new(),
                known_slot_types: HashMap::new(),
                slot_types_loaded: false,
                stats: TrackerStats::default(),
            })),
            sweep: Arc::new(tokio::sync::Mutex::new(sweep)),
        }
    }
}

impl Actor for HeartbeatTracker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let core = self.core.clone();
        ctx.wait(
            async move {
                core.lock().await.warm_up().await;
            }
            .into_actor(self),
        );
        ctx.run_interval(self.settings.sweep_interval, |tracker, ctx| {
            let sweep = tracker.sweep.clone();
            let log = tracker.log.clone();
            ctx.spawn(
                async move {
                    // A slow tick is skipped rather than queued behind the previous one.
                    let Ok(mut sweep) = sweep.try_lock() else {
                        return;
                    };
                    let swept = sweep.tick().await;
                    if let Ok(lost) = &swept {
                        crate::metrics::METRICS
                            .agents_lost
                            .fetch_add(*lost as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    if let Err(error) = swept {
                        slog::warn!(log, "lost-agent sweep failed; retrying next tick"; "error" => %error);
                    }
                }
                .into_actor(tracker),
            );
        });
    }
}

/// The tracker's name in the supervision registry.
pub const ACTOR_NAME: &str = "heartbeat-tracker";

/// Its state is a cache of the agents table and the sweep's memory, both rebuilt from the
/// database and Redis, so a stopped tracker restarts in place (`started` warms the cache again
/// and re-arms the sweep timer).
impl Supervised for HeartbeatTracker {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let count = crate::supervision::record_restart(ACTOR_NAME);
        slog::warn!(self.log, "heartbeat tracker: restarting"; "restarts" => count);
    }
}

crate::handle_injected_faults!(HeartbeatTracker, ACTOR_NAME);

impl Handler<EventBatch> for HeartbeatTracker {
    type Result = ResponseFuture<Result<(), Unhandled>>;

    /// Failures to record an event are logged and counted (`TrackerStats::errors`), not
    /// redelivered: the agent's next heartbeat carries the same information.
    fn handle(&mut self, batch: EventBatch, _ctx: &mut Self::Context) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
            core.lock().await.handle_batch(batch.events).await;
            Ok(())
        })
    }
}

impl Handler<GetTrackerStats> for HeartbeatTracker {
    type Result = ResponseFuture<TrackerStats>;

    fn handle(&mut self, _: GetTrackerStats, _ctx: &mut Self::Context) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move { core.lock().await.stats.clone() })
    }
}

fn images_fingerprint(info: &AgentInfo) -> Option<u64> {
    let images = info.images.as_ref()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for image in images.iter() {
        image.canonical.hash(&mut hasher);
        image.digest.hash(&mut hasher);
    }
    Some(hasher.finish())
}

impl TrackerCore {
    async fn warm_up(&mut self) {
        match store::load_all(&self.deps.pool).await {
            Ok(rows) => {
                let now = Instant::now();
                for (agent, snapshot) in rows {
                    let trusted_until =
                        now + decide::trust_cached_row_for(&agent, CACHE_REVALIDATE_AFTER);
                    self.cache.insert(
                        agent,
                        CachedAgent {
                            row: snapshot.kept(),
                            images_fingerprint: None,
                            trusted_until,
                        },
                    );
                }
            }
            Err(error) => {
                slog::warn!(self.log, "cannot preload the agents table; rows will be read on demand"; "error" => %error)
            }
        }
        self.load_slot_types().await;
    }

    async fn load_slot_types(&mut self) {
        match self.deps.etcd.get_prefix_flat(SLOT_TYPES_PREFIX).await {
            Ok(entries) => {
                for (key, unit) in entries {
                    let slot = key.strip_prefix(SLOT_TYPES_PREFIX).unwrap_or(&key);
                    if let Some(unit) = SlotUnit::parse(&unit) {
                        self.known_slot_types.insert(slot.to_owned(), unit);
                    }
                }
                self.slot_types_loaded = true;
            }
            Err(error) => {
                slog::warn!(self.log, "cannot read config/resource_slots from etcd"; "error" => %error)
            }
        }
    }

    async fn handle_batch(&mut self, events: Vec<ReceivedEvent>) {
        let mut heartbeats: Vec<(String, Arc<AgentInfo>)> = Vec::new();
        for received in events {
            match received.event {
                Event::AgentHeartbeat(info) => {
                    crate::metrics::bump(&crate::metrics::METRICS.heartbeats);
                    heartbeats.push((received.source, info))
                }
                Event::AgentStarted { reason } => {
                    self.flush_heartbeats(std::mem::take(&mut heartbeats)).await;
                    self.agent_started(&received.source, &reason).await;
                }
                Event::AgentTerminated { reason } => {
                    self.flush_heartbeats(std::mem::take(&mut heartbeats)).await;
                    self.agent_terminated(&received.source, &reason).await;
                }
                _ => {}
            }
        }
        self.flush_heartbeats(heartbeats).await;
    }

    async fn agent_started(&mut self, agent: &str, reason: &str) {
        match store::mark_started(&self.deps.pool, agent).await {
            Ok(changed) => {
                if changed {
                    slog::info!(self.log, "agent started"; "agent" => agent, "reason" => reason);
                }
                if changed && let Some(cached) = self.cache.get_mut(agent) {
                    cached.row.status = AgentStatus::Alive;
                }
            }
            Err(error) => {
                self.stats.errors += 1;
                slog::error!(self.log, "cannot mark agent alive"; "agent" => agent, "error" => %error);
            }
        }
    }

    async fn agent_terminated(&mut self, agent: &str, reason: &str) {
        let status = status_after_termination(reason);
        let result = async {
            // The row first, then the last-seen field: a heartbeat racing with this either
            // still finds the field (and is handled as before), or finds it gone and re-reads
            // the row, now LOST/TERMINATED, and revives the agent.
            let changed = store::mark_terminated(&self.deps.pool, agent, status).await?;
            if status != AgentStatus::Restarting {
                store::forget_last_seen(&mut self.deps.live, agent).await?;
                store::remove_from_image_sets(&mut self.deps.images, agent).await?;
            }
            Ok::<bool, StoreError>(changed)
        }
        .await;
        match result {
            Ok(changed) => {
                if changed {
                    self.stats.marked_terminated += 1;
                    slog::info!(self.log, "agent terminated"; "agent" => agent,
                        "reason" => reason, "status" => ?status);
                }
                if let Some(cached) = self.cache.get_mut(agent) {
                    cached.row.status = status;
                    cached.images_fingerprint = None;
                }
            }
            Err(error) => {
                self.stats.errors += 1;
                slog::error!(self.log, "cannot mark agent terminated"; "agent" => agent,
                    "reason" => reason, "error" => %error);
            }
        }
    }

    async fn flush_heartbeats(&mut self, heartbeats: Vec<(String, Arc<AgentInfo>)>) {
        if heartbeats.is_empty() {
            return;
        }
        self.stats.heartbeats += heartbeats.len() as u64;
        // Only the newest heartbeat of each agent in the batch matters.
        let mut latest: HashMap<String, Arc<AgentInfo>> = HashMap::with_capacity(heartbeats.len());
        let mut order = Vec::with_capacity(heartbeats.len());
        for (agent, info) in heartbeats {
            if latest.insert(agent.clone(), info).is_none() {
                order.push(agent);
            }
        }
        let now = unix_now();
        let touches: Vec<(&str, f64)> = order.iter().map(|agent| (agent.as_str(), now)).collect();
        let newly_seen = match store::touch_last_seen(&mut self.deps.live, &touches).await {
            Ok(flags) => flags,
            Err(error) => {
                self.stats.errors += 1;
                slog::error!(self.log, "cannot record heartbeats in agent.last_seen"; "error" => %error);
                vec![true; order.len()]
            }
        };
        self.record_new_slot_types(latest.values().map(|info| &**info))
            .await;
        let mut to_verify = Vec::new();
        for (agent, was_absent) in order.iter().zip(newly_seen) {
            let Some(info) = latest.get(agent) else {
                continue;
            };
            let fast = !was_absent
                && self.cache.get(agent).is_some_and(|cached| {
                    Instant::now() < cached.trusted_until && leaves_unchanged(&cached.row, info)
                });
            if fast {
                self.record_images(agent, info, false).await;
            } else {
                to_verify.push(agent.clone());
            }
        }
        if to_verify.is_empty() {
            return;
        }
        let rows: HashMap<String, AgentSnapshot> =
            match store::load_some(&self.deps.pool, &to_verify).await {
                Ok(rows) => rows.into_iter().collect(),
                Err(error) => {
                    self.stats.errors += 1;
                    slog::error!(self.log, "cannot read agents rows"; "error" => %error);
                    return;
                }
            };
        let mut first_contacts = Vec::new();
        for agent in to_verify {
            let Some(info) = latest.get(&agent) else {
                continue;
            };
            match decide_heartbeat(rows.get(&agent), info) {
                HeartbeatDecision::Unchanged => {
                    self.remember(&agent, KeptRow::alive(info), None);
                    self.record_images(&agent, info, true).await;
                }
                HeartbeatDecision::Insert => first_contacts.push(agent),
                _ => self.write_heartbeat(&agent, info).await,
            }
        }
        self.insert_first_contacts(first_contacts, &latest).await;
    }

    /// Inserts agents seen for the first time in one transaction (many agents join at once
    /// when a cluster or this manager starts). Agents naming an unknown scaling group are
    /// logged and skipped; whatever the bulk insert could not take goes one by one.
    async fn insert_first_contacts(
        &mut self,
        agents: Vec<String>,
        latest: &HashMap<String, Arc<AgentInfo>>,
    ) {
        if agents.is_empty() {
            return;
        }
        let mut groups: Vec<String> = agents
            .iter()
            .filter_map(|agent| latest.get(agent).map(|info| info.scaling_group.clone()))
            .collect();
        groups.sort();
        groups.dedup();
        let known = match store::existing_scaling_groups(&self.deps.pool, &groups).await {
            Ok(known) => known,
            Err(error) => {
                slog::warn!(self.log, "cannot read scaling groups; inserting agents one by one"; "error" => %error);
                for agent in &agents {
                    if let Some(info) = latest.get(agent) {
                        self.write_heartbeat(agent, info).await;
                    }
                }
                return;
            }
        };
        let mut batch = Vec::with_capacity(agents.len());
        for agent in &agents {
            let Some(info) = latest.get(agent) else {
                continue;
            };
            if known.contains(&info.scaling_group) {
                batch.push((agent.as_str(), &**info));
            } else {
                // The one-by-one path logs and counts it.
                self.write_heartbeat(agent, info).await;
            }
        }
        let inserted: HashSet<String> = match store::insert_new_agents(&self.deps.pool, &batch)
            .await
        {
            Ok(inserted) => inserted.into_iter().collect(),
            Err(error) => {
                slog::warn!(self.log, "bulk insert of new agents failed; inserting them one by one"; "error" => %error);
                HashSet::new()
            }
        };
        for (agent, info) in batch {
            if inserted.contains(agent) {
                self.stats.inserted += 1;
                slog::info!(self.log, "agent joined"; "agent" => agent,
                    "addr" => &info.addr, "scaling_group" => &info.scaling_group,
                    "slots" => %info.available_slots.to_json());
                self.remember(agent, KeptRow::alive(info), None);
                self.record_images(agent, info, true).await;
            } else {
                self.write_heartbeat(agent, info).await;
            }
        }
    }

    async fn write_heartbeat(&mut self, agent: &str, info: &AgentInfo) {
        match store::apply_heartbeat(&self.deps.pool, agent, info).await {
            Ok((outcome, snapshot)) => {
                match &outcome {
                    WriteOutcome::Inserted => {
                        self.stats.inserted += 1;
                        slog::info!(self.log, "agent joined"; "agent" => agent,
                            "addr" => &info.addr, "scaling_group" => &info.scaling_group,
                            "slots" => %info.available_slots.to_json());
                    }
                    WriteOutcome::Revived => {
                        self.stats.revived += 1;
                        slog::info!(self.log, "agent revived"; "agent" => agent, "addr" => &info.addr);
                        let event = Event::AgentStarted {
                            reason: "revived".to_owned(),
                        };
                        if let Err(error) = self.deps.producer.produce_as(agent, &event).await {
                            slog::error!(self.log, "cannot produce agent_started(revived)";
                                "agent" => agent, "error" => %error);
                        }
                    }
                    WriteOutcome::Updated(columns) => {
                        self.stats.updated += 1;
                        slog::info!(self.log, "agent changed"; "agent" => agent,
                            "columns" => columns.join(","));
                    }
                    WriteOutcome::Unchanged => {}
                    WriteOutcome::LeftRestarting => {
                        slog::debug!(self.log, "heartbeat from a restarting agent"; "agent" => agent);
                    }
                }
                self.remember(agent, snapshot.kept(), None);
                self.record_images(agent, info, true).await;
            }
            Err(StoreError::UnknownScalingGroup {
                agent,
                scaling_group,
            }) => {
                self.stats.ignored += 1;
                slog::warn!(self.log, "heartbeat ignored: the agent's scaling group does not exist; create it or fix the agent's config";
                    "agent" => agent, "scaling_group" => scaling_group);
            }
            Err(error) => {
                self.stats.errors += 1;
                slog::error!(self.log, "cannot record heartbeat"; "agent" => agent, "error" => %error);
            }
        }
    }

    fn remember(&mut self, agent: &str, row: KeptRow, images: Option<u64>) {
        let images_fingerprint = images.or_else(|| {
            self.cache
                .get(agent)
                .and_then(|cached| cached.images_fingerprint)
        });
        self.cache.insert(
            agent.to_owned(),
            CachedAgent {
                row,
                images_fingerprint,
                trusted_until: Instant::now()
                    + decide::trust_cached_row_for(agent, CACHE_REVALIDATE_AFTER),
            },
        );
    }

    /// SADDs the agent to its images' sets when the list changed (or `force`).
    async fn record_images(&mut self, agent: &str, info: &AgentInfo, force: bool) {
        let (Some(images), Some(fingerprint)) = (&info.images, images_fingerprint(info)) else {
            return;
        };
        let cached = self
            .cache
            .get(agent)
            .and_then(|cached| cached.images_fingerprint);
        if !force && cached == Some(fingerprint) {
            return;
        }
        match store::add_to_image_sets(&mut self.deps.images, agent, images).await {
            Ok(()) => {
                if let Some(cached) = self.cache.get_mut(agent) {
                    cached.images_fingerprint = Some(fingerprint);
                }
            }
            Err(error) => {
                self.stats.errors += 1;
                slog::error!(self.log, "cannot record the agent's images"; "agent" => agent, "error" => %error);
            }
        }
    }

    /// Writes `config/resource_slots/<slot>` for slot types not seen before.
    async fn record_new_slot_types<'a>(&mut self, infos: impl Iterator<Item = &'a AgentInfo>) {
        if !self.slot_types_loaded {
            self.load_slot_types().await;
        }
        let mut new_types: HashMap<String, SlotUnit> = HashMap::new();
        let intrinsic: HashSet<&str> = ["cpu", "mem"].into();
        for info in infos {
            for (slot, unit) in info.slot_types.iter() {
                if !intrinsic.contains(slot.as_str()) && !self.known_slot_types.contains_key(slot) {
                    new_types.insert(slot.clone(), *unit);
                }
            }
        }
        if new_types.is_empty() {
            return;
        }
        let pairs: Vec<(String, String)> = new_types
            .iter()
            .map(|(slot, unit)| {
                (
                    format!("{SLOT_TYPES_PREFIX}{slot}"),
                    unit.as_str().to_owned(),
                )
            })
            .collect();
        match self.deps.etcd.put_many(&pairs).await {
            Ok(()) => {
                slog::info!(self.log, "new slot types registered in etcd";
                    "slots" => pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","));
                self.known_slot_types.extend(new_types);
            }
            Err(error) => {
                self.stats.errors += 1;
                slog::error!(self.log, "cannot write new slot types to etcd"; "error" => %error);
            }
        }
    }
}
