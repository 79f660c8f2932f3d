#!/usr/bin/env bash
# Throughput of `GET /` (the version endpoint: routing, JSON, default headers, no database).
#
#   benches/get_root.sh [SECONDS] [CONNECTIONS]
#
# Builds the release binary, starts a private PostgreSQL/Redis/etcd stack on free loopback
# ports (deploy/stack.sh), starts bai-manager with num-proc = the number of cores and the
# access log off, and drives it with Debian's `wrk` (2 threads) for SECONDS (default 20) over
# CONNECTIONS keep-alive connections (default 128). Prints wrk's report. Everything started is
# stopped at the end. wrk runs on the same machine, so it competes with the server for the
# cores: the figure is a lower bound of what the server can do.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
DURATION="${1:-20}"
CONNECTIONS="${2:-128}"
RUN="$(mktemp -d /tmp/bai-bench-XXXXXX)"
chmod 755 "$RUN"   # PostgreSQL runs as the postgres user and must reach its data folder
export BAI_STATE_DIR="$RUN/stack" BAI_PORTS=auto

cleanup() {
    if [[ -f "$RUN/manager.pid" ]]; then
        kill -TERM "$(cat "$RUN/manager.pid")" 2>/dev/null || true
        sleep 1
    fi
    deploy/stack.sh stop >/dev/null 2>&1 || true
    rm -rf "$RUN"
}
trap cleanup EXIT

command -v wrk >/dev/null || deploy/stack.sh install
cargo build --release --locked --bin bai-manager >&2
deploy/stack.sh start >&2
# shellcheck disable=SC1090
source <(deploy/stack.sh env)
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BAI_SERVICE_PORT="$PORT" BAI_NUM_PROC="$(nproc)" deploy/stack.sh config "$RUN/manager.toml" >&2
# Measure serving, not logging: no access log, console only, warnings and worse.
sed -i -e 's/^"aiohttp" = "INFO"/"aiohttp" = "WARNING"/' -e 's/^drivers = \["console", "file"\]/drivers = ["console"]/' \
    -e 's/^level = "INFO"/level = "WARNING"/' "$RUN/manager.toml"
ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$BAI_STACK_ETCD_PORT" \
    put /sorna/local/config/redis/addr "127.0.0.1:$BAI_STACK_REDIS_PORT" >/dev/null

target/release/bai-manager -f "$RUN/manager.toml" start-server > "$RUN/console.log" 2>&1 &
for _ in $(seq 300); do
    curl -fsS "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/" >/dev/null || { cat "$RUN/console.log" >&2; exit 1; }

# CPU time (user + system, in clock ticks) of the supervisor and its workers.
manager_ticks() {
    local supervisor total=0 pid
    supervisor="$(cat "$RUN/manager.pid")"
    for pid in "$supervisor" $(pgrep -P "$supervisor"); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}

echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# wrk -t2 -c$CONNECTIONS -d${DURATION}s http://127.0.0.1:$PORT/  (bai-manager $(target/release/bai-manager --version | cut -d' ' -f2), num-proc $(nproc))"
before="$(manager_ticks)"
TIMEFORMAT='%U %S'
{ time wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/" > "$RUN/wrk.out"; } 2> "$RUN/wrk.cpu"
after="$(manager_ticks)"
cat "$RUN/wrk.out"
# The machine may be shared: the CPU the manager actually used says what 2 dedicated cores
# would give (requests per CPU-second, times the cores), independent of the other load.
requests="$(awk '/requests in/ {print $1}' "$RUN/wrk.out")"
read -r wrk_user wrk_sys < "$RUN/wrk.cpu"
awk -v r="$requests" -v t="$((after - before))" -v hz="$(getconf CLK_TCK)" -v cores="$(nproc)" \
    -v wu="$wrk_user" -v ws="$wrk_sys" 'BEGIN {
    secs = t / hz; wrk = wu + ws
    printf "# manager CPU: %.1f s for %d requests = %.1f us/request (%.0f requests per CPU-second)\n", secs, r, secs * 1e6 / r, r / secs
    printf "# wrk CPU: %.1f s = %.1f us/request\n", wrk, wrk * 1e6 / r
    printf "# on %d cores used only by manager + wrk: %.0f req/s; by the manager alone: %.0f req/s\n", cores, cores * r / (secs + wrk), cores * r / secs
}'
