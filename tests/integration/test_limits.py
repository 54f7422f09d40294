"""Resource limits per job and the on-end hook (concd(8) RESOURCE LIMITS,
concd.conf(5) limits and on-end).

Limits run at the level the machine offers concd: cgroup2 (a delegated
cgroup v2 subtree), cgroup1 (the v1 memory, cpu and pids controllers, as
root) or rlimit.  Each test that needs a cgroup skips at the rlimit level
and says so; the level that ran is printed once.  The rlimit tests force
that level with concd.conf's limits, so they run everywhere.  A concd
removes the cgroups it made: the tests check that too, by the paths its
commands report, and kill by pid whatever a failed test left.
"""
import os
import pwd
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BOUND, VALGRIND, Daemon, DaemonTest,  # noqa: E402
                     main)

EXECUTORS = ("loop", "thread", "process")
PY = "/usr/bin/python3"
# a command that takes 512 MiB and touches every page
HOG = [PY, "-c", "b = bytearray(512 << 20); print(len(b))"]

_level = None


def level():
    """The level a concd started with defaults has here, asked once."""
    global _level
    if _level is None:
        d = Daemon()
        try:
            _level = d.client().call("pool")["limits"]
        finally:
            d.close()
        sys.stderr.write("limits level on this machine: %s\n" % _level)
    return _level


def needs_cgroup(test):
    """Skip the test unless concd has cgroups here."""
    def wrapper(self):
        if level() == "rlimit":
            self.skipTest("no cgroup for concd here (not root, and no "
                          "delegated cgroup v2 subtree): level rlimit")
        return test(self)
    wrapper.__name__ = test.__name__
    wrapper.__doc__ = test.__doc__
    return wrapper


def cgroup_dirs(text):
    """The directories of a command's cgroups, from its /proc/self/cgroup
    as the command printed it: {controllers: path below the mount}."""
    dirs = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            dirs[parts[1]] = parts[2]
    return dirs


def mounts():
    """{controller or "": mount point} of the cgroup hierarchies."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            mnt = left.split()[4]
            fstype, _, opts = right.split()[:3]
            if fstype == "cgroup2":
                found[""] = mnt
            elif fstype == "cgroup":
                for o in opts.split(","):
                    found[o] = mnt
    return found


def pid_gone(pid, bound=BOUND):
    """Wait until pid is no more (or a zombie), bounded."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.01)  # /proc has no event to wait for
    return False


