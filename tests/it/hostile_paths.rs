//! Issue 13.3 against a running manager and the real storage proxy: a path inside a vfolder
//! can never leave it (no `..`, no absolute path, no NUL or backslash), for every file route,
//! while normal nested paths keep working; `mount_map` targets with `..` are refused at
//! `POST /session`.

use std::path::{Component, Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};

use crate::api_support::{Signer, USER_AK, USER_SK, USER2_AK, USER2_SK};
use crate::hostile_support::{HostileWorld, assert_invalid_param};
use crate::storage_support::create_body;

/// The folder directory of `name` on the proxy's volume (from its row).
async fn folder_dir(world: &HostileWorld, name: &str) -> PathBuf {
    let db = world.env.db.connect().await;
    let row = db
        .query_one(
            "SELECT id, quota_scope_id FROM vfolders WHERE name = $1",
            &[&name],
        )
        .await
        .unwrap();
    let id: uuid::Uuid = row.try_get(0).unwrap();
    let scope: String = row.try_get(1).unwrap();
    let owner: uuid::Uuid = scope.split_once(':').unwrap().1.parse().unwrap();
    world.proxy.as_ref().unwrap().folder_path(owner, id)
}

/// `to` relative to `from`, with `..` steps: what an attacker would write.
fn relative(from: &Path, to: &Path) -> String {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

#[tokio::test]
async fn no_file_route_reaches_outside_the_folder() {
    let world = HostileWorld::start("", true).await;
    let alice = Signer::new(USER_AK, USER_SK);
    let bob = Signer::new(USER2_AK, USER2_SK);
    for (signer, name) in [(&alice, "alice-private"), (&bob, "bobs")] {
        let reply = world
            .signed(signer, Method::POST, "/folders", Some(&create_body(name)))
            .await;
        assert_eq!(reply.0, 201, "{}", reply.1);
    }
    let alice_dir = folder_dir(&world, "alice-private").await;
    let bob_dir = folder_dir(&world, "bobs").await;
    std::fs::write(alice_dir.join("secret.txt"), b"alice's secret").unwrap();
    std::fs::write(bob_dir.join("mine.txt"), b"bob's file").unwrap();
    let to_secret = format!("{}/secret.txt", relative(&bob_dir, &alice_dir));
    assert!(to_secret.starts_with("../../"), "{to_secret}");
    let bob_call = |path: &'static str, method: Method, body: Value| {
        let world = &world;
        let bob = &bob;
        async move { world.signed(bob, method, path, Some(&body)).await }
    };

    // Bob's download token for Alice's file through his own folder: refused, no token.
    let reply = bob_call(
        "/folders/bobs/request-download",
        Method::POST,
        json!({"path": to_secret}),
    )
    .await;
    let reason = assert_invalid_param(&reply, "path");
    assert!(reason.contains(".."), "{reason}");
    assert!(reply.1.get("token").is_none());
    // The legacy key `file` is checked the same way, and so are the original's other shapes.
    for (key, path) in [
        ("file", to_secret.as_str()),
        ("path", "/etc/hostname"),
        ("path", "sub/../../../../../../etc/hostname"),
        ("path", "..\\..\\secret.txt"),
        ("path", "mine.txt\u{0}"),
    ] {
        let reply = bob_call(
            "/folders/bobs/request-download",
            Method::POST,
            json!({ key: path }),
        )
        .await;
        assert_invalid_param(&reply, key);
    }
    // Alice's folder itself stays out of Bob's reach.
    let reply = bob_call(
        "/folders/alice-private/request-download",
        Method::POST,
        json!({"path": "secret.txt"}),
    )
    .await;
    assert_eq!(reply.0, 404, "{}", reply.1);

    // Writes and listings with traversal: refused, nothing appears outside the folder.
    let outside = bob_dir.join("../../escaped");
    let cases: Vec<(&str, Method, Value, &str)> = vec![
        (
            "/folders/bobs/request-upload",
            Method::POST,
            json!({"path": "../../escaped", "size": 3}),
            "path",
        ),
        (
            "/folders/bobs/request-upload",
            Method::POST,
            json!({"path": "/tmp/escaped", "size": 3}),
            "path",
        ),
        (
            "/folders/bobs/mkdir",
            Method::POST,
            json!({"path": "../../escaped", "parents": true}),
            "path",
        ),
        (
            "/folders/bobs/rename-file",
            Method::POST,
            json!({"target_path": "mine.txt", "new_name": "../../escaped"}),
            "new_name",
        ),
        (
            "/folders/bobs/rename-file",
            Method::POST,
            json!({"target_path": "../..", "new_name": "escaped"}),
            "target_path",
        ),
        (
            "/folders/bobs/move-file",
            Method::POST,
            json!({"src": "mine.txt", "dst": "../../escaped"}),
            "dst",
        ),
        (
            "/folders/bobs/move-file",
            Method::POST,
            json!({"src": to_secret.clone(), "dst": "stolen.txt"}),
            "src",
        ),
        (
            "/folders/bobs/delete-files",
            Method::DELETE,
            json!({"files": ["mine.txt", to_secret.clone()], "recursive": true}),
            "files",
        ),
        (
            "/folders/bobs/delete-files",
            Method::DELETE,
            json!({"files": ["."], "recursive": true}),
            "files",
        ),
        (
            "/folders/bobs/files",
            Method::GET,
            json!({"path": "../.."}),
            "path",
        ),
        (
            "/folders/bobs/files",
            Method::GET,
            json!({"path": "/etc"}),
            "path",
        ),
    ];
    for (path, method, body, field) in cases {
        let reply = bob_call(path, method, body.clone()).await;
        let reason = assert_invalid_param(&reply, field);
        assert!(!reason.is_empty(), "{path} {body}");
    }
    assert!(!outside.exists(), "{} was created", outside.display());
    assert!(!Path::new("/tmp/escaped").exists());
    assert!(!bob_dir.join("stolen.txt").exists());
    assert_eq!(
        std::fs::read(alice_dir.join("secret.txt")).unwrap(),
        b"alice's secret"
    );
    assert_eq!(
        std::fs::read(bob_dir.join("mine.txt")).unwrap(),
        b"bob's file"
    );

    // Normal nested paths keep working, normalised.
    let reply = bob_call(
        "/folders/bobs/mkdir",
        Method::POST,
        json!({"path": "a//b/", "parents": true}),
    )
    .await;
    assert_eq!(reply.0, 201, "{}", reply.1);
    assert!(bob_dir.join("a/b").is_dir());
    std::fs::write(bob_dir.join("a/b/c.txt"), b"nested").unwrap();
    let reply = bob_call(
        "/folders/bobs/request-download",
        Method::POST,
        json!({"path": "a/b/./c.txt"}),
    )
    .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    let downloaded = world
        .http
        .get(format!(
            "{}?token={}",
            reply.1["url"].as_str().unwrap(),
            reply.1["token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&downloaded[..], b"nested");
    let reply = bob_call("/folders/bobs/files", Method::GET, json!({"path": "./a/b"})).await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert_eq!(reply.1["items"][0]["name"], "c.txt");
    let reply = bob_call(
        "/folders/bobs/request-upload",
        Method::POST,
        json!({"path": "a/./b/up.bin", "size": 3}),
    )
    .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    let reply = bob_call(
        "/folders/bobs/rename-file",
        Method::POST,
        json!({"target_path": "a/b/c.txt", "new_name": "d.txt"}),
    )
    .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert!(bob_dir.join("a/b/d.txt").is_file());
    let reply = bob_call(
        "/folders/bobs/delete-files",
        Method::DELETE,
        json!({"files": ["a/b/d.txt"]}),
    )
    .await;
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert!(!bob_dir.join("a/b/d.txt").exists());
}

#[tokio::test]
async fn mount_subpaths_with_parent_components_are_refused_at_session_create() {
    let world = HostileWorld::start("", true).await;
    crate::api_session::insert_test_image_into(&world.env, true).await;
    let user = Signer::new(USER_AK, USER_SK);
    let reply = world
        .signed(&user, Method::POST, "/folders", Some(&create_body("bobs")))
        .await;
    assert_eq!(reply.0, 201, "{}", reply.1);
    std::fs::create_dir_all(folder_dir(&world, "bobs").await.join("a/b")).unwrap();
    for mount in [
        "bobs/../../etc",
        "bobs/a/../../../root",
        "bobs//etc",
        "../bobs",
    ] {
        let mut body = crate::api_session::create_body("hostile-subpath");
        body["config"]["mounts"] = json!([mount]);
        let (status, reply) = world
            .signed(&user, Method::POST, "/session", Some(&body))
            .await;
        assert_eq!(status, 400, "{mount}: {reply}");
        assert_eq!(
            reply["type"], "https://api.backend.ai/probs/invalid-api-params",
            "{mount}: {reply}"
        );
    }
    let rows = world
        .env
        .db
        .connect()
        .await
        .query("SELECT 1 FROM sessions WHERE name = 'hostile-subpath'", &[])
        .await
        .unwrap();
    assert!(rows.is_empty(), "a refused session was stored");
    // A nested subpath with `.` segments still mounts, normalised.
    let mut body = crate::api_session::create_body("nested-subpath");
    body["config"]["mounts"] = json!(["bobs/a/./b"]);
    let (status, reply) = world
        .signed(&user, Method::POST, "/session", Some(&body))
        .await;
    assert_eq!(status, 201, "{reply}");
    let row = world
        .env
        .db
        .connect()
        .await
        .query_one(
            "SELECT k.vfolder_mounts FROM kernels k JOIN sessions s ON s.id = k.session_id
             WHERE s.name = 'nested-subpath'",
            &[],
        )
        .await
        .unwrap();
    let mounts: Value = row.try_get(0).unwrap();
    assert_eq!(mounts[0]["vfsubpath"], "a/b", "{mounts}");
}

#[tokio::test]
async fn mount_map_targets_and_sources_with_parent_components_are_refused_at_session_create() {
    let world = HostileWorld::start("", false).await;
    let user = Signer::new(USER_AK, USER_SK);
    for (mount_map, what) in [
        (json!({"data": "/home/work/../../root"}), "the target"),
        (json!({"data": "../../etc"}), "the target"),
        (json!({"data/../../x": "x"}), "the source"),
    ] {
        let mut body = session_body("hostile-mounts");
        body["config"]["mount_map"] = mount_map.clone();
        let reply = world
            .signed(&user, Method::POST, "/session", Some(&body))
            .await;
        let reason = assert_invalid_param(&reply, "mount_map");
        assert!(
            reason.contains(what) && reason.contains(".."),
            "{mount_map}: {reason}"
        );
    }
}

/// The body the official client sends for `POST /session` (captures/real-manager.http #38).
pub fn session_body(name: &str) -> Value {
    json!({
        "tag": null, "name": name,
        "config": {"mounts": [], "environ": {}, "resources": {"cpu": "1", "mem": "512m"},
                   "resource_opts": {}, "scalingGroup": null, "mount_map": {}, "preopen_ports": null},
        "dependencies": [], "callback_url": null, "architecture": "x86_64", "clusterSize": 1,
        "clusterMode": "single-node", "starts_at": null, "bootstrap_script": null,
        "owner_access_key": null, "domain": "default", "group": "default", "type": "interactive",
        "enqueueOnly": true, "maxWaitSeconds": 0, "reuseIfExists": true, "startupCommand": null,
        "image": "127.0.0.1:25000/testing/python:3.9-ubuntu20.04"
    })
}
