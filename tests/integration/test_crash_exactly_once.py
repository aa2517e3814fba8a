"""kill -9 between commit and publish: after a restart the event is
published and its effect happens exactly once."""
import json
import time

from harness import Ates, Check, Nats, NatsServer, wait_for

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url).start()

keys = ["crash-%d" % i for i in range(3)]
for k in keys:
    try:
        ates.post("/api/probe/emit", {"keys": [k], "crash_after_commit": True})
        t(False, "the process should have died before answering")
    except Exception:
        pass
    ates.proc.wait(timeout=10)
    t.eq(ates.proc.returncode, -9, "killed by SIGKILL after commit")
    ates.start()

eff = wait_for(lambda: (lambda e: e if len(e["items"]) == len(keys) else None)(ates.get("/api/probe/effects")[1]),
               timeout=30, what="all effects after restarts")
t.eq(sorted((i["key"], i["n"]) for i in eff["items"]), [(k, 1) for k in keys], "each effect exactly once")
wait_for(lambda: ates.get("/api/probe/effects")[1]["outbox_pending"] == 0, what="outbox drained")
time.sleep(0.5)  # let any stray redelivery land before counting (not a timing assertion)
eff = ates.get("/api/probe/effects")[1]
t.eq(sorted(i["n"] for i in eff["items"]), [1, 1, 1], "still once after a pause")

nc = Nats(nats.port)
msgs = nc.stream_msgs("ATES_PROBE")
seen = sorted(json.loads(b)["data"]["key"] for _, _, b in msgs)
t.eq(seen, keys, "the stream holds each event exactly once")
t.eq(ates.stop(), 0, "clean stop")
t.done()
