//! Scanning one registry: list its tags, read each tag's manifests and config blobs under the
//! per-registry request cap, and turn every architecture into a catalogue row, a skip (the
//! image is not acceptable) or a failure (the registry could not give it to us). One broken
//! tag never stops the others.

use std::collections::BTreeMap;

use bai_schema::image_ref::validate_tag;
use bai_schema::images::ScannedImage;
use futures::StreamExt;
use futures::stream;
use reqwest::StatusCode;
use tokio::sync::mpsc::UnboundedSender;

use super::auth::pull_scope;
use super::client::{RegistryClient, RegistryError};
use super::config::{RegistryConfig, RegistryType};
use super::labels::image_metadata;
use super::manifest::{
    ACCEPT_ANY_MANIFEST, ACCEPT_IMAGE_MANIFEST, ImageManifest, Manifest, parse_config_blob,
    parse_manifest,
};
use super::{docker_v2, harbor};

/// Concurrent requests per registry unless configured otherwise: the original's
/// `max_concurrency_per_registry`, gentle enough for a shared production registry.
pub const DEFAULT_MAX_CONCURRENCY_PER_REGISTRY: usize = 4;

/// Tunables of a scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// At most this many requests are in flight to one registry at a time.
    pub max_concurrency_per_registry: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            max_concurrency_per_registry: DEFAULT_MAX_CONCURRENCY_PER_REGISTRY,
        }
    }
}

/// One thing that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanNote {
    /// `repository:tag`, `repository:tag/architecture` or `repository@digest`.
    pub reference: String,
    pub reason: String,
}

/// What the scan learns about a tag before reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSource {
    /// Ask the registry for the tag's manifest (Docker Registry v2).
    ByTag,
    /// The image manifests are already known (Harbor's artifact references).
    Known(Vec<KnownManifest>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownManifest {
    pub digest: String,
    /// The platform's architecture; `None` means "read it from the config blob".
    pub architecture: Option<String>,
}

/// One tag to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagJob {
    pub repository: String,
    pub tag: String,
    pub source: TagSource,
}

/// Progress of a rescan, for a progress bar or a background-task reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanProgress {
    /// Listing started for a registry.
    RegistryStarted { registry: String },
    /// More tags were found; the total grows by `count`.
    TagsFound { registry: String, count: usize },
    /// One tag is done.
    TagScanned {
        registry: String,
        reference: String,
        stored: usize,
        skipped: usize,
        failed: usize,
    },
    /// The registry's rows are being written.
    Committing { registry: String, images: usize },
}

pub type ProgressSender = UnboundedSender<ScanProgress>;

fn report(progress: Option<&ProgressSender>, event: ScanProgress) {
    if let Some(progress) = progress {
        // A receiver that went away (a closed progress bar) must not stop the scan.
        let _ = progress.send(event);
    }
}

/// Everything one registry scan produced, before it is committed.
#[derive(Debug, Default)]
pub struct ScanResult {
    pub images: Vec<ScannedImage>,
    pub skipped: Vec<ScanNote>,
    pub failed: Vec<ScanNote>,
}

impl ScanResult {
    fn absorb(&mut self, other: ScanResult) {
        self.images.extend(other.images);
        self.skipped.extend(other.skipped);
        self.failed.extend(other.failed);
    }
}

/// The tags to scan, and what was left out while listing them.
#[derive(Debug, Default)]
pub struct Listing {
    pub jobs: Vec<TagJob>,
    /// Artifacts that are not scannable images (untagged, not an image).
    pub skipped: Vec<ScanNote>,
    /// Repositories whose tags could not be listed.
    pub failed: Vec<ScanNote>,
}

