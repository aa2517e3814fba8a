"""GET /ready says whether the rules a service calls are in force: a
tracker started for the first time with shuffle.lua broken on disk (no
version ever in force, none kept) is not ready (503, checks.rules
"down") and its creates answer 503; once a good shuffle.lua is saved it is
ready, and the version is kept for the next start."""
import os

from harness import ATES_BIN, Ates, Check, NatsServer, repo_rules, wait_for, write_file

t = Check()
nats = NatsServer().start()
RULES = repo_rules()
SHUFFLE = os.path.join(RULES, "shuffle.lua")
with open(SHUFFLE) as f:
    GOOD = f.read()
write_file(SHUFFLE, "function eligible(a)\n  return = true\nend\n")
ates = Ates(nats.url, binary=ATES_BIN, services="tracker", rules_dir=RULES).start(wait_ready=False)

st, js = ates.get("/ready")
t.eq((st, js.get("status"), js.get("checks", {}).get("rules")), (503, "unavailable", "down"),
     "shuffle.lua broken at the first start: not ready: %r" % js)
t.eq(js.get("checks", {}).get("tracker"), "ok", "the database is fine: only the rules are down")
write_file(SHUFFLE, GOOD)
st, js = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(ates.get("/ready")), timeout=10,
                  what="ready once shuffle.lua loads")
t.eq(js.get("checks", {}).get("rules"), "ok", "checks.rules ok: %r" % js)
t(os.path.exists(os.path.join(ates.data_dir, "rules-in-force", "shuffle.lua")), "the version is kept")
t.eq(ates.stop(), 0, "clean stop")
t.done()
