//! The schema root: the query and mutation roots merged from every type's module, the naming
//! rule (fields and arguments exactly as written, in snake_case like the original), and the
//! limits that keep one request from exhausting the server.

use async_graphql::{EmptySubscription, MergedObject, Schema};

use super::acl::AclQuery;
use super::admin_mutation::AdminMutation;
use super::agent::AgentQuery;
use super::agent_summary::AgentSummaryQuery;
use super::container_query::ContainerQuery;
use super::domain::{DomainMutation, DomainQuery};
use super::group::{GroupMutation, GroupQuery};
use super::image::{ImageMutation, ImageQuery};
use super::keypair::{KeyPairMutation, KeyPairQuery};
use super::quota_scope::{QuotaScopeMutation, QuotaScopeQuery};
use super::resource_policy::{ResourcePolicyMutation, ResourcePolicyQuery};
use super::resource_preset::{ResourcePresetMutation, ResourcePresetQuery};
use super::scaling_group::{ScalingGroupMutation, ScalingGroupQuery};
use super::session::SessionQuery;
use super::storage_volume::StorageVolumeQuery;
use super::user::UserQuery;
use super::user_mutation::UserMutation;
use super::vfolder::VFolderQuery;
use super::vfolder_scopes::VFolderScopeQuery;

/// The deepest selection nesting accepted. The official client's deepest query
/// (`compute_session { containers { ... } }` inside a list) is 4 levels deep; introspection
/// queries of common tools reach about 13.
pub const MAX_QUERY_DEPTH: usize = 15;

/// The largest query complexity accepted (each selected field counts 1, list items are not
/// multiplied). The client's largest query selects about 60 fields; introspection about 200.
pub const MAX_QUERY_COMPLEXITY: usize = 1000;

/// How deeply fragments, lists and input objects may recurse while the query is parsed and
/// validated, so a hostile document cannot overflow the stack.
pub const MAX_RECURSIVE_DEPTH: usize = 32;

/// The most directives one field may carry.
pub const MAX_DIRECTIVES: usize = 16;

/// Every query root field, one part per type. To add root fields (e.g. the storage engineer's
/// `vfolder_list`, `storage_volume`, `storage_volume_list`), write a `#[derive(Default)]`
/// struct with an `#[Object(rename_fields = "snake_case", rename_args = "snake_case")]` impl in
/// your own file under `actors/src/gql/` and add it to this tuple; resolvers get the caller and
/// the pool from `GqlRequest::of(ctx)`, check `permissions`, and run their SQL through a query
/// module of `bai_schema::queries` (a list builds a `Listing` there, with `minilang` over its
/// field maps).
#[derive(MergedObject, Default)]
#[graphql(name = "Queries")]
pub struct QueryRoot(
    AgentQuery,
    DomainQuery,
    GroupQuery,
    ImageQuery,
    KeyPairQuery,
    ResourcePolicyQuery,
    ResourcePresetQuery,
    ScalingGroupQuery,
    SessionQuery,
    UserQuery,
    VFolderQuery,
    StorageVolumeQuery,
    AgentSummaryQuery,
    AclQuery,
    QuotaScopeQuery,
    VFolderScopeQuery,
    ContainerQuery,
);

/// Every mutation, one part per type.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutations")]
pub struct MutationRoot(
    DomainMutation,
    GroupMutation,
    ImageMutation,
    KeyPairMutation,
    ResourcePolicyMutation,
    ResourcePresetMutation,
    ScalingGroupMutation,
    UserMutation,
    AdminMutation,
    QuotaScopeMutation,
);

pub type GqlSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Builds the schema once per worker; it is immutable and shared by all requests.
pub fn build_schema() -> GqlSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .limit_depth(MAX_QUERY_DEPTH)
    .limit_complexity(MAX_QUERY_COMPLEXITY)
    .limit_recursive_depth(MAX_RECURSIVE_DEPTH)
    .limit_directives(MAX_DIRECTIVES)
    .finish()
}

/// The schema in SDL, as `bai-manager gql show` prints it.
pub fn sdl() -> String {
    build_schema().sdl()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_as_written() {
        let sdl = sdl();
        println!("{sdl}");
        assert!(sdl.contains("create_domain(name: String!, props: DomainInput!): CreateDomain!"));
        assert!(sdl.contains("total_resource_slots: JSONString"));
        assert!(!sdl.contains("totalResourceSlots"));
    }
}
