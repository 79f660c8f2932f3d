//! The middleware every API request passes (the original's `api_middleware`,
//! `exception_middleware` and CORS): CORS preflight and response headers, `X-Method-Override`,
//! the `X-BackendAI-Version` check, problem+json for the router's own 404/405 replies, the
//! anonymous `X-RateLimit-*` headers of public routes, and `Server: BackendAI`.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures::future::LocalBoxFuture;

use super::body_deadline::{self, BodyReadTimeout};
use super::connection_activity::{ConnectionActivity, TrackedBody};
use super::params::{NUL_REASON, invalid_param};
use super::problem::{Problem, ProblemKind};
use super::ratelimit::{LIMIT_HEADER, RateLimitState};

/// The API versions a client may ask for (22.09's `VALID_VERSIONS`).
pub const VALID_VERSIONS: [&str; 9] = [
    "v4.20181215",
    "v4.20190115",
    "v4.20190315",
    "v4.20190615",
    "v5.20191215",
    "v6.20200815",
    "v6.20210815",
    "v6.20220315",
    "v6.20220615",
];

/// What a request without a version header gets: there is no `/vN` path prefix any more, so
/// the original falls back to major 5 and its latest revision.
pub const DEFAULT_API_VERSION: ApiVersion = ApiVersion {
    major: 5,
    revision: "20191215",
};

/// The `Server` header of every reply.
pub const SERVER_HEADER_VALUE: &str = "BackendAI";

/// The API version of a request: `(major, "YYYYMMDD")`, e.g. `(6, "20220615")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u32,
    pub revision: &'static str,
}

impl ApiVersion {
    /// Parses a version header; `None` when it is not one of [`VALID_VERSIONS`].
    pub fn parse(text: &str) -> Option<ApiVersion> {
        let known = VALID_VERSIONS.iter().find(|v| **v == text)?;
        let (major, revision) = known.split_once('.')?;
        Some(ApiVersion {
            major: major.trim_start_matches('v').parse().ok()?,
            revision,
        })
    }

    /// The version a request asked for: `X-BackendAI-Version`, else `X-Sorna-Version`.
    fn of_headers(headers: &header::HeaderMap) -> Result<ApiVersion, Problem> {
        let requested = headers
            .get("X-BackendAI-Version")
            .or_else(|| headers.get("X-Sorna-Version"));
        let Some(requested) = requested else {
            return Ok(DEFAULT_API_VERSION);
        };
        requested
            .to_str()
            .ok()
            .and_then(ApiVersion::parse)
            .ok_or_else(|| {
                Problem::new(ProblemKind::GenericBadRequest).with_msg("Unsupported API version.")
            })
    }
}

impl FromRequest for ApiVersion {
    type Error = Problem;
    type Future = Ready<Result<ApiVersion, Problem>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let version = request.extensions().get::<ApiVersion>().copied();
        ready(Ok(version.unwrap_or(DEFAULT_API_VERSION)))
    }
}

/// The scope-wide middleware (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestPipeline;

impl<S> Transform<S, ServiceRequest> for RequestPipeline
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error> + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = RequestPipelineService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestPipelineService {
            service: Rc::new(service),
        }))
    }
}

pub struct RequestPipelineService<S> {
    service: Rc<S>,
}

