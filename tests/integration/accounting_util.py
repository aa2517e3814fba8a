"""Helpers shared by the test_accounting_* scripts: a business-day zone that
keeps the test far from midnight, events made by hand in CONTRACT envelopes,
fast reads of whole streams, the accounting ledger over HTTP, the mail spool
and accounting's own SQLite file.

Only the Python standard library."""
import datetime
import email
import email.policy
import json
import os
import re
import sqlite3
import time
import uuid
import zoneinfo

from harness import Nats, fast_nats, write_file

# --- the business day -----------------------------------------------------------


def noon_tz():
    """An Etc/GMT zone in which it is about noon now (within 30 minutes), so
    that the business day cannot change while a test runs."""
    now = datetime.datetime.now(datetime.timezone.utc)
    hours = now.hour + now.minute / 60.0
    offset = int(round(12 - hours))  # local = UTC + offset
    offset = max(-11, min(12, offset))
    if offset == 0:
        return "Etc/GMT"
    # Etc/GMT-N is UTC+N (POSIX signs are inverted)
    return "Etc/GMT%+d" % (-offset)


def local_now(tz):
    return datetime.datetime.now(zoneinfo.ZoneInfo(tz))


def today(tz):
    return local_now(tz).date().isoformat()


def day_add(day, n):
    return (datetime.date.fromisoformat(day) + datetime.timedelta(days=n)).isoformat()


def at_local(tz, day, hh=10, mm=0, ss=0, ms=0):
    """RFC 3339 UTC of local time hh:mm on `day` in `tz`."""
    d = datetime.date.fromisoformat(day)
    dt = datetime.datetime(d.year, d.month, d.day, hh, mm, ss, ms * 1000, tzinfo=zoneinfo.ZoneInfo(tz))
    return rfc3339(dt)