def children(pid, state=None):
    """The pids whose parent is pid (in state, if given)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and (state is None or fields[0] == state):
            found.append(int(d))
    return found


class LimitsTest(DaemonTest):
    threads = 2

    def run_job(self, *args, input=None):
        return self.d.concctl("run", *args, input=input)

    def test_pool_says_which_limits_are_in_force(self):
        m = self.d.client().call("pool")
        self.assertIn(m["limits"], ("cgroup2", "cgroup1", "rlimit"))
        r = self.d.concctl("pool")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("limits: %s\n" % m["limits"], r.stdout)

    def test_bad_sizes_and_counts_are_refused_by_concctl(self):
        for opt, value in (("--mem", "2X"), ("--mem", "0"), ("--mem", "-1"),
                           ("--mem", "1.5G"), ("--pids", "0"),
                           ("--pids", "x")):
            with self.subTest(opt=opt, value=value):
                r = self.run_job(opt, value, "exec", "--", "true")
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(value, r.stderr)
        self.assertEqual(self.d.client().call("ps")["jobs"], [])

    def test_pids_over_4194304_are_refused_at_submit(self):
        """Linux's most pids, as concd.conf(5) caps a group's: more is
        refused when submitted, by concctl before connecting (exit 2) and
        by concd (bad_field), and no job is made; 4194304 is taken."""
        for value in ("4194305", "18446744073709551615"):
            r = self.d.concctl("submit", "--pids", value, "exec", "--",
                               "true")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertEqual(r.stderr.splitlines()[0],
                             "concctl: submit: --pids must be from 1 to "
                             "4194304: " + value)
        c = self.d.client()
        for pids in (4194305, 2 ** 64 - 1):
            m = c.call("submit", task="exec", args={"argv": ["true"]},
                       pids=pids)
            self.assertEqual((m["t"], m["error"], m["message"]),
                             ("error", "bad_field",
                              "pids must be at most 4194304, not %d"
                              % pids), m)
            m = c.call("gather", jobs=[{"task": "exec",
                                        "args": {"argv": ["true"]},
                                        "pids": pids}])
            self.assertEqual((m["t"], m["error"]), ("error", "bad_field"),
                             m)
        self.assertEqual(c.call("ps", all=True)["jobs"], [])
        r = self.d.concctl("submit", "--pids", "4194304", "exec", "--",
                           "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = c.call("status", job=int(r.stdout))
        self.assertEqual(st["pids"], 4194304)

    @needs_cgroup
    def test_oom_kill_ends_the_job_failed_with_error_oom(self):
        c = self.d.client()
        for x in EXECUTORS:
            with self.subTest(executor=x):
                r = self.run_job("-x", x, "--mem", "64M", "exec", "--", *HOG)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("memory limit", r.stderr)
                job = c.call("ps", state="failed")["jobs"][0]["job"]
                st = c.call("status", job=job)
                self.assertEqual(st["state"], "failed")
                self.assertEqual(st["error"], "oom")
                self.assertEqual(st["mem"], 64 << 20)

    def test_gather_lines_take_mem_and_pids(self):
        r = self.d.concctl("gather", input="exec --mem 2G --pids 40 -- true\n"
                           "exec -- true\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        c = self.d.client()
        jobs = sorted(j["job"] for j in c.call("ps", all=True)["jobs"])
        first, second = (c.call("status", job=j) for j in jobs)
        self.assertEqual((first["mem"], first["pids"]), (2 << 30, 40))
        self.assertNotIn("mem", second)
        self.assertNotIn("pids", second)
        # and concctl status shows them
        r = self.d.concctl("status", first["job"])
        self.assertIn("\nlimits     mem 2G, pids 40\n", r.stdout)
        r = self.d.concctl("status", second["job"])
        self.assertNotIn("limits", r.stdout)

    @needs_cgroup
    def test_another_users_command_is_held_by_its_limits_too(self):
        """A root concd runs a user's command as that user: it joins its
        cgroup before it takes the user's identity, and cannot leave."""
        if os.geteuid() != 0:
            self.skipTest("needs root: a job of another user")
        nobody = pwd.getpwnam("nobody").pw_uid
        os.chmod(self.d.socket, 0o666)
        for x in EXECUTORS:
            with self.subTest(executor=x):
                r = self.d.concctl("run", "-x", x, "--mem", "64M", "exec",
                                   "--", *HOG, user=nobody)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("memory limit", r.stderr)
        m = mounts()
        root = m["memory"] if level() == "cgroup1" else m[""]
        r = self.d.concctl("run", "--mem", "64M", "exec", "--", "sh", "-c",
                           "id -u; echo $$ > %s/cgroup.procs && echo moved"
                           % root, user=nobody)
        self.assertEqual(r.stdout.split("\n")[0], str(nobody), r.stderr)
        self.assertNotIn("moved", r.stdout)

    @needs_cgroup
    def test_a_job_within_its_memory_limit_succeeds(self):
        r = self.run_job("--mem", "256M", "exec", "--", PY, "-c",
                         "b = bytearray(16 << 20); print(len(b))")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%d\n" % (16 << 20))

    @needs_cgroup
    def test_a_kill_that_is_not_the_oom_killer_is_not_oom(self):
        r = self.run_job("--mem", "256M", "exec", "--", "sh", "-c",
                         "kill -9 $$")
        self.assertNotEqual(r.returncode, 0)
        c = self.d.client()
        job = c.call("ps", state="failed")["jobs"][0]["job"]
        self.assertEqual(c.call("status", job=job)["error"], "task_failed")

    @needs_cgroup
    def test_cancel_kills_what_left_the_process_group(self):
        """A setsid child of a cancelled job dies with it: the cgroup
        holds it.  It is started detached from the job's pipes, so only
        the cgroup can find it."""
        c = self.d.client()
        for x in EXECUTORS:
            with self.subTest(executor=x):
                pidfile = os.path.join(self.d.dir, "child-" + x)
                fifo = os.path.join(self.d.dir, "hold-" + x)
                os.mkfifo(fifo)
                script = ("setsid sh -c 'echo $$ > %s.tmp && mv %s.tmp %s; "
                          "exec sleep 3600' </dev/null >/dev/null 2>&1 & "
                          "read x < %s" % (pidfile, pidfile, pidfile, fifo))
                job = c.call("submit", task="exec", exec=x,
                             args={"argv": ["sh", "-c", script]})["job"]
                deadline = time.monotonic() + BOUND
                while not os.path.exists(pidfile):
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.01)  # a file has no event to wait for
                with open(pidfile) as f:
                    child = int(f.read())
                try:
                    self.assertNotEqual(os.getsid(child), os.getsid(0))
                    c.call("cancel", job=job)
                    c.wait_state(job, "cancelled")
                    self.assertTrue(pid_gone(child),
                                    "the setsid child %d survived" % child)
                finally:
                    if not pid_gone(child, bound=0):
                        os.kill(child, signal.SIGKILL)

    @needs_cgroup
    def test_a_stop_that_cuts_a_job_off_kills_what_left_its_group(self):
        """--stop-timeout 0: the running job is cut off at the stop, and
        its setsid child dies with it, not left behind by concd."""
        self.d.close()
        self.d = Daemon("--stop-timeout", "0")
        c = self.d.client()
        pidfile = os.path.join(self.d.dir, "child")
        fifo = os.path.join(self.d.dir, "hold")
        os.mkfifo(fifo)
        script = ("setsid sh -c 'echo $$ > %s.tmp && mv %s.tmp %s; "
                  "exec sleep 3600' </dev/null >/dev/null 2>&1 & "
                  "read x < %s" % (pidfile, pidfile, pidfile, fifo))
        job = c.call("submit", task="exec", exec="thread",
                     args={"argv": ["sh", "-c", script]})["job"]
        c.wait_state(job, "running")
        deadline = time.monotonic() + BOUND
        while not os.path.exists(pidfile):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)  # a file has no event to wait for
        with open(pidfile) as f:
            child = int(f.read())
        try:
            self.assertEqual(self.d.stop(), 0)
            self.assertTrue(pid_gone(child),
                            "the setsid child %d survived" % child)
        finally:
            if not pid_gone(child, bound=0):
                os.kill(child, signal.SIGKILL)

    @needs_cgroup
    def test_pids_limit_caps_the_processes_of_a_job(self):
        r = self.run_job("--pids", "3", "exec", "--", "sh", "-c",
                         "for i in 1 2 3 4 5 6; do sleep 5 & done; wait")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("fork", r.stderr.lower())
        r = self.run_job("--pids", "16", "exec", "--", "sh", "-c",
                         "for i in 1 2 3; do true & done; wait; echo ok")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "ok\n")

    @needs_cgroup
    def test_cpus_becomes_the_cgroups_cpu_quota(self):
        if "cpu" not in mounts() and level() == "cgroup1":
            self.skipTest("no cgroup v1 cpu controller mounted")
        c = self.d.client()
        m = mounts()
        if level() == "cgroup2":
            want, quota = "200000 100000", "cpu.max"
        else:
            want, quota = "200000", "cpu.cfs_quota_us"
        # the quota of a job held running, read in its cgroup
        gate = self.d.gate()
        job = c.call("submit", task="exec", cpus=2,
                     args={"argv": ["sh", "-c", "cat /proc/self/cgroup > "
                                    + os.path.join(self.d.dir, "cg")
                                    + "; " + " ".join(gate.argv[2:])]})["job"]
        c.wait_state(job, "running")
        deadline = time.monotonic() + BOUND
        cg = os.path.join(self.d.dir, "cg")
        while not (os.path.exists(cg) and open(cg).read().endswith("\n")):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)  # a file has no event to wait for
        dirs = cgroup_dirs(open(cg).read())
        if level() == "cgroup2":
            path = m[""] + dirs[""]
        else:
            key = next(k for k in dirs if "cpu" in k.split(","))
            path = m["cpu"] + dirs[key]
        with open(os.path.join(path, quota)) as f:
            self.assertEqual(f.read().strip(), want)
        gate.release()
        c.wait_state(job, "succeeded")

    @needs_cgroup
    def test_a_jobs_cgroups_are_removed_when_it_ends(self):
        r = self.run_job("--mem", "64M", "exec", "--", "cat",
                         "/proc/self/cgroup")
        self.assertEqual(r.returncode, 0, r.stderr)
        dirs = cgroup_dirs(r.stdout)
        m = mounts()
        made = []
        for ctrl, path in dirs.items():
            names = ctrl.split(",") if ctrl else [""]
            mnt = next((m[n] for n in names if n in m), None)
            # OWN/concd-INSTANCE/ID (cgroup1), OWN/jobs/ID (cgroup2)
            if mnt is not None and ("/concd-" in path or "/jobs/" in path):
                made.append(mnt + path)
        self.assertTrue(made, "the command was in no cgroup of concd's: "
                        + r.stdout)
        deadline = time.monotonic() + BOUND
        while any(os.path.exists(p) for p in made):
            self.assertLess(time.monotonic(), deadline, made)
            time.sleep(0.01)  # cgroupfs has no event to wait for here
        # a command that could not start leaves no cgroup behind either
        bases = [os.path.dirname(p) for p in made if "/concd-" in p]
        for x in EXECUTORS:
            r = self.run_job("-x", x, "--mem", "64M", "exec", "--",
                             "/nonexistent/command")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("No such file", r.stderr)
        for b in bases:
            self.assertEqual([e for e in os.listdir(b)
                              if os.path.isdir(os.path.join(b, e))], [], b)
        # and at the stop, the directory of this concd's jobs too
        self.d.close()
        for b in bases:
            self.assertFalse(os.path.exists(b), b)
        self.d = Daemon()  # for tearDown

    @needs_cgroup
    def test_the_cgroups_of_a_concd_killed_by_a_test_are_removed(self):
        # concd cannot clean up after SIGKILL: the harness does, so that
        # a killed (or hung, then killed) concd of the tests leaves no
        # cgroup on the machine
        r = self.run_job("--mem", "64M", "exec", "--", "cat",
                         "/proc/self/cgroup")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = mounts()
        bases = []
        for ctrl, path in cgroup_dirs(r.stdout).items():
            names = ctrl.split(",") if ctrl else [""]
            mnt = next((m[n] for n in names if n in m), None)
            if mnt is not None and "/concd-" in path:
                bases.append(os.path.dirname(mnt + path))
        self.assertTrue(bases, r.stdout)
        self.assertTrue(all(os.path.isdir(b) for b in bases), bases)
        self.d.proc.kill()
        self.d.expect_exit(-signal.SIGKILL)
        self.d.close()
        for b in bases:
            self.assertFalse(os.path.exists(b), b)
        self.d = Daemon()  # for tearDown


