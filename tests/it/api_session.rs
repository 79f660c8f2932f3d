//! Sessions through the client API against real PostgreSQL, etcd and Redis: creation as the
//! official client asks for it (captures/real-manager.http #26, #38), reuse, validation,
//! info/match/logs, cancellation of PENDING sessions, the events they announce, and who may
//! see or destroy whose session.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use bai_actors::wire::{Event, SessionEventKind};
use serde_json::{Value, json};

use crate::api_app;
use crate::api_support::*;

pub const REGISTRY: &str = "127.0.0.1:25000";
pub const IMAGE: &str = "127.0.0.1:25000/testing/python:3.9-ubuntu20.04";

/// The image row the registry sync would write for the test image.
pub async fn insert_test_image(world: &ApiWorld, allow_registry: bool) {
    insert_test_image_into(&world.env, allow_registry).await;
}

/// [`insert_test_image`] for any test environment (a running manager's, too).
pub async fn insert_test_image_into(env: &bai_testkit::TestEnv, allow_registry: bool) {
    let db = env.db.connect().await;
    db.execute(
        "INSERT INTO images (name, project, image, tag, registry, architecture, config_digest,
                             size_bytes, labels, resources)
         VALUES ($1, 'testing', 'testing/python', '3.9-ubuntu20.04', $2, 'x86_64',
                 'sha256:fcffa2299032fe7456c00a9b8e2bcbd3c8c49950cd8156118c1703d2d3ea1340',
                 938, '{\"ai.backend.kernelspec\": \"1\"}',
                 '{\"cpu\": {\"min\": \"1\", \"max\": \"8\"}, \"mem\": {\"min\": \"256m\"}}')",
        &[&IMAGE, &REGISTRY],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO image_aliases (alias, image) SELECT 'python', id FROM images WHERE name = $1",
        &[&IMAGE],
    )
    .await
    .unwrap();
    if allow_registry {
        allow_test_registry_in(env).await;
    }
}

pub async fn allow_test_registry(world: &ApiWorld) {
    allow_test_registry_in(&world.env).await;
}

async fn allow_test_registry_in(env: &bai_testkit::TestEnv) {
    env.db
        .connect()
        .await
        .execute(
            "UPDATE domains SET allowed_docker_registries = array_append(allowed_docker_registries, $1)
             WHERE name = 'default'",
            &[&REGISTRY],
        )
        .await
        .unwrap();
}

/// The body the official client sends for `session create --enqueue-only -r cpu=1 -r mem=512m`.
pub fn create_body(name: &str) -> Value {
    json!({
        "tag": null, "name": name,
        "config": {"mounts": [], "environ": {}, "resources": {"cpu": "1", "mem": "512m"},
                   "resource_opts": {}, "scalingGroup": null, "mount_map": {}, "preopen_ports": null},
        "dependencies": [], "callback_url": null, "architecture": "x86_64", "clusterSize": 1,
        "clusterMode": "single-node", "starts_at": null, "bootstrap_script": null,
        "owner_access_key": null, "domain": "default", "group": "default", "type": "interactive",
        "enqueueOnly": true, "maxWaitSeconds": 0, "reuseIfExists": true, "startupCommand": null,
        "image": IMAGE
    })
}

/// The events on the stream so far, decoded.
async fn stream_events(world: &ApiWorld) -> Vec<Event> {
    crate::event_stream::recorded_events(&world.env).await
}

