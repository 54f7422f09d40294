"""The job store (concd(8) DURABILITY): what survives kill -9 of concd while
clients submit at full speed, what each kind of job becomes at a restart,
ids never given out twice, a full disk, damaged and foreign databases, a
second concd on a directory in use, reading the store with sqlite3(1), and
the audit trail of accepted and finished jobs.

concd is killed on purpose here: those daemons say so with expect_exit(),
and the state directory outlives them, since the one that comes after it
starts on the same directory."""
import os
import random
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

import msgpack

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, CONCD, Daemon, frame  # noqa: E402

FINAL = ("succeeded", "failed", "cancelled", "timed_out")
KILLED = -signal.SIGKILL


def stored_state(state_dir, job):
    """The job's state as committed in the store, or None."""
    db = sqlite3.connect("file:%s/jobs.db?mode=ro" % state_dir, uri=True)
    try:
        row = db.execute("select state from jobs where id = ?",
                         (job,)).fetchone()
        return row[0] if row else None
    finally:
        db.close()


def wait_stored(state_dir, job, state, bound=BOUND):
    """Read the store until the job's row is in state: a commit is not an
    event a test can wait on, so this asks, within a bound."""
    deadline = time.monotonic() + bound
    while stored_state(state_dir, job) != state:
        if time.monotonic() > deadline:
            raise AssertionError("job %d not %s in the store within %ss "
                                 "(%r)" % (job, state, bound,
                                           stored_state(state_dir, job)))
        time.sleep(0.01)  # a file has no event to wait for


def alive(pid):
    return harness.proc_state(pid) not in (None, "Z")


def marked_pids(instance):
    """Every live process whose environment has CONCD_INSTANCE=instance."""
    marker = ("CONCD_INSTANCE=%s" % instance).encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if marker in env and alive(int(name)):
            pids.append(int(name))
    return pids


def until(get, n, what, bound=BOUND):
    """get() until it has n elements, within bound: what it returned."""
    deadline = time.monotonic() + bound
    while True:
        got = get()
        if len(got) == n:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %ss: %r"
                                 % (what, bound, [cmdline(p) for p in got]))
        time.sleep(0.01)  # /proc has no event to wait for


def kill_instance(instance):
    """SIGKILL what is left of the commands of instance: a test that fails
    before the restart leaves none behind."""
    for pid in marked_pids(instance):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def sleeps_of(instance):
    """The `sleep 1000` commands of instance."""
    return [p for p in marked_pids(instance)
            if cmdline(p) == [b"sleep", b"1000"]]


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[:-1]
    except OSError:
        return []


def ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return 0
    return int(stat[stat.rindex(")") + 2:].split()[1])


def descends_from(pid, ancestor):
    while pid > 1:
        if pid == ancestor:
            return True
        pid = ppid(pid)
    return False


# What the clients submit, in turn: jobs of the loop, of the thread pool
# and of the process pool, commands, short waits, and gathers of them.
SUBMITS = (
    dict(task="noop"),
    dict(task="noop", exec="thread"),
    dict(task="noop", exec="process"),
    dict(task="sleep", args={"ms": 1}),
    dict(task="noop"),
    dict(task="sleep", args={"ms": 2}, exec="thread"),
    dict(task="noop", exec="thread"),
    dict(task="exec", args={"argv": ["true"]}),
    dict(t="gather", jobs=[dict(task="noop"), dict(task="noop",
                                                   exec="thread"),
                           dict(task="sleep", args={"ms": 1})]),
)


class Submitter(threading.Thread):
    """A client on a connection of its own that submits as fast as concd
    answers: a burst of pipelined submits, then their replies, again, until
    the connection ends.  It keeps every id it saw in an accepted reply."""

    BURST = 64

    def __init__(self, path, counter):
        super().__init__(daemon=True)
        self.client = harness.Client(path)
        self.counter = counter
        self.seen = []
        self.errors = []
        self.ended = None

    def run(self):
        c = self.client
        k = 0
        try:
            while True:
                rids = []
                out = b""
                for _ in range(self.BURST):
                    rids.append(c.next_id)
                    out += frame(dict(dict(t="submit", id=c.next_id),
                                      **SUBMITS[k % len(SUBMITS)]))
                    c.next_id += 1
                    k += 1
                c.send_raw(out)
                answered = 0
                while answered < len(rids):
                    m = c.recv()
                    if m is None:
                        self.ended = "closed"
                        return
                    if m["t"] == "end":  # a gather's job: no reply
                        continue
                    answered += 1
                    if m["t"] == "accepted":
                        jobs = m["jobs"] if "jobs" in m else [m["job"]]
                        self.seen.extend(jobs)
                        self.counter.add(len(jobs))
                    else:
                        self.errors.append(m)
        except OSError as e:  # reset by the kill
            self.ended = repr(e)


class Counter:
    def __init__(self):
        self.n = 0
        self.cond = threading.Condition()

    def add(self, k):
        with self.cond:
            self.n += k
            self.cond.notify_all()

    def wait_for(self, n, bound=BOUND):
        with self.cond:
            if not self.cond.wait_for(lambda: self.n >= n, bound):
                raise AssertionError("only %d jobs accepted within %ss"
                                     % (self.n, bound))


