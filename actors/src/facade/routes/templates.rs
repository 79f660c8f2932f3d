//! `/template/session` and `/template/cluster`: session (task) and cluster templates, created
//! from a JSON payload (`{"session_templates": [{"template": ...}]}`, or one cluster template),
//! listed, read, replaced and deleted (deactivated), as the original's `session_template.py`
//! and `cluster_template.py`.
//!
//! Differences, on purpose: payloads must be JSON (YAML is not parsed: JSON is the subset both
//! accept); a template list shows a user its own templates and those of its projects (all for
//! superadmins) where the original listed every user's; a cluster template asked for as YAML
//! comes back as JSON text, which is valid YAML.

use actix_web::{HttpRequest, HttpResponse, web};
use bai_schema::enums::{TemplateType, UserRole};
use bai_schema::queries::session_template::{self as queries, NewTemplate, TemplateRow};
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::facade::access::Access;
use crate::facade::auth::Authenticated;
use crate::facade::auth::scope::access_key_scope;
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::Problem;
use crate::facade::reply;
use crate::facade::routes::vfolder_reply::python_datetime;
use crate::facade::routes::{db_client, query_failed};
use crate::facade::state::AppState;
use crate::facade::template_check::{check_cluster_template, check_task_template};

/// The largest payload accepted: templates are a few KiB; 1 MiB bounds the parse.
pub const MAX_TEMPLATE_PAYLOAD_BYTES: usize = 1 << 20;

/// The most session templates one create may carry.
pub const MAX_TEMPLATES_PER_PAYLOAD: usize = 100;

pub fn register(cfg: &mut web::ServiceConfig) {
    let user = || Access::user().read_allowed();
    cfg.service(
        web::resource("/template/session")
            .route(web::post().to(create_session_template).wrap(user()))
            .route(web::get().to(list_session_templates).wrap(user())),
    );
    cfg.service(
        web::resource("/template/session/{template_id}")
            .route(web::get().to(get_session_template).wrap(user()))
            .route(web::put().to(put_session_template).wrap(user()))
            .route(web::delete().to(delete_session_template).wrap(user())),
    );
    cfg.service(
        web::resource("/template/cluster")
            .route(web::post().to(create_cluster_template).wrap(user()))
            .route(web::get().to(list_cluster_templates).wrap(user())),
    );
    cfg.service(
        web::resource("/template/cluster/{template_id}")
            .route(web::get().to(get_cluster_template).wrap(user()))
            .route(web::put().to(put_cluster_template).wrap(user()))
            .route(web::delete().to(delete_cluster_template).wrap(user())),
    );
}

fn not_found() -> Problem {
    Problem::not_found("task template")
}

fn template_id(request: &HttpRequest) -> Result<Uuid, Problem> {
    let raw = request.match_info().get("template_id").unwrap_or("");
    Uuid::parse_str(raw).map_err(|_| not_found())
}

/// The owner, domain and project a created or replaced template belongs to.
struct Placement {
    user: Uuid,
    domain: String,
    group: Option<Uuid>,
}

/// The original's owner/domain/project resolution: the (possibly delegated) owner's domain,
/// and the named project in it, which a plain user must belong to.
async fn placement(
    state: &AppState,
    client: &impl GenericClient,
    caller: &Authenticated,
    params: &ApiParams,
) -> Result<Placement, Problem> {
    let owner_key = params.opt_string(&["owner_access_key"])?;
    let scope = access_key_scope(caller, client, owner_key.as_deref()).await?;
    let (user, owner_domain, owner_role) = match &scope.delegated_owner {
        Some(owner) => (
            owner.user_uuid,
            owner.domain_name.clone().unwrap_or_default(),
            owner.role,
        ),
        None => (
            caller.user_uuid(),
            caller.domain_name().to_owned(),
            caller.role(),
        ),
    };
    let domain = params
        .opt_string(&["domain", "domainName", "domain_name"])?
        .unwrap_or_else(|| owner_domain.clone());
    let group_name = params
        .opt_string(&["group", "groupName", "group_name"])?
        .unwrap_or_else(|| "default".to_owned());
    if owner_role != UserRole::Superadmin && domain != owner_domain {
        return Err(Problem::invalid_params(
            "You can only set the domain to your domain.",
        ));
    }
    let member = matches!(owner_role, UserRole::User | UserRole::Monitor).then_some(user);
    let group = queries::project_for_template(client, &domain, &group_name, member)
        .await
        .map_err(query_failed(state, "looking up the project"))?
        .ok_or_else(|| Problem::invalid_params("Invalid group"))?;
    Ok(Placement {
        user,
        domain,
        group: Some(group),
    })
}

