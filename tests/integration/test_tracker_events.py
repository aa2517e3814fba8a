"""tracker events: TaskCreated v2 + TaskAssigned v1 on create, TaskAssigned
per open task on shuffle (previous_assignee_id = the old one), TaskCompleted
on complete; the CONTRACT envelope and headers, the request's trace id, data
exactly as the HTTP answers say; refused requests emit nothing; the
ATES_TASKS stream holds them all once, in order."""
import json
import os
import re

from harness import (ATES_BIN, SRC, Ates, Check, NatsServer, add_account, bearer, fast_nats, list_pages,
                     login, wait_consumed, wait_for)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ENVELOPE = {"event_id", "event_name", "event_version", "event_time", "producer", "trace_id", "data"}
SUBJECT = {"TaskCreated": "ates.tasks.created", "TaskAssigned": "ates.tasks.assigned",
           "TaskCompleted": "ates.tasks.completed"}
VERSION = {"TaskCreated": 2, "TaskAssigned": 1, "TaskCompleted": 1}


def schema_fields(name, version):
    with open(os.path.join(SRC, "config", "schemas", "%s.v%d.json" % (name, version))) as f:
        return set(json.load(f)["properties"]["data"]["required"])


DATA = {n: schema_fields(n, v) for n, v in VERSION.items()}

t = Check()
nats = NatsServer().start()
sub = fast_nats(nats.port)
sub.subscribe("ates.tasks.>")
ates = Ates(nats.url, binary=ATES_BIN, services="auth,tracker",
            env={"ATES_ADMIN_PASSWORD": "events-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test"}).start()
ADMIN = bearer(login(ates, "root@popug.test", "events-admin-pw")["access_token"])
H, ids = {}, {}
for name, r in (("p1", "popug"), ("p2", "popug"), ("p3", "popug"), ("boss", "manager")):
    acc, H[name] = add_account(ates, ADMIN, "%s@popug.test" % name, r, name + "-password")
    ids[name] = acc["id"]
NAME = {v: k for k, v in ids.items()}
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 1 + 4)  # account events so far
seen_ids = []


def next_events(n, what):
    out = []
    for _ in range(n):
        try:
            subject, hdrs, raw = sub.next_msg(timeout=20)
        except OSError as e:
            t(False, "%s: only %d of %d events (%s)" % (what, len(out), n, e))
            break
        try:
            out.append((subject, hdrs, json.loads(raw)))
            seen_ids.append(out[-1][2].get("event_id"))
        except ValueError:
            t(False, "%s: body is not JSON: %r" % (what, raw))
    return out


def envelope_ok(subject, hdrs, ev, what, trace=None):
    name = ev.get("event_name")
    t(name in SUBJECT, "%s: a task event: %r" % (what, name))
    t.eq(subject, SUBJECT.get(name), "%s: subject" % what)
    t.eq(set(ev), ENVELOPE, "%s: envelope fields" % what)
    t(UUID_RE.match(str(ev.get("event_id"))) is not None, "%s: event_id is a uuid: %r" % (what, ev.get("event_id")))
    t.eq(ev.get("event_version"), VERSION.get(name), "%s: event_version" % what)
    t(TIME_RE.match(str(ev.get("event_time"))) is not None, "%s: event_time %r" % (what, ev.get("event_time")))
    t.eq(ev.get("producer"), "tracker", "%s: producer" % what)
    if trace is not None:
        t.eq(ev.get("trace_id"), trace, "%s: trace_id is the request's X-Request-Id" % what)
    t.eq(hdrs.get("Nats-Msg-Id"), ev.get("event_id"), "%s: Nats-Msg-Id" % what)
    t.eq(hdrs.get("Ates-Event"), name, "%s: Ates-Event" % what)
    t.eq(hdrs.get("Ates-Version"), str(VERSION.get(name)), "%s: Ates-Version" % what)
    t.eq(set(ev.get("data") or {}), DATA.get(name), "%s: data fields" % what)


def by_name(evs):
    out = {}
    for s, h, ev in evs:
        out.setdefault(ev.get("event_name"), []).append((s, h, ev))
    return out


