//! Error logs on the real `bai-manager start-server`: reports filed with `POST /logs/error` by
//! a user and an admin, listed with the original's visibility (a user sees only their own
//! uncleared logs, a superadmin all of them with `is_cleared`), paged, marked read and cleared;
//! and an agent's `agent_error` event on the Redis stream lands in the table with the agent as
//! its source.

use bai_actors::wire::{AgentErrorReport, Event, WireFormat};
use bai_agent_sim::{SimAgent, StreamWriter};
use bai_testkit::ports::free_port;
use bai_testkit::wait::wait_for as wait_until;
use reqwest::Method;
use serde_json::{Value, json};

use crate::api_support::{ADMIN_AK, ADMIN_SK, Signer, USER_AK, USER_SK};
use crate::hostile_support::{HostileWorld, WAIT};

fn report(message: &str) -> Value {
    json!({
        "severity": "error", "source": "webui", "message": message, "context_lang": "js",
        "context_env": "{\"page\": \"summary\"}", "request_url": "/session",
        "request_status": 500, "traceback": "at summary.js:1",
    })
}

fn messages(reply: &Value) -> Vec<String> {
    reply["logs"]
        .as_array()
        .map(|logs| {
            logs.iter()
                .filter_map(|log| log["message"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn users_file_list_and_clear_their_error_logs_and_admins_see_all() {
    let world = HostileWorld::start("", false).await;
    let user = Signer::new(USER_AK, USER_SK);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);

    let (status, reply) = world
        .signed(
            &user,
            Method::POST,
            "/logs/error",
            Some(&report("user broke it")),
        )
        .await;
    assert_eq!((status, reply), (200, json!({"success": true})));
    let (status, _) = world
        .signed(
            &admin,
            Method::POST,
            "/logs/error",
            Some(&report("admin broke it")),
        )
        .await;
    assert_eq!(status, 200);
    let mut bad = report("x");
    bad["severity"] = json!("catastrophic");
    let (status, _) = world
        .signed(&user, Method::POST, "/logs/error", Some(&bad))
        .await;
    assert_eq!(status, 400);

    // The user sees their own log only, without `is_cleared`.
    let (status, mine) = world
        .signed(&user, Method::GET, "/logs/error?mark_read=true", None)
        .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(messages(&mine), vec!["user broke it"]);
    assert_eq!(mine["count"], 1);
    let log = &mine["logs"][0];
    assert_eq!(log["severity"], "error");
    assert_eq!(log["context_env"], json!({"page": "summary"}));
    assert_eq!(log["request_status"], 500);
    assert_eq!(log["is_read"], false);
    assert!(log.get("is_cleared").is_none(), "{log}");
    assert!(log["created_at"].as_f64().is_some(), "{log}");
    let log_id = log["log_id"].as_str().unwrap().to_owned();

    // The superadmin sees both, newest first, the user's now read; pages of one.
    let (_, all) = world.signed(&admin, Method::GET, "/logs/error", None).await;
    assert_eq!(messages(&all), vec!["admin broke it", "user broke it"]);
    assert_eq!(all["count"], 2);
    assert_eq!(all["logs"][1]["is_read"], true);
    assert_eq!(all["logs"][1]["is_cleared"], false);
    let (_, page) = world
        .signed(
            &admin,
            Method::GET,
            "/logs/error?page_size=1&page_no=2",
            None,
        )
        .await;
    assert_eq!(messages(&page), vec!["user broke it"]);
    assert_eq!(page["count"], 2);
    // A page number far past the end (its offset would overflow) is an empty page, not an error.
    let (status, far) = world
        .signed(
            &admin,
            Method::GET,
            "/logs/error?page_size=100&page_no=9223372036854775807",
            None,
        )
        .await;
    assert_eq!(status, 200, "{far}");
    assert!(messages(&far).is_empty(), "{far}");
    assert_eq!(far["count"], 2);

    // A user cannot clear someone else's log; clearing their own hides it from them only.
    let admin_log = all["logs"][0]["log_id"].as_str().unwrap().to_owned();
    let (status, _) = world
        .signed(
            &user,
            Method::POST,
            &format!("/logs/error/{admin_log}/clear"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, reply) = world
        .signed(
            &user,
            Method::POST,
            &format!("/logs/error/{log_id}/clear"),
            None,
        )
        .await;
    assert_eq!((status, reply), (200, json!({"success": true})));
    let (_, mine) = world.signed(&user, Method::GET, "/logs/error", None).await;
    assert_eq!(mine["count"], 0);
    let (_, all) = world.signed(&admin, Method::GET, "/logs/error", None).await;
    assert_eq!(all["logs"][1]["is_cleared"], true);
}

#[tokio::test]
async fn an_agent_error_event_lands_in_the_error_logs() {
    let world = HostileWorld::start("", false).await;
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let agent = SimAgent::new("i-errors", WireFormat::Args, free_port());
    let writer = StreamWriter::connect(&world.env.redis.addr())
        .await
        .expect("connecting the simulator to Redis");
    let event = Event::AgentError(AgentErrorReport {
        message: "docker daemon is gone".into(),
        traceback: Some("Traceback (most recent call last): ...".into()),
        user: None,
        context_env: json!({"kernel_id": "k-1"}),
        severity: "critical".into(),
    });
    // The manager's consumer group may not exist yet when the first event is sent (it reads
    // only what comes after it joins), so the agent reports again until one has landed.
    wait_until("the agent's error log", WAIT, || async {
        let (_, all) = world.signed(&admin, Method::GET, "/logs/error", None).await;
        if all["count"].as_i64().unwrap_or(0) >= 1 {
            return Ok(());
        }
        writer
            .clone()
            .send(&agent, &event)
            .await
            .expect("sending agent_error");
        Err(all.to_string())
    })
    .await;
    let (_, all) = world.signed(&admin, Method::GET, "/logs/error", None).await;
    let found = &all["logs"][0];
    assert_eq!(found["source"], "i-errors");
    assert_eq!(found["severity"], "critical");
    assert_eq!(found["message"], "docker daemon is gone");
    assert_eq!(found["context_lang"], "python");
    assert_eq!(found["context_env"], json!({"kernel_id": "k-1"}));
}
