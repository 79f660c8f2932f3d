//! [`SessionInteraction`]: the calls on a running session, shared by the REST routes and the
//! execute stream of one worker. It owns no mutable state: each call reads where the session's
//! main kernel runs (one pooled connection, released before the agent is called) and makes
//! the RPC over the worker's shared agent connections.

use std::sync::Arc;

use bai_schema::queries::interaction::{
    GraphNode, KernelEndpoints, KernelTarget, dependency_graph, kernel_endpoints,
    main_kernel_target, rename_running_session, store_restarted_kernel,
};
use bai_schema::queries::session::{Staleness, count_session_query, match_sessions};
use deadpool_postgres::Pool;
use serde_json::{Value as Json, json};
use slog::Logger;
use uuid::Uuid;

use super::error::{AgentOperation, InteractionError};
use super::execute::{ExecuteRequest, execute_result};
use super::target::ready_target;
use crate::agent_rpc::interactive::ExecuteCall;
use crate::agent_rpc::{AgentRpc, AgentTarget, ImageRef};
use crate::wire::Value;
use crate::wire::msgpack_json::msgpack_to_json;

/// How long REST execute lets the agent gather output before it replies (the original's 2 s).
pub const REST_FLUSH_TIMEOUT: f64 = 2.0;
/// At most this many sessions are returned by the dependency graph (a graph is a handful of
/// sessions; the bound keeps a cycle-free but huge pipeline from being read whole).
pub const MAX_GRAPH_SESSIONS: i64 = 1_000;

/// A session's main kernel that can take calls now, and the agent it is on.
#[derive(Debug, Clone)]
pub struct ReadyKernel {
    pub kernel: KernelTarget,
    pub agent: AgentTarget,
}

/// One round of a run, as the client asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteRound {
    pub api_major: u32,
    pub run_id: Option<String>,
    pub mode: String,
    pub code: String,
    pub opts: Json,
    /// How long the agent gathers output before it replies.
    pub flush_timeout: f64,
}

/// The calls on running sessions.
pub struct SessionInteraction {
    pool: Pool,
    rpc: Arc<AgentRpc>,
    /// Redis `live`, where each call marks its session active for the idle checker.
    live: Option<redis::aio::ConnectionManager>,
    log: Logger,
}

impl SessionInteraction {
    pub fn new(
        pool: Pool,
        rpc: Arc<AgentRpc>,
        live: Option<redis::aio::ConnectionManager>,
        log: Logger,
    ) -> SessionInteraction {
        SessionInteraction {
            pool,
            rpc,
            live,
            log,
        }
    }

