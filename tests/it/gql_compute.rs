//! GraphQL agents and compute sessions against a real database: the CLI's `admin agent list`,
//! `session list` and `session info` queries, scoping per role, and `hide-agents`.

use serde_json::{Value, json};

use crate::gql_support::{
    DOMAIN_ADMIN_AK, GqlWorld, MONITOR_AK, SUPERADMIN_AK, USER_AK, USER2_AK, insert_agent,
    insert_session,
};

/// `backend.ai admin agent list` (client 23.09.10).
const AGENT_LIST: &str = "query($limit:Int!, $offset:Int!, $status: String, $scaling_group: String, $filter: String, $order: String) {\n  agent_list(\n      limit:$limit, offset:$offset, status:$status, scaling_group:$scaling_group, filter:$filter, order:$order) {\n    items { id status architecture scaling_group region first_contact cpu_cur_pct mem_cur_bytes available_slots occupied_slots }\n    total_count\n  }\n}";

/// `backend.ai session list` (client 23.09.10).
const SESSION_LIST: &str = "query($limit:Int!, $offset:Int!, $status: String, $access_key: String, $filter: String, $order: String) {\n  compute_session_list(\n      limit:$limit, offset:$offset, status:$status, access_key:$access_key, filter:$filter, order:$order) {\n    items { name access_key id group_name main_kernel_id image type status status_info status_changed result }\n    total_count\n  }\n}";

/// `backend.ai session info` (client 23.09.10).
const SESSION_INFO: &str = "query($id: UUID!) {  compute_session(id: $id) {    name id main_kernel_id image tag created_at terminated_at status status_info status_data occupying_slots idle_checks containers { id cluster_role cluster_idx cluster_hostname session_id image registry status status_info status_data status_changed agent container_id resource_opts occupied_slots preopen_ports live_stat last_stat id } dependencies { name id }  }}";

const ACTIVE: &str =
    "PENDING,SCHEDULED,PULLING,PREPARING,RUNNING,RUNNING_DEGRADED,TERMINATING,ERROR";

fn vars(status: &str, extra: Value) -> Value {
    let mut variables = json!({"status": status, "access_key": null, "scaling_group": null,
        "filter": null, "order": null, "limit": 20, "offset": 0});
    if let (Some(base), Some(extra)) = (variables.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    variables
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn agent_list_has_the_cli_shape_and_filters() {
    let world = GqlWorld::with_fixtures().await;
    let client = world.env.db.connect().await;
    insert_agent(&client, "i-alive", "ALIVE", "default").await;
    insert_agent(&client, "i-lost", "LOST", "default").await;
    let data = world
        .data(SUPERADMIN_AK, AGENT_LIST, vars("ALIVE", json!({})))
        .await;
    let list = &data["agent_list"];
    assert_eq!(list["total_count"], 1);
    let agent = &list["items"][0];
    let keys: Vec<&str> = agent
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "status",
            "architecture",
            "scaling_group",
            "region",
            "first_contact",
            "cpu_cur_pct",
            "mem_cur_bytes",
            "available_slots",
            "occupied_slots"
        ]
    );
    assert_eq!(agent["id"], "i-alive");
    assert_eq!(agent["status"], "ALIVE");
    assert_eq!(
        agent["available_slots"],
        r#"{"cpu": "8", "mem": "17179869184"}"#
    );
    assert_eq!(agent["cpu_cur_pct"], 0.0);

    // Live statistics come from Redis db 0, msgpack-encoded by the agents.
    let stat = bai_actors::wire::msgpack::encode(&bai_actors::wire::msgpack::Value::map_of([(
        "node",
        bai_actors::wire::msgpack::Value::map_of([
            (
                "cpu_util",
                bai_actors::wire::msgpack::Value::map_of([(
                    "pct",
                    bai_actors::wire::msgpack::Value::str("37.5"),
                )]),
            ),
            (
                "mem",
                bai_actors::wire::msgpack::Value::map_of([(
                    "current",
                    bai_actors::wire::msgpack::Value::str("1048576"),
                )]),
            ),
        ]),
    )]));
    let mut redis = world.redis_stat.clone();
    let _: () = redis::cmd("SET")
        .arg("i-alive")
        .arg(stat)
        .query_async(&mut redis)
        .await
        .unwrap();
    let data = world
        .data(SUPERADMIN_AK, AGENT_LIST, vars("ALIVE", json!({})))
        .await;
    assert_eq!(data["agent_list"]["items"][0]["cpu_cur_pct"], 37.5);
    assert_eq!(data["agent_list"]["items"][0]["mem_cur_bytes"], 1048576.0);

    let data = world
        .data(
            SUPERADMIN_AK,
            AGENT_LIST,
            vars("ALIVE,LOST", json!({"order": "-id"})),
        )
        .await;
    let ids: Vec<&Value> = data["agent_list"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&json!("i-lost"), &json!("i-alive")]);
    let data = world
        .data(
            SUPERADMIN_AK,
            AGENT_LIST,
            vars(
                "ALIVE,LOST",
                json!({"filter": "status == \"LOST\" | id == \"nothing\""}),
            ),
        )
        .await;
    assert_eq!(data["agent_list"]["total_count"], 1);
    let errors = world
        .errors(SUPERADMIN_AK, AGENT_LIST, vars("SLEEPING", json!({})))
        .await;
    assert!(errors[0].contains("SLEEPING"), "{errors:?}");

    // Superadmins (and monitors) only.
    for access_key in [DOMAIN_ADMIN_AK, USER_AK] {
        let errors = world
            .errors(access_key, AGENT_LIST, vars("ALIVE", json!({})))
            .await;
        assert!(
            errors[0].contains("superadmin privilege required"),
            "{errors:?}"
        );
    }
    let data = world
        .data(MONITOR_AK, AGENT_LIST, vars("ALIVE", json!({})))
        .await;
    assert_eq!(data["agent_list"]["items"][0]["id"], "i-alive");
}

