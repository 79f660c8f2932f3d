//! `/template/session` and `/template/cluster` against PostgreSQL: the official client's
//! `session-template` calls (JSON payloads), who sees and changes which template.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::api_app;
use crate::api_support::{
    ADMIN_AK, ADMIN_SK, ApiWorld, Signer, USER_AK, USER_SK, USER2_AK, USER2_SK, call, problem_type,
};

/// A signed request with an optional JSON body.
macro_rules! request {
    ($signer:expr, $method:expr, $path:expr, $body:expr $(,)?) => {{
        let body: Option<Value> = $body;
        $signer.request($method, $path, body.as_ref()).to_request()
    }};
}

fn task(name: &str) -> Value {
    json!({"session_templates": [{"template": {
        "apiVersion": "v1", "kind": "taskTemplate", "metadata": {"name": name},
        "spec": {"kernel": {"image": "cr.backend.ai/stable/python:3.9-ubuntu20.04",
                            "environ": {"A": "1"}}, "mounts": {"data": "/home/work/data"}},
    }}]})
}

#[actix_web::test]
async fn session_templates_are_created_listed_replaced_and_deleted() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let user2 = Signer::new(USER2_AK, USER2_SK);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let path = "/template/session";

    let create = |payload: Value| json!({"payload": payload.to_string()});
    let (status, _, body) = call(
        &app,
        request!(&user, Method::POST, path, Some(create(task("py")))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "a hex uuid: {id}");
    let stored: Value = world
        .db()
        .await
        .query_one(
            "SELECT template FROM session_templates WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored["spec"]["session_type"], "interactive");
    assert_eq!(stored["spec"]["kernel"]["architecture"], "x86_64");

    for (bad, why) in [
        (json!({"payload": "{not json"}), "Malformed payload"),
        (
            create(json!({"session_templates": [{"template": {"kind": "taskTemplate"}}]})),
            "api_version: is required",
        ),
        (
            create(json!({"session_templates": [{"template": {
                "api_version": "v1", "kind": "taskTemplate", "metadata": {"name": "x"},
                "spec": {"kernel": {"image": "i"}, "mounts": {"x": ".ssh"}}}}]})),
            "reserved",
        ),
    ] {
        let (status, _, body) = call(&app, request!(&user, Method::POST, path, Some(bad))).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["type"], problem_type("invalid-api-params"));
        assert!(
            body["msg"].as_str().unwrap_or_default().contains(why),
            "{body}"
        );
    }
    // A project the user is not in.
    let mut elsewhere = create(task("py"));
    elsewhere["group"] = json!("no-such-project");
    let (status, _, body) = call(&app, request!(&user, Method::POST, path, Some(elsewhere))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["msg"], "Invalid group");

    let (status, _, list) = call(&app, request!(&user, Method::GET, path, None)).await;
    assert_eq!(status, 200, "{list}");
    let entries = list.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{list}");
    assert_eq!(entries[0]["id"], id.as_str());
    assert_eq!(entries[0]["name"], "py");
    assert_eq!(entries[0]["is_owner"], true);
    assert_eq!(entries[0]["user_email"], "user@lablup.com");
    assert_eq!(entries[0]["group_name"], "default");
    // A member of the same project sees it, not as its owner; a superadmin sees it too.
    let (_, _, list) = call(&app, request!(&user2, Method::GET, path, None)).await;
    assert_eq!(list[0]["is_owner"], false, "{list}");
    let (_, _, list) = call(&app, request!(&admin, Method::GET, path, None)).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let one = format!("{path}/{id}");
    let (status, _, body) = call(&app, request!(&user, Method::GET, &one, None)).await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "py");
    assert_eq!(
        body["template"]["spec"]["kernel"]["environ"],
        json!({"A": "1"})
    );

    // Only the owner (or an admin) replaces or deletes it.
    let (status, _, _) = call(
        &app,
        request!(&user2, Method::PUT, &one, Some(create(task("py2")))),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, body) = call(
        &app,
        request!(&user, Method::PUT, &one, Some(create(task("py2")))),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({"success": true})));
    let (_, _, body) = call(&app, request!(&user, Method::GET, &one, None)).await;
    assert_eq!(body["name"], "py2");
    let (status, _, _) = call(&app, request!(&user2, Method::DELETE, &one, None)).await;
    assert_eq!(status, 404);
    let (status, _, body) = call(&app, request!(&user, Method::DELETE, &one, None)).await;
    assert_eq!((status.as_u16(), body), (200, json!({"success": true})));
    let (_, _, list) = call(&app, request!(&user, Method::GET, path, None)).await;
    assert_eq!(list, json!([]));
    let (status, _, body) = call(&app, request!(&user, Method::DELETE, &one, None)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["title"], "No such task template.");

    // Cluster templates name their nodes' session templates.
    let (_, _, body) = call(
        &app,
        request!(&user, Method::POST, path, Some(create(task("node")))),
    )
    .await;
    let node = body["id"].as_str().unwrap().to_owned();
    let cluster = json!({"api_version": "v1", "kind": "clusterTemplate", "mode": "multi-node",
        "metadata": {"name": "pair"},
        "spec": {"nodes": [{"role": "main", "session_template": node, "replicas": 2}]}});
    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::POST,
            "/template/cluster",
            Some(create(cluster))
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cluster_id = body["id"].as_str().unwrap().to_owned();
    let (_, _, list) = call(
        &app,
        request!(&user, Method::GET, "/template/cluster", None),
    )
    .await;
    assert_eq!(list[0]["name"], "pair", "{list}");
    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::GET,
            &format!("/template/cluster/{cluster_id}?format=json"),
            None
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["spec"]["nodes"][0]["replicas"], 2);
}

#[actix_web::test]
async fn a_session_is_created_from_a_template_with_the_requests_overrides() {
    let world = ApiWorld::new().await;
    crate::api_session::insert_test_image(&world, true).await;
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let template = json!({"session_templates": [{"template": {
        "apiVersion": "v1", "kind": "taskTemplate", "metadata": {"name": "py", "tag": "nightly"},
        "spec": {"session_type": "interactive",
                 "kernel": {"image": crate::api_session::IMAGE, "environ": {"FROM": "template"}},
                 "resources": {"cpu": "1", "mem": "256m"}},
    }}]});
    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::POST,
            "/template/session",
            Some(json!({"payload": template.to_string()}))
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let template_id = body["id"].as_str().unwrap().to_owned();

    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::POST,
            "/session/_/create-from-template",
            Some(json!({"template_id": template_id, "name": "tmpl-session",
                        "enqueueOnly": true, "config": {"resources": {"cpu": "2", "mem": "512m"}}}))
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let db = world.db().await;
    let row = db
        .query_one(
            "SELECT s.images[1], s.tag, k.environ, s.requested_slots->>'cpu' \
             FROM sessions s JOIN kernels k ON k.session_id = s.id WHERE s.name = 'tmpl-session'",
            &[],
        )
        .await
        .unwrap();
    let image: String = row.get(0);
    let tag: Option<String> = row.get(1);
    let environ: Vec<String> = row.get(2);
    let cpu: String = row.get(3);
    assert_eq!(image, crate::api_session::IMAGE);
    assert_eq!(tag.as_deref(), Some("nightly"));
    assert!(environ.contains(&"FROM=template".to_owned()), "{environ:?}");
    assert_eq!(cpu, "2");

    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::POST,
            "/session/_/create-from-template",
            Some(json!({"template_id": uuid::Uuid::new_v4().to_string(), "name": "nothing"}))
        ),
    )
    .await;
    assert_eq!(status, 404, "{body}");
}
