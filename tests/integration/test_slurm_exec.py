"""Exec jobs as Slurm jobs: the slurm executor (concd(8) SCALING OUT), on a
private single-node cluster (slurm_cluster.py).

Needs root and Debian's slurm-wlm and munge; skips otherwise, saying why.
The module makes one user, concd-slurmer, to see that a job runs on Slurm
as its owner, and removes it at the end.
"""
import grp
import json
import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BOUND, Daemon, store_instance  # noqa: E402
from slurm_cluster import Cluster  # noqa: E402

USER = "concd-slurmer"
cluster = None
top = None


def _remove_user():
    try:
        pwd.getpwnam(USER)
        subprocess.run(["userdel", USER], capture_output=True, timeout=BOUND)
    except KeyError:
        pass
    try:
        grp.getgrnam(USER)
        subprocess.run(["groupdel", USER], capture_output=True, timeout=BOUND)
    except KeyError:
        pass


def setUpModule():
    global cluster, top
    why = Cluster.why_not()
    if why is None and shutil.which("useradd") is None:
        why = "useradd is not installed"
    if why is not None:
        raise unittest.SkipTest(why)
    _remove_user()
    top = tempfile.mkdtemp(prefix="concd-slurm-test-")
    os.chmod(top, 0o755)
    subprocess.run(["useradd", "--home-dir", os.path.join(top, USER),
                    "--create-home", "--shell", "/bin/sh", "--user-group",
                    USER], check=True, capture_output=True, timeout=BOUND)
    cluster = Cluster()


def tearDownModule():
    if cluster is not None:
        cluster.stop()
    _remove_user()
    if top is not None:
        shutil.rmtree(top, ignore_errors=True)


class SlurmTest(unittest.TestCase):
    conf = "[slurm]\nenabled = yes\n"

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="concd-slurm-conf-", dir=top)
        os.chmod(self.dir, 0o755)
        self.conf_path = os.path.join(self.dir, "concd.conf")
        with open(self.conf_path, "w") as f:
            f.write(self.conf)
        self.d = self.daemon()

    def daemon(self, *args, **kw):
        # a store of the test's own, which outlives each concd on it
        return Daemon("-c", self.conf_path, "--state-dir",
                      os.path.join(self.dir, "state"), *args,
                      env=cluster.env(), **kw)

    def tearDown(self):
        self.d.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        # whatever the test did, Slurm is left with no job of concd's
        self.assertEqual(self.wait_slurm_idle(), [])

    def wait_slurm_idle(self):
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            jobs = [j for j in cluster.jobs() if j[1].startswith("concd-")]
            if not jobs:
                return []
            time.sleep(0.05)
        return jobs

    def ctl(self, *args, **kw):
        kw.setdefault("env", cluster.env())
        return self.d.concctl(*args, **kw)

    def status(self, job):
        r = self.ctl("--json", "status", job)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def wait_state(self, job, *states):
        c = self.d.client()
        return c.wait_state(job, *states)

    def gate(self):
        """A file a command waits for: (path, the shell loop that waits)."""
        path = os.path.join(self.dir, "gate-%d" % time.monotonic_ns())
        return path, "while [ ! -e %s ]; do sleep 0.05; done" % path

    def wait_started(self, job):
        """The job's command runs on the node: Slurm has said where."""
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            s = self.status(job)
            if "node" in s:
                return s
            time.sleep(0.02)
        self.fail("job %d never started on Slurm" % job)


