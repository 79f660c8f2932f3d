//! The image catalogue in PostgreSQL (`images`, `image_aliases`): committing a registry scan,
//! listing, resolving a reference or alias, aliases, forgetting and resource limits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::enums::ImageType;
use crate::image_ref::{ImageRef, normalize_architecture};
use crate::queries::ReadColumn;

/// Rows per INSERT statement of a commit: 13 parameters each stays far below PostgreSQL's
/// 65535-parameter limit, and a statement of this size plans in well under a millisecond.
const COMMIT_BATCH_ROWS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ImageDbError {
    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Decode(#[from] crate::queries::DecodeError),
    #[error("image not found: {searched}")]
    NotFound { searched: String },
    #[error("the alias {alias:?} already points to {target}")]
    AliasExists { alias: String, target: String },
    #[error("the alias {alias:?} does not exist")]
    AliasNotFound { alias: String },
    #[error("the image row {name} ({architecture}) has malformed resources: {source}")]
    BadResources {
        name: String,
        architecture: String,
        #[source]
        source: NotAnObject,
    },
}

fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> ImageDbError {
    move |source| ImageDbError::Database { context, source }
}

/// The `{"min": ..., "max": ...}` of one slot in `images.resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRange {
    pub min: String,
    #[serde(default)]
    pub max: Option<String>,
}

/// One architecture of one tag, as a registry scan found it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannedImage {
    /// `registry/project/name:tag`
    pub name: String,
    pub registry: String,
    pub project: Option<String>,
    /// `project/name`
    pub image: String,
    pub tag: String,
    pub architecture: String,
    pub config_digest: String,
    pub size_bytes: i64,
    pub is_local: bool,
    pub accelerators: Option<String>,
    /// The labels exactly as the image carries them.
    pub labels: BTreeMap<String, String>,
    pub resources: BTreeMap<String, SlotRange>,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitCounts {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Writes a scan result in one transaction: new `(name, architecture)` rows are inserted,
/// existing rows get the scanned digest, size, accelerators, labels, resources and `is_local`,
/// and rows whose values are already equal are not touched. Rows of images that disappeared
/// from the registry stay, as in the original. Either everything is written or nothing.
///
/// `fence` (`(lock name, token)`) is checked first inside the transaction
/// (`bai_check_fence`): when a newer holder of the rescan lock recorded a newer token, the
/// commit fails with SQLSTATE `BF001` and writes nothing.
pub async fn commit_scanned(
    client: &mut tokio_postgres::Client,
    images: &[ScannedImage],
    fence: Option<(&str, i64)>,
) -> Result<CommitCounts, ImageDbError> {
    let transaction = client
        .transaction()
        .await
        .map_err(db_err("starting the image commit"))?;
    if let Some((lock, token)) = fence {
        transaction
            .execute("SELECT bai_check_fence($1, $2)", &[&lock, &token])
            .await
            .map_err(db_err("checking the rescan lock's fencing token"))?;
    }
    let mut counts = CommitCounts::default();
    for batch in images.chunks(COMMIT_BATCH_ROWS) {
        let (added, updated) = upsert_batch(&transaction, batch).await?;
        counts.added += added;
        counts.updated += updated;
        counts.unchanged += batch.len() - added - updated;
    }
    transaction
        .commit()
        .await
        .map_err(db_err("committing the image commit"))?;
    Ok(counts)
}

async fn upsert_batch(
    client: &impl GenericClient,
    batch: &[ScannedImage],
) -> Result<(usize, usize), ImageDbError> {
    const COLUMNS: usize = 12;
    let mut values_sql = Vec::with_capacity(batch.len());
    for row in 0..batch.len() {
        let p = |column: usize| row * COLUMNS + column + 1;
        values_sql.push(format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, 'COMPUTE'::imagetype, ${}, ${}, ${})",
            p(0),
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9),
            p(10),
            p(11)
        ));
    }
    // A row is only rewritten when a scanned value differs, so a second identical rescan
    // writes nothing; `xmax = 0` tells an inserted row from an updated one.
    let sql = format!(
        "INSERT INTO images (name, registry, project, image, tag, architecture, config_digest, \
             size_bytes, is_local, type, accelerators, labels, resources) \
         VALUES {} \
         ON CONFLICT (name, architecture) DO UPDATE SET \
             config_digest = EXCLUDED.config_digest, size_bytes = EXCLUDED.size_bytes, \
             is_local = EXCLUDED.is_local, accelerators = EXCLUDED.accelerators, \
             labels = EXCLUDED.labels, resources = EXCLUDED.resources \
         WHERE (images.config_digest, images.size_bytes, images.is_local, images.accelerators, \
                images.labels, images.resources) \
               IS DISTINCT FROM (EXCLUDED.config_digest, EXCLUDED.size_bytes, EXCLUDED.is_local, \
                EXCLUDED.accelerators, EXCLUDED.labels, EXCLUDED.resources) \
         RETURNING (xmax = 0) AS inserted",
        values_sql.join(", ")
    );
    let labels: Vec<Value> = batch.iter().map(|i| json_value(&i.labels)).collect();
    let resources: Vec<Value> = batch.iter().map(|i| json_value(&i.resources)).collect();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        Vec::with_capacity(batch.len() * COLUMNS);
    for (i, image) in batch.iter().enumerate() {
        params.push(&image.name);
        params.push(&image.registry);
        params.push(&image.project);
        params.push(&image.image);
        params.push(&image.tag);
        params.push(&image.architecture);
        params.push(&image.config_digest);
        params.push(&image.size_bytes);
        params.push(&image.is_local);
        params.push(&image.accelerators);
        params.push(&labels[i]);
        params.push(&resources[i]);
    }
    let rows = client
        .query(&sql, &params)
        .await
        .map_err(db_err("writing scanned images"))?;
    let mut added = 0;
    for row in &rows {
        if row.decode::<_, bool>(0)? {
            added += 1;
        }
    }
    Ok((added, rows.len() - added))
}

