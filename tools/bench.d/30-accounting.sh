# Sourced by tools/bench.sh after 20-tracker.sh ($build, $tmp, $hp, $np,
# $js_publish, $login_body, $pids, ratio(); from 20-tracker: $popugs):
#  - accounting_pipeline: a shuffle of 100k open tasks (trimmed down or
#    seeded up to exactly that in tracker.db), timed from the press until
#    accounting consumed every TaskAssigned of it (its
#    ates_bus_consumed_total on ATES_TASKS) and published every
#    TransactionApplied; events/s next to the raw JetStream publish rate
#    (target >= 30%). Waits first (bounded) until accounting has caught up
#    with what 20-tracker's shuffles published, and reports that too;
#  - accounting_lag_p99: TaskAssigned published straight to JetStream at
#    BENCH_LAG_RATE/s (1000) for BENCH_LAG_SECONDS (10) by bench_lag, lag to
#    the matching TransactionApplied (target p99 <= 20 ms);
#  - accounting_close_100k: 100k accounts with positive balances seeded
#    into accounting.db, then POST /api/accounting/close-day for today as
#    admin, timed (target <= 2 s); then the mail spool rate for $secs s,
#    after which the payout mails still queued are dropped (straight from
#    mail_outbox) so the mail worker does not load the benches after this.
# BENCH_ACCT_TASKS (100000), BENCH_ACCT_ACCOUNTS (100000) and
# BENCH_ACCT_DRAIN_SECONDS (900, the longest wait for a backlog) scale it.
ac_base="http://127.0.0.1:$hp"
ac_tasks=${BENCH_ACCT_TASKS:-100000}
ac_accounts=${BENCH_ACCT_ACCOUNTS:-100000}
ac_login() {  # a fresh admin token into ac_token (access tokens live ATES_ACCESS_TTL, 5 min)
  ac_token=$(curl -s -X POST -H 'Content-Type: application/json' -d "$login_body" \
    "$ac_base/api/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
}
ac_metrics() { curl -s -m 5 "$ac_base/metrics" >"$tmp/ac_metrics" 2>/dev/null; }
ac_get() {  # a series of the last ac_metrics, exactly as written (0 when absent)
  awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }' "$tmp/ac_metrics"
}
ac_consumed='ates_bus_consumed_total{service="accounting",stream="ATES_TASKS"}'
ac_dead='ates_bus_dead_letters_total{service="accounting",stream="ATES_TASKS"}'
ac_published='ates_bus_published_total{service="accounting"}'
ac_tracker='ates_bus_published_total{service="tracker"}'
ac_mailed='ates_mail_delivered_total{service="accounting"}'
ac_ms() { echo $(( ($2 - $1) / 1000000 )); }
ac_pid() {  # the pid of bench.sh's process named $1
  local p
  for p in "${pids[@]}"; do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$1" ] && { echo "$p"; return; }
  done
}
ac_cpu() {  # CPU time of pid $1 so far, in clock ticks (0 when gone)
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
ac_ates=$(ac_pid ates); ac_nats=$(ac_pid nats-server); ac_hz=$(getconf CLK_TCK)
ac_load() {  # "ates X%, nats-server Y% of a core" between tick snapshots and wall ms
  awk -v a="$(( $(ac_cpu "$ac_ates") - $1 ))" -v n="$(( $(ac_cpu "$ac_nats") - $2 ))" -v ms="$3" \
    -v hz="$ac_hz" 'BEGIN { if (ms > 0) printf "ates %.0f%%, nats-server %.0f%% of one core", \
      100000 * a / hz / ms, 100000 * n / hz / ms }'
}

# Wait until accounting consumed all the tracker published (the time that
# took is the backlog's), then until every bus counter of ates stood still
# for 3 looks in a row: all consumers idle, all outboxes flushed. With
# "report", prints the rate at which accounting caught up. Returns 1 when
# BENCH_ACCT_DRAIN_SECONDS ran out. tools/bench_wait.py does the looking,
# in one process: a loop of curl and awk would take CPU from what it waits for.
ac_drain() {
  local t0 c0 out t1 c dt
  t0=$(date +%s%N); ac_metrics
  c0=$(( $(ac_get "$ac_consumed") + $(ac_get "$ac_dead") ))
  out=$(python3 tools/bench_wait.py "$ac_base" "${BENCH_ACCT_DRAIN_SECONDS:-900}" --idle \
    "$ac_consumed+$ac_dead>=$ac_tracker")
  read -r t1 c <<<"$(sed -n 1p <<<"$out")"
  if [ "$t1" != timeout ] && [ "${1:-}" = report ]; then
    dt=$(ac_ms "$t0" "$t1")
    echo "accounting_backlog caught up with $((${c%.*} - c0)) events of the tracker" \
      "in ${dt} ms ($(awk -v n=$((${c%.*} - c0)) -v t="$dt" 'BEGIN { printf "%.0f", (t > 0 ? 1000 * n / t : 0) }') events/s)"
  fi
  if [ "$(sed -n 2p <<<"$out")" = timeout ] || [ "$t1" = timeout ]; then
    ac_metrics
    echo "accounting: not idle after ${BENCH_ACCT_DRAIN_SECONDS:-900} s" \
      "(accounting consumed $(ac_get "$ac_consumed") of $(ac_get "$ac_tracker") tracker events)" >&2
    return 1
  fi
}

ac_pipeline() {
  local left reassigned c0 a0 t0 t1 t2 t3 out rate u0 n0 load
  left=$("$build/bench/bench_trim_tasks" "$tmp/data/tracker.db" "$ac_tasks") &&
    left=$("$build/bench/bench_seed_tasks" "$tmp/data/tracker.db" "$ac_tasks" "${popugs[@]}") || return
  ac_drain report || return
  ac_login || return
  ac_metrics; c0=$(ac_get "$ac_consumed"); a0=$(ac_get "$ac_published")
  u0=$(ac_cpu "$ac_ates"); n0=$(ac_cpu "$ac_nats")
  t0=$(date +%s%N)
  reassigned=$(curl -s -m 300 -X POST -H "Authorization: Bearer $ac_token" "$ac_base/api/tasks/shuffle")
  t1=$(date +%s%N)  # the answer is read after the clock stops
  reassigned=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["reassigned"])' <<<"$reassigned") ||
    return
  out=$(python3 tools/bench_wait.py "$ac_base" "${BENCH_ACCT_DRAIN_SECONDS:-900}" \
    "$ac_consumed>=$((c0 + reassigned))" "$ac_published>=$((a0 + reassigned))")
  t2=$(sed -n 1p <<<"$out" | cut -d' ' -f1); t3=$(sed -n 2p <<<"$out" | cut -d' ' -f1)
  [ "$t3" = timeout ] && t3=""
  if [ "$t2" = timeout ]; then
    ac_metrics
    echo "accounting_pipeline: only $(( $(ac_get "$ac_consumed") - c0 )) of $reassigned TaskAssigned" \
      "consumed in time" >&2
    return
  fi
  load=$(ac_load "$u0" "$n0" "$(ac_ms "$t0" "$(date +%s%N)")")
  rate=$(awk -v n="$reassigned" -v t="$(ac_ms "$t0" "$t2")" 'BEGIN { printf "%.0f", (t > 0 ? 1000 * n / t : 0) }')
  echo "accounting_pipeline ${rate} events/s (shuffle of ${reassigned} open tasks, ${left} seeded:" \
    "answered $(ac_ms "$t0" "$t1") ms, all TaskAssigned booked $(ac_ms "$t0" "$t2") ms," \
    "all TransactionApplied published $([ -n "$t3" ] && echo "$(ac_ms "$t0" "$t3") ms" || echo "not in time");" \
    "${load:+$load; }$(ratio "$rate" "$js_publish") of jetstream_publish_async; target >= 30%)"
}

