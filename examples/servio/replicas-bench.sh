#!/usr/bin/env bash
# replicas-bench.sh: servio's load test against a private PostgreSQL primary
# with one streaming replica, once with every read on the primary and once
# with DATABASE_REPLICA_URLS routing menu, low-stock and order-history reads
# to the replica. Prints loadgen's report (p50/p95/p99, throughput) and the
# CPU seconds the primary's server processes used during each run.
#
#   examples/servio/replicas-bench.sh [rate] [duration]   # defaults: 400 20s
#
# Needs the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup); as
# root it runs them as the postgres user. Everything lives in a temporary
# directory and is stopped on exit.
set -euo pipefail
rate=${1:-400}
duration=${2:-20s}
cd "$(dirname "$0")/../.."
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
dir=$(mktemp -d /tmp/servio-replicas-XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$dir"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pport=$(free_port); rport=$(free_port); sport=$(free_port)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$bin/pg_ctl" -D "$dir/replica" -m fast stop >/dev/null 2>&1 || true
  as_pg "$bin/pg_ctl" -D "$dir/primary" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
opts="-c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200"
as_pg "$bin/initdb" -D "$dir/primary" -U postgres --auth=trust --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/primary" -o "-p $pport $opts" -l "$dir/primary.log" -w start >/dev/null
as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres -D "$dir/replica" -R -X stream --checkpoint=fast
as_pg "$bin/pg_ctl" -D "$dir/replica" -o "-p $rport $opts" -l "$dir/replica.log" -w start >/dev/null
primary="postgres://postgres@127.0.0.1:$pport/postgres?sslmode=disable"
replica="postgres://postgres@127.0.0.1:$rport/postgres?sslmode=disable"

go build -o "$dir/servio" ./examples/servio
go build -o "$dir/loadgen" ./examples/servio/loadgen
DATABASE_URL=$primary "$dir/servio" seed -restaurants 50 -items 40 -orders 20000 >/dev/null 2>&1

# CPU seconds of the primary's postmaster and its server processes, the
# exited ones included (the postmaster's reaped-children times).
pm=$(head -n1 "$dir/primary/postmaster.pid")
tck=$(getconf CLK_TCK)
cpu() {
  local t
  t=$(awk '{print $14+$15+$16+$17}' "/proc/$pm/stat")
  for c in $(pgrep -P "$pm"); do t=$((t + $(awk '{print $14+$15}' "/proc/$c/stat" 2>/dev/null || echo 0))); done
  echo "scale=2; $t / $tck" | bc
}

run() { # name, then env assignments for servio
  local name=$1; shift
  env DATABASE_URL="$primary" "$@" RATE_LIMIT=false TRUSTED_PROXIES=127.0.0.1/32 ADDR=127.0.0.1:$sport DATA_DIR="$dir/data-$name" \
    "$dir/servio" >"$dir/servio-$name.log" 2>&1 &
  local sp=$!; pids+=("$sp")
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$sport/health/live" >/dev/null && break; sleep 0.1; done
  local before; before=$(cpu)
  "$dir/loadgen" -url "http://127.0.0.1:$sport" -rate "$rate" -duration "$duration" -restaurants 50 -orders 20000 -quiet
  local after; after=$(cpu)
  curl -s "http://127.0.0.1:$sport/health/metrics" | grep -E '^perfkit_dbpool_replica_(reads|fallbacks)_total' || true
  echo "== $name: primary CPU $(echo "$after - $before" | bc) s (warm-up included) for $rate req/s over $duration"
  kill "$sp"; wait "$sp" 2>/dev/null || true
}
run primary-only
run with-replica DATABASE_REPLICA_URLS="$replica"
