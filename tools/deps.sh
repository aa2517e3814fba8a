#!/usr/bin/env bash
# Install the Debian packages aTES needs to build, run, test and benchmark;
# does nothing when all are present.
set -euo pipefail
pkgs=(cmake make gcc pkg-config python3 tzdata ca-certificates
      liblua5.4-dev libmicrohttpd-dev libsqlite3-dev libnats-dev libcjson-dev
      libssl-dev libsodium-dev libcurl4-openssl-dev nats-server wrk curl
      clang-tidy cppcheck clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
