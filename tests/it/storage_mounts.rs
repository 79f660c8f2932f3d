//! Session mounts resolved through the real storage proxy: requested folders, subpaths,
//! mount_map targets, automatic dot-prefixed folders and the mount-in-session permission.

use actix_web::http::Method;
use bai_actors::facade::Problem;
use bai_actors::storage::mounts::{MountError, MountScope, resolve_session_mounts};
use bai_schema::enums::UserRole;
use serde_json::{Map, Value, json};

use crate::api_support::{ADMIN_AK, ADMIN_SK, Signer, call};
use crate::storage_app;
use crate::storage_support::{StorageWorld, create_body};

const ADMIN_UUID: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";
const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";

fn all_permissions() -> Value {
    json!({"local:volume1": ["create-vfolder", "modify-vfolder", "delete-vfolder",
        "mount-in-session", "upload-file", "download-file"]})
}

#[actix_web::test]
async fn requested_and_dot_folders_resolve_to_host_paths() {
    let world = StorageWorld::new().await;
    let app = storage_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    for name in ["data", "models", ".config-x"] {
        let (status, _, body) = call(
            &app,
            admin
                .request(Method::POST, "/folders", Some(&create_body(name)))
                .to_request(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _, _) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/folders/data/mkdir",
                Some(&json!({"path": "sub"})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, 201);

    let db = world.api.state.db.get().await.unwrap();
    let view = world.broker.current();
    let policy = all_permissions();
    let scope = MountScope {
        user: ADMIN_UUID.parse().unwrap(),
        role: UserRole::Superadmin,
        domain_name: "default",
        group: Some(DEFAULT_GROUP.parse().unwrap()),
        policy_allowed_hosts: &policy,
        policy_name: "default",
    };
    let map: Map<String, Value> = serde_json::from_value(json!({"models": "/mnt/models"})).unwrap();
    let mounts = resolve_session_mounts(
        &db,
        &view,
        &scope,
        &["data/sub".to_owned(), "models".to_owned()],
        &map,
    )
    .await
    .unwrap();
    let names: Vec<&str> = mounts.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["data", "models", ".config-x"]);
    let data_dir = world.folder_dir("data").await;
    assert_eq!(mounts[0]["vfsubpath"], "sub");
    assert_eq!(
        std::path::Path::new(mounts[0]["host_path"].as_str().unwrap()),
        data_dir.canonicalize().unwrap().join("sub")
    );
    assert_eq!(mounts[0]["kernel_path"], "/home/work/data");
    assert_eq!(mounts[0]["mount_perm"], "rw");
    assert_eq!(mounts[0]["usage_mode"], "general");
    let (scope_id, folder) = mounts[0]["vfid"].as_str().unwrap().split_once('/').unwrap();
    assert_eq!(scope_id, format!("user:{ADMIN_UUID}"));
    assert_eq!(folder.len(), 32);
    assert_eq!(mounts[1]["kernel_path"], "/mnt/models");
    assert_eq!(mounts[2]["kernel_path"], "/home/work/.config-x");
    for mount in &mounts {
        let keys: Vec<&String> = mount.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            vec![
                "name",
                "vfid",
                "vfsubpath",
                "host_path",
                "kernel_path",
                "mount_perm",
                "usage_mode"
            ]
        );
    }

    // Unknown folders, and a policy without mount-in-session.
    let err = resolve_session_mounts(&db, &view, &scope, &["nope".to_owned()], &Map::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, MountError::NotFound(ref m) if m == "VFolder nope is not found or accessible."),
        "{err:?}"
    );
    assert_eq!(Problem::from(err).status_code(), 404);
    let no_mount = json!({"local:volume1": ["create-vfolder"]});
    let denied_scope = MountScope {
        policy_allowed_hosts: &no_mount,
        ..scope.clone()
    };
    let err = resolve_session_mounts(&db, &view, &denied_scope, &["data".to_owned()], &Map::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`mount-in-session` Not allowed in vfolder host(`local:volume1`)"
    );
    assert_eq!(Problem::from(err).status_code(), 400);

    // A proxy that is down is a clear 503.
    let mut world = world;
    world.proxy.stop();
    let err = resolve_session_mounts(&db, &view, &scope, &["data".to_owned()], &Map::new())
        .await
        .unwrap_err();
    assert_eq!(Problem::from(err).status_code(), 503);
}
