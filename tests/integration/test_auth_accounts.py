"""auth accounts: create (shape, conflicts, validation), list with
pagination, get, patch (validation, revocation of refresh tokens,
deactivation, the last active admin)."""
import re

from harness import ATES_BIN, Ates, Check, NatsServer, bearer, is_error

ADMIN_EMAIL = "boss@popug.test"
ADMIN_PASSWORD = "boss-password-1"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIELDS = {"id", "email", "name", "role", "active", "created_at"}

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth",
            env={"ATES_ADMIN_PASSWORD": ADMIN_PASSWORD, "ATES_ADMIN_EMAIL": ADMIN_EMAIL}).start()


def login(email, password):
    st, body, hd, _ = ates.request("POST", "/api/auth/login", body={"email": email, "password": password})
    return st, body


st, body = login(ADMIN_EMAIL, ADMIN_PASSWORD)
t.eq(st, 200, "admin login: %r" % body)
ADMIN = bearer(body["access_token"]) if st == 200 else {}
admin_id = body["account"]["id"] if st == 200 else ""


def create(email, name="Popug", role="popug", password="password-1", headers=None):
    return ates.post("/api/accounts", {"email": email, "name": name, "role": role, "password": password},
                     headers=ADMIN if headers is None else headers)


def patch(aid, body, headers=None):
    st, js, hd, _ = ates.request("PATCH", "/api/accounts/" + aid, body=body,
                                 headers=ADMIN if headers is None else headers)
    return st, js


def no_secret(obj, what):
    text = repr(obj).lower()
    t("password" not in text and "hash" not in text and "argon" not in text,
      "%s: no password or hash in %r" % (what, obj))


# --- create -----------------------------------------------------------------------
st, ann = create("ann@popug.test", name="Ann", role="accountant", password="ann-password")
t.eq(st, 201, "create an account: %r" % ann)
if st == 201:
    t.eq(set(ann), FIELDS, "account fields")
    t(UUID_RE.match(ann["id"]) is not None, "id is a uuid: %r" % ann["id"])
    t(TIME_RE.match(ann["created_at"]) is not None, "created_at: %r" % ann["created_at"])
    t.eq((ann["email"], ann["name"], ann["role"], ann["active"]),
         ("ann@popug.test", "Ann", "accountant", True), "account values")
    no_secret(ann, "create answer")
else:
    ann = {"id": "00000000-0000-4000-8000-000000000000"}
st, body = login("ann@popug.test", "ann-password")
t.eq(st, 200, "the new account logs in: %r" % body)
ann_refresh = body.get("refresh_token") if st == 200 else ""

for email in ("ann@popug.test", "ANN@popug.test", "Ann@Popug.Test"):
    st, body = create(email)
    t.eq(st, 409, "taken email %s" % email)
    t(is_error(body, "conflict"), "409 body: %r" % body)

long_name = "x" * 201
bad = [
    ("missing email", {"name": "N", "role": "popug", "password": "password-1"}),
    ("missing name", {"email": "v1@popug.test", "role": "popug", "password": "password-1"}),
    ("missing role", {"email": "v2@popug.test", "name": "N", "password": "password-1"}),
    ("missing password", {"email": "v3@popug.test", "name": "N", "role": "popug"}),
    ("email a number", {"email": 7, "name": "N", "role": "popug", "password": "password-1"}),
    ("name a number", {"email": "v4@popug.test", "name": 7, "role": "popug", "password": "password-1"}),
    ("role a list", {"email": "v5@popug.test", "name": "N", "role": ["popug"], "password": "password-1"}),
    ("password a number", {"email": "v6@popug.test", "name": "N", "role": "popug", "password": 12345678}),
    ("email without @", {"email": "popug.test", "name": "N", "role": "popug", "password": "password-1"}),
    ("unknown role", {"email": "v7@popug.test", "name": "N", "role": "king", "password": "password-1"}),
    ("7-char password", {"email": "v8@popug.test", "name": "N", "role": "popug", "password": "1234567"}),
    ("empty name", {"email": "v9@popug.test", "name": "", "role": "popug", "password": "password-1"}),
    ("201-char name", {"email": "v10@popug.test", "name": long_name, "role": "popug", "password": "password-1"}),
]
for what, b in bad:
    st, body = ates.post("/api/accounts", b, headers=ADMIN)
    t.eq(st, 422, "create with %s" % what)
    t(is_error(body, "validation"), "create %s body: %r" % (what, body))
