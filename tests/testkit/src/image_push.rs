//! Builds small container images with Backend.AI labels and pushes them to a registry through
//! the Registry HTTP API, without Docker: a real gzip'ed tar layer, a config blob with the
//! labels, and a Docker schema 2 or OCI manifest (or a manifest list / OCI index over several
//! architectures). It can also push deliberately broken content (a manifest whose config blob
//! is missing, a config blob that is not JSON) for tests of error handling.

use std::collections::BTreeMap;
use std::sync::Mutex;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Which family of media types to push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    Docker,
    Oci,
}

impl ManifestFormat {
    fn manifest(&self) -> &'static str {
        match self {
            ManifestFormat::Docker => DOCKER_MANIFEST,
            ManifestFormat::Oci => OCI_MANIFEST,
        }
    }
    fn list(&self) -> &'static str {
        match self {
            ManifestFormat::Docker => DOCKER_MANIFEST_LIST,
            ManifestFormat::Oci => OCI_INDEX,
        }
    }
    fn config(&self) -> &'static str {
        match self {
            ManifestFormat::Docker => "application/vnd.docker.container.image.v1+json",
            ManifestFormat::Oci => "application/vnd.oci.image.config.v1+json",
        }
    }
    fn layer(&self) -> &'static str {
        match self {
            ManifestFormat::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            ManifestFormat::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }
}

