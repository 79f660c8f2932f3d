//! `GET /acl`, `/auth/ssh-keypair`, `/auth/update-password`, `/auth/update-full-name` and
//! `/auth/signout` against PostgreSQL, as the Web UI's dialogs call them. The generated SSH
//! key is checked with OpenSSH's own `ssh-keygen`.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::api_app;
use crate::api_support::{
    ApiWorld, Signer, USER_AK, USER_SK, USER2_AK, USER2_SK, call, problem_type,
};

/// A signed request with an optional JSON body.
macro_rules! request {
    ($signer:expr, $method:expr, $path:expr, $body:expr $(,)?) => {{
        let body: Option<Value> = $body;
        $signer.request($method, $path, body.as_ref()).to_request()
    }};
}

#[actix_web::test]
async fn acl_and_the_ssh_keypair() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let user = Signer::new(USER_AK, USER_SK);

    let (status, _, body) = call(&app, request!(&user, Method::GET, "/acl", None)).await;
    assert_eq!(
        (status.as_u16(), body),
        (
            200,
            json!({"vfolder_host_permission_list": [
                "create-vfolder", "modify-vfolder", "delete-vfolder", "mount-in-session",
                "upload-file", "download-file", "invite-others", "set-user-specific-permission"
            ]})
        )
    );

    let path = "/auth/ssh-keypair";
    let (status, _, body) = call(&app, request!(&user, Method::PATCH, path, None)).await;
    assert_eq!(status, 200, "{body}");
    let public_key = body["ssh_public_key"].as_str().unwrap().to_owned();
    let private_key = body["ssh_private_key"].as_str().unwrap().to_owned();
    assert!(public_key.starts_with("ssh-ed25519 "), "{public_key}");
    // OpenSSH derives the same public key from the private key.
    let key_file = world.env.path("id_container");
    std::fs::write(&key_file, &private_key).unwrap();
    let mut permissions = std::fs::metadata(&key_file).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o600);
    std::fs::set_permissions(&key_file, permissions).unwrap();
    let derived = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key_file)
        .output()
        .expect("running ssh-keygen");
    assert!(derived.status.success(), "{derived:?}");
    assert_eq!(String::from_utf8_lossy(&derived.stdout).trim(), public_key);

    let (status, _, body) = call(&app, request!(&user, Method::GET, path, None)).await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"ssh_public_key": public_key}))
    );
    let stored: String = world
        .db()
        .await
        .query_one(
            "SELECT ssh_private_key FROM keypairs WHERE access_key = $1",
            &[&USER_AK],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, private_key);

    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::POST,
            path,
            Some(json!({"pubkey": "ssh-rsa AAAA me  \n", "privkey": "-----BEGIN-----\nx"}))
        ),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body),
        (
            200,
            json!({"ssh_public_key": "ssh-rsa AAAA me\n", "ssh_private_key": "-----BEGIN-----\nx\n"})
        )
    );
    let (status, _, body) = call(
        &app,
        request!(&user, Method::POST, path, Some(json!({"pubkey": "x"}))),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], problem_type("invalid-api-params"));
}

#[actix_web::test]
async fn a_user_changes_its_name_and_password_and_signs_out() {
    let world = ApiWorld::new().await;
    let app = api_app!(world);
    let db = world.db().await;
    let user = Signer::new(USER_AK, USER_SK);

    let (status, _, body) = call(
        &app,
        request!(
            &user,
            Method::POST,
            "/auth/update-full-name",
            Some(json!({"email": "user@lablup.com", "full_name": "Jane Doe"}))
        ),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    let full_name: String = db
        .query_one(
            "SELECT full_name FROM users WHERE email = 'user@lablup.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(full_name, "Jane Doe");

    let change = |old: &str, new: &str, new2: &str| {
        request!(
            &user,
            Method::POST,
            "/auth/update-password",
            Some(json!({"old_password": old, "new_password": new, "new_password2": new2}))
        )
    };
    let (status, _, body) = call(&app, change("wrong", "n3w-Secret!", "n3w-Secret!")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["type"], problem_type("auth-failed"));
    assert_eq!(body["msg"], "Old password mismatch");
    let (status, _, body) = call(&app, change("C8qnIo29", "n3w-Secret!", "other")).await;
    assert_eq!(
        (status.as_u16(), body),
        (400, json!({"error_msg": "new password mismatch"}))
    );
    let (status, _, body) = call(&app, change("C8qnIo29", "n3w-Secret!", "n3w-Secret!")).await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    // The new password logs in; the old one no longer does.
    let login = |password: &str| {
        actix_web::test::TestRequest::post()
            .uri("/auth/authorize")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(
                json!({"type": "keypair", "domain": "default",
                    "username": "user@lablup.com", "password": password})
                .to_string(),
            )
            .to_request()
    };
    let (status, _, body) = call(&app, login("n3w-Secret!")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["access_key"], USER_AK);
    let (status, _, _) = call(&app, login("C8qnIo29")).await;
    assert_eq!(status, 401);

    let user2 = Signer::new(USER2_AK, USER2_SK);
    let signout = |email: &str, password: &str| {
        request!(
            &user2,
            Method::POST,
            "/auth/signout",
            Some(json!({"email": email, "password": password}))
        )
    };
    let (status, _, body) = call(&app, signout("user@lablup.com", "P7oxTDdz")).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = call(&app, signout("user2@lablup.com", "wrong")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["msg"], "Invalid email and/or password");
    let (status, _, body) = call(&app, signout("user2@lablup.com", "P7oxTDdz")).await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    let row = db
        .query_one(
            "SELECT u.status::text, bool_or(k.is_active) FROM users u \
             JOIN keypairs k ON k.user_id = u.email WHERE u.email = 'user2@lablup.com' \
             GROUP BY u.status",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "inactive");
    assert!(!row.get::<_, bool>(1));
}
