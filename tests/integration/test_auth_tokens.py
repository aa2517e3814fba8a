"""auth tokens: forged, tampered, expired and alg-confused access tokens
are refused; the cookie path and its X-Requested-With rule; refresh
rotation, reuse detection that revokes the family, logout."""
import base64
import hashlib
import hmac
import json
import os
import time

from harness import (ATES_BIN, Ates, Check, NatsServer, bearer, is_error, parse_set_cookie, tmpdir,
                     tool_jwt)

ADMIN_EMAIL = "keeper@popug.test"
ADMIN_PASSWORD = "keeper-password"
TTL = 120

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth",
            env={"ATES_ADMIN_PASSWORD": ADMIN_PASSWORD, "ATES_ADMIN_EMAIL": ADMIN_EMAIL,
                 "ATES_ACCESS_TTL": str(TTL)}).start()
KEYS = os.path.join(ates.data_dir, "keys")


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def login(email, password):
    st, body, hd, _ = ates.request("POST", "/api/auth/login", body={"email": email, "password": password})
    return st, body, hd


def me(token):
    return ates.get("/api/auth/me", headers=bearer(token))


st, body, hd = login(ADMIN_EMAIL, ADMIN_PASSWORD)
t.eq(st, 200, "admin login: %r" % body)
admin_token = body["access_token"] if st == 200 else ""
admin_id = body["account"]["id"] if st == 200 else ""
t.eq(body.get("expires_in") if st == 200 else None, TTL, "expires_in follows ATES_ACCESS_TTL")
t.eq(parse_set_cookie(hd.get("set-cookie"))[2].get("max-age"), str(TTL), "cookie Max-Age follows the TTL")
ADMIN = bearer(admin_token)
st, body = ates.post("/api/accounts", {"email": "pip@popug.test", "name": "Pip", "role": "popug",
                                       "password": "pip-password"}, headers=ADMIN)
t.eq(st, 201, "create a popug")
pip_id = body.get("id", "") if st == 201 else ""
st, body, hd = login("pip@popug.test", "pip-password")
t.eq(st, 200, "popug login")
pip_token = body["access_token"] if st == 200 else "x.y.z"
st, body = me(pip_token)
t.eq(st, 200, "the popug's own token works")
t.eq(body.get("role") if st == 200 else None, "popug", "/me role")

# --- forged and broken tokens ----------------------------------------------------
h64, p64, s64 = (pip_token.split(".") + ["", "", ""])[:3]
payload = json.loads(unb64(p64)) if p64 else {}
t.eq(payload.get("role"), "popug", "the popug token says popug")
now = int(time.time())

def refused(token, what):
    st, body = me(token)
    t.eq(st, 401, "%s is refused" % what)
    t(is_error(body, "unauthorized"), "%s: 401 body %r" % (what, body))

none_hdr = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
refused(none_hdr + "." + p64 + ".", "alg none with an empty signature")
refused(none_hdr + "." + p64 + "." + s64, "alg none with the real signature")
hs_hdr = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
jwks = ates.get("/api/auth/jwks")[1] or {}
x = (jwks.get("keys") or [{}])[0].get("x", "")
for secret in (unb64(x) if x else b"k", x.encode(), b""):
    mac = hmac.new(secret, (hs_hdr + "." + p64).encode(), hashlib.sha256).digest()
    refused(hs_hdr + "." + p64 + "." + b64(mac), "HS256 keyed with %r" % secret[:8])
admin_payload = dict(payload, role="admin")
tampered = h64 + "." + b64(json.dumps(admin_payload, separators=(",", ":")).encode()) + "." + s64
refused(tampered, "a payload changed to role admin")
st, body = ates.get("/api/accounts", headers=bearer(tampered))
t.eq(st, 401, "the tampered token cannot list accounts")
longer = dict(payload, exp=payload.get("exp", now) + 86400)
refused(h64 + "." + b64(json.dumps(longer, separators=(",", ":")).encode()) + "." + s64, "a payload with a later exp")
sig = bytearray(unb64(s64)) if s64 else bytearray(64)
sig[0] ^= 1
refused(h64 + "." + p64 + "." + b64(bytes(sig)), "a flipped signature bit")
refused(h64 + "." + p64 + ".", "no signature")
refused(h64 + "." + p64, "two parts")

