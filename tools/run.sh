#!/usr/bin/env bash
# make run: start nats-server (JetStream, store under the data dir) when none
# answers at ATES_NATS_URL, then `ates serve`; Ctrl-C stops both.
set -uo pipefail
bin=${1:-build/ates}
data=${ATES_DATA_DIR:-./data}
url=${ATES_NATS_URL:-nats://127.0.0.1:4222}
first=${url%%,*}
hostport=${first#nats://}
host=${hostport%:*}
port=${hostport##*:}
nats_pid=

answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

if ! answers; then
  mkdir -p "$data/nats"
  echo "starting nats-server -js on 127.0.0.1:$port (store $data/nats, log $data/nats/nats.log)"
  nats-server -a 127.0.0.1 -p "$port" -js -sd "$data/nats" >>"$data/nats/nats.log" 2>&1 &
  nats_pid=$!
  for _ in $(seq 100); do answers && break; sleep 0.1; done
  answers || { echo "nats-server did not start; see $data/nats/nats.log" >&2; exit 1; }
fi

"$bin" serve &
ates_pid=$!
stop() { kill -TERM "$ates_pid" 2>/dev/null; }
trap stop INT TERM
echo "aTES: http://${ATES_HTTP_ADDR:-127.0.0.1:8080}/  (Ctrl-C stops)"
wait "$ates_pid"; rc=$?
wait "$ates_pid" 2>/dev/null
if [ -n "$nats_pid" ]; then
  kill -TERM "$nats_pid" 2>/dev/null
  wait "$nats_pid" 2>/dev/null
fi
exit $rc
