"""Chaos-test helpers: a load generator that survives dying processes, the
wait for quiescence, and the invariants checked over the APIs and the
streams once the dust has settled.

Only the Python standard library. Reuses tests/integration/harness.py (real
nats-server, real ates processes, real HTTP). Every wait has an upper bound
to give up at; nothing asserts on speed.

The load generator never trusts a request whose answer it did not get: a
create or a completion cut off by a kill may or may not have happened, so it
only records what was *answered*, and the checks read the truth back from
the tracker, the accounting and analytics APIs and the JetStream streams.
"""
import collections
import glob
import http.client
import json
import os
import random
import sqlite3
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
# the business-day zone and the stream reader the accounting tests use too
from accounting_util import noon_tz, stream_events, today  # noqa: E402,F401
from harness import Nats, bearer, fast_nats, list_pages, login  # noqa: E402,F401

# What a request may raise when the process dies under it or is not there:
# refused/reset connections, a cut-off answer, a truncated JSON body.
NET_ERRORS = (OSError, http.client.HTTPException, ValueError)

# The durable consumers each stream must have (CONTRACT 3: one per consuming
# service, named after it).
DURABLES = {
    "ATES_ACCOUNTS": ("tracker", "accounting", "analytics", "notify"),
    "ATES_TASKS": ("accounting", "analytics", "notify"),
    "ATES_ACCOUNTING": ("analytics",),
}
STREAMS = ("ATES_ACCOUNTS", "ATES_TASKS", "ATES_ACCOUNTING")


def chaos_seed():
    """The seed of every random choice of the test (kill moments, victims,
    load); ATES_CHAOS_SEED repeats a run."""
    s = os.environ.get("ATES_CHAOS_SEED")
    seed = int(s) if s else random.SystemRandom().randrange(1, 1 << 31)
    print("chaos seed %d (repeat with ATES_CHAOS_SEED=%d)" % (seed, seed), flush=True)
    return seed


def scaled(n):
    """n times ATES_CHAOS_SCALE (default 1): a longer run by hand, e.g.
    ATES_CHAOS_SCALE=4 for four times the kills and tasks."""
    return max(1, int(round(n * float(os.environ.get("ATES_CHAOS_SCALE") or 1))))


def base_env(seed, tz):
    return {"ATES_TZ": tz, "ATES_SEED": str(seed), "ATES_LOG": "info", "ATES_ACCESS_TTL": "3600",
            "ATES_ADMIN_EMAIL": "root@popug.test", "ATES_ADMIN_PASSWORD": "chaos-admin-pw"}


class Clock:
    """Seconds since the test began, for the timeline it prints."""

    def __init__(self):
        self.t0 = time.monotonic()

    def say(self, fmt, *args):
        print("[%6.2fs] %s" % (time.monotonic() - self.t0, fmt % args), flush=True)


# --- the deployment: which process serves which service -------------------------


class Deployment:
    """The ates processes of a test: {service: Ates} (one Ates may serve
    several services)."""

    def __init__(self, by_service):
        self.by_service = dict(by_service)

    def api(self, service):
        return self.by_service[service]

    def procs(self):
        out = []
        for a in self.by_service.values():
            if a not in out:
                out.append(a)
        return out

    def data_dirs(self):
        return [a.data_dir for a in self.procs()]

    def stop_all(self):
        """SIGTERM every process; their exit codes."""
        return [a.stop() for a in self.procs()]


def restart(ates, wait_ready=True):
    """Start a killed process again on the same data dir and port."""
    ates.start(wait_ready=wait_ready)


def kill9_nats(nats):
    if nats.proc and nats.proc.poll() is None:
        nats.proc.kill()
        nats.proc.wait(timeout=10)


# --- accounts -------------------------------------------------------------------------


def setup_people(dep, nats_port, n_popugs, tag):
    """The bootstrap admin logs in and creates a manager and n popugs at
    auth; everyone logs in; then waits until the tracker knows them all (so
    that no create meets "no eligible account"). Returns (admin headers,
    manager headers, {popug account id: headers}, [every account id made
    here])."""
    auth = dep.api("auth")
    admin = bearer(login(auth, "root@popug.test", "chaos-admin-pw")["access_token"])
    boss, _ = harness.add_account(auth, admin, "boss-%s@popug.test" % tag, "manager", "boss-password")
    boss_h = bearer(login(auth, "boss-%s@popug.test" % tag, "boss-password")["access_token"])
    popugs = {}
    for i in range(n_popugs):
        acc, h = harness.add_account(auth, admin, "p%d-%s@popug.test" % (i, tag), "popug", "popug-password-%d" % i)
        popugs[acc["id"]] = h
    harness.wait_consumed(nats_port, "ATES_ACCOUNTS", "tracker", 2 + n_popugs, timeout=60)
    return admin, boss_h, popugs, [boss["id"]] + list(popugs)