class Basics(SlurmTest):
    def test_a_command_runs_through_slurm_with_its_output_and_status(self):
        r = self.ctl("run", "-x", "slurm", "exec", "--", "sh", "-c",
                     "echo out $SLURM_JOB_ID; echo err >&2; exit 3")
        self.assertEqual(r.returncode, 3, r.stderr)
        words = r.stdout.split()
        self.assertEqual(words[0], "out")
        self.assertIn("err\n", r.stderr)
        # the mark that says where it ran is not part of its output
        self.assertNotIn("concd-slurm", r.stdout + r.stderr)
        job = 1  # the first job of a new store
        s = self.status(job)
        self.assertEqual(s["exec"], "slurm")
        self.assertEqual(s["state"], "failed")
        self.assertEqual(s["exit"], 3)
        self.assertEqual(s["slurm_job"], int(words[1]))
        self.assertEqual(s["node"], cluster.node)
        text = self.ctl("status", job).stdout
        self.assertIn("slurm      job %s on node %s" % (words[1],
                                                       cluster.node), text)
        # and its log keeps both streams, without the mark
        self.assertEqual(self.ctl("log", "--stdout", job).stdout,
                         "out %s\n" % words[1])
        self.assertEqual(self.ctl("log", "--stderr", job).stdout.count(
            "concd-slurm"), 0)

    def test_the_command_gets_the_soft_limit_on_open_files_concd_had(self):
        # srun starts with it, and Slurm gives the job srun's limits
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard <= 1000:
            self.skipTest("hard limit on open files %d" % hard)
        self.d.close()
        self.d = self.daemon(preexec_fn=lambda: resource.setrlimit(
            resource.RLIMIT_NOFILE, (1000, hard)))
        r = self.ctl("run", "-x", "slurm", "exec", "--", "sh", "-c",
                     "ulimit -Sn")
        self.assertEqual((r.returncode, r.stdout), (0, "1000\n"), r.stderr)

    def test_hostname_exits_0_and_the_result_is_the_status(self):
        r = self.ctl("run", "-x", "slurm", "exec", "--", "hostname")
        self.assertEqual((r.returncode, r.stdout), (0, cluster.node + "\n"))
        r = self.ctl("--json", "run", "-x", "slurm", "exec", "--", "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"result":{"status":0}', r.stdout.replace(" ", ""))

    def test_a_command_killed_by_a_signal_says_so_as_a_local_one(self):
        r = self.ctl("--json", "run", "-x", "slurm", "exec", "--", "sh",
                     "-c", "kill -TERM $$")
        end = json.loads(r.stdout.splitlines()[-1])
        self.assertEqual((r.returncode, end["signal"], end["message"]),
                         (143, 15, "killed by signal 15 (SIGTERM)"))
        # a command that exits 137 itself was not killed
        r = self.ctl("--json", "run", "-x", "slurm", "exec", "--", "sh",
                     "-c", "exit 137")
        end = json.loads(r.stdout.splitlines()[-1])
        self.assertEqual((r.returncode, end["exit"]), (137, 137))
        self.assertNotIn("signal", end)

    def test_cpus_memory_and_timeout_go_to_slurm(self):
        r = self.ctl("run", "-x", "slurm", "--cpus", "2", "--mem", "64M",
                     "--timeout", "600", "exec", "--", "sh", "-c",
                     "echo $SLURM_CPUS_PER_TASK; "
                     "scontrol -o show job $SLURM_JOB_ID")
        self.assertEqual(r.returncode, 0, r.stderr)
        cpus, job = r.stdout.split("\n", 1)
        self.assertEqual(cpus, "2")
        self.assertIn(" MinMemoryNode=64M ", job)
        # Slurm's limit backs concd's up: the timeout and the grace in
        # whole minutes, and one more
        self.assertIn(" TimeLimit=00:12:00 ", job)

    def test_standard_input_is_streamed_to_the_command(self):
        data = "".join("%d\n" % i for i in range(100000))
        r = self.ctl("run", "-x", "slurm", "exec", "--", "wc", "-l",
                     input=data)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "100000"),
                         r.stderr)

    def test_it_runs_as_the_jobs_owner(self):
        uid = pwd.getpwnam(USER).pw_uid
        os.chmod(self.d.socket, 0o666)
        r = self.d.concctl("run", "-x", "slurm", "exec", "--", "id", "-un",
                           user=uid, env=cluster.env())
        self.assertEqual((r.returncode, r.stdout), (0, USER + "\n"),
                         r.stderr)

    def test_only_exec_runs_on_slurm(self):
        r = self.ctl("run", "-x", "slurm", "noop")
        self.assertEqual(r.returncode, 4)
        self.assertIn("bad_executor: task noop cannot run on the slurm "
                      "executor, which runs commands (exec)", r.stderr)

    def test_auto_never_sends_a_job_to_slurm(self):
        r = self.ctl("--json", "run", "exec", "--", "true")
        self.assertEqual(r.returncode, 0)
        self.assertNotIn('"exec":"slurm"', r.stdout.replace(" ", ""))
        self.assertEqual(self.wait_slurm_idle(), [])


