//! An HTTP client for one registry: authentication (none, Basic, or bearer tokens per scope),
//! a cap on concurrent requests, bounded response bodies, and errors that name the registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LINK, WWW_AUTHENTICATE};
use tokio::sync::Semaphore;
use url::Url;

use super::auth::{CATALOG_SCOPE, Challenge, parse_challenge, token_from_response};
use super::config::RegistryConfig;

/// How long to wait for a TCP/TLS connection to a registry.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one registry request may take in total; manifests and config blobs are small, so
/// a minute means the registry is stuck, not busy.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest manifest, config blob or listing page we read: real ones are a few KiB, so this
/// only stops a misconfigured digest from pulling a whole layer into memory.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How much of an error body goes into an error message.
const ERROR_DETAIL_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {registry} at {url} does not answer: {message}")]
    Unreachable {
        registry: String,
        url: String,
        message: String,
    },
    #[error(
        "registry {registry}: {url} is not a Docker Registry HTTP API v2 endpoint (GET /v2/ answered {status})"
    )]
    NotARegistry {
        registry: String,
        url: String,
        status: u16,
    },
    #[error("registry {registry} rejected the credentials of user {user:?} ({detail})")]
    BadCredentials {
        registry: String,
        user: String,
        detail: String,
    },
    #[error(
        "registry {registry} requires credentials: set config/docker/registry/<name>/username and password in etcd"
    )]
    CredentialsRequired { registry: String },
    #[error("registry {registry}: GET {url} answered {status}: {detail}")]
    Status {
        registry: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("registry {registry}: the token server {realm} failed: {detail}")]
    Token {
        registry: String,
        realm: String,
        detail: String,
    },
    #[error(
        "registry {registry} has no project {project:?} (check config/docker/registry/<name>/project)"
    )]
    UnknownProject { registry: String, project: String },
    #[error(
        "registry {registry} is a {registry_type} registry and needs config/docker/registry/<name>/project (comma-separated projects)"
    )]
    ProjectRequired {
        registry: String,
        registry_type: &'static str,
    },
    #[error("registry {registry}: cannot read the response of {url}: {detail}")]
    BadResponse {
        registry: String,
        url: String,
        detail: String,
    },
}

/// A response whose body has been read.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub url: Url,
    pub status: StatusCode,
    pub content_type: Option<String>,
    /// The raw `Link` header, for pagination.
    pub link: Option<String>,
    /// The parsed `WWW-Authenticate` header of a 401.
    pub challenge: Option<Challenge>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
enum AuthMode {
    Anonymous,
    Basic,
    Bearer { realm: Url, service: String },
}

/// A client bound to one registry.
pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    registry: String,
    credentials: Option<(String, String)>,
    mode: AuthMode,
    tokens: Mutex<HashMap<String, String>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("registry", &self.registry)
            .field("base", &self.base.as_str())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The `errors[0]` of a registry error body, or the start of the body.
