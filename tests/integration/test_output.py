"""Every byte of a command's output reaches the client that ran it, on
every executor: a client that falls behind holds the command back (it
blocks on its full pipe) instead of losing output; only an extra watcher
that falls behind misses output, counted as dropped; and an output-heavy
job does not keep the loop from serving other clients."""
import hashlib
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BOUND, CONCTL, VALGRIND, DaemonTest  # noqa: E402

EXECUTORS = ("loop", "thread", "process")
# a million lines; 200,000 where a sanitizer slows concctl's reading
# (concd lost output from 200,000 lines as well)
LINES = 200000 if os.environ.get("CONCD_TEST_SANITIZED") == "1" else 1000000
SEQ = b"".join(b"%d\n" % i for i in range(1, LINES + 1))


def wchan(pid):
    """What pid sleeps in, e.g. anon_pipe_write; None when it is gone."""
    try:
        with open("/proc/%d/wchan" % pid) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None


def wait_blocked_on_pipe(pid, bound=BOUND):
    """Wait until pid sleeps writing to a full pipe, asking /proc."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if "pipe_write" in (wchan(pid) or ""):
            return
        time.sleep(0.01)  # polling /proc, bounded by the deadline
    raise AssertionError("pid %d never blocked on its pipe (wchan %r)"
                         % (pid, wchan(pid)))


def wait_file(path, bound=BOUND):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                text = f.read()
            if text.endswith("\n"):
                return text
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise AssertionError("%s never written" % path)


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (field, pid))


def output(events, stream="stdout"):
    return b"".join(e["data"] for e in events
                    if e["t"] == "output" and e["stream"] == stream)


@unittest.skipIf(VALGRIND, "a million lines take minutes under valgrind")
class Output(DaemonTest):
    args = ("-p", "2")

    def client(self):
        c = self.d.client()
        self.addCleanup(c.close)
        return c

    def concctl(self, *args):
        return subprocess.Popen([CONCTL, "--socket", self.d.socket] +
                                [str(a) for a in args],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def assert_all_of_seq(self, out, err, rc):
        self.assertEqual((rc, err), (0, b""))
        self.assertEqual(out.count(b"\n"), LINES)
        self.assertTrue(out.endswith(b"\n%d\n" % LINES), out[-20:])
        self.assertEqual(hashlib.sha256(out).hexdigest(),
                         hashlib.sha256(SEQ).hexdigest())

    def test_concctl_run_gets_every_byte_on_every_executor(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                p = self.concctl("run", "exec", "-x", x, "--",
                                 "seq", "1", LINES)
                out, err = p.communicate(timeout=BOUND * 4)
                self.assert_all_of_seq(out, err, p.returncode)

    def test_a_pipe_read_late_holds_the_command_and_loses_nothing(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                pidfile = os.path.join(self.d.dir, "pid-" + x)
                p = self.concctl("run", "exec", "-x", x, "--", "sh", "-c",
                                 'echo $$ > %s; exec seq 1 %d'
                                 % (pidfile, LINES))
                # nothing reads concctl's stdout until seq is blocked
                pid = int(wait_file(pidfile))
                wait_blocked_on_pipe(pid)
                self.assertIn("running", [j["state"] for j in self.client()
                                          .call("ps")["jobs"]])
                out, err = p.communicate(timeout=BOUND * 4)
                self.assert_all_of_seq(out, err, p.returncode)

    def test_a_client_that_holds_off_reading_gets_every_byte(self):
        lines = LINES
        total = SEQ
        for x in EXECUTORS:
            with self.subTest(executor=x):
                c = self.client()
                pidfile = os.path.join(self.d.dir, "wire-" + x)
                rid = c.request("submit", task="exec", exec=x, watch=True,
                                args={"argv": [
                                    "sh", "-c", "echo $$ > %s; exec seq 1 %d"
                                    % (pidfile, lines)]})
                # c reads nothing, not even its accepted, until seq waits
                wait_blocked_on_pipe(int(wait_file(pidfile)))
                ev = c.until_end(rid)
                self.assertEqual(ev[0]["t"], "accepted")
                end = ev[-1]
                self.assertEqual(end["state"], "succeeded", end)
                self.assertNotIn("dropped", end)
                self.assertEqual(output(ev[1:]), total)
        # held, not buffered: a bounded queue per connection and job
        self.assertLess(vm_kib(self.d.proc.pid, "VmHWM"), 200 * 1024)

    def test_a_watcher_that_never_reads_holds_nothing_and_misses_nothing(self):
        """The job runs to its end while a watcher reads nothing; the
        watcher then reads every byte from the job's log, and its end
        comes after the last one."""
        fifo = os.path.join(self.d.dir, "fifo")
        os.mkfifo(fifo)
        lines = 300000
        total = b"".join(b"%d\n" % i for i in range(1, lines + 1))
        for x in EXECUTORS:
            with self.subTest(executor=x):
                c = self.client()
                rid = c.request("submit", task="exec", exec=x, watch=True,
                                args={"argv": [
                                    "sh", "-c",
                                    "read go < %s; seq 1 %d" % (fifo, lines)]})
                job = c.recv_for(rid)["job"]
                # a second watcher, which never reads until the job is over
                idle = self.client()
                wid = idle.request("watch", job=job)
                self.assertEqual(idle.call("ping")["t"], "pong")
                with open(fifo, "w") as f:
                    f.write("go\n")
                ev = c.until_end(rid)
                self.assertEqual(ev[-1]["state"], "succeeded", ev[-1])
                self.assertNotIn("dropped", ev[-1])
                self.assertEqual(output(ev), total)
                iev = idle.until_end(wid)
                self.assertEqual(iev[-1]["t"], "end")
                self.assertNotIn("dropped", iev[-1])
                self.assertEqual(output(iev), total)
                self.assertNotIn("dropped", c.call("status", job=job))

    def test_an_output_heavy_job_leaves_other_clients_served(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                c = self.client()
                yes = c.call("submit", task="exec", exec=x,
                             args={"argv": ["yes"]})["job"]
                c.wait_state(yes, "running")
                other = self.client()
                for _ in range(50):
                    self.assertEqual(other.call("ping")["t"], "pong")
                # a command on the loop beside it runs and is heard
                rid = other.request("submit", task="exec", exec="loop",
                                    watch=True,
                                    args={"argv": ["echo", "beside"]})
                ev = other.until_end(rid)
                self.assertEqual(output(ev), b"beside\n")
                self.assertEqual(ev[-1]["state"], "succeeded")
                self.assertEqual(c.call("status", job=yes)["state"],
                                 "running")
                self.assertEqual(c.call("cancel", job=yes)["t"], "ok")
                self.assertEqual(
                    c.wait_state(yes, "cancelled")["state"], "cancelled")


if __name__ == "__main__":
    unittest.main()
