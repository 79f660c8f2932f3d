//! Benchmark: `bai-manager image rescan` of a local Docker Distribution registry holding
//! BENCH_REPOS repositories × BENCH_TAGS tags (default 500 × 4), each tag a one-architecture
//! manifest list (the shape Backend.AI 23.09's scanner also accepts, for comparison).
//!
//! Run: `cargo bench --bench registry_rescan`. Environment:
//! - `BENCH_REPOS`, `BENCH_TAGS`: the registry's size;
//! - `BENCH_REGISTRY_URL`: scan this (already running) registry instead of a private one; it
//!   is filled first if it has no `bench/` repositories yet, so the same registry can then be
//!   scanned by the original manager.
//!
//! Prints the push time, then the wall time of a first rescan (every row inserted) and of a
//! second one (nothing changes).
//!
//! Measured 2026-11-28 on the 2-core dev machine (load average ~10 from other builds), against
//! the registry of the reference peers set-up (127.0.0.1:25000) filled by this bench, 500 × 4:
//! bai-manager 11.6 s (first) / 11.9 s (second); Backend.AI 23.09.10's
//! `backend.ai mgr image rescan 127.0.0.1:25000` right after on the same registry (2001 tags,
//! its own test image included): 32.1 s / 38.4 s.

use std::time::Instant;

use bai_testkit::TestEnv;
use bai_testkit::image_push::{ImagePusher, ManifestFormat, PushAuth, TestImage};
use bai_testkit::registry::RegistryServer;
use futures::StreamExt;

/// Repositories pushed at once while filling the registry.
const PUSH_PARALLELISM: usize = 8;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn fill(registry_url: &str, repos: usize, tags: usize) {
    let pusher = ImagePusher::new(registry_url, PushAuth::None);
    let pusher = &pusher;
    futures::stream::iter(0..repos)
        .map(|repo| async move {
            let image =
                TestImage::kernel("amd64").with_label("bench.repository", &repo.to_string());
            for tag in 0..tags {
                pusher
                    .push_multi_arch(
                        &format!("bench/kernel-{repo:04}"),
                        &format!("{tag}.0-ubuntu22.04"),
                        std::slice::from_ref(&image),
                        ManifestFormat::Docker,
                    )
                    .await;
            }
        })
        .buffer_unordered(PUSH_PARALLELISM)
        .collect::<Vec<()>>()
        .await;
}

async fn has_bench_repositories(registry_url: &str) -> bool {
    let url = format!("{registry_url}/v2/bench/kernel-0000/tags/list");
    matches!(reqwest::get(&url).await, Ok(r) if r.status().is_success())
}

fn rescan(env: &TestEnv, name: &str) -> (f64, String) {
    let started = Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bai-manager"))
        .arg("-f")
        .arg(env.path("manager.toml"))
        .args(["image", "rescan", name])
        .output()
        .expect("running bai-manager");
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "rescan failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("rescan done"))
        .unwrap_or("")
        .to_owned();
    (seconds, summary)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; this harness has no filters.
    let repos = env_number("BENCH_REPOS", 500);
    let tags = env_number("BENCH_TAGS", 4);
    let own_registry;
    let registry_url = match std::env::var("BENCH_REGISTRY_URL") {
        Ok(url) => url.trim_end_matches('/').to_owned(),
        Err(_) => {
            own_registry = RegistryServer::start();
            own_registry.url()
        }
    };
    let name = registry_url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_owned();
    if !has_bench_repositories(&registry_url).await {
        let started = Instant::now();
        fill(&registry_url, repos, tags).await;
        println!(
            "pushed {repos} repositories x {tags} tags to {registry_url} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    let env = TestEnv::new().await;
    env.manager_toml("");
    let key = format!(
        "config/docker/registry/{}",
        bai_actors::etcd::keys::quote(&name)
    );
    env.etcd_put(&key, &registry_url).await;
    env.etcd_put(&format!("{key}/type"), "docker").await;
    env.etcd_put(&format!("{key}/project"), "bench").await;

    let (first, first_summary) = rescan(&env, &name);
    println!("first rescan (all rows new):    {first:.2} s  [{first_summary}]");
    let (second, second_summary) = rescan(&env, &name);
    println!("second rescan (nothing changed): {second:.2} s  [{second_summary}]");
}
