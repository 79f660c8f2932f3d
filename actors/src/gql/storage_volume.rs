//! `StorageVolume`: the `storage_volume` and `storage_volume_list` queries (superadmins), read
//! live from the storage proxies through the storage broker: every volume of every proxy,
//! with its backend, capabilities and, on request, hardware info, performance metrics and
//! usage.

use async_graphql::{Context, ID, Object};

use super::context::GqlRequest;
use super::error::GqlError;
use super::pagination::{ListSelection, Page};
use super::permissions::require_superadmin_read;
use super::scalars::JsonString;
use crate::storage::{ProxySet, ProxyVolume, StorageBroker, StorageError, VFolderHost};

/// A volume of a storage proxy, id `proxy:volume`.
#[derive(Clone, Debug)]
pub struct StorageVolume {
    volume: ProxyVolume,
    view: std::sync::Arc<ProxySet>,
}

pub(super) fn storage_failed(error: StorageError) -> GqlError {
    match error {
        StorageError::UnknownProxy { proxy } => {
            GqlError::invalid(format!("no such storage proxy: {proxy:?}"))
        }
        // The proxy's name and what went wrong, never its secret.
        other => GqlError::Internal(other.to_string()),
    }
}

#[Object(name = "StorageVolume", rename_fields = "snake_case")]
impl StorageVolume {
    async fn id(&self) -> Option<ID> {
        Some(ID(self.volume.host()))
    }

    async fn backend(&self) -> Option<&str> {
        Some(&self.volume.info.backend)
    }

    async fn fsprefix(&self) -> Option<&str> {
        Some(&self.volume.info.fsprefix)
    }

    async fn path(&self) -> Option<&str> {
        Some(&self.volume.info.path)
    }

    async fn capabilities(&self) -> Option<&[String]> {
        Some(&self.volume.info.capabilities)
    }

    /// `GET /volume/hwinfo` of the proxy: `{status, status_info, metadata}`.
    async fn hardware_metadata(&self) -> async_graphql::Result<Option<JsonString>> {
        let client = self
            .view
            .client(&self.volume.proxy)
            .map_err(storage_failed)?;
        let info = client
            .hwinfo(&self.volume.info.name)
            .await
            .map_err(storage_failed)?;
        Ok(Some(JsonString(info)))
    }

    /// The proxy's performance metric, or `{}` when its backend has none (as the original).
    async fn performance_metric(&self) -> async_graphql::Result<Option<JsonString>> {
        let client = self
            .view
            .client(&self.volume.proxy)
            .map_err(storage_failed)?;
        let metric = match client.performance_metric(&self.volume.info.name).await {
            Ok(reply) => reply
                .get("metric")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({})),
            Err(StorageError::Unreachable { .. }) | Err(StorageError::UnknownProxy { .. }) => {
                return Err(GqlError::Internal(format!(
                    "storage proxy {} is unreachable",
                    self.volume.proxy
                ))
                .into());
            }
            Err(_) => serde_json::json!({}),
        };
        Ok(Some(JsonString(metric)))
    }

    /// `GET /folder/fs-usage` of the volume, or `{}` when the proxy answers an error.
    async fn usage(&self) -> async_graphql::Result<Option<JsonString>> {
        let client = self
            .view
            .client(&self.volume.proxy)
            .map_err(storage_failed)?;
        let usage = match client.fs_usage(&self.volume.info.name).await {
            Ok(usage) => serde_json::json!({
                "capacity_bytes": usage.capacity_bytes,
                "used_bytes": usage.used_bytes,
            }),
            Err(StorageError::Unreachable { .. }) => {
                return Err(GqlError::Internal(format!(
                    "storage proxy {} is unreachable",
                    self.volume.proxy
                ))
                .into());
            }
            Err(_) => serde_json::json!({}),
        };
        Ok(Some(JsonString(usage)))
    }
}

/// A page of volumes.
pub struct StorageVolumeList {
    items: Vec<StorageVolume>,
    total_count: i32,
}

#[Object(name = "StorageVolumeList", rename_fields = "snake_case")]
impl StorageVolumeList {
    async fn items(&self) -> &[StorageVolume] {
        &self.items
    }

    async fn total_count(&self) -> i32 {
        self.total_count
    }
}

pub(super) fn broker_of(request: &GqlRequest) -> Result<&StorageBroker, GqlError> {
    request.storage.as_ref().ok_or_else(|| {
        GqlError::Internal("the storage broker is not running in this worker".into())
    })
}

#[derive(Default)]
pub struct StorageVolumeQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl StorageVolumeQuery {
    /// One volume by `proxy:volume` (superadmins).
    async fn storage_volume(
        &self,
        ctx: &Context<'_>,
        id: Option<String>,
    ) -> async_graphql::Result<Option<StorageVolume>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let id = id.ok_or_else(|| GqlError::invalid("id is required"))?;
        let view = broker_of(request)?.current();
        let host = VFolderHost::split(&id);
        let client = view.client(&host.proxy).map_err(storage_failed)?;
        let volumes = client.volumes().await.map_err(storage_failed)?;
        let info = volumes
            .into_iter()
            .find(|v| v.name == host.volume)
            .ok_or_else(|| {
                GqlError::invalid(format!(
                    "no such volume in the storage proxy {:?}: {:?}",
                    host.proxy, host.volume
                ))
            })?;
        Ok(Some(StorageVolume {
            volume: ProxyVolume {
                proxy: host.proxy,
                info,
            },
            view,
        }))
    }

    /// Every volume of every proxy, paged (superadmins). `filter` and `order` are accepted
    /// and ignored, as in the original.
    async fn storage_volume_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
    ) -> async_graphql::Result<Option<StorageVolumeList>> {
        let request = GqlRequest::of(ctx)?;
        require_superadmin_read(&request.requester)?;
        let page = Page::new(limit, offset)?;
        let _ = (filter, order, ListSelection::of(ctx));
        let view = broker_of(request)?.current();
        let volumes = view.all_volumes().await.map_err(storage_failed)?;
        let total_count = i32::try_from(volumes.len()).unwrap_or(i32::MAX);
        let items = volumes
            .into_iter()
            .skip(usize::try_from(page.offset).unwrap_or(0))
            .take(usize::try_from(page.limit).unwrap_or(0))
            .map(|volume| StorageVolume {
                volume,
                view: view.clone(),
            })
            .collect();
        Ok(Some(StorageVolumeList { items, total_count }))
    }
}
