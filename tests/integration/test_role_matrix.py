"""role x endpoint matrix (issue 8): every HTTP route of CONTRACT §2 (auth,
accounts, tracker, accounting, analytics, operations, web) called by each
role and without a token against one real `ates serve` with every service.
Each cell is one check: allowed -> the route's 2xx, no token on a protected
route -> 401 {"error":{"code":"unauthorized"}}, a role not allowed -> 403
{"error":{"code":"forbidden"}}. Cells that would change state get their own
fresh fixture (a task of the popug per cell, an account per cell), refused
mutations are shown to change nothing. Then tampered tokens (401) and the
cookie path (a mutation through the ates_token cookie needs
X-Requested-With: ates, else 403). The matrix is printed at the end."""
import base64
import datetime
import http.client
import json

from harness import (ATES_BIN, Ates, Check, NatsServer, bearer, is_error, login, parse_set_cookie,
                     wait_consumed)

ADMIN_EMAIL = "root@popug.test"
ADMIN_PASSWORD = "root-password"
ROLES = ["admin", "manager", "accountant", "popug"]
WHO = ROLES + [None]
# Cells run refused-first so "a refused call changed nothing" is checked
# before the allowed call changes the state (close-day, shuffle).
RUN_ORDER = [None, "popug", "accountant", "manager", "admin"]

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN,
            env={"ATES_ADMIN_PASSWORD": ADMIN_PASSWORD, "ATES_ADMIN_EMAIL": ADMIN_EMAIL}).start()

# --- accounts: one per role ---------------------------------------------------
EMAIL = {"admin": ADMIN_EMAIL}
PASSWORD = {"admin": ADMIN_PASSWORD}
admin = login(ates, ADMIN_EMAIL, ADMIN_PASSWORD)
TOKEN = {"admin": admin["access_token"]}
ID = {"admin": admin["account"]["id"]}
ADMIN_H = bearer(TOKEN["admin"])
for role in ("manager", "accountant", "popug"):
    EMAIL[role], PASSWORD[role] = "%s@popug.test" % role, "%s-password" % role
    st, acc = ates.post("/api/accounts", {"email": EMAIL[role], "name": role.title(), "role": role,
                                          "password": PASSWORD[role]}, headers=ADMIN_H)
    if st != 201:
        raise AssertionError("create the %s: %d %r" % (role, st, acc))
    got = login(ates, EMAIL[role], PASSWORD[role])
    TOKEN[role], ID[role] = got["access_token"], got["account"]["id"]
    t.eq((got["account"]["role"], acc["id"]), (role, ID[role]), "the %s logs in as itself" % role)

# Tracker must know who is eligible before a task can be created; accounting
# must know the popug for GET /api/accounting/accounts/{id}.
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 4)
wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", 4)


def headers_of(who):
    return bearer(TOKEN[who]) if who else {}


# --- fixtures -------------------------------------------------------------------
made = {"tasks": 0, "accounts": 0}


def popug_task():
    """A fresh open task whose assignee, read back, is the popug (shuffle.lua
    makes the accountant eligible too, so create until one lands on the popug)."""
    for _ in range(60):
        st, task = ates.post("/api/tasks", {"title": "Fixture %d" % made["tasks"]}, headers=ADMIN_H)
        if st != 201:
            raise AssertionError("fixture task: %d %r" % (st, task))
        made["tasks"] += 1
        st, back = ates.get("/api/tasks/" + task["id"], headers=ADMIN_H)
        if st == 200 and back.get("assignee_id") == ID["popug"] and back.get("status") == "open":
            return back["id"]
    raise AssertionError("no task landed on the popug in 60 creations")


def fresh_account():
    made["accounts"] += 1
    st, acc = ates.post("/api/accounts", {"email": "target%d@popug.test" % made["accounts"], "name": "Target",
                                          "role": "popug", "password": "target-password"}, headers=ADMIN_H)
    if st != 201:
        raise AssertionError("fixture account: %d %r" % (st, acc))
    return acc["id"]


def refresh_token_of(who):
    """A fresh refresh token (the no-token caller presents the popug's)."""
    role = who or "popug"
    return login(ates, EMAIL[role], PASSWORD[role])["refresh_token"]


def account_named(acc_id):
    st, js = ates.get("/api/accounts?limit=500", headers=ADMIN_H)
    for a in (js or {}).get("items", []) if st == 200 else []:
        if a.get("id") == acc_id:
            return a
    return None


