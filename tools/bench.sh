#!/usr/bin/env bash
# make bench: the raw ceilings of this machine, measured in the same run as
# the system's own figures, on loopback only; stops by itself.
#   JetStream async publish and batched fetch+ack (bench_jetstream, nats.c),
#   and async publish of event-shaped messages (body size, three headers)
#   SQLite tx/s per request and batched (bench_sqlite, core/db)
#   HTTP GET /health of `ates serve` with wrk (keep-alive)
set -uo pipefail
build=${1:-build}
secs=${BENCH_SECONDS:-5}
tmp=$(mktemp -d /tmp/ates-bench.XXXXXX)
pids=()
cleanup() {
  # an ates that died during the run leaves its last words on stderr
  if [ -n "${ates_pid:-}" ] && ! kill -0 "$ates_pid" 2>/dev/null && [ -f "$tmp/ates.log" ]; then
    echo "ates exited during the bench; the end of its log:" >&2
    tail -n 40 "$tmp/ates.log" >&2
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null
  # BENCH_KEEP_LOGS=DIR: the logs of ates and nats-server outlive the run there
  if [ -n "${BENCH_KEEP_LOGS:-}" ] && mkdir -p "$BENCH_KEEP_LOGS"; then
    cp "$tmp"/ates.log "$tmp"/nats.log "$BENCH_KEEP_LOGS"/ 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# python3 may be a version manager's shim, a script that takes ~0.3 s of CPU
# to start; the interpreter behind it starts in a tenth of that
py=$(python3 -c 'import sys; print(sys.executable)') || exit 1
python3() { "$py" "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

np=$(port)
nats-server -a 127.0.0.1 -p "$np" -js -sd "$tmp/nats" >"$tmp/nats.log" 2>&1 & pids+=($!)
up "$np" || { echo "nats-server did not start" >&2; exit 1; }

echo "== raw ceilings"
"$build/bench/bench_jetstream" "nats://127.0.0.1:$np" 200000 | tee "$tmp/js.out"
js_publish=$(awk '$1 == "jetstream_publish_async" {print $2}' "$tmp/js.out")
js_events=$(awk '$1 == "jetstream_publish_async_events" {print $2}' "$tmp/js.out")
mkdir -p "$tmp/sqlite"
"$build/bench/bench_sqlite" "$tmp/sqlite" 3 | tee "$tmp/sqlite.out"
sqlite_tx=$(awk '$1 == "sqlite_tx_per_request" {print $2}' "$tmp/sqlite.out")
rate() { wrk -t2 -c64 -d"${secs}s" "$@" 2>/dev/null | awk '/Requests\/sec/ {print $2}'; }
mp=$(port)
"$build/bench/bench_mhd" "$mp" $((secs + 10)) & mhd_pid=$!; pids+=($mhd_pid)
up "$mp" || { echo "bench_mhd did not start" >&2; exit 1; }
raw_http=$(rate "http://127.0.0.1:$mp/")
echo "http_raw_mhd ${raw_http} req/s (bare libmicrohttpd, same flags, wrk -t2 -c64)"
kill "$mhd_pid" 2>/dev/null

echo "== ates"
hp=$(port)
mkdir -p "$tmp/data" "$tmp/rules"
ATES_HTTP_ADDR="127.0.0.1:$hp" ATES_NATS_URL="nats://127.0.0.1:$np" ATES_DATA_DIR="$tmp/data" \
  ATES_RULES_DIR="${ATES_RULES_DIR:-$PWD/rules}" ATES_SCHEMAS_DIR="$PWD/config/schemas" \
  ATES_ADMIN_PASSWORD=bench-password ATES_LOG="${BENCH_ATES_LOG:-warn}" \
  "$build/ates" serve >"$tmp/ates.log" 2>&1 & ates_pid=$!; pids+=($ates_pid)
up "$hp" || { echo "ates did not start:" >&2; cat "$tmp/ates.log" >&2; exit 1; }
health=$(rate "http://127.0.0.1:$hp/health")
echo "http_health ${health} req/s (wrk -t2 -c64, keep-alive; $(ratio "$health" "$raw_http") of raw)"
for extra in tools/bench.d/*.sh; do
  if [ -f "$extra" ]; then . "$extra"; fi
done
# Whatever the figures, the databases the run wrote must be sound.
for db in "$tmp"/data/*.db; do
  echo "integrity $(basename "$db" .db): $(python3 -c '
import sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
rows = [r[0] for r in c.execute("PRAGMA integrity_check(5)")]
print("ok" if rows == ["ok"] else "FAILED: " + "; ".join(rows))' "$db" 2>&1)"
done
exit 0
