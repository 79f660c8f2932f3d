//! The PostgreSQL connection pool, from `[db]` of manager.toml.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// How long to wait for PostgreSQL to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    Build(String),
    #[error("cannot get a PostgreSQL connection from the pool: {0}")]
    Checkout(#[from] deadpool_postgres::PoolError),
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
        let manager = Manager::from_config(
            self.pg_config(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| PoolError::Build(e.to_string()))?;
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
