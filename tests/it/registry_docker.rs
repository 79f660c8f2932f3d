//! `image rescan` against a real Docker Distribution registry with images pushed without
//! Docker: single-architecture and multi-architecture tags, OCI and Docker media types,
//! idempotent rescans, broken content, and the clear failures.

use bai_testkit::TestEnv;
use bai_testkit::image_push::{ImagePusher, ManifestFormat, PushAuth, TestImage, kernel_labels};
use bai_testkit::registry::RegistryServer;
use serde_json::json;

use crate::registry_common::{bai_manager, configure_registry, failure, image_rows, row, success};

#[tokio::test]
async fn rescan_stores_every_architecture_with_its_labels_and_a_second_rescan_changes_nothing() {
    let env = TestEnv::new().await;
    let registry = RegistryServer::start();
    let pusher = ImagePusher::new(&registry.url(), PushAuth::None);
    let docker_single = pusher
        .push_image(
            "testing/python",
            "3.9-ubuntu20.04",
            &TestImage::kernel("amd64"),
            ManifestFormat::Docker,
        )
        .await;
    let oci_single = pusher
        .push_image(
            "testing/python",
            "3.9-oci",
            &TestImage::kernel("arm64").with_label("ai.backend.accelerators", ""),
            ManifestFormat::Oci,
        )
        .await;
    let docker_list = pusher
        .push_multi_arch(
            "testing/multi",
            "1.0-ubuntu22.04",
            &[TestImage::kernel("amd64"), TestImage::kernel("arm64")],
            ManifestFormat::Docker,
        )
        .await;
    let oci_index = pusher
        .push_multi_arch(
            "testing/multi-oci",
            "2.0",
            &[
                TestImage::kernel("amd64").with_label("ai.backend.resource.min.cuda.device", "1"),
                TestImage::kernel("arm64"),
            ],
            ManifestFormat::Oci,
        )
        .await;
    let vanilla = pusher
        .push_image(
            "testing/vanilla",
            "latest",
            &TestImage::new("amd64", Default::default()),
            ManifestFormat::Oci,
        )
        .await;
    // Another project of the same registry, not configured for scanning.
    pusher
        .push_image(
            "other/python",
            "1.0",
            &TestImage::kernel("amd64"),
            ManifestFormat::Docker,
        )
        .await;
    let name = registry.name();
    configure_registry(
        &env,
        &name,
        &registry.url(),
        &[("type", "docker"), ("project", "testing")],
    )
    .await;

    let first = success(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(
        first.contains(&format!(
            "registry {name}: 7 added, 0 updated, 0 unchanged, 0 skipped, 0 failed"
        )),
        "{first}"
    );

    let rows = image_rows(&env).await;
    assert_eq!(rows.len(), 7, "{rows:#?}");
    let python = row(
        &rows,
        &format!("{name}/testing/python:3.9-ubuntu20.04"),
        "x86_64",
    );
    assert_eq!(python.registry, name);
    assert_eq!(python.project.as_deref(), Some("testing"));
    assert_eq!(python.image.as_deref(), Some("testing/python"));
    assert_eq!(python.tag.as_deref(), Some("3.9-ubuntu20.04"));
    assert_eq!(python.config_digest, docker_single.config_digest());
    assert_eq!(python.size_bytes, docker_single.size_bytes());
    assert_eq!(python.image_type, "COMPUTE");
    assert_eq!(python.accelerators.as_deref(), Some("cuda"));
    assert_eq!(
        python.labels,
        serde_json::to_value(kernel_labels()).unwrap()
    );
    assert_eq!(
        python.resources,
        json!({"cpu": {"min": "1", "max": null}, "mem": {"min": "256m", "max": null}})
    );

    // A single-architecture OCI tag takes its architecture from the config blob.
    let oci = row(&rows, &format!("{name}/testing/python:3.9-oci"), "aarch64");
    assert_eq!(oci.config_digest, oci_single.config_digest());
    assert_eq!(oci.accelerators, None);

    for (image, built) in [
        ("testing/multi:1.0-ubuntu22.04", &docker_list),
        ("testing/multi-oci:2.0", &oci_index),
    ] {
        let amd64 = row(&rows, &format!("{name}/{image}"), "x86_64");
        let arm64 = row(&rows, &format!("{name}/{image}"), "aarch64");
        assert_eq!(amd64.config_digest, built[0].config_digest());
        assert_eq!(arm64.config_digest, built[1].config_digest());
        assert_eq!(arm64.size_bytes, built[1].size_bytes());
    }
    let gpu = row(&rows, &format!("{name}/testing/multi-oci:2.0"), "x86_64");
    assert_eq!(
        gpu.resources["cuda.device"],
        json!({"min": "1", "max": null})
    );

    // An image without Backend.AI labels is kept with the default minimums, for any accelerator.
    let plain = row(&rows, &format!("{name}/testing/vanilla:latest"), "x86_64");
    assert_eq!(plain.config_digest, vanilla.config_digest());
    assert_eq!(plain.accelerators.as_deref(), Some("*"));
    assert_eq!(
        plain.resources,
        json!({"cpu": {"min": "1", "max": null}, "mem": {"min": "1073741824", "max": null}})
    );
    assert!(rows.iter().all(|r| !r.name.contains("/other/")));

    let second = success(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(
        second.contains("0 added, 0 updated, 7 unchanged, 0 skipped, 0 failed"),
        "{second}"
    );
    assert_eq!(
        image_rows(&env).await,
        rows,
        "a second rescan must not touch any row"
    );

    // A tag pushed again with new content updates its row in place.
    let rebuilt = pusher
        .push_image(
            "testing/python",
            "3.9-ubuntu20.04",
            &TestImage::kernel("amd64").with_label("ai.backend.resource.min.mem", "512m"),
            ManifestFormat::Docker,
        )
        .await;
    let third = success(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(third.contains("0 added, 1 updated, 6 unchanged"), "{third}");
    let rows_after = image_rows(&env).await;
    let updated = row(&rows_after, &python.name, "x86_64");
    assert_eq!(updated.id, python.id);
    assert_eq!(updated.config_digest, rebuilt.config_digest());
    assert_eq!(
        updated.resources["mem"],
        json!({"min": "512m", "max": null})
    );
}

#[tokio::test]
async fn broken_content_is_reported_and_the_rest_is_stored() {
    let env = TestEnv::new().await;
    let registry = RegistryServer::start();
    let pusher = ImagePusher::new(&registry.url(), PushAuth::None);
    pusher
        .push_image(
            "testing/good",
            "1.0",
            &TestImage::kernel("amd64"),
            ManifestFormat::Docker,
        )
        .await;
    // A manifest whose config blob has been removed from the repository.
    let orphan = pusher
        .push_image(
            "testing/missing-blob",
            "1.0",
            &TestImage::kernel("amd64"),
            ManifestFormat::Oci,
        )
        .await;
    pusher
        .delete_blob("testing/missing-blob", &orphan.config_digest())
        .await;
    // A config blob that is not JSON.
    let not_json = bai_testkit::image_push::build_with_config(
        ManifestFormat::Docker,
        "amd64",
        b"{\"config\": {\"Labels\": {".to_vec(),
        orphan.layer.clone(),
    );
    pusher
        .push_built("testing/not-json", "1.0", &not_json)
        .await;
    // Labels Backend.AI rejects.
    pusher
        .push_image(
            "testing/bad-labels",
            "1.0",
            &TestImage::kernel("amd64").with_label("ai.backend.kernelspec", "two"),
            ManifestFormat::Docker,
        )
        .await;
    // One good and one broken architecture under the same tag.
    let mixed = pusher
        .push_multi_arch(
            "testing/mixed",
            "1.0",
            &[
                TestImage::kernel("amd64"),
                TestImage::kernel("arm64").with_label("ai.backend.service-ports", "web:udp:8080"),
            ],
            ManifestFormat::Oci,
        )
        .await;
    let name = registry.name();
    configure_registry(&env, &name, &registry.url(), &[]).await;

    let output = success(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(
        output.contains(&format!(
            "registry {name}: 2 added, 0 updated, 0 unchanged, 2 skipped, 2 failed"
        )),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "failed testing/missing-blob:1.0/?: the config blob {} is missing from the registry",
            orphan.config_digest()
        )),
        "{output}"
    );
    assert!(
        output.contains("failed testing/not-json:1.0/?: config blob")
            && output.contains("is not valid JSON"),
        "{output}"
    );
    assert!(
        output.contains(
            "skipped testing/bad-labels:1.0/x86_64: ai.backend.kernelspec \"two\" is not an integer"
        ),
        "{output}"
    );
    assert!(
        output
            .contains("skipped testing/mixed:1.0/aarch64: unsupported service port protocol: udp"),
        "{output}"
    );
    let rows = image_rows(&env).await;
    let names: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.name.as_str(), r.architecture.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            (format!("{name}/testing/good:1.0").as_str(), "x86_64"),
            (format!("{name}/testing/mixed:1.0").as_str(), "x86_64"),
        ]
    );
    assert_eq!(rows[1].config_digest, mixed[0].config_digest());
}

