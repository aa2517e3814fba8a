"""A broken mail() in payout.lua neither blocks a close nor loses or doubles a
payout mail: with a mail() that raises (a version whose selftest does not
call mail(), so it loads), closing yesterday still pays A and B (200,
paid_accounts 2, balances 0) while their mails stay owed in mail_pending,
the payout mail job trying them every second (and saying so once per
reason), and no .eml is written; a mail() that returns no {subject, text}
strings is refused the same way; a mail() that fails for B only holds back
B's mail, not A's; once the repository's payout.lua is back
(hot-reloaded), each mail is written exactly once, To the account's
address."""
import os
import re
import time

import accounting_util as au
from harness import (ATES_BIN, Ates, Check, NatsServer, bearer, fast_nats, login, repo_rules, use_rule_file,
                     wait_consumed, wait_for)

TZ = au.noon_tz()
t = Check()
nats = NatsServer().start()
RULES = au.fixed_rules(repo_rules())
PAYOUT = os.path.join(RULES, "payout.lua")
with open(PAYOUT) as f:
    GOOD = f.read()
RULE = """function payout(b)
  if b > 0 then return {pay_cents = b, carry_cents = 0} end
  return {pay_cents = 0, carry_cents = b}
end
function mail(p)
  %s
end
function selftest()  -- does not call mail(), so this version loads
  assert(payout(5).pay_cents == 5 and payout(-5).carry_cents == -5, "payout")
  return true
end
"""
RAISES = RULE % 'error("mail() broken on purpose")'
BAD_SHAPE = RULE % 'return {subject = "aTES: paid", text = 42}'
ates = Ates(nats.url, binary=ATES_BIN, services="auth,accounting", rules_dir=RULES,
            env={"ATES_ADMIN_PASSWORD": "mailrule-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                 "ATES_TZ": TZ}).start()
ADMIN = bearer(login(ates, "root@popug.test", "mailrule-admin-pw")["access_token"])
Y = au.day_add(au.today(TZ), -1)
nc = fast_nats(nats.port)
A, B = au.new_id(), au.new_id()
EMAIL = {A: "a@popug.test", B: "b@popug.test"}
NAME = {A: "payout-%s-%s.eml" % (Y, A), B: "payout-%s-%s.eml" % (Y, B)}
FAILED = "payout mails stay owed until payout.lua mail() works for them"


def use_rule(src, what):
    """Write payout.lua and wait until that version is the one in force."""
    t.eq(use_rule_file(ates, ADMIN, PAYOUT, src)["error"], None, "payout.lua %s loaded without an error" % what)


def failures():
    return ates.log().count(FAILED)


def pending():
    return sorted(r[0] for r in au.db_rows(ates.data_dir, "SELECT account_id FROM mail_pending"))


def payout_mails():
    return sorted(n for n in au.spool(ates.data_dir) if "payout" in n)


def still_owed(what):
    t.eq(payout_mails(), [], "%s: no payout mail written" % what)
    t.eq(pending(), sorted([A, B]), "%s: both mails still owed in mail_pending" % what)
    t.eq(au.db_rows(ates.data_dir, "SELECT count(*) FROM mail_outbox")[0][0], 0, "%s: nothing queued" % what)
    for acc in (A, B):
        es, bal, _ = au.ledger(ates, ADMIN, acc, Y)
        t.eq(([e["kind"] for e in es].count("payout"), bal), (1, 0), "%s: one payout, balance 0" % what)


# --- mail() raises; yesterday: A +2001, B +2002 ---------------------------------------------------
use_rule(RAISES, "with a mail() that raises")
evs = [au.account_created(a, EMAIL[a], "Popug " + a[:4]) for a in (A, B)]
for n, acc in ((1, A), (2, B)):
    tid = au.new_id()
    evs += [au.task_created(tid, "Job %d" % n, acc, at=au.at_local(TZ, Y, 9)),
            au.task_assigned(tid, acc, at=au.at_local(TZ, Y, 9)),
            au.task_completed(tid, acc, at=au.at_local(TZ, Y, 11))]
au.publish(nc, evs)
wait_consumed(nats.port, "ATES_TASKS", "accounting", 6)
wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", 3)  # and the admin's
for acc, bal in ((A, 2001), (B, 2002)):
    t.eq(au.ledger(ates, ADMIN, acc, Y)[1], bal, "before the close: balance")
before = failures()
st, js = au.close_day(ates, ADMIN, Y)
t.eq((st, js), (200, {"day": Y, "changed": True, "management_earnings_cents": 2003 - 6006, "paid_cents": 4003,
                      "paid_accounts": 2, "negative_accounts": 0}), "close-day pays both despite mail()")
closed = time.monotonic()
wait_for(lambda: failures() >= before + 1, timeout=8, what="the payout mail job saying the mails stay owed")
t("mail() broken on purpose" in ates.log(), "the job's error names the rule's error")
time.sleep(max(0.0, 3.0 - (time.monotonic() - closed)))
still_owed("mail() raises, 3 s after the close")

# --- mail() returns a number as text: refused the same way ----------------------------------------
use_rule(BAD_SHAPE, "with a mail() of the wrong shape")
before = failures()
wait_for(lambda: failures() >= before + 1, timeout=8, what="the job saying why again: a new reason")
t("mail() must return {subject, text} strings" in ates.log(), "the wrong shape is named in the log")
still_owed("mail() of the wrong shape")
st, js = au.close_day(ates, ADMIN, Y)
t.eq((st, js.get("changed"), js.get("paid_accounts")), (200, False, 2), "closing again changes nothing")

# --- mail() fails for B only: A's mail is written, B's stays owed ----------------------------------------
use_rule(GOOD + """
local good_mail = mail
function mail(p)
  if p.email == "b@popug.test" then error("not for b, on purpose") end
  return good_mail(p)
end
""", "with a mail() that fails for B only")
wait_for(lambda: payout_mails() == [NAME[A]] and
         au.db_rows(ates.data_dir, "SELECT count(*) FROM mail_outbox")[0][0] == 0, timeout=10,
         what="A's payout mail written while B's mail() fails")
t.eq(pending(), [B], "B's mail stays owed")
wait_for(lambda: "not for b, on purpose" in ates.log(), timeout=5, what="the log says why B's mail waits")

# --- the repository's payout.lua back: each mail exactly once ---------------------------------------
use_rule(GOOD, "restored")
wait_for(lambda: payout_mails() == sorted(NAME.values()) and au.mails_settled(ates.data_dir), timeout=10,
         what="both payout mails written")
time.sleep(1.5)  # more runs of the job: nothing more may be written
mails = au.spool(ates.data_dir)
t.eq(sorted(mails), sorted(NAME.values()), "exactly the two payout mails, no temp file, no other")
for acc, amount in ((A, "$20.01"), (B, "$20.02")):
    t.eq(au.mail_problems(mails[NAME[acc]], EMAIL[acc], "aTES: %s paid out for %s" % (amount, Y), NAME[acc][:-4]),
         [], "%s's mail: RFC 5322, To, Subject, Message-ID" % EMAIL[acc])
t.eq(pending(), [], "mail_pending is empty")
queued = [int(n) for n in re.findall(r"accounting: (\d+) payout mails queued", ates.log())]
t.eq(sum(queued), 2, "the job queued two mails in all: %r" % queued)
t.eq(au.close_day(ates, ADMIN, Y)[1].get("changed"), False, "the day stays closed")

nc.close()
t.eq(ates.stop(), 0, "clean stop")
t.done()
