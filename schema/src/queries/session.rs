//! Sessions and their kernels as the client API sees them: enqueueing a PENDING session with
//! its kernels in one transaction, matching a session reference (id prefix, name, name prefix,
//! kernel id prefix) within an owner's access key, reading the main kernel for `session info`,
//! and cancelling a PENDING session.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err, slots_column};
use crate::enums::{KernelStatus, SessionStatus};
use crate::slots::ResourceSlot;

/// The role of a session's first kernel.
pub const MAIN_ROLE: &str = "main";

/// A session row to insert (status PENDING).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub creation_id: String,
    pub name: String,
    /// The `SessionTypes` member name: `INTERACTIVE`, `BATCH`, ...
    pub session_type: String,
    /// `single-node` or `multi-node`.
    pub cluster_mode: String,
    pub cluster_size: i32,
    pub scaling_group: String,
    pub domain_name: String,
    pub group_id: Uuid,
    pub user_uuid: Uuid,
    pub access_key: String,
    pub images: Vec<String>,
    pub tag: Option<String>,
    pub requested_slots: ResourceSlot,
    /// The `VFolderMount` list (`[]` without mounts).
    pub vfolder_mounts: Value,
    /// The mounted folders' names (the kernels' legacy `mounts` column).
    pub mount_names: Vec<String>,
    pub environ: Value,
    pub bootstrap_script: Option<String>,
    pub use_host_network: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub callback_url: Option<String>,
    pub startup_command: Option<String>,
    pub dependencies: Vec<Uuid>,
}

/// A kernel row of a new session (status PENDING).
#[derive(Debug, Clone)]
pub struct NewKernel {
    pub id: Uuid,
    /// An agent a superadmin assigned by hand.
    pub agent: Option<String>,
    pub cluster_role: String,
    pub cluster_idx: i32,
    pub local_rank: i32,
    pub cluster_hostname: String,
    pub image: String,
    pub architecture: String,
    pub registry: String,
    pub requested_slots: ResourceSlot,
    pub resource_opts: Value,
    pub environ: Vec<String>,
    pub bootstrap_script: Option<String>,
    pub startup_command: Option<String>,
    pub preopen_ports: Vec<i32>,
    pub internal_data: Value,
}

/// Inserts a PENDING session with its kernels and dependencies. Run it in a transaction: a
/// failure leaves nothing behind. A live session of the same name and access key violates
/// `ix_kernels_unique_sess_token` (see [`QueryError::is_unique_violation`]).
pub async fn insert_pending_session(
    client: &impl GenericClient,
    session: &NewSession,
    kernels: &[NewKernel],
    now: DateTime<Utc>,
) -> Result<(), QueryError> {
    let history = serde_json::json!({ "PENDING": now.to_rfc3339() });
    let statement = client
        .prepare_cached(
            "INSERT INTO sessions (id, creation_id, name, session_type, cluster_mode,
                cluster_size, scaling_group_name, target_sgroup_names, domain_name, group_id,
                user_uuid, access_key, images, tag, occupying_slots, requested_slots,
                vfolder_mounts, environ, bootstrap_script, use_host_network, created_at,
                starts_at, status, status_history, callback_url, startup_command)
             VALUES ($1, $2, $3, $4, $5, $6, $7, ARRAY[$7]::varchar[], $8, $9, $10, $11, $12,
                $13, '{}', $14, $15, $16, $17, $18, $19, $20, 'PENDING', $21, $22, $23)",
        )
        .await
        .map_err(db_err("preparing the session insert"))?;
    client
        .execute(
            &statement,
            &[
                &session.id,
                &session.creation_id,
                &session.name,
                &session.session_type,
                &session.cluster_mode,
                &session.cluster_size,
                &session.scaling_group,
                &session.domain_name,
                &session.group_id,
                &session.user_uuid,
                &session.access_key,
                &session.images,
                &session.tag,
                &session.requested_slots.to_json(),
                &session.vfolder_mounts,
                &session.environ,
                &session.bootstrap_script,
                &session.use_host_network,
                &now,
                &session.starts_at,
                &history,
                &session.callback_url,
                &session.startup_command,
            ],
        )
        .await
        .map_err(db_err("inserting a session"))?;
    let statement = client
        .prepare_cached(
            "INSERT INTO kernels (id, session_id, session_creation_id, session_name,
                session_type, cluster_mode, cluster_size, cluster_role, cluster_idx, local_rank,
                cluster_hostname, scaling_group, agent, domain_name, group_id, user_uuid,
                access_key, image, architecture, registry, tag, occupied_slots, requested_slots,
                occupied_shares, environ, mounts, vfolder_mounts, resource_opts,
                bootstrap_script, preopen_ports, use_host_network, created_at, starts_at,
                status, status_history, callback_url, startup_command, internal_data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                $17, $18, $19, $20, $21, $22, $22, '{}', $23, $35, $24, $25, $26, $27, $28,
                $29, $30, 'PENDING', $31, $32, $33, $34)",
        )
        .await
        .map_err(db_err("preparing the kernel insert"))?;
    for kernel in kernels {
        client
            .execute(
                &statement,
                &[
                    &kernel.id,
                    &session.id,
                    &session.creation_id,
                    &session.name,
                    &session.session_type,
                    &session.cluster_mode,
                    &session.cluster_size,
                    &kernel.cluster_role,
                    &kernel.cluster_idx,
                    &kernel.local_rank,
                    &kernel.cluster_hostname,
                    &session.scaling_group,
                    &kernel.agent,
                    &session.domain_name,
                    &session.group_id,
                    &session.user_uuid,
                    &session.access_key,
                    &kernel.image,
                    &kernel.architecture,
                    &kernel.registry,
                    &session.tag,
                    &kernel.requested_slots.to_json(),
                    &kernel.environ,
                    &session.vfolder_mounts,
                    &kernel.resource_opts,
                    &kernel.bootstrap_script,
                    &kernel.preopen_ports,
                    &session.use_host_network,
                    &now,
                    &session.starts_at,
                    &history,
                    &session.callback_url,
                    &kernel.startup_command,
                    &kernel.internal_data,
                    &session.mount_names,
                ],
            )
            .await
            .map_err(db_err("inserting a kernel"))?;
    }
    if !session.dependencies.is_empty() {
        let statement = client
            .prepare_cached(
                "INSERT INTO session_dependencies (session_id, depends_on)
                 SELECT $1, d FROM unnest($2::uuid[]) AS d ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(db_err("preparing the dependency insert"))?;
        client
            .execute(&statement, &[&session.id, &session.dependencies])
            .await
            .map_err(db_err("inserting session dependencies"))?;
    }
    Ok(())
}

