//! One worker process: it connects to PostgreSQL, etcd and Redis, starts this worker's actors,
//! and serves the HTTP API on the socket the supervisor handed over, until SIGTERM/SIGINT.
//!
//! Other parts of the manager plug in here: their actors start in [`start_actors`], and their
//! addresses are registered there so that request handlers can reach them.

use std::sync::Arc;
use std::time::Duration;

use actix::Supervisor;
use actix_web::middleware::{Condition, Logger};
use actix_web::{App, HttpServer, web};
use bai_actors::etcd::{EtcdError, EtcdStore};
use bai_actors::event_bus::session_feed::{self, SessionEventFeed};
use bai_actors::event_bus::{EventBus, Subscription};
use bai_actors::facade::body_deadline::BodyReadTimeout;
use bai_actors::facade::hello::{COMPATIBLE_MANAGER_VERSION, ManagerVersion};
use bai_actors::facade::{AppState, FacadeSettings, RedisConnections};
use bai_actors::heartbeat::{self, HeartbeatTracker, TrackerDeps, TrackerSettings};
use bai_actors::metrics::http::RequestMetrics;
use bai_actors::redis::{RedisError, RedisSettings, db};
use bai_actors::supervision::Watchdog;
use bai_actors::wire::{EventProducer, WireFormat};
use bai_schema::{PoolError, PoolRole};
use slog::{error, info, o};

use super::connection_cap::{self, ConnectionCap};
use super::{fault_injection, hold_route, idle_watchdog, listener, privileges, tls};
use crate::config::LocalConfig;
use crate::logging::{LogLevel, NamespaceFilter};

/// HTTP threads per worker process: parallelism comes from `num-proc` processes, and one
/// thread per process keeps each process's actors and handlers on few cores.
pub const HTTP_THREADS_PER_WORKER: usize = 1;

