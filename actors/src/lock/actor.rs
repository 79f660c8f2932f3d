//! The lock actor: the one door to cluster-singleton work. Every job that must run once per
//! cluster (a scheduling pass, the reconciler, the lost-agent sweep, a registry rescan, the idle
//! checker) asks it for a named lock of the configured backend (`[manager] distributed-lock`)
//! and gets a [`LockGuard`] carrying a fencing token, or nothing when another holder keeps it.
//!
//! Jobs hold a [`ClusterLocks`] handle (cheap to clone):
//! ```ignore
//! match locks.run_exclusive(LockId::IdleCheckTimer, Some(Duration::ZERO), |fence| async move {
//!     check_idle_sessions(&pool, &fence).await // `fence.check(&txn)` before each commit
//! }).await? {
//!     Exclusive::Done(result) => result?,
//!     Exclusive::Busy => {}            // another worker or host runs it now
//!     Exclusive::Lost => warn!(...),   // the lease ran out mid-job; the job was cut short
//! }
//! ```
//! or [`ClusterLocks::acquire`] for a guard to hold across several steps (the sweep keeps its
//! lock between ticks). The actor keeps no lock state of its own (the backends hold it), so it
//! restarts in place when stopped.

use std::future::Future;
use std::time::Duration;

use actix::prelude::*;

use super::{Fence, LockError, LockGuard, LockId, LockService};

/// The lock actor's name in the supervision registry.
pub const ACTOR_NAME: &str = "lock";

/// Take the lock `name`, waiting up to `wait` (default `[manager] lock-acquire-timeout`);
/// `None` when another holder kept it all that time.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<LockGuard>, LockError>")]
pub struct AcquireLock {
    pub name: String,
    pub wait: Option<Duration>,
}

pub struct LockActor {
    service: LockService,
}

impl LockActor {
    pub fn new(service: LockService) -> LockActor {
        LockActor { service }
    }
}

impl Actor for LockActor {
    type Context = Context<Self>;
}

impl Supervised for LockActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let count = crate::supervision::record_restart(ACTOR_NAME);
        log::warn!("lock actor: restarting (restart {count})");
    }
}

crate::handle_injected_faults!(LockActor, ACTOR_NAME);

impl Handler<AcquireLock> for LockActor {
    type Result = ResponseFuture<Result<Option<LockGuard>, LockError>>;

    /// Acquisitions run beside the actor, so a slow etcd or a busy lock never blocks the
    /// mailbox for other names.
    fn handle(&mut self, message: AcquireLock, _ctx: &mut Self::Context) -> Self::Result {
        let service = self.service.clone();
        Box::pin(async move { service.acquire(&message.name, message.wait).await })
    }
}

/// How a job run under a lock ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exclusive<T> {
    /// The job ran to its end under the lock.
    Done(T),
    /// Another holder kept the lock for the whole wait; the job did not run.
    Busy,
    /// The lock was lost while the job ran (e.g. an etcd lease ran out); the job was dropped
    /// at its next await point, and its writes are refused by the fence from then on.
    Lost,
}

/// What jobs hold to reach the lock actor.
#[derive(Clone)]
pub struct ClusterLocks {
    addr: Addr<LockActor>,
}

impl ClusterLocks {
    /// Starts the lock actor (supervised) over `service`.
    pub fn start(service: LockService) -> ClusterLocks {
        ClusterLocks {
            addr: Supervisor::start(move |_| LockActor::new(service)),
        }
    }

    pub fn addr(&self) -> &Addr<LockActor> {
        &self.addr
    }

    /// Takes the lock `name` (see [`AcquireLock`]).
    pub async fn acquire(
        &self,
        name: impl Into<LockName>,
        wait: Option<Duration>,
    ) -> Result<Option<LockGuard>, LockError> {
        crate::supervision::tracked(
            ACTOR_NAME,
            self.addr.send(AcquireLock {
                name: name.into().0,
                wait,
            }),
        )
        .await
        .map_err(|_| LockError::ActorGone)?
    }

    /// Runs `job` with the lock `name` held, handing it the fencing token, and releases the
    /// lock afterwards.
    pub async fn run_exclusive<T, F, Fut>(
        &self,
        name: impl Into<LockName>,
        wait: Option<Duration>,
        job: F,
    ) -> Result<Exclusive<T>, LockError>
    where
        F: FnOnce(Fence) -> Fut,
        Fut: Future<Output = T>,
    {
        let Some(guard) = self.acquire(name, wait).await? else {
            return Ok(Exclusive::Busy);
        };
        let outcome = tokio::select! {
            done = job(guard.fence().clone()) => Exclusive::Done(done),
            () = guard.lost() => Exclusive::Lost,
        };
        guard.release().await;
        Ok(outcome)
    }
}

/// A lock's name: one of the [`LockId`]s, or any other string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockName(pub String);

impl From<LockId> for LockName {
    fn from(id: LockId) -> LockName {
        LockName(id.name())
    }
}

impl From<&str> for LockName {
    fn from(name: &str) -> LockName {
        LockName(name.to_owned())
    }
}

impl From<String> for LockName {
    fn from(name: String) -> LockName {
        LockName(name)
    }
}
