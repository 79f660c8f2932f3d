//! Shared pieces of the client-API tests: a world with the example fixtures loaded, the
//! façade's `AppState` built on it, a log capture, and a request signer that signs exactly as
//! the official client does.

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix::{Actor, Handler, ResponseFuture};
use actix_web::http::Method;
use actix_web::test::TestRequest;
use bai_actors::etcd::{EtcdSettings, EtcdStore};
use bai_actors::event_bus::SessionEventFeed;
use bai_actors::facade::auth::signature::{HashAlgorithm, SignedParts, compute_signature};
use bai_actors::facade::session::control::{
    CancelPendingSession, EnqueueSession, QueueError, SessionQueue,
};
use bai_actors::facade::{AppState, FacadeSettings, RedisConnections};
use bai_actors::redis::{RedisSettings, db};
use bai_actors::scheduler::queue::{cancel_pending, enqueue_session};
use bai_actors::wire::{EventProducer, WireFormat};
use bai_schema::DbSettings;
use bai_schema::queries::session_enqueue::Enqueued;
use bai_testkit::TestEnv;
use serde_json::Value;

pub const ADMIN_AK: &str = "AKIAIOSFODNN7EXAMPLE";
pub const ADMIN_SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const DOMAIN_ADMIN_AK: &str = "AKIAHUKCHDEZGEXAMPLE";
pub const DOMAIN_ADMIN_SK: &str = "cWbsM_vBB4CzTW7JdORRMx8SjGI3-wEXAMPLEKEY";
pub const USER_AK: &str = "AKIANABBDUSEREXAMPLE";
pub const USER_SK: &str = "C8qnIo29EZvXkPK_MXcuAakYTy4NYrxwmCEyNPlf";
pub const USER2_AK: &str = "AKIANATWOUSEREXAMPLE";
pub const USER2_SK: &str = "P7oxTDdzHbEpUSs5v7r7EWj9yKstp8VpZ7SEyA-g";
pub const MONITOR_AK: &str = "AKIANAMONITOREXAMPLE";
pub const MONITOR_SK: &str = "7tuEwF1J7FfK41vOM4uSSyWCUWjPBolpVwvgkSBu";

/// Every secret key of the example fixtures, for "never leaked" checks.
pub const ALL_SECRETS: [&str; 5] = [ADMIN_SK, DOMAIN_ADMIN_SK, USER_SK, USER2_SK, MONITOR_SK];

/// The Host the test requests claim (the signature covers it).
pub const TEST_HOST: &str = "127.0.0.1:8081";

/// Log lines written by the façade, kept for inspection.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    pub fn logger(&self) -> slog::Logger {
        use slog::Drain;
        let decorator = slog_term::PlainSyncDecorator::new(self.clone());
        let drain = slog_term::FullFormat::new(decorator).build().fuse();
        slog::Logger::root(drain, slog::o!())
    }
}

impl Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A test world with the example users, keypairs and presets, `manager/status = running`,
/// and the façade state built on it.
pub struct ApiWorld {
    pub env: TestEnv,
    pub state: AppState,
    pub log: LogCapture,
}

impl ApiWorld {
    pub async fn new() -> ApiWorld {
        let env = TestEnv::new().await;
        env.load_example_fixtures().await;
        env.etcd_put("manager/status", "running").await;
        let log = LogCapture::default();
        let state = app_state(&env, log.logger()).await;
        ApiWorld { env, state, log }
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        self.env.db.connect().await
    }
}

/// The façade state for `env`, as a worker builds it.
pub async fn app_state(env: &TestEnv, log: slog::Logger) -> AppState {
    let pool = DbSettings {
        host: env.db.host.clone(),
        port: env.db.port,
        name: env.db.name.clone(),
        user: env.db.user.clone(),
        password: "unused-trust-auth".into(),
        pool_size: 4,
    }
    .connect_pool()
    .await
    .unwrap();
    let etcd = EtcdStore::connect(&EtcdSettings {
        endpoints: vec![env.etcd_endpoint.clone()],
        namespace: env.namespace.clone(),
        user: None,
        password: None,
    })
    .await
    .unwrap();
    let redis_settings = RedisSettings::parse(&env.redis.addr(), None).unwrap();
    let redis = RedisConnections {
        stat: redis_settings.connect(db::STAT).await.unwrap(),
        rate_limit: redis_settings.connect(db::RATE_LIMIT).await.unwrap(),
        live: redis_settings.connect(db::LIVE).await.unwrap(),
        image: redis_settings.connect(db::IMAGE).await.unwrap(),
        stream: redis_settings.connect(db::STREAM).await.unwrap(),
    };
    let settings = FacadeSettings {
        manager_id: "i-test".into(),
        manager_version: "22.09.99".into(),
        hide_agents: false,
        num_proc: 1,
        heartbeat_timeout: 40.0,
        service_addr: "127.0.0.1:8081".into(),
        ssl_enabled: false,
        debug: false,
        importer_image: "lablup/importer:manylinux2010".into(),
    };
    AppState::new(pool, etcd, redis, settings, log)
}

