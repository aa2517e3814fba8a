#!/usr/bin/env python3
"""bench_wait: wait for counters of `ates serve`'s /metrics, for make bench.

One process polls /metrics over one keep-alive connection every POLL_S
(about 0.5 ms of its CPU per look, and as much of the server's): a
shell loop of curl and awk costs some 20 ms of CPU per look, a fifth of a
core at 20 looks a second, taken from the very system it is timing.

usage: bench_wait.py URL TIMEOUT_S [--idle] SERIES>=N ...
  SERIES is a series exactly as /metrics writes it (name and labels), or
  several joined by '+' (their sum); N a number, or such series too (their
  value at each look). For each condition, one line: the wall clock (ns
  since the epoch, as `date +%s%N`) of the first look that saw it hold and
  the left side's value then, or "timeout". With --idle, once all hold, it
  also waits until every
  ates_bus_{consumed,published,dead_letters}_total series stood still for
  IDLE_LOOKS looks in a row, IDLE_POLL_S apart, and prints one more line:
  its time, or "timeout". Exits 1 on any timeout.
"""
import http.client
import sys
import time
import urllib.parse

POLL_S = 0.05
IDLE_POLL_S = 0.1
IDLE_LOOKS = 3
BUS = ("ates_bus_consumed_total", "ates_bus_published_total", "ates_bus_dead_letters_total")


def main(argv):
    if len(argv) < 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    url = urllib.parse.urlsplit(argv[1])
    deadline = time.monotonic() + float(argv[2])
    idle = "--idle" in argv[3:]
    conds = []
    for arg in (a for a in argv[3:] if a != "--idle"):
        left, _, right = arg.rpartition(">=")
        try:
            right = float(right)
        except ValueError:
            right = right.split("+")
        conds.append((left.split("+"), right))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)

    wanted = {s for left, right in conds for s in left + ([] if isinstance(right, float) else right)}

    def look(bus=False):
        """The wanted series (and with bus, every BUS series) now, or None."""
        try:
            conn.request("GET", "/metrics")
            body = "\n" + conn.getresponse().read().decode()
        except (OSError, http.client.HTTPException):
            conn.close()  # reconnects on the next request
            return None
        values = {}
        for key in wanted:  # a search in C, not a Python loop over every line
            at = body.find("\n" + key + " ")
            if at >= 0:
                end = body.find("\n", at + 1)
                values[key] = float(body[at + len(key) + 2:end if end >= 0 else None])
        if bus:
            for line in body.splitlines():
                if line.startswith(BUS):
                    key, _, value = line.rpartition(" ")
                    values[key] = float(value)
        return values

    met = [None] * len(conds)
    while None in met and time.monotonic() < deadline:
        values = look()
        now = time.time_ns()
        for i, (left, right) in enumerate(conds):
            if met[i] is not None or values is None:
                continue
            have = sum(values.get(s, 0) for s in left)
            need = right if isinstance(right, float) else sum(values.get(s, 0) for s in right)
            if have >= need:
                met[i] = "%d %d" % (now, have)
        if None in met:
            time.sleep(POLL_S)
    for m in met:
        print(m if m is not None else "timeout")
    if None in met:
        return 1
    if not idle:
        return 0
    last, still = None, 0
    while time.monotonic() < deadline:
        values = look(bus=True)
        snap = values and sorted((k, v) for k, v in values.items() if k.startswith(BUS))
        still = still + 1 if snap and snap == last else 0
        last = snap
        if still >= IDLE_LOOKS:
            print(time.time_ns())
            return 0
        time.sleep(IDLE_POLL_S)
    print("timeout")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
