#!/usr/bin/env bash
# The README's first command: on a fresh Debian bookworm machine, bring up PostgreSQL, Redis
# and etcd (deploy/stack.sh), build bai-manager, configure it for the stack, create the schema,
# load the example fixtures, start the manager and show `curl` of GET /.
#
#   deploy/quickstart.sh          do all of it (idempotent: re-running restarts the manager)
#   deploy/quickstart.sh stop     stop the manager and the stack
#
# Everything lives under .state/ in the checkout (override with BAI_QUICKSTART_DIR and
# BAI_STATE_DIR). The API listens on 127.0.0.1:${BAI_SERVICE_PORT:-8081}; the stack uses the
# halfstack ports 8100/8110/8120 unless BAI_PG_PORT/BAI_REDIS_PORT/BAI_ETCD_PORT say otherwise.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
RUN="${BAI_QUICKSTART_DIR:-$REPO/.state/quickstart}"
PORT="${BAI_SERVICE_PORT:-8081}"
export BAI_SERVICE_PORT="$PORT"
CONFIG="$RUN/manager.toml"
BIN="$REPO/target/release/bai-manager"

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
die() { printf '[quickstart] error: %s\n' "$*" >&2; exit 1; }

stop_manager() {
    if [[ -f "$RUN/manager.pid" ]]; then
        local pid
        pid="$(cat "$RUN/manager.pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    fi
}

if [[ "${1:-}" == "stop" ]]; then
    stop_manager
    deploy/stack.sh stop
    exit 0
fi

say "Installing the Debian packages (PostgreSQL, Redis, etcd, protoc, ...)"
deploy/stack.sh install

say "Building bai-manager (release)"
cargo build --release --locked --bin bai-manager

say "Starting PostgreSQL, Redis and etcd"
deploy/stack.sh start
# shellcheck disable=SC1090
source <(deploy/stack.sh env)

say "Writing $CONFIG"
deploy/stack.sh config "$CONFIG"
mgr() { "$BIN" -f "$CONFIG" "$@"; }

say "Global configuration in etcd: where Redis is"
mgr etcd put config/redis/addr "127.0.0.1:$BAI_STACK_REDIS_PORT"

say "Creating the database schema"
mgr schema oneshot

say "Loading the example fixtures"
for fixture in example-users example-keypairs example-set-user-main-access-keys example-resource-presets; do
    mgr fixture populate "configs/fixtures/$fixture.json"
done

say "Starting bai-manager on 127.0.0.1:$PORT"
stop_manager
nohup "$BIN" -f "$CONFIG" start-server > "$RUN/console.log" 2>&1 < /dev/null &
for _ in $(seq 300); do
    if curl -fsS "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then break; fi
    kill -0 $! 2>/dev/null || { cat "$RUN/console.log" >&2; die "bai-manager exited (see above)"; }
    sleep 0.1
done

say "curl http://127.0.0.1:$PORT/"
curl -sS -i "http://127.0.0.1:$PORT/"
echo
cat >&2 <<DONE

bai-manager runs (pid $(cat "$RUN/manager.pid")); its log is $RUN/console.log and $RUN/logs/manager.log.
The example superadmin is admin@lablup.com with access key AKIAIOSFODNN7EXAMPLE.
Stop everything with: deploy/quickstart.sh stop
DONE
