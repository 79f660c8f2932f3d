//! Stale-entry collection of the app-stream accounting against real Redis and etcd: members of
//! `session.{kernel}.active_app_connections` idle longer than etcd
//! `config/idle/app-streaming-packet-timeout` (`5m` when unset) go, by the Redis server's
//! clock; fresher members and other kernels' sets stay.

use bai_actors::etcd::{EtcdSettings, EtcdStore};
use bai_actors::interaction::stream_gc::{PACKET_TIMEOUT_KEY, collect_stale, read_packet_timeout};
use bai_actors::redis::{RedisSettings, db};
use bai_testkit::TestEnv;
use uuid::Uuid;

async fn members(redis: &mut redis::aio::ConnectionManager, kernel: Uuid) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(format!("session.{kernel}.active_app_connections"))
        .arg(0)
        .arg(-1)
        .query_async(redis)
        .await
        .unwrap()
}

#[tokio::test]
async fn stream_entries_idle_past_the_packet_timeout_are_collected() {
    let env = TestEnv::new().await;
    let mut redis = RedisSettings::parse(&env.redis.addr(), None)
        .unwrap()
        .connect(db::LIVE)
        .await
        .unwrap();
    let etcd = EtcdStore::connect(&EtcdSettings {
        endpoints: vec![env.etcd_endpoint.clone()],
        namespace: env.namespace.clone(),
        user: None,
        password: None,
    })
    .await
    .unwrap();
    let (kernel, other) = (Uuid::new_v4(), Uuid::new_v4());
    let (now, _micros): (f64, u64) = redis::cmd("TIME").query_async(&mut redis).await.unwrap();
    let key = format!("session.{kernel}.active_app_connections");
    for (member, age) in [("old", 400.0), ("mid", 100.0), ("fresh", 10.0)] {
        let _: i64 = redis::cmd("ZADD")
            .arg(&key)
            .arg(now - age)
            .arg(format!("{kernel}:app:{member}"))
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    let _: i64 = redis::cmd("ZADD")
        .arg(format!("session.{other}.active_app_connections"))
        .arg(now - 400.0)
        .arg(format!("{other}:app:old"))
        .query_async(&mut redis)
        .await
        .unwrap();

    // Unset: the original's 5 minutes.
    let timeout = read_packet_timeout(&etcd).await;
    assert_eq!(timeout, 300.0);
    let removed = collect_stale(&mut redis, &[kernel], timeout).await.unwrap();
    assert_eq!(removed, vec![(kernel, 1)]);
    let left = members(&mut redis, kernel).await;
    assert_eq!(
        left,
        vec![format!("{kernel}:app:mid"), format!("{kernel}:app:fresh")]
    );

    // A shorter timeout from etcd takes the idle one too.
    etcd.put(PACKET_TIMEOUT_KEY, "1m").await.unwrap();
    let timeout = read_packet_timeout(&etcd).await;
    assert_eq!(timeout, 60.0);
    collect_stale(&mut redis, &[kernel], timeout).await.unwrap();
    assert_eq!(
        members(&mut redis, kernel).await,
        vec![format!("{kernel}:app:fresh")]
    );
    // Kernels this worker has no stream of are not its business.
    assert_eq!(members(&mut redis, other).await.len(), 1);
}
