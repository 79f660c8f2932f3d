//! Starts this worker's lock actor (`[manager] distributed-lock`) and its session scheduler:
//! the agent RPC client, and the scheduler actor, subscribed to the event bus and registered as
//! the façade's `SessionControl`.

use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Supervisor};
use actix_web::web;
use bai_actors::agent_rpc::{AgentRpc, RpcTimeouts};
use bai_actors::error_log::{ErrorLogCollector, ErrorLogDeps};
use bai_actors::event_bus::{EventBus, Subscribe};
use bai_actors::facade::session::control::{SessionControl, SessionQueue};
use bai_actors::idle::{IdleChecker, IdleCheckerDeps};
use bai_actors::interaction::SessionInteraction;
use bai_actors::kernel_stats::{StatSyncDeps, StatSyncer};
use bai_actors::lock::{ClusterLocks, LockBackendKind, LockService, LockSettings};
use bai_actors::scheduler::actor::{
    RECONCILE_INTERVAL, SCHEDULE_INTERVAL, Scheduler, SchedulerDeps, SchedulerSettings, interest,
};
use bai_actors::scheduler::dispatch::DispatchDeps;
use bai_actors::session_callback::{self, SessionCallbacks};
use bai_actors::supervision::Watchdog;
use bai_actors::wire::EventProducer;
use slog::o;

use super::worker::{ActorContext, AppExtensions, WorkerError};

/// The reconciler runs at least this often relative to the transition timeout, so a stuck
/// session is handled at most 1.5 timeouts after it got stuck.
const RECONCILES_PER_TIMEOUT: u32 = 2;

/// The lock actor every cluster-singleton job of this worker goes through.
pub fn start_locks(
    ctx: &ActorContext<'_>,
    watchdog: &mut Watchdog,
) -> Result<ClusterLocks, WorkerError> {
    let manager = &ctx.config.manager;
    let backend =
        LockBackendKind::parse(&manager.distributed_lock).map_err(WorkerError::LockBackend)?;
    let service = LockService::new(
        LockSettings {
            backend,
            manager_id: ctx.config.manager_id(),
            ipc_base_path: manager.ipc_base_path.clone(),
            etcd: Some((
                ctx.state.etcd.client(),
                ctx.state.etcd.namespace().to_owned(),
            )),
            db: Some(ctx.config.db_settings()),
            lifetime: Duration::from_secs_f64(manager.lock_lifetime),
            acquire_timeout: Duration::from_secs_f64(manager.lock_acquire_timeout),
        },
        ctx.background_db.clone(),
    );
    let locks = ClusterLocks::start(service);
    watchdog.watch(bai_actors::lock::actor::ACTOR_NAME, locks.addr());
    Ok(locks)
}

