#!/usr/bin/env bash
# The official Backend.AI client SDK and CLI 23.09.10 (PyPI `backend.ai-client`) as a peer for
# bai-manager's end-to-end tests and for trying a manager by hand: a venv under .state/peers/,
# pinned to upstream's 23.09.10 lock (constraints-bai-23.09.10.txt beside this script). Without
# the pins pip picks 2025+ releases and every signed request fails (yarl >= 1.10 changed
# `URL._val`: "'tuple' object has no attribute 'netloc'").
#
#   deploy/peers/client.sh install     create/refresh the venv (idempotent; fast when done)
#   deploy/peers/client.sh cli         print the path of the `backend.ai` command
#   deploy/peers/client.sh python      print the venv's python (for SDK scripts)
#   deploy/peers/client.sh run ARGS    run `backend.ai ARGS` (point it at a manager with
#                                      BACKEND_ENDPOINT, BACKEND_ACCESS_KEY, BACKEND_SECRET_KEY)
#
# Environment: BAI_PEERS_DIR (default .state/peers in the checkout), BAI_PEERS_PYTHON (default
# python3.11, else python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PEERS="${BAI_PEERS_DIR:-$REPO/.state/peers}"
VENV="$PEERS/client"
VERSION="23.9.10"
CONSTRAINTS="$HERE/constraints-bai-23.09.10.txt"
# The marker names the version and the constraints' checksum, so a changed pin reinstalls.
MARKER="$VENV/.bai-installed"

log() { printf '[client] %s\n' "$*" >&2; }
die() { printf '[client] error: %s\n' "$*" >&2; exit 1; }

wanted_marker() {
    printf 'backend.ai-client==%s %s\n' "$VERSION" "$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
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
    die "the client 23.09.10 needs CPython 3.11 (set BAI_PEERS_PYTHON to one)"
}

install() {
    mkdir -p "$PEERS"
    # Several test processes may ask at once: one installs, the others wait and find it done.
    exec 9>"$PEERS/.client.lock"
    flock 9
    if [[ -f $MARKER && "$(cat "$MARKER")" == "$(wanted_marker)" && -x $VENV/bin/backend.ai ]]; then
        log "already installed in $VENV"
        return
    fi
    local python
    python="$(pick_python)"
    rm -rf "$VENV"
    log "installing backend.ai-client==$VERSION into $VENV (python: $python)"
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$CONSTRAINTS" \
        "backend.ai-client==$VERSION"
    # Prove the install works (and signs: yarl must be the pinned one) before marking it done.
    # Prove the install signs requests as api.md §5.1's worked example (yarl must be the pinned
    # one) before marking it done.
    "$VENV/bin/python" - <<'PY' || die "the client does not sign requests correctly; see the pip output above"
from datetime import datetime, timezone
from yarl import URL
from ai.backend.client.auth import generate_signature
_, signature = generate_signature(
    method="GET", version="v6.20220615", endpoint=URL("http://127.0.0.1:8081"),
    date=datetime(2022, 9, 1, 12, 0, 0, tzinfo=timezone.utc), rel_url="/auth?echo=test",
    content_type="text/plain", access_key="AKIAIOSFODNN7EXAMPLE",
    secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", hash_type="sha256",
)
assert signature == "5a5ae6db08f8d36382e7df3bb330bee827ec9a83787e72e24747303bcf7dbec5", signature
PY
    wanted_marker > "$MARKER"
    log "installed"
}

need_install() {
    [[ -f $MARKER && -x $VENV/bin/backend.ai ]] \
        || die "not installed: run deploy/peers/client.sh install (or deploy/peers/setup.sh)"
}

cmd="${1:-install}"
case "$cmd" in
    install) install ;;
    cli) need_install; echo "$VENV/bin/backend.ai" ;;
    python) need_install; echo "$VENV/bin/python" ;;
    run) need_install; shift; exec "$VENV/bin/backend.ai" "$@" ;;
    *) die "unknown command $cmd (install|cli|python|run ARGS)" ;;
esac
