"""Helpers shared by the notify tests: events made by hand, the notices in
an ates log, notify's own tables, and the mail spool."""
import email
import email.policy
import json
import os
import sqlite3
import time
import uuid


def rfc3339(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def event(name, version, data, age_s=0.0, event_id=None):
    """A CONTRACT envelope; `age_s` seconds old."""
    return {"event_id": event_id or str(uuid.uuid4()), "event_name": name, "event_version": version,
            "event_time": rfc3339(time.time() - age_s), "producer": "test",
            "trace_id": "test-" + uuid.uuid4().hex[:12], "data": data}


SUBJECTS = {"AccountCreated": "ates.accounts.created", "AccountUpdated": "ates.accounts.updated",
            "TaskCreated": "ates.tasks.created", "TaskAssigned": "ates.tasks.assigned"}


def publish(nc, ev, msg_id=None):
    """Publish ev on its subject; msg_id other than the event id bypasses the
    stream's duplicate window (the same event stored twice)."""
    nc.publish(SUBJECTS[ev["event_name"]], json.dumps(ev).encode(),
               headers={"Nats-Msg-Id": msg_id or ev["event_id"], "Ates-Event": ev["event_name"],
                        "Ates-Version": str(ev["event_version"])})


def account_created(account_id, email_addr, name, active=True, role="popug"):
    return event("AccountCreated", 1, {"account_id": account_id, "email": email_addr, "name": name,
                                       "role": role, "active": active})


def task_assigned(task_id, assignee, previous=None, age_s=0.0):
    return event("TaskAssigned", 1, {"task_id": task_id, "assignee_id": assignee,
                                     "previous_assignee_id": previous,
                                     "assigned_at": rfc3339(time.time() - age_s)}, age_s=age_s)


def notices(ates):
    """The notice lines of ates's log: [(message, trace_id)] (info level)."""
    out = []
    for line in ates.log().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("level") == "info" and rec.get("service") == "notify" \
                and rec.get("message", "").startswith("notice "):
            out.append((rec["message"], rec.get("trace_id")))
    return out


def notices_of(ates, event_id):
    return [m for m, _ in notices(ates) if m.startswith("notice %s:" % event_id)]


def db_rows(data_dir, sql, args=()):
    """Rows from notify's own SQLite file (read beside the running process)."""
    con = sqlite3.connect(os.path.join(data_dir, "notify.db"), timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def notice_row(data_dir, event_id):
    rows = db_rows(data_dir, "SELECT status, reason, mail_id FROM notices WHERE event_id = ?", (event_id,))
    return rows[0] if rows else None


def spool(data_dir):
    """{file name: raw bytes} of DATA/mail (dot files are temp files and count too)."""
    d = os.path.join(data_dir, "mail")
    if not os.path.isdir(d):
        return {}
    out = {}
    for name in os.listdir(d):
        with open(os.path.join(d, name), "rb") as f:
            out[name] = f.read()
    return out


def parse_mail(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def crlf_only(raw):
    return raw.count(b"\n") == raw.count(b"\r\n") and raw.count(b"\r") == raw.count(b"\r\n")


def assigned_events(nc, task_id=None):
    """The TaskAssigned events the ATES_TASKS stream holds (for task_id)."""
    out = []
    for _, _, body in nc.stream_msgs("ATES_TASKS"):
        ev = json.loads(body)
        if ev["event_name"] == "TaskAssigned" and (task_id is None or ev["data"]["task_id"] == task_id):
            out.append(ev)
    return out