#[actix_web::test]
async fn create_inspect_and_cancel_a_session_as_the_client_does() {
    let world = ApiWorld::new().await;
    insert_test_image(&world, false).await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let post = |body: Value| {
        admin
            .request(Method::POST, "/session", Some(&body))
            .to_request()
    };

    // #26: the registry is not allowed for the domain yet.
    let (status, _, body) = call(&app, post(create_body("sess1"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"type": problem_type("object-not-found"), "title": "No such environment image.",
               "msg": "unknown alias or disallowed registry"})
    );

    // #38: once allowed, the session is enqueued.
    allow_test_registry(&world).await;
    let (status, headers, body) = call(&app, post(create_body("sess1"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers.get("X-RateLimit-Limit").unwrap(), "30000");
    let session_id = body["sessionId"].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        json!({"sessionId": session_id, "sessionName": "sess1", "status": "PENDING",
               "servicePorts": [], "created": true})
    );

    let db = world.db().await;
    let row = db
        .query_one(
            "SELECT s.status::text, s.session_type, s.scaling_group_name, s.images, s.requested_slots,
                    k.status::text, k.occupied_slots, k.resource_opts, k.cluster_role, k.cluster_idx,
                    k.cluster_hostname, k.image, k.registry, k.access_key, s.creation_id
             FROM sessions s JOIN kernels k ON k.session_id = s.id WHERE s.id::text = $1",
            &[&session_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "PENDING");
    assert_eq!(row.get::<_, String>(1), "INTERACTIVE");
    assert_eq!(row.get::<_, String>(2), "default");
    assert_eq!(row.get::<_, Vec<String>>(3), vec![IMAGE.to_owned()]);
    assert_eq!(
        row.get::<_, Value>(4),
        json!({"cpu": "1", "mem": "536870912"})
    );
    assert_eq!(row.get::<_, String>(5), "PENDING");
    assert_eq!(
        row.get::<_, Value>(6),
        json!({"cpu": "1", "mem": "536870912"})
    );
    assert_eq!(row.get::<_, Value>(7), json!({"shmem": 67108864}));
    assert_eq!(row.get::<_, String>(8), "main");
    assert_eq!(row.get::<_, i32>(9), 1);
    assert_eq!(row.get::<_, String>(10), "main1");
    assert_eq!(row.get::<_, String>(11), IMAGE);
    assert_eq!(row.get::<_, String>(12), REGISTRY);
    assert_eq!(row.get::<_, String>(13), ADMIN_AK);
    let creation_id: String = row.get(14);
    assert_eq!(creation_id.len(), 22);

    // The scheduler hears about it: session_enqueued on the stream, in the 23.09 format.
    let events = stream_events(&world).await;
    let enqueued = events.iter().find_map(|event| match event {
        Event::Session(e) if e.kind == SessionEventKind::Enqueued => Some(e.clone()),
        _ => None,
    });
    let enqueued = enqueued.expect("a session_enqueued event");
    assert_eq!(enqueued.session_id.to_string(), session_id);
    assert_eq!(enqueued.creation_id.as_deref(), Some(creation_id.as_str()));

    // Asking again reuses it; refusing reuse is an error naming the existing session.
    let (status, _, body) = call(&app, post(create_body("sess1"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], false);
    assert_eq!(body["sessionId"], session_id);
    assert_eq!(body["status"], "PENDING");
    let mut no_reuse = create_body("sess1");
    no_reuse["reuseIfExists"] = json!(false);
    let (status, _, body) = call(&app, post(no_reuse)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], problem_type("session-already-exists"));
    assert_eq!(body["data"]["existingSessionId"], session_id);

    // Info, by name and by id prefix; match; logs of a session never placed.
    for reference in ["sess1", &session_id[..8]] {
        let (status, _, body) = call(
            &app,
            admin
                .request(Method::GET, &format!("/session/{reference}"), None)
                .to_request(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{reference}: {body}");
        assert_eq!(body["status"], "PENDING");
        assert_eq!(body["image"], IMAGE);
        assert_eq!(body["lang"], IMAGE);
        assert_eq!(body["domainName"], "default");
        assert_eq!(body["groupId"], "2de2b969-1d04-48a6-af16-0bc8adb3c831");
        assert_eq!(body["userId"], "f38dea23-50fa-42a0-b5ae-338f5f4693f4");
        assert_eq!(
            body["occupiedSlots"],
            "{'cpu': Decimal('1'), 'mem': Decimal('536870912')}"
        );
        assert_eq!(body["terminationTime"], Value::Null);
        assert!(body["age"].as_i64().unwrap() >= 0);
    }
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::GET, "/session/_/match?id=ses", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"matches": [{"id": session_id, "name": "sess1", "status": "PENDING"}]})
    );
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::GET, "/session/sess1/logs", None)
            .to_request(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"result": {"logs": ""}}))
    );

    // #50: destroying a PENDING session cancels it.
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::DELETE, "/session/sess1", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"stats": {"status": "terminated"}}));
    let row = db
        .query_one(
            "SELECT s.status::text, s.status_info, k.status::text, k.status_info,
                    s.terminated_at IS NOT NULL, s.status_history ? 'CANCELLED'
             FROM sessions s JOIN kernels k ON k.session_id = s.id WHERE s.id::text = $1",
            &[&session_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "CANCELLED");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("user-requested")
    );
    assert_eq!(row.get::<_, String>(2), "CANCELLED");
    assert_eq!(
        row.get::<_, Option<String>>(3).as_deref(),
        Some("user-requested")
    );
    assert!(row.get::<_, bool>(4) && row.get::<_, bool>(5));
    let events = stream_events(&world).await;
    assert!(events.iter().any(|event| matches!(event,
        Event::Session(e) if e.kind == SessionEventKind::Cancelled
            && e.session_id.to_string() == session_id
            && e.reason == "user-requested")));

    // #58, #34: it is gone for info and destroy.
    for method in [Method::GET, Method::DELETE] {
        let (status, _, body) = call(
            &app,
            admin.request(method, "/session/sess1", None).to_request(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            json!({"type": problem_type("object-not-found"), "title": "No such session.",
                   "msg": "Session (id=sess1) does not exist."})
        );
    }
    // The name is free again.
    let (status, _, body) = call(&app, post(create_body("sess1"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(body["sessionId"], session_id);
}

#[actix_web::test]
async fn users_cannot_see_or_destroy_each_others_sessions() {
    let world = ApiWorld::new().await;
    insert_test_image(&world, true).await;
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let user2 = Signer::new(USER2_AK, USER2_SK);
    let domain_admin = Signer::new(DOMAIN_ADMIN_AK, DOMAIN_ADMIN_SK);
    let (status, _, body) = call(
        &app,
        user.request(Method::POST, "/session", Some(&create_body("mine1")))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    for method in [Method::GET, Method::DELETE] {
        let (status, _, _) = call(
            &app,
            user2.request(method, "/session/mine1", None).to_request(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (_, _, body) = call(
        &app,
        user2
            .request(Method::GET, "/session/_/match?id=mine", None)
            .to_request(),
    )
    .await;
    assert_eq!(body, json!({"matches": []}));
    let path = format!("/session/mine1?owner_access_key={USER_AK}");
    let (status, _, body) = call(
        &app,
        user2.request(Method::DELETE, &path, None).to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["msg"],
        "Only admins can perform operations on behalf of other users."
    );
    let logs_path = format!("/session/mine1/logs?owner_access_key={USER_AK}");
    let (status, _, _) = call(
        &app,
        user2.request(Method::GET, &logs_path, None).to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A user cannot create a session on someone else's behalf either.
    let mut body = create_body("theirs1");
    body["owner_access_key"] = json!(USER_AK);
    let (status, _, _) = call(
        &app,
        user2
            .request(Method::POST, "/session", Some(&body))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The domain admin of the user's domain may destroy it.
    let (status, _, body) = call(
        &app,
        domain_admin
            .request(Method::DELETE, &path, None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // ...and create one for the user, in the user's name.
    let mut body = create_body("forthem1");
    body["owner_access_key"] = json!(USER_AK);
    let (status, _, reply) = call(
        &app,
        domain_admin
            .request(Method::POST, "/session", Some(&body))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let (status, _, _) = call(
        &app,
        user.request(Method::GET, "/session/forthem1", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn bad_requests_are_refused_with_a_reason_and_store_nothing() {
    let world = ApiWorld::new().await;
    insert_test_image(&world, true).await;
    world
        .db()
        .await
        .execute(
            "UPDATE keypair_resource_policies SET total_resource_slots = '{\"cpu\": \"2\"}'",
            &[],
        )
        .await
        .unwrap();
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let user = Signer::new(USER_AK, USER_SK);
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            json!({"image": "127.0.0.1:25000/testing/nope:1"}),
            404,
            "object-not-found",
            Some(
                "Unknown image references: ref:\"127.0.0.1:25000/testing/nope:1\", alias:\"127.0.0.1:25000/testing/nope:1\"",
            ),
        ),
        (
            json!({"config": {"resources": {"cpu": "16", "mem": "1g"}}}),
            400,
            "invalid-api-params",
            Some(
                "Your resource request is larger than the maximum allowed by the image. (cpu=8 mem=Infinity)",
            ),
        ),
        (
            json!({"config": {"resources": {"cpu": "1", "mem": "128m"}}}),
            400,
            "invalid-api-params",
            Some(
                "Your resource request is smaller than the minimum required by the image. (cpu=1 mem=320m)",
            ),
        ),
        (
            json!({"config": {"resources": {"cpu": "1", "tpu": "1"}}}),
            400,
            "invalid-api-params",
            Some("Unknown requested resource slot: tpu"),
        ),
        (
            json!({"name": "no"}),
            400,
            "invalid-api-params",
            Some("Input validation error"),
        ),
        (
            json!({"type": "batch"}),
            400,
            "invalid-api-params",
            Some("Batch sessions must have a non-empty startup command."),
        ),
        (
            json!({"clusterSize": 2}),
            412,
            "quota-exceeded",
            Some("You cannot create session with more than 1 containers."),
        ),
        (
            json!({"group": "nobody"}),
            400,
            "invalid-api-params",
            Some("Invalid group"),
        ),
        (
            json!({"config": {"scalingGroup": "gpu-only", "resources": {"cpu": "1", "mem": "512m"}}}),
            404,
            "object-not-found",
            Some(
                "The scaling group 'gpu-only' does not exist or you do not have access to the scaling group 'gpu-only'.",
            ),
        ),
        (
            json!({"config": {"agent_list": ["i-x"]}}),
            403,
            "insufficient-privilege",
            Some("You are not allowed to manually assign agents for your session."),
        ),
    ];
    for (overrides, status, slug, msg) in cases {
        let mut body = create_body("bad1");
        for (key, value) in overrides.as_object().unwrap() {
            if key == "config" {
                for (k, v) in value.as_object().unwrap() {
                    body["config"][k] = v.clone();
                }
            } else {
                body[key] = value.clone();
            }
        }
        let (got, _, reply) = call(
            &app,
            user.request(Method::POST, "/session", Some(&body))
                .to_request(),
        )
        .await;
        assert_eq!(got.as_u16(), status, "{overrides}: {reply}");
        assert_eq!(reply["type"], problem_type(slug), "{overrides}: {reply}");
        if let Some(msg) = msg {
            assert_eq!(reply["msg"], msg, "{overrides}");
        }
    }
    // A policy limit that can never be met is refused rather than left pending (the policy
    // was set to 2 CPUs before the first request).
    let mut body = create_body("big1");
    body["config"]["resources"] = json!({"cpu": "4", "mem": "1g"});
    let (status, _, reply) = call(
        &app,
        user.request(Method::POST, "/session", Some(&body))
            .to_request(),
    )
    .await;
    assert_eq!(status.as_u16(), 412, "{reply}");
    let count: i64 = world
        .db()
        .await
        .query_one("SELECT count(*) FROM sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "a refused request stored a session");

    // An alias works like the canonical name.
    let mut body = create_body("alias1");
    body["image"] = json!("python");
    let (status, _, reply) = call(
        &app,
        admin
            .request(Method::POST, "/session", Some(&body))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
}

#[actix_web::test]
async fn a_frozen_manager_refuses_new_sessions_but_still_answers_reads() {
    let world = ApiWorld::new().await;
    insert_test_image(&world, true).await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, _, _) = call(
        &app,
        admin
            .request(Method::POST, "/session", Some(&create_body("before1")))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = call(
        &app,
        admin
            .request(
                Method::PUT,
                "/manager/status",
                Some(&json!({"status": "frozen"})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::POST, "/session", Some(&create_body("during1")))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["type"], problem_type("server-frozen"));
    let (status, _, _) = call(
        &app,
        admin
            .request(Method::GET, "/session/before1", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(
        &app,
        admin
            .request(Method::DELETE, "/session/before1", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn a_waiting_create_reports_the_start_or_a_timeout() {
    let world = ApiWorld::new().await;
    insert_test_image(&world, true).await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);

    let mut body = create_body("wait1");
    body["enqueueOnly"] = json!(false);
    body["maxWaitSeconds"] = json!(1);
    let (status, _, reply) = call(
        &app,
        admin
            .request(Method::POST, "/session", Some(&body))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(reply["status"], "TIMEOUT");

    // Play the scheduler: start the next session a moment after it is enqueued.
    let db = world.db().await;
    let starter = tokio::spawn(async move {
        for _ in 0..100 {
            let started = db
                .execute(
                    "WITH s AS (UPDATE sessions SET status = 'RUNNING' WHERE name = 'wait2' RETURNING id)
                     UPDATE kernels SET status = 'RUNNING',
                        service_ports = '[{\"name\": \"jupyter\", \"protocol\": \"http\", \"container_ports\": [8081], \"host_ports\": [30001]}]'
                     WHERE session_id IN (SELECT id FROM s)",
                    &[],
                )
                .await
                .unwrap();
            if started > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut body = create_body("wait2");
    body["enqueueOnly"] = json!(false);
    body["maxWaitSeconds"] = json!(60);
    let (status, _, reply) = call(
        &app,
        admin
            .request(Method::POST, "/session", Some(&body))
            .to_request(),
    )
    .await;
    starter.await.unwrap();
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(reply["status"], "RUNNING");
    assert_eq!(
        reply["servicePorts"],
        json!([{"name": "jupyter", "protocol": "http", "ports": [8081]}])
    );

    // Destroying a session past PENDING needs the scheduler, which this test does not run.
    let (status, _, reply) = call(
        &app,
        admin
            .request(Method::DELETE, "/session/wait2", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply["type"], problem_type("not-implemented"));
}

/// Reads the next server-sent event of a streaming reply (skipping pings), waiting at most
/// `limit`.
pub async fn next_event<B>(body: &mut B, limit: Duration) -> Option<(String, Value)>
where
    B: actix_web::body::MessageBody + Unpin,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut buffer = String::new();
    loop {
        if let Some(end) = buffer.find("\r\n\r\n") {
            let block: String = buffer.drain(..end + 4).collect();
            if block.starts_with(':') {
                continue;
            }
            let mut name = String::new();
            let mut data = Value::Null;
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("event: ") {
                    name = rest.to_owned();
                } else if let Some(rest) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(rest).unwrap();
                }
            }
            return Some((name, data));
        }
        let chunk = tokio::time::timeout_at(
            deadline,
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_next(cx)),
        )
        .await
        .ok()??;
        let bytes = chunk.ok()?;
        buffer.push_str(&String::from_utf8_lossy(&bytes));
    }
}

#[actix_web::test]
async fn session_events_stream_to_their_owner_only() {
    let world = ApiWorld::new().await;
    insert_test_image(&world, true).await;
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let user2 = Signer::new(USER2_AK, USER2_SK);

    let response = actix_web::test::call_service(
        &app,
        user.request(Method::GET, "/events/session", None)
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("Content-Type").unwrap(),
        "text/event-stream"
    );
    let mut body = response.into_body();

    // Someone else's session first: it must not show up in this stream.
    let (status, _, _) = call(
        &app,
        user2
            .request(Method::POST, "/session", Some(&create_body("other1")))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, created) = call(
        &app,
        user.request(Method::POST, "/session", Some(&create_body("mine1")))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let session_id = created["sessionId"].as_str().unwrap().to_owned();

    let (name, data) = next_event(&mut body, Duration::from_secs(30))
        .await
        .expect("an event");
    assert_eq!(name, "session_enqueued");
    assert_eq!(data["sessionName"], "mine1");
    assert_eq!(data["sessionId"], session_id);
    assert_eq!(data["ownerAccessKey"], USER_AK);
    assert_eq!(data["reason"], "");
    assert_eq!(data["exitCode"], Value::Null);

    let (status, _, _) = call(
        &app,
        user.request(Method::DELETE, "/session/mine1", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (name, data) = next_event(&mut body, Duration::from_secs(30))
            .await
            .expect("the cancellation events");
        assert_eq!(data["sessionName"], "mine1", "{name}: {data}");
        assert_eq!(data["reason"], "user-requested");
        seen.push(name);
    }
    seen.sort();
    assert_eq!(seen, vec!["kernel_cancelled", "session_cancelled"]);

    // Users may not watch another owner's sessions.
    let (status, _, body) = call(
        &app,
        user.request(
            Method::GET,
            &format!("/events/session?ownerAccessKey={USER2_AK}"),
            None,
        )
        .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["type"], problem_type("generic-forbidden"));
}

#[actix_web::test]
async fn sessions_mount_the_folders_they_ask_for_through_the_storage_broker() {
    let storage = crate::storage_support::StorageWorld::new().await;
    insert_test_image(&storage.api, true).await;
    let app = crate::storage_app!(storage);
    let user = Signer::new(USER_AK, USER_SK);
    for folder in ["data1", ".automount"] {
        let (status, _, body) = call(
            &app,
            user.request(
                Method::POST,
                "/folders",
                Some(&crate::storage_support::create_body(folder)),
            )
            .to_request(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{folder}: {body}");
    }

    let mut body = create_body("mounts1");
    body["config"]["mounts"] = json!(["data1"]);
    body["config"]["mount_map"] = json!({"data1": "/home/work/mydata"});
    let (status, _, reply) = call(
        &app,
        user.request(Method::POST, "/session", Some(&body))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let row = storage
        .api
        .db()
        .await
        .query_one(
            "SELECT k.vfolder_mounts, k.mounts, s.vfolder_mounts FROM kernels k
             JOIN sessions s ON s.id = k.session_id WHERE s.name = 'mounts1'",
            &[],
        )
        .await
        .unwrap();
    let mounts: Value = row.get(0);
    let by_name = |name: &str| {
        mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not mounted: {mounts}"))
    };
    assert_eq!(by_name("data1")["kernel_path"], "/home/work/mydata");
    assert_eq!(by_name("data1")["mount_perm"], "rw");
    // Dot-prefixed folders mount by themselves.
    assert_eq!(
        by_name(".automount")["kernel_path"],
        "/home/work/.automount"
    );
    let mut names: Vec<String> = row.get(1);
    names.sort();
    assert_eq!(names, vec![".automount".to_owned(), "data1".to_owned()]);
    assert_eq!(row.get::<_, Value>(2), mounts);

    let mut body = create_body("mounts2");
    body["config"]["mounts"] = json!(["nowhere"]);
    let (status, _, reply) = call(
        &app,
        user.request(Method::POST, "/session", Some(&body))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    assert_eq!(reply["title"], "No such virtual folder.");
}
