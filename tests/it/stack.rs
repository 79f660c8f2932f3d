//! The test stack itself: each service starts, answers, and is private to the test.

use bai_actors::etcd::{EtcdSettings, EtcdStore};
use bai_testkit::TestEnv;
use redis::AsyncCommands;

#[tokio::test]
async fn a_test_env_has_schema_etcd_namespace_and_redis() {
    let env = TestEnv::new().await;

    let db = env.db.connect().await;
    let tables: i64 = db
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('agents', 'sessions', 'kernels', 'keypairs')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 4);

    let store = EtcdStore::connect(&EtcdSettings {
        endpoints: vec![env.etcd_endpoint.clone()],
        namespace: env.namespace.clone(),
        user: None,
        password: None,
    })
    .await
    .unwrap();
    assert_eq!(
        store.get("config/redis/addr").await.unwrap(),
        Some(env.redis.addr())
    );

    let mut redis = env.redis.connection(4).await;
    let _: () = redis.set("k", "v").await.unwrap();
    let value: String = redis.get("k").await.unwrap();
    assert_eq!(value, "v");
}

#[tokio::test]
async fn two_envs_do_not_share_state() {
    let first = TestEnv::new().await;
    let second = TestEnv::new().await;
    assert_ne!(first.db.name, second.db.name);
    assert_ne!(first.namespace, second.namespace);
    assert_ne!(first.redis.port, second.redis.port);
    first.etcd_put("manager/status", "frozen").await;
    assert_eq!(second.etcd_get("manager/status").await, None);
}
