//! Files of a running session's main container: `POST /session/{name}/upload` (multipart),
//! `GET /session/{name}/download` (a multipart/mixed of tar archives),
//! `GET /session/{name}/download_single` and `GET /session/{name}/files` (listing).

use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde_json::Value as Json;

use super::interaction_edge::{
    SessionCall, owner_key, problem, service, session_call, session_reference,
};
use crate::facade::auth::Authenticated;
use crate::facade::params::ApiParams;
use crate::facade::problem::{Problem, ProblemKind};
use crate::facade::reply;
use crate::facade::state::AppState;
use crate::interaction::SessionInteraction;

/// The original's limits: this API moves small files only, at most 20 per request and each
/// under 1 MiB (larger ones go through vfolders).
pub const MAX_UPLOAD_FILES: usize = 20;
pub const MAX_UPLOAD_FILE_BYTES: usize = 1024 * 1024;
/// The whole multipart body: every file at its limit plus part headers.
pub const MAX_UPLOAD_BODY_BYTES: usize = MAX_UPLOAD_FILES * MAX_UPLOAD_FILE_BYTES + 64 * 1024;
/// At most this many paths per download, as the original.
pub const MAX_DOWNLOAD_FILES: usize = 5;

fn too_large(what: String) -> Problem {
    Problem::new(ProblemKind::PayloadTooLarge).with_msg(what)
}

fn owner_param(request: &HttpRequest) -> Option<String> {
    url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(key, _)| key == "owner_access_key")
        .map(|(_, value)| value.into_owned())
}

/// Reads the request body, refusing it once it passes `limit` bytes.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, Problem> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Problem::invalid_params(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(format!(
                "the upload is larger than {limit} bytes; use a virtual folder for large files"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The files of a multipart body, each checked against the limits.
async fn multipart_files(
    content_type: &str,
    body: web::Bytes,
) -> Result<Vec<(String, Vec<u8>)>, Problem> {
    let boundary = multer::parse_boundary(content_type).map_err(|e| {
        Problem::invalid_params(format!("the upload is not multipart/form-data: {e}"))
    })?;
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut files = Vec::new();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| Problem::invalid_params(format!("malformed multipart body: {e}")))?
    {
        if files.len() == MAX_UPLOAD_FILES {
            return Err(Problem::invalid_params("Too many files"));
        }
        let name = field
            .file_name()
            .or_else(|| field.name())
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() || name.contains('\0') {
            return Err(Problem::invalid_params(
                "every uploaded part needs a file name",
            ));
        }
        let mut data = Vec::new();
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| Problem::invalid_params(format!("malformed multipart body: {e}")))?
        {
            if data.len() + chunk.len() >= MAX_UPLOAD_FILE_BYTES {
                return Err(too_large(format!(
                    "Too large file: {name} is {MAX_UPLOAD_FILE_BYTES} bytes or more"
                )));
            }
            data.extend_from_slice(&chunk);
        }
        files.push((name, data));
    }
    Ok(files)
}

/// `POST /session/{name}/upload`: 204 once the agent has every file.
pub async fn upload(
    caller: Authenticated,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    interaction: Option<web::Data<SessionInteraction>>,
) -> Result<HttpResponse, Problem> {
    let interaction = service(interaction)?;
    let reference = session_reference(&request);
    let owner = owner_key(&caller, &state, owner_param(&request).as_deref()).await?;
    slog::info!(state.log, "UPLOAD_FILE"; "access_key" => &caller.access_key, "session" => &reference);
    let ready = interaction
        .ready(&reference, &owner, "receive files")
        .await
        .map_err(|e| problem(&state, e))?;
    let content_type = request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = read_body(payload, MAX_UPLOAD_BODY_BYTES).await?;
    let files = multipart_files(&content_type, body).await?;
    interaction
        .upload(&ready, files)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(HttpResponse::NoContent().finish())
}

/// The paths of a download: `files` from the JSON body or repeated in the query string.
fn download_paths(request: &HttpRequest, params: &ApiParams) -> Result<Vec<String>, Problem> {
    let from_body: Option<Vec<String>> = params.values().get("files").map(|files| match files {
        Json::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default(),
        Json::String(one) => vec![one.clone()],
        _ => Vec::new(),
    });
    let paths = from_body.unwrap_or_else(|| {
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .filter(|(key, _)| key == "files")
            .map(|(_, value)| value.into_owned())
            .collect()
    });
    if paths.is_empty() {
        return Err(crate::facade::params::invalid_param("files", "is required"));
    }
    if paths.len() > MAX_DOWNLOAD_FILES {
        return Err(Problem::invalid_params("Too many files"));
    }
    Ok(paths)
}

