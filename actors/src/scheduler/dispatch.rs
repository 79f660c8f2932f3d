//! Starting scheduled sessions: SCHEDULED → PREPARING (a compare-and-set, so one worker
//! dispatches each session; the scheduler's own pass claims what it places in its reservation
//! transaction, see `reserve::Admission`), then `create_kernels` once per agent with the
//! kernels placed on it. A pass's sessions are dispatched together: one statement marks all
//! their kernels as sent and one reads all their launches.
//! A session whose agents fail to create its kernels is CANCELLED (`failed-to-start`) and its
//! slots are freed; kernels created on other agents are destroyed.

use bai_schema::queries::kernel_lifecycle;
use bai_schema::queries::scheduler_dispatch::{self as dispatch_sql, LaunchRow};
use bai_schema::queries::{DecodeError, QueryError};
use std::collections::BTreeMap;
use std::sync::Arc;

use bai_schema::enums::KernelStatus;
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::cluster_network::{create_local_network, local_network_name, needs_local_network};
use super::events::start_kernel_in;
use super::lifecycle::{
    KernelUpdate, LifecycleError, recalc_agent_occupancy, transit_kernel, update_session_status,
};
use super::load::slots_of;
use crate::agent_rpc::{AgentRpc, AgentTarget, ClusterSpec, ImageSpec, KernelLaunch, RpcError};
use crate::etcd::EtcdStore;
use crate::wire::Value;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("cannot get a database connection: {0}")]
    Pool(#[source] deadpool_postgres::PoolError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Query(QueryError),
}

fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> DispatchError {
    move |source| DispatchError::Database { context, source }
}

/// A query's failure in the scheduler's words, as before the statements moved to
/// `bai_schema::queries::scheduler_dispatch`: a failed statement names what it was doing.
pub(super) fn query_err(error: QueryError) -> DispatchError {
    match error {
        QueryError::Db { context, source } => DispatchError::Database { context, source },
        QueryError::Decode { column, source } => {
            DispatchError::Decode(DecodeError { column, source })
        }
        other => DispatchError::Query(other),
    }
}

/// `kernels.status_info` of a claimed kernel whose `create_kernels` has not been sent yet.
pub const CLAIMED_STATUS_INFO: &str = "prepared";
/// `kernels.status_info` once `create_kernels` is (about to be) sent for the kernel.
pub const SENT_STATUS_INFO: &str = "creating";

/// What dispatch needs.
pub struct DispatchDeps {
    pub pool: deadpool_postgres::Pool,
    pub rpc: Arc<AgentRpc>,
    pub etcd: Option<EtcdStore>,
    /// Redis database 0 (`stat`), where the agents keep each kernel's statistics; a kernel's
    /// last ones are stored in `kernels.last_stat` when it terminates. `None` keeps nothing.
    pub stat_redis: Option<redis::aio::ConnectionManager>,
}

/// How dispatching one session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchOutcome {
    /// Another worker (or an earlier attempt) already moved it past SCHEDULED.
    NotOurs,
    /// Every agent created its kernels.
    Started,
    /// An agent failed: the session was cancelled and its slots freed.
    FailedToStart(String),
}

struct KernelRow {
    launch: KernelLaunch,
    agent: String,
    version: String,
}

/// Moves `session_id` from SCHEDULED to PREPARING and creates its kernels.
pub async fn dispatch_session(
    deps: &DispatchDeps,
    session_id: Uuid,
) -> Result<DispatchOutcome, DispatchError> {
    let now = Utc::now();
    let mut client = deps.pool.get().await.map_err(DispatchError::Pool)?;
    let history = json!({ "PREPARING": now.to_rfc3339() });
    let tx = client
        .transaction()
        .await
        .map_err(db_err("beginning dispatch"))?;
    let claimed = dispatch_sql::claim_session(&*tx, session_id, &history, CLAIMED_STATUS_INFO)
        .await
        .map_err(query_err)?;
    if claimed == 0 {
        return Ok(DispatchOutcome::NotOurs);
    }
    dispatch_sql::claim_kernels(&*tx, session_id, now, &history, CLAIMED_STATUS_INFO)
        .await
        .map_err(query_err)?;
    tx.commit().await.map_err(db_err("committing dispatch"))?;
    drop(client);
    dispatch_claimed_session(deps, session_id, now).await
}

