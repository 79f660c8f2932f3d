//! Named cluster-wide locks with fencing tokens (`[manager] distributed-lock`).
//!
//! Work that must happen once per cluster (a scheduling pass, the reconciler, the lost-agent
//! sweep, registry rescans, the idle checker) runs while holding a lock from the lock actor
//! ([`ClusterLocks`], in `actor`), which takes it through [`LockService::acquire`]. Backends:
//! `filelock` (one host), `etcd` (many hosts, leased), `pg_advisory` (the original's default).
//! Every acquisition yields a [`Fence`] whose token the database checks on each write made
//! under the lock, so a holder that lost its lock (e.g. paused past its lease) cannot write. A
//! lost lock is also reported through [`LockGuard::lost`], and the work in progress should stop
//! when it fires.

pub mod actor;
mod etcd;
mod fence;
mod filelock;
mod pg_advisory;

use std::path::PathBuf;
use std::time::Duration;

use bai_schema::DbSettings;
use deadpool_postgres::Pool;
use tokio::sync::watch;

pub use actor::{ClusterLocks, Exclusive, LockName};
pub use fence::{Fence, FenceError};

/// The original's lock ids (`LockID` in `manager/defs.py`); used as lock names so that the
/// `pg_advisory` keys match a Python manager's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockId {
    Schedule = 91,
    Prepare = 92,
    ScheduleTimer = 191,
    /// `LOCKID_LOG_CLEANUP_TIMER`: one error-log cleanup at a time in the cluster.
    LogCleanupTimer = 195,
    /// `LOCKID_IDLE_CHECK_TIMER`: one idle check at a time in the cluster.
    IdleCheckTimer = 196,
    /// Not in the original: the reconciler of stuck sessions.
    Reconcile = 291,
    /// Not in the original (a Redis key guarded it): the lost-agent sweep.
    AgentLostSweep = 292,
    /// Not in the original (rescans were per process): image rescans, periodic or asked.
    RegistryRescan = 293,
}

impl LockId {
    pub fn name(&self) -> String {
        (*self as i32).to_string()
    }
}

/// Which backend, from `[manager] distributed-lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockBackendKind {
    FileLock,
    Etcd,
    PgAdvisory,
}

impl LockBackendKind {
    /// `etcetra` (the original's alternative etcd client) maps to `etcd`; `redlock` has no
    /// fencing token and is refused.
    pub fn parse(name: &str) -> Result<LockBackendKind, LockError> {
        match name {
            "filelock" => Ok(LockBackendKind::FileLock),
            "etcd" | "etcetra" => Ok(LockBackendKind::Etcd),
            "pg_advisory" => Ok(LockBackendKind::PgAdvisory),
            other => Err(LockError::UnsupportedBackend(other.to_owned())),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            LockBackendKind::FileLock => "filelock",
            LockBackendKind::Etcd => "etcd",
            LockBackendKind::PgAdvisory => "pg_advisory",
        }
    }
}

/// Defaults of the lock timing keys of `[manager]`.
pub mod defaults {
    use std::time::Duration;

