"""The remote executor: warm concd workers on the nodes of a private
single-node Slurm cluster (slurm_cluster.py), started with
`concctl pool add --slurm N` and spoken to over srun's standard input and
output.  Skips with the cluster's reason where it cannot run (no root,
no Slurm).  Waits are for events, each with a bound."""
import json
import os
import resource
import signal
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BOUND, Daemon, main  # noqa: E402
from slurm_cluster import Cluster  # noqa: E402

cluster = None


def setUpModule():
    global cluster
    if Cluster.why_not() is None:
        cluster = Cluster()


def tearDownModule():
    if cluster is not None:
        cluster.stop()


def until(cond, what, bound=BOUND):
    """Ask cond again until it holds (each asking is a round trip to concd
    or Slurm); fail after bound seconds."""
    deadline = time.monotonic() + bound
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("not within %ss: %s" % (bound, what))
        time.sleep(0.02)


class RemoteTest(unittest.TestCase):
    conf = ""

    def setUp(self):
        why = Cluster.why_not()
        if why is not None:
            self.skipTest(why)
        self.daemons = []
        self.tmp = None

    def tearDown(self):
        for d in self.daemons:
            d.close()
        # no test leaves an allocation to the next
        for jid, name, state in cluster.jobs():
            cluster.run("scancel", jid)

    def start(self, conf="", state_dir=None, preexec_fn=None):
        path = os.path.join(cluster.dir, "concd-%d.conf" % len(self.daemons))
        with open(path, "w") as f:
            f.write("[slurm]\nenabled = yes\n" + self.conf + conf)
        args = ["-c", path]
        if state_dir is not None:
            args += ["--state-dir", state_dir]
        d = Daemon(*args, env=cluster.env(), preexec_fn=preexec_fn)
        self.daemons.append(d)
        return d

    def pool(self, d):
        r = d.concctl("--json", "pool")
        self.assertEqual(r.returncode, 0, r.stderr)
        return [w for w in json.loads(r.stdout)["workers"]
                if w["exec"] == "remote"]

    def add(self, d, n, state="idle"):
        r = d.concctl("pool", "add", "--slurm", n)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("remote workers asked of Slurm", r.stdout)
        return until(lambda: [w for w in self.pool(d)
                              if w["state"] == state][n - 1:] and
                     self.pool(d),
                     "%d remote workers %s" % (n, state))

    def pool_jobs(self):
        return [j for j in cluster.jobs() if "-pool-" in j[1]]

    def wait_state(self, d, job, *states):
        def state():
            r = d.concctl("--json", "status", job)
            s = json.loads(r.stdout) if r.returncode == 0 else {}
            return s if s.get("state") in states else None
        return until(state, "job %s %s" % (job, "/".join(states)))


