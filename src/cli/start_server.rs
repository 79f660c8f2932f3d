//! `bai-manager start-server`: the supervisor and its workers.

use super::GlobalArgs;
use crate::config::LocalConfig;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run as worker INDEX of a supervisor (internal: the supervisor starts its workers so).
    #[arg(long, hide = true, value_name = "INDEX")]
    pub worker: Option<usize>,
}

pub fn run(args: Args, global: &GlobalArgs) -> i32 {
    let mut config = match LocalConfig::load(global.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("bai-manager start-server: {err}");
            return err.exit_code();
        }
    };
    if global.debug {
        config.apply_debug_flag();
    }
    match args.worker {
        Some(index) => crate::server::run_worker(config, index),
        None => crate::server::run_supervisor(config, global.debug),
    }
}
