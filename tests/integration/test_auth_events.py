"""auth events: AccountCreated / AccountUpdated on ates.accounts.* with the
CONTRACT envelope and headers, the request's trace id, the bootstrap admin's
event in the ATES_ACCOUNTS stream."""
import json
import re

from harness import ATES_BIN, Ates, Check, Nats, NatsServer, bearer, wait_for

ADMIN_EMAIL = "herald@popug.test"
ADMIN_PASSWORD = "herald-password"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
DATA = {"account_id", "email", "name", "role", "active"}

t = Check()
nats = NatsServer().start()
sub = Nats(nats.port)
sub.subscribe("ates.accounts.>")
ates = Ates(nats.url, binary=ATES_BIN, services="auth",
            env={"ATES_ADMIN_PASSWORD": ADMIN_PASSWORD, "ATES_ADMIN_EMAIL": ADMIN_EMAIL}).start()


def next_event(what):
    try:
        subject, hdrs, raw = sub.next_msg(timeout=20)
    except OSError as e:
        t(False, "%s: no event (%s)" % (what, e))
        return None, {}, {}
    try:
        return subject, hdrs, json.loads(raw)
    except ValueError:
        t(False, "%s: body is not JSON: %r" % (what, raw))
        return subject, hdrs, {}


def envelope_ok(subject, hdrs, ev, want_subject, want_name, what):
    t.eq(subject, want_subject, "%s subject" % what)
    t.eq(set(ev), {"event_id", "event_name", "event_version", "event_time", "producer", "trace_id", "data"},
         "%s envelope fields" % what)
    t(UUID_RE.match(str(ev.get("event_id"))) is not None, "%s event_id is a uuid: %r" % (what, ev.get("event_id")))
    t.eq(ev.get("event_name"), want_name, "%s event_name" % what)
    t.eq(ev.get("event_version"), 1, "%s event_version" % what)
    t(TIME_RE.match(str(ev.get("event_time"))) is not None, "%s event_time: %r" % (what, ev.get("event_time")))
    t.eq(ev.get("producer"), "auth", "%s producer" % what)
    t(isinstance(ev.get("trace_id"), str) and ev["trace_id"] != "", "%s trace_id" % what)
    t.eq(hdrs.get("Nats-Msg-Id"), ev.get("event_id"), "%s Nats-Msg-Id" % what)
    t.eq(hdrs.get("Ates-Event"), want_name, "%s Ates-Event" % what)
    t.eq(hdrs.get("Ates-Version"), "1", "%s Ates-Version" % what)
    t.eq(set(ev.get("data") or {}), DATA, "%s data fields" % what)


# The bootstrap admin's AccountCreated (published after our subscription).
subject, hdrs, ev = next_event("bootstrap")
envelope_ok(subject, hdrs, ev, "ates.accounts.created", "AccountCreated", "bootstrap")
admin_id = (ev.get("data") or {}).get("account_id")
t.eq({k: v for k, v in (ev.get("data") or {}).items() if k != "account_id"},
     {"email": ADMIN_EMAIL, "name": (ev.get("data") or {}).get("name"), "role": "admin", "active": True},
     "bootstrap data")

