"""A rule file edited on disk is in force without a restart; a syntax error
keeps the old version and shows the error; a runaway rule is stopped."""
import hashlib
import os

from harness import Ates, Check, NatsServer, wait_for, write_file

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url)
path = os.path.join(ates.rules_dir, "probe.lua")
v1 = "function value(x)\n  return {n = x + 1, s = 'one'}\nend\n"
write_file(path, v1)
ates.start()

def call(fn="value", args=(41,)):
    return ates.post("/api/probe/rule", {"file": "probe.lua", "fn": fn, "args": list(args)})

st, body = call()
t.eq(st, 200, "rule call")
t.eq(body["result"], {"n": 42, "s": "one"}, "first version's result")
t.eq(body["version"], hashlib.sha256(v1.encode()).hexdigest()[:12], "version = sha256 prefix")

v2 = "function value(x)\n  return {n = x * 2, s = 'two'}\nend\n"
write_file(path, v2)
body = wait_for(lambda: (lambda b: b if b["result"]["s"] == "two" else None)(call()[1]), timeout=10,
                what="edited rule in force")
t.eq(body["result"]["n"], 82, "second version's result")
t.eq(body["version"], hashlib.sha256(v2.encode()).hexdigest()[:12], "new version")

write_file(path, "function value(x)\n  return {n = \nend\n")
def status():
    items = ates.get("/api/probe/rules")[1]["items"]
    return [i for i in items if i["file"] == "probe.lua"][0]
st_item = wait_for(lambda: (lambda s: s if s["error"] else None)(status()), timeout=10, what="error shown")
t(st_item["error"].startswith("probe.lua:"), "error names file:line: %r" % st_item["error"])
t.eq(st_item["version"], hashlib.sha256(v2.encode()).hexdigest()[:12], "the old version stays in force")
st, body = call()
t.eq((st, body["result"]["s"]), (200, "two"), "calls still get the old version")

write_file(path, v2 + "function spin()\n  while true do end\nend\n")
wait_for(lambda: status()["error"] is None, timeout=10, what="fixed file loaded")
st, body = call("spin", ())
t(st >= 400 and "error" in body, "a runaway rule answers an error")
st, body = call()
t.eq((st, body["result"]["s"]), (200, "two"), "the next call works")
st, body = call("spin", ())
t.eq((st, body["error"]["code"]), (503, "unavailable"), "a rule that fails is the operator's: 503 (%r)" % body)
t("probe.lua:" in body["error"]["message"], "the answer names the rule's file:line: %r" % body)
t.eq(ates.stop(), 0, "clean stop")

# A start with the rule broken on disk puts the version last in force (kept under the data dir)
# in force, and says so; one with the file gone does the same.
V_SPIN = v2 + "function spin()\n  while true do end\nend\n"  # in force at the stop
kept = os.path.join(ates.data_dir, "rules-in-force", "probe.lua")
t.eq(open(kept).read() if os.path.exists(kept) else None, V_SPIN, "the version in force is kept under the data dir")
write_file(path, "function value(x)\n  return {n = \nend\n")
ates.start()
item = status()
t.eq(item["version"], hashlib.sha256(V_SPIN.encode()).hexdigest()[:12],
     "broken on disk at start: the kept version is in force")
t("kept from the last run" in (item["error"] or "") and "probe.lua:" in (item["error"] or ""),
  "its error names the disk's fault and the kept version: %r" % item["error"])
st, body = call()
t.eq((st, body["result"]["s"]), (200, "two"), "calls get the kept version")
t.eq(ates.stop(), 0, "clean stop")
os.unlink(path)
ates.start()
item = status()
t(item["version"] is not None and "kept from the last run" in (item["error"] or ""),
  "the file gone at start: the kept version is in force: %r" % item)
t.eq(call()[0], 200, "and answers")
write_file(path, v2)
wait_for(lambda: status()["error"] is None, timeout=10, what="the file back: no error")
t.eq(status()["version"], hashlib.sha256(v2.encode()).hexdigest()[:12], "the file back is in force")
t.eq(ates.stop(), 0, "clean stop")
t.done()
