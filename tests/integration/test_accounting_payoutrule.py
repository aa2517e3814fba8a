"""A payout() that breaks its contract in the middle of a close stops the
whole close and leaves nothing behind: with 300 accounts to pay (more than
the preparing thread of a close runs ahead of the booking one) and a
payout.lua that answers one balance, paid to the 250th account, with more
than the balance, close-day answers 503 naming the rule, and no payout
entry, balance change, owed mail, closed day or event of it remains; once
a correct payout.lua is in force, the same close pays every account exactly
once: 300 payout entries, balances 0, one TransactionApplied per payout and
one DayClosed on the stream."""
import os

import accounting_util as au
from harness import (ATES_BIN, Ates, Check, NatsServer, bearer, fast_nats, login, repo_rules, use_rule_file,
                     wait_consumed, wait_for)

N = 300   # accounts; account i earns 2000 + i on one task (accounting_util's pricing)
BAD_AT = 250
TZ = au.noon_tz()
t = Check()
nats = NatsServer().start()
RULES = au.fixed_rules(repo_rules())
PAYOUT = os.path.join(RULES, "payout.lua")
with open(PAYOUT) as f:
    GOOD = f.read()
BAD = """function payout(b)
  if b == %d then return {pay_cents = b + 1, carry_cents = -1} end
  if b > 0 then return {pay_cents = b, carry_cents = 0} end
  return {pay_cents = 0, carry_cents = b}
end
function mail(p) return {subject = "paid", text = "paid"} end
function selftest()
  assert(payout(5).pay_cents == 5 and payout(-5).carry_cents == -5, "payout")
  return true
end
""" % (2000 + BAD_AT)
ates = Ates(nats.url, binary=ATES_BIN, services="auth,accounting", rules_dir=RULES,
            env={"ATES_ADMIN_PASSWORD": "payoutrule-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                 "ATES_TZ": TZ}).start()
ADMIN = bearer(login(ates, "root@popug.test", "payoutrule-admin-pw")["access_token"])
Y = au.day_add(au.today(TZ), -1)


def use_rule(src, what):
    """Write payout.lua and wait until that version is the one in force."""
    t.eq(use_rule_file(ates, ADMIN, PAYOUT, src)["error"], None, "payout.lua %s loaded without an error" % what)


def one(sql):
    return au.db_rows(ates.data_dir, sql)[0][0]


def stream_messages():
    nc = fast_nats(nats.port)
    try:
        return nc.stream_info("ATES_ACCOUNTING").get("state", {}).get("messages", -1)
    finally:
        nc.close()


# --- N accounts, account i earns 2000 + i yesterday --------------------------------------------
ids = sorted(au.new_id() for _ in range(N))  # the close pays in id order
earned = {a: 2000 + i for i, a in enumerate(ids, 1)}
evs = [au.account_created(a, "p%d@popug.test" % i, "Popug %d" % i) for i, a in enumerate(ids, 1)]
for i, a in enumerate(ids, 1):
    tid = au.new_id()
    evs += [au.task_created(tid, "Job %d" % i, a, at=au.at_local(TZ, Y, 9)),
            au.task_assigned(tid, a, at=au.at_local(TZ, Y, 9)),
            au.task_completed(tid, a, at=au.at_local(TZ, Y, 11))]
nc = fast_nats(nats.port)
au.publish(nc, evs)
nc.close()
wait_consumed(nats.port, "ATES_TASKS", "accounting", 3 * N, timeout=60)
wait_consumed(nats.port, "ATES_ACCOUNTS", "accounting", N + 1)
BALANCES = "SELECT id, balance_cents FROM accounts WHERE balance_cents <> 0 ORDER BY id"
t.eq(dict(au.db_rows(ates.data_dir, BALANCES)), earned, "before the close: each account has what it earned")
# TaskPriced, a debit and a credit per task
wait_for(lambda: one("SELECT count(*) FROM outbox") == 0 and stream_messages() == 3 * N, timeout=30,
         what="accounting's %d events of the tasks published" % (3 * N))

# --- the broken rule: the close fails whole ----------------------------------------------------
use_rule(BAD, "that overpays the %dth account" % BAD_AT)
st, js = au.close_day(ates, ADMIN, Y)
t.eq(st, 503, "close-day answers 503 when payout() breaks its contract: %r" % (js,))
t.eq((js.get("error") or {}).get("code"), "unavailable", "the error code")
t("payout(%d) must return" % (2000 + BAD_AT) in (js.get("error") or {}).get("message", ""),
  "the message names the call: %r" % (js,))
t.eq(one("SELECT count(*) FROM ledger WHERE kind = 'payout'"), 0, "no payout entry")
after = dict(au.db_rows(ates.data_dir, BALANCES))
t.eq(sorted(a for a in set(after) | set(earned) if after.get(a) != earned.get(a))[:3], [],
     "every balance as before (the first that differ, if any)")
t.eq(one("SELECT count(*) FROM mail_pending"), 0, "no mail owed")
t.eq(one("SELECT count(*) FROM closed_days"), 0, "no day closed")
t.eq(one("SELECT count(*) FROM outbox"), 0, "no event written")

# --- a correct rule: the same close pays everyone once ----------------------------------------
use_rule(GOOD, "restored")
st, js = au.close_day(ates, ADMIN, Y)
t.eq((st, js.get("changed"), js.get("paid_accounts"), js.get("paid_cents")),
     (200, True, N, sum(earned.values())), "close-day pays all %d accounts: %r" % (N, js))
t.eq(au.db_rows(ates.data_dir, BALANCES), [], "every balance is 0")
t.eq(au.db_rows(ates.data_dir, "SELECT account_id, amount_cents FROM ledger WHERE kind = 'payout' "
                                "ORDER BY account_id"),
     sorted(earned.items()), "one payout entry per account, of what it had")
wait_for(lambda: one("SELECT count(*) FROM outbox") == 0, timeout=30, what="the close's events published")
t.eq(stream_messages(), 3 * N + N + 1, "one TransactionApplied per payout and one DayClosed, nothing more")
es, bal, _ = au.ledger(ates, ADMIN, ids[BAD_AT - 1], Y)
t.eq(([e["kind"] for e in es], bal), (["debit", "credit", "payout"], 0),
     "the account the broken rule overpaid: debit, credit, one payout")
t.eq(au.close_day(ates, ADMIN, Y)[1].get("changed"), False, "closing again changes nothing")

t.eq(ates.stop(), 0, "clean stop")
t.done()
