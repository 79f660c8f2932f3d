//! The agent RPC methods the manager calls, with the versions that expose them.
//!
//! Calling a method the agent does not have kills the agent's whole RPC server (callosum looks
//! the method up outside its per-request error handling), so every call goes through
//! [`AgentMethod`] and is refused locally unless the agent's reported version exposes it.

/// Methods the manager calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentMethod {
    Ping,
    GatherHwinfo,
    GetLocalConfig,
    PingKernel,
    SyncKernelRegistry,
    CreateKernels,
    DestroyKernel,
    CreateLocalNetwork,
    DestroyLocalNetwork,
    CheckRunning,
    CheckCreating,
    GetLogs,
    Execute,
    InterruptKernel,
    GetCompletions,
    RestartKernel,
    UploadFile,
    DownloadFile,
    DownloadSingle,
    ListFiles,
    Commit,
    GetCommitStatus,
    StartService,
    UpdateScalingGroup,
}

impl AgentMethod {
    pub fn name(&self) -> &'static str {
        match self {
            AgentMethod::Ping => "ping",
            AgentMethod::GatherHwinfo => "gather_hwinfo",
            AgentMethod::GetLocalConfig => "get_local_config",
            AgentMethod::PingKernel => "ping_kernel",
            AgentMethod::SyncKernelRegistry => "sync_kernel_registry",
            AgentMethod::CreateKernels => "create_kernels",
            AgentMethod::DestroyKernel => "destroy_kernel",
            AgentMethod::CreateLocalNetwork => "create_local_network",
            AgentMethod::DestroyLocalNetwork => "destroy_local_network",
            AgentMethod::CheckRunning => "check_running",
            AgentMethod::CheckCreating => "check_creating",
            AgentMethod::GetLogs => "get_logs",
            AgentMethod::Execute => "execute",
            AgentMethod::InterruptKernel => "interrupt_kernel",
            AgentMethod::GetCompletions => "get_completions",
            AgentMethod::RestartKernel => "restart_kernel",
            AgentMethod::UploadFile => "upload_file",
            AgentMethod::DownloadFile => "download_file",
            AgentMethod::DownloadSingle => "download_single",
            AgentMethod::ListFiles => "list_files",
            AgentMethod::Commit => "commit",
            AgentMethod::GetCommitStatus => "get_commit_status",
            AgentMethod::StartService => "start_service",
            AgentMethod::UpdateScalingGroup => "update_scaling_group",
        }
    }

    /// Whether an agent reporting `version` (heartbeat `version`, e.g. `23.09.10`, `26.9.6`)
    /// exposes this method. Unknown or unparsable versions get only the methods every agent
    /// since 22.09 has.
    pub fn exposed_by(&self, version: &str) -> bool {
        let (major, minor) = parse_version(version).unwrap_or((0, 0));
        match self {
            AgentMethod::Ping
            | AgentMethod::GatherHwinfo
            | AgentMethod::GetLocalConfig
            | AgentMethod::PingKernel
            | AgentMethod::SyncKernelRegistry
            | AgentMethod::CreateKernels
            | AgentMethod::DestroyKernel
            | AgentMethod::CreateLocalNetwork
            | AgentMethod::DestroyLocalNetwork
            | AgentMethod::GetLogs
            | AgentMethod::Execute
            | AgentMethod::InterruptKernel
            | AgentMethod::GetCompletions
            | AgentMethod::RestartKernel
            | AgentMethod::UploadFile
            | AgentMethod::DownloadFile
            | AgentMethod::ListFiles
            | AgentMethod::Commit
            | AgentMethod::GetCommitStatus
            | AgentMethod::StartService => true,
            // download_single arrived with the 23.03 agents (absent from 22.09's RPC server).
            AgentMethod::DownloadSingle => (major, minor) >= (23, 3),
            // The health probes arrived with the 25.x agents (present in 26.9.6, absent in 23.09).
            AgentMethod::CheckRunning | AgentMethod::CheckCreating => (major, minor) >= (25, 0),
            // Present up to the 23.09 agents, gone from 26.9.6: only offered to an agent that
            // names a version before 24.
            AgentMethod::UpdateScalingGroup => {
                parse_version(version).is_some_and(|version| version < (24, 0))
            }
        }
    }
}

/// Whether an agent of `version` speaks the 24.x+ RPC signatures: `session_id` before the
/// kernel id in `execute`, the image ref in `restart_kernel`, and the `agent_id` keyword.
pub fn uses_ownership_signatures(version: &str) -> bool {
    parse_version(version).is_some_and(|(major, _)| major >= 24)
}

fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()
        .and_then(|m| {
            m.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        })
        .unwrap_or(0);
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_only_called_on_agents_that_have_them() {
        assert!(AgentMethod::CreateKernels.exposed_by("23.09.10"));
        assert!(!AgentMethod::CheckRunning.exposed_by("23.09.10"));
        assert!(AgentMethod::CheckRunning.exposed_by("26.9.6"));
        assert!(!AgentMethod::CheckRunning.exposed_by("garbage"));
        assert!(AgentMethod::Ping.exposed_by(""));
    }

    #[test]
    fn scaling_group_moves_go_only_to_agents_that_still_have_the_call() {
        assert!(AgentMethod::UpdateScalingGroup.exposed_by("22.09.0"));
        assert!(AgentMethod::UpdateScalingGroup.exposed_by("23.09.10"));
        assert!(!AgentMethod::UpdateScalingGroup.exposed_by("26.9.6"));
        assert!(!AgentMethod::UpdateScalingGroup.exposed_by(""));
    }
}
