//! `POST /session` (`create_from_params`): checks the request, resolves the image, the
//! owner's group and scaling group and the kernels' resources, has the scheduler store the
//! session and its kernels PENDING (`EnqueueSession`: one transaction, then `session_enqueued`),
//! and (unless `enqueueOnly`) waits for the scheduler to start it.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use bai_schema::enums::{SessionStatus, UserRole};
use bai_schema::queries::image::{
    ImageRow, domain_allowed_registries, find_image_by_alias, find_images_by_canonical,
};
use bai_schema::queries::keypair::{
    KeypairResourcePolicy, find_bootstrap_script, find_resource_policy,
};
use bai_schema::queries::scaling_group::{GroupRef, allowed_scaling_groups, allows_session_type};
use bai_schema::queries::session::{
    DotfileSources, MAIN_ROLE, NewKernel, NewSession, domain_is_active, dotfile_sources,
    find_session_group, main_kernel_service_ports, session_status,
};
use bai_schema::queries::session_enqueue::{Enqueued, ExistingSession, find_existing_session};
use bai_schema::slots::ResourceSlot;
use chrono::Utc;
use serde_json::{Value, json};
use uuid::Uuid;

use super::find_session;
use crate::compat::token::token_urlsafe;
use crate::facade::auth::Authenticated;
use crate::facade::auth::scope::{AccessKeyScope, access_key_scope};
use crate::facade::params::ApiParams;
use crate::facade::pipeline::ApiVersion;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::{db_client, etcd_failed, query_failed};
use crate::facade::session::control::{
    EnqueueSession, SessionQueue, queue_problem, scheduler_missing, scheduler_unreachable,
};
use crate::facade::session::dotfiles::internal_data;
use crate::facade::session::image_ref::{
    manager_architecture, normalize_architecture, request_image_ref,
};
use crate::facade::session::request::{CreationRequest, check_agent_list, parse_creation_request};
use crate::facade::session::resources::{check_policy_limits, image_slot_ranges, kernel_request};
use crate::facade::state::AppState;
use crate::storage::StorageBroker;
use crate::storage::mounts::{KERNEL_HOME, MountScope, resolve_session_mounts};

/// How often a waiting `POST /session` (not `enqueueOnly`) looks whether the session started.
/// Half a second keeps the reply prompt without loading the database (one indexed read).
pub const START_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The image label marking system (private) images, which may use private scaling groups.
const ROLE_LABEL: &str = "ai.backend.role";

/// What a caller inside the manager adds to a creation request that clients cannot ask for.
#[derive(Debug, Default)]
pub struct CreationExtras {
    /// Merged into every kernel's `internal_data` over the dotfiles (e.g. the image importer's
    /// `docker_credentials` and `block_service_ports`).
    pub internal_data: serde_json::Map<String, Value>,
    /// A system container: the owner's bootstrap script and dotfiles are not put in it.
    pub without_user_setup: bool,
}

/// The outcome of a creation request.
pub enum Creation {
    /// A new session: the reply's body (201) and its main kernel.
    New { reply: Value, main_kernel_id: Uuid },
    /// The request named a live session it may reuse: the reply to send as it is.
    Existing(HttpResponse),
}

/// `POST /session`.
pub async fn create(
    caller: Authenticated,
    params: ApiParams,
    version: ApiVersion,
    state: web::Data<AppState>,
    storage: Option<web::Data<StorageBroker>>,
    queue: Option<web::Data<SessionQueue>>,
) -> Result<HttpResponse, Problem> {
    let extras = CreationExtras::default();
    match create_session(caller, params, version, state, storage, queue, extras).await? {
        Creation::New { reply, .. } => Ok(reply::json_with_status(StatusCode::CREATED, &reply)),
        Creation::Existing(response) => Ok(response),
    }
}

