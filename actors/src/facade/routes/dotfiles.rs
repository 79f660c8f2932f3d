//! Dotfiles and the bootstrap script: `/user-config/dotfiles` (a keypair's, or with
//! `owner_access_key` another keypair's as an admin), `/user-config/bootstrap-script`,
//! `/group-config/dotfiles` (a project's) and `/domain-config/dotfiles` (a domain's), as the
//! original's `userconfig.py`, `groupconfig.py` and `domainconfig.py`. New kernels receive
//! them merged (see `facade::session::dotfiles`).

use actix_web::{HttpResponse, web};
use bai_schema::queries::dotfiles::{self as queries, DotfileOwner, ProjectRef};
use bai_schema::queries::vfolder::{AccessQuery, NameFilter, accessible_vfolders};
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::auth::scope::access_key_scope;
use crate::facade::dotfile_list::{self, Dotfile, MAXIMUM_DOTFILE_SIZE};
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::state::AppState;

pub fn register(cfg: &mut web::ServiceConfig) {
    let user = || Access::user().read_allowed();
    let admin = || Access::admin().read_allowed();
    cfg.service(
        web::resource("/user-config/dotfiles")
            .route(web::post().to(user_create).wrap(user()))
            .route(web::get().to(user_list_or_get).wrap(user()))
            .route(web::patch().to(user_update).wrap(user()))
            .route(web::delete().to(user_delete).wrap(user())),
    );
    cfg.service(
        web::resource("/user-config/bootstrap-script")
            .route(web::post().to(update_bootstrap_script).wrap(user()))
            .route(web::get().to(get_bootstrap_script).wrap(user())),
    );
    cfg.service(
        web::resource("/group-config/dotfiles")
            .route(web::post().to(group_create).wrap(admin()))
            .route(web::get().to(group_list_or_get).wrap(user()))
            .route(web::patch().to(group_update).wrap(admin()))
            .route(web::delete().to(group_delete).wrap(admin())),
    );
    cfg.service(
        web::resource("/domain-config/dotfiles")
            .route(web::post().to(domain_create).wrap(admin()))
            .route(web::get().to(domain_list_or_get).wrap(user()))
            .route(web::patch().to(domain_update).wrap(admin()))
            .route(web::delete().to(domain_delete).wrap(admin())),
    );
}

/// The dotfile a create or update names.
fn dotfile_param(params: &ApiParams) -> Result<Dotfile, Problem> {
    let data = params.string(&["data"])?;
    if data.chars().count() > MAXIMUM_DOTFILE_SIZE {
        return Err(invalid_param(
            "data",
            format!("String is longer than {MAXIMUM_DOTFILE_SIZE} characters"),
        ));
    }
    let dotfile = Dotfile {
        path: params.string(&["path"])?,
        perm: params.string(&["permission"])?,
        data,
    };
    dotfile_list::validate(&dotfile).map_err(|e| invalid_param("permission", e.to_string()))?;
    Ok(dotfile)
}

/// What a change does to the stored list.
enum Change {
    Add(Dotfile),
    Replace(Dotfile),
    Remove(String),
}

/// Applies `change` to `owner`'s dotfiles in one transaction (the row is locked while the
/// list is rewritten, so concurrent changes do not lose each other).
async fn apply(
    state: &AppState,
    client: &mut deadpool_postgres::Object,
    owner: DotfileOwner<'_>,
    owner_label: &str,
    not_found: fn() -> Problem,
    change: Change,
) -> Result<(), Problem> {
    let transaction = client
        .transaction()
        .await
        .map_err(query_failed(state, "starting a transaction"))?;
    let stored = queries::read_dotfiles(&transaction, owner, true)
        .await
        .map_err(query_failed(state, "reading dotfiles"))?
        .ok_or_else(not_found)?;
    let packed = match change {
        Change::Add(dotfile) => dotfile_list::add(&stored, owner_label, dotfile)?,
        Change::Replace(dotfile) => dotfile_list::replace(&stored, owner_label, dotfile)?,
        Change::Remove(path) => dotfile_list::remove(&stored, owner_label, &path)?,
    };
    queries::write_dotfiles(&transaction, owner, &packed)
        .await
        .map_err(query_failed(state, "writing dotfiles"))?;
    transaction
        .commit()
        .await
        .map_err(query_failed(state, "committing dotfiles"))?;
    Ok(())
}

