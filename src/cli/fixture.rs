//! `bai-manager fixture ...`: load fixture files in the original's format into the database
//! configured in `[db]` of manager.toml.

use std::path::PathBuf;

use bai_schema::fixture::{self, FixtureReport, Mode, PopulateOptions};
use clap::Subcommand;

use super::GlobalArgs;
use super::common::{fail, load_config, run_command};
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum FixtureCommand {
    /// Load a fixture file: {"<table>": [rows], ...}, each table in its own transaction.
    Populate {
        fixture_path: PathBuf,
        /// The table for a file whose top level is a JSON array of rows (default: from the
        /// file name, e.g. example-session-templates.json → session_templates).
        #[arg(long, value_name = "TABLE")]
        table: Option<String>,
    },
    /// Deprecated; does nothing (as in the original).
    List,
}

pub fn run(command: FixtureCommand, global: &GlobalArgs) -> i32 {
    match command {
        FixtureCommand::Populate {
            fixture_path,
            table,
        } => {
            let config = match load_config("fixture populate", global) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let options = PopulateOptions {
                array_table: table,
                ..PopulateOptions::default()
            };
            run_command("fixture populate", async move {
                let mut client = match config.db_settings().connect_one().await {
                    Ok(client) => client,
                    Err(e) => return fail("fixture populate", e),
                };
                println!("Populating fixture {} ...", fixture_path.display());
                match fixture::populate_file(&mut client, &fixture_path, &options).await {
                    Ok(report) => {
                        print_report(&report);
                        exit::OK
                    }
                    Err(e) => fail("fixture populate", e),
                }
            })
        }
        FixtureCommand::List => {
            eprintln!("bai-manager fixture list: this command is deprecated and does nothing.");
            exit::OK
        }
    }
}

fn print_report(report: &FixtureReport) {
    for table in &report.tables {
        let line = match table.mode {
            Mode::Insert => format!(
                "{}: {} row(s) inserted, {} already present",
                table.table, table.written, table.unchanged
            ),
            Mode::Update => format!(
                "{}: {} row(s) updated, {} not found or unchanged",
                table.table, table.written, table.unchanged
            ),
        };
        println!("{line}");
    }
}
