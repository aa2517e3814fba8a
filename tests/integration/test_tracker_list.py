"""tracker lists: GET /api/tasks pages through every task in creation order
with limit/after/next, filters by assignee (me by default, or all) and by
status, and refuses bad query values with 422."""
from harness import (ATES_BIN, Ates, Check, NatsServer, add_account, bearer, is_error, list_pages, login,
                     wait_consumed)

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,tracker",
            env={"ATES_ADMIN_PASSWORD": "list-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test"}).start()
ADMIN = bearer(login(ates, "root@popug.test", "list-admin-pw")["access_token"])
H, ids = {}, {}
for name in ("kiwi", "lory", "amazon"):
    acc, H[name] = add_account(ates, ADMIN, "%s@popug.test" % name, "popug", name + "-password")
    ids[name] = acc["id"]
_, MANAGER = add_account(ates, ADMIN, "boss@popug.test", "manager", "boss-password")
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 1 + 4)  # account events so far
NAME = {v: k for k, v in ids.items()}

N = 37
created = []
for i in range(N):
    st, js = ates.post("/api/tasks", {"title": "Task %03d" % i, "jira_id": "LIST-%d" % i}, headers=MANAGER)
    t.eq(st, 201, "create %d" % i)
    if st == 201:
        created.append(js)
order = [c["id"] for c in created]
t.eq(len(set(order)), len(order), "distinct ids")

# Complete a few, by their assignees.
done = set()
for c in created[::5]:
    st, js = ates.post("/api/tasks/%s/complete" % c["id"], headers=H[NAME[c["assignee_id"]]])
    t.eq(st, 200, "complete %s" % c["title"])
    if st == 200:
        done.add(c["id"])
        c.update(js)

# --- every page size walks the same list, in creation order, without repeats
for limit in (1, 2, 5, 10, 36, 37, 38, 50, 500, None):
    items, statuses, pages = list_pages(ates, ADMIN, "assignee=all", limit)
    label = "assignee=all limit=%s" % limit
    t(all(s == 200 for s in statuses), "%s: every page 200: %r" % (label, statuses))
    t.eq([x["id"] for x in items], order, "%s: every task once in creation order" % label)
    per = limit or 50
    t.eq(pages, max(1, -(-N // per)), "%s: number of pages" % label)
items, _, _ = list_pages(ates, ADMIN, "assignee=all", 7)
t.eq(items, created, "the listed tasks equal the created (and completed) ones field by field")

# One page at a time, by hand: `next` is the last id of a full page, null at the end.
st, js = ates.get("/api/tasks?assignee=all&limit=10", headers=ADMIN)
t.eq(st, 200, "first page")
t.eq(len(js["items"]), 10, "first page holds 10")
t.eq(js.get("next"), js["items"][-1]["id"], "next is the last id of the page")
st, js = ates.get("/api/tasks?assignee=all&limit=10&after=" + order[29], headers=ADMIN)
t.eq([x["id"] for x in js.get("items", [])], order[30:], "after the 30th: the last 7")
t.eq(js.get("next"), None, "the last page's next is null")
st, js = ates.get("/api/tasks?assignee=all&limit=7&after=" + order[-1], headers=ADMIN)
t.eq((st, js.get("items"), js.get("next")), (200, [], None), "after the last id: empty page")
st, js = ates.get("/api/tasks?assignee=all", headers=ADMIN)
t.eq(len(js.get("items", [])), N, "default limit (50) covers all %d" % N)

# --- assignee / status filters
for who in ids:
    mine = [c["id"] for c in created if c["assignee_id"] == ids[who]]
    items, statuses, _ = list_pages(ates, H[who], "", 3)
    t.eq([x["id"] for x in items], mine, "%s's default list (assignee=me) paged by 3" % who)
    items, _, _ = list_pages(ates, H[who], "assignee=me&status=open", 2)
    t.eq([x["id"] for x in items], [i for i in mine if i not in done], "%s's open tasks" % who)
    items, _, _ = list_pages(ates, H[who], "assignee=me&status=done", 2)
    t.eq([x["id"] for x in items], [i for i in mine if i in done], "%s's done tasks" % who)
    items, _, _ = list_pages(ates, H[who], "status=done", 50)
    t.eq([x["id"] for x in items], [i for i in mine if i in done], "%s: status alone keeps assignee=me" % who)
items, _, _ = list_pages(ates, H["kiwi"], "assignee=all&status=open", 4)
t.eq([x["id"] for x in items], [i for i in order if i not in done], "a popug may list all open tasks")
t(all(x["status"] == "open" and x["completed_at"] is None for x in items), "open items are open")
items, _, _ = list_pages(ates, MANAGER, "status=done&assignee=all", 4)
t.eq([x["id"] for x in items], [i for i in order if i in done], "all done tasks")
t(all(x["status"] == "done" and x["completed_at"] for x in items), "done items carry completed_at")
items, _, _ = list_pages(ates, MANAGER, "", None)
t.eq(items, [], "a manager's own list is empty (managers are never assigned)")

# --- bad query values
for q in ("limit=0", "limit=501", "limit=-1", "limit=abc", "limit=", "limit=1.5", "limit=99999999999999999999",
          "assignee=you", "assignee=", "assignee=ALL", "status=closed", "status=", "status=OPEN",
          "assignee=all&status=pending"):
    st, js = ates.get("/api/tasks?" + q, headers=ADMIN)
    t.eq(st, 422, "GET /api/tasks?%s: %r" % (q, js))
    if st == 422:
        t(is_error(js, "validation"), "GET ?%s error body %r" % (q, js))
for q in ("limit=1", "limit=500", "assignee=all&limit=500&status=open"):
    st, js = ates.get("/api/tasks?" + q, headers=ADMIN)
    t.eq(st, 200, "GET /api/tasks?%s" % q)
# A cursor that is no id is refused (an empty page would look like the end); a well-formed one is a place.
for q in ("after=not-a-uuid", "after=zzz", "after=%27%20OR%201=1--", "after="):
    st, js = ates.get("/api/tasks?assignee=all&" + q, headers=ADMIN)
    t.eq(st, 422, "GET /api/tasks?%s: %r" % (q, js))
    t(is_error(js, "validation") and "after" in js["error"]["message"], "it names after: %r" % js)
st, js = ates.get("/api/tasks?assignee=all&after=00000000-0000-4000-8000-000000000000", headers=ADMIN)
t.eq(st, 200, "a well-formed cursor before every id: %r" % js)
for path in ("/api/tasks/not-a-uuid", "/api/tasks/%27", "/api/tasks/" + "a" * 300):
    st, js = ates.get(path, headers=ADMIN)
    t(st in (404, 422), "GET %s: 404 or 422, got %d %r" % (path[:40], st, js))
    st, js = ates.post(path + "/complete", headers=ADMIN)
    t(st in (404, 422), "POST %s/complete: 404 or 422, got %d %r" % (path[:40], st, js))
st, js = ates.get("/api/tasks", headers={})
t.eq(st, 401, "list without a token")

t.eq(ates.stop(), 0, "clean stop")
t.done()
