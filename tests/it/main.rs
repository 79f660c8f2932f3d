//! Integration tests against real PostgreSQL, Redis, etcd and peers, started by bai-testkit.

mod agents_bus;
mod agents_heartbeat;
mod agents_real;
mod agents_support;
mod api_auth;
mod api_resource;
mod api_support;
mod cli_run;
mod config;
mod etcd_cli;
mod fixture_cli;
mod logging;
mod manager_process;
mod operator_cli;
mod registry_auth;
mod registry_catalog;
mod registry_common;
mod registry_docker;
mod registry_harbor;
mod sched_agent_rpc;
mod sched_lock;
mod sched_support;
mod schema_cli;
mod server;
mod stack;
mod storage_client;