/// Creates the kernels of `session_id`, which this worker claimed at `claimed_at` (PREPARING,
/// its kernels `prepared`): by [`dispatch_session`], or by the reservation of its own pass.
pub async fn dispatch_claimed_session(
    deps: &DispatchDeps,
    session_id: Uuid,
    claimed_at: DateTime<Utc>,
) -> Result<DispatchOutcome, DispatchError> {
    let mut outcomes = dispatch_claimed_sessions(deps, &[session_id], claimed_at).await?;
    outcomes
        .pop()
        .map_or(Ok(DispatchOutcome::NotOurs), |(_, outcome)| outcome)
}

/// What [`dispatch_claimed_sessions`] did with each session, in the order given.
pub type SessionOutcomes = Vec<(Uuid, Result<DispatchOutcome, DispatchError>)>;

/// Creates the kernels of `session_ids`, all claimed by this worker at `claimed_at` (one pass's
/// reservation): one statement marks them all as sent and one reads all their launches, then
/// each session's `create_kernels` calls run side by side. An error in those two statements
/// fails them all; after that each session ends on its own.
pub async fn dispatch_claimed_sessions(
    deps: &DispatchDeps,
    session_ids: &[Uuid],
    claimed_at: DateTime<Utc>,
) -> Result<SessionOutcomes, DispatchError> {
    let client = deps.pool.get().await.map_err(DispatchError::Pool)?;
    // `prepared` → `creating` right before the calls, as a compare-and-set on this claim's
    // `status_changed`: the reconciler may re-dispatch kernels still `prepared` (never sent) and
    // does so with the same kind of compare-and-set, so exactly one of the two goes on. Both
    // statements go out together; the launches of sessions not marked are dropped.
    let (marked, rows) = futures::try_join!(
        dispatch_sql::mark_kernels_sent(
            &client,
            session_ids,
            claimed_at,
            SENT_STATUS_INFO,
            CLAIMED_STATUS_INFO,
        ),
        dispatch_sql::launch_rows(&client, session_ids),
    )
    .map_err(query_err)?;
    drop(client);
    let mut rows_by_session: BTreeMap<Uuid, Vec<LaunchRow>> = BTreeMap::new();
    for row in rows {
        if marked.binary_search(&row.session_id).is_ok() {
            rows_by_session.entry(row.session_id).or_default().push(row);
        }
    }
    let starts = session_ids.iter().map(|session_id| {
        let rows = rows_by_session.remove(session_id);
        async move {
            let outcome = match rows {
                Some(rows) => start_marked_session(deps, *session_id, rows).await,
                None => Ok(DispatchOutcome::NotOurs),
            };
            (*session_id, outcome)
        }
    });
    Ok(futures::future::join_all(starts).await)
}

/// Sends `create_kernels` for a session whose kernels (`launch_rows`, in cluster order) were
/// just marked as sent, and records what the agents replied.
async fn start_marked_session(
    deps: &DispatchDeps,
    session_id: Uuid,
    launch_rows: Vec<LaunchRow>,
) -> Result<DispatchOutcome, DispatchError> {
    let kernels = launches(launch_rows, session_id, deps.etcd.as_ref()).await?;

    let mut per_agent: BTreeMap<String, (AgentTarget, Vec<KernelLaunch>)> = BTreeMap::new();
    let mut replicas: BTreeMap<String, usize> = BTreeMap::new();
    for kernel in &kernels {
        *replicas
            .entry(kernel.launch.cluster_role.clone())
            .or_default() += 1;
    }
    let cluster_size = kernels.len();
    for kernel in kernels {
        per_agent
            .entry(kernel.agent.clone())
            .or_insert_with(|| {
                (
                    AgentTarget {
                        id: kernel.agent.clone(),
                        addr: kernel.launch.agent_addr.clone(),
                        version: kernel.version.clone(),
                    },
                    Vec::new(),
                )
            })
            .1
            .push(kernel.launch);
    }
    let cluster_mode = per_agent
        .values()
        .next()
        .and_then(|(_, launches)| launches.first())
        .map(|launch| launch.cluster_mode.clone())
        .unwrap_or_default();
    if needs_local_network(&cluster_mode, cluster_size, per_agent.len())
        && let Some((target, _)) = per_agent.values().next()
        && let Err(error) =
            create_local_network(&deps.rpc, target, &local_network_name(session_id)).await
    {
        let reason = describe(target, &error);
        cancel_failed_start(deps, session_id, &reason).await?;
        return Ok(DispatchOutcome::FailedToStart(reason));
    }
    let calls = per_agent.values().map(|(target, launches)| {
        let cluster = ClusterSpec {
            mode: launches
                .first()
                .map(|l| l.cluster_mode.clone())
                .unwrap_or_else(|| "single-node".into()),
            size: cluster_size,
            replicas: replicas.clone(),
            network_name: launches
                .first()
                .map(|l| l.network_id.clone())
                .unwrap_or_default(),
        };
        let rpc = deps.rpc.clone();
        async move {
            let result = rpc
                .create_kernels(target, session_id, launches, &cluster)
                .await;
            (
                target.clone(),
                launches.iter().map(|l| l.kernel_id).collect::<Vec<_>>(),
                result,
            )
        }
    });
    let results = futures::future::join_all(calls).await;

    let mut failure: Option<String> = None;
    let mut created: Vec<(AgentTarget, Uuid)> = Vec::new();
    for (target, kernel_ids, result) in results {
        match result {
            Ok(replies) => {
                for (kernel_id, reply) in kernel_ids.iter().zip(replies.iter()) {
                    created.push((target.clone(), *kernel_id));
                    mark_running(deps, *kernel_id, &reply.to_json()).await?;
                }
            }
            Err(error) => {
                failure.get_or_insert_with(|| describe(&target, &error));
            }
        }
    }
    let Some(reason) = failure else {
        return Ok(DispatchOutcome::Started);
    };
    cancel_failed_start(deps, session_id, &reason).await?;
    for (target, kernel_id) in created {
        let _ = deps
            .rpc
            .destroy_kernel(&target, kernel_id, session_id, "failed-to-start", true)
            .await;
    }
    Ok(DispatchOutcome::FailedToStart(reason))
}

