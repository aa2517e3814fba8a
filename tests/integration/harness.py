"""Integration-test harness: real nats-server, real ates processes, real HTTP.

Only the Python standard library. Every server binds 127.0.0.1 on a free
port, every process is killed at exit, every wait has an upper bound (a
bound to give up, never an assertion on speed).
"""
import atexit
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import http.client

SRC = os.environ.get("ATES_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TESTHOST = os.environ.get("ATES_TESTHOST", os.path.join(SRC, "build", "ates_testhost"))
ATES_BIN = os.environ.get("ATES_BIN", os.path.join(SRC, "build", "ates"))
TOOLS = os.environ.get("ATES_TOOLS", os.path.join(SRC, "build", "tools"))
TMP_ROOT = os.environ.get("ATES_TEST_TMP", tempfile.gettempdir())

_procs = []


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_cleanup)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=15.0, interval=0.05, what="condition"):
    """Poll pred() until it returns a truthy value; fail after `timeout`
    (`what` may be a function, called then, to say what was last seen)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, http.client.HTTPException, ValueError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what() if callable(what) else what, last))


def tmpdir(name):
    os.makedirs(TMP_ROOT, exist_ok=True)
    return tempfile.mkdtemp(prefix=name + "-", dir=TMP_ROOT)


class Check:
    """Counts checks and prints the closing line CTest and CI read."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def __call__(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            sys.stderr.write("check failed: %s\n" % what)
        return cond

    def eq(self, got, want, what):
        return self(got == want, "%s: got %r, want %r" % (what, got, want))

    def done(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        _cleanup()
        sys.exit(1 if self.failed or not self.passed else 0)


# --- nats-server ------------------------------------------------------------

class NatsServer:
    def __init__(self, port=None, store=None):
        self.port = port or free_port()
        self.store = store or tmpdir("nats")
        self.proc = None

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def start(self):
        log = open(os.path.join(self.store, "nats.log"), "ab")
        self.proc = subprocess.Popen(
            ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.store],
            stdout=log, stderr=log)
        _procs.append(self.proc)
        wait_for(lambda: _port_open(self.port), what="nats-server on %d" % self.port)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --- ates -------------------------------------------------------------------

