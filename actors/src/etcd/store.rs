//! A namespaced etcd client: every key is read and written under `/sorna/<namespace>/`.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, DeleteOptions, GetOptions, Txn, TxnOp};
use serde_json::{Map, Value};

use super::keys::{demangle, flatten, mangle, unflatten};

/// How long to wait for etcd to accept a connection before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one etcd request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// etcd's default `--max-txn-ops`: the most operations one transaction level may hold. A
/// nested transaction counts as one operation of its parent and may itself hold
/// `MAX_TXN_OPS - <operations of its parent>` (etcd's `checkTxnRequest`), so nesting one level
/// makes up to `(MAX_TXN_OPS / 2)²` = 4096 operations one atomic transaction.
pub const MAX_TXN_OPS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("cannot connect to etcd at {endpoints}: {source}")]
    Connect {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd request failed while {context}: {source}")]
    Request {
        context: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd key {key} holds a value that is not UTF-8")]
    NotUtf8 { key: String },
    #[error(
        "{operations} operations do not fit in one etcd transaction (at most {max} with etcd's default --max-txn-ops={MAX_TXN_OPS}); nothing was written"
    )]
    TooManyOperations { operations: usize, max: usize },
    #[error("{0}")]
    Refused(String),
}

/// How `operations` writes are grouped so that one transaction holds them all: the sizes of the
/// nested transactions, or an empty list when they fit in one flat transaction. `outer_extra`
/// operations sit beside the nested ones at the top level.
pub fn txn_layout(
    operations: usize,
    outer_extra: usize,
    max_ops: usize,
) -> Result<Vec<usize>, EtcdError> {
    if operations + outer_extra <= max_ops {
        return Ok(Vec::new());
    }
    // With k nested transactions, each may hold max_ops - (k + outer_extra) operations.
    let capacity = |k: usize| k * max_ops.saturating_sub(k + outer_extra);
    let best = (1..=max_ops.saturating_sub(outer_extra))
        .map(capacity)
        .max()
        .unwrap_or(0);
    let Some(groups) =
        (1..=max_ops.saturating_sub(outer_extra)).find(|&k| capacity(k) >= operations)
    else {
        return Err(EtcdError::TooManyOperations {
            operations,
            max: best,
        });
    };
    let base = operations / groups;
    let remainder = operations % groups;
    Ok((0..groups)
        .map(|i| base + usize::from(i < remainder))
        .collect())
}

/// One atomic transaction of `ops` plus `outer_extra`, nested as `txn_layout` says.
fn build_txn(ops: Vec<TxnOp>, outer_extra: Vec<TxnOp>) -> Result<Txn, EtcdError> {
    let layout = txn_layout(ops.len(), outer_extra.len(), MAX_TXN_OPS)?;
    if layout.is_empty() {
        let mut all = ops;
        all.extend(outer_extra);
        return Ok(Txn::new().and_then(all));
    }
    let mut remaining = ops.into_iter();
    let mut top: Vec<TxnOp> = layout
        .iter()
        .map(|&size| {
            TxnOp::txn(Txn::new().and_then(remaining.by_ref().take(size).collect::<Vec<_>>()))
        })
        .collect();
    top.extend(outer_extra);
    Ok(Txn::new().and_then(top))
}

/// Connection settings taken from `[etcd]` of manager.toml.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    pub namespace: String,
    /// Credentials are used only when the user is not empty.
    pub user: Option<String>,
    pub password: Option<String>,
}

#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    namespace: String,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn request_err(context: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> EtcdError {
    let context = context.into();
    move |source| EtcdError::Request { context, source }
}

