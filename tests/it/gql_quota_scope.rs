//! The 23.09 `quota_scope` query and `set_quota_scope` / `unset_quota_scope` mutations (the
//! 23.09 Web UI's Data & Storage panels send them) against a real storage proxy: who may read
//! and change which scope, and that the changes reach the proxy.

use actix_web::http::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api_support::{ADMIN_AK, ADMIN_SK, Signer, USER_AK, USER_SK, USER2_AK, call};
use crate::storage_app;
use crate::storage_support::StorageWorld;

const HOST: &str = "local:volume1";

fn gql(signer: &Signer, query: &str, variables: Value) -> actix_web::test::TestRequest {
    signer.request(
        Method::POST,
        "/admin/gql",
        Some(&json!({"query": query, "variables": variables})),
    )
}

const READ: &str = "query($host: String!, $qsid: String!) {
    quota_scope(storage_host_name: $host, quota_scope_id: $qsid) {
        id quota_scope_id storage_host_name
        details { usage_bytes usage_count hard_limit_bytes }
    }
}";

const SET: &str = "mutation($host: String!, $qsid: String!, $limit: BigInt) {
    set_quota_scope(storage_host_name: $host, quota_scope_id: $qsid,
                    props: {hard_limit_bytes: $limit}) {
        quota_scope { id details { hard_limit_bytes } }
    }
}";

const UNSET: &str = "mutation($host: String!, $qsid: String!) {
    unset_quota_scope(storage_host_name: $host, quota_scope_id: $qsid) {
        quota_scope { id quota_scope_id storage_host_name }
    }
}";

async fn user_of(world: &StorageWorld, access_key: &str) -> Uuid {
    world
        .api
        .db()
        .await
        .query_one(
            "SELECT \"user\" FROM keypairs WHERE access_key = $1",
            &[&access_key],
        )
        .await
        .unwrap()
        .get(0)
}

fn first_error(body: &Value) -> String {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[actix_web::test]
async fn quota_scopes_are_read_and_changed_through_the_storage_proxy() {
    let world = StorageWorld::new().await;
    let app = storage_app!(world);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let user = Signer::new(USER_AK, USER_SK);
    let own = format!("user:{}", user_of(&world, USER_AK).await);
    let other = format!("user:{}", user_of(&world, USER2_AK).await);

    // A user reads their own scope; the vfs volume knows no figures, so details are empty.
    let (status, _, body) = call(
        &app,
        gql(&user, READ, json!({"host": HOST, "qsid": own})).to_request(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        body["data"]["quota_scope"],
        json!({
            "id": format!("QuotaScope:{HOST}/{own}"),
            "quota_scope_id": own,
            "storage_host_name": HOST,
            "details": {"usage_bytes": null, "usage_count": null, "hard_limit_bytes": null},
        })
    );

    // ... but not another user's, and may not change any.
    let (_, _, body) = call(
        &app,
        gql(&user, READ, json!({"host": HOST, "qsid": other})).to_request(),
    )
    .await;
    assert!(first_error(&body).contains("not accessible"), "{body}");
    let (_, _, body) = call(
        &app,
        gql(
            &user,
            SET,
            json!({"host": HOST, "qsid": own, "limit": 1024}),
        )
        .to_request(),
    )
    .await;
    assert!(
        first_error(&body).contains("no permission to execute set_quota_scope"),
        "{body}"
    );
    let (_, _, body) = call(
        &app,
        gql(&user, READ, json!({"host": HOST, "qsid": "group:x"})).to_request(),
    )
    .await;
    assert!(
        first_error(&body).contains("invalid quota scope id"),
        "{body}"
    );

    // The proxy has no such scope yet: unsetting it is the proxy's error, named.
    let (_, _, body) = call(
        &app,
        gql(&admin, UNSET, json!({"host": HOST, "qsid": other})).to_request(),
    )
    .await;
    assert!(!first_error(&body).is_empty(), "{body}");

    // A superadmin sets a limit: the proxy creates the scope, and unsetting it now succeeds.
    let (status, _, body) = call(
        &app,
        gql(
            &admin,
            SET,
            json!({"host": HOST, "qsid": other, "limit": 1_048_576}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        body["data"]["set_quota_scope"]["quota_scope"]["id"],
        format!("QuotaScope:{HOST}/{other}")
    );
    let (_, _, body) = call(
        &app,
        gql(&admin, UNSET, json!({"host": HOST, "qsid": other})).to_request(),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        body["data"]["unset_quota_scope"]["quota_scope"]["quota_scope_id"],
        other
    );
}
