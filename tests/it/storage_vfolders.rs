//! The vfolder REST routes end to end: signed requests into the façade, the real storage
//! proxy behind it, the folders checked on the vfs volume's disk and in PostgreSQL.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::api_support::{
    ADMIN_AK, ADMIN_SK, DOMAIN_ADMIN_AK, DOMAIN_ADMIN_SK, Signer, USER_AK, USER_SK, USER2_AK,
    USER2_SK, call, problem_type,
};
use crate::storage_app;
use crate::storage_support::{StorageWorld, create_body};

const ADMIN_UUID: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";

#[actix_web::test]
async fn a_folder_lives_through_create_info_files_rename_and_delete() {
    let world = StorageWorld::new().await;
    let app = storage_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);

    // list-hosts (real-manager.http #67)
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::GET, "/folders/_/hosts", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["default"], "local:volume1");
    assert_eq!(body["allowed"], json!(["local:volume1"]));
    let info = &body["volume_info"]["local:volume1"];
    assert_eq!(info["backend"], "vfs");
    assert_eq!(info["capabilities"], json!(["vfolder"]));
    assert!(info["usage"]["percentage"].as_f64().is_some(), "{info}");
    assert_eq!(info["sftp_scaling_groups"], json!([]));

    // create (#71)
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::POST, "/folders", Some(&create_body("myvf1")))
            .to_request(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(
        body,
        json!({
            "id": id, "name": "myvf1", "quota_scope_id": format!("user:{ADMIN_UUID}"),
            "host": "local:volume1", "usage_mode": "general", "permission": "rw",
            "max_size": null, "creator": "admin@lablup.com", "ownership_type": "user",
            "user": ADMIN_UUID, "group": null, "cloneable": false, "status": "ready",
        })
    );
    let dir = world.folder_dir("myvf1").await;
    assert!(dir.is_dir(), "{} is not on the volume", dir.display());

    // list
    let (status, _, body) = call(
        &app,
        admin.request(Method::GET, "/folders", None).to_request(),
    )
    .await;
    assert_eq!(status, 200);
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "myvf1");
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["is_owner"], true);
    assert_eq!(items[0]["user_email"], "admin@lablup.com");
    assert_eq!(items[0]["type"], "user");

    // info (#76)
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::GET, "/folders/myvf1", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(
        (body["num_files"].clone(), body["numFiles"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(body["group"], "None");
    assert_eq!(body["user"], ADMIN_UUID);
    assert_eq!(body["permission"], "rw");
    assert!(body["created_at"].as_str().unwrap().ends_with("+00:00"));

    // mkdir (#78) and files (#80)
    let (status, _, _) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/folders/myvf1/mkdir",
                Some(&json!({"path": "sub", "parents": false, "exist_ok": false})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, 201);
    assert!(dir.join("sub").is_dir());
    let (status, _, body) = call(
        &app,
        admin
            .request(
                Method::GET,
                "/folders/myvf1/files",
                Some(&json!({"path": "."})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["name"], "sub");
    assert_eq!(body["items"][0]["type"], "DIRECTORY");
    assert_eq!(body["items"][0]["mode"], "755");
    let legacy: Value = serde_json::from_str(body["files"].as_str().unwrap()).unwrap();
    assert_eq!(legacy[0]["mode"], "drwxr-xr-x");

    // mkdir again: the proxy's refusal reaches the client with its message
    let (status, _, body) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/folders/myvf1/mkdir",
                Some(&json!({"path": "sub", "parents": false})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], problem_type("invalid-api-params"));
    assert!(
        body["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    // rename-file, request-download (relayed token works at the proxy), delete-files
    let (status, _, _) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/folders/myvf1/rename-file",
                Some(&json!({"target_path": "sub", "new_name": "sub2"})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(dir.join("sub2").is_dir() && !dir.join("sub").exists());
    std::fs::write(dir.join("a.txt"), b"via the client api").unwrap();
    let (status, _, body) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/folders/myvf1/request-download",
                Some(&json!({"path": "a.txt"})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["url"],
        format!("{}/download", world.proxy.client_api())
    );
    let downloaded = reqwest::get(format!(
        "{}?token={}",
        body["url"].as_str().unwrap(),
        body["token"].as_str().unwrap()
    ))
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    assert_eq!(&downloaded[..], b"via the client api");
    let (status, _, body) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/folders/myvf1/request-upload",
                Some(&json!({"path": "b.bin", "size": 3})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["url"], format!("{}/upload", world.proxy.client_api()));
    let (status, _, _) = call(
        &app,
        admin
            .request(
                Method::DELETE,
                "/folders/myvf1/delete-files",
                Some(&json!({"files": ["a.txt"]})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!dir.join("a.txt").exists());

    // rename the folder (#196): same directory, new name
    let (status, _, _) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/folders/myvf1/rename",
                Some(&json!({"new_name": "myvf2"})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(world.folder_rows("myvf1").await.len(), 0);
    assert_eq!(world.folder_dir("myvf2").await, dir);

    // delete (#82), then again (#211)
    let (status, _, _) = call(
        &app,
        admin
            .request(Method::DELETE, "/folders/myvf2", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 204);
    assert!(!dir.exists(), "{} is still on the volume", dir.display());
    assert!(world.folder_rows("myvf2").await.is_empty());
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::DELETE, "/folders/myvf2", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"type": problem_type("object-not-found"), "title": "No such virtual folder.", "data": "myvf2"})
    );

    // The proxy's secret never reached a reply or a log line.
    assert!(!world.api.log.text().contains(&world.proxy.secret));
}

#[actix_web::test]
async fn names_counts_and_permissions_are_enforced() {
    let world = StorageWorld::new().await;
    let app = storage_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let user = Signer::new(USER_AK, USER_SK);
    let user2 = Signer::new(USER2_AK, USER2_SK);
    let create = |signer: &Signer, body: Value| {
        signer
            .request(Method::POST, "/folders", Some(&body))
            .to_request()
    };

    // Same name twice (#207).
    let (status, _, _) = call(&app, create(&admin, create_body("dup"))).await;
    assert_eq!(status, 201);
    let (status, _, body) = call(&app, create(&admin, create_body("dup"))).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"type": problem_type("vfolder-already-exists"),
               "title": "The virtual folder already exists with the same name.", "data": "dup"})
    );
    assert_eq!(world.folder_rows("dup").await.len(), 1);

    // Bad and reserved names.
    let (status, _, body) = call(&app, create(&admin, create_body("bad name"))).await;
    assert_eq!(status, 400);
    assert_eq!(body["msg"], "Input validation error");
    assert!(body["data"]["name"].is_string());
    let (status, _, body) = call(&app, create(&admin, create_body(".bashrc"))).await;
    assert_eq!(status, 400);
    assert_eq!(body["msg"], ".bashrc is reserved for internal operations.");

    // Another user sees nothing of the admin's folder and cannot touch it.
    let (status, _, body) = call(
        &app,
        user.request(Method::GET, "/folders", None).to_request(),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!([])));
    let (status, _, _) = call(
        &app,
        user.request(Method::GET, "/folders/dup", None).to_request(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = call(
        &app,
        user.request(Method::DELETE, "/folders/dup", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(world.folder_rows("dup").await.len(), 1);

    // The same name is free for another user.
    let (status, _, body) = call(&app, create(&user, create_body("dup"))).await;
    assert_eq!(status, 201, "{body}");

    // A host the merged permissions do not grant is refused as the original does.
    let mut body = create_body("elsewhere");
    body["host"] = json!("local:volume9");
    let (status, _, body) = call(&app, create(&user, body)).await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], problem_type("invalid-api-params"));
    assert_eq!(
        body["msg"],
        "`create-vfolder` Not allowed in vfolder host(`local:volume9`)"
    );

    // Take create-vfolder away from the policy: the same host is now denied, nothing created.
    let db = world.api.db().await;
    db.execute(
        r#"UPDATE keypair_resource_policies SET allowed_vfolder_hosts = '{"local:volume1": ["mount-in-session"]}'"#,
        &[],
    )
    .await
    .unwrap();
    let fresh = fresh_app!(world);
    let (status, _, body) = call(&fresh, create(&user2, create_body("denied"))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["msg"],
        "`create-vfolder` Not allowed in vfolder host(`local:volume1`)"
    );
    assert!(world.folder_rows("denied").await.is_empty());
    // ... and the domain's map adds it back (the maps are merged).
    db.execute(
        r#"UPDATE domains SET allowed_vfolder_hosts = '{"local:volume1": ["create-vfolder"]}' WHERE name = 'default'"#,
        &[],
    )
    .await
    .unwrap();
    let (status, _, body) = call(&fresh, create(&user2, create_body("allowed-by-domain"))).await;
    assert_eq!(status, 201, "{body}");

    // max_vfolder_count.
    db.execute(
        "UPDATE keypair_resource_policies SET max_vfolder_count = 1",
        &[],
    )
    .await
    .unwrap();
    let fresh = fresh_app!(world);
    let (status, _, body) = call(&fresh, create(&user2, create_body("one-too-many"))).await;
    assert_eq!(status, 400);
    assert_eq!(body["msg"], "You cannot create more vfolders.");
    assert!(world.folder_rows("one-too-many").await.is_empty());

    // Group folders: a plain user may not create one (403), a domain admin may.
    let mut group_body = create_body("team");
    group_body["group"] = json!("default");
    let (status, _, body) = call(&fresh, create(&user, group_body.clone())).await;
    assert_eq!(status, 403);
    assert_eq!(body["type"], problem_type("generic-forbidden"));
    let domain_admin = Signer::new(DOMAIN_ADMIN_AK, DOMAIN_ADMIN_SK);
    db.execute(
        "UPDATE keypair_resource_policies SET max_vfolder_count = 0",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        r#"UPDATE keypair_resource_policies SET allowed_vfolder_hosts = '{"local:volume1": ["create-vfolder", "delete-vfolder", "mount-in-session"]}'"#,
        &[],
    )
    .await
    .unwrap();
    let fresh = fresh_app!(world);
    let (status, _, body) = call(&fresh, create(&domain_admin, group_body)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["ownership_type"], "group");
    assert_eq!(
        body["quota_scope_id"],
        "project:2de2b969-1d04-48a6-af16-0bc8adb3c831"
    );
    assert!(world.folder_dir("team").await.is_dir());
    // Members of the group see it in their list.
    let (status, _, body) = call(
        &fresh,
        user.request(Method::GET, "/folders", None).to_request(),
    )
    .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"team"), "{names:?}");
    let team = body
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "team")
        .unwrap();
    assert_eq!(
        (team["is_owner"].clone(), team["group_name"].clone()),
        (json!(false), json!("default"))
    );

    // A non-owner cannot delete a group folder; its folder stays.
    let (status, _, body) = call(
        &fresh,
        user.request(Method::DELETE, "/folders/team", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["msg"],
        "Cannot delete the vfolder that is not owned by myself."
    );
    assert!(world.folder_dir("team").await.is_dir());

    // allowed-types and all-hosts.
    let (status, _, body) = call(
        &fresh,
        user.request(Method::GET, "/folders/_/allowed-types", None)
            .to_request(),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!(["group", "user"])));
    let (status, _, _) = call(
        &fresh,
        user.request(Method::GET, "/folders/_/all-hosts", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, body) = call(
        &fresh,
        admin
            .request(Method::GET, "/folders/_/all_hosts", None)
            .to_request(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body),
        (
            200,
            json!({"default": "local:volume1", "allowed": ["local:volume1"]})
        )
    );
}

/// An app over a new façade state, so that policy changes are seen at once (the
/// credential cache of the first state holds the old policy for a few seconds).
macro_rules! fresh_app {
    ($world:expr) => {{
        let state = crate::api_support::app_state(&$world.api.env, $world.api.log.logger()).await;
        actix_web::test::init_service(
            actix_web::App::new()
                .app_data(actix_web::web::Data::new(state))
                .app_data(actix_web::web::Data::new($world.broker.clone()))
                .configure(bai_actors::facade::configure),
        )
        .await
    }};
}
use fresh_app;

#[actix_web::test]
async fn a_stopped_proxy_leaves_nothing_half_done() {
    let mut world = StorageWorld::new().await;
    let app = storage_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, _, _) = call(
        &app,
        admin
            .request(Method::POST, "/folders", Some(&create_body("kept")))
            .to_request(),
    )
    .await;
    assert_eq!(status, 201);
    let dir = world.folder_dir("kept").await;

    world.proxy.stop();

    // Create: 503 naming the proxy; no row, no directory.
    let before = world.folders_on_disk();
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::POST, "/folders", Some(&create_body("lost")))
            .to_request(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], problem_type("service-unavailable"));
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .contains("storage proxy local"),
        "{body}"
    );
    assert!(world.folder_rows("lost").await.is_empty());
    assert_eq!(world.folders_on_disk(), before);

    // Delete: 503; the row is still there and ready, the directory too.
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::DELETE, "/folders/kept", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let rows = world.folder_rows("kept").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2, "ready");
    assert!(dir.is_dir());

    // Info and hosts say the same, clearly.
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::GET, "/folders/kept", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::GET, "/folders/_/hosts", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 503, "{body}");

    // Back up: the delete goes through and both sides agree.
    world.proxy.restart();
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::DELETE, "/folders/kept", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert!(!dir.exists());
    assert!(world.folder_rows("kept").await.is_empty());
    assert!(!world.api.log.text().contains(&world.proxy.secret));
}

