#!/usr/bin/env bash
# Runs bai-manager's whole test suite on a fresh Debian bookworm machine (the README's second
# command): installs what the build and the tests need, installs the real peers
# (deploy/peers/setup.sh, when present), starts one private PostgreSQL and etcd for all test
# binaries (each test still gets its own database, etcd namespace and Redis), builds, and runs
# the tests with cargo-nextest (profile `ci` of .config/nextest.toml: each test in its own
# process, killed if it hangs), then the doc tests. Everything it starts listens on free loopback
# ports and is stopped at the end.
#
# Extra arguments go to `cargo nextest run` (e.g. `deploy/test.sh -E 'test(/^server::/)'`).
# BAI_TEST_THREADS sets the test threads (default: the profile's).
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

# Ports the tests hand out, claimed across nextest's test processes (tests/testkit/src/ports.rs).
export BAI_TEST_PORT_CLAIMS="$BAI_STATE_DIR/port-claims"
mkdir -p "$BAI_TEST_PORT_CLAIMS"

if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi
cargo build --workspace --all-targets --locked
threads=()
if [[ -n ${BAI_TEST_THREADS:-} ]]; then
    threads=(--test-threads "$BAI_TEST_THREADS")
fi
cargo nextest run --workspace --locked --profile ci "${threads[@]}" "$@"
cargo test --workspace --locked --doc