ac_lag() {
  ac_drain || return
  "$build/bench/bench_lag" "nats://127.0.0.1:$np" "${BENCH_LAG_RATE:-1000}" "${BENCH_LAG_SECONDS:-10}" \
    "${popugs[0]}"
}

ac_close() {
  local day seeded t0 t1 out code body m0 m1 dropped
  ac_drain && ac_login || return
  day=$(curl -s -H "Authorization: Bearer $ac_token" "$ac_base/api/accounting/today" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["day"])') || return
  seeded=$("$build/bench/bench_seed_accounts" "$tmp/data/accounting.db" "$ac_accounts" "$day") || return
  t0=$(date +%s%N)
  out=$(curl -s -m 300 -w '\n%{http_code}' -X POST -H "Authorization: Bearer $ac_token" \
    -H 'Content-Type: application/json' -d "{\"day\":\"$day\"}" "$ac_base/api/accounting/close-day")
  t1=$(date +%s%N)
  ac_metrics; m0=$(ac_get "$ac_mailed")
  code=${out##*$'\n'}; body=${out%$'\n'*}
  if [ "$code" != 200 ]; then
    echo "accounting_close: status $code: $body" >&2
    return
  fi
  echo "accounting_close_$((ac_accounts / 1000))k $(ac_ms "$t0" "$t1") ms ($(python3 -c '
import json, sys
a = json.loads(sys.argv[1])
print("paid_accounts=%d, paid_cents=%d, negative_accounts=%d, changed=%s" %
      (a["paid_accounts"], a["paid_cents"], a["negative_accounts"], str(a["changed"]).lower()))' "$body");" \
    "seeded ${seeded% *} accounts, ${seeded#* } cents, day $day; target <= 2000 ms)"
  sleep "$secs"
  ac_metrics; m1=$(ac_get "$ac_mailed")
  # the rest would keep the mail worker busy through the next benches
  dropped=$("$build/bench/bench_seed_accounts" "$tmp/data/accounting.db" --drop-mail)
  echo "accounting_close_mails $((m1 - m0)) of ${seeded% *} payout mails spooled in the ${secs} s" \
    "after the close ($(( (m1 - m0) / secs ))/s); ${dropped:-?} still queued were dropped"
  ac_drain >/dev/null  # analytics takes in the payouts' TransactionApplied before the next bench
}

if [ -n "${popugs+set}" ] && [ "${#popugs[@]}" -gt 0 ]; then
  ac_pipeline
  ac_lag
  ac_close
else
  echo "accounting: no popug accounts from 20-tracker.sh; skipped" >&2
fi
