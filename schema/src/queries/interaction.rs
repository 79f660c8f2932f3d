//! Queries behind the calls on a running session: where its main kernel runs (agent id, RPC
//! address, agent version and image, for execute/files/logs/restart), renaming it, keeping a
//! terminated container's log, and the dependency graph of `session show-graph`.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{QueryError, db_err};
use crate::enums::{KernelStatus, SessionStatus};

/// Where the main kernel of a session runs, and what the interactive calls need to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTarget {
    pub session_id: Uuid,
    pub session_status: SessionStatus,
    pub creation_id: Option<String>,
    pub kernel_id: Uuid,
    pub kernel_status: KernelStatus,
    pub agent_id: Option<String>,
    pub agent_addr: Option<String>,
    /// The version the agent reports in its heartbeats ('' if the agent row is gone).
    pub agent_version: String,
    pub image: Option<String>,
    pub registry: Option<String>,
    pub architecture: String,
    /// The image's project and `is_local`, from the `images` row when it is still there.
    pub image_project: Option<String>,
    pub image_is_local: bool,
    /// The owner's e-mail: the agent commits images under it.
    pub owner_email: Option<String>,
}

fn decode_target(row: &Row) -> Result<KernelTarget, QueryError> {
    let get = |context: &'static str| db_err(context);
    Ok(KernelTarget {
        session_id: row.try_get(0).map_err(get("reading sessions.id"))?,
        session_status: row.try_get(1).map_err(get("reading sessions.status"))?,
        creation_id: row
            .try_get(2)
            .map_err(get("reading sessions.creation_id"))?,
        kernel_id: row.try_get(3).map_err(get("reading kernels.id"))?,
        kernel_status: row.try_get(4).map_err(get("reading kernels.status"))?,
        agent_id: row.try_get(5).map_err(get("reading kernels.agent"))?,
        agent_addr: row.try_get(6).map_err(get("reading kernels.agent_addr"))?,
        agent_version: row
            .try_get::<_, Option<String>>(7)
            .map_err(get("reading agents.version"))?
            .unwrap_or_default(),
        image: row.try_get(8).map_err(get("reading kernels.image"))?,
        registry: row.try_get(9).map_err(get("reading kernels.registry"))?,
        architecture: row
            .try_get(10)
            .map_err(get("reading kernels.architecture"))?,
        image_project: row.try_get(11).map_err(get("reading images.project"))?,
        image_is_local: row
            .try_get::<_, Option<bool>>(12)
            .map_err(get("reading images.is_local"))?
            .unwrap_or(false),
        owner_email: row.try_get(13).map_err(get("reading users.email"))?,
    })
}

/// The main kernel of `session_id` and the agent it is on.
pub async fn main_kernel_target(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<Option<KernelTarget>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT s.id, s.status, s.creation_id, k.id, k.status, k.agent,
                    coalesce(k.agent_addr, a.addr), a.version, k.image, k.registry,
                    k.architecture, i.project, i.is_local, u.email
               FROM sessions s
               LEFT JOIN users u ON u.uuid = s.user_uuid
               JOIN kernels k ON k.session_id = s.id AND k.cluster_role = 'main'
               LEFT JOIN agents a ON a.id = k.agent
               LEFT JOIN images i ON i.name = k.image AND i.architecture = k.architecture
              WHERE s.id = $1
              ORDER BY k.cluster_idx LIMIT 1",
        )
        .await
        .map_err(db_err("preparing the kernel target query"))?;
    let row = client
        .query_opt(&statement, &[&session_id])
        .await
        .map_err(db_err("reading where a session's main kernel runs"))?;
    row.as_ref().map(decode_target).transpose()
}

/// Where a kernel's streams connect: its host (`None` when the agent did not report one: the
/// agent's own host then), the kernel runner's REPL ports and the apps it serves.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelEndpoints {
    pub kernel_host: Option<String>,
    pub repl_in_port: Option<i32>,
    pub repl_out_port: Option<i32>,
    /// The terminal's ports (`stdin_port`/`stdout_port`): the kernel runner's SUB and PUB
    /// sockets the pty stream connects to.
    pub stdin_port: Option<i32>,
    pub stdout_port: Option<i32>,
    /// `kernels.service_ports` as stored: a JSON list of `{name, protocol, container_ports,
    /// host_ports, ...}`.
    pub service_ports: Option<serde_json::Value>,
}