impl<S> Service<ServiceRequest> for RequestPipelineService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = Error> + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let in_progress = request
            .conn_data::<Rc<ConnectionActivity>>()
            .map(ConnectionActivity::begin);
        let handling = Box::pin(async move {
            let origin = request.headers().get(header::ORIGIN).cloned();
            if request.method() == Method::OPTIONS {
                let reply = preflight(request.request());
                return Ok(finish(request.into_response(reply), origin.as_ref()));
            }
            if let Err(problem) = refuse_nul(request.request()) {
                return Ok(finish(request.error_response(problem), origin.as_ref()));
            }
            if let Err(problem) = apply_method_override(&mut request) {
                return Ok(finish(request.error_response(problem), origin.as_ref()));
            }
            match ApiVersion::of_headers(request.headers()) {
                Ok(version) => {
                    request.extensions_mut().insert(version);
                }
                Err(problem) => {
                    return Ok(finish(request.error_response(problem), origin.as_ref()));
                }
            }
            let timeout = request
                .app_data::<BodyReadTimeout>()
                .copied()
                .unwrap_or_default();
            let body_deadline = body_deadline::wrap(&mut request, timeout.0);
            let result = service.call(request).await;
            if body_deadline.is_some_and(|flag| flag.expired()) {
                // Whatever the handler made of its failed read, the client hears 408.
                let problem = body_timed_out(timeout);
                return match result {
                    Ok(response) => {
                        let (request, _) = response.into_parts();
                        let response = ServiceResponse::new(request, problem.error_response());
                        Ok(finish(response, origin.as_ref()))
                    }
                    Err(_) => Err(actix_web::Error::from(problem)),
                };
            }
            let response = match result {
                Ok(response) => response,
                Err(error) => {
                    // An inner service failed instead of answering; answer for it.
                    let problem = Problem::internal(error.to_string());
                    return Err(actix_web::Error::from(problem));
                }
            };
            let response = problem_for_router_errors(response);
            Ok(finish(add_anonymous_rate_limit(response), origin.as_ref()))
        });
        Box::pin(async move {
            let response = handling.await?;
            // The connection stays busy until the reply is sent, streamed replies included.
            Ok(match in_progress {
                Some(request) => {
                    response.map_body(|_, body| BoxBody::new(TrackedBody::new(body, request)))
                }
                None => response,
            })
        })
    }
}

/// 408 for a body that did not arrive by its deadline (its reply closes the connection).
fn body_timed_out(timeout: BodyReadTimeout) -> Problem {
    Problem::new(ProblemKind::RequestTimeout).with_msg(format!(
        "the request body was not received within {} s",
        timeout.0.as_secs_f64()
    ))
}

/// Refuses a NUL character where a handler could read it before its parameters: the path
/// (its segments are percent-decoded), the query string and the headers. Percent-decoding
/// yields a NUL only from `%00`; the HTTP parser already refuses a raw NUL byte in a head.
fn refuse_nul(request: &HttpRequest) -> Result<(), Problem> {
    let encodes_nul = |text: &str| text.contains("%00");
    if encodes_nul(request.path()) {
        return Err(invalid_param("path", NUL_REASON));
    }
    if encodes_nul(request.query_string()) {
        return Err(invalid_param("query", NUL_REASON));
    }
    if let Some((name, _)) = request
        .headers()
        .iter()
        .find(|(_, value)| value.as_bytes().contains(&0))
    {
        return Err(invalid_param(name.as_str(), NUL_REASON));
    }
    Ok(())
}

/// Re-routes a request to the method named by `X-Method-Override`.
fn apply_method_override(request: &mut ServiceRequest) -> Result<(), Problem> {
    let Some(value) = request.headers().get("X-Method-Override") else {
        return Ok(());
    };
    let method = value
        .to_str()
        .ok()
        .and_then(|text| Method::from_bytes(text.trim().to_ascii_uppercase().as_bytes()).ok())
        .ok_or_else(|| {
            Problem::new(ProblemKind::GenericBadRequest)
                .with_msg("X-Method-Override does not name an HTTP method")
        })?;
    request.head_mut().method = method;
    Ok(())
}

/// Answers a CORS preflight as aiohttp_cors does with `allow_headers="*"`: the origin and the
/// requested method and headers are allowed.
fn preflight(request: &HttpRequest) -> HttpResponse {
    let headers = request.headers();
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Problem::new(ProblemKind::GenericBadRequest)
            .with_msg(
                "CORS preflight request failed: origin header is not specified in the request",
            )
            .error_response();
    };
    let Some(method) = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD) else {
        return Problem::new(ProblemKind::GenericBadRequest)
            .with_msg(
                "CORS preflight request failed: 'Access-Control-Request-Method' header is not specified",
            )
            .error_response();
    };
    let mut reply = HttpResponse::Ok();
    reply
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, method.clone()));
    if let Some(requested) = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
    {
        let allowed: Vec<String> = requested
            .split(',')
            .map(|h| h.trim().to_ascii_uppercase())
            .filter(|h| !h.is_empty())
            .collect();
        if !allowed.is_empty() {
            reply.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, allowed.join(",")));
        }
    }
    reply.finish()
}

