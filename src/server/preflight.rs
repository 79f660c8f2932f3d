//! What the manager needs before it serves: etcd, the Redis that etcd names, and PostgreSQL.
//! Each is connected once at start so that an unreachable service fails the start with a
//! message naming it and its address.

use std::time::Duration;

use bai_actors::etcd::{EtcdError, EtcdStore};
use bai_actors::redis::{RedisError, RedisSettings};
use bai_schema::PoolError;

use crate::config::LocalConfig;

/// How long Redis may take to answer at start.
pub const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("{0}")]
    Etcd(#[from] EtcdError),
    #[error("cannot read the Redis address from etcd: {0}")]
    RedisConfig(RedisError),
    #[error("{0}")]
    Redis(RedisError),
    #[error("cannot connect to Redis at {addr}: no answer within {REDIS_CONNECT_TIMEOUT:?}")]
    RedisTimeout { addr: String },
    #[error("{0}")]
    Postgres(#[from] PoolError),
    #[error("PostgreSQL at {addr} answered the connection but not a query: {source}")]
    PostgresQuery {
        addr: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// The services that answered.
pub struct Services {
    pub etcd: EtcdStore,
    pub redis: RedisSettings,
}

/// Connects to etcd, reads `config/redis/{addr,password}`, pings Redis and runs a query on
/// PostgreSQL.
pub async fn check_services(config: &LocalConfig) -> Result<Services, PreflightError> {
    let etcd = EtcdStore::connect(&config.etcd_settings()).await?;
    let redis = RedisSettings::from_etcd(&etcd)
        .await
        .map_err(PreflightError::RedisConfig)?;
    // A plain connection, not the reconnecting manager the workers use: a refused
    // connection fails now instead of after the manager's retries.
    let redis_err = |source| {
        PreflightError::Redis(RedisError::Connect {
            addr: redis.addr(),
            db: bai_actors::redis::db::STAT,
            source,
        })
    };
    let client = redis::Client::open(redis.connection_info(bai_actors::redis::db::STAT))
        .map_err(redis_err)?;
    let ping = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
    };
    tokio::time::timeout(REDIS_CONNECT_TIMEOUT, ping)
        .await
        .map_err(|_| PreflightError::RedisTimeout { addr: redis.addr() })?
        .map_err(redis_err)?;
    let db = config.db_settings();
    let client = db.connect_one().await?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|source| PreflightError::PostgresQuery {
            addr: db.addr(),
            source,
        })?;
    Ok(Services { etcd, redis })
}
