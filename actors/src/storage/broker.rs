//! The storage-broker actor: it owns the map from `proxy:volume` hosts to storage proxies.
//! It reads etcd `volumes/` at start, watches the prefix, and publishes a fresh [`ProxySet`]
//! whenever something under it changes (a new proxy, a new secret, another default host), so
//! no restart is needed. Request handlers hold a [`StorageBroker`] handle and take the current
//! view without a message round trip; the proxy calls then run on the handler's own thread.
//!
//! If the watch breaks (etcd restarts), the actor re-creates it and re-reads the whole prefix,
//! so a change made meanwhile is not lost. A configuration with problems is still published
//! (the good proxies keep working) and each problem is logged once, naming its key.
//!
//! The actor starts under `actix::Supervisor`: a stop (`InjectFault::Stop`) restarts it on the
//! same mailbox, which drops the old watch and starts a new one (with its full re-read), and is
//! counted as a restart of [`ACTOR_NAME`]. The worker puts it under the watchdog.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use etcd_client::WatchOptions;
use slog::{error, info, warn};
use tokio::sync::watch;

use super::config::{ConfigProblem, VOLUMES_PREFIX, VolumesConfig};
use super::proxies::ProxySet;
use crate::etcd::{EtcdError, EtcdStore};

/// How long to wait before re-creating a broken etcd watch. Short, because a missed change
/// (a rotated secret) makes every vfolder call fail until the watch is back.
pub const WATCH_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Why an asked re-read of `volumes/` failed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("the storage broker is gone: {0}")]
    Gone(#[from] actix::MailboxError),
}

/// A handle on the broker: the current view of the proxies, and a way to ask for a re-read.
#[derive(Clone)]
pub struct StorageBroker {
    view: watch::Receiver<Arc<ProxySet>>,
    addr: Addr<StorageBrokerActor>,
}

impl StorageBroker {
    /// Reads the configuration once (so the first request sees it), then starts the actor
    /// that keeps it current. Needs a running actix system.
    pub async fn start(etcd: EtcdStore, log: slog::Logger) -> Result<StorageBroker, EtcdError> {
        let first = load(&etcd, None).await?;
        log_problems(&log, &first.problems, &[]);
        info!(log, "storage proxies configured";
            "proxies" => first.proxy_names().collect::<Vec<_>>().join(","),
            "default_host" => first.config.default_host.as_deref().unwrap_or(""));
        let (sender, view) = watch::channel(Arc::new(first));
        let actor = StorageBrokerActor {
            reloader: Reloader { etcd, log, sender },
        };
        let addr = Supervisor::start(move |_| actor);
        Ok(StorageBroker { view, addr })
    }

    /// The actor's address (for the worker's watchdog and fault injection).
    pub fn addr(&self) -> &Addr<StorageBrokerActor> {
        &self.addr
    }

    /// The proxies as currently configured.
    pub fn current(&self) -> Arc<ProxySet> {
        self.view.borrow().clone()
    }

    /// Re-reads etcd now and returns the new view (for an operator's "reload", and for
    /// callers that just changed `volumes/` themselves).
    pub async fn reload(&self) -> Result<Arc<ProxySet>, ReloadError> {
        Ok(crate::supervision::tracked(ACTOR_NAME, self.addr.send(Reload)).await??)
    }

    /// Waits until the view changes (for tests and for callers that react to changes).
    pub async fn changed(&mut self) -> Arc<ProxySet> {
        let _ = self.view.changed().await;
        self.current()
    }
}

/// Reads and checks `volumes/`, reusing the clients of `previous` where nothing changed.
async fn load(etcd: &EtcdStore, previous: Option<&ProxySet>) -> Result<ProxySet, EtcdError> {
    let tree = etcd.get_prefix(VOLUMES_PREFIX).await?;
    let (config, problems) = VolumesConfig::parse(&tree);
    Ok(ProxySet::build(config, problems, previous))
}

