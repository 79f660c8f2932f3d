#!/usr/bin/env bash
# The local service stack for development and CI: a private PostgreSQL, Redis and etcd on
# loopback, with their data under a state folder. No Docker.
#
#   deploy/stack.sh install          install the Debian packages the stack and the build need
#   deploy/stack.sh start            start PostgreSQL, Redis and etcd (idempotent), wait until they answer
#   deploy/stack.sh stop             stop them
#   deploy/stack.sh status           show what runs
#   deploy/stack.sh env              print the stack's addresses as shell variables
#   deploy/stack.sh config [FILE]    write a manager.toml for this stack to FILE (default: stdout)
#
# Ports default to the original halfstack's (PostgreSQL 8100, Redis 8110, etcd 8120); override
# with BAI_PG_PORT, BAI_REDIS_PORT, BAI_ETCD_PORT (BAI_ETCD_PEER_PORT) or BAI_PORTS=auto for free
# ports. State lives in $BAI_STATE_DIR (default: .state/stack in the checkout). `start` also
# creates the database $BAI_DB_NAME (default: backend), as the original halfstack does.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${BAI_STATE_DIR:-$REPO/.state/stack}"
DB_NAME="${BAI_DB_NAME:-backend}"
PG_BIN="${BAI_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Ports are remembered in the state folder so that `start` after `stop` reuses them.
load_ports() {
    mkdir -p "$STATE"
    if [[ -f "$STATE/ports.env" ]]; then
        # shellcheck disable=SC1091
        source "$STATE/ports.env"
    fi
    if [[ "${BAI_PORTS:-}" == "auto" ]]; then
        : "${PG_PORT:=$(free_port)}" "${REDIS_PORT:=$(free_port)}" "${ETCD_PORT:=$(free_port)}" "${ETCD_PEER_PORT:=$(free_port)}"
    fi
    PG_PORT="${BAI_PG_PORT:-${PG_PORT:-8100}}"
    REDIS_PORT="${BAI_REDIS_PORT:-${REDIS_PORT:-8110}}"
    ETCD_PORT="${BAI_ETCD_PORT:-${ETCD_PORT:-8120}}"
    ETCD_PEER_PORT="${BAI_ETCD_PEER_PORT:-${ETCD_PEER_PORT:-$((ETCD_PORT + 1))}}"
    cat > "$STATE/ports.env" <<PORTS
PG_PORT=$PG_PORT
REDIS_PORT=$REDIS_PORT
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
PORTS
}

