//! Request authentication and the request pipeline of the client API, against a real
//! database, etcd and Redis: signatures, every failure with the original's reply, the key
//! cache, roles, `allowed_client_ip`, rate limiting, CORS, version checks and error mapping.

use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use bai_actors::facade::auth::credentials::CREDENTIAL_CACHE_TTL;
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::api_app;
use crate::api_support::*;

fn header<'a>(headers: &'a actix_web::http::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing header {name}"))
}

#[actix_web::test]
async fn a_signed_request_gets_the_callers_roles_and_rate_limit_headers() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);

    let (status, headers, body) = call(
        &app,
        admin.request(Method::GET, "/auth/role", None).to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"global_role": "superadmin", "domain_role": "admin", "group_role": null})
    );
    assert_eq!(
        header(&headers, "Content-Type"),
        "application/json; charset=utf-8"
    );
    assert_eq!(header(&headers, "Server"), "BackendAI");
    assert_eq!(
        header(&headers, "X-BAI-Manager-Version"),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(header(&headers, "X-RateLimit-Limit"), "30000");
    assert_eq!(header(&headers, "X-RateLimit-Remaining"), "29999");
    assert_eq!(header(&headers, "X-RateLimit-Window"), "900");

    let (_, headers, _) = call(
        &app,
        admin.request(Method::GET, "/auth/role", None).to_request(),
    )
    .await;
    assert_eq!(header(&headers, "X-RateLimit-Remaining"), "29998");

    let user = Signer::new(USER_AK, USER_SK);
    let (status, _, body) = call(
        &app,
        user.request(
            Method::GET,
            "/auth/role?group=2de2b969-1d04-48a6-af16-0bc8adb3c831",
            None,
        )
        .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"global_role": "user", "domain_role": "user", "group_role": "user"})
    );
    let (status, _, body) = call(
        &app,
        user.request(
            Method::GET,
            "/auth/role?group=00000000-0000-0000-0000-000000000000",
            None,
        )
        .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["title"], "No such project (user group).");

    // The signature test endpoint echoes, for GET (query) and POST (body).
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::GET, "/auth?echo=hi", None)
            .to_request(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"authorized": "yes", "echo": "hi"}))
    );
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::POST, "/auth/test", Some(&json!({"echo": "there"})))
            .to_request(),
    )
    .await;
    assert_eq!(
        (status, body["echo"].clone()),
        (StatusCode::OK, json!("there"))
    );

    // Each authenticated request counts in kp:<ak>:num_queries (Redis db 0), asynchronously.
    let mut stat = world.env.redis.connection(0).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count: Option<i64> = stat
            .get(format!("kp:{ADMIN_AK}:num_queries"))
            .await
            .unwrap();
        if count == Some(4) {
            break;
        }
        assert!(Instant::now() < deadline, "num_queries is {count:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What is wrong, the request headers, and the expected status, problem slug and `msg`.
type FailureCase = (
    &'static str,
    Vec<(String, String)>,
    u16,
    &'static str,
    &'static str,
);

#[actix_web::test]
async fn every_auth_failure_gets_the_originals_status_and_problem() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let now = chrono::Utc::now();

    let with_headers = |headers: Vec<(String, String)>| {
        let mut request = TestRequest::get().uri("/auth/role");
        for (name, value) in headers {
            request = request.insert_header((name, value));
        }
        request.to_request()
    };
    let signed = admin.headers("GET", "/auth/role", "text/plain", now);
    let replace = |name: &str, value: &str| -> Vec<(String, String)> {
        signed
            .iter()
            .map(|(k, v)| {
                if k == name {
                    (k.clone(), value.to_owned())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    };
    let without = |name: &str| -> Vec<(String, String)> {
        signed.iter().filter(|(k, _)| k != name).cloned().collect()
    };
    let good_signature = signed
        .iter()
        .find(|(k, _)| k == "Authorization")
        .map(|(_, v)| v.rsplit(':').next().unwrap().to_owned())
        .unwrap();

    let cases: Vec<FailureCase> = vec![
        (
            "no headers at all",
            vec![],
            400,
            "invalid-auth-params",
            "Date/time sync error",
        ),
        (
            "a date outside the window",
            admin.headers(
                "GET",
                "/auth/role",
                "text/plain",
                now - chrono::TimeDelta::minutes(20),
            ),
            400,
            "invalid-auth-params",
            "Date/time sync error",
        ),
        (
            "a date that is not a date",
            replace("Date", "the day after tomorrow"),
            400,
            "invalid-auth-params",
            "Date/time sync error",
        ),
        (
            "a bad signature",
            replace(
                "Authorization",
                &format!("BackendAI signMethod=HMAC-SHA256, credential={ADMIN_AK}:deadbeef"),
            ),
            401,
            "auth-failed",
            "Signature mismatch",
        ),
        (
            "an unknown access key",
            replace(
                "Authorization",
                &format!(
                    "BackendAI signMethod=HMAC-SHA256, credential=AKIAXXXXXXXXXXXXXXXX:{good_signature}"
                ),
            ),
            401,
            "auth-failed",
            "Access key not found",
        ),
        (
            "a missing version header",
            without("X-BackendAI-Version"),
            400,
            "invalid-auth-params",
            "API version missing in request headers",
        ),
        (
            "the wrong scheme",
            replace("Authorization", "Bearer abc"),
            400,
            "invalid-auth-params",
            "Invalid authorization type name",
        ),
        (
            "no credential",
            replace("Authorization", "BackendAI signMethod=HMAC-SHA256"),
            400,
            "invalid-auth-params",
            "Missing or malformed authorization parameters",
        ),
        (
            "an unknown hash",
            replace(
                "Authorization",
                &format!("BackendAI signMethod=HMAC-ROT13, credential={ADMIN_AK}:{good_signature}"),
            ),
            400,
            "invalid-auth-params",
            "Unsupported request signing method (hash type)",
        ),
        (
            "an unsigned request with a good date",
            without("Authorization"),
            401,
            "auth-failed",
            "Unauthorized access",
        ),
        (
            "a signature over another host",
            replace("Host", "10.0.0.1:8081"),
            401,
            "auth-failed",
            "Signature mismatch",
        ),
        (
            "an unsupported API version",
            replace("X-BackendAI-Version", "v9.20250722"),
            400,
            "generic-bad-request",
            "Unsupported API version.",
        ),
    ];
    for (what, headers, status, slug, msg) in cases {
        let (got_status, got_headers, body) = call(&app, with_headers(headers)).await;
        assert_eq!(got_status.as_u16(), status, "{what}: {body}");
        assert_eq!(body["type"], problem_type(slug), "{what}: {body}");
        assert_eq!(body["msg"], msg, "{what}: {body}");
        assert_eq!(
            header(&got_headers, "Content-Type"),
            "application/problem+json; charset=utf-8",
            "{what}"
        );
        assert!(
            !got_headers.contains_key("X-RateLimit-Limit"),
            "{what}: failed requests carry no rate-limit headers"
        );
    }

    // An inactive keypair is an unknown one.
    world
        .db()
        .await
        .execute(
            "UPDATE keypairs SET is_active = false WHERE access_key = $1",
            &[&USER2_AK],
        )
        .await
        .unwrap();
    let user2 = Signer::new(USER2_AK, USER2_SK);
    let (status, _, body) = call(
        &app,
        user2.request(Method::GET, "/auth/role", None).to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["msg"], "Access key not found");
}

/// Signed requests are authenticated from a keypair cache (`CREDENTIAL_CACHE_TTL`, 2 s): a
/// keypair deactivated or deleted in the database, even by another manager that cannot clear
/// this one's cache, must be refused by a request sent that long after the change.
#[actix_web::test]
async fn a_deactivated_or_deleted_keypair_stops_working_within_the_cache_ttl() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let changes = [
        (
            USER_AK,
            USER_SK,
            "UPDATE keypairs SET is_active = false WHERE access_key = $1",
        ),
        (
            USER2_AK,
            USER2_SK,
            "DELETE FROM keypairs WHERE access_key = $1",
        ),
    ];
    for (access_key, secret_key, change) in changes {
        let signer = Signer::new(access_key, secret_key);
        // Two requests: the first reads the keypair into the cache, the second is served from it.
        for _ in 0..2 {
            let (status, _, body) = call(
                &app,
                signer.request(Method::GET, "/auth/role", None).to_request(),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{change}: {body}");
        }
        let changed_rows = world
            .db()
            .await
            .execute(change, &[&access_key])
            .await
            .unwrap();
        assert_eq!(changed_rows, 1, "{change}");
        let changed = Instant::now();
        // The bound under test is a time: the cached entry was read before the change, so a
        // request sent CREDENTIAL_CACHE_TTL after the change cannot be served from it.
        tokio::time::sleep_until((changed + CREDENTIAL_CACHE_TTL).into()).await;
        let (status, _, body) = call(
            &app,
            signer.request(Method::GET, "/auth/role", None).to_request(),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{change}: the keypair still works {CREDENTIAL_CACHE_TTL:?} after the change: {body}"
        );
        assert_eq!(body["msg"], "Access key not found", "{change}");
    }
}

#[actix_web::test]
async fn only_superadmins_reach_superadmin_routes() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let body = json!({"key": "config/redis/addr"});
    for (ak, sk) in [
        (USER_AK, USER_SK),
        (DOMAIN_ADMIN_AK, DOMAIN_ADMIN_SK),
        (MONITOR_AK, MONITOR_SK),
    ] {
        let signer = Signer::new(ak, sk);
        let (status, _, reply) = call(
            &app,
            signer
                .request(Method::POST, "/config/get", Some(&body))
                .to_request(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{ak}: {reply}");
        assert_eq!(reply["type"], problem_type("auth-failed"));
        assert_eq!(reply["msg"], "Unauthorized access");
        let (status, _, _) = call(
            &app,
            signer
                .request(Method::GET, "/config/docker-registries", None)
                .to_request(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{ak}");
    }
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, _, reply) = call(
        &app,
        admin
            .request(Method::POST, "/config/get", Some(&body))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply, json!({"result": world.env.redis.addr()}));
}

#[actix_web::test]
async fn the_rate_limit_counts_per_key_and_refuses_with_429() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    world
        .db()
        .await
        .execute(
            "UPDATE keypairs SET rate_limit = 3 WHERE access_key = $1",
            &[&USER_AK],
        )
        .await
        .unwrap();
    let user = Signer::new(USER_AK, USER_SK);
    for remaining in ["2", "1", "0"] {
        let (status, headers, _) = call(
            &app,
            user.request(Method::GET, "/auth/role", None).to_request(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "X-RateLimit-Limit"), "3");
        assert_eq!(header(&headers, "X-RateLimit-Remaining"), remaining);
    }
    let (status, headers, body) = call(
        &app,
        user.request(Method::GET, "/auth/role", None).to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["type"], problem_type("rate-limit-exceeded"));
    assert!(!headers.contains_key("X-RateLimit-Limit"));
    // Another key is not affected; the window lives in Redis db 1 under the access key.
    let user2 = Signer::new(USER2_AK, USER2_SK);
    let (status, _, _) = call(
        &app,
        user2.request(Method::GET, "/auth/role", None).to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut rlim = world.env.redis.connection(1).await;
    let count: i64 = rlim.zcard(USER_AK).await.unwrap();
    assert_eq!(count, 4);
}

#[actix_web::test]
async fn allowed_client_ip_restricts_where_a_user_may_call_from() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    world
        .db()
        .await
        .execute(
            "UPDATE users SET allowed_client_ip = '{10.0.0.0/8}' WHERE email = 'user@lablup.com'",
            &[],
        )
        .await
        .unwrap();
    let user = Signer::new(USER_AK, USER_SK);
    let from = |ip: &str| {
        user.request(Method::GET, "/auth/role", None)
            .peer_addr(format!("{ip}:40000").parse().unwrap())
            .to_request()
    };
    let (status, _, body) = call(&app, from("127.0.0.1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["msg"], "'127.0.0.1' is not allowed IP address");
    let (status, _, _) = call(&app, from("10.9.8.7")).await;
    assert_eq!(status, StatusCode::OK);
    let forwarded = user
        .request(Method::GET, "/auth/role", None)
        .peer_addr("127.0.0.1:40000".parse().unwrap())
        .insert_header(("X-Forwarded-For", "10.1.1.1"))
        .to_request();
    let (status, _, _) = call(&app, forwarded).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn public_routes_unknown_paths_and_methods_answer_like_the_original() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);

    let (status, headers, body) = call(&app, TestRequest::get().uri("/").to_request()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"version": "v6.20220615", "manager": "22.09.99", "bai-manager": env!("CARGO_PKG_VERSION")})
    );
    assert_eq!(header(&headers, "X-RateLimit-Limit"), "1000");
    assert_eq!(header(&headers, "X-RateLimit-Remaining"), "1000");
    assert_eq!(header(&headers, "X-RateLimit-Window"), "900");
    assert_eq!(header(&headers, "Server"), "BackendAI");

    // Signed or not, a public route is served anonymously.
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, headers, body) = call(
        &app,
        admin
            .request(Method::GET, "/manager/announcement", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"enabled": false, "message": ""}));
    assert_eq!(header(&headers, "X-RateLimit-Limit"), "1000");

    let (status, headers, body) =
        call(&app, TestRequest::get().uri("/nonexistent").to_request()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"type": problem_type("url-not-found"), "title": "Unknown URL path.", "data": "/nonexistent"})
    );
    assert!(!headers.contains_key("X-RateLimit-Limit"));

    let (status, _, body) = call(&app, TestRequest::delete().uri("/auth/role").to_request()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["type"], problem_type("method-not-allowed"));
    assert_eq!(body["title"], "HTTP Method Not Allowed.");

    let (status, _, body) = call(
        &app,
        TestRequest::get()
            .uri("/")
            .insert_header(("X-BackendAI-Version", "v1.20160915"))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], problem_type("generic-bad-request"));

    // X-Method-Override re-routes a POST to the GET handler.
    let signed = admin.headers("GET", "/auth/role", "text/plain", chrono::Utc::now());
    let mut request = TestRequest::post()
        .uri("/auth/role")
        .insert_header(("X-Method-Override", "GET"));
    for (name, value) in signed {
        request = request.insert_header((name, value));
    }
    let (status, _, body) = call(&app, request.to_request()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["global_role"], "superadmin");
}

