//! `bai-manager`: Backend.AI Manager in Rust.

mod cli;
mod config;
mod exit;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    std::process::exit(cli::run(cli));
}