def task_status(task_id):
    st, js = ates.get("/api/tasks/" + task_id, headers=ADMIN_H)
    return (js or {}).get("status") if st == 200 else "GET %d" % st


TODAY = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def day_closed(day):
    st, js = ates.get("/api/accounting/days?from=%s&to=%s" % (day, day), headers=ADMIN_H)
    items = (js or {}).get("items") if st == 200 else None
    return items[0].get("closed") if items else "GET %d %r" % (st, js)


BASE_TASK = popug_task()
# TaskCreated + TaskAssigned of every fixture task so far: accounting has priced BASE_TASK.
wait_consumed(nats.port, "ATES_TASKS", "accounting", 2 * made["tasks"])


# --- the table --------------------------------------------------------------------
# (label, method, allowed, ok status, prep(who) -> (path, body, ctx), after(who, ctx, st) or None,
#  extra(who, st, js, headers) -> bool folded into the cell's check, or None)
# allowed: "public" (anyone, with or without a token), "any" (any role), or a tuple of roles.

def fixed(path, body=None):
    return lambda who: (path, body, None)


def is_html(who, st, js, hd):
    return (hd.get("content-type") or "").startswith("text/html")


def me_is_caller(who, st, js, hd):
    return who is None or (isinstance(js, dict) and js.get("id") == ID[who] and js.get("role") == who)


def new_account_body(who):
    made["accounts"] += 1
    email = "made%d@popug.test" % made["accounts"]
    return "/api/accounts", {"email": email, "name": "Made", "role": "popug", "password": "made-password"}, email


def after_new_account(who, email, st):
    st2, js = ates.get("/api/accounts?limit=500", headers=ADMIN_H)
    exists = any(a.get("email") == email for a in (js or {}).get("items", []))
    t.eq(exists, who == "admin", "POST /api/accounts as %s: the account exists only if the admin asked"
         % (who or "nobody"))


def patch_prep(who):
    acc_id = fresh_account()
    return "/api/accounts/" + acc_id, {"name": "Renamed by %s" % (who or "nobody")}, acc_id


def after_patch(who, acc_id, st):
    name = (account_named(acc_id) or {}).get("name")
    t.eq(name, "Renamed by admin" if who == "admin" else "Target",
         "PATCH /api/accounts/{id} as %s: name afterwards" % (who or "nobody"))


def complete_prep(who):
    task_id = popug_task()
    return "/api/tasks/%s/complete" % task_id, None, task_id


def after_complete(who, task_id, st):
    t.eq(task_status(task_id), "done" if who == "popug" else "open",
         "complete popug's task as %s: status afterwards" % (who or "nobody"))


def after_close_day(who, ctx, st):
    t.eq(day_closed(TODAY), who == "admin", "close-day as %s: %s closed afterwards" % (who or "nobody", TODAY))


