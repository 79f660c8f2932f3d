//! `bai-manager dbshell`: psql on the configured database.

use super::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Arguments passed on to psql.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub psql_args: Vec<String>,
}

pub fn run(_args: Args, _global: &GlobalArgs) -> i32 {
    super::not_implemented("dbshell")
}