pub fn start_scheduler(
    ctx: &ActorContext<'_>,
    extensions: &mut AppExtensions,
    watchdog: &mut Watchdog,
    locks: &ClusterLocks,
    bus: &Addr<EventBus>,
    producer: &EventProducer,
) -> Result<(), WorkerError> {
    let manager = &ctx.config.manager;
    let transition_timeout = Duration::from_secs_f64(manager.session_transition_timeout);
    let reconcile_interval = RECONCILE_INTERVAL
        .min(transition_timeout / RECONCILES_PER_TIMEOUT)
        .max(Duration::from_secs(1));
    // One set of agent connections per worker, shared by the scheduler and the calls on running
    // sessions.
    let rpc = Arc::new(AgentRpc::new(RpcTimeouts::default()));
    // GraphQL asks agents for their hardware report (`Agent.hardware_metadata`) through it.
    extensions.add(web::Data::from(rpc.clone()));
    extensions.add(web::Data::new(SessionInteraction::new(
        ctx.state.db.clone(),
        rpc.clone(),
        Some(ctx.state.redis.live.clone()),
        ctx.log.new(o!("service" => "session-interaction")),
    )));
    let scheduler = Scheduler::new(SchedulerDeps {
        dispatch: DispatchDeps {
            pool: ctx.background_db.clone(),
            rpc,
            etcd: Some(ctx.state.etcd.clone()),
            stat_redis: Some(ctx.state.redis.stat.clone()),
        },
        locks: locks.clone(),
        producer: producer.clone(),
        etcd: ctx.state.etcd.clone(),
        settings: SchedulerSettings {
            resource_priority: manager.agent_selection_resource_priority.clone(),
            lock_wait: Duration::from_secs_f64(manager.lock_acquire_timeout),
            transition_timeout,
            schedule_interval: SCHEDULE_INTERVAL,
            reconcile_interval,
        },
        log: ctx.log.new(o!("actor" => "scheduler")),
    });
    let scheduler = Supervisor::start(move |_| scheduler);
    watchdog.watch(bai_actors::scheduler::actor::ACTOR_NAME, &scheduler);
    bus.do_send(Subscribe {
        name: "scheduler".into(),
        interest: interest(),
        recipient: scheduler.clone().recipient(),
    });
    // Session callbacks hear the same lifecycle events, once per cluster (consumer group).
    let callbacks = SessionCallbacks::new(
        ctx.state.db.clone(),
        ctx.log.new(o!("actor" => "session-callbacks")),
    );
    let callbacks = Supervisor::start(move |_| callbacks);
    watchdog.watch(session_callback::ACTOR_NAME, &callbacks);
    bus.do_send(Subscribe {
        name: "session-callbacks".into(),
        interest: session_callback::interest(),
        recipient: callbacks.recipient(),
    });
    extensions.add(web::Data::new(SessionQueue {
        enqueue: scheduler.clone().recipient(),
        cancel: scheduler.clone().recipient(),
    }));
    // The idle checkers end sessions through the scheduler, so `session_terminated` carries
    // their reason as any other destroy does.
    let idle = IdleChecker::new(IdleCheckerDeps {
        pool: ctx.background_db.clone(),
        etcd: ctx.state.etcd.clone(),
        live: ctx.state.redis.live.clone(),
        stat: ctx.state.redis.stat.clone(),
        locks: locks.clone(),
        destroy: scheduler.clone().recipient(),
        interval: Duration::from_secs_f64(manager.idle_check_interval),
        log: ctx.log.new(o!("actor" => "idle-checker")),
    });
    let idle = Supervisor::start(move |_| idle);
    watchdog.watch(bai_actors::idle::actor::ACTOR_NAME, &idle);
    bus.do_send(Subscribe {
        name: "idle-checker".into(),
        interest: bai_actors::idle::actor::interest(),
        recipient: idle.recipient(),
    });
    // Agents' error reports into `error_logs`, and their cleanup past the retention.
    let error_logs = ErrorLogCollector::new(ErrorLogDeps {
        pool: ctx.background_db.clone(),
        etcd: ctx.state.etcd.clone(),
        locks: locks.clone(),
        log: ctx.log.new(o!("actor" => "error-logs")),
    });
    let error_logs = Supervisor::start(move |_| error_logs);
    watchdog.watch(bai_actors::error_log::ACTOR_NAME, &error_logs);
    bus.do_send(Subscribe {
        name: "error-logs".into(),
        interest: bai_actors::error_log::interest(),
        recipient: error_logs.recipient(),
    });
    // `[debug] periodic-sync-stats`: the agents' `do_sync_kernel_stats` copies their kernels'
    // statistics into `kernels.last_stat`; without the flag nobody subscribes to it.
    if ctx.config.debug.periodic_sync_stats {
        let syncer = StatSyncer::new(StatSyncDeps {
            pool: ctx.background_db.clone(),
            stat: ctx.state.redis.stat.clone(),
            log: ctx.log.new(o!("actor" => "stat-sync")),
        });
        let syncer = Supervisor::start(move |_| syncer);
        watchdog.watch(bai_actors::kernel_stats::ACTOR_NAME, &syncer);
        bus.do_send(Subscribe {
            name: "stat-sync".into(),
            interest: bai_actors::kernel_stats::interest(),
            recipient: syncer.recipient(),
        });
    }
    extensions.add(web::Data::new(SessionControl {
        destroy: scheduler.clone().recipient(),
        logs: scheduler.clone().recipient(),
        kill_all: scheduler.clone().recipient(),
    }));
    extensions.add(web::Data::new(scheduler));
    Ok(())
}