/// Creates a session as `POST /session` does, with `extras` on top of the request.
pub async fn create_session(
    caller: Authenticated,
    params: ApiParams,
    version: ApiVersion,
    state: web::Data<AppState>,
    storage: Option<web::Data<StorageBroker>>,
    queue: Option<web::Data<SessionQueue>>,
    extras: CreationExtras,
) -> Result<Creation, Problem> {
    let request = parse_creation_request(&params, version, &manager_architecture(), Utc::now())?;
    check_agent_list(&request, caller.is_superadmin)?;
    let client = db_client(&state).await?;
    let scope = access_key_scope(&caller, &client, request.owner_access_key.as_deref()).await?;
    slog::info!(state.log, "GET_OR_CREATE";
        "access_key" => &scope.requester, "owner" => &scope.owner,
        "image" => &request.image, "session" => &request.session_name);
    let failed = |doing| query_failed(&state, doing);

    let image = resolve_image(&client, &request, &state).await?;
    let canonical = image.name.clone();

    if let Some(existing) = find_existing_session(&client, &request.session_name, &scope.owner)
        .await
        .map_err(failed("looking up an existing session"))?
    {
        return reuse_existing(
            &client,
            existing,
            &request,
            &canonical,
            &scope.owner,
            &state,
        )
        .await
        .map(Creation::Existing);
    }

    let owner = resolve_owner(&caller, &scope, &request, &client, &state).await?;
    if request.cluster_size > owner.policy.max_containers_per_session {
        return Err(Problem::new(ProblemKind::QuotaExceeded).with_msg(format!(
            "You cannot create session with more than {} containers.",
            owner.policy.max_containers_per_session
        )));
    }
    let public_only = image
        .labels
        .get(ROLE_LABEL)
        .and_then(Value::as_str)
        .is_none_or(|role| !role.eq_ignore_ascii_case("system"));
    let (scaling_group, use_host_network) = check_scaling_group(
        &client,
        &request,
        &scope.owner,
        owner.group_id,
        public_only,
        &state,
    )
    .await?;

    let vfolder_mounts = resolve_mounts(
        &client,
        storage.as_ref().map(|s| s.get_ref()),
        &request,
        &owner,
    )
    .await?;
    let known = state
        .pipeline
        .slot_types
        .current(&state.etcd)
        .await
        .map_err(etcd_failed(&state, "reading the resource slot types"))?;
    let ranges = image_slot_ranges(&image.resources, &known);
    let kernel_resources = kernel_request(
        request.config.resources.as_ref(),
        &request.config.resource_opts,
        &request.config.legacy,
        &image.labels,
        &ranges,
        &known,
    )?;
    let mut session_slots = ResourceSlot::new();
    for _ in 0..request.cluster_size {
        session_slots = &session_slots + &kernel_resources.requested;
    }
    check_policy_limits(
        &session_slots,
        &owner.policy.total_resource_slots,
        owner.policy.default_for_unspecified == bai_schema::enums::DefaultForUnspecified::Unlimited,
        &known,
    )?;

    let bootstrap_script = match request.bootstrap_script.clone().filter(|s| !s.is_empty()) {
        Some(script) => Some(script),
        None if extras.without_user_setup => None,
        None => Some(
            find_bootstrap_script(&client, &scope.owner)
                .await
                .map_err(failed("reading the keypair's bootstrap script"))?,
        )
        .filter(|s| !s.is_empty()),
    };
    let sources = if extras.without_user_setup {
        DotfileSources::default()
    } else {
        dotfile_sources(&client, &scope.owner, owner.group_id, &request.domain)
            .await
            .map_err(failed("reading dotfiles"))?
    };
    let mut internal = internal_data(&sources)?;
    if let Value::Object(data) = &mut internal {
        data.extend(extras.internal_data);
    }
    check_dotfile_conflicts(&internal, &vfolder_mounts)?;
    let dependencies = resolve_dependencies(&client, &request, &scope.owner, &state).await?;

    let session_id = Uuid::new_v4();
    let creation_id = new_creation_id();
    let mut resource_opts = request.config.resource_opts.clone();
    resource_opts.insert("shmem".into(), json!(kernel_resources.shmem_bytes));
    let environ: Vec<String> = request
        .config
        .environ
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let kernels: Vec<NewKernel> = (0..request.cluster_size)
        .map(|index| {
            let (role, idx) = if index == 0 {
                (MAIN_ROLE, 1)
            } else {
                ("sub", index)
            };
            NewKernel {
                id: Uuid::new_v4(),
                agent: request
                    .config
                    .agent_list
                    .as_ref()
                    .and_then(|agents| agents.get(index as usize).or(agents.first()))
                    .cloned(),
                cluster_role: role.to_owned(),
                cluster_idx: idx,
                local_rank: index,
                cluster_hostname: format!("{role}{idx}"),
                image: canonical.clone(),
                architecture: image.architecture.clone(),
                registry: image.registry.clone(),
                requested_slots: kernel_resources.requested.clone(),
                resource_opts: Value::Object(resource_opts.clone()),
                environ: environ.clone(),
                bootstrap_script: bootstrap_script.clone(),
                startup_command: request.startup_command.clone(),
                preopen_ports: request.config.preopen_ports.clone(),
                internal_data: internal.clone(),
            }
        })
        .collect();
    let main_kernel_id = kernels.first().map(|kernel| kernel.id).unwrap_or_default();
    let session = NewSession {
        id: session_id,
        creation_id,
        name: request.session_name.clone(),
        session_type: request.session_type.stored_name().to_owned(),
        cluster_mode: request.cluster_mode.clone(),
        cluster_size: request.cluster_size,
        scaling_group,
        domain_name: request.domain.clone(),
        group_id: owner.group_id,
        user_uuid: owner.user_uuid,
        access_key: scope.owner.clone(),
        images: vec![canonical.clone()],
        tag: request.tag.clone(),
        requested_slots: session_slots,
        mount_names: vfolder_mounts
            .iter()
            .filter_map(|mount| mount.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect(),
        vfolder_mounts: Value::Array(vfolder_mounts),
        environ: Value::Object(request.config.environ.clone()),
        bootstrap_script,
        use_host_network,
        starts_at: request.starts_at,
        callback_url: request.callback_url.clone(),
        startup_command: request.startup_command.clone(),
        dependencies,
    };

    // The scheduler stores it on a connection of its own: this one goes back to the pool, and
    // waiting for the start below must not hold one either.
    drop(client);
    let Some(queue) = queue else {
        return Err(scheduler_missing("creating a session"));
    };
    let enqueued = crate::supervision::tracked(
        crate::scheduler::actor::ACTOR_NAME,
        queue.enqueue.send(EnqueueSession {
            pool: state.db.clone(),
            session,
            kernels,
        }),
    )
    .await
    .map_err(scheduler_unreachable)?
    .map_err(|error| queue_problem(&state, "storing the session", error))?;
    if let Enqueued::NameTaken(existing) = enqueued {
        // A concurrent create of the same name won: answer as if this one had come second.
        let client = db_client(&state).await?;
        return reuse_existing(
            &client,
            existing,
            &request,
            &canonical,
            &scope.owner,
            &state,
        )
        .await
        .map(Creation::Existing);
    }

    let mut reply = json!({
        "sessionId": session_id.to_string(),
        "sessionName": request.session_name,
        "status": "PENDING",
        "servicePorts": [],
        "created": true,
    });
    if !request.enqueue_only {
        wait_for_start(&state, session_id, request.max_wait_seconds, &mut reply).await?;
    }
    Ok(Creation::New {
        reply,
        main_kernel_id,
    })
}

/// The reply for a live session that already has the requested name (`get_or_create`): 200
/// with its state when the request allows reuse and names the same image, else 400
/// `session-already-exists` with its id.
async fn reuse_existing(
    client: &deadpool_postgres::Object,
    existing: ExistingSession,
    request: &CreationRequest,
    canonical_image: &str,
    owner: &str,
    state: &AppState,
) -> Result<HttpResponse, Problem> {
    let same_image = existing.images.first().map(String::as_str) == Some(canonical_image);
    if !same_image || !request.reuse {
        return Err(Problem::new(ProblemKind::SessionAlreadyExists)
            .with_data(json!({"existingSessionId": existing.id.to_string()})));
    }
    let found = find_session(client, &existing.id.to_string(), owner, false, state).await?;
    let detail = super::load_detail(client, found.id, state).await?;
    Ok(reply::json(&json!({
        "sessionId": existing.id.to_string(),
        "sessionName": request.session_name,
        "status": detail.status.as_str(),
        "service_ports": detail.service_ports,
        "created": false,
    })))
}

/// 22 URL-safe characters, as `secrets.token_urlsafe(16)`.
fn new_creation_id() -> String {
    token_urlsafe::<16>()
}

/// The image row the request names, as a reference or an alias, from a registry the domain
/// allows; 404 "No such environment image." otherwise.
async fn resolve_image(
    client: &deadpool_postgres::Object,
    request: &CreationRequest,
    state: &AppState,
) -> Result<ImageRow, Problem> {
    let failed = |doing| query_failed(state, doing);
    let mut searched = Vec::new();
    let mut found = None;
    if let Ok(reference) = request_image_ref(&request.image) {
        let canonical = reference.canonical();
        searched.push(format!("ref:{canonical:?}"));
        let architecture = normalize_architecture(&request.architecture);
        found = find_images_by_canonical(client, &canonical, &architecture)
            .await
            .map_err(failed("looking up the image"))?
            .into_iter()
            .next();
    }
    if found.is_none() {
        searched.push(format!("alias:{:?}", request.image));
        found = find_image_by_alias(client, &request.image, &request.architecture)
            .await
            .map_err(failed("looking up the image alias"))?;
    }
    let Some(image) = found else {
        return Err(Problem::not_found("environment image")
            .with_msg(format!("Unknown image references: {}", searched.join(", "))));
    };
    let allowed = domain_allowed_registries(client, &request.domain)
        .await
        .map_err(failed("reading the domain's registries"))?
        .unwrap_or_default();
    if !allowed.contains(&image.registry) {
        return Err(Problem::not_found("environment image")
            .with_msg("unknown alias or disallowed registry"));
    }
    Ok(image)
}

/// The owner of the new session, its group and its resource policy (`_query_userinfo`).
struct SessionOwner {
    user_uuid: Uuid,
    /// The role the mount permissions are checked with (the requester's, as the original).
    role: UserRole,
    group_id: Uuid,
    policy: KeypairResourcePolicy,
}

/// The session's folders (`prepare_vfolder_mounts`): requested ones and the owner's
/// dot-prefixed ones, through the storage broker. Without a broker only a session that asks
/// for no folder can be created.
async fn resolve_mounts(
    client: &deadpool_postgres::Object,
    storage: Option<&StorageBroker>,
    request: &CreationRequest,
    owner: &SessionOwner,
) -> Result<Vec<Value>, Problem> {
    let Some(storage) = storage else {
        if request.config.mounts.is_empty() && request.config.mount_map.is_empty() {
            return Ok(Vec::new());
        }
        return Err(Problem::new(ProblemKind::QueryNotImplemented)
            .with_msg("mounting virtual folders needs the storage broker, which is not running"));
    };
    let scope = MountScope {
        user: owner.user_uuid,
        role: owner.role,
        domain_name: &request.domain,
        group: Some(owner.group_id),
        policy_allowed_hosts: &owner.policy.allowed_vfolder_hosts,
        policy_name: &owner.policy.name,
    };
    Ok(resolve_session_mounts(
        client,
        &storage.current(),
        &scope,
        &request.config.mounts,
        &request.config.mount_map,
    )
    .await?)
}

/// A dotfile may not land where a folder is mounted (`prepare_dotfiles`).
fn check_dotfile_conflicts(internal: &Value, mounts: &[Value]) -> Result<(), Problem> {
    let kernel_paths: Vec<&str> = mounts
        .iter()
        .filter_map(|mount| mount.get("kernel_path").and_then(Value::as_str))
        .collect();
    let dotfiles = internal
        .get("dotfiles")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for dotfile in dotfiles {
        let Some(path) = dotfile.get("path").and_then(Value::as_str) else {
            continue;
        };
        let absolute = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("{KERNEL_HOME}/{path}")
        };
        if kernel_paths.contains(&absolute.as_str()) {
            return Err(Problem::invalid_params(format!(
                "There is a kernel-side path from vfolders that conflicts with a dotfile '{path}'."
            )));
        }
    }
    Ok(())
}