/// One session a reference matched.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionMatch {
    pub id: Uuid,
    pub name: String,
    pub status: SessionStatus,
    pub creation_id: Option<String>,
}

/// Which sessions a reference may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// Live sessions only (not TERMINATED or CANCELLED).
    LiveOnly,
    /// Dead ones too.
    AllowStale,
}

/// The most sessions one reference reports.
pub const MAX_MATCHES: i64 = 10;

/// `LIKE` pattern for "starts with `text`".
fn prefix_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// What a session reference can be, as far as ids go: text that no UUID starts with cannot
/// match a session or kernel id prefix, so those lookups (a scan of the owner's sessions:
/// `id::text LIKE` uses no index) are skipped; a whole UUID is looked up by equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdReference {
    NotAnId,
    Prefix,
    Whole(Uuid),
}

impl IdReference {
    /// Whether `reference` is the start of some UUID's hyphenated text (`8-4-4-4-12` lowercase
    /// or uppercase hex digits), or a whole one.
    pub fn of(reference: &str) -> IdReference {
        const HYPHENS: [usize; 4] = [8, 13, 18, 23];
        if reference.len() > 36 {
            return IdReference::NotAnId;
        }
        let shaped = reference.bytes().enumerate().all(|(index, byte)| {
            if HYPHENS.contains(&index) {
                byte == b'-'
            } else {
                byte.is_ascii_hexdigit()
            }
        });
        if !shaped || reference.is_empty() {
            return IdReference::NotAnId;
        }
        match Uuid::parse_str(reference) {
            Ok(id) if reference.len() == 36 => IdReference::Whole(id),
            _ => IdReference::Prefix,
        }
    }
}

/// One way a reference may name sessions, with the value it compares.
enum MatchKind<'a> {
    SessionIdPrefix(String),
    SessionId(Uuid),
    Name(&'a str),
    NamePrefix(String),
    KernelIdPrefix(String),
    KernelId(Uuid),
}