fn describe(target: &AgentTarget, error: &RpcError) -> String {
    format!("agent {} could not create the kernels: {error}", target.id)
}

/// PREPARING/PULLING → RUNNING with the container's facts (from the RPC reply or the
/// `kernel_started` event, whichever comes first; the second changes nothing). The kernel and
/// its session move in one transaction: the second caller finds the kernel RUNNING and leaves
/// the session alone, so a first caller that died in between would leave it PREPARING forever.
pub async fn mark_running(
    deps: &DispatchDeps,
    kernel_id: Uuid,
    creation_info: &serde_json::Value,
) -> Result<(), DispatchError> {
    let mut client = deps.pool.get().await.map_err(DispatchError::Pool)?;
    let tx = client
        .transaction()
        .await
        .map_err(db_err("beginning a kernel start"))?;
    start_kernel_in(&tx, kernel_id, creation_info).await?;
    tx.commit()
        .await
        .map_err(db_err("committing a kernel start"))?;
    Ok(())
}

async fn cancel_failed_start(
    deps: &DispatchDeps,
    session_id: Uuid,
    reason: &str,
) -> Result<(), DispatchError> {
    let now = Utc::now();
    let mut client = deps.pool.get().await.map_err(DispatchError::Pool)?;
    let tx = client
        .transaction()
        .await
        .map_err(db_err("beginning a cancellation"))?;
    let data = json!({"error": {"src": "agent", "name": "FailedToStart", "repr": reason}});
    let agents = dispatch_sql::session_agents(&*tx, session_id)
        .await
        .map_err(query_err)?;
    for agent in agents.iter().flatten() {
        kernel_lifecycle::lock_agent(&tx, agent)
            .await
            .map_err(query_err)?;
    }
    let update = KernelUpdate {
        status_data: Some(data.clone()),
        ..KernelUpdate::default()
    };
    let kernel_ids = dispatch_sql::session_kernel_ids(&*tx, session_id)
        .await
        .map_err(query_err)?;
    for kernel_id in kernel_ids {
        transit_kernel(
            &tx,
            kernel_id,
            KernelStatus::Cancelled,
            "failed-to-start",
            now,
            &update,
        )
        .await?;
    }
    for agent in agents.iter().flatten() {
        recalc_agent_occupancy(&tx, agent).await?;
    }
    update_session_status(&tx, session_id, "failed-to-start", now).await?;
    dispatch_sql::set_session_status_data(&*tx, session_id, &data)
        .await
        .map_err(query_err)?;
    tx.commit()
        .await
        .map_err(db_err("committing a cancellation"))?;
    Ok(())
}

