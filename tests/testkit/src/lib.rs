//! Test support: starts real PostgreSQL, Redis, etcd and docker-registry processes on loopback,
//! in private data directories, on free ports, and stops them when the test is done.
//!
//! PostgreSQL and etcd are shared by the tests of one process (each test gets its own database
//! and etcd namespace); Redis and the registry are started per test, because Backend.AI uses
//! fixed Redis database numbers. `deploy/test.sh` may point the shared ones at servers it started
//! (`BAI_TEST_PG_URL`, `BAI_TEST_ETCD`), so one stack serves every test binary.

// Tests and benches read rows with `Row::get`: a drifted schema fails them loudly, which is
// what a test should do (the non-test code may not; see clippy.toml).
#![allow(clippy::disallowed_methods)]

pub mod env;
pub mod etcd;
pub mod harbor_api;
pub mod image_push;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod redis;
pub mod registry;
pub mod scheduling;
pub mod storage_proxy;
pub mod token_server;
pub mod wait;

pub use env::TestEnv;
pub use storage_proxy::StorageProxyServer;
