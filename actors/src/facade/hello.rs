//! `GET /`: the version announcement, without authentication.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::reply;
use super::state::AppState;

/// The REST API version this manager speaks (Backend.AI 22.09).
pub const API_VERSION: &str = "v6.20220615";

/// `{"version": "v6.20220615", "manager": "<version>"}`.
pub async fn hello(request: HttpRequest) -> HttpResponse {
    let manager = if let Some(version) = request.app_data::<web::Data<ManagerVersion>>() {
        version.0.clone()
    } else if let Some(state) = request.app_data::<web::Data<AppState>>() {
        state.settings.manager_version.clone()
    } else {
        env!("CARGO_PKG_VERSION").to_owned()
    };
    reply::json(&json!({"version": API_VERSION, "manager": manager}))
}

/// The crate version, announced as `manager`.
#[derive(Debug, Clone)]
pub struct ManagerVersion(pub String);
