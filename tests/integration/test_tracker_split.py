"""auth and tracker in two processes (same NATS, separate data dirs): the
tracker trusts auth's tokens through ATES_JWKS_URL, learns accounts only
from auth's events (also those published while it was down), and serves the
whole task flow end to end."""
import json
import subprocess

from harness import (ATES_BIN, TOOLS, Ates, Check, NatsServer, add_account, bearer, fast_nats, list_pages,
                     login, tmpdir, wait_consumed, wait_for)

t = Check()
nats = NatsServer().start()
auth = Ates(nats.url, binary=ATES_BIN, services="auth",
            env={"ATES_ADMIN_PASSWORD": "split-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test"}).start()
tracker = Ates(nats.url, binary=ATES_BIN, services="tracker",
               env={"ATES_JWKS_URL": "http://127.0.0.1:%d/api/auth/jwks" % auth.port})
t(tracker.data_dir != auth.data_dir, "separate data dirs")
tracker.start()

root = login(auth, "root@popug.test", "split-admin-pw")
ADMIN = bearer(root["access_token"])
H, ids = {}, {}
for name, r in (("p1", "popug"), ("p2", "popug"), ("boss", "manager")):
    acc, H[name] = add_account(auth, ADMIN, "%s@popug.test" % name, r, name + "-password")
    ids[name] = acc["id"]
NAME = {v: k for k, v in ids.items()}
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 1 + 3)  # account events so far

# Each process serves only its own routes.
st, _ = tracker.post("/api/auth/login", {"email": "root@popug.test", "password": "split-admin-pw"})
t(st in (404, 405), "the tracker process does not serve auth routes: %d" % st)
st, _ = auth.post("/api/tasks", {"title": "wrong door"}, headers=H["p1"])
t(st in (404, 405), "the auth process does not serve tracker routes: %d" % st)

# The whole flow through the tracker with tokens issued by auth.
created = []
for i in range(12):
    st, js = tracker.post("/api/tasks", {"title": "Split %d" % i, "jira_id": "SPLIT-%d" % (i + 1)}, headers=H["boss"])
    t.eq(st, 201, "create %d at the tracker: %r" % (i, js if st != 201 else ""))
    if st == 201:
        t(js["assignee_id"] in (ids["p1"], ids["p2"]), "assigned to a popug, not %r" % js["assignee_id"])
        created.append(js)
forged = subprocess.run([TOOLS + "/tool_jwt", "sign", tmpdir("otherkeys"), ids["boss"], "admin",
                         "1700000000", "4102444800"], capture_output=True, text=True).stdout.strip()
st, _ = tracker.post("/api/tasks/shuffle", headers=bearer(forged))
t.eq(st, 401, "a token signed by a foreign key is refused by the tracker")
st, _ = tracker.post("/api/tasks", {"title": "anonymous"})
t.eq(st, 401, "no token: 401 at the tracker")
st, js = tracker.post("/api/tasks/shuffle", headers=H["p1"])
t.eq(st, 403, "a popug may not shuffle at the tracker")
st, js = tracker.post("/api/tasks/shuffle", headers=H["boss"])
t.eq((st, js), (200, {"reassigned": len(created)}), "the manager shuffles at the tracker")
tasks = {x["id"]: x for x in list_pages(tracker, ADMIN, "assignee=all")[0]}
t.eq(sorted(tasks), sorted(c["id"] for c in created), "the admin lists every task")
x = next(iter(tasks.values()))
st, js = tracker.post("/api/tasks/%s/complete" % x["id"], headers=H[NAME[x["assignee_id"]]])
t.eq(st, 200, "the assignee completes at the tracker")
done_id = x["id"]
mine = list_pages(tracker, H["p1"], "")[0]
t(all(y["assignee_id"] == ids["p1"] for y in mine), "p1's own list at the tracker")

# --- accounts changed while the tracker is down are learned when it comes back
t.eq(tracker.stop(), 0, "clean stop of the tracker")
acc3, H["p3"] = add_account(auth, ADMIN, "p3@popug.test", "popug", "p3-password")
ids["p3"] = acc3["id"]
NAME[acc3["id"]] = "p3"
st, _, _, _ = auth.request("PATCH", "/api/accounts/" + ids["p1"], body={"active": False}, headers=ADMIN)
t.eq(st, 200, "deactivate p1 while the tracker is down")
tracker.start()
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 1 + 3 + 2)  # account events so far
st, js = tracker.get("/api/tasks/" + done_id, headers=H["p2"])
t.eq((st, (js or {}).get("status")), (200, "done"), "tasks survive the tracker's restart")
st, js = tracker.post("/api/tasks/shuffle", headers=ADMIN)
t.eq((st, js), (200, {"reassigned": len(created) - 1}), "shuffle after the restart")
tasks = {x["id"]: x for x in list_pages(tracker, ADMIN, "assignee=all")[0]}
t(all(x["assignee_id"] in (ids["p2"], ids["p3"]) for x in tasks.values() if x["status"] == "open"),
  "after the restart open tasks go to p2/p3 only, never the deactivated p1")
got_p3 = any(x["assignee_id"] == ids["p3"] for x in tasks.values())
for i in range(40):
    if got_p3:
        break
    st, js = tracker.post("/api/tasks", {"title": "For p3? %d" % i}, headers=H["p2"])
    t.eq(st, 201, "create after the restart")
    if st != 201:
        break
    t(js["assignee_id"] != ids["p1"], "never the deactivated p1")
    got_p3 = js["assignee_id"] == ids["p3"]
t(got_p3, "the popug created while the tracker was down gets tasks")
p3_task = next((x for x in list_pages(tracker, H["p3"], "status=open")[0]), None)
if t(p3_task is not None, "p3 sees its open task"):
    st, js = tracker.post("/api/tasks/%s/complete" % p3_task["id"], headers=H["p3"])
    t.eq(st, 200, "p3 completes its task")

# --- the events went through the shared NATS
nc = fast_nats(nats.port)
msgs = wait_for(lambda: (lambda m: m if any(json.loads(b)["event_name"] == "TaskCompleted"
                                            and json.loads(b)["data"]["assignee_id"] == ids["p3"]
                                            for s, h, b in m) else None)(nc.stream_msgs("ATES_TASKS")),
                what="p3's TaskCompleted in ATES_TASKS")
names = [json.loads(b)["event_name"] for s, h, b in msgs]
n_tasks = len(list_pages(tracker, ADMIN, "assignee=all")[0])
t.eq(names.count("TaskCreated"), n_tasks, "one TaskCreated per task")
t.eq(names.count("TaskCompleted"), 2, "two TaskCompleted")
t(all(json.loads(b)["producer"] == "tracker" for s, h, b in msgs), "the producer is the tracker")
nc.close()

t.eq(tracker.stop(), 0, "clean stop (tracker)")
t.eq(auth.stop(), 0, "clean stop (auth)")
t.done()