#[tokio::test]
async fn one_image_can_be_rescanned_by_its_reference() {
    let env = TestEnv::new().await;
    let registry = RegistryServer::start();
    let pusher = ImagePusher::new(&registry.url(), PushAuth::None);
    for tag in ["3.9", "3.10"] {
        pusher
            .push_image(
                "testing/python",
                tag,
                &TestImage::kernel("amd64"),
                ManifestFormat::Docker,
            )
            .await;
    }
    let name = registry.name();
    configure_registry(&env, &name, &registry.url(), &[("project", "testing")]).await;

    let reference = format!("{name}/testing/python:3.10");
    let output = success(&bai_manager(&env, &["image", "rescan", &reference]));
    assert!(output.contains("1 added"), "{output}");
    let rows = image_rows(&env).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, reference);
}

#[tokio::test]
async fn unknown_and_unreachable_registries_fail_clearly_and_write_nothing() {
    let env = TestEnv::new().await;
    let registry = RegistryServer::start();
    let pusher = ImagePusher::new(&registry.url(), PushAuth::None);
    pusher
        .push_image(
            "testing/python",
            "1.0",
            &TestImage::kernel("amd64"),
            ManifestFormat::Docker,
        )
        .await;
    configure_registry(&env, &registry.name(), &registry.url(), &[]).await;
    let dead_port = bai_testkit::ports::free_port();
    let dead = format!("127.0.0.1:{dead_port}");
    configure_registry(&env, &dead, &format!("http://{dead}"), &[]).await;

    let unknown = failure(&bai_manager(&env, &["image", "rescan", "cr.example.com"]));
    assert!(
        unknown.contains("\"cr.example.com\" is an unknown registry (configured: 127.0.0.1:"),
        "{unknown}"
    );

    let unreachable = failure(&bai_manager(&env, &["image", "rescan", &dead]));
    assert!(
        unreachable.contains(&format!(
            "registry {dead} at http://{dead}/v2/ does not answer"
        )),
        "{unreachable}"
    );
    assert!(image_rows(&env).await.is_empty());

    // Scanning everything reports the dead registry and still stores the live one.
    let all = failure(&bai_manager(&env, &["image", "rescan"]));
    assert!(
        all.contains(&format!("registry {dead}: not scanned")),
        "{all}"
    );
    assert!(
        all.contains(&format!("registry {}: 1 added", registry.name())),
        "{all}"
    );
    assert_eq!(image_rows(&env).await.len(), 1);
}