fn json_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|_| Value::Object(serde_json::Map::new()))
}

/// One row of `images`, with its aliases.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    pub id: Uuid,
    pub name: String,
    pub registry: String,
    pub project: Option<String>,
    pub image: Option<String>,
    pub tag: Option<String>,
    pub architecture: String,
    pub config_digest: String,
    pub size_bytes: i64,
    pub is_local: bool,
    pub image_type: ImageType,
    pub accelerators: Option<String>,
    pub labels: Value,
    pub resources: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub aliases: Vec<String>,
}

const SELECT_IMAGES: &str = "SELECT i.id, i.name, i.registry, i.project, i.image, i.tag, \
        i.architecture, i.config_digest, i.size_bytes, i.is_local, i.type, i.accelerators, \
        i.labels, i.resources, i.created_at, \
        COALESCE(array_agg(a.alias ORDER BY a.alias) FILTER (WHERE a.alias IS NOT NULL), '{}') \
    FROM images i LEFT JOIN image_aliases a ON a.image = i.id";

fn record_from_row(row: &tokio_postgres::Row) -> Result<ImageRecord, ImageDbError> {
    let digest: String = row.decode(7)?;
    Ok(ImageRecord {
        id: row.decode(0)?,
        name: row.decode(1)?,
        registry: row.decode(2)?,
        project: row.decode(3)?,
        image: row.decode(4)?,
        tag: row.decode(5)?,
        architecture: row.decode(6)?,
        // char(72) pads the 71-character `sha256:...` digest with a space.
        config_digest: digest.trim_end().to_owned(),
        size_bytes: row.decode(8)?,
        is_local: row.decode(9)?,
        image_type: row.decode(10)?,
        accelerators: row.decode(11)?,
        labels: row.decode(12)?,
        resources: row.decode(13)?,
        created_at: row.decode(14)?,
        aliases: row.decode(15)?,
    })
}

