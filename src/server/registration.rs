//! This manager's presence in etcd: `nodes/manager/<id>` = `up` while it runs (deleted at
//! stop), and `manager/status` = `running` when missing. Real agents wait for both keys.

use std::time::Duration;

use bai_actors::etcd::{EtcdError, EtcdStore};

/// How often the node key is checked and put back if someone removed it.
pub const NODE_KEY_REFRESH: Duration = Duration::from_secs(10);

/// How long deregistration may take at stop (the whole stop must fit in 5 s).
pub const DEREGISTER_TIMEOUT: Duration = Duration::from_millis(800);

pub const MANAGER_STATUS_KEY: &str = "manager/status";

pub fn node_key(manager_id: &str) -> String {
    format!("nodes/manager/{manager_id}")
}

/// Puts the node key and, when absent (or the legacy `terminated`), `manager/status` =
/// `running`, as the original's first worker does.
pub async fn register(etcd: &EtcdStore, manager_id: &str) -> Result<(), EtcdError> {
    etcd.put(&node_key(manager_id), "up").await?;
    let status = etcd.get(MANAGER_STATUS_KEY).await?;
    if needs_running_status(status.as_deref()) {
        etcd.put(MANAGER_STATUS_KEY, "running").await?;
    }
    Ok(())
}

/// Whether `manager/status` must be set to `running` at start.
pub fn needs_running_status(current: Option<&str>) -> bool {
    matches!(current, None | Some("") | Some("terminated"))
}

/// Puts the node key back if it is gone; returns whether it had to.
pub async fn ensure_registered(etcd: &EtcdStore, manager_id: &str) -> Result<bool, EtcdError> {
    let key = node_key(manager_id);
    if etcd.get(&key).await?.as_deref() == Some("up") {
        return Ok(false);
    }
    etcd.put(&key, "up").await?;
    Ok(true)
}

/// Deletes the node key and anything under it (the original deletes the bare prefix, which
/// would also take `i-host2` with `i-host`).
pub async fn deregister(etcd: &EtcdStore, manager_id: &str) -> Result<(), EtcdError> {
    let key = node_key(manager_id);
    etcd.delete(&key).await?;
    etcd.delete_prefix(&format!("{key}/")).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_is_set_only_when_missing_or_terminated() {
        assert!(needs_running_status(None));
        assert!(needs_running_status(Some("terminated")));
        assert!(!needs_running_status(Some("running")));
        assert!(!needs_running_status(Some("frozen")));
    }
}