ROWS = [
    # web and operations: public
    ("GET /", "GET", "public", 200, fixed("/"), None, is_html),
    ("GET /tracker", "GET", "public", 200, fixed("/tracker"), None, is_html),
    ("GET /accounting", "GET", "public", 200, fixed("/accounting"), None, is_html),
    ("GET /analytics", "GET", "public", 200, fixed("/analytics"), None, is_html),
    ("GET /health", "GET", "public", 200, fixed("/health"), None, None),
    ("GET /ready", "GET", "public", 200, fixed("/ready"), None, None),
    ("GET /metrics", "GET", "public", 200, fixed("/metrics"), None,
     lambda who, st, js, hd: (hd.get("content-type") or "").startswith("text/plain")),
    ("GET /api/rules", "GET", ("admin",), 200, fixed("/api/rules"), None, None),
    # auth
    ("POST /api/auth/login", "POST", "public", 200,
     lambda who: ("/api/auth/login", {"email": EMAIL[who or "popug"], "password": PASSWORD[who or "popug"]}, None),
     None, lambda who, st, js, hd: isinstance(js, dict) and js.get("account", {}).get("id") == ID[who or "popug"]),
    ("POST /api/auth/refresh", "POST", "public", 200,
     lambda who: ("/api/auth/refresh", {"refresh_token": refresh_token_of(who)}, None),
     None, lambda who, st, js, hd: isinstance(js, dict) and bool(js.get("access_token"))),
    ("POST /api/auth/logout", "POST", "public", 204,
     lambda who: ("/api/auth/logout", {"refresh_token": refresh_token_of(who)}, None), None, None),
    ("GET /api/auth/me", "GET", "any", 200, fixed("/api/auth/me"), None, me_is_caller),
    ("GET /api/auth/jwks", "GET", "public", 200, fixed("/api/auth/jwks"), None, None),
    ("POST /api/accounts", "POST", ("admin",), 201, new_account_body, after_new_account, None),
    ("GET /api/accounts", "GET", ("admin",), 200, fixed("/api/accounts"), None, None),
    ("PATCH /api/accounts/{id}", "PATCH", ("admin",), 200, patch_prep, after_patch, None),
    # tracker
    ("POST /api/tasks", "POST", "any", 201, fixed("/api/tasks", {"title": "Matrix task"}), None, None),
    ("GET /api/tasks", "GET", "any", 200, fixed("/api/tasks"), None, None),
    ("GET /api/tasks?assignee=me", "GET", "any", 200, fixed("/api/tasks?assignee=me"), None, None),
    ("GET /api/tasks?assignee=all", "GET", "any", 200, fixed("/api/tasks?assignee=all"), None, None),
    ("GET /api/tasks?status=open", "GET", "any", 200, fixed("/api/tasks?status=open"), None, None),
    ("GET /api/tasks?assignee=all&status=done", "GET", "any", 200,
     fixed("/api/tasks?assignee=all&status=done"), None, None),
    ("GET /api/tasks/{id}", "GET", "any", 200, fixed("/api/tasks/" + BASE_TASK), None, None),
    ("POST /api/tasks/{popug's}/complete", "POST", ("popug",), 200, complete_prep, after_complete, None),
    ("POST /api/tasks/shuffle", "POST", ("manager", "admin"), 200, fixed("/api/tasks/shuffle"), None, None),
    # accounting
    ("GET /api/accounting/me", "GET", "any", 200, fixed("/api/accounting/me"), None,
     lambda who, st, js, hd: who is None or (isinstance(js, dict) and js.get("account_id") == ID[who])),
    ("GET /api/accounting/me?day=today", "GET", "any", 200, fixed("/api/accounting/me?day=" + TODAY), None, None),
    ("GET /api/accounting/accounts/{popug}", "GET", ("admin", "accountant"), 200,
     fixed("/api/accounting/accounts/" + ID["popug"]), None, None),
    ("GET /api/accounting/days", "GET", ("admin", "accountant"), 200,
     fixed("/api/accounting/days?from=%s&to=%s" % (TODAY, TODAY)), None, None),
    ("GET /api/accounting/today", "GET", ("admin", "accountant"), 200, fixed("/api/accounting/today"), None, None),
    ("GET /api/accounting/tasks/{id}", "GET", ("admin", "accountant"), 200,
     fixed("/api/accounting/tasks/" + BASE_TASK), None, None),
    ("POST /api/accounting/close-day", "POST", ("admin",), 200,
     fixed("/api/accounting/close-day", {"day": TODAY}), after_close_day, None),
    # analytics (admin only)
    ("GET /api/analytics/today", "GET", ("admin",), 200, fixed("/api/analytics/today"), None, None),
    ("GET /api/analytics/days", "GET", ("admin",), 200,
     fixed("/api/analytics/days?from=%s&to=%s" % (TODAY, TODAY)), None, None),
    ("GET /api/analytics/most-expensive", "GET", ("admin",), 200,
     fixed("/api/analytics/most-expensive?period=day&from=%s&to=%s" % (TODAY, TODAY)), None, None),
]


def expected(allowed, ok, who):
    if allowed == "public":
        return ok
    if who is None:
        return 401
    if allowed == "any" or who in allowed:
        return ok
    return 403


def cell_check(st, js, want):
    if st != want:
        return False
    if want == 401:
        return is_error(js, "unauthorized")
    if want == 403:
        return is_error(js, "forbidden")
    return True


# --- run the matrix -------------------------------------------------------------------
t.eq(day_closed(TODAY), False, "%s is open before the close-day row" % TODAY)
grid = {}   # label -> who -> cell text
for label, method, allowed, ok, prep, after, extra in ROWS:
    grid[label] = {}
    for who in RUN_ORDER:
        path, body, ctx = prep(who)
        st, js, hd, raw = ates.request(method, path, body=body, headers=headers_of(who))
        want = expected(allowed, ok, who)
        good = cell_check(st, js, want) and (extra is None or want != ok or extra(who, st, js, hd))
        code = js.get("error", {}).get("code") if isinstance(js, dict) and isinstance(js.get("error"), dict) else None
        t(good, "%s as %s: want %d%s, got %d %s" % (
            label, who or "nobody", want, {401: " unauthorized", 403: " forbidden"}.get(want, ""), st,
            (js if js is not None else raw[:200])))
        grid[label][who] = ("%d" % st) if good else ("*%d%s(%d)" % (st, ":" + code if code else "", want))
        if after:
            after(who, ctx, st)


