//! GraphQL groups, keypair resource policies, resource presets and images against a real
//! database: the CLI's queries and mutations, and who may run them.

use actix::Actor;
use bai_actors::etcd::{EtcdSettings, EtcdStore};
use bai_actors::registry_sync::{RegistrySync, ScanOptions};
use serde_json::{Value, json};

use crate::gql_support::{
    DEFAULT_GROUP, DOMAIN_ADMIN_AK, GqlWorld, MONITOR_AK, SUPERADMIN_AK, USER_AK,
};

const POLICIES: &str = "query {  keypair_resource_policies {    name created_at total_resource_slots max_concurrent_sessions max_vfolder_count max_vfolder_size idle_timeout max_containers_per_session allowed_vfolder_hosts  }}";

const IMAGES: &str = "query($is_operation: Boolean) {  images(is_operation: $is_operation) {    name registry architecture tag digest size_bytes aliases  }}";

#[tokio::test]
async fn groups_by_role_and_their_mutations() {
    let world = GqlWorld::with_fixtures().await;
    let groups = "query($domain_name: String) {\n    groups(domain_name: $domain_name) {id name is_active created_at integration_id}\n}\n";
    let data = world
        .data(SUPERADMIN_AK, groups, json!({"domain_name": null}))
        .await;
    let default = &data["groups"][0];
    assert_eq!(default["id"], DEFAULT_GROUP);
    assert_eq!(default["name"], "default");
    assert_eq!(default["integration_id"], json!(null));

    let create = "mutation($name: String!, $input: GroupInput!) { create_group(name: $name, props: $input) { ok msg group { id name domain_name } } }";
    let data = world
        .data(
            DOMAIN_ADMIN_AK,
            create,
            json!({"name": "team-a", "input": {"domain_name": "default", "description": "A"}}),
        )
        .await;
    assert_eq!(data["create_group"]["ok"], true, "{data}");
    let team_a = data["create_group"]["group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A domain admin cannot create a group in another domain; a user cannot create groups.
    let data = world
        .data(
            DOMAIN_ADMIN_AK,
            create,
            json!({"name": "x", "input": {"domain_name": "other"}}),
        )
        .await;
    assert_eq!(
        data["create_group"]["msg"],
        "no permission to execute create_group"
    );
    let data = world
        .data(
            USER_AK,
            create,
            json!({"name": "x", "input": {"domain_name": "default"}}),
        )
        .await;
    assert_eq!(
        data["create_group"]["msg"],
        "no permission to execute create_group"
    );
    let data = world
        .data(
            SUPERADMIN_AK,
            create,
            json!({"name": "bad name", "input": {"domain_name": "default"}}),
        )
        .await;
    assert_eq!(
        data["create_group"]["msg"],
        "invalid name format. slug format required."
    );

    // A user sees only its groups; adding it to team-a makes team-a visible.
    let data = world.data(USER_AK, groups, json!({})).await;
    assert_eq!(data["groups"].as_array().unwrap().len(), 1);
    let modify = "mutation($gid: UUID!, $input: ModifyGroupInput!) { modify_group(gid: $gid, props: $input) { ok msg } }";
    let data = world
        .data(DOMAIN_ADMIN_AK, modify, json!({"gid": team_a, "input": {"user_update_mode": "add", "user_uuids": ["dfa9da54-4b28-432f-be29-c0d680c7a412"]}}))
        .await;
    assert_eq!(data["modify_group"], json!({"ok": true, "msg": "success"}));
    let data = world.data(USER_AK, groups, json!({})).await;
    let mut seen: Vec<&str> = data["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, ["default", "team-a"]);
    let data = world
        .data(
            USER_AK,
            "query($id: UUID!) { group(id: $id) { name } }",
            json!({"id": team_a}),
        )
        .await;
    assert_eq!(data["group"]["name"], "team-a");

    let data = world
        .data(
            SUPERADMIN_AK,
            "mutation($gid: UUID!) { delete_group(gid: $gid) { ok msg } }",
            json!({"gid": team_a}),
        )
        .await;
    assert_eq!(data["delete_group"], json!({"ok": true, "msg": "success"}));
    let data = world
        .data(
            SUPERADMIN_AK,
            "query { groups(is_active: false) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(data["groups"], json!([{"name": "team-a"}]));
    let data = world
        .data(
            SUPERADMIN_AK,
            "mutation($gid: UUID!) { purge_group(gid: $gid) { ok msg } }",
            json!({"gid": team_a}),
        )
        .await;
    assert_eq!(data["purge_group"], json!({"ok": true, "msg": "success"}));
    let data = world
        .data(SUPERADMIN_AK, "query { groups { name } }", json!({}))
        .await;
    assert_eq!(data["groups"], json!([{"name": "default"}]));
}

#[tokio::test]
async fn keypair_resource_policies_as_the_cli_uses_them() {
    let world = GqlWorld::with_fixtures().await;
    let data = world.data(SUPERADMIN_AK, POLICIES, json!({})).await;
    let default = &data["keypair_resource_policies"][0];
    assert_eq!(default["name"], "default");
    assert_eq!(default["total_resource_slots"], "{}");
    assert_eq!(default["max_concurrent_sessions"], 5);
    assert_eq!(default["idle_timeout"], 3600);
    assert!(
        default["allowed_vfolder_hosts"]
            .as_str()
            .unwrap()
            .starts_with("{\"local:volume1\": [\"create-vfolder\"")
    );

    // The variables of `admin keypair-resource-policy add` (the original 23.09.10 fails this
    // one with an asyncpg DataError; here it succeeds).
    let create = "mutation($name: String!, $input: CreateKeyPairResourcePolicyInput!) {  create_keypair_resource_policy(name: $name, props: $input) {    ok msg resource_policy { name }  }}";
    let input = json!({"default_for_unspecified": "LIMITED", "total_resource_slots": "{}", "max_session_lifetime": 0,
        "max_concurrent_sessions": 20, "max_concurrent_sftp_sessions": 30, "max_containers_per_session": 2,
        "idle_timeout": 1200, "allowed_vfolder_hosts": "{\"local:volume1\":[\"create-vfolder\",\"delete-vfolder\",\"mount-in-session\",\"upload-file\",\"download-file\"]}"});
    let data = world
        .data(
            SUPERADMIN_AK,
            create,
            json!({"name": "brother", "input": input}),
        )
        .await;
    assert_eq!(
        data["create_keypair_resource_policy"],
        json!({"ok": true, "msg": "success", "resource_policy": {"name": "brother"}})
    );
    let modify = "mutation($name: String!, $input: ModifyKeyPairResourcePolicyInput!) {  modify_keypair_resource_policy(name: $name, props: $input) {    ok msg  }}";
    let data = world
        .data(SUPERADMIN_AK, modify, json!({"name": "brother", "input": {"default_for_unspecified": "UNLIMITED",
            "total_resource_slots": "{\"cpu\": \"4\"}", "max_concurrent_sessions": 30, "idle_timeout": 1800}}))
        .await;
    assert_eq!(
        data["modify_keypair_resource_policy"],
        json!({"ok": true, "msg": "success"})
    );
    let data = world.data(SUPERADMIN_AK, "query { keypair_resource_policy(name: \"brother\") { default_for_unspecified total_resource_slots max_concurrent_sessions idle_timeout max_concurrent_sftp_sessions } }", json!({})).await;
    assert_eq!(
        data["keypair_resource_policy"],
        json!({"default_for_unspecified": "UNLIMITED", "total_resource_slots": "{\"cpu\": \"4\"}",
               "max_concurrent_sessions": 30, "idle_timeout": 1800, "max_concurrent_sftp_sessions": 30})
    );
    // A user sees only the policies of its own keypairs.
    let data = world.data(USER_AK, POLICIES, json!({})).await;
    assert_eq!(
        data["keypair_resource_policies"].as_array().unwrap().len(),
        1
    );
    let data = world
        .data(
            USER_AK,
            "query { keypair_resource_policy { name } }",
            json!({}),
        )
        .await;
    assert_eq!(data["keypair_resource_policy"]["name"], "default");
    let data = world
        .data(
            MONITOR_AK,
            modify,
            json!({"name": "brother", "input": {"idle_timeout": 1}}),
        )
        .await;
    assert_eq!(data["modify_keypair_resource_policy"]["ok"], false);

    let delete =
        "mutation($name: String!) {  delete_keypair_resource_policy(name: $name) {    ok msg  }}";
    let data = world
        .data(SUPERADMIN_AK, delete, json!({"name": "brother"}))
        .await;
    assert_eq!(
        data["delete_keypair_resource_policy"],
        json!({"ok": true, "msg": "success"})
    );
    let data = world
        .data(SUPERADMIN_AK, delete, json!({"name": "brother"}))
        .await;
    assert_eq!(
        data["delete_keypair_resource_policy"],
        json!({"ok": false, "msg": "no matching deletekeypairresourcepolicy"})
    );
    // The policy in use by keypairs cannot go.
    let data = world
        .data(SUPERADMIN_AK, delete, json!({"name": "default"}))
        .await;
    assert!(
        data["delete_keypair_resource_policy"]["msg"]
            .as_str()
            .unwrap()
            .starts_with("integrity error")
    );
    let data = world.data(SUPERADMIN_AK, POLICIES, json!({})).await;
    assert_eq!(
        data["keypair_resource_policies"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn resource_presets_are_created_listed_and_deleted() {
    let world = GqlWorld::with_fixtures().await;
    let create = "mutation($name: String!, $input: CreateResourcePresetInput!) { create_resource_preset(name: $name, props: $input) { ok msg resource_preset { name resource_slots shared_memory } } }";
    let data = world
        .data(SUPERADMIN_AK, create, json!({"name": "xlarge", "input": {"resource_slots": "{\"cpu\": \"16\", \"mem\": \"64g\"}", "shared_memory": "1g"}}))
        .await;
    assert_eq!(
        data["create_resource_preset"]["resource_preset"],
        json!({"name": "xlarge", "resource_slots": "{\"cpu\": \"16\", \"mem\": \"68719476736\"}", "shared_memory": 1073741824})
    );
    let data = world
        .data(USER_AK, "query { resource_presets { name } }", json!({}))
        .await;
    let names: Vec<&Value> = data["resource_presets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert!(names.contains(&&json!("xlarge")), "{names:?}");
    let data = world
        .data(
            DOMAIN_ADMIN_AK,
            "mutation { delete_resource_preset(name: \"xlarge\") { ok msg } }",
            json!({}),
        )
        .await;
    assert_eq!(data["delete_resource_preset"]["ok"], false);
    let data = world
        .data(
            SUPERADMIN_AK,
            "mutation { delete_resource_preset(name: \"xlarge\") { ok msg } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["delete_resource_preset"],
        json!({"ok": true, "msg": "success"})
    );
}

async fn insert_image(world: &GqlWorld) {
    let client = world.env.db.connect().await;
    client
        .execute(
            "INSERT INTO images (name, project, image, tag, registry, architecture, config_digest, \
                 size_bytes, labels, resources) VALUES \
             ('127.0.0.1:25000/testing/python:3.9-ubuntu20.04', 'testing', 'testing/python', \
              '3.9-ubuntu20.04', '127.0.0.1:25000', 'x86_64', \
              'sha256:fcffa2299032fe7456c00a9b8e2bcbd3c8c49950cd8156118c1703d2d3ea1340', 938, \
              '{\"ai.backend.kernelspec\": \"1\"}', '{\"cpu\": {\"min\": \"1\", \"max\": null}}')",
            &[],
        )
        .await
        .unwrap();
}

#[actix_web::test]
async fn images_are_listed_per_domain_and_aliased_through_the_registry_actor() {
    let mut world = GqlWorld::with_fixtures().await;
    insert_image(&world).await;
    let data = world
        .data(SUPERADMIN_AK, IMAGES, json!({"is_operation": false}))
        .await;
    assert_eq!(
        data["images"],
        json!([{"name": "testing/python", "registry": "127.0.0.1:25000", "architecture": "x86_64",
            "tag": "3.9-ubuntu20.04",
            "digest": "sha256:fcffa2299032fe7456c00a9b8e2bcbd3c8c49950cd8156118c1703d2d3ea1340 ",
            "size_bytes": 938, "aliases": []}])
    );
    // The default domain does not allow this registry: its users do not see the image.
    let data = world
        .data(USER_AK, IMAGES, json!({"is_operation": false}))
        .await;
    assert_eq!(data["images"], json!([]));
    let client = world.env.db.connect().await;
    client
        .execute(
            "UPDATE domains SET allowed_docker_registries = ARRAY['127.0.0.1:25000']",
            &[],
        )
        .await
        .unwrap();
    let data = world
        .data(USER_AK, IMAGES, json!({"is_operation": false}))
        .await;
    assert_eq!(data["images"].as_array().unwrap().len(), 1);

    // Without the registry-sync actor the image mutations say so.
    let alias = "mutation($alias: String!, $target: String!) {  alias_image(alias: $alias, target: $target) {   ok msg  }}";
    let variables =
        json!({"alias": "python", "target": "127.0.0.1:25000/testing/python:3.9-ubuntu20.04"});
    let data = world.data(SUPERADMIN_AK, alias, variables.clone()).await;
    assert_eq!(data["alias_image"]["ok"], false);

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
    let data = world.data(SUPERADMIN_AK, alias, variables.clone()).await;
    assert_eq!(data["alias_image"], json!({"ok": true, "msg": ""}));
    let data = world.data(SUPERADMIN_AK, "query { image(reference: \"python\") { name aliases resource_limits { key min max } } }", json!({})).await;
    assert_eq!(
        data["image"],
        json!({"name": "testing/python", "aliases": ["python"], "resource_limits": [{"key": "cpu", "min": "1", "max": null}]})
    );
    // Only superadmins alias.
    let data = world
        .data(
            DOMAIN_ADMIN_AK,
            alias,
            json!({"alias": "py2", "target": "127.0.0.1:25000/testing/python:3.9-ubuntu20.04"}),
        )
        .await;
    assert_eq!(
        data["alias_image"]["msg"],
        "no permission to execute alias_image"
    );
    let dealias = "mutation($alias: String!) {  dealias_image(alias: $alias) {   ok msg  }}";
    let data = world
        .data(SUPERADMIN_AK, dealias, json!({"alias": "python"}))
        .await;
    assert_eq!(data["dealias_image"], json!({"ok": true, "msg": ""}));
    let data = world
        .data(SUPERADMIN_AK, dealias, json!({"alias": "python"}))
        .await;
    assert_eq!(
        data["dealias_image"],
        json!({"ok": false, "msg": "No such alias"})
    );

    // A rescan starts in the background and answers a task id at once.
    let rescan =
        "mutation($registry: String) {  rescan_images(registry:$registry) {   ok msg task_id  }}";
    let data = world
        .data(DOMAIN_ADMIN_AK, rescan, json!({"registry": "nowhere"}))
        .await;
    assert_eq!(data["rescan_images"]["ok"], true);
    assert!(uuid::Uuid::parse_str(data["rescan_images"]["task_id"].as_str().unwrap()).is_ok());
    let data = world.data(USER_AK, rescan, json!({"registry": null})).await;
    assert_eq!(data["rescan_images"]["ok"], false);

    let forget = "mutation { forget_image(reference: \"127.0.0.1:25000/testing/python:3.9-ubuntu20.04\") { ok msg } }";
    let data = world.data(SUPERADMIN_AK, forget, json!({})).await;
    assert_eq!(data["forget_image"], json!({"ok": true, "msg": ""}));
    let data = world.data(SUPERADMIN_AK, IMAGES, json!({})).await;
    assert_eq!(data["images"], json!([]));
}