class StoreTest(unittest.TestCase):
    def daemon(self, *args, state_dir=None, threads=2, killed=False):
        """A concd, closed after the test (before those started earlier),
        on state_dir if given."""
        if state_dir is not None:
            args = ("--state-dir", state_dir) + args
        d = Daemon(*args, threads=threads)
        self.addCleanup(d.close)
        if killed:
            d.expect_exit(KILLED)
        return d

    def kill9(self, d):
        d.expect_exit(KILLED)
        os.kill(d.proc.pid, signal.SIGKILL)
        self.assertEqual(d.proc.wait(BOUND), KILLED)

    def statuses(self, c, ids, chunk=512):
        """status of each id, pipelined: {id: reply}."""
        out = {}
        for i in range(0, len(ids), chunk):
            part = ids[i:i + chunk]
            rids = [(c.request("status", job=j), j) for j in part]
            for rid, j in rids:
                out[j] = c.recv_for(rid)
        return out

    def wait_idle(self, c, bound=BOUND):
        """Ask ps until no job is queued or running."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            ps = c.call("ps")
            if ps["total"] == 0:
                return
        raise AssertionError("jobs still live after %ss: %r"
                             % (bound, ps["counts"]))

    def start_fails(self, state_dir, *args):
        """concd on state_dir: it must exit 1 at its start, before READY;
        its stderr."""
        sock = os.path.join(os.path.dirname(state_dir), "other.sock")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        for name, options in harness.SANITIZER_OPTIONS.items():
            env[name] = options + (":" + env[name] if env.get(name) else "")
        p = subprocess.run([CONCD, "-f", "-s", sock, "-t", "1",
                            "--state-dir", state_dir] + list(args),
                           capture_output=True, text=True, timeout=BOUND,
                           env=env)
        self.assertEqual(p.returncode, 1, p.stderr)
        for r in harness.SANITIZER_REPORTS:
            self.assertNotIn(r, p.stderr)
        # and leaves no socket that no concd listens on
        self.assertFalse(os.path.exists(sock), "the socket was left")
        return p.stderr

    def private_state_dir(self):
        d = tempfile.mkdtemp(prefix="concd-state-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        return os.path.join(d, "state")


class Crash(StoreTest):
    def test_kill_9_under_load_loses_no_accepted_job_and_leaves_no_command(
            self):
        d = self.daemon("-p", "1", "--max-finished", "1000000", killed=True)
        c = d.client()
        # more commands at once than the CPUs, perhaps: the default group
        # gets no limit (concd(8) QUEUE)
        c.call("group", op="set", name="default", parallel=0)
        instance = harness.store_instance(d.state_dir)
        # after the restarted concd is closed
        self.addCleanup(kill_instance, instance)
        # one of them in a session of its own, away from its job's
        # process group: found by its environment all the same
        argvs = (["sleep", "1000"], ["sleep", "1000"],
                 ["sh", "-c", "setsid sleep 1000 & wait"])
        sleepers = [c.call("submit", task="exec", args={"argv": a})["job"]
                    for a in argvs]
        for j in sleepers:
            c.wait_state(j, "running")
            wait_stored(d.state_dir, j, "running")
        # the third sleep is forked by sh, through setsid: out of the
        # job's process group, which is sh's
        sleeps = until(lambda: sleeps_of(instance), 3,
                       "the three sleeps running")

        def parent(pid):
            with open("/proc/%d/stat" % pid) as f:
                return int(f.read().rsplit(")", 1)[1].split()[1])
        forked = [p for p in sleeps if os.getpgid(parent(p)) == parent(p)
                  and parent(p) != d.proc.pid]
        self.assertEqual(len(forked), 1, sleeps)
        self.assertNotEqual(os.getpgid(forked[0]),
                            os.getpgid(parent(forked[0])))
        counter = Counter()
        clients = [Submitter(d.socket, counter) for _ in range(4)]
        for t in clients:
            t.start()
        # under valgrind concd is some fifty times slower: fewer jobs
        load = 2000 if harness.VALGRIND else 20000
        counter.wait_for(load, BOUND * harness.SLOWDOWN)
        os.kill(d.proc.pid, signal.SIGKILL)
        self.assertEqual(d.proc.wait(BOUND), KILLED)
        for t in clients:
            t.join(BOUND)
            self.assertFalse(t.is_alive())
            t.client.close()
            self.assertEqual(t.errors, [])
        # the commands outlive a concd that was killed: they are what the
        # next one must find
        self.assertEqual(sorted(sleeps_of(instance)), sorted(sleeps))

        seen = sorted(sleepers + [j for t in clients for j in t.seen])
        self.assertEqual(len(seen), len(set(seen)), "an id seen twice")
        self.assertGreaterEqual(len(seen), load)

        d2 = self.daemon("-p", "1", "--max-finished", "1000000",
                         state_dir=d.state_dir)
        # sent SIGKILL before READY=1, with their process groups: gone
        # once the signal is through
        self.assertEqual(harness.store_instance(d.state_dir), instance)
        until(lambda: [p for p in sleeps if alive(p)], 0,
              "the old sleeps gone")
        until(lambda: [p for p in marked_pids(instance)
                       if not descends_from(p, d2.proc.pid)], 0,
              "no command of the old concd left")

        c = d2.client()
        new = c.call("submit", task="noop")
        self.assertEqual(new["t"], "accepted", new)
        self.assertGreater(new["job"], seen[-1])
        self.wait_idle(c)
        st = self.statuses(c, seen)
        missing = [j for j in seen if st[j]["t"] != "job"]
        self.assertEqual(missing, [], [st[j] for j in missing[:3]])
        unfinished = [j for j in seen if st[j]["state"] not in FINAL]
        self.assertEqual(unfinished, [])
        for j in sleepers:
            self.assertEqual((st[j]["state"], st[j]["error"],
                              st[j]["message"]),
                             ("failed", "interrupted",
                              "concd stopped while the job ran"))
        # the store agrees with what concd answers
        db = sqlite3.connect("file:%s/jobs.db?mode=ro" % d.state_dir,
                             uri=True)
        rows = dict(db.execute("select id, state from jobs"))
        db.close()
        self.assertEqual([j for j in seen if rows.get(j) not in FINAL], [])
        self.assertEqual(len(rows), len(set(rows)))


class Restart(StoreTest):
    def failing_between_attempts(self, d):
        """A job whose first attempt failed, waiting an hour to retry."""
        c = d.client()
        rid = c.request("submit", task="exec", retries=1,
                        retry_delay=3600000, watch=True,
                        args={"argv": ["sh", "-c", "exit 3"]})
        job = c.recv_for(rid)["job"]
        while c.recv_for(rid)["t"] != "retry":
            pass
        st = c.call("status", job=job)
        self.assertEqual((st["state"], st["attempt"]), ("queued", 2))
        return job

    def test_a_stop_leaves_a_job_between_attempts_queued_for_later(self):
        # the stop waited for its retry delay, up to --stop-timeout, and
        # then cut it off: cancelled, its retry lost
        state = self.private_state_dir()
        d = Daemon("--state-dir", state, "--stop-timeout", "600")
        job = self.failing_between_attempts(d)
        self.assertEqual(d.stop(), 0)
        self.assertIn("1 held, paused or scheduled jobs", d.log())
        d.close()
        d = self.daemon(state_dir=state)
        st = d.client().call("status", job=job)
        self.assertEqual((st["state"], st["attempt"]), ("queued", 2))
        self.assertGreater(st["at"], time.time() * 1e6 + 3000e6)

    def test_a_crash_keeps_the_retry_delay(self):
        # the delay was a timer alone: after a kill -9 the retry ran at
        # once
        state = self.private_state_dir()
        d = self.daemon(state_dir=state, killed=True)
        job = self.failing_between_attempts(d)
        self.kill9(d)
        d = self.daemon(state_dir=state)
        st = d.client().call("status", job=job)
        self.assertEqual((st["state"], st["attempt"]), ("queued", 2))
        self.assertGreater(st["at"], time.time() * 1e6 + 3000e6)

    def test_each_kind_of_job_comes_back_as_concd_8_says(self):
        args = ("-p", "0")
        d = self.daemon(*args, threads=1, killed=True)
        gate = d.gate()
        c = d.client()

        def submit(**fields):
            m = c.call("submit", **fields)
            self.assertEqual(m["t"], "accepted", m)
            return m["job"]

        def finished(**fields):
            rid = c.request("submit", watch=True, **fields)
            events = c.until_end(rid)
            self.assertEqual(events[-1]["t"], "end", events)
            return events[-1]

        # more commands at once than the CPUs, perhaps: the default group
        # gets no limit (concd(8) QUEUE)
        c.call("group", op="set", name="default", parallel=0)
        ok = finished(task="exec", args={"argv": ["echo", "hi"]})
        bad = finished(task="exec", args={"argv": ["false"]})
        # the thread pool's only thread, held; a second attempt is left
        retried = submit(task="exec", args={"argv": gate.argv},
                         exec="thread", retries=1)
        # on the loop, held, no attempt left
        cut = submit(task="exec", args={"argv": gate.argv})
        daemon_running = submit(task="exec", args={"argv": gate.argv},
                                daemon=True)
        # behind the held thread
        queued_held = submit(task="exec", args={"argv": gate.argv},
                             exec="thread")
        queued = submit(task="noop", exec="thread")
        daemon_queued = submit(task="noop", exec="thread", daemon=True)
        rid = c.request("submit", task="noop", exec="thread", watch=True)
        dropped = c.recv_for(rid)["job"]
        self.assertEqual(c.call("cancel", job=dropped)["t"], "ok")
        self.assertEqual(c.until_end(rid)[-1]["state"], "cancelled")
        for j in (retried, cut, daemon_running):
            wait_stored(d.state_dir, j, "running")
        for j in (queued_held, queued, daemon_queued):
            wait_stored(d.state_dir, j, "queued")
        before = c.call("ps", all=True)
        instance = harness.store_instance(d.state_dir)
        held = until(lambda: [p for p in marked_pids(instance)
                              if cmdline(p)[:2] == [b"sh", b"-c"]], 3,
                     "the three commands held by the gate")
        self.kill9(d)

        d2 = self.daemon(*args, state_dir=d.state_dir, threads=1)
        self.addCleanup(gate.release)  # before d2 stops
        # the commands of the jobs that ran, the daemon job's too, were
        # killed: none is left to read the gate
        until(lambda: [p for p in held if alive(p)], 0,
              "the old commands gone")
        c = d2.client()
        st = self.statuses(c, [retried, cut, daemon_running, queued_held,
                               queued, daemon_queued])
        self.assertEqual((st[cut]["state"], st[cut]["error"],
                          st[cut]["message"]),
                         ("failed", "interrupted",
                          "concd stopped while the job ran"))
        # the interrupted attempt counts: the second runs
        self.assertEqual(st[retried]["attempt"], 2)
        self.assertIn(st[retried]["state"], ("queued", "running"))
        for j in (daemon_running, daemon_queued):
            self.assertEqual((st[j]["state"], st[j]["error"],
                              st[j]["message"]),
                             ("cancelled", "cancelled",
                              "a daemon job ends with the concd that runs "
                              "it"))
        # queued jobs are queued again, in order, behind the held thread
        c.wait_state(queued_held, "running")
        self.assertEqual(c.call("status", job=queued)["state"], "queued")
        # the finished jobs, as they were
        for end in (ok, bad):
            s = c.call("status", job=end["job"])
            for k in ("state", "submitted", "started", "finished", "error",
                      "message"):
                self.assertEqual(s.get(k), end.get(k), k)
        self.assertEqual(c.call("result", job=ok["job"])["result"],
                         ok["result"])
        self.assertEqual(c.call("status", job=dropped)["state"], "cancelled")
        # ps --all lists every job, and concctl shows them
        after = c.call("ps", all=True)
        self.assertEqual([r["job"] for r in after["jobs"]],
                         [r["job"] for r in before["jobs"]])
        out = d2.concctl("ps", "--all").stdout
        for j in (ok["job"], bad["job"], cut, dropped):
            self.assertRegex(out, r"(?m)^\s*%d\s" % j)

        gate.release()
        for j in (retried, queued_held, queued):
            self.assertEqual(c.wait_state(j, *FINAL)["state"], "succeeded")
        self.assertEqual(c.call("status", job=retried)["attempt"], 2)
        self.assertGreater(c.call("submit", task="noop")["job"],
                           max(r["job"] for r in before["jobs"]))


    def test_queued_jobs_come_back_each_with_its_own_extra(self):
        """The start reads the live jobs and their extras in two walks,
        merged by id (store.c): an extra goes to its job alone, whatever
        the finished jobs with extras between them."""
        d = self.daemon(threads=1, killed=True)
        c = d.client()
        gate = d.gate()
        held = c.call("submit", task="exec", exec="thread",
                      args={"argv": gate.argv}, label="held")["job"]
        queued, labels = [], {}
        for i in range(40):
            if i % 10 == 3:  # ended, with an extra, among the queued
                e = c.call("submit", task="noop", label="done%d" % i)
                c.wait_state(e["job"], "succeeded")
            j = dict(task="noop", exec="thread")
            if i % 3 == 0:
                j["label"] = "q%d" % i
            if i % 7 == 5:
                j["priority"] = i
            m = c.call("submit", **j)
            queued.append(m["job"])
            labels[m["job"]] = (j.get("label"), j.get("priority", 0))
        for j in queued:
            wait_stored(d.state_dir, j, "queued")
        self.kill9(d)
        d2 = self.daemon(state_dir=d.state_dir, threads=1)
        c = d2.client()
        # they run once the held job is interrupted: what they carry came
        # with them from the start's walk
        for j, st in self.statuses(c, queued).items():
            self.assertEqual((st.get("label"), st.get("priority", 0)),
                             labels[j], st)
        self.assertEqual(c.call("status", job=held)["label"], "held")

    def test_a_large_queue_comes_back_whole_and_runs(self):
        """Past 65,536 rows a start asks for its heap in huge pages
        (recover.c): the jobs read before and after that point come back
        whole, and run in the order of their ids."""
        n = 70000
        args = ("-p", "0", "--queue-limit", "100000",
                "--max-finished", "100000")
        d = self.daemon(*args, threads=1, killed=True)
        c, other = d.client(), d.client()
        gate = d.gate()
        held = c.call("submit", task="exec", exec="thread",
                      args={"argv": gate.argv})["job"]
        other.send_raw(b"".join(
            frame(dict(t="submit", id=i + 1, task="primes", exec="thread",
                       args={"n": i % 1000}))
            for i in range(n)))
        ids = []
        for _ in range(n):
            m = other.recv()
            self.assertEqual(m["t"], "accepted", m)
            ids.append(m["job"])
        self.kill9(d)
        gate.release()
        d2 = self.daemon(*args, state_dir=d.state_dir, threads=1)
        d2.wait_log("recovery: %d jobs queued again, 1 interrupted" % n)
        c = d2.client()
        # 70,000 jobs one after another: under ASan on a loaded machine
        # they took 30 s
        self.wait_idle(c, bound=4 * BOUND)
        ps = c.call("ps", all=True, limit=0)
        self.assertEqual({k: v for k, v in ps["counts"].items() if v},
                         {"succeeded": n, "failed": 1}, ps)
        self.assertEqual(c.call("status", job=held)["error"], "interrupted")
        sieve = [True] * 1000
        pi = []
        for k in range(1000):
            sieve[k] = k >= 2 and all(k % p for p in range(2, k) if sieve[p])
            pi.append(sum(sieve[:k + 1]))
        picks = (0, 1, 999, 65535, 65536, 65537, n - 1)
        self.assertEqual([c.call("result", job=ids[k])["result"]
                          for k in picks], [pi[k % 1000] for k in picks])
        started = [c.call("status", job=ids[k])["started"] for k in picks]
        self.assertEqual(started, sorted(started))

    def test_a_burst_of_new_jobs_comes_back_field_by_field(self):
        # one gather: its rows go in one batch, the plain ones sixteen to a
        # statement (store.c), those with an extra (a label) one by one
        d = self.daemon(killed=True)
        c = d.client()
        jobs = []
        for i in range(75):
            j = dict(task="primes", args={"n": 100 + i}, exec="loop")
            if i % 20 == 7:
                j["label"] = "l%d" % i
            jobs.append(j)
        rid = c.request("gather", jobs=jobs)
        events = c.until_end(rid)
        ids = events[0]["jobs"]
        self.assertEqual(len(ids), 75)
        for j in ids:
            wait_stored(d.state_dir, j, "succeeded")
        before = self.statuses(c, ids)
        self.kill9(d)
        d2 = self.daemon(state_dir=d.state_dir)
        c = d2.client()
        after = self.statuses(c, ids)
        keys = ("job", "task", "state", "exec", "submitted", "started",
                "finished", "attempt", "label")
        for j in ids:
            self.assertEqual({k: after[j].get(k) for k in keys},
                             {k: before[j].get(k) for k in keys})
        self.assertEqual([after[j].get("label") for j in ids[7::20]],
                         ["l7", "l27", "l47", "l67"])
        self.assertEqual([c.call("result", job=j)["result"]
                          for j in ids[:3]], [25, 26, 26])
        # then rows that leave result, worker, tid, error and message
        # empty (queued behind the held threads), in the slots the rows
        # above filled: nothing of theirs stays
        rid = c.request("gather", jobs=[
            dict(task="primes", args={"n": 100}, exec="loop")] * 40)
        self.assertEqual(c.until_end(rid)[-1]["result"], 25)
        gate = d2.gate()
        self.addCleanup(gate.release)
        for _ in range(2):
            c.call("submit", task="exec", exec="thread",
                   args={"argv": gate.argv})
        # forty more, each submitted on its own: no reply waits for
        # their ends, which the store writes lazily, most in one batch
        body = b"".join(
            frame(dict(t="submit", id=c.next_id + i, task="primes",
                       args={"n": 200 + i}, exec="thread",
                       **({"label": "q%d" % i} if i in (3, 37) else {})))
            for i in range(40))
        rids = range(c.next_id, c.next_id + 40)
        c.next_id += 40
        c.send_raw(body)
        queued = [c.recv_for(r)["job"] for r in rids]
        for j in queued:
            wait_stored(d.state_dir, j, "queued")
        span = (queued[0], queued[-1])
        mine = ("select task, args, uid, requested, daemon, timeout_ms, "
                "retries, submitted from jobs where id >= ? and id <= ?")
        db = sqlite3.connect("file:%s/jobs.db?mode=ro" % d.state_dir,
                             uri=True)
        try:
            rows = db.execute(
                "select result, worker, tid, served, error, message, "
                "started, finished from jobs where id >= ? and id <= ?",
                span).fetchall()
            asked = db.execute(mine, span).fetchall()
        finally:
            db.close()
        self.assertEqual(rows, [(None,) * 8] * 40)
        self.assertEqual(len(set(a[1] for a in asked)), 40)
        # their rows are replaced by their ends, those of the plain ones
        # sixteen to a statement (store.c): what they asked stays
        gate.release()
        for j in queued:
            wait_stored(d.state_dir, j, "succeeded")
        db = sqlite3.connect("file:%s/jobs.db?mode=ro" % d.state_dir,
                             uri=True)
        try:
            self.assertEqual(db.execute(mine, span).fetchall(), asked)
            ends = db.execute(
                "select state, error, started <= finished, result, label"
                " from jobs left join extra using (id)"
                " where id >= ? and id <= ? order by id", span).fetchall()
        finally:
            db.close()
        primes = [c.call("result", job=j)["result"] for j in queued]
        self.assertEqual(primes[:3], [46, 46, 46])
        self.assertEqual(
            [e[:3] + (e[4],) for e in ends],
            [("succeeded", None, 1, "q%d" % i if i in (3, 37) else None)
             for i in range(40)])
        self.assertEqual([msgpack.unpackb(e[3]) for e in ends], primes)

    # request_cancel's `ok` waits, as `accepted` does, for the batch with
    # the cancelled row: killed in between, concd would run the job.
    def test_a_cancel_that_was_answered_survives_kill_9(self):
        # the 20,000 jobs run after the restart: retention must keep it
        args = ("-p", "0", "--queue-limit", "100000",
                "--max-finished", "100000")
        d = self.daemon(*args, threads=1, killed=True)
        gate = d.gate()
        c, other = d.client(), d.client()
        c.call("submit", task="exec", args={"argv": gate.argv},
               exec="thread")
        victim = c.call("submit", task="noop", exec="thread")["job"]
        wait_stored(d.state_dir, victim, "queued")
        # a large batch keeps the store's thread busy meanwhile
        other.send_raw(b"".join(
            frame(dict(t="submit", id=i + 1, task="noop", exec="thread"))
            for i in range(20000)))
        m = c.call("cancel", job=victim)
        self.assertEqual((m["t"], m["state"]), ("ok", "cancelled"))
        self.kill9(d)
        d2 = self.daemon(*args, state_dir=d.state_dir, threads=1)
        self.addCleanup(gate.release)
        st = d2.client().call("status", job=victim)
        self.assertEqual(st.get("state"), "cancelled", st)

    def test_a_hold_that_was_answered_survives_kill_9(self):
        args = ("-p", "0", "--queue-limit", "100000",
                "--max-finished", "100000")
        d = self.daemon(*args, threads=1, killed=True)
        c, other = d.client(), d.client()
        c.call("group", op="add", name="slow", parallel=1)
        gate = d.gate()
        c.call("submit", task="exec", args={"argv": gate.argv},
               group="slow")
        victim = c.call("submit", task="exec", args={"argv": ["true"]},
                        group="slow")["job"]
        wait_stored(d.state_dir, victim, "queued")
        # a large batch keeps the store's thread busy meanwhile
        other.send_raw(b"".join(
            frame(dict(t="submit", id=i + 1, task="noop", exec="thread"))
            for i in range(20000)))
        m = c.call("hold", job=victim)
        self.assertEqual((m["t"], m["held"]), ("ok", True), m)
        self.kill9(d)
        d2 = self.daemon(*args, state_dir=d.state_dir, threads=1)
        self.addCleanup(gate.release)
        gate.release()
        c2 = d2.client()
        st = c2.call("status", job=victim)
        self.assertEqual((st.get("state"), st.get("held")),
                         ("queued", True), st)

    def test_jobs_whose_executor_is_gone_end_as_their_kind_says(self):
        d = self.daemon("-p", "2", threads=1, killed=True)
        gate = d.gate()
        c = d.client()

        def submit(**fields):
            m = c.call("submit", **fields)
            self.assertEqual(m["t"], "accepted", m)
            return m["job"]

        held = dict(task="exec", args={"argv": gate.argv}, exec="process")
        running = submit(**held)
        daemon_running = submit(daemon=True, **held)
        for j in (running, daemon_running):
            wait_stored(d.state_dir, j, "running")
        queued = submit(task="noop", exec="process")
        daemon_queued = submit(task="noop", exec="process", daemon=True)
        for j in (queued, daemon_queued):
            wait_stored(d.state_dir, j, "queued")
        self.kill9(d)
        # no process pool now: none of them can run again
        d2 = self.daemon("-p", "0", state_dir=d.state_dir, threads=1)
        self.addCleanup(gate.release)
        st = self.statuses(d2.client(), [running, daemon_running, queued,
                                         daemon_queued])
        outcome = {j: (s["state"], s["error"], s["message"])
                   for j, s in st.items()}
        daemon_end = ("cancelled", "cancelled",
                      "a daemon job ends with the concd that runs it")
        self.assertEqual(outcome, {
            running: ("failed", "interrupted",
                      "concd stopped while the job ran"),
            daemon_running: daemon_end,
            queued: ("failed", "bad_executor",
                     "there are no worker processes (concd -p 0)"),
            daemon_queued: daemon_end,
        })

    def test_a_clean_stop_writes_the_end_of_every_job_it_drained(self):
        state = self.private_state_dir()
        d = Daemon("--state-dir", state, "-p", "0", "--max-finished",
                   "100000", threads=1)
        gate = d.gate()
        c = d.client()
        c.call("submit", task="exec", args={"argv": gate.argv},
               exec="thread")
        n = 20000
        c.send_raw(b"".join(
            frame(dict(t="submit", id=1000 + i, task="noop", exec="thread"))
            for i in range(n)))
        for i in range(n):
            self.assertEqual(c.recv_for(1000 + i)["t"], "accepted")
        # the stop drains them all: each end is written before concd exits
        d.close()
        with sqlite3.connect("file:%s/jobs.db?mode=ro" % state,
                             uri=True) as db:
            states = dict(db.execute(
                "select state, count(*) from jobs group by state"))
        db.close()
        self.assertEqual(states, {"succeeded": n + 1})

    def test_cancelling_a_job_only_the_store_holds_says_it_had_ended(self):
        state = self.private_state_dir()
        d = Daemon("--state-dir", state)
        c = d.client()
        held = c.call("submit", task="sleep", args={"ms": 1},
                      held=True)["job"]
        done = c.call("submit", task="noop")["job"]
        c.wait_state(done, "succeeded")
        self.assertNotIn("already", c.call("cancel", job=held))
        d.close()
        d2 = self.daemon(state_dir=state)
        c = d2.client()
        for job, st in ((held, "cancelled"), (done, "succeeded")):
            m = c.call("cancel", job=job)
            self.assertEqual((m["t"], m["state"], m.get("already")),
                             ("ok", st, True), m)
        r = d2.concctl("cancel", held, done)
        self.assertEqual((r.returncode, r.stdout),
                         (0, "job %d: already cancelled\n"
                          "job %d: already succeeded\n" % (held, done)))


    def test_holding_a_job_only_the_store_holds_is_refused_as_ended(self):
        # it was answered with the job's end, which concctl pause and
        # resume waited past for ever
        state = self.private_state_dir()
        d = Daemon("--state-dir", state)
        c = d.client()
        done = c.call("submit", task="noop")["job"]
        c.wait_state(done, "succeeded")
        d.close()
        d2 = self.daemon(state_dir=state)
        c = d2.client()
        for verb, what in (("hold", "held"), ("release", "released")):
            m = c.call(verb, job=done)
            self.assertEqual(
                (m["t"], m.get("error"), m.get("message")),
                ("error", "bad_field", "job %d has already ended "
                 "(succeeded): only a queued job can be %s" % (done, what)))
        for verb, what in (("pause", "held"), ("resume", "released")):
            r = d2.concctl(verb, done)
            self.assertEqual((r.returncode, r.stderr),
                             (4, "concctl: bad_field: job %d has already "
                              "ended (succeeded): only a queued job can "
                              "be %s\n" % (done, what)))


class Retention(StoreTest):
    def stored_rows(self, state_dir):
        db = sqlite3.connect("file:%s/jobs.db?mode=ro" % state_dir, uri=True)
        try:
            return dict(db.execute("select id, state from jobs"))
        finally:
            db.close()

    def test_the_store_keeps_the_newest_finished_jobs_and_the_live_ones(self):
        d = self.daemon("--max-finished", "5")
        c = d.client()
        gate = d.gate()
        old = c.call("submit", task="noop")["job"]
        c.wait_state(old, "succeeded")
        held = c.call("submit", task="exec", args={"argv": gate.argv})["job"]
        c.wait_state(held, "running")
        ended = [old]
        for _ in range(30):
            j = c.call("submit", task="noop")["job"]
            c.wait_state(j, "succeeded")
            ended.append(j)
        deadline = time.monotonic() + BOUND
        while True:
            wait_stored(d.state_dir, ended[-1], "succeeded")
            rows = self.stored_rows(d.state_dir)
            if sum(s == "succeeded" for s in rows.values()) <= 5:
                break
            # retention runs with a commit, at most every 50 ms
            self.assertLess(time.monotonic(), deadline, sorted(rows))
            j = c.call("submit", task="noop")["job"]
            c.wait_state(j, "succeeded")
            ended.append(j)
        self.assertEqual(sorted(j for j, s in rows.items()
                                if s == "succeeded"), ended[-5:])
        self.assertEqual(rows[held], "running")
        self.assertEqual(c.call("status", job=old)["error"], "no_such_job")
        gate.release()
        self.assertEqual(c.wait_state(held, "succeeded")["state"],
                         "succeeded")

    def test_a_job_past_finished_ttl_is_gone_once_another_finishes(self):
        # memory forgot it, but the store swept every 60 s alone: status
        # and log answered from it long past the ttl
        d = self.daemon("--finished-ttl", "1", "--max-finished", "1000000")
        c = d.client()
        rid = c.request("submit", task="exec", watch=True,
                        args={"argv": ["echo", "hello"]})
        old = c.until_end(rid)[-1]["job"]
        deadline = time.monotonic() + BOUND
        n = 0
        while c.call("status", job=old)["t"] == "job":
            self.assertLess(time.monotonic(), deadline, n)
            rid = c.request("submit", task="noop", watch=True)
            self.assertEqual(c.until_end(rid)[-1]["state"], "succeeded")
            n += 1
            time.sleep(0.05)  # a job a while: the ttl has no event
        self.assertEqual(c.call("status", job=old)["error"], "no_such_job")
        r = d.concctl("log", str(old))
        self.assertEqual(r.returncode, 4, r.stderr)

    def test_retention_catches_up_after_the_last_job(self):
        # a burst that ends within 50 ms of a trim left its excess in the
        # store until the next job came, which may never come; and more
        # than a batch deletes (4096) takes several
        d = self.daemon("--max-finished", "3")
        c = d.client()
        rids = [c.request("submit", task="noop", watch=True)
                for _ in range(9000)]
        ends = [c.until_end(r)[-1] for r in rids]
        self.assertEqual({e["state"] for e in ends}, {"succeeded"})
        ids = [e["job"] for e in ends]
        deadline = time.monotonic() + BOUND
        while True:
            rows = self.stored_rows(d.state_dir)
            if rows.get(ids[-1]) == "succeeded" and len(rows) <= 3:
                break
            self.assertLess(time.monotonic(), deadline, sorted(rows))
            time.sleep(0.01)  # polling the file: no event to wait for
        self.assertEqual(sorted(rows), ids[-3:])
        self.assertTrue(all(rows[j] == "succeeded" for j in ids[-3:]))
        r = d.concctl("ps", "--all", "-o", "id")
        self.assertEqual(r.stdout.split()[1:], [str(j) for j in ids[-3:]])


class Ids(StoreTest):
    def test_ids_go_on_across_a_clean_restart(self):
        state = self.private_state_dir()
        d = Daemon("--state-dir", state)
        c = d.client()
        ids = [c.call("submit", task="noop")["job"] for _ in range(5)]
        for j in ids:
            c.wait_state(j, "succeeded")
        d.close()
        d2 = self.daemon(state_dir=state)
        c = d2.client()
        self.assertEqual(c.call("status", job=ids[-1])["state"], "succeeded")
        self.assertGreater(c.call("submit", task="noop")["job"], ids[-1])

    def test_ids_go_on_when_retention_trimmed_every_job(self):
        state = self.private_state_dir()
        top = 0
        for _ in range(3):
            d = Daemon("--state-dir", state, "--max-finished", "0")
            c = d.client()
            for _ in range(3):
                rid = c.request("submit", task="noop", watch=True)
                events = c.until_end(rid)
                self.assertEqual(events[-1]["state"], "succeeded")
                self.assertGreater(events[-1]["job"], top)
                top = events[-1]["job"]
            d.close()
            with sqlite3.connect("file:%s/jobs.db?mode=ro" % state,
                                 uri=True) as db:
                rows = db.execute("select count(*) from jobs").fetchone()[0]
            self.assertEqual(rows, 0, "--max-finished 0 kept finished rows")
        self.assertEqual(top, 9)

    def test_a_stop_leaves_a_retention_backlog_to_the_next_concd(self):
        # 50,000 finished rows over --max-finished: the stop deletes at most
        # one batch of them (4,096) and does not keep systemd waiting
        state = self.private_state_dir()
        Daemon("--state-dir", state).close()
        now = int(time.time() * 1e6)
        path = os.path.join(state, "jobs.db")
        with sqlite3.connect(path) as db:
            db.executemany(
                "insert into jobs(id, task, uid, requested, exec, daemon, "
                "fresh, timeout_ms, retries, retry_delay_ms, attempt, state, "
                "submitted, finished) values (?, 'noop', 0, 'auto', 'loop', "
                "0, 0, 0, 0, 0, 1, 'succeeded', ?, ?)",
                ((i, now, now) for i in range(100, 50100)))
            db.execute("update meta set value = 50100 where key = 'next_id'")
        db.close()
        d = Daemon("--state-dir", state, "--max-finished", "0")
        self.assertEqual(d.client().call("ping")["t"], "pong")
        d.close()
        with sqlite3.connect("file:%s?mode=ro" % path, uri=True) as db:
            rows = db.execute("select count(*) from jobs").fetchone()[0]
        db.close()
        self.assertGreaterEqual(rows, 50000 - 4096)
        # the next concd goes on with it, a batch at a time
        d = Daemon("--state-dir", state, "--max-finished", "0")
        c = d.client()
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            c.call("submit", task="noop")
            with sqlite3.connect("file:%s?mode=ro" % path, uri=True) as db:
                rows = db.execute("select count(*) from jobs "
                                  "where id < 50100").fetchone()[0]
            db.close()
            if rows == 0:
                break
        self.assertEqual(rows, 0)
        d.close()

    # ps (without --all) and status answer from the job table, where a
    # job has its id before its batch is committed; killed then, concd
    # goes on from the id reservation the store keeps ahead, not from the
    # last id committed.
    def test_an_id_another_client_saw_is_not_given_again(self):
        args = ("-p", "0", "--queue-limit", "100000")
        d = self.daemon(*args, threads=1, killed=True)
        gate = d.gate()
        a, b, other = d.client(), d.client(), d.client()
        a.call("submit", task="exec", args={"argv": gate.argv},
               exec="thread")
        # a large batch keeps the store's thread busy meanwhile
        other.send_raw(b"".join(
            frame(dict(t="submit", id=i + 1, task="noop", exec="thread"))
            for i in range(20000)))
        self.assertEqual(other.recv()["t"], "accepted")
        a.request("submit", task="sleep", args={"ms": 1}, exec="thread")
        deadline = time.monotonic() + BOUND
        while True:
            jobs = b.call("ps", task="sleep")["jobs"]
            if jobs:
                break
            self.assertLess(time.monotonic(), deadline)
        seen = jobs[0]["job"]
        self.kill9(d)
        d2 = self.daemon(*args, state_dir=d.state_dir, threads=1)
        self.addCleanup(gate.release)
        new = d2.client().call("submit", task="noop")
        self.assertGreater(new["job"], seen)

    def test_ids_go_on_after_kill_9_with_every_job_trimmed(self):
        d = self.daemon("--max-finished", "0", killed=True)
        c = d.client()
        for _ in range(3):
            rid = c.request("submit", task="noop", watch=True)
            top = c.until_end(rid)[-1]["job"]
        self.kill9(d)
        d2 = self.daemon("--max-finished", "0", state_dir=d.state_dir)
        self.assertGreater(d2.client().call("submit", task="noop")["job"],
                           top)


JOURNAL_MAGIC = 0x4E524A43  # "CJRN", daemon/journal.c
JOURNAL_HEAD = struct.Struct("<IIIIQ")  # magic, length, crc, 0, seq


def journal_records(path):
    """The whole records of a journal file: [(seq, payload)]."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off + JOURNAL_HEAD.size <= len(data):
        magic, n, crc, _, seq = JOURNAL_HEAD.unpack_from(data, off)
        body = data[off + JOURNAL_HEAD.size:off + JOURNAL_HEAD.size + n]
        if magic != JOURNAL_MAGIC or len(body) != n:
            break
        out.append((seq, body))
        off += JOURNAL_HEAD.size + n
    return out


