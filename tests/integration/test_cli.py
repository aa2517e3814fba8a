"""The command line: help, version, bad configuration (exit 2), rules
check, events tail."""
import json
import os
import subprocess

from harness import ATES_BIN, Ates, Check, NatsServer, TESTHOST, repo_rules, tmpdir, wait_for, write_file

t = Check()

def run(args, env=None, binary=ATES_BIN, timeout=20):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([binary] + args, env=e, capture_output=True, text=True, timeout=timeout, cwd=tmpdir("cwd"))
    return p.returncode, p.stdout, p.stderr

rc, out, err = run(["version"])
t.eq(rc, 0, "version")
t(out.startswith("ates "), "version text: %r" % out)
rc, out, err = run(["--help"])
t(rc == 0 and "serve" in out and "rules" in out and "events" in out, "--help lists commands")
for cmd in (["serve"], ["rules", "check"], ["events", "tail"], ["version"]):
    rc, out, err = run(cmd + ["--help"])
    t(rc == 0 and out.startswith("usage: ates"), "%s --help" % " ".join(cmd))
rc, out, err = run(["frobnicate"])
t.eq(rc, 2, "unknown command exits 2")
rc, out, err = run([])
t.eq(rc, 2, "no command exits 2")

rc, out, err = run(["serve"], env={"ATES_ACCESS_TTL": "abc"})
t.eq(rc, 2, "bad ATES_ACCESS_TTL exits 2")
t("ATES_ACCESS_TTL" in err, "the message names the variable: %r" % err)
rc, out, err = run(["serve"], env={"ATES_DAY_CLOSE": "25:00"})
t(rc == 2 and "ATES_DAY_CLOSE" in err, "bad ATES_DAY_CLOSE: %r" % err)
rc, out, err = run(["serve"], env={"ATES_TZ": "Mars/Olympus", "ATES_DATA_DIR": tmpdir("d")})
t(rc == 2 and "Mars/Olympus" in err, "unknown zone: %r" % err)
rc, out, err = run(["serve", "--services", "nope"], env={"ATES_DATA_DIR": tmpdir("d")})
t(rc == 2 and "nope" in err, "unknown service: %r" % err)
cfg = os.path.join(tmpdir("cfg"), "ates.lua")
write_file(cfg, "return { acces_ttl = 5 }\n")
rc, out, err = run(["--config", cfg, "serve"])
t(rc == 2 and "acces_ttl" in err, "unknown config key: %r" % err)
write_file(cfg, "return { access_ttl = tonumber(os.getenv('TTL_FROM_ENV')) }\n")
rc, out, err = run(["--config", cfg, "serve"], env={"TTL_FROM_ENV": "-5"})
t(rc == 2 and "access_ttl" in err, "a config value out of range: %r" % err)
write_file(cfg, "io.open('/tmp/x', 'w')\nreturn {}\n")
rc, out, err = run(["--config", cfg, "serve"])
t(rc == 2 and "io" in err, "config has no io: %r" % err)
rc, out, err = run(["--config", "/nonexistent/ates.lua", "serve"])
t.eq(rc, 2, "missing named config file exits 2")

# the first word of a two-word command: its usages, not "unknown command"
rc, out, err = run(["user", "--help"])
t(rc == 0 and "ates user add" in out, "user --help: %d %r" % (rc, out + err))
rc, out, err = run(["user"])
t(rc == 2 and "ates user add" in err and "unknown command" not in err, "user alone: %d %r" % (rc, err))
rc, out, err = run(["serve", "--help"])
t(rc == 0 and "tracker" in out and "accounting" in out, "serve --help lists the services: %r" % out)

# what the services call must be there: a directory without pricing.lua is not fine
bare = tmpdir("rules")
write_file(os.path.join(bare, "good.lua"), "function f() return 1 end\nfunction selftest() assert(f() == 1) end\n")
rc, out, err = run(["rules", "check", bare])
t(rc == 1 and "pricing.lua: missing (the services call its price())" in err, "a required file missing: %r" % err)
rules = repo_rules()
write_file(os.path.join(rules, "good.lua"), "function f() return 1 end\nfunction selftest() assert(f() == 1) end\n")
rc, out, err = run(["rules", "check", rules])
t.eq(rc, 0, "rules check on good rules: %r" % err)
write_file(os.path.join(rules, "pricing.lua"), "function cost() return 1 end\n")
rc, out, err = run(["rules", "check", rules])
t(rc == 1 and "price" in err, "a required function missing: %r" % err)
# one file: a draft checked before it is saved over the one in force
draft = os.path.join(tmpdir("draft"), "pricing.lua")
write_file(draft, "function price(t) return {assign_fee_cents = 1000, reward_cents = 2000} end\n")
rc, out, err = run(["rules", "check", draft])
t(rc == 0 and "pricing.lua in" in out, "one file: %d %r %r" % (rc, out, err))
write_file(draft, "function price(t) return {assign_fee_cents = } end\n")
rc, out, err = run(["rules", "check", draft])
t(rc == 1 and "pricing.lua:1:" in err, "one bad file: %r" % err)
write_file(os.path.join(rules, "pricing.lua"), open(os.path.join(repo_rules(), "pricing.lua")).read())
write_file(os.path.join(rules, "bad.lua"), "function f()\n  return = 1\nend\n")
rc, out, err = run(["rules", "check", rules])
t.eq(rc, 1, "rules check on a bad file exits 1")
t("bad.lua:2:" in err, "rules check prints file:line: %r" % err)
write_file(os.path.join(rules, "bad.lua"), "function selftest()\n  assert(1 == 2, 'one is not two')\nend\n")
rc, out, err = run(["rules", "check", rules])
t(rc == 1 and "bad.lua:2:" in err and "one is not two" in err, "failing selftest: %r" % err)

nats = NatsServer().start()
ates = Ates(nats.url).start()
st, body = ates.post("/api/probe/emit", {"keys": ["tail-me"]})
wait_for(lambda: ates.get("/api/probe/effects")[1]["outbox_pending"] == 0, what="published")
rc, out, err = run(["events", "tail", "ates.probe.>", "--from-start", "--max", "1"],
                   env={"ATES_NATS_URL": nats.url, "ATES_SCHEMAS_DIR": ates.schemas_dir})
t.eq(rc, 0, "events tail: %r" % err)
lines = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
t.eq(len(lines), 1, "one JSON line")
if lines:
    t.eq(lines[0]["subject"], "ates.probe.emitted", "tail line subject")
    t.eq(lines[0]["event"]["event_id"], body["event_ids"][0], "tail line event")
    t.eq(lines[0]["headers"].get("Nats-Msg-Id"), body["event_ids"][0], "tail line headers")
t.eq(ates.stop(), 0, "clean stop")
t.done()
