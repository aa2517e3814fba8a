"""notify mail through SMTP (ATES_SMTP_URL) to a tiny SMTP server in this
test (127.0.0.1): the first DATA is refused with 451, the mail worker
retries and the server then receives the message once, from the configured
From (ATES_MAIL_FROM) to the assignee, with the same headers as a spooled
mail; nothing is written to DATA/mail."""
import re
import socket
import threading

from harness import Ates, Check, NatsServer, add_account, bearer, fast_nats, login, wait_for
from notify_util import assigned_events, crlf_only, db_rows, notices_of, parse_mail, spool


class SmtpServer:
    """One connection at a time; refuses the first `fail_data` DATA commands
    with 451 after reading the message; records accepted ones."""

    def __init__(self, fail_data=1):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.fail_data = fail_data
        self.accepted = []  # (mail from, [rcpt], data bytes)
        self.refused = 0
        self.connections = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.thread.join(10)
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            self.connections += 1
            try:
                conn.settimeout(10)
                self._session(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def _session(self, conn):
        f = conn.makefile("rb")

        def say(text):
            conn.sendall(text.encode() + b"\r\n")

        say("220 popug-mx ESMTP test")
        mail_from, rcpts = None, []
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                say("250-popug-mx" if verb == "EHLO" else "250 popug-mx")
                if verb == "EHLO":
                    say("250 8BITMIME")
            elif verb == "MAIL":
                mail_from, rcpts = re.search(r"<([^>]*)>", cmd).group(1), []
                say("250 OK")
            elif verb == "RCPT":
                rcpts.append(re.search(r"<([^>]*)>", cmd).group(1))
                say("250 OK")
            elif verb == "DATA":
                say("354 end with <CRLF>.<CRLF>")
                data = b""
                while True:
                    ln = f.readline()
                    if not ln or ln == b".\r\n":
                        break
                    data += ln[1:] if ln.startswith(b"..") else ln
                if self.refused < self.fail_data:
                    self.refused += 1
                    say("451 4.3.0 try again later")
                else:
                    self.accepted.append((mail_from, rcpts, data))
                    say("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                say("250 OK")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("502 not implemented")


t = Check()
smtp = SmtpServer(fail_data=1)
nats = NatsServer().start()
ates = Ates(nats.url, env={"ATES_ADMIN_PASSWORD": "smtp-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test",
                           "ATES_NOTIFY_MAIL": "true",
                           "ATES_SMTP_URL": "smtp://127.0.0.1:%d" % smtp.port,
                           "ATES_MAIL_FROM": "Popug Office <office@popug.test>"}).start()
ADMIN = bearer(login(ates, "root@popug.test", "smtp-admin-pw")["access_token"])
add_account(ates, ADMIN, "p1@popug.test", "popug", "p1-password", name="Popug One")
_, BOSS = add_account(ates, ADMIN, "boss@popug.test", "manager", "boss-password")
nc = fast_nats(nats.port)

st, task = ates.post("/api/tasks", {"title": "Sing at dawn", "jira_id": "UBERPOP-9"}, headers=BOSS)
t.eq(st, 201, "create a task")
ev = wait_for(lambda: assigned_events(nc, task["id"]), what="TaskAssigned")[0]
wait_for(lambda: notices_of(ates, ev["event_id"]), what="the notice in the log")
wait_for(lambda: smtp.accepted, timeout=30, what="the SMTP server accepted a message")
t.eq(smtp.refused, 1, "the first attempt was refused (451)")
t(smtp.connections >= 2, "and the worker came back: %d connections" % smtp.connections)
t("not delivered (attempt 1)" in ates.log(), "the refusal is logged")
mail_from, rcpts, data = smtp.accepted[0]
t.eq(mail_from, "office@popug.test", "envelope sender = the From address")
t.eq(rcpts, ["p1@popug.test"], "envelope recipient = the assignee")
t(crlf_only(data), "CRLF line endings")
msg = parse_mail(data)
t.eq(msg["From"], "Popug Office <office@popug.test>", "From header (ATES_MAIL_FROM)")
t.eq(msg["To"], "p1@popug.test", "To header")
t.eq(msg["Subject"], "Task assigned: [UBERPOP-9] Sing at dawn", "Subject")
t.eq(msg["Message-ID"], "<notify-%s@ates>" % ev["event_id"], "Message-ID")
t("Sing at dawn" in msg.get_content() and task["id"] in msg.get_content(), "body")

# a second mail goes through at once; each arrives once
st, task2 = ates.post("/api/tasks", {"title": ".Dot at the start"}, headers=BOSS)
t.eq(st, 201, "create a second task")
ev2 = wait_for(lambda: assigned_events(nc, task2["id"]), what="TaskAssigned 2")[0]
wait_for(lambda: len(smtp.accepted) >= 2, timeout=30, what="the second message")
wait_for(lambda: db_rows(ates.data_dir, "SELECT count(*) FROM mail_outbox")[0][0] == 0, what="outbox empty")
ids = [parse_mail(d)["Message-ID"] for _, _, d in smtp.accepted]
t.eq(sorted(ids), sorted(["<notify-%s@ates>" % ev["event_id"], "<notify-%s@ates>" % ev2["event_id"]]),
     "one message per notice, none twice")
t(".Dot at the start" in parse_mail(smtp.accepted[1][2])["Subject"], "a leading dot survives")
t.eq(spool(ates.data_dir), {}, "nothing spooled to DATA/mail with SMTP on")
t.eq(db_rows(ates.data_dir, "SELECT count(*) FROM mail_sent")[0][0], 2, "both ids noted as sent")
st, _, _, metrics = ates.request("GET", "/metrics")
t(re.search(rb'ates_mail_delivered_total\{service="notify"\} 2', metrics) is not None, "delivered metric")
t(re.search(rb'ates_mail_failures_total\{service="notify"\} 1', metrics) is not None, "failures metric")

nc.close()
t.eq(ates.stop(), 0, "clean stop")
smtp.stop()
t.done()
