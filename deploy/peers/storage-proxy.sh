#!/usr/bin/env bash
# The real Backend.AI storage proxy 23.09.10 (PyPI `backend.ai-storage-proxy`) as a peer for
# bai-manager's tests and for local trials: a venv under .state/peers/, pinned to upstream's
# 23.09.10 lock (constraints-bai-23.09.10.txt beside this script).
#
#   deploy/peers/storage-proxy.sh install        create/refresh the venv (idempotent; fast when done)
#   deploy/peers/storage-proxy.sh python         print the venv's python (what bai-testkit runs)
#   deploy/peers/storage-proxy.sh run CONFIG     run the server in the foreground with CONFIG (a
#                                                storage-proxy.toml), from CONFIG's folder
#
# The server reads `config/redis` from etcd (namespace and address from CONFIG), so etcd must
# hold the manager's config first. bai-testkit's `StorageProxyServer` writes a config with free
# loopback ports, a vfs volume in a scratch folder and a random secret, and runs it.
# Environment: BAI_PEERS_DIR (default .state/peers in the checkout), BAI_PEERS_PYTHON (default
# python3.11, else python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PEERS="${BAI_PEERS_DIR:-$REPO/.state/peers}"
VENV="$PEERS/storage-proxy"
VERSION="23.9.10"
CONSTRAINTS="$HERE/constraints-bai-23.09.10.txt"
# The marker names the version and the constraints' checksum, so a changed pin reinstalls.
MARKER="$VENV/.bai-installed"

log() { printf '[storage-proxy] %s\n' "$*" >&2; }
die() { printf '[storage-proxy] error: %s\n' "$*" >&2; exit 1; }

wanted_marker() {
    printf 'backend.ai-storage-proxy==%s %s\n' "$VERSION" "$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
}

pick_python() {
    local candidate
    for candidate in "${BAI_PEERS_PYTHON:-}" python3.11 python3; do
        [[ -n $candidate ]] || continue
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    die "the storage proxy 23.09.10 needs CPython 3.11 (set BAI_PEERS_PYTHON to one)"
}

install() {
    mkdir -p "$PEERS"
    # Several test processes may ask at once: one installs, the others wait and find it done.
    exec 9>"$PEERS/.storage-proxy.lock"
    flock 9
    if [[ -f $MARKER && "$(cat "$MARKER")" == "$(wanted_marker)" && -x $VENV/bin/python ]]; then
        log "already installed in $VENV"
        return
    fi
    local python
    python="$(pick_python)"
    rm -rf "$VENV"
    log "installing backend.ai-storage-proxy==$VERSION into $VENV (python: $python)"
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$CONSTRAINTS" \
        "backend.ai-storage-proxy==$VERSION"
    # Prove the install imports before marking it done.
    "$VENV/bin/python" -c 'import ai.backend.storage.server' \
        || die "the storage proxy does not import; see the pip output above"
    wanted_marker > "$MARKER"
    log "installed"
}

need_install() {
    [[ -f $MARKER && -x $VENV/bin/python ]] \
        || die "not installed: run deploy/peers/storage-proxy.sh install (or deploy/peers/setup.sh)"
}

cmd="${1:-install}"
case "$cmd" in
    install) install ;;
    python) need_install; echo "$VENV/bin/python" ;;
    run)
        need_install
        [[ $# -ge 2 ]] || die "usage: $0 run CONFIG"
        config="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
        [[ -f $config ]] || die "no such config file: $2"
        cd "$(dirname "$config")"
        exec "$VENV/bin/python" -m ai.backend.storage.server -f "$config"
        ;;
    *) die "unknown command $cmd (install|python|run CONFIG)" ;;
esac
