#!/usr/bin/env bash
# Install the Debian packages aTES needs to build, run, test and benchmark,
# and the browser tests' npm packages (tests/browser, from its lockfile);
# does nothing when all are present.
set -euo pipefail
pkgs=(cmake make gcc pkg-config python3 tzdata ca-certificates
      liblua5.4-dev libmicrohttpd-dev libsqlite3-dev libnats-dev libcjson-dev
      libssl-dev libsodium-dev libcurl4-openssl-dev nats-server wrk curl
      clang-tidy cppcheck clang libclang-rt-14-dev)
# the browser tests (tests/browser): Debian's chromium and a font for its screenshots
pkgs+=(chromium fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm: any install will do (Debian's nodejs/npm when there is none)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# the browser tests' playwright-core, pinned by tests/browser/package-lock.json
browser="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
if [ ! -d "$browser/node_modules/playwright-core" ]; then
  echo "installing the browser tests' npm packages (npm ci in tests/browser)" >&2
  npm ci --prefix "$browser" --no-audit --no-fund >/dev/null
fi
