"""auth login: the bootstrap admin logs in, the answer's shape and cookie,
case-insensitive email, one message for every wrong pair, validation,
/me and /jwks, and the login throttle that survives a restart."""
import base64
import json
import re

from harness import ATES_BIN, Ates, Check, NatsServer, bearer, is_error, parse_set_cookie

ADMIN_EMAIL = "root@popug.test"
ADMIN_PASSWORD = "correct horse battery"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth",
            env={"ATES_ADMIN_PASSWORD": ADMIN_PASSWORD, "ATES_ADMIN_EMAIL": ADMIN_EMAIL}).start()


def login(email, password):
    st, body, hd, _ = ates.request("POST", "/api/auth/login", body={"email": email, "password": password})
    return st, body, hd


def b64json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def account_ok(a, what):
    t(isinstance(a, dict) and set(a) == {"id", "email", "name", "role", "active", "created_at"},
      "%s: account fields %r" % (what, a))
    if isinstance(a, dict):
        t(UUID_RE.match(str(a.get("id"))) is not None, "%s: id is a uuid: %r" % (what, a.get("id")))
        t(TIME_RE.match(str(a.get("created_at"))) is not None, "%s: created_at RFC 3339 ms Z: %r"
          % (what, a.get("created_at")))
        t(a.get("active") is True, "%s: active" % what)


# --- a good login -------------------------------------------------------------
st, body, hd = login(ADMIN_EMAIL, ADMIN_PASSWORD)
t.eq(st, 200, "admin login: %r" % body)
access = body.get("access_token", "") if isinstance(body, dict) else ""
refresh = body.get("refresh_token", "") if isinstance(body, dict) else ""
if st == 200:
    t.eq(set(body), {"access_token", "token_type", "expires_in", "refresh_token", "account"}, "login fields")
    t.eq(body.get("token_type"), "Bearer", "token_type")
    t.eq(body.get("expires_in"), 300, "expires_in is the default ATES_ACCESS_TTL")
    t(isinstance(refresh, str) and len(refresh) >= 16, "a refresh token: %r" % refresh)
    t(refresh != access, "refresh token is not the access token")
    account_ok(body.get("account"), "login account")
    t.eq(body["account"].get("email"), ADMIN_EMAIL, "login account email")
    t.eq(body["account"].get("role"), "admin", "login account role")
    parts = access.split(".")
    t.eq(len(parts), 3, "access token is a JWS")
    if len(parts) == 3:
        header, payload = b64json(parts[0]), b64json(parts[1])
        t.eq(header.get("alg"), "EdDSA", "token alg")
        t.eq(payload.get("sub"), body["account"]["id"], "token sub is the account id")
        t.eq(payload.get("role"), "admin", "token role")
        t(isinstance(payload.get("iat"), int) and isinstance(payload.get("exp"), int)
          and payload["exp"] - payload["iat"] == 300, "iat/exp 300 s apart: %r" % payload)
    name, val, attrs = parse_set_cookie(hd.get("set-cookie"))
    t.eq(name, "ates_token", "cookie name: %r" % hd.get("set-cookie"))
    t.eq(val, access, "cookie value is the access token")
    t.eq(attrs.get("path"), "/", "cookie Path")
    t(attrs.get("httponly") is True, "cookie HttpOnly")
    t.eq(str(attrs.get("samesite", "")).lower(), "strict", "cookie SameSite")
    t.eq(attrs.get("max-age"), "300", "cookie Max-Age")
admin_id = body["account"]["id"] if st == 200 else ""

# Email case does not matter.
st, body, hd = login("ROOT@Popug.Test", ADMIN_PASSWORD)
t.eq(st, 200, "login with the email in other case: %r" % body)
if st == 200:
    t.eq(body["account"]["id"], admin_id, "the same account")

# --- /me and /jwks ---------------------------------------------------------------
st, body = ates.get("/api/auth/me", headers=bearer(access))
t.eq(st, 200, "/me with the token: %r" % body)
if st == 200:
    account_ok(body, "/me")
    t.eq(body.get("id"), admin_id, "/me is the admin")
st, body = ates.get("/api/auth/me")
t.eq(st, 401, "/me without a token")
t(is_error(body, "unauthorized"), "/me 401 body: %r" % body)
st, body = ates.get("/api/auth/me", headers=bearer("abc.def.ghi"))
t.eq(st, 401, "/me with a garbage token")
t(is_error(body, "unauthorized"), "/me garbage 401 body: %r" % body)

st, body = ates.get("/api/auth/jwks")
t.eq(st, 200, "/jwks is public")
keys = body.get("keys") if isinstance(body, dict) else None
t(isinstance(keys, list) and len(keys) >= 1, "jwks has keys: %r" % body)
kids = set()
for k in keys or []:
    t.eq({f: k.get(f) for f in ("kty", "crv", "alg", "use")},
         {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig"}, "jwk fields")
    x = k.get("x", "")
    t(isinstance(x, str) and len(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))) == 32,
      "jwk x is a 32-byte key: %r" % x)
    t(isinstance(k.get("kid"), str) and k["kid"] != "", "jwk kid")
    kids.add(k.get("kid"))
