"""notify alone in its own process (`--services notify`, its own data dir)
beside auth+tracker in another: it learns accounts and tasks only through
NATS and notices every assignment. Mail is off by default (log only, no
spool); tasks assigned while notify is down are notified when it returns
(they are minutes, not hours, old); with ATES_NOTIFY_MAIL=1 each notice is
also a mail in notify's DATA/mail."""
from harness import ATES_BIN, Ates, Check, NatsServer, add_account, bearer, fast_nats, login, wait_consumed, wait_for
from notify_util import assigned_events, db_rows, notices, notices_of, parse_mail, spool

t = Check()
nats = NatsServer().start()
core = Ates(nats.url, binary=ATES_BIN, services="auth,tracker",
            env={"ATES_ADMIN_PASSWORD": "split-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test"}).start()
notify = Ates(nats.url, binary=ATES_BIN, services="notify").start()
t(notify.data_dir != core.data_dir, "separate data dirs")
st, _ = notify.post("/api/tasks", {"title": "wrong door"})
t(st in (404, 405), "the notify process serves no tracker route: %d" % st)

ADMIN = bearer(login(core, "root@popug.test", "split-admin-pw")["access_token"])
H, ids = {}, {}
for name, role in (("p1", "popug"), ("p2", "popug"), ("boss", "manager")):
    acc, H[name] = add_account(core, ADMIN, "%s@popug.test" % name, role, name + "-password")
    ids[name] = acc["id"]
EMAIL = {v: "%s@popug.test" % k for k, v in ids.items()}
nc = fast_nats(nats.port)


def check_notices(events, what):
    for e in events:
        got = wait_for(lambda: notices_of(notify, e["event_id"]), what="notice %s (%s)" % (e["event_id"], what))
        t(len(got) == 1 and EMAIL[e["data"]["assignee_id"]] in got[0] and e["data"]["task_id"] in got[0],
          "%s: one notice to the assignee: %r" % (what, got))


created = []
for i in range(4):
    st, js = core.post("/api/tasks", {"title": "Split task %d" % i}, headers=H["boss"])
    t.eq(st, 201, "create %d" % i)
    created.append(js)
wait_for(lambda: len(assigned_events(nc)) >= 4, what="4 TaskAssigned")
check_notices(assigned_events(nc), "mail off")
t.eq(spool(notify.data_dir), {}, "mail off by default: nothing in DATA/mail")
t.eq(db_rows(notify.data_dir, "SELECT count(*) FROM mail_outbox")[0][0], 0, "and nothing queued")

# --- down for a moment: what was assigned meanwhile is notified on return, mail on
t.eq(notify.stop(), 0, "stop notify")
for i in range(3):
    st, js = core.post("/api/tasks", {"title": "While away %d" % i}, headers=H["boss"])
    t.eq(st, 201, "create while notify is down %d" % i)
st, js = core.post("/api/tasks/shuffle", headers=H["boss"])
t.eq(st, 200, "shuffle while notify is down")
notify.extra_env["ATES_NOTIFY_MAIL"] = "1"
notify.start()
total = nc.stream_info("ATES_TASKS")["state"]["last_seq"]
wait_consumed(nats.port, "ATES_TASKS", "notify", total)
later = assigned_events(nc)[4:]
moved = [e for e in later if e["data"]["assignee_id"] != e["data"]["previous_assignee_id"]]
check_notices(moved, "after the downtime")
for e in later:
    if e not in moved:
        t.eq(notices_of(notify, e["event_id"]), [], "no notice when a shuffle keeps the assignee")
wait_for(lambda: db_rows(notify.data_dir, "SELECT count(*) FROM mail_outbox")[0][0] == 0, what="mail delivered")
files = spool(notify.data_dir)
t.eq(sorted(files), sorted("notify-%s.eml" % e["event_id"] for e in moved), "one mail per notice sent with mail on")
for e in moved:
    m = parse_mail(files["notify-%s.eml" % e["event_id"]])
    t.eq(m["To"], EMAIL[e["data"]["assignee_id"]], "mail to the assignee")
t.eq(len(notices(notify)), 4 + len(moved), "no notice twice across the restart")

nc.close()
t.eq(notify.stop(), 0, "clean stop (notify)")
t.eq(core.stop(), 0, "clean stop (auth, tracker)")
t.done()