# --- create with everything
st, task, hd, _ = ates.request("POST", "/api/tasks", body={"title": "Clean the nest", "jira_id": "NEST-42",
                                                           "description": "With a feather."},
                               headers=dict(H["boss"], **{"X-Request-Id": "trace-create-1"}))
t.eq(st, 201, "create: %r" % task)
t.eq(hd.get("x-request-id"), "trace-create-1", "the answer echoes X-Request-Id")
evs = by_name(next_events(2, "create"))
t.eq(sorted(evs), ["TaskAssigned", "TaskCreated"], "create emits TaskCreated and TaskAssigned")
for s, h, ev in sum(evs.values(), []):
    envelope_ok(s, h, ev, "create " + str(ev.get("event_name")), "trace-create-1")
if st == 201 and "TaskCreated" in evs and "TaskAssigned" in evs:
    t.eq(evs["TaskCreated"][0][2]["data"],
         {"task_id": task["id"], "title": "Clean the nest", "jira_id": "NEST-42", "description": "With a feather.",
          "assignee_id": task["assignee_id"], "created_at": task["created_at"]}, "TaskCreated v2 data")
    a = evs["TaskAssigned"][0][2]["data"]
    t.eq({k: a.get(k) for k in ("task_id", "assignee_id", "previous_assignee_id")},
         {"task_id": task["id"], "assignee_id": task["assignee_id"], "previous_assignee_id": None},
         "TaskAssigned on create")
    t(TIME_RE.match(str(a.get("assigned_at"))) is not None, "assigned_at %r" % a.get("assigned_at"))
    t(str(a.get("assigned_at")) >= task["created_at"], "assigned_at >= created_at")

# --- create with the minimum: jira_id and description are null
st, bare = ates.post("/api/tasks", {"title": "Sing"}, headers=H["p1"])
t.eq(st, 201, "bare create")
evs = by_name(next_events(2, "bare create"))
for s, h, ev in sum(evs.values(), []):
    envelope_ok(s, h, ev, "bare " + str(ev.get("event_name")))
    t(isinstance(ev.get("trace_id"), str) and ev["trace_id"] != "", "a generated trace id when none was sent")
if "TaskCreated" in evs:
    d = evs["TaskCreated"][0][2]["data"]
    t.eq((d.get("title"), d.get("jira_id"), d.get("description")), ("Sing", None, None),
         "TaskCreated: absent jira_id/description are null")
    t.eq(len({ev["trace_id"] for s, h, ev in sum(evs.values(), [])}), 1, "both events share the trace id")

# A few more, so a shuffle has something to move.
for i in range(6):
    st, js = ates.post("/api/tasks", {"title": "Filler %d" % i, "jira_id": "FILL-%d" % i}, headers=H["p2"])
    t.eq(st, 201, "filler %d" % i)
for s, h, ev in next_events(12, "fillers"):
    envelope_ok(s, h, ev, "filler " + str(ev.get("event_name")))

# --- complete one before the shuffle: it must not be reassigned
st, done = ates.request("POST", "/api/tasks/%s/complete" % bare["id"],
                        headers=dict(H[NAME[bare["assignee_id"]]], **{"X-Request-Id": "trace-complete-1"}))[:2]
t.eq(st, 200, "complete: %r" % done)
evs = next_events(1, "complete")
if evs:
    s, h, ev = evs[0]
    envelope_ok(s, h, ev, "TaskCompleted", "trace-complete-1")
    t.eq(ev.get("event_name"), "TaskCompleted", "complete emits TaskCompleted")
    t.eq(ev.get("data"), {"task_id": bare["id"], "assignee_id": bare["assignee_id"],
                          "completed_at": (done or {}).get("completed_at")}, "TaskCompleted data")

# --- refused requests emit nothing: 422, 409 (again), 403, 401, 404, and a 403 shuffle
ates.post("/api/tasks", {"title": "[NEST-1] bad"}, headers=H["p1"])
ates.post("/api/tasks", {"title": "ok", "jira_id": "nest-1"}, headers=H["p1"])
ates.post("/api/tasks/%s/complete" % bare["id"], headers=H[NAME[bare["assignee_id"]]])
other = next(n for n in ("p1", "p2", "p3") if ids[n] != task["assignee_id"])
ates.post("/api/tasks/%s/complete" % task["id"], headers=H[other])
ates.post("/api/tasks/%s/complete" % task["id"], headers=ADMIN)
ates.post("/api/tasks/%s/complete" % task["id"])
ates.post("/api/tasks/00000000-0000-4000-8000-000000000000/complete", headers=H["p1"])
ates.post("/api/tasks/shuffle", headers=H["p1"])
ates.post("/api/tasks/shuffle")

