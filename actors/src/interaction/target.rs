//! Whether a session can take a call on its kernel, and which agent to call.

use bai_schema::enums::{KernelStatus, SessionStatus};
use bai_schema::queries::interaction::KernelTarget;

use super::error::InteractionError;
use crate::agent_rpc::AgentTarget;

/// The agent to call for `kernel`, if the session can take `action` now: it must be RUNNING
/// (RESTARTING kernels refuse too) and placed on an agent with an RPC address.
pub fn ready_target(
    kernel: &KernelTarget,
    action: &'static str,
) -> Result<AgentTarget, InteractionError> {
    let refused = || InteractionError::InvalidState {
        status: kernel.session_status,
        action,
    };
    if kernel.session_status != SessionStatus::Running
        || kernel.kernel_status != KernelStatus::Running
    {
        return Err(refused());
    }
    match (&kernel.agent_id, &kernel.agent_addr) {
        (Some(id), Some(addr)) if !addr.is_empty() => Ok(AgentTarget {
            id: id.clone(),
            addr: addr.clone(),
            version: kernel.agent_version.clone(),
        }),
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn kernel(session: SessionStatus, kernel: KernelStatus, agent: Option<&str>) -> KernelTarget {
        KernelTarget {
            session_id: Uuid::from_u128(1),
            session_status: session,
            creation_id: None,
            kernel_id: Uuid::from_u128(2),
            kernel_status: kernel,
            agent_id: agent.map(str::to_owned),
            agent_addr: agent.map(|_| "tcp://127.0.0.1:6001".to_owned()),
            agent_version: "26.9.6".into(),
            image: None,
            registry: None,
            architecture: "x86_64".into(),
            image_project: None,
            image_is_local: false,
            owner_email: None,
        }
    }

    #[test]
    fn only_running_placed_sessions_are_called() {
        let ok = kernel(SessionStatus::Running, KernelStatus::Running, Some("i-a"));
        assert_eq!(ready_target(&ok, "execute").unwrap().id, "i-a");
        for refused in [
            kernel(SessionStatus::Pending, KernelStatus::Pending, None),
            kernel(
                SessionStatus::Preparing,
                KernelStatus::Preparing,
                Some("i-a"),
            ),
            kernel(
                SessionStatus::Running,
                KernelStatus::Restarting,
                Some("i-a"),
            ),
            kernel(
                SessionStatus::Terminated,
                KernelStatus::Terminated,
                Some("i-a"),
            ),
            kernel(SessionStatus::Running, KernelStatus::Running, None),
        ] {
            assert!(matches!(
                ready_target(&refused, "execute"),
                Err(InteractionError::InvalidState { .. })
            ));
        }
    }
}
