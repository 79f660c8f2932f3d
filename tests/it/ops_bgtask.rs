//! Background tasks on the real stack: `rescan_images` answers a task id whose progress
//! `GET /events/background-task` streams (`bgtask_updated` figures, then `bgtask_done` and
//! `server_close`), a finished task reports its end at once, and the official CLI's
//! `admin image rescan` (which follows the task) succeeds against a real registry; a task whose
//! process died ends its stream as failed.

use std::process::{Command, Stdio};

use bai_testkit::TestEnv;
use bai_testkit::image_push::{ImagePusher, ManifestFormat, PushAuth, TestImage};
use bai_testkit::registry::RegistryServer;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::api_client_e2e::client_bin_dir;
use crate::api_support::{ADMIN_AK, ADMIN_SK, Signer};
use crate::hostile_support::HostileWorld;
use crate::registry_common::{configure_registry, image_rows};

const RESCAN: &str =
    "mutation($registry: String) { rescan_images(registry: $registry) { ok msg task_id } }";

/// A registry with `tags` kernel images of `testing/python`, configured in etcd.
async fn registry_with_images(env: &TestEnv, tags: &[&str]) -> RegistryServer {
    let registry = RegistryServer::start();
    let pusher = ImagePusher::new(&registry.url(), PushAuth::None);
    for tag in tags {
        pusher
            .push_image(
                "testing/python",
                tag,
                &TestImage::kernel("amd64"),
                ManifestFormat::Docker,
            )
            .await;
    }
    configure_registry(
        env,
        &registry.name(),
        &registry.url(),
        &[("type", "docker"), ("project", "testing")],
    )
    .await;
    registry
}

/// The `(event, data)` pairs of a server-sent event text.
fn parse_events(text: &str) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    for block in text.split("\r\n\r\n") {
        let mut name = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(value) = line.strip_prefix("event: ") {
                name = Some(value.to_owned());
            } else if let Some(value) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(value).expect("JSON event data"));
            }
        }
        if let (Some(name), Some(data)) = (name, data) {
            events.push((name, data));
        }
    }
    events
}