/// A multipart/mixed body of the archives, one part each, as aiohttp's MultipartWriter writes.
pub fn multipart_mixed(parts: &[Vec<u8>], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Encoding: identity\r\nContent-Length: {}\r\n\r\n",
                part.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(part);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// `GET /session/{name}/download`.
pub async fn download(
    caller: Authenticated,
    request: HttpRequest,
    params: ApiParams,
    state: web::Data<AppState>,
    interaction: Option<web::Data<SessionInteraction>>,
) -> Result<HttpResponse, Problem> {
    let SessionCall {
        interaction,
        reference,
        owner,
    } = session_call(&caller, &request, &params, &state, interaction).await?;
    let paths = download_paths(&request, &params)?;
    slog::info!(state.log, "DOWNLOAD_FILE"; "access_key" => &caller.access_key,
        "session" => &reference, "path" => &paths[0]);
    let archives = interaction
        .download(&reference, &owner, &paths)
        .await
        .map_err(|e| problem(&state, e))?;
    let boundary = format!("{:032x}", rand::random::<u128>());
    Ok(HttpResponse::Ok()
        .content_type(format!("multipart/mixed; boundary={boundary}"))
        .body(multipart_mixed(&archives, &boundary)))
}

/// `GET /session/{name}/download_single?file=PATH`: the file's bytes.
pub async fn download_single(
    caller: Authenticated,
    request: HttpRequest,
    params: ApiParams,
    state: web::Data<AppState>,
    interaction: Option<web::Data<SessionInteraction>>,
) -> Result<HttpResponse, Problem> {
    let SessionCall {
        interaction,
        reference,
        owner,
    } = session_call(&caller, &request, &params, &state, interaction).await?;
    let file = params.string(&["file"])?;
    slog::info!(state.log, "DOWNLOAD_SINGLE"; "access_key" => &caller.access_key,
        "session" => &reference, "path" => &file);
    let data = interaction
        .download_single(&reference, &owner, &file)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(data))
}

/// `GET /session/{name}/files`: `{"files": <JSON text>, "errors", "abspath"}` from the agent.
pub async fn list_files(
    caller: Authenticated,
    request: HttpRequest,
    params: ApiParams,
    state: web::Data<AppState>,
    interaction: Option<web::Data<SessionInteraction>>,
) -> Result<HttpResponse, Problem> {
    let SessionCall {
        interaction,
        reference,
        owner,
    } = session_call(&caller, &request, &params, &state, interaction).await?;
    let path = params.opt_string(&["path"])?.unwrap_or_else(|| ".".into());
    slog::info!(state.log, "LIST_FILES"; "access_key" => &caller.access_key,
        "session" => &reference, "path" => &path);
    let listing = interaction
        .list_files(&reference, &owner, &path)
        .await
        .map_err(|e| problem(&state, e))?;
    Ok(reply::json(&listing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_bodies_are_multipart_mixed() {
        let body = multipart_mixed(&[b"abc".to_vec()], "b0");
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with("--b0\r\n"));
        assert!(text.contains("Content-Length: 3\r\n\r\nabc\r\n--b0--\r\n"));
    }

    #[actix_web::test]
    async fn uploads_over_the_limit_are_refused_with_413() {
        let big = vec![b'x'; MAX_UPLOAD_FILE_BYTES];
        let mut body =
            b"--bnd\r\nContent-Disposition: form-data; name=\"src\"; filename=\"a.bin\"\r\n\r\n"
                .to_vec();
        body.extend_from_slice(&big);
        body.extend_from_slice(b"\r\n--bnd--\r\n");
        let refused = multipart_files("multipart/form-data; boundary=bnd", body.into())
            .await
            .unwrap_err();
        assert_eq!(refused.status_code(), 413);
        let small = b"--bnd\r\nContent-Disposition: form-data; name=\"src\"; filename=\"a.txt\"\r\n\r\nhi\r\n--bnd--\r\n";
        let files = multipart_files(
            "multipart/form-data; boundary=bnd",
            web::Bytes::from_static(small),
        )
        .await
        .unwrap();
        assert_eq!(files, vec![("a.txt".to_owned(), b"hi".to_vec())]);
    }
}