def journal_record(seq, payload):
    """A record as concd writes one, with its checksum."""
    crc = zlib.crc32(struct.pack("<Q", seq) + payload)
    return JOURNAL_HEAD.pack(JOURNAL_MAGIC, len(payload), crc, 0,
                             seq) + payload


class Journal(StoreTest):
    """An accepted job is in the journal before SQLite has it (concd(8)
    DURABILITY): SQLite held locked by another writer shows it."""

    def lock_sqlite(self, d, c, **submit):
        """A first job (a noop, or submit's) in d's SQLite, then SQLite
        locked by another writer, concd's commits waiting: (that job, the
        connection)."""
        first = c.call("submit", **(submit or {"task": "noop"}))["job"]
        c.wait_state(first, "succeeded")
        wait_stored(d.state_dir, first, "succeeded")
        db = sqlite3.connect(os.path.join(d.state_dir, "jobs.db"),
                             timeout=BOUND, isolation_level=None)
        self.addCleanup(db.close)
        db.execute("BEGIN IMMEDIATE")
        return first, db

    def locked_run(self):
        """A concd whose SQLite another connection keeps locked while
        jobs are accepted, then killed with -9: (state_dir, ids)."""
        d = self.daemon(killed=True)
        c = d.client()
        first, db = self.lock_sqlite(d, c)
        ids = []
        for _ in range(20):
            m = c.call("submit", task="noop")
            self.assertEqual(m["t"], "accepted", m)
            ids.append(m["job"])
        for j in ids:
            c.wait_state(j, "succeeded")
        self.assertEqual(db.execute("select count(*) from jobs where id > ?",
                                    (first,)).fetchone(), (0,))
        journal = os.path.join(d.state_dir, "jobs.journal")
        self.assertGreater(os.path.getsize(journal), 0)
        self.kill9(d)
        db.rollback()
        return d.state_dir, [first] + ids

    def test_jobs_accepted_while_sqlite_is_locked_come_back_from_it(self):
        state, ids = self.locked_run()
        journal = os.path.join(state, "jobs.journal")
        # a record cut short by the crash, after the whole ones
        with open(journal, "ab") as f:
            f.write(journal_record(10 ** 6, b"x" * 100)[:60])
        d = self.daemon(state_dir=state)
        d.wait_log("records of its journal written")
        d.wait_log("not a whole record")
        st = self.statuses(d.client(), ids)
        self.assertEqual({j: s.get("state") for j, s in st.items()},
                         {j: "succeeded" for j in ids})
        with sqlite3.connect(os.path.join(state, "jobs.db")) as db:
            self.assertEqual(db.execute("select count(*) from jobs")
                             .fetchone(), (len(ids),))
        db.close()
        # begun anew: what it held is in SQLite
        self.assertEqual(os.path.getsize(journal), 0)
        m = d.client().call("submit", task="noop")
        self.assertGreater(m["job"], max(ids))

    def test_a_read_that_waits_for_sqlite_holds_up_no_one_else(self):
        """ps --all reads SQLite once it has what the job table holds
        (request.c, request_store_ready): while another program keeps
        SQLite locked, the request waits and concd serves everyone else;
        unlocked, the read has every job."""
        d = self.daemon()
        c, other = d.client(), d.client()
        first, db = self.lock_sqlite(d, c)
        later = c.call("submit", task="noop")["job"]
        c.wait_state(later, "succeeded")
        rid = c.request("ps", all=True)
        ping = c.request("ping")  # waits behind it, on its connection
        # a client that goes away while its read waits
        gone = d.client()
        gone.request("ps", all=True)
        gone.sock.close()
        self.assertEqual(other.call("ping")["t"], "pong")
        self.assertEqual(other.call("status", job=later)["state"],
                         "succeeded")
        # and the read's reply has not come (before, concd stopped for
        # SQLite's busy timeout, then answered without the later job)
        self.assertEqual(select.select([c.sock], [], [], 0)[0], [])
        db.rollback()
        ps = c.recv()
        self.assertEqual((ps["t"], ps["id"]), ("jobs", rid), ps)
        self.assertEqual(sorted(j["job"] for j in ps["jobs"]),
                         [first, later])
        self.assertEqual(c.recv(), {"t": "pong", "id": ping})
        self.assertEqual(other.call("ping")["t"], "pong")

    def test_a_submit_after_a_job_only_sqlite_has_waits_for_it(self):
        """After a restart a finished job is only in SQLite: a submit that
        runs after it waits, with SQLite locked, for the rows the journal
        holds (a row retention let go of could be among them), serving
        everyone else, then is accepted and runs."""
        d = self.daemon(killed=True)
        first = d.client().call("submit", task="noop")["job"]
        wait_stored(d.state_dir, first, "succeeded")
        self.kill9(d)
        state = d.state_dir
        d = self.daemon(state_dir=state)
        c, waiter, other = d.client(), d.client(), d.client()
        db = sqlite3.connect(os.path.join(state, "jobs.db"),
                             timeout=BOUND, isolation_level=None)
        self.addCleanup(db.close)
        db.execute("BEGIN IMMEDIATE")
        later = c.call("submit", task="noop")["job"]
        c.wait_state(later, "succeeded")
        rid = waiter.request("submit", task="noop", after=[first])
        self.assertEqual(other.call("ping")["t"], "pong")
        self.assertEqual(select.select([waiter.sock], [], [], 0)[0], [])
        db.rollback()
        m = waiter.recv_for(rid)
        self.assertEqual(m["t"], "accepted", m)
        self.assertEqual(waiter.wait_state(m["job"], "succeeded")["state"],
                         "succeeded")

    def test_a_clean_waits_for_sqlite_and_holds_up_no_one_else(self):
        """clean writes SQLite from the loop: it first waits, as a read
        does, for what the journal holds; while SQLite stays locked past
        the thread's 5 s it is refused, nothing forgotten."""
        d = self.daemon()
        c, other = d.client(), d.client()
        first, db = self.lock_sqlite(d, c)
        later = c.call("submit", task="noop")["job"]
        c.wait_state(later, "succeeded")
        rid = c.request("clean")
        self.assertEqual(other.call("ping")["t"], "pong")
        self.assertEqual(select.select([c.sock], [], [], 0)[0], [])
        db.rollback()
        m = c.recv_for(rid)
        self.assertEqual((m["t"], m.get("forgotten")), ("ok", 2), m)
        self.assertEqual(c.call("ps", all=True)["total"], 0)
        # locked until the thread gives up: a clear error, nothing gone
        done = c.call("submit", task="noop")["job"]
        c.wait_state(done, "succeeded")
        wait_stored(d.state_dir, done, "succeeded")
        db.execute("BEGIN IMMEDIATE")
        again = c.call("submit", task="noop")["job"]
        c.wait_state(again, "succeeded")
        m = c.call("clean")
        self.assertEqual((m["t"], m.get("error")), ("error", "store_failed"),
                         m)
        self.assertIn("nothing was cleaned", m["message"])
        self.assertEqual(other.call("status", job=done)["state"],
                         "succeeded")
        db.rollback()

    def test_a_clean_while_sqlite_is_locked_is_refused_forgetting_nothing(self):
        """With nothing for SQLite to get, a clean went on to its DELETE,
        which waited on the loop for another program's lock, SQLite's
        5 s, serving no one; then it failed, having forgotten the jobs in
        memory and their logs, SQLite keeping the jobs.  Now it is refused
        at once, nothing forgotten."""
        d = self.daemon()
        c = d.client()
        job, db = self.lock_sqlite(d, c, task="exec",
                                   args={"argv": ["echo", "kept"]})
        m = c.call("clean")
        self.assertEqual((m["t"], m.get("error")), ("error", "store_failed"),
                         m)
        self.assertIn("locked", m["message"])
        self.assertIn("nothing was cleaned", m["message"])
        self.assertIn("locked by another program", d.log())
        rid = c.request("log", job=job)
        m = c.recv_for(rid)
        self.assertEqual((m["t"], m.get("data")), ("output", b"kept\n"), m)
        self.assertEqual(c.recv_for(rid)["t"], "ok")
        db.rollback()
        m = c.call("clean")
        self.assertEqual((m["t"], m.get("forgotten")), ("ok", 1), m)
        self.assertEqual(c.call("ps", all=True)["total"], 0)

    def test_jobs_that_changed_while_sqlite_waited_get_their_last_rows(self):
        """SQLite gets a job's newest row alone of those a chain holds
        (store.c): inserted for a job new to it, replacing the row it has
        for one it had; the extras and the ends are the last ones."""
        d = self.daemon()
        c = d.client()
        gate = d.gate()
        # in SQLite as running before the lock; it ends behind it
        before = c.call("submit", task="exec", args={"argv": gate.argv},
                        label="before")["job"]
        wait_stored(d.state_dir, before, "running")
        db = sqlite3.connect(os.path.join(d.state_dir, "jobs.db"),
                             timeout=BOUND, isolation_level=None)
        self.addCleanup(db.close)
        db.execute("BEGIN IMMEDIATE")
        # new while SQLite waits: queued, running, then ended
        failed = c.call("submit", task="exec", label="three",
                        args={"argv": ["sh", "-c", "exit 3"]})["job"]
        held = c.call("submit", task="exec", args={"argv": gate.argv},
                      label="held")["job"]
        after = c.call("submit", task="noop", after=[held])["job"]
        plain = [c.call("submit", task="noop")["job"] for _ in range(20)]
        for j in plain:
            c.wait_state(j, "succeeded")
        c.wait_state(failed, "failed")
        c.wait_state(held, "running")
        gate.release()
        for j in (before, held, after):
            c.wait_state(j, "succeeded")
        journal = os.path.join(d.state_dir, "jobs.journal")
        self.assertGreater(os.path.getsize(journal), 0)
        db.rollback()
        wait_stored(d.state_dir, after, "succeeded")
        rows = dict((r[0], r[1:]) for r in db.execute(
            "select id, state, attempt, label, exit, after from jobs "
            "left join extra using (id) where id >= ?", (before,)))
        self.assertEqual(rows[before], ("succeeded", 1, "before", 0, None))
        self.assertEqual(rows[failed], ("failed", 1, "three", 3, None))
        self.assertEqual(rows[held], ("succeeded", 1, "held", 0, None))
        self.assertEqual(rows[after], ("succeeded", 1, None, None, str(held)))
        for j in plain:
            self.assertEqual(rows[j], ("succeeded", 1, None, None, None))
        self.assertEqual(len(rows), 24)
        # and the store goes on: nothing blocked it
        m = c.call("submit", task="noop")
        self.assertEqual(m["t"], "accepted", m)
        wait_stored(d.state_dir, m["job"], "succeeded")

    def test_a_job_that_runs_on_is_accepted_while_sqlite_waits(self):
        """A job that runs past the commit delay is accepted once its row
        is in the journal, not once the store's thread has written the
        chain before: concd held such rows while the thread wrote, and a
        locked SQLite kept the reply until the thread gave up."""
        d = self.daemon()
        c = d.client()
        gate = d.gate()
        _, db = self.lock_sqlite(d, c)
        # more rows than a chain waits for (512): by the time the last end
        # is here, the thread has a chain and waits on the lock
        rids = [c.request("submit", task="noop", watch=True)
                for _ in range(600)]
        for rid in rids:
            e = c.until_end(rid)[-1]
            self.assertEqual(e.get("state"), "succeeded", e)
        m = c.call("submit", task="exec", exec="thread",
                   args={"argv": gate.argv})
        self.assertEqual(m["t"], "accepted", m)
        # it came before the thread gave up on the lock
        self.assertNotIn("cannot write", d.log())
        db.rollback()
        gate.release()
        self.assertEqual(c.wait_state(m["job"], *FINAL)["state"],
                         "succeeded")
        wait_stored(d.state_dir, m["job"], "succeeded")

    def test_the_first_jobs_after_a_start_are_accepted_while_sqlite_waits(
            self):
        """The ids a start reserves ahead are journaled with the first
        job's batch, not committed to SQLite before it (job_reserve_id):
        concd waited for a locked SQLite, gave up after its busy timeout
        and refused the jobs after the first."""
        state = self.private_state_dir()
        Daemon("--state-dir", state).close()
        db = sqlite3.connect(os.path.join(state, "jobs.db"),
                             timeout=BOUND, isolation_level=None)
        self.addCleanup(db.close)
        d = self.daemon(state_dir=state, killed=True)
        c = d.client()
        db.execute("BEGIN IMMEDIATE")
        ids = []
        for _ in range(3):
            m = c.call("submit", task="noop")
            self.assertEqual(m["t"], "accepted", m)
            ids.append(m["job"])
        self.assertNotIn("cannot write", d.log())
        for j in ids:
            c.wait_state(j, "succeeded")
        # the journal has them, and the reservation: a crash keeps both
        self.kill9(d)
        db.rollback()
        d2 = self.daemon(state_dir=state)
        c = d2.client()
        for j, st in self.statuses(c, ids).items():
            self.assertEqual(st["state"], "succeeded", st)
        self.assertGreater(c.call("submit", task="noop")["job"], max(ids))

    def test_a_flood_waits_once_sqlite_is_far_behind_the_journal(self):
        """What the journal holds and SQLite has yet to get is bounded
        (262,144 rows): past it, replies wait for SQLite. With SQLite
        locked, the last of 300,000 pipelined no-ops is accepted only once
        the store's thread gives up on the lock (its 'cannot write');
        concd took them all into memory before that."""
        d = self.daemon()
        c = d.client()
        _, db = self.lock_sqlite(d, c)
        n = 300000
        chunks = [b"".join(frame(dict(t="submit", id=1000 + i, task="noop"))
                           for i in range(k, k + 10000))
                  for k in range(0, n, 10000)]
        # concd reads no more from a client whose replies pile up
        sender = threading.Thread(target=lambda: [c.send_raw(b)
                                                  for b in chunks])
        sender.start()
        replies = [c.recv_for(1000 + i) for i in range(n)]
        sender.join()
        # the last reply waited for the thread to give up (how many were
        # accepted by then depends on the machine's speed: 230,000 under
        # TSan, where the flood is slower than the thread's 5 s)
        self.assertIn("cannot write", d.log())
        accepted = [m["job"] for m in replies if m["t"] == "accepted"]
        refused = [m for m in replies if m["t"] != "accepted"]
        self.assertGreater(len(accepted), 0)
        for m in refused:
            self.assertEqual(m.get("error"), "store_failed", m)
        db.rollback()
        # SQLite gets it all once it can (the oldest go with retention),
        # and new jobs are taken again at the next retry
        wait_stored(d.state_dir, max(accepted), "succeeded")
        deadline = time.monotonic() + BOUND
        while c.call("submit", task="noop")["t"] != "accepted":
            self.assertLess(time.monotonic(), deadline)

    def test_a_record_of_ids_alone_is_read_back(self):
        """A batch with no rows, only the ids reserved ahead (as the first
        submit after a start makes): its record has no data at all."""
        state, ids = self.locked_run()
        journal = os.path.join(state, "jobs.journal")
        seq, body = journal_records(journal)[-1]
        kind, layout = struct.unpack_from("<II", body)
        self.assertEqual(kind, 1)
        ahead = max(ids) + 1000
        with open(journal, "ab") as f:
            f.write(journal_record(seq + 1, struct.pack(
                "<IIQQQQQ", 1, layout, ahead, 0, 0, 0, 0)))
        d = self.daemon(state_dir=state)
        d.wait_log("records of its journal written")
        m = d.client().call("submit", task="noop")
        self.assertEqual(m["t"], "accepted", m)
        self.assertGreaterEqual(m["job"], ahead)

    def test_a_journal_left_by_the_concd_of_schema_3_is_read_back(self):
        """An upgrade after a crash: the journal of the concd before
        (schema 3, rows without runtime, extras and groups laid out as
        now) is written to SQLite by this one.  Its records are this
        build's with the schema 3 layout word."""
        d = self.daemon(killed=True)
        c = d.client()
        first, db = self.lock_sqlite(d, c)
        ids = []
        for i in range(4):
            m = c.call("submit", task="noop", label="kept %d" % i,
                       cwd="/tmp", priority=3, umask=0o027)
            self.assertEqual(m["t"], "accepted", m)
            ids.append(m["job"])
        for j in ids:
            c.wait_state(j, "succeeded")
        self.kill9(d)
        db.rollback()
        journal = os.path.join(d.state_dir, "jobs.journal")
        records = journal_records(journal)
        self.assertGreater(len(records), 0)
        # where schema 4 has the umask, schema 3 had the standard input's
        # pipe, which a replay must not take for one
        with open(journal, "wb") as f:
            for seq, body in records:
                kind, layout = struct.unpack_from("<II", body)
                f.write(journal_record(seq, struct.pack(
                    "<II", kind, 3 << 24 | layout & 0xffffff) + body[8:]))
        d = self.daemon(state_dir=d.state_dir)
        d.wait_log("records of its journal written")
        st = self.statuses(d.client(), ids)
        for i, j in enumerate(ids):
            self.assertEqual((st[j]["state"], st[j]["label"], st[j]["cwd"],
                              st[j]["priority"]),
                             ("succeeded", "kept %d" % i, "/tmp", 3))
            self.assertNotIn("umask", st[j])

    def test_an_exec_jobs_umask_and_run_time_come_back_from_the_journal(
            self):
        d = self.daemon(killed=True)
        c = d.client()
        first, db = self.lock_sqlite(d, c)
        job = c.call("submit", task="exec", args={"argv": ["true"]},
                     umask=0o027)["job"]
        ran = c.wait_state(job, "succeeded")["runtime"]
        # an end alone waits up to 10 ms to be journaled (concd(8)); a
        # new job's accepted reply waits for the batch that holds it
        self.assertEqual(c.call("submit", task="noop")["t"], "accepted")
        self.kill9(d)
        db.rollback()
        state = d.state_dir
        d = self.daemon(state_dir=state)
        d.wait_log("records of its journal written")
        st = d.client().call("status", job=job)
        # and its run time, the last field of a row's record
        self.assertEqual((st["state"], st["umask"], st["runtime"]),
                         ("succeeded", 0o027, ran))
        self.assertEqual(d.stop(), 0)
        with sqlite3.connect(os.path.join(state, "jobs.db")) as db:
            self.assertEqual(db.execute("select umask from extra where id = ?",
                                        (job,)).fetchone(), (0o027,))
        db.close()

    def test_a_damaged_record_is_a_clear_error_or_read_never_a_crash(self):
        state, ids = self.locked_run()
        journal = os.path.join(state, "jobs.journal")
        # the last with rows: a batch that only sweeps has none past its
        # 48-byte head
        records = [r for r in journal_records(journal) if len(r[1]) > 48]
        self.assertGreater(len(records), 0)
        seq, body = records[-1]
        rnd = random.Random(13)
        for i in range(12):
            b = bytearray(body)
            for _ in range(1 + i % 3):
                b[rnd.randrange(48, len(b))] = rnd.getrandbits(8)
            with open(journal, "wb") as f:
                f.write(journal_record(seq, bytes(b)))
            try:
                d = Daemon("--state-dir", state)
            except AssertionError as e:
                self.assertIn("cannot be read back", str(e))
                for r in harness.SANITIZER_REPORTS:
                    self.assertNotIn(r, str(e))
                continue
            d.close()
        # a record of another layout (another build's)
        with open(journal, "wb") as f:
            f.write(journal_record(seq, b"\0" * 48))
        err = self.start_fails(state)
        self.assertIn(journal, err)
        self.assertIn("cannot be read back: written by another build of "
                      "concd (layout 0;", err)


