//! A small token server for tests, implementing the Docker registry token-auth flow that
//! Distribution's `auth: token:` expects: `GET /token?service=&scope=` with HTTP Basic
//! credentials answers `{"token": <JWT>}`, an ES256 JWT whose `x5c` header carries a
//! self-signed certificate that the registry trusts through `rootcertbundle`.
//! Every authenticated request is granted what it asks for.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

use crate::process::scratch_root;

/// How long an issued token is valid.
const TOKEN_LIFETIME_SECS: u64 = 300;

struct Issuer {
    key: EcdsaKeyPair,
    certificate_der: Vec<u8>,
    user: String,
    password: String,
    service: String,
    issuer: String,
    issued: AtomicUsize,
    refused: AtomicUsize,
}

/// A running token server.
pub struct TokenServer {
    pub port: u16,
    pub service: String,
    pub issuer: String,
    /// The PEM certificate the registry must trust (`rootcertbundle`).
    pub certificate_pem: PathBuf,
    _dir: tempfile::TempDir,
    state: Arc<Issuer>,
    server: actix_web::dev::ServerHandle,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl to make the token server's key and certificate");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TokenServer {
    /// Starts a token server that accepts `user`/`password`.
    pub fn start(user: &str, password: &str) -> TokenServer {
        let dir = tempfile::Builder::new()
            .prefix("token-server-")
            .tempdir_in(scratch_root())
            .expect("creating a token server scratch directory");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=bai-testkit token server",
            ],
        );
        openssl(
            dir.path(),
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out",
                "key.der",
            ],
        );
        openssl(
            dir.path(),
            &[
                "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
            ],
        );
        let key_der = std::fs::read(dir.path().join("key.der")).expect("reading key.der");
        let certificate_der = std::fs::read(dir.path().join("cert.der")).expect("reading cert.der");
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key_der,
            &SystemRandom::new(),
        )
        .expect("loading the P-256 key");
        let state = Arc::new(Issuer {
            key,
            certificate_der,
            user: user.to_owned(),
            password: password.to_owned(),
            service: "bai-testkit-registry".to_owned(),
            issuer: "bai-testkit-token-server".to_owned(),
            issued: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the token server");
        let port = listener.local_addr().expect("a bound address").port();
        let server = spawn_server(listener, state.clone());
        TokenServer {
            port,
            service: state.service.clone(),
            issuer: state.issuer.clone(),
            certificate_pem: dir.path().join("cert.pem"),
            _dir: dir,
            state,
            server,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// Requests refused for bad or missing credentials.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        // Stopping returns a future that only reports completion; the stop itself is sent now.
        drop(self.server.stop(false));
    }
}

/// Runs an actix-web server with the routes `configure` adds, on its own thread and actix
/// System; returns its handle (stop it on drop).
pub(crate) fn spawn_actix<F>(
    listener: TcpListener,
    name: &str,
    configure: F,
) -> actix_web::dev::ServerHandle
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || App::new().configure(configure.clone()))
                    .workers(1)
                    .disable_signals()
                    .listen(listener)
                    .expect("listening on the test server socket")
                    .run();
                let _ = handle_tx.send(server.handle());
                let _ = server.await;
            });
        })
        .expect("starting a test server thread");
    handle_rx.recv().expect("the test server started")
}

fn spawn_server(listener: TcpListener, state: Arc<Issuer>) -> actix_web::dev::ServerHandle {
    spawn_actix(listener, "token-server", move |config| {
        config
            .app_data(web::Data::from(state.clone()))
            .route("/token", web::get().to(issue_token));
    })
}

/// `user:password` of an HTTP Basic header.
pub(crate) fn basic_credentials(request: &HttpRequest) -> Option<(String, String)> {
    let header = request.headers().get("authorization")?.to_str().ok()?;
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// `type:name:actions` → the JWT `access` entry (names may not contain `:` but may have `/`).
fn access_entry(scope: &str) -> Option<Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
}

async fn issue_token(request: HttpRequest, state: web::Data<Issuer>) -> HttpResponse {
    let authorized = basic_credentials(&request)
        .is_some_and(|(user, password)| user == state.user && password == state.password);
    if !authorized {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::Unauthorized()
            .insert_header((
                "www-authenticate",
                "Basic realm=\"bai-testkit token server\"",
            ))
            .json(json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}));
    }
    let query = url::form_urlencoded::parse(request.query_string().as_bytes());
    let access: Vec<Value> = query
        .filter(|(key, _)| key == "scope")
        .flat_map(|(_, value)| {
            value
                .split(' ')
                .filter_map(access_entry)
                .collect::<Vec<_>>()
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [STANDARD.encode(&state.certificate_der)],
    });
    let claims = json!({
        "iss": state.issuer,
        "sub": state.user,
        "aud": state.service,
        "exp": now + TOKEN_LIFETIME_SECS,
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": uuid::Uuid::new_v4().to_string(),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = match state
        .key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
    {
        Ok(signature) => signature,
        Err(_) => return HttpResponse::InternalServerError().finish(),
    };
    let token = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    );
    state.issued.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_LIFETIME_SECS,
    }))
}
