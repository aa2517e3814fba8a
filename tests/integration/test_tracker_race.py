"""The shuffle/complete race: ~200 open tasks held by popugs; shuffles
(manager, admin) run while every popug completes the tasks it holds. Never a
500; completions answer 200, 403 or 409; afterwards the task rows and the
ATES_TASKS stream agree: one TaskCompleted per done task naming its
assignee, no TaskAssigned after a TaskCompleted, an unbroken chain of
previous_assignee_id, and the number of 200 completions is the number of
done tasks."""
import json
import threading
import time

from harness import (ATES_BIN, Ates, Check, NatsServer, add_account, bearer, fast_nats, list_pages, login,
                     wait_consumed, wait_for)

N_TASKS = 200
POPUGS = ["p1", "p2", "p3", "p4"]

t = Check()
nats = NatsServer().start()
ates = Ates(nats.url, binary=ATES_BIN, services="auth,tracker",
            env={"ATES_ADMIN_PASSWORD": "race-admin-pw", "ATES_ADMIN_EMAIL": "root@popug.test"}).start()
root = login(ates, "root@popug.test", "race-admin-pw")
ADMIN = bearer(root["access_token"])
H, ids = {"root": ADMIN}, {"root": root["account"]["id"]}
for name, r in [(p, "popug") for p in POPUGS] + [("boss", "manager")]:
    acc, H[name] = add_account(ates, ADMIN, "%s@popug.test" % name, r, name + "-password")
    ids[name] = acc["id"]
NAME = {v: k for k, v in ids.items()}
wait_consumed(nats.port, "ATES_ACCOUNTS", "tracker", 1 + 5)  # account events so far

lock = threading.Lock()
errors = []       # anything that is not an allowed answer
answers = []      # (popug, task_id, status, body) of every completion


def guarded(fn):
    def run(*a):
        try:
            fn(*a)
        except Exception as e:  # a dropped connection, a timeout, a bad body
            with lock:
                errors.append("%s%r raised %r" % (fn.__name__, a, e))
    return run


@guarded
def creator(k):
    for i in range(k, N_TASKS, 4):
        st, js = ates.post("/api/tasks", {"title": "Race %03d" % i, "jira_id": "RACE-%d" % i},
                           headers=H[POPUGS[k]])
        if st != 201:
            with lock:
                errors.append("create %d: %d %r" % (i, st, js))


threads = [threading.Thread(target=creator, args=(k,)) for k in range(4)]
for th in threads:
    th.start()
for th in threads:
    th.join(120)
initial = list_pages(ates, ADMIN, "assignee=all", 500)[0]
t.eq(len(initial), N_TASKS, "%d tasks created" % N_TASKS)
t(all(x["assignee_id"] in {ids[p] for p in POPUGS} for x in initial), "all held by popugs")
t.eq(errors, [], "creation errors")
errors.clear()

start = threading.Barrier(len(POPUGS) + 2)
completers_left = [len(POPUGS)]
shuffles = []     # (trace id, status, body)


@guarded
def completer(name):
    start.wait(30)
    try:
        for _ in range(3):
            items, statuses, _ = list_pages(ates, H[name], "assignee=me&status=open", 500)
            if any(s != 200 for s in statuses):
                with lock:
                    errors.append("%s list: %r" % (name, statuses))
            if not items:
                break
            for x in items:
                st, js = ates.post("/api/tasks/%s/complete" % x["id"], headers=H[name])
                with lock:
                    answers.append((name, x["id"], st, js))
    finally:
        with lock:
            completers_left[0] -= 1


@guarded
def shuffler(who, most):
    start.wait(30)
    for k in range(most):
        trace = "race-shuffle-%s-%d" % (who, k)
        st, js, _, _ = ates.request("POST", "/api/tasks/shuffle", headers=dict(H[who], **{"X-Request-Id": trace}))
        with lock:
            shuffles.append((trace, st, js))
            seen = len(answers)
        # Pace the presses by progress (not by time) so they spread over the
        # whole completion run: the next press after a few more completions.
        while True:
            with lock:
                if completers_left[0] == 0 or len(answers) >= seen + 6:
                    break
            time.sleep(0.002)
        if completers_left[0] == 0:
            break


threads = [threading.Thread(target=completer, args=(p,)) for p in POPUGS]
threads += [threading.Thread(target=shuffler, args=("boss", 25)), threading.Thread(target=shuffler, args=("root", 10))]
for th in threads:
    th.start()
for th in threads:
    th.join(120)
t(not any(th.is_alive() for th in threads), "every thread finished")
t.eq(errors, [], "no exception and no bad list answer during the race")

statuses = [a[2] for a in answers]
t(all(s in (200, 403, 409) for s in statuses),
  "every completion answered 200, 403 or 409: %r" % sorted({s for s in statuses if s not in (200, 403, 409)}))
