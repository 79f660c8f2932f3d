//! Gives the memory a worker has freed back to the system, once a second.
//!
//! glibc returns freed memory to the system only from the top of its heap; what is freed below
//! a block still in use stays resident until `malloc_trim` releases its pages. A worker frees a
//! lot in the middle of its heap (the batches of a heartbeat burst, a scheduling pass's
//! snapshot, the dispatches of a pass), so its resident size kept the high-water mark of
//! everything it had ever held at once. Measured in `session_e2e` at 10,000 agents: one
//! `malloc_trim(0)` took a worker from 48.6 to 40.4 MiB of anonymous memory, and 30 s later
//! from 45.2 to 35.0 MiB. A trim walks the free chunks and holds each arena's lock meanwhile;
//! at this heap size that is about a millisecond, on a thread of its own.

use std::time::Duration;

/// How often the worker's free memory is given back.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// Releases the free pages of every malloc arena now; true when some memory went back.
pub fn trim_once() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim(3) takes the allocator's own locks; it has no preconditions.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Starts the thread that trims every [`TRIM_INTERVAL`] for as long as the process lives.
pub fn start() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("malloc-trim".to_owned())
        .spawn(|| {
            loop {
                std::thread::sleep(TRIM_INTERVAL);
                trim_once();
            }
        })
        .map(drop)
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn anonymous_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix("RssAnon:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn memory_freed_below_a_live_block_goes_back_to_the_system() {
        // 48 MiB in small blocks, each written so that its pages are resident, then freed but
        // for the last block, which keeps glibc from trimming the top of the heap by itself.
        let mut blocks: Vec<Box<[u8]>> = (0..196_608).map(|_| vec![7u8; 256].into()).collect();
        let last = blocks.pop();
        let before_free = anonymous_kib();
        drop(blocks);
        let freed = anonymous_kib();
        assert!(
            before_free - freed < 16 * 1024,
            "glibc gave back {} KiB of the freed blocks by itself",
            before_free - freed
        );
        assert!(trim_once());
        let trimmed = anonymous_kib();
        assert!(
            freed - trimmed > 32 * 1024,
            "the trim gave back only {} KiB of 48 MiB freed",
            freed.saturating_sub(trimmed)
        );
        drop(last);
    }
}
