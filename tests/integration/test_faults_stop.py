"""Stopping under load and faults: SIGTERM with jobs of both lifetimes on
every executor, held by commands the test releases; a second SIGTERM that
ends everything at once; watched jobs that cannot start kept queued for
the next start, with the jobs after them; and 5,000 commands that leave
no zombie and no descriptor behind."""
import errno
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BOUND, VALGRIND, Daemon, proc_state  # noqa: E402

EXECUTORS = ("loop", "thread", "process")


def wait_dead(pid, bound=BOUND):
    """Wait until pid runs no more (a reparented zombie counts as dead:
    reaping a grandchild is not concd's business)."""
    deadline = time.monotonic() + bound
    while proc_state(pid) not in (None, "Z", "X"):
        if time.monotonic() > deadline:
            raise AssertionError("pid %d still running after %ss"
                                 % (pid, bound))
        time.sleep(0.01)  # polling /proc, bounded by the deadline


def children(pid):
    """concd's children, whichever of its threads started them."""
    kids = set()
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids.update(int(k) for k in f.read().split())
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return kids


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def output(events):
    return b"".join(e["data"] for e in events
                    if e["t"] == "output" and e["stream"] == "stdout")


class Held:
    """A command that runs until the test releases it: it prints its pid,
    then copies a fifo to its output until the test has written to the
    fifo and closed it."""

    def __init__(self, d, name):
        self.fifo = os.path.join(d.dir, name)
        os.mkfifo(self.fifo)
        self.argv = ["sh", "-c", 'echo $$; cat "$0"; echo released',
                     self.fifo]
        self.pid = None

    def submit(self, c, x, daemon, wait=True):
        """Submit it; with wait, until its command runs."""
        self.rid = c.request("submit", task="exec", exec=x, daemon=daemon,
                             args={"argv": self.argv}, watch=True)
        m = c.recv_for(self.rid)
        assert m["t"] == "accepted", m
        self.job = m["job"]
        self.events = []
        # its first line says the command runs, and which pid it has
        while wait and self.pid is None:
            m = c.recv_for(self.rid)
            assert m is not None and m["t"] != "end", m
            self.events.append(m)
            if m["t"] == "output":
                self.pid = int(m["data"])
        return self

    def release(self, data):
        """Write data to the fifo and close it, once cat has opened it."""
        deadline = time.monotonic() + BOUND
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)  # cat has not opened it yet: bounded
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def until_end(self, c):
        self.events += c.until_end(self.rid)
        if self.pid is None:
            self.pid = int(output(self.events).split(b"\n")[0])
        return self.events[-1]


def sleeper(c, x, daemon):
    rid = c.request("submit", task="sleep", args={"ms": 600000}, exec=x,
                    daemon=daemon, watch=True)
    m = c.recv_for(rid)
    assert m["t"] == "accepted", m
    c.wait_state(m["job"], "running")
    return rid, m["job"]


