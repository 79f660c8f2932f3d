//! `bai-manager`: Backend.AI Manager in Rust.

mod cli;

// The command verbs reach the library's modules as `crate::config`, `crate::exit`, ...
#[allow(unused_imports)]
use bai_manager::{config, exit, logging, server};

use clap::Parser;

fn main() {
    limit_malloc_arenas();
    let cli = cli::Cli::parse();
    std::process::exit(cli::run(cli));
}

/// At most two glibc malloc arenas, unless the operator chose with `MALLOC_ARENA_MAX`.
///
/// glibc gives threads that allocate at once arenas of their own (up to eight per core) and
/// keeps what is freed in each. A worker's scheduler builds its snapshot of every agent on
/// blocking threads, pass after pass; at 10,000 agents the extra arenas held a quarter of the
/// worker's memory (`session_e2e`: 162 MiB peak RSS with the default, 123 MiB with two). The
/// workers' request handling runs on one thread each, so two arenas cost no contention.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt(3) only sets an allocator parameter; called first thing in main,
        // before any thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
