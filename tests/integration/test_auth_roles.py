"""auth role matrix: every route of the auth table, for each role and
without a token, answers allowed / 401 / 403 as CONTRACT §2 says; refused
mutations change nothing."""
from harness import ATES_BIN, Ates, Check, NatsServer, bearer, is_error

ADMIN_EMAIL = "matrix@popug.test"
ADMIN_PASSWORD = "matrix-password"

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth",
            env={"ATES_ADMIN_PASSWORD": ADMIN_PASSWORD, "ATES_ADMIN_EMAIL": ADMIN_EMAIL}).start()


def login(email, password):
    st, body, hd, _ = ates.request("POST", "/api/auth/login", body={"email": email, "password": password})
    t.eq(st, 200, "login %s: %r" % (email, body))
    return body if st == 200 else {"access_token": "x", "account": {"id": "x"}}


admin = login(ADMIN_EMAIL, ADMIN_PASSWORD)
tokens = {"admin": admin["access_token"]}
ids = {"admin": admin["account"]["id"]}
for role in ("manager", "accountant", "popug"):
    email = "%s@popug.test" % role
    st, body = ates.post("/api/accounts", {"email": email, "name": role.title(), "role": role,
                                           "password": role + "-password"}, headers=bearer(tokens["admin"]))
    t.eq(st, 201, "create the %s" % role)
    got = login(email, role + "-password")
    tokens[role], ids[role] = got["access_token"], got["account"]["id"]
st, target = ates.post("/api/accounts", {"email": "target@popug.test", "name": "Target", "role": "popug",
                                         "password": "target-password"}, headers=bearer(tokens["admin"]))
t.eq(st, 201, "create the target")
target_id = target.get("id", "x") if st == 201 else "x"

WHO = ["admin", "manager", "accountant", "popug", None]
n = [0]


def call(method, path, who, body=None):
    h = bearer(tokens[who]) if who else {}
    st, js, hd, raw = ates.request(method, path, body=body, headers=h)
    return st, js


def new_account():
    n[0] += 1
    return {"email": "made%d@popug.test" % n[0], "name": "Made", "role": "popug", "password": "made-password"}


def expect(route, who, st, js, want):
    label = "%s as %s" % (route, who or "nobody")
    t.eq(st, want, label)
    code = {401: "unauthorized", 403: "forbidden", 422: "validation"}.get(want)
    if code:
        t(is_error(js, code), "%s: error body %r" % (label, js))


attempted = []
for who in WHO:
    # Public routes: they answer the same with any token or none.
    st, js = call("POST", "/api/auth/login", who, {})
    expect("POST /api/auth/login {}", who, st, js, 422)
    st, js = call("POST", "/api/auth/refresh", who, {})
    expect("POST /api/auth/refresh {}", who, st, js, 422)
    st, js = call("POST", "/api/auth/refresh", who, {"refresh_token": "not-a-token"})
    expect("POST /api/auth/refresh unknown", who, st, js, 401)
    st, js = call("POST", "/api/auth/logout", who, {"refresh_token": "not-a-token"})
    expect("POST /api/auth/logout", who, st, js, 204)
    st, js = call("GET", "/api/auth/jwks", who)
    expect("GET /api/auth/jwks", who, st, js, 200)

    # Any role.
    st, js = call("GET", "/api/auth/me", who)
    expect("GET /api/auth/me", who, st, js, 200 if who else 401)
    if who and st == 200:
        t.eq((js.get("id"), js.get("role")), (ids[who], who), "/me as %s is that account" % who)

    # Admin only.
    deny = 200 if who == "admin" else (403 if who else 401)
    acc = new_account()
    attempted.append((who, acc["email"]))
    st, js = call("POST", "/api/accounts", who, acc)
    expect("POST /api/accounts", who, st, js, 201 if who == "admin" else deny)
    st, js = call("GET", "/api/accounts", who)
    expect("GET /api/accounts", who, st, js, deny)
    st, js = call("GET", "/api/accounts/" + target_id, who)
    expect("GET /api/accounts/{id}", who, st, js, deny)
    st, js = call("GET", "/api/accounts/" + ids["popug"], who)
    expect("GET /api/accounts/{own popug id}", who, st, js, deny)
    st, js = call("PATCH", "/api/accounts/" + target_id, who, {"name": "Renamed by %s" % (who or "nobody")})
    expect("PATCH /api/accounts/{id}", who, st, js, deny)
    if who:
        st, js = call("PATCH", "/api/accounts/" + ids[who], who, {"role": "admin"} if who != "admin" else {"name": "Matrix"})
        expect("PATCH own account", who, st, js, 200 if who == "admin" else 403)

# Nothing the refused callers asked for happened.
st, js = ates.get("/api/accounts?limit=500", headers=bearer(tokens["admin"]))
t.eq(st, 200, "list as admin")
emails = {a["email"]: a for a in (js or {}).get("items", [])}
for who, email in attempted:
    t.eq(email in emails, who == "admin", "account %s requested by %s exists only if admin asked" % (email, who))
t.eq(emails.get("target@popug.test", {}).get("name"), "Renamed by admin", "only the admin's rename stuck")
for role in ("manager", "accountant", "popug"):
    t.eq(emails.get("%s@popug.test" % role, {}).get("role"), role, "%s did not promote itself" % role)

# The unknown route under /api/accounts stays an error body, whoever asks.
st, js = call("DELETE", "/api/accounts/" + target_id, "admin")
t(st in (404, 405) and isinstance(js, dict) and set(js) == {"error"}, "accounts are never deleted: %d %r" % (st, js))

t.eq(ates.stop(), 0, "clean stop")
t.done()
