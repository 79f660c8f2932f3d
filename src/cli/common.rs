//! What the operator verbs share: a runtime for one command, and manager.toml with its errors
//! reported the same way by every verb.

use std::future::Future;

use crate::config::LocalConfig;
use crate::exit;

use super::GlobalArgs;

/// Runs one command's future on a single-threaded runtime and returns its exit code.
pub fn run_command<F>(verb: &str, future: F) -> i32
where
    F: Future<Output = i32>,
{
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => {
            eprintln!("bai-manager {verb}: cannot start the async runtime: {e}");
            exit::FAILURE
        }
    }
}

/// Loads manager.toml (`-f`, or the usual search), or says why not.
pub fn load_config(verb: &str, global: &GlobalArgs) -> Result<LocalConfig, i32> {
    LocalConfig::load(global.config.as_deref()).map_err(|e| {
        eprintln!("bai-manager {verb}: {e}");
        exit::INVALID_ARGUMENT
    })
}

/// Prints `bai-manager <verb>: <error>` and returns the failure exit code.
pub fn fail(verb: &str, error: impl std::fmt::Display) -> i32 {
    eprintln!("bai-manager {verb}: {error}");
    exit::FAILURE
}
