//! Resource presets, check-presets and scaling groups through the client API, on the example
//! fixtures (the real manager's answers are in captures/real-manager.http #59–#61).

use actix_web::http::{Method, StatusCode};
use serde_json::json;

use crate::api_app;
use crate::api_support::*;

#[actix_web::test]
async fn presets_are_listed_with_the_known_slots_only() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::GET, "/resource/presets", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let presets = body["presets"].as_array().unwrap();
    assert_eq!(presets.len(), 6);
    assert_eq!(
        presets[0],
        json!({"name": "cpu01-small", "shared_memory": null,
               "resource_slots": {"cpu": "1", "mem": "1073741824"}})
    );
    assert_eq!(presets[1]["shared_memory"], "1073741824");
    // cuda slots are not known in this cluster, so they are dropped.
    assert_eq!(
        presets[3],
        json!({"name": "cuda01-small", "shared_memory": null,
               "resource_slots": {"cpu": "1", "mem": "4294967296"}})
    );

    // Once an agent reported CUDA devices, the slots are known and shown.
    world
        .env
        .etcd_put("config/resource_slots/cuda.device", "count")
        .await;
    world
        .env
        .etcd_put("config/resource_slots/cuda.shares", "count")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, _, body) = call(
            &app,
            admin
                .request(Method::GET, "/resource/presets", None)
                .to_request(),
        )
        .await;
        if body["presets"][3]["resource_slots"]["cuda.shares"] == "0.5" {
            assert_eq!(body["presets"][3]["resource_slots"]["cuda.device"], "1");
            assert_eq!(body["presets"][0]["resource_slots"]["cuda.device"], "0");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn check_presets_of_an_empty_cluster_answers_like_the_real_manager() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, headers, body) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/resource/check-presets",
                Some(&json!({"group": "default"})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers.get("X-RateLimit-Limit").unwrap(), "30000");
    assert_eq!(
        body["keypair_limits"],
        json!({"cpu": "Infinity", "mem": "Infinity"})
    );
    assert_eq!(body["keypair_using"], json!({"cpu": "0", "mem": "0"}));
    assert_eq!(
        body["scaling_groups"],
        json!({"default": {"using": {"cpu": "0", "mem": "0"}, "remaining": {"cpu": "0", "mem": "0"}}})
    );
    assert_eq!(body["group_limits"], json!({"cpu": "NaN", "mem": "NaN"}));
    assert!(
        body["presets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["allocatable"] == false)
    );

    let (status, _, body) = call(
        &app,
        admin
            .request(
                Method::POST,
                "/resource/check-presets",
                Some(&json!({"group": "no-such-group"})),
            )
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["msg"], "Unknown user group");
}

#[actix_web::test]
async fn an_alive_agent_makes_presets_allocatable_within_the_callers_limits() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let db = world.db().await;
    db.batch_execute(
        r#"INSERT INTO agents (id, status, region, scaling_group, available_slots, occupied_slots, addr)
           VALUES ('i-agent1', 'ALIVE', 'local', 'default',
                   '{"cpu": "4", "mem": "8589934592"}', '{"cpu": "1", "mem": "1073741824"}',
                   'tcp://127.0.0.1:6001');
           UPDATE keypair_resource_policies SET default_for_unspecified = 'LIMITED',
                  total_resource_slots = '{"cpu": "2", "mem": "4294967296"}';
           UPDATE groups SET total_resource_slots = '{"mem": "2147483648"}';"#,
    )
    .await
    .unwrap();
    world
        .env
        .etcd_put("config/api/resources/group_resource_visibility", "true")
        .await;
    let user = Signer::new(USER_AK, USER_SK);
    let (status, _, body) = call(
        &app,
        user.request(
            Method::POST,
            "/resource/check-presets",
            Some(&json!({"group": "default", "scaling_group": "default"})),
        )
        .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["keypair_limits"],
        json!({"cpu": "2", "mem": "4294967296"})
    );
    // mem is capped by the group's 2 GiB.
    assert_eq!(
        body["keypair_remaining"],
        json!({"cpu": "2", "mem": "2147483648"})
    );
    assert_eq!(
        body["group_limits"],
        json!({"cpu": "Infinity", "mem": "2147483648"})
    );
    assert_eq!(
        body["scaling_groups"]["default"]["remaining"],
        json!({"cpu": "2", "mem": "2147483648"})
    );
    let allocatable: Vec<(String, bool)> = body["presets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["allocatable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(allocatable[0], ("cpu01-small".to_owned(), true));
    assert!(
        allocatable[1..].iter().all(|(_, ok)| !ok),
        "{allocatable:?}"
    );

    let (status, _, body) = call(
        &app,
        user.request(
            Method::POST,
            "/resource/check-presets",
            Some(&json!({"group": "default", "scaling_group": "elsewhere"})),
        )
        .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["msg"], "Unknown scaling group");
}

#[actix_web::test]
async fn scaling_groups_are_listed_for_a_group_and_private_ones_only_for_admins() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    world
        .db()
        .await
        .batch_execute(
            "INSERT INTO scaling_groups (name, is_public, driver, scheduler) VALUES ('private', false, 'static', 'fifo');
             INSERT INTO sgroups_for_domains (scaling_group, domain) VALUES ('private', 'default');
             INSERT INTO scaling_groups (name, is_active, driver, scheduler) VALUES ('retired', false, 'static', 'fifo');
             INSERT INTO sgroups_for_domains (scaling_group, domain) VALUES ('retired', 'default');",
        )
        .await
        .unwrap();
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let user = Signer::new(USER_AK, USER_SK);
    let (status, _, body) = call(
        &app,
        admin
            .request(Method::GET, "/scaling-groups?group=default", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"scaling_groups": [{"name": "default"}, {"name": "private"}]})
    );
    let (_, _, body) = call(
        &app,
        user.request(
            Method::GET,
            "/scaling-groups?group=2de2b969-1d04-48a6-af16-0bc8adb3c831",
            None,
        )
        .to_request(),
    )
    .await;
    assert_eq!(body, json!({"scaling_groups": [{"name": "default"}]}));
    let (status, _, body) = call(
        &app,
        user.request(Method::GET, "/scaling-groups", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["data"]["group"], "is required");
    let (status, _, body) = call(
        &app,
        user.request(
            Method::GET,
            "/scaling-groups/default/wsproxy-version?group=default",
            None,
        )
        .to_request(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"wsproxy_version": "v1"}))
    );
}

#[actix_web::test]
async fn admins_get_the_image_import_form_with_their_choices() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let (status, headers, body) = call(
        &app,
        admin
            .request(Method::GET, "/image/import", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers.get("X-RateLimit-Limit").unwrap(), "30000");
    let groups = body["fieldGroups"].as_array().unwrap();
    assert_eq!(groups[0]["name"], "Import options");
    let names: Vec<&str> = groups[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "src",
            "target",
            "brand",
            "baseDistro",
            "minCPU",
            "minMemory",
            "preferredSharedMemory",
            "supportedAccelerators",
            "runtimeType",
            "runtimePath",
            "CPUCountEnvs",
            "servicePorts"
        ]
    );
    assert_eq!(
        groups[0]["fields"][11]["templates"][0],
        json!({"name": "jupyter", "protocol": "http", "ports": [8080]})
    );
    assert_eq!(groups[1]["fields"][0]["choices"], json!(["default"]));
    assert_eq!(groups[1]["fields"][1]["choices"], json!(["default"]));

    let user = Signer::new(USER_AK, USER_SK);
    let (status, _, body) = call(
        &app,
        user.request(Method::GET, "/image/import", None)
            .to_request(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["msg"], "Unauthorized access");
}
