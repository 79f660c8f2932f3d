//! The `pg_advisory` backend (the original's default): a session-level
//! `pg_advisory_lock(<key>)` on a connection of its own, held as long as that connection
//! lives. Names that are numbers (the original's lock ids, e.g. 91 for scheduling) are used as
//! the key so that cooperating Python managers exclude each other; other names are hashed.
//! Tokens come from the `lock_fence_tokens` sequence. If the connection ends, the lock is lost.

use bai_schema::queries::ReadColumn;
use std::time::{Duration, Instant};

use bai_schema::DbSettings;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use super::LockError;

/// How often a waiter retries `pg_try_advisory_lock`.
const RETRY_INTERVAL: Duration = Duration::from_millis(100);

pub struct HeldPgLock {
    client: Client,
    key: i64,
    driver: JoinHandle<()>,
}

/// The advisory lock key of a lock name.
pub fn advisory_key(name: &str) -> i64 {
    if let Ok(number) = name.parse::<i64>() {
        return number;
    }
    let digest = Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

fn db_err(context: &str) -> impl FnOnce(tokio_postgres::Error) -> LockError + '_ {
    move |source| LockError::Database {
        context: context.to_owned(),
        source,
    }
}

pub async fn acquire(
    settings: &DbSettings,
    name: &str,
    wait: Duration,
    lost: watch::Sender<bool>,
) -> Result<Option<(HeldPgLock, i64)>, LockError> {
    let (client, connection) = settings
        .pg_config()
        .connect(NoTls)
        .await
        .map_err(db_err("connecting for an advisory lock"))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
        let _ = lost.send(true);
    });
    let key = advisory_key(name);
    let deadline = Instant::now() + wait;
    loop {
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(db_err("taking an advisory lock"))?
            .decode(0)?;
        if locked {
            break;
        }
        if Instant::now() >= deadline {
            driver.abort();
            return Ok(None);
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
    let token: i64 = client
        .query_one("SELECT nextval('lock_fence_tokens')", &[])
        .await
        .map_err(db_err("drawing a fencing token"))?
        .decode(0)?;
    Ok(Some((
        HeldPgLock {
            client,
            key,
            driver,
        },
        token,
    )))
}

impl HeldPgLock {
    pub async fn release(self) {
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&self.key])
            .await;
        self.driver.abort();
    }
}

impl Drop for HeldPgLock {
    fn drop(&mut self) {
        // Closing the connection releases a session-level advisory lock.
        self.driver.abort();
    }
}
