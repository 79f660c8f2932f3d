//! `bai-manager`: Backend.AI Manager in Rust.

mod cli;

// The command verbs reach the library's modules as `crate::config`, `crate::exit`, ...
#[allow(unused_imports)]
use bai_manager::{config, exit, logging, server};

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    std::process::exit(cli::run(cli));
}
