"""accounting against the tracker's truth, all services in one process:
tasks created, shuffled several times and partly completed through the
tracker give each account exactly one debit (the task's assign fee) per
TaskAssigned and one credit (its reward) per TaskCompleted that the tracker
put into ATES_TASKS; prices are in the default ranges, recorded with
pricing.lua's version, announced once per task (TaskPriced) and never
re-priced, not even after pricing.lua changes; balances equal the sum of
the ledger; every entry has its TransactionApplied; the day's management
earnings are its debits minus its credits; everything survives a restart."""
import accounting_util as au
from harness import (ATES_BIN, Ates, Check, NatsServer, add_account, bearer, login, repo_rules, wait_consumed,
                     wait_for, write_file)

TZ = au.noon_tz()
t = Check()
nats = NatsServer().start()
rules = repo_rules()  # the default pricing.lua first
ates = Ates(nats.url, binary=ATES_BIN, rules_dir=rules,
            env={"ATES_ADMIN_PASSWORD": "ledger-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                 "ATES_TZ": TZ}).start()
ADMIN = bearer(login(ates, "root@popug.test", "ledger-admin-pw")["access_token"])
H, ids = {}, {}
for name, role in (("p1", "popug"), ("p2", "popug"), ("p3", "popug"), ("boss", "manager"),
                   ("acc", "accountant")):
    a, H[name] = add_account(ates, ADMIN, "%s@popug.test" % name, role, name + "-password")
    ids[name] = a["id"]
NAME = {v: k for k, v in ids.items()}
# eligible for tasks: every active account but admins and managers (the accountant too)
POPUGS = [ids["p1"], ids["p2"], ids["p3"], ids["acc"]]
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 6)
wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", 6)
DAY = au.today(TZ)
ACC = H["acc"]

# --- the tracker's work ----------------------------------------------------------------
tasks = []
for i in range(1, 11):
    st, js = ates.post("/api/tasks", {"title": "Task %d" % i}, headers=H["boss"])
    t.eq(st, 201, "create Task %d" % i)
    tasks.append(js)
n_assigned = len(tasks)
for _ in range(3):
    st, js = ates.post("/api/tasks/shuffle", headers=H["boss"])
    t.eq((st, js), (200, {"reassigned": 10}), "shuffle every open task")
    n_assigned += js["reassigned"]
done = []
for x in tasks[:4]:
    st, cur = ates.get("/api/tasks/" + x["id"], headers=ADMIN)
    st, js = ates.post("/api/tasks/%s/complete" % x["id"], headers=H[NAME[cur["assignee_id"]]])
    t.eq(st, 200, "the assignee completes %s" % x["title"])
    done.append(x["id"])
st, js = ates.post("/api/tasks/shuffle", headers=ADMIN)
t.eq((st, js), (200, {"reassigned": 6}), "a shuffle moves only the open tasks")
n_assigned += 6
n_task_events = len(tasks) + n_assigned + len(done)

au.wait_stream_count(nats.port, "ATES_TASKS", "ates.tasks.>", n_task_events)
wait_consumed(nats.port, "ATES_TASKS", "accounting", n_task_events, timeout=40)
applied = au.wait_stream_count(nats.port, "ATES_ACCOUNTING", "ates.accounting.transaction",
                               n_assigned + len(done))
t.eq(len(applied), n_assigned + len(done), "one TransactionApplied per TaskAssigned and TaskCompleted")

# --- prices: in range, with the rule's version, once per task --------------------------
v_default = au.rules_version(ates, ADMIN, "pricing.lua")
prices = au.task_prices(ates, ACC, [x["id"] for x in tasks])
for x in tasks:
    p = prices[x["id"]]
    t.eq(set(p), {"task_id", "assign_fee_cents", "reward_cents", "rules_version"}, "price fields")
    t(1000 <= p["assign_fee_cents"] <= 2000 and p["assign_fee_cents"] % 100 == 0,
      "assign fee in $10..$20, whole dollars: %r" % p)
    t(2000 <= p["reward_cents"] <= 4000 and p["reward_cents"] % 100 == 0,
      "reward in $20..$40, whole dollars: %r" % p)
    t.eq(p["rules_version"], v_default, "the price records pricing.lua's version")
priced = au.events_named(nats.port, "ATES_ACCOUNTING", "ates.accounting.task_priced")
t.eq(sorted(e["data"]["task_id"] for e in priced), sorted(x["id"] for x in tasks), "TaskPriced once per task")
t.eq(sorted((e["data"]["task_id"], e["data"]["assign_fee_cents"], e["data"]["reward_cents"],
             e["data"]["rules_version"]) for e in priced),
     sorted((p["task_id"], p["assign_fee_cents"], p["reward_cents"], p["rules_version"]) for p in prices.values()),
     "TaskPriced carries the stored price")
t(all(e["producer"] == "accounting" for e in priced), "TaskPriced's producer is accounting")
# not all the same price (the default rule is random): 10 tasks, 11 possible fees
t(len({p["assign_fee_cents"] for p in prices.values()}) > 1, "prices vary: %r" % prices)

# --- the ledger ---------------------------------------------------------------------------
books = au.check_books(t, ates, ACC, nats.port, POPUGS + [ids["boss"]], DAY, "first: ")
t.eq(sum(len(v) for v in books.values()), n_assigned + len(done), "entries in all")
t.eq(books[ids["boss"]], [], "the manager (not eligible) has no entries")
for name in ("p1", "p2", "p3", "acc"):
    st, me = ates.get("/api/accounting/me", headers=H[name])
    st2, view = ates.get("/api/accounting/accounts/" + ids[name], headers=ACC)
    t.eq((st, me), (st2, view), "%s: /me is the same as /accounts/{own id}" % name)
    t.eq((me["account_id"], me["day"]), (ids[name], DAY), "%s: /me names the account and today" % name)
    t(all(e["rules_version"] == v_default for e in me["entries"]), "%s: entries record the price's version" % name)
t(any(e["kind"] == "credit" for v in books.values() for e in v), "some credits")

# --- pricing.lua changes: new tasks get the new rule, old ones keep their price -------------
write_file(rules + "/pricing.lua", au.PRICING_LUA)
v_fixed = wait_for(lambda: (lambda v: v if v != v_default else None)(au.rules_version(ates, ADMIN, "pricing.lua")),
                   what="pricing.lua reloaded")
st, rl = ates.get("/api/rules", headers=ADMIN)
t.eq([i["error"] for i in rl["items"] if i["file"] == "pricing.lua"], [None], "the new pricing.lua loaded")
st, new = ates.post("/api/tasks", {"title": "Task 77"}, headers=H["boss"])
t.eq(st, 201, "create Task 77")
st, js = ates.post("/api/tasks/shuffle", headers=H["boss"])
t.eq((st, js), (200, {"reassigned": 7}), "shuffle after the change")
n_assigned += 1 + 7
n_task_events += 2 + 7
au.wait_stream_count(nats.port, "ATES_TASKS", "ates.tasks.>", n_task_events)
wait_consumed(nats.port, "ATES_TASKS", "accounting", n_task_events, timeout=40)
au.wait_stream_count(nats.port, "ATES_ACCOUNTING", "ates.accounting.transaction", n_assigned + len(done))
after = au.task_prices(ates, ACC, [x["id"] for x in tasks])
t.eq(after, prices, "old tasks are never re-priced")
st, p77 = ates.get("/api/accounting/tasks/" + new["id"], headers=ACC)
t.eq(p77, {"task_id": new["id"], "assign_fee_cents": 1077, "reward_cents": 3154, "rules_version": v_fixed},
     "a new task is priced by the new pricing.lua")
priced = au.events_named(nats.port, "ATES_ACCOUNTING", "ates.accounting.task_priced")
t.eq(sorted(e["data"]["task_id"] for e in priced), sorted([x["id"] for x in tasks] + [new["id"]]),
     "still one TaskPriced per task")
books = au.check_books(t, ates, ACC, nats.port, POPUGS, DAY, "after the rule change: ")
late_debits = [e for v in books.values() for e in v if e["kind"] == "debit" and e["task_id"] != new["id"]]
t.eq({e["rules_version"] for e in late_debits}, {v_default},
     "debits of old tasks keep the version of their price, also after the change")

# --- a restart changes nothing ----------------------------------------------------------------
before = {a: au.ledger(ates, ACC, a, DAY)[:2] for a in POPUGS}
t.eq(ates.stop(), 0, "clean stop")
ates.start()
t.eq({a: au.ledger(ates, ACC, a, DAY)[:2] for a in POPUGS}, before, "the same ledgers and balances after a restart")
t.eq(au.task_prices(ates, ACC, [x["id"] for x in tasks]), prices, "the same prices after a restart")
t.eq(len(au.events_named(nats.port, "ATES_ACCOUNTING", "ates.accounting.transaction")), n_assigned + len(done),
     "no TransactionApplied twice after a restart")
t.eq(ates.stop(), 0, "clean stop")
t.done()
