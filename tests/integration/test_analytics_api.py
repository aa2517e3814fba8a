"""analytics over HTTP and NATS: a scenario of accounting and tracker events
(fed by hand, in a scrambled order, with past times across a week and a
month boundary, business days in Europe/Berlin) gives the CONTRACT's answers
for /today, /days and /most-expensive by day, week and month; admin only;
bad ranges are 422."""
import datetime

import analytics_scenario as sc
from harness import ATES_BIN, Ates, Check, NatsServer, add_account, bearer, fast_nats, login, wait_consumed

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,analytics",
            env={"ATES_ADMIN_PASSWORD": "analytics-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                 "ATES_TZ": sc.TZ}).start()
ADMIN = bearer(login(ates, "root@popug.test", "analytics-admin-pw")["access_token"])
H = {}
for role in ("popug", "manager", "accountant"):
    _, H[role] = add_account(ates, ADMIN, "%s@popug.test" % role, role, role + "-password")

nc = fast_nats(nats.port)
counts = sc.publish(nc, sc.all_events() + sc.ledger_events(sc.today_ledger()))
for stream, n in counts.items():
    wait_consumed(nats.port, stream, "analytics", n)
wait_consumed(nats.port, "ATES_ACCOUNTS", "analytics", 4)


def get(path, headers=ADMIN):
    return ates.get("/api/analytics/" + path, headers=headers)


# --- /today: today's entries only; accounts below zero now (B and C)
before = sc.today()
st, js = get("today")
t.eq(st, 200, "today: %r" % js)
t(js.get("day") in (before, sc.today()), "today is the business day in %s: %r" % (sc.TZ, js.get("day")))
t.eq(js, {"day": js.get("day"), "management_earnings_cents": 1100 - 500, "negative_accounts": 2}, "today")

# --- /days across the week and month boundaries
st, js = get("days?from=2026-09-25&to=2026-10-06")
t.eq(st, 200, "days: %r" % js)
want = sc.expected_days("2026-09-25", "2026-10-06")
got = js.get("items", []) if isinstance(js, dict) else []
t.eq(len(got), len(want), "one item per day")
for g, w in zip(got, want):
    t.eq(g, w, "days: %s" % w["day"])
st, js = get("days?from=2026-10-01&to=2026-10-01")
t.eq(js, {"items": sc.expected_days("2026-10-01", "2026-10-01")}, "a one-day range")

# --- /most-expensive by day: one item per day, empty days present with nulls
st, js = get("most-expensive?period=day&from=2026-09-26&to=2026-10-06")
t.eq(st, 200, "most-expensive by day: %r" % js)
want = sc.expected_best_days("2026-09-26", "2026-10-06")
got = js.get("items", []) if isinstance(js, dict) else []
t.eq(len(got), len(want["items"]), "one item per day")
for g, w in zip(got, want["items"]):
    t.eq(g, w, "most expensive of %s" % w["period"])
t.eq(js.get("overall"), sc.item("2026-10-01", "T5"), "overall: the highest reward")
t.eq(set(js), {"items", "overall"}, "the answer's fields")
t.eq(js["items"][-2]["task_id"], sc.task_id(6), "a tie goes to the earlier completion (T6 before T7)")

# by week (Monday first): the first week begins before `from` and counts its days
st, js = get("most-expensive?period=week&from=2026-09-26&to=2026-10-06")
t.eq(st, 200, "by week: %r" % js)
t.eq(js.get("items"), [sc.item("2026-09-21", "T2"), sc.item("2026-09-28", "T5"), sc.item("2026-10-05", "T6")],
     "by week: T2 is Sunday's (23:30 local), T3 Monday's (00:30 local)")
t.eq(js.get("overall"), sc.item("2026-09-28", "T5"), "by week: overall")
st, js = get("most-expensive?period=week&from=2026-09-21&to=2026-09-27")
t.eq(js.get("items"), [sc.item("2026-09-21", "T2")], "one whole week")

# by month: September's tie (T0, T2, T3 at 39.00) goes to the earliest completion
st, js = get("most-expensive?period=month&from=2026-09-26&to=2026-10-06")
t.eq(st, 200, "by month: %r" % js)
t.eq(js.get("items"), [sc.item("2026-09-01", "T0"), sc.item("2026-10-01", "T5")], "by month")
t.eq(js.get("overall"), sc.item("2026-10-01", "T5"), "by month: overall")
st, js = get("most-expensive?period=month&from=2026-08-01&to=2026-08-31")
t.eq(js, {"items": [sc.item("2026-08-01", None)], "overall": sc.item(None, None)},
     "a month with nothing completed: null task, null overall")

# the v1 titles are split, v2 kept; unpriced (T8) and unfinished (T9) tasks never count
st, js = get("most-expensive?period=day&from=2026-09-01&to=2026-10-31")
ids = {i["task_id"] for i in js.get("items", [])}
t(sc.task_id(8) not in ids and sc.task_id(9) not in ids, "T8 (never priced), T9 (not done) never count")
t.eq(js["items"][1], sc.item("2026-09-02", "T0"), "'[UBERPOP-0]  Early bird ' -> UBERPOP-0, 'Early bird'")

# --- ranges
day0 = datetime.date(2025, 1, 1)
span = lambda n: "from=%s&to=%s" % (day0.isoformat(), (day0 + datetime.timedelta(days=n - 1)).isoformat())
st, js = get("days?" + span(366))
t.eq((st, len(js.get("items", []))), (200, 366), "366 days is the longest range")
st, js = get("most-expensive?period=day&" + span(366))
t.eq((st, len(js.get("items", []))), (200, 366), "366 days by day")
st, js = get("most-expensive?period=month&" + span(366))
t.eq((st, [i["period"] for i in js.get("items", [])]),
     (200, ["2025-%02d-01" % m for m in range(1, 13)] + ["2026-01-01"]), "366 days by month")
for path in ("days?" + span(367), "most-expensive?period=day&" + span(367),
             "most-expensive?period=week&" + span(400),
             "days?from=2026-02-30&to=2026-03-01", "days?from=2026-10-02&to=2026-10-01",
             "days?from=yesterday", "days?to=2026-13-01", "most-expensive?period=year",
             "most-expensive?period=day&from=2026-10-01&to=20261002", "days?from="):
    st, js = get(path)
    t.eq(st, 422, "422 for %s: %r" % (path, js))
    t(isinstance(js, dict) and js.get("error", {}).get("code") == "validation", "validation body for " + path)
before = sc.today()
st, js = get("days")
days = [i["day"] for i in (js or {}).get("items", [])]
t(st == 200 and days in ([before], [sc.today()]), "no range: today alone: %d %r" % (st, days))

# --- admin only
for path in ("today", "days?from=2026-10-01&to=2026-10-02", "most-expensive?period=week"):
    for role in ("popug", "manager", "accountant"):
        st, js = get(path, headers=H[role])
        t.eq((st, (js or {}).get("error", {}).get("code")), (403, "forbidden"), "%s: %s" % (role, path))
    st, js = get(path, headers={})
    t.eq((st, (js or {}).get("error", {}).get("code")), (401, "unauthorized"), "no token: " + path)
    st, js = get(path, headers=bearer("not.a.token"))
    t.eq(st, 401, "a bad token: " + path)

nc.close()
t.eq(ates.stop(), 0, "a clean stop")
t.done()
