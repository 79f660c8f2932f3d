//! Why a call on a session failed; the façade maps each variant to the original's problem.

use bai_schema::enums::SessionStatus;
use bai_schema::queries::QueryError;

use crate::agent_rpc::RpcError;

/// The operation an agent failed, which picks the original's error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentOperation {
    Execute,
    Restart,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum InteractionError {
    /// No session of the owner matches the reference.
    #[error("Session (id={reference}) does not exist.")]
    NotFound { reference: String },
    /// Several sessions match a prefix.
    #[error("{reference} matches {} sessions", matches.len())]
    TooManyMatches {
        reference: String,
        /// (id, name, status) of each match.
        matches: Vec<(uuid::Uuid, String, SessionStatus)>,
    },
    /// The session is not in a state that can take the call (e.g. still PENDING).
    #[error("the session is {status} and cannot {action} until it is RUNNING")]
    InvalidState {
        status: SessionStatus,
        action: &'static str,
    },
    /// A request parameter is wrong.
    #[error("{0}")]
    BadParameter(String),
    /// A file for upload is over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// A file the caller asked for is not in the container.
    #[error("The file is not found.")]
    FileNotFound,
    /// The session's kernel serves no app of that name.
    #[error("No such app service: {0}")]
    AppNotFound(String),
    /// The kernel runner could not start the app.
    #[error("Failed to launch the app service: {0}")]
    ServiceFailed(String),
    /// The agent failed or did not answer.
    #[error("{source}")]
    Agent {
        operation: AgentOperation,
        #[source]
        source: RpcError,
    },
    #[error("{0}")]
    Database(#[from] QueryError),
}

impl InteractionError {
    /// Wraps an RPC error of `operation`.
    pub fn agent(operation: AgentOperation) -> impl FnOnce(RpcError) -> InteractionError {
        move |source| InteractionError::Agent { operation, source }
    }

    /// Wraps an RPC error of a download: the agent's FileNotFoundError/ValueError mean the
    /// path is not there (the original answers 400 "The file is not found.").
    pub fn download(source: RpcError) -> InteractionError {
        match &source {
            RpcError::Failure { name, .. }
                if matches!(name.as_str(), "FileNotFoundError" | "ValueError") =>
            {
                InteractionError::FileNotFound
            }
            _ => InteractionError::Agent {
                operation: AgentOperation::Other,
                source,
            },
        }
    }
}
