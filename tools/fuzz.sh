#!/usr/bin/env bash
# make fuzz / make test-fuzz: run every libFuzzer target of tests/fuzz for
# SECONDS seconds each (default 300), starting from its seed corpus and its
# kept crash inputs. The growing corpus lives in BUILD/corpus/<name>; a crash
# leaves its input in BUILD/crashes/<name>/ and fails the run (copy it to
# tests/fuzz/regress/<name>/ once fixed, so it is replayed by CTest forever).
# Prints each target's executions; exits 1 on any finding.
set -uo pipefail
build=${1:-build-fuzz}
seconds=${2:-300}
src=$(cd "$(dirname "$0")/.." && pwd)
rc=0
export ATES_SRC="$src" TMPDIR="$src/$build/tmp"
mkdir -p "$TMPDIR"
summary=()
for exe in "$build"/fuzz/fuzz_*; do
  [ -x "$exe" ] || continue
  name=$(basename "$exe"); short=${name#fuzz_}
  corpus="$build/corpus/$short"; crashes="$build/crashes/$short"
  mkdir -p "$corpus" "$crashes"
  log="$build/fuzz-$short.log"
  seeds=("$src/tests/fuzz/corpus/$short")
  [ -d "$src/tests/fuzz/regress/$short" ] && seeds+=("$src/tests/fuzz/regress/$short")
  echo "fuzz: $short for ${seconds}s" >&2
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
      -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" "${seeds[@]}" >"$log" 2>&1
  status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  summary+=("$short: ${execs:-?} executions, ${cov:-cov ?}, exit $status")
  if [ $status -ne 0 ]; then
    echo "fuzz: $short FAILED (exit $status); log $log; inputs in $crashes:" >&2
    grep -E "ERROR|SUMMARY|fuzz_|==[0-9]+==" "$log" | head -30 >&2
    ls "$crashes" >&2
    rc=1
  fi
done
printf 'fuzz: %s\n' "${summary[@]}"
exit $rc
