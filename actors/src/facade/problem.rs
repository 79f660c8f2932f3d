//! The API's errors, rendered as `application/problem+json` with the original's type URLs,
//! titles and status codes. Every handler error ends up here.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};

/// The media type of error replies, as aiohttp sends it.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json; charset=utf-8";

/// The base of every problem `type` URL.
pub const PROBLEM_BASE: &str = "https://api.backend.ai/probs/";

/// One kind of API error (`ai.backend.manager.api.exceptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    UrlNotFound,
    ObjectNotFound,
    GenericBadRequest,
    RejectedByHook,
    InvalidCredentials,
    GenericForbidden,
    InsufficientPrivilege,
    MethodNotAllowed,
    InternalServerError,
    ServerMisconfigured,
    ServiceUnavailable,
    QueryNotImplemented,
    InvalidAuthParameters,
    AuthorizationFailed,
    PasswordExpired,
    InvalidApiParameters,
    GraphQlError,
    TooManySessionsMatched,
    TooManyKernelsFound,
    SessionAlreadyExists,
    VFolderCreationFailed,
    TooManyVFoldersFound,
    VFolderAlreadyExists,
    VFolderOperationFailed,
    VFolderFilterStatusFailed,
    QuotaExceeded,
    RateLimitExceeded,
    /// Not in the original (aiohttp had no body deadline): a body that arrived too slowly.
    RequestTimeout,
    InstanceNotAvailable,
    ServerFrozen,
    StorageProxyError,
    KernelCreationFailed,
    KernelDestructionFailed,
    KernelRestartFailed,
    KernelExecutionFailed,
    InvalidSessionState,
    PayloadTooLarge,
}

impl ProblemKind {
    /// (HTTP status, type slug, title) exactly as the original.
    pub fn parts(self) -> (u16, &'static str, &'static str) {
        use ProblemKind::*;
        match self {
            UrlNotFound => (404, "url-not-found", "Unknown URL path."),
            ObjectNotFound => (404, "object-not-found", "No such resource."),
            GenericBadRequest => (400, "generic-bad-request", "Bad request."),
            RejectedByHook => (
                400,
                "rejected-by-hook",
                "Operation rejected by a hook plugin.",
            ),
            InvalidCredentials => (
                400,
                "invalid-credentials",
                "Invalid credentials for authentication.",
            ),
            GenericForbidden => (403, "generic-forbidden", "Forbidden operation."),
            InsufficientPrivilege => (403, "insufficient-privilege", "Insufficient privilege."),
            MethodNotAllowed => (405, "method-not-allowed", "HTTP Method Not Allowed."),
            InternalServerError => (500, "internal-server-error", "Internal server error."),
            ServerMisconfigured => (500, "server-misconfigured", "Service misconfigured."),
            ServiceUnavailable => (503, "service-unavailable", "Serivce unavailable."),
            QueryNotImplemented => (503, "not-implemented", "This API query is not implemented."),
            InvalidAuthParameters => (
                400,
                "invalid-auth-params",
                "Missing or invalid authorization parameters.",
            ),
            AuthorizationFailed => (401, "auth-failed", "Credential/signature mismatch."),
            PasswordExpired => (401, "password-expired", "Password has expired."),
            InvalidApiParameters => (
                400,
                "invalid-api-params",
                "Missing or invalid API parameters.",
            ),
            GraphQlError => (400, "graphql-error", "GraphQL-generated error."),
            TooManySessionsMatched => (
                404,
                "too-many-sessions-matched",
                "Too many sessions matched.",
            ),
            TooManyKernelsFound => (
                404,
                "too-many-kernels",
                "There are two or more matching kernels.",
            ),
            SessionAlreadyExists => (
                400,
                "session-already-exists",
                "The session already exists but you requested not to reuse existing one.",
            ),
            VFolderCreationFailed => (
                400,
                "vfolder-creation-failed",
                "Virtual folder creation has failed.",
            ),
            TooManyVFoldersFound => (
                404,
                "too-many-vfolders",
                "There are two or more matching vfolders.",
            ),
            VFolderAlreadyExists => (
                400,
                "vfolder-already-exists",
                "The virtual folder already exists with the same name.",
            ),
            VFolderOperationFailed => (
                400,
                "vfolder-operation-failed",
                "Virtual folder operation has failed.",
            ),
            VFolderFilterStatusFailed => (
                400,
                "vfolder-filter-status-failed",
                "Virtual folder status filtering has failed.",
            ),
            QuotaExceeded => (
                412,
                "quota-exceeded",
                "You have reached your resource limit.",
            ),
            RateLimitExceeded => (
                429,
                "rate-limit-exceeded",
                "You have reached your API query rate limit.",
            ),
            RequestTimeout => (408, "request-timeout", "Request timeout."),
            InstanceNotAvailable => (
                503,
                "instance-not-available",
                "There is no available instance.",
            ),
            ServerFrozen => (
                503,
                "server-frozen",
                "The server is frozen due to maintenance. Please try again later.",
            ),
            StorageProxyError => (
                500,
                "storage-proxy-error",
                "The storage proxy returned an error.",
            ),
            KernelCreationFailed => (500, "kernel-creation-failed", "Kernel creation has failed."),
            KernelDestructionFailed => (
                500,
                "kernel-destruction-failed",
                "Kernel destruction has failed.",
            ),
            KernelRestartFailed => (500, "kernel-restart-failed", "Kernel restart has failed."),
            KernelExecutionFailed => (
                500,
                "kernel-execution-failed",
                "Executing user code in the kernel has failed.",
            ),
            InvalidSessionState => (
                409,
                "invalid-session-state",
                "The session is not in a state that allows this operation.",
            ),
            PayloadTooLarge => (413, "request-entity-too-large", "Request Entity Too Large"),
        }
    }
}

