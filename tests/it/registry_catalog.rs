//! The image catalogue after a rescan: `image list/inspect/alias/dealias/forget/
//! set-resource-limit` on the CLI, the RegistrySync actor's messages (what GraphQL will send),
//! and images built and pushed by the real umoci + skopeo tool chain.

use std::process::Command;

use actix::Actor;
use bai_actors::etcd::{EtcdSettings, EtcdStore};
use bai_actors::registry_sync::{
    AliasImage, CatalogError, DealiasImage, ForgetImage, RegistrySync, Rescan, ScanOptions,
    ScanProgress,
};
use bai_schema::DbSettings;
use bai_schema::images::ImageDbError;
use bai_testkit::TestEnv;
use bai_testkit::image_push::{ImagePusher, ManifestFormat, PushAuth, TestImage};
use bai_testkit::registry::RegistryServer;
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::registry_common::{bai_manager, configure_registry, failure, image_rows, row, success};

async fn scanned_world() -> (TestEnv, RegistryServer, String) {
    let env = TestEnv::new().await;
    let registry = RegistryServer::start();
    let pusher = ImagePusher::new(&registry.url(), PushAuth::None);
    pusher
        .push_multi_arch(
            "stable/python",
            "3.9-ubuntu20.04",
            &[TestImage::kernel("amd64"), TestImage::kernel("arm64")],
            ManifestFormat::Docker,
        )
        .await;
    pusher
        .push_image(
            "stable/r",
            "4.3",
            &TestImage::kernel("amd64"),
            ManifestFormat::Oci,
        )
        .await;
    let name = registry.name();
    configure_registry(&env, &name, &registry.url(), &[("project", "stable")]).await;
    success(&bai_manager(&env, &["image", "rescan", &name]));
    (env, registry, name)
}

#[tokio::test]
async fn the_catalogue_verbs_work_on_rescanned_images() {
    let (env, _registry, name) = scanned_world().await;
    let python = format!("{name}/stable/python:3.9-ubuntu20.04");
    let r = format!("{name}/stable/r:4.3");
    let rows = image_rows(&env).await;

    let list = success(&bai_manager(&env, &["image", "list"]));
    assert_eq!(
        list,
        format!("{python} (aarch64)\n{python} (x86_64)\n{r} (x86_64)\n")
    );
    let short = success(&bai_manager(&env, &["image", "list", "--short"]));
    let digest = &row(&rows, &r, "x86_64").config_digest;
    assert!(
        short.contains(&format!(
            "{r}{}  {digest}\n",
            " ".repeat(python.len() - r.len())
        )),
        "{short}"
    );

    // Installed images come from Redis db 3: one set of agent ids per image name.
    let mut redis = env.redis.connection(3).await;
    let _: () = redis
        .sadd(&python, &["i-agent-2", "i-agent-1"])
        .await
        .unwrap();
    let installed = success(&bai_manager(&env, &["image", "list", "--installed"]));
    assert_eq!(
        installed,
        format!(
            "{python} (aarch64) @ i-agent-1 i-agent-2\n{python} (x86_64) @ i-agent-1 i-agent-2\n"
        )
    );

    success(&bai_manager(
        &env,
        &["image", "alias", "python", &python, "aarch64"],
    ));
    let duplicate = failure(&bai_manager(
        &env,
        &["image", "alias", "python", &r, "x86_64"],
    ));
    assert!(
        duplicate.contains("the alias \"python\" already points to"),
        "{duplicate}"
    );
    let inspected: Value = serde_json::from_str(&success(&bai_manager(
        &env,
        &["image", "inspect", "python", "x86_64"],
    )))
    .unwrap();
    assert_eq!(inspected["canonical_ref"], json!(python));
    assert_eq!(inspected["architecture"], json!("aarch64"));
    assert_eq!(inspected["reverse_aliases"], json!(["python"]));
    assert_eq!(inspected["supported_accelerators"], json!(["cuda"]));
    assert_eq!(
        inspected["resource_limits"],
        json!([{"key": "cpu", "min": "1", "max": "Infinity"}, {"key": "mem", "min": "256m", "max": "Infinity"}])
    );

    success(&bai_manager(
        &env,
        &["image", "set-resource-limit", &r, "cpu", "2:8", "x86_64"],
    ));
    success(&bai_manager(
        &env,
        &[
            "image",
            "set-resource-limit",
            &r,
            "cuda.shares",
            ":1.5",
            "x86_64",
        ],
    ));
    let rows = image_rows(&env).await;
    assert_eq!(
        row(&rows, &r, "x86_64").resources,
        json!({"cpu": {"min": "2", "max": "8"}, "mem": {"min": "256m", "max": null}, "cuda.shares": {"max": "1.5"}})
    );
    let bad_range = bai_manager(
        &env,
        &["image", "set-resource-limit", &r, "cpu", "x:1", "x86_64"],
    );
    assert_eq!(bad_range.status.code(), Some(2));

    success(&bai_manager(&env, &["image", "dealias", "python"]));
    let gone = failure(&bai_manager(&env, &["image", "dealias", "python"]));
    assert!(
        gone.contains("the alias \"python\" does not exist"),
        "{gone}"
    );

    success(&bai_manager(&env, &["image", "forget", &python, "aarch64"]));
    let missing = failure(&bai_manager(
        &env,
        &["image", "inspect", "nothing:1.0", "x86_64"],
    ));
    assert!(missing.contains("image not found"), "{missing}");
    let remaining: Vec<(String, String)> = image_rows(&env)
        .await
        .into_iter()
        .map(|r| (r.name, r.architecture))
        .collect();
    assert_eq!(
        remaining,
        vec![
            (python.clone(), "x86_64".to_owned()),
            (r.clone(), "x86_64".to_owned())
        ]
    );
}

