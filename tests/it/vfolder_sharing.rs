//! Vfolder invitations and sharing against PostgreSQL and a real storage proxy: a user invites
//! another to a folder, the invitee sees and accepts the invitation (as the Web UI's Summary
//! page and the official CLI do), reaches the folder, leaves it; invitations are rejected and
//! cancelled; project folders are shared and unshared directly; owners change folder options.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::api_support::{
    ADMIN_AK, ADMIN_SK, DOMAIN_ADMIN_AK, DOMAIN_ADMIN_SK, Signer, USER_AK, USER_SK, USER2_AK,
    USER2_SK, call, problem_type,
};
use crate::storage_app;
use crate::storage_support::{StorageWorld, create_body};

fn folder_names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[actix_web::test]
async fn an_invitation_is_sent_listed_accepted_and_the_folder_left() {
    let world = StorageWorld::new().await;
    let app = storage_app!(world);
    let db = world.api.db().await;
    let user = Signer::new(USER_AK, USER_SK);
    let user2 = Signer::new(USER2_AK, USER2_SK);
    let admin = Signer::new(ADMIN_AK, ADMIN_SK);
    let get = |signer: &Signer, path: &str| signer.request(Method::GET, path, None).to_request();
    let post = |signer: &Signer, path: &str, body: Value| {
        signer.request(Method::POST, path, Some(&body)).to_request()
    };
    let delete = |signer: &Signer, path: &str, body: Value| {
        signer
            .request(Method::DELETE, path, Some(&body))
            .to_request()
    };

    let (status, _, body) = call(&app, post(&user, "/folders", create_body("shared-data"))).await;
    assert_eq!(status, 201, "{body}");

    // Nothing pending yet: the Summary page's call answers an empty list, not 404.
    let (status, _, body) = call(&app, get(&user2, "/folders/invitations/list")).await;
    assert_eq!((status.as_u16(), body), (200, json!({"invitations": []})));

    // Bad input is named.
    let (status, _, body) = call(
        &app,
        post(&user, "/folders/shared-data/invite", json!({"perm": "ro"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], problem_type("invalid-api-params"));
    let (status, _, body) = call(
        &app,
        post(
            &user,
            "/folders/shared-data/invite",
            json!({"perm": "owner", "emails": ["user2@lablup.com"]}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Unknown users only: nobody to invite.
    let (status, _, body) = call(
        &app,
        post(
            &user,
            "/folders/shared-data/invite",
            json!({"emails": ["nobody@example.com"]}),
        ),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let invite_body = json!({"perm": "ro", "emails": ["user2@lablup.com", "nobody@example.com"]});
    let (status, _, body) = call(
        &app,
        post(&user, "/folders/shared-data/invite", invite_body.clone()),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body),
        (201, json!({"invited_ids": ["user2@lablup.com"]}))
    );
    // A second identical invitation is not created.
    let (status, _, body) = call(
        &app,
        post(&user, "/folders/shared-data/invite", invite_body),
    )
    .await;
    assert_eq!((status.as_u16(), body), (201, json!({"invited_ids": []})));

    let (status, _, received) = call(&app, get(&user2, "/folders/invitations/list")).await;
    assert_eq!(status, 200);
    let invitations = received["invitations"].as_array().unwrap();
    assert_eq!(invitations.len(), 1, "{received}");
    let invitation = &invitations[0];
    let folder_id: uuid::Uuid = db
        .query_one("SELECT id FROM vfolders WHERE name = 'shared-data'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(invitation["inviter"], "user@lablup.com");
    assert_eq!(invitation["invitee"], "user2@lablup.com");
    assert_eq!(invitation["perm"], "ro");
    assert_eq!(invitation["state"], "pending");
    assert_eq!(invitation["vfolder_id"], folder_id.to_string());
    assert_eq!(invitation["vfolder_name"], "shared-data");
    assert_eq!(invitation["modified_at"], "None");
    let inv_id = invitation["id"].as_str().unwrap().to_owned();
    let (status, _, sent) = call(&app, get(&user, "/folders/invitations/list-sent")).await;
    assert_eq!(status, 200);
    assert_eq!(sent["invitations"][0]["id"], inv_id.as_str());

    // The inviter raises the permission before it is accepted.
    let (status, _, body) = call(
        &app,
        post(
            &user,
            &format!("/folders/invitations/update/{inv_id}"),
            json!({"perm": "rw"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["msg"],
        format!("vfolder invitation updated: {inv_id}.")
    );

    // Only the invitee can accept.
    let (status, _, body) = call(
        &app,
        post(
            &admin,
            "/folders/invitations/accept",
            json!({"inv_id": inv_id}),
        ),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"], problem_type("object-not-found"));
    let (status, _, body) = call(
        &app,
        post(
            &user2,
            "/folders/invitations/accept",
            json!({"inv_id": inv_id}),
        ),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({})));
    let (_, _, received) = call(&app, get(&user2, "/folders/invitations/list")).await;
    assert_eq!(received, json!({"invitations": []}));
    let state: String = db
        .query_one(
            "SELECT state::text FROM vfolder_invitations WHERE id = $1::text::uuid",
            &[&inv_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "accepted");

    // user2 reaches the folder with the granted permission.
    let (status, _, list) = call(&app, get(&user2, "/folders")).await;
    assert_eq!(status, 200);
    assert_eq!(folder_names(&list), ["shared-data"]);
    assert_eq!(list[0]["permission"], "rw");
    assert_eq!(list[0]["is_owner"], false);

    // The grants list: the owner, the grantee and a superadmin see it; another user does not.
    let expected_grant = json!({
        "vfolder_id": folder_id.to_string(), "vfolder_name": "shared-data", "status": "ready",
        "type": "user", "perm": "rw",
    });
    for signer in [&user, &user2, &admin] {
        let (status, _, body) = call(&app, get(signer, "/folders/_/shared")).await;
        assert_eq!(status, 200, "{body}");
        let grants = body["shared"].as_array().unwrap();
        assert_eq!(grants.len(), 1, "{body}");
        for key in ["vfolder_id", "vfolder_name", "status", "type", "perm"] {
            assert_eq!(grants[0][key], expected_grant[key], "{key}");
        }
        assert_eq!(grants[0]["shared_to"]["email"], "user2@lablup.com");
    }
    let domain_admin = Signer::new(DOMAIN_ADMIN_AK, DOMAIN_ADMIN_SK);
    let (_, _, body) = call(&app, get(&domain_admin, "/folders/_/shared")).await;
    assert_eq!(body, json!({"shared": []}));

    // The owner cannot leave; the grantee can.
    let (status, _, body) = call(&app, post(&user, "/folders/shared-data/leave", json!({}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["msg"],
        "Cannot leave a vfolder owned by the requesting user."
    );
    let (status, _, body) = call(&app, post(&user2, "/folders/shared-data/leave", json!({}))).await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"msg": "left the shared vfolder"}))
    );
    let (status, _, _) = call(&app, get(&user2, "/folders/shared-data")).await;
    assert_eq!(status, 404);

    // Rejected by the invitee, cancelled by the inviter, untouchable by anyone else.
    let invite_again = || {
        post(
            &user,
            "/folders/shared-data/invite",
            json!({"emails": ["user2@lablup.com"]}),
        )
    };
    let (status, _, _) = call(&app, invite_again()).await;
    assert_eq!(status, 201);
    let (_, _, received) = call(&app, get(&user2, "/folders/invitations/list")).await;
    let second = received["invitations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, body) = call(
        &app,
        delete(
            &admin,
            "/folders/invitations/delete",
            json!({"inv_id": second}),
        ),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = call(
        &app,
        delete(
            &user2,
            "/folders/invitations/delete",
            json!({"inv_id": second}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = call(&app, invite_again()).await;
    assert_eq!(status, 201);
    let (_, _, sent) = call(&app, get(&user, "/folders/invitations/list-sent")).await;
    let third = sent["invitations"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, _) = call(
        &app,
        delete(
            &user,
            "/folders/invitations/delete",
            json!({"inv_id": third}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let states: Vec<String> = db
        .query(
            "SELECT state::text FROM vfolder_invitations ORDER BY created_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(states, ["accepted", "rejected", "canceled"]);
    let (status, _, _) = call(
        &app,
        post(
            &user2,
            "/folders/invitations/accept",
            json!({"inv_id": third}),
        ),
    )
    .await;
    assert_eq!(status, 404);

    // Folder options: the owner changes them (201), others cannot reach the folder.
    let (status, _, body) = call(
        &app,
        post(
            &user,
            "/folders/shared-data/update-options",
            json!({"cloneable": true, "permission": "ro"}),
        ),
    )
    .await;
    assert_eq!((status.as_u16(), body), (201, Value::Null));
    let row = db
        .query_one(
            "SELECT cloneable, permission::text FROM vfolders WHERE id = $1",
            &[&folder_id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, String>(1), "ro");
    let (status, _, _) = call(
        &app,
        post(
            &user2,
            "/folders/shared-data/update-options",
            json!({"cloneable": false}),
        ),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, body) = call(
        &app,
        post(
            &user,
            "/folders/shared-data/update-options",
            json!({"cloneable": "yes"}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[actix_web::test]
async fn a_project_folder_is_shared_and_unshared_directly() {
    let world = StorageWorld::new().await;
    let db = world.api.db().await;
    db.batch_execute(
        r#"UPDATE keypair_resource_policies SET max_vfolder_count = 0,
               allowed_vfolder_hosts = '{"local:volume1": ["create-vfolder", "delete-vfolder", "mount-in-session"]}'"#,
    )
    .await
    .unwrap();
    let app = storage_app!(world);
    let domain_admin = Signer::new(DOMAIN_ADMIN_AK, DOMAIN_ADMIN_SK);
    let user = Signer::new(USER_AK, USER_SK);
    let mut body = create_body("team");
    body["group"] = json!("default");
    let (status, _, created) = call(
        &app,
        domain_admin
            .request(Method::POST, "/folders", Some(&body))
            .to_request(),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    // A plain user may not share (admin only).
    let share_body = json!({"permission": "ro", "emails": ["user2@lablup.com"]});
    let (status, _, _) = call(
        &app,
        user.request(Method::POST, "/folders/team/share", Some(&share_body))
            .to_request(),
    )
    .await;
    assert_eq!(status, 401, "admins only");
    // A user folder is not directly sharable.
    let (status, _, body) = call(
        &app,
        domain_admin
            .request(Method::POST, "/folders/nothing/share", Some(&share_body))
            .to_request(),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["msg"], "Only project folders are directly sharable.");
    // Someone outside the project is named.
    let outsider = json!({"emails": ["user2@lablup.com", "stranger@example.com"]});
    let (status, _, body) = call(
        &app,
        domain_admin
            .request(Method::POST, "/folders/team/share", Some(&outsider))
            .to_request(),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .contains("stranger@example.com"),
        "{body}"
    );

    let (status, _, body) = call(
        &app,
        domain_admin
            .request(Method::POST, "/folders/team/share", Some(&share_body))
            .to_request(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body),
        (201, json!({"shared_emails": ["user2@lablup.com"]}))
    );
    let grants = || async {
        db.query(
            "SELECT u.email, p.permission::text FROM vfolder_permissions p \
             JOIN users u ON u.uuid = p.\"user\" JOIN vfolders v ON v.id = p.vfolder \
             WHERE v.name = 'team' ORDER BY u.email",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect::<Vec<_>>()
    };
    assert_eq!(
        grants().await,
        [("user2@lablup.com".to_owned(), "ro".to_owned())]
    );
    // Sharing again changes the permission instead of adding a grant.
    let rw = json!({"permission": "rw", "emails": ["user2@lablup.com"]});
    let (status, _, _) = call(
        &app,
        domain_admin
            .request(Method::POST, "/folders/team/share", Some(&rw))
            .to_request(),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        grants().await,
        [("user2@lablup.com".to_owned(), "rw".to_owned())]
    );

    let unshare = json!({"emails": ["user2@lablup.com"]});
    let (status, _, body) = call(
        &app,
        domain_admin
            .request(Method::DELETE, "/folders/team/unshare", Some(&unshare))
            .to_request(),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"unshared_emails": ["user2@lablup.com"]}))
    );
    assert!(grants().await.is_empty());
}