impl MatchKind<'_> {
    fn condition(&self) -> &'static str {
        match self {
            MatchKind::SessionIdPrefix(_) => "s.id::text LIKE $1",
            MatchKind::SessionId(_) => "s.id = $1",
            MatchKind::Name(_) => "s.name = $1",
            MatchKind::NamePrefix(_) => "s.name LIKE $1",
            MatchKind::KernelIdPrefix(_) => {
                "EXISTS (SELECT 1 FROM kernels k WHERE k.session_id = s.id AND k.id::text LIKE $1)"
            }
            MatchKind::KernelId(_) => {
                "s.id IN (SELECT k.session_id FROM kernels k WHERE k.id = $1)"
            }
        }
    }
}

/// The sessions of `access_key` that `reference` names, tried in the original's order: a
/// session-id prefix, the exact name, a name prefix, a kernel-id prefix. The first kind that
/// matches anything wins; id lookups are skipped for references no id starts with.
pub async fn match_sessions(
    client: &impl GenericClient,
    reference: &str,
    access_key: &str,
    staleness: Staleness,
) -> Result<Vec<SessionMatch>, QueryError> {
    let live = match staleness {
        Staleness::LiveOnly => "AND s.status NOT IN ('TERMINATED', 'CANCELLED')",
        Staleness::AllowStale => "",
    };
    let pattern = prefix_pattern(reference);
    let id = IdReference::of(reference);
    let mut kinds = Vec::with_capacity(4);
    match id {
        IdReference::NotAnId => {}
        IdReference::Prefix => kinds.push(MatchKind::SessionIdPrefix(pattern.clone())),
        IdReference::Whole(id) => kinds.push(MatchKind::SessionId(id)),
    }
    kinds.push(MatchKind::Name(reference));
    kinds.push(MatchKind::NamePrefix(pattern.clone()));
    match id {
        IdReference::NotAnId => {}
        IdReference::Prefix => kinds.push(MatchKind::KernelIdPrefix(pattern)),
        IdReference::Whole(id) => kinds.push(MatchKind::KernelId(id)),
    }
    for kind in kinds {
        let sql = format!(
            "SELECT s.id, s.name, s.status, s.creation_id FROM sessions s
             WHERE s.access_key = $2 AND {} {live}
             ORDER BY s.created_at DESC LIMIT {MAX_MATCHES}",
            kind.condition()
        );
        let statement = client
            .prepare_cached(&sql)
            .await
            .map_err(db_err("preparing a session match"))?;
        let rows = match &kind {
            MatchKind::SessionId(id) | MatchKind::KernelId(id) => {
                client.query(&statement, &[id, &access_key]).await
            }
            MatchKind::Name(text) => client.query(&statement, &[text, &access_key]).await,
            MatchKind::SessionIdPrefix(text)
            | MatchKind::NamePrefix(text)
            | MatchKind::KernelIdPrefix(text) => {
                client.query(&statement, &[text, &access_key]).await
            }
        }
        .map_err(db_err("matching sessions"))?;
        if !rows.is_empty() {
            return rows
                .into_iter()
                .map(|row| {
                    Ok(SessionMatch {
                        id: row.read(0)?,
                        name: row.read::<_, Option<String>>(1)?.unwrap_or_default(),
                        status: row.read(2)?,
                        creation_id: row.read(3)?,
                    })
                })
                .collect();
        }
    }
    Ok(Vec::new())
}

/// The live session of `access_key` named exactly `name`, if any (for create's reuse check).
pub async fn find_live_session_by_name(
    client: &impl GenericClient,
    name: &str,
    access_key: &str,
) -> Result<Option<(Uuid, SessionStatus, Vec<String>)>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT id, status, COALESCE(images, '{}') FROM sessions
             WHERE name = $1 AND access_key = $2 AND status NOT IN ('TERMINATED', 'CANCELLED')
             ORDER BY created_at DESC LIMIT 1",
        )
        .await
        .map_err(db_err("preparing the session name lookup"))?;
    let row = client
        .query_opt(&statement, &[&name, &access_key])
        .await
        .map_err(db_err("looking up a session by name"))?;
    row.map(|row| Ok((row.read(0)?, row.read(1)?, row.read(2)?)))
        .transpose()
}

/// A session and its main kernel, as `GET /session/{name}` reports them.
#[derive(Debug, Clone)]
pub struct SessionDetail {
    pub session_id: Uuid,
    pub name: String,
    pub creation_id: Option<String>,
    pub session_status: SessionStatus,
    pub domain_name: String,
    pub group_id: Uuid,
    pub user_uuid: Uuid,
    pub access_key: Option<String>,
    pub kernel_id: Uuid,
    pub image: Option<String>,
    pub architecture: String,
    pub registry: Option<String>,
    pub tag: Option<String>,
    pub container_id: Option<String>,
    pub occupied_slots: ResourceSlot,
    pub occupied_shares: Value,
    pub environ: Option<Vec<String>>,
    pub status: KernelStatus,
    pub status_info: Option<String>,
    pub status_data: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub terminated_at: Option<DateTime<Utc>>,
    pub num_queries: i64,
    pub last_stat: Option<Value>,
    pub service_ports: Option<Value>,
    pub agent: Option<String>,
    pub agent_addr: Option<String>,
    pub container_log: Option<Vec<u8>>,
}

