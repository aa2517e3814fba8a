"""Resource bound of the shuffle: reassigning 1M open tasks (seeded straight
into tracker.db by the bench seeder) answers with the count, publishes a
TaskAssigned for every one of them, and the tracker process's peak resident
memory (VmHWM) stays under 256 MiB: rows are streamed a chunk at a time,
never held all at once. Under AddressSanitizer (whose shadow memory
inflates RSS) the same run uses 200k tasks and the memory bound is not
asserted."""
import http.client
import json
import os

from harness import ATES_BIN, Ates, Check, NatsServer, add_account, bearer, login, wait_for

SANITIZED = "ASAN_OPTIONS" in os.environ
N = 200_000 if SANITIZED else 1_000_000
RSS_LIMIT_KIB = 256 * 1024
SEEDER = os.path.join(os.path.dirname(ATES_BIN), "bench", "bench_seed_tasks")

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,tracker",
            env={"ATES_ADMIN_PASSWORD": "shuffle-admin-pw", "ATES_ADMIN_EMAIL": "boss@popug.test",
                 "ATES_LOG": "info"}).start()
H = bearer(login(ates, "boss@popug.test", "shuffle-admin-pw")["access_token"])
popugs = [add_account(ates, H, "rss%d@popug.test" % i, "popug", "rss-password-%d" % i)[0]["id"]
          for i in range(3)]
# the tracker learns accounts from events: wait until a task can be assigned
wait_for(lambda: ates.post("/api/tasks", {"title": "warm-up"}, headers=H)[0] == 201,
         what="an eligible account in the tracker")


def metric(name, service):
    st, _, _, raw = ates.request("GET", "/metrics")
    for line in raw.decode().splitlines():
        if line.startswith('%s{service="%s"' % (name, service)):
            return float(line.split()[-1])
    return 0.0


def shuffle():
    """POST /api/tasks/shuffle with room for a long answer (the harness waits 10 s)."""
    conn = http.client.HTTPConnection("127.0.0.1", ates.port, timeout=170)
    try:
        conn.request("POST", "/api/tasks/shuffle", headers=H)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


rc = os.spawnv(os.P_WAIT, SEEDER, [SEEDER, os.path.join(ates.data_dir, "tracker.db"), str(N)] + popugs)
t.eq(rc, 0, "seeded %d open tasks" % N)
published_before = metric("ates_bus_published_total", "tracker")
st, js = shuffle()
t.eq(st, 200, "the shuffle answered: %r" % (js,))
reassigned = (js or {}).get("reassigned", 0)
t.eq(reassigned, N, "every open task reassigned (the seeder tops the open tasks up to N)")
wait_for(lambda: metric("ates_bus_published_total", "tracker") - published_before >= reassigned,
         timeout=150, interval=0.5, what="every TaskAssigned of the shuffle published")
t.eq(metric("ates_bus_published_total", "tracker") - published_before, float(reassigned),
     "one TaskAssigned per reassigned task, no more")
hwm = vm_hwm_kib(ates.proc.pid)
print("shuffle of %d open tasks: peak RSS %.1f MiB%s" % (N, hwm / 1024.0, " (ASan)" if SANITIZED else ""))
if not SANITIZED:
    t(0 < hwm < RSS_LIMIT_KIB, "peak RSS %d KiB < %d KiB" % (hwm, RSS_LIMIT_KIB))
ates.stop()
nats.stop()
t.done()
