//! GraphQL domains and scaling groups against a real database: the queries the official CLI
//! sends, the mutations with their effects, and who may run them.

use serde_json::json;

use crate::gql_support::{DOMAIN_ADMIN_AK, GqlWorld, MONITOR_AK, SUPERADMIN_AK, USER_AK};

const DOMAINS: &str = "query { domains { name description is_active created_at total_resource_slots \
     allowed_vfolder_hosts allowed_docker_registries integration_id } }";

const SCALING_GROUPS: &str = "query($is_active: Boolean) { scaling_groups(is_active: $is_active) { \
     name description is_active is_public created_at driver scheduler use_host_network \
     wsproxy_addr wsproxy_api_token } }";

#[tokio::test]
async fn domains_list_has_the_original_shape() {
    let world = GqlWorld::with_fixtures().await;
    let data = world.data(SUPERADMIN_AK, DOMAINS, json!({})).await;
    let domains = data["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 1);
    let domain = &domains[0];
    assert_eq!(domain["name"], "default");
    assert_eq!(domain["description"], "The default domain");
    assert_eq!(domain["total_resource_slots"], "{}");
    assert_eq!(domain["allowed_vfolder_hosts"], "{}");
    assert_eq!(
        domain["allowed_docker_registries"],
        json!(["cr.backend.ai", "index.docker.io"])
    );
    assert_eq!(domain["integration_id"], json!(null));
    let created_at = domain["created_at"].as_str().unwrap();
    assert!(
        created_at.ends_with("+00:00") && created_at.contains('T'),
        "{created_at}"
    );
}

#[tokio::test]
async fn domain_mutations_change_what_the_next_query_shows() {
    let world = GqlWorld::with_fixtures().await;
    let create = "mutation($name: String!, $input: DomainInput!) { create_domain(name: $name, props: $input) { ok msg domain { name total_resource_slots allowed_vfolder_hosts } } }";
    let data = world
        .data(
            SUPERADMIN_AK,
            create,
            json!({"name": "lab", "input": {"description": "Lab", "total_resource_slots": "{\"cpu\": \"4\", \"mem\": \"8g\"}",
                   "allowed_vfolder_hosts": "{\"local:volume1\": [\"create-vfolder\"]}"}}),
        )
        .await;
    let result = &data["create_domain"];
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["msg"], "success");
    assert_eq!(
        result["domain"]["total_resource_slots"],
        r#"{"cpu": "4", "mem": "8589934592"}"#
    );
    assert_eq!(
        result["domain"]["allowed_vfolder_hosts"],
        r#"{"local:volume1": ["create-vfolder"]}"#
    );

    // The same mutation again: the original reports the integrity error in `msg`.
    let data = world
        .data(SUPERADMIN_AK, create, json!({"name": "lab", "input": {}}))
        .await;
    assert_eq!(data["create_domain"]["ok"], false);
    assert!(
        data["create_domain"]["msg"]
            .as_str()
            .unwrap()
            .starts_with("integrity error")
    );

    let modify = "mutation($name: String!, $input: ModifyDomainInput!) { modify_domain(name: $name, props: $input) { ok msg } }";
    let data = world
        .data(SUPERADMIN_AK, modify, json!({"name": "lab", "input": {"name": "lab2", "description": "Lab 2", "is_active": false}}))
        .await;
    assert_eq!(data["modify_domain"], json!({"ok": true, "msg": "success"}));
    // A domain that does not exist: the capture's exact message.
    let data = world
        .data(
            SUPERADMIN_AK,
            modify,
            json!({"name": "test", "input": {"name": "test123"}}),
        )
        .await;
    assert_eq!(
        data["modify_domain"],
        json!({"ok": false, "msg": "no matching modifydomain"})
    );

    let data = world
        .data(
            SUPERADMIN_AK,
            "query { domains(is_active: false) { name description } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["domains"],
        json!([{"name": "lab2", "description": "Lab 2"}])
    );

    let purge = "mutation($name: String!) { purge_domain(name: $name) { ok msg } }";
    let data = world
        .data(SUPERADMIN_AK, purge, json!({"name": "lab2"}))
        .await;
    assert_eq!(data["purge_domain"], json!({"ok": true, "msg": "success"}));
    let data = world
        .data(SUPERADMIN_AK, purge, json!({"name": "test123"}))
        .await;
    assert_eq!(
        data["purge_domain"],
        json!({"ok": false, "msg": "no matching purgedomain"})
    );
    // The default domain still has users and groups.
    let data = world
        .data(SUPERADMIN_AK, purge, json!({"name": "default"}))
        .await;
    assert_eq!(data["purge_domain"]["ok"], false);
    assert!(
        data["purge_domain"]["msg"]
            .as_str()
            .unwrap()
            .contains("users bound to the domain")
    );

    let data = world.data(SUPERADMIN_AK, DOMAINS, json!({})).await;
    let names: Vec<_> = data["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("default")]);
}

#[tokio::test]
async fn domain_reads_and_writes_by_role() {
    let world = GqlWorld::with_fixtures().await;
    // Only superadmins (and monitors) list every domain.
    for access_key in [DOMAIN_ADMIN_AK, USER_AK] {
        let errors = world.errors(access_key, DOMAINS, json!({})).await;
        assert!(
            errors[0].contains("superadmin privilege required"),
            "{errors:?}"
        );
    }
    world.data(MONITOR_AK, DOMAINS, json!({})).await;
    // Everyone reads its own domain, nobody else's.
    let data = world
        .data(USER_AK, "query { domain { name } }", json!({}))
        .await;
    assert_eq!(data["domain"]["name"], "default");
    let errors = world
        .errors(
            USER_AK,
            "query { domain(name: \"other\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(errors, vec!["No such domain.".to_owned()]);
    // Domain mutations are superadmin-only; the denial is the original's `ok: false`.
    for access_key in [DOMAIN_ADMIN_AK, USER_AK, MONITOR_AK] {
        let data = world
            .data(
                access_key,
                "mutation { delete_domain(name: \"default\") { ok msg } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data["delete_domain"],
            json!({"ok": false, "msg": "no permission to execute delete_domain"})
        );
    }
    let data = world
        .data(SUPERADMIN_AK, "query { domain { is_active } }", json!({}))
        .await;
    assert_eq!(data["domain"]["is_active"], true);
}

#[tokio::test]
async fn scaling_groups_list_and_mutations() {
    let world = GqlWorld::with_fixtures().await;
    let data = world
        .data(SUPERADMIN_AK, SCALING_GROUPS, json!({"is_active": null}))
        .await;
    let groups = data["scaling_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    let default = &groups[0];
    assert_eq!(default["name"], "default");
    assert_eq!(default["description"], "The default agent scaling group");
    assert_eq!(default["driver"], "static");
    assert_eq!(default["scheduler"], "fifo");
    assert_eq!(default["is_public"], true);
    assert_eq!(default["use_host_network"], false);
    assert_eq!(default["wsproxy_addr"], json!(null));

    let create = "mutation($name: String!, $input: CreateScalingGroupInput!) { create_scaling_group(name: $name, props: $input) { ok msg scaling_group { name scheduler_opts wsproxy_api_token } } }";
    let data = world
        .data(
            SUPERADMIN_AK,
            create,
            json!({"name": "gpu", "input": {"driver": "static", "scheduler": "fifo", "wsproxy_api_token": "tok",
                   "scheduler_opts": "{\"pending_timeout\": \"1m\"}"}}),
        )
        .await;
    assert_eq!(data["create_scaling_group"]["ok"], true, "{data}");
    assert_eq!(
        data["create_scaling_group"]["scaling_group"]["scheduler_opts"],
        r#"{"allowed_session_types": ["interactive", "batch"], "pending_timeout": 60.0, "config": {}}"#
    );

    let modify = "mutation($name: String!, $input: ModifyScalingGroupInput!) { modify_scaling_group(name: $name, props: $input) { ok msg } }";
    let data = world
        .data(SUPERADMIN_AK, modify, json!({"name": "gpu", "input": {"description": "GPUs", "driver": "non-static", "scheduler": "lifo"}}))
        .await;
    assert_eq!(
        data["modify_scaling_group"],
        json!({"ok": true, "msg": "success"})
    );
    let data = world
        .data(
            SUPERADMIN_AK,
            modify,
            json!({"name": "test_group1", "input": {"description": "x"}}),
        )
        .await;
    assert_eq!(
        data["modify_scaling_group"],
        json!({"ok": false, "msg": "no matching modifyscalinggroup"})
    );

    let associate = "mutation { associate_scaling_group_with_domain(scaling_group: \"gpu\", domain: \"default\") { ok msg } \
         associate_scaling_group_with_keypair(scaling_group: \"gpu\", access_key: \"AKIANABBDUSEREXAMPLE\") { ok msg } \
         associate_scaling_group_with_user_group(scaling_group: \"gpu\", user_group: \"2de2b969-1d04-48a6-af16-0bc8adb3c831\") { ok msg } }";
    let data = world.data(SUPERADMIN_AK, associate, json!({})).await;
    for (_, result) in data.as_object().unwrap() {
        assert_eq!(result, &json!({"ok": true, "msg": "success"}));
    }
    let data = world
        .data(SUPERADMIN_AK, "query { scaling_groups_for_domain(domain: \"default\") { name } scaling_groups_for_keypair(access_key: \"AKIANABBDUSEREXAMPLE\") { name } domain { scaling_groups } }", json!({}))
        .await;
    assert_eq!(
        data["scaling_groups_for_domain"],
        json!([{"name": "default"}, {"name": "gpu"}])
    );
    assert_eq!(data["scaling_groups_for_keypair"], json!([{"name": "gpu"}]));
    assert_eq!(data["domain"]["scaling_groups"], json!(["default", "gpu"]));

    let data = world
        .data(SUPERADMIN_AK, "mutation { disassociate_scaling_group_with_domain(scaling_group: \"gpu\", domain: \"default\") { ok msg } }", json!({}))
        .await;
    assert_eq!(data["disassociate_scaling_group_with_domain"]["ok"], true);

    // The monitor reads scaling groups but not the wsproxy token; nobody but superadmins writes.
    let data = world
        .data(
            MONITOR_AK,
            "query { scaling_group(name: \"gpu\") { description wsproxy_api_token } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["scaling_group"],
        json!({"description": "GPUs", "wsproxy_api_token": null})
    );
    let data = world
        .data(
            SUPERADMIN_AK,
            "query { scaling_group(name: \"gpu\") { wsproxy_api_token } }",
            json!({}),
        )
        .await;
    assert_eq!(data["scaling_group"]["wsproxy_api_token"], "tok");
    let data = world
        .data(
            DOMAIN_ADMIN_AK,
            "mutation { delete_scaling_group(name: \"gpu\") { ok msg } }",
            json!({}),
        )
        .await;
    assert_eq!(data["delete_scaling_group"]["ok"], false);

    let delete = "mutation($name: String!) { delete_scaling_group(name: $name) { ok msg } }";
    let data = world
        .data(SUPERADMIN_AK, delete, json!({"name": "gpu"}))
        .await;
    assert_eq!(
        data["delete_scaling_group"],
        json!({"ok": true, "msg": "success"})
    );
    let data = world
        .data(SUPERADMIN_AK, delete, json!({"name": "test_group1"}))
        .await;
    assert_eq!(
        data["delete_scaling_group"],
        json!({"ok": false, "msg": "no matching deletescalinggroup"})
    );
    let data = world.data(SUPERADMIN_AK, SCALING_GROUPS, json!({})).await;
    assert_eq!(data["scaling_groups"].as_array().unwrap().len(), 1);
}
