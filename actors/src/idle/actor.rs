//! The idle-checker actor: a thin shell that, on a timer and under the cluster-wide lock
//! `LOCKID_IDLE_CHECK_TIMER` (so one worker of the cluster checks at a time), reads the running
//! sessions and their Redis state, applies the decisions of [`super::checks`], writes the
//! reports, and asks the scheduler to destroy the sessions a checker condemned (with the
//! checker's reason, so `session_terminated` carries it). It also marks sessions active when
//! they start (`session_started`), as the original's network-timeout checker does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bai_schema::queries::idle::{IdleCandidate, idle_candidates};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::json;
use slog::{Logger, debug, info, warn};
use uuid::Uuid;

use super::checks::{
    NetworkActivity, Verdict, current_utilization, judge_utilization, network_timeout,
    push_samples, remaining_time, session_lifetime, unavailable_resources, utilization_grace_end,
    utilization_window,
};
use super::config::{CheckerKind, IdleConfig};
use super::keys;
use super::report::touch;
use crate::etcd::EtcdStore;
use crate::event_bus::{EventBatch, EventInterest, Unhandled};
use crate::lock::{ClusterLocks, Exclusive, LockId};
use crate::scheduler::messages::DestroySession;
use crate::wire::msgpack;
use crate::wire::msgpack_json::msgpack_to_json;
use crate::wire::{Event, SessionEvent, SessionEventKind};

/// The original's `DEFAULT_CHECK_INTERVAL`; `[manager] idle-check-interval` overrides it.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(15);

/// The idle checker's name in the supervision registry.
pub const ACTOR_NAME: &str = "idle-checker";

/// The events the idle checker listens to.
pub fn interest() -> EventInterest {
    EventInterest::names(&["session_started"])
}

#[derive(Debug, thiserror::Error)]
pub enum IdleCheckError {
    #[error(transparent)]
    Query(#[from] bai_schema::queries::QueryError),
    #[error("redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Etcd(#[from] crate::etcd::EtcdError),
    #[error(transparent)]
    Config(#[from] super::config::IdleConfigError),
}

pub struct IdleCheckerDeps {
    pub pool: Pool,
    pub etcd: EtcdStore,
    /// Redis database `live` (activity, series, reports).
    pub live: ConnectionManager,
    /// Redis database `stat` (the agents' live statistics by kernel id).
    pub stat: ConnectionManager,
    pub locks: ClusterLocks,
    pub destroy: Recipient<DestroySession>,
    pub interval: Duration,
    pub log: Logger,
}

pub struct IdleChecker {
    deps: Arc<IdleCheckerDeps>,
    checking: bool,
}

impl IdleChecker {
    pub fn new(deps: IdleCheckerDeps) -> IdleChecker {
        IdleChecker {
            deps: Arc::new(deps),
            checking: false,
        }
    }

    fn request_check(&mut self, ctx: &mut Context<Self>) {
        if self.checking {
            return;
        }
        self.checking = true;
        let deps = self.deps.clone();
        ctx.spawn(
            async move { locked_check(deps).await }
                .into_actor(self)
                .map(|_, act, _| act.checking = false),
        );
    }
}

impl Actor for IdleChecker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.deps.interval, |act, ctx| act.request_check(ctx));
    }
}

impl Supervised for IdleChecker {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // A check cut short by the stop left the flag set; the lock was released with it.
        self.checking = false;
        let count = crate::supervision::record_restart(ACTOR_NAME);
        warn!(self.deps.log, "idle checker: restarting"; "restarts" => count);
    }
}

crate::handle_injected_faults!(IdleChecker, ACTOR_NAME);

impl Handler<EventBatch> for IdleChecker {
    type Result = Result<(), Unhandled>;

    /// Marking a started session active is best effort (the checker's grace covers a miss),
    /// so the batch is always acknowledged.
    fn handle(&mut self, batch: EventBatch, _ctx: &mut Self::Context) -> Self::Result {
        for received in batch.events {
            if let Event::Session(SessionEvent {
                kind: SessionEventKind::Started,
                session_id,
                ..
            }) = received.event
            {
                let deps = self.deps.clone();
                actix::spawn(async move {
                    if let Err(error) = touch(&deps.live, session_id).await {
                        warn!(deps.log, "cannot mark a started session active";
                            "session" => %session_id, "error" => %error);
                    }
                });
            }
        }
        Ok(())
    }
}