class Sigterm(unittest.TestCase):
    def setUp(self):
        # three of each worker: every executor runs three jobs at once
        self.d = Daemon("-p", "3", "--stop-timeout", "300", threads=3)
        self.c = self.d.client()
        # more commands at once than the CPUs, perhaps: the default group
        # gets no limit (concd(8) QUEUE)
        self.c.call("group", op="set", name="default", parallel=0)

    def tearDown(self):
        self.c.close()
        self.d.close()

    def workers(self):
        return [w["pid"] for w in self.c.call("pool")["workers"]
                if w["exec"] == "process"]

    def test_daemon_jobs_end_at_once_and_held_jobs_drain_on_every_executor(
            self):
        c = self.c
        drained, killed, sleeping, later = {}, {}, {}, {}
        for x in EXECUTORS:
            drained[x] = Held(self.d, "drain-" + x).submit(c, x, False)
            killed[x] = Held(self.d, "kill-" + x).submit(c, x, True)
            sleeping[x] = sleeper(c, x, True)
        # one more of each, queued while a worker of its kind is busy
        # (or running, where the executor has room): drained all the same
        for x in EXECUTORS:
            later[x] = Held(self.d, "later-" + x).submit(c, x, False,
                                                         wait=False)
        workers = self.workers()
        self.assertEqual(len(workers), 3)
        self.d.proc.send_signal(signal.SIGTERM)
        self.d.notify.wait_for("STOPPING=1")
        # the daemon jobs end cancelled with nothing released
        for x in EXECUTORS:
            with self.subTest(executor=x, job="daemon exec"):
                end = killed[x].until_end(c)
                self.assertEqual((end["t"], end["state"]),
                                 ("end", "cancelled"), end)
                wait_dead(killed[x].pid)
            with self.subTest(executor=x, job="daemon sleep"):
                end = c.until_end(sleeping[x][0])[-1]
                self.assertEqual(end["state"], "cancelled", end)
        # the others still run or wait their turn; nothing new is taken on
        for x in EXECUTORS:
            st = c.call("status", job=drained[x].job)
            self.assertEqual(st["state"], "running", (x, st))
            self.assertIn(proc_state(drained[x].pid), ("S", "R"), x)
            st = c.call("status", job=later[x].job)
            self.assertIn(st["state"], ("queued", "running"), (x, st))
        m = c.call("submit", task="noop")
        self.assertEqual((m["t"], m["error"]), ("error", "shutting_down"))
        self.assertIsNone(self.d.proc.poll())
        # released, they finish their work and succeed
        for x in EXECUTORS:
            for h in (drained[x], later[x]):
                h.release(b"%s on %s\n" % (h.fifo.encode(), x.encode()))
        for x in EXECUTORS:
            for h in (drained[x], later[x]):
                with self.subTest(executor=x, job=h.fifo):
                    end = h.until_end(c)
                    self.assertEqual((end["state"], end.get("result")),
                                     ("succeeded", {"status": 0}), end)
                    self.assertEqual(output(h.events),
                                     b"%d\n%s on %s\nreleased\n"
                                     % (h.pid, h.fifo.encode(),
                                        x.encode()))
        self.assertEqual(self.d.proc.wait(BOUND), 0)
        log = self.d.log()
        self.assertIn("stopping; draining 6 jobs", log)
        self.assertIn("stopped: 6 jobs drained, 6 daemon jobs killed, "
                      "0 queued jobs cancelled, 0 cut off", log)
        self.assertNotIn("cut off while", log)
        for pid in workers + [h.pid for h in
                              list(drained.values()) + list(later.values())]:
            wait_dead(pid)

    def test_a_second_sigterm_ends_everything_at_once_and_says_what(self):
        c = self.c
        held, sleeping = {}, {}
        for x in EXECUTORS:
            held[x] = Held(self.d, "held-" + x).submit(c, x, False)
            sleeping[x] = sleeper(c, x, False)
        jobs = sorted([h.job for h in held.values()] +
                      [s[1] for s in sleeping.values()])
        self.d.proc.send_signal(signal.SIGTERM)
        self.d.notify.wait_for("STATUS=stopping: draining 6 running, "
                               "0 queued")
        self.assertIn("stopping; draining 6 jobs", self.d.log())
        self.d.proc.send_signal(signal.SIGTERM)
        # nothing is released: every job is cancelled, the commands too
        for x in EXECUTORS:
            with self.subTest(executor=x):
                end = held[x].until_end(c)
                self.assertEqual(end["state"], "cancelled", end)
                end = c.until_end(sleeping[x][0])[-1]
                self.assertEqual(end["state"], "cancelled", end)
                wait_dead(held[x].pid)
        self.assertEqual(self.d.proc.wait(BOUND), 0)
        log = self.d.log()
        self.assertIn("Terminated: cancelling the 6 jobs still active", log)
        for job in jobs:
            task = "exec" if any(h.job == job for h in held.values()) \
                else "sleep"
            self.assertIn("job %d (%s) cut off while running" % (job, task),
                          log)
        self.assertIn("stopped: 0 jobs drained, 0 daemon jobs killed, "
                      "0 queued jobs cancelled, 6 cut off", log)
        self.assertNotIn("did not end after being cancelled", log)


