//! Fencing tokens: what makes a lock safe when its holder is paused past its lease.
//!
//! Each acquisition yields a token larger than every earlier one for that lock. The token is
//! recorded in `lock_fences` when the lock is acquired, and every transaction written under the
//! lock runs [`Fence::check`] first: `bai_check_fence` raises SQLSTATE `BF001` when a newer
//! token is on record, so the stale holder's transaction aborts and writes nothing.

use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;

/// SQLSTATE raised by `bai_check_fence` for a stale token.
const STALE_FENCE: &str = "BF001";

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("lock {name} was taken over by a newer holder (our token {token} is stale)")]
    Stale { name: String, token: i64 },
    #[error("cannot check the fencing token of lock {name}: {source}")]
    Database {
        name: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl FenceError {
    /// Whether a database error is the fence refusing a stale token.
    pub fn is_stale(error: &tokio_postgres::Error) -> bool {
        error.code() == Some(&SqlState::from_code(STALE_FENCE))
    }
}

/// The token of one lock acquisition, to attach to the writes made under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// `<backend>:<lock name>`: tokens of different backends are not comparable.
    pub name: String,
    pub token: i64,
}

impl Fence {
    /// Checks (and records) the token inside the caller's transaction; fails if a newer holder
    /// has recorded a newer token.
    pub async fn check<C: GenericClient>(&self, client: &C) -> Result<(), FenceError> {
        client
            .execute("SELECT bai_check_fence($1, $2)", &[&self.name, &self.token])
            .await
            .map(|_| ())
            .map_err(|source| {
                if FenceError::is_stale(&source) {
                    FenceError::Stale {
                        name: self.name.clone(),
                        token: self.token,
                    }
                } else {
                    FenceError::Database {
                        name: self.name.clone(),
                        source,
                    }
                }
            })
    }
}
