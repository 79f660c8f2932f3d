//! The storage-proxy client and the storage broker against the real storage proxy 23.09.10.

use std::time::Duration;

use bai_actors::etcd::{EtcdSettings, EtcdStore};
use bai_actors::storage::client::Deletion;
use bai_actors::storage::config::ProxyConfig;
use bai_actors::storage::{
    EntryName, ProxyClient, QuotaScopeId, Secret, StorageBroker, StorageError, VFolderId,
    VFolderPath,
};
use bai_testkit::{StorageProxyServer, TestEnv};
use uuid::Uuid;

/// A checked path inside the test folder.
fn rel(text: &str) -> VFolderPath {
    VFolderPath::parse(text).unwrap()
}

fn client_for(proxy: &StorageProxyServer, secret: &str) -> ProxyClient {
    ProxyClient::new(ProxyConfig {
        name: "local".into(),
        client_api: proxy.client_api().parse().unwrap(),
        manager_api: proxy.manager_api().parse().unwrap(),
        secret: Secret::new(secret),
        ssl_verify: false,
        sftp_scaling_groups: vec![],
    })
    .unwrap()
}

async fn etcd_store(env: &TestEnv) -> EtcdStore {
    EtcdStore::connect(&EtcdSettings {
        endpoints: vec![env.etcd_endpoint.clone()],
        namespace: env.namespace.clone(),
        user: None,
        password: None,
    })
    .await
    .unwrap()
}

fn test_log() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

#[tokio::test]
async fn folders_and_files_go_through_the_real_proxy() {
    let env = TestEnv::new().await;
    let proxy = StorageProxyServer::start(&env);
    let client = client_for(&proxy, &proxy.secret);

    let volumes = client.volumes().await.unwrap();
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].name, "volume1");
    assert_eq!(volumes[0].backend, "vfs");
    assert_eq!(volumes[0].capabilities, vec!["vfolder"]);

    let usage = client.fs_usage("volume1").await.unwrap();
    assert!(usage.capacity_bytes > 0 && usage.used_bytes <= usage.capacity_bytes);

    let user = Uuid::new_v4();
    let vfid = VFolderId::new(QuotaScopeId::user(user), Uuid::new_v4());
    let on_disk = proxy.folder_path(user, vfid.folder_id);
    client
        .create_folder("volume1", &vfid, Default::default())
        .await
        .unwrap();
    assert!(on_disk.is_dir(), "{} was not created", on_disk.display());

    let usage = client.folder_usage("volume1", &vfid).await.unwrap();
    assert_eq!((usage.file_count, usage.used_bytes), (0, 0));

    client
        .mkdir("volume1", &vfid, &rel("sub"), false, false)
        .await
        .unwrap();
    assert!(on_disk.join("sub").is_dir());
    // Making it again without exist_ok: the proxy's error, with its message, comes back.
    let err = client
        .mkdir("volume1", &vfid, &rel("sub"), false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::Rejected { status: 400, body, .. } if body.contains_key("msg")),
        "{err:?}"
    );

    let files = client
        .list_files("volume1", &vfid, &VFolderPath::root())
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].name.as_str(), files[0].file_type.as_str()),
        ("sub", "DIRECTORY")
    );

    client
        .rename_file(
            "volume1",
            &vfid,
            &rel("sub"),
            &EntryName::parse("renamed").unwrap(),
        )
        .await
        .unwrap();
    assert!(on_disk.join("renamed").is_dir() && !on_disk.join("sub").exists());

    // A download token relayed from the proxy works at the proxy's client API.
    std::fs::write(on_disk.join("hello.txt"), b"hello from the vfs volume").unwrap();
    let token = client
        .download_token("volume1", &vfid, &rel("hello.txt"), false, None)
        .await
        .unwrap();
    let body = reqwest::Client::new()
        .get(format!("{}?token={token}", client.client_url("download")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"hello from the vfs volume");
    let upload = client
        .upload_token("volume1", &vfid, &rel("up.bin"), 3)
        .await
        .unwrap();
    assert!(!upload.is_empty());

    client
        .delete_files("volume1", &vfid, &[rel("hello.txt")], false)
        .await
        .unwrap();
    assert!(!on_disk.join("hello.txt").exists());

    let mount = client
        .mount_path("volume1", &vfid, &VFolderPath::root())
        .await
        .unwrap();
    assert_eq!(
        std::path::Path::new(&mount).canonicalize().unwrap(),
        on_disk.canonicalize().unwrap()
    );

    assert_eq!(
        client.delete_folder("volume1", &vfid).await.unwrap(),
        Deletion::Deleted
    );
    assert!(!on_disk.exists(), "{} is still there", on_disk.display());
    // Deleting again succeeds: a delete interrupted after the proxy's part can be retried.
    assert!(client.delete_folder("volume1", &vfid).await.is_ok());
}