/// The list form (`permission`), or with `path` the one dotfile as stored (`perm`).
async fn list_or_get(
    state: &AppState,
    client: &impl GenericClient,
    owner: DotfileOwner<'_>,
    owner_label: &str,
    not_found: fn() -> Problem,
    path: Option<String>,
) -> Result<HttpResponse, Problem> {
    let stored = queries::read_dotfiles(client, owner, false)
        .await
        .map_err(query_failed(state, "reading dotfiles"))?
        .ok_or_else(not_found)?;
    let dotfiles = dotfile_list::decode(&stored, owner_label)?;
    match path.filter(|p| !p.is_empty()) {
        Some(path) => {
            let dotfile = dotfiles
                .into_iter()
                .find(|d| d.path == path)
                .ok_or_else(|| Problem::not_found("dotfile"))?;
            Ok(reply::json(&dotfile))
        }
        None => {
            let list: Vec<Value> = dotfiles
                .iter()
                .map(|d| json!({"path": d.path, "permission": d.perm, "data": d.data}))
                .collect();
            Ok(reply::json(&list))
        }
    }
}

fn keypair_not_found() -> Problem {
    Problem::not_found("keypair")
}

fn group_not_found() -> Problem {
    Problem::not_found("user group (or project)")
}

fn domain_not_found() -> Problem {
    Problem::not_found("domain")
}

fn forbidden(msg: &str) -> Problem {
    Problem::new(ProblemKind::GenericForbidden).with_msg(msg)
}

/// The keypair a `/user-config` call acts on.
async fn owner_key(
    caller: &Authenticated,
    client: &impl GenericClient,
    params: &ApiParams,
) -> Result<String, Problem> {
    let owner = params.opt_string(&["owner_access_key"])?;
    Ok(access_key_scope(caller, client, owner.as_deref())
        .await?
        .owner)
}

async fn user_create(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let dotfile = dotfile_param(&params)?;
    let mut client = db_client(&state).await?;
    let owner = owner_key(&caller, &client, &params).await?;
    slog::info!(state.log, "USERCONFIG.CREATE";
        "ak" => &caller.access_key, "owner" => &owner, "path" => &dotfile.path);
    // A dotfile and a dot-prefixed folder would land on the same path in the container.
    let user_types = ["user".to_owned()];
    let same_name = accessible_vfolders(
        &client,
        &AccessQuery {
            names: NameFilter::Exact(&dotfile.path),
            ..AccessQuery::new(
                caller.user_uuid(),
                caller.role(),
                caller.domain_name(),
                &user_types,
            )
        },
    )
    .await
    .map_err(query_failed(&state, "checking the folder names"))?;
    if !same_name.is_empty() {
        return Err(Problem::invalid_params(
            "dotfile path conflicts with your dot-prefixed vFolder",
        ));
    }
    apply(
        &state,
        &mut client,
        DotfileOwner::Keypair(&owner),
        &format!("keypair {owner}"),
        keypair_not_found,
        Change::Add(dotfile),
    )
    .await?;
    Ok(reply::json(&json!({})))
}

async fn user_list_or_get(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let path = params.opt_string(&["path"])?;
    let client = db_client(&state).await?;
    let owner = owner_key(&caller, &client, &params).await?;
    slog::info!(state.log, "USERCONFIG.LIST_OR_GET"; "ak" => &caller.access_key, "owner" => &owner);
    list_or_get(
        &state,
        &client,
        DotfileOwner::Keypair(&owner),
        &format!("keypair {owner}"),
        keypair_not_found,
        path,
    )
    .await
}

