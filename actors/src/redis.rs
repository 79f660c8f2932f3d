//! Redis connections. Backend.AI splits its data over fixed database numbers; the address and
//! password come from etcd `config/redis/{addr,password}`, shared with the agents.

use std::time::Duration;

use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::etcd::{EtcdError, EtcdStore};

/// The database numbers of `ai.backend.common.defs`.
pub mod db {
    /// Kernel statistics, query counters, concurrency counters.
    pub const STAT: u8 = 0;
    /// API rate limiting.
    pub const RATE_LIMIT: u8 = 1;
    /// Agent last-seen times and other live state.
    pub const LIVE: u8 = 2;
    /// One set per image name with the agents that hold it.
    pub const IMAGE: u8 = 3;
    /// The `events` stream.
    pub const STREAM: u8 = 4;
    /// Lock keys.
    pub const STREAM_LOCK: u8 = 5;
}

/// How long one command on a shared connection may wait for its reply. Every command on these
/// connections is a quick one (no blocking reads: those use their own connection), so a reply
/// that takes longer means Redis is unwell and the request should fail now, not later.
pub const COMMAND_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long one attempt to (re)connect may take. Redis on a LAN accepts in microseconds; a
/// host that does not answer within this is treated as down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Reconnect attempts after a lost connection before the waiting commands fail. The client's
/// default (6 attempts with exponential back-off) kept every request waiting about 9.4 s while
/// Redis was down; one quick retry rides over a restart blip, and the next command starts a new
/// attempt, so service resumes as soon as Redis is back.
pub const RECONNECT_RETRIES: usize = 1;

/// The longest pause between two reconnect attempts of one round (see [`RECONNECT_RETRIES`]).
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(200);

/// The default when etcd has no `config/redis/addr` (22.09's default).
pub const DEFAULT_REDIS_ADDR: &str = "127.0.0.1:6379";

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("etcd config/redis/addr {addr:?} is not a host:port address")]
    BadAddress { addr: String },
    #[error("cannot connect to Redis at {addr} (db {db}): {source}")]
    Connect {
        addr: String,
        db: u8,
        #[source]
        source: redis::RedisError,
    },
}

/// Where Redis is, as etcd says.
#[derive(Clone)]
pub struct RedisSettings {
    pub host: String,
    pub port: u16,
    pub password: Option<String>,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl RedisSettings {
    /// Reads `config/redis/addr` and `config/redis/password`.
    pub async fn from_etcd(etcd: &EtcdStore) -> Result<RedisSettings, RedisError> {
        let addr = etcd
            .get("config/redis/addr")
            .await?
            .unwrap_or_else(|| DEFAULT_REDIS_ADDR.to_owned());
        let password = etcd
            .get("config/redis/password")
            .await?
            .filter(|p| !p.is_empty());
        RedisSettings::parse(&addr, password)
    }

    pub fn parse(addr: &str, password: Option<String>) -> Result<RedisSettings, RedisError> {
        let bad = || RedisError::BadAddress {
            addr: addr.to_owned(),
        };
        let (host, port) = addr.trim().rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(RedisSettings {
            host: host.to_owned(),
            port,
            password,
        })
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn connection_info(&self, db: u8) -> redis::ConnectionInfo {
        let mut redis_settings = redis::RedisConnectionInfo::default().set_db(i64::from(db));
        if let Some(password) = &self.password {
            redis_settings = redis_settings.set_password(password.clone());
        }
        redis::ConnectionAddr::Tcp(self.host.clone(), self.port)
            .into_connection_info()
            .expect("a TCP address is always valid connection info")
            .set_redis_settings(redis_settings)
    }

    /// A reconnecting connection to database `db`; fails now if Redis does not answer. While
    /// Redis is unreachable its commands fail within about a second (see
    /// [`RECONNECT_RETRIES`]) instead of queueing behind a long reconnect back-off.
    pub async fn connect(&self, db: u8) -> Result<ConnectionManager, RedisError> {
        let connect_err = |source| RedisError::Connect {
            addr: self.addr(),
            db,
            source,
        };
        let client = redis::Client::open(self.connection_info(db)).map_err(connect_err)?;
        ConnectionManager::new_with_config(client, fail_fast_config())
            .await
            .map_err(connect_err)
    }
}

/// The configuration of the shared, reconnecting connections (see the constants above).
fn fail_fast_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(COMMAND_RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_max_delay(RECONNECT_MAX_DELAY)
}