#[tokio::test]
async fn a_wrong_secret_and_a_stopped_proxy_are_named_errors() {
    let env = TestEnv::new().await;
    let mut proxy = StorageProxyServer::start(&env);

    let wrong = client_for(&proxy, "not-the-secret");
    let err = wrong.volumes().await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Failed { status: 403, proxy, .. } if proxy == "local"),
        "{err:?}"
    );

    let client = client_for(&proxy, &proxy.secret);
    proxy.stop();
    let err = client.volumes().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("storage proxy local is unreachable"),
        "{text}"
    );
    assert!(!text.contains(&proxy.secret), "{text}");
}

#[actix_web::test]
async fn the_broker_follows_the_etcd_configuration() {
    let env = TestEnv::new().await;
    let proxy = StorageProxyServer::start(&env);
    let etcd = etcd_store(&env).await;

    // Nothing configured yet: no proxies, the implied user type.
    let mut broker = StorageBroker::start(etcd.clone(), test_log())
        .await
        .unwrap();
    let view = broker.current();
    assert_eq!(view.proxy_names().count(), 0);
    assert_eq!(view.config.vfolder_types, vec!["user"]);
    assert!(matches!(
        view.resolve("local:volume1"),
        Err(StorageError::UnknownProxy { .. })
    ));

    // The proxy appears once etcd has it, without a restart.
    proxy.register(&env, "local").await;
    let view = wait_for(&mut broker, |v| v.client("local").is_ok()).await;
    assert_eq!(view.config.default_host.as_deref(), Some("local:volume1"));
    let volumes = view.all_volumes().await.unwrap();
    assert_eq!(volumes[0].host(), "local:volume1");

    // A rotated secret is picked up: the old one stops working at once.
    env.etcd_put("volumes/proxies/local/secret", "rotated")
        .await;
    let view = wait_for(&mut broker, |v| {
        v.client("local")
            .map(|c| c.config().secret.expose() == "rotated")
            .unwrap_or(false)
    })
    .await;
    let err = view.all_volumes().await.unwrap_err();
    assert_eq!(err.proxy_status(), Some(403));

    // A broken entry is reported by key and left out; the good proxy stays.
    env.etcd_put("volumes/proxies/local/secret", &proxy.secret)
        .await;
    env.etcd_put("volumes/proxies/broken/client_api", "not a url")
        .await;
    let view = wait_for(&mut broker, |v| !v.problems.is_empty()).await;
    assert_eq!(view.problems[0].key, "volumes/proxies/broken/client_api");
    assert!(view.all_volumes().await.is_ok());

    // An explicit reload gives the same view.
    let reloaded = broker.reload().await.unwrap();
    assert_eq!(reloaded.config, broker.current().config);
}

/// Waits for the broker's view to satisfy `ready`, for at most a generous bound.
async fn wait_for(
    broker: &mut StorageBroker,
    ready: impl Fn(&bai_actors::storage::ProxySet) -> bool,
) -> std::sync::Arc<bai_actors::storage::ProxySet> {
    for _ in 0..100 {
        let view = broker.current();
        if ready(&view) {
            return view;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), broker.changed()).await;
    }
    panic!("the storage broker never saw the expected configuration");
}
