//! JSON replies as aiohttp's `json_response` sends them (`application/json; charset=utf-8`).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

/// The media type of JSON replies.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// A JSON reply with `status`.
pub fn json_with_status(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => HttpResponse::build(status)
            .content_type(JSON_CONTENT_TYPE)
            .body(bytes),
        Err(e) => HttpResponse::InternalServerError()
            .content_type(super::problem::PROBLEM_CONTENT_TYPE)
            .body(
                super::problem::Problem::internal(format!("cannot encode the reply: {e}"))
                    .body()
                    .to_string(),
            ),
    }
}

/// A 200 JSON reply.
pub fn json(body: &impl Serialize) -> HttpResponse {
    json_with_status(StatusCode::OK, body)
}