async fn locked_check(deps: Arc<IdleCheckerDeps>) {
    let job_deps = deps.clone();
    let outcome = deps
        .locks
        .run_exclusive(LockId::IdleCheckTimer, Some(Duration::ZERO), |_fence| {
            // Terminations go through the scheduler's own fenced destroy path, so the check
            // itself writes nothing that a stale holder could clobber.
            async move { check_and_condemn(&job_deps).await }
        })
        .await;
    match outcome {
        Ok(Exclusive::Done(())) | Ok(Exclusive::Busy) => {}
        Ok(Exclusive::Lost) => warn!(deps.log, "the idle-check lock was lost mid-check"),
        Err(error) => warn!(deps.log, "cannot take the idle-check lock"; "error" => %error),
    }
}

async fn check_and_condemn(deps: &IdleCheckerDeps) {
    match check_all(deps).await {
        Ok(condemned) => {
            for (session_id, access_key, checker) in condemned {
                info!(deps.log, "an idle checker ends a session";
                    "checker" => checker.name(), "session" => %session_id);
                let message = DestroySession {
                    session_id,
                    access_key,
                    forced: false,
                    reason: checker.terminate_reason().to_owned(),
                };
                match crate::supervision::tracked(
                    crate::scheduler::actor::ACTOR_NAME,
                    deps.destroy.send(message),
                )
                .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => warn!(deps.log, "cannot end an idle session";
                        "session" => %session_id, "error" => %error),
                    Err(error) => warn!(deps.log, "the scheduler did not take the destroy";
                        "session" => %session_id, "error" => %error),
                }
            }
        }
        Err(error) => warn!(deps.log, "idle check failed"; "error" => %error),
    }
}

fn epoch(at: DateTime<Utc>) -> f64 {
    at.timestamp_micros() as f64 / 1e6
}

/// Runs every enabled checker on every running session; returns the sessions to end, each
/// with the first checker that condemned it.
async fn check_all(
    deps: &IdleCheckerDeps,
) -> Result<Vec<(Uuid, String, CheckerKind)>, IdleCheckError> {
    let config = IdleConfig::from_tree(&deps.etcd.get_prefix("config/idle").await?)?;
    let client = deps
        .pool
        .get()
        .await
        .map_err(bai_schema::queries::QueryError::from)?;
    let (db_now, candidates) = idle_candidates(&client).await?;
    drop(client);
    let mut live = deps.live.clone();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut live).await?;
    let now = secs as f64 + micros as f64 / 1e6;
    let clocks = Clocks {
        redis_now: now,
        db_now: epoch(db_now),
        interval: deps.interval.as_secs_f64(),
    };
    let mut condemned = Vec::new();
    for candidate in &candidates {
        let grace_end = match (config.user_initial_grace_period, candidate.user_created_at) {
            (Some(period), Some(created)) => Some(epoch(created) + period),
            _ => None,
        };
        let mut first = None;
        for checker in &config.checkers {
            let verdict =
                match check_one(deps, &config, *checker, candidate, &clocks, grace_end).await {
                    Ok(verdict) => verdict,
                    Err(error) => {
                        warn!(deps.log, "an idle checker failed on a session";
                        "checker" => checker.name(), "session" => %candidate.session_id,
                        "error" => %error);
                        continue;
                    }
                };
            if let Some(remaining) = verdict.report {
                let packed = msgpack::encode(&crate::wire::Value::F64(remaining));
                live.set_ex::<_, _, ()>(
                    keys::report(candidate.session_id, *checker),
                    packed,
                    keys::REPORT_TTL_SECS,
                )
                .await?;
            }
            if !verdict.keep && first.is_none() {
                first = Some(*checker);
            }
        }
        if let Some(checker) = first {
            condemned.push((
                candidate.session_id,
                candidate.access_key.clone().unwrap_or_default(),
                checker,
            ));
        }
    }
    debug!(deps.log, "idle check done"; "sessions" => candidates.len(), "condemned" => condemned.len());
    Ok(condemned)
}

struct Clocks {
    redis_now: f64,
    db_now: f64,
    interval: f64,
}