# --- the load generator ---------------------------------------------------------------


class Load:
    """Threads on loopback: a manager creating tasks at a bounded pace (at
    most max_tasks attempts), one thread per popug completing its own open
    tasks, the manager pressing shuffle now and then, and the admin adding a
    few popugs (nobody completes their tasks). Each thread tolerates a dead
    process (no answer: pause, try again later) and records only what was
    answered."""

    def __init__(self, dep, admin, boss, popugs, seed, max_tasks=300, rate=15.0, max_new_accounts=3):
        self.dep = dep
        self.admin, self.boss, self.popugs = admin, boss, popugs
        self.rng = random.Random(seed)
        self.max_tasks, self.rate, self.max_new_accounts = max_tasks, rate, max_new_accounts
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = []
        self.created = set()      # task ids answered 201
        self.completed = set()    # task ids whose completion was answered 200
        self.new_accounts = []    # account ids answered 201
        self.shuffles = 0         # presses answered 200
        self.reassigned = 0
        self.sent = 0
        self.no_answer = 0
        self.statuses = collections.Counter()  # (what, status)
        self.unexpected = []      # (what, status, body) outside the statuses each call allows
        self.create_attempts = 0

    # one request: (status, body), or None when no answer came
    def _call(self, service, what, method, path, headers, ok, body=None):
        with self.lock:
            self.sent += 1
        try:
            st, js, _, _ = self.dep.api(service).request(method, path, body=body, headers=headers)
        except NET_ERRORS:
            with self.lock:
                self.no_answer += 1
            return None
        with self.lock:
            self.statuses[(what, st)] += 1
            if st not in ok:
                self.unexpected.append((what, st, js))
        return st, js

    def _pause(self, rng, lo, hi):
        self.stopping.wait(rng.uniform(lo, hi))

    def _creator(self, rng):
        next_at = time.monotonic()
        while not self.stopping.is_set() and self.create_attempts < self.max_tasks:
            i = self.create_attempts
            self.create_attempts += 1  # every attempt gets a new title: a lost answer is not retried as such
            r = self._call("tracker", "create", "POST", "/api/tasks", self.boss, (201, 503),
                           body={"title": "Chaos %d" % i, "jira_id": "CHAOS-%d" % i,
                                 "description": "made by the chaos load"})
            if r and r[0] == 201 and isinstance(r[1], dict):
                with self.lock:
                    self.created.add(r[1]["id"])
            elif r is None:
                self._pause(rng, 0.05, 0.2)
            next_at += 1.0 / self.rate
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def _completer(self, rng, headers):
        while not self.stopping.is_set():
            r = self._call("tracker", "list", "GET", "/api/tasks?assignee=me&status=open&limit=50", headers,
                           (200, 503))
            if not r or r[0] != 200 or not isinstance(r[1], dict):
                self._pause(rng, 0.05, 0.2)
                continue
            items = r[1].get("items") or []
            if not items:
                self._pause(rng, 0.03, 0.1)
                continue
            task = rng.choice(items)
            # 403: a shuffle moved it away; 409: done already (a completion
            # whose answer was lost before went through)
            r = self._call("tracker", "complete", "POST", "/api/tasks/%s/complete" % task["id"], headers,
                           (200, 403, 409, 503))
            if r and r[0] == 200:
                with self.lock:
                    self.completed.add(task["id"])
            self._pause(rng, 0.02, 0.25)

    def _shuffler(self, rng):
        while not self.stopping.is_set():
            self._pause(rng, 0.3, 1.5)
            if self.stopping.is_set():
                break
            r = self._call("tracker", "shuffle", "POST", "/api/tasks/shuffle", self.boss, (200, 503))
            if r and r[0] == 200 and isinstance(r[1], dict):
                with self.lock:
                    self.shuffles += 1
                    self.reassigned += r[1].get("reassigned", 0)

    def _recruiter(self, rng):
        for k in range(self.max_new_accounts * 3):  # a bounded number of attempts
            self._pause(rng, 1.0, 3.0)
            if self.stopping.is_set() or len(self.new_accounts) >= self.max_new_accounts:
                break
            email = "extra%d-%s@popug.test" % (k, uuid.uuid4().hex[:8])
            r = self._call("auth", "add_account", "POST", "/api/accounts", self.admin, (201, 503),
                           body={"email": email, "name": "Extra %d" % k, "role": "popug", "password": "extra-pw"})
            if r and r[0] == 201 and isinstance(r[1], dict):
                with self.lock:
                    self.new_accounts.append(r[1]["id"])

    def start(self):
        jobs = [(self._creator, ()), (self._shuffler, ()), (self._recruiter, ())]
        jobs += [(self._completer, (h,)) for h in self.popugs.values()]
        for fn, args in jobs:
            rng = random.Random(self.rng.random())
            th = threading.Thread(target=fn, args=(rng,) + args, daemon=True)
            th.start()
            self.threads.append(th)
        return self

    def stop(self):
        self.stopping.set()
        for th in self.threads:
            th.join(timeout=60)
        return not any(th.is_alive() for th in self.threads)

    def summary(self):
        return ("requests %d (no answer %d), tasks created %d of %d attempts, completions %d, shuffles %d "
                "(%d reassigned), new accounts %d"
                % (self.sent, self.no_answer, len(self.created), self.create_attempts, len(self.completed),
                   self.shuffles, self.reassigned, len(self.new_accounts)))


