//! The HTTP side of the GraphQL API: `POST /admin/gql` answers the standard GraphQL result
//! `{"data": ..., "errors": [...]}` with status 200; the legacy `POST /admin/graphql` answers
//! just the data, or 400 `graphql-error` with the error list as the problem's `data`.
//!
//! The body is `{query, variables?, operation_name | operationName?}`. A mutation while the
//! manager is frozen is refused with the original's `server-frozen` message.

use std::sync::OnceLock;

use actix_web::{HttpResponse, web};
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Request, Response, ServerError, Variables};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::{GqlRequest, GqlSettings, Requester};
use super::error::GqlError;
use super::schema::{GqlSchema, build_schema};
use crate::facade::access::Access;
use crate::facade::auth::{AuthContext, Authenticated};
use crate::facade::manager_status::ManagerStatus;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::state::AppState;
use crate::registry_sync::RegistrySync;
use crate::storage::StorageBroker;

/// Registers `POST /admin/gql` and the legacy `POST /admin/graphql` (any valid keypair, as the
/// original's `auth_required`; the manager status only gates mutations, see `execute`).
pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/admin/gql",
        web::post().to(handle_gql).wrap(Access::user()),
    );
    cfg.route(
        "/admin/graphql",
        web::post().to(handle_gql_legacy).wrap(Access::user()),
    );
}

/// The GraphQL caller of an authenticated request.
pub fn requester_of(caller: &AuthContext) -> Requester {
    Requester {
        access_key: caller.access_key.clone(),
        is_admin: caller.is_admin,
        user_uuid: caller.user.uuid,
        email: caller.user.email.clone(),
        role: caller.user.role,
        domain_name: caller.domain_name().to_owned(),
    }
}

/// The registry-sync actor a worker registers for the handlers (absent in some tests).
type RegistrySyncData = Option<web::Data<actix::Addr<RegistrySync>>>;

async fn run(
    caller: &Authenticated,
    body: &[u8],
    state: &AppState,
    registry_sync: RegistrySyncData,
    storage: Option<web::Data<StorageBroker>>,
) -> Result<Response, Problem> {
    let body = parse_body(body)?;
    let frozen = match state.pipeline.manager_status.current(&state.etcd).await {
        Ok(status) => status == ManagerStatus::Frozen,
        Err(e) => {
            // Reads keep working without etcd; a mutation then runs as if not frozen.
            slog::warn!(state.log, "cannot read the manager status for a GraphQL request"; "error" => %e);
            false
        }
    };
    let mutation = is_mutation(&body.query, body.operation_name.as_deref());
    slog::info!(state.log, "ADMIN.GQL";
        "access_key" => &caller.access_key,
        "op" => if mutation { "mutation" } else { "query" },
        "operation_name" => body.operation_name.as_deref().unwrap_or(""));
    let request = GqlRequest {
        db: state.db.clone(),
        redis_stat: Some(state.redis.stat.clone()),
        redis_image: Some(state.redis.image.clone()),
        registry_sync: registry_sync.map(|addr| addr.get_ref().clone()),
        requester: requester_of(caller),
        settings: GqlSettings {
            hide_agents: state.settings.hide_agents,
            ..GqlSettings::default()
        },
        storage: storage.map(|broker| broker.get_ref().clone()),
    };
    let response = execute(body, request, frozen, &state.log).await;
    if mutation {
        // Keypairs and users may have changed: this worker re-reads credentials at once
        // (other workers within their cache's two seconds).
        state.pipeline.credentials.clear();
    }
    Ok(response)
}

/// `POST /admin/gql`.
async fn handle_gql(
    caller: Authenticated,
    body: web::Bytes,
    state: web::Data<AppState>,
    registry_sync: RegistrySyncData,
    storage: Option<web::Data<StorageBroker>>,
) -> Result<HttpResponse, Problem> {
    let response = run(&caller, &body, &state, registry_sync, storage).await?;
    Ok(standard_response(&response))
}

/// `POST /admin/graphql` (legacy).
async fn handle_gql_legacy(
    caller: Authenticated,
    body: web::Bytes,
    state: web::Data<AppState>,
    registry_sync: RegistrySyncData,
    storage: Option<web::Data<StorageBroker>>,
) -> Result<HttpResponse, Problem> {
    let response = run(&caller, &body, &state, registry_sync, storage).await?;
    Ok(legacy_response(&response))
}

/// The schema, built once per process: it is immutable and cheap to share.
pub fn schema() -> &'static GqlSchema {
    static SCHEMA: OnceLock<GqlSchema> = OnceLock::new();
    SCHEMA.get_or_init(build_schema)
}

/// The request body of both GraphQL routes.
#[derive(Debug, Deserialize)]
pub struct GqlBody {
    pub query: String,
    #[serde(default)]
    pub variables: Option<serde_json::Map<String, Value>>,
    #[serde(default, alias = "operationName")]
    pub operation_name: Option<String>,
}