fn error_detail(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(first) = json.get("errors").and_then(|e| e.get(0))
    {
        let code = first.get("code").and_then(|c| c.as_str()).unwrap_or("");
        let message = first.get("message").and_then(|m| m.as_str()).unwrap_or("");
        return format!("{code} {message}").trim().to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(ERROR_DETAIL_CHARS).collect();
    if text.trim().is_empty() {
        "(empty body)".to_owned()
    } else {
        text.trim().to_owned()
    }
}

impl RegistryClient {
    /// Builds the client and pings `GET /v2/` to learn how the registry authenticates; bad
    /// credentials, a dead host and a non-registry URL fail here, before anything is scanned.
    pub async fn connect(
        config: &RegistryConfig,
        max_concurrent_requests: usize,
    ) -> Result<RegistryClient, RegistryError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .danger_accept_invalid_certs(!config.ssl_verify)
            .user_agent(concat!("bai-manager/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RegistryError::Unreachable {
                registry: config.name.clone(),
                url: config.url.to_string(),
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        let mut base = config.url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let credentials = match (&config.username, &config.password) {
            (Some(user), Some(password)) if !user.is_empty() => {
                Some((user.clone(), password.clone()))
            }
            _ => None,
        };
        let mut client = RegistryClient {
            http,
            base,
            registry: config.name.clone(),
            credentials,
            mode: AuthMode::Anonymous,
            tokens: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(max_concurrent_requests.max(1))),
        };
        client.mode = client.probe_auth().await?;
        if matches!(client.mode, AuthMode::Bearer { .. }) {
            // Proves the credentials now; the token is reused for the catalog.
            client.token_for(CATALOG_SCOPE, true).await?;
        }
        Ok(client)
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `base` joined with a relative path (`v2/...`, `api/v2.0/...`).
    pub fn url(&self, relative: &str) -> Url {
        self.base
            .join(relative)
            .unwrap_or_else(|_| self.base.clone())
    }

    async fn probe_auth(&self) -> Result<AuthMode, RegistryError> {
        let url = self.url("v2/");
        let mut request = self.http.get(url.clone());
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let fetched = self.send(request, &url).await?;
        match fetched.status {
            status if status.is_success() => Ok(if self.credentials.is_some() {
                AuthMode::Basic
            } else {
                AuthMode::Anonymous
            }),
            StatusCode::UNAUTHORIZED => match fetched.challenge.unwrap_or(Challenge::Basic) {
                Challenge::Bearer { realm, service, .. } => {
                    let realm = realm
                        .and_then(|r| Url::parse(&r).ok())
                        .unwrap_or_else(|| self.url("token"));
                    Ok(AuthMode::Bearer {
                        realm,
                        service: service.unwrap_or_else(|| "registry".to_owned()),
                    })
                }
                _ => Err(self.rejected("GET /v2/ answered 401")),
            },
            StatusCode::NOT_FOUND => Err(RegistryError::NotARegistry {
                registry: self.registry.clone(),
                url: self.base.to_string(),
                status: 404,
            }),
            status => Err(self.status_error(&url, status, &fetched.body)),
        }
    }

    fn rejected(&self, detail: &str) -> RegistryError {
        match &self.credentials {
            Some((user, _)) => RegistryError::BadCredentials {
                registry: self.registry.clone(),
                user: user.clone(),
                detail: detail.to_owned(),
            },
            None => RegistryError::CredentialsRequired {
                registry: self.registry.clone(),
            },
        }
    }

    pub fn status_error(&self, url: &Url, status: StatusCode, body: &[u8]) -> RegistryError {
        RegistryError::Status {
            registry: self.registry.clone(),
            url: url.to_string(),
            status: status.as_u16(),
            detail: error_detail(body),
        }
    }

    /// Sends `request` under a permit and reads the body (bounded).
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<Fetched, RegistryError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| self.unreachable(url, "the client is shutting down".to_owned()))?;
        let mut response = request
            .send()
            .await
            .map_err(|e| self.unreachable(url, describe_reqwest_error(&e)))?;
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE);
        let link = header(LINK);
        let challenge = header(WWW_AUTHENTICATE).map(|h| parse_challenge(&h));
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.bad_response(url, describe_reqwest_error(&e)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(self.bad_response(
                    url,
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            url: url.clone(),
            status,
            content_type,
            link,
            challenge,
            body,
        })
    }

    fn unreachable(&self, url: &Url, message: String) -> RegistryError {
        RegistryError::Unreachable {
            registry: self.registry.clone(),
            url: url.to_string(),
            message,
        }
    }

    fn bad_response(&self, url: &Url, detail: String) -> RegistryError {
        RegistryError::BadResponse {
            registry: self.registry.clone(),
            url: url.to_string(),
            detail,
        }
    }

    /// A bearer token for `scope`, from the cache unless `refresh`.
    async fn token_for(&self, scope: &str, refresh: bool) -> Result<String, RegistryError> {
        let AuthMode::Bearer { realm, service } = &self.mode else {
            return Ok(String::new());
        };
        if !refresh && let Some(token) = self.tokens.lock().ok().and_then(|t| t.get(scope).cloned())
        {
            return Ok(token);
        }
        let mut url = realm.clone();
        url.query_pairs_mut()
            .append_pair("scope", scope)
            .append_pair("offline_token", "true")
            .append_pair("client_id", "docker")
            .append_pair("service", service);
        let mut request = self.http.get(url.clone());
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let fetched = self.send(request, &url).await?;
        let token_error = |detail: String| RegistryError::Token {
            registry: self.registry.clone(),
            realm: realm.to_string(),
            detail,
        };
        match fetched.status {
            status if status.is_success() => {
                let token = token_from_response(&fetched.body)
                    .ok_or_else(|| token_error("the response carries no token".to_owned()))?;
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.insert(scope.to_owned(), token.clone());
                }
                Ok(token)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(self.rejected(&format!(
                "the token server answered {}",
                fetched.status.as_u16()
            ))),
            status => Err(token_error(format!(
                "answered {}: {}",
                status.as_u16(),
                error_detail(&fetched.body)
            ))),
        }
    }

    /// GET through the registry's auth for `scope` (a token scope), with an optional `Accept`.
    /// A 401 on a bearer registry gets one retry with a fresh token (tokens expire). Any status
    /// is returned; the caller decides what a 404 means.
    pub async fn get(
        &self,
        url: &Url,
        scope: &str,
        accept: Option<&str>,
    ) -> Result<Fetched, RegistryError> {
        let mut refresh = false;
        loop {
            let mut request = self.http.get(url.clone());
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            match &self.mode {
                AuthMode::Anonymous => {}
                AuthMode::Basic => {
                    if let Some((user, password)) = &self.credentials {
                        request = request.basic_auth(user, Some(password));
                    }
                }
                AuthMode::Bearer { .. } => {
                    request = request.bearer_auth(self.token_for(scope, refresh).await?);
                }
            }
            let fetched = self.send(request, url).await?;
            if fetched.status == StatusCode::UNAUTHORIZED {
                if matches!(self.mode, AuthMode::Bearer { .. }) && !refresh {
                    refresh = true;
                    continue;
                }
                return Err(self.rejected(&format!("GET {url} answered 401")));
            }
            return Ok(fetched);
        }
    }

    /// Like [`get`](Self::get), but anything other than a success is an error.
    pub async fn get_ok(
        &self,
        url: &Url,
        scope: &str,
        accept: Option<&str>,
    ) -> Result<Fetched, RegistryError> {
        let fetched = self.get(url, scope, accept).await?;
        if !fetched.status.is_success() {
            return Err(self.status_error(url, fetched.status, &fetched.body));
        }
        Ok(fetched)
    }

    /// GET an API endpoint outside `/v2/` (Harbor's) with HTTP Basic auth when configured.
    pub async fn get_api(&self, url: &Url) -> Result<Fetched, RegistryError> {
        let mut request = self
            .http
            .get(url.clone())
            .header(ACCEPT, "application/json");
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let fetched = self.send(request, url).await?;
        match fetched.status {
            status if status.is_success() => Ok(fetched),
            StatusCode::UNAUTHORIZED => Err(self.rejected(&format!("GET {url} answered 401"))),
            status => Err(self.status_error(url, status, &fetched.body)),
        }
    }
}

/// reqwest's error with its causes, which carry the useful part ("connection refused").
fn describe_reqwest_error(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_bodies_are_summarized() {
        assert_eq!(
            error_detail(br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:x"}]}"#),
            "BLOB_UNKNOWN blob unknown to registry"
        );
        assert_eq!(error_detail(b"  "), "(empty body)");
        assert_eq!(error_detail(&[b'x'; 1000]).len(), ERROR_DETAIL_CHARS);
    }
}
