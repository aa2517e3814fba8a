"""kill -9 of `ates` (every service in one process) at random moments, 10
times, while the load creates, completes and shuffles tasks; each time the
process starts again on the same data dir and port. After quiescence every
invariant holds: nothing answered is lost, every task priced once, one
ledger entry per assignment and completion, balances equal their ledgers,
analytics agrees with accounting, no outbox row and no dead letter left."""
import random

import chaos_util as cu
from harness import ATES_BIN, Ates, Check, NatsServer

KILLS = cu.scaled(10)
seed = cu.chaos_seed()
rng = random.Random(seed)
tz = cu.noon_tz()
today = cu.today(tz)
clock = cu.Clock()
t = Check()

nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, env=cu.base_env(seed, tz)).start()
dep = cu.Deployment({s: ates for s in ("auth", "tracker", "accounting", "analytics", "notify")})
admin, boss, popugs, _ = cu.setup_people(dep, nats.port, 4, "kill")
load = cu.Load(dep, admin, boss, popugs, rng.random(), max_tasks=cu.scaled(300), rate=15.0).start()
clock.say("load started (tz %s, day %s)", tz, today)

kills = 0
for i in range(KILLS):
    load.stopping.wait(rng.uniform(0.05, 1.5))
    ates.kill9()
    kills += 1
    down = rng.uniform(0.0, 0.4)
    clock.say("kill -9 #%d of ates (down %.2fs; %s)", kills, down, load.summary())
    load.stopping.wait(down)
    cu.restart(ates)
load.stopping.wait(rng.uniform(0.5, 1.5))
t(load.stop(), "the load threads end")
clock.say("load stopped: %s", load.summary())
t(len(load.created) > 0 and len(load.completed) + load.shuffles > 0, "the load got answers between the kills")

counts = cu.settle_and_check(t, clock, dep, nats, admin, load, today)
cu.finish(t, clock, dep, "chaos.kill", seed, kills, counts, load)
