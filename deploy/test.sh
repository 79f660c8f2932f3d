#!/usr/bin/env bash
# Runs bai-manager's whole test suite on a fresh Debian bookworm machine (the README's second
# command): installs what the build and the tests need, installs the real peers
# (deploy/peers/setup.sh, when present), starts one private PostgreSQL and etcd for all test
# binaries (each test still gets its own database, etcd namespace and Redis), builds, and runs
# `cargo test`. Everything it starts listens on free loopback ports and is stopped at the end.
#
# Extra arguments go to `cargo test` (e.g. `deploy/test.sh --test it server`).
# BAI_TEST_THREADS sets the test threads (default 4).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

deploy/stack.sh install
if [[ -x deploy/peers/setup.sh ]]; then
    deploy/peers/setup.sh
fi

# A throw-away stack on free ports, so a developer's stack (or another checkout's) is untouched.
export BAI_STATE_DIR="$REPO/.state/test-stack-$$"
stop_stack() {
    BAI_PORTS=auto deploy/stack.sh stop || true
    rm -rf "$BAI_STATE_DIR"
}
trap stop_stack EXIT
BAI_PORTS=auto deploy/stack.sh start
# shellcheck disable=SC1090
source <(BAI_PORTS=auto deploy/stack.sh env)
export BAI_TEST_PG_URL BAI_TEST_ETCD

cargo build --workspace --all-targets --locked
cargo test --workspace --locked "$@" -- --test-threads="${BAI_TEST_THREADS:-4}"
