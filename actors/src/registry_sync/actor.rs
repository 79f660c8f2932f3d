//! The registry-sync actor: owns image metadata. It runs rescans (one at a time, asked by the
//! CLI, GraphQL or its own optional timer) and the catalogue edits GraphQL exposes (alias,
//! dealias, forget).
//!
//! Messages (all answered with a `Result`):
//! - [`Rescan`] `{ target, progress }` → [`RescanReport`]: `target` is `image rescan`'s
//!   argument (`None` = every registry, a registry name, or `<registry>/<repo>:<tag>`);
//!   `progress` optionally receives [`ScanProgress`](super::scan::ScanProgress) events.
//! - [`AliasImage`] `{ alias, target, architecture }` → the aliased image.
//! - [`DealiasImage`] `{ alias }` → `()`.
//! - [`ForgetImage`] `{ reference, architecture }` → the deleted image (`reference` is a
//!   canonical reference or an alias).
//!
//! A rescan runs beside other messages; a second rescan waits for the first. With the lock
//! actor ([`RegistrySync::with_locks`], as every worker runs it), rescans are also one at a time
//! across the cluster: an asked rescan waits up to [`ASKED_RESCAN_LOCK_WAIT`] for one running
//! elsewhere, a periodic one is skipped while another runs, and each registry's commit checks
//! the lock's fencing token. If the actor stops mid-rescan the caller sees a `MailboxError` and
//! may retry: a rescan is idempotent.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bai_schema::image_admin::{self, ImageChanges};
use bai_schema::images::{self, ImageDbError, ImageRecord};
use deadpool_postgres::Pool;

use super::rescan::{RescanError, RescanReport, rescan};
use super::scan::{ProgressSender, ScanOptions};
use crate::etcd::EtcdStore;
use crate::lock::{ClusterLocks, Exclusive, LockId};

/// How long an asked rescan waits for a rescan running on another worker or host.
pub const ASKED_RESCAN_LOCK_WAIT: Duration = Duration::from_secs(600);

/// Catalogue edits that failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot get a database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Image(#[from] ImageDbError),
}

/// Rescan the registries (or one registry, or one image) named by `target`.
#[derive(Debug, Message)]
#[rtype(result = "Result<RescanReport, RescanError>")]
pub struct Rescan {
    pub target: Option<String>,
    pub progress: Option<ProgressSender>,
}

/// Add `alias` for the image `target` (canonical reference) of `architecture`.
#[derive(Debug, Message)]
#[rtype(result = "Result<ImageRecord, CatalogError>")]
pub struct AliasImage {
    pub alias: String,
    pub target: String,
    pub architecture: String,
}

/// Remove `alias`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), CatalogError>")]
pub struct DealiasImage {
    pub alias: String,
}

/// Delete the image `reference` (canonical or alias) of `architecture` and its aliases.
#[derive(Debug, Message)]
#[rtype(result = "Result<ImageRecord, CatalogError>")]
pub struct ForgetImage {
    pub reference: String,
    pub architecture: String,
}

/// Change the columns of one image row (`modify_image`).
#[derive(Debug, Message)]
#[rtype(result = "Result<ImageRecord, CatalogError>")]
pub struct ModifyImage {
    pub target: String,
    pub architecture: String,
    pub changes: ImageChanges,
}

/// Drop every image of a registry with its aliases (`clear_images`); answers how many.
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, CatalogError>")]
pub struct ClearImages {
    pub registry: String,
}

/// The registry-sync actor.
pub struct RegistrySync {
    etcd: EtcdStore,
    db: Pool,
    options: ScanOptions,
    /// Rescan every registry this often (none: only on request).
    rescan_interval: Option<Duration>,
    /// Serializes rescans; catalogue edits do not take it.
    rescan_lock: Arc<tokio::sync::Mutex<()>>,
    /// Serializes rescans across the cluster, when set.
    locks: Option<ClusterLocks>,
}

impl RegistrySync {
    pub fn new(etcd: EtcdStore, db: Pool, options: ScanOptions) -> RegistrySync {
        RegistrySync {
            etcd,
            db,
            options,
            rescan_interval: None,
            rescan_lock: Arc::new(tokio::sync::Mutex::new(())),
            locks: None,
        }
    }

    /// Runs every rescan under the lock actor's `RegistryRescan` lock (one at a time in the
    /// cluster, commits fenced).
    pub fn with_locks(mut self, locks: ClusterLocks) -> RegistrySync {
        self.locks = Some(locks);
        self
    }

    /// Also rescan every registry every `interval`, starting one interval after start.
    pub fn with_rescan_interval(mut self, interval: Duration) -> RegistrySync {
        self.rescan_interval = Some(interval);
        self
    }
}

