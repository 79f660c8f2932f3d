//! Registry sync: fills the image catalogue (`images`) from container registries.
//!
//! Map of the module, from the outside in:
//! - `actor`: the [`RegistrySync`] actor and its messages (the API for the CLI and GraphQL);
//! - `rescan`: one rescan end to end (target → scan → one commit per registry);
//! - `scan`: scanning the tags of one registry under the request cap;
//! - `docker_v2`, `harbor`: how each registry type lists repositories and tags;
//! - `client`: HTTP, auth and errors for one registry;
//! - `config`, `manifest`, `labels`, `auth`, `paging`: pure parsing and decisions.

pub mod actor;
pub mod auth;
pub mod client;
pub mod config;
pub mod docker_v2;
pub mod harbor;
pub mod labels;
pub mod manifest;
pub mod paging;
pub mod rescan;
pub mod scan;

pub use actor::{
    AliasImage, CatalogError, ClearImages, DealiasImage, ForgetImage, ModifyImage, RegistrySync,
    Rescan,
};
pub use config::{RegistryConfig, RegistryType, load_registries};
pub use rescan::{RegistryReport, RescanError, RescanReport, rescan};
pub use scan::{
    DEFAULT_MAX_CONCURRENCY_PER_REGISTRY, ProgressSender, ScanNote, ScanOptions, ScanProgress,
};
