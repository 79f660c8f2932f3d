//! `bai-manager fixture ...`: load fixture files.

use std::path::PathBuf;

use clap::Subcommand;

use super::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum FixtureCommand {
    /// Load a fixture file.
    Populate { fixture_path: PathBuf },
}

pub fn run(_command: FixtureCommand, _global: &GlobalArgs) -> i32 {
    super::not_implemented("fixture")
}
