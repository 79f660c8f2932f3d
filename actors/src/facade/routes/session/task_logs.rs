//! `GET /session/_/logs?kernel_id=…` (and `HEAD`): a batch task's persistent log, which the
//! agent writes into the caller's own `.logs` folder as `task/ab/cd/<rest of the id>.log`,
//! streamed from the storage proxy (`folder/file/fetch`) as the original's `get_task_logs`.

use actix_web::{HttpRequest, HttpResponse, web};
use futures::TryStreamExt;
use uuid::Uuid;

use crate::facade::auth::Authenticated;
use crate::facade::params::{ApiParams, invalid_param};
use crate::facade::problem::Problem;
use crate::facade::routes::db_client;
use crate::facade::routes::vfolder_access::{Needs, folder_for, storage_view, vfid};
use crate::facade::state::AppState;
use crate::storage::{VFolderHost, VFolderPath};
use bai_schema::enums::VFolderOwnershipType;
use bai_schema::queries::vfolder::status;

/// The folder the agent keeps persistent task logs in.
pub const TASK_LOG_FOLDER: &str = ".logs";

/// Where the log of kernel `kernel_id` lies inside the `.logs` folder.
pub fn task_log_path(kernel_id: Uuid) -> String {
    let hex = kernel_id.simple().to_string();
    format!("task/{}/{}/{}.log", &hex[..2], &hex[2..4], &hex[4..])
}

pub async fn task_logs(
    caller: Authenticated,
    request: HttpRequest,
    params: ApiParams,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Problem> {
    let keys = ["kernel_id", "kernelId", "task_id", "taskId"];
    let raw = params.string(&keys)?;
    let kernel_id =
        Uuid::parse_str(raw.trim()).map_err(|_| invalid_param(keys[0], "value is not a UUID"))?;
    slog::info!(state.log, "GET_TASK_LOG"; "access_key" => &caller.access_key,
        "kernel" => %kernel_id);
    let view = storage_view(&request)?;
    let client = db_client(&state).await?;
    let folder = folder_for(
        &client,
        &state,
        &caller,
        &view,
        TASK_LOG_FOLDER,
        Needs::Read,
        status::READABLE,
    )
    .await;
    let no_log_folder = || {
        Problem::not_found("virtual folder")
            .with_msg("You do not have \".logs\" vfolder for persistent task logs.")
    };
    let folder = match folder {
        // Only the caller's own user folder holds their task logs, as the original.
        Ok(folder)
            if folder.ownership_type == VFolderOwnershipType::User
                && folder.user == Some(caller.user_uuid()) =>
        {
            folder
        }
        Ok(_) => return Err(no_log_folder()),
        Err(problem) if problem.status_code() == 404 => return Err(no_log_folder()),
        Err(problem) => return Err(problem),
    };
    drop(client);
    let relpath = VFolderPath::parse(&task_log_path(kernel_id))
        .map_err(|e| Problem::internal(format!("task log path: {e}")))?;
    let proxy = view.client(&folder.host)?;
    let volume = VFolderHost::split(&folder.host).volume;
    let reply = proxy
        .fetch_file(&volume, &vfid(&folder)?, &relpath)
        .await
        .map_err(|error| {
            slog::warn!(state.log, "fetching a task log failed";
                "kernel" => %kernel_id, "host" => &folder.host, "error" => %error);
            Problem::from(error)
        })?;
    let body = reply
        .bytes_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_logs_lie_under_the_split_kernel_id() {
        let id = Uuid::parse_str("2de2b969-1d04-48a6-af16-0bc8adb3c831").unwrap();
        assert_eq!(
            task_log_path(id),
            "task/2d/e2/b9691d0448a6af160bc8adb3c831.log"
        );
    }
}
