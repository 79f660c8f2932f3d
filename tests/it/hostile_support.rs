//! Shared pieces of the hostile-input tests: a real `bai-manager` process (optionally with
//! the real storage proxy), requests signed as the official client signs them and sent over
//! HTTP, anonymous requests, raw TCP connections, and the manager's log.

use std::time::Duration;

use bai_testkit::{StorageProxyServer, TestEnv};
use serde_json::Value;

use crate::api_support::{Signer, TEST_HOST};
use crate::manager_process::{ManagerProcess, replace_logging_sections};

/// How long a test waits for something the manager does by itself (a timeout firing, a log
/// line being relayed): far above the configured timeouts, never a measurement.
pub const WAIT: Duration = Duration::from_secs(30);

/// The logging of the manager under test: plain `LEVEL message` lines on the console (the
/// output file), the HTTP server's (`aiohttp`) records down to DEBUG, so the tests can see
/// what was logged at which level.
const LOGGING: &str = r#"[logging]
level = "DEBUG"
drivers = ["console"]

[logging.pkg-ns]
"" = "WARNING"
"ai.backend" = "INFO"
"aiohttp" = "DEBUG"

[logging.console]
colored = false
format = "simple""#;

pub struct HostileWorld {
    pub env: TestEnv,
    pub proxy: Option<StorageProxyServer>,
    pub manager: ManagerProcess,
    pub http: reqwest::Client,
}

impl HostileWorld {
    /// The example fixtures, `manager/status = running`, a storage proxy registered as
    /// `local` when `with_storage`, and a manager with `extra_manager_keys` in `[manager]`.
    pub async fn start(extra_manager_keys: &str, with_storage: bool) -> HostileWorld {
        let env = TestEnv::new().await;
        env.load_example_fixtures().await;
        env.etcd_put("manager/status", "running").await;
        let proxy = if with_storage {
            let proxy = StorageProxyServer::start(&env);
            proxy.register(&env, "local").await;
            Some(proxy)
        } else {
            None
        };
        let config = env.manager_toml(extra_manager_keys);
        replace_logging_sections(&config, LOGGING);
        let mut manager =
            ManagerProcess::start_server(&config, &[], &env.path("manager-output.log"));
        manager.wait_for_port(env.service_port);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(WAIT)
            .build()
            .unwrap();
        HostileWorld {
            env,
            proxy,
            manager,
            http,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.env.service_port)
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr())
    }

    /// A request signed by `signer` (the signature covers `path_and_query` and the test
    /// host); returns the status and the JSON body (`Null` when empty).
    pub async fn signed(
        &self,
        signer: &Signer,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let content_type = if body.is_some() {
            "application/json"
        } else {
            "text/plain"
        };
        let mut request = self.http.request(method.clone(), self.url(path_and_query));
        for (name, value) in signer.headers(
            method.as_str(),
            path_and_query,
            content_type,
            chrono::Utc::now(),
        ) {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        self.read(request.send().await).await
    }

    /// An unsigned request with a raw body.
    pub async fn anonymous(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: &[u8],
    ) -> (u16, Value) {
        let request = self
            .http
            .request(method, self.url(path_and_query))
            .header("Host", TEST_HOST)
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        self.read(request.send().await).await
    }

    /// The status and JSON body of a reply; a failed request panics with the manager's log.
    async fn read(&self, response: reqwest::Result<reqwest::Response>) -> (u16, Value) {
        let response = response.unwrap_or_else(|e| panic!("{e:?}\n{}", self.log()));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, body)
    }

    /// `GET /` answers 200: the worker serves.
    pub async fn assert_serving(&self) {
        let (status, _) = self.read(self.http.get(self.url("/")).send().await).await;
        assert_eq!(status, 200);
    }

    pub fn log(&self) -> String {
        self.manager.output()
    }

    /// Sends `GET /` with `marker` as its user agent and waits for its access-log line: every
    /// line the worker wrote before has then reached the log.
    pub async fn flush_log(&self, marker: &str) {
        let request = self.http.get(self.url("/")).header("User-Agent", marker);
        let (status, _) = self.read(request.send().await).await;
        assert_eq!(status, 200);
        self.manager.wait_for_output(marker, WAIT);
    }

    /// The log lines at ERROR (the console's `simple` format starts a line with the level).
    pub fn error_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| line.starts_with("ERROR") || line.starts_with("CRITICAL"))
            .map(str::to_owned)
            .collect()
    }
}

/// Asserts a 400 `invalid-api-params` whose `data` names `field`; returns the reason.
pub fn assert_invalid_param(reply: &(u16, Value), field: &str) -> String {
    let (status, body) = reply;
    assert_eq!(*status, 400, "{body}");
    assert_eq!(
        body["type"], "https://api.backend.ai/probs/invalid-api-params",
        "{body}"
    );
    body["data"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no reason for {field} in {body}"))
        .to_owned()
}