/// The router answers unknown methods of a known path with a bare 405 (and unknown paths
/// are answered by the scope's default service); turn the bare ones into problems.
fn problem_for_router_errors(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/problem+json"));
    if is_problem || !(status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_FOUND)
    {
        return response;
    }
    let (request, _) = response.into_parts();
    let problem = if status == StatusCode::NOT_FOUND {
        url_not_found(request.path())
    } else {
        Problem::new(ProblemKind::MethodNotAllowed).with_msg(request.method().as_str())
    };
    ServiceResponse::from_err(problem, request)
}

/// 404 `url-not-found` with the path as `data`, for any path no route matches.
pub fn url_not_found(path: &str) -> Problem {
    Problem::new(ProblemKind::UrlNotFound).with_data(serde_json::Value::String(path.to_owned()))
}

/// The default service of the API scope.
pub async fn not_found(request: HttpRequest) -> Result<HttpResponse, Problem> {
    Err(url_not_found(request.path()))
}

/// Public routes answer with the anonymous rate-limit headers (routes behind `Access` have
/// set theirs already); failed requests get none, as in the original.
fn add_anonymous_rate_limit(mut response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    if response.response().error().is_none() && !response.headers().contains_key(LIMIT_HEADER) {
        RateLimitState::ANONYMOUS.write_headers(response.headers_mut());
    }
    response
}

/// Headers every reply gets: `Server`, `X-BAI-Manager-Version`, and the CORS ones when the request had an `Origin`.
fn finish(
    mut response: ServiceResponse<BoxBody>,
    origin: Option<&HeaderValue>,
) -> ServiceResponse<BoxBody> {
    let headers = response.headers_mut();
    headers.insert(
        header::SERVER,
        HeaderValue::from_static(SERVER_HEADER_VALUE),
    );
    headers.insert(
        header::HeaderName::from_static("x-bai-manager-version"),
        HeaderValue::from_static(super::hello::BAI_MANAGER_VERSION),
    );
    if let Some(origin) = origin
        && !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        let simple = [
            header::CACHE_CONTROL,
            header::CONTENT_LANGUAGE,
            header::CONTENT_TYPE,
            header::EXPIRES,
            header::LAST_MODIFIED,
            header::PRAGMA,
        ];
        let mut exposed: Vec<&str> = headers
            .keys()
            .filter(|name| !simple.contains(name))
            .map(HeaderName::as_str)
            .collect();
        exposed.sort_unstable();
        exposed.dedup();
        if let Ok(value) = HeaderValue::from_str(&exposed.join(",")) {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, value);
        }
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked_against_the_22_09_list() {
        assert_eq!(
            ApiVersion::parse("v6.20220615"),
            Some(ApiVersion {
                major: 6,
                revision: "20220615"
            })
        );
        assert_eq!(ApiVersion::parse("v4.20181215").map(|v| v.major), Some(4));
        assert_eq!(ApiVersion::parse("v7.20230615"), None);
        assert_eq!(ApiVersion::parse("v3.20170615"), None);
        assert_eq!(ApiVersion::parse("garbage"), None);
    }

    #[test]
    fn a_missing_version_is_5_20191215_and_a_bad_one_is_refused() {
        let headers = header::HeaderMap::new();
        assert_eq!(
            ApiVersion::of_headers(&headers).ok(),
            Some(DEFAULT_API_VERSION)
        );
        let mut headers = header::HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-sorna-version"),
            HeaderValue::from_static("v4.20190615"),
        );
        assert_eq!(
            ApiVersion::of_headers(&headers).ok().map(|v| v.major),
            Some(4)
        );
        headers.insert(
            HeaderName::from_static("x-backendai-version"),
            HeaderValue::from_static("v9.20250722"),
        );
        let problem = ApiVersion::of_headers(&headers).unwrap_err();
        assert_eq!(problem.status_code(), 400);
        assert_eq!(problem.body()["msg"], "Unsupported API version.");
    }

    #[test]
    fn a_nul_in_the_path_or_the_query_is_refused() {
        use actix_web::test::TestRequest;
        let refused = |uri: &str| {
            refuse_nul(&TestRequest::get().uri(uri).to_http_request())
                .unwrap_err()
                .body()["data"]
                .clone()
        };
        assert_eq!(refused("/folders/a%00b")["path"], NUL_REASON);
        assert_eq!(refused("/auth/role?group=x%00")["query"], NUL_REASON);
        assert!(
            refuse_nul(
                &TestRequest::get()
                    .uri("/folders/a%20b?x=%0A")
                    .to_http_request()
            )
            .is_ok()
        );
    }
}
