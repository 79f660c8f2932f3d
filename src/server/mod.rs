//! `start-server`: a supervising parent process and `num-proc` worker processes sharing the
//! service port.

pub mod connection_cap;
mod fault_injection;
mod hold_route;
pub mod idle_watchdog;
pub mod listener;
pub mod memory_trim;
pub mod ops_listener;
pub mod pid_file;
pub mod preflight;
pub mod privileges;
pub mod registration;
mod scheduling;
pub mod supervisor;
pub mod tls;
pub mod worker;

use slog::warn;

use crate::config::LocalConfig;
use crate::logging::{self, Role};

/// Runs the supervisor (the process an operator starts); returns the exit code.
pub fn run_supervisor(config: LocalConfig, debug: bool) -> i32 {
    let logging = match logging::init(
        &config.logging,
        Role::Owner {
            process: "supervisor".to_owned(),
        },
    ) {
        Ok(logging) => logging,
        Err(err) => {
            eprintln!("bai-manager start-server: {err}");
            return crate::exit::FAILURE;
        }
    };
    for warning in &config.warnings {
        warn!(logging.logger, "{warning}");
    }
    let Some(drivers) = logging.drivers else {
        return crate::exit::FAILURE;
    };
    // One thread: the supervisor forks its workers from it (PR_SET_PDEATHSIG is per thread).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bai-manager start-server: cannot start the runtime: {err}");
            return crate::exit::FAILURE;
        }
    };
    runtime.block_on(supervisor::run(config, debug, logging.logger, drivers))
}

/// Runs worker `index` (started by the supervisor as `start-server --worker <index>`).
pub fn run_worker(config: LocalConfig, index: usize) -> i32 {
    let logging = match logging::init(&config.logging, Role::Worker { index }) {
        Ok(logging) => logging,
        Err(err) => {
            eprintln!("bai-manager worker {index}: {err}");
            return crate::exit::FAILURE;
        }
    };
    if let Err(error) = memory_trim::start() {
        warn!(logging.logger, "cannot start the thread that gives freed memory back";
            "error" => %error);
    }
    worker::run(config, index, logging.logger)
}
