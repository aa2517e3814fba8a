"""A redelivered message has its effect once: a handler failing the first
deliveries, and the same event published twice under different msg ids."""
import json
import time

from harness import Ates, Check, Nats, NatsServer, wait_for

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url).start()

# 1. fails twice, then succeeds on the third delivery
st, body = ates.post("/api/probe/emit", {"keys": ["flaky"], "fail_times": 2})
t.eq(st, 200, "emit")
wait_for(lambda: any(i["key"] == "flaky" for i in ates.get("/api/probe/effects")[1]["items"]),
         timeout=60, what="effect after retries")

# 2. the same event body twice on the subject, with different Nats-Msg-Id
nc = Nats(nats.port)
original = [b for _, h, b in nc.stream_msgs("ATES_PROBE") if json.loads(b)["data"]["key"] == "flaky"][0]
for i in range(2):
    nc.publish("ates.probe.emitted", original, headers={"Nats-Msg-Id": "dup-%d" % i})
st, body = ates.post("/api/probe/emit", {"keys": ["after-dups"]})
wait_for(lambda: any(i["key"] == "after-dups" for i in ates.get("/api/probe/effects")[1]["items"]),
         what="a later event handled")
time.sleep(0.3)
items = {i["key"]: i["n"] for i in ates.get("/api/probe/effects")[1]["items"]}
t.eq(items.get("flaky"), 1, "the flaky event's effect happened once despite retries and duplicates")
t.eq(items.get("after-dups"), 1, "the next event handled once")
t.eq(len(nc.stream_msgs("ATES_PROBE")), 4, "the stream holds the duplicates (dedup is the consumer's job)")
t.eq(ates.stop(), 0, "clean stop")
t.done()
