"""tracker role matrix: every route of the tracker table, for each role and
without a token, answers allowed / 401 / 403 / 404 / 409 as CONTRACT §2 says;
409 (and no task) while no account is eligible; refused calls change nothing."""
import json
import re
import uuid

from harness import (ATES_BIN, Ates, Check, NatsServer, add_account, bearer, fast_nats, is_error, login,
                     wait_consumed, wait_for)

ADMIN_EMAIL = "boss@popug.test"
ADMIN_PASSWORD = "boss-password"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TASK_FIELDS = {"id", "title", "jira_id", "description", "status", "assignee_id", "created_at", "completed_at"}

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,tracker",
            env={"ATES_ADMIN_PASSWORD": ADMIN_PASSWORD, "ATES_ADMIN_EMAIL": ADMIN_EMAIL}).start()

admin = login(ates, ADMIN_EMAIL, ADMIN_PASSWORD)
H = {"admin": bearer(admin["access_token"]), None: {}}
ids = {"admin": admin["account"]["id"]}


def expect(label, st, js, want):
    t.eq(st, want, label + (": %r" % (js,) if st != want else ""))
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict", 422: "validation"}.get(want)
    if code and st == want:
        t(is_error(js, code), "%s: error body %r" % (label, js))


def task_ok(task, label):
    if not t(isinstance(task, dict), "%s: a task object: %r" % (label, task)):
        return
    t.eq(set(task), TASK_FIELDS, "%s: task fields" % label)
    t(UUID_RE.match(str(task.get("id"))) is not None, "%s: id is a uuid" % label)
    t(task.get("status") in ("open", "done"), "%s: status %r" % (label, task.get("status")))
    t(TIME_RE.match(str(task.get("created_at"))) is not None, "%s: created_at %r" % (label, task.get("created_at")))
    if task.get("status") == "open":
        t.eq(task.get("completed_at"), None, "%s: open task has no completed_at" % label)


# --- Only the admin exists: nobody is eligible, so creating is a 409 and creates nothing.
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 1)  # account events so far
st, js = ates.post("/api/tasks", {"title": "Nobody can take this"}, headers=H["admin"])
expect("POST /api/tasks with no eligible account", st, js, 409)
st, js = ates.get("/api/tasks?assignee=all", headers=H["admin"])
t.eq((st, (js or {}).get("items")), (200, []), "no task was created by the 409")
st, js = ates.post("/api/tasks/shuffle", headers=H["admin"])
t.eq((st, js), (200, {"reassigned": 0}), "a shuffle of nothing reassigns 0")

# --- A manager alone is not eligible either.
_, H["manager"] = add_account(ates, H["admin"], "manager@popug.test", "manager", "manager-password")
ids["manager"] = login(ates, "manager@popug.test", "manager-password")["account"]["id"]
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 2)  # account events so far
st, js = ates.post("/api/tasks", {"title": "Still nobody"}, headers=H["manager"])
expect("POST /api/tasks with only admin+manager", st, js, 409)

for role in ("accountant", "popug"):
    acc, H[role] = add_account(ates, H["admin"], "%s@popug.test" % role, role, role + "-password")
    ids[role] = acc["id"]
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 4)  # account events so far
ELIGIBLE = {ids["accountant"], ids["popug"]}
ROLE_OF = {v: k for k, v in ids.items()}

WHO = ["admin", "manager", "accountant", "popug", None]
created = []
for who in WHO:
    label = "as %s" % (who or "nobody")
    st, js = ates.post("/api/tasks", {"title": "Task made %s" % label}, headers=H[who])
    expect("POST /api/tasks " + label, st, js, 201 if who else 401)
    if st == 201:
        task_ok(js, "created " + label)
        t.eq((js.get("status"), js.get("title"), js.get("jira_id"), js.get("description")),
             ("open", "Task made " + label, None, None), "created %s: fields" % label)
        t(js.get("assignee_id") in ELIGIBLE, "created %s: assignee %r is eligible (accountant or popug), got %s"
          % (label, js.get("assignee_id"), ROLE_OF.get(js.get("assignee_id"))))
        created.append(js)

# Make sure each eligible account holds at least one task (creation is random).
for _ in range(60):
    if {c["assignee_id"] for c in created} >= ELIGIBLE:
        break
    st, js = ates.post("/api/tasks", {"title": "Filler"}, headers=H["popug"])
    t.eq(st, 201, "filler create")
    if st != 201:
        break
    created.append(js)
t({c["assignee_id"] for c in created} >= ELIGIBLE, "both eligible accounts got tasks")
current = {c["id"]: c for c in created}  # the tasks as they are now

