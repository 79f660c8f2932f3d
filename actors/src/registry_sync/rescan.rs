//! A rescan from start to end: choose the registries (or the single image) an argument names,
//! scan each, and commit each registry's rows in one transaction.

use bai_schema::images::{CommitCounts, commit_scanned};
use deadpool_postgres::Pool;

use super::client::{RegistryClient, RegistryError};
use super::config::{RegistryConfig, RegistryConfigError, load_registries};
use super::scan::{
    Listing, ProgressSender, ScanNote, ScanOptions, ScanProgress, ScanResult, TagJob, TagSource,
    list_jobs, scan_jobs,
};
use crate::etcd::EtcdStore;
use crate::lock::Fence;

#[derive(Debug, thiserror::Error)]
pub enum RescanError {
    #[error(transparent)]
    Config(#[from] RegistryConfigError),
    #[error("{name:?} is an unknown registry (configured: {configured})")]
    UnknownRegistry { name: String, configured: String },
    #[error("no registry is configured under config/docker/registry/ in etcd")]
    NoRegistries,
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot write the images of registry {registry} to the database: {message}")]
    Database { registry: String, message: String },
    #[error("another rescan kept the registry rescan lock for {0:?}; try again later")]
    Busy(std::time::Duration),
    #[error("cannot take the registry rescan lock: {0}")]
    Lock(#[from] crate::lock::LockError),
    #[error("the registry rescan lock was lost during the rescan; nothing more was written")]
    LockLost,
}

/// What a rescan should cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RescanTarget {
    /// Every configured registry, one after the other.
    All,
    /// One configured registry.
    Registry(String),
    /// One tag (`repository:tag`) of a configured registry.
    Image { registry: String, reference: String },
}

/// Reads `image rescan [REGISTRY_OR_IMAGE]` as 23.09 does: empty is every registry; an argument
/// that starts with `<registry>/` is an image of that registry; anything else must be a name.
pub fn resolve_target(
    registries: &[RegistryConfig],
    argument: Option<&str>,
) -> Result<RescanTarget, RescanError> {
    let Some(argument) = argument.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(RescanTarget::All);
    };
    if let Some(registry) = registries.iter().find(|r| r.name == argument) {
        return Ok(RescanTarget::Registry(registry.name.clone()));
    }
    // The longest matching name wins, so `a.io/x` does not shadow `a.io/x/y`'s registry.
    let image_of = registries
        .iter()
        .filter(|r| argument.starts_with(&format!("{}/", r.name)))
        .max_by_key(|r| r.name.len());
    if let Some(registry) = image_of {
        let reference = argument[registry.name.len() + 1..].to_owned();
        return Ok(RescanTarget::Image {
            registry: registry.name.clone(),
            reference,
        });
    }
    Err(RescanError::UnknownRegistry {
        name: argument.to_owned(),
        configured: if registries.is_empty() {
            "none".to_owned()
        } else {
            registries
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// Splits `repository[:tag]` (the tag defaults to `latest`).
pub fn split_reference(reference: &str) -> (String, String) {
    match reference.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository.to_owned(), tag.to_owned()),
        _ => (reference.to_owned(), "latest".to_owned()),
    }
}

/// The outcome for one registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryReport {
    pub registry: String,
    pub counts: CommitCounts,
    pub skipped: Vec<ScanNote>,
    pub failed: Vec<ScanNote>,
    /// Set when the registry could not be scanned at all; nothing was written for it.
    pub error: Option<String>,
}

/// The outcome of a rescan.
#[derive(Debug, Clone, Default)]
pub struct RescanReport {
    pub registries: Vec<RegistryReport>,
}

impl RescanReport {
    pub fn added(&self) -> usize {
        self.registries.iter().map(|r| r.counts.added).sum()
    }
    pub fn updated(&self) -> usize {
        self.registries.iter().map(|r| r.counts.updated).sum()
    }
    pub fn unchanged(&self) -> usize {
        self.registries.iter().map(|r| r.counts.unchanged).sum()
    }
    pub fn skipped(&self) -> usize {
        self.registries.iter().map(|r| r.skipped.len()).sum()
    }
    pub fn failed(&self) -> usize {
        self.registries.iter().map(|r| r.failed.len()).sum()
    }
    /// Registries that could not be scanned at all.
    pub fn broken_registries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.registries
            .iter()
            .filter_map(|r| r.error.as_deref().map(|e| (r.registry.as_str(), e)))
    }
}

