"""tracker shuffle and eligibility: assignees are always eligible (never an
admin, a manager or a deactivated account); 20 shuffles of 30 open tasks
spread them over the popugs; done tasks never move; the old assignee of a
moved task can no longer complete it. An edited pick(): the one it names
(the last candidate too) gets the tasks; one naming no candidate makes
shuffle and create fail (503) without changing anything."""
import os

from harness import (ATES_BIN, Ates, Check, NatsServer, add_account, bearer, is_error, list_pages, login,
                     use_rule_file, wait_consumed)

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,tracker",
            env={"ATES_ADMIN_PASSWORD": "shuffle-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test"}).start()
root = login(ates, "root@popug.test", "shuffle-admin-pw")
ADMIN = bearer(root["access_token"])
H, ids, role = {}, {}, {}
for name, r in (("p1", "popug"), ("p2", "popug"), ("p3", "popug"), ("p4", "popug"),
                ("acct", "accountant"), ("boss", "manager"), ("boss2", "manager"), ("admin2", "admin")):
    acc, H[name] = add_account(ates, ADMIN, "%s@popug.test" % name, r, name + "-password")
    ids[name], role[name] = acc["id"], r
ids["root"], role["root"], H["root"] = root["account"]["id"], "admin", ADMIN
NAME = {v: k for k, v in ids.items()}
POPUGS = ["p1", "p2", "p3", "p4"]
eligible = {ids[n] for n in ("p1", "p2", "p3", "p4", "acct")}
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 1 + 8)  # account events so far


def snapshot():
    items, statuses, _ = list_pages(ates, ADMIN, "assignee=all", 500)
    t(all(s == 200 for s in statuses), "list all: %r" % statuses)
    return {x["id"]: x for x in items}


def all_eligible(tasks, label):
    bad = [(x["title"], NAME.get(x["assignee_id"], x["assignee_id"])) for x in tasks.values()
           if x["status"] == "open" and x["assignee_id"] not in eligible]
    t(not bad, "%s: every open task has an eligible assignee; not: %r" % (label, bad[:5]))


creators = ["root", "boss", "p1", "acct", "admin2"]
for i in range(35):
    st, js = ates.post("/api/tasks", {"title": "Shuffle me %d" % i}, headers=H[creators[i % len(creators)]])
    t.eq(st, 201, "create %d" % i)
tasks = snapshot()
t.eq(len(tasks), 35, "35 tasks")
all_eligible(tasks, "after creation")

# Complete 5 of them by their assignees; they must never move again.
done = {}
for x in list(tasks.values())[:5]:
    st, js = ates.post("/api/tasks/%s/complete" % x["id"], headers=H[NAME[x["assignee_id"]]])
    t.eq(st, 200, "complete %s" % x["title"])
    if st == 200:
        done[x["id"]] = js
open_ids = [i for i in tasks if i not in done]
t.eq(len(open_ids), 30, "30 open tasks")

holders_seen = {n: 0 for n in POPUGS}
moved = 0
prev = snapshot()
for k in range(20):
    presser = ("boss", "root", "boss2", "admin2")[k % 4]
    st, js = ates.post("/api/tasks/shuffle", headers=H[presser])
    t.eq((st, js), (200, {"reassigned": 30}), "shuffle %d by %s reassigns the 30 open tasks" % (k, presser))
    now = snapshot()
    all_eligible(now, "after shuffle %d" % k)
    for i, x in done.items():
        t.eq(now.get(i), x, "shuffle %d: done task %s unchanged (assignee, status, completed_at)" % (k, x["title"]))
    t.eq(sorted(i for i, x in now.items() if x["status"] == "open"), sorted(open_ids),
         "shuffle %d: the open set is unchanged" % k)
    t(all(now[i]["title"] == prev[i]["title"] and now[i]["created_at"] == prev[i]["created_at"] for i in now),
      "shuffle %d: only assignees change" % k)
    moved += sum(1 for i in open_ids if now[i]["assignee_id"] != prev[i]["assignee_id"])
    prev = now
hold = {n: sum(1 for i in open_ids if prev[i]["assignee_id"] == ids[n]) for n in POPUGS}
t(sum(1 for n in POPUGS if hold[n] > 0) >= 3, "after 20 shuffles at least 3 of 4 popugs hold tasks: %r" % hold)
t(moved > 0, "the shuffles moved tasks (%d moves)" % moved)
t(not any(prev[i]["assignee_id"] in (ids["root"], ids["boss"], ids["boss2"], ids["admin2"]) for i in prev),
  "never an admin or a manager")

# The previous assignee of a task that moved cannot complete it any more.
first = snapshot()
st, _ = ates.post("/api/tasks/shuffle", headers=H["boss"])
after = snapshot()
moved_one = next((i for i in open_ids if after[i]["assignee_id"] != first[i]["assignee_id"]), None)
if t(moved_one is not None, "a task moved in the last shuffle"):
    old = NAME[first[moved_one]["assignee_id"]]
    st, js = ates.post("/api/tasks/%s/complete" % moved_one, headers=H[old])
    t.eq(st, 403, "the former assignee %s may not complete it: %r" % (old, js))
    if st == 403:
        t(is_error(js, "forbidden"), "403 body %r" % js)
    st, js = ates.post("/api/tasks/%s/complete" % moved_one, headers=H[NAME[after[moved_one]["assignee_id"]]])
    t.eq(st, 200, "the new assignee may")
    if st == 200:
        done[moved_one] = js
        open_ids.remove(moved_one)

