//! The calls on a running kernel: execute, interrupt, completions, restart, files, logs and
//! commit, each with the argument list of the agent generation it goes to.
//!
//! 22.09/23.09 agents take the kernel id first and no keyword arguments; 24.x+ agents (26.9.6
//! checked against its installed `agent/server.py`) take the session id before the kernel id in
//! `execute`, a pickled ImageRef in `restart_kernel`, and an optional `agent_id` keyword.
//! Sending a keyword a 23.09 agent does not know makes its handler raise, so the keyword is only
//! sent to agents that have it.

use std::time::Duration;

use uuid::Uuid;

use super::client::{AgentRpc, AgentTarget};
use super::connection::RpcError;
use super::image_ref::ImageRef;
use super::methods::{AgentMethod, uses_ownership_signatures};
use crate::wire::Value;
use crate::wire::msgpack::ext_code;

/// The original's `invoke_timeout` for execute (`RPCContext(..., invoke_timeout=30)`).
pub const EXECUTE_TIMEOUT: Duration = Duration::from_secs(30);
/// File transfers and listings carry at most a few MiB (uploads are capped at 1 MiB per file by
/// the API); the original waits its default RPC timeout for them.
pub const FILE_TIMEOUT: Duration = Duration::from_secs(30);
/// Restart destroys and recreates the container; the 26.x agent itself waits up to 60 s for the
/// destroy, so the manager waits a little longer than that plus a start.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(120);
/// Starting an app waits for the kernel runner to spawn it and see its port open (the kernel
/// runner itself gives up after about 60 s for slow apps such as Jupyter).
pub const START_SERVICE_TIMEOUT: Duration = Duration::from_secs(90);

/// One `execute` request as the agent receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteCall {
    pub session_id: Uuid,
    pub kernel_id: Uuid,
    /// The major API version the agent formats results for (4 is sent as 3, as upstream).
    pub api_major: i64,
    /// `None` lets the agent pick the run id (a first REST call with `runId: null`).
    pub run_id: Option<String>,
    pub mode: String,
    pub code: String,
    pub opts: serde_json::Value,
    /// How long the agent aggregates output before replying (2.0 for REST, 0.2 for streams).
    pub flush_timeout: f64,
}

/// The positional arguments of `execute` for the agent generation of `target`.
pub fn execute_args(target: &AgentTarget, call: &ExecuteCall) -> Vec<Value> {
    let api_major = if call.api_major == 4 {
        3
    } else {
        call.api_major
    };
    let mut args = Vec::with_capacity(8);
    if uses_ownership_signatures(&target.version) {
        args.push(Value::str(call.session_id.to_string()));
    }
    args.extend([
        Value::str(call.kernel_id.to_string()),
        Value::Int(api_major),
        call.run_id.clone().map_or(Value::Nil, Value::Str),
        Value::str(call.mode.clone()),
        Value::str(call.code.clone()),
        Value::from_json(&call.opts),
        Value::F64(call.flush_timeout),
    ]);
    args
}

/// The keyword arguments every call to `target` carries.
fn agent_kwargs(target: &AgentTarget) -> Vec<(String, Value)> {
    if uses_ownership_signatures(&target.version) {
        vec![("agent_id".to_owned(), Value::str(target.id.clone()))]
    } else {
        Vec::new()
    }
}

/// Bytes the agent returned: msgpack bin, or a str from agents that decode files as text.
fn reply_bytes(reply: Value) -> Vec<u8> {
    match reply {
        Value::Bin(bytes) => bytes,
        Value::Str(text) => text.into_bytes(),
        _ => Vec::new(),
    }
}

impl AgentRpc {
    /// `execute`: one round of a run; the reply is the agent's result map (or nil when the
    /// kernel went away).
    pub async fn execute(
        &self,
        target: &AgentTarget,
        call: &ExecuteCall,
    ) -> Result<Value, RpcError> {
        self.call(
            target,
            AgentMethod::Execute,
            execute_args(target, call),
            agent_kwargs(target),
            Some(EXECUTE_TIMEOUT),
        )
        .await
    }

