//! The storage-proxy client against the real storage proxy 23.09.10.

use bai_testkit::{StorageProxyServer, TestEnv};

#[tokio::test]
async fn the_real_proxy_starts_and_lists_its_volume() {
    let env = TestEnv::new().await;
    let proxy = StorageProxyServer::start(&env);
    let reply: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/volumes", proxy.manager_api()))
        .header("X-BackendAI-Storage-Auth-Token", &proxy.secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["volumes"][0]["name"], "volume1", "{}", proxy.log());
}