def rfc3339(dt=None):
    dt = dt or datetime.datetime.now(datetime.timezone.utc)
    dt = dt.astimezone(datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# --- rules ------------------------------------------------------------------------

# fee 1000 + n and reward 3000 + 2n, n the number that ends the title; a task
# priced before its title is known (no TaskCreated yet) has n = 0.
PRICING_LUA = """-- deterministic prices for the accounting tests
local function n_of(task)
  local n = task.title and task.title:match("(%d+)%s*$")
  return n and tonumber(n) or 0
end
function price(task)
  local n = n_of(task)
  return {assign_fee_cents = 1000 + n, reward_cents = 3000 + 2 * n}
end
function selftest()
  local p = price({task_id = "t", title = "Task 7"})
  assert(p.assign_fee_cents == 1007 and p.reward_cents == 3014, "Task 7")
  p = price({task_id = "t"})
  assert(p.assign_fee_cents == 1000 and p.reward_cents == 3000, "no title")
  return true
end
"""


def fee_of(title):
    m = re.search(r"(\d+)\s*$", title or "")
    return 1000 + (int(m.group(1)) if m else 0)


def reward_of(title):
    m = re.search(r"(\d+)\s*$", title or "")
    return 3000 + 2 * (int(m.group(1)) if m else 0)


def fixed_rules(rules_dir):
    """Overwrite pricing.lua in a copied rules dir with the deterministic one."""
    write_file(os.path.join(rules_dir, "pricing.lua"), PRICING_LUA)
    return rules_dir


def rules_version(ates, headers, name):
    st, js = ates.get("/api/rules", headers=headers)
    if st != 200:
        raise AssertionError("GET /api/rules: %d %r" % (st, js))
    for it in js["items"]:
        if it["file"] == name:
            return it["version"]
    raise AssertionError("no %s in /api/rules: %r" % (name, js))


def money(cents):
    """payout.lua's money(): "$1,234.56"."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return "%s$%s.%02d" % (sign, "{:,}".format(cents // 100), cents % 100)


# --- events by hand ----------------------------------------------------------------

SUBJECTS = {"AccountCreated": "ates.accounts.created", "AccountUpdated": "ates.accounts.updated",
            "TaskCreated": "ates.tasks.created", "TaskAssigned": "ates.tasks.assigned",
            "TaskCompleted": "ates.tasks.completed"}


def new_id():
    return str(uuid.uuid4())


def event(name, version, data, event_time=None, event_id=None):
    return {"event_id": event_id or new_id(), "event_name": name, "event_version": version,
            "event_time": event_time or rfc3339(), "producer": "test",
            "trace_id": "acct-test-" + uuid.uuid4().hex[:12], "data": data}


def account_created(account_id, email_addr, name, role="popug", active=True, at=None):
    return event("AccountCreated", 1, {"account_id": account_id, "email": email_addr, "name": name,
                                       "role": role, "active": active}, event_time=at)


def task_created(task_id, title, assignee, at=None, version=2, jira_id=None, description=None):
    at = at or rfc3339()
    data = {"task_id": task_id, "title": title, "description": description, "assignee_id": assignee,
            "created_at": at}
    if version >= 2:
        data["jira_id"] = jira_id
    return event("TaskCreated", version, data, event_time=at)


def task_assigned(task_id, assignee, previous=None, at=None):
    at = at or rfc3339()
    return event("TaskAssigned", 1, {"task_id": task_id, "assignee_id": assignee,
                                     "previous_assignee_id": previous, "assigned_at": at}, event_time=at)


def task_completed(task_id, assignee, at=None):
    at = at or rfc3339()
    return event("TaskCompleted", 1, {"task_id": task_id, "assignee_id": assignee, "completed_at": at},
                 event_time=at)


def publish(nc, events, msg_ids=None, chunk=400):
    """Publish events (envelopes) on their subjects to JetStream and wait for
    every PubAck, `chunk` at a time. msg_ids: a Nats-Msg-Id for each (default
    the event id; another one makes the stream keep a second copy).
    Returns [(stream, seq, duplicate)] of the acks."""
    inbox = "_INBOX.acct.%s" % uuid.uuid4().hex
    nc.subscribe(inbox)
    acks = []
    for i in range(0, len(events), chunk):
        part = events[i:i + chunk]
        for j, ev in enumerate(part):
            mid = msg_ids[i + j] if msg_ids else ev["event_id"]
            nc.publish(SUBJECTS[ev["event_name"]], json.dumps(ev).encode(), reply=inbox,
                       headers={"Nats-Msg-Id": mid, "Ates-Event": ev["event_name"],
                                "Ates-Version": str(ev["event_version"])})
        for _ in part:
            _, _, raw = nc.next_msg(timeout=20)
            ack = json.loads(raw)
            if "error" in ack:
                raise AssertionError("publish: %r" % ack)
            acks.append((ack["stream"], ack["seq"], bool(ack.get("duplicate"))))
    return acks


def stream_last_seq(nats_port, stream):
    nc = fast_nats(nats_port)
    try:
        return nc.stream_info(stream).get("state", {}).get("last_seq", 0)
    finally:
        nc.close()


def stream_events(nats_port, stream, subject=None, timeout=30.0):
    """Every message of `stream` (on `subject` when given), oldest first, as
    (headers, parsed body), read through an ephemeral push consumer (much
    faster than one STREAM.MSG.GET per message)."""
    sub = Nats(nats_port)
    api = fast_nats(nats_port)
    try:
        inbox = "_INBOX.acctread.%s" % uuid.uuid4().hex
        sub.subscribe(inbox)
        sub.sock.sendall(b"PING\r\n")
        while sub._line() != b"PONG":
            pass
        cfg = {"deliver_subject": inbox, "ack_policy": "none", "deliver_policy": "all",
               "replay_policy": "instant", "mem_storage": True}
        if subject:
            cfg["filter_subject"] = subject
        r = api.js("CONSUMER.CREATE." + stream, {"stream_name": stream, "config": cfg})
        if "error" in r:
            raise AssertionError("consumer create on %s: %r" % (stream, r))
        want = r.get("num_pending", 0)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < want:
            if time.monotonic() > deadline:
                raise AssertionError("read %d of %d messages of %s" % (len(out), want, stream))
            _, hdrs, body = sub.next_msg(timeout=timeout)
            if not body:  # a status message (heartbeat / flow control)
                continue
            out.append((hdrs, json.loads(body)))
        api.js("CONSUMER.DELETE.%s.%s" % (stream, r["name"]))
        return out
    finally:
        sub.close()
        api.close()


def events_named(nats_port, stream, subject):
    return [ev for _, ev in stream_events(nats_port, stream, subject)]


def wait_stream_count(nats_port, stream, subject, n, timeout=30.0):
    """Wait until `subject` in `stream` holds at least n messages; their bodies."""
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        got = events_named(nats_port, stream, subject)
        if len(got) >= n:
            return got
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %d messages on %s (have %d)" % (n, subject, len(got)))


# --- accounting over HTTP ------------------------------------------------------------


def ledger(ates, headers, account_id=None, day=None, limit=None):
    """All entries of one account on one day (following `next`), and the
    balance; account_id None means /me. (entries, balance_cents, pages)."""
    entries, after, pages, balance = [], None, 0, None
    for _ in range(1000):
        q = []
        if day:
            q.append("day=" + day)
        if limit:
            q.append("limit=%d" % limit)
        if after:
            q.append("after=" + after)
        path = "/api/accounting/me" if account_id is None else "/api/accounting/accounts/" + account_id
        st, js = ates.get(path + ("?" + "&".join(q) if q else ""), headers=headers)
        if st != 200:
            raise AssertionError("GET %s: %d %r" % (path, st, js))
        pages += 1
        entries += js["entries"]
        balance = js["balance_cents"]
        after = js.get("next")
        if not after:
            break
    return entries, balance, pages


def signed(entry):
    return entry["amount_cents"] if entry["kind"] == "credit" else -entry["amount_cents"]


def chain_ok(entries, start):
    """Each entry's balance_cents is the one before plus its own amount."""
    bal = start
    for e in entries:
        bal += signed(e)
        if e["balance_cents"] != bal:
            return False
    return True


def days(ates, headers, frm, to):
    st, js = ates.get("/api/accounting/days?from=%s&to=%s" % (frm, to), headers=headers)
    if st != 200:
        raise AssertionError("GET /days: %d %r" % (st, js))
    return {i["day"]: i for i in js["items"]}


def close_day(ates, headers, day=None):
    return ates.post("/api/accounting/close-day", {"day": day} if day else {}, headers=headers)


ENTRY_KEYS = {"id", "kind", "amount_cents", "task_id", "description", "created_at", "rules_version",
              "balance_cents"}


# --- accounting's own database (read beside the process) ---------------------------------


def db_rows(data_dir, sql, args=()):
    con = sqlite3.connect(os.path.join(data_dir, "accounting.db"), timeout=20)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def db_exec(data_dir, sql, args=()):
    con = sqlite3.connect(os.path.join(data_dir, "accounting.db"), timeout=20)
    try:
        con.execute(sql, args)
        con.commit()
    finally:
        con.close()


# --- mail spool ---------------------------------------------------------------------------


MAILS_SETTLED_SQL = ("SELECT (SELECT count(*) FROM mail_outbox) + (SELECT count(*) FROM mail_pending m "
                     "JOIN accounts a ON a.id = m.account_id WHERE a.email IS NOT NULL)")


def mails_settled(data_dir):
    """True once every payout mail that can be written is: none pending for an account with an
    address (the payout mail job renders those) and none left in mail_outbox (the mail worker)."""
    return db_rows(data_dir, MAILS_SETTLED_SQL)[0][0] == 0


def spool(data_dir):
    """{file name: raw bytes} of DATA/mail (dot files are temp files and count too)."""
    d = os.path.join(data_dir, "mail")
    if not os.path.isdir(d):
        return {}
    out = {}
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                out[name] = f.read()
    return out


def parse_mail(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def crlf_only(raw):
    return raw.count(b"\n") == raw.count(b"\r\n") and raw.count(b"\r") == raw.count(b"\r\n")


def mail_problems(raw, to, subject, msg_id):
    """[] when `raw` is an RFC 5322 message with these headers, else what is wrong."""
    bad = []
    if not crlf_only(raw):
        bad.append("line endings are not CRLF only")
    head = raw.split(b"\r\n\r\n", 1)[0]
    for ln in head.split(b"\r\n"):
        if len(ln) > 998:
            bad.append("a header line over 998 octets")
        if any(c > 127 for c in ln):
            bad.append("a non-ASCII header byte")
    m = parse_mail(raw)
    for h in ("Date", "From", "To", "Subject", "Message-ID"):
        if len(m.get_all(h) or []) != 1:
            bad.append("not exactly one %s header" % h)
    if m["To"] != to:
        bad.append("To %r, want %r" % (m["To"], to))
    if m["Subject"] != subject:
        bad.append("Subject %r, want %r" % (m["Subject"], subject))
    if m["Message-ID"] != "<%s@ates>" % msg_id:
        bad.append("Message-ID %r" % m["Message-ID"])
    if m["Date"] is None or getattr(m["Date"], "datetime", None) is None:
        bad.append("Date does not parse")
    if m["From"] is None or "@" not in str(m["From"]):
        bad.append("From %r" % m["From"])
    if m.get_content_type() != "text/plain":
        bad.append("content type %r" % m.get_content_type())
    return bad


# --- the books against the tracker's truth ------------------------------------------------


def task_prices(ates, headers, task_ids):
    """{task_id: GET /api/accounting/tasks/{id} body} (AssertionError on a non-200)."""
    out = {}
    for tid in task_ids:
        st, js = ates.get("/api/accounting/tasks/" + tid, headers=headers)
        if st != 200:
            raise AssertionError("GET /api/accounting/tasks/%s: %d %r" % (tid, st, js))
        out[tid] = js
    return out


def expected_books(task_events, prices, titles):
    """From the TaskAssigned/TaskCompleted events: {account: sorted [(kind,
    amount, task_id, description)]}, with the description the entry must
    carry (titles: {task_id: title})."""
    want = {}
    for ev in task_events:
        d = ev["data"]
        if ev["event_name"] == "TaskAssigned":
            row = ("debit", prices[d["task_id"]]["assign_fee_cents"], d["task_id"],
                   "assigned: " + titles.get(d["task_id"], "task " + d["task_id"]))
        elif ev["event_name"] == "TaskCompleted":
            row = ("credit", prices[d["task_id"]]["reward_cents"], d["task_id"],
                   "completed: " + titles.get(d["task_id"], "task " + d["task_id"]))
        else:
            continue
        want.setdefault(d["assignee_id"], []).append(row)
    return {k: sorted(v) for k, v in want.items()}


def entry_rows(entries):
    return sorted((e["kind"], e["amount_cents"], e["task_id"], e["description"]) for e in entries)


def check_books(t, ates, headers, nats_port, accounts, day, what=""):
    """The whole check of a day on which every entry came from the tracker:
    per account the entries are exactly one debit per TaskAssigned and one
    credit per TaskCompleted of ATES_TASKS, at the task's price; balances
    chain and equal the sum of the ledger; every entry has its
    TransactionApplied; the day's totals and /today agree. Returns
    {account: entries}."""
    tev = [ev for _, ev in stream_events(nats_port, "ATES_TASKS")]
    titles = {ev["data"]["task_id"]: ev["data"]["title"] for ev in tev if ev["event_name"] == "TaskCreated"}
    prices = task_prices(ates, headers, sorted({ev["data"]["task_id"] for ev in tev}))
    want = expected_books(tev, prices, titles)
    applied = {}
    for ev in events_named(nats_port, "ATES_ACCOUNTING", "ates.accounting.transaction"):
        applied.setdefault(ev["data"]["account_id"], []).append(ev["data"])
    got_all = {}
    debits = credits = 0
    for acc in sorted(set(accounts) | set(want)):
        entries, balance, _ = ledger(ates, headers, acc, day)
        got_all[acc] = entries
        t.eq(entry_rows(entries), want.get(acc, []),
             "%s%s: one debit per TaskAssigned, one credit per TaskCompleted, at the task's price"
             % (what, acc))
        t(all(set(e) == ENTRY_KEYS for e in entries), "%s%s: entry fields" % (what, acc))
        t(all(RFC3339_MS.match(e["created_at"]) for e in entries), "%s%s: created_at format" % (what, acc))
        t.eq(balance, sum(signed(e) for e in entries), "%s%s: balance == sum of the ledger" % (what, acc))
        t(chain_ok(entries, 0), "%s%s: each entry's balance_cents follows from the one before" % (what, acc))
        t.eq(sorted((a["transaction_id"], a["kind"], a["amount_cents"], a["task_id"], a["balance_cents"],
                     a["day"], a["rules_version"]) for a in applied.get(acc, [])),
             sorted((e["id"], e["kind"], e["amount_cents"], e["task_id"], e["balance_cents"], day,
                     e["rules_version"]) for e in entries),
             "%s%s: one TransactionApplied per entry, with its values" % (what, acc))
        for e in entries:
            if e["kind"] == "debit":
                debits += e["amount_cents"]
            elif e["kind"] == "credit":
                credits += e["amount_cents"]
    d = days(ates, headers, day, day)[day]
    t.eq((d["debits_cents"], d["credits_cents"], d["management_earnings_cents"]),
         (debits, credits, debits - credits), "%s/days %s: debits, credits, earnings = debits - credits"
         % (what, day))
    st, js = ates.get("/api/accounting/today", headers=headers)
    t.eq((st, js), (200, {"day": day, "management_earnings_cents": debits - credits}),
         "%s/today: management earnings = debits - credits" % what)
    return got_all