st, body, hd, _ = ates.request("POST", "/api/accounts", raw=b"{email:", headers=dict(ADMIN, **{
    "Content-Type": "application/json"}))
t.eq(st, 422, "create with a body that is not JSON")
t(is_error(body, "validation"), "not JSON body: %r" % body)

# The edges that are fine: 8-char password, 200-character names (also multi-byte).
st, body = create("edge1@popug.test", name="y" * 200, password="12345678")
t.eq(st, 201, "200-char name and 8-char password: %r" % (body if st != 201 else ""))
st, body = create("edge2@popug.test", name="\u00e9" * 200)
t.eq(st, 201, "200 two-byte characters are 200 characters: %r" % (body if st != 201 else ""))
if st == 201:
    t.eq(body["name"], "\u00e9" * 200, "the UTF-8 name round-trips")

# --- list and pagination ------------------------------------------------------------
created = [ann["id"]]
for i in range(5):
    st, body = create("page%d@popug.test" % i, name="Page %d" % i, role="popug")
    t.eq(st, 201, "create page%d" % i)
    if st == 201:
        created.append(body["id"])

st, body = ates.get("/api/accounts", headers=ADMIN)
t.eq(st, 200, "list accounts")
all_ids = []
if st == 200:
    t.eq(set(body), {"items", "next"}, "list shape")
    t(body.get("next") is None, "one page holds them all: next %r" % body.get("next"))
    items = body.get("items", [])
    all_ids = [a.get("id") for a in items]
    t.eq(len(items), 9, "admin + ann + 2 edges + 5 pages")
    t(all(set(a) == FIELDS for a in items), "list item fields")
    no_secret(body, "list")
    t.eq(all_ids[0], admin_id, "the bootstrap admin comes first")
    pos = [all_ids.index(i) if i in all_ids else -1 for i in created]
    t(pos == sorted(pos) and -1 not in pos, "creation order: %r" % pos)

seen, after, pages = [], None, 0
while pages < 20:
    path = "/api/accounts?limit=3" + ("&after=" + after if after else "")
    st, body = ates.get(path, headers=ADMIN)
    if not t.eq(st, 200, "page %d" % pages):
        break
    pages += 1
    t(len(body["items"]) <= 3, "limit=3 honoured")
    seen += [a["id"] for a in body["items"]]
    after = body.get("next")
    if after is None:
        break
    t.eq(after, body["items"][-1]["id"] if body["items"] else None, "next is the last id of the page")
t.eq(seen, all_ids, "pages of 3 walk every account once, in order")
t.eq(pages, 3, "9 accounts make 3 pages of 3")
st, body = ates.get("/api/accounts?limit=500", headers=ADMIN)
t.eq(st, 200, "limit=500 is allowed")
for q in ("limit=0", "limit=501", "limit=x", "limit=-1"):
    st, body = ates.get("/api/accounts?" + q, headers=ADMIN)
    t.eq(st, 422, "list with %s" % q)
    t(is_error(body, "validation"), "list %s body: %r" % (q, body))

# --- get ---------------------------------------------------------------------------
st, body = ates.get("/api/accounts/" + ann["id"], headers=ADMIN)
t.eq(st, 200, "get an account")
if st == 200:
    t.eq(body.get("email"), "ann@popug.test", "get returns that account")
    t.eq(set(body), FIELDS, "get fields")
UNKNOWN = "0190a0a0-0000-7000-8000-000000000001"
st, body = ates.get("/api/accounts/" + UNKNOWN, headers=ADMIN)
t.eq(st, 404, "get an unknown id")
t(is_error(body, "not_found"), "404 body: %r" % body)

# --- patch -------------------------------------------------------------------------
st, body = patch(UNKNOWN, {"name": "Ghost"})
t.eq(st, 404, "patch an unknown id")
t(is_error(body, "not_found"), "patch 404 body: %r" % body)
for what, b in (("unknown role", {"role": "king"}), ("active a string", {"active": "false"}),
                ("active a number", {"active": 0}), ("empty name", {"name": ""}),
                ("name a number", {"name": 5}), ("201-char name", {"name": long_name})):
    st, body = patch(ann["id"], b)
    t.eq(st, 422, "patch with %s" % what)
    t(is_error(body, "validation"), "patch %s body: %r" % (what, body))
