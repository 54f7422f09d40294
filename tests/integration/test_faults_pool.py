"""Faults of the pools: what concd does when its workers are killed,
stopped, crashed or hung by the jobs they run, when a worker sits idle
beside waiting jobs, and when it runs out of descriptors.  One class per
kind of fault; each test names the behaviour it pins down."""
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BOUND, VALGRIND, Client, Daemon, DaemonTest  # noqa: E402


def rows(c, exec_):
    return [w for w in c.call("pool")["workers"] if w["exec"] == exec_]


def wait_pool(c, check, bound=BOUND):
    """Ask for the pool until check(reply) holds; each round trip is an
    event, and the asking is bounded."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        p = c.call("pool")
        if check(p):
            return p
    raise AssertionError("the pool never reached the expected state: %r"
                         % p)


def live_procs(p):
    """The pool's process workers that are running (not missing)."""
    return [w for w in p["workers"]
            if w["exec"] == "process" and w["worker"] >= 0
            and w["state"] in ("idle", "busy")]


def stop(c, pid):
    """SIGSTOP a worker process, and wait until the pool shows it stopped
    (the signal takes effect when the kernel next schedules it)."""
    os.kill(pid, signal.SIGSTOP)
    wait_pool(c, lambda p: any(w.get("pid") == pid and w["state"] == "stopped"
                               for w in p["workers"]))


def died_lines(log, sig):
    return [line for line in log.splitlines()
            if "process worker" in line and "killed by signal %d" % sig
            in line and "pid" in line and "job" not in line]


