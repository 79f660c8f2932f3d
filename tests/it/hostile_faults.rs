//! Faults and hostile load on the request path (issue 13, items 5, 6, 8 and 10), against real
//! PostgreSQL, Redis and etcd with the façade in-process:
//!
//! * Redis down: a signed request is refused at once with 503 `service-unavailable` (the rate
//!   limit fails closed), and requests succeed again once Redis is back;
//! * the `/events/session` feed: events arrive, an idle reader keeps one connection and logs
//!   nothing, and the reader leaves Redis when its last subscriber does (`CLIENT LIST`);
//! * 20 concurrent same-name creates with `reuseIfExists` all get the one session;
//! * a `maxWaitSeconds` near `i64::MAX` is answered without a panic;
//! * an exhausted request pool answers 503 `service-unavailable`, not a hang.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use bai_actors::event_bus::session_feed::{READ_BLOCK, READER_CLIENT_NAME};
use bai_schema::{DbSettings, PoolRole};
use serde_json::{Value, json};

use crate::api_app;
use crate::api_session::{create_body, insert_test_image, next_event};
use crate::api_support::{ApiWorld, Signer, USER_AK, USER_SK, call, problem_type};
use bai_testkit::wait::wait_for;

/// The connection of the event-feed reader in `CLIENT LIST`: (`id`, `age` in seconds).
async fn event_feed_client(world: &ApiWorld) -> Option<(u64, u64)> {
    let mut redis = world.env.redis.connection(0).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut redis)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .find(|line| {
            line.split(' ')
                .any(|field| field == format!("name={READER_CLIENT_NAME}"))
        })
        .map(|line| {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(name))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or_default()
            };
            (field("id="), field("age="))
        })
}