# --- streams ---------------------------------------------------------------------------


def stream_state(nc, stream):
    info = nc.stream_info(stream)
    return None if "error" in info else info.get("state", {})


# --- quiescence ------------------------------------------------------------------------


def outbox_rows(data_dirs):
    """{path of each DATA/*.db: rows in its outbox} (read beside the running
    processes; WAL lets a reader in)."""
    out = {}
    for d in data_dirs:
        for path in sorted(glob.glob(os.path.join(d, "*.db"))):
            con = sqlite3.connect(path, timeout=20)
            try:
                has = con.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='outbox'"
                                  ).fetchone()[0]
                out[path] = con.execute("SELECT count(*) FROM outbox").fetchone()[0] if has else 0
            finally:
                con.close()
    return out


def snapshot(nats_port, data_dirs):
    """Where every outbox and durable consumer stands: (settled?, details)."""
    outbox = outbox_rows(data_dirs)
    nc = fast_nats(nats_port)
    try:
        last, lag = {}, {}
        for stream in STREAMS:
            st = stream_state(nc, stream)
            last[stream] = st.get("last_seq", 0) if st else None
            r = nc.js("CONSUMER.NAMES." + stream, {})
            names = set(DURABLES[stream]) | set(r.get("consumers") or [])
            for durable in sorted(names):
                ci = nc.js("CONSUMER.INFO.%s.%s" % (stream, durable))
                if durable not in DURABLES[stream] and ("error" in ci or not ci.get("config", {}).get("durable_name")):
                    continue  # an ephemeral reader, not a service
                if "error" in ci:
                    lag["%s/%s" % (stream, durable)] = "missing"
                    continue
                floor = ci.get("ack_floor", {}).get("stream_seq", -1)
                # A durable made anew at the stream's end (the consumer starts
                # again from its floor after a broker restart) shows ack floor 0
                # on nats-server 2.9 until its first ack, with everything before
                # its start counted as delivered: caught up all the same.
                done = max(floor, ci.get("delivered", {}).get("stream_seq", -1)
                           if ci.get("config", {}).get("deliver_policy") == "by_start_sequence" else -1)
                if ci.get("num_pending", 1) or ci.get("num_ack_pending", 1) or done < (last[stream] or 0):
                    lag["%s/%s" % (stream, durable)] = "pending %s, ack pending %s, ack floor %s of %s" % (
                        ci.get("num_pending"), ci.get("num_ack_pending"), floor, last[stream])
    finally:
        nc.close()
    busy = {p: n for p, n in outbox.items() if n}
    settled = not busy and not lag and all(v is not None for v in last.values())
    return settled, {"last_seq": last, "outbox": busy, "lagging": lag}