async fn resolve_owner(
    caller: &Authenticated,
    scope: &AccessKeyScope,
    request: &CreationRequest,
    client: &deadpool_postgres::Object,
    state: &AppState,
) -> Result<SessionOwner, Problem> {
    let failed = |doing| query_failed(state, doing);
    let requester_role = caller.role();
    let (user_uuid, owner_domain, owner_role, policy) = match &scope.delegated_owner {
        Some(owner) => {
            let policy = find_resource_policy(client, &owner.resource_policy)
                .await
                .map_err(failed("reading the owner's resource policy"))?
                .ok_or_else(|| {
                    Problem::internal(format!(
                        "the owner's resource policy {:?} does not exist",
                        owner.resource_policy
                    ))
                })?;
            (
                owner.user_uuid,
                owner.domain_name.clone().unwrap_or_default(),
                owner.role,
                policy,
            )
        }
        // The original treats one's own sessions as a plain user's: group membership counts.
        None => (
            caller.user_uuid(),
            caller.domain_name().to_owned(),
            UserRole::User,
            caller.resource_policy.clone(),
        ),
    };
    if !domain_is_active(client, &owner_domain)
        .await
        .map_err(failed("checking the owner's domain"))?
    {
        return Err(Problem::invalid_params("Invalid domain"));
    }
    let group_id = match owner_role {
        UserRole::Superadmin => {
            find_session_group(client, &request.domain, &request.group, None).await
        }
        UserRole::Admin => {
            if request.domain != owner_domain {
                return Err(Problem::invalid_params(
                    "You can only set the domain to the owner's domain.",
                ));
            }
            find_session_group(client, &owner_domain, &request.group, None).await
        }
        UserRole::User | UserRole::Monitor => {
            if request.domain != owner_domain {
                return Err(Problem::invalid_params(
                    "You can only set the domain to your domain.",
                ));
            }
            find_session_group(client, &owner_domain, &request.group, Some(user_uuid)).await
        }
    }
    .map_err(failed("looking up the group"))?
    .ok_or_else(|| Problem::invalid_params("Invalid group"))?;
    Ok(SessionOwner {
        user_uuid,
        role: requester_role,
        group_id,
        policy,
    })
}

