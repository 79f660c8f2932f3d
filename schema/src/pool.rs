//! The PostgreSQL connection pool, from `[db]` of manager.toml.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// How long to wait for PostgreSQL to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for a free connection of the request pool before it is answered
/// 503: long enough to ride out a burst of short queries, short enough that a client learns
/// of an overloaded manager in seconds instead of hanging behind it.
pub const REQUEST_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);

/// Who a pool serves; the two never share connections, so a flood of requests cannot starve
/// the scheduler, the heartbeat tracker or the reconciler (which hold the cluster lock while
/// they wait for a connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRole {
    /// HTTP handlers: a checkout waits at most [`REQUEST_CHECKOUT_TIMEOUT`].
    Requests,
    /// Background actors: a checkout waits for a connection (their work is bounded by their
    /// own ticks and locks).
    Background,
}

/// Connection settings (the `[db]` section).
#[derive(Clone)]
pub struct DbSettings {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    pub password: String,
    pub pool_size: usize,
}

impl std::fmt::Debug for DbSettings {
    // The password must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("name", &self.name)
            .field("user", &self.user)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot connect to PostgreSQL at {addr} (database {name:?}, user {user:?}): {source}")]
    Connect {
        addr: String,
        name: String,
        user: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("cannot build the PostgreSQL pool: {0}")]
    Build(#[source] deadpool_postgres::BuildError),
    #[error("cannot get a PostgreSQL connection from the pool: {0}")]
    Checkout(#[from] deadpool_postgres::PoolError),
}

/// One round trip to the server (`SELECT 1`), for the readiness check.
pub async fn ping(client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
    client.simple_query("SELECT 1").await.map(|_| ())
}

/// Whether a checkout failed because every connection stayed busy for the pool's wait timeout
/// (an overloaded manager, answered 503), not because PostgreSQL failed.
pub fn is_checkout_timeout(error: &deadpool_postgres::PoolError) -> bool {
    matches!(error, deadpool_postgres::PoolError::Timeout(_))
}

impl DbSettings {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(&self.name)
            .user(&self.user)
            .password(&self.password)
            .application_name("bai-manager")
            .connect_timeout(CONNECT_TIMEOUT);
        config
    }

    /// One plain connection (for the CLI), driven on the current runtime.
    pub async fn connect_one(&self) -> Result<tokio_postgres::Client, PoolError> {
        let (client, connection) =
            self.pg_config()
                .connect(NoTls)
                .await
                .map_err(|source| PoolError::Connect {
                    addr: self.addr(),
                    name: self.name.clone(),
                    user: self.user.clone(),
                    source,
                })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// A pool of `pool_size` connections; one connection is opened now to fail early.
    pub async fn connect_pool(&self) -> Result<Pool, PoolError> {
        self.connect_pool_for(PoolRole::Background).await
    }

    /// A pool of `pool_size` connections for `role`; one connection is opened now to fail
    /// early. A request pool's checkouts time out (see [`is_checkout_timeout`]).
    pub async fn connect_pool_for(&self, role: PoolRole) -> Result<Pool, PoolError> {
        let manager = Manager::from_config(
            self.pg_config(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let wait_timeout = match role {
            PoolRole::Requests => Some(REQUEST_CHECKOUT_TIMEOUT),
            PoolRole::Background => None,
        };
        let pool = Pool::builder(manager)
            .max_size(self.pool_size.max(1))
            .wait_timeout(wait_timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(PoolError::Build)?;
        match pool.get().await {
            Ok(_) => Ok(pool),
            Err(deadpool_postgres::PoolError::Backend(source)) => Err(PoolError::Connect {
                addr: self.addr(),
                name: self.name.clone(),
                user: self.user.clone(),
                source,
            }),
            Err(other) => Err(PoolError::Checkout(other)),
        }
    }
}