/// The stream endpoints of one kernel (`None` when the kernel row is gone).
pub async fn kernel_endpoints(
    client: &impl GenericClient,
    kernel_id: Uuid,
) -> Result<Option<KernelEndpoints>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT kernel_host, repl_in_port, repl_out_port, service_ports, stdin_port,
                    stdout_port
               FROM kernels WHERE id = $1",
        )
        .await
        .map_err(db_err("preparing the kernel endpoint query"))?;
    let row = client
        .query_opt(&statement, &[&kernel_id])
        .await
        .map_err(db_err("reading a kernel's stream endpoints"))?;
    row.map(|row| {
        let get = |context: &'static str| db_err(context);
        Ok(KernelEndpoints {
            kernel_host: row.try_get(0).map_err(get("reading kernels.kernel_host"))?,
            repl_in_port: row
                .try_get(1)
                .map_err(get("reading kernels.repl_in_port"))?,
            repl_out_port: row
                .try_get(2)
                .map_err(get("reading kernels.repl_out_port"))?,
            service_ports: row
                .try_get(3)
                .map_err(get("reading kernels.service_ports"))?,
            stdin_port: row.try_get(4).map_err(get("reading kernels.stdin_port"))?,
            stdout_port: row.try_get(5).map_err(get("reading kernels.stdout_port"))?,
        })
    })
    .transpose()
}

/// What a restarted kernel's container reports (`restart_kernel`'s reply); `None` keeps the
/// stored value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestartedKernel {
    pub container_id: Option<String>,
    pub repl_in_port: Option<i32>,
    pub repl_out_port: Option<i32>,
    pub stdin_port: Option<i32>,
    pub stdout_port: Option<i32>,
    pub service_ports: Option<serde_json::Value>,
}

/// Stores where a restarted kernel's new container listens, as the original's
/// `restart_session` does, so later streams connect to the new ports.
pub async fn store_restarted_kernel(
    client: &impl GenericClient,
    kernel_id: Uuid,
    restarted: &RestartedKernel,
) -> Result<(), QueryError> {
    let statement = client
        .prepare_cached(
            "UPDATE kernels SET container_id = coalesce($2, container_id),
                    repl_in_port = coalesce($3, repl_in_port),
                    repl_out_port = coalesce($4, repl_out_port),
                    stdin_port = coalesce($5, stdin_port),
                    stdout_port = coalesce($6, stdout_port),
                    service_ports = coalesce($7, service_ports)
              WHERE id = $1",
        )
        .await
        .map_err(db_err("preparing the restarted kernel update"))?;
    client
        .execute(
            &statement,
            &[
                &kernel_id,
                &restarted.container_id,
                &restarted.repl_in_port,
                &restarted.repl_out_port,
                &restarted.stdin_port,
                &restarted.stdout_port,
                &restarted.service_ports,
            ],
        )
        .await
        .map_err(db_err("storing a restarted kernel's ports"))?;
    Ok(())
}

/// What the app proxy (wsproxy) flow of `start-service` needs about a session: its scaling
/// group's wsproxy address and whose session it is.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionAppProxy {
    /// `scaling_groups.wsproxy_addr` (`None` or empty: no app proxy configured).
    pub wsproxy_addr: Option<String>,
    pub user_uuid: Uuid,
    pub group_id: Uuid,
    pub access_key: Option<String>,
    pub domain_name: String,
}

/// The app proxy of a session's scaling group and the session's owner.
pub async fn session_app_proxy(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<Option<SessionAppProxy>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT sg.wsproxy_addr, s.user_uuid, s.group_id, s.access_key, s.domain_name
               FROM sessions s LEFT JOIN scaling_groups sg ON sg.name = s.scaling_group_name
              WHERE s.id = $1",
        )
        .await
        .map_err(db_err("preparing the app proxy query"))?;
    let row = client
        .query_opt(&statement, &[&session_id])
        .await
        .map_err(db_err("reading a session's app proxy"))?;
    row.map(|row| {
        let get = |context: &'static str| db_err(context);
        Ok(SessionAppProxy {
            wsproxy_addr: row
                .try_get(0)
                .map_err(get("reading scaling_groups.wsproxy_addr"))?,
            user_uuid: row.try_get(1).map_err(get("reading sessions.user_uuid"))?,
            group_id: row.try_get(2).map_err(get("reading sessions.group_id"))?,
            access_key: row.try_get(3).map_err(get("reading sessions.access_key"))?,
            domain_name: row
                .try_get(4)
                .map_err(get("reading sessions.domain_name"))?,
        })
    })
    .transpose()
}

