//! How storage failures reach the API client: the façade's problem+json for the storage
//! broker's and the mount resolver's typed errors (the storage module knows no HTTP).

use serde_json::Value;

use crate::facade::problem::{Problem, ProblemKind};
use crate::storage::StorageError;
use crate::storage::mounts::MountError;

impl From<StorageError> for Problem {
    /// As the original's `StorageSessionManager.request`: an error reply with a JSON body
    /// becomes 400 `invalid-api-params` carrying the proxy's `msg` and the rest of its body
    /// as `data`; one without JSON becomes 400 `vfolder-operation-failed` "Storage proxy
    /// responded with …". A proxy that cannot be reached (where the original let a 500
    /// escape) is 503 `service-unavailable` naming the proxy.
    fn from(error: StorageError) -> Problem {
        match error {
            StorageError::UnknownProxy { proxy } => {
                Problem::invalid_params(format!("There is no such storage proxy: {proxy}"))
            }
            StorageError::Unreachable {
                proxy, operation, ..
            } => Problem::new(ProblemKind::ServiceUnavailable).with_msg(format!(
                "storage proxy {proxy} is unreachable (while {operation})"
            )),
            StorageError::Rejected {
                proxy,
                status,
                mut body,
                ..
            } => {
                let msg = match body.remove("msg") {
                    Some(Value::String(msg)) => msg,
                    _ => format!("storage proxy {proxy} answered {status}"),
                };
                Problem::invalid_params(msg).with_data(Value::Object(body))
            }
            StorageError::Failed {
                proxy,
                status,
                reason,
                ..
            } => Problem::new(ProblemKind::VFolderOperationFailed).with_msg(format!(
                "Storage proxy {proxy} responded with {status} {reason}"
            )),
            StorageError::BadReply {
                proxy, operation, ..
            } => Problem::new(ProblemKind::StorageProxyError)
                .with_status(502)
                .with_msg(format!(
                    "storage proxy {proxy} sent an unreadable reply (while {operation})"
                )),
        }
    }
}

impl From<MountError> for Problem {
    fn from(error: MountError) -> Problem {
        match error {
            MountError::Invalid(msg) => Problem::invalid_params(msg),
            MountError::NotFound(msg) => Problem::not_found("virtual folder").with_msg(msg),
            MountError::Storage(StorageError::Rejected { mut body, .. }) => {
                // `get_mount_path` failures become InvalidAPIParameters(msg, data).
                let msg = body
                    .remove("msg")
                    .and_then(|m| m.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "cannot resolve the mount path".into());
                Problem::invalid_params(msg).with_data(Value::Object(body))
            }
            MountError::Storage(other) => other.into(),
            MountError::Db(e) => Problem::internal(format!("database error: {e}")),
            MountError::HostMap(e) => {
                Problem::new(ProblemKind::ServerMisconfigured).with_msg(e.to_string())
            }
            MountError::BadRow { .. } => Problem::internal(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_error_replies_become_invalid_api_params_with_the_proxys_message() {
        let body = json!({"msg": "File exists", "errno": 17, "paths": ["sub"]});
        let problem: Problem = StorageError::Rejected {
            proxy: "local".into(),
            operation: "making a directory",
            status: 400,
            body: body.as_object().unwrap().clone(),
        }
        .into();
        assert_eq!(problem.status_code(), 400);
        assert_eq!(
            problem.body(),
            json!({
                "type": "https://api.backend.ai/probs/invalid-api-params",
                "title": "Missing or invalid API parameters.",
                "msg": "File exists",
                "data": {"errno": 17, "paths": ["sub"]},
            })
        );
    }

    #[test]
    fn unreachable_proxies_are_503_naming_the_proxy() {
        let error = StorageError::Unreachable {
            proxy: "local".into(),
            url: "http://127.0.0.1:1/folder/create".into(),
            operation: "creating a folder",
            reason: "connection refused".into(),
        };
        assert!(error.is_unavailable());
        let problem: Problem = error.into();
        assert_eq!(problem.status_code(), 503);
        assert_eq!(
            problem.body()["msg"],
            "storage proxy local is unreachable (while creating a folder)"
        );
    }

    #[test]
    fn non_json_errors_say_what_the_proxy_answered() {
        let error = StorageError::Failed {
            proxy: "local".into(),
            operation: "listing volumes",
            status: 403,
            reason: "Forbidden".into(),
        };
        assert_eq!(error.proxy_status(), Some(403));
        let problem: Problem = error.into();
        assert_eq!(
            problem.body()["type"],
            "https://api.backend.ai/probs/vfolder-operation-failed"
        );
        assert_eq!(
            problem.body()["msg"],
            "Storage proxy local responded with 403 Forbidden"
        );
    }
}
