"""auth, tracker and accounting each in its own `ates serve --services X`
process (same NATS, separate data dirs): accounting trusts auth's tokens
through ATES_JWKS_URL and refuses a foreign key's; it learns accounts only
from auth's events and money only from the tracker's, also those emitted
while it was down; its books match the tracker's truth (a debit per
TaskAssigned, a credit per TaskCompleted in ATES_TASKS, balance = sum of
the ledger, earnings = debits - credits), and its close pays each positive
balance with a mail to the address auth announced."""
import os
import subprocess

import accounting_util as au
from harness import (ATES_BIN, TOOLS, Ates, Check, NatsServer, add_account, bearer, list_pages, login, tmpdir,
                     wait_consumed, wait_for)

TZ = au.noon_tz()
t = Check()
nats = NatsServer().start()
ENV = {"ATES_TZ": TZ}
auth = Ates(nats.url, binary=ATES_BIN, services="auth",
            env=dict(ENV, ATES_ADMIN_PASSWORD="split-admin-pw", ATES_ADMIN_EMAIL="root@popug.test")).start()
JWKS = {"ATES_JWKS_URL": "http://127.0.0.1:%d/api/auth/jwks" % auth.port}
tracker = Ates(nats.url, binary=ATES_BIN, services="tracker", env=dict(ENV, **JWKS)).start()
acct = Ates(nats.url, binary=ATES_BIN, services="accounting", env=dict(ENV, **JWKS)).start()
t(len({auth.data_dir, tracker.data_dir, acct.data_dir}) == 3, "three data dirs")

root = login(auth, "root@popug.test", "split-admin-pw")
ADMIN = bearer(root["access_token"])
H, ids = {}, {}
for name, role in (("p1", "popug"), ("p2", "popug"), ("boss", "manager"), ("acc", "accountant")):
    a, H[name] = add_account(auth, ADMIN, "%s@popug.test" % name, role, name + "-password")
    ids[name] = a["id"]
NAME = {v: k for k, v in ids.items()}
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 5)
wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", 5)
DAY = au.today(TZ)

# --- each process serves its own routes; accounting trusts auth's keys only --------------------------
st, _ = acct.post("/api/auth/login", {"email": "root@popug.test", "password": "split-admin-pw"})
t(st in (404, 405), "the accounting process does not serve auth routes: %d" % st)
st, _ = acct.post("/api/tasks", {"title": "wrong door"}, headers=H["boss"])
t(st in (404, 405), "the accounting process does not serve tracker routes: %d" % st)
for other in (auth, tracker):
    st, _ = other.get("/api/accounting/me", headers=H["p1"])
    t(st in (404, 405), "a %s process does not serve accounting routes: %d" % (other.services, st))
st, js = acct.get("/api/accounting/me", headers=H["p1"])
t.eq((st, js.get("account_id")), (200, ids["p1"]), "accounting accepts auth's token")
forged = subprocess.run([TOOLS + "/tool_jwt", "sign", tmpdir("otherkeys"), ids["p1"], "admin", "1700000000",
                         "4102444800"], capture_output=True, text=True).stdout.strip()
st, _ = acct.get("/api/accounting/today", headers=bearer(forged))
t.eq(st, 401, "a token signed by a foreign key is refused by accounting")
st, _ = acct.get("/api/accounting/today", headers=H["p1"])
t.eq(st, 403, "a popug may not read /today at accounting")

# --- the tracker's work ------------------------------------------------------------------------------------
n_assigned = n_done = n_created = 0


def create(i):
    global n_assigned, n_created
    st, js = tracker.post("/api/tasks", {"title": "Split %d" % i}, headers=H["boss"])
    t.eq(st, 201, "create Split %d" % i)
    n_created += 1
    n_assigned += 1
    return js


def shuffle():
    global n_assigned
    st, js = tracker.post("/api/tasks/shuffle", headers=H["boss"])
    t.eq(st, 200, "shuffle: %r" % js)
    n_assigned += js["reassigned"]


def complete(task_id):
    global n_done
    st, cur = tracker.get("/api/tasks/" + task_id, headers=ADMIN)
    st, js = tracker.post("/api/tasks/%s/complete" % task_id, headers=H[NAME[cur["assignee_id"]]])
    t.eq(st, 200, "the assignee completes %s" % cur["title"])
    n_done += 1


tasks = [create(i) for i in range(1, 9)]
shuffle()
shuffle()
for x in tasks[:3]:
    complete(x["id"])