other_keys = os.path.join(tmpdir("otherkeys"), "keys")
refused(tool_jwt(other_keys, admin_id, "admin", now, now + 600), "a token signed with another key")
refused(tool_jwt(KEYS, admin_id, "admin", now - 1000, now - 500), "an expired token (server's key)")
for g in ("garbage", "abc.def.ghi", "..", "Bearer", "a" * 5000):
    refused(g, "garbage %r" % g[:12])

forged = tool_jwt(KEYS, admin_id, "admin", now, now + 600)
st, body = me(forged)
t.eq(st, 200, "a token signed with the server's own key is accepted (so tool_jwt is right): %r" % body)
t.eq(body.get("id") if st == 200 else None, admin_id, "the forged token is the admin's")
st, body = ates.get("/api/accounts", headers=bearer(forged))
t.eq(st, 200, "the server-key token lists accounts")
st, body = ates.get("/api/accounts", headers=bearer(tool_jwt(KEYS, pip_id, "popug", now, now + 600)))
t.eq(st, 403, "a server-key popug token is forbidden on accounts")

# --- the cookie -------------------------------------------------------------------
COOKIE = {"Cookie": "ates_token=" + admin_token}
st, body = ates.get("/api/auth/me", headers=COOKIE)
t.eq(st, 200, "/me with only the cookie: %r" % body)
t.eq(body.get("id") if st == 200 else None, admin_id, "the cookie is the admin")
st, body = ates.get("/api/auth/me", headers={"Cookie": "theme=dark; ates_token=" + admin_token + "; x=1"})
t.eq(st, 200, "the cookie among others")
st, body = ates.get("/api/auth/me", headers={"Cookie": "ates_token=" + tampered})
t.eq(st, 401, "a tampered cookie")
newbie = {"email": "cookie@popug.test", "name": "Cookie", "role": "popug", "password": "cookie-password"}
st, body = ates.post("/api/accounts", newbie, headers=COOKIE)
t.eq(st, 403, "a mutation through the cookie without X-Requested-With: %r" % body)
t(is_error(body, "forbidden"), "cookie 403 body: %r" % body)
st, body = ates.post("/api/accounts", newbie, headers=dict(COOKIE, **{"X-Requested-With": "XMLHttpRequest"}))
t.eq(st, 403, "X-Requested-With must be ates")
st, body = ates.post("/api/accounts", newbie, headers=dict(COOKIE, **{"X-Requested-With": "ates"}))
t.eq(st, 201, "a mutation through the cookie with X-Requested-With: ates: %r" % body)

# --- refresh rotation and reuse ------------------------------------------------------
st, body, hd = login("pip@popug.test", "pip-password")
t.eq(st, 200, "pip logs in")
r1 = body.get("refresh_token", "") if st == 200 else "r1"
st, body, hd, _ = ates.request("POST", "/api/auth/refresh", body={"refresh_token": r1})
t.eq(st, 200, "refresh: %r" % body)
r2 = "r2"
if st == 200:
    t.eq(set(body), {"access_token", "token_type", "expires_in", "refresh_token", "account"}, "refresh fields")
    t.eq((body["token_type"], body["expires_in"]), ("Bearer", TTL), "refresh token_type, expires_in")
    t.eq(body["account"].get("id"), pip_id, "refresh account")
    r2 = body["refresh_token"]
    t(r2 != r1, "a new refresh token")
    t.eq(me(body["access_token"])[0], 200, "the refreshed access token works")
    name, val, attrs = parse_set_cookie(hd.get("set-cookie"))
    t.eq((name, val), ("ates_token", body["access_token"]), "refresh sets the cookie")