class KeptQueued(unittest.TestCase):
    """With a store, a queued job that cannot start yet stays queued
    through a stop, and its watchers see their connections close."""

    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="concd-test-state-")

    def tearDown(self):
        shutil.rmtree(self.state, ignore_errors=True)

    def test_a_stop_keeps_what_cannot_start_and_drains_what_can(self):
        d = Daemon("--state-dir", self.state)
        try:
            c, other = d.client(), d.client()
            self.assertEqual(c.call("group", op="add", name="later",
                                    parallel=1)["t"], "ok")
            self.assertEqual(c.call("group", op="pause",
                                    name="later")["t"], "ok")
            kept = {}

            def submit(name, **fields):
                rid = c.request("submit", task="noop", watch=True, **fields)
                m = c.recv_for(rid)
                self.assertEqual(m["t"], "accepted", (name, m))
                return rid, m["job"]

            for kind, fields in (
                    ("held", dict(held=True)),
                    ("at", dict(at=int((time.time() + 3600) * 1e6))),
                    ("paused", dict(group="later"))):
                kept[kind] = submit(kind, **fields)[1]
            # after a job kept queued, directly or through another
            kept["after"] = submit("after", after=[kept["held"]])[1]
            kept["after2"] = submit("after2", after_any=True,
                                    after=[kept["after"], kept["at"]])[1]
            for job in kept.values():  # a second watcher of each
                other.request("watch", job=job)
            # a job after one that runs is drained: it runs, and ends
            rid = c.request("submit", task="sleep", args={"ms": 300},
                            exec="thread", watch=True)
            sleeping = c.recv_for(rid)["job"]
            drained = submit("drained", after=[sleeping])[0]
            for kind, job in kept.items():
                self.assertEqual(c.call("status", job=job)["state"],
                                 "queued", kind)
            # before the fix, the jobs after a kept one were waited for
            # until the stop timeout, then cancelled; and each watched job
            # kept queued was freed before its watches (a use after free
            # as the connections closed)
            self.assertEqual(d.stop(), 0)
            self.assertEqual(c.until_end(drained)[-1]["state"], "succeeded")
            for conn in (c, other):
                m = conn.recv()
                while m is not None and m["t"] in ("job", "progress",
                                                   "end"):
                    self.assertNotIn(m["job"], kept.values(), m)
                    m = conn.recv()
                self.assertIsNone(m)
            log = d.log()
            self.assertIn("draining 2 jobs", log)
            self.assertIn("5 held, paused or scheduled jobs, and jobs that "
                          "wait for them, stay queued in the store for the "
                          "next start", log)
            self.assertIn("stopped: 2 jobs drained, 0 daemon jobs killed, "
                          "0 queued jobs cancelled, 0 cut off", log)
        finally:
            d.close()  # no sanitizer report
        d = Daemon("--state-dir", self.state)
        try:
            c = d.client()
            for kind, job in kept.items():
                st = c.call("status", job=job)
                self.assertEqual(st["state"], "queued", (kind, st))
        finally:
            d.close()


