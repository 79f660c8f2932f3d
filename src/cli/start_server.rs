//! `bai-manager start-server`: the supervisor and its workers.

use super::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _global: &GlobalArgs) -> i32 {
    super::not_implemented("start-server")
}
