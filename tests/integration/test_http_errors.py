"""The HTTP layer over real sockets: error bodies for unknown routes, wrong
methods, malformed JSON and oversize bodies; trace ids; ops endpoints."""
from harness import Ates, Check, NatsServer

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url).start()

def is_error(body, code):
    return isinstance(body, dict) and set(body) == {"error"} and body["error"].get("code") == code \
        and isinstance(body["error"].get("message"), str) and body["error"]["message"] != ""

st, body, hd, _ = ates.request("GET", "/api/nope")
t.eq(st, 404, "unknown route")
t(is_error(body, "not_found"), "404 error body: %r" % body)
st, body, hd, _ = ates.request("DELETE", "/api/probe/emit")
t.eq(st, 405, "wrong method")
t(is_error(body, "method_not_allowed"), "405 error body: %r" % body)
st, body, hd, _ = ates.request("POST", "/api/probe/emit", raw=b"{not json", headers={"Content-Type": "application/json"})
t.eq(st, 422, "malformed JSON")
t(is_error(body, "validation"), "422 error body: %r" % body)
# what cJSON takes and a strict reader (or a C string) downstream would not
for raw, why in ((b'{"keys":["bad \xff\xfe utf8"]}', "UTF-8"),
                 (b'{"keys":["a\\u0000b"]}', "\\u0000"),
                 (b'{"keys":["tab\there"]}', "control character")):
    st, body, hd, _ = ates.request("POST", "/api/probe/emit", raw=raw, headers={"Content-Type": "application/json"})
    t.eq(st, 422, "body %r" % raw)
    t(is_error(body, "validation") and why in body["error"]["message"], "422 says why: %r" % body)
st, body, hd, _ = ates.request("POST", "/api/probe/emit", body={"keys": "nope"})
t.eq(st, 422, "wrong field type")
t(is_error(body, "validation"), "422 wrong type body")
st, body, hd, _ = ates.request("POST", "/api/probe/emit", raw=b"x" * (1024 * 1024),
                               headers={"Content-Type": "application/json"})
t.eq(st, 413, "1 MiB body")
t(is_error(body, "too_large"), "413 error body: %r" % body)
st, body = ates.get("/health")
t.eq(st, 200, "still alive after the big body")
st, body, hd, _ = ates.request("GET", "/api/probe/whoami")
t.eq(st, 401, "no token")
t(is_error(body, "unauthorized"), "401 error body")
st, body, hd, _ = ates.request("GET", "/api/probe/whoami", headers={"Authorization": "Bearer abc.def.ghi"})
t.eq(st, 401, "garbage token")
st, body, hd, _ = ates.request("GET", "/api/rules")
t.eq(st, 401, "/api/rules needs a token")

st, body, hd, _ = ates.request("GET", "/health", headers={"X-Request-Id": "req-123"})
t.eq(hd.get("x-request-id"), "req-123", "X-Request-Id echoed")
st, body, hd, _ = ates.request("GET", "/health")
t(len(hd.get("x-request-id", "")) >= 16, "a request id is generated")

st, body, hd, raw = ates.request("GET", "/metrics")
t.eq(st, 200, "/metrics")
t(b"# TYPE" in raw, "Prometheus text")
st, body = ates.get("/ready")
t.eq(st, 200, "/ready with NATS and databases up")
t.eq(body["checks"].get("probe"), "ok", "ready names the service database")
t.eq(ates.stop(), 0, "clean stop")
t.done()
