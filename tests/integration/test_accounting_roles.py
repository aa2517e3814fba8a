"""accounting's routes for every role: /me for anyone with a token (its own
ledger only, paged), /accounts/{id}, /days, /today and /tasks/{id} for
admin and accountant, close-day for admin only; 403 forbidden for the other
roles (and a refused close changes nothing), 401 unauthorized without a
token, with a malformed one, an expired one or one signed by a foreign key.
422 validation for bad days, ids, ranges, limits and close-day bodies; 404
for unknown accounts and tasks; the CONTRACT error body everywhere."""
import os
import time

import accounting_util as au
from harness import (ATES_BIN, Ates, Check, NatsServer, add_account, bearer, fast_nats, is_error, login,
                     repo_rules, tmpdir, tool_jwt, wait_consumed)

TZ = au.noon_tz()
t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,accounting", rules_dir=au.fixed_rules(repo_rules()),
            env={"ATES_ADMIN_PASSWORD": "roles-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                 "ATES_TZ": TZ}).start()
root = login(ates, "root@popug.test", "roles-admin-pw")
H = {"admin": bearer(root["access_token"])}
ID = {"admin": root["account"]["id"]}
for role in ("manager", "accountant", "popug"):
    acc, H[role] = add_account(ates, H["admin"], "%s@popug.test" % role, role, role + "-password")
    ID[role] = acc["id"]
acc, H["popug2"] = add_account(ates, H["admin"], "popug2@popug.test", "popug", "popug2-password")
ID["popug2"] = acc["id"]
wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", 5)
TODAY = au.today(TZ)
Y = au.day_add(TODAY, -1)
TOMORROW = au.day_add(TODAY, 1)

# the popug's ledger today: 7 debits of one task; one debit yesterday
nc = fast_nats(nats.port)
TASK = au.new_id()
evs = [au.task_created(TASK, "Paged 3", ID["popug"])]
evs += [au.task_assigned(TASK, ID["popug"], previous=ID["popug"]) for _ in range(7)]
evs += [au.task_assigned(TASK, ID["popug"], previous=ID["popug"], at=au.at_local(TZ, Y, 10))]
au.publish(nc, evs)
wait_consumed(nats.port, "ATES_TASKS", "accounting", len(evs))
nc.close()

now = int(time.time())
KEYS = os.path.join(ates.data_dir, "keys")
BAD = {
    "none": {},
    "malformed": bearer("not.a.token"),
    "expired": bearer(tool_jwt(KEYS, ID["admin"], "admin", now - 1000, now - 500)),
    "foreign key": bearer(tool_jwt(os.path.join(tmpdir("otherkeys"), "keys"), ID["admin"], "admin", now,
                                   now + 600)),
}
st, _ = ates.get("/api/accounting/today", headers=bearer(tool_jwt(KEYS, ID["admin"], "admin", now, now + 600)))
t.eq(st, 200, "a token made by tool_jwt with the server's key is accepted (so the refusals below mean something)")

ROUTES = [  # method, path, body, roles allowed
    ("GET", "/api/accounting/me", None, {"admin", "manager", "accountant", "popug"}),
    ("GET", "/api/accounting/accounts/" + ID["popug"], None, {"admin", "accountant"}),
    ("GET", "/api/accounting/accounts/%s?day=%s" % (ID["popug"], Y), None, {"admin", "accountant"}),
    ("GET", "/api/accounting/days?from=%s&to=%s" % (Y, TODAY), None, {"admin", "accountant"}),
    ("GET", "/api/accounting/today", None, {"admin", "accountant"}),
    ("GET", "/api/accounting/tasks/" + TASK, None, {"admin", "accountant"}),
    ("POST", "/api/accounting/close-day", {"day": Y}, {"admin"}),
]
for method, path, body, allowed in ROUTES:
    for who, hd in BAD.items():
        st, js, _, _ = ates.request(method, path, body=body, headers=hd)
        t(st == 401 and is_error(js, "unauthorized"), "%s %s, token %s: 401 (%d %r)" % (method, path, who, st, js))
    for role in ("popug", "manager", "accountant", "admin"):  # refused ones first
        st, js, _, _ = ates.request(method, path, body=body, headers=H[role])
        if role in allowed:
            t.eq(st, 200, "%s %s as %s: %r" % (method, path, role, js))
        else:
            t(st == 403 and is_error(js, "forbidden"), "%s %s as %s: 403 (%d %r)" % (method, path, role, st, js))
t.eq(au.db_rows(ates.data_dir, "SELECT day FROM closed_days"), [(Y,)], "only the admin's close happened")

# --- /me: one's own ledger, whoever asks ---------------------------------------------------------
st, me = ates.get("/api/accounting/me", headers=H["popug"])
t.eq((me["account_id"], me["day"], me["balance_cents"], len(me["entries"]), me.get("next")),
     (ID["popug"], TODAY, -8 * 1003, 7, None), "the popug's /me: its own balance and today's 7 entries")
st, me2 = ates.get("/api/accounting/me", headers=H["popug2"])
t.eq((st, me2["account_id"], me2["balance_cents"], me2["entries"]), (200, ID["popug2"], 0, []),
     "another popug sees only its own (empty) ledger")
ghost = au.new_id()
st, js = ates.get("/api/accounting/me", headers=bearer(tool_jwt(KEYS, ghost, "popug", now, now + 600)))
t.eq((st, js), (200, {"account_id": ghost, "day": TODAY, "balance_cents": 0, "entries": [], "next": None}),
     "an account accounting has not heard of: balance 0, no entries")
st, js = ates.get("/api/accounting/me?day=" + Y, headers=H["popug"])
t.eq([(e["kind"], e["amount_cents"], e["balance_cents"]) for e in js["entries"]], [("debit", 1003, -8 * 1003)],
     "/me?day=yesterday: yesterday's entry (booked last: the balance right after it is -8 x 1003)")
st, js = ates.get("/api/accounting/me?day=" + TOMORROW, headers=H["popug"])
t.eq((st, js["entries"], js["balance_cents"]), (200, [], -8 * 1003), "a day without entries: empty, balance now")

# paging: limit and after
all_entries = me["entries"]
pages, after = [], None
for _ in range(10):
    st, js = ates.get("/api/accounting/me?limit=3" + ("&after=" + after if after else ""), headers=H["popug"])
    t.eq(st, 200, "a page")
    pages.append([e["id"] for e in js["entries"]])
    after = js.get("next")
    if not after:
        break
t.eq([len(p) for p in pages], [3, 3, 1], "7 entries in pages of 3")
t.eq([i for p in pages for i in p], [e["id"] for e in all_entries], "the pages are the whole day, in order")
t.eq(au.ledger(ates, H["accountant"], ID["popug"], TODAY, limit=2)[0], all_entries,
     "/accounts/{id} pages the same way")

# --- 422, 404 ------------------------------------------------------------------------------------------
ACC = H["accountant"]
for path in ("/api/accounting/me?day=2026-02-30", "/api/accounting/me?day=yesterday",
             "/api/accounting/me?day=2026-1-01", "/api/accounting/me?day=", "/api/accounting/me?day=20261201", "/api/accounting/me?limit=0",
             "/api/accounting/me?limit=501", "/api/accounting/me?limit=ten",
             "/api/accounting/accounts/not-a-uuid", "/api/accounting/accounts/%s?day=2026-13-01" % ID["popug"],
             "/api/accounting/days?from=%s&to=%s" % (TODAY, Y), "/api/accounting/days?from=2025-01-01&to=2026-01-02",
             "/api/accounting/days?from=2026-02-29", "/api/accounting/days?to=tomorrow", "/api/accounting/days?from=",
             "/api/accounting/tasks/not-a-uuid", "/api/accounting/tasks/" + TASK + "x"):
    st, js = ates.get(path, headers=ACC if "/me" not in path else H["popug"])
    t(st == 422 and is_error(js, "validation"), "422 for %s: %d %r" % (path, st, js))
for path in ("/api/accounting/accounts/" + au.new_id(), "/api/accounting/tasks/" + au.new_id()):
    st, js = ates.get(path, headers=ACC)
    t(st == 404 and is_error(js, "not_found"), "404 for %s: %d %r" % (path, st, js))
st, js = ates.get("/api/accounting/days?from=2025-01-01&to=2026-01-01", headers=ACC)
t.eq((st, len(js.get("items", [])), js["items"][0]["day"], js["items"][-1]["day"]),
     (200, 366, "2025-01-01", "2026-01-01"), "366 days is the longest range")
st, js = ates.get("/api/accounting/days", headers=ACC)
t.eq((st, [i["day"] for i in js["items"]]), (200, [TODAY]), "no range: today")
st, js = ates.get("/api/accounting/days?from=" + Y, headers=ACC)
t.eq([(i["day"], i["debits_cents"], i["closed"]) for i in js["items"]], [(Y, 1003, True), (TODAY, 7 * 1003, False)],
     "from alone: up to today")
st, js = ates.get("/api/accounting/days?to=" + Y, headers=ACC)
t.eq([i["day"] for i in js["items"]], [Y], "to alone: that day")
st, js = ates.get("/api/accounting/today", headers=ACC)
t.eq(js, {"day": TODAY, "management_earnings_cents": 7 * 1003}, "/today")

for body, raw in (({"day": "2026-13-01"}, None), ({"day": TOMORROW}, None), ({"day": 20261201}, None),
                  ({"day": ""}, None), (None, b"not json"), (None, b"[]"), (None, b'"2026-12-01"')):
    st, js, _, _ = ates.request("POST", "/api/accounting/close-day", body=body, raw=raw,
                                headers=dict(H["admin"], **({"Content-Type": "application/json"} if raw else {})))
    t(st == 422 and is_error(js, "validation"), "close-day %r: 422 (%d %r)" % (body or raw, st, js))
st, js, _, _ = ates.request("POST", "/api/accounting/close-day", raw=b'{"day": "' + b"x" * 70000 + b'"}',
                            headers=dict(H["admin"], **{"Content-Type": "application/json"}))
t(st == 413 and is_error(js, "too_large"), "close-day with a body over 64 KiB: 413 (%d)" % st)
t.eq(au.db_rows(ates.data_dir, "SELECT day FROM closed_days"), [(Y,)], "refused closes changed nothing")

t.eq(ates.stop(), 0, "clean stop")
t.done()
