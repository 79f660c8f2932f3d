//! Free loopback ports, never handed out twice while a test run lasts, even across the test
//! processes cargo-nextest starts (one per test).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A claim older than this is left over from an earlier run (test runs are far shorter), so
/// its port may be handed out again.
const STALE_CLAIM_AGE: Duration = Duration::from_secs(3 * 3600);

/// Where processes record the ports they handed out: one empty file per port, created
/// exclusively, so two processes never both get a port the kernel offered each of them.
/// `deploy/test.sh` gives each run a fresh folder (`BAI_TEST_PORT_CLAIMS`).
fn claims_dir() -> PathBuf {
    let dir = match std::env::var_os("BAI_TEST_PORT_CLAIMS") {
        Some(dir) => PathBuf::from(dir),
        // SAFETY: getuid cannot fail and touches no memory.
        None => std::env::temp_dir().join(format!("bai-test-ports-{}", unsafe { libc::getuid() })),
    };
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Claims `port` for this process; false when another process (of this run) has it.
fn claim_across_processes(port: u16) -> bool {
    let path = claims_dir().join(port.to_string());
    match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(_) => true,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let stale = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| SystemTime::now().duration_since(modified).ok())
                .is_some_and(|age| age > STALE_CLAIM_AGE);
            // Renewing the stale claim's time makes it ours (a racing process sees it fresh).
            stale
                && std::fs::remove_file(&path).is_ok()
                && OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .is_ok()
        }
        // An unwritable claims folder: fall back to this process's own bookkeeping.
        Err(_) => true,
    }
}

/// A port that nothing listens on right now, never handed out twice in a test run.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("binding 127.0.0.1:0 to find a free port");
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) && claim_across_processes(port) {
            return port;
        }
    }
}

/// The first of `len` consecutive ports that nothing listens on right now, each claimed as
/// [`free_port`] claims one (for a peer that binds a whole port range, like the wsproxy).
pub fn free_port_range(len: u16) -> u16 {
    loop {
        let base = free_port();
        let Some(last) = base.checked_add(len.saturating_sub(1)) else {
            continue;
        };
        let rest_free = (base + 1..=last).all(|port| {
            TcpListener::bind(("127.0.0.1", port)).is_ok() && {
                let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
                guard.get_or_insert_with(HashSet::new).insert(port) && claim_across_processes(port)
            }
        });
        if rest_free {
            return base;
        }
    }
}
