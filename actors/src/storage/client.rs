//! A client for one storage proxy's manager API: every call carries the
//! `X-BackendAI-Storage-Auth-Token` header, sends its parameters as a JSON body (GET requests
//! too, as the proxy reads them from the body), and turns error replies into [`StorageError`].

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::config::ProxyConfig;
use super::error::StorageError;
use super::ids::VFolderId;
use super::relative_path::{EntryName, VFolderPath};

/// The header that carries the proxy's secret.
pub const AUTH_TOKEN_HEADER: &str = "X-BackendAI-Storage-Auth-Token";

/// How long to wait for a proxy to accept a connection: a proxy on the same network answers
/// in milliseconds, so a few seconds means it is down, and the client hears so quickly.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one call may take in all. Deleting or cloning a large folder runs inside the
/// call; this is aiohttp's default total timeout, which the original used.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A volume as `GET /volumes` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct VolumeInfo {
    pub name: String,
    pub backend: String,
    pub path: String,
    pub fsprefix: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// `GET /folder/fs-usage`: the whole volume.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct FsUsage {
    pub capacity_bytes: i64,
    pub used_bytes: i64,
}

/// `GET /folder/usage`: one folder.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct FolderUsage {
    pub file_count: i64,
    pub used_bytes: i64,
}

/// One entry of `POST /folder/file/list`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileEntry {
    pub name: String,
    /// `FILE`, `DIRECTORY` or `SYMLINK`.
    #[serde(rename = "type")]
    pub file_type: String,
    pub stat: FileStat,
    #[serde(default)]
    pub symlink_target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileStat {
    pub mode: u32,
    pub size: i64,
    /// ISO 8601 with offset, as the proxy sends it.
    pub created: String,
    pub modified: String,
}

#[derive(Deserialize)]
struct VolumesReply {
    volumes: Vec<VolumeInfo>,
}

#[derive(Deserialize)]
struct FilesReply {
    items: Vec<FileEntry>,
}

#[derive(Deserialize)]
struct MountReply {
    path: String,
}

#[derive(Deserialize)]
struct TokenReply {
    token: String,
}

/// Whether `folder/delete` removed the folder or found it already gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    AlreadyGone,
}

/// The client of one proxy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ProxyClient {
    config: Arc<ProxyConfig>,
    http: reqwest::Client,
}

impl ProxyClient {
    pub fn new(config: ProxyConfig) -> Result<ProxyClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // Proxies are reached directly, never through HTTP_PROXY and the like.
            .no_proxy()
            .tls_danger_accept_invalid_certs(!config.ssl_verify)
            .build()?;
        Ok(ProxyClient {
            config: Arc::new(config),
            http,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// `client_api` joined with `relpath` (`upload`, `download`), for clients.
    pub fn client_url(&self, relpath: &str) -> String {
        join(self.config.client_api.as_str(), relpath)
    }

    /// Calls `relpath` and returns the JSON reply, or `None` for an empty one (204).
    pub async fn call(
        &self,
        method: Method,
        relpath: &str,
        operation: &'static str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, StorageError> {
        let url = join(self.config.manager_api.as_str(), relpath);
        let mut request = self
            .http
            .request(method, &url)
            .header(AUTH_TOKEN_HEADER, self.config.secret.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| StorageError::Unreachable {
            proxy: self.config.name.clone(),
            url: url.clone(),
            operation,
            reason: error_chain(&e.without_url()),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(body)) => StorageError::Rejected {
                    proxy: self.config.name.clone(),
                    operation,
                    status: status.as_u16(),
                    body,
                },
                _ => StorageError::Failed {
                    proxy: self.config.name.clone(),
                    operation,
                    status: status.as_u16(),
                    reason: status.canonical_reason().unwrap_or("").to_owned(),
                },
            });
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| self.bad_reply(operation, format!("not JSON: {e}")))
    }

