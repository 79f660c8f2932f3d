//! What can go wrong between the manager and a storage proxy, and how each failure reaches
//! the API client. Messages name the proxy and the operation; they never carry the secret
//! (it only travels in a request header, which no error includes).

use serde_json::{Map, Value};

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
