"""kill -9 in the middle of a close: two thousand accounts with positive
balances on two past days (events published by hand); POST close-day for
the first day and kill -9 the process while the close holds accounting.db's
write lock (seen from outside: BEGIN IMMEDIATE fails), restart on the same
data dir, close again; then the same for the second day, killed once its
first payout mail is on disk. Whatever the kill interrupted, every account
ends with exactly one payout entry and one mail per day, one
TransactionApplied per payout, one DayClosed per day, balance 0, and
nothing but whole mails (and dot temp files) in the spool."""
import os
import sqlite3
import sys
import threading
import time

import accounting_util as au
from harness import (ATES_BIN, Ates, Check, NatsServer, bearer, fast_nats, login, repo_rules, wait_consumed,
                     wait_for)

N = 2000
TZ = au.noon_tz()
T0 = time.monotonic()


def phase(what):
    sys.stdout.write("[%5.1fs] %s\n" % (time.monotonic() - T0, what))


t = Check()
nats = NatsServer().start()
RULES = au.fixed_rules(repo_rules())
ates = Ates(nats.url, binary=ATES_BIN, services="auth,accounting", rules_dir=RULES,
            env={"ATES_ADMIN_PASSWORD": "crash-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                 "ATES_TZ": TZ, "ATES_LOG": "info"}).start()
ADMIN = bearer(login(ates, "root@popug.test", "crash-admin-pw")["access_token"])
TODAY = au.today(TZ)
D2, D1 = au.day_add(TODAY, -2), au.day_add(TODAY, -1)
nc = fast_nats(nats.port)

# --- seed: N accounts, each with one task of its own group, assigned and completed on D2 and D1
accounts = ["%08x-0000-4000-8000-%012d" % (0xacc, i) for i in range(N)]
tasks = [au.new_id() for _ in range(10)]  # task k: "Seed k" -> fee 1000+k, reward 3000+2k
events = [au.task_created(tid, "Seed %d" % k, accounts[0], at=au.at_local(TZ, D2, 8)) for k, tid in enumerate(tasks)]
want = {}
for i, acc in enumerate(accounts):
    k = i % 10
    events.append(au.account_created(acc, "popug%d@popug.test" % i, "Popug %d" % i))
    for day in (D2, D1):
        events.append(au.task_assigned(tasks[k], acc, at=au.at_local(TZ, day, 9)))
        events.append(au.task_completed(tasks[k], acc, at=au.at_local(TZ, day, 10)))
    want[acc] = 2000 + k
phase("publish %d events" % len(events))
acks = au.publish(nc, events)
phase("published")
n_tasks = sum(1 for s, _, _ in acks if s == "ATES_TASKS")
wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", N + 1, timeout=60)
wait_consumed(nats.port, "ATES_TASKS", "accounting", n_tasks, timeout=60)
t.eq(au.db_rows(ates.data_dir, "SELECT count(*) FROM accounts WHERE balance_cents = 2 * (2000 + "
                "(CAST(substr(id, 25) AS INTEGER) % 10)) AND email IS NOT NULL")[0][0], N,
     "every seeded account has its positive balance and its email")
phase("consumed")
total = {D2: sum(want.values()), D1: sum(want.values())}


def close_in_thread(day, results):
    def run():
        try:
            results.append(au.close_day(ates, ADMIN, day))
        except Exception as e:  # the process died under the request
            results.append(e)
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def write_locked(data_dir, th, timeout=20.0):
    """Poll until a write transaction holds accounting.db (BEGIN IMMEDIATE
    fails at once): with nothing else writing, that is the close in the
    middle of its work. False if the close ended without being seen."""
    con = sqlite3.connect(os.path.join(data_dir, "accounting.db"), timeout=0, isolation_level=None)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and th.is_alive():
            try:
                con.execute("BEGIN IMMEDIATE")
                con.execute("ROLLBACK")
            except sqlite3.OperationalError as e:
                if "locked" in str(e) or "busy" in str(e):
                    return True
                raise
            time.sleep(0.001)
        return False
    finally:
        con.close()


def check_day(day, what):
    rows = au.db_rows(ates.data_dir, "SELECT account_id, count(*), sum(amount_cents) FROM ledger "
                      "WHERE kind = 'payout' AND day = ? GROUP BY account_id", (day,))
    t.eq(len(rows), N, "%s: every account got a payout on %s" % (what, day))
    t.eq([r for r in rows if r[1] != 1], [], "%s: no account got two payouts on %s" % (what, day))
    t.eq([r for r in rows if r[2] != want.get(r[0])], [], "%s: each payout is the day's balance" % what)
    wait_for(lambda: au.mails_settled(ates.data_dir), timeout=60, what="the payout mails written")
    files = au.spool(ates.data_dir)
    mine = sorted(n for n in files if n.startswith("payout-%s-" % day))
    t.eq(mine, sorted("payout-%s-%s.eml" % (day, a) for a in accounts), "%s: one mail per account for %s"
         % (what, day))
    # a kill -9 during a write may leave its temp file (".<id>.<tid>.tmp", never
    # taken for a mail); anything else in the spool must be a whole mail
    temps = [n for n in files if n.startswith(".") and n.endswith(".tmp")]
    t.eq(sorted(n for n in files if not n.endswith(".eml") and n not in temps), [],
         "%s: nothing but mails (and dot temp files) in the spool" % what)
    if temps:
        print("%s: %d temp file(s) left by the kill: %s" % (what, len(temps), temps))
    sample = accounts[:: N // 7]
    for a in sample:
        raw = files.get("payout-%s-%s.eml" % (day, a), b"")
        i = accounts.index(a)
        t.eq(au.mail_problems(raw, "popug%d@popug.test" % i,
                              "aTES: %s paid out for %s" % (au.money(want[a]), day), "payout-%s-%s" % (day, a)),
             [], "%s: the mail of account %d" % (what, i))
    t.eq(au.db_rows(ates.data_dir, "SELECT count(*) FROM mail_sent WHERE id LIKE ?", ("payout-%s-%%" % day,))[0][0],
         N, "%s: mail_sent holds each mail once" % what)
    st, js = au.close_day(ates, ADMIN, day)
    t.eq((st, js.get("changed"), js.get("paid_cents"), js.get("paid_accounts")), (200, False, total[day], N),
         "%s: closing %s once more changes nothing" % (what, day))


# --- round 1: killed right after the request went out -------------------------------------------
results = []
wait_for(lambda: au.db_rows(ates.data_dir, "SELECT count(*) FROM outbox")[0][0] == 0, timeout=60,
         what="the seed's events published (no other writer left)")
th = close_in_thread(D2, results)
locked = write_locked(ates.data_dir, th)
ates.kill9()
th.join(timeout=20)
state = au.db_rows(ates.data_dir, "SELECT count(*) FROM closed_days")[0][0]
print("round 1: %s; the kill came %s the commit (answer: %r)" % (
    "killed while the close held the write lock" if locked else "the write lock was never seen",
    "after" if state else "before", results[0] if results else None))
ates.start()
st, js = au.close_day(ates, ADMIN, D2)
t.eq(st, 200, "close %s after the restart: %r" % (D2, js))
t.eq({k: js.get(k) for k in ("day", "paid_cents", "paid_accounts", "negative_accounts")},
     {"day": D2, "paid_cents": total[D2], "paid_accounts": N, "negative_accounts": 0},
     "the close of %s after the restart reports the whole day" % D2)
t.eq(js.get("changed"), not state, "changed=true only when the killed close had not committed")
check_day(D2, "round 1")

phase("round 1 checked")
# --- round 2: killed once the first payout mail is on disk ---------------------------------------------
results = []
th = close_in_thread(D1, results)
wait_for(lambda: any(n.startswith("payout-%s-" % D1) for n in au.spool(ates.data_dir)), timeout=60, interval=0.005,
         what="the first mail of %s" % D1)
ates.kill9()
th.join(timeout=20)
n_files = sum(1 for n in au.spool(ates.data_dir) if n.startswith("payout-%s-" % D1))
print("round 2: %d of %d mails were on disk at the kill" % (n_files, N))
ates.start()
st, js = au.close_day(ates, ADMIN, D1)
t.eq((st, js.get("day"), js.get("changed"), js.get("paid_cents"), js.get("paid_accounts")),
     (200, D1, False, total[D1], N), "the close of %s had committed before its first mail" % D1)
check_day(D1, "round 2")

phase("round 2 checked")
# --- everything, once ------------------------------------------------------------------------------------
t.eq(au.db_rows(ates.data_dir, "SELECT count(*) FROM accounts WHERE balance_cents <> 0")[0][0], 0,
     "every balance is 0")
closed = au.wait_stream_count(nats.port, "ATES_ACCOUNTING", "ates.accounting.day_closed", 2)
t.eq(sorted((e["data"]["day"], e["data"]["paid_cents"], e["data"]["paid_accounts"]) for e in closed),
     [(D2, total[D2], N), (D1, total[D1], N)], "one DayClosed per day")
n_applied = 4 * N + 2 * N
applied = au.wait_stream_count(nats.port, "ATES_ACCOUNTING", "ates.accounting.transaction", n_applied, timeout=60)
payouts = [e["data"] for e in applied if e["data"]["kind"] == "payout"]
t.eq(len(applied), n_applied, "one TransactionApplied per entry, none twice")
t.eq(len({(p["account_id"], p["day"]) for p in payouts}), len(payouts), "one payout event per account and day")
for a in accounts[:: N // 5]:
    es, bal, _ = au.ledger(ates, ADMIN, a, D1)
    t.eq(([e["kind"] for e in es], bal), (["debit", "credit", "payout"], 0), "the ledger of %s on %s" % (a, D1))

nc.close()
t.eq(ates.stop(), 0, "clean stop")
t.done()