#[actix_web::test]
async fn cors_allows_any_origin_as_the_original() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let (status, headers, _) = call(
        &app,
        TestRequest::default()
            .method(Method::OPTIONS)
            .uri("/auth/role")
            .insert_header(("Origin", "https://webui.example"))
            .insert_header(("Access-Control-Request-Method", "GET"))
            .insert_header((
                "Access-Control-Request-Headers",
                "authorization, x-backendai-version",
            ))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "Access-Control-Allow-Origin"),
        "https://webui.example"
    );
    assert_eq!(header(&headers, "Access-Control-Allow-Methods"), "GET");
    assert_eq!(
        header(&headers, "Access-Control-Allow-Headers"),
        "AUTHORIZATION,X-BACKENDAI-VERSION"
    );

    let (status, headers, _) = call(
        &app,
        TestRequest::get()
            .uri("/")
            .insert_header(("Origin", "https://webui.example"))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "Access-Control-Allow-Origin"),
        "https://webui.example"
    );
    let exposed = header(&headers, "Access-Control-Expose-Headers").to_ascii_lowercase();
    assert!(exposed.contains("x-ratelimit-remaining"), "{exposed}");

    let (status, _, _) = call(
        &app,
        TestRequest::default()
            .method(Method::OPTIONS)
            .uri("/auth/role")
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn login_with_a_password_hands_out_the_users_keypair() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let login = |password: &str| {
        TestRequest::post()
            .uri("/auth/authorize")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(
                json!({"type": "keypair", "domain": "default", "username": "admin@lablup.com", "password": password})
                    .to_string(),
            )
            .to_request()
    };
    let (status, _, body) = call(&app, login("wJalrXUt")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"data": {"access_key": ADMIN_AK, "secret_key": ADMIN_SK, "role": "superadmin", "status": "active"}})
    );
    // The capture's failed login (#63): a wrong password.
    let (status, _, body) = call(&app, login(ADMIN_SK)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"type": problem_type("auth-failed"), "title": "Credential/signature mismatch.", "msg": "User credential mismatch."})
    );
    let (status, _, body) = call(
        &app,
        TestRequest::post()
            .uri("/auth/authorize")
            .set_payload(
                json!({"type": "jwt", "domain": "default", "username": "a", "password": "b"})
                    .to_string(),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["msg"], "Unsupported authorization type");
    assert!(
        !world.log.text().contains("wJalrXUt"),
        "a password was logged"
    );
}

