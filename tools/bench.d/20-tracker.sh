# Sourced by tools/bench.sh: tracker create rate at 64 connections (p50/p99)
# next to the one-transaction-per-request SQLite ceiling, and the time to
# shuffle 100k and 1M open tasks (answer, then every TaskAssigned published),
# next to the time the broker alone needs for that many event-shaped
# publishes at the raw rate of this run ($js_events).
base="http://127.0.0.1:$hp"
admin=$(curl -s -X POST -H 'Content-Type: application/json' -d "$login_body" "$base/api/auth/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
popugs=()
for i in 1 2 3 4; do
  id=$(curl -s -X POST -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"email\":\"bench$i@uberpopug.inc\",\"name\":\"Bench $i\",\"role\":\"popug\",\"password\":\"bench-password\"}" \
    "$base/api/accounts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  popugs+=("$id")
done
for _ in $(seq 100); do   # the tracker learns accounts from events
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' -d '{"title":"warm-up"}' "$base/api/tasks")
  [ "$code" = 201 ] && break; sleep 0.1
done
cat >"$tmp/create.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"title":"a task of typical length for the bench","jira_id":"UBERPOP-42"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $admin"
LUA
wrk -t2 -c64 -d"${secs}s" --latency -s "$tmp/create.lua" "$base/api/tasks" >"$tmp/create.out" 2>&1
create=$(awk '/Requests\/sec/ {print $2}' "$tmp/create.out")
p50=$(awk '$1 == "50%" {print $2}' "$tmp/create.out")
p99=$(awk '$1 == "99%" {print $2}' "$tmp/create.out")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/create.out")
echo "tracker_create ${create} req/s (64 conns; p50 ${p50}, p99 ${p99}; non-2xx ${non2xx:-0}; $(ratio "$create" "$sqlite_tx") of the SQLite tx/request ceiling)"

published() {
  curl -s "$base/metrics" | awk '/^ates_bus_published_total\{service="tracker"/ {print $2}'
}
shuffle_n() {
  local n=$1 before after t0 t1 t2
  "$build/bench/bench_seed_tasks" "$tmp/data/tracker.db" "$n" "${popugs[@]}" >/dev/null || return
  before=$(published)
  t0=$(date +%s%N)
  reassigned=$(curl -s -X POST -H "Authorization: Bearer $admin" "$base/api/tasks/shuffle")
  t1=$(date +%s%N)  # the answer is read after the clock stops
  reassigned=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["reassigned"])' <<<"$reassigned")
  t2=$(python3 tools/bench_wait.py "$base" 300 \
    "ates_bus_published_total{service=\"tracker\"}>=$(( ${before%.*} + reassigned ))" | cut -d' ' -f1)
  echo "tracker_shuffle_${n} reassigned=${reassigned}: answered $(( (t1 - t0) / 1000000 )) ms," \
    "all events published $([ "$t2" != timeout ] && echo "$(( (t2 - t0) / 1000000 )) ms" || echo "not in 300 s")" \
    "(target $(( n / 100 )) ms; publishing" \
    "${reassigned} events alone at jetstream_publish_async_events takes" \
    "$(awk -v n="$reassigned" -v r="${js_events:-0}" 'BEGIN { if (r > 0) printf "%.0f", 1000 * n / r; else print "n/a" }') ms)"
}
shuffle_n 100000
[ "${BENCH_SKIP_1M:-0}" = 1 ] || shuffle_n 1000000
