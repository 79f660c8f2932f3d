//! `bai-manager image ...`: the image catalogue and registry scans, with the arguments of
//! `backend.ai mgr image` (22.09, plus 23.09's optional rescan argument).

use std::time::Duration;

use actix::Actor;
use anyhow::Context;
use bai_actors::etcd::EtcdStore;
use bai_actors::redis::{RedisSettings, db as redis_db};
use bai_actors::registry_sync::{
    DEFAULT_MAX_CONCURRENCY_PER_REGISTRY, RegistrySync, Rescan, RescanReport, ScanOptions,
    ScanProgress,
};
use bai_schema::images::{self, ImageRecord};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::GlobalArgs;
use crate::config::LocalConfig;
use crate::exit;

/// A `MIN:MAX` range; either side may be empty (left unchanged).
#[derive(Debug, Clone, PartialEq)]
pub struct MinMaxRange {
    pub min: Option<Decimal>,
    pub max: Option<Decimal>,
}

/// A `MIN:MAX` argument with a side that is not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} contains an invalid number")]
pub struct InvalidMinMax(String);

fn parse_min_max(text: &str) -> Result<MinMaxRange, InvalidMinMax> {
    let (left, right) = text.split_once(':').unwrap_or((text, ""));
    let number = |side: &str| -> Result<Option<Decimal>, InvalidMinMax> {
        if side.is_empty() {
            return Ok(None);
        }
        side.parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(side))
            .map(Some)
            .map_err(|_| InvalidMinMax(text.to_owned()))
    };
    Ok(MinMaxRange {
        min: number(left)?,
        max: number(right)?,
    })
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List all configured images.
    List {
        /// Show only the image references and digests.
        #[arg(short, long)]
        short: bool,
        /// Show only the installed images (with the agents that have them).
        #[arg(short, long)]
        installed: bool,
    },
    /// Show the details of the given image or alias.
    Inspect {
        canonical_or_alias: String,
        architecture: String,
    },
    /// Forget (delete) a specific image.
    Forget {
        canonical_or_alias: String,
        architecture: String,
    },
    /// Set the MIN:MAX values of a SLOT_TYPE limit for the given image REFERENCE.
    SetResourceLimit {
        canonical_or_alias: String,
        slot_type: String,
        #[arg(value_name = "MIN:MAX", value_parser = parse_min_max)]
        range_value: MinMaxRange,
        architecture: String,
    },
    /// Update the kernel image metadata from the configured docker registries.
    ///
    /// REGISTRY_OR_IMAGE is a registry name configured under config/docker/registry/ in etcd
    /// (usually its host name), or `<registry>/<repository>:<tag>` to scan one image; without
    /// it, every configured registry is scanned.
    Rescan {
        registry_or_image: Option<String>,
        /// At most this many requests in flight to one registry.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONCURRENCY_PER_REGISTRY,
              value_parser = clap::value_parser!(usize))]
        max_concurrency: usize,
    },
    /// Add an image alias from the given alias to the target image reference.
    Alias {
        alias: String,
        target: String,
        architecture: String,
    },
    /// Remove an alias.
    Dealias { alias: String },
}

pub fn run(command: ImageCommand, global: &GlobalArgs) -> i32 {
    let config = match LocalConfig::load(global.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return exit::FAILURE;
        }
    };
    // The actix System drives the registry-sync actor; its runtime also serves the rest.
    let outcome = actix::System::new().block_on(run_async(command, &config));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            exit::FAILURE
        }
    }
}

