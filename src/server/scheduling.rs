//! Starts this worker's session scheduler: the lock service of `[manager] distributed-lock`,
//! the agent RPC client, and the scheduler actor, subscribed to the event bus and registered as
//! the façade's `SessionControl`.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::web;
use bai_actors::agent_rpc::{AgentRpc, RpcTimeouts};
use bai_actors::event_bus::{EventBus, Subscribe};
use bai_actors::facade::session::control::{SessionControl, SessionQueue};
use bai_actors::interaction::SessionInteraction;
use bai_actors::lock::{LockBackendKind, LockService, LockSettings};
use bai_actors::scheduler::actor::{
    RECONCILE_INTERVAL, SCHEDULE_INTERVAL, Scheduler, SchedulerDeps, SchedulerSettings, interest,
};
use bai_actors::scheduler::dispatch::DispatchDeps;
use bai_actors::session_callback::{self, SessionCallbacks};
use bai_actors::wire::EventProducer;
use slog::o;

use super::worker::{ActorContext, AppExtensions, WorkerError};

/// The reconciler runs at least this often relative to the transition timeout, so a stuck
/// session is handled at most 1.5 timeouts after it got stuck.
const RECONCILES_PER_TIMEOUT: u32 = 2;

pub fn start_scheduler(
    ctx: &ActorContext<'_>,
    extensions: &mut AppExtensions,
    bus: &Addr<EventBus>,
    producer: &EventProducer,
) -> Result<(), WorkerError> {
    let manager = &ctx.config.manager;
    let backend = LockBackendKind::parse(&manager.distributed_lock)
        .map_err(|e| WorkerError::Actors(e.to_string()))?;
    let locks = LockService::new(
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
        ctx.log.new(o!("service" => "session-interaction")),
    )));
    let scheduler = Scheduler::new(SchedulerDeps {
        dispatch: DispatchDeps {
            pool: ctx.background_db.clone(),
            rpc,
            etcd: Some(ctx.state.etcd.clone()),
            stat_redis: Some(ctx.state.redis.stat.clone()),
        },
        locks,
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
    })
    .start();
    bus.do_send(Subscribe {
        name: "scheduler".into(),
        interest: interest(),
        recipient: scheduler.clone().recipient(),
    });
    // Session callbacks hear the same lifecycle events, once per cluster (consumer group).
    let callbacks = SessionCallbacks::new(
        ctx.state.db.clone(),
        ctx.log.new(o!("actor" => "session-callbacks")),
    )
    .start();
    bus.do_send(Subscribe {
        name: "session-callbacks".into(),
        interest: session_callback::interest(),
        recipient: callbacks.recipient(),
    });
    extensions.add(web::Data::new(SessionQueue {
        enqueue: scheduler.clone().recipient(),
        cancel: scheduler.clone().recipient(),
    }));
    extensions.add(web::Data::new(SessionControl {
        destroy: scheduler.clone().recipient(),
        logs: scheduler.clone().recipient(),
        kill_all: scheduler.clone().recipient(),
    }));
    extensions.add(web::Data::new(scheduler));
    Ok(())
}
