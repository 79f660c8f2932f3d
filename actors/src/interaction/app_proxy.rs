//! The scaling group's app proxy (wsproxy), as the 22.09/23.09 manager talks to it: its
//! `GET /status` tells its `api_version` (what `wsproxy-version` reports) and its
//! `advertise_address`; `POST /v2/conf` registers a kernel's app port and answers the token the
//! Web UI opens the app with. Replies are bounded in size and time.

use std::time::Duration;

use serde_json::{Value as Json, json};
use uuid::Uuid;

/// How long one call to the app proxy may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest reply read from the app proxy (a small JSON object).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AppProxyError {
    #[error("cannot reach the app proxy at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("the app proxy at {addr} answered {status}")]
    Status { addr: String, status: u16 },
    #[error("the app proxy at {addr} sent an unusable reply: {reason}")]
    BadReply { addr: String, reason: String },
}

/// Who a registered app belongs to (the `session` object of `/v2/conf`).
#[derive(Debug, Clone, PartialEq)]
pub struct AppOwner {
    pub session_id: Uuid,
    pub user_uuid: Uuid,
    pub group_id: Uuid,
    pub access_key: Option<String>,
    pub domain_name: String,
}

/// The body of `POST /v2/conf`, as the original sends it.
pub fn conf_body(
    login_session_token: Option<&str>,
    kernel_host: &str,
    kernel_port: u16,
    owner: &AppOwner,
) -> Json {
    json!({
        "login_session_token": login_session_token,
        "kernel_host": kernel_host,
        "kernel_port": kernel_port,
        "session": {
            "id": owner.session_id.to_string(),
            "user_uuid": owner.user_uuid.to_string(),
            "group_id": owner.group_id.to_string(),
            "access_key": owner.access_key,
            "domain_name": owner.domain_name,
        },
    })
}

/// The address browsers use: the proxy's `advertise_address` when it reports one.
pub fn advertised_addr(status: &Json, addr: &str) -> String {
    status
        .get("advertise_address")
        .and_then(Json::as_str)
        .filter(|advertised| !advertised.is_empty())
        .unwrap_or(addr)
        .to_owned()
}

/// The process's client of app proxies (one connection pool for every worker thread).
pub fn shared_client() -> Result<&'static AppProxyClient, AppProxyError> {
    static CLIENT: std::sync::OnceLock<AppProxyClient> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = AppProxyClient::new()?;
    Ok(CLIENT.get_or_init(|| client))
}

/// A client of app proxies.
#[derive(Clone)]
pub struct AppProxyClient {
    http: reqwest::Client,
}

impl AppProxyClient {
    pub fn new() -> Result<AppProxyClient, AppProxyError> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| AppProxyError::Unreachable {
                addr: String::new(),
                reason: e.to_string(),
            })?;
        Ok(AppProxyClient { http })
    }

    /// `GET {addr}/status`.
    pub async fn status(&self, addr: &str) -> Result<Json, AppProxyError> {
        let url = format!("{}/status", addr.trim_end_matches('/'));
        self.read_json(addr, self.http.get(url)).await
    }

    /// `POST {addr}/v2/conf`: the token of the registered app.
    pub async fn register(&self, addr: &str, body: &Json) -> Result<String, AppProxyError> {
        let url = format!("{}/v2/conf", addr.trim_end_matches('/'));
        let reply = self.read_json(addr, self.http.post(url).json(body)).await?;
        reply
            .get("token")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| AppProxyError::BadReply {
                addr: addr.to_owned(),
                reason: "no token in the reply".into(),
            })
    }

    async fn read_json(
        &self,
        addr: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Json, AppProxyError> {
        let unreachable = |e: reqwest::Error| AppProxyError::Unreachable {
            addr: addr.to_owned(),
            reason: e.to_string(),
        };
        let mut response = request.send().await.map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(AppProxyError::Status {
                addr: addr.to_owned(),
                status: response.status().as_u16(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(AppProxyError::BadReply {
                    addr: addr.to_owned(),
                    reason: format!("the reply is over {MAX_REPLY_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| AppProxyError::BadReply {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conf_body_and_the_advertised_address_follow_the_original() {
        let owner = AppOwner {
            session_id: Uuid::from_u128(1),
            user_uuid: Uuid::from_u128(2),
            group_id: Uuid::from_u128(3),
            access_key: Some("AKIA".into()),
            domain_name: "default".into(),
        };
        let body = conf_body(None, "10.0.0.5", 30001, &owner);
        assert_eq!(body["kernel_host"], "10.0.0.5");
        assert_eq!(body["kernel_port"], 30001);
        assert!(body["login_session_token"].is_null());
        assert_eq!(body["session"]["access_key"], "AKIA");
        assert_eq!(body["session"]["id"], Uuid::from_u128(1).to_string());
        let status = json!({"api_version": "v2", "advertise_address": "https://proxy.example"});
        assert_eq!(
            advertised_addr(&status, "http://10.0.0.9:5050"),
            "https://proxy.example"
        );
        assert_eq!(
            advertised_addr(&json!({"api_version": "v2"}), "http://a"),
            "http://a"
        );
    }
}
