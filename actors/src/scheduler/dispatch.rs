//! Starting scheduled sessions: SCHEDULED → PREPARING (a compare-and-set, so one worker
//! dispatches each session), then `create_kernels` once per agent with the kernels placed on it.
//! A session whose agents fail to create its kernels is CANCELLED (`failed-to-start`) and its
//! slots are freed; kernels created on other agents are destroyed.

use bai_schema::queries::ReadColumn;
use std::collections::BTreeMap;
use std::sync::Arc;

use bai_schema::enums::KernelStatus;
use chrono::Utc;
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
    Decode(#[from] bai_schema::queries::DecodeError),
    #[error(transparent)]
    Query(bai_schema::queries::QueryError),
}

fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> DispatchError {
    move |source| DispatchError::Database { context, source }
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
    let claimed = tx
        .execute(
            "UPDATE sessions SET status = 'PREPARING', status_info = $3,
                    status_history = coalesce(status_history, '{}'::jsonb) || $2::jsonb
              WHERE id = $1 AND status = 'SCHEDULED'",
            &[&session_id, &history, &CLAIMED_STATUS_INFO],
        )
        .await
        .map_err(db_err("claiming a scheduled session"))?;
    if claimed == 0 {
        return Ok(DispatchOutcome::NotOurs);
    }
    tx.execute(
        "UPDATE kernels SET status = 'PREPARING', status_info = $4, status_changed = $2,
                status_history = coalesce(status_history, '{}'::jsonb) || $3::jsonb
          WHERE session_id = $1 AND status = 'SCHEDULED'",
        &[&session_id, &now, &history, &CLAIMED_STATUS_INFO],
    )
    .await
    .map_err(db_err("moving kernels to PREPARING"))?;
    let launch_rows = launch_rows(&*tx, session_id).await?;
    tx.commit().await.map_err(db_err("committing dispatch"))?;
    // `prepared` → `creating` right before the call, as a compare-and-set on this claim's
    // `status_changed`: the reconciler may re-dispatch kernels still `prepared` (never sent) and
    // does so with the same kind of compare-and-set, so exactly one of the two goes on.
    let marked = client
        .execute(
            "UPDATE kernels SET status_info = $3
              WHERE session_id = $1 AND status = 'PREPARING' AND status_info = $4
                AND status_changed = $2",
            &[&session_id, &now, &SENT_STATUS_INFO, &CLAIMED_STATUS_INFO],
        )
        .await
        .map_err(db_err("marking kernels as sent to their agents"))?;
    if marked == 0 {
        return Ok(DispatchOutcome::NotOurs);
    }
    // The registry lookups in etcd need no database connection.
    drop(client);
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
    start_kernel_in(&*tx, kernel_id, creation_info).await?;
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
    let agents: Vec<Option<String>> = tx
        .query(
            "SELECT DISTINCT agent FROM kernels WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .map_err(db_err("reading a session's agents"))?
        .iter()
        .map(|row| row.decode(0))
        .collect::<Result<_, _>>()?;
    for agent in agents.iter().flatten() {
        tx.execute("SELECT 1 FROM agents WHERE id = $1 FOR UPDATE", &[agent])
            .await
            .map_err(db_err("locking an agent"))?;
    }
    let update = KernelUpdate {
        status_data: Some(data.clone()),
        ..KernelUpdate::default()
    };
    let kernel_ids: Vec<Uuid> = tx
        .query(
            "SELECT id FROM kernels WHERE session_id = $1",
            &[&session_id],
        )
        .await
        .map_err(db_err("reading a session's kernels"))?
        .iter()
        .map(|row| row.decode(0))
        .collect::<Result<_, _>>()?;
    for kernel_id in kernel_ids {
        transit_kernel(
            &*tx,
            kernel_id,
            KernelStatus::Cancelled,
            "failed-to-start",
            now,
            &update,
        )
        .await?;
    }
    for agent in agents.iter().flatten() {
        recalc_agent_occupancy(&*tx, agent).await?;
    }
    update_session_status(&*tx, session_id, "failed-to-start", now).await?;
    tx.execute(
        "UPDATE sessions SET status_data = $2 WHERE id = $1",
        &[&session_id, &data],
    )
    .await
    .map_err(db_err("recording why the session failed"))?;
    tx.commit()
        .await
        .map_err(db_err("committing a cancellation"))?;
    Ok(())
}

/// The kernels of `session_id` to create, with what their launch needs from other tables.
async fn launch_rows(
    client: &impl tokio_postgres::GenericClient,
    session_id: Uuid,
) -> Result<Vec<tokio_postgres::Row>, DispatchError> {
    client
        .query(
            "SELECT k.id, k.session_type, k.cluster_mode, k.cluster_size, k.cluster_role,
                    k.cluster_idx, k.local_rank, k.cluster_hostname, coalesce(k.image, ''),
                    k.architecture, coalesce(k.registry, ''), k.requested_slots,
                    coalesce(k.resource_opts, '{}'::jsonb), coalesce(k.environ, '{}'::text[]),
                    coalesce(k.vfolder_mounts, '[]'::jsonb), k.bootstrap_script, k.startup_command,
                    k.internal_data, coalesce(k.preopen_ports, '{}'::int[]), k.user_uuid, k.group_id,
                    k.agent, coalesce(k.agent_addr, a.addr), a.version, coalesce(k.scaling_group, 'default'),
                    i.labels, i.project, i.is_local, i.config_digest, u.email, u.full_name,
                    coalesce(k.access_key, ''), coalesce(k.session_name, '')
               FROM kernels k
               JOIN agents a ON a.id = k.agent
               LEFT JOIN images i ON i.name = k.image AND i.architecture = k.architecture
               LEFT JOIN users u ON u.uuid = k.user_uuid
              WHERE k.session_id = $1 AND k.status = 'PREPARING'
              ORDER BY k.cluster_idx, k.id",
            &[&session_id],
        )
        .await
        .map_err(db_err("reading the kernels to create"))
}

/// The launches of [`launch_rows`], each with its registry's URL from etcd.
async fn launches(
    rows: Vec<tokio_postgres::Row>,
    session_id: Uuid,
    etcd: Option<&EtcdStore>,
) -> Result<Vec<KernelRow>, DispatchError> {
    let cluster_hosts: Vec<String> = rows
        .iter()
        .map(|row| row.decode::<_, String>(7))
        .collect::<Result<_, _>>()?;
    let mut kernels = Vec::with_capacity(rows.len());
    for row in rows {
        let kernel_id: Uuid = row.decode(0)?;
        let session_type: String = row.decode(1)?;
        let role: String = row.decode(4)?;
        let idx: i32 = row.decode(5)?;
        let hostname: String = row.decode(7)?;
        let canonical: String = row.decode(8)?;
        let registry: String = row.decode(10)?;
        let labels: Option<serde_json::Value> = row.decode(25)?;
        let project: Option<String> = row.decode(26)?;
        let digest: Option<String> = row.decode(28)?;
        let registry_url = match etcd {
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
        let mut environ: BTreeMap<String, String> = row
            .decode::<_, Vec<String>>(13)?
            .iter()
            .filter_map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        let email: Option<String> = row.decode(29)?;
        let full_name: Option<String> = row.decode(30)?;
        let cluster_size: i32 = row.decode(3)?;
        for (key, value) in [
            ("BACKENDAI_SESSION_ID", session_id.to_string()),
            ("BACKENDAI_SESSION_NAME", row.decode::<_, String>(32)?),
            ("BACKENDAI_KERNEL_ID", kernel_id.to_string()),
            ("BACKENDAI_KERNEL_IMAGE", canonical.clone()),
            ("BACKENDAI_CLUSTER_ROLE", role.clone()),
            ("BACKENDAI_CLUSTER_IDX", idx.to_string()),
            (
                "BACKENDAI_CLUSTER_LOCAL_RANK",
                row.decode::<_, i32>(6)?.to_string(),
            ),
            ("BACKENDAI_CLUSTER_HOST", hostname.clone()),
            ("BACKENDAI_CLUSTER_SIZE", cluster_size.to_string()),
            ("BACKENDAI_CLUSTER_HOSTS", cluster_hosts.join(",")),
            ("BACKENDAI_ACCESS_KEY", row.decode::<_, String>(31)?),
            (
                "BACKENDAI_USER_UUID",
                row.decode::<_, Uuid>(19)?.to_string(),
            ),
            ("BACKENDAI_USER_EMAIL", email.unwrap_or_default()),
            ("BACKENDAI_USER_NAME", full_name.unwrap_or_default()),
        ] {
            environ.insert(key.to_owned(), value);
        }
        let mounts = match row.decode::<_, serde_json::Value>(14)? {
            serde_json::Value::Array(items) => items,
            _ => Vec::new(),
        };
        let labels: BTreeMap<String, String> = labels
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
            agent: row.decode(21)?,
            version: row.decode(23)?,
            launch: KernelLaunch {
                kernel_id,
                session_id,
                session_type: session_type.to_ascii_lowercase(),
                cluster_mode: row.decode(2)?,
                cluster_role: role,
                cluster_idx: idx,
                local_rank: row.decode(6)?,
                cluster_hostname: hostname,
                image: ImageSpec {
                    canonical,
                    registry_name: registry,
                    registry_url,
                    project,
                    architecture: row.decode(9)?,
                    digest: digest.map(|d| d.trim().to_owned()).unwrap_or_default(),
                    labels,
                    is_local: row.decode::<_, Option<bool>>(27)?.unwrap_or(false),
                },
                resource_slots: slots_of(row.decode(11)?),
                resource_opts: row.decode(12)?,
                environ,
                mounts,
                bootstrap_script: row.decode(15)?,
                startup_command: row.decode(16)?,
                internal_data: row.decode(17)?,
                preopen_ports: row
                    .decode::<_, Vec<i32>>(18)?
                    .into_iter()
                    .map(i64::from)
                    .collect(),
                idle_timeout: 0,
                owner_user_id: row.decode(19)?,
                owner_project_id: row.decode(20)?,
                network_id,
                agent_addr: row.decode(22)?,
                scaling_group: row.decode(24)?,
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
