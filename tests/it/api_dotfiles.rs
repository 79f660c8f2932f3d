//! `/user-config/dotfiles`, `/user-config/bootstrap-script`, `/group-config/dotfiles` and
//! `/domain-config/dotfiles` against PostgreSQL: the Web UI's User settings dialogs and the
//! admin dotfile screens, stored msgpack-packed as the original stores them.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::api_app;
use crate::api_support::{
    ApiWorld, DOMAIN_ADMIN_AK, DOMAIN_ADMIN_SK, Signer, USER_AK, USER_SK, USER2_AK, USER2_SK, call,
    problem_type,
};

const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";

/// A signed request with an optional JSON body.
macro_rules! request {
    ($signer:expr, $method:expr, $path:expr, $body:expr $(,)?) => {{
        let body: Option<Value> = $body;
        $signer.request($method, $path, body.as_ref()).to_request()
    }};
}

#[actix_web::test]
async fn a_user_keeps_dotfiles_and_a_bootstrap_script() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let user2 = Signer::new(USER2_AK, USER2_SK);
    let path = "/user-config/dotfiles";

    let (status, _, body) = call(&app, request!(&user, Method::GET, path, None)).await;
    assert_eq!((status.as_u16(), body), (200, json!([])));

    let vimrc = json!({"path": ".vimrc", "permission": "644", "data": "set nu"});
    let (status, _, body) = call(
        &app,
        request!(&user, Method::POST, path, Some(vimrc.clone())),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    // Stored as the original's msgpack.packb([{"path": ..., "perm": ..., "data": ...}]).
    let stored: Vec<u8> = world
        .db()
        .await
        .query_one(
            "SELECT dotfiles FROM keypairs WHERE access_key = $1",
            &[&USER_AK],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        b"\x91\x83\xa4path\xa6.vimrc\xa4perm\xa3644\xa4data\xa6set nu".to_vec()
    );

    let (status, _, body) = call(&app, request!(&user, Method::POST, path, Some(vimrc))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], problem_type("generic-bad-request"));
    assert_eq!(body["title"], "Dotfile already exists.");
    for (bad, key) in [
        (
            json!({"path": ".ssh", "permission": "644", "data": ""}),
            "reserved",
        ),
        (
            json!({"path": ".x", "permission": "999", "data": ""}),
            "permission",
        ),
        (json!({"path": ".x", "permission": "644"}), "data"),
    ] {
        let (status, _, body) = call(&app, request!(&user, Method::POST, path, Some(bad))).await;
        assert_eq!(status, 400, "{key}: {body}");
        assert_eq!(body["type"], problem_type("invalid-api-params"), "{key}");
    }

    let (status, _, body) = call(&app, request!(&user, Method::GET, path, None)).await;
    assert_eq!(
        (status.as_u16(), body),
        (
            200,
            json!([{"path": ".vimrc", "permission": "644", "data": "set nu"}])
        )
    );
    let (status, _, body) = call(
        &app,
        request!(&user, Method::GET, &format!("{path}?path=.vimrc"), None),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body),
        (
            200,
            json!({"path": ".vimrc", "perm": "644", "data": "set nu"})
        )
    );
    let (status, _, _) = call(
        &app,
        request!(&user, Method::GET, &format!("{path}?path=.zshrc"), None),
    )
    .await;
    assert_eq!(status, 404);

    let updated = json!({"path": ".vimrc", "permission": "600", "data": "set nonu"});
    let (status, _, body) = call(&app, request!(&user, Method::PATCH, path, Some(updated))).await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    let missing = json!({"path": ".zshrc", "permission": "600", "data": ""});
    let (status, _, body) = call(&app, request!(&user, Method::PATCH, path, Some(missing))).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"], problem_type("object-not-found"));
    let (_, _, body) = call(&app, request!(&user, Method::GET, path, None)).await;
    assert_eq!(
        body,
        json!([{"path": ".vimrc", "permission": "600", "data": "set nonu"}])
    );

    // Another user's dotfiles are their own; a user cannot act for another keypair.
    let (_, _, body) = call(&app, request!(&user2, Method::GET, path, None)).await;
    assert_eq!(body, json!([]));
    let (status, _, _) = call(
        &app,
        request!(
            &user2,
            Method::GET,
            &format!("{path}?owner_access_key={USER_AK}"),
            None,
        ),
    )
    .await;
    assert_eq!(status, 403);
    // A domain admin may, for a user of its domain.
    let domain_admin = Signer::new(DOMAIN_ADMIN_AK, DOMAIN_ADMIN_SK);
    let on_behalf =
        json!({"path": ".bashrc", "permission": "644", "data": "ls", "owner_access_key": USER_AK});
    let (status, _, body) = call(
        &app,
        request!(&domain_admin, Method::POST, path, Some(on_behalf)),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    let (_, _, body) = call(&app, request!(&user, Method::GET, path, None)).await;
    assert_eq!(body.as_array().unwrap().len(), 2, "{body}");

    let (status, _, body) = call(
        &app,
        request!(&user, Method::DELETE, path, Some(json!({"path": ".vimrc"}))),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({"success": true})));
    let (status, _, _) = call(
        &app,
        request!(&user, Method::DELETE, path, Some(json!({"path": ".vimrc"}))),
    )
    .await;
    assert_eq!(status, 404);

    let script_path = "/user-config/bootstrap-script";
    let (status, _, body) = call(&app, request!(&user, Method::GET, script_path, None)).await;
    assert_eq!((status.as_u16(), body), (200, json!("")));
    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::POST,
            script_path,
            Some(json!({"script": "  pip install rich\n"})),
        ),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    let (_, _, body) = call(&app, request!(&user, Method::GET, script_path, None)).await;
    assert_eq!(body, json!("pip install rich"));
    let too_long = "x".repeat(64 * 1024 + 1);
    let (status, _, _) = call(
        &app,
        request!(
            &user,
            Method::POST,
            script_path,
            Some(json!({"script": too_long})),
        ),
    )
    .await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn project_and_domain_dotfiles_are_kept_by_admins_and_read_by_members() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);
    let domain_admin = Signer::new(DOMAIN_ADMIN_AK, DOMAIN_ADMIN_SK);
    let group_path = "/group-config/dotfiles";
    let file = json!({"group": DEFAULT_GROUP, "path": ".condarc", "permission": "644", "data": "channels: []"});

    let (status, _, _) = call(
        &app,
        request!(&user, Method::POST, group_path, Some(file.clone())),
    )
    .await;
    assert_eq!(
        status, 401,
        "admins only: the original answers AuthorizationFailed"
    );
    let (status, _, body) = call(
        &app,
        request!(&domain_admin, Method::POST, group_path, Some(file)),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::GET,
            &format!("{group_path}?group={DEFAULT_GROUP}"),
            None,
        ),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body),
        (
            200,
            json!([{"path": ".condarc", "permission": "644", "data": "channels: []"}])
        )
    );
    // By name, the domain is needed.
    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::GET,
            &format!("{group_path}?group=default"),
            None
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["msg"], "Missing parameter 'domain'");
    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::GET,
            &format!("{group_path}?group=default&domain=default&path=.condarc"),
            None,
        ),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body),
        (
            200,
            json!({"path": ".condarc", "perm": "644", "data": "channels: []"})
        )
    );
    let (status, _, _) = call(
        &app,
        request!(
            &user,
            Method::GET,
            "/group-config/dotfiles?group=00000000-0000-0000-0000-000000000000",
            None,
        ),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, body) = call(
        &app,
        request!(
            &domain_admin,
            Method::DELETE,
            group_path,
            Some(json!({"group": DEFAULT_GROUP, "path": ".condarc"})),
        ),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({"success": true})));

    let domain_path = "/domain-config/dotfiles";
    let file =
        json!({"domain": "default", "path": ".gitconfig", "permission": "644", "data": "[user]"});
    let (status, _, body) = call(
        &app,
        request!(&domain_admin, Method::POST, domain_path, Some(file)),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::GET,
            &format!("{domain_path}?domain=default"),
            None
        ),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body),
        (
            200,
            json!([{"path": ".gitconfig", "permission": "644", "data": "[user]"}])
        )
    );
    let (status, _, _) = call(
        &app,
        request!(
            &user,
            Method::GET,
            &format!("{domain_path}?domain=other"),
            None
        ),
    )
    .await;
    assert_eq!(status, 403);
    let other = json!({"domain": "other", "path": ".x", "permission": "644", "data": ""});
    let (status, _, _) = call(
        &app,
        request!(&domain_admin, Method::POST, domain_path, Some(other)),
    )
    .await;
    assert_eq!(status, 403);
}