def quiesce(nats_port, data_dirs, timeout=120.0):
    """Wait until every outbox is empty and every durable consumer has acked
    its whole stream, twice in a row with the same stream ends. Returns
    (settled, details of the last look)."""
    deadline = time.monotonic() + timeout
    prev = None
    details = None
    while time.monotonic() < deadline:
        try:
            settled, details = snapshot(nats_port, data_dirs)
        except (OSError, sqlite3.Error, ValueError) as e:
            settled, details = False, {"error": repr(e)}
        if settled and prev is not None and prev == details["last_seq"]:
            return True, details
        prev = details["last_seq"] if settled else None
        time.sleep(0.3)
    return False, details


# --- the invariants --------------------------------------------------------------------


def ledger(acct, headers, account_id, day, limit=50):
    """Every entry of one account on one day (following `next`) and the
    balance: (entries, balance) or (None, error text)."""
    entries, after, balance, seen = [], None, None, set()
    for _ in range(2000):
        q = "day=%s&limit=%d" % (day, limit) + ("&after=" + after if after else "")
        st, js = acct.get("/api/accounting/accounts/%s?%s" % (account_id, q), headers=headers)
        if st != 200 or not isinstance(js, dict):
            return None, "GET accounts/%s?%s: %d %r" % (account_id, q, st, js)
        entries += js.get("entries") or []
        balance = js.get("balance_cents")
        after = js.get("next")
        if not after:
            return entries, balance
        if after in seen:
            return None, "paging of %s loops at %s" % (account_id, after)
        seen.add(after)
    return None, "too many pages for %s" % account_id


def signed(entry):
    return entry["amount_cents"] if entry["kind"] == "credit" else -entry["amount_cents"]


def bag_diff(got, want):
    """{} when the two lists hold the same items as often; else what is
    missing from `got` and what it has in excess."""
    g, w = collections.Counter(got), collections.Counter(want)
    out = {}
    if w - g:
        out["missing"] = sorted((w - g).elements())
    if g - w:
        out["extra"] = sorted((g - w).elements())
    return out