class Ates:
    """One `ates serve` process with its own data dir and HTTP port."""

    def __init__(self, nats_url, binary=None, data_dir=None, rules_dir=None, services=None,
                 env=None, schemas_dir=None):
        self.binary = binary or TESTHOST
        self.port = free_port()
        self.data_dir = data_dir or tmpdir("data")
        self.rules_dir = rules_dir or repo_rules()
        self.schemas_dir = schemas_dir or merged_schemas()
        self.services = services
        self.nats_url = nats_url
        self.extra_env = env or {}
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "ates.log")

    def env(self):
        e = dict(os.environ)
        e.update({
            "ATES_HTTP_ADDR": "127.0.0.1:%d" % self.port,
            "ATES_NATS_URL": self.nats_url,
            "ATES_DATA_DIR": self.data_dir,
            "ATES_RULES_DIR": self.rules_dir,
            "ATES_SCHEMAS_DIR": self.schemas_dir,
            "ATES_WEB_DIR": os.path.join(SRC, "web"),
            "ATES_SEED": "42",
            "ATES_LOG": "debug",
        })
        e.update(self.extra_env)
        return e

    def start(self, wait_ready=True):
        args = [self.binary, "serve"]
        if self.services:
            args += ["--services", self.services]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, env=self.env(), stdout=log, stderr=log, cwd=self.data_dir)
        _procs.append(self.proc)
        wait_for(lambda: self.proc.poll() is None and self.get("/health")[0] == 200,
                 what="ates /health (log: %s)" % self.log_path)
        if wait_ready:
            wait_for(lambda: self.get("/ready")[0] == 200, what="ates /ready")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=20)
        return self.proc.returncode if self.proc else None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def request(self, method, path, body=None, headers=None, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            h = dict(headers or {})
            data = raw
            if body is not None:
                data = json.dumps(body).encode()
                h.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            payload = resp.read()
            parsed = None
            if payload and "json" in (resp.getheader("Content-Type") or ""):
                parsed = json.loads(payload)
            return resp.status, parsed, dict((k.lower(), v) for k, v in resp.getheaders()), payload
        finally:
            conn.close()

    def get(self, path, headers=None):
        st, js, hd, _ = self.request("GET", path, headers=headers)
        return st, js

    def post(self, path, body=None, headers=None):
        st, js, hd, _ = self.request("POST", path, body=body, headers=headers)
        return st, js

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def repo_rules():
    """A temp copy of the repository's rules/ (tests may edit their copy)."""
    d = tmpdir("rules")
    src = os.path.join(SRC, "rules")
    for name in os.listdir(src):
        if name.endswith(".lua"):
            shutil.copy(os.path.join(src, name), d)
    return d


def merged_schemas():
    """config/schemas plus the test-only schemas, in one temp dir."""
    d = tmpdir("schemas")
    for src in (os.path.join(SRC, "config", "schemas"), os.path.join(SRC, "tests", "integration", "schemas")):
        for name in os.listdir(src):
            if name.endswith(".json"):
                shutil.copy(os.path.join(src, name), d)
    return d


# --- a small NATS client (core protocol + JetStream API requests) -----------

class Nats:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.sid = 0
        self._line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\nPING\r\n')
        while self._line() != b"PONG":
            pass

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise OSError("nats connection closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def subscribe(self, subject):
        self.sid += 1
        self.sock.sendall(b"SUB %s %d\r\n" % (subject.encode(), self.sid))
        return self.sid

    def publish(self, subject, payload, headers=None, reply=None):
        rep = (" " + reply) if reply else ""
        if headers:
            hdr = "NATS/1.0\r\n" + "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
            hdr = hdr.encode()
            self.sock.sendall(b"HPUB %s%s %d %d\r\n%s%s\r\n" % (
                subject.encode(), rep.encode(), len(hdr), len(hdr) + len(payload), hdr, payload))
        else:
            self.sock.sendall(b"PUB %s%s %d\r\n%s\r\n" % (subject.encode(), rep.encode(), len(payload), payload))

    def next_msg(self, timeout=10):
        """(subject, headers dict, payload) of the next message."""
        self.sock.settimeout(timeout)
        while True:
            line = self._line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            parts = line.split(b" ")
            if parts[0] == b"MSG":
                return parts[1].decode(), {}, self._bytes(int(parts[-1]))
            if parts[0] == b"HMSG":
                hlen, total = int(parts[-2]), int(parts[-1])
                raw = self._bytes(total)
                return parts[1].decode(), parse_headers(raw[:hlen]), raw[hlen:]
            if parts[0].startswith(b"-ERR"):
                raise OSError(line.decode())

    def request(self, subject, payload=b"", timeout=10):
        inbox = "_INBOX.t%d" % (self.sid + 1)
        self.subscribe(inbox)
        self.publish(subject, payload, reply=inbox)
        _, _, data = self.next_msg(timeout)
        self.sock.sendall(b"UNSUB %d\r\n" % self.sid)
        return data

    def js(self, api, body=None):
        return json.loads(self.request("$JS.API." + api, json.dumps(body).encode() if body is not None else b""))

    def stream_info(self, stream):
        return self.js("STREAM.INFO." + stream)

    def stream_msgs(self, stream):
        """Every message the stream holds: [(subject, headers, body bytes)]."""
        info = self.stream_info(stream)
        state = info.get("state", {})
        out = []
        for seq in range(state.get("first_seq", 1), state.get("last_seq", 0) + 1):
            m = self.js("STREAM.MSG.GET." + stream, {"seq": seq})
            if "message" not in m:
                continue
            msg = m["message"]
            hdrs = parse_headers(base64.b64decode(msg["hdrs"])) if msg.get("hdrs") else {}
            out.append((msg["subject"], hdrs, base64.b64decode(msg.get("data", ""))))
        return out


def parse_headers(raw):
    lines = raw.decode(errors="replace").split("\r\n")[1:]
    h = {}
    for ln in lines:
        if ":" in ln:
            k, v = ln.split(":", 1)
            h[k.strip()] = v.strip()
    return h


def write_file(path, text):
    """Write atomically (as an editor's save does) so a reload sees whole files."""
    tmp = path + ".tmp~"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# --- auth helpers -------------------------------------------------------------

def use_rule_file(ates, headers, path, src, timeout=10.0):
    """Write the rule file `path` (as an editor saves) and wait until the
    service has these bytes in force; returns their GET /api/rules item
    (its "error" is that of the last attempt, None when it loaded)."""
    write_file(path, src)
    name = os.path.basename(path)
    version = hashlib.sha256(src.encode()).hexdigest()[:12]

    def in_force():
        st, js = ates.get("/api/rules", headers=headers)
        items = [i for i in js.get("items", []) if i["file"] == name] if st == 200 else []
        return items[0] if items and items[0]["version"] == version else None
    return wait_for(in_force, timeout=timeout, what="%s version %s in force" % (name, version))


def is_error(body, code):
    """The CONTRACT error body: exactly {"error": {"code", "message"}}."""
    return isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], dict) \
        and body["error"].get("code") == code \
        and isinstance(body["error"].get("message"), str) and body["error"]["message"] != ""