#[actix_web::test]
async fn superadmins_read_and_write_etcd_and_see_the_config() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let post =
        |path: &str, body: Value| admin.request(Method::POST, path, Some(&body)).to_request();
    let (status, _, body) = call(
        &app,
        post(
            "/config/set",
            json!({"key": "config/docker/registry/127.0.0.1:25000",
                   "value": {"": "http://127.0.0.1:25000", "type": "docker", "password": "hunter2"}}),
        ),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": "ok"})));
    let (status, _, body) = call(
        &app,
        post(
            "/config/get",
            json!({"key": "config/docker/registry", "prefix": true}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["result"]["127.0.0.1:25000"]["type"], "docker",
        "{body}"
    );
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::GET, "/config/docker-registries", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"127.0.0.1:25000": "http://127.0.0.1:25000"}));
    assert!(
        !world.log.text().contains("hunter2"),
        "a registry password was logged"
    );

    world
        .env
        .etcd_put("config/resource_slots/cuda.device", "count")
        .await;
    let (status, _, body) = call(
        &app,
        TestRequest::get()
            .uri("/config/resource-slots")
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"cpu": "count", "cuda.device": "count", "mem": "bytes"})
    );
    let (status, _, body) = call(
        &app,
        TestRequest::get().uri("/config/vfolder-types").to_request(),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!(["user"])));

    let (status, _, _) = call(
        &app,
        post(
            "/config/delete",
            json!({"key": "config/docker/registry/", "prefix": true}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        world
            .env
            .etcd_get("config/docker/registry/127.0.0.1:25000/type")
            .await,
        None
    );
    let too_many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!(i))).collect();
    let (status, _, body) = call(
        &app,
        post("/config/set", json!({"key": "x", "value": too_many})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["msg"],
        "Too large update! Split into smaller key-value pair sets."
    );
}