st, body = patch(ann["id"], {"name": "Ann Smith"})
t.eq(st, 200, "patch the name: %r" % body)
if st == 200:
    t.eq((body["name"], body["role"], body["active"]), ("Ann Smith", "accountant", True), "only the name changed")
    no_secret(body, "patch answer")
st, body = ates.get("/api/accounts/" + ann["id"], headers=ADMIN)
t.eq(body.get("name") if st == 200 else None, "Ann Smith", "the new name is stored")

# A role change revokes the account's refresh tokens.
st, body = ates.post("/api/auth/refresh", {"refresh_token": ann_refresh})
t.eq(st, 200, "ann refreshes before the change")
ann_refresh = body.get("refresh_token") if st == 200 else ann_refresh
st, body = patch(ann["id"], {"role": "manager"})
t.eq(st, 200, "change the role: %r" % body)
t.eq(body.get("role") if st == 200 else None, "manager", "the role changed")
st, body = ates.post("/api/auth/refresh", {"refresh_token": ann_refresh})
t.eq(st, 401, "refresh after a role change: %r" % body)
t(is_error(body, "unauthorized"), "refresh 401 body: %r" % body)
st, body = login("ann@popug.test", "ann-password")
t.eq(st, 200, "ann logs in again (as manager)")
if st == 200:
    t.eq(body["account"]["role"], "manager", "the new role in the login answer")
ann_refresh = body.get("refresh_token") if st == 200 else ""

# Deactivation revokes refresh tokens and blocks login with the usual message.
st, wrong = login("ann@popug.test", "wrong-password")
st, body = patch(ann["id"], {"active": False})
t.eq(st, 200, "deactivate: %r" % body)
t.eq(body.get("active") if st == 200 else None, False, "inactive now")
st, body = ates.post("/api/auth/refresh", {"refresh_token": ann_refresh})
t.eq(st, 401, "refresh of an inactive account")
st, body = login("ann@popug.test", "ann-password")
t.eq(st, 401, "an inactive account cannot log in: %r" % body)
t(is_error(body, "unauthorized"), "inactive login body: %r" % body)
if is_error(body, "unauthorized") and is_error(wrong, "unauthorized"):
    t.eq(body["error"]["message"], wrong["error"]["message"], "same message as a wrong password")
st, body = ates.get("/api/accounts", headers=ADMIN)
t(st == 200 and ann["id"] in [a["id"] for a in body["items"]], "an inactive account is still listed")
st, body = patch(ann["id"], {"active": True})
t.eq(st, 200, "reactivate")
st, body = ates.post("/api/auth/refresh", {"refresh_token": ann_refresh})
t.eq(st, 401, "a refresh token from before the deactivation stays revoked after reactivation")
st, body = login("ann@popug.test", "ann-password")
t.eq(st, 200, "a reactivated account logs in: %r" % body)

# The last active admin cannot be demoted or deactivated.
st, body = patch(admin_id, {"role": "manager"})
t.eq(st, 409, "demote the last admin: %r" % body)
t(is_error(body, "conflict"), "409 body: %r" % body)
st, body = patch(admin_id, {"active": False})
t.eq(st, 409, "deactivate the last admin: %r" % body)
st, body = ates.get("/api/accounts/" + admin_id, headers=ADMIN)
t(st == 200 and body["role"] == "admin" and body["active"] is True, "the admin is unchanged: %r" % body)
st, second = create("admin2@popug.test", name="Second", role="admin")
t.eq(st, 201, "a second admin")
second_id = second.get("id", "") if st == 201 else ""
st, body = patch(second_id, {"active": False})
t.eq(st, 200, "an admin can be deactivated while another admin is active: %r" % body)
st, body = patch(admin_id, {"role": "popug"})
t.eq(st, 409, "the inactive second admin does not count: %r" % body)
st, body = patch(second_id, {"active": True})
t.eq(st, 200, "reactivate the second admin")
st, body = patch(second_id, {"role": "manager"})
t.eq(st, 200, "demote one of two admins: %r" % body)
st, body = patch(admin_id, {"role": "manager", "name": "Boss"})
t.eq(st, 409, "now the first is the last again: %r" % body)
st, body = ates.get("/api/accounts/" + admin_id, headers=ADMIN)
t(st == 200 and body["name"] != "Boss", "a refused patch changes nothing, not even the name: %r" % body)

t.eq(ates.stop(), 0, "clean stop")
t.done()
