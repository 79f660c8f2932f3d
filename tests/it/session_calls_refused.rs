//! Every call on a session refuses what the original refuses, before any agent is called:
//! another owner's session is 404 `object-not-found`, a PENDING session is 409
//! `invalid-session-state` (rename: 400, as the original), and an upload over the per-file
//! limit is 413 even on a RUNNING session.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::test::TestRequest;
use bai_actors::agent_rpc::{AgentRpc, RpcTimeouts};
use bai_actors::interaction::SessionInteraction;
use serde_json::{Value, json};

use crate::api_support::*;
use crate::sched_support::enqueue_sessions;

/// A signed request with an arbitrary content type and raw body.
fn raw_request(
    signer: &Signer,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> TestRequest {
    // The signature covers the media type alone, as the client's `request.content_type`.
    let media_type = content_type.split(';').next().unwrap_or_default();
    let mut request = TestRequest::default().method(method.clone()).uri(path);
    for (name, value) in signer.headers(method.as_str(), path, media_type, chrono::Utc::now()) {
        request = request.insert_header((name, value));
    }
    request
        .insert_header(("Content-Type", content_type.to_owned()))
        .set_payload(body)
}

fn multipart(name: &str, size: usize) -> (String, Vec<u8>) {
    let mut body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"src\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend(std::iter::repeat_n(b'x', size));
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    ("multipart/form-data; boundary=XyZ".to_owned(), body)
}

/// (method, path after the session reference, JSON body) of every call that needs a running
/// kernel.
fn running_only_calls(reference: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            format!("/session/{reference}"),
            Some(json!({"mode": "query", "code": "print(1)", "runId": null})),
        ),
        (
            Method::POST,
            format!("/session/{reference}/interrupt"),
            None,
        ),
        (
            Method::POST,
            format!("/session/{reference}/complete"),
            Some(json!({"code": "pri"})),
        ),
        (Method::PATCH, format!("/session/{reference}"), None),
        (
            Method::GET,
            format!("/session/{reference}/download"),
            Some(json!({"files": ["a.txt"]})),
        ),
        (
            Method::GET,
            format!("/session/{reference}/download_single?file=a.txt"),
            None,
        ),
        (
            Method::GET,
            format!("/session/{reference}/files"),
            Some(json!({"path": "."})),
        ),
        (Method::POST, format!("/session/{reference}/commit"), None),
        (Method::GET, format!("/session/{reference}/commit"), None),
        (
            Method::GET,
            format!("/stream/session/{reference}/execute"),
            None,
        ),
    ]
}

#[actix_web::test]
async fn calls_on_sessions_are_refused_for_other_owners_pending_sessions_and_big_uploads() {
    let world = ApiWorld::new().await;
    let db = world.db().await;
    db.batch_execute(
        "INSERT INTO agents (id, status, status_changed, region, scaling_group, available_slots,
             occupied_slots, addr, version, architecture)
         VALUES ('i-refusals', 'ALIVE', now(), 'local', 'default', '{}', '{}',
                 'tcp://127.0.0.1:9', '26.9.6', 'x86_64')",
    )
    .await
    .unwrap();
    let ids = enqueue_sessions(&db, ADMIN_AK, 2, 1, 1).await;
    let (pending, running) = (ids[0].to_string(), ids[1].to_string());
    db.execute(
        "WITH s AS (UPDATE sessions SET status = 'RUNNING' WHERE id = $1 RETURNING id)
         UPDATE kernels SET status = 'RUNNING', agent = 'i-refusals',
                agent_addr = 'tcp://127.0.0.1:9'
          WHERE session_id IN (SELECT id FROM s)",
        &[&ids[1]],
    )
    .await
    .unwrap();
    let interaction = SessionInteraction::new(
        world.state.db.clone(),
        Arc::new(AgentRpc::new(RpcTimeouts::default())),
        Some(world.state.redis.live.clone()),
        world.log.logger(),
    );
    let app = actix_web::test::init_service(
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(world.state.clone()))
            .app_data(actix_web::web::Data::new(interaction))
            .configure(bai_actors::facade::configure),
    )
    .await;
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let user = Signer::new(USER_AK, USER_SK);

    let mut calls = running_only_calls(&pending);
    for tail in ["dependency-graph", "direct-access-info", "abusing-report"] {
        calls.push((Method::GET, format!("/session/{pending}/{tail}"), None));
    }
    calls.push((
        Method::POST,
        format!("/session/{pending}/rename?name=renamed-session"),
        None,
    ));
    for (method, path, body) in &calls {
        let (status, _, reply) = call(
            &app,
            user.request(method.clone(), path, body.as_ref())
                .to_request(),
        )
        .await;
        assert_eq!(status, 404, "{method} {path} by another user: {reply}");
        assert_eq!(
            reply["type"],
            problem_type("object-not-found"),
            "{method} {path}"
        );
    }
    let (content_type, body) = multipart("a.txt", 10);
    let (status, _, reply) = call(
        &app,
        raw_request(
            &user,
            Method::POST,
            &format!("/session/{pending}/upload"),
            &content_type,
            body.clone(),
        )
        .to_request(),
    )
    .await;
    assert_eq!(status, 404, "upload by another user: {reply}");

    for (method, path, body) in running_only_calls(&pending) {
        let (status, _, reply) = call(
            &app,
            admin
                .request(method.clone(), &path, body.as_ref())
                .to_request(),
        )
        .await;
        assert_eq!(status, 409, "{method} {path} on a PENDING session: {reply}");
        assert_eq!(reply["type"], problem_type("invalid-session-state"));
        assert!(
            reply["msg"]
                .as_str()
                .unwrap_or_default()
                .contains("PENDING"),
            "{reply}"
        );
    }
    let (status, _, reply) = call(
        &app,
        raw_request(
            &admin,
            Method::POST,
            &format!("/session/{pending}/upload"),
            &content_type,
            body,
        )
        .to_request(),
    )
    .await;
    assert_eq!(status, 409, "upload to a PENDING session: {reply}");
    let (status, _, reply) = call(
        &app,
        admin
            .request(
                Method::POST,
                &format!("/session/{pending}/rename?name=renamed-session"),
                None,
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, 400, "rename of a PENDING session: {reply}");
    assert_eq!(reply["msg"], "Can't change name of not running session");

    // A file of 1 MiB or more is refused before anything reaches the agent (there is no
    // agent listening at this session's address).
    let (content_type, body) = multipart("big.bin", 1024 * 1024);
    let (status, _, reply) = call(
        &app,
        raw_request(
            &admin,
            Method::POST,
            &format!("/session/{running}/upload"),
            &content_type,
            body,
        )
        .to_request(),
    )
    .await;
    assert_eq!(status, 413, "oversize upload: {reply}");
    assert_eq!(reply["type"], problem_type("request-entity-too-large"));
    let (content_type, body) = multipart("huge.bin", 22 * 1024 * 1024);
    let (status, _, _) = call(
        &app,
        raw_request(
            &admin,
            Method::POST,
            &format!("/session/{running}/upload"),
            &content_type,
            body,
        )
        .to_request(),
    )
    .await;
    assert_eq!(status, 413, "an upload body over the whole limit");
    // A bad rename is refused by its pattern.
    let (status, _, reply) = call(
        &app,
        admin
            .request(
                Method::POST,
                &format!("/session/{running}/rename?name=a%20b"),
                None,
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
}