def bearer(token):
    return {"Authorization": "Bearer " + token}


def tool_jwt(keydir, sub, role, iat, exp):
    """A token signed by tests/integration/tool_jwt.c with the key in keydir."""
    p = subprocess.run([os.path.join(TOOLS, "tool_jwt"), "sign", keydir, sub, role, str(iat), str(exp)],
                       capture_output=True, text=True, timeout=20)
    if p.returncode != 0:
        raise AssertionError("tool_jwt failed: %s" % p.stderr)
    return p.stdout.strip()


def parse_set_cookie(value):
    """'n=v; Path=/; HttpOnly' -> ('n', 'v', {'path': '/', 'httponly': True})."""
    parts = [p.strip() for p in (value or "").split(";")]
    name, _, val = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        if p:
            k, eq, v = p.partition("=")
            attrs[k.strip().lower()] = v.strip() if eq else True
    return name.strip(), val.strip(), attrs


# --- tracker helpers ------------------------------------------------------------

def login(ates, email, password):
    """POST /api/auth/login; the body (access_token, account, ...) or an AssertionError."""
    st, body = ates.post("/api/auth/login", {"email": email, "password": password})
    if st != 200:
        raise AssertionError("login %s: %d %r" % (email, st, body))
    return body


def add_account(ates, admin_headers, email, role, password, name=None):
    """POST /api/accounts as the admin; (account, bearer headers of a fresh login)."""
    st, acc = ates.post("/api/accounts", {"email": email, "name": name or email.split("@")[0].title(),
                                          "role": role, "password": password}, headers=admin_headers)
    if st != 201:
        raise AssertionError("create %s: %d %r" % (email, st, acc))
    return acc, bearer(login(ates, email, password)["access_token"])


def fast_nats(port):
    """A Nats client with TCP_NODELAY: its request() sends SUB and PUB as two
    writes, which Nagle plus delayed ACKs slow to ~40 ms per stream message."""
    nc = Nats(port)
    nc.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return nc


def consumer_caught_up(nats_port, stream, durable, at_least=0):
    """True when `stream` holds at least `at_least` messages and the durable
    consumer `durable` has acked every one, i.e. the consuming service has
    applied them all. (Producers publish through an outbox after answering,
    so pass the number of events you expect, or the check may pass early.)"""
    nc = fast_nats(nats_port)
    try:
        last = nc.stream_info(stream).get("state", {}).get("last_seq", 0)
        ci = nc.js("CONSUMER.INFO.%s.%s" % (stream, durable))
    finally:
        nc.close()
    if "error" in ci or last < at_least:
        return False
    return ci.get("num_pending", 1) == 0 and ci.get("num_ack_pending", 1) == 0 \
        and ci.get("ack_floor", {}).get("stream_seq", -1) >= last


def wait_consumed(nats_port, stream, durable, at_least=0, timeout=20.0):
    wait_for(lambda: consumer_caught_up(nats_port, stream, durable, at_least), timeout=timeout, interval=0.1,
             what="consumer %s of %s caught up with %d messages" % (durable, stream, at_least))


def list_pages(ates, headers, query="", limit=None):
    """Follow GET /api/tasks?... through `next`: (items, [status of each page], pages)."""
    items, statuses, after = [], [], None
    for _ in range(10000):
        q = [query] if query else []
        if limit is not None:
            q.append("limit=%d" % limit)
        if after:
            q.append("after=" + after)
        st, body = ates.get("/api/tasks" + ("?" + "&".join(q) if q else ""), headers=headers)
        statuses.append(st)
        if st != 200 or not isinstance(body, dict):
            break
        items += body.get("items") or []
        after = body.get("next")
        if not after:
            break
    return items, statuses, len(statuses)
