"""tracker input validation: POST /api/tasks refuses (422, 413) every bad
body named by CONTRACT §2 / issue 4 and creates nothing for it; the edges
just inside the limits are accepted and stored as sent."""
import json

from harness import (ATES_BIN, Ates, Check, NatsServer, add_account, bearer, fast_nats, is_error, login,
                     wait_consumed, wait_for)

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,tracker",
            env={"ATES_ADMIN_PASSWORD": "valid-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test"}).start()
ADMIN = bearer(login(ates, "root@popug.test", "valid-admin-pw")["access_token"])
popug, POPUG = add_account(ates, ADMIN, "p@popug.test", "popug", "popug-password")
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 1 + 1)  # account events so far

accepted = []


def post_raw(raw, label, want, ctype="application/json"):
    st, js, hd, _ = ates.request("POST", "/api/tasks", raw=raw,
                                 headers=dict(POPUG, **{"Content-Type": ctype}))
    t.eq(st, want, "%s: %r" % (label, js))
    if st == 201:
        accepted.append(js)
    code = {422: "validation", 413: "too_large"}.get(want)
    if code and st == want:
        t(is_error(js, code), "%s: error body %r" % (label, js))
    return st, js


def post(body, label, want):
    st, js = ates.post("/api/tasks", body, headers=POPUG)
    t.eq(st, want, "%s: %r" % (label, js))
    if st == 201:
        accepted.append(js)
    elif st == want == 422:
        t(is_error(js, "validation"), "%s: error body %r" % (label, js))
    return st, js


# --- title
post({}, "missing title", 422)
post({"title": ""}, "empty title", 422)
post({"title": "   "}, "a title of spaces only", 422)
post({"title": "Fix the beak", "jira": "UBERPOP-1"}, "a misspelt field (jira for jira_id)", 422)
post({"title": "x" * 201}, "title of 201 characters", 422)
post({"title": "[PROJ-1] Fix the beak"}, "title with a jira id in brackets", 422)
post({"title": "Fix [the] beak"}, "title with [ and ]", 422)
post({"title": "Fix the [beak"}, "title with [", 422)
post({"title": "Fix the beak]"}, "title with ]", 422)
post({"title": "PROJ-1] x"}, "title with a lone ]", 422)
post({"title": 5}, "title is a number", 422)
post({"title": None}, "title is null", 422)
post({"title": ["x"]}, "title is an array", 422)
post({"title": {"text": "x"}}, "title is an object", 422)
post({"title": True}, "title is a boolean", 422)

# --- jira_id
for bad in ("proj-1", "PROJ1", "PROJ-", "-1", "1A-2", "PROJ-1a", "PROJ-1 ", " PROJ-1", "PR OJ-1", "PROJ--1",
            "PROJ-1-2", "PRÖJ-1", "PROJ-\u0661", "", "A" + "B" * 30 + "-1"):  # the last: 33 characters
    post({"title": "Jira %r" % bad, "jira_id": bad}, "jira_id %r" % bad, 422)
post({"title": "Jira number", "jira_id": 12}, "jira_id is a number", 422)
post({"title": "Jira array", "jira_id": ["PROJ-1"]}, "jira_id is an array", 422)

# --- description
post({"title": "Long description", "description": "d" * 4001}, "description of 4001 characters", 422)
post({"title": "Number description", "description": 7}, "description is a number", 422)
post({"title": "Object description", "description": {}}, "description is an object", 422)

# --- not a JSON object
post_raw(b'{"title": "unterminated', "non-JSON body", 422)
post_raw(b"", "empty body", 422)
post_raw(b"[]", "an array body", 422)
post_raw(b'"a title"', "a string body", 422)
post_raw(b"null", "a null body", 422)
post_raw(b'{"title": "x"} trailing', "JSON with trailing garbage", 422)
post_raw(b'{"title": "x' + b"y" * (70 * 1024) + b'"}', "a body over 64 KiB", 413)

refused = len(accepted)
t.eq(refused, 0, "nothing above was accepted")

# --- the edges just inside, stored exactly as sent
edges = [
    {"title": "x" * 200},
    {"title": "\u0436" * 200},                                  # 200 characters, 400 bytes
    {"title": "Plain", "jira_id": "A-1"},
    {"title": "Longest jira", "jira_id": "A" + "B" * 28 + "-12"},  # 32 characters
    {"title": "Digits in key", "jira_id": "UBER9-0042"},
    {"title": "Long description", "description": "d" * 4000},
    {"title": "Unicode description", "description": "\u043f\u043e\u043f\u0443\u0433 " * 500},  # 3000 chars
    {"title": "Empty description", "description": ""},
    {"title": "Quotes \" and \\ and </script> and \u2603"},
]
for body in edges:
    st, js = post(body, "edge %r" % ({k: (v if len(v) < 40 else "%d chars" % len(v)) for k, v in body.items()},), 201)
    if st == 201:
        t.eq((js.get("title"), js.get("jira_id"), js.get("description")),
             (body["title"], body.get("jira_id"), body.get("description")), "edge stored as sent")
        st, got = ates.get("/api/tasks/" + js["id"], headers=POPUG)
        t.eq(got, js, "edge read back equals the create answer")

# Explicit null for the optional fields means "none" (or is refused; never a crash).
st, js = ates.post("/api/tasks", {"title": "Explicit nulls", "jira_id": None, "description": None}, headers=POPUG)
t(st in (201, 422), "explicit null jira_id/description: 201 or 422, got %d %r" % (st, js))
if st == 201:
    accepted.append(js)
    t.eq((js.get("jira_id"), js.get("description")), (None, None), "explicit nulls stored as null")

# Only the accepted creates exist, and only they were announced.
st, js = ates.get("/api/tasks?assignee=all&limit=500", headers=ADMIN)
t.eq(sorted(x["id"] for x in (js or {}).get("items", [])), sorted(x["id"] for x in accepted),
     "the task list holds exactly the accepted creates")
# The outbox publishes in commit order: once the last accepted task's two
# events are in the stream, anything a refusal had emitted would be there too.
nc = fast_nats(nats.port)
last_id = accepted[-1]["id"] if accepted else None


def settled():
    m = nc.stream_msgs("ATES_TASKS")
    return m if sum(1 for s, h, b in m if json.loads(b).get("data", {}).get("task_id") == last_id) >= 2 else None


msgs = wait_for(settled, what="the last task's events in ATES_TASKS")
per_task = {}
for s, h, b in msgs:
    ev = json.loads(b)
    per_task.setdefault(ev.get("data", {}).get("task_id"), []).append(ev.get("event_name"))
t.eq(sorted(per_task), sorted(x["id"] for x in accepted), "events only for the accepted creates")
t(all(sorted(v) == ["TaskAssigned", "TaskCreated"] for v in per_task.values()),
  "one TaskCreated and one TaskAssigned per accepted create: %r" % [v for v in per_task.values()
                                                                    if sorted(v) != ["TaskAssigned", "TaskCreated"]])
nc.close()

t(ates.get("/health")[0] == 200, "still alive after the bad bodies")
t.eq(ates.stop(), 0, "clean stop")
t.done()
