//! `image rescan` of `harbor2` and `harbor` registries, through the Harbor-shaped test server
//! (bai-testkit `HarborApiServer`: Harbor's documented API shapes in front of a real local
//! registry), and the per-registry request cap.

use bai_testkit::TestEnv;
use bai_testkit::harbor_api::HarborApiServer;
use bai_testkit::image_push::{ImagePusher, ManifestFormat, PushAuth, TestImage};
use bai_testkit::registry::RegistryServer;

use crate::registry_common::{bai_manager, configure_registry, failure, image_rows, row, success};

const USER: &str = "robot$scanner";
const PASSWORD: &str = "harbor-Pa55";

/// A registry with 12 repositories in `stable` (more than one Harbor page), 2 in
/// `community`, and one in a project that is not configured.
async fn fill_registry(registry: &RegistryServer) {
    let pusher = ImagePusher::new(&registry.url(), PushAuth::None);
    for i in 0..12 {
        pusher
            .push_image(
                &format!("stable/kernel-{i:02}"),
                "1.0-ubuntu22.04",
                &TestImage::kernel("amd64"),
                ManifestFormat::Docker,
            )
            .await;
    }
    pusher
        .push_multi_arch(
            "community/python",
            "3.11",
            &[TestImage::kernel("amd64"), TestImage::kernel("arm64")],
            ManifestFormat::Oci,
        )
        .await;
    pusher
        .push_multi_arch(
            "community/python",
            "3.12",
            &[TestImage::kernel("amd64"), TestImage::kernel("arm64")],
            ManifestFormat::Docker,
        )
        .await;
    // Two tags of one artifact, and an image whose labels Backend.AI rejects.
    pusher
        .push_image(
            "community/r",
            "4.3",
            &TestImage::kernel("amd64"),
            ManifestFormat::Oci,
        )
        .await;
    pusher
        .push_image(
            "community/r",
            "latest",
            &TestImage::kernel("amd64"),
            ManifestFormat::Oci,
        )
        .await;
    pusher
        .push_image(
            "community/bad",
            "1.0",
            &TestImage::kernel("amd64").with_label("ai.backend.role", "BATCH"),
            ManifestFormat::Docker,
        )
        .await;
    pusher
        .push_image(
            "private/secret",
            "1.0",
            &TestImage::kernel("amd64"),
            ManifestFormat::Docker,
        )
        .await;
}

#[tokio::test]
async fn harbor2_registries_are_listed_through_projects_repositories_and_artifacts() {
    let env = TestEnv::new().await;
    let registry = RegistryServer::start();
    fill_registry(&registry).await;
    let harbor = HarborApiServer::start(
        &registry.url(),
        &["stable", "community", "private"],
        Some((USER, PASSWORD)),
    );
    let name = harbor.name();
    configure_registry(
        &env,
        &name,
        &harbor.url(),
        &[
            ("type", "harbor2"),
            ("project", "stable,community"),
            ("username", USER),
            ("password", PASSWORD),
        ],
    )
    .await;

    let output = success(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(
        output.contains(&format!(
            "registry {name}: 18 added, 0 updated, 0 unchanged, 1 skipped, 0 failed"
        )),
        "{output}"
    );
    assert!(
        output.contains("skipped community/bad:1.0/x86_64: ai.backend.role \"BATCH\""),
        "{output}"
    );
    assert!(harbor.api_requests() > 0);
    // The default cap of 4 concurrent requests per registry held.
    assert!(harbor.max_in_flight() <= 4, "{}", harbor.max_in_flight());

    let rows = image_rows(&env).await;
    assert_eq!(rows.len(), 18);
    for i in 0..12 {
        let kernel = row(
            &rows,
            &format!("{name}/stable/kernel-{i:02}:1.0-ubuntu22.04"),
            "x86_64",
        );
        assert_eq!(kernel.project.as_deref(), Some("stable"));
    }
    for tag in ["3.11", "3.12"] {
        row(&rows, &format!("{name}/community/python:{tag}"), "x86_64");
        row(&rows, &format!("{name}/community/python:{tag}"), "aarch64");
    }
    row(&rows, &format!("{name}/community/r:4.3"), "x86_64");
    row(&rows, &format!("{name}/community/r:latest"), "x86_64");
    assert!(rows.iter().all(|r| !r.name.contains("/private/")));

    let again = success(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(
        again.contains("0 added, 0 updated, 18 unchanged"),
        "{again}"
    );
    assert_eq!(image_rows(&env).await, rows);
}

#[tokio::test]
async fn harbor_failures_name_the_project_or_the_credentials() {
    let env = TestEnv::new().await;
    let registry = RegistryServer::start();
    fill_registry(&registry).await;
    let harbor = HarborApiServer::start(&registry.url(), &["stable"], Some((USER, PASSWORD)));
    let name = harbor.name();

    configure_registry(
        &env,
        &name,
        &harbor.url(),
        &[
            ("type", "harbor2"),
            ("project", "stable,nightly"),
            ("username", USER),
            ("password", PASSWORD),
        ],
    )
    .await;
    let missing = failure(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(
        missing.contains(&format!("registry {name} has no project \"nightly\"")),
        "{missing}"
    );

    configure_registry(
        &env,
        &name,
        &harbor.url(),
        &[("project", "stable"), ("password", "nope")],
    )
    .await;
    let rejected = failure(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(rejected.contains("rejected the credentials"), "{rejected}");
    assert!(image_rows(&env).await.is_empty());

    // Harbor keeps the catalog for admins, so a `docker` type cannot list it.
    configure_registry(
        &env,
        &name,
        &harbor.url(),
        &[("type", "docker"), ("password", PASSWORD)],
    )
    .await;
    let catalog = failure(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(catalog.contains("v2/_catalog"), "{catalog}");
}

#[tokio::test]
async fn harbor_v1_registries_and_a_lower_request_cap_work() {
    let env = TestEnv::new().await;
    let registry = RegistryServer::start();
    fill_registry(&registry).await;
    let harbor = HarborApiServer::start(&registry.url(), &["stable", "community"], None);
    let name = harbor.name();
    configure_registry(
        &env,
        &name,
        &harbor.url(),
        &[("type", "harbor"), ("project", "community")],
    )
    .await;

    let output = success(&bai_manager(
        &env,
        &["image", "rescan", &name, "--max-concurrency", "2"],
    ));
    assert!(
        output.contains(&format!(
            "registry {name}: 6 added, 0 updated, 0 unchanged, 1 skipped, 0 failed"
        )),
        "{output}"
    );
    assert!(harbor.max_in_flight() <= 2, "{}", harbor.max_in_flight());
    let rows = image_rows(&env).await;
    assert!(
        rows.iter()
            .all(|r| r.project.as_deref() == Some("community"))
    );
}