install_packages() {
    local wanted=(postgresql redis-server etcd-server etcd-client protobuf-compiler libprotobuf-dev
                  docker-registry apache2-utils skopeo umoci jq curl wrk python3-venv openssl)
    local missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing: ${missing[*]}"
        local sudo=()
        [[ $(id -u) -eq 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

wait_tcp() { # name port seconds
    local deadline=$((SECONDS + $3))
    until (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; do
        ((SECONDS < deadline)) || die "$1 did not answer on 127.0.0.1:$2 within $3 s (see $STATE/$1.log)"
        sleep 0.1
    done
}

as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_pg() {
    local data="$STATE/pg/data"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        mkdir -p "$STATE/pg"
        [[ $(id -u) -eq 0 ]] && chown postgres: "$STATE/pg"
        as_postgres "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    if as_postgres "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        log "PostgreSQL already runs on 127.0.0.1:$PG_PORT"
        return
    fi
    touch "$STATE/pg.log"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$STATE/pg.log"
    as_postgres "$PG_BIN/pg_ctl" -D "$data" -l "$STATE/pg.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $STATE/pg -c max_connections=400" start >/dev/null
    wait_tcp pg "$PG_PORT" 30
    local deadline=$((SECONDS + 30))
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; do
        ((SECONDS < deadline)) || die "PostgreSQL on 127.0.0.1:$PG_PORT did not accept sessions within 30 s (see $STATE/pg.log)"
        sleep 0.1
    done
    log "PostgreSQL on 127.0.0.1:$PG_PORT"
}

create_database() {
    local exists
    exists=$("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")
    if [[ "$exists" != 1 ]]; then
        "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE \"$DB_NAME\"" >/dev/null
        log "created database $DB_NAME"
    fi
}

start_redis() {
    if [[ -f "$STATE/redis.pid" ]] && kill -0 "$(cat "$STATE/redis.pid")" 2>/dev/null; then
        log "Redis already runs on 127.0.0.1:$REDIS_PORT"
        return
    fi
    mkdir -p "$STATE/redis"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE/redis" --daemonize yes \
        --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log" --save '' --appendonly no
    wait_tcp redis "$REDIS_PORT" 10
    log "Redis on 127.0.0.1:$REDIS_PORT"
}

start_etcd() {
    if [[ -f "$STATE/etcd.pid" ]] && kill -0 "$(cat "$STATE/etcd.pid")" 2>/dev/null; then
        log "etcd already runs on 127.0.0.1:$ETCD_PORT"
        return
    fi
    local client="http://127.0.0.1:$ETCD_PORT" peer="http://127.0.0.1:$ETCD_PEER_PORT"
    setsid etcd --name bai-stack --data-dir "$STATE/etcd" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "bai-stack=$peer" > "$STATE/etcd.log" 2>&1 < /dev/null &
    echo $! > "$STATE/etcd.pid"
    wait_tcp etcd "$ETCD_PORT" 30
    log "etcd on 127.0.0.1:$ETCD_PORT"
}

stop_all() {
    if [[ -f "$STATE/etcd.pid" ]]; then
        kill "$(cat "$STATE/etcd.pid")" 2>/dev/null || true
        rm -f "$STATE/etcd.pid"
    fi
    if [[ -f "$STATE/redis.pid" ]]; then
        kill "$(cat "$STATE/redis.pid")" 2>/dev/null || true
        rm -f "$STATE/redis.pid"
    fi
    if [[ -f "$STATE/pg/data/PG_VERSION" ]]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$STATE/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    log "stopped"
}

# A manager.toml for this stack (after configs/manager/halfstack.toml): loopback addresses,
# trust authentication (the password is not checked), the API on 127.0.0.1:$BAI_SERVICE_PORT.
print_config() {
    local run_dir="${1:-.}"
    cat <<TOML
# manager.toml for the local stack of deploy/stack.sh (written by \`deploy/stack.sh config\`).
[etcd]
namespace = "${BAI_NAMESPACE:-local}"
addr = { host = "127.0.0.1", port = $ETCD_PORT }
user = ""
password = ""

[db]
type = "postgresql"
addr = { host = "127.0.0.1", port = $PG_PORT }
name = "$DB_NAME"
user = "postgres"
password = "develove"

[manager]
num-proc = ${BAI_NUM_PROC:-2}
service-addr = { host = "127.0.0.1", port = ${BAI_SERVICE_PORT:-8081} }
ssl-enabled = false
heartbeat-timeout = 40.0
pid-file = "$run_dir/manager.pid"
ipc-base-path = "$run_dir/ipc"
distributed-lock = "filelock"
disabled-plugins = []
hide-agents = true

[docker-registry]
ssl-verify = false

[logging]
level = "INFO"
drivers = ["console", "file"]

[logging.pkg-ns]
"" = "WARNING"
"ai.backend" = "INFO"
"aiohttp" = "INFO"

[logging.console]
colored = true
format = "verbose"

[logging.file]
path = "$run_dir/logs"
filename = "manager.log"
backup-count = 5
rotation-size = "10M"

[debug]
enabled = false
TOML
}

print_env() {
    cat <<ENV
BAI_STACK_PG_PORT=$PG_PORT
BAI_STACK_REDIS_PORT=$REDIS_PORT
BAI_STACK_ETCD_PORT=$ETCD_PORT
BAI_TEST_PG_URL=postgres://postgres@127.0.0.1:$PG_PORT
BAI_TEST_ETCD=127.0.0.1:$ETCD_PORT
ENV
}

cmd="${1:-start}"
case "$cmd" in
    install) install_packages ;;
    start)
        load_ports
        start_pg
        create_database
        start_redis
        start_etcd
        ;;
    config)
        load_ports
        if [[ -n "${2:-}" ]]; then
            mkdir -p "$(dirname "$2")"
            print_config "$(cd "$(dirname "$2")" && pwd)" > "$2"
            log "wrote $2"
        else
            print_config "$(pwd)"
        fi
        ;;
    stop) load_ports; stop_all ;;
    status)
        load_ports
        for svc in pg:"$PG_PORT" redis:"$REDIS_PORT" etcd:"$ETCD_PORT"; do
            if (exec 3<>"/dev/tcp/127.0.0.1/${svc#*:}") 2>/dev/null; then echo "${svc%%:*} up (127.0.0.1:${svc#*:})"; else echo "${svc%%:*} down"; fi
        done
        ;;
    env) load_ports; print_env ;;
    *) die "unknown command $cmd (install|start|stop|status|env|config)" ;;
esac
