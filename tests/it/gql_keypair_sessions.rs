//! GraphQL `KeyPair.compute_sessions` against a real database: a keypair's sessions, newest
//! first, filtered by status, as the Web UI's Credentials page can ask for them.

use serde_json::json;

use crate::gql_support::{GqlWorld, SUPERADMIN_AK, USER_AK, USER2_AK, insert_session};

const KEYPAIR_SESSIONS: &str = "query($ak: String, $status: String) { keypair(access_key: $ak) { access_key compute_sessions(status: $status) { name status access_key } } }";

#[tokio::test]
async fn a_keypair_lists_its_own_sessions() {
    let world = GqlWorld::with_fixtures().await;
    let client = world.env.db.connect().await;
    insert_session(&client, "first", USER_AK, "TERMINATED", None).await;
    insert_session(&client, "second", USER_AK, "PENDING", None).await;
    insert_session(&client, "someone-else", USER2_AK, "PENDING", None).await;

    let data = world
        .data(
            USER_AK,
            KEYPAIR_SESSIONS,
            json!({"ak": USER_AK, "status": null}),
        )
        .await;
    let sessions = data["keypair"]["compute_sessions"].as_array().unwrap();
    let names: Vec<&str> = sessions
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{data}");
    assert!(
        names.contains(&"first") && names.contains(&"second"),
        "{data}"
    );
    assert!(sessions.iter().all(|s| s["access_key"] == USER_AK));

    let data = world
        .data(
            SUPERADMIN_AK,
            KEYPAIR_SESSIONS,
            json!({"ak": USER_AK, "status": "PENDING"}),
        )
        .await;
    assert_eq!(
        data["keypair"]["compute_sessions"],
        json!([{"name": "second", "status": "PENDING", "access_key": USER_AK}])
    );
    let errors = world
        .errors(
            USER_AK,
            KEYPAIR_SESSIONS,
            json!({"ak": USER_AK, "status": "SLEEPING"}),
        )
        .await;
    assert!(errors[0].contains("SLEEPING"), "{errors:?}");
}
