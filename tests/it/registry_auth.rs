//! `image rescan` against registries that want credentials: htpasswd Basic auth, and the
//! bearer-token flow through a small token server (Distribution's `auth: token:`).

use bai_testkit::TestEnv;
use bai_testkit::image_push::{ImagePusher, ManifestFormat, PushAuth, TestImage};
use bai_testkit::registry::{RegistryAuth, RegistryServer};
use bai_testkit::token_server::TokenServer;

use crate::registry_common::{bai_manager, configure_registry, failure, image_rows, row, success};

const USER: &str = "scanner";
const PASSWORD: &str = "s3cret-Pa55";

fn credentials() -> PushAuth {
    PushAuth::Credentials {
        user: USER.to_owned(),
        password: PASSWORD.to_owned(),
    }
}

async fn push_fixture_images(pusher: &ImagePusher) {
    pusher
        .push_image(
            "testing/python",
            "3.9",
            &TestImage::kernel("amd64"),
            ManifestFormat::Docker,
        )
        .await;
    pusher
        .push_multi_arch(
            "testing/multi",
            "1.0",
            &[TestImage::kernel("amd64"), TestImage::kernel("arm64")],
            ManifestFormat::Oci,
        )
        .await;
}

#[tokio::test]
async fn htpasswd_registries_are_scanned_with_the_configured_credentials() {
    let env = TestEnv::new().await;
    let registry = RegistryServer::start_with(RegistryAuth::Htpasswd {
        user: USER.to_owned(),
        password: PASSWORD.to_owned(),
    });
    push_fixture_images(&ImagePusher::new(&registry.url(), credentials())).await;
    let name = registry.name();

    configure_registry(&env, &name, &registry.url(), &[]).await;
    let anonymous = failure(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(
        anonymous.contains(&format!("registry {name} requires credentials")),
        "{anonymous}"
    );

    configure_registry(
        &env,
        &name,
        &registry.url(),
        &[("username", USER), ("password", "wrong")],
    )
    .await;
    let rejected = failure(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(
        rejected.contains(&format!(
            "registry {name} rejected the credentials of user \"{USER}\""
        )),
        "{rejected}"
    );
    assert!(
        !rejected.contains("wrong"),
        "the password leaked: {rejected}"
    );
    assert!(image_rows(&env).await.is_empty());

    configure_registry(&env, &name, &registry.url(), &[("password", PASSWORD)]).await;
    let output = success(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(output.contains("3 added"), "{output}");
    assert!(!output.contains(PASSWORD));
    let rows = image_rows(&env).await;
    row(&rows, &format!("{name}/testing/multi:1.0"), "aarch64");
    row(&rows, &format!("{name}/testing/python:3.9"), "x86_64");
}

#[tokio::test]
async fn token_auth_registries_are_scanned_with_bearer_tokens() {
    let env = TestEnv::new().await;
    let tokens = TokenServer::start(USER, PASSWORD);
    let registry = RegistryServer::start_with(RegistryAuth::Token {
        realm: tokens.realm(),
        service: tokens.service.clone(),
        issuer: tokens.issuer.clone(),
        root_cert_pem: tokens.certificate_pem.clone(),
    });
    push_fixture_images(&ImagePusher::new(&registry.url(), credentials())).await;
    let issued_for_pushing = tokens.issued();
    let name = registry.name();

    configure_registry(
        &env,
        &name,
        &registry.url(),
        &[("username", USER), ("password", "wrong")],
    )
    .await;
    let rejected = failure(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(
        rejected.contains(&format!(
            "registry {name} rejected the credentials of user \"{USER}\""
        )),
        "{rejected}"
    );
    assert!(tokens.refused() >= 1);
    assert!(image_rows(&env).await.is_empty());

    configure_registry(&env, &name, &registry.url(), &[("password", PASSWORD)]).await;
    let output = success(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(
        output.contains(&format!(
            "registry {name}: 3 added, 0 updated, 0 unchanged, 0 skipped, 0 failed"
        )),
        "{output}"
    );
    // The catalog and each repository were read with tokens from the token server.
    assert!(tokens.issued() >= issued_for_pushing + 3);
    let rows = image_rows(&env).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(
        row(&rows, &format!("{name}/testing/multi:1.0"), "x86_64")
            .accelerators
            .as_deref(),
        Some("cuda")
    );
}
