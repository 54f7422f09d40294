"""concctl's live line on a terminal: "queued" while the job waits for a
worker, then the bar, whose rate and clock count from the job's start
(not its submission) and which gives an ETA; an exec job's queued line is
gone before its output."""
import os
import pty
import re
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, CONCTL, DaemonTest  # noqa: E402


class Terminal:
    """concctl with its standard error on a pseudo-terminal (so it draws
    the live line) and its standard output on a pipe."""

    def __init__(self, socket, *args):
        master, slave = pty.openpty()
        self.master = master
        self.proc = subprocess.Popen(
            [CONCTL, "--socket", socket] + list(args),
            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        self.screen = b""

    def frames(self):
        """The lines drawn so far, each redraw one frame."""
        text = self.screen.decode(errors="replace")
        return [f.replace("\x1b[K", "") for f in re.split(r"[\r\n]", text)
                if f.replace("\x1b[K", "").strip()]

    def wait_for(self, pattern, bound=BOUND):
        """Read the terminal until a frame matches pattern: the match."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            for f in self.frames():
                m = re.search(pattern, f)
                if m:
                    return m
            r, _, _ = select.select([self.master], [], [], 0.1)
            if r:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if not data and self.proc.poll() is not None:
                    break
                self.screen += data
        raise AssertionError("no frame matched %r: %r"
                             % (pattern, self.frames()))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=BOUND)
        try:
            os.close(self.master)
        except OSError:
            pass

    def finish(self):
        out, _ = self.proc.communicate(timeout=BOUND)
        while True:
            r, _, _ = select.select([self.master], [], [], 0)
            if not r:
                break
            try:
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            self.screen += data
        return self.proc.returncode, out.decode()


class Bar(DaemonTest):
    threads = 1

    def terminal(self, *args):
        t = Terminal(self.d.socket, *args)
        self.addCleanup(t.close)
        return t

    def hold_the_thread(self):
        """An exec job on the only thread, held until the gate opens."""
        c = self.d.client()
        self.gate = self.d.gate()
        rid = c.request("submit", task="exec", exec="thread",
                        args={"argv": self.gate.argv})
        job = c.recv_for(rid)["job"]
        c.wait_state(job, "running")
        return job

    def test_a_queued_job_says_so_then_its_rate_counts_from_its_start(self):
        self.hold_the_thread()
        t = self.terminal("run", "-x", "thread", "sleep",
                     "ms=2000", "steps=10")
        # queued for two seconds by the clock it shows
        t.wait_for(r"^job \d+  queued( \(\d+ ahead\))?  0:02$")
        self.gate.release()
        # 10 steps in 2 s: 5/s from the start; counted from the
        # submission, over 2 s earlier, it would be under 2.5/s
        m = t.wait_for(r"\[#+\.*\]  (?:[5-9]\d)%  ([\d.]+)/s  0:0\d  "
                       r"ETA 0:0(\d)")
        self.assertGreater(float(m.group(1)), 3.5, t.frames())
        self.assertLessEqual(int(m.group(2)), 2, t.frames())
        rc, out = t.finish()
        self.assertEqual((rc, out), (0, "2000\n"))

    def test_an_exec_jobs_queued_line_goes_before_its_output(self):
        self.hold_the_thread()
        t = self.terminal("run", "-x", "thread", "exec", "--",
                     "echo", "hello")
        t.wait_for(r"^job \d+  queued")
        self.gate.release()
        rc, out = t.finish()
        self.assertEqual((rc, out), (0, "hello\n"))
        # the line was erased: the terminal ends on an empty line
        self.assertTrue(t.screen.endswith(b"\r\x1b[K"), t.screen[-40:])

    def test_a_job_that_starts_at_once_shows_no_queued_line(self):
        t = self.terminal("run", "sleep", "ms=600", "steps=3")
        t.wait_for(r"\[#+\.*\]")
        rc, out = t.finish()
        self.assertEqual((rc, out), (0, "600\n"))
        self.assertFalse([f for f in t.frames() if "queued" in f],
                         t.frames())


class ProgressEvents(DaemonTest):
    def test_progress_events_carry_the_time_the_job_started(self):
        c = self.d.client()
        for executor in ("loop", "thread", "process"):
            rid = c.request("submit", task="sleep", exec=executor,
                            args={"ms": 40, "steps": 2}, watch=True)
            events = c.until_end(rid)
            end = events[-1]
            progress = [e for e in events if e["t"] == "progress"]
            self.assertEqual(end["state"], "succeeded", end)
            self.assertTrue(progress, events)
            self.assertEqual({e.get("started") for e in progress},
                             {end["started"]}, (executor, events))


if __name__ == "__main__":
    harness.main()
