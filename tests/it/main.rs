//! Integration tests against real PostgreSQL, Redis, etcd and peers, started by bai-testkit.

mod manager_process;
mod server;
mod stack;
