//! GraphQL `modify_agent`, `modify_image`, `clear_images` and `vfolder_host_permissions`
//! against a real database and the registry-sync actor, as the Web UI's Resources and
//! Environments pages use them.

use actix::Actor;
use bai_actors::etcd::{EtcdSettings, EtcdStore};
use bai_actors::registry_sync::{RegistrySync, ScanOptions};
use serde_json::json;

use crate::gql_support::{DOMAIN_ADMIN_AK, GqlWorld, SUPERADMIN_AK, USER_AK, insert_agent};

const MODIFY_AGENT: &str = "mutation($id: String!, $props: ModifyAgentInput!) { modify_agent(id: $id, props: $props) { ok msg } }";

const MODIFY_IMAGE: &str = "mutation($target: String!, $props: ModifyImageInput!) { modify_image(target: $target, props: $props) { ok msg } }";

const CLEAR_IMAGES: &str =
    "mutation($registry: String!) { clear_images(registry: $registry) { ok msg } }";

const PYTHON: &str = "127.0.0.1:25000/testing/python:3.9-ubuntu20.04";

#[tokio::test]
async fn modify_agent_toggles_schedulable_for_superadmins_only() {
    let world = GqlWorld::with_fixtures().await;
    let client = world.env.db.connect().await;
    insert_agent(&client, "i-1", "ALIVE", "default").await;
    let off = json!({"id": "i-1", "props": {"schedulable": false}});
    let data = world.data(DOMAIN_ADMIN_AK, MODIFY_AGENT, off.clone()).await;
    assert_eq!(
        data["modify_agent"],
        json!({"ok": false, "msg": "no permission to execute modify_agent"})
    );
    let data = world.data(SUPERADMIN_AK, MODIFY_AGENT, off).await;
    assert_eq!(data["modify_agent"]["ok"], true, "{data}");
    let schedulable: bool = client
        .query_one("SELECT schedulable FROM agents WHERE id = 'i-1'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!schedulable);
    let data = world
        .data(
            SUPERADMIN_AK,
            MODIFY_AGENT,
            json!({"id": "i-missing", "props": {"schedulable": true}}),
        )
        .await;
    assert_eq!(data["modify_agent"]["ok"], false);
    // Moving an agent needs the agent itself to follow: refused with the reason.
    let data = world
        .data(
            SUPERADMIN_AK,
            MODIFY_AGENT,
            json!({"id": "i-1", "props": {"scaling_group": "other"}}),
        )
        .await;
    assert_eq!(data["modify_agent"]["ok"], false);
    assert!(
        data["modify_agent"]["msg"]
            .as_str()
            .unwrap()
            .contains("scaling group"),
        "{data}"
    );

    let data = world
        .data(
            USER_AK,
            "query { vfolder_host_permissions { vfolder_host_permission_list } }",
            json!({}),
        )
        .await;
    let names = data["vfolder_host_permissions"]["vfolder_host_permission_list"]
        .as_array()
        .unwrap();
    assert_eq!(names.len(), 8);
    assert_eq!(names[0], "create-vfolder");
}

#[actix_web::test]
async fn images_are_modified_and_cleared_through_the_registry_actor() {
    let mut world = GqlWorld::with_fixtures().await;
    let client = world.env.db.connect().await;
    client
        .execute(
            "INSERT INTO images (name, project, image, tag, registry, architecture, config_digest, \
                 size_bytes, labels, resources) VALUES \
             ($1, 'testing', 'testing/python', '3.9-ubuntu20.04', '127.0.0.1:25000', 'x86_64', \
              'sha256:fcffa2299032fe7456c00a9b8e2bcbd3c8c49950cd8156118c1703d2d3ea1340', 938, \
              '{}', '{\"cpu\": {\"min\": \"1\"}}')",
            &[&PYTHON],
        )
        .await
        .unwrap();
    let etcd = EtcdStore::connect(&EtcdSettings {
        endpoints: vec![world.env.etcd_endpoint.clone()],
        namespace: world.env.namespace.clone(),
        user: None,
        password: None,
    })
    .await
    .unwrap();
    world.registry_sync =
        Some(RegistrySync::new(etcd, world.pool.clone(), ScanOptions::default()).start());

    let props = json!({
        "labels": [{"key": "ai.backend.service-ports", "value": "jupyter:http:8080"}],
        "supported_accelerators": ["cuda"],
        "resource_limits": [{"key": "mem", "min": "1g", "max": ""}],
    });
    let data = world
        .data(
            SUPERADMIN_AK,
            MODIFY_IMAGE,
            json!({"target": PYTHON, "props": props}),
        )
        .await;
    assert_eq!(data["modify_image"], json!({"ok": true, "msg": ""}));
    let row = client
        .query_one(
            "SELECT labels, accelerators, resources FROM images WHERE name = $1",
            &[&PYTHON],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, serde_json::Value>(0),
        json!({"ai.backend.service-ports": "jupyter:http:8080"})
    );
    assert_eq!(row.get::<_, String>(1), "cuda");
    assert_eq!(
        row.get::<_, serde_json::Value>(2),
        json!({"mem": {"min": "1g"}})
    );
    let data = world
        .data(
            SUPERADMIN_AK,
            MODIFY_IMAGE,
            json!({"target": "nowhere/none:1", "props": {"tag": "x"}}),
        )
        .await;
    assert_eq!(
        data["modify_image"],
        json!({"ok": false, "msg": "Image not found"})
    );
    let data = world
        .data(
            DOMAIN_ADMIN_AK,
            CLEAR_IMAGES,
            json!({"registry": "127.0.0.1:25000"}),
        )
        .await;
    assert_eq!(data["clear_images"]["ok"], false);

    client
        .execute(
            "INSERT INTO image_aliases (alias, image) SELECT 'python', id FROM images",
            &[],
        )
        .await
        .unwrap();
    let data = world
        .data(
            SUPERADMIN_AK,
            CLEAR_IMAGES,
            json!({"registry": "127.0.0.1:25000"}),
        )
        .await;
    assert_eq!(data["clear_images"], json!({"ok": true, "msg": ""}));
    let left: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM images) + (SELECT count(*) FROM image_aliases)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
