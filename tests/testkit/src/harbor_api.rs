//! A Harbor-shaped test server: Harbor cannot run here, so this serves the documented shapes
//! of Harbor's REST API (v2.0: `projects/{p}/repositories`, `.../repositories/{r}/artifacts`
//! with tags and platform references; 1.x: `projects`, `repositories?project_id=`) with
//! Harbor's pagination (`page`, `page_size`, `Link`, `X-Total-Count`), Basic auth and error
//! bodies, computed from a REAL local registry that it also proxies under `/v2/`. Like Harbor
//! for a non-admin account, it refuses `/v2/_catalog`, so only the Harbor API lists images.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{HttpRequest, HttpResponse, web};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use crate::token_server::{basic_credentials, spawn_actix};

const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.manifest.v1+json";
/// Harbor's default page size.
const DEFAULT_PAGE_SIZE: usize = 10;

struct Harbor {
    registry_url: String,
    projects: Vec<String>,
    credentials: Option<(String, String)>,
    http: reqwest::Client,
    api_requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running Harbor-shaped test server.
pub struct HarborApiServer {
    pub port: u16,
    state: Arc<Harbor>,
    server: actix_web::dev::ServerHandle,
}

impl HarborApiServer {
    /// Serves `projects` (the first path components of repositories in the registry at
    /// `registry_url`), requiring `credentials` on the API when given.
    pub fn start(
        registry_url: &str,
        projects: &[&str],
        credentials: Option<(&str, &str)>,
    ) -> HarborApiServer {
        let state = Arc::new(Harbor {
            registry_url: registry_url.trim_end_matches('/').to_owned(),
            projects: projects.iter().map(|p| (*p).to_owned()).collect(),
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
            http: reqwest::Client::new(),
            api_requests: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the Harbor test server");
        let port = listener.local_addr().expect("a bound address").port();
        let shared = state.clone();
        let server = spawn_actix(listener, "harbor-api", move |config| {
            config
                .app_data(web::Data::from(shared.clone()))
                .default_service(web::to(dispatch));
        });
        HarborApiServer {
            port,
            state,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The registry name of this server in image references.
    pub fn name(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The most requests (API and `/v2/`) that were ever being served at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests served under `/api/`.
    pub fn api_requests(&self) -> usize {
        self.state.api_requests.load(Ordering::SeqCst)
    }
}

impl Drop for HarborApiServer {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

fn harbor_error(status: actix_web::http::StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"errors": [{"code": code, "message": message}]}))
}

fn query_param(request: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// One page of `items`, with Harbor's `Link` and `X-Total-Count` headers.
fn paginated(request: &HttpRequest, items: Vec<Value>) -> HttpResponse {
    let page: usize = query_param(request, "page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let page_size: usize = query_param(request, "page_size")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let total = items.len();
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .collect();
    let mut links = Vec::new();
    let extra: String = url::form_urlencoded::parse(request.query_string().as_bytes())
        .filter(|(k, _)| k != "page" && k != "page_size")
        .map(|(k, v)| format!("&{k}={v}"))
        .collect();
    let link = |n: usize, rel: &str| {
        format!(
            "<{}?page={n}&page_size={page_size}{extra}>; rel=\"{rel}\"",
            request.path()
        )
    };
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page * page_size < total {
        links.push(link(page + 1, "next"));
    }
    let mut response = HttpResponse::Ok();
    response.insert_header(("x-total-count", total.to_string()));
    if !links.is_empty() {
        response.insert_header(("link", links.join(" , ")));
    }
    response.json(chunk)
}

async fn dispatch(
    request: HttpRequest,
    body: web::Bytes,
    harbor: web::Data<Harbor>,
) -> HttpResponse {
    let now = harbor.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    harbor.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let response = serve(&request, body, &harbor).await;
    harbor.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn serve(request: &HttpRequest, body: web::Bytes, harbor: &Harbor) -> HttpResponse {
    let request = request.clone();
    let path = request.uri().path().to_owned();
    if path.starts_with("/v2/") || path == "/v2" {
        return proxy(&request, body, harbor).await;
    }
    if !path.starts_with("/api/") {
        return harbor_error(
            actix_web::http::StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such page",
        );
    }
    harbor.api_requests.fetch_add(1, Ordering::SeqCst);
    if let Some((user, password)) = &harbor.credentials {
        let given = basic_credentials(&request);
        if given.as_ref() != Some(&(user.clone(), password.clone())) {
            return harbor_error(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "unauthorized",
            );
        }
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "v2.0", "projects", project, "repositories"] => {
            let project = decode(project);
            if !harbor.projects.contains(&project) {
                return harbor_error(
                    actix_web::http::StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    &format!("project {project} not found"),
                );
            }
            match harbor.repositories(&project).await {
                Ok(names) => {
                    let items = names
                        .iter()
                        .enumerate()
                        .map(|(i, name)| json!({"id": i + 1, "name": name, "project_id": project_id(harbor, &project), "artifact_count": 1}))
                        .collect();
                    paginated(&request, items)
                }
                Err(message) => harbor_error(
                    actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    &message,
                ),
            }
        }
        [
            "api",
            "v2.0",
            "projects",
            project,
            "repositories",
            repository,
            "artifacts",
        ] => {
            let project = decode(project);
            // Harbor wants slashes in repository names encoded twice.
            let repository = decode(&decode(repository));
            match harbor.artifacts(&format!("{project}/{repository}")).await {
                Ok(items) => paginated(&request, items),
                Err(message) => harbor_error(
                    actix_web::http::StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    &message,
                ),
            }
        }
        ["api", "projects"] => {
            let items = harbor
                .projects
                .iter()
                .map(|name| json!({"project_id": project_id(harbor, name), "name": name}))
                .collect();
            paginated(&request, items)
        }
        ["api", "repositories"] => {
            let wanted: Option<i64> =
                query_param(&request, "project_id").and_then(|p| p.parse().ok());
            let Some(project) = harbor
                .projects
                .iter()
                .find(|p| Some(project_id(harbor, p)) == wanted)
                .cloned()
            else {
                return harbor_error(
                    actix_web::http::StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "project not found",
                );
            };
            match harbor.repositories(&project).await {
                Ok(names) => paginated(
                    &request,
                    names.iter().map(|name| json!({"name": name})).collect(),
                ),
                Err(message) => harbor_error(
                    actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    &message,
                ),
            }
        }
        _ => harbor_error(
            actix_web::http::StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such API",
        ),
    }
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

fn project_id(harbor: &Harbor, project: &str) -> i64 {
    harbor
        .projects
        .iter()
        .position(|p| p == project)
        .map(|i| i as i64 + 1)
        .unwrap_or(0)
}

impl Harbor {
    async fn registry_json(
        &self,
        path: &str,
        accept: Option<&str>,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), String> {
        let mut request = self.http.get(format!("{}{path}", self.registry_url));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!(
                "the registry answered {} for {path}",
                response.status()
            ));
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok((headers, body.to_vec()))
    }

    /// Every item under `key` of a paginated registry listing (the registry caps `n` at 1000).
    async fn registry_listing(&self, first: &str, key: &str) -> Result<Vec<String>, String> {
        let mut items = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(path) = next.take() {
            let (headers, body) = self.registry_json(&path, None).await?;
            let page: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            items.extend(
                page[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned),
            );
            next = headers
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(|link| link.split_once('<'))
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(target, _)| target.to_owned());
        }
        Ok(items)
    }

    async fn repositories(&self, project: &str) -> Result<Vec<String>, String> {
        let all = self
            .registry_listing("/v2/_catalog?n=1000", "repositories")
            .await?;
        Ok(all
            .into_iter()
            .filter(|r| r.starts_with(&format!("{project}/")))
            .collect())
    }

    /// Harbor's artifacts of a repository: one per manifest digest, with its tags.
    async fn artifacts(&self, repository: &str) -> Result<Vec<Value>, String> {
        let (_, body) = self
            .registry_json(&format!("/v2/{repository}/tags/list?n=100000"), None)
            .await?;
        let tags: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let mut artifacts: Vec<Value> = Vec::new();
        for tag in tags["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let (headers, manifest) = self
                .registry_json(
                    &format!("/v2/{repository}/manifests/{tag}"),
                    Some(ACCEPT_ALL_MANIFESTS),
                )
                .await?;
            let digest = headers
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let media_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let tag_json = json!({"name": tag, "immutable": false, "signed": false});
            if let Some(existing) = artifacts.iter_mut().find(|a| a["digest"] == digest) {
                if let Some(tags) = existing["tags"].as_array_mut() {
                    tags.push(tag_json);
                }
                continue;
            }
            let manifest: Value = serde_json::from_slice(&manifest).map_err(|e| e.to_string())?;
            let references = manifest["manifests"].as_array().map(|entries| {
                entries
                    .iter()
                    .map(|entry| {
                        json!({
                            "child_digest": entry["digest"],
                            "platform": entry.get("platform").cloned().unwrap_or(json!({"architecture": "unknown", "os": "unknown"})),
                            "annotations": entry.get("annotations"),
                        })
                    })
                    .collect::<Vec<_>>()
            });
            artifacts.push(json!({
                "id": artifacts.len() + 1,
                "type": "IMAGE",
                "digest": digest,
                "manifest_media_type": media_type,
                "media_type": manifest["config"]["mediaType"].as_str().unwrap_or(&media_type),
                "size": manifest.to_string().len(),
                "references": references,
                "tags": [tag_json],
                "extra_attrs": {},
            }));
        }
        Ok(artifacts)
    }
}

/// Passes a `/v2/` request to the registry (all but the catalog, which Harbor keeps for admins).
async fn proxy(request: &HttpRequest, body: web::Bytes, harbor: &Harbor) -> HttpResponse {
    if request.uri().path().starts_with("/v2/_catalog") {
        return HttpResponse::Unauthorized()
            .insert_header(("www-authenticate", "Basic realm=\"harbor\""))
            .json(json!({"errors": [{"code": "UNAUTHORIZED", "message": "the catalog is for system admins"}]}));
    }
    let target = format!(
        "{}{}",
        harbor.registry_url,
        request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/v2/")
    );
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut outgoing = harbor.http.request(method, &target).body(body.to_vec());
    for name in ["accept", "content-type"] {
        if let Some(value) = request.headers().get(name).and_then(|v| v.to_str().ok()) {
            outgoing = outgoing.header(name, value);
        }
    }
    let response = match outgoing.send().await {
        Ok(response) => response,
        Err(error) => return HttpResponse::BadGateway().body(error.to_string()),
    };
    let mut reply = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(response.status().as_u16())
            .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
    );
    for name in [
        "content-type",
        "docker-content-digest",
        "link",
        "www-authenticate",
        "location",
    ] {
        if let Some(value) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
            reply.insert_header((name, value.to_owned()));
        }
    }
    let bytes = response.bytes().await.unwrap_or_default();
    reply.body(bytes.to_vec())
}