# --- accounting down: tracker and auth go on --------------------------------------------------------------
t.eq(acct.stop(), 0, "clean stop of accounting")
a3, H["p3"] = add_account(auth, ADMIN, "p3@popug.test", "popug", "p3-password")
ids["p3"] = a3["id"]
NAME[a3["id"]] = "p3"
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 6)
shuffle()
tasks += [create(9), create(10)]
complete(tasks[3]["id"])
complete(tasks[-1]["id"])
# p4 joins after the shuffles and completes the first two tasks it gets: its
# balance is positive (rewards 20..40 $ against fees 10..20 $), so the close
# below has someone to pay
a4, H["p4"] = add_account(auth, ADMIN, "p4@popug.test", "popug", "p4-password")
ids["p4"] = a4["id"]
NAME[a4["id"]] = "p4"
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 7)
mine = 0
for i in range(11, 111):
    x = create(i)
    tasks.append(x)
    if x["assignee_id"] == ids["p4"]:
        complete(x["id"])
        mine += 1
        if mine == 2:
            break
t.eq(mine, 2, "p4 got and completed two tasks")
acct.start()
n_events = n_created + n_assigned + n_done
au.wait_stream_count(nats.port, "ATES_TASKS", "ates.tasks.>", n_events)
wait_consumed(nats.port, "ATES_TASKS", "accounting", n_events, timeout=40)
wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", 7)
au.wait_stream_count(nats.port, "ATES_ACCOUNTING", "ates.accounting.transaction", n_assigned + n_done)
ACC = H["acc"]

# --- the books against the tracker's truth ------------------------------------------------------------------
truth = {x["id"]: x for x in list_pages(tracker, ADMIN, "assignee=all")[0]}
t.eq(len(truth), n_created, "the tracker holds every task created")
t.eq(sum(1 for x in truth.values() if x["status"] == "done"), n_done, "and %d done" % n_done)
eligible = [ids[n] for n in ("p1", "p2", "p3", "p4", "acc")]
books = au.check_books(t, acct, ACC, nats.port, eligible + [ids["boss"]], DAY, "split: ")
t.eq(sum(len(v) for v in books.values()), n_assigned + n_done, "one entry per TaskAssigned and TaskCompleted")
prices = au.task_prices(acct, ACC, sorted(truth))
t(all(1000 <= p["assign_fee_cents"] <= 2000 and 2000 <= p["reward_cents"] <= 4000 for p in prices.values()),
  "prices in range")
t.eq(len(au.events_named(nats.port, "ATES_ACCOUNTING", "ates.accounting.task_priced")), n_created,
     "TaskPriced once per task")
st, js = acct.get("/api/accounting/me", headers=H["p3"])
t.eq((st, js.get("account_id")), (200, ids["p3"]), "p3, created while accounting was down, reads its ledger")

# --- close today at accounting: payouts and mails to the addresses auth announced ----------------------------
bal = {a: au.ledger(acct, ACC, a, DAY)[1] for a in books}
pos = {a: b for a, b in bal.items() if b > 0}
t(ids["p4"] in pos, "p4's balance is positive: %r" % {NAME[a]: b for a, b in bal.items()})
debits = sum(e["amount_cents"] for v in books.values() for e in v if e["kind"] == "debit")
credits = sum(e["amount_cents"] for v in books.values() for e in v if e["kind"] == "credit")
st, js = au.close_day(acct, ADMIN, DAY)
t.eq((st, js), (200, {"day": DAY, "changed": True, "management_earnings_cents": debits - credits,
                      "paid_cents": sum(pos.values()), "paid_accounts": len(pos),
                      "negative_accounts": sum(1 for b in bal.values() if b < 0)}), "close today")
wait_for(lambda: au.mails_settled(acct.data_dir), what="mails written")
mails = au.spool(acct.data_dir)
t.eq(sorted(mails), sorted("payout-%s-%s.eml" % (DAY, a) for a in pos), "one mail per positive balance")
for a, cents in pos.items():
    t.eq(au.mail_problems(mails.get("payout-%s-%s.eml" % (DAY, a), b""), "%s@popug.test" % NAME[a],
                          "aTES: %s paid out for %s" % (au.money(cents), DAY), "payout-%s-%s" % (DAY, a)), [],
         "%s's mail" % NAME[a])
t.eq({a: au.ledger(acct, ACC, a, DAY)[1] for a in books}, {a: min(b, 0) for a, b in bal.items()},
     "positive balances paid, negative ones carried")
t(not os.path.exists(os.path.join(tracker.data_dir, "accounting.db")) and
  not os.path.exists(os.path.join(auth.data_dir, "accounting.db")), "only accounting's dir holds accounting.db")

t.eq(acct.stop(), 0, "clean stop (accounting)")
t.eq(tracker.stop(), 0, "clean stop (tracker)")
t.eq(auth.stop(), 0, "clean stop (auth)")
t.done()
