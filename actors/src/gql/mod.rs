//! The admin GraphQL API (`POST /admin/gql`, legacy `POST /admin/graphql`) as the original
//! manager's graphene schema: the same root fields, argument and field names (snake_case),
//! types, `filter`/`order` mini-languages, pagination and permissions.
//!
//! Layout: one file per object type with its queries and mutations (`domain.rs`, `user.rs`,
//! ...); the SQL they run, the filter/order field maps and the `minilang` compiler live in
//! `bai_schema` (`queries/`, `minilang/`); `schema.rs` merges them into the roots; `context.rs`
//! holds who is asking; `permissions.rs` the role rules; `sql.rs`, `pagination.rs`, `scalars.rs` the shared pieces (Python's text forms live in
//! `crate::compat::pyjson`); `http.rs` the routes; `prescan.rs` and `front_end.rs` the limits
//! every document passes before it is parsed, validated and run.

pub mod acl;
pub mod admin_mutation;
pub mod agent;
pub mod agent_summary;
pub mod container;
pub mod container_query;
pub mod context;
pub mod domain;
pub mod enums;
pub mod error;
pub mod front_end;
pub mod group;
pub mod http;
pub mod image;
pub mod keypair;
pub mod mutation;
pub mod pagination;
pub mod permissions;
pub mod prescan;
pub mod quota_scope;
pub mod resource_policy;
pub mod resource_preset;
pub mod scalars;
pub mod scaling_group;
pub mod schema;
pub mod session;
pub mod sql;
pub mod stats;
pub mod storage_volume;
pub mod user;
pub mod user_mutation;
pub mod validate;
pub mod vfolder;
pub mod vfolder_scopes;

pub use context::{GqlRequest, GqlSettings, Requester};
pub use schema::{GqlSchema, build_schema, sdl};
