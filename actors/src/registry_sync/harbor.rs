//! Listing a Harbor registry through its own API: v2.0 (`projects/{p}/repositories`, then each
//! repository's `artifacts` with their tags and platform references) and 1.x (`projects`, then
//! `repositories?project_id=`). Manifests and blobs are then read through `/v2/` as usual.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::client::{RegistryClient, RegistryError};
use super::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use super::paging::{next_link, resolve_next};
use super::scan::{KnownManifest, ScanNote, TagJob, TagSource};
use bai_schema::image_ref::normalize_architecture;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// Items per Harbor API page, as the original asks.
pub const HARBOR_PAGE_SIZE: usize = 30;

#[derive(Deserialize)]
struct Repository {
    name: String,
}

#[derive(Deserialize)]
struct Project {
    name: String,
    project_id: i64,
}

#[derive(Deserialize)]
struct Tag {
    name: String,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Reference {
    child_digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Artifact {
    digest: String,
    #[serde(default, rename = "type")]
    artifact_type: Option<String>,
    #[serde(default)]
    manifest_media_type: Option<String>,
    #[serde(default)]
    tags: Option<Vec<Tag>>,
    #[serde(default)]
    references: Option<Vec<Reference>>,
}

/// A Harbor error body: `{"errors":[{"code":..., "message":...}]}`.
fn harbor_error(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let first = json.get("errors")?.get(0)?;
    Some(format!(
        "{} {}",
        first.get("code").and_then(|c| c.as_str()).unwrap_or(""),
        first.get("message").and_then(|m| m.as_str()).unwrap_or("")
    ))
}

/// Reads every page of a Harbor listing.
async fn paginate<T: DeserializeOwned>(
    client: &RegistryClient,
    first: Url,
    what: &str,
) -> Result<Vec<T>, RegistryError> {
    let mut items = Vec::new();
    let mut next = Some(first);
    let mut seen_pages = Vec::new();
    while let Some(url) = next.take() {
        let fetched = client.get_api(&url).await?;
        let bad = |detail: String| RegistryError::BadResponse {
            registry: client.registry().to_owned(),
            url: url.to_string(),
            detail,
        };
        if let Some(error) = harbor_error(&fetched.body) {
            return Err(bad(format!("failed to fetch {what}: {error}")));
        }
        let page: Vec<T> = serde_json::from_slice(&fetched.body)
            .map_err(|e| bad(format!("unexpected {what} page: {e}")))?;
        items.extend(page);
        seen_pages.push(url);
        next = fetched
            .link
            .as_deref()
            .and_then(next_link)
            .and_then(|link| resolve_next(client.base_url(), link))
            .filter(|candidate| !seen_pages.contains(candidate));
    }
    Ok(items)
}

fn with_page_size(mut url: Url) -> Url {
    url.query_pairs_mut()
        .append_pair("page_size", &HARBOR_PAGE_SIZE.to_string());
    url
}

fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}

/// The repositories (`project/name`) of one Harbor 2 project.
pub async fn list_repositories_v2(
    client: &RegistryClient,
    project: &str,
) -> Result<Vec<String>, RegistryError> {
    let url = with_page_size(client.url(&format!(
        "api/v2.0/projects/{}/repositories",
        encode(project)
    )));
    let repositories: Vec<Repository> =
        match paginate(client, url, &format!("repositories in project {project}")).await {
            Err(RegistryError::Status { status: 404, .. }) => {
                return Err(RegistryError::UnknownProject {
                    registry: client.registry().to_owned(),
                    project: project.to_owned(),
                });
            }
            other => other?,
        };
    Ok(repositories.into_iter().map(|r| r.name).collect())
}

/// The tag jobs of one Harbor 2 repository, from its artifacts, plus notes on artifacts that
/// cannot be scanned (untagged, not an image, unknown media type).
pub async fn list_artifact_jobs(
    client: &RegistryClient,
    repository: &str,
) -> Result<(Vec<TagJob>, Vec<ScanNote>), RegistryError> {
    let (project, name) = repository.split_once('/').unwrap_or(("", repository));
    // Harbor wants a repository name with slashes encoded twice (a/b → a%252Fb).
    let url = with_page_size(client.url(&format!(
        "api/v2.0/projects/{}/repositories/{}/artifacts",
        encode(project),
        encode(&encode(name))
    )));
    let artifacts: Vec<Artifact> =
        paginate(client, url, &format!("artifacts of {repository}")).await?;
    let mut jobs = Vec::new();
    let mut notes = Vec::new();
    for artifact in artifacts {
        let tags: Vec<String> = artifact
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.name)
            .collect();
        let note = |reason: String| ScanNote {
            reference: format!("{repository}@{}", artifact.digest),
            reason,
        };
        if tags.is_empty() {
            notes.push(note("no tag".to_owned()));
            continue;
        }
        if let Some(kind) = artifact
            .artifact_type
            .as_deref()
            .filter(|t| !t.eq_ignore_ascii_case("IMAGE"))
        {
            notes.push(note(format!("not a container image (type {kind})")));
            continue;
        }
        let manifests = match artifact.manifest_media_type.as_deref().unwrap_or("") {
            OCI_INDEX | DOCKER_MANIFEST_LIST => artifact
                .references
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| {
                    let platform = r.platform?;
                    (platform.architecture != "unknown" && platform.os != "unknown").then(|| {
                        KnownManifest {
                            digest: r.child_digest,
                            architecture: Some(normalize_architecture(&platform.architecture)),
                        }
                    })
                })
                .collect(),
            DOCKER_MANIFEST | OCI_MANIFEST => vec![KnownManifest {
                digest: artifact.digest.clone(),
                architecture: None,
            }],
            other => {
                notes.push(note(format!("unsupported artifact media type {other:?}")));
                continue;
            }
        };
        for tag in tags {
            jobs.push(TagJob {
                repository: repository.to_owned(),
                tag,
                source: TagSource::Known(manifests.clone()),
            });
        }
    }
    Ok((jobs, notes))
}

/// The repositories of the given projects on a Harbor 1.x registry.
pub async fn list_repositories_v1(
    client: &RegistryClient,
    projects: &[String],
) -> Result<Vec<String>, RegistryError> {
    let all_projects: Vec<Project> = paginate(
        client,
        with_page_size(client.url("api/projects")),
        "projects",
    )
    .await?;
    if let Some(missing) = projects
        .iter()
        .find(|wanted| !all_projects.iter().any(|p| &p.name == *wanted))
    {
        return Err(RegistryError::UnknownProject {
            registry: client.registry().to_owned(),
            project: missing.clone(),
        });
    }
    let mut repositories = Vec::new();
    for project in all_projects.iter().filter(|p| projects.contains(&p.name)) {
        let mut url = with_page_size(client.url("api/repositories"));
        url.query_pairs_mut()
            .append_pair("project_id", &project.project_id.to_string());
        let page: Vec<Repository> = paginate(
            client,
            url,
            &format!("repositories in project {}", project.name),
        )
        .await?;
        repositories.extend(page.into_iter().map(|r| r.name));
    }
    Ok(repositories)
}