if access.count(".") == 2:
    kid = b64json(access.split(".")[0]).get("kid")
    t(kid is None or kid in kids, "the token's kid %r is in the JWKS %r" % (kid, kids))

# --- wrong pairs: 401, one message --------------------------------------------
st, wrong_pw, _ = login(ADMIN_EMAIL, "not the password")
t.eq(st, 401, "wrong password")
t(is_error(wrong_pw, "unauthorized"), "wrong password body: %r" % wrong_pw)
st, unknown, _ = login("nobody@popug.test", ADMIN_PASSWORD)
t.eq(st, 401, "unknown email")
t(is_error(unknown, "unauthorized"), "unknown email body: %r" % unknown)
if is_error(wrong_pw, "unauthorized") and is_error(unknown, "unauthorized"):
    t.eq(unknown["error"]["message"], wrong_pw["error"]["message"],
         "same message for an unknown email and a wrong password")
st, body, hd = login(ADMIN_EMAIL, "")
t(st in (401, 422), "empty password is refused: %d" % st)

# --- validation -----------------------------------------------------------------
for what, req in (("missing password", {"body": {"email": ADMIN_EMAIL}}),
                  ("missing email", {"body": {"password": ADMIN_PASSWORD}}),
                  ("empty object", {"body": {}}),
                  ("email a number", {"body": {"email": 5, "password": ADMIN_PASSWORD}}),
                  ("password null", {"body": {"email": ADMIN_EMAIL, "password": None}}),
                  ("password a list", {"body": {"email": ADMIN_EMAIL, "password": ["x"]}}),
                  ("an array body", {"body": [ADMIN_EMAIL, ADMIN_PASSWORD]}),
                  ("not JSON", {"raw": b"email=root&password=x", "headers": {"Content-Type": "application/json"}}),
                  ("no body", {}),
                  # U+0000 would cut the password short: the right one plus anything must not log in
                  ("the password, U+0000 and more", {"body": {"email": ADMIN_EMAIL,
                                                               "password": ADMIN_PASSWORD + "\u0000anything"}})):
    st, body, hd, _ = ates.request("POST", "/api/auth/login", **req)
    t.eq(st, 422, "login with %s" % what)
    t(is_error(body, "validation"), "login %s body: %r" % (what, body))

# Failed logins of the admin above (1 wrong password) must not lock it out yet.
st, body, hd = login(ADMIN_EMAIL, ADMIN_PASSWORD)
t.eq(st, 200, "admin still logs in after one failure: %r" % body)
if st == 200:
    access = body["access_token"]

# --- throttle ---------------------------------------------------------------------
VICTIM, VICTIM_PW = "victim@popug.test", "victim-password"
OTHER, OTHER_PW = "bystander@popug.test", "bystander-password"
for email, pw in ((VICTIM, VICTIM_PW), (OTHER, OTHER_PW)):
    st, body = ates.post("/api/accounts", {"email": email, "name": email.split("@")[0], "role": "popug",
                                           "password": pw}, headers=bearer(access))
    t.eq(st, 201, "create %s: %r" % (email, body))
st, body, hd = login(VICTIM, VICTIM_PW)
t.eq(st, 200, "victim logs in before the attack: %r" % body)
for i in range(5):  # the case of the email does not make it another email
    st, body, hd = login(VICTIM if i % 2 == 0 else VICTIM.upper(), "guess-%d" % i)
    t.eq(st, 401, "failed login %d of 5" % (i + 1))
st, body, hd = login(VICTIM, VICTIM_PW)
t.eq(st, 429, "the right password after 5 failures: %r" % body)
t(is_error(body, "too_many_requests"), "429 body: %r" % body)
ra = hd.get("retry-after", "")
t(ra.isdigit() and int(ra) > 0, "Retry-After in seconds: %r" % ra)
st, body, hd = login(VICTIM, "guess-again")
t.eq(st, 429, "a wrong password while throttled")
st, body, hd = login(OTHER, OTHER_PW)
t.eq(st, 200, "another email is not throttled: %r" % body)

t.eq(ates.stop(), 0, "clean stop")
ates.start()
st, body, hd = login(VICTIM, VICTIM_PW)
t.eq(st, 429, "still throttled after a restart: %r" % body)
t(hd.get("retry-after", "").isdigit(), "Retry-After after the restart: %r" % hd.get("retry-after"))
st, body, hd = login(ADMIN_EMAIL, ADMIN_PASSWORD)
t.eq(st, 200, "admin logs in after the restart: %r" % body)
st, body = ates.get("/api/auth/me", headers=bearer(access))
t.eq(st, 200, "an access token from before the restart still works")
t.eq(ates.stop(), 0, "clean stop")
t.done()
