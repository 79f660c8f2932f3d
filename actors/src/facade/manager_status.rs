//! The `manager/status` gate: etcd says whether the cluster is `running` or `frozen`
//! (maintenance); writes need `running`, reads accept both. The value is cached for
//! `STATUS_CACHE_TTL` so the gate costs no etcd round trip per request.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::etcd::{EtcdError, EtcdStore};
use crate::facade::problem::{Problem, ProblemKind};

/// The etcd key holding the status.
pub const MANAGER_STATUS_KEY: &str = "manager/status";

/// How long a read status is trusted (the original caches it for 2 s as well).
pub const STATUS_CACHE_TTL: Duration = Duration::from_secs(2);

/// `ai.backend.manager.api.ManagerStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerStatus {
    Running,
    Frozen,
    /// Also what a missing key means.
    Terminated,
    Preparing,
}

impl ManagerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ManagerStatus::Running => "running",
            ManagerStatus::Frozen => "frozen",
            ManagerStatus::Terminated => "terminated",
            ManagerStatus::Preparing => "preparing",
        }
    }

    pub fn parse(text: &str) -> Option<ManagerStatus> {
        match text.trim() {
            "running" => Some(ManagerStatus::Running),
            "frozen" => Some(ManagerStatus::Frozen),
            "terminated" => Some(ManagerStatus::Terminated),
            "preparing" => Some(ManagerStatus::Preparing),
            _ => None,
        }
    }
}

/// Which statuses a handler accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusRequirement {
    /// `READ_ALLOWED`: running or frozen.
    ReadAllowed,
    /// `ALL_ALLOWED`: running only (writes).
    AllAllowed,
}

impl StatusRequirement {
    /// 503 `server-frozen` when frozen and not allowed, 503 `service-unavailable` otherwise.
    pub fn check(self, status: ManagerStatus) -> Result<(), Problem> {
        let allowed: &[ManagerStatus] = match self {
            StatusRequirement::ReadAllowed => &[ManagerStatus::Running, ManagerStatus::Frozen],
            StatusRequirement::AllAllowed => &[ManagerStatus::Running],
        };
        if allowed.contains(&status) {
            return Ok(());
        }
        if status == ManagerStatus::Frozen {
            return Err(Problem::new(ProblemKind::ServerFrozen));
        }
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        Err(
            Problem::new(ProblemKind::ServiceUnavailable).with_msg(format!(
                "Server is not in the required status: {} (it is {})",
                names.join(", "),
                status.as_str()
            )),
        )
    }
}

/// The last status read from etcd and when.
#[derive(Default)]
pub struct ManagerStatusCache {
    last: RwLock<Option<(Instant, ManagerStatus)>>,
}

impl ManagerStatusCache {
    /// The current status: cached, or read from etcd. A value etcd holds that is not a
    /// status counts as `terminated`, so the gate closes rather than guessing.
    pub async fn current(&self, etcd: &EtcdStore) -> Result<ManagerStatus, EtcdError> {
        if let Some((read_at, status)) = self.last.read().ok().and_then(|guard| *guard)
            && read_at.elapsed() < STATUS_CACHE_TTL
        {
            return Ok(status);
        }
        let status = etcd
            .get(MANAGER_STATUS_KEY)
            .await?
            .and_then(|text| ManagerStatus::parse(&text))
            .unwrap_or(ManagerStatus::Terminated);
        if let Ok(mut guard) = self.last.write() {
            *guard = Some((Instant::now(), status));
        }
        Ok(status)
    }

    /// Forgets the cached value (after this process changed the status).
    pub fn invalidate(&self) {
        if let Ok(mut guard) = self.last.write() {
            *guard = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_blocks_writes_only() {
        assert!(
            StatusRequirement::ReadAllowed
                .check(ManagerStatus::Frozen)
                .is_ok()
        );
        let problem = StatusRequirement::AllAllowed
            .check(ManagerStatus::Frozen)
            .unwrap_err();
        assert_eq!(problem.status_code(), 503);
        assert_eq!(
            problem.body()["type"],
            "https://api.backend.ai/probs/server-frozen"
        );
    }

    #[test]
    fn anything_but_running_or_frozen_is_unavailable() {
        for requirement in [
            StatusRequirement::ReadAllowed,
            StatusRequirement::AllAllowed,
        ] {
            assert!(requirement.check(ManagerStatus::Running).is_ok());
            let problem = requirement.check(ManagerStatus::Terminated).unwrap_err();
            assert_eq!(
                problem.body()["type"],
                "https://api.backend.ai/probs/service-unavailable"
            );
        }
        assert_eq!(
            ManagerStatus::parse("running"),
            Some(ManagerStatus::Running)
        );
        assert_eq!(ManagerStatus::parse("on fire"), None);
    }
}