class Cancel(SlurmTest):
    def test_cancel_reaches_the_command_through_scancel_then_ends_it(self):
        # a grace as long as the bound: scancel's round trip through
        # slurmctld took most of the default 2 s on a loaded machine, and
        # the SIGKILL after it then took the exit status the test reads
        _, wait = self.gate()
        r = self.ctl("submit", "-x", "slurm", "exec",
                     "grace=%d" % (BOUND * 1000), "--", "sh", "-c",
                     "trap 'echo got TERM; exit 5' TERM; echo up; "
                     "while :; do sleep 0.05; done")
        job = int(r.stdout)
        self.wait_started(job)
        self.assertEqual(self.ctl("cancel", job).returncode, 0)
        end = self.wait_state(job, "cancelled")
        self.assertEqual(end["state"], "cancelled")
        log = self.ctl("log", "--stdout", job).stdout
        self.assertEqual(log, "up\ngot TERM\n")
        self.assertEqual(self.status(job)["exit"], 5)

    def test_a_command_deaf_to_sigterm_is_ended_after_the_grace(self):
        r = self.ctl("submit", "-x", "slurm", "exec", "grace=200", "--",
                     "sh", "-c", "trap '' TERM; echo up; "
                     "while :; do sleep 0.05; done")
        job = int(r.stdout)
        self.wait_started(job)
        self.assertEqual(self.ctl("cancel", job).returncode, 0)
        self.assertEqual(self.wait_state(job, "cancelled")["state"],
                         "cancelled")

    def test_a_job_waiting_in_slurms_queue_is_dropped_by_a_cancel(self):
        # the node's CPUs are all taken: the next job waits in Slurm
        path, wait = self.gate()
        hog = int(self.ctl("submit", "-x", "slurm", "--cpus",
                           str(cluster.cpus), "exec", "--", "sh", "-c",
                           wait).stdout)
        self.wait_started(hog)
        waiting = int(self.ctl("submit", "-x", "slurm", "exec", "--",
                               "true").stdout)
        deadline = time.monotonic() + BOUND
        while not any(j[2] == "PENDING" for j in cluster.jobs()):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        self.assertEqual(self.ctl("cancel", waiting).returncode, 0)
        self.assertEqual(self.wait_state(waiting, "cancelled")["state"],
                         "cancelled")
        open(path, "w").close()
        self.assertEqual(self.wait_state(hog, "succeeded")["state"],
                         "succeeded")

    def test_the_timeout_ends_the_slurm_job_timed_out(self):
        r = self.ctl("run", "-x", "slurm", "--timeout", "0.5", "exec", "--",
                     "sleep", "60")
        self.assertEqual(r.returncode, 124)
        self.assertIn("timed out", r.stderr)


class SlurmEnds(SlurmTest):
    """How Slurm ends a job maps to its state.  slurmstepd says so on
    srun's standard error; the command writes that line itself here,
    since Slurm checks its time limits only every half minute or more
    and a node failure cannot be had on one node."""

    def ends(self, why):
        r = self.ctl("--json", "run", "-x", "slurm", "exec", "--", "sh",
                     "-c", "echo 'slurmstepd-%s: error: *** JOB 1 ON %s "
                     "CANCELLED AT 2026-12-06T10:54:37 DUE TO %s ***' >&2; "
                     "exit 1" % (cluster.node, cluster.node, why))
        return json.loads(r.stdout.splitlines()[-1])

    def test_slurms_time_limit_ends_it_timed_out(self):
        end = self.ends("TIME LIMIT")
        self.assertEqual((end["state"], end["error"], end["message"]),
                         ("timed_out", "timed_out",
                          "Slurm's time limit for it ran out"))

    def test_a_node_failure_fails_it_naming_the_node(self):
        end = self.ends("NODE FAILURE")
        self.assertEqual((end["state"], end["error"], end["message"]),
                         ("failed", "node_failed",
                          "node %s failed (Slurm)" % cluster.node))

    def test_preemption_fails_it_preempted(self):
        end = self.ends("PREEMPTION")
        self.assertEqual((end["state"], end["error"], end["message"]),
                         ("failed", "preempted",
                          "Slurm preempted it on node %s" % cluster.node))


class NotAvailable(unittest.TestCase):
    def test_without_slurm_enabled_the_executor_says_why(self):
        d = Daemon()
        try:
            r = d.concctl("run", "-x", "slurm", "exec", "--", "true")
            self.assertEqual(r.returncode, 125)
            self.assertIn("the slurm executor is not available: Slurm is "
                          "not enabled (slurm.enabled in concd.conf)",
                          r.stderr)
        finally:
            d.close()

    def test_without_srun_in_path_the_executor_says_why(self):
        conf = tempfile.NamedTemporaryFile("w", suffix=".conf",
                                           delete=False)
        conf.write("[slurm]\nenabled = yes\n")
        conf.close()
        d = Daemon("-c", conf.name, env={"PATH": "/nonexistent"})
        try:
            r = d.concctl("run", "-x", "slurm", "exec", "--", "true")
            self.assertEqual(r.returncode, 125)
            self.assertIn("Slurm is not available: srun is not in "
                          "concd's PATH", r.stderr)
        finally:
            d.close()
            os.unlink(conf.name)