class BadStore(StoreTest):
    def test_a_corrupt_database_is_a_clear_error_at_start(self):
        state = self.private_state_dir()
        os.makedirs(state)
        rnd = random.Random(11)
        for size in (100, 4096, 65536):
            with open(os.path.join(state, "jobs.db"), "wb") as f:
                f.write(bytes(rnd.getrandbits(8) for _ in range(size)))
            err = self.start_fails(state)
            self.assertIn(os.path.join(state, "jobs.db"), err)
            self.assertIn("not a concd job store, or a damaged one", err)

    def test_a_damaged_store_of_concd_is_a_clear_error_at_start(self):
        state = self.private_state_dir()
        d = Daemon("--state-dir", state)
        c = d.client()
        for _ in range(50):
            c.call("submit", task="noop")
        d.close()
        path = os.path.join(state, "jobs.db")
        with open(path, "r+b") as f:
            f.seek(4096)  # past the header page: the tables' pages
            f.write(b"\xa5" * (os.path.getsize(path) - 4096))
        err = self.start_fails(state)
        self.assertIn(path, err)

    def test_a_store_damaged_under_its_queued_jobs_is_an_error_at_start(self):
        # a page of the extras zeroed: concd started, ran the held jobs
        # past the damage without their hold, and served on; random
        # damage to the jobs lost the queued jobs past it
        state = self.private_state_dir()
        d = Daemon("-p", "0", "--state-dir", state)
        c = d.client()
        mark = os.path.join(os.path.dirname(state), "ran")
        for i in range(300):
            m = c.call("submit", task="exec", held=True,
                       args={"argv": ["sh", "-c", "echo >> " + mark,
                                      "x" * 1000]})
            self.assertEqual(m["t"], "accepted", m)
        d.close()
        path = os.path.join(state, "jobs.db")
        db = sqlite3.connect(path)
        pages = [p for (p,) in db.execute(
            "select pageno from dbstat where name = 'extra' and "
            "pagetype = 'leaf' order by pageno")]
        db.close()
        self.assertGreater(len(pages), 10)
        with open(path, "r+b") as f:
            f.seek((pages[len(pages) // 2] - 1) * 4096)
            f.write(b"\0" * 4096)
        err = self.start_fails(state, "-p", "0")
        self.assertIn("recovery: %s cannot be read in full" % path, err)
        self.assertFalse(os.path.exists(mark), "a held job ran")

    def test_a_journal_that_is_not_one_is_a_clear_error_at_start(self):
        state = self.private_state_dir()
        Daemon("--state-dir", state).close()
        journal = os.path.join(state, "jobs.journal")
        with open(journal, "wb") as f:
            f.write(b"not what concd writes, " * 10)
        err = self.start_fails(state)
        self.assertIn(journal, err)
        self.assertIn("not a journal of concd's job store", err)
        # and left as it was, for its owner to look at
        with open(journal, "rb") as f:
            self.assertEqual(f.read(), b"not what concd writes, " * 10)

    def test_another_applications_database_is_refused(self):
        state = self.private_state_dir()
        os.makedirs(state)
        path = os.path.join(state, "jobs.db")
        with sqlite3.connect(path) as db:
            db.execute("create table notes(id integer primary key, text)")
            db.execute("insert into notes(text) values ('mine')")
        db.close()
        err = self.start_fails(state)
        self.assertIn(path, err)
        self.assertIn("not a concd job store", err)
        # and it is left as it was
        with sqlite3.connect(path) as db:
            self.assertEqual(db.execute("select text from notes").fetchall(),
                             [("mine",)])
        db.close()

    def test_a_store_this_concd_cannot_read_is_named_with_why(self):
        state = self.private_state_dir()
        path = os.path.join(state, "jobs.db")

        def concd_db(version, sql):
            with sqlite3.connect(path) as db:
                db.execute("pragma application_id = %d" % 0x636f6e63)
                db.execute("pragma user_version = %d" % version)
                db.execute(sql)
            db.close()

        cases = (
            (lambda: os.makedirs(path),
             "%s: unable to open database file" % path),
            (lambda: concd_db(99, "create table jobs(x)"),
             "%s: job store of schema 99, this concd reads schema 4"
             % path),
            (lambda: concd_db(1, "create table jobs(x)"),
             "%s: damaged job store: no next id" % path),
        )
        for make, message in cases:
            shutil.rmtree(state, ignore_errors=True)
            os.makedirs(state)
            make()
            self.assertIn(message, self.start_fails(state))

    def dying(self, state_dir, sock=None):
        """A stand-in for a concd killed a moment ago, whose process the
        kernel has not yet taken apart: it holds state_dir's lock (and
        listens on sock, never accepting) until a new concd comes for
        them (opens the lock file, or connects), then is gone."""
        os.makedirs(state_dir, exist_ok=True)
        p = subprocess.Popen(
            [sys.executable, "-c", DYING, state_dir, sock or ""],
            stdout=subprocess.PIPE, text=True)
        self.addCleanup(p.wait, BOUND)
        self.addCleanup(p.stdout.close)
        self.assertEqual(p.stdout.readline(), "holding\n")
        return p

    def test_a_concd_started_as_a_killed_one_dies_takes_its_place(self):
        # kill -9 $(pidof concd); concd ...: the new one may start while
        # the old one's socket and lock are still held
        base = tempfile.mkdtemp(prefix="concd-test-")
        self.addCleanup(shutil.rmtree, base, ignore_errors=True)
        state, sock = os.path.join(base, "state"), os.path.join(base, "s")
        old = self.dying(state, sock)
        d = Daemon("--state-dir", state, socket_path=sock)
        self.addCleanup(d.close)
        self.assertEqual(old.wait(BOUND), 0)
        self.assertEqual(d.client().call("ping")["t"], "pong")
        self.assertEqual(d.client().call("submit", task="noop")["t"],
                         "accepted")

    def test_a_store_whose_lock_a_dying_concd_holds_is_taken_once_free(self):
        # the killed concd listened elsewhere: only its lock is in the way
        state = self.private_state_dir()
        old = self.dying(state)
        d = self.daemon(state_dir=state)
        self.assertEqual(old.wait(BOUND), 0)
        self.assertEqual(d.client().call("ping")["t"], "pong")

    def test_a_second_concd_on_a_directory_in_use_is_refused(self):
        d = self.daemon()
        err = self.start_fails(d.state_dir)
        self.assertIn("state directory %s is in use by another concd "
                      "(pid %d)" % (d.state_dir, d.proc.pid), err)
        # the first one is untouched
        self.assertEqual(d.client().call("ping")["t"], "pong")


# The dying concd of BadStore.dying: argv state_dir, socket path or "".
DYING = r"""
import ctypes, fcntl, os, select, socket, sys
state, path = sys.argv[1], sys.argv[2]
lock = os.path.join(state, "concd.lock")
fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b"%d\n" % os.getpid())
libc = ctypes.CDLL(None, use_errno=True)
ino = libc.inotify_init1(os.O_CLOEXEC)
assert ino >= 0 and libc.inotify_add_watch(ino, lock.encode(), 0x20) >= 0
waits = [ino]
if path:
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(8)
    waits = [s]
print("holding", flush=True)
# the new concd's probe of the socket, or its open of the lock
sys.exit(0 if select.select(waits, [], [], 60)[0] else 3)
"""

# The schema of the first stores (schema 1), for the migration test.
SCHEMA_1 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE jobs(
 id INTEGER PRIMARY KEY, task TEXT NOT NULL, args BLOB,
 uid INTEGER NOT NULL, requested TEXT NOT NULL, exec TEXT NOT NULL,
 daemon INTEGER NOT NULL, fresh INTEGER NOT NULL,
 timeout_ms INTEGER NOT NULL, retries INTEGER NOT NULL,
 retry_delay_ms INTEGER NOT NULL, attempt INTEGER NOT NULL,
 state TEXT NOT NULL, error TEXT, message TEXT, result BLOB,
 submitted INTEGER NOT NULL, started INTEGER, finished INTEGER,
 worker INTEGER, tid INTEGER, served INTEGER, done INTEGER,
 total INTEGER, msg TEXT, dropped INTEGER);
CREATE INDEX jobs_state ON jobs(state, id) WHERE state <> 'succeeded';
CREATE VIEW history AS SELECT id, task, uid, exec, state, error,
 message, attempt,
 datetime(submitted / 1000000, 'unixepoch') AS submitted_at,
 datetime(started / 1000000, 'unixepoch') AS started_at,
 datetime(finished / 1000000, 'unixepoch') AS finished_at,
 (finished - started) / 1e6 AS seconds FROM jobs;
"""


class Schema(StoreTest):
    EXTRA = dict(cwd="/tmp", env={"CC": "clang", "EMPTY": ""},
                 group="build.1", label="nightly run", priority=-5, cpus=2,
                 mem=1 << 30, pids=64, at=1, held=False)

    def test_what_a_job_asks_beyond_its_task_survives_kill_9(self):
        d = self.daemon(killed=True)
        c = d.client()
        first = c.call("submit", task="noop")["job"]
        c.wait_state(first, "succeeded")
        gate = d.gate()
        self.assertEqual(c.call("group", op="add", name="build.1")["t"], "ok")
        job = c.call("submit", task="exec", args={"argv": gate.argv},
                     after=[first], **self.EXTRA)
        self.assertEqual(job["t"], "accepted", job)
        job = job["job"]
        c.wait_state(job, "running")
        self.kill9(d)
        d2 = self.daemon(state_dir=d.state_dir)
        st = d2.client().wait_state(job, "failed")
        self.assertEqual(st["error"], "interrupted")
        for k in ("cwd", "group", "label", "priority", "cpus", "mem",
                  "pids", "at"):
            self.assertEqual(st.get(k), self.EXTRA[k], k)
        self.assertEqual(st["after"], [first])
        self.assertNotIn("held", st)
        # and in the store, for standard tools
        with sqlite3.connect(os.path.join(d.state_dir, "jobs.db")) as db:
            row = db.execute("select group_name, label, cwd from history "
                             "where id = ?", (job,)).fetchone()
            plain = db.execute("select group_name, label from history "
                               "where id = ?", (first,)).fetchone()
        db.close()
        self.assertEqual(row, ("build.1", "nightly run", "/tmp"))
        self.assertEqual(plain, ("default", None))

    def test_a_job_request_with_bad_queue_fields_is_refused_saying_why(self):
        c = self.daemon().client()
        cases = (
            (dict(cwd="relative/dir"), "cwd must be an absolute path"),
            (dict(cwd="/a\0b"), "cwd must be an absolute path"),
            (dict(env={"A=B": "x"}), "env: a name"),
            (dict(env={"A": 1}), "env: a value"),
            (dict(group="-x"), "group: 1 to 64 letters"),
            (dict(group="a b"), "group: 1 to 64 letters"),
            (dict(label="a\nb"), "label: no control characters"),
            (dict(priority=2000000), "priority must be from"),
            (dict(cpus=5000), "cpus must be at most"),
            (dict(stdin="file"), "stdin must be"),
            (dict(after=["@0"]), "after: each element is a job id"),
            (dict(after=[0]), "after: each element is a job id"),
        )
        for fields, message in cases:
            r = c.call("submit", task="noop", **fields)
            self.assertEqual(r["t"], "error", fields)
            self.assertEqual(r["error"], "bad_field", fields)
            self.assertIn(message, r["message"], fields)
        # the daemon goes on
        self.assertEqual(c.call("ping")["t"], "pong")

    def test_a_store_of_schema_1_is_brought_to_schema_4_with_its_jobs(self):
        state = self.private_state_dir()
        os.makedirs(state)
        path = os.path.join(state, "jobs.db")
        now = int(time.time() * 1e6)
        with sqlite3.connect(path) as db:
            db.executescript(SCHEMA_1)
            db.execute("pragma application_id = %d" % 0x636f6e63)
            db.execute("pragma user_version = 1")
            db.execute("insert into meta values ('next_id', 8), "
                       "('instance', 'abc'), ('self_uid', ?)",
                       (os.geteuid(),))
            row = ("insert into jobs(id, task, uid, requested, exec, "
                   "daemon, fresh, timeout_ms, retries, retry_delay_ms, "
                   "attempt, state, submitted, finished, result) values "
                   "(?, 'noop', ?, 'auto', 'loop', 0, 0, 0, 0, 0, 1, ?, "
                   "?, ?, ?)")
            db.execute(row, (5, os.geteuid(), "succeeded", now, now,
                             msgpack.packb(7)))
            db.execute(row, (6, os.geteuid(), "queued", now, None, None))
        db.close()
        d = self.daemon(state_dir=state)
        c = d.client()
        self.assertEqual(c.wait_state(6, "succeeded")["state"], "succeeded")
        self.assertEqual(c.call("result", job=5)["result"], 7)
        self.assertGreater(c.call("submit", task="noop")["job"], 7)
        with sqlite3.connect(path) as db:
            self.assertEqual(db.execute("pragma user_version").fetchone(),
                             (4,))
            self.assertEqual(
                db.execute("select id, group_name, slurm, node from history "
                           "order by id").fetchall()[:2],
                [(5, "default", None, None), (6, "default", None, None)])
            self.assertEqual(db.execute("select count(*) from groups")
                             .fetchone(), (0,))
        db.close()

    def older_store(self, sql, **submit):
        """A store of this concd with one job (submit's fields), taken back
        to an older schema by sql: (state dir, jobs.db, the job)."""
        state = self.private_state_dir()
        d = Daemon("--state-dir", state)
        c = d.client()
        job = c.call("submit", **submit)["job"]
        self.assertEqual(c.wait_state(job, "succeeded")["state"], "succeeded")
        d.close()
        path = os.path.join(state, "jobs.db")
        with sqlite3.connect(path) as db:
            db.executescript(sql)
        db.close()
        return state, path, job

    def test_a_store_of_schema_2_is_brought_to_schema_4_with_its_jobs(self):
        # schema 2 is schema 3 without where a job ran on Slurm
        state, path, job = self.older_store(
            "drop view history; alter table extra drop column slurm; "
            "alter table extra drop column node; "
            "alter table extra drop column umask; "
            "alter table jobs drop column runtime; "
            "create view history as select id, label from jobs "
            "left join extra using (id); pragma user_version = 2;",
            task="noop", label="kept")
        d = self.daemon(state_dir=state)
        c = d.client()
        self.assertEqual(c.call("status", job=job)["label"], "kept")
        self.assertIn("job store brought from schema 2 to 4", d.log())
        with sqlite3.connect(path) as db:
            self.assertEqual(db.execute("pragma user_version").fetchone(),
                             (4,))
            self.assertEqual(db.execute(
                "select id, label, slurm, node from history").fetchall(),
                [(job, "kept", None, None)])
        db.close()

    def test_a_store_of_schema_3_is_brought_to_schema_4_with_its_jobs(self):
        # schema 3 is schema 4 without runtime (a job's span is then
        # finished - started, by the wall clock) and umask
        t0 = int(time.time() - 60) * 1000000
        state, path, job = self.older_store(
            "drop view history; alter table jobs drop column runtime; "
            "alter table extra drop column umask; "
            "create view history as select id, "
            "(finished - started) / 1e6 as seconds from jobs; "
            # ended a minute ago, well within --finished-ttl
            "update jobs set started = %d, finished = %d; "
            "pragma user_version = 3;" % (t0, t0 + 2500000),
            task="sleep", args={"ms": 50})
        d = self.daemon(state_dir=state)
        c = d.client()
        self.assertEqual(c.call("status", job=job)["runtime"], 2500000)
        self.assertIn("job store brought from schema 3 to 4", d.log())
        later = c.call("submit", task="sleep", args={"ms": 50})["job"]
        ran = c.wait_state(later, "succeeded")["runtime"]
        self.assertGreater(ran, 0)
        self.assertEqual(d.stop(), 0)
        with sqlite3.connect(path) as db:
            self.assertEqual(db.execute("pragma user_version").fetchone(),
                             (4,))
            self.assertEqual(db.execute(
                "select id, runtime from jobs order by id").fetchall(),
                [(job, None), (later, ran)])
            self.assertEqual(db.execute(
                "select id, seconds from history order by id").fetchall(),
                [(job, 2.5), (later, ran / 1e6)])
        db.close()


class Reading(StoreTest):
    def test_sqlite3_reads_the_jobs_while_concd_runs(self):
        d = self.daemon()
        c = d.client()
        gate = d.gate()
        done = [c.call("submit", task="noop")["job"] for _ in range(3)]
        for j in done:
            c.wait_state(j, "succeeded")
        held = c.call("submit", task="exec", args={"argv": gate.argv})["job"]
        c.wait_state(held, "running")
        wait_stored(d.state_dir, held, "running")
        p = subprocess.run(["sqlite3", os.path.join(d.state_dir, "jobs.db"),
                            "select id, state from jobs order by id"],
                           capture_output=True, text=True, timeout=BOUND)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "".join("%d|succeeded\n" % j
                                           for j in done)
                         + "%d|running\n" % held)
        gate.release()
        c.wait_state(held, "succeeded")

    def test_the_audit_trail_has_each_accepted_and_finished_job(self):
        d = self.daemon()
        c = d.client()
        rid = c.request("submit", task="exec",
                        args={"argv": ["sh", "-c", "exit 3"]}, watch=True)
        bad = c.until_end(rid)[-1]["job"]
        rid = c.request("submit", task="noop", watch=True)
        ok = c.until_end(rid)[-1]["job"]
        uid = os.geteuid()
        d.wait_log("job %d finished: succeeded" % ok)
        log = d.log()
        self.assertIn("job %d accepted: uid %d exec sh -c 'exit 3'"
                      % (bad, uid), log)
        self.assertIn("job %d finished: failed (task_failed)" % bad, log)
        self.assertIn("job %d accepted: uid %d noop" % (ok, uid), log)


class FullDisk(StoreTest):
    SIZE = 8 << 20

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        self.mnt = tempfile.mkdtemp(prefix="concd-tmpfs-")
        self.addCleanup(os.rmdir, self.mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%d,mode=0700" % self.SIZE, "tmpfs",
                            self.mnt], capture_output=True, text=True)
        if p.returncode != 0:
            self.skipTest("cannot mount a tmpfs: " + p.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", "-l", self.mnt])

    def fill(self, path):
        """Write path until the disk is full."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        chunk = b"\0" * 65536
        try:
            while True:
                try:
                    if os.write(fd, chunk) == 0:
                        break
                except OSError as e:
                    if chunk == b"\0" * 512:
                        self.assertEqual(e.errno, 28)  # ENOSPC
                        break
                    chunk = b"\0" * 512
        finally:
            os.close(fd)

    def test_a_full_disk_refuses_new_jobs_and_loses_none(self):
        state = os.path.join(self.mnt, "state")
        d = Daemon("--state-dir", state)
        self.addCleanup(d.close)
        self.assertTrue(os.path.exists(os.path.join(state, "reserve")))
        c = d.client()
        before = [c.call("submit", task="noop")["job"] for _ in range(10)]
        # their ends in SQLite first: a write of them after the disk
        # filled would take the reserve before the submits below (it did,
        # under ThreadSanitizer, and the first submit was refused)
        for j in before:
            c.wait_state(j, "succeeded")
            wait_stored(state, j, "succeeded")
        filler = os.path.join(self.mnt, "filler")
        self.fill(filler)
        accepted, refused = [], None
        for _ in range(1000):
            m = c.call("submit", task="noop")
            if m["t"] == "accepted":
                accepted.append(m["job"])
                continue
            refused = m
            break
        self.assertIsNotNone(refused, "no refusal on a full disk")
        # what was submitted when the disk filled went into the reserve
        self.assertGreaterEqual(len(accepted), 1)
        self.assertFalse(os.path.exists(os.path.join(state, "reserve")))
        self.assertEqual(refused["error"], "store_failed", refused)
        self.assertIn("is full", refused["message"])
        self.assertIn(os.path.join(state, "jobs.db"), refused["message"])
        # and again: refused, not queued
        m = c.call("submit", task="noop")
        self.assertEqual((m["t"], m.get("error")), ("error", "store_failed"))
        d.wait_log("the disk is full")
        # reads are served
        for j in before + accepted:
            self.assertEqual(c.wait_state(j, *FINAL)["state"], "succeeded")
        ps = c.call("ps", all=True)
        self.assertEqual(ps["t"], "jobs", ps)
        self.assertEqual([r["job"] for r in ps["jobs"]], before + accepted)
        # room again: submits are taken again within the retry bound
        os.unlink(filler)
        deadline = time.monotonic() + BOUND
        while True:
            m = c.call("submit", task="noop")
            if m["t"] == "accepted":
                break
            self.assertEqual(m["error"], "store_failed")
            self.assertLess(time.monotonic(), deadline,
                            "still refused %ss after the disk had room"
                            % BOUND)
        accepted.append(m["job"])
        self.assertTrue(os.path.exists(os.path.join(state, "reserve")))
        c.wait_state(m["job"], "succeeded")
        d.wait_log("there is room again; new jobs are accepted")
        # the reserve was given up once, and said once
        self.assertEqual(d.log().count("the disk is full"), 1, d.log())
        self.kill9(d)
        d2 = self.daemon(state_dir=state)
        c = d2.client()
        st = self.statuses(c, before + accepted)
        self.assertEqual({j: s.get("state") for j, s in st.items()},
                         {j: "succeeded" for j in before + accepted})

    def test_a_reserve_the_start_could_not_make_is_made_once_there_is_room(
            self):
        # it was tried at the start alone: a disk nearly full then left
        # concd without one for good
        state = os.path.join(self.mnt, "state")
        Daemon("--state-dir", state).close()  # the store, made
        os.unlink(os.path.join(state, "reserve"))
        filler = os.path.join(self.mnt, "filler")
        self.fill(filler)
        # room for a start, not for the reserve
        with open(filler, "r+b") as f:
            f.truncate(os.path.getsize(filler) - (1 << 20))
        d = Daemon("--state-dir", state)
        self.addCleanup(d.close)
        d.wait_log("cannot keep 4 MiB in reserve")
        self.assertFalse(os.path.exists(os.path.join(state, "reserve")))
        os.unlink(filler)
        # looked for with the age sweep, every ten seconds
        d.wait_log("made: 4 MiB kept in reserve for a full disk",
                   bound=BOUND)
        self.assertTrue(os.path.exists(os.path.join(state, "reserve")))

    def test_rows_that_fail_on_a_full_disk_are_written_once_it_has_room(self):
        """Jobs that end while the disk is full and its reserve spent: the
        batch that holds their rows fails, and they are written with the
        next one once there is room, with their results, errors and
        labels (the rows a failed batch carries over)."""
        state = os.path.join(self.mnt, "state")
        d = Daemon("--state-dir", state)
        self.addCleanup(d.close)
        c = d.client()
        held = [c.call("submit", task="primes", args={"n": 1000},
                       held=True, label="p%d" % i)["job"] for i in range(3)]
        sleeping = [c.call("submit", task="sleep", args={"ms": 600000},
                           label="s%d" % i)["job"] for i in range(3)]
        for j in sleeping:
            c.wait_state(j, "running")
        # the disk full and the reserve spent: the WAL, truncated once the
        # reserve let a write through, may give back room enough for it to
        # be made again, once (a new store's WAL is larger than what a few
        # jobs write in the reserve's room): then fill again
        reserve = os.path.join(state, "reserve")
        fillers = []
        for k in range(10):
            fillers.append(os.path.join(self.mnt, "filler%d" % k))
            self.fill(fillers[-1])
            for _ in range(1000):
                m = c.call("submit", task="noop")
                if m["t"] != "accepted":
                    break
            self.assertEqual(m.get("error"), "store_failed", m)
            if not os.path.exists(reserve):
                break
        self.assertFalse(os.path.exists(reserve))
        # the room it gave back is filled too
        fillers.append(os.path.join(self.mnt, "filler-last"))
        self.fill(fillers[-1])
        # their changes in one write, so in one batch, whose replies
        # wait for it to be written
        rids = list(range(c.next_id, c.next_id + 6))
        c.next_id += 6
        c.send_raw(b"".join(
            frame({"t": t, "id": rid, "job": j})
            for rid, t, j in zip(rids, ["release"] * 3 + ["cancel"] * 3,
                                 held + sleeping)))
        # the batch of their rows failed (asked on a connection of its
        # own: this one's replies wait in order behind theirs)
        other = d.client()
        deadline = time.monotonic() + BOUND
        while True:
            m = other.call("submit", task="noop")
            self.assertEqual(m.get("error"), "store_failed", m)
            if "cannot be written" in m["message"]:
                break
            self.assertLess(time.monotonic(), deadline, m)
        for j in held:
            self.assertEqual(other.wait_state(j, "succeeded")["state"],
                             "succeeded")
        for f in fillers:
            os.unlink(f)
        d.wait_log("there is room again; new jobs are accepted")
        for rid in rids:
            self.assertEqual(c.recv_for(rid)["t"], "ok")
        self.kill9(d)
        c = self.daemon(state_dir=state).client()
        st = self.statuses(c, held + sleeping)
        self.assertEqual([st[j].get("state") for j in held + sleeping],
                         ["succeeded"] * 3 + ["cancelled"] * 3)
        self.assertEqual([st[j].get("label") for j in held + sleeping],
                         ["p0", "p1", "p2", "s0", "s1", "s2"])
        self.assertEqual([c.call("result", job=j)["result"] for j in held],
                         [168] * 3)
        for j in sleeping:
            self.assertEqual(st[j].get("error"), "cancelled", st[j])


if __name__ == "__main__":
    harness.main()
