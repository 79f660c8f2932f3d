//! `POST /folders/{name}/clone` and `GET|POST /folders/_/quota` against the real storage
//! proxy: a clone copies the files on the volume into a new folder of the caller's, only from
//! a cloneable source; the legacy per-folder quota is passed to the proxy, which (23.09)
//! refuses it, and that refusal reaches the caller as a problem, not a 500.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::api_support::{Signer, USER_AK, USER_SK, USER2_AK, USER2_SK, call, problem_type};
use crate::storage_app;
use crate::storage_support::{StorageWorld, create_body};

fn cloneable_body(name: &str) -> Value {
    let mut body = create_body(name);
    body["cloneable"] = json!(true);
    body
}

#[actix_web::test]
async fn a_clone_copies_a_cloneable_folder_into_a_new_folder_of_the_caller() {
    let world = StorageWorld::new().await;
    let app = storage_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let user2 = Signer::new(USER2_AK, USER2_SK);
    for body in [cloneable_body("orig"), create_body("locked")] {
        let (status, _, reply) = call(
            &app,
            user.request(Method::POST, "/folders", Some(&body))
                .to_request(),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
    }
    let source_dir = world.folder_dir("orig").await;
    std::fs::write(source_dir.join("data.txt"), "hello").unwrap();

    let clone_body = json!({"target_name": "copy", "target_host": "local:volume1",
        "usage_mode": "general", "permission": "rw", "cloneable": false});
    let (status, _, body) = call(
        &app,
        user.request(Method::POST, "/folders/orig/clone", Some(&clone_body))
            .to_request(),
    )
    .await;
    assert_eq!(status, 201, "{body}\n{}", world.proxy.log());
    assert_eq!(body["name"], "copy");
    assert_eq!(body["host"], "local:volume1");
    assert_eq!(body["ownership_type"], "user");
    assert_eq!(body["cloneable"], false);
    assert!(body.get("bgtask_id").is_none(), "{body}");
    let copy_dir = world.folder_dir("copy").await;
    assert_eq!(
        std::fs::read_to_string(copy_dir.join("data.txt")).unwrap(),
        "hello"
    );
    let copy_rows = world.folder_rows("copy").await;
    assert_eq!(copy_rows.len(), 1);
    assert_eq!(copy_rows[0].0.simple().to_string(), body["id"]);
    assert_eq!(copy_rows[0].2, "ready");
    assert_eq!(world.folder_rows("orig").await[0].2, "ready");

    // The name is taken now.
    let (status, _, body) = call(
        &app,
        user.request(Method::POST, "/folders/orig/clone", Some(&clone_body))
            .to_request(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], problem_type("vfolder-already-exists"));

    // A folder that is not cloneable is refused, and so is one the caller cannot reach.
    let other = json!({"target_name": "copy2"});
    let (status, _, body) = call(
        &app,
        user.request(Method::POST, "/folders/locked/clone", Some(&other))
            .to_request(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["msg"].as_str().unwrap().contains("not permitted"),
        "{body}"
    );
    let (status, _, _) = call(
        &app,
        user2
            .request(Method::POST, "/folders/orig/clone", Some(&other))
            .to_request(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(world.folder_rows("copy2").await.is_empty());
}

#[actix_web::test]
async fn the_legacy_folder_quota_reaches_the_proxy_for_reachable_folders_only() {
    let world = StorageWorld::new().await;
    let app = storage_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let user2 = Signer::new(USER2_AK, USER2_SK);
    let (status, _, body) = call(
        &app,
        user.request(Method::POST, "/folders", Some(&create_body("sized")))
            .to_request(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let query = format!("/folders/_/quota?folder_host=local:volume1&id={id}");

    // The 23.09 proxy answers that the per-folder quota API is deprecated.
    let (status, _, body) = call(&app, user.request(Method::GET, &query, None).to_request()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["type"],
        problem_type("vfolder-operation-failed"),
        "{body}"
    );
    assert!(body["title"].as_str().is_some(), "{body}");

    // Another user does not see the folder at all; a folder that does not exist is 404 too.
    let (status, _, _) = call(&app, user2.request(Method::GET, &query, None).to_request()).await;
    assert_eq!(status, 404);
    let missing = format!(
        "/folders/_/quota?folder_host=local:volume1&id={}",
        uuid::Uuid::new_v4()
    );
    let (status, _, _) = call(&app, user.request(Method::GET, &missing, None).to_request()).await;
    assert_eq!(status, 404);

    // Setting it goes to the proxy as well and changes nothing when the proxy refuses.
    let update =
        json!({"folder_host": "local:volume1", "id": id, "input": {"size_bytes": 1048576}});
    let (status, _, body) = call(
        &app,
        user.request(Method::POST, "/folders/_/quota", Some(&update))
            .to_request(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let db = world.api.db().await;
    let max_size: Option<i32> = db
        .query_one("SELECT max_size FROM vfolders WHERE name = 'sized'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(max_size, None);
    let (status, _, body) = call(
        &app,
        user.request(
            Method::POST,
            "/folders/_/quota",
            Some(&json!({"folder_host": "local:volume1", "id": id, "input": {}})),
        )
        .to_request(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], problem_type("invalid-api-params"), "{body}");
}
