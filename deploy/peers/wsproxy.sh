#!/usr/bin/env bash
# The real Backend.AI app proxy (PyPI `backend.ai-wsproxy` 24.3.11) as a peer for bai-manager's
# browser test of the Web UI's app launcher: a venv under .state/peers/wsproxy on CPython 3.12,
# its dependencies pinned by constraints-wsproxy-24.3.11.txt.
#
# Why 24.3.11: the wsproxy was first released on PyPI for 24.03, and 24.03.x is the closest to
# the 22.09/23.09 manager's app-proxy protocol: `GET /status` answers `{"api_version": "v2"}`,
# `POST /v2/conf` takes the original's body (login_session_token, kernel_host, kernel_port,
# session{id,user_uuid,group_id,access_key,domain_name}) without an API token, and
# `GET /v2/proxy/{token}/{session}/add?app=..&protocol=..` answers `{code, url}` whose url the
# 23.09 Web UI's `_connectToProxyWorker` follows (`redirect_url` → `/setup` → the app's port).
#
#   deploy/peers/wsproxy.sh install    create/refresh the venv (idempotent; fast when done)
#   deploy/peers/wsproxy.sh python     print the venv's python (what the tests run)
#
# Environment: BAI_PEERS_DIR (default .state/peers in the checkout), BAI_WSPROXY_PYTHON312 (a
# python3.12 to build the venv with; default python3.12 on PATH, else pyenv's 3.12.x).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PEERS="${BAI_PEERS_DIR:-$REPO/.state/peers}"
VENV="$PEERS/wsproxy"
VERSION="24.3.11"
CONSTRAINTS="$HERE/constraints-wsproxy-$VERSION.txt"
MARKER="$VENV/.bai-installed"

log() { printf '[wsproxy] %s\n' "$*" >&2; }
die() { printf '[wsproxy] error: %s\n' "$*" >&2; exit 1; }

wanted_marker() {
    printf 'backend.ai-wsproxy==%s %s\n' "$VERSION" "$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
}

is_312() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' >/dev/null 2>&1
}

pick_python() {
    local candidate
    for candidate in "${BAI_WSPROXY_PYTHON312:-}" python3.12; do
        [[ -n $candidate ]] || continue
        # A pyenv shim is on PATH even when no 3.12 is selected: check that it really runs.
        if command -v "$candidate" >/dev/null 2>&1 && is_312 "$candidate"; then
            command -v "$candidate"; return
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for candidate in "$(pyenv root)"/versions/3.12.*/bin/python3.12; do
            [[ -x $candidate ]] && is_312 "$candidate" && { echo "$candidate"; return; }
        done
    fi
    for candidate in "$HOME"/.pyenv/versions/3.12.*/bin/python3.12; do
        [[ -x $candidate ]] && is_312 "$candidate" && { echo "$candidate"; return; }
    done
    die "backend.ai-wsproxy $VERSION needs CPython 3.12 (install it, or set BAI_WSPROXY_PYTHON312)"
}

install() {
    mkdir -p "$PEERS"
    exec 9>"$PEERS/.wsproxy.lock"
    flock 9
    if [[ -f $MARKER && "$(cat "$MARKER")" == "$(wanted_marker)" ]]; then
        return
    fi
    local python
    python="$(pick_python)"
    log "installing backend.ai-wsproxy==$VERSION into $VENV with $python"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$CONSTRAINTS" \
        "backend.ai-wsproxy==$VERSION"
    "$VENV/bin/python" -c 'import ai.backend.wsproxy.server' \
        || die "the wsproxy does not import; see the pip output above"
    wanted_marker > "$MARKER"
    log "installed"
}

case "${1:-install}" in
    install) install ;;
    python)
        [[ -f $MARKER ]] || die "not installed: run $0 install (or deploy/peers/setup.sh)"
        echo "$VENV/bin/python"
        ;;
    *) die "usage: $0 install|python" ;;
esac
