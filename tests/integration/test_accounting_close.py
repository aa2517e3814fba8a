"""closing business days (POST /api/accounting/close-day): yesterday's
positive, zero and negative balances (events by hand with yesterday's
times) -> a payout entry per positive balance (balance back to 0), nothing
for a zero one, the negative one carried; one DayClosed with the day's
numbers; one mail per paid account in DATA/mail/payout-<day>-<account>.eml
(RFC 5322, To the account's email, Subject from payout.lua), and for an
account whose email is not known yet, the mail once its AccountCreated
arrives. Closing again changes nothing (changed=false, no second payout,
event or mail). Then today is closed too, by three concurrent requests
of which exactly one closes (a carried debt offsets the next day's
earnings), and events that arrive for closed days are booked on the first
open day with the note "(late: <day> was closed)"."""
import threading

import accounting_util as au
from harness import (ATES_BIN, Ates, Check, NatsServer, bearer, fast_nats, is_error, login, repo_rules,
                     wait_consumed, wait_for)

TZ = au.noon_tz()
t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,accounting", rules_dir=au.fixed_rules(repo_rules()),
            env={"ATES_ADMIN_PASSWORD": "close-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                 "ATES_TZ": TZ}).start()
ADMIN = bearer(login(ates, "root@popug.test", "close-admin-pw")["access_token"])
PAYOUT_V = au.rules_version(ates, ADMIN, "payout.lua")
TODAY = au.today(TZ)
Y = au.day_add(TODAY, -1)
TOMORROW = au.day_add(TODAY, 1)
nc = fast_nats(nats.port)
A, B, C, D = (au.new_id() for _ in range(4))
NAMES = {A: "a", B: "b", C: "c", D: "d"}
TA1, TB0, TC4, TD6, TC8 = (au.new_id() for _ in range(5))
n_tasks = 0
n_accounts = 1  # the admin's AccountCreated


def pub(events):
    global n_tasks, n_accounts
    for s, _, dup in au.publish(nc, events):
        if not dup:
            n_tasks += s == "ATES_TASKS"
            n_accounts += s == "ATES_ACCOUNTS"
    wait_consumed(nats.port, "ATES_TASKS", "accounting", n_tasks)
    wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", n_accounts)


def at(day, hh, mm=0):
    return au.at_local(TZ, day, hh, mm)


def entries(acc, day):
    return au.ledger(ates, ADMIN, acc, day)


def stored_mails():
    """The spool once the payout mail job and the mail worker are done."""
    wait_for(lambda: au.mails_settled(ates.data_dir), what="the payout mails written")
    return au.spool(ates.data_dir)


# --- yesterday: A +2001, B 0 (3000 - 3 x 1000), C -1004, D +2006 (email unknown) -----------
pub([au.account_created(a, "%s@popug.test" % NAMES[a], "Popug " + NAMES[a].upper()) for a in (A, B, C)] + [
    au.task_created(TA1, "Job 1", A, at=at(Y, 9)),
    au.task_assigned(TA1, A, at=at(Y, 9)),
    au.task_completed(TA1, A, at=at(Y, 11)),
    au.task_completed(TB0, B, at=at(Y, 9)),  # first sight: no title, 1000/3000
    au.task_assigned(TB0, B, at=at(Y, 10)),
    au.task_assigned(TB0, B, previous=B, at=at(Y, 12)),
    au.task_assigned(TB0, B, previous=B, at=at(Y, 23, 59)),
    au.task_created(TC4, "Job 4", C, at=at(Y, 0, 1)),
    au.task_assigned(TC4, C, at=at(Y, 0, 1)),
    au.task_created(TD6, "Job 6", D, at=at(Y, 13)),
    au.task_assigned(TD6, D, at=at(Y, 13)),
    au.task_completed(TD6, D, at=at(Y, 14)),
])
BAL = {A: 3002 - 1001, B: 0, C: -1004, D: 3012 - 1006}
for acc, want in BAL.items():
    es, bal, _ = entries(acc, Y)
    t.eq((bal, sum(au.signed(e) for e in es)), (want, want), "before the close: %s's balance on %s"
         % (NAMES[acc], Y))
dy = au.days(ates, ADMIN, Y, TODAY)
t.eq(dy[Y], {"day": Y, "management_earnings_cents": 6011 - 9014, "debits_cents": 6011, "credits_cents": 9014,
             "payouts_cents": 0, "closed": False}, "yesterday before the close")

# --- a misspelt field closes nothing (the default day would be closed for good) ------------------
st, js, _, _ = ates.request("POST", "/api/accounting/close-day", body={"date": Y}, headers=ADMIN)
t.eq(st, 422, "close-day {date}: %r" % js)
t("unknown field 'date' (day)" in str(js), "the answer names the field: %r" % js)
t.eq(au.days(ates, ADMIN, Y, TODAY)[Y]["closed"], False, "close-day {date} closed nothing")

# --- close (default day: the oldest open one, here yesterday) ----------------------------------------
st, js = au.close_day(ates, ADMIN)
FIRST = {"day": Y, "changed": True, "management_earnings_cents": 6011 - 9014, "paid_cents": 2001 + 2006,
         "paid_accounts": 2, "negative_accounts": 1}
t.eq((st, js), (200, FIRST), "close-day: yesterday, two paid, one negative")
for acc in (A, D):
    es, bal, _ = entries(acc, Y)
    pay = [e for e in es if e["kind"] == "payout"]
    t.eq([(e["amount_cents"], e["task_id"], e["description"], e["balance_cents"], e["rules_version"]) for e in pay],
         [(BAL[acc], None, "payout for " + Y, 0, PAYOUT_V)], "%s: one payout entry of the balance" % NAMES[acc])
    t.eq(es[-1]["kind"], "payout", "%s: the payout is the day's last entry" % NAMES[acc])
    t.eq(bal, 0, "%s: balance 0 after the payout" % NAMES[acc])
for acc in (B, C):
    es, bal, _ = entries(acc, Y)
    t.eq([e for e in es if e["kind"] == "payout"], [], "%s: no payout" % NAMES[acc])
    t.eq(bal, BAL[acc], "%s: the balance stays (zero, or a debt carried over)" % NAMES[acc])
dy = au.days(ates, ADMIN, Y, TODAY)
t.eq(dy[Y], {"day": Y, "management_earnings_cents": -3003, "debits_cents": 6011, "credits_cents": 9014,
             "payouts_cents": 4007, "closed": True}, "yesterday after the close")
t.eq(dy[TODAY]["closed"], False, "today is open")

# --- closing again changes nothing ---------------------------------------------------------------------
mails = stored_mails()
t.eq(sorted(mails), ["payout-%s-%s.eml" % (Y, A)], "one mail: A's (D's address is not known yet)")
raw = mails.get("payout-%s-%s.eml" % (Y, A), b"")
t.eq(au.mail_problems(raw, "a@popug.test", "aTES: $20.01 paid out for " + Y, "payout-%s-%s" % (Y, A)), [],
     "A's mail: RFC 5322, To, Subject of payout.lua, Message-ID")
body = au.parse_mail(raw).get_content() if raw else ""
t("Popug A" in body and "$20.01" in body and Y in body and "$0.00" in body, "the text of payout.lua: %r" % body)
st, js = au.close_day(ates, ADMIN, Y)
t.eq((st, js), (200, dict(FIRST, changed=False)), "close yesterday again: changed=false, the same numbers")
st, js = au.close_day(ates, ADMIN)
t.eq((st, js.get("day"), js.get("changed")), (200, Y, False), "close with no day again: nothing to close")
payouts = [e for e in au.events_named(nats.port, "ATES_ACCOUNTING", "ates.accounting.transaction")
           if e["data"]["kind"] == "payout"]
t.eq(sorted((p["data"]["account_id"], p["data"]["amount_cents"], p["data"]["day"], p["data"]["balance_cents"],
             p["data"]["task_id"]) for p in payouts),
     sorted([(A, 2001, Y, 0, None), (D, 2006, Y, 0, None)]), "one TransactionApplied per payout")
closed = au.wait_stream_count(nats.port, "ATES_ACCOUNTING", "ates.accounting.day_closed", 1)
t.eq([e["data"] for e in closed], [{"day": Y, "management_earnings_cents": -3003, "paid_cents": 4007,
                                    "paid_accounts": 2, "negative_accounts": 1}], "one DayClosed")
t.eq(stored_mails(), mails, "no second mail")

# --- D's address arrives: its mail goes out --------------------------------------------------------------
pub([au.account_created(D, "d@popug.test", "Popug D")])
name_d = "payout-%s-%s.eml" % (Y, D)
wait_for(lambda: name_d in au.spool(ates.data_dir), what="D's mail once its account is known")
mails = stored_mails()
t.eq(sorted(mails), sorted(["payout-%s-%s.eml" % (Y, A), name_d]), "A's and D's mails, nothing else")
t.eq(au.mail_problems(mails[name_d], "d@popug.test", "aTES: $20.06 paid out for " + Y, name_d[:-4]), [],
     "D's mail")

# --- today: C earns 2008 (its debt of 1004 carried), A owes 1001; close today ---------------------------
pub([au.task_created(TC8, "Job 8", C), au.task_assigned(TC8, C), au.task_completed(TC8, C),
     au.task_assigned(TA1, A, previous=C)])
# three admins press "close today" at once: one close, the others see it done
answers = []
threads = [threading.Thread(target=lambda: answers.append(au.close_day(ates, ADMIN, TODAY))) for _ in range(3)]
for th in threads:
    th.start()
for th in threads:
    th.join(timeout=30)
SECOND = {"day": TODAY, "management_earnings_cents": 1008 + 1001 - 3016, "paid_cents": 1004, "paid_accounts": 1,
          "negative_accounts": 1}
t.eq(sorted((st, js.get("changed")) for st, js in answers), [(200, False), (200, False), (200, True)],
     "three closes of today at once: exactly one changes anything")
t.eq([dict(js, changed=None) for _, js in answers], [dict(SECOND, changed=None)] * 3,
     "close today: C is paid its balance net of the carried debt; A is negative")
es, bal, _ = entries(C, TODAY)
t.eq([(e["kind"], e["amount_cents"], e["balance_cents"]) for e in es],
     [("debit", 1008, -2012), ("credit", 3016, 1004), ("payout", 1004, 0)], "C's day")
t.eq(bal, 0, "C: 0 after the payout")
t.eq(entries(A, TODAY)[1], -1001, "A's debt is carried")
st, js = au.close_day(ates, ADMIN, TODAY)
t.eq((st, js.get("changed"), js.get("paid_cents")), (200, False, 1004), "close today again: changed=false")
name_c = "payout-%s-%s.eml" % (TODAY, C)
wait_for(lambda: name_c in au.spool(ates.data_dir), what="C's mail")
mails = stored_mails()
t.eq(len(mails), 3, "three mails in all: %r" % sorted(mails))
t.eq(au.mail_problems(mails[name_c], "c@popug.test", "aTES: $10.04 paid out for " + TODAY, name_c[:-4]), [],
     "C's mail")
t.eq(len(au.events_named(nats.port, "ATES_ACCOUNTING", "ates.accounting.day_closed")), 2, "two DayClosed")

# --- events for closed days: booked on the first open day, with the note ---------------------------------
pub([au.task_completed(TA1, A), au.task_assigned(TC4, C, previous=A, at=at(Y, 15))])
es, bal, _ = entries(A, TOMORROW)
t.eq([(e["kind"], e["amount_cents"], e["description"]) for e in es],
     [("credit", 3002, "completed: Job 1 (late: %s was closed)" % TODAY)], "A's late credit, on tomorrow")
t.eq(bal, -1001 + 3002, "A's balance")
es, bal, _ = entries(C, TOMORROW)
t.eq([(e["kind"], e["amount_cents"], e["description"], e["balance_cents"]) for e in es],
     [("debit", 1004, "assigned: Job 4 (late: %s was closed)" % Y, -1004)],
     "an event of yesterday after two closes: also on the first open day")
dy = au.days(ates, ADMIN, Y, TOMORROW)
t.eq((dy[Y]["debits_cents"], dy[Y]["credits_cents"], dy[TODAY]["debits_cents"], dy[TODAY]["credits_cents"]),
     (6011, 9014, 2009, 3016), "closed days keep their totals")
t.eq(dy[TOMORROW], {"day": TOMORROW, "management_earnings_cents": 1004 - 3002, "debits_cents": 1004,
                    "credits_cents": 3002, "payouts_cents": 0, "closed": False}, "the late entries count on tomorrow")
applied = au.events_named(nats.port, "ATES_ACCOUNTING", "ates.accounting.transaction")
t.eq(sorted(e["data"]["day"] for e in applied if e["data"]["day"] == TOMORROW), [TOMORROW] * 2,
     "their TransactionApplied name the day they are booked on")
st, js = au.close_day(ates, ADMIN, TOMORROW)
t(st == 422 and is_error(js, "validation"), "tomorrow cannot be closed yet: %d %r" % (st, js))

# --- every account: balance = the sum of its ledger over all days -------------------------------------------
for acc in (A, B, C, D):
    total, bal = 0, None
    for day in (Y, TODAY, TOMORROW):
        es, bal, _ = entries(acc, day)
        total += sum(au.signed(e) for e in es)
    t.eq(bal, total, "%s: balance == sum of the ledger" % NAMES[acc])
t.eq(sorted(stored_mails()), sorted(mails), "still three mails")

nc.close()
t.eq(ates.stop(), 0, "clean stop")
t.done()
