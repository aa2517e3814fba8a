"""notify, all services in one process, mail on: a task created through the
tracker gives its assignee one notice (log line with email, title and task
id) and one .eml in DATA/mail with correct headers; a shuffle notifies each
new assignee (not one that keeps its task); events published by hand out
of order (TaskAssigned before its TaskCreated v1 and its AccountCreated)
still give their notice once the facts arrive; a 10-minute-old TaskAssigned
gives none (recorded as skipped); the same event stored twice, and a full
redelivery of the streams, give no second notice."""
import json
import os
import uuid

from harness import (Ates, Check, NatsServer, add_account, bearer, fast_nats, login, wait_consumed,
                     wait_for)
from notify_util import (account_created, assigned_events, crlf_only, db_rows, event, notice_row, notices,
                         notices_of, parse_mail, publish, spool, task_assigned)

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, env={"ATES_ADMIN_PASSWORD": "notify-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                           "ATES_NOTIFY_MAIL": "1"}).start()
ADMIN = bearer(login(ates, "root@popug.test", "notify-admin-pw")["access_token"])
acc1, P1 = add_account(ates, ADMIN, "p1@popug.test", "popug", "p1-password", name="Popug One")
_, BOSS = add_account(ates, ADMIN, "boss@popug.test", "manager", "boss-password", name="Boss")
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 3)
nc = fast_nats(nats.port)

# --- 1. through the tracker: one notice, one mail ------------------------------
st, task = ates.post("/api/tasks", {"title": "Feed the parrot", "jira_id": "UBERPOP-42"}, headers=BOSS)
t.eq(st, 201, "create a task")
t.eq(task["assignee_id"], acc1["id"], "the only popug gets it")
ev = wait_for(lambda: assigned_events(nc, task["id"]), what="TaskAssigned in the stream")[0]
line = wait_for(lambda: notices_of(ates, ev["event_id"]), what="the notice in the log")[0]
t("p1@popug.test" in line and "Feed the parrot" in line and task["id"] in line and "UBERPOP-42" in line,
  "the notice names email, title, jira id and task id: %r" % line)
trace = [tr for m, tr in notices(ates) if m == line]
t.eq(trace, [ev["trace_id"]], "the notice carries the event's trace id")
name = "notify-%s.eml" % ev["event_id"]
files = wait_for(lambda: spool(ates.data_dir).get(name) and spool(ates.data_dir), what="the .eml")
t.eq(sorted(files), [name], "exactly one file in DATA/mail, named after the notice")
raw = files[name]
t(crlf_only(raw), "CRLF line endings only")
msg = parse_mail(raw)
t.eq(msg["To"], "p1@popug.test", "To")
t.eq(msg["From"], "aTES <noreply@uberpopug.inc>", "From (default)")
t.eq(msg["Subject"], "Task assigned: [UBERPOP-42] Feed the parrot", "Subject")
t.eq(msg["Message-ID"], "<notify-%s@ates>" % ev["event_id"], "Message-ID")
t.eq(msg["MIME-Version"], "1.0", "MIME-Version")
t.eq(msg.get_content_type(), "text/plain", "text/plain")
t.eq(msg.get_content_charset(), "utf-8", "charset")
t(msg["Date"] is not None and msg["Date"].datetime is not None, "a parseable Date")
body = msg.get_content()
t("Feed the parrot" in body and task["id"] in body and "Popug One" in body, "the body: %r" % body)
t.eq(notice_row(ates.data_dir, ev["event_id"]), ("sent", None, "notify-" + ev["event_id"]), "recorded as sent")

# --- 2. a non-ASCII title: encoded subject, decoded right -------------------------
title = "Покормить попугая 🦜 — срочно"
st, task2 = ates.post("/api/tasks", {"title": title}, headers=BOSS)
t.eq(st, 201, "create a task with a non-ASCII title")
ev2 = wait_for(lambda: assigned_events(nc, task2["id"]), what="TaskAssigned 2")[0]
raw2 = wait_for(lambda: spool(ates.data_dir).get("notify-%s.eml" % ev2["event_id"]), what="mail 2")
t(b"=?UTF-8?B?" in raw2 and title.encode() not in raw2.split(b"\r\n\r\n")[0], "RFC 2047 encoded subject")
m2 = parse_mail(raw2)
t.eq(m2["Subject"], "Task assigned: " + title, "the subject decodes to the title")
t(title in m2.get_content(), "the body decodes to the title")
wait_for(lambda: notices_of(ates, ev2["event_id"]), what="notice 2 in the log")

# --- 3. shuffle: one notice per new assignee, none when the task stays ------------
acc2, _ = add_account(ates, ADMIN, "p2@popug.test", "popug", "p2-password", name="Popug Two")
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 4)
wait_consumed(nats.port, "ATES_ACCOUNTS", "notify", 4)
st, js = ates.post("/api/tasks/shuffle", headers=BOSS)
t.eq((st, js), (200, {"reassigned": 2}), "shuffle")
wait_for(lambda: len(assigned_events(nc)) >= 4, what="the shuffle's TaskAssigned events")
wait_consumed(nats.port, "ATES_TASKS", "notify", 6)
shuffled = assigned_events(nc)[2:]
for e in shuffled:
    moved = e["data"]["assignee_id"] != e["data"]["previous_assignee_id"]
    got = notices_of(ates, e["event_id"])
    row = notice_row(ates.data_dir, e["event_id"])
    if moved:
        t.eq(len(got), 1, "a task moved to p2: one notice")
        t(got and "p2@popug.test" in got[0], "the notice goes to the new assignee")
        fname = "notify-%s.eml" % e["event_id"]
        t(wait_for(lambda: fname in spool(ates.data_dir), what="the mail of " + fname), "and a mail")
    else:
        t.eq(got, [], "a task that stays with p1: no notice")
        t.eq(row, ("skipped", "unchanged", None), "recorded as skipped (unchanged)")