#[tokio::test]
async fn session_list_and_info_have_the_cli_shape() {
    let world = GqlWorld::with_fixtures().await;
    let client = world.env.db.connect().await;
    let (session_id, kernel_id) =
        insert_session(&client, "sess1", SUPERADMIN_AK, "PENDING", None).await;
    let data = world
        .data(SUPERADMIN_AK, SESSION_LIST, vars(ACTIVE, json!({})))
        .await;
    assert_eq!(
        data["compute_session_list"],
        json!({"items": [{
            "name": "sess1", "access_key": SUPERADMIN_AK, "id": session_id.to_string(),
            "group_name": "default", "main_kernel_id": kernel_id.to_string(),
            "image": "127.0.0.1:25000/testing/python:3.9-ubuntu20.04", "type": "INTERACTIVE",
            "status": "PENDING", "status_info": null,
            "status_changed": "2026-11-28T02:15:31.597310+00:00", "result": "UNDEFINED"
        }], "total_count": 1})
    );
    let data = world
        .data(SUPERADMIN_AK, SESSION_LIST, vars("TERMINATED", json!({})))
        .await;
    assert_eq!(
        data["compute_session_list"],
        json!({"items": [], "total_count": 0})
    );

    let data = world
        .data(SUPERADMIN_AK, SESSION_INFO, json!({"id": session_id}))
        .await;
    let session = &data["compute_session"];
    assert_eq!(
        session["occupying_slots"],
        r#"{"cpu": "1", "mem": "536870912"}"#
    );
    assert_eq!(
        session["idle_checks"],
        r#"{"session_lifetime": {"remaining": null, "remaining_time_type": "expire_after", "extra": null}}"#
    );
    assert_eq!(session["tag"], json!(null));
    assert_eq!(session["dependencies"], json!([]));
    let container = &session["containers"][0];
    assert_eq!(container["id"], kernel_id.to_string());
    assert_eq!(container["cluster_role"], "main");
    assert_eq!(container["cluster_idx"], 1);
    assert_eq!(container["cluster_hostname"], "main1");
    assert_eq!(container["session_id"], session_id.to_string());
    assert_eq!(container["registry"], "127.0.0.1:25000");
    assert_eq!(container["resource_opts"], r#"{"shmem": 67108864}"#);
    assert_eq!(
        container["occupied_slots"],
        r#"{"cpu": "1", "mem": "536870912"}"#
    );
    assert_eq!(container["agent"], json!(null));
    assert_eq!(container["live_stat"], json!(null));
    // An unknown id is `null`, a malformed one a GraphQL error.
    let data = world
        .data(
            SUPERADMIN_AK,
            SESSION_INFO,
            json!({"id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(data["compute_session"], json!(null));
    let errors = world
        .errors(SUPERADMIN_AK, SESSION_INFO, json!({"id": "sess1"}))
        .await;
    assert!(!errors.is_empty());
}

#[tokio::test]
async fn sessions_are_scoped_by_role() {
    let world = GqlWorld::with_fixtures().await;
    let client = world.env.db.connect().await;
    insert_agent(&client, "i-1", "ALIVE", "default").await;
    insert_session(&client, "admin-sess", SUPERADMIN_AK, "RUNNING", Some("i-1")).await;
    let (user_session, _) =
        insert_session(&client, "user-sess", USER_AK, "RUNNING", Some("i-1")).await;
    insert_session(&client, "user2-sess", USER2_AK, "PENDING", None).await;
    client
        .batch_execute(
            "INSERT INTO domains (name) VALUES ('other');
             INSERT INTO groups (id, name, domain_name) VALUES ('00000000-0000-0000-0000-00000000000a', 'g', 'other');",
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE sessions SET domain_name = 'other' WHERE name = 'admin-sess'",
            &[],
        )
        .await
        .unwrap();

    let all = world
        .data(
            SUPERADMIN_AK,
            SESSION_LIST,
            vars(ACTIVE, json!({"order": "name"})),
        )
        .await;
    assert_eq!(
        names(&all["compute_session_list"]),
        ["admin-sess", "user-sess", "user2-sess"]
    );
    let monitor = world
        .data(
            MONITOR_AK,
            SESSION_LIST,
            vars(ACTIVE, json!({"order": "name"})),
        )
        .await;
    assert_eq!(
        names(&monitor["compute_session_list"]),
        ["admin-sess", "user-sess", "user2-sess"]
    );
    let admin = world
        .data(
            DOMAIN_ADMIN_AK,
            SESSION_LIST,
            vars(ACTIVE, json!({"order": "name"})),
        )
        .await;
    assert_eq!(
        names(&admin["compute_session_list"]),
        ["user-sess", "user2-sess"]
    );
    let user = world
        .data(USER_AK, SESSION_LIST, vars(ACTIVE, json!({})))
        .await;
    assert_eq!(names(&user["compute_session_list"]), ["user-sess"]);
    assert_eq!(user["compute_session_list"]["total_count"], 1);
    let errors = world
        .errors(
            USER_AK,
            SESSION_LIST,
            vars(ACTIVE, json!({"access_key": USER2_AK})),
        )
        .await;
    assert!(errors[0].contains("forbidden"), "{errors:?}");
    // Another user's session by id is simply not there.
    let data = world
        .data(USER2_AK, SESSION_INFO, json!({"id": user_session}))
        .await;
    assert_eq!(data["compute_session"], json!(null));

    // Filters over joined tables and orderings.
    let data = world
        .data(
            SUPERADMIN_AK,
            SESSION_LIST,
            vars(
                ACTIVE,
                json!({"filter": "user_email like \"user%\" & status == \"running\""}),
            ),
        )
        .await;
    assert_eq!(names(&data["compute_session_list"]), ["user-sess"]);
    assert_eq!(data["compute_session_list"]["total_count"], 1);
    let data = world
        .data(
            SUPERADMIN_AK,
            SESSION_LIST,
            vars(
                ACTIVE,
                json!({"filter": "agent_ids == \"i-1\"", "order": "-name", "limit": 1}),
            ),
        )
        .await;
    assert_eq!(names(&data["compute_session_list"]), ["user-sess"]);
    assert_eq!(data["compute_session_list"]["total_count"], 2);
}

#[tokio::test]
async fn hide_agents_hides_agent_ids_from_everyone_but_superadmins() {
    let mut world = GqlWorld::with_fixtures().await;
    world.settings.hide_agents = true;
    let client = world.env.db.connect().await;
    insert_agent(&client, "i-1", "ALIVE", "default").await;
    let (session_id, _) =
        insert_session(&client, "user-sess", USER_AK, "RUNNING", Some("i-1")).await;
    let query = "query($id: UUID!) { compute_session(id: $id) { agent_ids containers { agent container_id } } }";
    let data = world.data(USER_AK, query, json!({"id": session_id})).await;
    assert_eq!(
        data["compute_session"],
        json!({"agent_ids": null, "containers": [{"agent": null, "container_id": null}]})
    );
    let data = world
        .data(SUPERADMIN_AK, query, json!({"id": session_id}))
        .await;
    assert_eq!(
        data["compute_session"],
        json!({"agent_ids": ["i-1"], "containers": [{"agent": "i-1", "container_id": "c0ffee"}]})
    );
    let data = world
        .data(MONITOR_AK, AGENT_LIST, vars("ALIVE", json!({})))
        .await;
    let agent = &data["agent_list"]["items"][0];
    assert_eq!(agent["id"], json!(null));
    assert_eq!(agent["scaling_group"], "default");
    let data = world
        .data(
            SUPERADMIN_AK,
            "query { agent(agent_id: \"i-1\") { id addr compute_containers { agent } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["agent"],
        json!({"id": "i-1", "addr": "tcp://10.0.0.1:6011", "compute_containers": [{"agent": "i-1"}]})
    );
    // Without hide-agents a user sees where its session runs.
    world.settings.hide_agents = false;
    let data = world.data(USER_AK, query, json!({"id": session_id})).await;
    assert_eq!(data["compute_session"]["agent_ids"], json!(["i-1"]));
}
