"""A message failing its schema lands in ates.dlq.<service> and the next
message is still handled; so does one whose handler keeps failing."""
import json

from harness import Ates, Check, Nats, NatsServer, wait_for

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url).start()
nc = Nats(nats.port)

# a body missing data.fail_times and with a bad event id
bad = json.dumps({"event_id": "not-a-uuid", "event_name": "ProbeEmitted", "event_version": 1,
                  "event_time": "2026-11-24T10:00:00.000Z", "producer": "test", "trace_id": "t",
                  "data": {"key": "bad"}}).encode()
nc.publish("ates.probe.emitted", bad, headers={"Nats-Msg-Id": "bad-1"})
bad2 = json.dumps({"event_id": "0190a6e0-0000-7000-8000-000000000001", "event_name": "ProbeEmitted",
                   "event_version": 1, "event_time": "2026-11-24T10:00:00.000Z", "producer": "test",
                   "trace_id": "t", "data": {"key": "bad2"}}).encode()
nc.publish("ates.probe.emitted", bad2, headers={"Nats-Msg-Id": "bad-2"})
nc.publish("ates.probe.emitted", b"{not json", headers={"Nats-Msg-Id": "bad-3"})
st, _ = ates.post("/api/probe/emit", {"keys": ["good-after-bad"]})
t.eq(st, 200, "emit a good event after the bad ones")
wait_for(lambda: any(i["key"] == "good-after-bad" for i in ates.get("/api/probe/effects")[1]["items"]),
         timeout=30, what="the good event handled")

def dlq():
    info = nc.stream_info("ATES_DLQ")
    return [json.loads(b) for _, _, b in nc.stream_msgs("ATES_DLQ")] if info.get("state", {}).get("messages") else []

letters = wait_for(lambda: (lambda d: d if len(d) >= 3 else None)(dlq()), timeout=30, what="3 dead letters")
t.eq(len(letters), 3, "one dead letter per bad message")
t(all(l["event_name"] == "DeadLetter" and l["producer"] == "probe" for l in letters), "DeadLetter envelope")
subjects = {l["data"]["subject"] for l in letters}
t.eq(subjects, {"ates.probe.emitted"}, "dead letters name the subject")
bodies = sorted(l["data"]["body"] for l in letters)
t(bad.decode() in bodies and "{not json" in bodies, "dead letters keep the original body")
t(all(l["data"]["reason"] for l in letters), "dead letters give a reason")
t(not any(i["key"] in ("bad", "bad2") for i in ates.get("/api/probe/effects")[1]["items"]), "no effect of a bad message")

# a handler that always fails is dead-lettered after the delivery limit
st, body = ates.post("/api/probe/emit", {"keys": ["poison"], "fail_times": 1000})
st, _ = ates.post("/api/probe/emit", {"keys": ["after-poison"]})
wait_for(lambda: any(i["key"] == "after-poison" for i in ates.get("/api/probe/effects")[1]["items"]),
         timeout=60, what="the event after the poison one handled")
letters = wait_for(lambda: (lambda d: d if len(d) >= 4 else None)(dlq()), timeout=60, what="poison dead letter")
poison = [l for l in letters if "poison" in l["data"]["body"]]
t.eq(len(poison), 1, "the poison event dead-lettered once")
t(not any(i["key"] == "poison" for i in ates.get("/api/probe/effects")[1]["items"]), "no effect of the poison event")
t.eq(ates.stop(), 0, "clean stop")
t.done()