/// The scaling group of the session (`check_scaling_group`): the requested one if allowed
/// and open to the session type, else the first allowed one that is.
async fn check_scaling_group(
    client: &deadpool_postgres::Object,
    request: &CreationRequest,
    owner_access_key: &str,
    group_id: Uuid,
    public_only: bool,
    state: &AppState,
) -> Result<(String, bool), Problem> {
    let candidates: Vec<_> = allowed_scaling_groups(
        client,
        &request.domain,
        &GroupRef::Id(group_id),
        owner_access_key,
    )
    .await
    .map_err(query_failed(state, "listing the allowed scaling groups"))?
    .into_iter()
    .filter(|group| !public_only || group.is_public)
    .collect();
    let not_found = |msg: String| Problem::not_found("scaling group").with_msg(msg);
    if candidates.is_empty() {
        return Err(not_found(
            "You have no scaling groups allowed to use.".into(),
        ));
    }
    let session_type = request.session_type.value();
    let chosen = match &request.config.scaling_group {
        None => candidates
            .iter()
            .find(|group| allows_session_type(&group.scheduler_opts, session_type))
            .ok_or_else(|| {
                not_found(format!(
                    "No scaling groups accept the session type '{session_type}'."
                ))
            })?,
        Some(wanted) => {
            let group = candidates.iter().find(|group| &group.name == wanted).ok_or_else(|| {
                not_found(format!(
                    "The scaling group '{wanted}' does not exist or you do not have access to the scaling group '{wanted}'."
                ))
            })?;
            if !allows_session_type(&group.scheduler_opts, session_type) {
                return Err(not_found(format!(
                    "The scaling group '{wanted}' does not accept the session type '{session_type}'. "
                )));
            }
            group
        }
    };
    Ok((chosen.name.clone(), chosen.use_host_network))
}