class Restart(SlurmTest):
    def wait_started(self, job):
        """Started on Slurm, and its Slurm job id written to the store
        (a batch of changes waits up to 10 ms): what a crash leaves."""
        import sqlite3
        s = super().wait_started(job)
        path = "file:%s?mode=ro" % os.path.join(self.dir, "state", "jobs.db")
        deadline = time.monotonic() + BOUND
        while True:
            db = sqlite3.connect(path, uri=True)
            try:
                row = db.execute("select slurm from extra where id = ?",
                                 (job,)).fetchone()
            finally:
                db.close()
            if row is not None and row[0] == s["slurm_job"]:
                return s
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)

    def restart(self):
        self.d.stop(signal.SIGKILL)
        self.d.expect_exit(-signal.SIGKILL)
        self.d.proc.wait(BOUND)
        keep = self.d
        self.d = self.daemon()
        return keep

    def test_a_slurm_job_still_running_is_cancelled_and_interrupted(self):
        _, wait = self.gate()
        job = int(self.ctl("submit", "-x", "slurm", "exec", "--", "sh", "-c",
                           wait).stdout)
        sid = self.wait_started(job)["slurm_job"]
        old = self.restart()
        try:
            end = self.wait_state(job, "failed")
            self.assertEqual((end["state"], end["error"]),
                             ("failed", "interrupted"))
            self.assertEqual(self.wait_slurm_idle(), [])
            self.assertRegex(self.d.log(), r"recovery: job %d: Slurm job "
                             r"%d [a-z ]+; cancelled" % (job, sid))
        finally:
            old.close()

    def test_a_start_that_cannot_ask_slurm_ends_the_job_interrupted(self):
        _, wait = self.gate()
        job = int(self.ctl("submit", "-x", "slurm", "exec", "--", "sh", "-c",
                           wait).stdout)
        self.wait_started(job)
        self.d.stop(signal.SIGKILL)
        self.d.expect_exit(-signal.SIGKILL)
        # the next concd sees a cluster whose controller does not answer
        bad = os.path.join(self.dir, "unreachable.conf")
        with open(cluster.conf) as f, open(bad, "w") as g:
            g.write(re.sub(r"(?m)^SlurmctldPort=.*$", "SlurmctldPort=1",
                           f.read()))
        old = self.d
        self.d = Daemon("-c", self.conf_path, "--state-dir",
                        os.path.join(self.dir, "state"),
                        env=dict(cluster.env(), SLURM_CONF=bad))
        try:
            end = self.wait_state(job, "failed")
            self.assertEqual((end["state"], end["error"]),
                             ("failed", "interrupted"))
            self.assertIn("recovery: Slurm cannot be asked (scontrol show "
                          "job failed): its jobs end interrupted",
                          self.d.log())
        finally:
            old.close()
            # what Slurm still runs is left to it (concd(8) SCALING OUT)
            cluster.run("scancel", "--name=concd-%s-%d" % (
                self.instance(), job))

    def instance(self):
        return store_instance(os.path.join(self.dir, "state"))[:12]

    def test_a_slurm_job_that_ended_meanwhile_ends_as_slurm_says(self):
        path, wait = self.gate()
        job = int(self.ctl("submit", "-x", "slurm", "exec", "--", "sh", "-c",
                           wait + "; exit 7").stdout)
        sid = self.wait_started(job)["slurm_job"]
        self.d.stop(signal.SIGKILL)
        self.d.expect_exit(-signal.SIGKILL)
        self.d.proc.wait(BOUND)
        # the command finishes while no concd runs; Slurm keeps its end
        open(path, "w").close()
        deadline = time.monotonic() + BOUND
        while "JobState=FAILED" not in cluster.run(
                "scontrol", "-o", "show", "job", str(sid)).stdout:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        old = self.d
        self.d = self.daemon()
        try:
            s = self.wait_state(job, "failed")
            self.assertEqual(s["state"], "failed")
            st = self.status(job)
            self.assertEqual(st["exit"], 7)
            self.assertIn("exited with status 7 (while concd was down)",
                          st["message"])
        finally:
            old.close()


if __name__ == "__main__":
    import harness
    harness.main()
