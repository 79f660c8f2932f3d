#!/usr/bin/env bash
# The real Backend.AI agent 26.9.6 (PyPI `backend.ai-agent`, with its dummy backend: no Docker
# needed) as a peer for bai-manager's tests: a venv under .state/peers/agent on Python 3.13.
#
#   deploy/peers/agent.sh install    create the venv (idempotent; fast when done)
#   deploy/peers/agent.sh python     print the venv's python (what the tests run)
#
# Environment: BAI_PEERS_DIR (default .state/peers in the checkout), BAI_AGENT_PYTHON313 (a
# python3.13 to build the venv with; default python3.13 on PATH, else pyenv's 3.13.x).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PEERS="${BAI_PEERS_DIR:-$REPO/.state/peers}"
VENV="$PEERS/agent"
VERSION="26.9.6"
MARKER="$VENV/.bai-installed"

log() { printf '[agent] %s\n' "$*" >&2; }
die() { printf '[agent] error: %s\n' "$*" >&2; exit 1; }

pick_python() {
    local candidate
    for candidate in "${BAI_AGENT_PYTHON313:-}" python3.13; do
        [[ -n $candidate ]] || continue
        # A pyenv shim is on PATH even when no 3.13 is selected: check that it really runs.
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys' >/dev/null 2>&1; then
            command -v "$candidate"; return
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for candidate in "$(pyenv root)"/versions/3.13.*/bin/python3.13; do
            [[ -x $candidate ]] && { echo "$candidate"; return; }
        done
    fi
    die "python3.13 not found (install it, or set BAI_AGENT_PYTHON313)"
}

install() {
    if [[ -f $MARKER && "$(cat "$MARKER")" == "backend.ai-agent==$VERSION" ]]; then
        return
    fi
    local python
    python="$(pick_python)"
    log "installing backend.ai-agent==$VERSION into $VENV with $python"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install -q "backend.ai-agent==$VERSION"
    "$VENV/bin/python" -c 'import ai.backend.agent.dummy' || die "the dummy backend is missing"
    echo "backend.ai-agent==$VERSION" > "$MARKER"
}

case "${1:-}" in
    install) install ;;
    python)
        [[ -x $VENV/bin/python ]] || die "not installed: run $0 install"
        echo "$VENV/bin/python"
        ;;
    *) die "usage: $0 install|python" ;;
esac
