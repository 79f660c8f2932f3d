//! The HTTP side of the GraphQL API: `POST /admin/gql` answers the standard GraphQL result
//! `{"data": ..., "errors": [...]}` with status 200; the legacy `POST /admin/graphql` answers
//! just the data, or 400 `graphql-error` with the error list as the problem's `data`.
//!
//! The body is `{query, variables?, operation_name | operationName?}`. A mutation while the
//! manager is frozen is refused with the original's `server-frozen` message.
//!
//! Every document passes `front_end` (size, nesting and expanded-size limits, then one parse)
//! on a blocking thread before async-graphql validates and runs it under `EXECUTION_TIMEOUT`.
//! Each request is logged at INFO with its operation and root fields (never its variables);
//! each error at WARNING with its field path, or at ERROR for a server-side failure.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use async_graphql::parser::types::OperationType;
use async_graphql::{PathSegment, Request, Response, ServerError, Variables};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::{GqlRequest, GqlSettings, Requester};
use super::error::GqlError;
use super::front_end::{
    EXECUTION_TIMEOUT, Limits, parse_document, root_fields, selected_operation,
};
use super::schema::{GqlSchema, build_schema};
use crate::agent_rpc::AgentRpc;
use crate::facade::access::Access;
use crate::facade::auth::{AuthContext, Authenticated};
use crate::facade::json_nesting::{MAX_JSON_NESTING, first_too_deep, too_deep_message};
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

/// The largest GraphQL request body read: a document at its limit
/// (`front_end::MAX_DOCUMENT_BYTES`, escaped in JSON) with room for variables.
pub const MAX_GQL_BODY_BYTES: usize = 256 * 1024;

/// The most characters of one error message written to the log.
const MAX_LOGGED_ERROR_CHARS: usize = 300;