st, body, hd, _ = ates.request("POST", "/api/auth/login", body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
t.eq(st, 200, "admin login")
ADMIN = bearer(body["access_token"]) if st == 200 else {}
t.eq(body["account"]["id"] if st == 200 else None, admin_id, "the event's account_id is the admin's id")

st, acc = ates.post("/api/accounts", {"email": "quill@popug.test", "name": "Quill", "role": "popug",
                                      "password": "quill-password"},
                    headers=dict(ADMIN, **{"X-Request-Id": "some-trace-123"}))
t.eq(st, 201, "create an account")
subject, hdrs, ev = next_event("created")
envelope_ok(subject, hdrs, ev, "ates.accounts.created", "AccountCreated", "created")
t.eq(ev.get("trace_id"), "some-trace-123", "the request's X-Request-Id is the event's trace_id")
if st == 201:
    t.eq(ev.get("data"), {"account_id": acc["id"], "email": "quill@popug.test", "name": "Quill",
                          "role": "popug", "active": True}, "AccountCreated data")
created_id = ev.get("event_id")

st, body, hd, _ = ates.request("PATCH", "/api/accounts/" + acc.get("id", "x"),
                               body={"role": "accountant", "name": "Quill Pen"},
                               headers=dict(ADMIN, **{"X-Request-Id": "some-trace-456"}))
t.eq(st, 200, "patch the account: %r" % body)
subject, hdrs, ev = next_event("updated")
envelope_ok(subject, hdrs, ev, "ates.accounts.updated", "AccountUpdated", "updated")
t.eq(ev.get("trace_id"), "some-trace-456", "patch trace_id")
t.eq(ev.get("data"), {"account_id": acc.get("id"), "email": "quill@popug.test", "name": "Quill Pen",
                      "role": "accountant", "active": True}, "AccountUpdated data")
t(ev.get("event_id") != created_id, "a new event id")

st, body, hd, _ = ates.request("PATCH", "/api/accounts/" + acc.get("id", "x"), body={"active": False},
                               headers=ADMIN)
t.eq(st, 200, "deactivate")
subject, hdrs, ev = next_event("deactivated")
t.eq(subject, "ates.accounts.updated", "deactivation is an AccountUpdated")
t.eq((ev.get("data") or {}).get("active"), False, "AccountUpdated says inactive")

# Refused requests emit nothing: a conflict, a validation error, a 403.
ates.post("/api/accounts", {"email": "QUILL@popug.test", "name": "Q", "role": "popug", "password": "password-1"},
          headers=ADMIN)
ates.post("/api/accounts", {"email": "nope", "name": "Q", "role": "popug", "password": "password-1"},
          headers=ADMIN)
ates.request("PATCH", "/api/accounts/" + admin_id, body={"role": "popug"}, headers=ADMIN)
st, marker = ates.post("/api/accounts", {"email": "marker@popug.test", "name": "Marker", "role": "manager",
                                         "password": "marker-password"}, headers=ADMIN)
subject, hdrs, ev = next_event("marker")
t.eq((ev.get("data") or {}).get("email"), "marker@popug.test",
     "the next event after refused requests is the marker's: %r" % ev)

# The stream holds them durably; the bootstrap event is there exactly once.
js = Nats(nats.port)
msgs = wait_for(lambda: (lambda m: m if len(m) >= 5 else None)(js.stream_msgs("ATES_ACCOUNTS")),
                what="5 events in ATES_ACCOUNTS")
boot = [json.loads(b) for s, h, b in msgs
        if s == "ates.accounts.created" and json.loads(b)["data"]["email"] == ADMIN_EMAIL]
t.eq(len(boot), 1, "the bootstrap AccountCreated is in ATES_ACCOUNTS once")
t.eq([s for s, h, b in msgs], ["ates.accounts.created", "ates.accounts.created", "ates.accounts.updated",
                               "ates.accounts.updated", "ates.accounts.created"], "stream subjects in order")
t(all(h.get("Nats-Msg-Id") == json.loads(b)["event_id"] for s, h, b in msgs), "stream headers")

# A restart does not create (or announce) another admin.
t.eq(ates.stop(), 0, "clean stop")
ates.start()
st, body = ates.get("/api/accounts", headers=ADMIN)
t.eq(st, 200, "list after the restart")
if st == 200:
    t.eq(len([a for a in body["items"] if a["role"] == "admin"]), 1, "one admin after the restart")
st, body, hd, _ = ates.request("POST", "/api/accounts", body={"email": "after@popug.test", "name": "After",
                                                              "role": "popug", "password": "after-password"},
                               headers=ADMIN)
t.eq(st, 201, "create after the restart")
subject, hdrs, ev = next_event("after restart")
t.eq((ev.get("data") or {}).get("email"), "after@popug.test", "the first event after the restart is ours: %r" % ev)
sub.close()
js.close()
t.eq(ates.stop(), 0, "clean stop")
t.done()
