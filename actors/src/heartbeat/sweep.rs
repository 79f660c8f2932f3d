//! The lost-agent sweep: once per interval, on one worker of the cluster at a time, find the
//! agents whose last heartbeat is older than `[manager] heartbeat-timeout` and produce
//! `agent_terminated("agent-lost")` for them (the tracker that consumes it marks them LOST).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;

use super::decide::lost_agents;
use super::store::{LAST_SEEN_KEY, StoreError};
use crate::wire::{Event, EventProducer};

/// The key in db 2 that names the worker currently running the sweep.
pub const SWEEP_GUARD_KEY: &str = "manager.agent_lost_sweep.owner";
/// How long the guard outlives its holder's last tick: three missed ticks hand the sweep to
/// another worker.
pub const SWEEP_GUARD_TTL: Duration = Duration::from_millis(3000);

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
    /// This worker's name in the guard.
    pub owner: String,
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
        owner: String,
    ) -> LostAgentSweep {
        LostAgentSweep {
            log,
            live,
            producer,
            heartbeat_timeout,
            owner,
            reported: HashMap::new(),
        }
    }

    /// Takes or renews the guard; false when another worker holds it.
    async fn hold_guard(&mut self) -> Result<bool, StoreError> {
        let ttl = SWEEP_GUARD_TTL.as_millis() as u64;
        let taken: Option<String> = redis::cmd("SET")
            .arg(SWEEP_GUARD_KEY)
            .arg(&self.owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl)
            .query_async(&mut self.live)
            .await?;
        if taken.is_some() {
            return Ok(true);
        }
        let holder: Option<String> = redis::cmd("GET")
            .arg(SWEEP_GUARD_KEY)
            .query_async(&mut self.live)
            .await?;
        if holder.as_deref() != Some(self.owner.as_str()) {
            return Ok(false);
        }
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(SWEEP_GUARD_KEY)
            .arg(ttl)
            .query_async(&mut self.live)
            .await?;
        Ok(true)
    }

    /// One sweep; returns how many agents were newly reported lost.
    pub async fn tick(&mut self) -> Result<usize, StoreError> {
        if !self.hold_guard().await? {
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
