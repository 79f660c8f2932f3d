//! The 23.09 GraphQL roots the Web UI's Data & Storage and Sessions pages read, against a real
//! database: the caller's own, invited and project folders, the legacy `vfolders`, the
//! superadmin's `vfolder_permission_list`, `KeyPair.vfolders`, `compute_container(_list)` and
//! `Agent.local_config`.

use serde_json::{Value, json};

use crate::gql_support::{
    DEFAULT_GROUP, GqlWorld, SUPERADMIN_AK, USER_AK, USER2_AK, insert_agent, insert_session,
};

/// Inserts a folder owned by the user of `access_key` (or, with `group`, by that group).
async fn insert_folder(
    client: &tokio_postgres::Client,
    name: &str,
    access_key: &str,
    group: Option<&str>,
) -> uuid::Uuid {
    let row = client
        .query_one(
            "INSERT INTO vfolders (host, name, creator, ownership_type, \"user\", \"group\", \
                 quota_scope_id) \
             SELECT 'local:volume1', $1, u.email, \
                 (CASE WHEN $3::text IS NULL THEN 'user' ELSE 'group' END)::vfolderownershiptype, \
                 CASE WHEN $3::text IS NULL THEN u.uuid END, $3::text::uuid, \
                 CASE WHEN $3::text IS NULL THEN 'user:' || u.uuid ELSE 'project:' || $3 END \
             FROM keypairs k JOIN users u ON u.uuid = k.\"user\" WHERE k.access_key = $2 \
             RETURNING id",
            &[&name, &access_key, &group],
        )
        .await
        .unwrap_or_else(|e| panic!("inserting folder {name}: {e}"));
    row.get(0)
}

/// Shares `folder` read-only with the user of `access_key`.
async fn share(client: &tokio_postgres::Client, folder: uuid::Uuid, access_key: &str) {
    client
        .execute(
            "INSERT INTO vfolder_permissions (permission, vfolder, \"user\") \
             SELECT 'ro', $1, k.\"user\" FROM keypairs k WHERE k.access_key = $2",
            &[&folder, &access_key],
        )
        .await
        .expect("sharing a folder");
}

fn names(list: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    names.sort();
    names
}

const SCOPES: &str = "{ \
    own: vfolder_own_list(limit: 10, offset: 0) { total_count items { name ownership_type } } \
    invited: vfolder_invited_list(limit: 10, offset: 0) { total_count items { name permission } } \
    project: vfolder_project_list(limit: 10, offset: 0) { total_count items { name group } } \
    vfolders { name } }";

#[tokio::test]
async fn each_folder_scope_lists_what_the_caller_owns_was_invited_to_or_shares_by_project() {
    let world = GqlWorld::with_fixtures().await;
    let client = world.env.db.connect().await;
    insert_folder(&client, "mine", USER_AK, None).await;
    let theirs = insert_folder(&client, "theirs", USER2_AK, None).await;
    insert_folder(&client, "private", USER2_AK, None).await;
    insert_folder(&client, "project-data", USER_AK, Some(DEFAULT_GROUP)).await;
    share(&client, theirs, USER_AK).await;

    let data = world.data(USER_AK, SCOPES, json!({})).await;
    assert_eq!(names(&data["own"]["items"]), ["mine"], "{data}");
    assert_eq!(data["own"]["total_count"], 1, "{data}");
    assert_eq!(names(&data["invited"]["items"]), ["theirs"], "{data}");
    assert_eq!(data["invited"]["total_count"], 1, "{data}");
    assert_eq!(names(&data["project"]["items"]), ["project-data"], "{data}");
    assert_eq!(
        data["project"]["items"][0]["group"], DEFAULT_GROUP,
        "{data}"
    );
    assert_eq!(names(&data["vfolders"]), ["mine"], "{data}");

    // The other user sees its own two folders and was invited to nothing.
    let data = world.data(USER2_AK, SCOPES, json!({})).await;
    assert_eq!(
        names(&data["own"]["items"]),
        ["private", "theirs"],
        "{data}"
    );
    assert_eq!(data["invited"]["total_count"], 0, "{data}");

    // Filters and pages work as on vfolder_list.
    let data = world
        .data(
            USER2_AK,
            "{ vfolder_own_list(limit: 1, offset: 0, filter: \"name == \\\"private\\\"\") \
             { total_count items { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["vfolder_own_list"],
        json!({"total_count": 1, "items": [{"name": "private"}]})
    );

    // KeyPair.vfolders: the keypair's user's own folders.
    let data = world
        .data(
            SUPERADMIN_AK,
            "query($ak: String) { keypair(access_key: $ak) { vfolders { name } } }",
            json!({"ak": USER2_AK}),
        )
        .await;
    assert_eq!(names(&data["keypair"]["vfolders"]), ["private", "theirs"]);
}

