//! `GET /`: the version announcement, without authentication.
//!
//! Clients read `manager` to decide which features the manager has (the Web UI switches on
//! session lifetimes, idle checks, image commit, 2FA... from `22.09`, `22.09.19` and `22.09.22`),
//! so it names the Backend.AI release this manager stands in for. bai-manager's own version goes
//! in a field and a header of its own.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::reply;
use super::state::AppState;

/// The REST API version this manager speaks (Backend.AI 22.09).
pub const API_VERSION: &str = "v6.20220615";

/// The Backend.AI Manager release whose behaviour this manager reproduces: the last 22.09 tag,
/// reported as the original reports its `__version__`. Version checks in clients compare
/// against this value.
pub const COMPATIBLE_MANAGER_VERSION: &str = "22.09.23";

/// bai-manager's own release.
pub const BAI_MANAGER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The response header (on every reply) carrying bai-manager's own release.
pub const BAI_MANAGER_VERSION_HEADER: &str = "X-BAI-Manager-Version";

/// `{"version": "v6.20220615", "manager": "22.09.23", "bai-manager": "<own version>"}`.
pub async fn hello(request: HttpRequest) -> HttpResponse {
    let manager = if let Some(version) = request.app_data::<web::Data<ManagerVersion>>() {
        version.0.clone()
    } else if let Some(state) = request.app_data::<web::Data<AppState>>() {
        state.settings.manager_version.clone()
    } else {
        COMPATIBLE_MANAGER_VERSION.to_owned()
    };
    reply::json(&json!({
        "version": API_VERSION,
        "manager": manager,
        "bai-manager": BAI_MANAGER_VERSION,
    }))
}

/// The version announced as `manager` (the compatible Backend.AI release).
#[derive(Debug, Clone)]
pub struct ManagerVersion(pub String);
