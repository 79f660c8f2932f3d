//! Image lookups for session creation: by canonical name (and architecture), by alias, and the
//! registries a domain may pull from.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{QueryError, ReadColumn, db_err};

/// What session creation needs of an `images` row.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    pub id: Uuid,
    /// The canonical `registry/project/image:tag`.
    pub name: String,
    pub registry: String,
    pub tag: Option<String>,
    pub architecture: String,
    pub labels: serde_json::Value,
    /// `{slot: {"min": str, "max": str|null}}`.
    pub resources: serde_json::Value,
}

const COLUMNS: &str = "i.id, i.name, i.registry, i.tag, i.architecture, i.labels, i.resources";

fn image_row(row: &tokio_postgres::Row) -> Result<ImageRow, QueryError> {
    Ok(ImageRow {
        id: row.read(0)?,
        name: row.read(1)?,
        registry: row.read(2)?,
        tag: row.read(3)?,
        architecture: row.read(4)?,
        labels: row.read(5)?,
        resources: row.read(6)?,
    })
}

/// The rows named `canonical`, the one of `architecture` first.
pub async fn find_images_by_canonical(
    client: &impl GenericClient,
    canonical: &str,
    architecture: &str,
) -> Result<Vec<ImageRow>, QueryError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM images i WHERE i.name = $1
             ORDER BY (i.architecture = $2) DESC, i.architecture"
        ))
        .await
        .map_err(db_err("preparing the image lookup"))?;
    let rows = client
        .query(&statement, &[&canonical, &architecture])
        .await
        .map_err(db_err("looking up an image"))?;
    rows.iter().map(image_row).collect()
}

/// The image `alias` points to, for `architecture`.
pub async fn find_image_by_alias(
    client: &impl GenericClient,
    alias: &str,
    architecture: &str,
) -> Result<Option<ImageRow>, QueryError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM image_aliases a JOIN images i ON a.image = i.id
             WHERE a.alias = $1 AND i.architecture = $2"
        ))
        .await
        .map_err(db_err("preparing the image alias lookup"))?;
    let row = client
        .query_opt(&statement, &[&alias, &architecture])
        .await
        .map_err(db_err("looking up an image alias"))?;
    row.as_ref().map(image_row).transpose()
}

/// `domains.allowed_docker_registries` of an active domain; `None` when there is no such
/// active domain.
pub async fn domain_allowed_registries(
    client: &impl GenericClient,
    domain: &str,
) -> Result<Option<Vec<String>>, QueryError> {
    let statement = client
        .prepare_cached(
            "SELECT allowed_docker_registries FROM domains WHERE name = $1 AND is_active",
        )
        .await
        .map_err(db_err("preparing the domain registry lookup"))?;
    let row = client
        .query_opt(&statement, &[&domain])
        .await
        .map_err(db_err("looking up the domain's registries"))?;
    row.map(|row| row.read(0)).transpose()
}