async fn user_update(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let dotfile = dotfile_param(&params)?;
    let mut client = db_client(&state).await?;
    let owner = owner_key(&caller, &client, &params).await?;
    slog::info!(state.log, "USERCONFIG.UPDATE";
        "ak" => &caller.access_key, "owner" => &owner, "path" => &dotfile.path);
    apply(
        &state,
        &mut client,
        DotfileOwner::Keypair(&owner),
        &format!("keypair {owner}"),
        keypair_not_found,
        Change::Replace(dotfile),
    )
    .await?;
    Ok(reply::json(&json!({})))
}

async fn user_delete(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let path = params.string(&["path"])?;
    let mut client = db_client(&state).await?;
    let owner = owner_key(&caller, &client, &params).await?;
    slog::info!(state.log, "USERCONFIG.DELETE";
        "ak" => &caller.access_key, "owner" => &owner, "path" => &path);
    apply(
        &state,
        &mut client,
        DotfileOwner::Keypair(&owner),
        &format!("keypair {owner}"),
        keypair_not_found,
        Change::Remove(path),
    )
    .await?;
    Ok(reply::json(&json!({"success": true})))
}

/// `POST /user-config/bootstrap-script {script}`: stored stripped, at most 64 KiB.
async fn update_bootstrap_script(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let script = params.string(&["script"])?;
    if script.chars().count() > MAXIMUM_DOTFILE_SIZE {
        return Err(invalid_param(
            "script",
            format!("String is longer than {MAXIMUM_DOTFILE_SIZE} characters"),
        ));
    }
    slog::info!(state.log, "UPDATE_BOOTSTRAP_SCRIPT"; "ak" => &caller.access_key);
    let client = db_client(&state).await?;
    queries::write_bootstrap_script(&client, &caller.access_key, script.trim())
        .await
        .map_err(query_failed(&state, "writing the bootstrap script"))?;
    Ok(reply::json(&json!({})))
}

/// `GET /user-config/bootstrap-script`: the script as a JSON string.
async fn get_bootstrap_script(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    slog::info!(state.log, "USERCONFIG.GET_BOOTSTRAP_SCRIPT"; "ak" => &caller.access_key);
    let client = db_client(&state).await?;
    let script = bai_schema::queries::keypair::find_bootstrap_script(&client, &caller.access_key)
        .await
        .map_err(query_failed(&state, "reading the bootstrap script"))?;
    Ok(reply::json(&script))
}

/// The project a `/group-config` call names: `group` as an id, or as a name with `domain`.
async fn project_param(
    state: &AppState,
    client: &impl GenericClient,
    params: &ApiParams,
) -> Result<ProjectRef, Problem> {
    let group = params.string(&["group", "groupId", "group_id"])?;
    let domain = params.opt_string(&["domain"])?;
    let (id, name) = match Uuid::parse_str(&group) {
        Ok(id) => (Some(id), None),
        Err(_) => {
            if domain.is_none() {
                return Err(Problem::invalid_params("Missing parameter 'domain'"));
            }
            (None, Some(group.as_str()))
        }
    };
    queries::find_project(client, id, name, domain.as_deref())
        .await
        .map_err(query_failed(state, "looking up the project"))?
        .ok_or_else(group_not_found)
}

/// Admins change the dotfiles of their own domain's projects only.
fn check_admin_domain(caller: &Authenticated, domain: &str, verb: &str) -> Result<(), Problem> {
    if !caller.is_superadmin && caller.domain_name() != domain {
        return Err(forbidden(&format!(
            "Admins cannot {verb} group dotfiles of other domains"
        )));
    }
    Ok(())
}