/// Lists the tags of a registry as scan jobs (plus notes on what could not be listed).
/// Listing failures of the registry itself (auth, a missing project, a broken catalog) are
/// errors; a repository whose tags cannot be listed is a note.
pub async fn list_jobs(
    client: &RegistryClient,
    config: &RegistryConfig,
    options: ScanOptions,
    progress: Option<&ProgressSender>,
) -> Result<Listing, RegistryError> {
    let registry = config.name.clone();
    let needs_projects = matches!(
        config.registry_type,
        RegistryType::Harbor | RegistryType::Harbor2
    );
    if needs_projects && config.projects.is_empty() {
        return Err(RegistryError::ProjectRequired {
            registry,
            registry_type: config.registry_type.as_str(),
        });
    }
    match config.registry_type {
        RegistryType::Harbor2 => {
            let mut repositories = Vec::new();
            for project in &config.projects {
                repositories.extend(harbor::list_repositories_v2(client, project).await?);
            }
            let listed = stream::iter(repositories)
                .map(|repository| async move {
                    let outcome = harbor::list_artifact_jobs(client, &repository).await;
                    (repository, outcome)
                })
                .buffer_unordered(options.max_concurrency_per_registry.max(1));
            collect_listings(listed, &registry, progress).await
        }
        RegistryType::Docker | RegistryType::Harbor => {
            let repositories = match config.registry_type {
                RegistryType::Harbor => {
                    harbor::list_repositories_v1(client, &config.projects).await?
                }
                _ => docker_v2::list_repositories(client).await?,
            };
            let listed = stream::iter(
                repositories
                    .into_iter()
                    .filter(|r| config.includes_repository(r)),
            )
            .map(|repository| async move {
                let outcome = docker_v2::list_tags(client, &repository).await.map(|tags| {
                    let jobs = tags
                        .into_iter()
                        .map(|tag| TagJob {
                            repository: repository.clone(),
                            tag,
                            source: TagSource::ByTag,
                        })
                        .collect();
                    (jobs, Vec::new())
                });
                (repository, outcome)
            })
            .buffer_unordered(options.max_concurrency_per_registry.max(1));
            collect_listings(listed, &registry, progress).await
        }
    }
}

async fn collect_listings(
    listed: impl futures::Stream<Item = (String, Result<(Vec<TagJob>, Vec<ScanNote>), RegistryError>)>,
    registry: &str,
    progress: Option<&ProgressSender>,
) -> Result<Listing, RegistryError> {
    let mut listed = std::pin::pin!(listed);
    let mut listing = Listing::default();
    while let Some((repository, outcome)) = listed.next().await {
        match outcome {
            Ok((found, found_notes)) => {
                report(
                    progress,
                    ScanProgress::TagsFound {
                        registry: registry.to_owned(),
                        count: found.len(),
                    },
                );
                listing.jobs.extend(found);
                listing.skipped.extend(found_notes);
            }
            // Credentials that stop working mid-scan are the registry's problem, not a tag's.
            Err(
                error @ (RegistryError::BadCredentials { .. }
                | RegistryError::CredentialsRequired { .. }),
            ) => return Err(error),
            Err(error) => listing.failed.push(ScanNote {
                reference: repository,
                reason: format!("cannot list tags: {error}"),
            }),
        }
    }
    Ok(listing)
}

/// Scans every job with at most `max_concurrency_per_registry` in flight.
pub async fn scan_jobs(
    client: &RegistryClient,
    config: &RegistryConfig,
    jobs: Vec<TagJob>,
    options: ScanOptions,
    progress: Option<&ProgressSender>,
) -> ScanResult {
    let mut results = std::pin::pin!(
        stream::iter(jobs)
            .map(|job| async move {
                let reference = format!("{}:{}", job.repository, job.tag);
                (reference, scan_tag(client, config, &job).await)
            })
            .buffer_unordered(options.max_concurrency_per_registry.max(1))
    );
    let mut total = ScanResult::default();
    while let Some((reference, result)) = results.next().await {
        report(
            progress,
            ScanProgress::TagScanned {
                registry: config.name.clone(),
                reference,
                stored: result.images.len(),
                skipped: result.skipped.len(),
                failed: result.failed.len(),
            },
        );
        total.absorb(result);
    }
    total
}