/// The launches of [`dispatch_sql::launch_rows`], each with its registry's URL from etcd.
async fn launches(
    rows: Vec<LaunchRow>,
    session_id: Uuid,
    etcd: Option<&EtcdStore>,
) -> Result<Vec<KernelRow>, DispatchError> {
    let cluster_hosts: Vec<String> = rows
        .iter()
        .map(|row| row.cluster_hostname.clone())
        .collect();
    let mut kernels = Vec::with_capacity(rows.len());
    let mut registry_urls: BTreeMap<String, String> = BTreeMap::new();
    for row in rows {
        let kernel_id = row.id;
        let role = row.cluster_role;
        let idx = row.cluster_idx;
        let hostname = row.cluster_hostname;
        let canonical = row.image;
        let registry = row.registry;
        // A session's kernels share their image's registry: one etcd read per registry.
        let registry_url = match registry_urls.get(&registry) {
            Some(url) => url.clone(),
            None => {
                let url = match etcd {
                    Some(store) => store
                        .get(&format!(
                            "config/docker/registry/{}",
                            crate::etcd::keys::quote(&registry)
                        ))
                        .await
                        .ok()
                        .flatten(),
                    None => None,
                }
                .unwrap_or_else(|| format!("https://{registry}"));
                registry_urls.insert(registry.clone(), url.clone());
                url
            }
        };
        let mut environ: BTreeMap<String, String> = row
            .environ
            .iter()
            .filter_map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        let cluster_size = row.cluster_size;
        for (key, value) in [
            ("BACKENDAI_SESSION_ID", session_id.to_string()),
            ("BACKENDAI_SESSION_NAME", row.session_name),
            ("BACKENDAI_KERNEL_ID", kernel_id.to_string()),
            ("BACKENDAI_KERNEL_IMAGE", canonical.clone()),
            ("BACKENDAI_CLUSTER_ROLE", role.clone()),
            ("BACKENDAI_CLUSTER_IDX", idx.to_string()),
            ("BACKENDAI_CLUSTER_LOCAL_RANK", row.local_rank.to_string()),
            ("BACKENDAI_CLUSTER_HOST", hostname.clone()),
            ("BACKENDAI_CLUSTER_SIZE", cluster_size.to_string()),
            ("BACKENDAI_CLUSTER_HOSTS", cluster_hosts.join(",")),
            ("BACKENDAI_ACCESS_KEY", row.access_key),
            ("BACKENDAI_USER_UUID", row.user_uuid.to_string()),
            ("BACKENDAI_USER_EMAIL", row.user_email.unwrap_or_default()),
            (
                "BACKENDAI_USER_NAME",
                row.user_full_name.unwrap_or_default(),
            ),
        ] {
            environ.insert(key.to_owned(), value);
        }
        let mounts = match row.vfolder_mounts {
            serde_json::Value::Array(items) => items,
            _ => Vec::new(),
        };
        let labels: BTreeMap<String, String> = row
            .image_labels
            .and_then(|l| l.as_object().cloned())
            .map(|object| {
                object
                    .into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let network_id = if cluster_size > 1 {
            format!("bai-singlenode-{session_id}")
        } else {
            session_id.to_string()
        };
        kernels.push(KernelRow {
            agent: row.agent,
            version: row.agent_version,
            launch: KernelLaunch {
                kernel_id,
                session_id,
                session_type: row.session_type.to_ascii_lowercase(),
                cluster_mode: row.cluster_mode,
                cluster_role: role,
                cluster_idx: idx,
                local_rank: row.local_rank,
                cluster_hostname: hostname,
                image: ImageSpec {
                    canonical,
                    registry_name: registry,
                    registry_url,
                    project: row.image_project,
                    architecture: row.architecture,
                    digest: row
                        .image_digest
                        .map(|d| d.trim().to_owned())
                        .unwrap_or_default(),
                    labels,
                    is_local: row.image_is_local.unwrap_or(false),
                },
                resource_slots: slots_of(row.requested_slots),
                resource_opts: row.resource_opts,
                environ,
                mounts,
                bootstrap_script: row.bootstrap_script,
                startup_command: row.startup_command,
                internal_data: row.internal_data,
                preopen_ports: row.preopen_ports.into_iter().map(i64::from).collect(),
                idle_timeout: 0,
                owner_user_id: row.user_uuid,
                owner_project_id: row.group_id,
                network_id,
                agent_addr: row.agent_addr,
                scaling_group: row.scaling_group,
                auto_pull: "digest".into(),
            },
        });
    }
    Ok(kernels)
}

/// Turns a `create_kernels` reply entry into JSON, skipping ext values it cannot render.
pub fn reply_to_json(value: &Value) -> serde_json::Value {
    value.to_json()
}
