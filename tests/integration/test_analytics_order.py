"""analytics is indifferent to the order events arrive in: the scenario's
events in two random orders (each on its own NATS and analytics, events of
every subject mixed) give the CONTRACT scenario's answers; two entries of
one account at the same created_at are ordered by transaction id; a copy of
an event the stream holds twice (another Nats-Msg-Id, the same event id)
counts once."""
import random

import analytics_scenario as sc
from harness import ATES_BIN, Ates, Check, NatsServer, bearer, fast_nats, login, wait_consumed

D = "d0000000-0000-4000-8000-000000000000"


def tie_entries():
    """Two entries of D at the same instant: the greater transaction id is the newer."""
    out = []
    for txid, kind, amount, balance in (("01000000-0000-7000-8000-000000000002", "credit", 300, 200),
                                        ("01000000-0000-7000-8000-000000000001", "debit", 100, -100)):
        out.append(("ates.accounting.transaction", sc.envelope(
            "TransactionApplied", 1, "accounting", "2026-10-02T09:00:00.000Z",
            {"transaction_id": txid, "account_id": D, "kind": kind, "amount_cents": amount,
             "task_id": sc.task_id(0), "day": "2026-10-02", "balance_cents": balance,
             "created_at": "2026-10-02T09:00:00.000Z", "rules_version": sc.RULES_VERSION})))
    return out


def run(t, seed):
    nats = NatsServer().start()
    ates = Ates(nats.url, binary=ATES_BIN, services="auth,analytics",
                env={"ATES_ADMIN_PASSWORD": "order-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                     "ATES_TZ": sc.TZ}).start()
    admin = bearer(login(ates, "root@popug.test", "order-admin-pw")["access_token"])
    events = sc.all_events() + tie_entries()
    random.Random(seed).shuffle(events)
    nc = fast_nats(nats.port)
    counts = sc.publish(nc, events)
    copies = [e for e in events if e[1]["event_name"] in ("TransactionApplied", "TaskCompleted")][:4]
    for stream, n in sc.publish(nc, copies, msg_id_prefix="copy-").items():
        counts[stream] += n
    for stream, n in counts.items():
        wait_consumed(nats.port, stream, "analytics", n)
    what = "order %d: " % seed

    def get(path):
        st, js = ates.get("/api/analytics/" + path, headers=admin)
        t.eq(st, 200, what + path)
        return js or {}

    want = sc.expected_days("2026-09-25", "2026-10-06")
    for w in want:
        if w["day"] == "2026-10-02":
            w["management_earnings_cents"] = 100 - 300
    t.eq(get("days?from=2026-09-25&to=2026-10-06").get("items"), want, what + "days")
    t.eq(get("most-expensive?period=day&from=2026-09-01&to=2026-10-31"),
         sc.expected_best_days("2026-09-01", "2026-10-31"), what + "by day")
    t.eq(get("most-expensive?period=month&from=2026-09-01&to=2026-10-31").get("items"),
         [sc.item("2026-09-01", "T0"), sc.item("2026-10-01", "T5")], what + "by month")
    nc.close()
    t.eq(ates.stop(), 0, what + "clean stop")
    nats.stop()


t = Check()
for seed in (1, 2):
    run(t, seed)
t.done()
