//! `vfolder_host_permissions`: the permission names a vfolder host can grant (the original's
//! `PredefinedAtomicPermission`), as `GET /acl` lists them.

use async_graphql::{Object, SimpleObject};

use crate::storage::permissions::HostPermission;

/// The original's `PredefinedAtomicPermission`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "PredefinedAtomicPermission", rename_fields = "snake_case")]
pub struct PredefinedAtomicPermission {
    pub vfolder_host_permission_list: Option<Vec<Option<String>>>,
}

#[derive(Default)]
pub struct AclQuery;

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl AclQuery {
    /// Every vfolder host permission name, for any signed-in caller.
    async fn vfolder_host_permissions(&self) -> Option<PredefinedAtomicPermission> {
        Some(PredefinedAtomicPermission {
            vfolder_host_permission_list: Some(
                HostPermission::ALL
                    .iter()
                    .map(|p| Some(p.as_str().to_owned()))
                    .collect(),
            ),
        })
    }
}