async fn run_async(command: ImageCommand, config: &LocalConfig) -> anyhow::Result<i32> {
    match command {
        ImageCommand::List { short, installed } => list(config, short, installed).await,
        ImageCommand::Inspect {
            canonical_or_alias,
            architecture,
        } => {
            let db = config.db_settings().connect_one().await?;
            let record = images::resolve_image(&db, &canonical_or_alias, &architecture).await?;
            println!("{}", serde_json::to_string_pretty(&inspect_view(&record))?);
            Ok(exit::OK)
        }
        ImageCommand::Forget {
            canonical_or_alias,
            architecture,
        } => {
            let db = config.db_settings().connect_one().await?;
            let record = images::forget_image(&db, &canonical_or_alias, &architecture).await?;
            println!("forgot {} ({})", record.name, record.architecture);
            Ok(exit::OK)
        }
        ImageCommand::SetResourceLimit {
            canonical_or_alias,
            slot_type,
            range_value,
            architecture,
        } => {
            let db = config.db_settings().connect_one().await?;
            let min = range_value.min.map(|d| d.to_string());
            let max = range_value.max.map(|d| d.to_string());
            let record = images::set_resource_limit(
                &db,
                &canonical_or_alias,
                &architecture,
                &slot_type,
                min.as_deref(),
                max.as_deref(),
            )
            .await?;
            println!(
                "{} ({}): resources {}",
                record.name, record.architecture, record.resources
            );
            Ok(exit::OK)
        }
        ImageCommand::Rescan {
            registry_or_image,
            max_concurrency,
        } => rescan(config, registry_or_image, max_concurrency).await,
        ImageCommand::Alias {
            alias,
            target,
            architecture,
        } => {
            let db = config.db_settings().connect_one().await?;
            let record = images::alias_image(&db, &alias, &target, &architecture).await?;
            println!("{alias} -> {} ({})", record.name, record.architecture);
            Ok(exit::OK)
        }
        ImageCommand::Dealias { alias } => {
            let db = config.db_settings().connect_one().await?;
            images::dealias_image(&db, &alias).await?;
            println!("removed the alias {alias}");
            Ok(exit::OK)
        }
    }
}

/// The fields `ImageRow.inspect()` shows.
fn inspect_view(record: &ImageRecord) -> Value {
    let resource_limits: Vec<Value> = record
        .resources
        .as_object()
        .map(|slots| {
            slots
                .iter()
                .map(|(slot, range)| {
                    let bound = |key: &str, default: &str| {
                        range
                            .get(key)
                            .and_then(Value::as_str)
                            .unwrap_or(default)
                            .to_owned()
                    };
                    json!({"key": slot, "min": bound("min", "0"), "max": bound("max", "Infinity")})
                })
                .collect()
        })
        .unwrap_or_default();
    let accelerators: Vec<&str> = record
        .accelerators
        .as_deref()
        .map(|a| a.split(',').collect())
        .unwrap_or_default();
    json!({
        "canonical_ref": record.name,
        "name": record.image,
        "humanized_name": record.image,
        "tag": record.tag,
        "architecture": record.architecture,
        "registry": record.registry,
        "digest": record.config_digest,
        "labels": record.labels,
        "size_bytes": record.size_bytes,
        "resource_limits": resource_limits,
        "supported_accelerators": accelerators,
        "reverse_aliases": record.aliases,
    })
}

async fn list(config: &LocalConfig, short: bool, installed_only: bool) -> anyhow::Result<i32> {
    let db = config.db_settings().connect_one().await?;
    let records = images::list_images(&db).await?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    if installed_only {
        let agents = installed_agents(config, &records).await?;
        for (record, agents) in records.iter().zip(agents) {
            if agents.is_empty() {
                continue;
            }
            let agents = agents.join(" ");
            if short {
                rows.push(vec![
                    record.name.clone(),
                    record.config_digest.clone(),
                    agents,
                ]);
            } else {
                println!("{} ({}) @ {agents}", record.name, record.architecture);
            }
        }
    } else {
        for record in &records {
            if short {
                rows.push(vec![record.name.clone(), record.config_digest.clone()]);
            } else {
                println!("{} ({})", record.name, record.architecture);
            }
        }
    }
    if short {
        print!("{}", plain_table(&rows));
    }
    Ok(exit::OK)
}

/// The agents holding each image: Redis db 3 keeps one set of agent ids per image name.
async fn installed_agents(
    config: &LocalConfig,
    records: &[ImageRecord],
) -> anyhow::Result<Vec<Vec<String>>> {
    let etcd = EtcdStore::connect(&config.etcd_settings()).await?;
    let settings = RedisSettings::from_etcd(&etcd).await?;
    let mut redis = settings.connect(redis_db::IMAGE).await?;
    let mut pipe = redis::pipe();
    for record in records {
        pipe.smembers(&record.name);
    }
    let mut members: Vec<Vec<String>> = pipe
        .query_async(&mut redis)
        .await
        .with_context(|| format!("reading installed images from Redis {}", settings.addr()))?;
    for agents in &mut members {
        agents.sort();
    }
    Ok(members)
}

