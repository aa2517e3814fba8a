"""accounting with events published by hand, out of order and again:
a TaskCompleted before its TaskAssigned before its TaskCreated (the task is
priced at first sight, from what is known then, and never re-priced when
the title arrives); a TaskCreated v1 whose "[JIRA] title" is split; a task
never created at all; accounts known only through task events (their
AccountCreated arriving last, or never). Redelivery: the same event id
published twice (the stream drops the copy), stored twice under another
Nats-Msg-Id (booked once), a distinct event for the same assignment
(booked again), and a full redelivery of both streams after the durable
consumers are deleted: nothing is booked twice, nothing is dropped, each
balance is the sum of its ledger. A malformed event is dead-lettered
without blocking the ones after it."""
import accounting_util as au
from harness import (ATES_BIN, Ates, Check, NatsServer, bearer, fast_nats, is_error, login, repo_rules,
                     wait_consumed, wait_for)

TZ = au.noon_tz()
t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,accounting", rules_dir=au.fixed_rules(repo_rules()),
            env={"ATES_ADMIN_PASSWORD": "order-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                 "ATES_TZ": TZ}).start()
ADMIN = bearer(login(ates, "root@popug.test", "order-admin-pw")["access_token"])
VERSION = au.rules_version(ates, ADMIN, "pricing.lua")
DAY = au.today(TZ)
nc = fast_nats(nats.port)
X, Y, Z = au.new_id(), au.new_id(), au.new_id()
T1, T2, T3 = au.new_id(), au.new_id(), au.new_id()
n_tasks = 0  # messages published to ATES_TASKS so far


def pub(*events, msg_ids=None):
    global n_tasks
    acks = au.publish(nc, list(events), msg_ids=msg_ids)
    n_tasks += sum(1 for s, _, dup in acks if s == "ATES_TASKS" and not dup)
    wait_consumed(nats.port, "ATES_TASKS", "accounting", n_tasks)
    return acks


def view(acc):
    st, js = ates.get("/api/accounting/accounts/%s?day=%s" % (acc, DAY), headers=ADMIN)
    return st, js


def rows(acc):
    st, js = view(acc)
    return [(e["kind"], e["amount_cents"], e["task_id"], e["description"], e["balance_cents"])
            for e in (js or {}).get("entries", [])]


def price(task):
    return ates.get("/api/accounting/tasks/" + task, headers=ADMIN)


# --- T1: completed, then assigned, then created --------------------------------------------
st, js = view(X)
t(st == 404 and is_error(js, "not_found"), "an account nobody has spoken of is 404: %d %r" % (st, js))
st, js = price(T1)
t(st == 404 and is_error(js, "not_found"), "a task never seen has no price: %d %r" % (st, js))

pub(au.task_completed(T1, X))
st, p = price(T1)
t.eq((st, p), (200, {"task_id": T1, "assign_fee_cents": 1000, "reward_cents": 3000, "rules_version": VERSION}),
     "priced at the first event (a TaskCompleted, no title yet)")
t.eq(rows(X), [("credit", 3000, T1, "completed: task " + T1, 3000)],
     "the credit is booked at once, on an account known only through the task event")
pub(au.task_assigned(T1, X))
t.eq(rows(X), [("credit", 3000, T1, "completed: task " + T1, 3000),
               ("debit", 1000, T1, "assigned: task " + T1, 2000)], "then the debit")
pub(au.task_created(T1, "Late 5", X))
st, p = price(T1)
t.eq(p, {"task_id": T1, "assign_fee_cents": 1000, "reward_cents": 3000, "rules_version": VERSION},
     "the title arriving later does not re-price the task (not 1005/3010)")
t.eq(rows(X), [("credit", 3000, T1, "completed: Late 5", 3000), ("debit", 1000, T1, "assigned: Late 5", 2000)],
     "descriptions name the title once it is known")

# --- T2 (v1 title), T3 (never created), scrambled; then the accounts -------------------------
pub(au.task_assigned(T3, Z),
    au.task_created(T2, "[POP-9] Title 9", Y, version=1),
    au.task_completed(T2, Y),
    au.task_assigned(T2, Y))
st, p = price(T2)
t.eq(p, {"task_id": T2, "assign_fee_cents": 1009, "reward_cents": 3018, "rules_version": VERSION},
     "a TaskCreated first: priced from its title")
t.eq(rows(Y), [("credit", 3018, T2, "completed: Title 9", 3018), ("debit", 1009, T2, "assigned: Title 9", 2009)],
     "a v1 '[POP-9] Title 9' is shown as 'Title 9'")
t.eq(rows(Z), [("debit", 1000, T3, "assigned: task " + T3, -1000)],
     "a task never created: priced without a title, the debit named after its id")
st, js = view(Z)
t.eq(js.get("balance_cents"), -1000, "a negative balance")

acks = au.publish(nc, [au.account_created(X, "x@popug.test", "Popug X"),
                       au.account_created(Y, "y@popug.test", "Popug Y")])
wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", 1 + 2)
t.eq(rows(X), [("credit", 3000, T1, "completed: Late 5", 3000), ("debit", 1000, T1, "assigned: Late 5", 2000)],
     "an AccountCreated arriving after the money changes nothing")
t.eq(au.db_rows(ates.data_dir, "SELECT email, name, balance_cents FROM accounts WHERE id = ?", (X,)),
     [("x@popug.test", "Popug X", 2000)], "the account learned its profile and kept its balance")

# --- redelivery ---------------------------------------------------------------------------------
r1 = au.task_assigned(T2, Y, previous=Y)
acks = pub(r1, r1)
t.eq([d for _, _, d in acks], [False, True], "the same Nats-Msg-Id twice: the stream keeps one")
acks = pub(r1, msg_ids=["again-" + r1["event_id"]])
t.eq([d for _, _, d in acks], [False], "another Nats-Msg-Id: the stream stores the event a second time")
copies = [ev for _, ev in au.stream_events(nats.port, "ATES_TASKS") if ev["event_id"] == r1["event_id"]]
t.eq(len(copies), 2, "the stream holds two copies of the event")
r2 = au.task_assigned(T2, Y, previous=Y)  # a distinct event for the same assignment
pub(r2)
got = rows(Y)
t.eq([r[:3] for r in got if r[0] == "debit"], [("debit", 1009, T2)] * 3,
     "one debit per distinct TaskAssigned: the first, r1 once (stored twice), r2")
t.eq(got[-1][4], 3018 - 3 * 1009, "the balance after them")

# --- a malformed event is dead-lettered, books nothing, and blocks nothing ----------------------------------
W = au.new_id()
bad = au.task_assigned(T2, W)
bad["data"]["assigned_at"] = "yesterday at noon"
pub(bad, au.task_assigned(T2, W, previous=Y))
t.eq(rows(W), [("debit", 1009, T2, "assigned: Title 9", -1009)], "only the good event after it is booked")
dlq = au.wait_stream_count(nats.port, "ATES_DLQ", "ates.dlq.accounting", 1)
t.eq([(d["event_name"], d["data"]["subject"]) for d in dlq], [("DeadLetter", "ates.tasks.assigned")],
     "the malformed one is in ates.dlq.accounting")

# --- every account: balance = sum of the ledger; one TransactionApplied per entry --------------------
ACCOUNTS = [X, Y, Z, W]
n_entries = 2 + 4 + 1 + 1
applied = au.wait_stream_count(nats.port, "ATES_ACCOUNTING", "ates.accounting.transaction", n_entries)
t.eq(len(applied), n_entries, "one TransactionApplied per entry, no more")
before = {}
for acc in ACCOUNTS:
    entries, balance, _ = au.ledger(ates, ADMIN, acc, DAY)
    before[acc] = (entries, balance)
    t.eq(balance, sum(au.signed(e) for e in entries), "%s: balance == sum of the ledger" % acc)
    t(au.chain_ok(entries, 0), "%s: the balance chain" % acc)
    t.eq(sorted(a["data"]["transaction_id"] for a in applied if a["data"]["account_id"] == acc),
         sorted(e["id"] for e in entries), "%s: a TransactionApplied per entry" % acc)
priced = au.events_named(nats.port, "ATES_ACCOUNTING", "ates.accounting.task_priced")
t.eq(sorted(e["data"]["task_id"] for e in priced), sorted([T1, T2, T3]), "TaskPriced once per task")
d = au.days(ates, ADMIN, DAY, DAY)[DAY]
t.eq((d["debits_cents"], d["credits_cents"], d["management_earnings_cents"], d["payouts_cents"], d["closed"]),
     (1000 + 4 * 1009 + 1000, 3000 + 3018, 1000 + 4 * 1009 + 1000 - 3000 - 3018, 0, False), "the day's totals")

# --- a full redelivery: the durable consumers deleted while accounting is down ----------------------
t.eq(ates.stop(), 0, "clean stop")
for stream in ("ATES_TASKS", "ATES_ACCOUNTS"):
    r = nc.js("CONSUMER.DELETE.%s.accounting" % stream)
    t(r.get("success") is True, "delete accounting's consumer of %s: %r" % (stream, r))
ates.start()
wait_consumed(nats.port, "ATES_TASKS", "accounting", n_tasks, timeout=40)
wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", 3)
wait_for(lambda: au.db_rows(ates.data_dir, "SELECT count(*) FROM outbox")[0][0] == 0, what="outbox drained")
for acc in ACCOUNTS:
    t.eq(au.ledger(ates, ADMIN, acc, DAY)[:2], before[acc], "%s: the same ledger after everything came again" % acc)
t.eq(len(au.events_named(nats.port, "ATES_ACCOUNTING", "ates.accounting.transaction")), n_entries,
     "no TransactionApplied twice")
t.eq(len(au.events_named(nats.port, "ATES_ACCOUNTING", "ates.accounting.task_priced")), 3, "no TaskPriced twice")
t.eq(au.db_rows(ates.data_dir, "SELECT count(*) FROM ledger")[0][0], n_entries, "the ledger table holds no more")
t.eq(len(au.events_named(nats.port, "ATES_DLQ", "ates.dlq.accounting")), 1, "no second dead letter")
t.eq(au.db_rows(ates.data_dir, "SELECT count(*) FROM ledger GROUP BY account_id HAVING "
                "sum(CASE kind WHEN 'credit' THEN amount_cents ELSE -amount_cents END) <> "
                "(SELECT balance_cents FROM accounts a WHERE a.id = account_id)"), [],
     "accounts.balance_cents == the sum of each account's ledger")

nc.close()
t.eq(ates.stop(), 0, "clean stop")
t.done()