/// Reads the request body, refusing one larger than [`MAX_GQL_BODY_BYTES`] as soon as it is.
async fn read_body(mut payload: web::Payload) -> Result<Vec<u8>, Problem> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            Problem::new(ProblemKind::GenericBadRequest)
                .with_msg(format!("cannot read the request body: {e}"))
        })?;
        if body.len() + chunk.len() > MAX_GQL_BODY_BYTES {
            return Err(Problem::invalid_params(format!(
                "the request body is larger than {MAX_GQL_BODY_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn run(
    caller: &Authenticated,
    payload: web::Payload,
    state: &AppState,
    registry_sync: RegistrySyncData,
    storage: Option<web::Data<StorageBroker>>,
    agent_rpc: Option<web::Data<AgentRpc>>,
) -> Result<Response, Problem> {
    let body = read_body(payload).await?;
    let body = parse_body(&body)?;
    let frozen = match state.pipeline.manager_status.current(&state.etcd).await {
        Ok(status) => status == ManagerStatus::Frozen,
        Err(e) => {
            // Reads keep working without etcd; a mutation then runs as if not frozen.
            slog::warn!(state.log, "cannot read the manager status for a GraphQL request"; "error" => %e);
            false
        }
    };
    let request = GqlRequest {
        db: state.db.clone(),
        redis_stat: Some(state.redis.stat.clone()),
        redis_image: Some(state.redis.image.clone()),
        redis_live: Some(state.redis.live.clone()),
        etcd: Some(state.etcd.clone()),
        registry_sync: registry_sync.map(|addr| addr.get_ref().clone()),
        agent_rpc: agent_rpc.map(web::Data::into_inner),
        bgtasks: Some(crate::bgtask::BackgroundTasks::new(
            state.redis.stream.clone(),
            state.log.clone(),
        )),
        requester: requester_of(caller),
        settings: GqlSettings {
            hide_agents: state.settings.hide_agents,
            ..GqlSettings::default()
        },
        storage: storage.map(|broker| broker.get_ref().clone()),
    };
    let executed = execute_request(body, request, frozen, &state.log).await;
    if executed.is_mutation {
        // Keypairs and users may have changed: this worker re-reads credentials at once
        // (other workers within their cache's two seconds).
        state.pipeline.credentials.clear();
    }
    Ok(executed.response)
}

/// `POST /admin/gql`.
async fn handle_gql(
    caller: Authenticated,
    payload: web::Payload,
    state: web::Data<AppState>,
    registry_sync: RegistrySyncData,
    storage: Option<web::Data<StorageBroker>>,
    agent_rpc: Option<web::Data<AgentRpc>>,
) -> Result<HttpResponse, Problem> {
    let response = run(&caller, payload, &state, registry_sync, storage, agent_rpc).await?;
    Ok(standard_response(&response))
}

/// `POST /admin/graphql` (legacy).
async fn handle_gql_legacy(
    caller: Authenticated,
    payload: web::Payload,
    state: web::Data<AppState>,
    registry_sync: RegistrySyncData,
    storage: Option<web::Data<StorageBroker>>,
    agent_rpc: Option<web::Data<AgentRpc>>,
) -> Result<HttpResponse, Problem> {
    let response = run(&caller, payload, &state, registry_sync, storage, agent_rpc).await?;
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
/// a missing or mistyped key is "Input validation error" naming the key. A body (its
/// variables) nesting deeper than `MAX_JSON_NESTING` is refused before it is parsed.
pub fn parse_body(body: &[u8]) -> Result<GqlBody, Problem> {
    if first_too_deep(body, MAX_JSON_NESTING).is_some() {
        return Err(Problem::invalid_params(too_deep_message(MAX_JSON_NESTING)));
    }
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

/// A request's response and whether it ran a mutation (so the caller drops cached
/// credentials).
pub struct Executed {
    pub response: Response,
    pub is_mutation: bool,
}

/// Runs one GraphQL request for `request` (who is asking and the services).
pub async fn execute(
    body: GqlBody,
    request: GqlRequest,
    frozen: bool,
    log: &slog::Logger,
) -> Response {
    execute_request(body, request, frozen, log).await.response
}

/// Runs one GraphQL request: the front end on a blocking thread, the frozen check, then
/// validation and resolvers under [`EXECUTION_TIMEOUT`]; logs the request and its errors.
pub async fn execute_request(
    body: GqlBody,
    request: GqlRequest,
    frozen: bool,
    log: &slog::Logger,
) -> Executed {
    let access_key = request.requester.access_key.clone();
    let refused = |error: ServerError| Executed {
        response: Response::from_errors(vec![error]),
        is_mutation: false,
    };
    let query = body.query;
    let front_end = tokio::task::spawn_blocking(move || {
        let document = parse_document(&query, Limits::SERVER);
        (query, document)
    })
    .await;
    let (query, document) = match front_end {
        Ok((query, Ok(document))) => (query, document),
        Ok((_, Err(error))) => {
            slog::warn!(log, "graphql request refused";
                "access_key" => &access_key, "error" => &error.message);
            return refused(error);
        }
        Err(join_error) => {
            slog::error!(log, "the graphql front end failed";
                "access_key" => &access_key, "error" => %join_error);
            return refused(ServerError::new("internal server error", None));
        }
    };
    let operation = selected_operation(&document, body.operation_name.as_deref());
    let is_mutation = operation.is_some_and(|op| op.ty == OperationType::Mutation);
    let fields = operation
        .map(|op| root_fields(&document, op).join(","))
        .unwrap_or_default();
    slog::info!(log, "ADMIN.GQL";
        "access_key" => &access_key,
        "op" => operation.map_or("unknown", |op| operation_type_name(op.ty)),
        "operation_name" => body.operation_name.as_deref().unwrap_or(""),
        "fields" => &fields);
    if frozen && is_mutation {
        let (_, _, title) = ProblemKind::ServerFrozen.parts();
        return Executed {
            response: Response::from_errors(vec![ServerError::new(title, None)]),
            is_mutation,
        };
    }
    let mut gql_request = Request::new(query)
        .variables(Variables::from_json(Value::Object(
            body.variables.unwrap_or_default(),
        )))
        .data(request);
    gql_request.set_parsed_query(document);
    if let Some(name) = body.operation_name {
        gql_request = gql_request.operation_name(name);
    }
    let response = within(EXECUTION_TIMEOUT, schema().execute(gql_request)).await;
    for error in &response.errors {
        log_error(log, &access_key, &fields, error);
    }
    Executed {
        response,
        is_mutation,
    }
}

/// Runs `execution` for at most `limit`; past it, the execution is dropped (a transaction it
/// held rolls back) and the answer is a GraphQL error naming the limit.
async fn within(limit: Duration, execution: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, execution).await {
        Ok(response) => response,
        Err(_) => Response::from_errors(vec![ServerError::new(
            format!(
                "the GraphQL request ran longer than the limit of {} s and was stopped",
                limit.as_secs_f64()
            ),
            None,
        )]),
    }
}

fn operation_type_name(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

/// One error of a response: server-side failures at ERROR with their detail, the caller's
/// errors at WARNING with the field path (or the document position) and the message.
fn log_error(log: &slog::Logger, access_key: &str, fields: &str, error: &ServerError) {
    let path = error_path(error);
    match error.source::<GqlError>() {
        Some(GqlError::Database(detail)) | Some(GqlError::Internal(detail)) => {
            slog::error!(log, "graphql resolver failed";
                "access_key" => access_key, "fields" => fields, "path" => &path,
                "error" => detail);
        }
        _ => {
            let message: String = error.message.chars().take(MAX_LOGGED_ERROR_CHARS).collect();
            slog::warn!(log, "graphql error";
                "access_key" => access_key, "fields" => fields, "path" => &path,
                "error" => message);
        }
    }
}

/// `keypair_list.items.0.user_id` for a resolver error, `line:column` for a document error.
fn error_path(error: &ServerError) -> String {
    if !error.path.is_empty() {
        let segments: Vec<String> = error
            .path
            .iter()
            .map(|segment| match segment {
                PathSegment::Field(name) => name.clone(),
                PathSegment::Index(index) => index.to_string(),
            })
            .collect();
        return segments.join(".");
    }
    error
        .locations
        .first()
        .map(|pos| format!("{}:{}", pos.line, pos.column))
        .unwrap_or_default()
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
    fn deep_bodies_are_refused_before_json_parsing() {
        let body = format!(
            r#"{{"query": "{{ domains {{ name }} }}", "variables": {{"v": {}1{}}}}}"#,
            "[".repeat(5_000),
            "]".repeat(5_000)
        );
        let err = parse_body(body.as_bytes()).unwrap_err();
        assert_eq!(err.status_code(), 400);
        assert_eq!(
            err.msg.as_deref(),
            Some("the JSON body nests objects and arrays more than 32 levels deep")
        );
    }

    #[tokio::test]
    async fn a_request_past_its_time_limit_is_stopped_with_an_error() {
        let response = within(Duration::from_millis(20), std::future::pending()).await;
        assert_eq!(
            response.errors[0].message,
            "the GraphQL request ran longer than the limit of 0.02 s and was stopped"
        );
        let response = within(Duration::from_secs(60), async {
            Response::new(async_graphql::Value::Null)
        })
        .await;
        assert!(response.errors.is_empty());
    }

    #[test]
    fn error_paths_name_the_field_or_the_position() {
        let mut error = ServerError::new("x", Some(async_graphql::Pos { line: 3, column: 7 }));
        assert_eq!(error_path(&error), "3:7");
        error.path = vec![
            PathSegment::Field("keypair_list".into()),
            PathSegment::Field("items".into()),
            PathSegment::Index(0),
        ];
        assert_eq!(error_path(&error), "keypair_list.items.0");
    }
}