#[actix_web::test]
async fn a_delete_interrupted_by_a_crash_is_finished_by_the_sweep() {
    use bai_actors::storage::recovery::{STALE_AFTER, SweepOutcome, sweep_interrupted_deletions};

    let world = StorageWorld::new().await;
    let app = storage_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    for name in ["crashed", "in-flight"] {
        let (status, _, _) = call(
            &app,
            admin
                .request(Method::POST, "/folders", Some(&create_body(name)))
                .to_request(),
        )
        .await;
        assert_eq!(status, 201);
    }
    let crashed_dir = world.folder_dir("crashed").await;
    let in_flight_dir = world.folder_dir("in-flight").await;
    // A worker died after marking `crashed` an hour ago; `in-flight` is being deleted now.
    let db = world.api.db().await;
    db.execute(
        "UPDATE vfolders SET status = 'deleting', status_changed = now() - interval '1 hour' WHERE name = 'crashed'",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE vfolders SET status = 'deleting', status_changed = now() WHERE name = 'in-flight'",
        &[],
    )
    .await
    .unwrap();
    // Stuck: it can be neither deleted again nor changed.
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::DELETE, "/folders/crashed", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], problem_type("vfolder-filter-status-failed"));

    let outcome = sweep_interrupted_deletions(
        &world.api.state.db,
        &world.broker,
        STALE_AFTER,
        &world.api.log.logger(),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        SweepOutcome {
            finished: 1,
            failed: 0
        }
    );
    assert!(world.folder_rows("crashed").await.is_empty());
    assert!(!crashed_dir.exists());
    assert_eq!(world.folder_rows("in-flight").await.len(), 1);
    assert!(in_flight_dir.is_dir());
}