t(500 not in statuses, "never a 500 on complete")
t(all(st == 200 and isinstance(js, dict) and isinstance(js.get("reassigned"), int) for _, st, js in shuffles),
  "every shuffle answered 200 {reassigned}: %r" % [(st, js) for _, st, js in shuffles if st != 200][:3])
t(len(shuffles) >= 1, "at least one shuffle ran (%d)" % len(shuffles))
ok = [(p, i, js) for p, i, st, js in answers if st == 200]
t(all(js.get("assignee_id") == ids[p] and js.get("status") == "done" for p, i, js in ok),
  "each 200 completion names the completer as assignee")
t.eq(len({i for p, i, js in ok}), len(ok), "no task was completed twice")
print("race: %d completions (%d ok, %d 403, %d 409), %d shuffles reassigning %r" % (
    len(answers), len(ok), statuses.count(403), statuses.count(409), len(shuffles),
    [js.get("reassigned") for _, st, js in shuffles if st == 200]))

final = {x["id"]: x for x in list_pages(ates, ADMIN, "assignee=all", 500)[0]}
t.eq(len(final), N_TASKS, "still %d tasks" % N_TASKS)
done = {i: x for i, x in final.items() if x["status"] == "done"}
t.eq(len(ok), len(done), "the number of 200 completions equals the number of done tasks")
for p, i, js in ok:
    t.eq(final.get(i), js, "the row of a completed task equals its completion answer")
t(all(x["assignee_id"] in {ids[p] for p in POPUGS} for x in final.values()), "every assignee is a popug")

# --- the stream, once the outbox has drained
reassigned = sum(js["reassigned"] for _, st, js in shuffles if st == 200 and isinstance(js, dict))
want = 2 * N_TASKS + reassigned + len(done)
nc = fast_nats(nats.port)
wait_for(lambda: nc.stream_info("ATES_TASKS").get("state", {}).get("messages", 0) >= want, timeout=30,
         what="%d events in ATES_TASKS" % want)
msgs = nc.stream_msgs("ATES_TASKS")
nc.close()
t.eq(len(msgs), want, "ATES_TASKS holds 2 per task + one per reassignment + one per completion")
per_task, by_trace = {}, {}
for s, h, b in msgs:
    ev = json.loads(b)
    per_task.setdefault(ev["data"]["task_id"], []).append(ev)
    by_trace[ev["trace_id"]] = by_trace.get(ev["trace_id"], 0) + 1
t.eq(sorted(per_task), sorted(final), "events name exactly the tasks")
bad_completed, assigned_after, broken_chain, wrong_last, created_count = [], [], [], [], []
for i, evs in per_task.items():
    task = final.get(i, {})
    completed = [e for e in evs if e["event_name"] == "TaskCompleted"]
    if task.get("status") == "done":
        if len(completed) != 1 or completed[0]["data"]["assignee_id"] != task["assignee_id"] \
                or completed[0]["data"]["completed_at"] != task["completed_at"]:
            bad_completed.append((task.get("title"), task.get("assignee_id"), [e["data"] for e in completed]))
    elif completed:
        bad_completed.append((task.get("title"), "open", [e["data"] for e in completed]))
    names = [e["event_name"] for e in evs]
    if "TaskCompleted" in names and "TaskAssigned" in names[names.index("TaskCompleted"):]:
        assigned_after.append((task.get("title"), names))
    chain = [e["data"] for e in evs if e["event_name"] == "TaskAssigned"]
    prev = None
    for d in chain:
        if d["previous_assignee_id"] != prev:
            broken_chain.append((task.get("title"), d))
            break
        prev = d["assignee_id"]
    if prev != task.get("assignee_id"):
        wrong_last.append((task.get("title"), NAME.get(prev), NAME.get(task.get("assignee_id"))))
    if names.count("TaskCreated") != 1:
        created_count.append((task.get("title"), names))
t.eq(bad_completed[:3], [], "every done task has exactly one TaskCompleted naming its assignee (%d bad)"
     % len(bad_completed))
t.eq(assigned_after[:3], [], "no TaskAssigned after a task's TaskCompleted (%d bad)" % len(assigned_after))
t.eq(broken_chain[:3], [], "previous_assignee_id chains the assignments (%d broken)" % len(broken_chain))
t.eq(wrong_last[:3], [], "the last TaskAssigned names the current assignee (%d wrong)" % len(wrong_last))
t.eq(created_count[:3], [], "one TaskCreated per task")
for trace, st, js in shuffles:
    if st == 200:
        t.eq(by_trace.get(trace, 0), js.get("reassigned"), "shuffle %s: one TaskAssigned per reassigned task" % trace)

t.eq(ates.stop(), 0, "clean stop")
t.done()