# --- deactivation: p4 stops being eligible once the AccountUpdated arrives.
st, js, _, _ = ates.request("PATCH", "/api/accounts/" + ids["p4"], body={"active": False}, headers=ADMIN)
t.eq(st, 200, "deactivate p4")
# Promoting the accountant to manager makes it ineligible too.
st, js, _, _ = ates.request("PATCH", "/api/accounts/" + ids["acct"], body={"role": "manager"}, headers=ADMIN)
t.eq(st, 200, "promote the accountant to manager")
eligible -= {ids["p4"], ids["acct"]}
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 1 + 8 + 2)  # account events so far
p4_done = {i for i, x in done.items() if x["assignee_id"] == ids["p4"]}
for k in range(5):
    st, js = ates.post("/api/tasks/shuffle", headers=H["boss"])
    t.eq((st, js), (200, {"reassigned": len(open_ids)}), "shuffle after deactivation %d" % k)
    all_eligible(snapshot(), "shuffle %d after deactivating p4 / promoting acct" % k)
for i in range(15):
    st, js = ates.post("/api/tasks", {"title": "After deactivation %d" % i}, headers=H["p1"])
    t.eq(st, 201, "create after deactivation")
    if st == 201:
        t(js["assignee_id"] in eligible, "new task %d goes to p1..p3, not %s" % (i, NAME.get(js["assignee_id"])))
final = snapshot()
all_eligible(final, "at the end")
for i, x in done.items():
    t.eq(final[i], x, "done task %s kept its assignee and completion" % x["title"])
t.eq({i for i in p4_done if final[i]["assignee_id"] == ids["p4"]}, p4_done,
     "p4's done tasks still name p4 after its deactivation")

# Reactivation makes p4 eligible again (later creates may go to it).
st, js, _, _ = ates.request("PATCH", "/api/accounts/" + ids["p4"], body={"active": True}, headers=ADMIN)
t.eq(st, 200, "reactivate p4")
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 1 + 8 + 3)  # account events so far
got_p4 = False
for i in range(60):
    st, js = ates.post("/api/tasks", {"title": "Back again %d" % i}, headers=H["p1"])
    if st != 201:
        t(False, "create after reactivation: %d %r" % (st, js))
        break
    if js["assignee_id"] == ids["p4"]:
        got_p4 = True
        break
t(got_p4, "the reactivated p4 receives tasks again")

# --- an operator's pick(): the highest id (the last candidate in id order), then a bad one.
SHUFFLE = os.path.join(ates.rules_dir, "shuffle.lua")
with open(SHUFFLE) as f:
    ORIGINAL = f.read()
PICK = ORIGINAL.replace("function pick(task, candidates)\n  return candidates[math.random(#candidates)]\nend",
                        "function pick(task, candidates)\n  %s\nend")
t(PICK != ORIGINAL, "shuffle.lua has the default pick() to replace")
SELFTEST = 'if candidates[1] == "a" then return candidates[math.random(#candidates)] end  -- selftest()\n  '
LAST = PICK % (SELFTEST + "local best = candidates[1]\n  for i = 2, #candidates do\n"
               "    if candidates[i] > best then best = candidates[i] end\n  end\n  return best")
STRANGER = PICK % (SELFTEST + 'return "no-such-account"')


def use_shuffle(src, what):
    t.eq(use_rule_file(ates, ADMIN, SHUFFLE, src)["error"], None, "shuffle.lua %s loaded" % what)


now_eligible = {ids[n] for n in POPUGS}
use_shuffle(LAST, "(the last candidate)")
st, js = ates.post("/api/tasks/shuffle", headers=H["boss"])
t.eq(st, 200, "shuffle with pick() = the last candidate")
opened = [x for x in snapshot().values() if x["status"] == "open"]
t.eq({x["assignee_id"] for x in opened}, {max(now_eligible)}, "every open task went to the highest id")
st, js = ates.post("/api/tasks", {"title": "To the last one"}, headers=H["p1"])
t.eq((st, js.get("assignee_id")), (201, max(now_eligible)), "a new task too")
before = snapshot()
use_shuffle(STRANGER, "(no candidate)")
st, js = ates.post("/api/tasks/shuffle", headers=H["boss"])
t.eq(st, 503, "pick() naming no candidate: shuffle 503 %r" % (js,))
if st == 503:
    t(is_error(js, "unavailable") and "candidates" in js["error"]["message"], "503 body %r" % js)
st, js = ates.post("/api/tasks", {"title": "Nobody to take it"}, headers=H["p1"])
t.eq(st, 503, "and create 503 %r" % (js,))
t.eq(snapshot(), before, "the failed shuffle and create changed nothing")
use_shuffle(ORIGINAL, "(the default again)")

# --- nobody eligible any more: shuffle and create refuse (409) and change nothing.
for n in POPUGS:
    st, _, _, _ = ates.request("PATCH", "/api/accounts/" + ids[n], body={"active": False}, headers=ADMIN)
    t.eq(st, 200, "deactivate " + n)
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 1 + 8 + 3 + 4)  # account events so far
before = snapshot()
st, js = ates.post("/api/tasks/shuffle", headers=H["boss"])
t.eq(st, 409, "shuffle with open tasks and nobody eligible: %r" % (js,))
if st == 409:
    t(is_error(js, "conflict"), "409 body %r" % js)
st, js = ates.post("/api/tasks", {"title": "Orphan"}, headers=H["boss"])
t.eq(st, 409, "create with nobody eligible: %r" % (js,))
t.eq(snapshot(), before, "the refused shuffle and create changed nothing")

t.eq(ates.stop(), 0, "clean stop")
t.done()
