//! The `etcd` backend: etcd's lock API on a lease that a keep-alive task renews, for managers
//! on many hosts. The token is the lock key's create revision, which etcd increases for every
//! new key. When a keep-alive fails or the lease is gone (the process was paused past its
//! lifetime, or etcd was unreachable), the guard reports the lock lost.

use std::time::Duration;

use etcd_client::{Client, LockOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::LockError;

/// Time allowed on top of `wait` for the round trips that take a free lock (grant, lock, get):
/// `wait` is how long to wait for a busy lock, so a zero wait must still get a free one (with
/// the round trips inside the timeout, a zero wait would never get any etcd lock).
const ROUND_TRIP_ALLOWANCE: Duration = Duration::from_secs(2);

pub struct HeldEtcdLock {
    client: Client,
    key: Vec<u8>,
    lease: i64,
    keeper: JoinHandle<()>,
}

fn etcd_err(context: &str) -> impl FnOnce(etcd_client::Error) -> LockError + '_ {
    move |source| LockError::Etcd {
        context: context.to_owned(),
        source,
    }
}

/// The etcd lock name of `name` in `namespace`.
pub fn lock_key(namespace: &str, name: &str) -> String {
    format!("/sorna/{namespace}/manager/locks/{name}")
}

pub async fn acquire(
    mut client: Client,
    key: &str,
    lifetime: Duration,
    wait: Duration,
    lost: watch::Sender<bool>,
) -> Result<Option<(HeldEtcdLock, i64)>, LockError> {
    let ttl = lifetime.as_secs().max(1) as i64;
    let lease = client
        .lease_grant(ttl, None)
        .await
        .map_err(etcd_err("granting a lease"))?
        .id();
    let keeper = tokio::spawn(keep_alive(client.clone(), lease, lifetime, lost));
    let locked = tokio::time::timeout(
        wait + ROUND_TRIP_ALLOWANCE,
        client.lock(key, Some(LockOptions::new().with_lease(lease))),
    )
    .await;
    let response = match locked {
        Ok(Ok(response)) => response,
        Ok(Err(source)) => {
            keeper.abort();
            let _ = client.lease_revoke(lease).await;
            return Err(LockError::Etcd {
                context: format!("locking {key}"),
                source,
            });
        }
        Err(_elapsed) => {
            // Revoking the lease also removes our waiting key, so we leave no trace.
            keeper.abort();
            let _ = client.lease_revoke(lease).await;
            return Ok(None);
        }
    };
    let owned_key = response.key().to_vec();
    let revision = client
        .get(owned_key.clone(), None)
        .await
        .map_err(etcd_err("reading the lock key"))?
        .kvs()
        .first()
        .map(|kv| kv.create_revision())
        .ok_or_else(|| LockError::LostWhileAcquiring(key.to_owned()))?;
    Ok(Some((
        HeldEtcdLock {
            client,
            key: owned_key,
            lease,
            keeper,
        },
        revision,
    )))
}

/// Renews the lease three times per lifetime; any failure marks the lock lost.
async fn keep_alive(mut client: Client, lease: i64, lifetime: Duration, lost: watch::Sender<bool>) {
    let interval = (lifetime / 3).max(Duration::from_millis(100));
    let renewed = async {
        let (mut keeper, mut stream) = client.lease_keep_alive(lease).await.ok()?;
        loop {
            tokio::time::sleep(interval).await;
            keeper.keep_alive().await.ok()?;
            let reply = tokio::time::timeout(lifetime, stream.message())
                .await
                .ok()?
                .ok()??;
            if reply.ttl() <= 0 {
                return None;
            }
        }
    };
    let _: Option<()> = renewed.await;
    let _ = lost.send(true);
}

impl HeldEtcdLock {
    pub async fn release(mut self) {
        self.keeper.abort();
        let _ = self.client.unlock(self.key.clone()).await;
        let _ = self.client.lease_revoke(self.lease).await;
    }
}

impl Drop for HeldEtcdLock {
    fn drop(&mut self) {
        // A guard dropped without `release` stops renewing; the lease expires by itself.
        self.keeper.abort();
    }
}
