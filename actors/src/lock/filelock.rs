//! The `filelock` backend: `flock(2)` on `{ipc-base-path}/{manager-id}.{name}.lock`, for the
//! worker processes of one manager on one host.
//!
//! The file also holds the last token handed out. A new token is the larger of that plus one
//! and the current time in microseconds, so tokens keep growing even if the file is removed
//! (e.g. by a tmp cleaner). A flock dies only with its process, so this backend never loses a
//! lock it holds; a paused holder simply keeps it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use super::LockError;

/// How often a waiter retries a busy flock (a blocking flock could not be cancelled).
const RETRY_INTERVAL: Duration = Duration::from_millis(50);

pub struct HeldFileLock {
    _lock: Flock<File>,
}

pub fn lock_path(dir: &Path, manager_id: &str, name: &str) -> PathBuf {
    dir.join(format!("{manager_id}.{name}.lock"))
}

/// Waits up to `wait` for the lock; `Ok(None)` when it stayed busy.
pub async fn acquire(
    path: &Path,
    wait: Duration,
) -> Result<Option<(HeldFileLock, i64)>, LockError> {
    let io_err = |source: std::io::Error| LockError::File {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let deadline = Instant::now() + wait;
    loop {
        // Opening, locking and the token's fsync are blocking calls: off the async thread, so
        // a slow disk does not stall the actors that share it.
        let attempt_path = path.to_owned();
        let attempt = tokio::task::spawn_blocking(move || try_lock(&attempt_path))
            .await
            .map_err(|join| io_err(std::io::Error::other(join.to_string())))?;
        if let Some(held) = attempt.map_err(io_err)? {
            return Ok(Some(held));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// One non-blocking attempt: the lock and its new token, or `None` when it is busy.
fn try_lock(path: &Path) -> std::io::Result<Option<(HeldFileLock, i64)>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let token = next_token(&mut lock)?;
            Ok(Some((HeldFileLock { _lock: lock }, token)))
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(std::io::Error::from(errno)),
    }
}

fn next_token(file: &mut File) -> std::io::Result<i64> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_string(&mut text)?;
    let previous: i64 = text.trim().parse().unwrap_or(0);
    let now_micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let token = previous.saturating_add(1).max(now_micros);
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(token.to_string().as_bytes())?;
    file.sync_data()?;
    Ok(token)
}
