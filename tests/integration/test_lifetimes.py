"""Job lifetimes on stop: --daemon jobs are killed at once, the others are
drained within the stop timeout, and clients get every final event."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, Daemon  # noqa: E402


def submit(c, daemon=False, ms=300, exec_="loop", watch=True):
    rid = c.request("submit", task="sleep", args={"ms": ms}, exec=exec_,
                    daemon=daemon, watch=watch)
    m = c.recv_for(rid)
    assert m["t"] == "accepted", m
    return rid, m["job"]


def submit_held(c, gate, exec_):
    """A job that runs until the test releases gate."""
    rid = c.request("submit", task="exec", args={"argv": gate.argv},
                    exec=exec_, watch=True)
    m = c.recv_for(rid)
    assert m["t"] == "accepted", m
    return rid, m["job"]


class Stop(unittest.TestCase):
    def setUp(self):
        self.d = Daemon("-p", "2", "--stop-timeout", "30")

    def tearDown(self):
        self.d.close()

    def wait_running(self, c, job):
        c.wait_state(job, "running")

    def test_sigterm_kills_daemon_jobs_and_drains_the_others(self):
        c = self.d.client()
        # three commands at once: more than the CPUs, perhaps
        c.call("group", op="set", name="default", parallel=0)
        gate = self.d.gate()
        jobs = {}
        for x in ("loop", "thread", "process"):
            jobs["daemon-" + x] = submit(c, True, 600000, x)
            jobs["normal-" + x] = submit_held(c, gate, x)
        for _, job in jobs.values():
            self.wait_running(c, job)
        workers = [w["pid"] for w in c.call("pool")["workers"]
                   if w["exec"] == "process"]
        self.d.proc.send_signal(signal.SIGTERM)
        self.d.notify.wait_for("STATUS=stopping: draining 3 running")
        gate.release()
        for name, (rid, _) in jobs.items():
            end = c.until_end(rid)[-1]
            want = "cancelled" if name.startswith("daemon") else "succeeded"
            self.assertEqual(end["state"], want, name)
        self.assertEqual(self.d.proc.wait(BOUND), 0)
        log = self.d.log()
        self.assertIn("draining 3 jobs", log)
        self.assertIn("killed 3 daemon jobs", log)
        self.assertIn("stopped: 3 jobs drained, 3 daemon jobs killed, "
                      "0 queued jobs cancelled, 0 cut off", log)
        self.d.notify.wait_for("STOPPING=1")
        # nothing left behind: the worker processes were reaped with it
        for pid in workers:
            self.assertFalse(os.path.exists("/proc/%d" % pid), pid)

    def test_queued_jobs_are_drained_too_unless_cancel_pending(self):
        c = self.d.client()
        gate = self.d.gate()
        running = [submit_held(c, gate, "process") for _ in range(2)]
        queued = submit(c, False, 100, "process")
        for r in running:
            self.wait_running(c, r[1])
        self.assertEqual(c.call("status", job=queued[1])["state"], "queued")
        self.assertEqual(c.call("shutdown")["t"], "ok")
        gate.release()
        running = running[0]
        self.assertEqual(c.until_end(running[0])[-1]["state"], "succeeded")
        self.assertEqual(c.until_end(queued[0])[-1]["state"], "succeeded")
        self.assertEqual(self.d.proc.wait(BOUND), 0)

    def test_cancel_pending_cancels_the_queue_and_drains_the_running(self):
        c = self.d.client()
        gate = self.d.gate()
        running = [submit_held(c, gate, "process") for _ in range(2)]
        queued = submit(c, False, 100, "process")
        for r in running:
            self.wait_running(c, r[1])
        c.call("shutdown", cancel_pending=True)
        running = running[0]
        self.assertEqual(c.until_end(queued[0])[-1]["state"], "cancelled")
        gate.release()
        self.assertEqual(c.until_end(running[0])[-1]["state"], "succeeded")
        self.assertEqual(self.d.proc.wait(BOUND), 0)
        self.assertIn("1 queued jobs cancelled", self.d.log())

    def test_new_jobs_are_refused_while_draining(self):
        c = self.d.client()
        gate = self.d.gate()
        rid, job = submit_held(c, gate, "loop")
        self.d.proc.send_signal(signal.SIGTERM)
        self.d.notify.wait_for("STOPPING=1")
        m = c.call("submit", task="noop")
        self.assertEqual((m["t"], m["error"]), ("error", "shutting_down"))
        gate.release()
        self.assertEqual(c.until_end(rid)[-1]["state"], "succeeded")
        self.assertEqual(self.d.proc.wait(BOUND), 0)

    def test_a_second_sigterm_cuts_the_drain_short(self):
        c = self.d.client()
        rids = [submit(c, False, 600000, x) for x in
                ("loop", "thread", "process")]
        for _, job in rids:
            self.wait_running(c, job)
        self.d.proc.send_signal(signal.SIGTERM)
        self.d.notify.wait_for("STATUS=stopping: draining 3 running")
        self.d.proc.send_signal(signal.SIGTERM)
        for rid, _ in rids:
            self.assertEqual(c.until_end(rid)[-1]["state"], "cancelled")
        self.assertEqual(self.d.proc.wait(BOUND), 0)
        log = self.d.log()
        self.assertIn("cut off while running", log)
        self.assertIn("3 cut off", log)

    def test_a_daemon_job_still_ending_is_not_cut_off_again(self):
        c = self.d.client()
        gate = self.d.gate()
        ready = os.path.join(self.d.dir, "trapped")
        # killed by the stop, the command winds down until the test lets it
        script = ("trap '%s; exit 0' TERM; : > %s; while :; do sleep 1; done"
                  % (" ".join(gate.argv[2:]), ready))
        rid = c.request("submit", task="exec", exec="process", daemon=True,
                        watch=True, args={"argv": ["sh", "-c", script]})
        m = c.recv_for(rid)
        self.assertEqual(m["t"], "accepted", m)
        c.wait_state(m["job"], "running")
        deadline = time.monotonic() + BOUND
        while not os.path.exists(ready):  # the trap is set
            self.assertLess(time.monotonic(), deadline)
            c.call("ping")
        self.d.proc.send_signal(signal.SIGTERM)
        self.d.notify.wait_for("STATUS=stopping: draining 1 running")
        self.d.proc.send_signal(signal.SIGTERM)
        self.d.wait_log("cancelling the 1 jobs still active")
        gate.release()
        self.assertEqual(c.until_end(rid)[-1]["state"], "cancelled")
        self.assertEqual(self.d.proc.wait(BOUND), 0)
        log = self.d.log()
        self.assertNotIn("cut off while", log)
        self.assertIn("stopped: 0 jobs drained, 1 daemon jobs killed, "
                      "0 queued jobs cancelled, 0 cut off", log)
        self.assertEqual(log.count("stopped: "), 1, log)


class StopTimeout(unittest.TestCase):
    def test_the_stop_timeout_cuts_off_what_is_left(self):
        d = Daemon("-p", "1", "--stop-timeout", "1")
        try:
            c = d.client()
            rid, job = submit(c, False, 600000, "thread")
            c.wait_state(job, "running")
            d.proc.send_signal(signal.SIGTERM)
            end = c.until_end(rid)[-1]
            self.assertEqual(end["state"], "cancelled")
            self.assertGreaterEqual(end["finished"] - end["started"], 900000)
            self.assertEqual(d.proc.wait(BOUND), 0)
            self.assertIn("stop timeout", d.log())
        finally:
            d.close()


if __name__ == "__main__":
    harness.main()
