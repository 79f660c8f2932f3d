//! `bai-manager etcd ...`: the global configuration in etcd.

use clap::Subcommand;

use super::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Put a single key.
    Put { key: String, value: String },
    /// Get a key, or a whole subtree with --prefix.
    Get {
        key: String,
        #[arg(long)]
        prefix: bool,
    },
}

pub fn run(_command: EtcdCommand, _global: &GlobalArgs) -> i32 {
    super::not_implemented("etcd")
}