    async fn call_for<T: DeserializeOwned>(
        &self,
        method: Method,
        relpath: &str,
        operation: &'static str,
        body: &Value,
    ) -> Result<T, StorageError> {
        let reply = self
            .call(method, relpath, operation, Some(body))
            .await?
            .ok_or_else(|| self.bad_reply(operation, "an empty reply".into()))?;
        serde_json::from_value(reply).map_err(|e| self.bad_reply(operation, e.to_string()))
    }

    fn bad_reply(&self, operation: &'static str, reason: String) -> StorageError {
        StorageError::BadReply {
            proxy: self.config.name.clone(),
            operation,
            reason,
        }
    }

    /// `GET /volumes`.
    pub async fn volumes(&self) -> Result<Vec<VolumeInfo>, StorageError> {
        let operation = "listing volumes";
        let reply = self
            .call(Method::GET, "volumes", operation, None)
            .await?
            .ok_or_else(|| self.bad_reply(operation, "an empty reply".into()))?;
        let reply: VolumesReply =
            serde_json::from_value(reply).map_err(|e| self.bad_reply(operation, e.to_string()))?;
        Ok(reply.volumes)
    }

    /// `GET /volume/hwinfo`: `{status, status_info, metadata}`.
    pub async fn hwinfo(&self, volume: &str) -> Result<Value, StorageError> {
        self.call_for(
            Method::GET,
            "volume/hwinfo",
            "reading volume hardware info",
            &json!({"volume": volume}),
        )
        .await
    }

    /// `GET /volume/performance-metric`: backend-specific figures.
    pub async fn performance_metric(&self, volume: &str) -> Result<Value, StorageError> {
        self.call_for(
            Method::GET,
            "volume/performance-metric",
            "reading volume performance metrics",
            &json!({"volume": volume}),
        )
        .await
    }

    /// `GET /folder/fs-usage`.
    pub async fn fs_usage(&self, volume: &str) -> Result<FsUsage, StorageError> {
        self.call_for(
            Method::GET,
            "folder/fs-usage",
            "reading volume usage",
            &json!({"volume": volume}),
        )
        .await
    }

