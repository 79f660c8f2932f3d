//! The keypair lookup of request authentication, with a short-lived in-memory cache so a
//! signed request usually needs no database round trip. An entry lives `CREDENTIAL_CACHE_TTL`,
//! so a changed, deactivated or deleted keypair stops working within that time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bai_schema::queries::QueryError;
use bai_schema::queries::keypair::{KeypairCredential, find_active_credential};
use deadpool_postgres::Pool;

use super::context::{AuthContext, Authenticated};

/// How long a looked-up keypair is trusted without asking the database again. Two seconds
/// keeps the database out of the hot path (one lookup per key per two seconds) while a
/// deactivated keypair stops working "within seconds", as operators expect.
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(2);

/// More entries than this are swept of expired ones before inserting, so keys that stop
/// being used do not accumulate.
const SWEEP_THRESHOLD: usize = 4096;

/// A verified keypair: the secret for signature checks, and the caller handlers see.
#[derive(Clone)]
pub struct CachedCredential {
    secret_key: Arc<str>,
    pub caller: Authenticated,
}

impl CachedCredential {
    pub fn new(credential: &KeypairCredential) -> CachedCredential {
        CachedCredential {
            secret_key: Arc::from(credential.secret_key.as_str()),
            caller: Authenticated(Arc::new(AuthContext::from_credential(credential))),
        }
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }
}

impl std::fmt::Debug for CachedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedCredential")
            .field("access_key", &self.caller.access_key)
            .finish_non_exhaustive()
    }
}

/// Active keypairs by access key, each with the time it was read.
pub struct CredentialCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, (Instant, CachedCredential)>>,
}

impl Default for CredentialCache {
    fn default() -> Self {
        CredentialCache::new(CREDENTIAL_CACHE_TTL)
    }
}

impl CredentialCache {
    pub fn new(ttl: Duration) -> CredentialCache {
        CredentialCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The active keypair `access_key`, from the cache or the database; `None` when there
    /// is no such active keypair (not cached, so a new keypair works at once).
    pub async fn lookup(
        &self,
        db: &Pool,
        access_key: &str,
    ) -> Result<Option<CachedCredential>, QueryError> {
        if let Some(hit) = self.fresh(access_key) {
            return Ok(Some(hit));
        }
        let client = db.get().await?;
        let Some(credential) = find_active_credential(&client, access_key).await? else {
            self.forget(access_key);
            return Ok(None);
        };
        let cached = CachedCredential::new(&credential);
        self.remember(access_key, cached.clone());
        Ok(Some(cached))
    }

    /// Drops every cached entry (after an operation that changes keypairs).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    fn fresh(&self, access_key: &str) -> Option<CachedCredential> {
        let entries = self.entries.read().ok()?;
        let (read_at, credential) = entries.get(access_key)?;
        (read_at.elapsed() < self.ttl).then(|| credential.clone())
    }

    fn remember(&self, access_key: &str, credential: CachedCredential) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= SWEEP_THRESHOLD {
            let ttl = self.ttl;
            entries.retain(|_, (read_at, _)| read_at.elapsed() < ttl);
        }
        entries.insert(access_key.to_owned(), (Instant::now(), credential));
    }

    fn forget(&self, access_key: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(access_key);
        }
    }
}