#[actix_web::test]
async fn with_redis_down_a_signed_request_is_refused_with_503_and_served_again_after() {
    let mut world = ApiWorld::new().await;
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let (status, _, body) = call(
        &app,
        user.request(Method::GET, "/auth/role", None).to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    world.env.redis.stop();
    for _ in 0..3 {
        let (status, _, body) = call(
            &app,
            user.request(Method::GET, "/auth/role", None).to_request(),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["type"], problem_type("service-unavailable"));
        assert_eq!(body["title"], "Serivce unavailable.");
    }

    world.env.redis.restart();
    wait_for(
        "a signed request to succeed with Redis back",
        Duration::from_secs(30),
        || async {
            let (status, _, body) = call(
                &app,
                user.request(Method::GET, "/auth/role", None).to_request(),
            )
            .await;
            if status == StatusCode::OK {
                Ok(())
            } else {
                Err(format!("{status}: {body}"))
            }
        },
    )
    .await;
    assert!(
        world
            .log
            .text()
            .contains("the rate limit cannot be checked in Redis"),
        "the refusals are logged for the operator"
    );
}

#[actix_web::test]
async fn the_event_feed_delivers_stays_quiet_when_idle_and_stops_after_its_last_subscriber() {
    let world = ApiWorld::new().await;
    insert_test_image(&world, true).await;
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    assert_eq!(
        event_feed_client(&world).await,
        None,
        "no reader before a subscriber"
    );

    let response = actix_web::test::call_service(
        &app,
        user.request(Method::GET, "/events/session", None)
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let (status, _, created) = call(
        &app,
        user.request(Method::POST, "/session", Some(&create_body("feed1")))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (name, data) = next_event(&mut body, Duration::from_secs(30))
        .await
        .expect("the enqueue event");
    assert_eq!(name, "session_enqueued");
    assert_eq!(data["sessionName"], "feed1");

    // Idle for more than two blocking reads: the reader keeps its one connection (a timed-out
    // read used to drop it and reconnect every 1.5 s with a WARN line each time).
    let (reader_id, _) = event_feed_client(&world)
        .await
        .expect("the reader's connection is named in CLIENT LIST");
    let idle_age = 2 * READ_BLOCK.as_secs() + 1;
    wait_for(
        "the reader to stay idle across two blocking reads",
        Duration::from_secs(idle_age + 20),
        || async {
            match event_feed_client(&world).await {
                Some((id, age)) if id == reader_id && age >= idle_age => Ok(()),
                Some((id, age)) if id == reader_id => {
                    Err(format!("connection {id} is {age} s old"))
                }
                other => panic!("the reader's connection changed from {reader_id} to {other:?}"),
            }
        },
    )
    .await;
    let log = world.log.text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("event feed"))
        .collect();
    assert!(
        warnings.is_empty(),
        "an idle feed logs no warnings: {warnings:?}"
    );

    // The last subscriber goes: the reader leaves Redis.
    drop(body);
    wait_for(
        "the reader to stop after its last subscriber",
        Duration::from_secs(30),
        || async {
            match event_feed_client(&world).await {
                None => Ok(()),
                Some((id, age)) => Err(format!("connection {id} ({age} s old) is still open")),
            }
        },
    )
    .await;
    assert!(world.log.text().contains("no subscriber left"));

    // The next subscriber starts a new reader, and events flow again.
    let response = actix_web::test::call_service(
        &app,
        user.request(Method::GET, "/events/session", None)
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let (status, _, created) = call(
        &app,
        user.request(Method::POST, "/session", Some(&create_body("feed2")))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (name, data) = next_event(&mut body, Duration::from_secs(30))
        .await
        .expect("the enqueue event after a restart of the reader");
    assert_eq!(name, "session_enqueued");
    assert_eq!(data["sessionName"], "feed2");
    assert!(event_feed_client(&world).await.is_some());
}

#[actix_web::test]
async fn twenty_concurrent_same_name_creates_that_allow_reuse_all_get_the_one_session() {
    let world = ApiWorld::new().await;
    insert_test_image(&world, true).await;
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let body = create_body("same-name");
    let replies = futures::future::join_all((0..20).map(|_| {
        call(
            &app,
            user.request(Method::POST, "/session", Some(&body))
                .to_request(),
        )
    }))
    .await;
    let mut ids = Vec::new();
    let mut created = 0;
    for (status, _, reply) in &replies {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::OK,
            "every create gets the session: {status} {reply}"
        );
        if reply["created"] == json!(true) {
            created += 1;
        }
        ids.push(
            reply["sessionId"]
                .as_str()
                .expect("a session id")
                .to_owned(),
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one session for all: {ids:?}");
    assert_eq!(created, 1, "exactly one request created it");
    let count: i64 = world
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE name = 'same-name'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[actix_web::test]
async fn a_huge_max_wait_is_answered_without_a_panic() {
    let world = ApiWorld::new().await;
    insert_test_image(&world, true).await;
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);

    // Beyond i64: a parameter error, before anything is stored.
    let mut body = create_body("huge-wait-1");
    body["enqueueOnly"] = json!(false);
    body["maxWaitSeconds"] = serde_json::from_str::<Value>("99999999999999999999999").unwrap();
    let (status, _, reply) = call(
        &app,
        user.request(Method::POST, "/session", Some(&body))
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["type"], problem_type("invalid-api-params"));

    // Near i64::MAX: the session is stored and the request waits (capped); cancelling the
    // PENDING session ends the wait with its status.
    let mut body = create_body("huge-wait-2");
    body["enqueueOnly"] = json!(false);
    body["maxWaitSeconds"] = json!(i64::MAX);
    let db = world.db().await;
    let create = call(
        &app,
        user.request(Method::POST, "/session", Some(&body))
            .to_request(),
    );
    let cancel = async {
        wait_for(
            "the waiting create to store its session",
            Duration::from_secs(30),
            || async {
                let stored: i64 = db
                    .query_one(
                        "SELECT count(*) FROM sessions WHERE name = 'huge-wait-2'",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if stored == 1 {
                    Ok::<(), String>(())
                } else {
                    Err("not stored yet".into())
                }
            },
        )
        .await;
        call(
            &app,
            user.request(Method::DELETE, "/session/huge-wait-2", None)
                .to_request(),
        )
        .await
    };
    let ((status, _, reply), (cancel_status, _, cancel_reply)) = futures::join!(create, cancel);
    assert_eq!(cancel_status, StatusCode::OK, "{cancel_reply}");
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["status"], "CANCELLED");

    // The worker still serves.
    let (status, _, reply) = call(
        &app,
        user.request(Method::GET, "/auth/role", None).to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
}

#[actix_web::test]
async fn an_exhausted_request_pool_answers_503_and_recovers() {
    let mut world = ApiWorld::new().await;
    insert_test_image(&world, true).await;
    world.state.db = DbSettings {
        host: world.env.db.host.clone(),
        port: world.env.db.port,
        name: world.env.db.name.clone(),
        user: world.env.db.user.clone(),
        password: "unused-trust-auth".into(),
        pool_size: 1,
    }
    .connect_pool_for(PoolRole::Requests)
    .await
    .expect("a one-connection request pool");
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    // The keypair is cached from here on, so only the handlers need the connection.
    let (status, _, reply) = call(
        &app,
        user.request(Method::GET, "/auth/role", None).to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");

    // A request stuck on a lock holds the pool's only connection...
    let mut locker = world.db().await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let observer = world.db().await;
    let stuck = call(
        &app,
        user.request(Method::GET, "/session/nothing-here", None)
            .to_request(),
    );
    let starved = async {
        wait_for(
            "a request to wait on the lock",
            Duration::from_secs(30),
            || async {
                let waiting: i64 = observer
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND wait_event_type = 'Lock'",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if waiting > 0 {
                    Ok::<(), String>(())
                } else {
                    Err("no request waits on the lock yet".into())
                }
            },
        )
        .await;
        // ...so the next one gets 503 instead of hanging.
        let reply = call(
            &app,
            user.request(Method::GET, "/session/another", None)
                .to_request(),
        )
        .await;
        lock.rollback().await.unwrap();
        reply
    };
    let ((stuck_status, _, stuck_reply), (status, _, reply)) = futures::join!(stuck, starved);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    assert_eq!(reply["type"], problem_type("service-unavailable"));
    assert_eq!(stuck_status, StatusCode::NOT_FOUND, "{stuck_reply}");

    let (status, _, reply) = call(
        &app,
        user.request(Method::GET, "/session/another", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "served again: {reply}");
}
