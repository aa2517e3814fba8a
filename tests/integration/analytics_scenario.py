"""A fixed analytics scenario for the test_analytics_* scripts: accounting and
tracker events with chosen past times, published by hand to JetStream in
CONTRACT envelopes, and the answers they must give.

The business day is in Europe/Berlin (UTC+2 in September/October), so a few
completions fall on another local day than their UTC date. The days cross a
week boundary (Sunday 2026-09-27 / Monday 2026-09-28) and a month boundary
(2026-09-30 / 2026-10-01). The events are published in a scrambled order:
TaskPriced before its TaskCreated, TaskCompleted before TaskCreated, ledger
entries of an account newest first.
"""
import datetime
import json
import uuid
import zoneinfo

TZ = "Europe/Berlin"
RULES_VERSION = "0123456789ab"

A, B, C = (str(uuid.UUID(int=i + 0xA0000000000000000000000000000000)) for i in range(3))


def rfc3339(dt):
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        "%03dZ" % (dt.microsecond // 1000)


def utc(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def today():
    return datetime.datetime.now(zoneinfo.ZoneInfo(TZ)).date().isoformat()


def task_id(n):
    return str(uuid.UUID(int=n + 0x7E000000000000000000000000000000))


# name: (version, title as published, jira_id (v2), reward or None, completed_at UTC or None)
TASKS = {
    "T0": (1, "[UBERPOP-0]  Early bird ", None, 3900, "2026-09-02T06:00:00Z"),
    "T1": (2, "Feed the parrots", "UBERPOP-1", 2500, "2026-09-26T10:00:00Z"),
    "T2": (1, "[UBERPOP-2] Clean the nest", None, 3900, "2026-09-27T21:30:00Z"),  # Sun 23:30 local
    "T3": (2, "Sing", None, 3900, "2026-09-27T22:30:00Z"),                        # Mon 00:30 local
    "T4": (1, "No brackets here", None, 2000, "2026-09-30T12:00:00Z"),
    "T5": (2, "Count eggs", "UBERPOP-5", 4000, "2026-09-30T22:15:00Z"),          # Thu 1 Oct local
    "T6": (2, "Tie early", "UBERPOP-6", 3000, "2026-10-05T08:00:00Z"),
    "T7": (2, "Tie late", "UBERPOP-7", 3000, "2026-10-05T09:00:00Z"),
    "T8": (2, "Never priced", None, None, "2026-10-05T10:00:00Z"),
    "T9": (2, "Priced, never done", None, 9999, None),
}
# What analytics must show for each task: (title, jira_id).
SHOWN = {
    "T0": ("Early bird", "UBERPOP-0"), "T1": ("Feed the parrots", "UBERPOP-1"),
    "T2": ("Clean the nest", "UBERPOP-2"), "T3": ("Sing", None), "T4": ("No brackets here", None),
    "T5": ("Count eggs", "UBERPOP-5"), "T6": ("Tie early", "UBERPOP-6"), "T7": ("Tie late", "UBERPOP-7"),
}

# (account, kind, amount, day, balance after, created_at UTC); newest last per account.
LEDGER = [
    (A, "debit", 1500, "2026-09-30", -1500, "2026-09-30T08:00:00Z"),
    (B, "debit", 1200, "2026-09-30", -1200, "2026-09-30T08:05:00Z"),
    (A, "credit", 2000, "2026-09-30", 500, "2026-09-30T12:00:00Z"),
    (A, "payout", 500, "2026-09-30", 0, "2026-09-30T22:00:00Z"),
    (B, "credit", 4000, "2026-10-01", 2800, "2026-10-01T09:00:00Z"),
    (C, "debit", 1000, "2026-10-01", -1000, "2026-10-01T09:30:00Z"),
    (A, "debit", 1700, "2026-10-01", -1700, "2026-10-01T10:00:00Z"),
    (B, "payout", 2800, "2026-10-01", 0, "2026-10-01T22:00:00Z"),
    (A, "credit", 3000, "2026-10-05", 1300, "2026-10-05T09:00:00Z"),
]


def today_ledger():
    """Entries booked today: C credit 500 (-1000 -> -500), B debit 1100 (0 -> -1100)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return [(C, "credit", 500, today(), -500, rfc3339(now)),
            (B, "debit", 1100, today(), -1100, rfc3339(now + datetime.timedelta(milliseconds=5)))]


def envelope(name, version, producer, event_time, data):
    return {"event_id": str(uuid.uuid4()), "event_name": name, "event_version": version,
            "event_time": event_time, "producer": producer, "trace_id": "analytics-test", "data": data}


def task_events():
    """[(subject, envelope)] of the tasks, in the scrambled publishing order."""
    created, priced, completed = {}, {}, {}
    for name, (ver, title, jira, reward, done) in TASKS.items():
        tid = task_id(int(name[1:]))
        at = "2026-09-01T08:00:00.000Z"
        data = {"task_id": tid, "title": title, "description": None, "assignee_id": A, "created_at": at}
        if ver == 2:
            data["jira_id"] = jira
        created[name] = ("ates.tasks.created", envelope("TaskCreated", ver, "tracker", at, data))
        if reward is not None:
            priced[name] = ("ates.accounting.task_priced", envelope(
                "TaskPriced", 1, "accounting", at,
                {"task_id": tid, "assign_fee_cents": 1000, "reward_cents": reward, "rules_version": RULES_VERSION}))
        if done:
            when = rfc3339(utc(done))
            completed[name] = ("ates.tasks.completed", envelope(
                "TaskCompleted", 1, "tracker", when, {"task_id": tid, "assignee_id": A, "completed_at": when}))
    out = []
    # accounting first: every TaskPriced before any TaskCreated
    out += [priced[n] for n in sorted(priced, reverse=True)]
    # tasks stream: completions of even tasks before their creation
    for n in sorted(TASKS):
        if n in completed and int(n[1:]) % 2 == 0:
            out.append(completed[n])
    out += [created[n] for n in sorted(created)]
    for n in sorted(TASKS):
        if n in completed and int(n[1:]) % 2 == 1:
            out.append(completed[n])
    return out


def ledger_events(entries):
    """Newest first: balances must come from the newest entry, not the last to arrive."""
    out = []
    for acc, kind, amount, day, balance, created in reversed(entries):
        at = rfc3339(utc(created))
        out.append(("ates.accounting.transaction", envelope(
            "TransactionApplied", 1, "accounting", at,
            {"transaction_id": str(uuid.uuid4()), "account_id": acc, "kind": kind, "amount_cents": amount,
             "task_id": None if kind == "payout" else task_id(0), "day": day, "balance_cents": balance,
             "created_at": at, "rules_version": RULES_VERSION})))
    return out


def day_closed_events():
    return [("ates.accounting.day_closed", envelope(
        "DayClosed", 1, "accounting", "2026-09-30T22:00:00.000Z",
        {"day": "2026-09-30", "management_earnings_cents": 700, "paid_cents": 500, "paid_accounts": 1,
         "negative_accounts": 1}))]


STREAM_OF = {"ates.tasks": "ATES_TASKS", "ates.accounting": "ATES_ACCOUNTING", "ates.accounts": "ATES_ACCOUNTS"}


def publish(nc, events, msg_id_prefix=""):
    """Publish to JetStream and wait for each PubAck. Returns {stream: count}.
    A msg_id_prefix makes the stream keep a copy of an event it already holds."""
    inbox = "_INBOX.analytics.%s" % uuid.uuid4().hex
    nc.subscribe(inbox)
    counts = {}
    for subject, ev in events:
        hdrs = {"Nats-Msg-Id": msg_id_prefix + ev["event_id"], "Ates-Event": ev["event_name"],
                "Ates-Version": str(ev["event_version"])}
        nc.publish(subject, json.dumps(ev).encode(), headers=hdrs, reply=inbox)
        _, _, ack = nc.next_msg(timeout=10)
        ack = json.loads(ack)
        if "error" in ack:
            raise AssertionError("publish %s: %r" % (subject, ack))
        counts[ack["stream"]] = counts.get(ack["stream"], 0) + 1
    return counts


def all_events():
    return task_events() + ledger_events(LEDGER) + day_closed_events()


# --- expected answers -------------------------------------------------------------

def best(name):
    if name is None:
        return {"task_id": None, "title": None, "jira_id": None, "reward_cents": None}
    title, jira = SHOWN[name]
    return {"task_id": task_id(int(name[1:])), "title": title, "jira_id": jira, "reward_cents": TASKS[name][3]}


def item(period, name):
    d = best(name)
    d["period"] = period
    return d


def days_between(a, b):
    d0, d1 = datetime.date.fromisoformat(a), datetime.date.fromisoformat(b)
    return [(d0 + datetime.timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]


BEST_BY_DAY = {"2026-09-02": "T0", "2026-09-26": "T1", "2026-09-27": "T2", "2026-09-28": "T3",
               "2026-09-30": "T4", "2026-10-01": "T5", "2026-10-05": "T6"}
COMPLETED_BY_DAY = {"2026-09-02": 1, "2026-09-26": 1, "2026-09-27": 1, "2026-09-28": 1, "2026-09-30": 1,
                    "2026-10-01": 1, "2026-10-05": 3}
EARNINGS_BY_DAY = {"2026-09-30": 2700 - 2000, "2026-10-01": 2700 - 4000, "2026-10-05": -3000}
# accounts below zero at the end of each day (A, B, C as in LEDGER)
NEGATIVE_BY_DAY = {"2026-09-30": 1, "2026-10-01": 2, "2026-10-02": 2, "2026-10-03": 2, "2026-10-04": 2,
                   "2026-10-05": 1}


def expected_days(a, b):
    neg = 0
    out = []
    for d in days_between("2026-09-01", b):
        neg = NEGATIVE_BY_DAY.get(d, neg if d > "2026-09-30" else 0)
        if d >= a:
            out.append({"day": d, "management_earnings_cents": EARNINGS_BY_DAY.get(d, 0),
                        "negative_accounts": neg, "completed_tasks": COMPLETED_BY_DAY.get(d, 0)})
    return out


def expected_best_days(a, b):
    items = [item(d, BEST_BY_DAY.get(d)) for d in days_between(a, b)]
    return {"items": items, "overall": overall(items)}


def overall(items):
    """The greatest reward, then the earliest completion (the default rule)."""
    top = None
    for it in items:
        if it["task_id"] is None:
            continue
        name = "T%d" % (int(it["task_id"][-2:], 16))
        key = (TASKS[name][3], [-utc(TASKS[name][4]).timestamp()])
        if top is None or key > top[0]:
            top = (key, it)
    if top is None:
        return {"period": None, "task_id": None, "title": None, "jira_id": None, "reward_cents": None}
    return dict(top[1])
