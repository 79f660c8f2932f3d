//! `bai-manager schema ...`: create and inspect the database schema.

use clap::Subcommand;

use super::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Show the current and the head revision.
    Show,
    /// Create or upgrade the schema to the head revision.
    Oneshot,
}

pub fn run(_command: SchemaCommand, _global: &GlobalArgs) -> i32 {
    super::not_implemented("schema")
}