class PoolTest(RemoteTest):
    def test_pool_add_lists_workers_with_node_slurm_job_and_idle(self):
        d = self.start()
        workers = self.add(d, 2)
        self.assertEqual(len(workers), 2)
        jobs = self.pool_jobs()
        self.assertEqual(len(jobs), 1, jobs)
        self.assertRegex(jobs[0][1], r"^concd-[0-9a-f]+-pool-0$")
        for w in workers:
            self.assertEqual(w["state"], "idle")
            self.assertEqual(w["node"], cluster.node)
            self.assertEqual(str(w["slurm_job"]), jobs[0][0])
            self.assertGreater(w["pid"], 0)
            self.assertEqual(w["served"], 0)
        self.assertEqual(sorted(w["worker"] for w in workers), [0, 1])
        # the human table: a second one, with the node and the Slurm job
        r = d.concctl("pool")
        self.assertIn("remote workers:", r.stdout)
        self.assertRegex(r.stdout, r"(?m)^ +0 +%s +%s +\d+ +idle +0 "
                         % (cluster.node, jobs[0][0]))

    def test_a_remote_job_gives_the_right_result_and_shows_its_node(self):
        d = self.start()
        self.add(d, 2)
        r = d.concctl("run", "primes", "n=100000", "-x", "remote")
        self.assertEqual((r.returncode, r.stdout), (0, "9592\n"), r.stderr)
        r = d.concctl("--json", "status", "1")
        s = json.loads(r.stdout)
        self.assertEqual((s["exec"], s["state"], s["node"]),
                         ("remote", "succeeded", cluster.node))
        self.assertEqual(str(s["slurm_job"]), self.pool_jobs()[0][0])
        # an exec job's output and exit status come back too
        r = d.concctl("run", "-x", "remote", "--no-stdin", "exec", "--",
                      "sh", "-c", "echo out; exit 3")
        self.assertEqual((r.returncode, r.stdout), (3, "out\n"), r.stderr)
        # auto keeps the work here unless slurm.auto-remote says otherwise
        r = d.concctl("--json", "submit", "primes", "n=1000")
        job = json.loads(r.stdout)["job"]
        self.assertEqual(self.wait_state(d, job, "succeeded")["exec"],
                         "process")

    def test_a_remote_command_gets_the_soft_limit_on_open_files_of_concd(
            self):
        # the one concd was started with, not the one it raised its own to
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard <= 1000:
            self.skipTest("hard limit on open files %d" % hard)
        d = self.start(preexec_fn=lambda: resource.setrlimit(
            resource.RLIMIT_NOFILE, (1000, hard)))
        self.add(d, 1)
        r = d.concctl("run", "-x", "remote", "--no-stdin", "exec", "--",
                      "sh", "-c", "ulimit -Sn")
        self.assertEqual((r.returncode, r.stdout), (0, "1000\n"), r.stderr)

    def test_auto_remote_sends_process_tasks_to_remote_workers(self):
        d = self.start("auto-remote = yes\n")
        r = d.concctl("--json", "submit", "primes", "n=1000")
        job = json.loads(r.stdout)["job"]
        self.assertEqual(self.wait_state(d, job, "succeeded")["exec"],
                         "process")  # no remote worker yet
        self.add(d, 1)
        r = d.concctl("--json", "submit", "primes", "n=1000")
        job = json.loads(r.stdout)["job"]
        self.assertEqual(self.wait_state(d, job, "succeeded")["exec"],
                         "remote")

    def test_a_gather_of_1000_noops_all_succeed_on_two_workers(self):
        d = self.start()
        self.add(d, 2)
        r = d.concctl("gather", input="noop -x remote\n" * 1000)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1000)
        self.assertTrue(all(" succeeded " in l for l in lines), lines[:3])
        served = [w["served"] for w in self.pool(d)]
        self.assertEqual(sum(served), 1000)
        self.assertTrue(all(s > 0 for s in served), served)

    def test_an_idle_worker_takes_the_jobs_waiting_behind_a_long_one(self):
        d = self.start()
        self.add(d, 2)
        lines = "sleep ms=2000 -x remote\n" + "noop -x remote\n" * 40
        t0 = time.monotonic()
        r = d.concctl("gather", "--as-completed", input=lines)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.splitlines()
        self.assertEqual(len(out), 41)
        # the sleep's end comes last: no no-op waited behind it
        self.assertTrue(out[-1].startswith("0 "), out[-3:])
        self.assertLess(time.monotonic() - t0, 2.0 + BOUND)
        served = {w["worker"]: w["served"] for w in self.pool(d)}
        self.assertEqual(sum(served.values()), 41)

    def test_a_killed_worker_fails_only_its_running_job_naming_the_node(self):
        d = self.start()
        self.add(d, 2)
        r = d.concctl("--json", "submit", "-x", "remote", "sleep",
                      "ms=60000")
        held = json.loads(r.stdout)["job"]
        self.wait_state(d, held, "running")
        w = until(lambda: [w for w in self.pool(d) if w.get("job") == held],
                  "the worker of job %d" % held)[0]
        os.kill(w["pid"], signal.SIGKILL)
        s = self.wait_state(d, held, "failed")
        self.assertEqual(s["error"], "node_failed")
        self.assertIn("on node %s" % cluster.node, s["message"])
        self.assertIn("remote worker %d" % w["worker"], s["message"])
        # the other worker goes on; the lost one stays in the pool
        r = d.concctl("gather", input="noop -x remote\n" * 50)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(" succeeded "), 50)
        rows = {x["worker"]: x for x in self.pool(d)}
        self.assertEqual(rows[w["worker"]]["state"], "lost")
        other = [x for x in rows.values() if x["worker"] != w["worker"]]
        self.assertEqual([(x["state"], x["served"]) for x in other],
                         [("idle", 50)])
        self.assertIn("was lost with jobs on it", d.log())

    def test_cancel_ends_a_running_and_a_waiting_remote_job(self):
        d = self.start()
        self.add(d, 1)
        jobs = []
        for _ in range(2):
            r = d.concctl("--json", "submit", "-x", "remote", "sleep",
                          "ms=60000")
            jobs.append(json.loads(r.stdout)["job"])
        self.wait_state(d, jobs[0], "running")
        for job in reversed(jobs):  # the waiting one, then the running
            r = d.concctl("cancel", job)
            self.assertEqual(r.returncode, 0, r.stderr)
        for job in jobs:
            self.assertEqual(self.wait_state(d, job, "cancelled")["state"],
                             "cancelled")
        until(lambda: [w["state"] for w in self.pool(d)] == ["idle"],
              "the worker idle again")
        r = d.concctl("run", "primes", "n=1000", "-x", "remote")
        self.assertEqual(r.stdout, "168\n", r.stderr)

    def test_pool_remove_lets_jobs_finish_then_ends_the_allocation(self):
        d = self.start()
        self.add(d, 2)
        r = d.concctl("--json", "submit", "-x", "remote", "sleep", "ms=500")
        job = json.loads(r.stdout)["job"]
        self.wait_state(d, job, "running")
        r = d.concctl("pool", "remove", "--slurm")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 remote workers finish their jobs", r.stdout)
        # a new remote job is refused at once; the running one finishes
        r = d.concctl("run", "noop", "-x", "remote")
        self.assertEqual(r.returncode, 4)
        self.assertIn("no remote workers: concctl pool add --slurm N",
                      r.stderr)
        self.assertEqual(self.wait_state(d, job, "succeeded")["state"],
                         "succeeded")
        until(lambda: not self.pool_jobs(), "the allocation's end")
        until(lambda: self.pool(d) == [], "no remote rows")
        self.assertIn("released", d.log())

    def test_a_stop_drains_then_ends_the_allocation(self):
        d = self.start()
        self.add(d, 2)
        r = d.concctl("--json", "submit", "-x", "remote", "sleep", "ms=300")
        job = json.loads(r.stdout)["job"]
        self.wait_state(d, job, "running")
        log = os.path.join(cluster.dir, "stopped.log")
        d.stop()  # SIGTERM: the job is drained first
        with open(log, "w") as f:
            f.write(d.log())
        d.close()  # and the exit status was 0
        self.daemons.remove(d)
        with open(log) as f:
            text = f.read()
        self.assertIn("1 jobs drained", text)
        self.assertIn("released", text)
        until(lambda: [j for j in self.pool_jobs()
                       if j[2] not in ("COMPLETING", "CANCELLED")] == [],
              "the allocation's end")

    def test_idle_release_ends_an_idle_allocation(self):
        d = self.start("idle-release = 1\n")
        self.add(d, 1)
        until(lambda: not self.pool_jobs(), "the idle allocation's end")
        self.assertIn("idle for 1 s: releasing it", d.log())