impl Actor for RegistrySync {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(interval) = self.rescan_interval {
            ctx.run_interval(interval, |actor, ctx| {
                let lock = actor.rescan_lock.clone();
                let (etcd, db, options) = (actor.etcd.clone(), actor.db.clone(), actor.options);
                let locks = actor.locks.clone();
                ctx.spawn(
                    async move {
                        // A rescan still running makes this tick redundant.
                        let Ok(_guard) = lock.try_lock() else {
                            return;
                        };
                        let scan = |fence: Option<crate::lock::Fence>| async move {
                            rescan(&etcd, &db, None, options, None, fence.as_ref()).await
                        };
                        let outcome = match &locks {
                            None => scan(None).await,
                            Some(locks) => match locks
                                .run_exclusive(LockId::RegistryRescan, Some(Duration::ZERO), |f| {
                                    scan(Some(f))
                                })
                                .await
                            {
                                Ok(Exclusive::Done(outcome)) => outcome,
                                Ok(Exclusive::Busy) => return,
                                Ok(Exclusive::Lost) => Err(RescanError::LockLost),
                                Err(error) => Err(error.into()),
                            },
                        };
                        match outcome {
                            Ok(report) => {
                                for (registry, error) in report.broken_registries() {
                                    log::error!("periodic rescan of {registry} failed: {error}");
                                }
                            }
                            Err(error) => log::error!("periodic image rescan failed: {error}"),
                        }
                    }
                    .into_actor(actor),
                );
            });
        }
    }
}

/// The registry sync's name in the supervision registry.
pub const ACTOR_NAME: &str = "registry-sync";

/// Its state is its settings: a stopped actor restarts in place (`started` re-arms the timer).
impl Supervised for RegistrySync {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        let count = crate::supervision::record_restart(ACTOR_NAME);
        log::warn!("registry sync: restarting (restart {count})");
    }
}

crate::handle_injected_faults!(RegistrySync, ACTOR_NAME);

impl Handler<Rescan> for RegistrySync {
    type Result = ResponseFuture<Result<RescanReport, RescanError>>;

    fn handle(&mut self, message: Rescan, _ctx: &mut Self::Context) -> Self::Result {
        let lock = self.rescan_lock.clone();
        let (etcd, db, options) = (self.etcd.clone(), self.db.clone(), self.options);
        let locks = self.locks.clone();
        Box::pin(async move {
            let _guard = lock.lock().await;
            let scan = |fence: Option<crate::lock::Fence>| async move {
                rescan(
                    &etcd,
                    &db,
                    message.target.as_deref(),
                    options,
                    message.progress.as_ref(),
                    fence.as_ref(),
                )
                .await
            };
            let Some(locks) = locks else {
                return scan(None).await;
            };
            match locks
                .run_exclusive(
                    LockId::RegistryRescan,
                    Some(ASKED_RESCAN_LOCK_WAIT),
                    |fence| scan(Some(fence)),
                )
                .await?
            {
                Exclusive::Done(outcome) => outcome,
                Exclusive::Busy => Err(RescanError::Busy(ASKED_RESCAN_LOCK_WAIT)),
                Exclusive::Lost => Err(RescanError::LockLost),
            }
        })
    }
}

impl Handler<AliasImage> for RegistrySync {
    type Result = ResponseFuture<Result<ImageRecord, CatalogError>>;

    fn handle(&mut self, message: AliasImage, _ctx: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move {
            let client = db.get().await?;
            Ok(images::alias_image(
                &**client,
                &message.alias,
                &message.target,
                &message.architecture,
            )
            .await?)
        })
    }
}

impl Handler<DealiasImage> for RegistrySync {
    type Result = ResponseFuture<Result<(), CatalogError>>;

    fn handle(&mut self, message: DealiasImage, _ctx: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move {
            let client = db.get().await?;
            Ok(images::dealias_image(&**client, &message.alias).await?)
        })
    }
}

impl Handler<ForgetImage> for RegistrySync {
    type Result = ResponseFuture<Result<ImageRecord, CatalogError>>;

    fn handle(&mut self, message: ForgetImage, _ctx: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move {
            let client = db.get().await?;
            Ok(images::forget_image(&**client, &message.reference, &message.architecture).await?)
        })
    }
}

impl Handler<ModifyImage> for RegistrySync {
    type Result = ResponseFuture<Result<ImageRecord, CatalogError>>;

    fn handle(&mut self, message: ModifyImage, _ctx: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move {
            let client = db.get().await?;
            Ok(image_admin::modify_image(
                &**client,
                &message.target,
                &message.architecture,
                &message.changes,
            )
            .await?)
        })
    }
}

impl Handler<ClearImages> for RegistrySync {
    type Result = ResponseFuture<Result<u64, CatalogError>>;

    fn handle(&mut self, message: ClearImages, _ctx: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move {
            let mut client = db.get().await?;
            // Aliases and images go together or not at all.
            let transaction =
                client
                    .transaction()
                    .await
                    .map_err(|source| ImageDbError::Database {
                        context: "starting a transaction",
                        source,
                    })?;
            let cleared =
                image_admin::clear_registry_images(&*transaction, &message.registry).await?;
            transaction
                .commit()
                .await
                .map_err(|source| ImageDbError::Database {
                    context: "committing the cleared images",
                    source,
                })?;
            Ok(cleared)
        })
    }
}
