//! Shared set-up of the GraphQL tests: a real database with the original's example fixtures,
//! and a way to run a GraphQL document as one of its keypairs (through the same entry point as
//! `POST /admin/gql`, after authentication).

use bai_actors::gql::context::{GqlRequest, GqlSettings, Requester};
use bai_actors::gql::http::{GqlBody, execute};
use bai_schema::DbSettings;
use bai_schema::enums::UserRole;
use bai_testkit::TestEnv;
use deadpool_postgres::Pool;
use serde_json::Value;

/// The example fixtures' keypairs.
pub const SUPERADMIN_AK: &str = "AKIAIOSFODNN7EXAMPLE";
pub const DOMAIN_ADMIN_AK: &str = "AKIAHUKCHDEZGEXAMPLE";
pub const USER_AK: &str = "AKIANABBDUSEREXAMPLE";
pub const USER2_AK: &str = "AKIANATWOUSEREXAMPLE";
pub const MONITOR_AK: &str = "AKIANAMONITOREXAMPLE";

pub struct GqlWorld {
    /// Owns the test's database, etcd namespace and Redis; they live as long as the world.
    #[allow(dead_code)]
    pub env: TestEnv,
    pub pool: Pool,
    pub redis_stat: redis::aio::ConnectionManager,
    pub registry_sync: Option<actix::Addr<bai_actors::registry_sync::RegistrySync>>,
    /// The agent RPC client for `hardware_metadata` (none: null).
    pub agent_rpc: Option<std::sync::Arc<bai_actors::agent_rpc::AgentRpc>>,
    /// Background tasks recorded in the test's Redis (db 4).
    pub bgtasks: bai_actors::bgtask::BackgroundTasks,
    pub settings: GqlSettings,
    log: slog::Logger,
}

/// Resolver failures (their database details) go to the test's stderr.
fn stderr_logger() -> slog::Logger {
    use slog::Drain;
    let decorator = slog_term::PlainSyncDecorator::new(std::io::stderr());
    let drain = slog_term::FullFormat::new(decorator).build().fuse();
    slog::Logger::root(drain, slog::o!())
}

impl GqlWorld {
    /// A fresh database with the example fixtures loaded.
    pub async fn with_fixtures() -> GqlWorld {
        let env = TestEnv::new().await;
        env.load_example_fixtures().await;
        let settings = DbSettings {
            host: env.db.host.clone(),
            port: env.db.port,
            name: env.db.name.clone(),
            user: env.db.user.clone(),
            password: String::new(),
            pool_size: 4,
        };
        let pool = settings.connect_pool().await.expect("database pool");
        let redis_client = redis::Client::open(env.redis.url(0)).expect("redis url");
        let redis_stat = redis::aio::ConnectionManager::new(redis_client)
            .await
            .expect("redis connection");
        let stream_client = redis::Client::open(env.redis.url(4)).expect("redis url");
        let redis_stream = redis::aio::ConnectionManager::new(stream_client)
            .await
            .expect("redis connection");
        let log = stderr_logger();
        GqlWorld {
            env,
            pool,
            redis_stat,
            registry_sync: None,
            agent_rpc: None,
            bgtasks: bai_actors::bgtask::BackgroundTasks::new(redis_stream, log.clone()),
            settings: GqlSettings {
                bcrypt_cost: bai_schema::fixture::MIN_BCRYPT_COST,
                ..GqlSettings::default()
            },
            log,
        }
    }

    /// The caller of a request signed with `access_key`, as the authentication layer finds it.
    pub async fn requester(&self, access_key: &str) -> Requester {
        let client = self.pool.get().await.expect("connection");
        let row = client
            .query_one(
                "SELECT k.access_key, k.is_admin, u.uuid, u.email, u.role, u.domain_name \
                 FROM keypairs k JOIN users u ON u.uuid = k.\"user\" WHERE k.access_key = $1",
                &[&access_key],
            )
            .await
            .unwrap_or_else(|e| panic!("keypair {access_key}: {e}"));
        Requester {
            access_key: row.get(0),
            is_admin: row.get(1),
            user_uuid: row.get(2),
            email: row.get(3),
            role: row.get::<_, UserRole>(4),
            domain_name: row.get::<_, Option<String>>(5).unwrap_or_default(),
        }
    }

