//! Integration tests against real PostgreSQL, Redis, etcd and peers, started by bai-testkit.

mod stack;