class BusyCore:
    """A busy loop that keeps a core loaded while a test runs: the races
    below show only when concd cannot run at once."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "while True: pass"])

    def stop(self):
        self.proc.kill()
        self.proc.wait()


# ---- worker processes killed with SIGKILL ----

class WorkerKilled(DaemonTest):
    args = ("-p", "2")

    def test_killing_every_worker_under_load_ends_every_job_and_refills(self):
        c = self.d.client()
        # one long job on each worker, then a queue that rides behind them
        holders = [c.call("submit", task="sleep", args={"ms": 600000},
                          exec="process")["job"] for _ in range(2)]
        pids = {c.wait_state(j, "running")["tid"] for j in holders}
        self.assertEqual(len(pids), 2)
        rids = [c.request("submit", task="primes", args={"n": 20000},
                          exec="process", watch=True) for _ in range(40)]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        ends = [c.until_end(rid)[-1] for rid in rids]
        self.assertEqual([(e["state"], e["result"]) for e in ends],
                         [("succeeded", 2262)] * 40)
        for j in holders:
            st = c.wait_state(j, "failed")
            self.assertEqual(st["error"], "worker_died")
            self.assertIn("killed by signal 9", st["message"])
        p = wait_pool(c, lambda p: len(live_procs(p)) == 2)
        self.assertFalse(pids & {w["pid"] for w in live_procs(p)})
        self.assertEqual(p["queues"]["process"],
                         {"queued": 0, "running": 0})


# ---- worker processes stopped with SIGSTOP ----

class WorkerStopped(DaemonTest):
    args = ("-p", "2", "--stop-timeout", "1")

    def held(self, c, **extra):
        rid = c.request("submit", task="sleep", args={"ms": 600000},
                        exec="process", watch=True, **extra)
        job = c.recv_for(rid)["job"]
        return rid, job, c.wait_state(job, "running")["tid"]

    def test_a_cancel_on_a_stopped_worker_ends_cancelled(self):
        c = self.d.client()
        rid, job, pid = self.held(c)
        stop(c, pid)
        c.call("cancel", job=job)
        end = c.until_end(rid)[-1]
        self.assertEqual((end["state"], end["error"]),
                         ("cancelled", "cancelled"))
        self.assertIn("worker stopped", end["message"])
        p = wait_pool(c, lambda p: len(live_procs(p)) == 2)
        self.assertNotIn(pid, [w["pid"] for w in live_procs(p)])

    def test_a_timeout_on_a_stopped_worker_ends_timed_out(self):
        c = self.d.client()
        rid, job, pid = self.held(c, timeout=3000)
        stop(c, pid)
        end = c.until_end(rid)[-1]
        self.assertEqual((end["state"], end["error"]),
                         ("timed_out", "timed_out"))

    def test_stopping_concd_kills_a_stopped_worker_and_starts_none(self):
        c = self.d.client()
        rid, job, pid = self.held(c, daemon=True)
        rid2, job2, pid2 = self.held(c)
        self.assertNotEqual(pid, pid2)
        stop(c, pid)
        stop(c, pid2)
        t0 = time.monotonic()
        self.d.proc.send_signal(signal.SIGTERM)
        # the daemon job is killed at once, the other after the stop
        # timeout (1 s): neither waits for a cancel a stopped worker
        # cannot hear
        end = c.until_end(rid)[-1]
        self.assertEqual((end["state"], end["error"]),
                         ("cancelled", "cancelled"))
        end2 = c.until_end(rid2)[-1]
        self.assertEqual((end2["state"], end2["error"]),
                         ("cancelled", "cancelled"))
        self.assertEqual(self.d.proc.wait(BOUND), 0)
        self.assertLess(time.monotonic() - t0, 4.5)
        log = self.d.log()
        self.assertNotIn("starting another", log)
        self.assertIn("cannot hear its cancel", log)


# ---- a job that crashes its worker ----

PLUGINS = os.environ.get("CONCD_PLUGINS", "")


FAULTY = os.path.join(PLUGINS, "faulty.so")


@unittest.skipUnless(os.path.exists(FAULTY),
                     "the faulty plugin is not built (CONCD_PLUGINS)")
class CrashingJob(unittest.TestCase):
    """Jobs that kill their worker process with SIGSEGV, with a core busy.
    The faulty plugin's crash task does it in its first step, before the
    worker has written anything; the exec job a little later, from a
    child."""
    CRASH = ["sh", "-c", "kill -SEGV $PPID"]

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        shutil.copy(FAULTY, self.dir)
        self.busy = BusyCore()
        # a sanitizer would catch the SIGSEGV and exit instead
        asan = os.environ.get("ASAN_OPTIONS", "")
        tsan = os.environ.get("TSAN_OPTIONS", "")
        self.d = Daemon("-p", "2", "--plugin-dir", self.dir,
                        env={"ASAN_OPTIONS": asan + ":handle_segv=0",
                             "TSAN_OPTIONS": tsan + ":handle_segv=0"})

    def tearDown(self):
        self.busy.stop()
        self.d.close()
        shutil.rmtree(self.dir)

    def crash_once(self, c, n, **submit):
        """Run a crashing job (the n-th); it must fail naming the signal
        and take exactly one pool worker with it."""
        before = {w["pid"] for w in live_procs(c.call("pool"))}
        end = c.until_end(c.request("submit", exec="process", watch=True,
                                    **submit))[-1]
        self.assertEqual((end["state"], end["error"]),
                         ("failed", "worker_died"))
        self.assertIn("killed by signal 11", end["message"])
        self.assertIn(end["tid"], before)
        p = wait_pool(c, lambda p: len(live_procs(p)) == 2)
        after = {w["pid"] for w in live_procs(p)}
        self.assertEqual(len(before - after), 1, (before, after))
        self.assertEqual(len(died_lines(self.d.log(), 11)), n)

    def test_a_job_that_crashes_its_worker_at_once_fails_once(self):
        c = self.d.client()
        for n in range(1, 4):
            self.crash_once(c, n, task="crash")
        end = c.until_end(c.request("submit", task="primes", exec="process",
                                    args={"n": 1000}, watch=True))[-1]
        self.assertEqual(end["result"], 168)

    @unittest.skipIf(VALGRIND, "valgrind, not the worker, gets the SIGSEGV "
                     "a command sends it; the worker dies of it later")
    def test_an_exec_job_that_kills_its_worker_fails_once(self):
        c = self.d.client()
        for n in range(1, 11):
            self.crash_once(c, n, task="exec", args={"argv": self.CRASH})

    def test_a_fail_fast_gather_ends_whole_when_a_worker_dies_under_it(
            self):
        c = self.d.client()
        crash = dict(task="crash", exec="process")
        noop = dict(task="noop", exec="process")
        # long enough to be running or queued when the crash fails the
        # gather: a no-op there could end first, and nothing was left to
        # cancel once a worker sent its ends before the crash ran
        slow = dict(task="sleep", args={"ms": 600000}, exec="process")
        # jobs go to the workers in turn: the crash first on its worker,
        # then behind a noop whose end it may take down with it
        for n, jobs in enumerate(([crash] + [slow] * 5,
                                  [noop, noop, crash] + [slow] * 3), 1):
            rid = c.request("gather", jobs=jobs, fail_fast=True)
            self.assertEqual(c.recv_for(rid)["t"], "accepted")
            ends = {}
            while len(ends) < len(jobs):
                m = c.recv_for(rid)
                self.assertIsNotNone(m)
                if m["t"] == "end":
                    ends[m["index"]] = m
            states = [(e["state"], e.get("error")) for i, e in
                      sorted(ends.items())]
            self.assertIn(("failed", "worker_died"), states)
            self.assertTrue(set(states) <= {
                ("succeeded", None), ("failed", "worker_died"),
                ("cancelled", "cancelled")}, states)
            self.assertIn(("cancelled", "cancelled"), states)
            wait_pool(c, lambda p: len(live_procs(p)) == 2)
            self.assertEqual(len(died_lines(self.d.log(), 11)), n)

    def test_retries_bound_the_attempts_and_each_kills_one_worker(self):
        c = self.d.client()
        ev = c.until_end(c.request("submit", task="crash", exec="process",
                                   retries=2, watch=True))
        retries = [e for e in ev if e["t"] == "retry"]
        self.assertEqual([(e["attempt"], e["error"]) for e in retries],
                         [(2, "worker_died"), (3, "worker_died")])
        self.assertTrue(all("killed by signal 11" in e["message"]
                            for e in retries))
        end = ev[-1]
        self.assertEqual((end["state"], end["error"]),
                         ("failed", "worker_died"))
        self.assertIn("killed by signal 11", end["message"])
        # the first attempt killed a pool worker; the retries ran on
        # fresh workers of their own
        self.assertEqual(len(died_lines(self.d.log(), 11)), 1)
        wait_pool(c, lambda p: len(live_procs(p)) == 2)
        st = c.call("status", job=ev[0]["job"])
        self.assertEqual((st["state"], st["attempt"]), ("failed", 3))


# ---- a job stuck inside one step ----

def until_hanging(c, rid):
    """Until the hang task's progress: its step runs, and a cancel from
    now on goes unheard (one sent before the step began would be heard
    there)."""
    while True:
        m = c.recv_for(rid)
        assert m is not None and m["t"] != "end", m
        if m["t"] == "progress":
            return m


@unittest.skipUnless(os.path.exists(FAULTY),
                     "the faulty plugin is not built (CONCD_PLUGINS)")
class StuckJob(unittest.TestCase):
    """The faulty plugin's hang task never returns from its step: its
    worker is killed five seconds after the cancel, and the job still ends
    as asked."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        shutil.copy(FAULTY, self.dir)
        self.d = Daemon("-p", "2", "--plugin-dir", self.dir)

    def tearDown(self):
        self.d.close()
        shutil.rmtree(self.dir)

    def test_a_cancel_kills_the_worker_of_a_stuck_job_which_ends_cancelled(
            self):
        c = self.d.client()
        rid = c.request("submit", task="hang", exec="process", watch=True)
        job = c.recv_for(rid)["job"]
        until_hanging(c, rid)  # "running" came before the step began
        pid = c.wait_state(job, "running")["tid"]
        c.call("cancel", job=job)
        end = c.until_end(rid)[-1]
        self.assertEqual((end["state"], end["error"]),
                         ("cancelled", "cancelled"))
        self.assertIn("did not stop within 5 s of its cancel", end["message"])
        p = wait_pool(c, lambda p: len(live_procs(p)) == 2)
        self.assertNotIn(pid, [w["pid"] for w in live_procs(p)])

    def test_a_timeout_kills_the_worker_of_a_stuck_job_which_ends_timed_out(
            self):
        c = self.d.client()
        end = c.until_end(c.request("submit", task="hang", exec="process",
                                    timeout=100, watch=True))[-1]
        self.assertEqual((end["state"], end["error"]),
                         ("timed_out", "timed_out"))
        self.assertIn("did not stop within 5 s of its cancel", end["message"])


