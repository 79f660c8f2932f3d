//! `bai-manager generate-keypair`: a new API keypair in the original's format.

use super::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _global: &GlobalArgs) -> i32 {
    super::not_implemented("generate-keypair")
}
