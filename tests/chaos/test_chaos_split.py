"""A split deployment: auth (with notify), tracker, accounting and
analytics in four processes with four data dirs, sharing only nats-server;
the others trust auth's keys through ATES_JWKS_URL. While the load runs,
one process at a time is killed with kill -9 (every one of the four at
least twice, in a random order, at random moments) and started again on
its data dir and port. After quiescence every invariant holds: nothing
answered is lost, every task priced once, one ledger entry per assignment
and completion, balances equal their ledgers, analytics agrees with
accounting, no outbox row and no dead letter left."""
import random

import chaos_util as cu
from harness import ATES_BIN, Ates, Check, NatsServer

ROUNDS = cu.scaled(2)  # each process is killed this many times
seed = cu.chaos_seed()
rng = random.Random(seed)
tz = cu.noon_tz()
today = cu.today(tz)
clock = cu.Clock()
t = Check()

nats = NatsServer().start()
env = cu.base_env(seed, tz)
auth = Ates(nats.url, binary=ATES_BIN, services="auth,notify", env=env).start()
jwks = dict(env, ATES_JWKS_URL="http://127.0.0.1:%d/api/auth/jwks" % auth.port)
procs = {"auth": auth}
for svc in ("tracker", "accounting", "analytics"):
    procs[svc] = Ates(nats.url, binary=ATES_BIN, services=svc, env=jwks).start()
t.eq(len(set(a.data_dir for a in procs.values())), 4, "four processes, four data dirs")
dep = cu.Deployment(dict(procs, notify=auth))
st, _ = procs["tracker"].get("/api/accounting/today")
t(st in (404, 405), "the tracker process serves no accounting route: %d" % st)

admin, boss, popugs, _ = cu.setup_people(dep, nats.port, 4, "split")
load = cu.Load(dep, admin, boss, popugs, rng.random(), max_tasks=cu.scaled(300), rate=15.0).start()
clock.say("load started (tz %s, day %s)", tz, today)

victims = []
for _ in range(ROUNDS):
    names = sorted(procs)
    rng.shuffle(names)
    victims += names
kills = 0
for name in victims:
    load.stopping.wait(rng.uniform(0.2, 1.5))
    procs[name].kill9()
    kills += 1
    down = rng.uniform(0.0, 1.0)
    clock.say("kill -9 #%d of the %s process (down %.2fs; %s)", kills, name, down, load.summary())
    load.stopping.wait(down)
    cu.restart(procs[name])
load.stopping.wait(rng.uniform(0.5, 1.5))
t(load.stop(), "the load threads end")
clock.say("load stopped: %s", load.summary())
t(len(load.created) > 0 and len(load.completed) + load.shuffles > 0, "the load got answers between the kills")

counts = cu.settle_and_check(t, clock, dep, nats, admin, load, today)
cu.finish(t, clock, dep, "chaos.split", seed, "%d (%s)" % (kills, ",".join(victims)), counts, load)
