"""`ates user add`: creates an account on the data dir of a running auth
(password on stdin), which then logs in and is announced; a taken email and
bad arguments are refused with the right exit codes."""
import json
import os
import subprocess

from harness import ATES_BIN, Ates, Check, Nats, NatsServer, bearer, tmpdir, wait_for

ADMIN_EMAIL = "clerk@popug.test"
ADMIN_PASSWORD = "clerk-password"

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth",
            env={"ATES_ADMIN_PASSWORD": ADMIN_PASSWORD, "ATES_ADMIN_EMAIL": ADMIN_EMAIL}).start()


def user_add(args, password="cli-password\n", data_dir=None):
    e = dict(os.environ)
    e.update({"ATES_DATA_DIR": data_dir or ates.data_dir, "ATES_NATS_URL": nats.url,
              "ATES_SCHEMAS_DIR": ates.schemas_dir, "ATES_LOG": "warn"})
    p = subprocess.run([ATES_BIN, "user", "add"] + args, input=password, env=e, capture_output=True,
                       text=True, timeout=60, cwd=tmpdir("cwd"))
    return p.returncode, p.stdout, p.stderr


def login(email, password):
    st, body, hd, _ = ates.request("POST", "/api/auth/login", body={"email": email, "password": password})
    return st, body


rc, out, err = user_add(["--help"], password="")
t(rc == 0 and "usage" in out.lower(), "user add --help: %d %r %r" % (rc, out, err))

rc, out, err = user_add(["--email", "Cli@Popug.Test", "--name", "Cli Popug", "--role", "accountant"])
t.eq(rc, 0, "user add: %r" % err)
st, body = login("cli@popug.test", "cli-password")
t.eq(st, 200, "the CLI account logs in through the running server: %r" % body)
cli_id = body["account"]["id"] if st == 200 else None
if st == 200:
    t.eq((body["account"]["name"], body["account"]["role"], body["account"]["active"]),
         ("Cli Popug", "accountant", True), "the CLI account's fields")

# The running server's relay announces it (the row went into auth's outbox).
js = Nats(nats.port)
def cli_event():
    for s, h, b in js.stream_msgs("ATES_ACCOUNTS"):
        ev = json.loads(b)
        if s == "ates.accounts.created" and ev["data"].get("account_id") == cli_id:
            return ev
    return None
try:
    ev = wait_for(cli_event, timeout=30, interval=0.2, what="the CLI account's AccountCreated")
    t.eq(ev["data"]["role"], "accountant", "AccountCreated of the CLI account")
except AssertionError as e:
    t(False, str(e))
js.close()

rc, out, err = user_add(["--email", "CLI@popug.test", "--name", "Again", "--role", "popug"])
t(rc != 0, "a taken email exits non-zero: %d" % rc)
t(err.strip() != "", "with a message on stderr: %r" % err)
rc, out, err = user_add(["--email", "king@popug.test", "--name", "King", "--role", "king"])
t.eq(rc, 2, "an unknown role exits 2")
t("role" in err, "the message names the role: %r" % err)
rc, out, err = user_add(["--email", "short@popug.test", "--name", "Short", "--role", "popug"], password="1234567\n")
t.eq(rc, 2, "a 7-char password exits 2: %r" % err)
rc, out, err = user_add(["--email", "nopw@popug.test", "--name", "NoPw", "--role", "popug"], password="")
t.eq(rc, 2, "no password on stdin exits 2: %r" % err)
rc, out, err = user_add(["--name", "Anon", "--role", "popug"])
t.eq(rc, 2, "a missing --email exits 2")
rc, out, err = user_add(["--email", "bad-email", "--name", "Bad", "--role", "popug"])
t.eq(rc, 2, "an email without @ exits 2")

st, body = login(ADMIN_EMAIL, ADMIN_PASSWORD)
st, lst = ates.get("/api/accounts", headers=bearer(body["access_token"])) if st == 200 else (st, {})
emails = sorted(a["email"].lower() for a in (lst or {}).get("items", []))
t.eq(emails, ["clerk@popug.test", "cli@popug.test"], "only the good CLI account was made")
t.eq(ates.stop(), 0, "clean stop")
t.done()