/// `tabulate(rows, tablefmt="plain")`: left-aligned columns separated by two spaces.
fn plain_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

async fn rescan(
    config: &LocalConfig,
    registry_or_image: Option<String>,
    max_concurrency: usize,
) -> anyhow::Result<i32> {
    let etcd = EtcdStore::connect(&config.etcd_settings()).await?;
    let db = config.db_settings().connect_pool().await?;
    let options = ScanOptions {
        max_concurrency_per_registry: max_concurrency.max(1),
    };
    let actor = RegistrySync::new(etcd, db, options).start();
    let (progress_tx, progress_rx) = tokio::sync::mpsc::unbounded_channel();
    let bar = progress_bar();
    let drawing = tokio::spawn(draw_progress(bar.clone(), progress_rx));
    let outcome = actor
        .send(Rescan {
            target: registry_or_image,
            progress: Some(progress_tx),
        })
        .await
        .context("the registry-sync actor stopped during the rescan")?;
    let _ = drawing.await;
    bar.finish_and_clear();
    let report = outcome?;
    print_report(&report);
    Ok(if report.broken_registries().next().is_some() {
        exit::FAILURE
    } else {
        exit::OK
    })
}

/// How often the progress bar redraws (also animates the spinner while listing).
const PROGRESS_TICK: Duration = Duration::from_millis(120);

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} tags {elapsed} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(PROGRESS_TICK);
    bar
}

async fn draw_progress(
    bar: ProgressBar,
    mut events: tokio::sync::mpsc::UnboundedReceiver<ScanProgress>,
) {
    while let Some(event) = events.recv().await {
        match event {
            ScanProgress::RegistryStarted { registry } => {
                bar.set_prefix(registry);
                bar.set_message("listing");
            }
            ScanProgress::TagsFound { count, .. } => bar.inc_length(count as u64),
            ScanProgress::TagScanned { reference, .. } => {
                bar.inc(1);
                bar.set_message(reference);
            }
            ScanProgress::Committing { images, .. } => {
                bar.set_message(format!("writing {images} images"));
            }
        }
    }
}

fn print_report(report: &RescanReport) {
    for registry in &report.registries {
        if let Some(error) = &registry.error {
            println!("registry {}: not scanned: {error}", registry.registry);
            continue;
        }
        println!(
            "registry {}: {} added, {} updated, {} unchanged, {} skipped, {} failed",
            registry.registry,
            registry.counts.added,
            registry.counts.updated,
            registry.counts.unchanged,
            registry.skipped.len(),
            registry.failed.len()
        );
        for note in &registry.skipped {
            println!("  skipped {}: {}", note.reference, note.reason);
        }
        for note in &registry.failed {
            println!("  failed {}: {}", note.reference, note.reason);
        }
    }
    println!(
        "rescan done: {} added, {} updated, {} unchanged, {} skipped, {} failed",
        report.added(),
        report.updated(),
        report.unchanged(),
        report.skipped(),
        report.failed()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_ranges_accept_open_ends() {
        assert_eq!(
            parse_min_max("1:4").unwrap(),
            MinMaxRange {
                min: Some(Decimal::from(1)),
                max: Some(Decimal::from(4))
            }
        );
        assert_eq!(
            parse_min_max(":2.5").unwrap(),
            MinMaxRange {
                min: None,
                max: Some(Decimal::new(25, 1))
            }
        );
        assert_eq!(
            parse_min_max("1g:").unwrap_err().to_string(),
            "\"1g:\" contains an invalid number"
        );
    }

    #[test]
    fn plain_tables_align_columns() {
        let rows = vec![
            vec!["a/b:1".to_owned(), "sha256:x".to_owned()],
            vec!["a/bcd:22".to_owned(), "sha256:y".to_owned()],
        ];
        assert_eq!(
            plain_table(&rows),
            "a/b:1     sha256:x\na/bcd:22  sha256:y\n"
        );
    }
}