/// Renames a RUNNING session and its kernels; returns false when it is no longer RUNNING (the
/// check and the write are one statement, so a concurrent termination cannot slip between).
pub async fn rename_running_session(
    client: &impl GenericClient,
    session_id: Uuid,
    new_name: &str,
) -> Result<bool, QueryError> {
    let statement = client
        .prepare_cached(
            "WITH renamed AS (
                 UPDATE sessions SET name = $2 WHERE id = $1 AND status = 'RUNNING' RETURNING id
             )
             UPDATE kernels SET session_name = $2
              WHERE session_id IN (SELECT id FROM renamed)
             RETURNING (SELECT count(*) FROM renamed)",
        )
        .await
        .map_err(db_err("preparing the session rename"))?;
    let rows = client
        .query(&statement, &[&session_id, &new_name])
        .await
        .map_err(db_err("renaming a session"))?;
    Ok(!rows.is_empty())
}

/// One session of a dependency graph.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    pub session_id: Uuid,
    pub name: String,
    pub status: SessionStatus,
    pub status_info: Option<String>,
    /// The sessions this one waits for.
    pub depends_on: Vec<Uuid>,
}

/// Every session reachable from `root` through `session_dependencies` (both directions:
/// what it depends on and what depends on it), bounded to `limit` sessions.
pub async fn dependency_graph(
    client: &impl GenericClient,
    root: Uuid,
    limit: i64,
) -> Result<Vec<GraphNode>, QueryError> {
    let statement = client
        .prepare_cached(
            "WITH RECURSIVE reach(id) AS (
                 SELECT $1::uuid
                 UNION
                 SELECT CASE WHEN d.session_id = r.id THEN d.depends_on ELSE d.session_id END
                   FROM session_dependencies d JOIN reach r
                     ON d.session_id = r.id OR d.depends_on = r.id
             )
             SELECT s.id, coalesce(s.name, ''), s.status, s.status_info,
                    coalesce(array_agg(d.depends_on) FILTER (WHERE d.depends_on IS NOT NULL),
                             '{}')
               FROM (SELECT id FROM reach LIMIT $2) r
               JOIN sessions s ON s.id = r.id
               LEFT JOIN session_dependencies d ON d.session_id = s.id
              GROUP BY s.id, s.name, s.status, s.status_info, s.created_at
              ORDER BY s.created_at",
        )
        .await
        .map_err(db_err("preparing the dependency graph query"))?;
    let rows = client
        .query(&statement, &[&root, &limit])
        .await
        .map_err(db_err("reading a session dependency graph"))?;
    rows.iter()
        .map(|row| {
            Ok(GraphNode {
                session_id: row.try_get(0).map_err(db_err("reading sessions.id"))?,
                name: row.try_get(1).map_err(db_err("reading sessions.name"))?,
                status: row.try_get(2).map_err(db_err("reading sessions.status"))?,
                status_info: row.try_get(3).map_err(db_err("reading status_info"))?,
                depends_on: row.try_get(4).map_err(db_err("reading depends_on"))?,
            })
        })
        .collect()
}

/// The callback URLs of those of `session_ids` that have one (one statement for a batch of
/// lifecycle events).
pub async fn session_callback_urls(
    client: &impl GenericClient,
    session_ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT id, callback_url FROM sessions WHERE id = ANY($1) AND callback_url IS NOT NULL",
        )
        .await
        .map_err(db_err("preparing the callback URLs query"))?;
    client
        .query(&statement, &[&session_ids])
        .await
        .map_err(db_err("reading sessions' callback URLs"))?
        .iter()
        .map(|row| {
            Ok((
                row.try_get(0).map_err(db_err("reading sessions.id"))?,
                row.try_get(1)
                    .map_err(db_err("reading sessions.callback_url"))?,
            ))
        })
        .collect()
}