    /// `lock-lifetime`: an etcd lease lasts this long without renewal. Renewed every third of
    /// it, so a holder survives a couple of slow renewals; a paused holder loses the lock after
    /// at most this long.
    pub const LIFETIME: Duration = Duration::from_secs(30);
    /// `lock-acquire-timeout`: how long a worker waits for a busy lock before it gives up on
    /// this round (the holder is doing the same work).
    pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "distributed-lock {0:?} is not supported: use filelock, etcd or pg_advisory (redlock gives no fencing token)"
    )]
    UnsupportedBackend(String),
    #[error("the {0} lock backend is not configured on this worker")]
    NotConfigured(&'static str),
    #[error("lock file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("etcd failed while {context}: {source}")]
    Etcd {
        context: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("PostgreSQL failed while {context}: {source}")]
    Database {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("the lock {0} was lost while it was being acquired")]
    LostWhileAcquiring(String),
    #[error(transparent)]
    Fence(#[from] FenceError),
    #[error(transparent)]
    Decode(#[from] bai_schema::queries::DecodeError),
    #[error("cannot get a database connection to record a fencing token: {0}")]
    Pool(#[source] deadpool_postgres::PoolError),
    #[error("the lock actor is gone")]
    ActorGone,
}

/// Everything the backends need.
#[derive(Clone)]
pub struct LockSettings {
    pub backend: LockBackendKind,
    pub manager_id: String,
    /// `[manager] ipc-base-path` (filelock).
    pub ipc_base_path: PathBuf,
    /// etcd client and namespace (etcd).
    pub etcd: Option<(etcd_client::Client, String)>,
    /// `[db]` (pg_advisory).
    pub db: Option<DbSettings>,
    pub lifetime: Duration,
    pub acquire_timeout: Duration,
}

enum Held {
    File(filelock::HeldFileLock),
    Etcd(Box<etcd::HeldEtcdLock>),
    Pg(pg_advisory::HeldPgLock),
}

/// A held lock. Dropping it releases a filelock or pg_advisory lock at once, and lets an etcd
/// lease expire; [`LockGuard::release`] releases any of them at once.
pub struct LockGuard {
    name: String,
    fence: Fence,
    lost: watch::Receiver<bool>,
    held: Held,
}

impl LockGuard {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fencing token to check in every transaction made under this lock.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves when the lock is lost (lease expired, connection gone); never for filelock.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
        if !*lost.borrow() {
            // The sender is gone without reporting a loss: wait forever.
            std::future::pending::<()>().await;
        }
    }

    pub async fn release(self) {
        match self.held {
            Held::File(lock) => drop(lock),
            Held::Etcd(lock) => lock.release().await,
            Held::Pg(lock) => lock.release().await,
        }
    }
}

/// Hands out locks of the configured backend and records their fencing tokens.
#[derive(Clone)]
pub struct LockService {
    settings: LockSettings,
    pool: Pool,
}

impl LockService {
    pub fn new(settings: LockSettings, pool: Pool) -> LockService {
        LockService { settings, pool }
    }

    pub fn settings(&self) -> &LockSettings {
        &self.settings
    }

    /// Waits up to `wait` (default `lock-acquire-timeout`) for the lock `name`; `Ok(None)` when
    /// another holder kept it all that time.
    pub async fn acquire(
        &self,
        name: &str,
        wait: Option<Duration>,
    ) -> Result<Option<LockGuard>, LockError> {
        let wait = wait.unwrap_or(self.settings.acquire_timeout);
        let (lost_tx, lost_rx) = watch::channel(false);
        let acquired = match self.settings.backend {
            LockBackendKind::FileLock => {
                let path = filelock::lock_path(
                    &self.settings.ipc_base_path,
                    &self.settings.manager_id,
                    name,
                );
                drop(lost_tx); // a flock is never lost while its process lives
                filelock::acquire(&path, wait)
                    .await?
                    .map(|(lock, token)| (Held::File(lock), token))
            }
            LockBackendKind::Etcd => {
                let (client, namespace) = self
                    .settings
                    .etcd
                    .clone()
                    .ok_or(LockError::NotConfigured("etcd"))?;
                etcd::acquire(
                    client,
                    &etcd::lock_key(&namespace, name),
                    self.settings.lifetime,
                    wait,
                    lost_tx,
                )
                .await?
                .map(|(lock, token)| (Held::Etcd(Box::new(lock)), token))
            }
            LockBackendKind::PgAdvisory => {
                let db = self
                    .settings
                    .db
                    .as_ref()
                    .ok_or(LockError::NotConfigured("pg_advisory"))?;
                pg_advisory::acquire(db, name, wait, lost_tx)
                    .await?
                    .map(|(lock, token)| (Held::Pg(lock), token))
            }
        };
        let Some((held, token)) = acquired else {
            return Ok(None);
        };
        let guard = LockGuard {
            name: name.to_owned(),
            fence: Fence {
                name: format!("{}:{name}", self.settings.backend.as_str()),
                token,
            },
            lost: lost_rx,
            held,
        };
        // Record the token now, so a previous holder's next write is refused even before we
        // write anything ourselves.
        let client = self.pool.get().await.map_err(LockError::Pool)?;
        guard.fence.check(&**client).await?;
        Ok(Some(guard))
    }
}
