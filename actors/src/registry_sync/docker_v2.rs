//! Listing a Docker Registry v2: repositories from `/v2/_catalog` and tags from
//! `/v2/<repository>/tags/list`, both following `Link` pagination.

use serde::Deserialize;
use url::Url;

use super::auth::{CATALOG_SCOPE, pull_scope};
use super::client::{RegistryClient, RegistryError};
use super::paging::{next_link, resolve_next};

/// Repositories per catalog page, as the original asks.
pub const CATALOG_PAGE_SIZE: usize = 30;
/// Tags per tags/list page, as the original asks.
pub const TAGS_PAGE_SIZE: usize = 10;

#[derive(Deserialize)]
struct CatalogPage {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// Follows `Link: rel="next"` from `first`, parsing each page with `parse`.
async fn paginate<T>(
    client: &RegistryClient,
    first: Url,
    scope: &str,
    mut parse: impl FnMut(&[u8]) -> Result<Vec<T>, String>,
) -> Result<Vec<T>, RegistryError> {
    let mut items = Vec::new();
    let mut next = Some(first);
    let mut seen_pages = Vec::new();
    while let Some(url) = next.take() {
        let fetched = client.get_ok(&url, scope, Some("application/json")).await?;
        items.extend(
            parse(&fetched.body).map_err(|detail| RegistryError::BadResponse {
                registry: client.registry().to_owned(),
                url: url.to_string(),
                detail,
            })?,
        );
        seen_pages.push(url);
        next = fetched
            .link
            .as_deref()
            .and_then(next_link)
            .and_then(|link| resolve_next(client.base_url(), link))
            // A registry that links a page to itself would otherwise loop forever.
            .filter(|candidate| !seen_pages.contains(candidate));
    }
    Ok(items)
}

/// Every repository in the catalog.
pub async fn list_repositories(client: &RegistryClient) -> Result<Vec<String>, RegistryError> {
    let mut first = client.url("v2/_catalog");
    first
        .query_pairs_mut()
        .append_pair("n", &CATALOG_PAGE_SIZE.to_string());
    paginate(client, first, CATALOG_SCOPE, |body| {
        let page: CatalogPage =
            serde_json::from_slice(body).map_err(|e| format!("not a catalog page: {e}"))?;
        Ok(page.repositories.unwrap_or_default())
    })
    .await
}

/// Every tag of `repository` (none for a repository whose tags were all deleted).
pub async fn list_tags(
    client: &RegistryClient,
    repository: &str,
) -> Result<Vec<String>, RegistryError> {
    let mut first = client.url(&format!("v2/{repository}/tags/list"));
    first
        .query_pairs_mut()
        .append_pair("n", &TAGS_PAGE_SIZE.to_string());
    paginate(client, first, &pull_scope(repository), |body| {
        let page: TagsPage =
            serde_json::from_slice(body).map_err(|e| format!("not a tags/list page: {e}"))?;
        Ok(page.tags.unwrap_or_default())
    })
    .await
}
