//! What every request handler can reach: the database pool, etcd, Redis and the settings.
//! Actor addresses are added here as the actors are wired in.

use std::sync::Arc;

use deadpool_postgres::Pool;
use redis::aio::ConnectionManager;

use crate::etcd::EtcdStore;
use crate::facade::auth::credentials::CredentialCache;
use crate::facade::manager_status::ManagerStatusCache;
use crate::facade::ratelimit::RateLimiter;
use crate::facade::slot_types::SlotTypesCache;

/// Settings of the façade taken from manager.toml.
#[derive(Debug, Clone)]
pub struct FacadeSettings {
    /// `[manager] id`, e.g. `i-hostname`.
    pub manager_id: String,
    /// The crate version, announced by `GET /`.
    pub manager_version: String,
    /// `[manager] hide-agents`.
    pub hide_agents: bool,
    /// `[manager] num-proc`, reported by `GET /manager/status`.
    pub num_proc: usize,
    /// `[manager] heartbeat-timeout` in seconds.
    pub heartbeat_timeout: f64,
    /// `[manager] service-addr` as `host:port`.
    pub service_addr: String,
    pub ssl_enabled: bool,
    /// `[debug] enabled`: include internal error details in 500 responses.
    pub debug: bool,
    /// `[manager] importer-image`: what `POST /image/import` runs.
    pub importer_image: String,
}

/// Redis connections by Backend.AI database number.
#[derive(Clone)]
pub struct RedisConnections {
    pub stat: ConnectionManager,
    pub rate_limit: ConnectionManager,
    pub live: ConnectionManager,
    pub image: ConnectionManager,
    pub stream: ConnectionManager,
}

/// The request pipeline's own state, shared by all threads of a worker: the keypair and
/// manager-status caches and the rate-limit script (see `facade::access`).
#[derive(Default)]
pub struct PipelineState {
    pub credentials: CredentialCache,
    pub manager_status: ManagerStatusCache,
    pub rate_limiter: RateLimiter,
    pub slot_types: SlotTypesCache,
    /// The kernels with app streams or terminals open in this worker, whose stale
    /// accounting entries the worker collects.
    pub open_streams: std::sync::Arc<crate::interaction::stream_gc::OpenStreams>,
    /// Cancelled when the worker starts to stop, so open streams close with 1001 before the
    /// server drops their connections.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// Shared state of one worker's HTTP façade. Build it with [`AppState::new`].
#[derive(Clone)]
pub struct AppState {
    pub db: Pool,
    pub etcd: EtcdStore,
    pub redis: RedisConnections,
    pub settings: FacadeSettings,
    pub log: slog::Logger,
    pub pipeline: Arc<PipelineState>,
}

impl AppState {
    pub fn new(
        db: Pool,
        etcd: EtcdStore,
        redis: RedisConnections,
        settings: FacadeSettings,
        log: slog::Logger,
    ) -> AppState {
        AppState {
            db,
            etcd,
            redis,
            settings,
            log,
            pipeline: Arc::new(PipelineState::default()),
        }
    }
}