    /// Runs `query` with `variables` as `access_key`; returns the `/admin/gql` response body.
    pub async fn run(&self, access_key: &str, query: &str, variables: Value) -> Value {
        let request = GqlRequest {
            db: self.pool.clone(),
            redis_stat: Some(self.redis_stat.clone()),
            redis_image: None,
            redis_live: None,
            etcd: None,
            registry_sync: self.registry_sync.clone(),
            bgtasks: Some(self.bgtasks.clone()),
            agent_rpc: self.agent_rpc.clone(),
            requester: self.requester(access_key).await,
            settings: self.settings.clone(),
            storage: None,
        };
        let body = GqlBody {
            query: query.to_owned(),
            variables: match variables {
                Value::Object(map) => Some(map),
                _ => None,
            },
            operation_name: None,
        };
        let response = execute(body, request, false, &self.log).await;
        serde_json::to_value(&response).expect("response JSON")
    }

    /// Runs `query` and returns its `data`, failing the test on any GraphQL error.
    pub async fn data(&self, access_key: &str, query: &str, variables: Value) -> Value {
        let response = self.run(access_key, query, variables).await;
        assert!(
            response.get("errors").is_none(),
            "unexpected errors for {query}: {response:#}"
        );
        response["data"].clone()
    }

    /// Runs `query` and returns the messages of its errors, failing the test when there are none.
    pub async fn errors(&self, access_key: &str, query: &str, variables: Value) -> Vec<String> {
        let response = self.run(access_key, query, variables).await;
        let errors = response["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("expected errors for {query}, got {response:#}"));
        errors
            .iter()
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// The example fixtures' default group (project).
pub const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";

/// Inserts an agent row.
pub async fn insert_agent(
    client: &tokio_postgres::Client,
    id: &str,
    status: &str,
    scaling_group: &str,
) {
    client
        .execute(
            "INSERT INTO agents (id, status, region, scaling_group, available_slots, occupied_slots, \
                 addr, version, architecture) \
             VALUES ($1, ($2::text)::agentstatus, 'local', $3, \
                 '{\"cpu\": \"8\", \"mem\": \"17179869184\"}', '{\"cpu\": \"1\", \"mem\": \"536870912\"}', \
                 'tcp://10.0.0.1:6011', '23.09.10', 'x86_64')",
            &[&id, &status, &scaling_group],
        )
        .await
        .unwrap_or_else(|e| panic!("inserting agent {id}: {e}"));
}

/// Inserts a session of the keypair `access_key` with one main kernel (on `agent`, if any), as
/// the scheduler writes them; returns the session and kernel ids.
pub async fn insert_session(
    client: &tokio_postgres::Client,
    name: &str,
    access_key: &str,
    status: &str,
    agent: Option<&str>,
) -> (uuid::Uuid, uuid::Uuid) {
    let row = client
        .query_one(
            "WITH s AS (INSERT INTO sessions (name, session_type, domain_name, group_id, user_uuid, \
                 access_key, images, status, status_history, occupying_slots, requested_slots, \
                 agent_ids, scaling_group_name) \
             SELECT $1, 'INTERACTIVE', u.domain_name, $3::text::uuid, u.uuid, k.access_key, \
                 ARRAY['127.0.0.1:25000/testing/python:3.9-ubuntu20.04'], ($4::text)::sessionstatus, \
                 jsonb_build_object($4::text, '2026-11-28T02:15:31.597310+00:00'), \
                 '{\"cpu\": \"1\", \"mem\": \"536870912\"}', '{\"cpu\": \"1\", \"mem\": \"536870912\"}', \
                 CASE WHEN $5::text IS NULL THEN NULL ELSE ARRAY[$5::text] END, 'default' \
             FROM keypairs k JOIN users u ON u.uuid = k.\"user\" WHERE k.access_key = $2 RETURNING *) \
             INSERT INTO kernels (session_id, session_name, cluster_role, cluster_idx, cluster_hostname, \
                 scaling_group, agent, domain_name, group_id, user_uuid, access_key, image, registry, \
                 occupied_slots, requested_slots, resource_opts, status, container_id) \
             SELECT s.id, s.name, 'main', 1, 'main1', 'default', $5::text, s.domain_name, s.group_id, \
                 s.user_uuid, s.access_key, s.images[1], '127.0.0.1:25000', s.occupying_slots, \
                 s.requested_slots, '{\"shmem\": 67108864}', \
                 (CASE WHEN $4::text = 'RUNNING_DEGRADED' THEN 'RUNNING' ELSE $4::text END)::kernelstatus, \
                 CASE WHEN $5::text IS NULL THEN NULL ELSE 'c0ffee' END \
             FROM s RETURNING session_id, id",
            &[&name, &access_key, &DEFAULT_GROUP, &status, &agent],
        )
        .await
        .unwrap_or_else(|e| panic!("inserting session {name}: {e:?}"));
    (row.get(0), row.get(1))
}
