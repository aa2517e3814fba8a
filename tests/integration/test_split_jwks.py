"""Services in separate processes with separate data dirs: a service that
does not hold auth's keys trusts the ones auth publishes at /api/auth/jwks
(ATES_JWKS_URL), and still refuses tokens signed by anyone else."""
import subprocess

from harness import ATES_BIN, Ates, Check, NatsServer, TOOLS, tmpdir

t = Check()
nats = NatsServer().start()
auth = Ates(nats.url, binary=ATES_BIN, services="auth",
            env={"ATES_ADMIN_PASSWORD": "admin-pass-1", "ATES_ADMIN_EMAIL": "root@uberpopug.inc"}).start()
probe = Ates(nats.url, services="probe",
             env={"ATES_JWKS_URL": "http://127.0.0.1:%d/api/auth/jwks" % auth.port})
t(probe.data_dir != auth.data_dir, "separate data dirs")
probe.start()

st, body = auth.post("/api/auth/login", {"email": "root@uberpopug.inc", "password": "admin-pass-1"})
t.eq(st, 200, "login at auth")
token = body["access_token"]
st, who = probe.get("/api/probe/whoami", headers={"Authorization": "Bearer " + token})
t.eq(st, 200, "the other process accepts auth's token")
t.eq(who.get("account_id"), body["account"]["id"], "and sees its subject")
t.eq(who.get("role"), "admin", "and its role")

forged = subprocess.run([TOOLS + "/tool_jwt", "sign", tmpdir("otherkeys"), body["account"]["id"], "admin",
                         "1700000000", "4102444800"], capture_output=True, text=True).stdout.strip()
t(forged.count(".") == 2, "forged a token with a foreign key")
st, _ = probe.get("/api/probe/whoami", headers={"Authorization": "Bearer " + forged})
t.eq(st, 401, "a token of a foreign key is refused")
t.eq(probe.stop(), 0, "clean stop (probe)")
t.eq(auth.stop(), 0, "clean stop (auth)")
t.done()