async fn group_change(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
    verb: &'static str,
    change: Change,
) -> Result<(), Problem> {
    let mut client = db_client(&state).await?;
    let project = project_param(&state, &client, &params).await?;
    check_admin_domain(&caller, &project.domain_name, verb)?;
    slog::info!(state.log, "GROUPCONFIG.DOTFILE"; "verb" => verb, "group" => %project.id);
    apply(
        &state,
        &mut client,
        DotfileOwner::Group(project.id),
        &format!("project {}", project.id),
        group_not_found,
        change,
    )
    .await
}

async fn group_create(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let dotfile = dotfile_param(&params)?;
    group_change(state, caller, params, "create", Change::Add(dotfile)).await?;
    Ok(reply::json(&json!({})))
}

async fn group_update(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let dotfile = dotfile_param(&params)?;
    group_change(state, caller, params, "update", Change::Replace(dotfile)).await?;
    Ok(reply::json(&json!({})))
}

async fn group_delete(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let path = params.string(&["path"])?;
    group_change(state, caller, params, "delete", Change::Remove(path)).await?;
    Ok(reply::json(&json!({"success": true})))
}

/// `GET /group-config/dotfiles`: admins of the project's domain and its members.
async fn group_list_or_get(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let path = params.opt_string(&["path"])?;
    let client = db_client(&state).await?;
    let project = project_param(&state, &client, &params).await?;
    if !caller.is_superadmin {
        if caller.is_admin {
            if caller.domain_name() != project.domain_name {
                return Err(forbidden(
                    "Domain admins cannot access group dotfiles of other domains",
                ));
            }
        } else {
            let member = queries::is_project_member(&client, project.id, caller.user_uuid())
                .await
                .map_err(query_failed(&state, "checking the project membership"))?;
            if !member {
                return Err(forbidden(
                    "Users cannot access group dotfiles of other groups",
                ));
            }
        }
    }
    list_or_get(
        &state,
        &client,
        DotfileOwner::Group(project.id),
        &format!("project {}", project.id),
        group_not_found,
        path,
    )
    .await
}

async fn domain_change(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
    verb: &'static str,
    change: Change,
) -> Result<(), Problem> {
    let domain = params.string(&["domain"])?;
    if !caller.is_superadmin && caller.domain_name() != domain {
        return Err(forbidden(&format!(
            "Domain admins cannot {verb} dotfiles of other domains"
        )));
    }
    slog::info!(state.log, "DOMAINCONFIG.DOTFILE"; "verb" => verb, "domain" => &domain);
    let mut client = db_client(&state).await?;
    apply(
        &state,
        &mut client,
        DotfileOwner::Domain(&domain),
        &format!("domain {domain}"),
        domain_not_found,
        change,
    )
    .await
}

async fn domain_create(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let dotfile = dotfile_param(&params)?;
    domain_change(state, caller, params, "create", Change::Add(dotfile)).await?;
    Ok(reply::json(&json!({})))
}

async fn domain_update(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let dotfile = dotfile_param(&params)?;
    domain_change(state, caller, params, "update", Change::Replace(dotfile)).await?;
    Ok(reply::json(&json!({})))
}

async fn domain_delete(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let path = params.string(&["path"])?;
    domain_change(state, caller, params, "delete", Change::Remove(path)).await?;
    Ok(reply::json(&json!({"success": true})))
}

/// `GET /domain-config/dotfiles {domain, path?}`: the caller's own domain (any for superadmins).
async fn domain_list_or_get(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    let domain = params.string(&["domain"])?;
    let path = params.opt_string(&["path"])?;
    if !caller.is_superadmin && caller.domain_name() != domain {
        return Err(forbidden("Users cannot access dotfiles of other domains"));
    }
    let client = db_client(&state).await?;
    list_or_get(
        &state,
        &client,
        DotfileOwner::Domain(&domain),
        &format!("domain {domain}"),
        domain_not_found,
        path,
    )
    .await
}
