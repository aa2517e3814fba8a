#!/usr/bin/env bash
# make lint: clang-tidy and cppcheck over core/, plugins/ and tests.
set -uo pipefail
build=${1:-build}
rc=0
files=$(ls core/*.c plugins/*/*.c 2>/dev/null)
if command -v clang-tidy >/dev/null; then
  clang-tidy -p "$build" --quiet $files 2>/dev/null | grep -E "warning:|error:" && rc=1
fi
if command -v cppcheck >/dev/null; then
  cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
    --suppress=missingIncludeSystem --inline-suppr -I . $files || rc=1
fi
exit $rc
