"""A pricing.lua that passes its selftest but fails at run time loses no
money: the TaskCreated and TaskAssigned that need a price wait, parked,
past BUS_MAX_DELIVER attempts, and are never dead-lettered; the moment a
fixed pricing.lua is in force they apply (woken by the new version, not at
their next time): the task is priced once, the assignee debited its fee
once, with the title known. A price() that returns no valid cents waits
the same way."""
import os
import time

import accounting_util as au
from harness import ATES_BIN, Ates, Check, NatsServer, bearer, fast_nats, login, repo_rules, use_rule_file, wait_for

t = Check()
nats = NatsServer().start()
RULES = au.fixed_rules(repo_rules())
PRICING = os.path.join(RULES, "pricing.lua")
# fails on every task that has a title: the length of a missing description
FAILING = """function price(task)
  return {assign_fee_cents = 1000 + #task.description, reward_cents = 3000}
end
function selftest()
  assert(price({task_id = "t", description = "ab"}).assign_fee_cents == 1002, "price")
  return true
end
"""
FRACTIONAL = """function price(task) return {assign_fee_cents = 1000.5, reward_cents = 3000} end
function selftest() return true end
"""
TZ = au.noon_tz()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,accounting", rules_dir=RULES,
            env={"ATES_ADMIN_PASSWORD": "rulefail-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                 "ATES_TZ": TZ}).start()
ADMIN = bearer(login(ates, "root@popug.test", "rulefail-admin-pw")["access_token"])
nc = fast_nats(nats.port)


def metric(name):
    st, _, _, raw = ates.request("GET", "/metrics")
    total = 0.0
    for line in raw.decode().splitlines():
        if line.startswith(name + "{") and 'service="accounting"' in line and 'stream="ATES_TASKS"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def price_of(task_id):
    return ates.get("/api/accounting/tasks/" + task_id, headers=ADMIN)


def debits(account_id):
    es, _, _ = au.ledger(ates, ADMIN, account_id, au.today(TZ))
    return [(e["kind"], e["amount_cents"], e["description"]) for e in es]


POPUG = au.new_id()
au.publish(nc, [au.account_created(POPUG, "kesha@popug.test", "Kesha")])

for bad, what in ((FAILING, "an error in price()"), (FRACTIONAL, "fractional cents from price()")):
    t.eq(use_rule_file(ates, ADMIN, PRICING, bad)["error"], None, "pricing.lua with %s is in force" % what)
    task, n = au.new_id(), len(what)
    title = "Feed the parrots %d" % n
    retried0 = metric("ates_bus_retries_total")
    dead0 = metric("ates_bus_dead_letters_total")
    au.publish(nc, [au.task_created(task, title, POPUG), au.task_assigned(task, POPUG)])
    # both events fail BUS_MAX_DELIVER (5) times within about 3 s, and go on waiting
    wait_for(lambda: metric("ates_bus_retries_total") - retried0 >= 2 * 5, timeout=30,
             what="%s: both events tried 5 times" % what)
    time.sleep(0.5)
    t.eq(metric("ates_bus_dead_letters_total") - dead0, 0, "%s: nothing dead-lettered" % what)
    st, js = price_of(task)
    t.eq(st, 404, "%s: no price yet: %r" % (what, js))
    t.eq(au.db_rows(ates.data_dir, "SELECT count(*) FROM inbox_retry WHERE stream = 'ATES_TASKS'")[0][0], 2,
         "%s: both events parked" % what)
    # the fix applies them now, not after their 30 s wait
    fixed = au.PRICING_LUA + "-- fixed after %s\n" % what
    t.eq(use_rule_file(ates, ADMIN, PRICING, fixed)["error"], None, "%s: the fixed pricing.lua is in force" % what)
    st, js = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(price_of(task)), timeout=10,
                      what="%s: the task priced within 10 s of the fix" % what)
    t.eq((js["assign_fee_cents"], js["reward_cents"]), (au.fee_of(title), au.reward_of(title)),
         "%s: priced by the fixed rule, with the title known" % what)
    got = wait_for(lambda: [d for d in debits(POPUG) if title in d[2]] or None, timeout=10,
                   what="%s: the fee debited" % what)
    t.eq(got, [("debit", au.fee_of(title), "assigned: " + title)], "%s: the fee debited once" % what)
    wait_for(lambda: au.db_rows(ates.data_dir, "SELECT count(*) FROM inbox_retry")[0][0] == 0, timeout=10,
             what="%s: nothing left parked" % what)
    t.eq(metric("ates_bus_dead_letters_total") - dead0, 0, "%s: still nothing dead-lettered" % what)

nc.close()
t.eq(ates.stop(), 0, "clean stop")
t.done()
