//! What can go wrong between the manager and a storage proxy, and how each failure reaches
//! the API client. Messages name the proxy and the operation; they never carry the secret
//! (it only travels in a request header, which no error includes).

use serde_json::{Map, Value};

use crate::facade::problem::{Problem, ProblemKind};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The host names a proxy that `volumes/proxies` does not configure.
    #[error("there is no storage proxy named {proxy:?} (etcd volumes/proxies/{proxy})")]
    UnknownProxy { proxy: String },

    /// The proxy could not be reached (refused, reset, timed out, TLS failure).
    #[error("storage proxy {proxy} is unreachable at {url} while {operation}: {reason}")]
    Unreachable {
        proxy: String,
        url: String,
        operation: &'static str,
        reason: String,
    },

    /// The proxy answered with an error status and a JSON body.
    #[error(
        "storage proxy {proxy} answered {status} while {operation}: {}",
        describe_body(body)
    )]
    Rejected {
        proxy: String,
        operation: &'static str,
        status: u16,
        body: Map<String, Value>,
    },

    /// The proxy answered with an error status and a body that is not JSON.
    #[error("storage proxy {proxy} answered {status} {reason} while {operation}")]
    Failed {
        proxy: String,
        operation: &'static str,
        status: u16,
        reason: String,
    },

    /// A successful reply that does not have the expected shape.
    #[error("storage proxy {proxy} sent an unreadable reply while {operation}: {reason}")]
    BadReply {
        proxy: String,
        operation: &'static str,
        reason: String,
    },
}

fn describe_body(body: &Map<String, Value>) -> String {
    ["msg", "title", "type"]
        .iter()
        .find_map(|key| body.get(*key).and_then(Value::as_str))
        .unwrap_or("no message")
        .to_owned()
}

impl StorageError {
    /// The HTTP status the proxy answered, if it answered.
    pub fn proxy_status(&self) -> Option<u16> {
        match self {
            StorageError::Rejected { status, .. } | StorageError::Failed { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The proxy says the folder (or file) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.proxy_status() == Some(404)
    }

    /// The proxy could not be reached or did not answer sensibly: nothing was done there.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StorageError::Unreachable { .. })
    }

    pub fn proxy(&self) -> &str {
        match self {
            StorageError::UnknownProxy { proxy }
            | StorageError::Unreachable { proxy, .. }
            | StorageError::Rejected { proxy, .. }
            | StorageError::Failed { proxy, .. }
            | StorageError::BadReply { proxy, .. } => proxy,
        }
    }
}

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
