//! Storage-proxy brokering: the `volumes/` configuration, a client per storage proxy (which
//! takes paths inside a folder only as checked [`VFolderPath`]s), and the broker actor that
//! keeps both current. The vfolder routes (`facade::routes::vfolder*`) and
//! the session mount resolution use it.

pub mod broker;
pub mod client;
pub mod config;
pub mod error;
pub mod ids;
pub mod mounts;
pub mod permissions;
pub mod proxies;
pub mod recovery;
pub mod relative_path;

pub use broker::StorageBroker;
pub use client::{ProxyClient, VolumeInfo};
pub use config::{Secret, VolumesConfig};
pub use error::StorageError;
pub use ids::{QuotaScopeId, VFolderHost, VFolderId};
pub use proxies::{ProxySet, ProxyVolume};
pub use relative_path::{EntryName, PathError, VFolderPath};