#[actix_web::test]
async fn the_sweeper_sweeps_and_ends_when_the_worker_stops() {
    use bai_actors::storage::recovery::spawn_sweeper;

    let world = StorageWorld::new().await;
    let app = storage_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, _, _) = call(
        &app,
        admin
            .request(Method::POST, "/folders", Some(&create_body("crashed")))
            .to_request(),
    )
    .await;
    assert_eq!(status, 201);
    let crashed_dir = world.folder_dir("crashed").await;
    let db = world.api.db().await;
    db.execute(
        "UPDATE vfolders SET status = 'deleting', status_changed = now() - interval '1 hour' WHERE name = 'crashed'",
        &[],
    )
    .await
    .unwrap();
    let spawn = |stopping| {
        spawn_sweeper(
            world.api.state.db.clone(),
            world.broker.clone(),
            stopping,
            world.api.log.logger(),
        )
    };

    // Stopped before it ever ran: it ends without sweeping.
    let stopped_early = world.api.state.pipeline.stopping.child_token();
    let sweeper = spawn(stopped_early.clone());
    stopped_early.cancel();
    sweeper.await.unwrap();
    assert_eq!(world.folder_rows("crashed").await.len(), 1);

    // Started with the worker's token: its first sweep finishes the folder at once, then it
    // waits a whole interval for the next one, and the worker's stop ends that wait.
    let stopping = world.api.state.pipeline.stopping.clone();
    let sweeper = spawn(stopping.clone());
    while !world.folder_rows("crashed").await.is_empty() {}
    assert!(!crashed_dir.exists());
    stopping.cancel();
    sweeper.await.unwrap();
}