# --- tampered and malformed tokens ------------------------------------------------------
def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def flip_sig(token):
    h, p, s = token.split(".")
    i = len(s) // 2
    return "%s.%s.%s%s%s" % (h, p, s[:i], "B" if s[i] != "B" else "C", s[i + 1:])


def with_claims(token, **claims):
    h, p, s = token.split(".")
    payload = json.loads(unb64url(p))
    payload.update(claims)
    return "%s.%s.%s" % (h, b64url(json.dumps(payload, separators=(",", ":")).encode()), s)


def alg_none(token):
    h, p, s = token.split(".")
    header = json.loads(unb64url(h))
    header["alg"] = "none"
    return "%s.%s." % (b64url(json.dumps(header).encode()), p)


TAMPERED = [
    ("popug token, one signature char changed", flip_sig(TOKEN["popug"]),
     ["/api/auth/me", "/api/tasks", "/api/accounting/me"]),
    ("popug token re-signed nowhere, role claim set to admin", with_claims(TOKEN["popug"], role="admin"),
     ["/api/accounts", "/api/analytics/today", "/api/rules", "/api/auth/me"]),
    ("admin token, sub changed to the popug", with_claims(TOKEN["admin"], sub=ID["popug"]),
     ["/api/accounting/me"]),
    ("admin token with alg none and no signature", alg_none(TOKEN["admin"]), ["/api/accounts", "/api/auth/me"]),
    ("admin token without its signature part", TOKEN["admin"].rsplit(".", 1)[0], ["/api/accounting/today"]),
    ("garbage", "not.a.token", ["/api/tasks"]),
]
tamper_rows = []
for what, tok, paths in TAMPERED:
    for path in paths:
        st, js = ates.get(path, headers=bearer(tok))
        good = t(st == 401 and is_error(js, "unauthorized"),
                 "GET %s with %s: want 401 unauthorized, got %d %r" % (path, what, st, js))
        tamper_rows.append(("GET %s [%s]" % (path, what), st, good))
st, js, hd, _ = ates.request("POST", "/api/tasks", body={"title": "forged"},
                             headers=bearer(with_claims(TOKEN["popug"], exp=4102444800)))
good = t(st == 401 and is_error(js, "unauthorized"), "POST /api/tasks with a forged exp: want 401, got %d %r" % (st, js))
tamper_rows.append(("POST /api/tasks [popug token, exp pushed to 2100]", st, good))