/// The session `session_id` with its main kernel.
pub async fn session_detail(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<Option<SessionDetail>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT s.id, s.name, s.creation_id, s.status, s.domain_name, s.group_id,
                    s.user_uuid, s.access_key, k.id, k.image, k.architecture, k.registry, k.tag,
                    k.container_id, k.occupied_slots, k.occupied_shares, k.environ, k.status,
                    k.status_info, k.status_data, k.created_at, k.terminated_at, k.num_queries,
                    k.last_stat, k.service_ports, k.agent, k.agent_addr, k.container_log
             FROM sessions s JOIN kernels k ON k.session_id = s.id AND k.cluster_role = 'main'
             WHERE s.id = $1
             ORDER BY k.cluster_idx LIMIT 1",
        )
        .await
        .map_err(db_err("preparing the session detail query"))?;
    let Some(row) = client
        .query_opt(&statement, &[&session_id])
        .await
        .map_err(db_err("reading a session"))?
    else {
        return Ok(None);
    };
    let kernel_id: Uuid = row.read(8)?;
    Ok(Some(SessionDetail {
        session_id: row.read(0)?,
        name: row.read::<_, Option<String>>(1)?.unwrap_or_default(),
        creation_id: row.read(2)?,
        session_status: row.read(3)?,
        domain_name: row.read(4)?,
        group_id: row.read(5)?,
        user_uuid: row.read(6)?,
        access_key: row.read(7)?,
        kernel_id,
        image: row.read(9)?,
        architecture: row.read(10)?,
        registry: row.read(11)?,
        tag: row.read(12)?,
        container_id: row.read(13)?,
        occupied_slots: slots_column(
            &row.read(14)?,
            "kernels",
            "occupied_slots",
            &kernel_id.to_string(),
        )?,
        occupied_shares: row.read(15)?,
        environ: row.read(16)?,
        status: row.read(17)?,
        status_info: row.read(18)?,
        status_data: row.read(19)?,
        created_at: row.read(20)?,
        terminated_at: row.read(21)?,
        num_queries: row.read(22)?,
        last_stat: row.read(23)?,
        service_ports: row.read(24)?,
        agent: row.read(25)?,
        agent_addr: row.read(26)?,
        container_log: row.read(27)?,
    }))
}

/// Counts one more query on the session's kernels (`increment_session_usage`).
pub async fn count_session_query(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<(), QueryError> {
    let statement = client
        .prepare_cached(
            "UPDATE kernels SET num_queries = num_queries + 1
             WHERE session_id = $1 AND cluster_role = 'main'",
        )
        .await
        .map_err(db_err("preparing the query counter"))?;
    client
        .execute(&statement, &[&session_id])
        .await
        .map_err(db_err("counting a session query"))?;
    Ok(())
}

/// What cancelling did: the kernels that were cancelled, and whether the session was.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cancellation {
    pub session_cancelled: bool,
    pub kernel_ids: Vec<Uuid>,
}