#[actix_web::test]
async fn a_task_log_is_read_from_the_callers_logs_folder() {
    let world = StorageWorld::new().await;
    let app = storage_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let user2 = Signer::new(USER2_AK, USER2_SK);
    let kernel_id = uuid::Uuid::new_v4();
    let path = format!("/session/_/logs?kernel_id={kernel_id}");

    // No `.logs` folder yet: named, 404.
    let (status, _, body) = call(&app, user.request(Method::GET, &path, None).to_request()).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["msg"].as_str().unwrap_or("").contains(".logs"),
        "{body}"
    );

    let (status, _, body) = call(
        &app,
        user.request(Method::POST, "/folders", Some(&create_body(".logs")))
            .to_request(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // The agent writes the log as task/ab/cd/<rest>.log inside the folder.
    let hex = kernel_id.simple().to_string();
    let dir = world
        .folder_dir(".logs")
        .await
        .join("task")
        .join(&hex[..2])
        .join(&hex[2..4]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{}.log", &hex[4..])), "step 1\nstep 2\n").unwrap();

    let response =
        actix_web::test::call_service(&app, user.request(Method::GET, &path, None).to_request())
            .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/plain"
    );
    let text = actix_web::test::read_body(response).await;
    assert_eq!(&text[..], b"step 1\nstep 2\n");

    // Someone else's `.logs` folder is not theirs to read.
    let (status, _, body) = call(&app, user2.request(Method::GET, &path, None).to_request()).await;
    assert_eq!(status, 404, "{body}");
    // The id is required and must be a UUID.
    let (status, _, body) = call(
        &app,
        user.request(Method::GET, "/session/_/logs?kernel_id=nope", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