    /// The main kernel of the one session of `owner` that `reference` names.
    pub async fn resolve(
        &self,
        reference: &str,
        owner: &str,
        staleness: Staleness,
    ) -> Result<KernelTarget, InteractionError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(bai_schema::queries::QueryError::from)?;
        let mut matches = match_sessions(&client, reference, owner, staleness).await?;
        let found = match matches.len() {
            0 => {
                return Err(InteractionError::NotFound {
                    reference: reference.to_owned(),
                });
            }
            1 => matches.remove(0),
            _ => {
                return Err(InteractionError::TooManyMatches {
                    reference: reference.to_owned(),
                    matches: matches
                        .into_iter()
                        .map(|m| (m.id, m.name, m.status))
                        .collect(),
                });
            }
        };
        main_kernel_target(&client, found.id)
            .await?
            .ok_or_else(|| InteractionError::NotFound {
                reference: reference.to_owned(),
            })
    }

    /// [`Self::resolve`] for a call that needs the kernel running; counts the query as the
    /// original's `increment_session_usage` does.
    pub async fn ready(
        &self,
        reference: &str,
        owner: &str,
        action: &'static str,
    ) -> Result<ReadyKernel, InteractionError> {
        let kernel = self.resolve(reference, owner, Staleness::LiveOnly).await?;
        let agent = ready_target(&kernel, action)?;
        let client = self
            .pool
            .get()
            .await
            .map_err(bai_schema::queries::QueryError::from)?;
        count_session_query(&client, kernel.session_id).await?;
        drop(client);
        // Using the session is activity: its network idle timeout starts over (the original
        // learns it from the agent's execution events).
        if let Some(live) = &self.live
            && let Err(error) = crate::idle::report::touch(live, kernel.session_id).await
        {
            slog::warn!(self.log, "cannot mark the session active"; "error" => %error);
        }
        Ok(ReadyKernel { kernel, agent })
    }

    /// One execute round on a ready kernel (the stream calls this in a loop).
    pub async fn execute_round(
        &self,
        ready: &ReadyKernel,
        round: ExecuteRound,
    ) -> Result<Value, InteractionError> {
        let call = ExecuteCall {
            session_id: ready.kernel.session_id,
            kernel_id: ready.kernel.kernel_id,
            api_major: i64::from(round.api_major),
            run_id: round.run_id,
            mode: round.mode,
            code: round.code,
            opts: round.opts,
            flush_timeout: round.flush_timeout,
        };
        self.rpc
            .execute(&ready.agent, &call)
            .await
            .map_err(InteractionError::agent(AgentOperation::Execute))
    }

    /// REST execute: `{"result": ...}` for one round (or completions for mode `complete`).
    pub async fn execute(
        &self,
        reference: &str,
        owner: &str,
        api_major: u32,
        request: ExecuteRequest,
    ) -> Result<Json, InteractionError> {
        let ready = self.ready(reference, owner, "execute code").await?;
        if request.mode == "complete" {
            let result = self
                .rpc
                .get_completions(
                    &ready.agent,
                    ready.kernel.kernel_id,
                    &request.code,
                    &request.opts,
                )
                .await
                .map_err(InteractionError::agent(AgentOperation::Other))?;
            return Ok(json!({ "result": result.to_json() }));
        }
        let round = ExecuteRound {
            api_major,
            run_id: request.run_id.clone(),
            mode: request.mode,
            code: request.code,
            opts: request.opts,
            flush_timeout: REST_FLUSH_TIMEOUT,
        };
        let raw = self.execute_round(&ready, round).await?;
        Ok(json!({ "result": execute_result(&raw, request.run_id.as_deref(), api_major) }))
    }

    /// `POST /session/{name}/complete`.
    pub async fn complete(
        &self,
        reference: &str,
        owner: &str,
        code: &str,
        opts: &Json,
    ) -> Result<Json, InteractionError> {
        let ready = self.ready(reference, owner, "complete code").await?;
        let result = self
            .rpc
            .get_completions(&ready.agent, ready.kernel.kernel_id, code, opts)
            .await
            .map_err(InteractionError::agent(AgentOperation::Other))?;
        Ok(json!({ "result": result.to_json() }))
    }

    /// `POST /session/{name}/interrupt`.
    pub async fn interrupt(&self, reference: &str, owner: &str) -> Result<(), InteractionError> {
        let ready = self.ready(reference, owner, "be interrupted").await?;
        self.interrupt_ready(&ready).await
    }

    /// Interrupts a kernel already resolved (a stream whose client went away).
    pub async fn interrupt_ready(&self, ready: &ReadyKernel) -> Result<(), InteractionError> {
        self.rpc
            .interrupt_kernel(&ready.agent, ready.kernel.kernel_id)
            .await
            .map(|_| ())
            .map_err(InteractionError::agent(AgentOperation::Other))
    }

    /// `PATCH /session/{name}`: the agent recreates the main kernel's container, whose new
    /// ports the kernel row then carries.
    pub async fn restart(&self, reference: &str, owner: &str) -> Result<(), InteractionError> {
        let ready = self.ready(reference, owner, "be restarted").await?;
        let kernel = &ready.kernel;
        let image = ImageRef::from_canonical(
            kernel.image.as_deref().unwrap_or_default(),
            kernel.registry.as_deref().unwrap_or_default(),
            kernel.image_project.as_deref(),
            &kernel.architecture,
            kernel.image_is_local,
        );
        let creation_id = super::execute::fresh_run_id();
        slog::info!(self.log, "restarting a session's main kernel";
            "session" => %kernel.session_id, "kernel" => %kernel.kernel_id, "agent" => &ready.agent.id);
        let reply = self
            .rpc
            .restart_kernel(
                &ready.agent,
                &creation_id,
                kernel.session_id,
                kernel.kernel_id,
                &image,
            )
            .await
            .map_err(InteractionError::agent(AgentOperation::Restart))?;
        let restarted = super::restarted::restarted_kernel(&msgpack_to_json(&reply));
        let client = self
            .pool
            .get()
            .await
            .map_err(bai_schema::queries::QueryError::from)?;
        store_restarted_kernel(&client, kernel.kernel_id, &restarted).await?;
        Ok(())
    }

    /// `POST /session/{name}/upload`: every file to the main kernel, concurrently.
    pub async fn upload(
        &self,
        ready: &ReadyKernel,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<(), InteractionError> {
        let uploads = files.into_iter().map(|(name, data)| async move {
            self.rpc
                .upload_file(&ready.agent, ready.kernel.kernel_id, &name, data)
                .await
        });
        for result in futures::future::join_all(uploads).await {
            result.map_err(InteractionError::agent(AgentOperation::Other))?;
        }
        Ok(())
    }

    /// `GET /session/{name}/download`: one tar archive per path, in order.
    pub async fn download(
        &self,
        reference: &str,
        owner: &str,
        paths: &[String],
    ) -> Result<Vec<Vec<u8>>, InteractionError> {
        let ready = self.ready(reference, owner, "send files").await?;
        let downloads = paths.iter().map(|path| {
            self.rpc
                .download_file(&ready.agent, ready.kernel.kernel_id, path)
        });
        futures::future::join_all(downloads)
            .await
            .into_iter()
            .map(|result| result.map_err(InteractionError::download))
            .collect()
    }

    /// `GET /session/{name}/download_single`: the bytes of one file.
    pub async fn download_single(
        &self,
        reference: &str,
        owner: &str,
        path: &str,
    ) -> Result<Vec<u8>, InteractionError> {
        let ready = self.ready(reference, owner, "send files").await?;
        self.rpc
            .download_single(&ready.agent, ready.kernel.kernel_id, path)
            .await
            .map_err(InteractionError::download)
    }

    /// `GET /session/{name}/files`: the agent's listing map, as is.
    pub async fn list_files(
        &self,
        reference: &str,
        owner: &str,
        path: &str,
    ) -> Result<Json, InteractionError> {
        let ready = self.ready(reference, owner, "list files").await?;
        let listing = self
            .rpc
            .list_files(&ready.agent, ready.kernel.kernel_id, path)
            .await
            .map_err(InteractionError::agent(AgentOperation::Other))?;
        Ok(listing.to_json())
    }

    /// `POST /session/{name}/commit`: starts committing the main container to an image file.
    pub async fn commit(
        &self,
        reference: &str,
        owner: &str,
        filename: Option<&str>,
    ) -> Result<Json, InteractionError> {
        let ready = self.ready(reference, owner, "be committed").await?;
        let subdir = ready.kernel.owner_email.clone().unwrap_or_default();
        let reply = self
            .rpc
            .commit(&ready.agent, ready.kernel.kernel_id, &subdir, filename)
            .await
            .map_err(InteractionError::agent(AgentOperation::Other))?;
        Ok(reply.to_json())
    }

    /// `GET /session/{name}/commit`: whether a commit is under way.
    pub async fn commit_status(
        &self,
        reference: &str,
        owner: &str,
    ) -> Result<Json, InteractionError> {
        let ready = self.ready(reference, owner, "report its commit").await?;
        let subdir = ready.kernel.owner_email.clone().unwrap_or_default();
        let reply = self
            .rpc
            .get_commit_status(&ready.agent, ready.kernel.kernel_id, &subdir)
            .await
            .map_err(InteractionError::agent(AgentOperation::Other))?;
        Ok(reply.to_json())
    }

    /// Where the streams of a ready kernel connect (its host, REPL ports and apps).
    pub async fn endpoints(
        &self,
        ready: &ReadyKernel,
    ) -> Result<KernelEndpoints, InteractionError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(bai_schema::queries::QueryError::from)?;
        kernel_endpoints(&client, ready.kernel.kernel_id)
            .await?
            .ok_or_else(|| InteractionError::NotFound {
                reference: ready.kernel.session_id.to_string(),
            })
    }

    /// The apps of a session's main kernel (any state: the list is what the image offers).
    pub async fn apps(&self, reference: &str, owner: &str) -> Result<Json, InteractionError> {
        let kernel = self
            .resolve(reference, owner, Staleness::AllowStale)
            .await?;
        let client = self
            .pool
            .get()
            .await
            .map_err(bai_schema::queries::QueryError::from)?;
        let endpoints = kernel_endpoints(&client, kernel.kernel_id).await?;
        Ok(super::apps::app_list(
            endpoints.and_then(|e| e.service_ports).as_ref(),
        ))
    }

    /// `start_service` on the kernel's agent; a `failed` reply is an error carrying the
    /// kernel runner's reason.
    pub async fn start_service(
        &self,
        ready: &ReadyKernel,
        service: &str,
        opts: &Json,
    ) -> Result<Json, InteractionError> {
        let reply = self
            .rpc
            .start_service(&ready.agent, ready.kernel.kernel_id, service, opts)
            .await
            .map_err(InteractionError::agent(AgentOperation::Other))?
            .to_json();
        if reply.get("status").and_then(Json::as_str) == Some("failed") {
            let reason = reply.get("error").map(Json::to_string).unwrap_or_default();
            return Err(InteractionError::ServiceFailed(reason));
        }
        Ok(reply)
    }

    /// `POST /session/{name}/rename`: only a RUNNING session takes a new name.
    pub async fn rename(
        &self,
        reference: &str,
        owner: &str,
        new_name: &str,
    ) -> Result<(), InteractionError> {
        let kernel = self
            .resolve(reference, owner, Staleness::AllowStale)
            .await?;
        let client = self
            .pool
            .get()
            .await
            .map_err(bai_schema::queries::QueryError::from)?;
        let renamed = rename_running_session(&client, kernel.session_id, new_name)
            .await
            .map_err(|error| {
                if error.is_unique_violation() {
                    InteractionError::BadParameter(format!(
                        "a live session named {new_name} already exists"
                    ))
                } else {
                    InteractionError::Database(error)
                }
            })?;
        if !renamed {
            return Err(InteractionError::InvalidState {
                status: kernel.session_status,
                action: "be renamed",
            });
        }
        Ok(())
    }

    /// `GET /session/{name}/dependency-graph`: the sessions linked to this one by
    /// dependencies, as a tree rooted at it.
    pub async fn dependency_graph(
        &self,
        reference: &str,
        owner: &str,
    ) -> Result<Json, InteractionError> {
        let kernel = self
            .resolve(reference, owner, Staleness::AllowStale)
            .await?;
        let client = self
            .pool
            .get()
            .await
            .map_err(bai_schema::queries::QueryError::from)?;
        let nodes = dependency_graph(&client, kernel.session_id, MAX_GRAPH_SESSIONS).await?;
        Ok(graph_tree(&nodes, kernel.session_id))
    }
}