    /// `interrupt_kernel(kernel_id)`.
    pub async fn interrupt_kernel(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
    ) -> Result<Value, RpcError> {
        self.call(
            target,
            AgentMethod::InterruptKernel,
            vec![Value::str(kernel_id.to_string())],
            agent_kwargs(target),
            None,
        )
        .await
    }

    /// `get_completions(kernel_id, text, opts)`.
    pub async fn get_completions(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
        text: &str,
        opts: &serde_json::Value,
    ) -> Result<Value, RpcError> {
        self.call(
            target,
            AgentMethod::GetCompletions,
            vec![
                Value::str(kernel_id.to_string()),
                Value::str(text),
                Value::from_json(opts),
            ],
            agent_kwargs(target),
            None,
        )
        .await
    }

    /// `restart_kernel`: 24.x+ `(session_id, kernel_id, ImageRef, updated_config)`, 22.09/23.09
    /// `(creation_id, session_id, kernel_id, updated_config)`. Returns the new kernel info.
    pub async fn restart_kernel(
        &self,
        target: &AgentTarget,
        creation_id: &str,
        session_id: Uuid,
        kernel_id: Uuid,
        image: &ImageRef,
    ) -> Result<Value, RpcError> {
        let updated_config = Value::Map(Vec::new());
        let args = if uses_ownership_signatures(&target.version) {
            vec![
                Value::str(session_id.to_string()),
                Value::str(kernel_id.to_string()),
                Value::Ext(ext_code::IMAGE_REF, image.pickle()),
                updated_config,
            ]
        } else {
            vec![
                Value::str(creation_id),
                Value::str(session_id.to_string()),
                Value::str(kernel_id.to_string()),
                updated_config,
            ]
        };
        self.call(
            target,
            AgentMethod::RestartKernel,
            args,
            agent_kwargs(target),
            Some(RESTART_TIMEOUT),
        )
        .await
    }

    /// `upload_file(kernel_id, filename, data)`.
    pub async fn upload_file(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
        filename: &str,
        data: Vec<u8>,
    ) -> Result<(), RpcError> {
        self.call(
            target,
            AgentMethod::UploadFile,
            vec![
                Value::str(kernel_id.to_string()),
                Value::str(filename),
                Value::Bin(data),
            ],
            agent_kwargs(target),
            Some(FILE_TIMEOUT),
        )
        .await
        .map(|_| ())
    }

    /// `download_file(kernel_id, path)`: a tar archive of the path.
    pub async fn download_file(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
        path: &str,
    ) -> Result<Vec<u8>, RpcError> {
        self.call(
            target,
            AgentMethod::DownloadFile,
            vec![Value::str(kernel_id.to_string()), Value::str(path)],
            agent_kwargs(target),
            Some(FILE_TIMEOUT),
        )
        .await
        .map(reply_bytes)
    }

    /// `download_single(kernel_id, path)`: the bytes of one small file.
    pub async fn download_single(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
        path: &str,
    ) -> Result<Vec<u8>, RpcError> {
        self.call(
            target,
            AgentMethod::DownloadSingle,
            vec![Value::str(kernel_id.to_string()), Value::str(path)],
            agent_kwargs(target),
            Some(FILE_TIMEOUT),
        )
        .await
        .map(reply_bytes)
    }

    /// `list_files(kernel_id, path)`: `{"files": <JSON text>, "errors": str, "abspath": str}`.
    pub async fn list_files(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
        path: &str,
    ) -> Result<Value, RpcError> {
        self.call(
            target,
            AgentMethod::ListFiles,
            vec![Value::str(kernel_id.to_string()), Value::str(path)],
            agent_kwargs(target),
            Some(FILE_TIMEOUT),
        )
        .await
    }