fn signal(pid: u32, signal: libc::c_int) {
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

async fn start_rescan(world: &HostileWorld, registry: &str) -> String {
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, body) = world
        .signed(
            &admin,
            reqwest::Method::POST,
            "/admin/gql",
            Some(&json!({"query": RESCAN, "variables": {"registry": registry}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["rescan_images"]["ok"], true, "{body}");
    body["data"]["rescan_images"]["task_id"]
        .as_str()
        .expect("a task id")
        .to_owned()
}

/// Opens the task's event stream; answers the response once its head has arrived.
async fn open_stream(world: &HostileWorld, task_id: &str) -> reqwest::Response {
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let path = format!("/events/background-task?task_id={task_id}");
    let mut request = world.http.get(world.url(&path));
    for (name, value) in admin.headers("GET", &path, "text/plain", chrono::Utc::now()) {
        request = request.header(name, value);
    }
    request.send().await.expect("opening the event stream")
}

async fn read_to_end(response: reqwest::Response) -> String {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(
            &chunk.expect("reading the stream"),
        ));
    }
    text
}

#[tokio::test]
async fn a_rescan_streams_its_progress_and_then_its_end() {
    let world = HostileWorld::start("", false).await;
    let registry =
        registry_with_images(&world.env, &["3.9-ubuntu20.04", "3.10-ubuntu22.04", "3.11"]).await;

    // The registry is paused, so the rescan is still listing when the stream opens.
    signal(registry.pid(), libc::SIGSTOP);
    let task_id = start_rescan(&world, &registry.name()).await;
    let response = open_stream(&world, &task_id).await;
    signal(registry.pid(), libc::SIGCONT);
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let events = parse_events(&read_to_end(response).await);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        &names[names.len() - 2..],
        ["bgtask_done", "server_close"],
        "{events:?}"
    );
    let updates: Vec<&Value> = events
        .iter()
        .filter(|(name, _)| name == "bgtask_updated")
        .map(|(_, data)| data)
        .collect();
    assert!(!updates.is_empty(), "{events:?}");
    for update in &updates {
        assert_eq!(update["task_id"], task_id.as_str());
        assert!(update["message"].is_string());
    }
    let last = updates[updates.len() - 1];
    assert_eq!(last["current_progress"], 3, "{events:?}");
    assert_eq!(last["total_progress"], 3, "{events:?}");
    assert_eq!(
        events[events.len() - 2].1,
        json!({"task_id": task_id, "message": ""})
    );
    assert_eq!(image_rows(&world.env).await.len(), 3);

    // A finished task answers its end at once, with the figures as stored.
    let events = parse_events(&read_to_end(open_stream(&world, &task_id).await).await);
    assert_eq!(
        events,
        vec![
            (
                "bgtask_done".to_owned(),
                json!({"task_id": task_id, "status": "done", "current_progress": "3",
                       "total_progress": "3", "message": ""})
            ),
            ("server_close".to_owned(), json!({})),
        ]
    );

    // An unknown task is not found.
    let unknown = open_stream(&world, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn a_rescan_of_an_unreachable_registry_fails_with_the_reason() {
    let world = HostileWorld::start("", false).await;
    let name = "127.0.0.1:9";
    configure_registry(
        &world.env,
        name,
        "http://127.0.0.1:9",
        &[("type", "docker"), ("project", "testing")],
    )
    .await;
    let task_id = start_rescan(&world, name).await;
    let events = parse_events(&read_to_end(open_stream(&world, &task_id).await).await);
    let (last_name, last) = &events[events.len() - 2];
    assert_eq!(last_name, "bgtask_failed", "{events:?}");
    assert!(
        last["message"].as_str().unwrap().contains("127.0.0.1:9"),
        "{last}"
    );
}

#[tokio::test]
async fn a_task_whose_process_died_ends_its_stream_as_failed() {
    let world = HostileWorld::start("", false).await;
    // A rescan whose worker was killed: `started`, last renewed two minutes ago.
    let task_id = uuid::Uuid::new_v4().to_string();
    let two_minutes_ago = chrono::Utc::now().timestamp() as f64 - 120.0;
    let mut redis = redis::Client::open(world.env.redis.url(4))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("bgtask.{task_id}"))
        .arg(&[
            ("status", "started".to_owned()),
            ("current", "1".to_owned()),
            ("total", "3".to_owned()),
            ("msg", "Updated a:1".to_owned()),
            ("started_at", two_minutes_ago.to_string()),
            ("last_update", two_minutes_ago.to_string()),
            ("alive_at", two_minutes_ago.to_string()),
        ])
        .query_async(&mut redis)
        .await
        .unwrap();
    let events = parse_events(&read_to_end(open_stream(&world, &task_id).await).await);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["bgtask_failed", "server_close"], "{events:?}");
    let message = events[0].1["message"].as_str().unwrap_or_default();
    assert!(message.contains("stopped reporting"), "{message}");
}

#[tokio::test]
async fn the_official_cli_rescans_and_follows_the_task() {
    let world = HostileWorld::start("", false).await;
    let registry = registry_with_images(&world.env, &["3.9-ubuntu20.04", "3.11"]).await;
    let home = world.env.path("client-home");
    std::fs::create_dir_all(&home).unwrap();
    let output = Command::new(client_bin_dir().join("backend.ai"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env(
            "BACKEND_ENDPOINT",
            format!("http://127.0.0.1:{}", world.env.service_port),
        )
        .env("BACKEND_ENDPOINT_TYPE", "api")
        .env("BACKEND_ACCESS_KEY", ADMIN_AK)
        .env("BACKEND_SECRET_KEY", ADMIN_SK)
        .args(["admin", "image", "rescan", "--registry", &registry.name()])
        .stdin(Stdio::null())
        .output()
        .expect("running the backend.ai CLI");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // The CLI reports on stderr.
    let text = format!("{stdout}{stderr}");
    assert!(
        text.contains("Started updating the image metadata"),
        "{text}"
    );
    assert!(text.contains("Finished registry scanning."), "{text}");
    assert!(!text.contains("Error occurred"), "{text}");
    let rows = image_rows(&world.env).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|row| row.registry == registry.name()),
        "{rows:?}"
    );
}
