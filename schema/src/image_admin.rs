//! Catalogue edits of superadmins beyond forget/alias: `modify_image` (change the columns of
//! one image row) and `clear_images` (drop every image of a registry with its aliases).

use serde_json::Value;
use tokio_postgres::GenericClient;

use crate::images::{ImageDbError, ImageRecord, resolve_image};

fn db_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> ImageDbError {
    move |source| ImageDbError::Database { context, source }
}

/// The columns `modify_image` sets; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageChanges {
    pub name: Option<String>,
    pub registry: Option<String>,
    pub image: Option<String>,
    pub tag: Option<String>,
    pub architecture: Option<String>,
    pub size_bytes: Option<i64>,
    /// `COMPUTE`, `SYSTEM` or `SERVICE`.
    pub image_type: Option<String>,
    pub config_digest: Option<String>,
    /// Comma-joined, as the original stores them.
    pub accelerators: Option<String>,
    pub labels: Option<Value>,
    pub resources: Option<Value>,
}

/// Applies `changes` to the image `target` (a canonical reference or an alias).
pub async fn modify_image(
    client: &impl GenericClient,
    target: &str,
    architecture: &str,
    changes: &ImageChanges,
) -> Result<ImageRecord, ImageDbError> {
    let record = resolve_image(client, target, architecture).await?;
    client
        .execute(
            "UPDATE images SET name = coalesce($2, name), registry = coalesce($3, registry), \
                 image = coalesce($4, image), tag = coalesce($5, tag), \
                 architecture = coalesce($6, architecture), size_bytes = coalesce($7, size_bytes), \
                 type = coalesce($8::text::imagetype, type), \
                 config_digest = coalesce($9, config_digest), \
                 accelerators = coalesce($10, accelerators), labels = coalesce($11, labels), \
                 resources = coalesce($12, resources) \
             WHERE id = $1",
            &[
                &record.id,
                &changes.name,
                &changes.registry,
                &changes.image,
                &changes.tag,
                &changes.architecture,
                &changes.size_bytes,
                &changes.image_type,
                &changes.config_digest,
                &changes.accelerators,
                &changes.labels,
                &changes.resources,
            ],
        )
        .await
        .map_err(db_err("changing an image"))?;
    Ok(record)
}

/// Deletes every image of `registry` and their aliases; how many images went.
pub async fn clear_registry_images(
    client: &impl GenericClient,
    registry: &str,
) -> Result<u64, ImageDbError> {
    client
        .execute(
            "DELETE FROM image_aliases WHERE image IN (SELECT id FROM images WHERE registry = $1)",
            &[&registry],
        )
        .await
        .map_err(db_err("deleting the aliases of a registry's images"))?;
    client
        .execute("DELETE FROM images WHERE registry = $1", &[&registry])
        .await
        .map_err(db_err("deleting a registry's images"))
}