@unittest.skipUnless(os.path.exists(FAULTY),
                     "the faulty plugin is not built (CONCD_PLUGINS)")
class StuckThread(unittest.TestCase):
    """A thread cannot be killed: concd stops without it."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        shutil.copy(FAULTY, self.dir)
        self.d = Daemon("-p", "1", "--stop-timeout", "1", "--plugin-dir",
                        self.dir)

    def tearDown(self):
        self.d.close()
        shutil.rmtree(self.dir)

    def test_stopping_concd_does_not_wait_forever_for_a_stuck_thread(self):
        c = self.d.client()
        rid = c.request("submit", task="hang", exec="thread", watch=True)
        job = c.recv_for(rid)["job"]
        until_hanging(c, rid)
        self.d.proc.send_signal(signal.SIGTERM)
        # the stop timeout (1 s), the hard limit (10 s), a second to join
        self.assertEqual(self.d.proc.wait(BOUND), 0)
        log = self.d.log()
        self.assertIn("1 jobs did not end after being cancelled", log)
        self.assertIn("is stuck in job %d; exiting without it" % job, log)


# ---- jobs waiting while a worker is idle ----

class IdleWorker(DaemonTest):
    args = ("-p", "2")

    def test_a_short_job_never_waits_behind_a_long_one_while_a_worker_is_idle(
            self):
        c = self.d.client()
        # four jobs in one read: every worker gets a long one and a short
        # one behind it
        long_ = [dict(task="sleep", args={"ms": 600000}, exec="process")] * 2
        short = [dict(task="sleep", args={"ms": 0}, exec="process")] * 2
        rids = [c.request("submit", watch=True, **s) for s in long_ + short]
        jobs = [c.recv_for(rid)["job"] for rid in rids]
        a, b = (c.wait_state(j, "running") for j in jobs[:2])
        self.assertNotEqual(a["worker"], b["worker"])
        # b ends: its worker runs what it was given, then has nothing
        c.call("cancel", job=jobs[1])
        self.assertEqual(c.until_end(rids[1])[-1]["state"], "cancelled")
        for rid in rids[2:]:
            end = c.until_end(rid)[-1]
            self.assertEqual(end["state"], "succeeded")
            self.assertEqual(end["worker"], b["worker"])
        self.assertEqual(c.call("status", job=jobs[0])["state"], "running")
        c.call("cancel", job=jobs[0])
        self.assertEqual(c.until_end(rids[0])[-1]["state"], "cancelled")

    def test_a_stream_of_short_jobs_still_goes_out_in_batches(self):
        c = self.d.client()
        rids = [c.request("submit", task="noop", exec="process", watch=True)
                for _ in range(2000)]
        ends = [c.until_end(rid)[-1] for rid in rids]
        self.assertTrue(all(e["state"] == "succeeded" for e in ends))
        self.assertEqual({e["worker"] for e in ends}, {0, 1})
        self.assertEqual(sum(w["served"] for w in rows(c, "process")), 2000)


# ---- out of file descriptors ----

NOFILE = 64


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@unittest.skipIf(VALGRIND, "valgrind needs descriptors of its own")
class OutOfDescriptors(unittest.TestCase):
    """concd with RLIMIT_NOFILE 64 and every descriptor taken by clients."""

    def setUp(self):
        self.d = Daemon("-p", "2", threads=2, notify=False,
                        preexec_fn=low_nofile)
        self.clients = []

    def tearDown(self):
        for cl in self.clients:
            cl.close()
        self.d.close()

    def nfds(self):
        return len(os.listdir("/proc/%d/fd" % self.d.proc.pid))

    def exhaust(self):
        """Connect until concd holds every descriptor it may have; each
        connection is known accepted when it answers a ping."""
        while self.nfds() < NOFILE:
            cl = Client(self.d.socket)
            self.assertEqual(cl.call("ping")["t"], "pong")
            self.clients.append(cl)
        self.assertEqual(self.nfds(), NOFILE)

    def test_the_process_pool_refills_once_descriptors_are_free(self):
        c = self.d.client()
        self.clients.append(c)
        pids = [w["pid"] for w in rows(c, "process")]
        self.exhaust()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        p = wait_pool(c, lambda p: [w["state"] for w in p["workers"]
                                    if w["exec"] == "process"]
                      == ["missing", "missing"])
        self.assertEqual(p["processes"], 2)
        self.assertEqual(sorted(w["worker"] for w in p["workers"]
                                if w["exec"] == "process"), [0, 1])
        # an auto primes job waits for a worker process...
        rid = c.request("submit", task="primes", args={"n": 100000},
                        watch=True)
        job = c.recv_for(rid)["job"]
        st = c.call("status", job=job)
        self.assertEqual((st["state"], st["exec"]), ("queued", "process"))
        # ...and runs once the pool could start them again
        for cl in self.clients[-10:]:
            cl.close()
        del self.clients[-10:]
        end = c.until_end(rid)[-1]
        self.assertEqual((end["state"], end["result"]), ("succeeded", 9592))
        p = wait_pool(c, lambda p: len(live_procs(p)) == 2)
        self.assertFalse(set(pids) & {w["pid"] for w in live_procs(p)})
        self.assertIn("workers missing", self.d.log())
        self.assertIn("all 2 workers running again", self.d.log())

    def test_the_thread_pool_grows_once_descriptors_are_free(self):
        c = self.d.client()
        self.clients.append(c)
        self.exhaust()
        m = c.call("resize", threads=4)
        self.assertEqual((m["t"], m["threads"]), ("ok", 4))
        states = [(w["worker"], w["state"]) for w in rows(c, "thread")]
        self.assertEqual(states[2:], [(2, "missing"), (3, "missing")])
        for cl in self.clients[-10:]:
            cl.close()
        del self.clients[-10:]
        p = wait_pool(c, lambda p: [w["state"] for w in p["workers"]
                                    if w["exec"] == "thread"]
                      == ["idle"] * 4)
        self.assertEqual(p["threads"], 4)
        end = c.until_end(c.request("submit", task="primes",
                                    args={"n": 1000}, exec="thread",
                                    watch=True))[-1]
        self.assertEqual(end["result"], 168)


if __name__ == "__main__":
    unittest.main()