/// The sessions the new one depends on, by id or name among the owner's (dead ones too).
async fn resolve_dependencies(
    client: &deadpool_postgres::Object,
    request: &CreationRequest,
    owner: &str,
    state: &AppState,
) -> Result<Vec<Uuid>, Problem> {
    let mut ids = Vec::with_capacity(request.dependencies.len());
    for reference in &request.dependencies {
        let found = find_session(client, reference, owner, true, state)
            .await
            .map_err(|_| {
                Problem::invalid_params("Unknown session ID or name in the dependency list")
                    .with_data(json!({"session_ref": reference}))
            })?;
        ids.push(found.id);
    }
    Ok(ids)
}

/// The longest a `POST /session` waits for the start. The original waits as long as the
/// client asks, and forever for `maxWaitSeconds: 0`; a request held for hours ties up a
/// client connection and a worker's attention for nothing, so the wait stops here and the
/// reply says `TIMEOUT` (as when `maxWaitSeconds` elapses): the session keeps starting, and
/// the client follows it with `GET /session/{name}` or the event stream.
pub const MAX_START_WAIT: Duration = Duration::from_secs(15 * 60);

/// How long to wait for `maxWaitSeconds` (0 means "as long as allowed"): never more than
/// [`MAX_START_WAIT`], whatever the number.
pub fn start_wait(max_wait_seconds: i64) -> Duration {
    match u64::try_from(max_wait_seconds) {
        Ok(seconds) if seconds > 0 => Duration::from_secs(seconds).min(MAX_START_WAIT),
        _ => MAX_START_WAIT,
    }
}