    /// `get_logs(kernel_id)`: the container log as `{"logs": str}`; returns the text.
    pub async fn get_logs(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
    ) -> Result<String, RpcError> {
        let reply = self
            .call(
                target,
                AgentMethod::GetLogs,
                vec![Value::str(kernel_id.to_string())],
                agent_kwargs(target),
                None,
            )
            .await?;
        Ok(match reply.get("logs").and_then(Value::as_str) {
            Some(logs) => logs.to_owned(),
            None => reply.as_str().unwrap_or_default().to_owned(),
        })
    }

    /// `commit(kernel_id, subdir, canonical=, filename=, extra_labels=)`: starts a background
    /// commit; the reply carries its `bgtask_id`.
    pub async fn commit(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
        subdir: &str,
        filename: Option<&str>,
    ) -> Result<Value, RpcError> {
        let mut kwargs = agent_kwargs(target);
        kwargs.push((
            "filename".to_owned(),
            filename.map_or(Value::Nil, Value::str),
        ));
        self.call(
            target,
            AgentMethod::Commit,
            vec![Value::str(kernel_id.to_string()), Value::str(subdir)],
            kwargs,
            None,
        )
        .await
    }

    /// `get_commit_status(kernel_id, subdir)`: `{"kernel": id, "status": "ready"|"ongoing"}`.
    pub async fn get_commit_status(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
        subdir: &str,
    ) -> Result<Value, RpcError> {
        self.call(
            target,
            AgentMethod::GetCommitStatus,
            vec![Value::str(kernel_id.to_string()), Value::str(subdir)],
            agent_kwargs(target),
            None,
        )
        .await
    }
}

impl AgentRpc {
    /// `start_service(kernel_id, service, opts)`: asks the kernel runner to start an app
    /// (Jupyter, a terminal, ...). The reply is `{"status": "started"|"running"|"failed", ...}`;
    /// agents without the app's runner (the dummy backend) answer an empty map.
    pub async fn start_service(
        &self,
        target: &AgentTarget,
        kernel_id: Uuid,
        service: &str,
        opts: &serde_json::Value,
    ) -> Result<Value, RpcError> {
        self.call(
            target,
            AgentMethod::StartService,
            vec![
                Value::str(kernel_id.to_string()),
                Value::str(service),
                Value::from_json(opts),
            ],
            agent_kwargs(target),
            Some(START_SERVICE_TIMEOUT),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(version: &str) -> AgentTarget {
        AgentTarget {
            id: "i-a".into(),
            addr: "tcp://127.0.0.1:1".into(),
            version: version.into(),
        }
    }

    fn call() -> ExecuteCall {
        ExecuteCall {
            session_id: Uuid::from_u128(1),
            kernel_id: Uuid::from_u128(2),
            api_major: 4,
            run_id: Some("r1".into()),
            mode: "query".into(),
            code: "print(1)".into(),
            opts: serde_json::json!({}),
            flush_timeout: 2.0,
        }
    }

    #[test]
    fn execute_arguments_follow_the_agent_generation() {
        let new = execute_args(&target("26.9.6"), &call());
        assert_eq!(new.len(), 8);
        assert_eq!(
            new[0].as_str(),
            Some(Uuid::from_u128(1).to_string().as_str())
        );
        assert_eq!(
            new[2],
            Value::Int(3),
            "API v4 is sent as 3, as upstream does"
        );
        let old = execute_args(&target("23.09.10"), &call());
        assert_eq!(old.len(), 7);
        assert_eq!(
            old[0].as_str(),
            Some(Uuid::from_u128(2).to_string().as_str())
        );
        assert_eq!(old[6], Value::F64(2.0));
        assert!(agent_kwargs(&target("23.09.10")).is_empty());
        assert_eq!(agent_kwargs(&target("26.9.6")).len(), 1);
    }
}