/// Scans one tag: every architecture becomes a row, a skip or a failure.
pub async fn scan_tag(
    client: &RegistryClient,
    config: &RegistryConfig,
    job: &TagJob,
) -> ScanResult {
    let mut result = ScanResult::default();
    let reference = format!("{}:{}", job.repository, job.tag);
    if let Err(error) = validate_tag(&job.tag) {
        result.skipped.push(ScanNote {
            reference,
            reason: error.to_string(),
        });
        return result;
    }
    let manifests = match &job.source {
        TagSource::Known(known) => known.iter().map(|k| (k.clone(), None)).collect::<Vec<_>>(),
        TagSource::ByTag => match resolve_tag(client, &job.repository, &job.tag).await {
            Ok(Some(Resolved::Single(manifest))) => vec![(
                KnownManifest {
                    digest: job.tag.clone(),
                    architecture: None,
                },
                Some(manifest),
            )],
            Ok(Some(Resolved::List(entries))) => entries.into_iter().map(|k| (k, None)).collect(),
            Ok(None) => {
                result.skipped.push(ScanNote {
                    reference,
                    reason: "missing/deleted (the registry has no manifest for it)".to_owned(),
                });
                return result;
            }
            Err(error) => {
                result.failed.push(ScanNote {
                    reference,
                    reason: error.to_string(),
                });
                return result;
            }
        },
    };
    if manifests.is_empty() {
        result.skipped.push(ScanNote {
            reference,
            reason: "the manifest list has no entry with a known platform".to_owned(),
        });
        return result;
    }
    let mut seen_architectures: Vec<String> = Vec::new();
    for (known, prefetched) in manifests {
        let label = known.architecture.as_deref().unwrap_or("?");
        let arch_reference = format!("{reference}/{label}");
        let outcome = match prefetched {
            Some(manifest) => read_config(client, config, job, manifest, None).await,
            None => read_image(client, config, job, &known).await,
        };
        match outcome {
            Ok(ImageOutcome::Stored(image)) => {
                if seen_architectures.contains(&image.architecture) {
                    result.skipped.push(ScanNote {
                        reference: format!("{reference}/{}", image.architecture),
                        reason: "another entry of the list has the same architecture".to_owned(),
                    });
                    continue;
                }
                seen_architectures.push(image.architecture.clone());
                result.images.push(*image);
            }
            Ok(ImageOutcome::Skipped {
                architecture,
                reason,
            }) => result.skipped.push(ScanNote {
                reference: format!("{reference}/{architecture}"),
                reason,
            }),
            Err(error) => result.failed.push(ScanNote {
                reference: arch_reference,
                reason: error.to_string(),
            }),
        }
    }
    result
}

/// Why one tag or image of a registry could not be read (reported as the tag's failure; the
/// rest of the scan goes on).
#[derive(Debug, thiserror::Error)]
pub enum ImageReadError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("manifest {reference}: {source}")]
    Manifest {
        reference: String,
        #[source]
        source: super::manifest::ManifestError,
    },
    #[error("manifest {digest} is a list inside a list, which is not an image")]
    ListInList { digest: String },
    #[error("the config blob {digest} is missing from the registry")]
    MissingBlob { digest: String },
    #[error("config blob {digest}: {source}")]
    ConfigBlob {
        digest: String,
        #[source]
        source: super::manifest::ManifestError,
    },
}

enum Resolved {
    Single(ImageManifest),
    List(Vec<KnownManifest>),
}

/// The image manifests of a tag: the members of its list, or the tag's own manifest.
/// `Ok(None)` when the tag has no manifest (deleted since the listing).
async fn resolve_tag(
    client: &RegistryClient,
    repository: &str,
    tag: &str,
) -> Result<Option<Resolved>, ImageReadError> {
    let url = client.url(&format!("v2/{repository}/manifests/{tag}"));
    let fetched = client
        .get(&url, &pull_scope(repository), Some(ACCEPT_ANY_MANIFEST))
        .await?;
    if fetched.status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !fetched.status.is_success() {
        return Err(client
            .status_error(&url, fetched.status, &fetched.body)
            .into());
    }
    match parse_manifest(fetched.content_type.as_deref(), &fetched.body).map_err(|source| {
        ImageReadError::Manifest {
            reference: tag.to_owned(),
            source,
        }
    })? {
        Manifest::Image(manifest) => Ok(Some(Resolved::Single(manifest))),
        Manifest::List(entries) => Ok(Some(Resolved::List(
            entries
                .into_iter()
                .map(|e| KnownManifest {
                    digest: e.digest,
                    architecture: Some(e.architecture),
                })
                .collect(),
        ))),
    }
}

