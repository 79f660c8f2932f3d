//! `Image`: the `image`/`images` queries over the catalogue, and the `rescan_images`,
//! `alias_image`, `dealias_image`, `forget_image` mutations, which go to the registry-sync
//! actor (the owner of image metadata).

use async_graphql::{Context, Object, SimpleObject};
use bai_schema::enums::UserRole;
use bai_schema::images::{self, ImageDbError, ImageRecord};
use uuid::Uuid;

use super::context::GqlRequest;
use super::error::{GqlError, GqlResult};
use super::mutation::{self, MutationRoles, Outcome, mutation_payload, settle};
use super::scalars::BigInt;
use super::sql;
use crate::registry_sync::{AliasImage as AliasMessage, DealiasImage as DealiasMessage};
use crate::registry_sync::{CatalogError, ForgetImage as ForgetMessage, Rescan};

/// The architecture an image reference means when none is given.
pub const DEFAULT_IMAGE_ARCH: &str = "x86_64";

/// A label of an image.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "KVPair", rename_fields = "snake_case")]
pub struct KvPair {
    pub key: Option<String>,
    pub value: Option<String>,
}

/// The minimum and maximum of one slot an image needs.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "ResourceLimit", rename_fields = "snake_case")]
pub struct ResourceLimit {
    pub key: Option<String>,
    pub min: Option<String>,
    pub max: Option<String>,
}

/// An image as the original's GraphQL `Image` type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "Image", rename_fields = "snake_case")]
pub struct Image {
    pub id: Option<Uuid>,
    /// `project/name`, without registry and tag.
    pub name: Option<String>,
    pub humanized_name: Option<String>,
    pub tag: Option<String>,
    pub registry: Option<String>,
    pub architecture: Option<String>,
    pub digest: Option<String>,
    pub labels: Option<Vec<KvPair>>,
    pub aliases: Option<Vec<String>>,
    pub size_bytes: Option<BigInt>,
    pub resource_limits: Option<Vec<ResourceLimit>>,
    pub supported_accelerators: Option<Vec<String>>,
    pub installed: Option<bool>,
    /// Hidden from non-superadmins under `[manager] hide-agents`.
    pub installed_agents: Option<Vec<String>>,
    /// The digest (legacy).
    pub hash: Option<String>,
}

/// The stored digest as the original shows it: `char(72)` pads the 71-character
/// `sha256:<hex>` with a space.
fn padded_digest(digest: &str) -> String {
    format!("{digest:<72}")
}

