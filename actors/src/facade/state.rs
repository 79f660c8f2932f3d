//! What every request handler can reach: the database pool, etcd, Redis and the settings.
//! Actor addresses are added here as the actors are wired in.

use deadpool_postgres::Pool;
use redis::aio::ConnectionManager;

use crate::etcd::EtcdStore;

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

/// Shared state of one worker's HTTP façade.
#[derive(Clone)]
pub struct AppState {
    pub db: Pool,
    pub etcd: EtcdStore,
    pub redis: RedisConnections,
    pub settings: FacadeSettings,
    pub log: slog::Logger,
}