fn payload(params: &ApiParams) -> Result<Value, Problem> {
    let text = params.string(&["payload"])?;
    if text.len() > MAX_TEMPLATE_PAYLOAD_BYTES {
        return Err(invalid_param(
            "payload",
            format!("at most {MAX_TEMPLATE_PAYLOAD_BYTES} bytes are accepted"),
        ));
    }
    serde_json::from_str(&text).map_err(|_| Problem::invalid_params("Malformed payload"))
}

/// One template of a payload, checked, with the project and owner the entry may override.
struct TemplateEntry {
    name: String,
    template: Value,
    group: Option<Value>,
    user: Option<Value>,
}

impl TemplateEntry {
    fn cluster(body: &Value) -> Result<TemplateEntry, Problem> {
        let template =
            check_cluster_template(body).map_err(|e| Problem::invalid_params(e.to_string()))?;
        let name = template["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(TemplateEntry {
            name,
            template,
            group: None,
            user: None,
        })
    }
}

/// The templates of a session-template payload.
fn session_entries(body: &Value) -> Result<Vec<TemplateEntry>, Problem> {
    let list = body
        .get("session_templates")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Problem::invalid_params("session_templates: is required and must be a list")
        })?;
    if list.len() > MAX_TEMPLATES_PER_PAYLOAD {
        return Err(Problem::invalid_params(format!(
            "at most {MAX_TEMPLATES_PER_PAYLOAD} session templates are accepted"
        )));
    }
    list.iter()
        .map(|entry| {
            let template = check_task_template(entry.get("template").unwrap_or(&Value::Null))
                .map_err(|e| Problem::invalid_params(e.to_string()))?;
            let name = entry
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| template["metadata"]["name"].as_str().map(str::to_owned))
                .unwrap_or_default();
            Ok(TemplateEntry {
                name,
                template,
                group: entry.get("group_id").cloned(),
                user: entry.get("user_uuid").cloned(),
            })
        })
        .collect()
}

fn uuid_override(
    value: Option<Value>,
    key: &str,
    default: Option<Uuid>,
) -> Result<Option<Uuid>, Problem> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(text)) => Uuid::parse_str(&text)
            .map(Some)
            .map_err(|_| invalid_param(key, "value is not a valid UUID")),
        Some(_) => Err(invalid_param(key, "value is not a string")),
    }
}

async fn create(
    state: &AppState,
    caller: &Authenticated,
    params: &ApiParams,
    kind: TemplateType,
) -> Result<HttpResponse, Problem> {
    let body = payload(params)?;
    let entries = match kind {
        TemplateType::Task => session_entries(&body)?,
        TemplateType::Cluster => vec![TemplateEntry::cluster(&body)?],
    };
    let mut client = db_client(state).await?;
    let placement = placement(state, &client, caller, params).await?;
    slog::info!(state.log, "TEMPLATE.CREATE";
        "ak" => &caller.access_key, "type" => kind.as_str(), "count" => entries.len());
    let transaction = client
        .transaction()
        .await
        .map_err(query_failed(state, "starting a transaction"))?;
    let mut reply = json!({});
    for entry in entries {
        let id = Uuid::new_v4();
        let user =
            uuid_override(entry.user, "user_uuid", Some(placement.user))?.unwrap_or(placement.user);
        let new = NewTemplate {
            id,
            domain_name: placement.domain.clone(),
            group_id: uuid_override(entry.group, "group_id", placement.group)?,
            user_uuid: user,
            kind,
            name: entry.name,
            template: entry.template,
        };
        queries::insert_template(&transaction, &new)
            .await
            .map_err(query_failed(state, "creating a template"))?;
        reply = json!({"id": id.simple().to_string(), "user": placement.user.simple().to_string()});
    }
    transaction
        .commit()
        .await
        .map_err(query_failed(state, "committing the templates"))?;
    Ok(reply::json(&reply))
}