#[actix_web::test]
async fn the_actor_rescans_with_progress_and_edits_the_catalogue() {
    let (env, registry, name) = scanned_world().await;
    let etcd = EtcdStore::connect(&EtcdSettings {
        endpoints: vec![env.etcd_endpoint.clone()],
        namespace: env.namespace.clone(),
        user: None,
        password: None,
    })
    .await
    .unwrap();
    let db = DbSettings {
        host: env.db.host.clone(),
        port: env.db.port,
        name: env.db.name.clone(),
        user: env.db.user.clone(),
        password: String::new(),
        pool_size: 2,
    }
    .connect_pool()
    .await
    .unwrap();
    let actor = RegistrySync::new(etcd, db, ScanOptions::default()).start();
    ImagePusher::new(&registry.url(), PushAuth::None)
        .push_image(
            "stable/julia",
            "1.10",
            &TestImage::kernel("amd64"),
            ManifestFormat::Docker,
        )
        .await;

    let (progress, mut events) = tokio::sync::mpsc::unbounded_channel();
    let report = actor
        .send(Rescan {
            target: Some(name.clone()),
            progress: Some(progress),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.added(), report.unchanged()), (1, 3));
    let mut found = 0;
    let mut scanned = Vec::new();
    while let Ok(event) = events.try_recv() {
        match event {
            ScanProgress::TagsFound { count, .. } => found += count,
            ScanProgress::TagScanned { reference, .. } => scanned.push(reference),
            _ => {}
        }
    }
    scanned.sort();
    assert_eq!(found, 3);
    assert_eq!(
        scanned,
        vec![
            "stable/julia:1.10",
            "stable/python:3.9-ubuntu20.04",
            "stable/r:4.3"
        ]
    );

    let julia = format!("{name}/stable/julia:1.10");
    let aliased = actor
        .send(AliasImage {
            alias: "julia".to_owned(),
            target: julia.clone(),
            architecture: "x86_64".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(aliased.name, julia);
    actor
        .send(DealiasImage {
            alias: "julia".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();
    let forgotten = actor
        .send(ForgetImage {
            reference: julia.clone(),
            architecture: "x86_64".to_owned(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(forgotten.name, julia);
    let again = actor
        .send(ForgetImage {
            reference: julia,
            architecture: "x86_64".to_owned(),
        })
        .await
        .unwrap();
    assert!(matches!(
        again,
        Err(CatalogError::Image(ImageDbError::NotFound { .. }))
    ));

    let unknown = actor
        .send(Rescan {
            target: Some("nope.example.com".to_owned()),
            progress: None,
        })
        .await
        .unwrap();
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown registry")
    );
}

/// Runs a tool of the umoci/skopeo chain in `dir`.
fn tool(dir: &std::path::Path, program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn images_built_by_umoci_and_pushed_by_skopeo_are_scanned() {
    let env = TestEnv::new().await;
    let registry = RegistryServer::start();
    let dir = env.path("umoci");
    std::fs::create_dir_all(dir.join("src/opt/hello")).unwrap();
    std::fs::write(dir.join("src/opt/hello/hello.py"), "print('hello')\n").unwrap();
    tool(&dir, "umoci", &["init", "--layout", "oci"]);
    tool(&dir, "umoci", &["new", "--image", "oci:img"]);
    tool(
        &dir,
        "umoci",
        &[
            "insert",
            "--image",
            "oci:img",
            "src/opt/hello",
            "/opt/hello",
        ],
    );
    tool(
        &dir,
        "umoci",
        &[
            "config",
            "--image",
            "oci:img",
            "--architecture",
            "amd64",
            "--os",
            "linux",
            "--config.cmd",
            "/bin/sh",
            "--config.label",
            "ai.backend.kernelspec=1",
            "--config.label",
            "ai.backend.features=batch query uid-match user-input",
            "--config.label",
            "ai.backend.base-distro=ubuntu20.04",
            "--config.label",
            "ai.backend.resource.min.cpu=1",
            "--config.label",
            "ai.backend.resource.min.mem=256m",
            "--config.label",
            "ai.backend.runtime-type=python",
            "--config.label",
            "ai.backend.runtime-path=/usr/bin/python3",
            "--config.label",
            "ai.backend.service-ports=ipython:pty:3000,jupyter:http:8081",
        ],
    );
    let target = |tag: &str| format!("docker://{}/testing/python:{tag}", registry.name());
    tool(
        &dir,
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "oci:oci:img",
            &target("oci"),
        ],
    );
    tool(
        &dir,
        "skopeo",
        &[
            "copy",
            "-q",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
            "oci:oci:img",
            &target("v2s2"),
        ],
    );
    let name = registry.name();
    configure_registry(&env, &name, &registry.url(), &[]).await;

    let output = success(&bai_manager(&env, &["image", "rescan", &name]));
    assert!(
        output.contains("2 added, 0 updated, 0 unchanged, 0 skipped, 0 failed"),
        "{output}"
    );
    let rows = image_rows(&env).await;
    for tag in ["oci", "v2s2"] {
        let image = row(&rows, &format!("{name}/testing/python:{tag}"), "x86_64");
        assert_eq!(
            image.labels["ai.backend.runtime-path"],
            json!("/usr/bin/python3")
        );
        assert_eq!(image.resources["mem"], json!({"min": "256m", "max": null}));
        assert_eq!(image.accelerators, None);
    }
}

#[actix_web::test]
async fn the_actor_timer_rescans_by_itself() {
    let env = TestEnv::new().await;
    let registry = RegistryServer::start();
    let name = registry.name();
    configure_registry(&env, &name, &registry.url(), &[]).await;
    let etcd = EtcdStore::connect(&EtcdSettings {
        endpoints: vec![env.etcd_endpoint.clone()],
        namespace: env.namespace.clone(),
        user: None,
        password: None,
    })
    .await
    .unwrap();
    let db = DbSettings {
        host: env.db.host.clone(),
        port: env.db.port,
        name: env.db.name.clone(),
        user: env.db.user.clone(),
        password: String::new(),
        pool_size: 2,
    }
    .connect_pool()
    .await
    .unwrap();
    let _actor = RegistrySync::new(etcd, db, ScanOptions::default())
        .with_rescan_interval(std::time::Duration::from_millis(200))
        .start();
    ImagePusher::new(&registry.url(), PushAuth::None)
        .push_image(
            "stable/go",
            "1.22",
            &TestImage::kernel("amd64"),
            ManifestFormat::Docker,
        )
        .await;
    // Wait (up to a generous bound) for a periodic rescan to store the pushed image.
    let mut rows = Vec::new();
    for _ in 0..150 {
        rows = image_rows(&env).await;
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rows.len(), 1, "no periodic rescan stored the image");
    assert_eq!(rows[0].name, format!("{name}/stable/go:1.22"));
}