enum ImageOutcome {
    Stored(Box<ScannedImage>),
    Skipped {
        architecture: String,
        reason: String,
    },
}

/// Reads one image manifest and its config blob into a row (or a skip).
async fn read_image(
    client: &RegistryClient,
    config: &RegistryConfig,
    job: &TagJob,
    known: &KnownManifest,
) -> Result<ImageOutcome, ImageReadError> {
    let scope = pull_scope(&job.repository);
    let manifest_url = client.url(&format!("v2/{}/manifests/{}", job.repository, known.digest));
    let fetched = client
        .get_ok(&manifest_url, &scope, Some(ACCEPT_IMAGE_MANIFEST))
        .await?;
    let manifest =
        match parse_manifest(fetched.content_type.as_deref(), &fetched.body).map_err(|source| {
            ImageReadError::Manifest {
                reference: known.digest.clone(),
                source,
            }
        })? {
            Manifest::Image(image) => image,
            Manifest::List(_) => {
                return Err(ImageReadError::ListInList {
                    digest: known.digest.clone(),
                });
            }
        };
    read_config(client, config, job, manifest, known.architecture.clone()).await
}

/// Reads the config blob of an image manifest into a row (or a skip); `architecture` is the
/// list entry's platform, else the blob's own.
async fn read_config(
    client: &RegistryClient,
    config: &RegistryConfig,
    job: &TagJob,
    manifest: ImageManifest,
    architecture: Option<String>,
) -> Result<ImageOutcome, ImageReadError> {
    let scope = pull_scope(&job.repository);
    let ImageManifest {
        config_digest,
        size_bytes,
    } = manifest;
    let blob_url = client.url(&format!("v2/{}/blobs/{config_digest}", job.repository));
    let blob = client.get(&blob_url, &scope, None).await?;
    if blob.status == StatusCode::NOT_FOUND {
        return Err(ImageReadError::MissingBlob {
            digest: config_digest,
        });
    }
    if !blob.status.is_success() {
        return Err(client
            .status_error(&blob_url, blob.status, &blob.body)
            .into());
    }
    let image_config =
        parse_config_blob(&blob.body).map_err(|source| ImageReadError::ConfigBlob {
            digest: config_digest.clone(),
            source,
        })?;
    let architecture = architecture.unwrap_or(image_config.architecture);
    let metadata = match image_metadata(&image_config.labels) {
        Ok(metadata) => metadata,
        Err(reason) => {
            return Ok(ImageOutcome::Skipped {
                architecture,
                reason: reason.to_string(),
            });
        }
    };
    Ok(ImageOutcome::Stored(Box::new(scanned_image(
        config,
        job,
        architecture,
        config_digest,
        size_bytes,
        image_config.labels,
        metadata,
    ))))
}

fn scanned_image(
    config: &RegistryConfig,
    job: &TagJob,
    architecture: String,
    config_digest: String,
    size_bytes: i64,
    labels: BTreeMap<String, String>,
    metadata: super::labels::ImageMetadata,
) -> ScannedImage {
    ScannedImage {
        name: format!("{}/{}:{}", config.name, job.repository, job.tag),
        registry: config.name.clone(),
        project: job
            .repository
            .split_once('/')
            .map(|(project, _)| project.to_owned()),
        image: job.repository.clone(),
        tag: job.tag.clone(),
        architecture,
        config_digest,
        size_bytes,
        is_local: false,
        accelerators: metadata.accelerators,
        labels,
        resources: metadata.resources,
    }
}