st, body, hd, _ = ates.request("POST", "/api/auth/refresh", body={"refresh_token": r2})
t.eq(st, 200, "the rotated token refreshes: %r" % body)
r3 = body.get("refresh_token", "r3") if st == 200 else "r3"
st, body = ates.post("/api/auth/refresh", {"refresh_token": r1})
t.eq(st, 401, "a spent refresh token: %r" % body)
t(is_error(body, "unauthorized"), "spent 401 body: %r" % body)
st, body = ates.post("/api/auth/refresh", {"refresh_token": r3})
t.eq(st, 401, "reuse revoked the family: the newest token fails too: %r" % body)
st, body = ates.post("/api/auth/refresh", {"refresh_token": r2})
t.eq(st, 401, "and the middle one")

st, body, hd = login("pip@popug.test", "pip-password")
other_family = body.get("refresh_token", "") if st == 200 else ""
st, body, hd = login("pip@popug.test", "pip-password")
r4 = body.get("refresh_token", "") if st == 200 else ""
st, body = ates.post("/api/auth/refresh", {"refresh_token": r4})
t.eq(st, 200, "a fresh family after the revoked one")
r5 = body.get("refresh_token", "") if st == 200 else ""
st, body = ates.post("/api/auth/refresh", {"refresh_token": r4})
t.eq(st, 401, "reuse in the second family")
st, body = ates.post("/api/auth/refresh", {"refresh_token": r5})
t.eq(st, 401, "revokes the second family")
st, body = ates.post("/api/auth/refresh", {"refresh_token": other_family})
t.eq(st, 200, "another family of the same account is untouched: %r" % body)

for what, b in (("garbage", {"refresh_token": "garbage"}), ("empty", {"refresh_token": ""}),
                ("an access token", {"refresh_token": admin_token})):
    st, body = ates.post("/api/auth/refresh", b)
    t.eq(st, 401, "refresh with %s" % what)
    t(is_error(body, "unauthorized"), "refresh %s body: %r" % (what, body))
for what, req in (("missing field", {"body": {}}), ("a number", {"body": {"refresh_token": 5}}),
                  ("not JSON", {"raw": b"refresh", "headers": {"Content-Type": "application/json"}})):
    st, body, hd, _ = ates.request("POST", "/api/auth/refresh", **req)
    t.eq(st, 422, "refresh with %s" % what)
    t(is_error(body, "validation"), "refresh %s body: %r" % (what, body))

# --- logout ---------------------------------------------------------------------------
st, body, hd = login("pip@popug.test", "pip-password")
r6 = body.get("refresh_token", "") if st == 200 else ""
st, body = ates.post("/api/auth/refresh", {"refresh_token": r6})
r7 = body.get("refresh_token", "") if st == 200 else ""
st, body, hd, raw = ates.request("POST", "/api/auth/logout", body={"refresh_token": r7})
t.eq(st, 204, "logout")
t.eq(raw, b"", "204 has no body")
name, val, attrs = parse_set_cookie(hd.get("set-cookie"))
t.eq((name, val, attrs.get("max-age")), ("ates_token", "", "0"), "logout clears the cookie: %r" % hd.get("set-cookie"))
st, body = ates.post("/api/auth/refresh", {"refresh_token": r7})
t.eq(st, 401, "a logged-out refresh token")
st, body = ates.post("/api/auth/refresh", {"refresh_token": r6})
t.eq(st, 401, "its spent ancestor too")
st, body, hd, raw = ates.request("POST", "/api/auth/logout", body={"refresh_token": "never-issued"})
t.eq(st, 204, "logout of an unknown token")
st, body, hd, raw = ates.request("POST", "/api/auth/logout", body={"refresh_token": r7})
t.eq(st, 204, "logout twice")

t.eq(ates.stop(), 0, "clean stop")
t.done()
