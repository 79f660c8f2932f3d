//! Keeping a container's log when its kernel is destroyed: the original moves the log into
//! `kernels.container_log` so `GET /session/{name}/logs` still answers after the container is
//! gone. We ask the agent for it (`get_logs`) right before `destroy_kernel`.

use std::time::Duration;

use uuid::Uuid;

use super::dispatch::DispatchDeps;
use crate::agent_rpc::AgentTarget;

/// The original keeps at most 10 MiB of a container's log.
pub const MAX_CONTAINER_LOG_BYTES: usize = 10 * 1024 * 1024;
/// A destroy waits at most this long for the log; a slow agent must not hold up termination.
pub const LOG_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The last [`MAX_CONTAINER_LOG_BYTES`] of `log` (the end of a log says why it ended), cut at
/// a character boundary.
pub fn keep_tail(log: &str) -> &str {
    if log.len() <= MAX_CONTAINER_LOG_BYTES {
        return log;
    }
    let mut start = log.len() - MAX_CONTAINER_LOG_BYTES;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}

/// Fetches the log of `kernel_id` and keeps its tail; failures only cost the stored log, so
/// they are returned for logging and never stop the destroy.
pub async fn fetch_container_log(
    deps: &DispatchDeps,
    target: &AgentTarget,
    kernel_id: Uuid,
) -> Result<Vec<u8>, ContainerLogError> {
    let log = tokio::time::timeout(LOG_FETCH_TIMEOUT, deps.rpc.get_logs(target, kernel_id))
        .await
        .map_err(|_| ContainerLogError::Timeout {
            agent: target.id.clone(),
        })??;
    Ok(keep_tail(&log).as_bytes().to_vec())
}

/// Why a kernel's log was not kept (logged; the destroy goes on).
#[derive(Debug, thiserror::Error)]
pub enum ContainerLogError {
    #[error("no log from agent {agent} within {LOG_FETCH_TIMEOUT:?}")]
    Timeout { agent: String },
    #[error(transparent)]
    Rpc(#[from] crate::agent_rpc::RpcError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_logs_keep_their_end() {
        let log = format!("{}é{}", "a".repeat(MAX_CONTAINER_LOG_BYTES), "end");
        let kept = keep_tail(&log);
        assert!(kept.len() <= MAX_CONTAINER_LOG_BYTES);
        assert!(kept.ends_with("end"));
        assert_eq!(keep_tail("short"), "short");
    }
}
