//! GraphQL `agent_summary` and `agent_summary_list` against a real database, as the Web UI's
//! Summary, Sessions and Agent Summary pages ask them: every role sees the agents of the
//! scaling groups it may use, with filters, ordering and pagination, and nothing while
//! `hide-agents` is on.

use serde_json::{Value, json};

use crate::gql_support::{GqlWorld, SUPERADMIN_AK, USER_AK, insert_agent};

/// The Web UI's (23.09) agent summary query.
const SUMMARY_LIST: &str = "query($limit:Int!, $offset:Int!, $filter:String, $order:String, $status:String, $scaling_group:String) { agent_summary_list(limit:$limit, offset:$offset, filter:$filter, order:$order, status:$status, scaling_group:$scaling_group) { items { id status architecture available_slots occupied_slots scaling_group schedulable } total_count } }";

fn vars(extra: Value) -> Value {
    let mut variables = json!({"limit": 20, "offset": 0, "filter": null, "order": null,
        "status": null, "scaling_group": null});
    if let (Some(base), Some(extra)) = (variables.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    variables
}

fn ids(data: &Value) -> Vec<String> {
    data["agent_summary_list"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn world_with_agents() -> GqlWorld {
    let world = GqlWorld::with_fixtures().await;
    let client = world.env.db.connect().await;
    client
        .batch_execute(
            "INSERT INTO scaling_groups (name, driver, scheduler) VALUES ('private-rg', 'static', 'fifo')",
        )
        .await
        .unwrap();
    insert_agent(&client, "i-b-alive", "ALIVE", "default").await;
    insert_agent(&client, "i-a-alive", "ALIVE", "default").await;
    insert_agent(&client, "i-lost", "LOST", "default").await;
    insert_agent(&client, "i-private", "ALIVE", "private-rg").await;
    client
        .execute(
            "UPDATE agents SET schedulable = false WHERE id = 'i-b-alive'",
            &[],
        )
        .await
        .unwrap();
    world
}

#[tokio::test]
async fn a_user_sees_the_agents_of_the_scaling_groups_it_may_use() {
    let world = world_with_agents().await;
    let data = world.data(USER_AK, SUMMARY_LIST, vars(json!({}))).await;
    // The original's default order: status, scaling group, id. private-rg is not the user's.
    assert_eq!(ids(&data), ["i-a-alive", "i-b-alive", "i-lost"]);
    assert_eq!(data["agent_summary_list"]["total_count"], 3);
    assert_eq!(
        data["agent_summary_list"]["items"][0],
        json!({
            "id": "i-a-alive", "status": "ALIVE", "architecture": "x86_64",
            "available_slots": "{\"cpu\": \"8\", \"mem\": \"17179869184\"}",
            "occupied_slots": "{\"cpu\": \"1\", \"mem\": \"536870912\"}",
            "scaling_group": "default", "schedulable": true,
        })
    );

    let data = world
        .data(USER_AK, SUMMARY_LIST, vars(json!({"status": "ALIVE"})))
        .await;
    assert_eq!(ids(&data), ["i-a-alive", "i-b-alive"]);
    let data = world
        .data(
            USER_AK,
            SUMMARY_LIST,
            vars(json!({"filter": "schedulable == false"})),
        )
        .await;
    assert_eq!(ids(&data), ["i-b-alive"]);
    let data = world
        .data(
            USER_AK,
            SUMMARY_LIST,
            vars(json!({"order": "-id", "limit": 2, "offset": 1})),
        )
        .await;
    assert_eq!(ids(&data), ["i-b-alive", "i-a-alive"]);
    assert_eq!(data["agent_summary_list"]["total_count"], 3);

    // Naming a scaling group narrows to it (the original does not check access then).
    let data = world
        .data(
            USER_AK,
            SUMMARY_LIST,
            vars(json!({"scaling_group": "private-rg"})),
        )
        .await;
    assert_eq!(ids(&data), ["i-private"]);

    let one = "query($id:String!) { agent_summary(agent_id:$id) { id status scaling_group } }";
    let data = world.data(USER_AK, one, json!({"id": "i-lost"})).await;
    assert_eq!(
        data["agent_summary"],
        json!({"id": "i-lost", "status": "LOST", "scaling_group": "default"})
    );
    let data = world.data(USER_AK, one, json!({"id": "i-private"})).await;
    assert_eq!(data["agent_summary"], json!(null));

    let errors = world
        .errors(USER_AK, SUMMARY_LIST, vars(json!({"order": "addr"})))
        .await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("addr"), "{errors:?}");
}

#[tokio::test]
async fn a_keypair_scaling_group_is_visible_and_hide_agents_refuses() {
    let mut world = world_with_agents().await;
    let client = world.env.db.connect().await;
    client
        .execute(
            "INSERT INTO sgroups_for_keypairs (scaling_group, access_key) VALUES ('private-rg', $1)",
            &[&USER_AK],
        )
        .await
        .unwrap();
    let data = world
        .data(USER_AK, SUMMARY_LIST, vars(json!({"status": "ALIVE"})))
        .await;
    assert_eq!(ids(&data), ["i-a-alive", "i-b-alive", "i-private"]);

    world.settings.hide_agents = true;
    for caller in [USER_AK, SUPERADMIN_AK] {
        let errors = world.errors(caller, SUMMARY_LIST, vars(json!({}))).await;
        assert_eq!(errors, ["No such agent."]);
    }
}
