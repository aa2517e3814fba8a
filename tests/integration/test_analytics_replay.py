"""ates replay analytics: with the analytics process stopped (auth keeps
running beside it on the same data dir), replay drops the projections and
rebuilds them from the streams, giving the same answers; also from a deleted
database; the durable then goes on from where the replay ended. Replay
refuses while analytics runs, a second analytics on the same data dir
refuses to start, and bad service names are usage errors."""
import glob
import os
import re
import subprocess

import analytics_scenario as sc
from harness import ATES_BIN, Ates, Check, NatsServer, bearer, fast_nats, free_port, login, wait_consumed

t = Check()
nats = NatsServer().start()
env = {"ATES_ADMIN_PASSWORD": "replay-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test", "ATES_TZ": sc.TZ}
auth = Ates(nats.url, binary=ATES_BIN, services="auth", env=env).start()
an = Ates(nats.url, binary=ATES_BIN, services="analytics", env=env, data_dir=auth.data_dir,
          rules_dir=auth.rules_dir, schemas_dir=auth.schemas_dir)
an.log_path = os.path.join(auth.data_dir, "analytics.log")
an.start()
ADMIN = bearer(login(auth, "root@popug.test", "replay-admin-pw")["access_token"])

nc = fast_nats(nats.port)
events = sc.all_events() + sc.ledger_events(sc.today_ledger())
counts = sc.publish(nc, events)
for stream, n in counts.items():
    wait_consumed(nats.port, stream, "analytics", n)
wait_consumed(nats.port, "ATES_ACCOUNTS", "analytics", 1)

QUERIES = ["today", "days?from=2026-09-25&to=2026-10-06"] + [
    "most-expensive?period=%s&from=2026-09-01&to=2026-10-31" % p for p in ("day", "week", "month")]


def answers():
    out = {}
    for q in QUERIES:
        st, js = an.get("/api/analytics/" + q, headers=ADMIN)
        out[q] = (st, js)
    return out


before = answers()
t(all(st == 200 for st, _ in before.values()), "answers before: %r" % {q: a[0] for q, a in before.items()})
t.eq(before["days?from=2026-09-25&to=2026-10-06"][1]["items"], sc.expected_days("2026-09-25", "2026-10-06"),
     "the scenario's days before the replay")


def ates_cmd(*args):
    return subprocess.run([ATES_BIN] + list(args), env=an.env(), cwd=an.data_dir, capture_output=True,
                          text=True, timeout=120)


# --- refusals while analytics runs
p = ates_cmd("replay", "analytics")
t.eq(p.returncode, 1, "replay refuses while analytics serves this data dir: %s" % p.stderr)
t("in use" in p.stderr, "it says why: %r" % p.stderr)
twin_env = dict(an.env(), ATES_HTTP_ADDR="127.0.0.1:%d" % free_port())
p = subprocess.run([ATES_BIN, "serve", "--services", "analytics"], env=twin_env, cwd=an.data_dir,
                   capture_output=True, text=True, timeout=60)
t.eq(p.returncode, 1, "a second analytics on the same data dir does not start")
t("in use" in p.stderr, "it says why: %r" % p.stderr[-500:])
for args, code in ((["replay"], 2), (["replay", "nosuch"], 2), (["replay", "auth"], 2),
                   (["replay", "analytics", "extra"], 2)):
    p = ates_cmd(*args)
    t.eq(p.returncode, code, "ates %s: %s" % (" ".join(args), p.stderr.strip()))
p = ates_cmd("replay", "--help")
t(p.returncode == 0 and "usage: ates replay SERVICE" in p.stdout, "replay --help")

# --- replay over the existing projections
t.eq(an.stop(), 0, "analytics stops")
total = sum(nc.stream_info(s)["state"]["messages"] for s in ("ATES_TASKS", "ATES_ACCOUNTING", "ATES_ACCOUNTS"))
p = ates_cmd("replay", "analytics")
t.eq(p.returncode, 0, "replay: %s" % p.stderr[-2000:])
m = re.search(r"replayed analytics: (\d+) events from ([A-Z_ ]+) in [\d.]+ s \((\d+) events/s\)", p.stdout)
t(m is not None, "replay reports count and rate: %r" % p.stdout)
print(p.stdout.strip())
if m:
    t.eq(int(m.group(1)), total, "every message of the three streams")
    t.eq(sorted(m.group(2).split()), ["ATES_ACCOUNTING", "ATES_ACCOUNTS", "ATES_TASKS"], "the streams")
an.start()
after = answers()
for q in QUERIES:
    t.eq(after[q], before[q], "same answer after replay: " + q)

# --- replay into a deleted database
t.eq(an.stop(), 0, "analytics stops again")
for f in glob.glob(os.path.join(an.data_dir, "analytics.db*")):
    os.remove(f)
p = ates_cmd("replay", "analytics")
t.eq(p.returncode, 0, "replay from nothing: %s" % p.stderr[-2000:])
an.start()
again = answers()
for q in QUERIES:
    t.eq(again[q], before[q], "same answer after a replay into a new database: " + q)

# --- afterwards the durable goes on from the end: a new entry counts once
extra = sc.ledger_events([(sc.A, "debit", 700, sc.today(), -700, sc.rfc3339(sc.utc("2030-01-01T00:00:00Z")))])
n_acct = sc.publish(nc, extra)["ATES_ACCOUNTING"] + counts["ATES_ACCOUNTING"]
wait_consumed(nats.port, "ATES_ACCOUNTING", "analytics", n_acct)
st, js = an.get("/api/analytics/today", headers=ADMIN)
want = dict(before["today"][1])
want["management_earnings_cents"] += 700
want["negative_accounts"] += 1  # A's newest entry is now -700
t.eq((st, js), (200, want), "a new event after the replay counts once")

nc.close()
t.eq(an.stop(), 0, "clean stop of analytics")
t.eq(auth.stop(), 0, "clean stop of auth")
t.done()
