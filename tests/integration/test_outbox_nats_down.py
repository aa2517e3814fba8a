"""An event emitted while nats-server is down is published after it starts,
once; /ready answers 503 while NATS is down and 200 after."""
from harness import Ates, Check, Nats, NatsServer, wait_for

t = Check()
nats = NatsServer()  # port and store chosen, server not started yet
ates = Ates(nats.url).start(wait_ready=False)

st, _ = ates.get("/ready")
t.eq(st, 503, "/ready while NATS is down")
st, body = ates.post("/api/probe/emit", {"keys": ["down-1", "down-2"]})
t.eq(st, 200, "emit while NATS is down")
st, eff = ates.get("/api/probe/effects")
t.eq(eff["outbox_pending"], 2, "both events wait in the outbox")
t.eq(eff["items"], [], "no effect before NATS")

nats.start()
wait_for(lambda: ates.get("/ready")[0] == 200, what="/ready after NATS starts")
eff = wait_for(lambda: (lambda e: e if len(e["items"]) == 2 else None)(ates.get("/api/probe/effects")[1]),
               timeout=30, what="effects after NATS starts")
t.eq([(i["key"], i["n"]) for i in eff["items"]], [("down-1", 1), ("down-2", 1)], "each effect once")
wait_for(lambda: ates.get("/api/probe/effects")[1]["outbox_pending"] == 0, what="outbox drained")

nc = Nats(nats.port)
msgs = nc.stream_msgs("ATES_PROBE")
t.eq(len(msgs), 2, "the stream holds each event once")
ids = sorted(h.get("Nats-Msg-Id") for _, h, _ in msgs)
t.eq(ids, sorted(body["event_ids"]), "Nats-Msg-Id is the event id")
t(all(h.get("Ates-Event") == "ProbeEmitted" and h.get("Ates-Version") == "1" for _, h, _ in msgs),
  "Ates-Event and Ates-Version headers")
t.eq(ates.stop(), 0, "clean stop on SIGTERM")
t.done()