/// PENDING → CANCELLED for a session and its PENDING kernels, as a compare-and-set: a session
/// the scheduler took meanwhile is left alone (`session_cancelled` is false).
pub async fn cancel_pending_session(
    client: &impl GenericClient,
    session_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Cancellation, QueryError> {
    let stamp = serde_json::json!({ "CANCELLED": now.to_rfc3339() });
    let statement = client
        .prepare_cached(
            "UPDATE sessions SET status = 'CANCELLED', status_info = $2, terminated_at = $3,
                    status_history = COALESCE(status_history, '{}') || $4
             WHERE id = $1 AND status = 'PENDING'",
        )
        .await
        .map_err(db_err("preparing the session cancellation"))?;
    let cancelled = client
        .execute(&statement, &[&session_id, &reason, &now, &stamp])
        .await
        .map_err(db_err("cancelling a session"))?;
    if cancelled == 0 {
        return Ok(Cancellation::default());
    }
    let statement = client
        .prepare_cached(
            "UPDATE kernels SET status = 'CANCELLED', status_info = $2, status_changed = $3,
                    terminated_at = $3, status_history = COALESCE(status_history, '{}') || $4
             WHERE session_id = $1 AND status = 'PENDING' RETURNING id",
        )
        .await
        .map_err(db_err("preparing the kernel cancellation"))?;
    let rows = client
        .query(&statement, &[&session_id, &reason, &now, &stamp])
        .await
        .map_err(db_err("cancelling kernels"))?;
    Ok(Cancellation {
        session_cancelled: true,
        kernel_ids: rows
            .iter()
            .map(|row| row.read(0))
            .collect::<Result<_, _>>()?,
    })
}

/// The status of a session (for waiting until it starts).
pub async fn session_status(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<Option<SessionStatus>, QueryError> {
    let statement = client
        .prepare_cached("SELECT status FROM sessions WHERE id = $1")
        .await
        .map_err(db_err("preparing the session status query"))?;
    let row = client
        .query_opt(&statement, &[&session_id])
        .await
        .map_err(db_err("reading a session status"))?;
    row.map(|row| row.read(0)).transpose()
}

/// Whether `domain` exists and is active.
pub async fn domain_is_active(
    client: &impl GenericClient,
    domain: &str,
) -> Result<bool, QueryError> {
    let statement = client
        .prepare_cached("SELECT 1 FROM domains WHERE name = $1 AND is_active")
        .await
        .map_err(db_err("preparing the domain check"))?;
    Ok(client
        .query_opt(&statement, &[&domain])
        .await
        .map_err(db_err("checking a domain"))?
        .is_some())
}

/// The active group `group_name` of `domain`; with `member`, only if that user belongs to it.
pub async fn find_session_group(
    client: &impl GenericClient,
    domain: &str,
    group_name: &str,
    member: Option<Uuid>,
) -> Result<Option<Uuid>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT g.id FROM groups g
             WHERE g.domain_name = $1 AND g.name = $2 AND g.is_active
               AND ($3::uuid IS NULL OR EXISTS (
                   SELECT 1 FROM association_groups_users a
                   WHERE a.group_id = g.id AND a.user_id = $3))",
        )
        .await
        .map_err(db_err("preparing the session group lookup"))?;
    let row = client
        .query_opt(&statement, &[&domain, &group_name, &member])
        .await
        .map_err(db_err("looking up the session's group"))?;
    row.map(|row| row.read(0)).transpose()
}

/// `(name, protocol, container_ports, ...)` of the main kernel, for the create reply.
pub async fn main_kernel_service_ports(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<Option<Value>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT service_ports FROM kernels WHERE session_id = $1 AND cluster_role = 'main'
             ORDER BY cluster_idx LIMIT 1",
        )
        .await
        .map_err(db_err("preparing the service port lookup"))?;
    let row = client
        .query_opt(&statement, &[&session_id])
        .await
        .map_err(db_err("reading service ports"))?;
    Ok(match row {
        Some(row) => row.read(0)?,
        None => None,
    })
}

/// Who a session or kernel event is about, for filtering `GET /events/session` streams.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSubject {
    pub session_id: Uuid,
    pub session_name: String,
    pub access_key: Option<String>,
    pub domain_name: String,
    pub group_id: Uuid,
    pub user_uuid: Uuid,
    pub kernel_id: Uuid,
    /// Kernel events only.
    pub cluster_role: Option<String>,
    pub cluster_idx: Option<i32>,
}

/// The subject of a kernel event (`None` when the kernel is unknown here).
pub async fn kernel_event_subject(
    client: &impl GenericClient,
    kernel_id: Uuid,
) -> Result<Option<EventSubject>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT session_id, session_name, access_key, domain_name, group_id, user_uuid, id,
                    cluster_role, cluster_idx
             FROM kernels WHERE id = $1",
        )
        .await
        .map_err(db_err("preparing the kernel event lookup"))?;
    let row = client
        .query_opt(&statement, &[&kernel_id])
        .await
        .map_err(db_err("looking up a kernel event's session"))?;
    row.map(|row| {
        Ok(EventSubject {
            session_id: row.read(0)?,
            session_name: row.read::<_, Option<String>>(1)?.unwrap_or_default(),
            access_key: row.read(2)?,
            domain_name: row.read(3)?,
            group_id: row.read(4)?,
            user_uuid: row.read(5)?,
            kernel_id: row.read(6)?,
            cluster_role: Some(row.read(7)?),
            cluster_idx: Some(row.read(8)?),
        })
    })
    .transpose()
}

