//! The `bai-manager` command line, mirroring `backend.ai mgr`.

mod common;
pub mod dbshell;
pub mod etcd;
pub mod fixture;
pub mod gql;
pub mod image;
pub mod keypair;
pub mod schema;
pub mod start_server;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bai-manager",
    version,
    about = "Backend.AI Manager, the control plane of a GPU cluster",
    long_about = "Backend.AI Manager, the control plane of a GPU cluster.\n\nA drop-in replacement for `backend.ai mgr`: the same manager.toml, etcd keys, fixtures and verbs."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every verb accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// The manager.toml to use instead of searching $BACKEND_CONFIG_FILE, ./manager.toml,
    /// ~/.config/backend.ai/manager.toml and /etc/backend.ai/manager.toml.
    #[arg(
        short = 'f',
        long = "config",
        visible_alias = "config-path",
        global = true,
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,
    /// Enable debug logging (raises the log levels as the original does).
    #[arg(long, global = true)]
    pub debug: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the manager service (a supervisor and `num-proc` workers).
    StartServer(start_server::Args),
    /// Read and write the global configuration in etcd.
    #[command(subcommand)]
    Etcd(etcd::EtcdCommand),
    /// Create and inspect the database schema.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
    /// Load fixture files into the database.
    #[command(subcommand)]
    Fixture(fixture::FixtureCommand),
    /// Manage the image catalogue and scan container registries.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Print a new API access key and secret key.
    #[command(visible_alias = "generate-api-keypair")]
    GenerateKeypair(keypair::Args),
    /// Open psql on the configured database.
    Dbshell(dbshell::Args),
    /// The admin GraphQL API.
    #[command(subcommand)]
    Gql(gql::GqlCommand),
}

/// Runs the parsed command and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::StartServer(args) => start_server::run(args, &cli.global),
        Command::Etcd(command) => etcd::run(command, &cli.global),
        Command::Schema(command) => schema::run(command, &cli.global),
        Command::Fixture(command) => fixture::run(command, &cli.global),
        Command::Image(command) => image::run(command, &cli.global),
        Command::GenerateKeypair(args) => keypair::run(args, &cli.global),
        Command::Dbshell(args) => dbshell::run(args, &cli.global),
        Command::Gql(command) => gql::run(command, &cli.global),
    }
}