fn resource_limits(resources: &serde_json::Value) -> Vec<ResourceLimit> {
    let Some(object) = resources.as_object() else {
        return Vec::new();
    };
    let text = |value: Option<&serde_json::Value>, default: Option<&str>| match value {
        None => default.map(str::to_owned),
        Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    object
        .iter()
        .map(|(slot, range)| ResourceLimit {
            key: Some(slot.clone()),
            min: text(range.get("min"), Some("0")),
            max: text(range.get("max"), Some("Infinity")),
        })
        .collect()
}

impl Image {
    fn from_record(
        record: &ImageRecord,
        installed_agents: Vec<String>,
        hide_agents: bool,
    ) -> Image {
        let digest = padded_digest(&record.config_digest);
        let labels = record
            .labels
            .as_object()
            .map(|labels| {
                labels
                    .iter()
                    .map(|(key, value)| KvPair {
                        key: Some(key.clone()),
                        value: Some(
                            value
                                .as_str()
                                .map_or_else(|| value.to_string(), str::to_owned),
                        ),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Image {
            id: Some(record.id),
            name: record.image.clone(),
            humanized_name: record.image.clone(),
            tag: record.tag.clone(),
            registry: Some(record.registry.clone()),
            architecture: Some(record.architecture.clone()),
            digest: Some(digest.clone()),
            labels: Some(labels),
            aliases: Some(record.aliases.clone()),
            size_bytes: Some(BigInt(record.size_bytes)),
            resource_limits: Some(resource_limits(&record.resources)),
            supported_accelerators: Some(
                record
                    .accelerators
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::to_owned)
                    .collect(),
            ),
            installed: Some(!installed_agents.is_empty()),
            installed_agents: if hide_agents {
                None
            } else {
                Some(installed_agents)
            },
            hash: Some(digest),
        }
    }

    /// Whether the image says it is an operation image (`ai.backend.features` has `operation`).
    fn is_operation(&self) -> bool {
        self.labels.iter().flatten().any(|label| {
            label.key.as_deref() == Some("ai.backend.features")
                && label
                    .value
                    .as_deref()
                    .is_some_and(|v| v.split_whitespace().any(|f| f == "operation"))
        })
    }
}

/// The agents that hold each image (Redis db 3: one set per canonical name), in one pipeline.
async fn installed_agents(request: &GqlRequest, records: &[ImageRecord]) -> Vec<Vec<String>> {
    let empty = || vec![Vec::new(); records.len()];
    let Some(redis) = &request.redis_image else {
        return empty();
    };
    if records.is_empty() {
        return Vec::new();
    }
    let mut pipe = redis::pipe();
    for record in records {
        pipe.cmd("SMEMBERS").arg(&record.name);
    }
    let mut connection = redis.clone();
    match pipe.query_async::<Vec<Vec<String>>>(&mut connection).await {
        Ok(mut sets) => {
            for set in &mut sets {
                set.sort();
            }
            sets
        }
        Err(_) => empty(),
    }
}

/// The registries the caller may use: everything for superadmins and monitors, the domain's
/// `allowed_docker_registries` for others.
async fn allowed_registries(
    request: &GqlRequest,
    client: &deadpool_postgres::Object,
) -> GqlResult<Option<Vec<String>>> {
    match request.requester.role {
        UserRole::Superadmin | UserRole::Monitor => Ok(None),
        UserRole::Admin | UserRole::User => {
            let registries = bai_schema::queries::domain_admin::allowed_docker_registries(
                client,
                &request.requester.domain_name,
            )
            .await?;
            Ok(Some(registries.unwrap_or_default()))
        }
    }
}

fn db_error(error: ImageDbError) -> GqlError {
    match error {
        ImageDbError::NotFound { .. } => GqlError::NotFound("environment image"),
        other => GqlError::Database(other.to_string()),
    }
}

async fn images_for(request: &GqlRequest, records: Vec<ImageRecord>) -> GqlResult<Vec<Image>> {
    let client = sql::connection(&request.db).await?;
    let allowed = allowed_registries(request, &client).await?;
    let records: Vec<ImageRecord> = records
        .into_iter()
        .filter(|r| {
            allowed
                .as_ref()
                .is_none_or(|allowed| allowed.contains(&r.registry))
        })
        .collect();
    let agents = installed_agents(request, &records).await;
    let hide = request.hides_agents();
    Ok(records
        .iter()
        .zip(agents)
        .map(|(record, agents)| Image::from_record(record, agents, hide))
        .collect())
}

#[derive(Default)]
pub struct ImageQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ImageQuery {
    /// An image by canonical reference or alias.
    async fn image(
        &self,
        ctx: &Context<'_>,
        reference: String,
        #[graphql(default_with = "Some(DEFAULT_IMAGE_ARCH.to_owned())")] architecture: Option<
            String,
        >,
    ) -> async_graphql::Result<Option<Image>> {
        let request = GqlRequest::of(ctx)?;
        let client = sql::connection(&request.db).await?;
        let architecture = architecture.unwrap_or_else(|| DEFAULT_IMAGE_ARCH.to_owned());
        let record = images::resolve_image(&**client, &reference, &architecture)
            .await
            .map_err(db_error)?;
        let images = images_for(request, vec![record]).await?;
        match images.into_iter().next() {
            Some(image) => Ok(Some(image)),
            None => Err(GqlError::NotFound("environment image").into()),
        }
    }

    /// The images the caller's domain may use.
    async fn images(
        &self,
        ctx: &Context<'_>,
        is_installed: Option<bool>,
        is_operation: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<Image>>> {
        let request = GqlRequest::of(ctx)?;
        let client = sql::connection(&request.db).await?;
        let records = images::list_images(&**client).await.map_err(db_error)?;
        let mut items = images_for(request, records).await?;
        if let Some(installed) = is_installed {
            items.retain(|image| image.installed == Some(installed));
        }
        if let Some(operation) = is_operation {
            items.retain(|image| image.is_operation() == operation);
        }
        Ok(Some(items))
    }
}

mutation_payload!(ForgetImage, "ForgetImage");
mutation_payload!(AliasImage, "AliasImage");
mutation_payload!(DealiasImage, "DealiasImage");

/// The result of `rescan_images`: the rescan runs in the background as task `task_id`.
#[derive(SimpleObject)]
#[graphql(name = "RescanImages", rename_fields = "snake_case")]
pub struct RescanImages {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub task_id: Option<Uuid>,
}

type Step<T> = Result<Outcome<T>, Outcome<T>>;

pub(super) fn catalog_failure<T>(error: CatalogError) -> Outcome<T> {
    Outcome::failure(match error {
        CatalogError::Image(ImageDbError::NotFound { .. }) => {
            "No such environment image.".to_owned()
        }
        CatalogError::Image(ImageDbError::AliasNotFound { .. }) => "No such alias".to_owned(),
        CatalogError::Image(error @ ImageDbError::AliasExists { .. }) => error.to_string(),
        other => format!("unexpected error: {other}"),
    })
}

pub(super) fn registry_sync<T>(
    request: &GqlRequest,
) -> Result<&actix::Addr<crate::registry_sync::RegistrySync>, Outcome<T>> {
    request
        .registry_sync
        .as_ref()
        .ok_or_else(|| Outcome::failure("unexpected error: the registry-sync actor is not running"))
}

pub(super) fn mailbox_failure<T>(error: actix::MailboxError) -> Outcome<T> {
    Outcome::failure(format!(
        "unexpected error: the registry-sync actor did not answer ({error}); retry"
    ))
}

async fn rescan_images(ctx: &Context<'_>, registry: Option<String>) -> Result<Uuid, Outcome<()>> {
    let (request, _client) =
        mutation::begin(ctx, "rescan_images", MutationRoles::AdminOrSuperadmin).await?;
    let actor = registry_sync(request)?.clone();
    let tasks = request
        .bgtasks
        .clone()
        .ok_or_else(|| Outcome::failure("unexpected error: background tasks are not available"))?;
    let target = registry.filter(|r| !r.trim().is_empty());
    // The rescan may take minutes: it runs on after the reply as a background task whose
    // progress `GET /events/background-task` streams; the actor serializes rescans.
    tasks
        .start("rescan_images", move |reporter| {
            run_rescan_task(actor, target, reporter)
        })
        .await
        .map_err(|error| Outcome::failure(format!("unexpected error: {error}")))
}

/// The progress message of one scanned tag, worded as the original's.
fn tag_message(reference: &str, stored: usize, skipped: usize, failed: usize) -> String {
    match (stored, skipped, failed) {
        (0, _, 0) if skipped > 0 => format!("Skipped {reference} (not a Backend.AI image)"),
        (0, _, _) if failed > 0 => format!("Skipped {reference} (failed)"),
        _ => format!("Updated {reference}"),
    }
}

/// One rescan as a background task: the scan's progress becomes the task's figures; broken
/// registries or a failed rescan fail the task with what went wrong.
async fn run_rescan_task(
    actor: actix::Addr<crate::registry_sync::RegistrySync>,
    target: Option<String>,
    reporter: crate::bgtask::ProgressReporter,
) -> crate::bgtask::TaskOutcome {
    use crate::registry_sync::ScanProgress;
    let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
    let scan = crate::supervision::tracked(
        crate::registry_sync::actor::ACTOR_NAME,
        actor.send(Rescan {
            target,
            progress: Some(progress_tx),
        }),
    );
    // The sender goes away with the rescan, which ends this loop.
    let forward = async {
        while let Some(event) = progress_rx.recv().await {
            match event {
                ScanProgress::TagsFound { count, .. } => reporter.add_total(count as u64),
                ScanProgress::TagScanned {
                    reference,
                    stored,
                    skipped,
                    failed,
                    ..
                } => {
                    reporter
                        .advance(1, &tag_message(&reference, stored, skipped, failed))
                        .await
                }
                ScanProgress::RegistryStarted { .. } | ScanProgress::Committing { .. } => {}
            }
        }
    };
    let (outcome, ()) = futures::join!(scan, forward);
    let report = match outcome {
        Ok(Ok(report)) => report,
        Ok(Err(error)) => return Err(error.to_string()),
        Err(error) => return Err(format!("the registry-sync actor stopped: {error}")),
    };
    let broken: Vec<String> = report
        .broken_registries()
        .map(|(registry, error)| format!("{registry}: {error}"))
        .collect();
    if !broken.is_empty() {
        return Err(broken.join("; "));
    }
    Ok(String::new())
}

async fn forget_image(ctx: &Context<'_>, reference: String, architecture: String) -> Step<()> {
    let (request, _client) =
        mutation::begin(ctx, "forget_image", MutationRoles::SuperadminOnly).await?;
    crate::supervision::tracked(
        crate::registry_sync::actor::ACTOR_NAME,
        registry_sync(request)?.send(ForgetMessage {
            reference,
            architecture,
        }),
    )
    .await
    .map_err(mailbox_failure)?
    .map_err(catalog_failure)?;
    Ok(Outcome {
        ok: true,
        msg: String::new(),
        item: None,
    })
}

async fn alias_image(
    ctx: &Context<'_>,
    alias: String,
    target: String,
    architecture: String,
) -> Step<()> {
    let (request, _client) =
        mutation::begin(ctx, "alias_image", MutationRoles::SuperadminOnly).await?;
    crate::supervision::tracked(
        crate::registry_sync::actor::ACTOR_NAME,
        registry_sync(request)?.send(AliasMessage {
            alias,
            target,
            architecture,
        }),
    )
    .await
    .map_err(mailbox_failure)?
    .map_err(catalog_failure)?;
    Ok(Outcome {
        ok: true,
        msg: String::new(),
        item: None,
    })
}

async fn dealias_image(ctx: &Context<'_>, alias: String) -> Step<()> {
    let (request, _client) =
        mutation::begin(ctx, "dealias_image", MutationRoles::SuperadminOnly).await?;
    crate::supervision::tracked(
        crate::registry_sync::actor::ACTOR_NAME,
        registry_sync(request)?.send(DealiasMessage { alias }),
    )
    .await
    .map_err(mailbox_failure)?
    .map_err(catalog_failure)?;
    Ok(Outcome {
        ok: true,
        msg: String::new(),
        item: None,
    })
}

#[derive(Default)]
pub struct ImageMutation;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ImageMutation {
    /// Starts a rescan of one registry (or all) in the background.
    async fn rescan_images(&self, ctx: &Context<'_>, registry: Option<String>) -> RescanImages {
        match rescan_images(ctx, registry).await {
            Ok(task_id) => RescanImages {
                ok: Some(true),
                msg: Some(String::new()),
                task_id: Some(task_id),
            },
            Err(outcome) => RescanImages {
                ok: Some(false),
                msg: Some(outcome.msg),
                task_id: None,
            },
        }
    }

    /// Removes an image (and its aliases) from the catalogue.
    async fn forget_image(
        &self,
        ctx: &Context<'_>,
        reference: String,
        #[graphql(default_with = "Some(DEFAULT_IMAGE_ARCH.to_owned())")] architecture: Option<
            String,
        >,
    ) -> ForgetImage {
        let architecture = architecture.unwrap_or_else(|| DEFAULT_IMAGE_ARCH.to_owned());
        settle(forget_image(ctx, reference, architecture).await)
    }

    async fn alias_image(
        &self,
        ctx: &Context<'_>,
        alias: String,
        target: String,
        #[graphql(default_with = "Some(DEFAULT_IMAGE_ARCH.to_owned())")] architecture: Option<
            String,
        >,
    ) -> AliasImage {
        let architecture = architecture.unwrap_or_else(|| DEFAULT_IMAGE_ARCH.to_owned());
        settle(alias_image(ctx, alias, target, architecture).await)
    }

    async fn dealias_image(&self, ctx: &Context<'_>, alias: String) -> DealiasImage {
        settle(dealias_image(ctx, alias).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_and_digest_as_the_original_shows_them() {
        let limits =
            resource_limits(&json!({"cpu": {"min": "1", "max": null}, "mem": {"min": "256m"}}));
        assert_eq!(limits[0].min.as_deref(), Some("1"));
        assert_eq!(limits[0].max, None);
        assert_eq!(limits[1].max.as_deref(), Some("Infinity"));
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(padded_digest(&digest), format!("{digest} "));
    }
}
