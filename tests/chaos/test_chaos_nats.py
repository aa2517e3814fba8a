"""kill -9 of nats-server at random moments while the load runs against
`ates` (every service in one process); each time the broker comes back on
the same port and the same JetStream store after a random outage. In one
of the rounds `ates` is killed too while the broker is down and starts
again without it (writes go to the outboxes, /ready says 503 until the
broker is back). After quiescence every invariant holds: nothing answered
is lost, every task priced once, one ledger entry per assignment and
completion, balances equal their ledgers, analytics agrees with accounting,
no outbox row and no dead letter left."""
import random

import chaos_util as cu
from harness import ATES_BIN, Ates, Check, NatsServer, wait_for

NATS_KILLS = cu.scaled(6)
seed = cu.chaos_seed()
rng = random.Random(seed)
tz = cu.noon_tz()
today = cu.today(tz)
clock = cu.Clock()
t = Check()

nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, env=cu.base_env(seed, tz)).start()
dep = cu.Deployment({s: ates for s in ("auth", "tracker", "accounting", "analytics", "notify")})
admin, boss, popugs, _ = cu.setup_people(dep, nats.port, 4, "nats")
load = cu.Load(dep, admin, boss, popugs, rng.random(), max_tasks=cu.scaled(300), rate=15.0).start()
clock.say("load started (tz %s, day %s, nats store %s)", tz, today, nats.store)

kills, ates_kills = 0, 0
both_round = rng.randrange(NATS_KILLS)
for i in range(NATS_KILLS):
    load.stopping.wait(rng.uniform(0.3, 2.0))
    cu.kill9_nats(nats)
    kills += 1
    down = rng.uniform(0.1, 2.0)
    clock.say("kill -9 #%d of nats-server (down %.2fs; %s)", kills, down, load.summary())
    if i == both_round:
        load.stopping.wait(down / 2)
        ates.kill9()
        ates_kills += 1
        clock.say("kill -9 of ates while nats-server is down; it starts again without a broker")
        cu.restart(ates, wait_ready=False)
        st, _ = ates.get("/ready")
        t.eq(st, 503, "/ready of ates started while nats-server is down")
        load.stopping.wait(down / 2)
    else:
        load.stopping.wait(down)
    nats.start()
    wait_for(lambda: ates.get("/ready")[0] == 200, timeout=60, what="ates /ready after nats-server returned")
load.stopping.wait(rng.uniform(0.5, 1.5))
t(load.stop(), "the load threads end")
clock.say("load stopped: %s", load.summary())
t(len(load.created) > 0 and len(load.completed) + load.shuffles > 0, "the load got answers")

counts = cu.settle_and_check(t, clock, dep, nats, admin, load, today)
cu.finish(t, clock, dep, "chaos.nats", seed, "nats-server %d, ates %d" % (kills, ates_kills), counts, load)