/// Every image, ordered by name and architecture.
pub async fn list_images(client: &impl GenericClient) -> Result<Vec<ImageRecord>, ImageDbError> {
    let sql = format!("{SELECT_IMAGES} GROUP BY i.id ORDER BY i.name, i.architecture");
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(db_err("listing images"))?;
    rows.iter().map(record_from_row).collect()
}

/// Finds the row of `ImageRow.resolve([ImageRef(value, ["*"], architecture), alias])`: first by
/// canonical name (when only one architecture exists, that one, whatever was asked), then by
/// alias.
pub async fn resolve_image(
    client: &impl GenericClient,
    canonical_or_alias: &str,
    architecture: &str,
) -> Result<ImageRecord, ImageDbError> {
    let mut searched = Vec::new();
    if let Ok(reference) = ImageRef::parse_any_registry(canonical_or_alias) {
        let canonical = reference.canonical();
        if let Some(record) = find_by_canonical(client, &canonical, architecture).await? {
            return Ok(record);
        }
        searched.push(format!("ref:{canonical:?}"));
    }
    if let Some(record) = find_by_alias(client, canonical_or_alias).await? {
        return Ok(record);
    }
    searched.push(format!("alias:{canonical_or_alias:?}"));
    Err(ImageDbError::NotFound {
        searched: searched.join(", "),
    })
}

/// The row named `canonical` for `architecture`, or the only row of that name.
pub async fn find_by_canonical(
    client: &impl GenericClient,
    canonical: &str,
    architecture: &str,
) -> Result<Option<ImageRecord>, ImageDbError> {
    let sql = format!("{SELECT_IMAGES} WHERE i.name = $1 GROUP BY i.id ORDER BY i.architecture");
    let rows = client
        .query(&sql, &[&canonical])
        .await
        .map_err(db_err("looking up an image by name"))?;
    let mut candidates: Vec<ImageRecord> =
        rows.iter().map(record_from_row).collect::<Result<_, _>>()?;
    if candidates.len() == 1 {
        return Ok(candidates.pop());
    }
    let architecture = normalize_architecture(architecture);
    Ok(candidates
        .into_iter()
        .find(|c| c.architecture == architecture))
}

async fn find_by_alias(
    client: &impl GenericClient,
    alias: &str,
) -> Result<Option<ImageRecord>, ImageDbError> {
    let sql = format!(
        "{SELECT_IMAGES} WHERE i.id = (SELECT image FROM image_aliases WHERE alias = $1) GROUP BY i.id"
    );
    let rows = client
        .query(&sql, &[&alias])
        .await
        .map_err(db_err("looking up an image alias"))?;
    rows.first().map(record_from_row).transpose()
}

/// Deletes the row (its aliases go with it); returns what was deleted.
pub async fn forget_image(
    client: &impl GenericClient,
    canonical_or_alias: &str,
    architecture: &str,
) -> Result<ImageRecord, ImageDbError> {
    let record = resolve_image(client, canonical_or_alias, architecture).await?;
    client
        .execute("DELETE FROM images WHERE id = $1", &[&record.id])
        .await
        .map_err(db_err("deleting an image"))?;
    Ok(record)
}

