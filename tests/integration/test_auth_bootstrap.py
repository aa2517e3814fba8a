"""auth bootstrap: with no ATES_ADMIN_PASSWORD the first start generates
one, prints it once on stdout and writes DATA/admin-password (0600); a
restart neither creates another admin nor changes the password. With the
variables set, the given email and password are the admin's."""
import os
import stat
import subprocess

import harness
from harness import ATES_BIN, Ates, Check, NatsServer, bearer, wait_for

t = Check()
os.environ.pop("ATES_ADMIN_PASSWORD", None)
os.environ.pop("ATES_ADMIN_EMAIL", None)
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth")


def start_split(n):
    """Start with stdout and stderr in separate files; the stdout text after /ready."""
    out_path = os.path.join(ates.data_dir, "stdout.%d" % n)
    with open(out_path, "wb") as out, open(ates.log_path, "ab") as err:
        ates.proc = subprocess.Popen([ates.binary, "serve", "--services", "auth"], env=ates.env(),
                                     stdout=out, stderr=err, cwd=ates.data_dir)
    harness._procs.append(ates.proc)
    wait_for(lambda: ates.proc.poll() is None and ates.get("/ready")[0] == 200,
             what="ates /ready (log: %s)" % ates.log_path)
    return out_path


def login(email, password):
    st, body, hd, _ = ates.request("POST", "/api/auth/login", body={"email": email, "password": password})
    return st, body


def stdout_text(path):
    t.eq(ates.stop(), 0, "clean stop")  # flushes stdout whatever its buffering
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


out1 = start_split(1)
pw_path = os.path.join(ates.data_dir, "admin-password")
t(os.path.exists(pw_path), "DATA/admin-password exists")
password = ""
if os.path.exists(pw_path):
    mode = stat.S_IMODE(os.stat(pw_path).st_mode)
    t.eq(oct(mode), oct(0o600), "admin-password mode")
    with open(pw_path) as f:
        content = f.read()
    t(content.endswith("\n") and content.count("\n") == 1, "the file is one line: %r" % content)
    password = content.rstrip("\n")
    t(len(password) >= 12, "a long generated password: %d chars" % len(password))
st, body = login("admin@uberpopug.inc", password)
t.eq(st, 200, "the default admin email logs in with the generated password: %r" % body)
if st == 200:
    t.eq(body["account"]["role"], "admin", "the bootstrap account is an admin")
    token = body["access_token"]
    st, lst = ates.get("/api/accounts", headers=bearer(token))
    t.eq(len(lst.get("items", [])) if st == 200 else None, 1, "exactly one account")
text = stdout_text(out1)
lines = [ln for ln in text.splitlines() if password and password in ln]
t.eq(len(lines), 1, "the password is printed once on stdout: %r" % text)
t(bool(lines) and "admin@uberpopug.inc" in lines[0], "with the email on the same line: %r" % lines)
t(password not in ates.log(), "the password is not in the JSON log (stderr)")

out2 = start_split(2)
with open(pw_path) as f:
    t.eq(f.read().rstrip("\n"), password, "a restart keeps admin-password")
st, body = login("admin@uberpopug.inc", password)
t.eq(st, 200, "the same password after a restart")
if st == 200:
    st, lst = ates.get("/api/accounts", headers=bearer(body["access_token"]))
    t.eq(len(lst.get("items", [])) if st == 200 else None, 1, "still exactly one account")
text = stdout_text(out2)
t(password not in text, "the restart prints no password: %r" % text)

# Given variables on a fresh data dir.
ates2 = Ates(nats.url, binary=ATES_BIN, services="auth",
             env={"ATES_ADMIN_EMAIL": "Chief@Popug.Test", "ATES_ADMIN_PASSWORD": "chief-password"}).start()
st, body, hd, _ = ates2.request("POST", "/api/auth/login",
                                body={"email": "chief@popug.test", "password": "chief-password"})
t.eq(st, 200, "the configured admin logs in: %r" % body)
t(not os.path.exists(os.path.join(ates2.data_dir, "admin-password")), "no admin-password file when one is given")
t("chief-password" not in ates2.log(), "the given password is never printed")
# A restart with a different password in the environment changes nothing.
t.eq(ates2.stop(), 0, "clean stop")
ates2.extra_env["ATES_ADMIN_PASSWORD"] = "another-password"
ates2.start()
st, body, hd, _ = ates2.request("POST", "/api/auth/login",
                                body={"email": "chief@popug.test", "password": "chief-password"})
t.eq(st, 200, "the first password still works after a restart with another ATES_ADMIN_PASSWORD")
st, body, hd, _ = ates2.request("POST", "/api/auth/login",
                                body={"email": "chief@popug.test", "password": "another-password"})
t.eq(st, 401, "the new variable does not reset the password")
t.eq(ates2.stop(), 0, "clean stop")
t.done()
