//! What a resolver knows about its request: who is asking (the [`Requester`], built from the
//! façade's authenticated caller) and the shared services (database pool, settings).

use async_graphql::Context;
use bai_schema::enums::UserRole;
use deadpool_postgres::Pool;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::error::GqlError;

/// The caller of a GraphQL request: the keypair that signed it and its user.
#[derive(Debug, Clone, PartialEq)]
pub struct Requester {
    /// The access key that signed the request.
    pub access_key: String,
    /// `keypairs.is_admin`.
    pub is_admin: bool,
    pub user_uuid: Uuid,
    pub email: String,
    pub role: UserRole,
    /// The user's domain (`""` when it has none, which owns nothing).
    pub domain_name: String,
}

impl Requester {
    pub fn is_superadmin(&self) -> bool {
        self.role == UserRole::Superadmin
    }

    /// Whether `secret_key` of the keypair `access_key` may be shown to this caller: only
    /// the owner sees a keypair's secret (our standard, stricter than the original).
    pub fn owns_keypair_of(&self, owner: Uuid) -> bool {
        self.user_uuid == owner
    }
}

/// Settings of the GraphQL layer taken from manager.toml.
#[derive(Debug, Clone)]
pub struct GqlSettings {
    /// `[manager] hide-agents`: hide agent ids and addresses from everyone but superadmins.
    pub hide_agents: bool,
    /// The bcrypt cost of new passwords: the original's 12 in service; tests lower it.
    pub bcrypt_cost: u32,
}

impl Default for GqlSettings {
    fn default() -> GqlSettings {
        GqlSettings {
            hide_agents: false,
            bcrypt_cost: bai_schema::fixture::DEFAULT_BCRYPT_COST,
        }
    }
}

/// The per-request data every resolver reads through [`GqlRequest::of`].
#[derive(Clone)]
pub struct GqlRequest {
    pub db: Pool,
    /// Redis database 0 (`stat`): per-keypair counters (`kp:{ak}:num_queries`,
    /// `keypair.concurrency_used.{ak}`) and live statistics. `None` reads them as empty.
    pub redis_stat: Option<ConnectionManager>,
    /// Redis database 3 (`image`): the agents that hold each image.
    pub redis_image: Option<ConnectionManager>,
    /// Redis database 2 (`live`): the idle checkers' reports. `None` reports nothing.
    pub redis_live: Option<ConnectionManager>,
    /// etcd, for which idle checkers run (`config/idle/enabled`).
    pub etcd: Option<crate::etcd::EtcdStore>,
    /// The registry-sync actor, for the image mutations; `None` answers them with `ok: false`.
    pub registry_sync: Option<actix::Addr<crate::registry_sync::RegistrySync>>,
    /// The agent RPC client, for `Agent.hardware_metadata`; `None` answers it with null.
    pub agent_rpc: Option<std::sync::Arc<crate::agent_rpc::AgentRpc>>,
    /// Background tasks (`rescan_images`); `None` answers such mutations with `ok: false`.
    pub bgtasks: Option<crate::bgtask::BackgroundTasks>,
    pub requester: Requester,
    pub settings: GqlSettings,
    /// The storage proxies, for `storage_volume*`; `None` in a worker without the broker.
    pub storage: Option<crate::storage::StorageBroker>,
}

impl GqlRequest {
    /// The request data of a resolver's context.
    pub fn of<'a>(ctx: &Context<'a>) -> Result<&'a GqlRequest, GqlError> {
        ctx.data::<GqlRequest>()
            .map_err(|_| GqlError::Internal("the GraphQL request has no context".to_owned()))
    }

    /// Whether agent ids and addresses must be hidden from this caller.
    pub fn hides_agents(&self) -> bool {
        self.settings.hide_agents && !self.requester.is_superadmin()
    }
}