# --- 4. out of order, by hand: TaskAssigned, then TaskCreated v1, then AccountCreated
acc_x, task_x = str(uuid.uuid4()), str(uuid.uuid4())
a = task_assigned(task_x, acc_x)
publish(nc, a)
wait_consumed(nats.port, "ATES_TASKS", "notify", 7)
t.eq(notices_of(ates, a["event_id"]), [], "no notice before the facts")
t.eq(notice_row(ates.data_dir, a["event_id"]), ("pending", None, None), "pending")
publish(nc, event("TaskCreated", 1, {"task_id": task_x, "title": "[UBERPOP-7] Hand made", "description": None,
                                     "assignee_id": acc_x, "created_at": a["data"]["assigned_at"]}))
wait_consumed(nats.port, "ATES_TASKS", "notify", 8)
t.eq(notices_of(ates, a["event_id"]), [], "still no notice: the account is unknown")
t.eq(notice_row(ates.data_dir, a["event_id"])[0], "pending", "still pending")
t.eq(db_rows(ates.data_dir, "SELECT title, jira_id FROM tasks WHERE id = ?", (task_x,)),
     [("Hand made", "UBERPOP-7")], "a v1 title is split into jira id and title")
publish(nc, account_created(acc_x, "late@popug.test", "Late Popug"))
got = wait_for(lambda: notices_of(ates, a["event_id"]), what="the notice once the account arrived")
t(len(got) == 1 and "late@popug.test" in got[0] and "[UBERPOP-7] \"Hand made\"" in got[0],
  "the late notice: %r" % got)
wait_for(lambda: spool(ates.data_dir).get("notify-%s.eml" % a["event_id"]), what="the late mail")
t.eq(parse_mail(spool(ates.data_dir)["notify-%s.eml" % a["event_id"]])["Subject"],
     "Task assigned: [UBERPOP-7] Hand made", "the late mail's subject")

# --- 5. a TaskAssigned 10 minutes old: no notice, recorded as skipped --------------
old = task_assigned(task_x, acc1["id"], previous=acc_x, age_s=600)
publish(nc, old)
# a fresh one after it, so that "consumed" means the old one was handled too
fresh = task_assigned(task_x, acc_x, previous=acc1["id"])
publish(nc, fresh)
wait_for(lambda: notices_of(ates, fresh["event_id"]), what="the fresh notice after the old one")
t.eq(notices_of(ates, old["event_id"]), [], "no notice for the old event")
t.eq(notice_row(ates.data_dir, old["event_id"]), ("skipped", "stale", None), "the old one is skipped (stale)")
t("notify-%s.eml" % old["event_id"] not in spool(ates.data_dir), "and no mail for it")

# --- 6. the same event stored twice (bypassing the duplicate window): one notice ----
dup = task_assigned(task_x, acc1["id"], previous=acc_x)
publish(nc, dup, msg_id="dup-a-" + dup["event_id"])
publish(nc, dup, msg_id="dup-b-" + dup["event_id"])
after = task_assigned(task_x, acc_x, previous=acc1["id"])
publish(nc, after)
wait_for(lambda: notices_of(ates, after["event_id"]), what="the notice after the duplicates")
t.eq(len(notices_of(ates, dup["event_id"])), 1, "a duplicated event: one notice")
wait_for(lambda: db_rows(ates.data_dir, "SELECT count(*) FROM mail_outbox")[0][0] == 0, what="mail outbox empty")
t.eq(sum(1 for n in spool(ates.data_dir) if n == "notify-%s.eml" % dup["event_id"]), 1, "one mail")

# --- 7. a full redelivery (the durable consumer deleted while ates is down) -------
before_lines = len(notices(ates))
before_files = spool(ates.data_dir)
t.eq(ates.stop(), 0, "clean stop")
for stream in ("ATES_TASKS", "ATES_ACCOUNTS"):
    r = nc.js("CONSUMER.DELETE.%s.notify" % stream)
    t(r.get("success") is True, "delete the notify consumer of %s: %r" % (stream, r))
ates.start()
n_tasks = nc.stream_info("ATES_TASKS")["state"]["last_seq"]
wait_consumed(nats.port, "ATES_TASKS", "notify", n_tasks)
wait_consumed(nats.port, "ATES_ACCOUNTS", "notify", nc.stream_info("ATES_ACCOUNTS")["state"]["last_seq"])
wait_for(lambda: db_rows(ates.data_dir, "SELECT count(*) FROM mail_outbox")[0][0] == 0, what="mail outbox empty")
t.eq(len(notices(ates)), before_lines, "everything redelivered: no notice twice")
t.eq(spool(ates.data_dir), before_files, "and no mail twice (same files, same bytes)")
statuses = dict(db_rows(ates.data_dir, "SELECT status, count(*) FROM notices GROUP BY status"))
sent = statuses.get("sent", 0)
t.eq(sent, len(notices(ates)), "one log line per notice recorded as sent")
t.eq(sent, len([n for n in spool(ates.data_dir) if n.endswith(".eml")]), "one mail per notice sent")
t.eq(db_rows(ates.data_dir, "SELECT count(*) FROM mail_sent")[0][0], sent, "mail_sent holds every mail")
t(not [n for n in spool(ates.data_dir) if n.startswith(".")], "no temp file left in the spool")

nc.close()
t.eq(ates.stop(), 0, "clean stop")
t.done()