async fn check_one(
    deps: &IdleCheckerDeps,
    config: &IdleConfig,
    checker: CheckerKind,
    candidate: &IdleCandidate,
    clocks: &Clocks,
    grace_end: Option<f64>,
) -> Result<Verdict, IdleCheckError> {
    let mut live = deps.live.clone();
    let session_id = candidate.session_id;
    match checker {
        CheckerKind::SessionLifetime => Ok(session_lifetime(
            candidate.max_session_lifetime,
            epoch(candidate.created_at),
            clocks.db_now,
            grace_end,
        )),
        CheckerKind::NetworkTimeout => {
            let connections: i64 = live
                .zcount(keys::active_app_connections(session_id), "-inf", "+inf")
                .await?;
            let last_access: Option<String> = live.get(keys::last_access(session_id)).await?;
            Ok(network_timeout(
                &NetworkActivity {
                    session_type: &candidate.session_type,
                    active_app_connections: connections,
                    last_access: last_access.as_deref(),
                },
                clocks.redis_now,
                candidate.idle_timeout,
                config.network_timeout,
                grace_end,
            ))
        }
        CheckerKind::Utilization => {
            check_utilization(deps, config, candidate, clocks, grace_end).await
        }
    }
}

/// `UtilizationIdleChecker.check_idleness`: one sample per interval into the session's series,
/// judged once a window is full.
async fn check_utilization(
    deps: &IdleCheckerDeps,
    config: &IdleConfig,
    candidate: &IdleCandidate,
    clocks: &Clocks,
    user_grace_end: Option<f64>,
) -> Result<Verdict, IdleCheckError> {
    let keep = Verdict {
        keep: true,
        report: None,
    };
    let util = &config.utilization;
    let session_id = candidate.session_id;
    let mut live = deps.live.clone();
    let (window, window_size) = utilization_window(util, candidate.idle_timeout, clocks.interval);
    if window_size == 0 {
        return Ok(keep);
    }
    let last_collected: Option<String> = live.get(keys::util_last_collected(session_id)).await?;
    let last_collected = last_collected
        .and_then(|raw| raw.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    if clocks.redis_now - last_collected < clocks.interval {
        return Ok(keep);
    }
    let created = epoch(candidate.created_at);
    let grace_end = utilization_grace_end(util, created, user_grace_end);
    let remaining = remaining_time(clocks.db_now, created, window, Some(grace_end));
    let report = Some(if remaining > 0.0 {
        remaining
    } else {
        super::checks::EXPIRED
    });
    if clocks.db_now <= grace_end {
        return Ok(Verdict { keep: true, report });
    }
    let unavailable = unavailable_resources(&candidate.occupied_slots);
    let kernel_ids = if candidate.cluster_size > 1 {
        candidate.live_kernel_ids.clone()
    } else {
        vec![candidate.kernel_id]
    };
    let mut stat = deps.stat.clone();
    let mut stats = Vec::with_capacity(kernel_ids.len());
    for kernel_id in &kernel_ids {
        let raw: Option<Vec<u8>> = stat.get(kernel_id.to_string()).await?;
        stats.push(
            raw.and_then(|bytes| msgpack::decode(&bytes).ok())
                .map(|value| msgpack_to_json(&value)),
        );
    }
    let resources: Vec<String> = util.thresholds.keys().cloned().collect();
    let Some(current) = current_utilization(&stats, &resources, &candidate.occupied_slots) else {
        return Ok(Verdict { keep: true, report });
    };
    let raw_series: Option<Vec<u8>> = live.get(keys::util_series(session_id)).await?;
    let mut series: BTreeMap<String, Vec<f64>> = raw_series
        .and_then(|bytes| msgpack::decode(&bytes).ok())
        .and_then(|value| serde_json::from_value(msgpack_to_json(&value)).ok())
        .unwrap_or_else(|| resources.iter().map(|r| (r.clone(), Vec::new())).collect());
    let not_enough_data = push_samples(&mut series, &current, window_size);
    let ttl = keys::activity_ttl(util.time_window);
    let packed = msgpack::encode(&crate::wire::Value::from_json(&json!(series)));
    live.set_ex::<_, _, ()>(keys::util_series(session_id), packed, ttl)
        .await?;
    live.set_ex::<_, _, ()>(
        keys::util_last_collected(session_id),
        format!("{:.6}", clocks.redis_now),
        ttl,
    )
    .await?;
    let (sufficient, extra) = judge_utilization(util, &series, &unavailable);
    live.set_ex::<_, _, ()>(
        keys::utilization_extra(session_id),
        msgpack::encode(&crate::wire::Value::from_json(&extra)),
        keys::REPORT_TTL_SECS,
    )
    .await?;
    if not_enough_data {
        return Ok(Verdict { keep: true, report });
    }
    Ok(Verdict {
        keep: sufficient,
        report,
    })
}
