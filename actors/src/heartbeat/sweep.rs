//! The lost-agent sweep: once per interval, on one worker of the cluster at a time, find the
//! agents whose last heartbeat is older than `[manager] heartbeat-timeout` and produce
//! `agent_terminated("agent-lost")` for them (the tracker that consumes it marks them LOST).
//!
//! "One worker at a time" is the lock actor's `AgentLostSweep` lock: the worker that gets it
//! keeps it between ticks and sweeps; the others try again every [`SWEEP_LOCK_RETRY`], so one
//! takes over when the holder dies (a filelock at once, an etcd lease after `lock-lifetime`).
//! Fencing: before it reports agents lost, the holder checks its token against the database,
//! so a holder that lost its lock while paused reports nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;
use redis::aio::ConnectionManager;

use super::decide::lost_agents;
use super::store::{LAST_SEEN_KEY, StoreError};
use crate::lock::{ClusterLocks, FenceError, LockGuard, LockId};
use crate::wire::{Event, EventProducer};

/// How often a worker that does not run the sweep tries to take it over.
pub const SWEEP_LOCK_RETRY: Duration = Duration::from_millis(3000);

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or_default()
}

pub struct LostAgentSweep {
    pub log: slog::Logger,
    pub live: ConnectionManager,
    pub producer: EventProducer,
    pub heartbeat_timeout: Duration,
    locks: ClusterLocks,
    /// For the fence check before reporting.
    pool: Pool,
    /// The sweep lock, while this worker holds it.
    held: Option<LockGuard>,
    /// When a worker without the lock may try again.
    next_attempt: Option<Instant>,
    /// Agents already reported lost, with the last-seen time that was reported, so that one
    /// silence produces one event however long the handling takes.
    reported: HashMap<String, f64>,
}

impl LostAgentSweep {
    pub fn new(
        log: slog::Logger,
        live: ConnectionManager,
        producer: EventProducer,
        heartbeat_timeout: Duration,
        locks: ClusterLocks,
        pool: Pool,
    ) -> LostAgentSweep {
        LostAgentSweep {
            log,
            live,
            producer,
            heartbeat_timeout,
            locks,
            pool,
            held: None,
            next_attempt: None,
            reported: HashMap::new(),
        }
    }

    /// Keeps or takes the sweep lock; false when another worker holds it.
    async fn hold_lock(&mut self) -> Result<bool, StoreError> {
        if let Some(guard) = &self.held {
            if !guard.is_lost() {
                return Ok(true);
            }
            slog::warn!(self.log, "lost the lost-agent sweep lock");
            self.held = None;
        }
        let now = Instant::now();
        if self.next_attempt.is_some_and(|at| now < at) {
            return Ok(false);
        }
        self.next_attempt = Some(now + SWEEP_LOCK_RETRY);
        match self
            .locks
            .acquire(LockId::AgentLostSweep, Some(Duration::ZERO))
            .await?
        {
            Some(guard) => {
                slog::info!(self.log, "this worker now runs the lost-agent sweep";
                    "token" => guard.fence().token);
                self.held = Some(guard);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether our token is still the newest on record; drops the lock when it is not.
    async fn fence_holds(&mut self) -> Result<bool, StoreError> {
        let Some(guard) = &self.held else {
            return Ok(false);
        };
        let client = self.pool.get().await?;
        match guard.fence().check(&**client).await {
            Ok(()) => Ok(true),
            Err(FenceError::Stale { .. }) => {
                slog::warn!(
                    self.log,
                    "a newer holder took the lost-agent sweep; stepping down"
                );
                self.held = None;
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// One sweep; returns how many agents were newly reported lost.
    pub async fn tick(&mut self) -> Result<usize, StoreError> {
        if !self.hold_lock().await? {
            return Ok(0);
        }
        let last_seen: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(LAST_SEEN_KEY)
            .query_async(&mut self.live)
            .await?;
        let mut parsed = Vec::with_capacity(last_seen.len());
        for (agent, seen) in &last_seen {
            match seen.parse::<f64>() {
                Ok(seen) => parsed.push((agent.as_str(), seen)),
                Err(_) => {
                    slog::warn!(self.log, "agent.last_seen holds a value that is not a unix time";
                    "agent" => agent, "value" => seen)
                }
            }
        }
        let seen_at: HashMap<&str, f64> = parsed.iter().copied().collect();
        let lost = lost_agents(
            unix_now(),
            parsed.iter().copied(),
            self.heartbeat_timeout.as_secs_f64(),
        );
        self.reported.retain(|agent, _| lost.contains(agent));
        let unreported = lost
            .iter()
            .any(|agent| self.reported.get(agent) != seen_at.get(agent.as_str()));
        if unreported && !self.fence_holds().await? {
            return Ok(0);
        }
        let mut newly_reported = 0;
        for agent in lost {
            let seen = seen_at.get(agent.as_str()).copied().unwrap_or_default();
            if self.reported.get(&agent) == Some(&seen) {
                continue;
            }
            let event = Event::AgentTerminated {
                reason: "agent-lost".to_owned(),
            };
            match self.producer.produce_as(&agent, &event).await {
                Ok(_) => {
                    slog::info!(self.log, "agent missed its heartbeats: reporting it lost";
                        "agent" => &agent, "last_seen" => seen);
                    self.reported.insert(agent, seen);
                    newly_reported += 1;
                }
                Err(error) => slog::error!(self.log, "cannot report a lost agent";
                    "agent" => &agent, "error" => %error),
            }
        }
        Ok(newly_reported)
    }
}