/// How long in-flight requests may run after SIGTERM before their connections are closed;
/// below the supervisor's [`super::supervisor::WORKER_STOP_TIMEOUT`] so a worker exits by
/// itself, and the whole stop stays within the 5 s of the systemd unit.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Idle keep-alive time of client connections (the original's aiohttp uses 30 s).
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// The access log goes through the `log` crate under this module, i.e. the `aiohttp`
/// namespace of `[logging.pkg-ns]`, at INFO, like aiohttp's access log.
const ACCESS_LOG_MODULE: &str = "actix_web::middleware::logger";
const ACCESS_LOG_FORMAT: &str = r#"%a "%r" %s %b "%{Referer}i" "%{User-Agent}i" %Ts"#;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Listen(#[from] listener::ListenError),
    #[error("cannot set up HTTPS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Privileges(#[from] privileges::PrivilegeError),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error(transparent)]
    Postgres(#[from] PoolError),
    #[error("cannot start the actors: storage broker: {0}")]
    StorageBroker(#[source] EtcdError),
    #[error("cannot start the actors: {0}")]
    LockBackend(#[source] bai_actors::lock::LockError),
    #[error("cannot follow the supervisor: {0}")]
    SupervisorDeathSignal(#[source] std::io::Error),
    #[error("cannot follow the supervisor: supervisor {0} is gone")]
    SupervisorGone(nix::unistd::Pid),
    #[error("the {0} actor died; exiting so that the supervisor starts a clean worker")]
    ActorDied(&'static str),
    #[error("the HTTP server failed: {0}")]
    Http(#[from] std::io::Error),
}

/// Adds one piece of application data to an app being built.
type Registration = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// Application data that request handlers extract as `web::Data<T>`, added by the actors
/// (typically an actor's `Addr`).
#[derive(Clone, Default)]
pub struct AppExtensions {
    registrations: Vec<Registration>,
}

impl AppExtensions {
    /// Makes `data` available to every handler as `web::Data<T>`.
    pub fn add<T: Send + Sync + 'static>(&mut self, data: web::Data<T>) {
        self.registrations.push(Arc::new(move |cfg| {
            cfg.app_data(data.clone());
        }));
    }

    fn apply(&self, cfg: &mut web::ServiceConfig) {
        for register in &self.registrations {
            register(cfg);
        }
    }
}

/// What an actor may need to start.
pub struct ActorContext<'a> {
    pub config: &'a LocalConfig,
    /// Connections and settings (the same the handlers get).
    pub state: &'a AppState,
    /// The database pool of the background actors, apart from the handlers' `state.db`, so
    /// that a flood of requests cannot starve the scheduler, heartbeats or the reconciler.
    pub background_db: &'a deadpool_postgres::Pool,
    /// Where Redis is, to open more connections (e.g. a blocking stream reader).
    pub redis_settings: &'a RedisSettings,
    /// 1-based index of this worker process.
    pub worker_index: usize,
    pub log: &'a slog::Logger,
}

/// Starts this worker's actors and registers their addresses for the handlers.
///
/// Every worker process runs the same actors. Work that must happen once per cluster takes the
/// lock actor's lock; agent events are read through a Redis consumer group, so each is handled
/// by one worker. Actors that can rebuild their state start under `actix::Supervisor` (a stop
/// restarts them on the same mailbox) and are put under the `watchdog` (a death ends the
/// worker).
async fn start_actors(
    ctx: &ActorContext<'_>,
    extensions: &mut AppExtensions,
    watchdog: &mut Watchdog,
) -> Result<(), WorkerError> {
    // ─── Start actors here ───────────────────────────────────────────────────────────────
    // One block per actor: start it with what it needs from `ctx`, then register its address,
    // e.g.
    //
    //     let bus = EventBus::new(ctx.state.redis.stream.clone(), ctx.log.new(o!("actor" => "event-bus"))).start();
    //     extensions.add(web::Data::new(bus));
    //
    // Handlers then take `bus: web::Data<Addr<EventBus>>`. Return a `WorkerError` when
    // an actor cannot start; the supervisor restarts the worker with a back-off.
    let locks = super::scheduling::start_locks(ctx, watchdog)?;
    let (bus, producer) = start_event_actors(ctx, extensions, watchdog, &locks);
    start_session_feed(ctx, extensions, watchdog);
    super::scheduling::start_scheduler(ctx, extensions, watchdog, &locks, &bus, &producer)?;

    // Storage broker: etcd `volumes/` → storage-proxy clients, for the vfolder routes.
    let storage = bai_actors::storage::StorageBroker::start(
        ctx.state.etcd.clone(),
        ctx.log.new(o!("actor" => "storage-broker")),
    )
    .await
    .map_err(WorkerError::StorageBroker)?;
    watchdog.watch(bai_actors::storage::broker::ACTOR_NAME, storage.addr());
    // Ends when the worker starts to stop (the same token closes the open streams).
    let _sweeper = bai_actors::storage::recovery::spawn_sweeper(
        ctx.background_db.clone(),
        storage.clone(),
        ctx.state.pipeline.stopping.clone(),
        ctx.log.new(o!("task" => "vfolder-deletion-sweeper")),
    );
    extensions.add(web::Data::new(storage));

    // Registry sync: image rescans and catalogue edits asked through GraphQL.
    let registry_sync = bai_actors::registry_sync::RegistrySync::new(
        ctx.state.etcd.clone(),
        ctx.background_db.clone(),
        bai_actors::registry_sync::ScanOptions::default(),
    )
    .with_locks(locks);
    let registry_sync = Supervisor::start(move |_| registry_sync);
    watchdog.watch(bai_actors::registry_sync::actor::ACTOR_NAME, &registry_sync);
    extensions.add(web::Data::new(registry_sync));

    Ok(())
}

/// The event bus (this worker's consumer of the `events` stream), the heartbeat tracker it
/// feeds, and the producer the handlers use (`web::Data<EventProducer>`). More subscribers:
/// `.with_subscriber(...)` on the bus before it starts, or the `Subscribe` message later.
fn start_event_actors(
    ctx: &ActorContext<'_>,
    extensions: &mut AppExtensions,
    watchdog: &mut Watchdog,
    locks: &bai_actors::lock::ClusterLocks,
) -> (actix::Addr<EventBus>, EventProducer) {
    let worker = format!("{}:{}", ctx.state.settings.manager_id, ctx.worker_index);
    // Manager events go out in the 23.09 shape: 23.09 agents read them from the stream, 26.x
    // agents do not read the stream at all, and this manager reads both shapes.
    let producer = EventProducer::new(ctx.state.redis.stream.clone(), WireFormat::Args);
    let tracker = HeartbeatTracker::new(
        ctx.log.new(o!("actor" => "heartbeat-tracker")),
        TrackerDeps {
            pool: ctx.background_db.clone(),
            locks: locks.clone(),
            live: ctx.state.redis.live.clone(),
            images: ctx.state.redis.image.clone(),
            producer: producer.clone(),
            etcd: ctx.state.etcd.clone(),
        },
        TrackerSettings {
            heartbeat_timeout: Duration::from_secs_f64(ctx.config.manager.heartbeat_timeout),
            sweep_interval: heartbeat::SWEEP_INTERVAL,
            worker: worker.clone(),
        },
    );
    let tracker = Supervisor::start(move |_| tracker);
    watchdog.watch(heartbeat::ACTOR_NAME, &tracker);
    let bus = EventBus::new(
        ctx.log.new(o!("actor" => "event-bus")),
        ctx.redis_settings.clone(),
        worker,
    )
    .with_subscriber(Subscription {
        name: "heartbeat-tracker".into(),
        interest: heartbeat::interest(),
        recipient: tracker.clone().recipient(),
    });
    let bus = Supervisor::start(move |_| bus);
    watchdog.watch(bai_actors::event_bus::ACTOR_NAME, &bus);
    extensions.add(web::Data::new(producer.clone()));
    extensions.add(web::Data::new(bus.clone()));
    extensions.add(web::Data::new(tracker));
    (bus, producer)
}

/// The session-event feed (`web::Data<Addr<SessionEventFeed>>`): this worker's reader of every
/// session and kernel event, for `GET /events/session` and the streams that end with their
/// session. It reads only while someone subscribes; its lookups use the background pool.
fn start_session_feed(
    ctx: &ActorContext<'_>,
    extensions: &mut AppExtensions,
    watchdog: &mut Watchdog,
) {
    let feed = SessionEventFeed::new(
        ctx.log.new(o!("actor" => session_feed::ACTOR_NAME)),
        ctx.redis_settings.clone(),
        ctx.background_db.clone(),
    );
    let feed = Supervisor::start(move |_| feed);
    watchdog.watch(session_feed::ACTOR_NAME, &feed);
    extensions.add(web::Data::new(feed));
}

/// Runs a worker process and returns its exit code.
pub fn run(mut config: LocalConfig, worker_index: usize, log: slog::Logger) -> i32 {
    if let Some(secret) = read_secret_from_supervisor() {
        config.manager.secret = secret;
    }
    let system = actix_web::rt::System::new();
    match system.block_on(serve(config, worker_index, log.clone())) {
        Ok(()) => crate::exit::OK,
        Err(err) => {
            error!(log, "worker {worker_index} failed: {err}");
            crate::exit::FAILURE
        }
    }
}

/// The supervisor writes the effective `[manager] secret` on the worker's standard input, so
/// that a random one is the same in every worker.
fn read_secret_from_supervisor() -> Option<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    let secret = line.trim_end_matches(['\r', '\n']);
    (!secret.is_empty()).then(|| secret.to_owned())
}

async fn serve(
    config: LocalConfig,
    worker_index: usize,
    log: slog::Logger,
) -> Result<(), WorkerError> {
    let supervisor = nix::unistd::getppid();
    let socket = listener::inherited()?;
    let tls_config = match (
        config.manager.ssl_enabled,
        &config.manager.ssl_cert,
        &config.manager.ssl_privkey,
    ) {
        (true, Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    // Bound socket and TLS key in hand: from here on no root rights are needed.
    let account = privileges::Account::resolve(&config.manager)?;
    if account.switch_to()? {
        info!(
            log,
            "worker {worker_index} switched to uid {} gid {}", account.uid, account.gid
        );
        // The kernel forgets the parent-death signal when the credentials change.
        follow_supervisor(supervisor)?;
    }

    let etcd = EtcdStore::connect(&config.etcd_settings()).await?;
    let redis_settings = RedisSettings::from_etcd(&etcd).await?;
    let redis = RedisConnections {
        stat: redis_settings.connect(db::STAT).await?,
        rate_limit: redis_settings.connect(db::RATE_LIMIT).await?,
        live: redis_settings.connect(db::LIVE).await?,
        image: redis_settings.connect(db::IMAGE).await?,
        stream: redis_settings.connect(db::STREAM).await?,
    };
    let db = config
        .db_settings()
        .connect_pool_for(PoolRole::Requests)
        .await?;
    let background_db = config
        .db_settings()
        .connect_pool_for(PoolRole::Background)
        .await?;
    let state = AppState::new(
        db,
        etcd,
        redis,
        FacadeSettings {
            manager_id: config.manager_id(),
            manager_version: COMPATIBLE_MANAGER_VERSION.to_owned(),
            hide_agents: config.manager.hide_agents,
            num_proc: config.manager.num_proc,
            heartbeat_timeout: config.manager.heartbeat_timeout,
            service_addr: config.manager.service_addr.to_string(),
            ssl_enabled: config.manager.ssl_enabled,
            debug: config.debug.enabled,
            importer_image: config.manager.importer_image.clone(),
        },
        log.new(o!()),
    );

    let mut extensions = AppExtensions::default();
    let mut watchdog = Watchdog::default();
    start_actors(
        &ActorContext {
            config: &config,
            state: &state,
            background_db: &background_db,
            redis_settings: &redis_settings,
            worker_index,
            log: &log,
        },
        &mut extensions,
        &mut watchdog,
    )
    .await?;
    fault_injection::install(config.debug.enabled, &watchdog, &log);
    let hold_marker = hold_route::marker(config.debug.enabled, &log);

    let access_log = NamespaceFilter::new(config.logging.level, &config.logging.pkg_ns)
        .allows(ACCESS_LOG_MODULE, LogLevel::Info);
    let state = web::Data::new(state);
    let stream_stop = state.pipeline.stopping.clone();
    let version = web::Data::new(ManagerVersion(COMPATIBLE_MANAGER_VERSION.to_owned()));
    let limits = config.manager.http_limits;
    let body_timeout = BodyReadTimeout(limits.request_body_timeout);
    let file_limit = connection_cap::file_limit();
    let cap = connection_cap::effective_cap(limits.max_connections_per_worker, file_limit);
    if cap < limits.max_connections_per_worker {
        slog::warn!(log, "max-connections-per-worker lowered to fit the open-file limit; \
            raise the limit (e.g. LimitNOFILE in the systemd unit) to allow more";
            "configured" => limits.max_connections_per_worker, "cap" => cap,
            "nofile" => file_limit.unwrap_or(0));
    }
    let connections = ConnectionCap::new(cap, log.new(o!("worker" => worker_index)));
    // Between two requests a connection may idle for the keep-alive time, then take the head
    // timeout to send its next head: past both it is a slow-head client.
    let idle_grace = KEEP_ALIVE + limits.request_head_timeout;
    let ops_listener = super::ops_listener::start(
        config.manager.metrics_port,
        worker_index,
        state.clone(),
        &log,
    )?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(Condition::new(access_log, Logger::new(ACCESS_LOG_FORMAT)))
            .wrap(bai_actors::facade::default_headers())
            .app_data(state.clone())
            .app_data(version.clone())
            .app_data(body_timeout)
            .configure(|cfg| extensions.apply(cfg))
            .configure(|cfg| hold_route::configure(cfg, hold_marker.as_ref()))
            .configure(bai_actors::facade::configure)
            // Outermost: every request counts, whichever layer answers it.
            .wrap(RequestMetrics)
    })
    .workers(HTTP_THREADS_PER_WORKER)
    .keep_alive(KEEP_ALIVE)
    .client_request_timeout(limits.request_head_timeout)
    .max_connections(connections.cap())
    .on_connect(move |io, extensions| {
        connections.on_connect(extensions);
        idle_watchdog::attach(io, extensions, idle_grace);
    })
    .shutdown_timeout(DRAIN_TIMEOUT.as_secs())
    .disable_signals();
    let server = match tls_config {
        Some(tls_config) => server.listen_rustls_0_23(socket, tls_config)?,
        None => server.listen(socket)?,
    }
    .run();

    let scheme = if config.manager.ssl_enabled {
        "https"
    } else {
        "http"
    };
    info!(log, "worker {worker_index} serving on {scheme}://{}", config.manager.service_addr;
        "pid" => std::process::id());
    let handle = server.handle();
    let stop_log = log.clone();
    let stopping = stream_stop.clone();
    actix_web::rt::spawn(async move {
        let signal = wait_for_stop_signal().await;
        info!(
            stop_log,
            "worker {worker_index} got {signal}: finishing in-flight requests"
        );
        // Streams would otherwise hold their connections until the drain timeout and then
        // drop without a close frame.
        stopping.cancel();
        handle.stop(true).await;
    });
    let handle = server.handle();
    let stopping_on_death = stream_stop;
    let mut server = std::pin::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        dead = watchdog.first_death() => {
            error!(log, "worker {worker_index}: the {dead} actor died; stopping the worker");
            stopping_on_death.cancel();
            // The stop command is sent at once; the server future must run to carry it out.
            let stopped = handle.stop(true);
            let _ = server.await;
            stopped.await;
            if let Some(ops) = ops_listener {
                ops.stop(true).await;
            }
            return Err(WorkerError::ActorDied(dead));
        }
    };
    if let Some(ops) = ops_listener {
        ops.stop(true).await;
    }
    served?;
    info!(log, "worker {worker_index} stopped");
    Ok(())
}

/// Asks for SIGTERM when the supervisor dies (again: see the caller), and fails if it is gone
/// already, so no worker outlives its supervisor.
fn follow_supervisor(supervisor: nix::unistd::Pid) -> Result<(), WorkerError> {
    // SAFETY: prctl with PR_SET_PDEATHSIG only changes this process's own setting.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) } != 0 {
        return Err(WorkerError::SupervisorDeathSignal(
            std::io::Error::last_os_error(),
        ));
    }
    if nix::unistd::getppid() != supervisor {
        return Err(WorkerError::SupervisorGone(supervisor));
    }
    Ok(())
}

/// Waits for SIGTERM (from the supervisor) or SIGINT (Ctrl-C on the terminal reaches the whole
/// process group) and names it.
async fn wait_for_stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        // Without signal handlers the worker can only be killed; keep serving.
        _ => std::future::pending().await,
    }
}