    /// `POST /folder/create` (204). `options` as the original sends them (`{}` or
    /// `{"initial_max_size_for_quota_scope": bytes}`).
    pub async fn create_folder(
        &self,
        volume: &str,
        vfid: &VFolderId,
        options: Map<String, Value>,
    ) -> Result<(), StorageError> {
        let body = json!({"volume": volume, "vfid": vfid.to_string(), "options": options});
        self.call(
            Method::POST,
            "folder/create",
            "creating a folder",
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `POST /folder/delete`; a folder the proxy does not know counts as already gone.
    pub async fn delete_folder(
        &self,
        volume: &str,
        vfid: &VFolderId,
    ) -> Result<Deletion, StorageError> {
        let body = json!({"volume": volume, "vfid": vfid.to_string()});
        match self
            .call(
                Method::POST,
                "folder/delete",
                "deleting a folder",
                Some(&body),
            )
            .await
        {
            Ok(_) => Ok(Deletion::Deleted),
            Err(e) if e.is_not_found() => Ok(Deletion::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    /// Makes sure a quota scope exists, as a clone's destination folder needs it: `GET
    /// /quota-scope`, then `POST /quota-scope` without options when the proxy does not know it
    /// (a vfs volume answers 500, not 409, to creating a scope twice).
    pub async fn ensure_quota_scope(&self, volume: &str, qsid: &str) -> Result<(), StorageError> {
        let body = json!({"volume": volume, "qsid": qsid});
        let known = self
            .call(
                Method::GET,
                "quota-scope",
                "reading a quota scope",
                Some(&body),
            )
            .await;
        if known.is_ok() {
            return Ok(());
        }
        match self
            .call(
                Method::POST,
                "quota-scope",
                "creating a quota scope",
                Some(&body),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(StorageError::Rejected { status: 409, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET` or `PATCH /volume/quota`: the legacy per-folder quota (a 23.09 proxy refuses it as
    /// deprecated); the proxy's reply as it is.
    pub async fn folder_quota(
        &self,
        method: Method,
        volume: &str,
        vfid: &VFolderId,
        size_bytes: Option<i64>,
    ) -> Result<Option<Value>, StorageError> {
        let mut body = json!({"volume": volume, "vfid": vfid.to_string()});
        if let Some(size) = size_bytes {
            body["size_bytes"] = json!(size);
        }
        self.call(
            method,
            "volume/quota",
            "reading or setting a folder quota",
            Some(&body),
        )
        .await
    }

    /// `POST /folder/clone` within one volume.
    pub async fn clone_folder(
        &self,
        src_volume: &str,
        src_vfid: &VFolderId,
        dst_volume: &str,
        dst_vfid: &VFolderId,
    ) -> Result<(), StorageError> {
        let body = json!({
            "src_volume": src_volume, "src_vfid": src_vfid.to_string(),
            "dst_volume": dst_volume, "dst_vfid": dst_vfid.to_string(),
        });
        self.call(
            Method::POST,
            "folder/clone",
            "cloning a folder",
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `GET /folder/mount`: the host path of a folder (or of `subpath` inside it).
    pub async fn mount_path(
        &self,
        volume: &str,
        vfid: &VFolderId,
        subpath: &VFolderPath,
    ) -> Result<String, StorageError> {
        let body = json!({"volume": volume, "vfid": vfid.to_string(), "subpath": subpath});
        let reply: MountReply = self
            .call_for(Method::GET, "folder/mount", "resolving a mount path", &body)
            .await?;
        Ok(reply.path)
    }

    /// `GET /folder/usage`.
    pub async fn folder_usage(
        &self,
        volume: &str,
        vfid: &VFolderId,
    ) -> Result<FolderUsage, StorageError> {
        let body = json!({"volume": volume, "vfid": vfid.to_string()});
        self.call_for(Method::GET, "folder/usage", "reading folder usage", &body)
            .await
    }

    /// `POST /folder/file/mkdir` for one path.
    pub async fn mkdir(
        &self,
        volume: &str,
        vfid: &VFolderId,
        relpath: &VFolderPath,
        parents: bool,
        exist_ok: bool,
    ) -> Result<(), StorageError> {
        let body = json!({
            "volume": volume, "vfid": vfid.to_string(), "relpath": relpath,
            "parents": parents, "exist_ok": exist_ok,
        });
        self.call(
            Method::POST,
            "folder/file/mkdir",
            "making a directory",
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `POST /folder/file/list`.
    pub async fn list_files(
        &self,
        volume: &str,
        vfid: &VFolderId,
        relpath: &VFolderPath,
    ) -> Result<Vec<FileEntry>, StorageError> {
        let body = json!({"volume": volume, "vfid": vfid.to_string(), "relpath": relpath});
        let reply: FilesReply = self
            .call_for(Method::POST, "folder/file/list", "listing files", &body)
            .await?;
        Ok(reply.items)
    }

    /// `POST /folder/file/rename`.
    pub async fn rename_file(
        &self,
        volume: &str,
        vfid: &VFolderId,
        relpath: &VFolderPath,
        new_name: &EntryName,
    ) -> Result<(), StorageError> {
        let body = json!({
            "volume": volume, "vfid": vfid.to_string(), "relpath": relpath, "new_name": new_name.as_str(),
        });
        self.call(
            Method::POST,
            "folder/file/rename",
            "renaming a file",
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `POST /folder/file/move`.
    pub async fn move_file(
        &self,
        volume: &str,
        vfid: &VFolderId,
        src_relpath: &VFolderPath,
        dst_relpath: &VFolderPath,
    ) -> Result<(), StorageError> {
        let body = json!({
            "volume": volume, "vfid": vfid.to_string(),
            "src_relpath": src_relpath, "dst_relpath": dst_relpath,
        });
        self.call(
            Method::POST,
            "folder/file/move",
            "moving a file",
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `POST /folder/file/delete`.
    pub async fn delete_files(
        &self,
        volume: &str,
        vfid: &VFolderId,
        relpaths: &[VFolderPath],
        recursive: bool,
    ) -> Result<(), StorageError> {
        let body = json!({
            "volume": volume, "vfid": vfid.to_string(), "relpaths": relpaths,
            "recursive": recursive,
        });
        self.call(
            Method::POST,
            "folder/file/delete",
            "deleting files",
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `POST /folder/file/download`: a download token signed by the proxy.
    pub async fn download_token(
        &self,
        volume: &str,
        vfid: &VFolderId,
        relpath: &VFolderPath,
        archive: bool,
        unmanaged_path: Option<&str>,
    ) -> Result<String, StorageError> {
        let body = json!({
            "volume": volume, "vfid": vfid.to_string(), "relpath": relpath,
            "archive": archive, "unmanaged_path": unmanaged_path,
        });
        let reply: TokenReply = self
            .call_for(
                Method::POST,
                "folder/file/download",
                "requesting a download",
                &body,
            )
            .await?;
        Ok(reply.token)
    }

    /// `POST /folder/file/fetch`: the reply streaming the file's bytes (the caller reads the
    /// body); an error reply becomes the same typed error as the other calls.
    pub async fn fetch_file(
        &self,
        volume: &str,
        vfid: &VFolderId,
        relpath: &VFolderPath,
    ) -> Result<reqwest::Response, StorageError> {
        let operation = "fetching a file";
        let url = join(self.config.manager_api.as_str(), "folder/file/fetch");
        let body = json!({"volume": volume, "vfid": vfid.to_string(), "relpath": relpath});
        let unreachable = |e: reqwest::Error| StorageError::Unreachable {
            proxy: self.config.name.clone(),
            url: url.clone(),
            operation,
            reason: error_chain(&e.without_url()),
        };
        let response = self
            .http
            .request(Method::POST, &url)
            .header(AUTH_TOKEN_HEADER, self.config.secret.expose())
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response.bytes().await.map_err(unreachable)?;
        Err(match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(body)) => StorageError::Rejected {
                proxy: self.config.name.clone(),
                operation,
                status: status.as_u16(),
                body,
            },
            _ => StorageError::Failed {
                proxy: self.config.name.clone(),
                operation,
                status: status.as_u16(),
                reason: status.canonical_reason().unwrap_or("").to_owned(),
            },
        })
    }

    /// `POST /folder/file/upload`: an upload token signed by the proxy.
    pub async fn upload_token(
        &self,
        volume: &str,
        vfid: &VFolderId,
        relpath: &VFolderPath,
        size: i64,
    ) -> Result<String, StorageError> {
        let body = json!({
            "volume": volume, "vfid": vfid.to_string(), "relpath": relpath, "size": size,
        });
        let reply: TokenReply = self
            .call_for(
                Method::POST,
                "folder/file/upload",
                "requesting an upload",
                &body,
            )
            .await?;
        Ok(reply.token)
    }
}

/// An error with its causes ("error sending request: connection refused"), which reqwest's
/// own message leaves out.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// yarl's `url / relpath`: appends a path segment, keeping any path of the base.
fn join(base: &str, relpath: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        relpath.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_append_like_yarl() {
        assert_eq!(
            join("http://127.0.0.1:6022/", "folder/create"),
            "http://127.0.0.1:6022/folder/create"
        );
        assert_eq!(
            join("https://storage.example/api", "volumes"),
            "https://storage.example/api/volumes"
        );
    }

    #[test]
    fn file_entries_read_the_captured_listing() {
        // manager-to-storage.http #5
        let reply: FilesReply = serde_json::from_str(
            r#"{"items": [{"name": "sub", "type": "DIRECTORY", "stat": {"mode": 16877,
                "size": 4096, "created": "2026-11-28T02:16:20.250860+00:00",
                "modified": "2026-11-28T02:16:20.250860+00:00"}, "symlink_target": ""}]}"#,
        )
        .unwrap();
        assert_eq!(reply.items[0].file_type, "DIRECTORY");
        assert_eq!(reply.items[0].stat.mode, 16877);
    }
}