/// Runs a rescan of what `argument` names (see [`resolve_target`]). A single registry or image
/// that cannot be scanned is an error; when scanning all, each registry's error is recorded in
/// its report and the others go on. `fence` is the rescan lock's token when it runs under the
/// lock actor: each registry's commit checks it (see `commit_scanned`).
pub async fn rescan(
    etcd: &EtcdStore,
    db: &Pool,
    argument: Option<&str>,
    options: ScanOptions,
    progress: Option<&ProgressSender>,
    fence: Option<&Fence>,
) -> Result<RescanReport, RescanError> {
    let registries = load_registries(etcd).await?;
    let target = resolve_target(&registries, argument)?;
    let find = |name: &str| registries.iter().find(|r| r.name == name);
    let mut report = RescanReport::default();
    match target {
        RescanTarget::All => {
            if registries.is_empty() {
                return Err(RescanError::NoRegistries);
            }
            for registry in &registries {
                let outcome = rescan_registry(registry, db, None, options, progress, fence).await;
                report
                    .registries
                    .push(outcome.unwrap_or_else(|error| RegistryReport {
                        registry: registry.name.clone(),
                        error: Some(error.to_string()),
                        ..RegistryReport::default()
                    }));
            }
        }
        RescanTarget::Registry(name) => {
            if let Some(registry) = find(&name) {
                report
                    .registries
                    .push(rescan_registry(registry, db, None, options, progress, fence).await?);
            }
        }
        RescanTarget::Image {
            registry,
            reference,
        } => {
            if let Some(registry) = find(&registry) {
                report.registries.push(
                    rescan_registry(registry, db, Some(&reference), options, progress, fence)
                        .await?,
                );
            }
        }
    }
    Ok(report)
}

/// Scans one registry (or one of its images) and commits what it found.
pub async fn rescan_registry(
    registry: &RegistryConfig,
    db: &Pool,
    single_reference: Option<&str>,
    options: ScanOptions,
    progress: Option<&ProgressSender>,
    fence: Option<&Fence>,
) -> Result<RegistryReport, RescanError> {
    if let Some(progress) = progress {
        let _ = progress.send(ScanProgress::RegistryStarted {
            registry: registry.name.clone(),
        });
    }
    let client = RegistryClient::connect(registry, options.max_concurrency_per_registry).await?;
    let listing = match single_reference {
        Some(reference) => {
            let (repository, tag) = split_reference(reference);
            let job = TagJob {
                repository,
                tag,
                source: TagSource::ByTag,
            };
            if let Some(progress) = progress {
                let _ = progress.send(ScanProgress::TagsFound {
                    registry: registry.name.clone(),
                    count: 1,
                });
            }
            Listing {
                jobs: vec![job],
                ..Listing::default()
            }
        }
        None => list_jobs(&client, registry, options, progress).await?,
    };
    let ScanResult {
        images,
        mut skipped,
        mut failed,
    } = scan_jobs(&client, registry, listing.jobs, options, progress).await;
    skipped.extend(listing.skipped);
    failed.extend(listing.failed);
    if let Some(progress) = progress {
        let _ = progress.send(ScanProgress::Committing {
            registry: registry.name.clone(),
            images: images.len(),
        });
    }
    let database_error = |message: String| RescanError::Database {
        registry: registry.name.clone(),
        message,
    };
    let mut connection = db.get().await.map_err(|e| database_error(e.to_string()))?;
    let fence = fence.map(|fence| (fence.name.as_str(), fence.token));
    let counts = commit_scanned(&mut connection, &images, fence)
        .await
        .map_err(|e| database_error(e.to_string()))?;
    for note in &skipped {
        log::warn!(
            "skipped image {}/{}: {}",
            registry.name,
            note.reference,
            note.reason
        );
    }
    for note in &failed {
        log::error!(
            "failed to scan image {}/{}: {}",
            registry.name,
            note.reference,
            note.reason
        );
    }
    log::info!(
        "rescanned registry {}: {} added, {} updated, {} unchanged, {} skipped, {} failed",
        registry.name,
        counts.added,
        counts.updated,
        counts.unchanged,
        skipped.len(),
        failed.len()
    );
    Ok(RegistryReport {
        registry: registry.name.clone(),
        counts,
        skipped,
        failed,
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry_sync::config::RegistryType;

    fn registry(name: &str) -> RegistryConfig {
        RegistryConfig {
            name: name.to_owned(),
            url: url::Url::parse("http://127.0.0.1:5000").unwrap(),
            registry_type: RegistryType::Docker,
            projects: Vec::new(),
            username: None,
            password: None,
            ssl_verify: true,
        }
    }

    #[test]
    fn arguments_name_all_a_registry_or_an_image() {
        let registries = [registry("cr.backend.ai"), registry("127.0.0.1:5000")];
        assert_eq!(
            resolve_target(&registries, None).unwrap(),
            RescanTarget::All
        );
        assert_eq!(
            resolve_target(&registries, Some("")).unwrap(),
            RescanTarget::All
        );
        assert_eq!(
            resolve_target(&registries, Some("cr.backend.ai")).unwrap(),
            RescanTarget::Registry("cr.backend.ai".to_owned())
        );
        assert_eq!(
            resolve_target(&registries, Some("127.0.0.1:5000/testing/python:3.9")).unwrap(),
            RescanTarget::Image {
                registry: "127.0.0.1:5000".to_owned(),
                reference: "testing/python:3.9".to_owned()
            }
        );
        let error = resolve_target(&registries, Some("docker.io")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "\"docker.io\" is an unknown registry (configured: cr.backend.ai, 127.0.0.1:5000)"
        );
    }

    #[test]
    fn references_default_to_latest() {
        assert_eq!(
            split_reference("stable/python:3.9"),
            ("stable/python".to_owned(), "3.9".to_owned())
        );
        assert_eq!(
            split_reference("stable/python"),
            ("stable/python".to_owned(), "latest".to_owned())
        );
    }
}