/// The labels of a typical Backend.AI kernel image (the peers recipe's python image).
pub fn kernel_labels() -> BTreeMap<String, String> {
    [
        ("ai.backend.kernelspec", "1"),
        ("ai.backend.features", "batch query uid-match user-input"),
        ("ai.backend.base-distro", "ubuntu20.04"),
        ("ai.backend.resource.min.cpu", "1"),
        ("ai.backend.resource.min.mem", "256m"),
        ("ai.backend.runtime-type", "python"),
        ("ai.backend.runtime-path", "/usr/bin/python3"),
        (
            "ai.backend.service-ports",
            "ipython:pty:3000,jupyter:http:8081",
        ),
        ("ai.backend.accelerators", "cuda"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// One image to build: a platform, labels, and one file in its single layer.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// Go's architecture name, as registries carry it (`amd64`, `arm64`).
    pub architecture: String,
    pub labels: BTreeMap<String, String>,
    pub file_path: String,
    pub file_content: Vec<u8>,
}

impl TestImage {
    pub fn new(architecture: &str, labels: BTreeMap<String, String>) -> TestImage {
        TestImage {
            architecture: architecture.to_owned(),
            labels,
            file_path: "opt/hello/hello.py".to_owned(),
            file_content: b"print(\"hello\")\n".to_vec(),
        }
    }

    /// A kernel image with [`kernel_labels`].
    pub fn kernel(architecture: &str) -> TestImage {
        TestImage::new(architecture, kernel_labels())
    }

    pub fn with_label(mut self, key: &str, value: &str) -> TestImage {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A tar archive holding one regular file (ustar headers, two zero blocks at the end).
fn tar_one_file(path: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let put = |header: &mut [u8; 512], offset: usize, bytes: &[u8]| {
        header[offset..offset + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut header, 0, path.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(
        &mut header,
        124,
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    put(&mut header, 136, b"00000000000\0");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    // The checksum is computed with its own field as spaces.
    put(&mut header, 148, b"        ");
    let checksum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    put(&mut header, 148, format!("{checksum:06o}\0 ").as_bytes());
    let mut archive = header.to_vec();
    archive.extend_from_slice(content);
    archive.resize(archive.len().div_ceil(512) * 512, 0);
    archive.extend_from_slice(&[0u8; 1024]);
    archive
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// The blobs and manifest of one built image.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub format: ManifestFormat,
    pub architecture: String,
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl BuiltImage {
    pub fn config_digest(&self) -> String {
        sha256_digest(&self.config)
    }
    pub fn manifest_digest(&self) -> String {
        sha256_digest(&self.manifest)
    }
    /// What Backend.AI records as the size: config plus layers.
    pub fn size_bytes(&self) -> i64 {
        (self.config.len() + self.layer.len()) as i64
    }
}

/// Builds the blobs and the manifest of `image`.
pub fn build_image(image: &TestImage, format: ManifestFormat) -> BuiltImage {
    let tar = tar_one_file(&image.file_path, &image.file_content);
    let layer = gzip(&tar);
    let config = json!({
        "architecture": image.architecture,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Labels": image.labels},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&tar)]},
        "history": [{"created_by": "bai-testkit image_push"}],
    });
    let config = serde_json::to_vec(&config).unwrap_or_default();
    build_with_config(format, &image.architecture, config, layer)
}

/// Builds a manifest over an arbitrary config blob (used for broken content).
pub fn build_with_config(
    format: ManifestFormat,
    architecture: &str,
    config: Vec<u8>,
    layer: Vec<u8>,
) -> BuiltImage {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": format.manifest(),
        "config": {"mediaType": format.config(), "size": config.len(), "digest": sha256_digest(&config)},
        "layers": [{"mediaType": format.layer(), "size": layer.len(), "digest": sha256_digest(&layer)}],
    });
    BuiltImage {
        format,
        architecture: architecture.to_owned(),
        config,
        layer,
        manifest: serde_json::to_vec(&manifest).unwrap_or_default(),
    }
}

/// A manifest list (Docker) or index (OCI) over built images.
pub fn build_list(format: ManifestFormat, members: &[BuiltImage]) -> Vec<u8> {
    let manifests: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "mediaType": m.format.manifest(),
                "size": m.manifest.len(),
                "digest": m.manifest_digest(),
                "platform": {"architecture": m.architecture, "os": "linux"},
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": format.list(),
        "manifests": manifests,
    }))
    .unwrap_or_default()
}

/// How the pusher authenticates.
#[derive(Debug, Clone)]
pub enum PushAuth {
    None,
    /// HTTP Basic on every request (htpasswd registries), and on the token realm.
    Credentials {
        user: String,
        password: String,
    },
}

/// Pushes to one registry over its HTTP API (bearer tokens are fetched when challenged).
pub struct ImagePusher {
    http: reqwest::Client,
    base: String,
    auth: PushAuth,
    tokens: Mutex<BTreeMap<String, String>>,
}

impl ImagePusher {
    pub fn new(registry_url: &str, auth: PushAuth) -> ImagePusher {
        ImagePusher {
            http: reqwest::Client::new(),
            base: registry_url.trim_end_matches('/').to_owned(),
            auth,
            tokens: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sends a request built by `build`, answering a bearer challenge once.
    async fn send(
        &self,
        repository: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> reqwest::Response {
        let mut retried = false;
        loop {
            let mut request = build(&self.http);
            let token = self
                .tokens
                .lock()
                .ok()
                .and_then(|t| t.get(repository).cloned());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            } else if let PushAuth::Credentials { user, password } = &self.auth {
                request = request.basic_auth(user, Some(password));
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("pushing to {}: {e}", self.base));
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && !retried {
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                if challenge.to_ascii_lowercase().starts_with("bearer") {
                    self.fetch_token(repository, &challenge).await;
                    retried = true;
                    continue;
                }
            }
            return response;
        }
    }

    async fn fetch_token(&self, repository: &str, challenge: &str) {
        let param = |name: &str| {
            let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
            let end = challenge[start..].find('"')? + start;
            Some(challenge[start..end].to_owned())
        };
        let realm = param("realm").expect("a bearer challenge names its realm");
        let service = param("service").unwrap_or_default();
        let mut url = url::Url::parse(&realm).expect("a realm URL");
        url.query_pairs_mut()
            .append_pair("service", &service)
            .append_pair("scope", &format!("repository:{repository}:pull,push"));
        let mut request = self.http.get(url);
        if let PushAuth::Credentials { user, password } = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.expect("asking the token server");
        assert!(
            response.status().is_success(),
            "the token server refused the pusher: {}",
            response.status()
        );
        let body: Value = response.json().await.expect("a token response");
        let token = body["token"].as_str().expect("a token").to_owned();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(repository.to_owned(), token);
        }
    }

    /// Uploads a blob (monolithic POST + PUT) unless the repository has it; returns its digest.
    pub async fn push_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let head_url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let head = self.send(repository, |http| http.head(&head_url)).await;
        if head.status().is_success() {
            return digest;
        }
        let start_url = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let started = self.send(repository, |http| http.post(&start_url)).await;
        assert_eq!(
            started.status(),
            reqwest::StatusCode::ACCEPTED,
            "starting a blob upload to {repository}"
        );
        let location = started
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("an upload location")
            .to_owned();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{separator}digest={digest}");
        let body = bytes.to_vec();
        let put = self
            .send(repository, |http| {
                http.put(&put_url)
                    .header("content-type", "application/octet-stream")
                    .body(body.clone())
            })
            .await;
        assert_eq!(
            put.status(),
            reqwest::StatusCode::CREATED,
            "uploading blob {digest} to {repository}"
        );
        digest
    }

    /// PUTs a manifest under `reference` (a tag or its digest).
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        manifest: &[u8],
    ) {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let body = manifest.to_vec();
        let response = self
            .send(repository, |http| {
                http.put(&url)
                    .header("content-type", media_type)
                    .body(body.clone())
            })
            .await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            reqwest::StatusCode::CREATED,
            "pushing manifest {repository}:{reference}: {text}"
        );
    }

    /// Pushes the blobs and the manifest of a built image, tagged `tag`.
    pub async fn push_built(&self, repository: &str, tag: &str, image: &BuiltImage) {
        self.push_blob(repository, &image.layer).await;
        self.push_blob(repository, &image.config).await;
        self.push_manifest(repository, tag, image.format.manifest(), &image.manifest)
            .await;
    }

    /// Pushes a single-architecture image as `repository:tag`.
    pub async fn push_image(
        &self,
        repository: &str,
        tag: &str,
        image: &TestImage,
        format: ManifestFormat,
    ) -> BuiltImage {
        let built = build_image(image, format);
        self.push_built(repository, tag, &built).await;
        built
    }

    /// Pushes every image by digest and a manifest list / OCI index over them as `tag`.
    pub async fn push_multi_arch(
        &self,
        repository: &str,
        tag: &str,
        images: &[TestImage],
        format: ManifestFormat,
    ) -> Vec<BuiltImage> {
        let built: Vec<BuiltImage> = images.iter().map(|i| build_image(i, format)).collect();
        for member in &built {
            self.push_built(repository, &member.manifest_digest(), member)
                .await;
        }
        self.push_manifest(repository, tag, format.list(), &build_list(format, &built))
            .await;
        built
    }

    /// Unlinks a blob from a repository (the registry must allow deletes), so manifests
    /// that reference it point at nothing.
    pub async fn delete_blob(&self, repository: &str, digest: &str) {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let response = self.send(repository, |http| http.delete(&url)).await;
        assert_eq!(
            response.status(),
            reqwest::StatusCode::ACCEPTED,
            "deleting blob {digest} of {repository}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_have_valid_checksums_and_padding() {
        let archive = tar_one_file("opt/x.txt", b"hello");
        assert_eq!(archive.len(), 512 + 512 + 1024);
        let header = &archive[..512];
        let stored = std::str::from_utf8(&header[148..154]).unwrap();
        let mut copy = header.to_vec();
        copy[148..156].copy_from_slice(b"        ");
        let sum: u32 = copy.iter().map(|b| u32::from(*b)).sum();
        assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
        assert_eq!(&archive[512..517], b"hello");
    }

    #[test]
    fn manifests_reference_their_blobs() {
        let built = build_image(&TestImage::kernel("amd64"), ManifestFormat::Oci);
        let manifest: Value = serde_json::from_slice(&built.manifest).unwrap();
        assert_eq!(manifest["config"]["digest"], built.config_digest());
        assert_eq!(manifest["mediaType"], OCI_MANIFEST);
        let list: Value = serde_json::from_slice(&build_list(
            ManifestFormat::Oci,
            std::slice::from_ref(&built),
        ))
        .unwrap();
        assert_eq!(list["manifests"][0]["digest"], built.manifest_digest());
        assert_eq!(list["manifests"][0]["platform"]["architecture"], "amd64");
    }
}