def check_invariants(t, dep, nats_port, admin, load, today):
    """Every invariant of the chaos tests over the APIs and the streams, on
    a quiescent system. Returns the counts for the closing line."""
    tracker, acct, ana, auth = dep.api("tracker"), dep.api("accounting"), dep.api("analytics"), dep.api("auth")

    # --- the truth of the tracker and of auth
    tasks_list, statuses, _ = list_pages(tracker, admin, "assignee=all", limit=500)
    t(all(s == 200 for s in statuses), "GET /api/tasks?assignee=all answers: %r" % statuses)
    tasks = {x["id"]: x for x in tasks_list}
    t.eq(len(tasks), len(tasks_list), "the task list names each task once")
    t.eq(sorted(load.created - set(tasks)), [], "every create answered 201 is a task of the tracker")
    t.eq(sorted(i for i in load.completed if tasks.get(i, {}).get("status") != "done"), [],
         "every completion answered 200 is done at the tracker")
    st, accs = auth.get("/api/accounts?limit=500", headers=admin)
    t.eq(st, 200, "GET /api/accounts")
    accounts = {a["id"]: a for a in (accs or {}).get("items", [])}
    t.eq(sorted(set(load.new_accounts) - set(accounts)), [], "every account answered 201 exists at auth")

    # --- the streams
    ev = {s: [b for _, b in stream_events(nats_port, s, timeout=60.0)] for s in STREAMS}
    for s in STREAMS:
        dups = collections.Counter(e["event_id"] for e in ev[s])
        t.eq(sorted(k for k, n in dups.items() if n > 1), [], "%s holds each event id once" % s)
    nc = fast_nats(nats_port)
    try:
        dlq = stream_state(nc, "ATES_DLQ")
    finally:
        nc.close()
    t.eq((dlq or {}).get("messages", 0), 0, "ATES_DLQ holds no message")
    if dlq and dlq.get("messages"):
        for _, b in stream_events(nats_port, "ATES_DLQ", timeout=60.0)[:5]:
            sys.stderr.write("dead letter: %s\n" % json.dumps(b)[:600])

    created_ev = collections.Counter(e["data"]["account_id"] for e in ev["ATES_ACCOUNTS"]
                                     if e["event_name"] == "AccountCreated")
    t.eq(sorted(a for a in accounts if created_ev[a] != 1), [], "one AccountCreated per account of auth")
    t.eq(sorted(a for a in created_ev if a not in accounts), [], "no AccountCreated of an unknown account")

    by_name = collections.defaultdict(list)
    for e in ev["ATES_TASKS"]:
        by_name[e["event_name"]].append(e["data"])
    n_created = collections.Counter(d["task_id"] for d in by_name["TaskCreated"])
    n_completed = collections.Counter(d["task_id"] for d in by_name["TaskCompleted"])
    last_assignee = {}
    assigned_to = collections.Counter()
    completed_by = collections.Counter()
    for d in by_name["TaskAssigned"]:
        last_assignee[d["task_id"]] = d["assignee_id"]
        assigned_to[d["assignee_id"]] += 1
    for d in by_name["TaskCompleted"]:
        completed_by[d["assignee_id"]] += 1
    t.eq(sorted(i for i in tasks if n_created[i] != 1), [], "one TaskCreated per task")
    t.eq(sorted(i for i in n_created if i not in tasks), [], "no TaskCreated of a task the tracker lacks")
    t.eq(sorted(i for i, x in tasks.items() if n_completed[i] != (1 if x["status"] == "done" else 0)), [],
         "one TaskCompleted per done task, none for an open one")
    t.eq(sorted(i for i, x in tasks.items() if last_assignee.get(i) != x["assignee_id"]), [],
         "the last TaskAssigned of each task names the tracker's assignee")
    t.eq(sorted(d["task_id"] for d in by_name["TaskCompleted"]
                if tasks.get(d["task_id"], {}).get("assignee_id") != d["assignee_id"]), [],
         "each TaskCompleted names the task's assignee")

    # --- every task priced exactly once
    priced = collections.defaultdict(list)
    for e in ev["ATES_ACCOUNTING"]:
        if e["event_name"] == "TaskPriced":
            priced[e["data"]["task_id"]].append(e["data"])
    t.eq(sorted(i for i in tasks if len(priced[i]) != 1), [], "one TaskPriced per task")
    t.eq(sorted(i for i in priced if i not in tasks), [], "no TaskPriced of a task the tracker lacks")
    prices, bad_price = {}, []
    for i in sorted(tasks):
        st, js = acct.get("/api/accounting/tasks/" + i, headers=admin)
        if st != 200 or not isinstance(js, dict):
            bad_price.append((i, st, js))
            continue
        prices[i] = js
        p = priced[i][0] if priced[i] else {}
        if (js.get("assign_fee_cents"), js.get("reward_cents"), js.get("rules_version")) != \
                (p.get("assign_fee_cents"), p.get("reward_cents"), p.get("rules_version")):
            bad_price.append((i, js, p))
    t.eq(bad_price, [], "GET /api/accounting/tasks/{id} of every task answers its TaskPriced")

    # --- the books of each account
    txs = collections.defaultdict(list)
    for e in ev["ATES_ACCOUNTING"]:
        if e["event_name"] == "TransactionApplied":
            txs[e["data"]["account_id"]].append(e["data"])
    days = sorted({today} | {d["day"] for v in txs.values() for d in v})
    t.eq(days, [today], "every entry is booked today (%s)" % today)
    t.eq([e["data"] for e in ev["ATES_ACCOUNTING"] if e["event_name"] == "DayClosed"
          and e["data"]["paid_cents"]], [], "no close paid anything during the test")
    want = collections.defaultdict(list)  # account -> sorted (kind, amount, task)
    for d in by_name["TaskAssigned"]:
        want[d["assignee_id"]].append(("debit", prices.get(d["task_id"], {}).get("assign_fee_cents"), d["task_id"]))
    for d in by_name["TaskCompleted"]:
        want[d["assignee_id"]].append(("credit", prices.get(d["task_id"], {}).get("reward_cents"), d["task_id"]))
    balances, n_entries, debits_today, credits_today = {}, 0, 0, 0
    for a in sorted(set(accounts) | set(want) | set(txs)):
        entries, balance = [], None
        for day in days:
            got, bal = ledger(acct, admin, a, day)
            if not t(got is not None, "ledger of %s on %s: %s" % (a, day, bal)):
                entries = None
                break
            entries += got
            balance = bal
        if entries is None:
            continue
        balances[a] = balance
        n_entries += len(entries)
        kinds = collections.Counter(e["kind"] for e in entries)
        role = accounts.get(a, {}).get("role", "?")
        t.eq((kinds["debit"], kinds["credit"], kinds["payout"]), (assigned_to[a], completed_by[a], 0),
             "%s (%s): debits == its TaskAssigned, credits == its TaskCompleted, no payout" % (a, role))
        t.eq(bag_diff([(e["kind"], e["amount_cents"], e["task_id"]) for e in entries], want[a]), {},
             "%s: one entry per TaskAssigned/TaskCompleted, at the task's price" % a)
        t.eq(balance, sum(signed(e) for e in entries), "%s: balance == sum of its ledger" % a)
        t.eq(bag_diff([e["id"] for e in entries], [x["transaction_id"] for x in txs[a]]), {},
             "%s: one TransactionApplied per ledger entry" % a)
        for e in entries:
            if e["kind"] == "debit":
                debits_today += e["amount_cents"]
            elif e["kind"] == "credit":
                credits_today += e["amount_cents"]

    # --- accounting's totals, and analytics agrees
    st, at = acct.get("/api/accounting/today", headers=admin)
    t.eq((st, at), (200, {"day": today, "management_earnings_cents": debits_today - credits_today}),
         "accounting /today == debits - credits of today's entries")
    st, an = ana.get("/api/analytics/today", headers=admin)
    negative = sum(1 for b in balances.values() if b is not None and b < 0)
    t.eq((st, (an or {}).get("day"), (an or {}).get("management_earnings_cents")),
         (200, today, (at or {}).get("management_earnings_cents")),
         "analytics /today management_earnings_cents == accounting's")
    t.eq((an or {}).get("negative_accounts"), negative,
         "analytics negative_accounts == accounts with a balance < 0 at accounting")
    st, ad = ana.get("/api/analytics/days?from=%s&to=%s" % (today, today), headers=admin)
    items = (ad or {}).get("items") or [{}]
    t.eq((st, items[0].get("completed_tasks")), (200, len(by_name["TaskCompleted"])),
         "analytics completed_tasks of today == TaskCompleted events")

    # --- the load saw only the statuses the CONTRACT allows
    t.eq(load.unexpected[:10], [], "no unexpected HTTP status under chaos")
    n_events = sum(len(ev[s]) for s in STREAMS)
    return {"tasks": len(tasks), "done": sum(1 for x in tasks.values() if x["status"] == "done"),
            "accounts": len(accounts), "entries": n_entries, "events": n_events,
            "events_by_stream": {s: len(ev[s]) for s in STREAMS},
            "negative": negative}