/// Adds `alias` for the image `target` (a canonical reference, not an alias).
pub async fn alias_image(
    client: &impl GenericClient,
    alias: &str,
    target: &str,
    architecture: &str,
) -> Result<ImageRecord, ImageDbError> {
    let not_found = || ImageDbError::NotFound {
        searched: format!("ref:{target:?}"),
    };
    let reference = ImageRef::parse_any_registry(target).map_err(|_| not_found())?;
    let record = find_by_canonical(client, &reference.canonical(), architecture)
        .await?
        .ok_or_else(not_found)?;
    let inserted = client
        .execute(
            "INSERT INTO image_aliases (alias, image) VALUES ($1, $2) ON CONFLICT (alias) DO NOTHING",
            &[&alias, &record.id],
        )
        .await
        .map_err(db_err("adding an image alias"))?;
    if inserted == 0 {
        let existing = find_by_alias(client, alias).await?;
        return Err(ImageDbError::AliasExists {
            alias: alias.to_owned(),
            target: existing
                .map(|r| format!("{} ({})", r.name, r.architecture))
                .unwrap_or_else(|| "another image".to_owned()),
        });
    }
    Ok(record)
}

/// Removes `alias`.
pub async fn dealias_image(client: &impl GenericClient, alias: &str) -> Result<(), ImageDbError> {
    let deleted = client
        .execute("DELETE FROM image_aliases WHERE alias = $1", &[&alias])
        .await
        .map_err(db_err("removing an image alias"))?;
    if deleted == 0 {
        return Err(ImageDbError::AliasNotFound {
            alias: alias.to_owned(),
        });
    }
    Ok(())
}

/// Sets the `min` and/or `max` of `slot` in the image's resources (`None` keeps the value).
pub async fn set_resource_limit(
    client: &impl GenericClient,
    canonical_or_alias: &str,
    architecture: &str,
    slot: &str,
    min: Option<&str>,
    max: Option<&str>,
) -> Result<ImageRecord, ImageDbError> {
    let record = resolve_image(client, canonical_or_alias, architecture).await?;
    let resources = apply_resource_limit(&record.resources, slot, min, max).map_err(|source| {
        ImageDbError::BadResources {
            name: record.name.clone(),
            architecture: record.architecture.clone(),
            source,
        }
    })?;
    client
        .execute(
            "UPDATE images SET resources = $2 WHERE id = $1",
            &[&record.id, &resources],
        )
        .await
        .map_err(db_err("updating image resources"))?;
    Ok(ImageRecord {
        resources,
        ..record
    })
}

/// `images.resources` holds something other than an object (or NULL).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("expected an object, found {0}")]
pub struct NotAnObject(pub Value);

/// `ImageRow.set_resource_limit`: creates the slot entry if missing and overwrites the given
/// bounds with their decimal text.
pub fn apply_resource_limit(
    resources: &Value,
    slot: &str,
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Value, NotAnObject> {
    let mut resources = match resources {
        Value::Object(map) => map.clone(),
        Value::Null => serde_json::Map::new(),
        other => return Err(NotAnObject(other.clone())),
    };
    let entry = resources
        .entry(slot.to_owned())
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(range) = entry {
        if let Some(min) = min {
            range.insert("min".to_owned(), Value::String(min.to_owned()));
        }
        if let Some(max) = max {
            range.insert("max".to_owned(), Value::String(max.to_owned()));
        }
    }
    Ok(Value::Object(resources))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resource_limits_keep_the_other_bound() {
        let current = json!({"cpu": {"min": "1", "max": null}});
        let next = apply_resource_limit(&current, "cpu", None, Some("4")).unwrap();
        assert_eq!(next, json!({"cpu": {"min": "1", "max": "4"}}));
        let next = apply_resource_limit(&next, "cuda.shares", Some("0.5"), None).unwrap();
        assert_eq!(
            next,
            json!({"cpu": {"min": "1", "max": "4"}, "cuda.shares": {"min": "0.5"}})
        );
        assert!(apply_resource_limit(&json!([1]), "cpu", None, None).is_err());
    }

    #[test]
    fn resources_serialize_with_explicit_null_max() {
        let mut resources = BTreeMap::new();
        resources.insert(
            "cpu".to_owned(),
            SlotRange {
                min: "1".to_owned(),
                max: None,
            },
        );
        assert_eq!(
            json_value(&resources),
            json!({"cpu": {"min": "1", "max": null}})
        );
    }
}