unknown = str(uuid.uuid4())
for who in WHO:
    label = "as %s" % (who or "nobody")
    ok = 200 if who else 401
    # Lists.
    st, js = ates.get("/api/tasks", headers=H[who])
    expect("GET /api/tasks " + label, st, js, ok)
    if st == 200:
        mine = [x["id"] for x in js.get("items", [])]
        want = [c["id"] for c in created if current[c["id"]]["assignee_id"] == ids[who]]
        t.eq(mine, want, "GET /api/tasks %s is the caller's own tasks in creation order" % label)
    st, js = ates.get("/api/tasks?assignee=me", headers=H[who])
    expect("GET /api/tasks?assignee=me " + label, st, js, ok)
    st, js = ates.get("/api/tasks?assignee=all", headers=H[who])
    expect("GET /api/tasks?assignee=all " + label, st, js, ok)
    if st == 200:
        t.eq(js.get("items"), [current[c["id"]] for c in created],
             "assignee=all %s: every task in creation order" % label)
        t("next" in js and js["next"] is None, "assignee=all %s: next is null: %r" % (label, js.get("next")))
    st, js = ates.get("/api/tasks?assignee=all&status=open", headers=H[who])
    expect("GET status=open " + label, st, js, ok)
    # One task.
    st, js = ates.get("/api/tasks/" + created[0]["id"], headers=H[who])
    expect("GET /api/tasks/{id} " + label, st, js, ok)
    if st == 200:
        t.eq(js, current[created[0]["id"]], "GET /api/tasks/{id} %s is the task" % label)
    st, js = ates.get("/api/tasks/" + unknown, headers=H[who])
    expect("GET /api/tasks/{unknown} " + label, st, js, 404 if who else 401)
    st, js = ates.post("/api/tasks/%s/complete" % unknown, headers=H[who])
    expect("POST /api/tasks/{unknown}/complete " + label, st, js, 404 if who else 401)
    # Shuffle: manager and admin only.
    st, js = ates.post("/api/tasks/shuffle", headers=H[who])
    expect("POST /api/tasks/shuffle " + label, st, js,
           200 if who in ("admin", "manager") else (403 if who else 401))
    if st == 200:
        t.eq(js, {"reassigned": len(created)}, "shuffle %s reassigns every open task" % label)
        st, js = ates.get("/api/tasks?assignee=all", headers=H["admin"])
        moved = {x["id"]: x for x in (js or {}).get("items", [])}
        t.eq(sorted(moved), sorted(current), "shuffle %s: the same tasks" % label)
        current = moved

# After the shuffles: fetch the current assignees, then complete as everyone.
st, js = ates.get("/api/tasks?assignee=all", headers=H["admin"])
now = {x["id"]: x for x in (js or {}).get("items", [])}
t(all(x["assignee_id"] in ELIGIBLE for x in now.values()), "after shuffles every assignee is eligible")
targets = {}
for x in now.values():
    targets.setdefault(x["assignee_id"], x)
for holder, task in targets.items():
    path = "/api/tasks/%s/complete" % task["id"]
    for who in WHO:
        if who is not None and ids[who] == holder:
            continue
        st, js = ates.post(path, headers=H[who])
        expect("complete %s's task as %s" % (ROLE_OF[holder], who or "nobody"), st, js, 403 if who else 401)
    st, js = ates.get("/api/tasks/" + task["id"], headers=H["admin"])
    t.eq((js or {}).get("status"), "open", "refused completions left the task open")
    st, done = ates.post(path, headers=H[ROLE_OF[holder]])
    expect("complete own task as %s" % ROLE_OF[holder], st, done, 200)
    if st == 200:
        task_ok(done, "completed")
        t.eq(done.get("status"), "done", "completed: status done")
        t.eq(done.get("assignee_id"), holder, "completed: same assignee")
        t(TIME_RE.match(str(done.get("completed_at"))) is not None, "completed_at %r" % done.get("completed_at"))
        t(str(done.get("completed_at")) >= str(done.get("created_at")), "completed_at >= created_at")
        t.eq({k: done.get(k) for k in ("id", "title", "created_at")},
             {k: task.get(k) for k in ("id", "title", "created_at")}, "completed: the same task")
    st, js = ates.post(path, headers=H[ROLE_OF[holder]])
    expect("complete own task again as %s" % ROLE_OF[holder], st, js, 409)
    st, js = ates.get("/api/tasks/" + task["id"], headers=H["popug"])
    t.eq(js, done, "GET after completion equals the completion answer")

# Status filters and the caller's default view after completing.
st, js = ates.get("/api/tasks?assignee=all&status=done", headers=H["manager"])
t.eq(sorted(x["id"] for x in (js or {}).get("items", [])), sorted(x["id"] for x in targets.values()),
     "status=done lists exactly the completed tasks")
st, js = ates.get("/api/tasks?status=open", headers=H["popug"])
t(st == 200 and all(x["assignee_id"] == ids["popug"] and x["status"] == "open" for x in js["items"]),
  "popug's status=open view: own open tasks only")
st, js = ates.get("/api/tasks?assignee=all", headers=H["accountant"])
t.eq(len((js or {}).get("items", [])), len(created), "refused calls created nothing")

# No token for a write that would be valid: 401 and nothing happens.
st, js = ates.post("/api/tasks", {"title": "anonymous"})
expect("POST /api/tasks without token (valid body)", st, js, 401)
st, js, hd, _ = ates.request("POST", "/api/tasks", body={"title": "bad token"},
                             headers={"Authorization": "Bearer not.a.token"})
expect("POST /api/tasks with a garbage token", st, js, 401)
st, js = ates.get("/api/tasks?assignee=all", headers=H["admin"])
t.eq(len((js or {}).get("items", [])), len(created), "the anonymous creates made nothing")

# The refused creates (409, 401) emitted nothing: every event in ATES_TASKS
# names a task that exists (the outbox publishes in commit order, so once
# the last completion's event is there, any earlier stray one would be too).
nc = fast_nats(nats.port)
last_done = list(targets.values())[-1]["id"] if targets else None
msgs = wait_for(lambda: (lambda m: m if any(json.loads(b)["event_name"] == "TaskCompleted"
                                            and json.loads(b)["data"]["task_id"] == last_done
                                            for s, h, b in m) else None)(nc.stream_msgs("ATES_TASKS")),
                what="the last TaskCompleted in ATES_TASKS")
nc.close()
t.eq(sorted({json.loads(b)["data"]["task_id"] for s, h, b in msgs}), sorted(current),
     "events name exactly the created tasks")

t.eq(ates.stop(), 0, "clean stop")
t.done()