/// Waits until the scheduler starts the session (or gives up on it), up to
/// [`start_wait`]`(max_wait_seconds)`, and fills in the reply's status and service ports. The
/// session is committed by now, so a failed poll does not fail the request: it counts as "not
/// started yet", and the reply says `TIMEOUT` if no poll succeeds in time. No connection is held
/// between polls.
async fn wait_for_start(
    state: &AppState,
    session_id: Uuid,
    max_wait_seconds: i64,
    reply: &mut Value,
) -> Result<(), Problem> {
    let deadline = tokio::time::Instant::now() + start_wait(max_wait_seconds);
    // One warning per request, not one per poll, while the database is away.
    let mut warned = false;
    loop {
        if tokio::time::Instant::now() >= deadline {
            reply["status"] = json!("TIMEOUT");
            return Ok(());
        }
        tokio::time::sleep(START_POLL_INTERVAL).await;
        match poll_start(state, session_id).await {
            Ok(Some((status, ports))) => {
                reply["status"] = json!(status.as_str());
                if status == SessionStatus::Running {
                    reply["servicePorts"] = json!(service_ports_reply(ports.as_ref()));
                }
                return Ok(());
            }
            Ok(None) => continue,
            Err(problem) if !warned => {
                warned = true;
                slog::warn!(state.log, "cannot see whether a new session started; still waiting";
                    "session" => %session_id, "error" => %problem);
            }
            Err(_) => {}
        }
    }
}

/// The session's status once it left the starting states (with the main kernel's service
/// ports when it runs), or `None` while it is still starting.
async fn poll_start(
    state: &AppState,
    session_id: Uuid,
) -> Result<Option<(SessionStatus, Option<Value>)>, Problem> {
    let client = db_client(state).await?;
    let status = session_status(&client, session_id)
        .await
        .map_err(query_failed(state, "reading the session status"))?
        .unwrap_or(SessionStatus::Cancelled);
    match status {
        SessionStatus::Pending
        | SessionStatus::Scheduled
        | SessionStatus::Preparing
        | SessionStatus::Pulling => Ok(None),
        SessionStatus::Running => {
            let ports = main_kernel_service_ports(&client, session_id)
                .await
                .map_err(query_failed(state, "reading service ports"))?;
            Ok(Some((status, ports)))
        }
        other => Ok(Some((other, None))),
    }
}

/// `kernels.service_ports` as the create reply shows them.
fn service_ports_reply(ports: Option<&Value>) -> Vec<Value> {
    let Some(Value::Array(items)) = ports else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| {
            let mut port = json!({
                "name": item.get("name").cloned().unwrap_or(Value::Null),
                "protocol": item.get("protocol").cloned().unwrap_or(Value::Null),
                "ports": item.get("container_ports").cloned().unwrap_or(json!([])),
            });
            for optional in ["url_template", "allowed_arguments", "allowed_envs"] {
                if let Some(value) = item.get(optional) {
                    port[optional] = value.clone();
                }
            }
            port
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_wait_is_capped_whatever_the_request_asks() {
        assert_eq!(start_wait(5), Duration::from_secs(5));
        assert_eq!(start_wait(0), MAX_START_WAIT);
        assert_eq!(start_wait(-1), MAX_START_WAIT);
        assert_eq!(start_wait(i64::MAX), MAX_START_WAIT);
        assert_eq!(start_wait(i64::MAX - 1), MAX_START_WAIT);
        assert_eq!(
            start_wait(MAX_START_WAIT.as_secs() as i64 + 1),
            MAX_START_WAIT
        );
    }

    #[test]
    fn creation_ids_are_22_url_safe_characters() {
        let id = new_creation_id();
        assert_eq!(id.len(), 22);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(id, new_creation_id());
    }

    #[test]
    fn service_ports_show_the_container_ports() {
        let ports = json!([{"name": "jupyter", "protocol": "http", "container_ports": [8080],
                            "host_ports": [30001], "url_template": "x"}]);
        assert_eq!(
            service_ports_reply(Some(&ports)),
            vec![
                json!({"name": "jupyter", "protocol": "http", "ports": [8080], "url_template": "x"})
            ]
        );
        assert!(service_ports_reply(None).is_empty());
    }
}