#[actix_web::test]
async fn the_manager_status_can_be_frozen_and_the_announcement_set() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, _, body) =
        call(&app, TestRequest::get().uri("/manager/status").to_request()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "running");
    assert_eq!(body["nodes"][0]["id"], "i-test");
    assert_eq!(body["nodes"][0]["api_version"], json!([5, "20191215"]));
    assert_eq!(body["active_sessions"], 0);

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
    assert_eq!(
        world.env.etcd_get("manager/status").await.as_deref(),
        Some("frozen")
    );
    let (_, _, body) = call(&app, TestRequest::get().uri("/manager/status").to_request()).await;
    assert_eq!(body["status"], "frozen");

    let (status, _, _) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/manager/announcement",
                Some(&json!({"enabled": true, "message": "maintenance at 6"})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, body) = call(
        &app,
        TestRequest::get().uri("/manager/announcement").to_request(),
    )
    .await;
    assert_eq!(
        body,
        json!({"enabled": true, "message": "maintenance at 6"})
    );
    let (status, _, body) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/manager/announcement",
                Some(&json!({"enabled": true, "message": ""})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[actix_web::test]
async fn no_reply_or_log_line_carries_a_secret_key() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let mut replies = String::new();
    for (ak, sk) in [(ADMIN_AK, ADMIN_SK), (USER_AK, USER_SK)] {
        let signer = Signer::new(ak, sk);
        for (method, path) in [
            (Method::GET, "/auth/role"),
            (Method::GET, "/auth?echo=x"),
            (Method::GET, "/manager/status"),
            (Method::GET, "/config/docker-registries"),
        ] {
            let (_, headers, body) =
                call(&app, signer.request(method, path, None).to_request()).await;
            replies.push_str(&body.to_string());
            replies.push_str(&format!("{headers:?}"));
        }
        let (_, _, body) = call(
            &app,
            signer
                .request(
                    Method::POST,
                    "/config/get",
                    Some(&json!({"key": "", "prefix": true})),
                )
                .to_request(),
        )
        .await;
        replies.push_str(&body.to_string());
        // A bad signature must not echo the expected one or the secret.
        let mut bad = Signer::new(ak, "not-the-secret");
        bad.version = "v6.20220615".into();
        let (_, _, body) = call(
            &app,
            bad.request(Method::GET, "/auth/role", None).to_request(),
        )
        .await;
        replies.push_str(&body.to_string());
    }
    let logs = world.log.text();
    assert!(
        logs.contains("ETCD.GET_CONFIG"),
        "the façade logged nothing: {logs}"
    );
    for secret in ALL_SECRETS {
        assert!(!replies.contains(secret), "a reply carries a secret key");
        assert!(!logs.contains(secret), "a log line carries a secret key");
    }
}
