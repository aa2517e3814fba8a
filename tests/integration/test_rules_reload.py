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
t.eq(ates.stop(), 0, "clean stop")
t.done()