def settle_and_check(t, clock, dep, nats, admin, load, today):
    """Wait for quiescence, check every invariant, stop every process and
    check that no outbox kept a row. Returns the counts."""
    ok, details = quiesce(nats.port, dep.data_dirs())
    t(ok, "quiescence: every outbox empty, every consumer caught up (last look: %r)" % (details,))
    clock.say("quiescent: %r" % (details or {}).get("last_seq"))
    counts = check_invariants(t, dep, nats.port, admin, load, today)
    clock.say("checked the invariants")
    codes = dep.stop_all()
    t.eq(codes, [0] * len(codes), "every process stops cleanly on SIGTERM")
    left = {p: n for p, n in outbox_rows(dep.data_dirs()).items() if n}
    t.eq(left, {}, "no event left in any outbox after the stop")
    nats.stop()
    return counts


def report_logs(dep, limit=40):
    """Print the error lines of every process log (to help read a failure)."""
    for d in dep.data_dirs():
        path = os.path.join(d, "ates.log")
        try:
            with open(path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            continue
        bad = [ln for ln in lines if '"level":"error"' in ln.replace(" ", "")
               or "ERROR" in ln or "AddressSanitizer" in ln or "runtime error" in ln]
        if bad:
            sys.stderr.write("--- %s: %d error lines, the last %d:\n" % (path, len(bad), min(limit, len(bad))))
            for ln in bad[-limit:]:
                sys.stderr.write(ln[:800] + "\n")


def finish(t, clock, dep, name, seed, kills, counts, load):
    """The closing lines: what happened and how many checks passed."""
    print("%s: %s" % (name, load.summary()), flush=True)
    if t.failed:
        report_logs(dep)
    c = counts or {}
    print("%s seed=%d kills=%s tasks=%s done=%s accounts=%s ledger_entries=%s events=%s %r negative_accounts=%s "
          "invariant_checks=%d failed=%d"
          % (name, seed, kills, c.get("tasks"), c.get("done"), c.get("accounts"), c.get("entries"),
             c.get("events"), c.get("events_by_stream"), c.get("negative"), t.passed, t.failed), flush=True)
    t.done()