class Signals(unittest.TestCase):
    """Every thread of concd but the loop's blocks the signals it
    handles: a SIGTERM, SIGINT or SIGHUP runs its handler on the loop's
    thread, never on a pool's, where it would interrupt a task's system
    call (EINTR), or be held back by a thread asleep (a SIGTERM left
    unanswered for 240 s under ThreadSanitizer)."""

    def test_only_the_loops_thread_takes_signals(self):
        d = Daemon("-p", "1", threads=3)
        try:
            c = d.client()
            rid = c.request("submit", task="sleep", args={"ms": 1},
                            exec="thread", watch=True)
            self.assertEqual(c.until_end(rid)[-1]["state"], "succeeded")
            pid = d.proc.pid
            wanted = (1 << (signal.SIGHUP - 1)) | \
                (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
            masks = {}
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                    for line in f:
                        if line.startswith("SigBlk:"):
                            masks[int(tid)] = int(line.split()[1], 16)
            # the loop, three pool threads and the store's at least
            self.assertGreaterEqual(len(masks), 5, masks)
            self.assertEqual(masks.pop(pid) & wanted, 0)
            for tid, mask in masks.items():
                self.assertEqual(mask & wanted, wanted,
                                 "thread %d: SigBlk %x" % (tid, mask))
        finally:
            d.close()


class CutQueued(unittest.TestCase):
    """A second SIGTERM cancels the queued jobs before the running ones:
    a worker the cut frees starts none of them, and the log counts them
    in one line."""
    N = 3000

    def setUp(self):
        self.d = Daemon("-p", "0", threads=1)

    def tearDown(self):
        self.d.close()

    def test_a_cut_starts_no_queued_job(self):
        c, n = self.d.client(), self.N
        rid, job = sleeper(c, "thread", False)
        # queued behind the sleep on the one thread, pipelined
        rids = [c.request("submit", task="noop", exec="thread", watch=True)
                for _ in range(n)]
        for r in rids:
            self.assertEqual(c.recv_for(r)["t"], "accepted")
        self.d.proc.send_signal(signal.SIGTERM)
        self.d.notify.wait_for("STATUS=stopping: draining 1 running, "
                               "%d queued" % n)
        self.d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(c.until_end(rid)[-1]["state"], "cancelled")
        # before the fix the sleep could be cancelled first, and the
        # thread it freed ran most of the noops while the cut went on
        ends = {}
        for r in rids:
            state = c.until_end(r)[-1]["state"]
            ends[state] = ends.get(state, 0) + 1
        self.assertEqual(ends, {"cancelled": n})
        self.assertEqual(self.d.proc.wait(BOUND), 0)
        log = self.d.log()
        self.assertIn("cancelling the %d jobs still active" % (n + 1), log)
        self.assertIn("job %d (sleep) cut off while running" % job, log)
        self.assertIn("%d queued jobs cut off" % n, log)
        self.assertNotIn("cut off while queued", log)
        self.assertIn("stopped: 0 jobs drained, 0 daemon jobs killed, "
                      "0 queued jobs cancelled, %d cut off" % (n + 1), log)


@unittest.skipIf(VALGRIND, "5,000 commands under valgrind take too long")
class ManyCommands(unittest.TestCase):
    N = 5000

    def setUp(self):
        self.d = Daemon("-p", "2")
        self.c = self.d.client()

    def tearDown(self):
        self.c.close()
        self.d.close()

    def test_5000_commands_leave_no_zombie_and_no_descriptor(self):
        c, pid = self.c, self.d.proc.pid
        # one command on each executor first: what stays (spawner
        # threads, their sockets) is part of the idle count
        for x in EXECUTORS:
            rid = c.request("submit", task="exec", exec=x,
                            args={"argv": ["true"]}, watch=True)
            self.assertEqual(c.until_end(rid)[-1]["state"], "succeeded")
        idle_fds = fd_count(pid)
        workers = children(pid)
        jobs = [{"task": "exec", "exec": EXECUTORS[i % 3],
                 "args": {"argv": ["true"]}} for i in range(self.N)]
        rid = c.request("gather", jobs=jobs)
        acc = c.recv_for(rid)
        self.assertEqual(acc["t"], "accepted", acc)
        self.assertEqual(len(acc["jobs"]), self.N)
        ends = {}
        while len(ends) < self.N:
            m = c.recv_for(rid)
            self.assertIsNotNone(m)
            if m["t"] == "end":
                ends[m["index"]] = m
        bad = [e for e in ends.values()
               if (e["state"], e.get("result")) !=
               ("succeeded", {"status": 0})]
        self.assertEqual(bad, [])
        self.assertEqual(sorted(ends), list(range(self.N)))
        # commands are reaped as they end, descriptors closed as they go:
        # wait for the last of it, bounded
        deadline = time.monotonic() + BOUND
        while True:
            kids = children(pid)
            zombies = [k for k in kids if proc_state(k) == "Z"]
            fds = fd_count(pid)
            if (kids == workers and not zombies and fds == idle_fds) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.01)  # polling /proc, bounded by the deadline
        self.assertEqual(zombies, [])
        self.assertEqual(kids, workers)
        self.assertEqual(fds, idle_fds)
        self.assertEqual(c.call("ping")["t"], "pong")
        self.assertEqual(self.d.stop(), 0)


class NotStarted(unittest.TestCase):
    def test_a_concd_that_cannot_start_leaves_no_directory_behind(self):
        import harness
        made = []
        mkdtemp = harness.tempfile.mkdtemp

        def recording(*a, **kw):
            made.append(mkdtemp(*a, **kw))
            return made[-1]
        harness.tempfile.mkdtemp = recording
        try:
            with self.assertRaises(FileNotFoundError):
                Daemon(exe="/nonexistent/concd")
        finally:
            harness.tempfile.mkdtemp = mkdtemp
        self.assertEqual(len(made), 1)
        self.assertFalse(os.path.exists(made[0]), made[0])


if __name__ == "__main__":
    unittest.main(verbosity=2)
