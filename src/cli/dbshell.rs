//! `bai-manager dbshell`: psql on the database of `[db]` in manager.toml, with the password
//! passed through the environment (never on the command line, where `ps` would show it).

use std::os::unix::process::CommandExt;
use std::process::Command;

use super::GlobalArgs;
use super::common::load_config;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accepted for compatibility: "-" or "" (or leaving it out) runs the host's psql. There is
    /// no Docker support, so a container name is refused.
    #[arg(long = "psql-container", value_name = "ID_OR_NAME")]
    pub psql_container: Option<String>,
    /// Show the help text of psql instead of this command's.
    #[arg(long = "psql-help")]
    pub psql_help: bool,
    /// Arguments passed on to psql, e.g. `-c "SELECT ..."` (put `--` first if one of them is
    /// `-f` or `-h`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub psql_args: Vec<String>,
}

pub fn run(args: Args, global: &GlobalArgs) -> i32 {
    if let Some(container) = args.psql_container.as_deref()
        && !container.is_empty()
        && container != "-"
    {
        eprintln!(
            "bai-manager dbshell: --psql-container {container:?}: bai-manager runs the host's psql and does not use Docker; leave the option out or pass --psql-container=-"
        );
        return exit::INVALID_ARGUMENT;
    }
    let mut command = Command::new("psql");
    if args.psql_help {
        command.arg("--help");
    } else {
        let config = match load_config("dbshell", global) {
            Ok(config) => config,
            Err(code) => return code,
        };
        let db = config.db_settings();
        command
            .args([
                "-h",
                &db.host,
                "-p",
                &db.port.to_string(),
                "-U",
                &db.user,
                "-d",
                &db.name,
            ])
            .args(&args.psql_args)
            .env("PGPASSWORD", &db.password)
            .env("PGAPPNAME", "bai-manager dbshell");
    }
    // Only returns when psql could not be started.
    let error = command.exec();
    eprintln!(
        "bai-manager dbshell: cannot run psql: {error} (is the PostgreSQL client installed?)"
    );
    exit::FAILURE
}
