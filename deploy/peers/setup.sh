#!/usr/bin/env bash
# Installs the real peers bai-manager's end-to-end tests run against (venvs under .state/peers/).
# Idempotent and fast when everything is installed already. Called by deploy/test.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

"$HERE/storage-proxy.sh" install
"$HERE/agent.sh" install
"$HERE/client.sh" install
"$HERE/webserver.sh" install
"$HERE/wsproxy.sh" install