#[tokio::test]
async fn the_permission_list_shows_every_share_to_superadmins_only() {
    let world = GqlWorld::with_fixtures().await;
    let client = world.env.db.connect().await;
    let theirs = insert_folder(&client, "theirs", USER2_AK, None).await;
    share(&client, theirs, USER_AK).await;
    let user_email: String = client
        .query_one(
            "SELECT u.email FROM keypairs k JOIN users u ON u.uuid = k.\"user\" \
             WHERE k.access_key = $1",
            &[&USER_AK],
        )
        .await
        .unwrap()
        .get(0);
    let query = "{ vfolder_permission_list(limit: 10, offset: 0) \
                 { total_count items { permission vfolder vfolder_name user_email } } }";
    let data = world.data(SUPERADMIN_AK, query, json!({})).await;
    assert_eq!(
        data["vfolder_permission_list"],
        json!({"total_count": 1, "items": [{
            "permission": "ro", "vfolder": theirs.to_string(), "vfolder_name": "theirs",
            "user_email": user_email,
        }]})
    );
    let errors = world.errors(USER_AK, query, json!({})).await;
    assert!(errors[0].contains("superadmin"), "{errors:?}");
}

#[tokio::test]
async fn containers_are_listed_per_session_in_the_callers_scope() {
    let world = GqlWorld::with_fixtures().await;
    let client = world.env.db.connect().await;
    insert_agent(&client, "i-agent", "ALIVE", "default").await;
    let (session, kernel) =
        insert_session(&client, "s1", USER_AK, "RUNNING", Some("i-agent")).await;

    let list = "query($sid: ID!) { compute_container_list(limit: 10, offset: 0, session_id: $sid, \
                role: \"main\") { total_count items { id session_id cluster_role status } } }";
    let data = world
        .data(USER_AK, list, json!({"sid": session.to_string()}))
        .await;
    assert_eq!(
        data["compute_container_list"],
        json!({"total_count": 1, "items": [{
            "id": kernel.to_string(), "session_id": session.to_string(),
            "cluster_role": "main", "status": "RUNNING",
        }]})
    );
    // Another user's session has no containers for this caller.
    let data = world
        .data(USER2_AK, list, json!({"sid": session.to_string()}))
        .await;
    assert_eq!(data["compute_container_list"]["total_count"], 0, "{data}");
    let errors = world
        .errors(USER_AK, list, json!({"sid": "not-a-session"}))
        .await;
    assert!(errors[0].contains("not-a-session"), "{errors:?}");

    let one = "query($id: UUID!) { compute_container(id: $id) { id cluster_hostname } }";
    let data = world
        .data(USER_AK, one, json!({"id": kernel.to_string()}))
        .await;
    assert_eq!(
        data["compute_container"],
        json!({"id": kernel.to_string(), "cluster_hostname": "main1"})
    );
    let data = world
        .data(USER2_AK, one, json!({"id": kernel.to_string()}))
        .await;
    assert_eq!(data["compute_container"], Value::Null);

    let data = world
        .data(
            SUPERADMIN_AK,
            "{ agent(agent_id: \"i-agent\") { local_config } }",
            json!({}),
        )
        .await;
    let local_config: Value =
        serde_json::from_str(data["agent"]["local_config"].as_str().unwrap()).unwrap();
    assert_eq!(
        local_config,
        json!({"agent": {"auto_terminate_abusing_kernel": false}})
    );
}