/// The subject of a session event: the session and its main kernel.
pub async fn session_event_subject(
    client: &impl GenericClient,
    session_id: Uuid,
) -> Result<Option<EventSubject>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT s.id, s.name, s.access_key, s.domain_name, s.group_id, s.user_uuid, k.id
             FROM sessions s JOIN kernels k ON k.session_id = s.id AND k.cluster_role = 'main'
             WHERE s.id = $1 ORDER BY k.cluster_idx LIMIT 1",
        )
        .await
        .map_err(db_err("preparing the session event lookup"))?;
    let row = client
        .query_opt(&statement, &[&session_id])
        .await
        .map_err(db_err("looking up a session event's session"))?;
    row.map(|row| {
        Ok(EventSubject {
            session_id: row.read(0)?,
            session_name: row.read::<_, Option<String>>(1)?.unwrap_or_default(),
            access_key: row.read(2)?,
            domain_name: row.read(3)?,
            group_id: row.read(4)?,
            user_uuid: row.read(5)?,
            kernel_id: row.read(6)?,
            cluster_role: None,
            cluster_idx: None,
        })
    })
    .transpose()
}

/// The raw material of a kernel's dotfiles: the keypair's SSH keypair and the msgpack dotfile
/// lists of the keypair, its group and its domain.
#[derive(Clone, Default)]
pub struct DotfileSources {
    pub ssh_public_key: Option<String>,
    pub ssh_private_key: Option<String>,
    pub keypair_dotfiles: Vec<u8>,
    pub group_dotfiles: Vec<u8>,
    pub domain_dotfiles: Vec<u8>,
}

impl std::fmt::Debug for DotfileSources {
    // The SSH private key must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DotfileSources").finish_non_exhaustive()
    }
}

/// Reads the dotfile sources of `access_key`, `group_id` and `domain`.
pub async fn dotfile_sources(
    client: &impl GenericClient,
    access_key: &str,
    group_id: Uuid,
    domain: &str,
) -> Result<DotfileSources, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT (SELECT ssh_public_key FROM keypairs WHERE access_key = $1),
                    (SELECT ssh_private_key FROM keypairs WHERE access_key = $1),
                    (SELECT dotfiles FROM keypairs WHERE access_key = $1),
                    (SELECT dotfiles FROM groups WHERE id = $2),
                    (SELECT dotfiles FROM domains WHERE name = $3)",
        )
        .await
        .map_err(db_err("preparing the dotfile lookup"))?;
    let row = client
        .query_one(&statement, &[&access_key, &group_id, &domain])
        .await
        .map_err(db_err("reading dotfiles"))?;
    Ok(DotfileSources {
        ssh_public_key: row.read(0)?,
        ssh_private_key: row.read(1)?,
        keypair_dotfiles: row.read::<_, Option<Vec<u8>>>(2)?.unwrap_or_default(),
        group_dotfiles: row.read::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
        domain_dotfiles: row.read::<_, Option<Vec<u8>>>(4)?.unwrap_or_default(),
    })
}

/// Sessions whose main kernel is placed and not finished (`active_sessions` of
/// `GET /manager/status`).
pub async fn count_active_sessions(client: &impl GenericClient) -> Result<i64, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT count(*) FROM kernels WHERE cluster_role = 'main'
             AND status NOT IN ('TERMINATED', 'PENDING', 'CANCELLED')",
        )
        .await
        .map_err(db_err("preparing the active session count"))?;
    client
        .query_one(&statement, &[])
        .await
        .map_err(db_err("counting active sessions"))?
        .read(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_escape_like_wildcards() {
        assert_eq!(prefix_pattern("sess_1"), "sess\\_1%");
        assert_eq!(prefix_pattern("100%"), "100\\%%");
        assert_eq!(prefix_pattern("ab"), "ab%");
    }

    #[test]
    fn only_text_some_uuid_starts_with_is_looked_up_as_an_id() {
        let id = Uuid::parse_str("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
        assert_eq!(
            IdReference::of("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
            IdReference::Whole(id)
        );
        for prefix in ["0", "0f1e2d3c", "0f1e2d3c-", "0f1e2d3c-4b5a-69", "ABCDEF"] {
            assert_eq!(IdReference::of(prefix), IdReference::Prefix, "{prefix}");
        }
        for name in [
            "",
            "e2e-1",
            "my-session",
            "sess_1",
            "0f1e2d3c4b5a",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg",
        ] {
            assert_eq!(IdReference::of(name), IdReference::NotAnId, "{name}");
        }
    }
}
