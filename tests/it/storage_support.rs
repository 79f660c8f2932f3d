//! Shared pieces of the vfolder tests: the API world of `api_support` plus a real storage
//! proxy registered as `local` (so the example fixtures' `local:volume1` permissions apply)
//! and a running storage broker.

use bai_actors::storage::StorageBroker;
use bai_testkit::StorageProxyServer;
use serde_json::Value;

use crate::api_support::ApiWorld;

pub struct StorageWorld {
    pub api: ApiWorld,
    pub proxy: StorageProxyServer,
    pub broker: StorageBroker,
}

impl StorageWorld {
    /// Needs an actix system (`#[actix_web::test]`).
    pub async fn new() -> StorageWorld {
        let api = ApiWorld::new().await;
        let proxy = StorageProxyServer::start(&api.env);
        proxy.register(&api.env, "local").await;
        let broker = StorageBroker::start(api.state.etcd.clone(), api.log.logger())
            .await
            .unwrap();
        StorageWorld { api, proxy, broker }
    }

    /// The ids of the folders named `name`, straight from the database.
    pub async fn folder_rows(&self, name: &str) -> Vec<(uuid::Uuid, String, String)> {
        let db = self.api.db().await;
        db.query(
            "SELECT id, quota_scope_id, status FROM vfolders WHERE name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
    }

    /// Where the vfs volume keeps the folder `name` (from its row).
    pub async fn folder_dir(&self, name: &str) -> std::path::PathBuf {
        let rows = self.folder_rows(name).await;
        let (id, scope, _) = rows.first().unwrap_or_else(|| panic!("no row for {name}"));
        let owner: uuid::Uuid = scope.split_once(':').unwrap().1.parse().unwrap();
        self.proxy.folder_path(owner, *id)
    }

    /// Every folder directory on the volume (`<scope>/<ab>/<cd>/<rest>`).
    pub fn folders_on_disk(&self) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let Ok(scopes) = std::fs::read_dir(self.proxy.volume_path()) else {
            return found;
        };
        for scope in scopes.flatten().filter(|e| e.path().is_dir()) {
            for a in std::fs::read_dir(scope.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                for b in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
                    for rest in std::fs::read_dir(b.path()).into_iter().flatten().flatten() {
                        found.push(rest.path());
                    }
                }
            }
        }
        found
    }
}

/// Builds the API app with the storage broker.
#[macro_export]
macro_rules! storage_app {
    ($world:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .app_data(actix_web::web::Data::new($world.api.state.clone()))
                .app_data(actix_web::web::Data::new($world.broker.clone()))
                .app_data(actix_web::web::Data::new(
                    $crate::api_support::session_queue(&$world.api.state),
                ))
                .configure(bai_actors::facade::configure),
        )
        .await
    };
}

/// `POST /folders` body as the CLI sends it (real-manager.http #71).
pub fn create_body(name: &str) -> Value {
    serde_json::json!({
        "name": name, "host": "local:volume1", "unmanaged_path": null, "group": null,
        "usage_mode": "general", "permission": "rw", "quota": "0", "cloneable": false,
    })
}