/// Logs the problems that are new since `before`.
fn log_problems(log: &slog::Logger, problems: &[ConfigProblem], before: &[ConfigProblem]) {
    for problem in problems.iter().filter(|p| !before.contains(p)) {
        error!(log, "storage proxy configuration problem; this part is ignored until fixed";
            "key" => &problem.key, "reason" => &problem.reason);
    }
}

/// Re-reads `volumes/` and publishes the result; shared by the watch loop and [`Reload`].
#[derive(Clone)]
struct Reloader {
    etcd: EtcdStore,
    log: slog::Logger,
    sender: watch::Sender<Arc<ProxySet>>,
}

impl Reloader {
    async fn reload(self) -> Result<Arc<ProxySet>, EtcdError> {
        let previous = self.sender.borrow().clone();
        let next = Arc::new(load(&self.etcd, Some(&previous)).await?);
        log_problems(&self.log, &next.problems, &previous.problems);
        if next.config != previous.config {
            info!(self.log, "storage proxy configuration changed";
                "proxies" => next.proxy_names().collect::<Vec<_>>().join(","),
                "default_host" => next.config.default_host.as_deref().unwrap_or(""));
        }
        self.sender.send_replace(next.clone());
        Ok(next)
    }

    /// Watches `volumes/` for good: each change triggers a reload; a broken watch is
    /// re-created after a pause, followed by a full reload.
    async fn watch_forever(self) {
        let key = self.etcd.physical_key(VOLUMES_PREFIX);
        loop {
            let mut client = self.etcd.client();
            match client
                .watch(key.clone(), Some(WatchOptions::new().with_prefix()))
                .await
            {
                Ok(mut stream) => {
                    // Whatever changed while there was no watch is picked up here.
                    self.reload_or_warn().await;
                    loop {
                        match stream.message().await {
                            Ok(Some(response)) if !response.events().is_empty() => {
                                self.reload_or_warn().await;
                            }
                            Ok(Some(_)) => {}
                            Ok(None) => {
                                warn!(
                                    self.log,
                                    "the etcd watch on the storage configuration ended; re-creating it"
                                );
                                break;
                            }
                            Err(e) => {
                                warn!(self.log, "the etcd watch on the storage configuration failed; re-creating it";
                                    "error" => %e);
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    warn!(self.log, "cannot watch the storage configuration in etcd; retrying";
                        "key" => &key, "error" => %e);
                }
            }
            tokio::time::sleep(WATCH_RETRY_DELAY).await;
        }
    }

    async fn reload_or_warn(&self) {
        if let Err(e) = self.clone().reload().await {
            warn!(self.log, "cannot re-read the storage configuration; keeping the previous one";
                "error" => %e);
        }
    }
}

/// The broker's name in restart counts, the watchdog and fault injection.
pub const ACTOR_NAME: &str = "storage-broker";

pub struct StorageBrokerActor {
    reloader: Reloader,
}

impl Supervised for StorageBrokerActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Nothing to reset: the view lives in the watch channel, and `started` spawns a fresh
        // watch (the stopped run's one was dropped with the context's items).
        let count = crate::supervision::record_restart(ACTOR_NAME);
        warn!(self.reloader.log, "storage broker: restarting"; "restarts" => count);
    }
}

crate::handle_injected_faults!(StorageBrokerActor, ACTOR_NAME);

impl Actor for StorageBrokerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.spawn(self.reloader.clone().watch_forever().into_actor(self));
    }
}

/// Re-read `volumes/` now.
#[derive(Message)]
#[rtype(result = "Result<Arc<ProxySet>, EtcdError>")]
pub struct Reload;

impl Handler<Reload> for StorageBrokerActor {
    type Result = ResponseFuture<Result<Arc<ProxySet>, EtcdError>>;

    fn handle(&mut self, _: Reload, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.reloader.clone().reload())
    }
}
