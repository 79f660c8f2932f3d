//! `bai-manager image ...`: the image catalogue and registry scans.

use clap::Subcommand;

use super::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Scan a registry (or all) and update the image catalogue.
    Rescan { registry_or_image: Option<String> },
}

pub fn run(_command: ImageCommand, _global: &GlobalArgs) -> i32 {
    super::not_implemented("image")
}
