"""Resource bounds of the HTTP server: 5,000 idle connections do not exhaust
it (new clients are still answered, and so are requests on connections that
were idle), and a slow client that dribbles its request a byte at a time
does not block others. Loopback only; everything is closed at the end."""
import resource
import socket
import threading
import time

from harness import ATES_BIN, Ates, Check, NatsServer, bearer, login

IDLE = 5000
ADMIN_EMAIL = "boss@popug.test"
ADMIN_PASSWORD = "boss-password"

t = Check()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = IDLE + 512
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
idle = min(IDLE, soft - 256)
t(idle >= 4000, "this test process may open %d sockets (RLIMIT_NOFILE %d)" % (idle, soft))

nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,tracker",
            env={"ATES_ADMIN_PASSWORD": ADMIN_PASSWORD, "ATES_ADMIN_EMAIL": ADMIN_EMAIL,
                 "ATES_LOG": "info"}).start()
H = bearer(login(ates, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"])


def http_get(sock, path):
    """One keep-alive GET on an open socket; the status code or None."""
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        rest += chunk
    return int(head.split(b" ")[1])


# --- many idle connections ---------------------------------------------------
socks = []
for i in range(idle):
    s = socket.create_connection(("127.0.0.1", ates.port), timeout=10)
    socks.append(s)
    if i % 1000 == 999:  # new clients keep being answered while they pile up
        st, _ = ates.get("/health")
        t.eq(st, 200, "/health with %d idle connections open" % (i + 1))

st, _ = ates.get("/health")
t.eq(st, 200, "/health with %d idle connections" % idle)
st, js = ates.get("/api/auth/me", headers=H)
t.eq(st, 200, "an authorized request with %d idle connections" % idle)
st, js = ates.post("/api/accounts", {"email": "p@popug.test", "name": "P", "role": "popug",
                                      "password": "popug-password"}, headers=H)
t.eq(st, 201, "a write with %d idle connections" % idle)

# the idle connections themselves were kept: a sample of them is answered
served = 0
sample = socks[:: max(1, idle // 50)]
for s in sample:
    try:
        served += http_get(s, "/health") == 200
    except OSError:
        pass
t.eq(served, len(sample), "requests on connections that were idle (of %d sampled)" % len(sample))
for s in socks:
    s.close()
socks = []

# --- a slow client does not block the others -------------------------------
body = b'{"email":"slow@popug.test","password":"not-the-password"}'
request = b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" \
          b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
slow = socket.create_connection(("127.0.0.1", ates.port), timeout=30)
fast_done = []
stop = threading.Event()


def fast_clients():
    while not stop.is_set() and len(fast_done) < 200:
        st, _ = ates.get("/health")
        fast_done.append(st)


workers = [threading.Thread(target=fast_clients) for _ in range(4)]
for w in workers:
    w.start()
sent = 0
for i, byte in enumerate(request):
    slow.sendall(bytes([byte]))
    sent += 1
    if len(fast_done) >= 200:
        break
    time.sleep(0.02)
for w in workers:
    w.join(timeout=60)
stop.set()
t(len(fast_done) >= 200, "200 requests of other clients finished while the slow one dribbled")
t(all(s == 200 for s in fast_done), "the other clients were all answered 200")
t(sent < len(request), "the slow client was still sending when the others were done (%d/%d bytes)"
  % (sent, len(request)))
# the slow client gets its answer in the end
slow.sendall(request[sent:])
slow.settimeout(30)
resp = b""
while b"\r\n\r\n" not in resp:
    chunk = slow.recv(4096)
    if not chunk:
        break
    resp += chunk
t(resp.startswith(b"HTTP/1.1 401"), "the slow client's login was answered (401): %r" % resp[:40])
slow.close()

st, _ = ates.get("/health")
t.eq(st, 200, "healthy at the end")
t.eq(ates.stop(), 0, "clean stop")
nats.stop()
t.done()
