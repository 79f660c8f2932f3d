//! `GET /`: the version announcement, without authentication.

use actix_web::{HttpResponse, web};
use serde_json::json;

/// The REST API version this manager speaks (Backend.AI 22.09).
pub const API_VERSION: &str = "v6.20220615";

pub async fn hello(version: web::Data<ManagerVersion>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"version": API_VERSION, "manager": version.0}))
}

/// The crate version, announced as `manager`.
#[derive(Debug, Clone)]
pub struct ManagerVersion(pub String);