fn list_entry(row: &TemplateRow, caller: &Authenticated, kind: TemplateType) -> Value {
    let mut entry = json!({
        "name": row.name,
        "id": row.id.simple().to_string(),
        "created_at": python_datetime(row.created_at),
        "is_owner": row.user_uuid == caller.user_uuid(),
        "user": row.user_uuid.to_string(),
        "group": row.group_id.map_or_else(|| "None".to_owned(), |g| g.to_string()),
        "user_email": row.user_email,
        "group_name": row.group_name,
    });
    match kind {
        TemplateType::Task => {
            entry["domain_name"] = json!(caller.domain_name());
            entry["type"] = json!("task");
            entry["template"] = row.template.clone();
        }
        TemplateType::Cluster => entry["type"] = json!("user"),
    }
    entry
}

async fn list(
    state: &AppState,
    caller: &Authenticated,
    kind: TemplateType,
) -> Result<HttpResponse, Problem> {
    slog::info!(state.log, "TEMPLATE.LIST"; "ak" => &caller.access_key, "type" => kind.as_str());
    let visible_to = (!caller.is_superadmin).then(|| caller.user_uuid());
    let client = db_client(state).await?;
    let rows = queries::list_templates(&client, kind, visible_to)
        .await
        .map_err(query_failed(state, "listing templates"))?;
    let entries: Vec<Value> = rows.iter().map(|r| list_entry(r, caller, kind)).collect();
    Ok(reply::json(&entries))
}

/// A template the caller may change: its own, or any for admins of its domain and superadmins.
async fn owned_template(
    state: &AppState,
    client: &impl GenericClient,
    caller: &Authenticated,
    id: Uuid,
    kind: TemplateType,
) -> Result<TemplateRow, Problem> {
    let row = queries::find_template(client, id, kind)
        .await
        .map_err(query_failed(state, "looking up the template"))?
        .ok_or_else(not_found)?;
    let allowed = caller.is_superadmin
        || row.user_uuid == caller.user_uuid()
        || (caller.is_admin && row.domain_name == caller.domain_name());
    if !allowed {
        return Err(not_found());
    }
    Ok(row)
}

async fn get(
    state: &AppState,
    caller: &Authenticated,
    request: &HttpRequest,
    params: &ApiParams,
    kind: TemplateType,
) -> Result<HttpResponse, Problem> {
    let format = params.opt_string(&["format"])?;
    if let Some(format) = &format
        && format != "yaml"
        && format != "json"
    {
        return Err(Problem::invalid_params(
            r#"format should be "yaml" or "json""#,
        ));
    }
    let id = template_id(request)?;
    slog::info!(state.log, "TEMPLATE.GET"; "ak" => &caller.access_key, "id" => %id);
    let client = db_client(state).await?;
    let row = queries::find_template(&client, id, kind)
        .await
        .map_err(query_failed(state, "looking up the template"))?;
    let visible = |row: &TemplateRow| {
        caller.is_superadmin
            || row.user_uuid == caller.user_uuid()
            || (caller.is_admin && row.domain_name == caller.domain_name())
    };
    match kind {
        TemplateType::Task => {
            // The original answers an unknown id with an empty object.
            let body = match row.filter(visible) {
                None => json!({}),
                Some(row) => json!({
                    "template": row.template,
                    "name": row.name,
                    "user_uuid": row.user_uuid.to_string(),
                    "group_id": row.group_id.map_or_else(|| "None".to_owned(), |g| g.to_string()),
                    "domain_name": caller.domain_name(),
                }),
            };
            Ok(reply::json(&body))
        }
        TemplateType::Cluster => {
            let row = row.filter(visible).ok_or_else(not_found)?;
            if format.as_deref() == Some("json") {
                Ok(reply::json(&row.template))
            } else {
                // JSON is YAML: the text reads the same with a YAML parser.
                Ok(HttpResponse::Ok()
                    .content_type("text/yaml")
                    .body(row.template.to_string()))
            }
        }
    }
}

