#!/usr/bin/env bash
# The official Backend.AI Web UI as a peer for bai-manager's browser test: PyPI
# `backend.ai-webserver` 23.9.10 (it ships the Web UI 23.09.10-rc.3 and proxies it to a manager),
# pinned to upstream's 23.09.10 lock like the client; Playwright (Python) in a venv of its own to
# drive Debian's `chromium`, which this script installs when it is missing.
#
#   deploy/peers/webserver.sh install     create/refresh both venvs (idempotent; fast when done)
#   deploy/peers/webserver.sh python      print the web server venv's python
#   deploy/peers/webserver.sh driver      print the Playwright venv's python
#
# Environment: BAI_PEERS_DIR (default .state/peers in the checkout), BAI_PEERS_PYTHON (default
# python3.11, else python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PEERS="${BAI_PEERS_DIR:-$REPO/.state/peers}"
VENV="$PEERS/webserver"
DRIVER="$PEERS/browser-driver"
VERSION="23.9.10"
# Playwright drives the system Chromium through CDP (no browser download); 1.65 speaks to
# Debian's Chromium 156.
PLAYWRIGHT_VERSION="1.65.3"
CONSTRAINTS="$HERE/constraints-bai-23.09.10.txt"
MARKER="$VENV/.bai-installed"
DRIVER_MARKER="$DRIVER/.bai-installed"

log() { printf '[webserver] %s\n' "$*" >&2; }
die() { printf '[webserver] error: %s\n' "$*" >&2; exit 1; }

wanted_marker() {
    printf 'backend.ai-webserver==%s %s\n' "$VERSION" "$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
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
    die "the web server 23.09.10 needs CPython 3.11 (set BAI_PEERS_PYTHON to one)"
}

install_chromium() {
    if [[ -x /usr/bin/chromium ]]; then
        return
    fi
    log "installing Debian's chromium"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
}

install() {
    mkdir -p "$PEERS"
    exec 9>"$PEERS/.webserver.lock"
    flock 9
    install_chromium
    local python
    if ! [[ -f $MARKER && "$(cat "$MARKER")" == "$(wanted_marker)" ]]; then
        python="$(pick_python)"
        rm -rf "$VENV"
        log "installing backend.ai-webserver==$VERSION into $VENV (python: $python)"
        "$python" -m venv "$VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check -c "$CONSTRAINTS" \
            "backend.ai-webserver==$VERSION"
        "$VENV/bin/python" -c 'import ai.backend.web.server' \
            || die "the web server does not import; see the pip output above"
        wanted_marker > "$MARKER"
    fi
    if ! [[ -f $DRIVER_MARKER && "$(cat "$DRIVER_MARKER")" == "playwright==$PLAYWRIGHT_VERSION" ]]; then
        python="$(pick_python)"
        rm -rf "$DRIVER"
        log "installing playwright==$PLAYWRIGHT_VERSION into $DRIVER"
        "$python" -m venv "$DRIVER"
        "$DRIVER/bin/pip" install -q --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION"
        printf 'playwright==%s' "$PLAYWRIGHT_VERSION" > "$DRIVER_MARKER"
    fi
    log "installed"
}

need_install() {
    [[ -f $MARKER && -f $DRIVER_MARKER ]] \
        || die "not installed: run deploy/peers/webserver.sh install (or deploy/peers/setup.sh)"
}

cmd="${1:-install}"
case "$cmd" in
    install) install ;;
    python) need_install; echo "$VENV/bin/python" ;;
    driver) need_install; echo "$DRIVER/bin/python" ;;
    *) die "unknown command $cmd (install|python|driver)" ;;
esac
