"""Job control on the wire: gather, retries, queue limits, ps paging,
retention of finished jobs, and the configuration file."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, CONCD, Daemon, DaemonTest  # noqa: E402


def gather(c, jobs, **kw):
    rid = c.request("gather", jobs=jobs, **kw)
    acc = c.recv_for(rid)
    return rid, acc


def gather_ends(c, rid, n):
    ends = {}
    order = []
    while len(ends) < n:
        m = c.recv_for(rid)
        assert m is not None
        if m["t"] == "end":
            ends[m["index"]] = m
            order.append(m["index"])
    return ends, order


class Gather(DaemonTest):
    args = ("-p", "2")

    def test_results_come_tagged_with_their_index(self):
        c = self.d.client()
        jobs = [{"task": "primes", "args": {"n": 100 * (i + 1)}}
                for i in range(20)]
        rid, acc = gather(c, jobs)
        self.assertEqual(acc["t"], "accepted")
        self.assertEqual(len(acc["jobs"]), 20)
        ends, _ = gather_ends(c, rid, 20)
        self.assertEqual(ends[0]["result"], 25)     # pi(100)
        self.assertEqual(ends[9]["result"], 168)    # pi(1000)
        self.assertEqual([ends[i]["job"] for i in range(20)], acc["jobs"])

    def test_one_bad_entry_refuses_the_whole_gather(self):
        c = self.d.client()
        before = c.call("ps", all=True)["total"]
        m = c.call("gather", jobs=[{"task": "noop"}, {"task": "nope"},
                                   {"task": "noop"}])
        self.assertEqual((m["t"], m["error"], m["index"]),
                         ("error", "unknown_task", 1))
        m = c.call("gather", jobs=[{"task": "primes", "args": {"n": "x"}}])
        self.assertEqual((m["error"], m["index"]), ("bad_args", 0))
        m = c.call("gather", jobs=[{"task": 3}])
        self.assertEqual((m["error"], m["index"]), ("bad_field", 0))
        m = c.call("gather", jobs=[])
        self.assertEqual(m["error"], "bad_field")
        self.assertEqual(c.call("ps", all=True)["total"], before)

    def test_failures_are_gathered_without_stopping_the_others(self):
        c = self.d.client()
        gate = self.d.gate()
        jobs = [{"task": "exec", "args": {"argv": gate.argv},
                 "exec": "thread"},
                {"task": "sleep", "args": {"ms": 600000}, "timeout": 50},
                {"task": "primes", "args": {"n": 10}}]
        rid, acc = gather(c, jobs)
        ends, order = gather_ends(c, rid, 2)
        self.assertEqual(sorted(order), [1, 2])  # the first is held
        gate.release()
        more, _ = gather_ends(c, rid, 1)
        ends.update(more)
        self.assertEqual([ends[i]["state"] for i in range(3)],
                         ["succeeded", "timed_out", "succeeded"])

    def test_fail_fast_cancels_the_rest(self):
        c = self.d.client()
        jobs = [{"task": "sleep", "args": {"ms": 600000}, "exec": x}
                for x in ("loop", "thread", "process")]
        jobs.append({"task": "sleep", "args": {"ms": 600000},
                     "timeout": 100})
        rid, acc = gather(c, jobs, fail_fast=True)
        ends, _ = gather_ends(c, rid, 4)
        self.assertEqual(ends[3]["state"], "timed_out")
        for i in range(3):
            self.assertEqual(ends[i]["state"], "cancelled", i)

    def test_every_event_of_a_member_reaches_the_gather_with_its_index(self):
        c = self.d.client()
        jobs = [{"task": "noop"},
                {"task": "sleep", "args": {"ms": 600000}, "timeout": 20,
                 "retries": 1, "exec": "loop"},
                {"task": "sleep", "args": {"ms": 600000}, "exec": "loop"}]
        rid, acc = gather(c, jobs)
        # a second client watches one member on its own request
        other = self.d.client()
        wid = other.request("watch", job=acc["jobs"][2])
        other.wait_state(acc["jobs"][2], "running")
        seen = []
        while len([m for m in seen if m["t"] == "end"]) < 2:
            seen.append(c.recv_for(rid))
        self.assertEqual([(m["t"], m["index"]) for m in seen],
                         [("end", 0), ("retry", 1), ("end", 1)])
        self.assertEqual([m["job"] for m in seen],
                         [acc["jobs"][0], acc["jobs"][1], acc["jobs"][1]])
        self.assertEqual(c.call("cancel", job=acc["jobs"][2])["t"], "ok")
        end = c.recv_for(rid)
        self.assertEqual((end["t"], end["index"], end["state"]),
                         ("end", 2, "cancelled"))
        # the other watcher gets the same end, without an index
        theirs = other.until_end(wid)[-1]
        self.assertEqual(theirs["state"], "cancelled")
        self.assertNotIn("index", theirs)

    def test_a_gathering_client_that_vanishes_leaves_its_jobs_running(self):
        c = self.d.client()
        jobs = [{"task": "sleep", "args": {"ms": 600000}, "exec": "loop"}
                for _ in range(3)]
        _, acc = gather(c, jobs)
        c.close()
        other = self.d.client()
        for job in acc["jobs"]:
            other.wait_state(job, "running")
        # cancelling them sends ends to nobody and loses nothing
        for job in acc["jobs"]:
            self.assertEqual(other.call("cancel", job=job)["t"], "ok")
        for job in acc["jobs"]:
            other.wait_state(job, "cancelled")
        self.assertEqual(other.call("ping")["t"], "pong")


class Retries(DaemonTest):
    args = ("-p", "2")

    def test_a_failing_job_is_run_again_up_to_its_retries(self):
        c = self.d.client()
        # a sleep that always times out stands in for a flaky job
        rid = c.request("submit", task="sleep", args={"ms": 600000},
                        timeout=50, retries=2, retry_delay=10,
                        exec="thread", watch=True)
        ev = c.until_end(rid)
        retries = [e for e in ev if e["t"] == "retry"]
        self.assertEqual([r["attempt"] for r in retries], [2, 3])
        self.assertTrue(all(r["error"] == "timed_out" for r in retries))
        self.assertEqual(ev[-1]["state"], "timed_out")
        st = c.call("status", job=ev[-1]["job"])
        self.assertEqual((st["attempt"], st["retries"]), (3, 2))
        # retried attempts run on fresh workers
        self.assertEqual(ev[-1]["worker"], -1)

    def test_a_retry_never_comes_before_its_delay(self):
        # a checksum of a missing file fails at once; its second attempt
        # starts retry_delay later at the soonest, though libevent's timers
        # go by the kernel's coarse clock (a 4 ms tick here)
        c = self.d.client()
        for x in ("thread", "process"):
            rids = [c.request("submit", task="checksum",
                              args={"path": "/nonexistent/concd-test"},
                              retries=1, retry_delay=7, exec=x, watch=True)
                    for _ in range(40)]
            for rid in rids:
                ev = c.until_end(rid)
                self.assertEqual([e.get("attempt") for e in ev
                                  if e["t"] == "retry"], [2], ev)
                end = ev[-1]
                self.assertEqual(end["state"], "failed", end)
                self.assertGreaterEqual(end["started"] - end["submitted"],
                                        7000, (x, end))

    def test_a_cancelled_job_is_never_retried(self):
        c = self.d.client()
        rid = c.request("submit", task="sleep", args={"ms": 600000},
                        retries=3, exec="loop", watch=True)
        job = c.recv_for(rid)["job"]
        c.call("cancel", job=job)
        ev = c.until_end(rid)
        self.assertEqual([e["t"] for e in ev], ["end"])
        self.assertEqual(ev[-1]["state"], "cancelled")

    def test_cancel_between_attempts_ends_the_job(self):
        c = self.d.client()
        rid = c.request("submit", task="sleep", args={"ms": 600000},
                        timeout=20, retries=5, retry_delay=600000,
                        exec="loop", watch=True)
        job = c.recv_for(rid)["job"]
        m = c.recv_for(rid)
        self.assertEqual((m["t"], m["attempt"]), ("retry", 2))
        self.assertEqual(c.call("status", job=job)["state"], "queued")
        c.call("cancel", job=job)
        self.assertEqual(c.until_end(rid)[-1]["state"], "cancelled")

    def test_retries_are_bounded(self):
        m = self.d.client().call("submit", task="noop", retries=1000)
        self.assertEqual((m["t"], m["error"]), ("error", "bad_field"))


class QueueLimit(unittest.TestCase):
    def test_submissions_beyond_the_queue_limit_are_refused(self):
        d = Daemon("-p", "1", "--queue-limit", "3")
        try:
            c = d.client()
            # daemon jobs: concd does not drain them when it stops
            busy = c.call("submit", task="sleep", args={"ms": 600000},
                          exec="thread", daemon=True)["job"]
            busy2 = c.call("submit", task="sleep", args={"ms": 600000},
                           exec="thread", daemon=True)["job"]
            c.wait_state(busy, "running")
            c.wait_state(busy2, "running")
            for _ in range(3):
                self.assertEqual(c.call("submit", task="noop",
                                        exec="thread")["t"], "accepted")
            m = c.call("submit", task="noop", exec="thread")
            self.assertEqual((m["t"], m["error"]), ("error", "queue_full"))
            self.assertIn("thread", m["message"])
            # other executors have their own queues
            self.assertEqual(c.call("submit", task="noop",
                                    exec="loop")["t"], "accepted")
            m = c.call("gather", jobs=[{"task": "noop", "exec": "thread"}])
            self.assertEqual(m["error"], "queue_full")
        finally:
            d.close()


class Paging(DaemonTest):
    def test_ps_filters_by_state_pages_and_counts(self):
        c = self.d.client()
        rid, acc = gather(c, [{"task": "noop"} for _ in range(30)])
        gather_ends(c, rid, 30)
        running = c.call("submit", task="sleep", args={"ms": 600000},
                         daemon=True)["job"]
        ps = c.call("ps", all=True, limit=5)
        self.assertEqual([j["job"] for j in ps["jobs"]],
                         list(range(running - 4, running + 1)))
        self.assertEqual(ps["total"], 31)
        self.assertEqual((ps["counts"]["succeeded"], ps["counts"]["running"]),
                         (30, 1))
        ps = c.call("ps", state="running")
        self.assertEqual(([j["job"] for j in ps["jobs"]], ps["total"]),
                         ([running], 1))
        ps = c.call("ps", state="succeeded", limit=3)
        self.assertEqual((len(ps["jobs"]), ps["total"]), (3, 30))
        m = c.call("ps", state="sleepy")
        self.assertEqual(m["error"], "bad_field")

    def test_ps_n_0_shows_the_counts_without_rows(self):
        c = self.d.client()
        rid, acc = gather(c, [{"task": "noop"} for _ in range(3)])
        gather_ends(c, rid, 3)
        r = self.d.concctl("ps", "-a", "-n", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        # the table has its titles and no row
        self.assertEqual(len(r.stdout.splitlines()), 1, r.stdout)
        self.assertIn("ID", r.stdout)
        self.assertEqual(r.stderr, "counts: 3 succeeded\nshowing 0 of 3\n")
        r = self.d.concctl("--json", "ps", "-a", "-n", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = json.loads(r.stdout)
        self.assertEqual((m["total"], m["counts"]["succeeded"],
                          m.get("jobs", [])), (3, 3, []))


class Retention(unittest.TestCase):
    def test_only_the_newest_finished_jobs_are_kept(self):
        d = Daemon("--max-finished", "5")
        try:
            c = d.client()
            rid, acc = gather(c, [{"task": "noop"} for _ in range(8)])
            gather_ends(c, rid, 8)
            ids = acc["jobs"]
            self.assertEqual(c.call("status", job=ids[0])["error"],
                             "no_such_job")
            self.assertEqual(c.call("result", job=ids[-1])["state"],
                             "succeeded")
            self.assertEqual(c.call("ps", all=True)["total"], 5)
        finally:
            d.close()


class ConfigFile(unittest.TestCase):
    """concd.conf: mistakes stop start-up with a reason, and a reload that
    cannot read the file keeps the running configuration."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="concd-test-")
        self.conf = os.path.join(self.dir, "concd.conf")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, *args):
        return subprocess.run([CONCD, "-f", "-s",
                               os.path.join(self.dir, "s")] + list(args),
                              capture_output=True, text=True, timeout=BOUND)

    def write(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def test_a_directory_given_with_c_stops_start_up(self):
        r = self.start("-c", self.dir)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s: Is a directory" % self.dir, r.stderr)

    def test_a_bad_value_in_the_file_is_reported_though_a_flag_sets_it(self):
        self.write("processes = -1\n")
        r = self.start("-c", self.conf, "-p", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("concd.conf:1: processes must be a number from 0 to",
                      r.stderr)

    def test_numbers_are_plain_decimal(self):
        for value in ("+3", "3.0", "0x3", " 3 3"):
            self.write("threads = %s\n" % value)
            r = self.start("-c", self.conf)
            self.assertEqual(r.returncode, 1, value)
            self.assertIn("concd.conf:1: threads must be a number from 1 to",
                          r.stderr)
        r = subprocess.run([CONCD, "-f", "-t", "+3"], capture_output=True,
                           text=True, timeout=BOUND)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--threads: threads must be a number", r.stderr)

    def test_a_reload_of_a_deleted_file_keeps_the_configuration(self):
        self.write("processes = 1\n")
        d = Daemon("-c", self.conf)
        try:
            c = d.client()
            self.assertEqual(c.call("pool")["processes"], 1)
            os.unlink(self.conf)
            d.proc.send_signal(signal.SIGHUP)
            want = ("reload: %s: No such file or directory; keeping the "
                    "running configuration" % self.conf)
            deadline = time.monotonic() + BOUND
            while want not in d.log():
                self.assertLess(time.monotonic(), deadline, d.log())
                # the reply is an event: the loop has turned since
                self.assertEqual(c.call("ping")["t"], "pong")
            self.assertNotIn("reloaded", d.log())
            self.assertEqual(c.call("pool")["processes"], 1)
            self.assertEqual(d.stop(), 0)
        finally:
            d.close()


if __name__ == "__main__":
    harness.main()