# --- shuffle: one TaskAssigned per open task, previous = the old assignee
before = {x["id"]: x for x in list_pages(ates, ADMIN, "assignee=all")[0]}
open_before = {i: x for i, x in before.items() if x["status"] == "open"}
st, js, hd, _ = ates.request("POST", "/api/tasks/shuffle", headers=dict(H["boss"], **{"X-Request-Id": "trace-shuf"}))
t.eq((st, js), (200, {"reassigned": len(open_before)}), "shuffle answer")
after = {x["id"]: x for x in list_pages(ates, ADMIN, "assignee=all")[0]}
evs = next_events(len(open_before), "shuffle")
t(all(ev.get("event_name") == "TaskAssigned" for s, h, ev in evs),
  "the events after the refusals are the shuffle's TaskAssigned: %r" % [ev.get("event_name") for s, h, ev in evs])
for s, h, ev in evs:
    envelope_ok(s, h, ev, "shuffle TaskAssigned", "trace-shuf")
got = {ev["data"].get("task_id"): ev["data"] for s, h, ev in evs if "data" in ev}
t.eq(sorted(got), sorted(open_before), "one TaskAssigned per open task, none for the done one")
for i, d in got.items():
    if i in open_before:
        t.eq((d.get("previous_assignee_id"), d.get("assignee_id")),
             (open_before[i]["assignee_id"], after[i]["assignee_id"]),
             "TaskAssigned %s: previous and new assignee" % before[i]["title"])
t.eq(after[bare["id"]], done, "the done task did not move")

# A marker: the next event after the shuffle is the marker's.
st, marker = ates.post("/api/tasks", {"title": "Marker"}, headers=H["p3"])
evs = next_events(2, "marker")
t(all(ev.get("data", {}).get("task_id") == (marker or {}).get("id") for s, h, ev in evs),
  "nothing was emitted between the shuffle and the marker")

# --- the stream: every event once, same order as the core subscription saw them
js = fast_nats(nats.port)
want = len(seen_ids)
msgs = wait_for(lambda: (lambda m: m if len(m) >= want else None)(js.stream_msgs("ATES_TASKS")),
                what="%d events in ATES_TASKS" % want)
bodies = [json.loads(b) for s, h, b in msgs]
t.eq(len(msgs), want, "ATES_TASKS holds exactly the events seen")
t.eq([b["event_id"] for b in bodies], seen_ids, "the stream order is the order seen live")
t.eq(len({b["event_id"] for b in bodies}), len(bodies), "event ids are unique")
t(all(h.get("Nats-Msg-Id") == b["event_id"] and s == SUBJECT.get(b["event_name"])
      for (s, h, _), b in zip(msgs, bodies)), "stream subjects and Nats-Msg-Id headers")
t(all("[" not in b["data"]["title"] and "]" not in b["data"]["title"]
      for b in bodies if b["event_name"] == "TaskCreated"), "no TaskCreated title holds [ or ]")
info = js.stream_info("ATES_TASKS")
t.eq(info.get("config", {}).get("subjects"), ["ates.tasks.>"], "ATES_TASKS subjects")
t.eq(info.get("config", {}).get("storage"), "file", "ATES_TASKS file storage")
js.close()

# --- a restart republishes nothing (the outbox was drained)
t.eq(ates.stop(), 0, "clean stop")
ates.start()
st, again = ates.post("/api/tasks", {"title": "After restart"}, headers=H["p1"])
t.eq(st, 201, "create after the restart")
evs = next_events(2, "after restart")
t(all(ev.get("data", {}).get("task_id") == (again or {}).get("id") for s, h, ev in evs),
  "the first events after the restart are the new task's")
sub.close()
t.eq(ates.stop(), 0, "clean stop")
t.done()