/// Parses the body as the original's `check_api_params` does: bad JSON is "Malformed body",
/// a missing or mistyped key is "Input validation error" naming the key.
pub fn parse_body(body: &[u8]) -> Result<GqlBody, Problem> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| Problem::invalid_params("Malformed body"))?;
    let Value::Object(object) = &value else {
        return Err(Problem::invalid_params("Input validation error")
            .with_data(json!({"_": "the body must be a JSON object"})));
    };
    let mut invalid = serde_json::Map::new();
    match object.get("query") {
        Some(Value::String(_)) => {}
        Some(_) => {
            invalid.insert("query".into(), json!("value is not a string"));
        }
        None => {
            invalid.insert("query".into(), json!("is required"));
        }
    }
    if !matches!(
        object.get("variables"),
        None | Some(Value::Null) | Some(Value::Object(_))
    ) {
        invalid.insert("variables".into(), json!("value is not a dict"));
    }
    for key in ["operation_name", "operationName"] {
        if !matches!(
            object.get(key),
            None | Some(Value::Null) | Some(Value::String(_))
        ) {
            invalid.insert(key.into(), json!("value is not a string"));
        }
    }
    if !invalid.is_empty() {
        return Err(
            Problem::invalid_params("Input validation error").with_data(Value::Object(invalid))
        );
    }
    serde_json::from_value(value).map_err(|_| Problem::invalid_params("Malformed body"))
}

/// Whether the operation the request would run is a mutation (unparsable documents are not:
/// the executor reports their syntax errors).
pub fn is_mutation(query: &str, operation_name: Option<&str>) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    match &document.operations {
        DocumentOperations::Single(operation) => operation.node.ty == OperationType::Mutation,
        DocumentOperations::Multiple(operations) => match operation_name {
            Some(name) => operations
                .iter()
                .find(|(op_name, _)| op_name.as_str() == name)
                .is_some_and(|(_, op)| op.node.ty == OperationType::Mutation),
            None => false,
        },
    }
}

/// Runs one GraphQL request for `request` (who is asking and the services).
pub async fn execute(
    body: GqlBody,
    request: GqlRequest,
    frozen: bool,
    log: &slog::Logger,
) -> Response {
    if frozen && is_mutation(&body.query, body.operation_name.as_deref()) {
        let (_, _, title) = ProblemKind::ServerFrozen.parts();
        return Response::from_errors(vec![ServerError::new(title, None)]);
    }
    let access_key = request.requester.access_key.clone();
    let mut gql_request = Request::new(body.query)
        .variables(Variables::from_json(Value::Object(
            body.variables.unwrap_or_default(),
        )))
        .data(request);
    if let Some(name) = body.operation_name {
        gql_request = gql_request.operation_name(name);
    }
    let response = schema().execute(gql_request).await;
    for error in &response.errors {
        let source = error.source::<GqlError>();
        match source {
            Some(GqlError::Database(detail)) | Some(GqlError::Internal(detail)) => {
                slog::error!(log, "graphql resolver failed";
                    "access_key" => &access_key, "error" => detail, "path" => ?error.path);
            }
            _ => {
                slog::debug!(log, "graphql request error";
                    "access_key" => &access_key, "error" => &error.message);
            }
        }
    }
    response
}

/// `POST /admin/gql`: the whole GraphQL result, status 200.
pub fn standard_response(response: &Response) -> HttpResponse {
    let mut body = serde_json::Map::new();
    body.insert(
        "data".into(),
        serde_json::to_value(&response.data).unwrap_or(Value::Null),
    );
    if !response.errors.is_empty() {
        body.insert(
            "errors".into(),
            serde_json::to_value(&response.errors).unwrap_or(Value::Null),
        );
    }
    HttpResponse::Ok().json(Value::Object(body))
}

/// `POST /admin/graphql`: the data alone, or 400 `graphql-error` with the errors as `data`.
pub fn legacy_response(response: &Response) -> HttpResponse {
    if response.errors.is_empty() {
        return HttpResponse::Ok()
            .json(serde_json::to_value(&response.data).unwrap_or(Value::Null));
    }
    let errors = serde_json::to_value(&response.errors).unwrap_or(Value::Null);
    let problem = Problem::new(ProblemKind::GraphQlError).with_data(errors);
    actix_web::ResponseError::error_response(&problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_parsing_follows_check_api_params() {
        let body =
            parse_body(br#"{"query": "{ domains { name } }", "operationName": "X"}"#).unwrap();
        assert_eq!(body.operation_name.as_deref(), Some("X"));
        assert!(body.variables.is_none());
        let err = parse_body(b"{nope").unwrap_err();
        assert_eq!(err.msg.as_deref(), Some("Malformed body"));
        let err = parse_body(br#"{"variables": 3}"#).unwrap_err();
        assert_eq!(err.msg.as_deref(), Some("Input validation error"));
        let data = err.data.clone().unwrap();
        assert_eq!(data["query"], "is required");
        assert_eq!(data["variables"], "value is not a dict");
    }

    #[test]
    fn mutations_are_recognized() {
        assert!(is_mutation(
            "mutation { purge_domain(name: \"x\") { ok } }",
            None
        ));
        assert!(!is_mutation("{ domains { name } }", None));
        let doc = "query A { domains { name } } mutation B { delete_domain(name: \"x\") { ok } }";
        assert!(is_mutation(doc, Some("B")));
        assert!(!is_mutation(doc, Some("A")));
        assert!(!is_mutation("mutation {", None));
    }
}