/// The 23.09 reply of `dependency-graph`: the root session with `depends_on` holding the trees
/// of the sessions it waits for (cycles, which the database forbids, are cut at a repeat).
pub fn graph_tree(nodes: &[GraphNode], root: Uuid) -> Json {
    fn subtree(nodes: &[GraphNode], id: Uuid, seen: &mut Vec<Uuid>) -> Json {
        let Some(node) = nodes.iter().find(|n| n.session_id == id) else {
            return Json::Null;
        };
        if seen.contains(&id) {
            return json!({"session_id": id.to_string(), "session_name": node.name});
        }
        seen.push(id);
        let children: Vec<Json> = node
            .depends_on
            .iter()
            .map(|child| subtree(nodes, *child, seen))
            .filter(|child| !child.is_null())
            .collect();
        seen.pop();
        json!({
            "session_id": id.to_string(),
            "session_name": node.name,
            "status": node.status.as_str(),
            "status_info": node.status_info,
            "depends_on": children,
        })
    }
    subtree(nodes, root, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bai_schema::enums::SessionStatus;

    #[test]
    fn the_graph_is_a_tree_rooted_at_the_session() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let nodes = vec![
            GraphNode {
                session_id: a,
                name: "a".into(),
                status: SessionStatus::Pending,
                status_info: None,
                depends_on: vec![b],
            },
            GraphNode {
                session_id: b,
                name: "b".into(),
                status: SessionStatus::Running,
                status_info: None,
                depends_on: vec![],
            },
        ];
        let tree = graph_tree(&nodes, a);
        assert_eq!(tree["session_name"], "a");
        assert_eq!(tree["depends_on"][0]["session_name"], "b");
        assert_eq!(tree["depends_on"][0]["status"], "RUNNING");
    }
}