/// An API error: a kind, an optional title override (e.g. "No such session."), an optional
/// `msg` and optional `data`. Never put a secret in any of them. Boxed, so a `Result` carrying
/// it stays one pointer wide.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemParts>);

/// The parts of a [`Problem`], readable through it.
#[derive(Debug, Clone)]
pub struct ProblemParts {
    pub kind: ProblemKind,
    pub status: Option<u16>,
    pub title: Option<String>,
    pub msg: Option<String>,
    pub data: Option<Value>,
}

impl std::ops::Deref for Problem {
    type Target = ProblemParts;
    fn deref(&self) -> &ProblemParts {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemParts {
        &mut self.0
    }
}

impl Problem {
    pub fn new(kind: ProblemKind) -> Problem {
        Problem(Box::new(ProblemParts {
            kind,
            status: None,
            title: None,
            msg: None,
            data: None,
        }))
    }

    /// The `extra_msg` of the original: rendered as `msg`.
    pub fn with_msg(mut self, msg: impl Into<String>) -> Problem {
        self.msg = Some(msg.into());
        self
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Problem {
        self.title = Some(title.into());
        self
    }

    pub fn with_data(mut self, data: Value) -> Problem {
        self.data = Some(data);
        self
    }

    /// Overrides the status (StorageProxyError relays the proxy's status).
    pub fn with_status(mut self, status: u16) -> Problem {
        self.status = Some(status);
        self
    }

    /// `ObjectNotFound(object_name=...)`: title `No such {object}.`
    pub fn not_found(object: &str) -> Problem {
        Problem::new(ProblemKind::ObjectNotFound).with_title(format!("No such {object}."))
    }

    pub fn invalid_params(msg: impl Into<String>) -> Problem {
        Problem::new(ProblemKind::InvalidApiParameters).with_msg(msg)
    }

    pub fn internal(msg: impl Into<String>) -> Problem {
        Problem::new(ProblemKind::InternalServerError).with_msg(msg)
    }

    pub fn status_code(&self) -> u16 {
        self.status.unwrap_or(self.kind.parts().0)
    }

    pub fn body(&self) -> Value {
        let (_, slug, default_title) = self.kind.parts();
        let mut body = json!({
            "type": format!("{PROBLEM_BASE}{slug}"),
            "title": self.title.as_deref().unwrap_or(default_title),
        });
        if let Some(msg) = &self.msg {
            body["msg"] = Value::String(msg.clone());
        }
        if let Some(data) = &self.data {
            body["data"] = data.clone();
        }
        body
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (_, slug, default_title) = self.kind.parts();
        write!(
            f,
            "{slug}: {}",
            self.title.as_deref().unwrap_or(default_title)
        )?;
        if let Some(msg) = &self.msg {
            write!(f, " ({msg})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(Problem::status_code(self))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(ResponseError::status_code(self));
        if self.kind == ProblemKind::RequestTimeout {
            // The rest of a late body may still arrive; it must not be read as a request.
            response.force_close();
        }
        response
            .content_type(PROBLEM_CONTENT_TYPE)
            .body(self.body().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_type_title_and_optional_fields() {
        let problem = Problem::not_found("session");
        assert_eq!(
            problem.body(),
            json!({"type": "https://api.backend.ai/probs/object-not-found", "title": "No such session."})
        );
        assert_eq!(problem.status_code(), 404);
        let problem =
            Problem::new(ProblemKind::InvalidAuthParameters).with_msg("Date/time sync error");
        assert_eq!(problem.body()["msg"], "Date/time sync error");
        assert_eq!(problem.status_code(), 400);
    }

    #[test]
    fn storage_proxy_errors_relay_the_status() {
        let problem = Problem::new(ProblemKind::StorageProxyError).with_status(503);
        assert_eq!(problem.status_code(), 503);
    }
}
