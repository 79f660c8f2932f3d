//! `bai-manager generate-keypair` (alias `generate-api-keypair`): a new API keypair made the
//! way the original's `generate_keypair()` makes it, printed in its format.

use bai_actors::compat::keypair::generate_keypair;

use super::GlobalArgs;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _global: &GlobalArgs) -> i32 {
    let (access_key, secret_key) = generate_keypair();
    println!("Access Key: {access_key} ({} bytes)", access_key.len());
    println!("Secret Key: {secret_key} ({} bytes)", secret_key.len());
    exit::OK
}
