#!/usr/bin/env bash
# make lint: clang-tidy (the repo's .clang-tidy, over the build's
# compile_commands.json) and cppcheck over core/*.c and plugins/*/*.c.
# Exits 1 on any finding, on a tool failing, or on a tool missing; prints
# "lint: clean" when both pass.
set -uo pipefail
build=${1:-build}
shopt -s nullglob
files=(core/*.c plugins/*/*.c)
if [ ${#files[@]} -eq 0 ]; then
  echo "lint: no source files (run from the repository root)" >&2
  exit 1
fi
rc=0
for tool in clang-tidy cppcheck; do
  if ! command -v "$tool" >/dev/null; then
    echo "lint: $tool not found (apt-get install $tool)" >&2
    rc=1
  fi
done
[ $rc -eq 0 ] || exit $rc
if [ ! -f "$build/compile_commands.json" ]; then
  echo "lint: $build/compile_commands.json missing (build first: make build)" >&2
  exit 1
fi

errlog=$(mktemp)
trap 'rm -f "$errlog"' EXIT

# clang-tidy exits 0 on warnings (WarningsAsErrors is empty), so a finding is
# any warning/error line; a non-zero exit means it could not analyse a file.
out=$(clang-tidy -p "$build" --quiet "${files[@]}" 2>"$errlog")
tidy_rc=$?
if grep -qE "(warning|error):" <<<"$out"; then
  printf '%s\n' "$out"
  rc=1
fi
if [ $tidy_rc -ne 0 ]; then
  cat "$errlog" >&2
  echo "lint: clang-tidy exited with status $tidy_rc" >&2
  rc=1
fi

cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
  --suppress=missingIncludeSystem --inline-suppr -I . "${files[@]}"
cpp_rc=$?
if [ $cpp_rc -ne 0 ]; then
  echo "lint: cppcheck exited with status $cpp_rc" >&2
  rc=1
fi

[ $rc -eq 0 ] && echo "lint: clean"
exit $rc
