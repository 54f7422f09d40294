"""The exec task on the wire: a real command's output streamed line by
line, its exit status or signal as the outcome, and cancel, timeout and
shutdown leaving no process behind, on every executor."""
import hashlib
import os
import resource
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, CLOCK_SLACK, VALGRIND, DaemonTest  # noqa: E402
from harness import proc_state  # noqa: E402

EXECUTORS = ("loop", "thread", "process")


def wait_reaped(pid, bound=BOUND):
    """Wait until pid has gone from /proc: dead and reaped."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if proc_state(pid) is None:
            return time.monotonic()
        time.sleep(0.01)  # polling /proc, bounded by the deadline
    raise AssertionError("pid %d still there (state %s) after %ss"
                         % (pid, proc_state(pid), bound))


def wait_execd(pid, comm, bound=BOUND):
    """Wait until pid runs comm: it has exec'd, and a signal sent to it
    now meets its own dispositions, not its shell's."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == comm:
                    return
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.01)
    raise AssertionError("pid %d never ran %s" % (pid, comm))


def wait_dead(pid, bound=BOUND):
    """Wait until pid is not running any more.  A grandchild of concd is
    reparented, and who reaps it is not concd's business: a zombie counts
    as dead."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if proc_state(pid) in (None, "Z", "X"):
            return
        time.sleep(0.01)
    raise AssertionError("pid %d still running after %ss" % (pid, bound))


def wait_proc_state(pid, state, bound=BOUND):
    """Wait until pid is in state ("T": stopped, "Z": a zombie)."""
    deadline = time.monotonic() + bound
    while proc_state(pid) != state:
        if time.monotonic() > deadline:
            raise AssertionError("pid %d not in state %s after %ss (%s)"
                                 % (pid, state, bound, proc_state(pid)))
        time.sleep(0.01)  # polling /proc, bounded by the deadline


def output(events, stream="stdout"):
    return b"".join(e["data"] for e in events
                    if e["t"] == "output" and e["stream"] == stream)


class OpenFiles(unittest.TestCase):
    """concd raises its soft limit on open files to the hard one, and
    its commands start with the soft limit concd was started with, as
    a shell would have given them: a program that uses select(2) must
    not see descriptors past FD_SETSIZE, nor one that closes every
    descriptor up to the limit loop over half a million."""

    SOFT = 1000

    def test_commands_get_the_soft_limit_concd_was_started_with(self):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard <= self.SOFT:
            self.skipTest("hard limit on open files %d" % hard)

        def lower():
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.SOFT, hard))

        d = harness.Daemon("-p", "1", preexec_fn=lower)
        try:
            with open("/proc/%d/limits" % d.proc.pid) as f:
                line = [x for x in f if x.startswith("Max open files")][0]
            want = "unlimited" if hard == resource.RLIM_INFINITY \
                else str(hard)
            self.assertEqual(line.split()[3:5], [want, want], line)
            c = d.client()
            for x in EXECUTORS:
                with self.subTest(executor=x):
                    rid = c.request("submit", task="exec", exec=x,
                                    watch=True, args=dict(argv=[
                                        "sh", "-c", "ulimit -Sn; ulimit -Hn"]))
                    ev = c.until_end(rid)
                    self.assertEqual(ev[-1]["state"], "succeeded", ev[-1])
                    self.assertEqual(output(ev), ("%d\n%s\n" % (
                        self.SOFT, want)).encode())
        finally:
            d.close()


class Exec(DaemonTest):
    args = ("-p", "2")

    def client(self):
        c = self.d.client()
        self.addCleanup(c.close)
        return c

    def submit(self, c, argv, x, **more):
        args = dict(argv=argv)
        for k in ("cwd", "env", "stdin", "grace"):
            if k in more:
                args[k] = more.pop(k)
        rid = c.request("submit", task="exec", args=args, exec=x,
                        watch=True, **more)
        m = c.recv_for(rid)
        self.assertEqual(m["t"], "accepted", m)
        return rid, m["job"]

    def run_job(self, c, argv, x, **more):
        rid, _ = self.submit(c, argv, x, **more)
        return c.until_end(rid)

    def first_output(self, c, rid):
        """The first output event of request rid."""
        while True:
            m = c.recv_for(rid)
            self.assertIsNotNone(m)
            self.assertNotEqual(m["t"], "end", m)
            if m["t"] == "output":
                return m

    def test_output_lines_stream_in_order_and_the_end_succeeds(self):
        c = self.client()
        script = "for i in $(seq 1 200); do echo line $i; done; echo e >&2"
        for x in EXECUTORS:
            with self.subTest(executor=x):
                ev = self.run_job(c, ["sh", "-c", script], x)
                out = [e for e in ev if e["t"] == "output"]
                self.assertEqual([e["data"] for e in out
                                  if e["stream"] == "stdout"],
                                 [b"line %d\n" % i for i in range(1, 201)])
                self.assertEqual(output(ev, "stderr"), b"e\n")
                self.assertTrue(all(isinstance(e["data"], bytes)
                                    for e in out))
                end = ev[-1]
                self.assertEqual((end["t"], end["state"], end["exec"]),
                                 ("end", "succeeded", x), end)
                self.assertEqual(end["result"], {"status": 0})
                self.assertNotIn("dropped", end)

    def test_a_nonzero_exit_fails_with_the_status(self):
        c = self.client()
        for x in EXECUTORS:
            with self.subTest(executor=x):
                ev = self.run_job(c, ["sh", "-c", "echo oops >&2; exit 3"],
                                  x)
                end = ev[-1]
                self.assertEqual((end["state"], end["error"], end["message"]),
                                 ("failed", "task_failed",
                                  "exited with status 3"))
                self.assertNotIn("result", end)
                self.assertEqual(output(ev, "stderr"), b"oops\n")

    def test_a_command_killed_by_a_signal_says_which(self):
        c = self.client()
        for x in EXECUTORS:
            with self.subTest(executor=x):
                end = self.run_job(c, ["sh", "-c", "kill -9 $$"], x)[-1]
                self.assertEqual((end["state"], end["message"]),
                                 ("failed", "killed by signal 9 (SIGKILL)"))

    @unittest.skipIf(VALGRIND, "valgrind runs the command itself")
    def test_a_missing_command_fails_with_a_clear_message(self):
        c = self.client()
        for x in EXECUTORS:
            with self.subTest(executor=x):
                end = self.run_job(c, ["nosuch-concd-command"], x)[-1]
                self.assertEqual(
                    (end["state"], end["message"]),
                    ("failed", "exec: cannot run \"nosuch-concd-command\": "
                               "No such file or directory"))

    def test_stdin_env_and_cwd_reach_the_command_and_bytes_pass_through(self):
        c = self.client()
        d = tempfile.mkdtemp(prefix="concd-exec-")
        try:
            for x in EXECUTORS:
                with self.subTest(executor=x):
                    ev = self.run_job(
                        c, ["sh", "-c", "cat; echo \"$FOO\"; pwd"], x,
                        stdin="caf\u00e9\n", env={"FOO": "a b"}, cwd=d)
                    self.assertEqual(ev[-1]["state"], "succeeded", ev[-1])
                    self.assertEqual(output(ev), "caf\u00e9\na b\n%s\n"
                                     .encode() % d.encode())
                    # invalid UTF-8 comes back byte for byte, as bin
                    ev = self.run_job(c, ["printf", "\\377\\000x\\n"], x)
                    self.assertEqual(output(ev), b"\xff\x00x\n")
        finally:
            os.rmdir(d)

    def test_a_command_line_as_long_as_a_shells_runs_whole(self):
        # xargs packs thousands of arguments into one command, and a
        # script given to sh -c runs to many kilobytes: what the kernel
        # takes, within the wire's frame
        c = self.client()
        script = "echo $#; printf %s \"$1\" | wc -c; shift 1; echo \"$*\"" \
            " | md5sum"
        long = "y" * 131071
        words = ["w%d" % i for i in range(20000)]
        for x in EXECUTORS:
            with self.subTest(executor=x):
                ev = self.run_job(c, ["sh", "-c", script, "sh", long] +
                                  words, x)
                self.assertEqual(ev[-1]["state"], "succeeded", ev[-1])
                lines = output(ev).decode().split("\n")
                self.assertEqual(lines[:2], [str(len(words) + 1),
                                             "131071"])
                self.assertEqual(lines[2].split()[0], hashlib.md5(
                    (" ".join(words) + "\n").encode()).hexdigest())
                # a request's frame full of arguments: through the store
                # and, on a worker process, its channel
                big = ["sh", "-c", "echo $#", "sh"] + ["z" * 100000] * 10 + \
                    ["q" * 40000]
                ev = self.run_job(c, big, x)
                self.assertEqual((ev[-1]["state"], output(ev)),
                                 ("succeeded", b"11\n"), ev[-1])
                # one byte more than the kernel takes in an argument
                end = self.run_job(c, ["echo", long + "y"], x)[-1]
                self.assertEqual(
                    (end["state"], end["message"]),
                    ("failed", "exec: argv[1] must be at most 131071 "
                               "bytes long (argv[0] not empty)"))

    def test_only_the_standard_fds_reach_the_command(self):
        c = self.client()
        for x in EXECUTORS:
            with self.subTest(executor=x):
                ev = self.run_job(c, ["sh", "-c", "ls /proc/$$/fd"], x)
                self.assertEqual(output(ev), b"0\n1\n2\n")

    def test_the_command_starts_with_every_signal_at_its_default(self):
        # a worker process is started by posix_spawn, which leaves
        # glibc's own signals (32 and 33) ignored in it: its commands
        # must not inherit that, nor anything concd blocks or ignores
        c = self.client()
        for x in EXECUTORS:
            with self.subTest(executor=x):
                ev = self.run_job(c, ["grep", "-E", "^Sig(Blk|Ign):",
                                      "/proc/self/status"], x)
                self.assertEqual(ev[-1]["state"], "succeeded", ev[-1])
                self.assertEqual(output(ev), b"SigBlk:\t0000000000000000\n"
                                 b"SigIgn:\t0000000000000000\n")

    def test_the_command_leads_a_session_of_its_own(self):
        # so it has no controlling terminal: in the session of a concd
        # started from a terminal it could read it, or push input into
        # it (TIOCSTI) as its owner
        c = self.client()
        for x in EXECUTORS:
            with self.subTest(executor=x):
                ev = self.run_job(c, ["sh", "-c", 'cut -d" " -f1,5,6 '
                                      '/proc/$$/stat'], x)
                self.assertEqual(ev[-1]["state"], "succeeded", ev[-1])
                pid, pgrp, sid = output(ev).split()
                self.assertEqual((pgrp, sid), (pid, pid))

    def test_cancel_ends_the_job_and_the_process_group_is_gone(self):
        c = self.client()
        for x in EXECUTORS:
            with self.subTest(executor=x):
                rid, job = self.submit(
                    c, ["sh", "-c", "sleep 600 & echo $$ $!; wait"], x,
                    grace=60000)
                sh, sleep = map(int, self.first_output(c, rid)["data"]
                                .split())
                self.assertIn(proc_state(sh), ("S", "R"))
                t0 = time.monotonic()
                self.assertEqual(c.call("cancel", job=job)["t"], "ok")
                end = c.until_end(rid)[-1]
                self.assertEqual((end["state"], end["error"]),
                                 ("cancelled", "cancelled"))
                wait_reaped(sh)
                wait_dead(sleep)
                # SIGTERM did it: no wait for the 60 s grace period
                self.assertLess(time.monotonic() - t0, BOUND)

    @unittest.skipIf(VALGRIND, "valgrind runs the command itself")
    def test_a_command_ignoring_sigterm_is_killed_after_the_grace(self):
        c = self.client()
        script = "trap '' TERM; echo $$; sleep 600"
        for x in EXECUTORS:
            with self.subTest(executor=x):
                rid, job = self.submit(c, ["sh", "-c", script], x,
                                       grace=200)
                pid = int(self.first_output(c, rid)["data"])
                t0 = time.monotonic()
                c.call("cancel", job=job)
                self.assertEqual(c.until_end(rid)[-1]["state"], "cancelled")
                # the end came once SIGKILL had taken the command
                self.assertIsNone(proc_state(pid))
                gone = wait_reaped(pid)
                self.assertGreaterEqual(gone - t0, 0.2 - CLOCK_SLACK)
                self.assertLess(gone - t0, 10)

    @unittest.skipIf(VALGRIND, "valgrind runs the command itself")
    def test_what_a_cancelled_command_prints_cleaning_up_comes_before_its_end(
            self):
        c = self.client()
        script = ("trap 'echo cleaning up; echo on stderr >&2; exit 0' TERM; "
                  "sleep 600 & echo $$ $!; wait")
        for x in EXECUTORS:
            with self.subTest(executor=x):
                rid, job = self.submit(c, ["sh", "-c", script], x,
                                       grace=60000)
                pid, sleep = map(int, self.first_output(c, rid)["data"]
                                 .split())
                # SIGTERM must find sleep, not the shell's fork of it
                wait_execd(sleep, "sleep")
                self.assertEqual(c.call("cancel", job=job)["t"], "ok")
                ev = c.until_end(rid)
                # the command lived to print, and had exited by the end
                self.assertIsNone(proc_state(pid))
                self.assertEqual(output(ev), b"cleaning up\n")
                self.assertEqual(output(ev, "stderr"), b"on stderr\n")
                end = ev[-1]
                self.assertEqual((end["t"], end["state"], end["error"]),
                                 ("end", "cancelled", "cancelled"), end)
                self.assertNotIn("dropped", end)

    @unittest.skipIf(VALGRIND, "valgrind runs the command itself")
    def test_a_stopped_command_is_woken_to_take_its_sigterm(self):
        c = self.client()
        # stopped (kill -STOP, ^Z), a command would hold SIGTERM pending
        # until the grace period's SIGKILL, and never run its handler
        script = ("trap 'echo woken to clean up; exit 0' TERM; echo $$; "
                  "kill -STOP $$; echo not before the cancel")
        for x in EXECUTORS:
            with self.subTest(executor=x):
                rid, job = self.submit(c, ["sh", "-c", script], x,
                                       grace=60000)
                pid = int(self.first_output(c, rid)["data"])
                wait_proc_state(pid, "T")
                t0 = time.monotonic()
                self.assertEqual(c.call("cancel", job=job)["t"], "ok")
                ev = c.until_end(rid)
                self.assertEqual(output(ev), b"woken to clean up\n")
                end = ev[-1]
                self.assertEqual((end["state"], end.get("exit"),
                                  end.get("signal")), ("cancelled", 0, None))
                # SIGTERM did it: no wait for the 60 s grace period
                self.assertLess(time.monotonic() - t0, BOUND)
                self.assertIsNone(proc_state(pid))

    @unittest.skipIf(VALGRIND, "valgrind runs the command itself")
    def test_cancel_after_the_main_process_exited_reaches_the_rest_of_its_group(
            self):
        c = self.client()
        # the main process exits; a process it started keeps the pipes
        script = ("(trap 'echo left behind, cleaning up; exit 0' TERM; "
                  "sleep 600 & echo sleep $!; wait) & echo $$")
        for x in EXECUTORS:
            with self.subTest(executor=x):
                rid, job = self.submit(c, ["sh", "-c", script], x,
                                       grace=60000)
                lines = sorted([self.first_output(c, rid)["data"],
                                self.first_output(c, rid)["data"]])
                pid = int(lines[0])
                wait_execd(int(lines[1].split()[1]), "sleep")
                wait_proc_state(pid, "Z")
                self.assertEqual(c.call("status", job=job)["state"],
                                 "running")
                self.assertEqual(c.call("cancel", job=job)["t"], "ok")
                ev = c.until_end(rid)
                self.assertEqual(output(ev), b"left behind, cleaning up\n")
                self.assertEqual(ev[-1]["state"], "cancelled")
                self.assertIsNone(proc_state(pid))

    @unittest.skipIf(VALGRIND, "valgrind runs the command itself")
    def test_a_timeout_ends_timed_out_and_kills_the_command(self):
        c = self.client()
        for x in EXECUTORS:
            with self.subTest(executor=x):
                rid, _ = self.submit(c, ["sh", "-c", "echo $$; exec sleep 600"],
                                     x, timeout=300)
                pid = int(self.first_output(c, rid)["data"])
                end = c.until_end(rid)[-1]
                self.assertEqual((end["state"], end["error"]),
                                 ("timed_out", "timed_out"), end)
                # libevent counts timers from the loop's cached time,
                # which may be a little older than "started"
                self.assertGreaterEqual(end["finished"] - end["started"],
                                        250000)
                wait_reaped(pid)

    def test_a_gather_of_many_commands_leaves_no_descriptor_or_child(self):
        pid = self.d.proc.pid
        fds = "/proc/%d/fd" % pid
        children = "/proc/%d/task/%d/children" % (pid, pid)
        c = self.client()
        # one command first: the spawner threads and their socket stay
        self.assertEqual(self.run_job(c, ["true"], "loop")[-1]["state"],
                         "succeeded")
        before = len(os.listdir(fds))
        with open(children) as f:
            workers = f.read().split()  # the process pool's
        n = 300
        jobs = [{"task": "exec", "exec": "loop",
                 "args": {"argv": ["sh", "-c", "echo $0", str(i)]}}
                for i in range(n)]
        rid = c.request("gather", jobs=jobs)
        self.assertEqual(c.recv_for(rid)["t"], "accepted")
        ends, lines = 0, {}
        while ends < n:
            m = c.recv_for(rid)
            if m["t"] == "output":
                lines[m["index"]] = m["data"]
            else:
                self.assertEqual((m["t"], m["state"]), ("end", "succeeded"))
                ends += 1
        self.assertEqual(lines, {i: b"%d\n" % i for i in range(n)})
        # the spawners close their copies as they go: wait for it, bounded
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            with open(children) as f:
                left = f.read().split()
            if len(os.listdir(fds)) == before and left == workers:
                break
        self.assertEqual(len(os.listdir(fds)), before)
        self.assertEqual(left, workers)

    def test_stopping_concd_kills_daemon_exec_jobs_and_exits_zero(self):
        c = self.client()
        # one command per executor at once: more than the CPUs, perhaps
        c.call("group", op="set", name="default", parallel=0)
        pids = {}
        for x in EXECUTORS:
            rid, _ = self.submit(c, ["sh", "-c", "echo $$; exec sleep 600"],
                                 x, daemon=True)
            pids[rid] = int(self.first_output(c, rid)["data"])
        self.d.proc.send_signal(signal.SIGTERM)
        for rid in pids:
            self.assertEqual(c.until_end(rid)[-1]["state"], "cancelled")
        self.assertEqual(self.d.proc.wait(BOUND), 0)
        for pid in pids.values():
            wait_dead(pid)

    def test_exec_is_listed_and_runs_on_the_loop_by_default(self):
        c = self.client()
        tasks = {t["name"]: t for t in c.call("tasks")["tasks"]}
        self.assertEqual(tasks["exec"]["default"], "loop")
        self.assertEqual(sorted(tasks["exec"]["executors"]),
                         sorted(EXECUTORS))
        ev = c.until_end(c.request("submit", task="exec",
                                   args={"argv": ["true"]}, watch=True))
        self.assertEqual((ev[-1]["state"], ev[-1]["exec"]),
                         ("succeeded", "loop"))

    def test_bad_arguments_are_refused_at_submission(self):
        c = self.client()
        cases = [
            ({}, "missing argument argv"),
            ({"argv": []}, "argv must have 1 to 65536 entries"),
            ({"argv": ["echo", 1]}, "argv must be a list of strings"),
            ({"argv": "echo hi"}, "argv must be a list of strings"),
            ({"argv": ["true"], "env": {"A": 1}},
             "env must be a map of strings to strings"),
            ({"argv": ["true"], "grace": 60001}, "grace must be at most"),
            ({"argv": ["true"], "cwd": ""}, "cwd must be 1 to 4096 bytes"),
        ]
        for args, text in cases:
            m = c.call("submit", task="exec", args=args)
            self.assertEqual((m["t"], m["error"]), ("error", "bad_args"), args)
            self.assertIn(text, m["message"])


if __name__ == "__main__":
    harness.main()
