//! Authenticating one request, in the original's order: the date window, the
//! `Authorization` header, the keypair lookup, the signature, then the client address.
//! The steps that need no I/O are plain functions over the request's parts.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header;
use chrono::Utc;

use super::client_ip::{ClientIpError, check_client_ip};
use super::credentials::CachedCredential;
use super::date::request_date;
use super::signature::{
    AuthorizationHeader, HashAlgorithm, SignatureError, SignedParts, compute_signature,
    signatures_match,
};
use crate::facade::problem::{Problem, ProblemKind};

/// The media type aiohttp reports for a request without `Content-Type`.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Why a request is not authenticated. Each variant is one of the original's replies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Date/time sync error")]
    DateOutOfSync,
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("Access key not found")]
    UnknownAccessKey,
    #[error("API version missing in request headers")]
    MissingVersion,
    #[error("Signature mismatch")]
    SignatureMismatch,
    #[error(transparent)]
    ClientIp(#[from] ClientIpError),
    #[error("Unauthorized access")]
    Unauthorized,
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Problem {
        let kind = match &error {
            AuthError::DateOutOfSync
            | AuthError::MissingVersion
            | AuthError::Signature(
                SignatureError::MalformedHeader
                | SignatureError::InvalidScheme
                | SignatureError::MissingParameters
                | SignatureError::UnsupportedMac
                | SignatureError::UnsupportedHash,
            )
            | AuthError::ClientIp(ClientIpError::InvalidAddress(_)) => {
                ProblemKind::InvalidAuthParameters
            }
            AuthError::Signature(SignatureError::InvalidSignMethod)
            | AuthError::UnknownAccessKey
            | AuthError::SignatureMismatch
            | AuthError::ClientIp(_)
            | AuthError::Unauthorized => ProblemKind::AuthorizationFailed,
        };
        Problem::new(kind).with_msg(error.to_string())
    }
}

/// The signed request's claim, before the keypair is looked up.
#[derive(Debug, Clone)]
pub struct SignedClaim {
    pub header: AuthorizationHeader,
    raw_date: String,
    key_date: String,
}

impl SignedClaim {
    pub fn access_key(&self) -> &str {
        &self.header.access_key
    }
}

/// Steps 1–2: the date must be present and within the window; then a present
/// `Authorization` header must parse. `Ok(None)` is an anonymous request.
pub fn read_claim(request: &HttpRequest) -> Result<Option<SignedClaim>, AuthError> {
    let headers = request.headers();
    let date = request_date(|name| headers.get(name).and_then(|v| v.to_str().ok()))
        .filter(|date| date.is_within_window(Utc::now()))
        .ok_or(AuthError::DateOutOfSync)?;
    let Some(authorization) = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let header = AuthorizationHeader::parse(authorization)?;
    Ok(Some(SignedClaim {
        header,
        key_date: date.key_date(),
        raw_date: date.raw,
    }))
}

/// Steps 4–5: the signature must be what the keypair's secret gives for this request.
pub fn verify_signature(
    request: &HttpRequest,
    claim: &SignedClaim,
    credential: &CachedCredential,
) -> Result<(), AuthError> {
    let hash = HashAlgorithm::from_sign_method(&claim.header.sign_method)?;
    let headers = request.headers();
    let header_text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let (modern_version_header, version) = match header_text("X-BackendAI-Version") {
        Some(version) => (true, version),
        None => (
            false,
            header_text("X-Sorna-Version").ok_or(AuthError::MissingVersion)?,
        ),
    };
    let host = match header_text("Host") {
        Some(host) => host.to_owned(),
        None => request.connection_info().host().to_owned(),
    };
    let content_type = header_text("Content-Type")
        .map(|value| value.split(';').next().unwrap_or_default().trim())
        .unwrap_or(DEFAULT_CONTENT_TYPE);
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let parts = SignedParts {
        method: request.method().as_str(),
        path_and_query,
        raw_date: &claim.raw_date,
        host: &host,
        content_type,
        modern_version_header,
        version,
        key_date: &claim.key_date,
    };
    let expected = compute_signature(credential.secret_key(), &parts, hash);
    if signatures_match(&expected, &claim.header.signature) {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

/// Step 6: the user's `allowed_client_ip`.
pub fn verify_client_address(
    request: &HttpRequest,
    credential: &CachedCredential,
) -> Result<(), AuthError> {
    let forwarded = request
        .headers()
        .get("X-Forwarded-For")
        .and_then(|v| v.to_str().ok());
    let peer: Option<IpAddr> = request.peer_addr().map(|addr| addr.ip());
    check_client_ip(&credential.caller.user.allowed_client_ip, forwarded, peer)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem_of(error: AuthError) -> (u16, String, String) {
        let problem = Problem::from(error);
        let body = problem.body();
        (
            problem.status_code(),
            body["type"].as_str().unwrap().to_owned(),
            body["msg"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn every_auth_failure_has_the_originals_status_and_type() {
        let auth_params = "https://api.backend.ai/probs/invalid-auth-params";
        let auth_failed = "https://api.backend.ai/probs/auth-failed";
        let cases = [
            (
                AuthError::DateOutOfSync,
                400,
                auth_params,
                "Date/time sync error",
            ),
            (
                AuthError::MissingVersion,
                400,
                auth_params,
                "API version missing in request headers",
            ),
            (
                SignatureError::InvalidScheme.into(),
                400,
                auth_params,
                "Invalid authorization type name",
            ),
            (
                SignatureError::MissingParameters.into(),
                400,
                auth_params,
                "Missing or malformed authorization parameters",
            ),
            (
                SignatureError::UnsupportedHash.into(),
                400,
                auth_params,
                "Unsupported request signing method (hash type)",
            ),
            (
                SignatureError::InvalidSignMethod.into(),
                401,
                auth_failed,
                "Invalid signature",
            ),
            (
                AuthError::UnknownAccessKey,
                401,
                auth_failed,
                "Access key not found",
            ),
            (
                AuthError::SignatureMismatch,
                401,
                auth_failed,
                "Signature mismatch",
            ),
            (
                AuthError::Unauthorized,
                401,
                auth_failed,
                "Unauthorized access",
            ),
            (
                ClientIpError::NotAllowed("10.0.0.1".parse().unwrap()).into(),
                401,
                auth_failed,
                "'10.0.0.1' is not allowed IP address",
            ),
        ];
        for (error, status, kind, msg) in cases {
            assert_eq!(problem_of(error), (status, kind.to_owned(), msg.to_owned()));
        }
    }
}