# --- the cookie path ----------------------------------------------------------------------
def cookie_login(role):
    """Log in and return the ates_token cookie the answer sets (every Set-Cookie header is read)."""
    conn = http.client.HTTPConnection("127.0.0.1", ates.port, timeout=10)
    try:
        conn.request("POST", "/api/auth/login", body=json.dumps({"email": EMAIL[role], "password": PASSWORD[role]}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        for k, v in resp.getheaders():
            if k.lower() == "set-cookie":
                name, val, attrs = parse_set_cookie(v)
                if name == "ates_token":
                    return val, resp.status
        return None, resp.status
    finally:
        conn.close()


def tasks_count():
    st, js = ates.get("/api/tasks?assignee=all&limit=500", headers=ADMIN_H)
    return len((js or {}).get("items", [])) if st == 200 else -1


XRW = {"X-Requested-With": "ates"}
cookie_rows = []


def cookie_call(label, method, path, cookie, want, code=None, body=None, extra_headers=None, pred=None):
    h = {"Cookie": "ates_token=" + cookie}
    h.update(extra_headers or {})
    st, js, hd, raw = ates.request(method, path, body=body, headers=h)
    good = st == want and (code is None or is_error(js, code)) and (pred is None or pred(js))
    t(good, "cookie: %s: want %d%s, got %d %r" % (label, want, " " + code if code else "", st, js))
    cookie_rows.append((label, st, want, good))
    return st, js


popug_cookie, st = cookie_login("popug")
t(st == 200 and bool(popug_cookie), "login as the popug sets the ates_token cookie (%d)" % st)
admin_cookie, st = cookie_login("admin")
t(st == 200 and bool(admin_cookie), "login as the admin sets the ates_token cookie (%d)" % st)
popug_cookie, admin_cookie = popug_cookie or "missing", admin_cookie or "missing"

cookie_call("popug GET /api/auth/me", "GET", "/api/auth/me", popug_cookie, 200,
            pred=lambda js: isinstance(js, dict) and js.get("id") == ID["popug"])
cookie_call("popug GET /api/accounts (role still enforced)", "GET", "/api/accounts", popug_cookie, 403, "forbidden")
cookie_call("popug GET /api/accounting/me", "GET", "/api/accounting/me", popug_cookie, 200)
cookie_call("tampered cookie GET /api/auth/me", "GET", "/api/auth/me", flip_sig(popug_cookie), 401, "unauthorized")
cookie_call("admin GET /api/analytics/today", "GET", "/api/analytics/today", admin_cookie, 200)

before = tasks_count()
cookie_call("popug POST /api/tasks, no X-Requested-With", "POST", "/api/tasks", popug_cookie, 403, "forbidden",
            body={"title": "Through the cookie"})
cookie_call("popug POST /api/tasks, X-Requested-With: XMLHttpRequest", "POST", "/api/tasks", popug_cookie, 403,
            "forbidden", body={"title": "Through the cookie"}, extra_headers={"X-Requested-With": "XMLHttpRequest"})
t.eq(tasks_count(), before, "the refused cookie creates made no task")
cookie_call("popug POST /api/tasks, X-Requested-With: ates", "POST", "/api/tasks", popug_cookie, 201,
            body={"title": "Through the cookie"}, extra_headers=XRW)
t.eq(tasks_count(), before + 1, "the allowed cookie create made one task")

task_id = popug_task()
cookie_call("popug complete own task, no X-Requested-With", "POST", "/api/tasks/%s/complete" % task_id,
            popug_cookie, 403, "forbidden")
t.eq(task_status(task_id), "open", "the refused cookie completion left the task open")
cookie_call("popug complete own task, X-Requested-With: ates", "POST", "/api/tasks/%s/complete" % task_id,
            popug_cookie, 200, extra_headers=XRW)
t.eq(task_status(task_id), "done", "the allowed cookie completion closed the task")

acc_id = fresh_account()
cookie_call("admin PATCH /api/accounts/{id}, no X-Requested-With", "PATCH", "/api/accounts/" + acc_id,
            admin_cookie, 403, "forbidden", body={"name": "Cookie rename"})
t.eq((account_named(acc_id) or {}).get("name"), "Target", "the refused cookie PATCH changed nothing")
cookie_call("admin PATCH /api/accounts/{id}, X-Requested-With: ates", "PATCH", "/api/accounts/" + acc_id,
            admin_cookie, 200, body={"name": "Cookie rename"}, extra_headers=XRW)
t.eq((account_named(acc_id) or {}).get("name"), "Cookie rename", "the allowed cookie PATCH renamed")
cookie_call("popug POST /api/tasks/shuffle, X-Requested-With: ates (role)", "POST", "/api/tasks/shuffle",
            popug_cookie, 403, "forbidden", extra_headers=XRW)
# A public route is not refused for a cookie without the header: it answers as for anyone.
cookie_call("popug POST /api/auth/refresh, no X-Requested-With (public)", "POST", "/api/auth/refresh",
            popug_cookie, 200, body={"refresh_token": refresh_token_of("popug")})

# --- the table --------------------------------------------------------------------------
COLS = [w or "none" for w in WHO]
width = max(len(r[0]) for r in ROWS) + 2
print("\nrole x endpoint matrix (status seen; *GOT:code(WANT) marks a cell that disagrees with the CONTRACT)")
cw = max([12] + [len(v) + 2 for r in grid.values() for v in r.values()])
print("".ljust(width) + "".join(c.ljust(cw) for c in COLS))
for label, *_ in ROWS:
    print(label.ljust(width) + "".join(grid[label].get(w, "-").ljust(cw) for w in WHO))
print("\ntampered tokens (want 401)")
for label, st, good in tamper_rows:
    print("  %s %d  %s" % ("ok " if good else "BAD", st, label))
print("\ncookie path")
for label, st, want, good in cookie_rows:
    print("  %s %d (want %d)  %s" % ("ok " if good else "BAD", st, want, label))
print()

t.eq(ates.stop(), 0, "clean stop")
t.done()