class RefusalTest(RemoteTest):
    def test_a_remote_job_with_no_workers_is_refused(self):
        d = self.start()
        r = d.concctl("run", "noop", "-x", "remote")
        self.assertEqual(r.returncode, 4)
        self.assertIn("bad_executor: no remote workers: concctl pool add "
                      "--slurm N", r.stderr)

    def test_a_streamed_standard_input_is_refused_on_remote(self):
        d = self.start()
        self.add(d, 1)
        c = d.client()
        m = c.call("submit", task="exec", args={"argv": ["cat"]},
                   exec="remote", stdin="stream")
        self.assertEqual((m["t"], m["error"]), ("error", "bad_executor"))
        self.assertIn("streamed standard input", m["message"])

    def test_pool_add_is_for_admins_and_bounded_by_max_workers(self):
        d = self.start("max-workers = 2\n")
        r = d.concctl("pool", "add", "--slurm", 3)
        self.assertEqual(r.returncode, 4)
        self.assertIn("slurm.max-workers (2)", r.stderr)
        r = d.concctl("pool", "add", "--slurm", "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("invalid count: x", r.stderr)
        r = d.concctl("pool", "add", "1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing option: --slurm", r.stderr)
        os.chmod(d.socket, 0o666)
        r = d.concctl("pool", "add", "--slurm", 1, user=65534)
        self.assertEqual(r.returncode, 4)
        self.assertIn("permission_denied", r.stderr)
        r = d.concctl("pool", "remove", "--slurm", user=65534)
        self.assertEqual(r.returncode, 4)
        self.assertIn("permission_denied", r.stderr)
        self.assertEqual(self.pool_jobs(), [])
        r = d.concctl("pool", "--help")
        self.assertIn("pool add --slurm N [--partition P] [--time T]",
                      r.stdout)
        self.assertIn("pool remove --slurm", r.stdout)

    def test_an_allocation_slurm_refuses_is_logged_and_shown_failed(self):
        d = self.start()
        r = d.concctl("pool", "add", "--slurm", 1, "--partition", "nope")
        self.assertEqual(r.returncode, 0, r.stderr)  # salloc is not waited
        d.wait_log("remote pool: no allocation concd-")
        self.assertRegex(d.log(), r"no allocation concd-\S+-pool-0: "
                         r"salloc: error: .*[Pp]artition")
        until(lambda: [w["state"] for w in self.pool(d)] == ["failed"],
              "a failed row")
        r = d.concctl("run", "noop", "-x", "remote")
        self.assertEqual(r.returncode, 4)
        r = d.concctl("pool", "remove", "--slurm")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.pool(d), [])

    def test_a_worker_of_another_protocol_version_is_refused(self):
        script = os.path.join(cluster.dir, "old-concd")
        with open(script, "w") as f:
            f.write("#!/usr/bin/python3\n"
                    "import struct, sys, msgpack\n"
                    "b = msgpack.packb({'t': 'hello', 'id': 0, "
                    "'version': 3, 'node': 'oldnode', 'pid': 1})\n"
                    "sys.stdout.buffer.write(struct.pack('>I', len(b)) + b)\n"
                    "sys.stdout.flush()\n"
                    "sys.stdin.buffer.read()\n")
        os.chmod(script, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP |
                 stat.S_IROTH | stat.S_IXOTH)
        d = self.start("worker-path = %s\n" % script)
        r = d.concctl("pool", "add", "--slurm", 1)
        self.assertEqual(r.returncode, 0, r.stderr)
        d.wait_log("remote worker 0 on oldnode speaks protocol 3, concd "
                   "speaks 4: refused")
        until(lambda: [w["state"] for w in self.pool(d)] == ["refused"],
              "a refused row")
        r = d.concctl("run", "noop", "-x", "remote")
        self.assertEqual(r.returncode, 4)
        self.assertIn("no remote workers", r.stderr)
        until(lambda: not self.pool_jobs(), "the allocation's end")


class RestartTest(RemoteTest):
    def test_a_restart_cancels_the_allocation_a_crashed_concd_left(self):
        state = os.path.join(cluster.dir, "state-restart")
        d = self.start(state_dir=state)
        self.add(d, 1)
        name = self.pool_jobs()[0][1]
        d.expect_exit(-signal.SIGKILL)
        d.stop(signal.SIGKILL)
        # its workers end with their input; the allocation stays
        self.assertEqual([j[1] for j in self.pool_jobs()], [name])
        d2 = self.start(state_dir=state)
        until(lambda: not self.pool_jobs(), "the leftover's cancel")
        self.assertIn("remote workers an earlier concd left", d2.log())


if __name__ == "__main__":
    main()