class GroupLimitsTest(unittest.TestCase):
    """A group's mem= and pids= in concd.conf hold for its jobs that ask
    for none of their own."""

    def setUp(self):
        self.conf = tempfile.NamedTemporaryFile("w", suffix=".conf",
                                                delete=False)
        self.conf.write("group = small mem=64M pids=5\n")
        self.conf.close()
        self.d = Daemon("-c", self.conf.name)

    def tearDown(self):
        self.d.close()
        os.unlink(self.conf.name)

    @needs_cgroup
    def test_a_groups_memory_limit_holds_for_its_jobs(self):
        r = self.d.concctl("run", "--group", "small", "exec", "--", *HOG)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("memory limit", r.stderr)
        # a job's own limit wins
        r = self.d.concctl("run", "--group", "small", "--mem", "1G",
                           "--pids", "20", "exec", "--", *HOG)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%d\n" % (512 << 20))


class RlimitTest(unittest.TestCase):
    """limits = rlimit: the command gets RLIMIT_AS and RLIMIT_NPROC."""

    def setUp(self):
        self.conf = tempfile.NamedTemporaryFile("w", suffix=".conf",
                                                delete=False)
        self.conf.write("limits = rlimit\n")
        self.conf.close()
        self.d = Daemon("-c", self.conf.name)

    def tearDown(self):
        self.d.close()
        os.unlink(self.conf.name)

    def test_level_rlimit_is_said(self):
        self.assertEqual(self.d.client().call("pool")["limits"], "rlimit")

    def test_mem_is_the_commands_address_space_limit(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                r = self.d.concctl("run", "-x", x, "--mem", "256M", "exec",
                                   "--", "sh", "-c", "ulimit -v; ulimit -H -v")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, "262144\n262144\n")
        r = self.d.concctl("run", "--mem", "64M", "exec", "--", *HOG)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("MemoryError", r.stderr)

    def test_pids_is_the_commands_process_limit(self):
        r = self.d.concctl("run", "--pids", "50", "exec", "--", PY, "-c",
                           "import resource; print(resource.getrlimit("
                           "resource.RLIMIT_NPROC))")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "(50, 50)\n")

    def test_without_limits_the_command_has_concds(self):
        r = self.d.concctl("run", "exec", "--", "sh", "-c", "ulimit -v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "unlimited\n")


class LevelTest(unittest.TestCase):
    def test_a_level_the_machine_lacks_stops_concd_at_start(self):
        lacking = "cgroup2" if level() != "cgroup2" else None
        if lacking is None:
            self.skipTest("this machine has cgroup2: no level is lacking")
        with tempfile.TemporaryDirectory() as top:
            conf = os.path.join(top, "concd.conf")
            with open(conf, "w") as f:
                f.write("limits = %s\n" % lacking)
            r = subprocess.run(
                [os.environ.get("CONCD", "build/daemon/concd"), "-f", "-s",
                 os.path.join(top, "s"), "--state-dir", "none", "-c", conf],
                capture_output=True, text=True, timeout=BOUND)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("limits cgroup2:", r.stderr)

    def test_an_unknown_level_is_refused(self):
        with tempfile.TemporaryDirectory() as top:
            conf = os.path.join(top, "concd.conf")
            with open(conf, "w") as f:
                f.write("limits = cgroup3\n")
            r = subprocess.run(
                [os.environ.get("CONCD", "build/daemon/concd"), "-f", "-s",
                 os.path.join(top, "s"), "--state-dir", "none", "-c", conf],
                capture_output=True, text=True, timeout=BOUND)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn('no level "cgroup3"', r.stderr)


class OnEndTest(unittest.TestCase):
    """concd.conf's on-end: a command run as each job ends."""

    def start(self, command):
        self.top = tempfile.mkdtemp(prefix="concd-onend-")
        os.chmod(self.top, 0o1777)
        conf = os.path.join(self.top, "concd.conf")
        with open(conf, "w") as f:
            f.write("on-end = %s\n" % command.replace("TOP", self.top))
        self.d = Daemon("-c", conf)

    def tearDown(self):
        self.d.close()
        subprocess.run(["rm", "-rf", self.top])

    def wait_file(self, name):
        path = os.path.join(self.top, name)
        deadline = time.monotonic() + BOUND
        while not os.path.exists(path):
            self.assertLess(time.monotonic(), deadline,
                            "no %s: %s" % (name, self.d.log()))
            time.sleep(0.01)  # a file has no event to wait for
        with open(path) as f:
            return f.read()

    def test_the_hook_gets_the_jobs_id_state_exit_group_and_label(self):
        self.start("env | grep ^CONCD_ | sort > TOP/.$CONCD_JOB_ID && "
                   "mv TOP/.$CONCD_JOB_ID TOP/$CONCD_JOB_ID")
        c = self.d.client()
        ok = c.call("submit", task="noop", label="nightly")["job"]
        bad = c.call("submit", task="exec", group="default",
                     args={"argv": ["sh", "-c", "exit 3"]})["job"]
        env = dict(line.split("=", 1) for line in
                   self.wait_file(str(ok)).splitlines())
        self.assertEqual(env["CONCD_JOB_ID"], str(ok))
        self.assertEqual(env["CONCD_STATE"], "succeeded")
        self.assertEqual(env["CONCD_GROUP"], "default")
        self.assertEqual(env["CONCD_LABEL"], "nightly")
        self.assertEqual(env["CONCD_EXIT"], "")  # not a command
        env = dict(line.split("=", 1) for line in
                   self.wait_file(str(bad)).splitlines())
        self.assertEqual(env["CONCD_JOB_ID"], str(bad))
        self.assertEqual(env["CONCD_STATE"], "failed")
        self.assertEqual(env["CONCD_LABEL"], "")
        self.assertIn("CONCD_EXIT", env)

    def test_a_failing_hook_is_logged_with_its_last_line(self):
        """Its last line alone, however the reads cut the output: here a
        first line of 4096 bytes, a read's worth, with its newline."""
        self.start("head -c 4095 /dev/zero | tr '\\0' x >&2; echo >&2; "
                   "echo boom: $CONCD_JOB_ID >&2; exit 4")
        c = self.d.client()
        job = c.call("submit", task="noop")["job"]
        self.d.wait_log("on-end for job %d exited with status 4: boom: %d"
                        % (job, job))

    def test_the_hook_blocks_nothing_and_leaves_no_zombie(self):
        """While one hook waits on a fifo, concd answers and runs other
        jobs and their hooks; once released, every hook is reaped."""
        self.start('if [ "$CONCD_JOB_ID" = 1 ]; then read x < TOP/fifo; fi; '
                   "touch TOP/done-$CONCD_JOB_ID")
        os.mkfifo(os.path.join(self.top, "fifo"))
        c = self.d.client()
        first = c.call("submit", task="noop")["job"]
        for _ in range(5):
            r = self.d.concctl("run", "exec", "--", "true")
            self.assertEqual(r.returncode, 0, r.stderr)
        for job in range(first + 1, first + 6):
            self.wait_file("done-%d" % job)
        self.assertFalse(os.path.exists(os.path.join(self.top,
                                                     "done-%d" % first)))
        fd = os.open(os.path.join(self.top, "fifo"),
                     os.O_RDWR | os.O_NONBLOCK)
        try:
            os.write(fd, b"\n")
            self.wait_file("done-%d" % first)
        finally:
            os.close(fd)
        deadline = time.monotonic() + BOUND
        while children(self.d.proc.pid, "Z"):
            self.assertLess(time.monotonic(), deadline,
                            "zombies: %r" % children(self.d.proc.pid, "Z"))
            time.sleep(0.01)  # /proc has no event to wait for

    def test_a_reload_changes_the_hook_and_one_without_it_drops_it(self):
        self.start("touch TOP/first-$CONCD_JOB_ID")
        c = self.d.client()
        job = c.call("submit", task="noop")["job"]
        self.wait_file("first-%d" % job)
        conf = os.path.join(self.top, "concd.conf")
        with open(conf, "w") as f:
            f.write("on-end = touch %s/second-$CONCD_JOB_ID\n" % self.top)
        self.d.proc.send_signal(signal.SIGHUP)
        self.d.wait_log("reloaded")
        job = c.call("submit", task="noop")["job"]
        self.wait_file("second-%d" % job)
        self.assertFalse(os.path.exists(os.path.join(self.top,
                                                     "first-%d" % job)))
        with open(conf, "w") as f:
            f.write("# no hook\n")
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + BOUND
        while self.d.log().count("reloaded") < 2:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)  # a file has no event to wait for
        last = c.call("submit", task="noop")["job"]
        c.wait_state(last, "succeeded")
        # a job after it, whose hook would run after the last one's
        with open(conf, "w") as f:
            f.write("on-end = touch %s/third-$CONCD_JOB_ID\n" % self.top)
        self.d.proc.send_signal(signal.SIGHUP)
        while self.d.log().count("reloaded") < 3:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)  # a file has no event to wait for
        job = c.call("submit", task="noop")["job"]
        self.wait_file("third-%d" % job)
        self.assertEqual([n for n in os.listdir(self.top)
                          if n.endswith("-%d" % last)], [])

    def test_the_hook_runs_as_the_jobs_owner(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: a job of another user")
        nobody = pwd.getpwnam("nobody").pw_uid
        self.start("id -u > TOP/.$CONCD_JOB_ID && "
                   "mv TOP/.$CONCD_JOB_ID TOP/uid-$CONCD_JOB_ID")
        os.chmod(self.d.socket, 0o666)
        r = self.d.concctl("submit", "noop", user=nobody)
        self.assertEqual(r.returncode, 0, r.stderr)
        job = int(r.stdout)
        self.assertEqual(self.wait_file("uid-%d" % job), "%d\n" % nobody)
        self.assertEqual(os.stat(os.path.join(
            self.top, "uid-%d" % job)).st_uid, nobody)


if __name__ == "__main__":
    if VALGRIND:
        print("SKIP: limits -- the OOM killer and rlimits apply to "
              "valgrind itself there")
        sys.exit(77)
    main()
