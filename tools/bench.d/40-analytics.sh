# Sourced by tools/bench.sh ($build, $tmp, $hp, $login_body, $pids, port(), up()):
#  - GET /api/analytics/most-expensive over 365 days of 1M completed tasks
#    (seeded straight into analytics' database, keys made by
#    rules/analytics.lua as the service makes them), target <= 50 ms, by
#    day (and by week and month for comparison): median and best of 7;
#  - the rate of `ates replay analytics` in events/s, over a synthetic
#    stream (6 events per completed task) on its own nats-server and data
#    dir, so the running ates is not disturbed.
# BENCH_ANALYTICS_TASKS (1000000) and BENCH_REPLAY_TASKS (50000) scale them.
an_base="http://127.0.0.1:$hp"
an_rules="${ATES_RULES_DIR:-$PWD/rules}"
an_token=$(curl -s -X POST -H 'Content-Type: application/json' -d "$login_body" "$an_base/api/auth/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
an_last=$(date -u -d yesterday +%F)
an_first=$(date -u -d "$an_last - 364 days" +%F)
for _ in $(seq 100); do [ -f "$tmp/data/analytics.db" ] && break; sleep 0.1; done
if "$build/bench/bench_analytics_seed" "$tmp/data/analytics.db" "$an_rules" \
     "${BENCH_ANALYTICS_TASKS:-1000000}" 365 "$an_last" >"$tmp/an_seed.out"; then
  echo "analytics_seed $(cat "$tmp/an_seed.out")"
  an_time() {  # period -> "median best" in ms over 7 runs after a warm-up
    local url="$an_base/api/analytics/most-expensive?period=$1&from=$an_first&to=$an_last" code
    code=$(curl -s -o "$tmp/an_$1.json" -w '%{http_code}' -H "Authorization: Bearer $an_token" "$url")
    [ "$code" = 200 ] || { echo "status $code"; return; }
    for _ in 1 2 3 4 5 6 7; do
      curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $an_token" "$url"
    done | sort -n | awk '{ t[NR] = $1 * 1000 } END { printf "%.1f %.1f", t[4], t[1] }'
  }
  for period in day week month; do
    read -r an_p50 an_best <<<"$(an_time "$period")"
    an_items=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["items"]))' \
      "$tmp/an_$period.json" 2>/dev/null)
    echo "analytics_most_expensive_${period}_365d median ${an_p50} ms, best ${an_best} ms" \
      "(${an_items:-?} items, ${BENCH_ANALYTICS_TASKS:-1000000} completed tasks; target for day <= 50 ms)"
  done
else
  echo "analytics_seed failed" >&2
fi

an_np=$(port)
mkdir -p "$tmp/an-nats" "$tmp/an-data"
nats-server -a 127.0.0.1 -p "$an_np" -js -sd "$tmp/an-nats" >"$tmp/an-nats.log" 2>&1 & pids+=($!)
if up "$an_np" && an_events=$("$build/bench/bench_analytics_events" "nats://127.0.0.1:$an_np" \
     "${BENCH_REPLAY_TASKS:-50000}"); then
  ATES_NATS_URL="nats://127.0.0.1:$an_np" ATES_DATA_DIR="$tmp/an-data" ATES_RULES_DIR="$an_rules" \
    ATES_SCHEMAS_DIR="$PWD/config/schemas" ATES_LOG=warn \
    "$build/ates" replay analytics >"$tmp/an_replay.out" 2>"$tmp/an_replay.err"
  an_rate=$(sed -n 's/.*(\([0-9]*\) events\/s).*/\1/p' "$tmp/an_replay.out")
  echo "analytics_replay ${an_rate:-failed} events/s ($(sed -n 's/^replayed analytics: //p' "$tmp/an_replay.out"))"
else
  echo "analytics_replay: could not publish the events" >&2
fi
