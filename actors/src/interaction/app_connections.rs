//! Stream accounting as the original keeps it for the idle checker: each open app stream is a
//! member `{kernel_id}:{service}:{stream_id}` of the sorted set
//! `session.{kernel_id}.active_app_connections` in the live Redis database (db 2), scored
//! with the Redis time of its last traffic. A stream adds itself when it opens, refreshes its
//! score at most every [`REFRESH_INTERVAL`] while bytes flow, and removes itself when it ends.

use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use uuid::Uuid;

/// The least time between two score refreshes of one stream (the original refreshes through
/// `call_non_bursty`, i.e. at most once per burst of traffic).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// The sorted set of a kernel's open app streams.
pub fn tracker_key(kernel_id: Uuid) -> String {
    format!("session.{kernel_id}.active_app_connections")
}

/// The member of one stream.
pub fn tracker_member(kernel_id: Uuid, service: &str, stream_id: &str) -> String {
    format!("{kernel_id}:{service}:{stream_id}")
}

/// Sets the member's score to the Redis server's time (one script: no clock skew between
/// managers decides which streams look idle).
const TOUCH_SCRIPT: &str = "local now = redis.call('TIME')
now = now[1] + (now[2] / (10^6))
redis.call('ZADD', KEYS[1], now, ARGV[1])
return 1";

/// One open app stream's entry.
pub struct AppConnection {
    redis: ConnectionManager,
    key: String,
    member: String,
    last_touch: Instant,
    /// The last refresh, still in flight: [`AppConnection::close`] waits for it, or a refresh
    /// landing after the removal would leave the stream in the set for good (and keep the
    /// session alive for the idle checker).
    refreshing: Option<tokio::task::JoinHandle<()>>,
}

impl AppConnection {
    /// Adds the stream to its kernel's set.
    pub async fn open(
        redis: ConnectionManager,
        kernel_id: Uuid,
        service: &str,
        stream_id: &str,
    ) -> Result<AppConnection, redis::RedisError> {
        let mut connection = AppConnection {
            redis,
            key: tracker_key(kernel_id),
            member: tracker_member(kernel_id, service, stream_id),
            last_touch: Instant::now(),
            refreshing: None,
        };
        connection.write_touch().await?;
        Ok(connection)
    }

    async fn write_touch(&mut self) -> Result<(), redis::RedisError> {
        redis::Script::new(TOUCH_SCRIPT)
            .key(&self.key)
            .arg(&self.member)
            .invoke_async::<i64>(&mut self.redis)
            .await
            .map(|_| ())
    }

    /// Bytes flowed: refreshes the score when the last refresh is old enough. The write runs
    /// on its own task so traffic never waits for Redis.
    pub fn touch(&mut self) {
        if self.last_touch.elapsed() < REFRESH_INTERVAL {
            return;
        }
        if self
            .refreshing
            .as_ref()
            .is_some_and(|task| !task.is_finished())
        {
            return;
        }
        self.last_touch = Instant::now();
        let mut redis = self.redis.clone();
        let (key, member) = (self.key.clone(), self.member.clone());
        self.refreshing = Some(tokio::spawn(async move {
            let _ = redis::Script::new(TOUCH_SCRIPT)
                .key(&key)
                .arg(&member)
                .invoke_async::<i64>(&mut redis)
                .await;
        }));
    }

    /// Removes the stream from its kernel's set, after any refresh still in flight.
    pub async fn close(mut self) {
        if let Some(refreshing) = self.refreshing.take() {
            let _ = tokio::time::timeout(REFRESH_INTERVAL, refreshing).await;
        }
        let _ = redis::cmd("ZREM")
            .arg(&self.key)
            .arg(&self.member)
            .query_async::<i64>(&mut self.redis)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_originals() {
        let kernel = Uuid::from_u128(7);
        assert_eq!(
            tracker_key(kernel),
            format!("session.{kernel}.active_app_connections")
        );
        assert_eq!(
            tracker_member(kernel, "jupyter", "ab12"),
            format!("{kernel}:jupyter:ab12")
        );
    }
}