async fn put(
    state: &AppState,
    caller: &Authenticated,
    request: &HttpRequest,
    params: &ApiParams,
    kind: TemplateType,
) -> Result<HttpResponse, Problem> {
    let id = template_id(request)?;
    let body = payload(params)?;
    let mut client = db_client(state).await?;
    let placement = placement(state, &client, caller, params).await?;
    owned_template(state, &client, caller, id, kind).await?;
    slog::info!(state.log, "TEMPLATE.PUT"; "ak" => &caller.access_key, "id" => %id);
    let entries = match kind {
        TemplateType::Task => session_entries(&body)?,
        TemplateType::Cluster => vec![TemplateEntry::cluster(&body)?],
    };
    let transaction = client
        .transaction()
        .await
        .map_err(query_failed(state, "starting a transaction"))?;
    for entry in entries {
        let group = uuid_override(entry.group, "group_id", placement.group)?;
        let user =
            uuid_override(entry.user, "user_uuid", Some(placement.user))?.unwrap_or(placement.user);
        let found = queries::update_template(
            &transaction,
            id,
            kind,
            group,
            user,
            &entry.name,
            &entry.template,
        )
        .await
        .map_err(query_failed(state, "replacing the template"))?;
        if !found {
            return Err(not_found());
        }
    }
    transaction
        .commit()
        .await
        .map_err(query_failed(state, "committing the template"))?;
    Ok(reply::json(&json!({"success": true})))
}

async fn delete(
    state: &AppState,
    caller: &Authenticated,
    request: &HttpRequest,
    kind: TemplateType,
) -> Result<HttpResponse, Problem> {
    let id = template_id(request)?;
    slog::info!(state.log, "TEMPLATE.DELETE"; "ak" => &caller.access_key, "id" => %id);
    let client = db_client(state).await?;
    owned_template(state, &client, caller, id, kind).await?;
    let found = queries::deactivate_template(&client, id, kind)
        .await
        .map_err(query_failed(state, "deleting the template"))?;
    if !found {
        return Err(not_found());
    }
    Ok(reply::json(&json!({"success": true})))
}

async fn create_session_template(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    create(&state, &caller, &params, TemplateType::Task).await
}

async fn create_cluster_template(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    create(&state, &caller, &params, TemplateType::Cluster).await
}

async fn list_session_templates(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    list(&state, &caller, TemplateType::Task).await
}

async fn list_cluster_templates(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    list(&state, &caller, TemplateType::Cluster).await
}

async fn get_session_template(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    get(&state, &caller, &request, &params, TemplateType::Task).await
}

async fn get_cluster_template(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    get(&state, &caller, &request, &params, TemplateType::Cluster).await
}

async fn put_session_template(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    put(&state, &caller, &request, &params, TemplateType::Task).await
}

async fn put_cluster_template(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
    params: ApiParams,
) -> Result<HttpResponse, Problem> {
    put(&state, &caller, &request, &params, TemplateType::Cluster).await
}

async fn delete_session_template(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    delete(&state, &caller, &request, TemplateType::Task).await
}

async fn delete_cluster_template(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    delete(&state, &caller, &request, TemplateType::Cluster).await
}
