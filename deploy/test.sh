#!/usr/bin/env bash
# Runs bai-manager's whole test suite on a fresh Debian bookworm machine: installs what the
# build and the tests need, then `cargo test`. The tests start their own PostgreSQL, Redis, etcd,
# registry and peers on free loopback ports and stop them again.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

deploy/stack.sh install
if [[ -x deploy/peers/setup.sh ]]; then
    deploy/peers/setup.sh
fi

cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads="${BAI_TEST_THREADS:-4}"