/// Signs requests as the official client does.
#[derive(Clone)]
pub struct Signer {
    pub access_key: String,
    pub secret_key: String,
    pub version: String,
}

impl Signer {
    pub fn new(access_key: &str, secret_key: &str) -> Signer {
        Signer {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            version: "v6.20220615".into(),
        }
    }

    /// The headers of a signed request at `date` (ISO 8601, like the client's).
    pub fn headers(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: &str,
        date: chrono::DateTime<chrono::Utc>,
    ) -> Vec<(String, String)> {
        let raw_date = date.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let key_date = date.format("%Y%m%d").to_string();
        let parts = SignedParts {
            method,
            path_and_query,
            raw_date: &raw_date,
            host: TEST_HOST,
            content_type,
            modern_version_header: true,
            version: &self.version,
            key_date: &key_date,
        };
        let signature = compute_signature(&self.secret_key, &parts, HashAlgorithm::Sha256);
        vec![
            ("Host".into(), TEST_HOST.into()),
            ("Date".into(), raw_date),
            ("Content-Type".into(), content_type.into()),
            ("X-BackendAI-Version".into(), self.version.clone()),
            ("X-BackendAI-Domain".into(), "default".into()),
            (
                "Authorization".into(),
                format!(
                    "BackendAI signMethod=HMAC-SHA256, credential={}:{signature}",
                    self.access_key
                ),
            ),
        ]
    }

    /// A signed test request; `body` makes it a JSON request.
    pub fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> TestRequest {
        let content_type = if body.is_some() {
            "application/json"
        } else {
            "text/plain"
        };
        let mut request = TestRequest::default()
            .method(method.clone())
            .uri(path_and_query);
        for (name, value) in self.headers(
            method.as_str(),
            path_and_query,
            content_type,
            chrono::Utc::now(),
        ) {
            request = request.insert_header((name, value));
        }
        match body {
            Some(body) => request.set_payload(body.to_string()),
            None => request,
        }
    }
}

/// The PENDING queue of an app that runs no scheduler: an actor that answers the scheduler's
/// `EnqueueSession` and `CancelPendingSession` with the same functions the scheduler runs
/// (`scheduler::queue`), so the façade's requests take the path they take in a worker.
struct PendingQueue {
    producer: EventProducer,
    log: slog::Logger,
}

impl Actor for PendingQueue {
    type Context = actix::Context<Self>;
}

impl Handler<EnqueueSession> for PendingQueue {
    type Result = ResponseFuture<Result<Enqueued, QueueError>>;

    fn handle(&mut self, message: EnqueueSession, _ctx: &mut Self::Context) -> Self::Result {
        let (producer, log) = (self.producer.clone(), self.log.clone());
        Box::pin(async move { enqueue_session(&producer, &log, message).await })
    }
}

impl Handler<CancelPendingSession> for PendingQueue {
    type Result = ResponseFuture<Result<bool, QueueError>>;

    fn handle(&mut self, message: CancelPendingSession, _ctx: &mut Self::Context) -> Self::Result {
        let (producer, log) = (self.producer.clone(), self.log.clone());
        Box::pin(async move { cancel_pending(&producer, &log, message).await })
    }
}

/// Starts a [`PendingQueue`] for `state`'s event stream (inside an actix system).
pub fn session_queue(state: &AppState) -> SessionQueue {
    let queue = PendingQueue {
        producer: EventProducer::new(state.redis.stream.clone(), WireFormat::default()),
        log: state.log.clone(),
    }
    .start();
    SessionQueue {
        enqueue: queue.clone().recipient(),
        cancel: queue.recipient(),
    }
}

/// Starts a worker's session-event feed for `world` (inside an actix system), as the worker
/// does: supervised, logging to the world's capture.
pub fn session_feed(world: &ApiWorld) -> actix::Addr<SessionEventFeed> {
    let feed = SessionEventFeed::new(
        world.log.logger(),
        RedisSettings::parse(&world.env.redis.addr(), None).unwrap(),
        world.state.db.clone(),
    );
    actix::Supervisor::start(move |_| feed)
}

/// Builds the API app for a world (with the PENDING queue, without the rest of the scheduler).
#[macro_export]
macro_rules! api_app {
    ($world:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .app_data(actix_web::web::Data::new($world.state.clone()))
                .app_data(actix_web::web::Data::new(
                    $crate::api_support::session_queue(&$world.state),
                ))
                .app_data(actix_web::web::Data::new(
                    $crate::api_support::session_feed(&$world),
                ))
                .configure(bai_actors::facade::configure),
        )
        .await
    };
}

/// Calls the app and returns the status, the headers and the JSON body (`Null` if empty).
pub async fn call<S, R, B>(
    app: &S,
    request: R,
) -> (
    actix_web::http::StatusCode,
    actix_web::http::header::HeaderMap,
    Value,
)
where
    S: actix_web::dev::Service<
            R,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let response = actix_web::test::call_service(app, request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = actix_web::test::read_body(response).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, body)
}

/// `https://api.backend.ai/probs/<slug>`.
pub fn problem_type(slug: &str) -> String {
    format!("https://api.backend.ai/probs/{slug}")
}