impl EtcdStore {
    /// Connects and checks that etcd answers, so an unreachable etcd fails here, not later.
    pub async fn connect(settings: &EtcdSettings) -> Result<EtcdStore, EtcdError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(user) = settings.user.as_deref().filter(|u| !u.is_empty()) {
            options = options.with_user(user, settings.password.clone().unwrap_or_default());
        }
        let endpoints = settings.endpoints.join(",");
        let connect_err = |source| EtcdError::Connect {
            endpoints: endpoints.clone(),
            source,
        };
        let mut client = Client::connect(&settings.endpoints, Some(options))
            .await
            .map_err(connect_err)?;
        // `connect` is lazy about the first RPC; a status call proves the server is there.
        client.status().await.map_err(connect_err)?;
        Ok(EtcdStore {
            client,
            namespace: settings.namespace.clone(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The raw client, for leases, locks and watches.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn physical_key(&self, key: &str) -> String {
        mangle(&self.namespace, key)
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, EtcdError> {
        let physical = self.physical_key(key);
        let response = self
            .client
            .kv_client()
            .get(physical.clone(), None)
            .await
            .map_err(request_err(format!("reading {physical}")))?;
        match response.kvs().first() {
            None => Ok(None),
            Some(kv) => kv
                .value_str()
                .map(|v| Some(v.to_owned()))
                .map_err(|_| EtcdError::NotUtf8 { key: physical }),
        }
    }

    /// Every (logical key, value) pair whose key starts with `prefix` (a plain string prefix,
    /// so `config/foo` also matches `config/foobar`), sorted by key.
    pub async fn get_prefix_flat(&self, prefix: &str) -> Result<Vec<(String, String)>, EtcdError> {
        let physical = self.physical_key(prefix);
        let response = self
            .client
            .kv_client()
            .get(
                physical.clone(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(etcd_client::SortTarget::Key, etcd_client::SortOrder::Ascend),
                ),
            )
            .await
            .map_err(request_err(format!("reading the prefix {physical}")))?;
        let mut pairs = Vec::with_capacity(response.kvs().len());
        for kv in response.kvs() {
            let key = kv.key_str().map_err(|_| EtcdError::NotUtf8 {
                key: String::from_utf8_lossy(kv.key()).into_owned(),
            })?;
            let value = kv.value_str().map_err(|_| EtcdError::NotUtf8 {
                key: key.to_owned(),
            })?;
            if let Some(logical) = demangle(&self.namespace, key) {
                pairs.push((logical.to_owned(), value.to_owned()));
            }
        }
        Ok(pairs)
    }

    /// The nested object under `prefix`, as the original's `get_prefix` builds it.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Map<String, Value>, EtcdError> {
        let pairs = self.get_prefix_flat(prefix).await?;
        let logical_prefix = prefix.strip_prefix('/').unwrap_or(prefix);
        Ok(unflatten(
            logical_prefix,
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))
    }

    pub async fn put(&self, key: &str, value: &str) -> Result<(), EtcdError> {
        let physical = self.physical_key(key);
        self.client
            .kv_client()
            .put(physical.clone(), value, None)
            .await
            .map_err(request_err(format!("writing {physical}")))?;
        Ok(())
    }

    /// Writes all pairs (logical keys) in one transaction: all or nothing. More than
    /// `MAX_TXN_OPS` pairs go into nested transactions of the same one transaction.
    pub async fn put_many(&self, pairs: &[(String, String)]) -> Result<(), EtcdError> {
        let ops: Vec<TxnOp> = pairs
            .iter()
            .map(|(k, v)| TxnOp::put(self.physical_key(k), v.as_str(), None))
            .collect();
        self.commit(
            ops,
            Vec::new(),
            format!("writing {} keys in one transaction", pairs.len()),
        )
        .await
    }

    /// Moves every key under `src` to `dst` (the original's `move-subtree`: the rest of the
    /// key after `src` and one `/` is appended to `dst/`), in one transaction that also deletes
    /// the source range. Returns how many keys moved.
    pub async fn move_prefix(&self, src: &str, dst: &str) -> Result<usize, EtcdError> {
        let pairs = self.get_prefix_flat(src).await?;
        let src_logical = src.strip_prefix('/').unwrap_or(src);
        let source_range = self.physical_key(src);
        let mut ops = Vec::with_capacity(pairs.len());
        for (key, value) in &pairs {
            let rest = key.strip_prefix(src_logical).unwrap_or(key);
            let rest = rest.strip_prefix('/').unwrap_or(rest);
            let target = if rest.is_empty() {
                dst.to_owned()
            } else {
                format!("{dst}/{rest}")
            };
            let physical = self.physical_key(&target);
            if physical.starts_with(&source_range) {
                return Err(EtcdError::Refused(format!(
                    "moving {src:?} to {dst:?} would write {target:?}, which is inside the source; nothing was moved"
                )));
            }
            ops.push(TxnOp::put(physical, value.as_str(), None));
        }
        if ops.is_empty() {
            return Ok(0);
        }
        let delete = TxnOp::delete(source_range, Some(DeleteOptions::new().with_prefix()));
        self.commit(
            ops,
            vec![delete],
            format!("moving {} keys from {src:?} to {dst:?}", pairs.len()),
        )
        .await?;
        Ok(pairs.len())
    }

    async fn commit(
        &self,
        ops: Vec<TxnOp>,
        outer_extra: Vec<TxnOp>,
        context: String,
    ) -> Result<(), EtcdError> {
        let txn = build_txn(ops, outer_extra)?;
        self.client
            .kv_client()
            .txn(txn)
            .await
            .map_err(request_err(context))?;
        Ok(())
    }

    /// `put_prefix`: flattens `value` under `prefix` and writes it in one transaction.
    pub async fn put_prefix(&self, prefix: &str, value: &Value) -> Result<usize, EtcdError> {
        let pairs = flatten(prefix, value);
        self.put_many(&pairs).await?;
        Ok(pairs.len())
    }

    /// Deletes one key; returns whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, EtcdError> {
        let physical = self.physical_key(key);
        let response = self
            .client
            .kv_client()
            .delete(physical.clone(), None)
            .await
            .map_err(request_err(format!("deleting {physical}")))?;
        Ok(response.deleted() > 0)
    }

    /// Deletes every key starting with `prefix` (plain string prefix); returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<i64, EtcdError> {
        let physical = self.physical_key(prefix);
        let response = self
            .client
            .kv_client()
            .delete(physical.clone(), Some(DeleteOptions::new().with_prefix()))
            .await
            .map_err(request_err(format!("deleting the prefix {physical}")))?;
        Ok(response.deleted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_writes_stay_flat() {
        assert_eq!(txn_layout(0, 0, 128).unwrap(), Vec::<usize>::new());
        assert_eq!(txn_layout(128, 0, 128).unwrap(), Vec::<usize>::new());
        assert_eq!(txn_layout(127, 1, 128).unwrap(), Vec::<usize>::new());
    }

    #[test]
    fn large_writes_nest_within_the_per_level_budget() {
        for (operations, extra) in [(129, 0), (500, 0), (4096, 0), (128, 1), (3000, 1)] {
            let layout = txn_layout(operations, extra, 128).unwrap();
            let groups = layout.len();
            assert!(groups > 0);
            assert_eq!(layout.iter().sum::<usize>(), operations);
            for size in &layout {
                assert!(groups + extra + size <= 128, "{operations}: {layout:?}");
            }
        }
    }

    #[test]
    fn beyond_nesting_capacity_is_refused_with_the_limit() {
        match txn_layout(4097, 0, 128) {
            Err(EtcdError::TooManyOperations { operations, max }) => {
                assert_eq!((operations, max), (4097, 4096));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
