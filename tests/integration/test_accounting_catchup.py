"""the daily close catches up missed days: business days close at
ATES_DAY_CLOSE=18:00 (an event at 19:30 belongs to the next day); events
three and two days old are booked on their days; with accounting down, its
scheduler's last run (sched_runs in DATA/accounting.db) is set back to
three days ago, so two closes were missed (and the day before them was
never closed): on start the scheduler closes all three days, oldest first,
each with its payouts, mails and DayClosed, and a second start closes
nothing. An event of a closed day is booked today with the note.
`ates close-day` closes today from the command line (payout mail written,
DayClosed published once ates runs again), a second time changes nothing,
a bad date is exit 2 and a day not begun is exit 1."""
import datetime
import json
import tempfile
import subprocess

import accounting_util as au
from harness import (ATES_BIN, Ates, Check, NatsServer, bearer, fast_nats, login, repo_rules, wait_consumed,
                     wait_for)

TZ = au.noon_tz()  # about 12:00 there: far from midnight and from the 18:00 close
t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,accounting", rules_dir=au.fixed_rules(repo_rules()),
            env={"ATES_ADMIN_PASSWORD": "catchup-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                 "ATES_TZ": TZ, "ATES_DAY_CLOSE": "18:00"}).start()
ADMIN = bearer(login(ates, "root@popug.test", "catchup-admin-pw")["access_token"])
TODAY = au.today(TZ)
D3, D2, D1 = (au.day_add(TODAY, -n) for n in (3, 2, 1))
JOB = "accounting-close-day"
nc = fast_nats(nats.port)
A, B, C = au.new_id(), au.new_id(), au.new_id()
T1, T2, T3, T4 = (au.new_id() for _ in range(4))


def at(day, hh, mm=0):
    return au.at_local(TZ, day, hh, mm)


def sched_last():
    return au.db_rows(ates.data_dir, "SELECT last_day FROM sched_runs WHERE job = ?", (JOB,))


t.eq(wait_for(sched_last, what="the scheduler's baseline"), [(D1,)],
     "a new install records yesterday as the scheduler's baseline and closes nothing")

# A: D3 -1001 (carried); D2 +3002 (completed at 19:30 on D3) -1003 (17:59 on D2) -> 998 paid on D2
# B: D2 -1002 +3004 -> 2002 paid on D2;  C: D3 -1004 +3008 (17:00) -> 2004 paid on D3
acks = au.publish(nc, [au.account_created(x, "%s@popug.test" % n, "Popug " + n.upper())
                       for x, n in ((A, "a"), (B, "b"), (C, "c"))] + [
    au.task_created(T1, "Job 1", A, at=at(D3, 9)),
    au.task_assigned(T1, A, at=at(D3, 9)),
    au.task_completed(T1, A, at=at(D3, 19, 30)),
    au.task_created(T2, "Job 2", B, at=at(D2, 10)),
    au.task_assigned(T2, B, at=at(D2, 10)),
    au.task_completed(T2, B, at=at(D2, 11)),
    au.task_created(T3, "Job 3", A, at=at(D2, 17, 59)),
    au.task_assigned(T3, A, at=at(D2, 17, 59)),
    au.task_created(T4, "Job 4", C, at=at(D3, 8)),
    au.task_assigned(T4, C, at=at(D3, 8)),
    au.task_completed(T4, C, at=at(D3, 17)),
])
n_tasks = sum(1 for s, _, _ in acks if s == "ATES_TASKS")
wait_consumed(nats.port, "ATES_TASKS", "accounting", n_tasks)
wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", 4)
es, _, _ = au.ledger(ates, ADMIN, A, D3)
t.eq([(e["kind"], e["amount_cents"]) for e in es], [("debit", 1001)], "A on D3: the 09:00 assignment only")
es, _, _ = au.ledger(ates, ADMIN, A, D2)
t.eq(sorted((e["kind"], e["amount_cents"]) for e in es), [("credit", 3002), ("debit", 1003)],
     "A on D2: the completion at 19:30 of D3 (after the 18:00 close) and the 17:59 assignment")
dy = au.days(ates, ADMIN, D3, TODAY)
t.eq([(d["day"], d["debits_cents"], d["credits_cents"], d["closed"]) for d in dy.values()],
     [(D3, 2005, 3008, False), (D2, 2005, 6006, False), (D1, 0, 0, False), (TODAY, 0, 0, False)],
     "the days before any close")

# --- accounting is down while two closes pass ----------------------------------------------------------
t.eq(ates.stop(), 0, "clean stop")
au.db_exec(ates.data_dir, "UPDATE sched_runs SET last_day = ? WHERE job = ?", (D3, JOB))
t.eq(sched_last(), [(D3,)], "the scheduler last ran for three days ago")
ates.start()
wait_for(lambda: au.days(ates, ADMIN, D1, D1)[D1]["closed"], timeout=30, what="the missed days closed on start")
wait_for(lambda: sched_last() == [(D1,)], what="the scheduler's last day moved on to yesterday")
dy = au.days(ates, ADMIN, D3, TODAY)
t.eq([(d["day"], d["payouts_cents"], d["closed"]) for d in dy.values()],
     [(D3, 2004, True), (D2, 998 + 2002, True), (D1, 0, True), (TODAY, 0, False)],
     "three days closed (the two missed ones and the one before them), today open")
closed = au.wait_stream_count(nats.port, "ATES_ACCOUNTING", "ates.accounting.day_closed", 3)
t.eq([e["data"] for e in closed],
     [{"day": D3, "management_earnings_cents": 2005 - 3008, "paid_cents": 2004, "paid_accounts": 1,
       "negative_accounts": 1},
      {"day": D2, "management_earnings_cents": 2005 - 6006, "paid_cents": 3000, "paid_accounts": 2,
       "negative_accounts": 0},
      {"day": D1, "management_earnings_cents": 0, "paid_cents": 0, "paid_accounts": 0, "negative_accounts": 0}],
     "one DayClosed per day, oldest first, each with its own numbers")
pays = sorted((x, e["day"], e["amount_cents"]) for x in (A, B, C) for e in
              [dict(p, day=d) for d in (D3, D2, D1) for p in au.ledger(ates, ADMIN, x, d)[0] if p["kind"] == "payout"])
t.eq(pays, sorted([(C, D3, 2004), (A, D2, 998), (B, D2, 2002)]), "the payouts, each on its day")
t.eq([au.ledger(ates, ADMIN, x)[1] for x in (A, B, C)], [0, 0, 0], "every balance is 0 now")
wait_for(lambda: au.mails_settled(ates.data_dir), what="mails written")
mails = au.spool(ates.data_dir)
t.eq(sorted(mails), sorted(["payout-%s-%s.eml" % (D3, C), "payout-%s-%s.eml" % (D2, A),
                            "payout-%s-%s.eml" % (D2, B)]), "one mail per payout")
t.eq(au.mail_problems(mails.get("payout-%s-%s.eml" % (D2, A), b""), "a@popug.test",
                      "aTES: $9.98 paid out for " + D2, "payout-%s-%s" % (D2, A)), [], "A's mail")

# --- a second start closes nothing more ----------------------------------------------------------------------
t.eq(ates.stop(), 0, "clean stop")
ates.start()
wait_for(lambda: ates.get("/ready")[0] == 200, what="ready")
t.eq(sched_last(), [(D1,)], "nothing more is due")
t.eq(au.db_rows(ates.data_dir, "SELECT day FROM closed_days ORDER BY day"), [(D3,), (D2,), (D1,)],
     "the same closed days")

# --- an event of a closed day: booked today, with the note ---------------------------------------------------
acks = au.publish(nc, [au.task_completed(T3, A, at=at(D2, 12))])
wait_consumed(nats.port, "ATES_TASKS", "accounting", n_tasks + 1)
es, bal, _ = au.ledger(ates, ADMIN, A, TODAY)
t.eq([(e["kind"], e["amount_cents"], e["description"]) for e in es],
     [("credit", 3006, "completed: Job 3 (late: %s was closed)" % D2)], "booked on today, the first open day")
t.eq(bal, 3006, "A's balance")
t.eq(au.days(ates, ADMIN, D2, D2)[D2]["credits_cents"], 6006, "the closed day keeps its totals")
t.eq(len(au.events_named(nats.port, "ATES_ACCOUNTING", "ates.accounting.day_closed")), 3, "still three DayClosed")
t.eq(ates.stop(), 0, "clean stop")

# --- ates close-day ----------------------------------------------------------------------------------------------


def cli(*args):
    p = subprocess.run([ATES_BIN, "close-day"] + list(args), env=ates.env(), cwd=ates.data_dir,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


rc, out, err = cli("--date", TODAY)
t.eq(rc, 0, "ates close-day --date today: exit 0 (%s)" % err.strip())
try:
    answer = json.loads(out)
except ValueError:
    answer = out
t.eq(answer, {"day": TODAY, "changed": True, "management_earnings_cents": -3006, "paid_cents": 3006,
              "paid_accounts": 1, "negative_accounts": 0}, "it prints the close-day answer")
name = "payout-%s-%s.eml" % (TODAY, A)
t(name in au.spool(ates.data_dir), "the command wrote A's payout mail")
t.eq(au.mail_problems(au.spool(ates.data_dir).get(name, b""), "a@popug.test",
                      "aTES: $30.06 paid out for " + TODAY, name[:-4]), [], "the mail of the command's close")
rc, out, err = cli("--date", TODAY)
t.eq((rc, json.loads(out).get("changed") if rc == 0 else out), (0, False), "again: changed=false")
rc, out, err = cli("--date", "2026-02-30")
t.eq(rc, 2, "a date that does not exist: exit 2 (%s)" % err.strip())
rc, out, err = cli("--date", au.day_add(TODAY, 1))
t.eq(rc, 1, "a day that has not begun: exit 1 (%s)" % err.strip())
rc, out, err = cli("--help")
t(rc == 0 and "close-day" in out + err, "--help: %d %r" % (rc, out + err))
t.eq(len(au.spool(ates.data_dir)), 4, "four mails in all")

# The command's business day is ATES_TZ's, as the server's: in a zone whose date is not UTC's now
# (UTC+14 from 10:00 UTC, else UTC-12), its today closes and its tomorrow has not begun.
FAR = "Etc/GMT-14" if datetime.datetime.now(datetime.timezone.utc).hour >= 10 else "Etc/GMT+12"
FAR_TODAY = au.today(FAR)
with tempfile.TemporaryDirectory() as far_dir:
    def far_cli(*args, tz=FAR):
        env = dict(ates.env(), ATES_DATA_DIR=far_dir, ATES_TZ=tz, ATES_DAY_CLOSE="00:00")
        p = subprocess.run([ATES_BIN, "close-day"] + list(args), env=env, cwd=far_dir, capture_output=True,
                           text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr
    rc, out, err = far_cli("--date", FAR_TODAY)
    t.eq((rc, json.loads(out).get("day") if rc == 0 else err.strip()), (0, FAR_TODAY),
         "ATES_TZ=%s: its today (%s) closes" % (FAR, FAR_TODAY))
    rc, out, err = far_cli("--date", au.day_add(FAR_TODAY, 1))
    t.eq(rc, 1, "ATES_TZ=%s: its tomorrow has not begun (%s)" % (FAR, (out + err).strip()[-200:]))
    rc, out, err = far_cli(tz="Nowhere/Atlantis")
    t(rc == 2 and "Nowhere/Atlantis" in err, "an unknown zone: exit 2 naming it (%d %r)" % (rc, err[-300:]))

ates.start()
ADMIN = bearer(login(ates, "root@popug.test", "catchup-admin-pw")["access_token"])
t.eq(au.days(ates, ADMIN, TODAY, TODAY)[TODAY]["closed"], True, "the server sees today closed")
closed = au.wait_stream_count(nats.port, "ATES_ACCOUNTING", "ates.accounting.day_closed", 4)
t.eq([e["data"]["day"] for e in closed], [D3, D2, D1, TODAY], "the command's DayClosed is published by the server")
t.eq(au.ledger(ates, ADMIN, A)[1], 0, "A was paid")
# today is closed: what happens now is booked on tomorrow, and a log without a day shows that day
st, js = ates.get("/api/accounting/accounts/" + A, headers=ADMIN)
t.eq((st, js.get("day")), (200, au.day_add(TODAY, 1)), "the default day is the one entries are booked on now")
nc.close()
t.eq(ates.stop(), 0, "clean stop")
t.done()
