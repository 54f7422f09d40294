"""Kept output: every job's stdout and stderr can be read later with
`concctl log` and the `log` request, followed while the job runs, and
replayed by `watch`; the per-job cap keeps the head and the tail and says
how much is missing, the total cap removes the oldest logs first, and only
the job's owner (or an admin) reads it (concd(8) KEPT OUTPUT).

Jobs are held running by a gate (a fifo the test opens), never by time.
"""
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BOUND, CONCTL, PROTO_VERSION, Daemon  # noqa: E402

NOBODY = 65534


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (field, pid))

FIVE = "".join("line %d\n" % i for i in range(1, 6))


class LogTest(unittest.TestCase):
    """A daemon with its state directory in a temporary directory."""
    extra = ()
    memory = False

    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="concd-state-")
        args = list(self.extra)
        if not self.memory:
            args += ["--state-dir", self.state]
        self.d = Daemon(*args)

    def tearDown(self):
        try:
            self.d.close()
        finally:
            shutil.rmtree(self.state, ignore_errors=True)

    def ctl(self, *args, **kw):
        return self.d.concctl(*args, **kw)

    def submit(self, script):
        r = self.ctl("submit", "exec", "--", "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stderr)
        return int(r.stdout)

    def wait(self, job):
        # wait for one exec job exits with its command's status; concctl's
        # own failures are 124 (timed out), 125 and 130
        r = self.ctl("wait", job)
        self.assertNotIn(r.returncode, (124, 125, 130), r.stderr)

    def client(self):
        c = self.d.client()
        self.assertEqual(c.call("hello", version=PROTO_VERSION)["t"],
                         "welcome")
        return c

    def read_log(self, c, **fields):
        """The output messages of one log request and its last reply."""
        rid = c.request("log", **fields)
        out = []
        while True:
            m = c.recv_for(rid)
            self.assertIsNotNone(m)
            if m["t"] != "output":
                return out, m
            out.append(m)

    def wait_log(self, job, text):
        """Ask for the log until it has text: each answer is an event."""
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            r = self.ctl("log", job)
            if text in r.stdout:
                return r
        self.fail("job %d's log never had %r: %r" % (job, text, r.stdout))


class TestLog(LogTest):
    def test_the_issue_example_while_running_and_after(self):
        g = self.d.gate()
        job = self.submit("for i in 1 2; do echo line $i; done; "
                          "echo warn >&2; read x < %s; "
                          "for i in 3 4 5; do echo line $i; done" % g.path)
        r = self.wait_log(job, "line 2\n")
        self.assertEqual(r.stdout, "line 1\nline 2\n")
        self.assertEqual(r.stderr, "warn\n")
        self.assertEqual(r.returncode, 0)
        g.release()
        self.wait(job)
        r = self.ctl("log", job)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, FIVE, "warn\n"))
        r = self.ctl("log", "--tail", "2", job)
        self.assertEqual((r.stdout, r.stderr), ("line 4\nline 5\n", ""))
        r = self.ctl("log", "--stderr", job)
        self.assertEqual((r.stdout, r.stderr), ("", "warn\n"))
        r = self.ctl("log", "--stdout", job)
        self.assertEqual((r.stdout, r.stderr), (FIVE, ""))

    def test_streams_kept_apart_on_the_wire(self):
        job = self.submit("echo a; sleep 0; echo E >&2; exec 2>&-; echo b")
        self.wait(job)
        c = self.client()
        out, last = self.read_log(c, job=job)
        text = b"".join(m["data"] for m in out)
        self.assertEqual(sorted(text.split(b"\n")), sorted(b"a\nE\nb\n".split(b"\n")))
        self.assertEqual([m["stream"] for m in out if m["data"] == b"E\n"], ["stderr"])
        self.assertEqual(last["t"], "ok")
        self.assertEqual((last["job"], last["state"]), (job, "succeeded"))
        # offset and length count bytes of the selected stream
        out, last = self.read_log(c, job=job, stream="stdout", offset=1,
                                  length=3)
        self.assertEqual(b"".join(m["data"] for m in out), b"\nb\n")
        out, last = self.read_log(c, job=job, stream="both")
        self.assertEqual((last["t"], last["error"]), ("error", "bad_field"))

    def test_json_writes_one_object_per_message(self):
        job = self.submit("echo one; echo two")
        self.wait(job)
        r = self.ctl("--json", "log", job)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        self.assertEqual([x["t"] for x in lines], ["output", "ok"])
        self.assertEqual(lines[0]["stream"], "stdout")
        self.assertEqual(lines[1]["state"], "succeeded")

    def test_follow_goes_on_until_the_end_and_exits_with_the_outcome(self):
        g = self.d.gate()
        job = self.submit("echo first; read x < %s; echo last; exit 3"
                          % g.path)
        self.wait_log(job, "first\n")
        p = subprocess.Popen([CONCTL, "--socket", self.d.socket, "log",
                              "-f", str(job)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            self.assertEqual(p.stdout.readline(), "first\n")
            g.release()
            out, err = p.communicate(timeout=BOUND)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(out, "last\n")
        self.assertEqual(p.returncode, 1, err)  # the job failed
        # --tail 0 -f: only what comes after
        r = self.ctl("log", "--tail", "0", "-f", job)
        self.assertEqual((r.returncode, r.stdout), (1, ""))

    def test_follow_with_tail_of_a_job_yet_to_write_gets_all_it_writes(self):
        g = self.d.gate()
        job = self.submit("read x < %s; echo a; echo b; echo c" % g.path)
        c = self.client()
        c.wait_state(job, "running")
        rid = c.request("log", job=job, follow=True, tail=1)
        self.assertEqual(c.call("ping")["t"], "pong")  # the log is read
        g.release()
        events = c.until_end(rid)
        self.assertEqual(b"".join(m["data"] for m in events
                                  if m["t"] == "output"), b"a\nb\nc\n")

    def test_follow_of_a_job_without_output_ends_with_it(self):
        g = self.d.gate()
        job = self.submit("read x < %s" % g.path)
        c = self.client()
        c.wait_state(job, "running")
        rid = c.request("log", job=job, follow=True)
        g.release()
        m = c.recv_for(rid)
        self.assertEqual((m["t"], m["state"]), ("end", "succeeded"))

    def test_watch_replays_a_finished_job(self):
        job = self.submit("echo out; echo err >&2; echo done")
        self.wait(job)
        r = self.ctl("watch", job)
        self.assertEqual(r.returncode, 0, r.stderr)
        # an exec job's result, its exit status, is not printed
        self.assertEqual(r.stdout, 'out\ndone\n')
        self.assertEqual(r.stderr, "err\n")

    def test_watch_of_a_running_job_replays_then_follows(self):
        g = self.d.gate()
        job = self.submit("echo before; read x < %s; echo after" % g.path)
        self.wait_log(job, "before\n")
        c = self.client()
        rid = c.request("watch", job=job)
        m = c.recv_for(rid)
        self.assertEqual((m["t"], m["data"]), ("output", b"before\n"))
        g.release()
        events = c.until_end(rid)
        self.assertEqual([(m["t"], m.get("data")) for m in events
                          if m["t"] != "progress"],
                         [("output", b"after\n"), ("end", None)])
        self.assertEqual(events[-1]["state"], "succeeded")
        self.assertNotIn("dropped", events[-1])

    def test_a_slow_watcher_gets_every_byte_before_the_end(self):
        """A watcher that reads nothing while 24 MiB go by catches up
        from the log: every byte, in order, then the end."""
        g = self.d.gate()
        size = 24 << 20
        job = self.submit("read x < %s; head -c %d /dev/zero | tr '\\0' x; "
                          "echo" % (g.path, size))
        c = self.client()
        c.wait_state(job, "running")
        rid = c.request("watch", job=job)
        g.release()
        other = self.client()
        other.wait_state(job, "succeeded")
        digest, total, end = hashlib.sha256(), 0, None
        while True:
            m = c.recv_for(rid)
            self.assertIsNotNone(m)
            if m["t"] == "output":
                self.assertIsNone(end, "output after the end")
                digest.update(m["data"])
                total += len(m["data"])
            elif m["t"] == "end":
                end = m
                break
        self.assertEqual(total, size + 1)
        self.assertEqual(digest.hexdigest(), hashlib.sha256(
            b"x" * size + b"\n").hexdigest())
        self.assertNotIn("dropped", end)

    def test_a_reader_behind_a_reply_that_waits_for_the_store_waits_too(self):
        """A log read in the same batch as a submit, whose accepted waits
        for the store: the log's output waits behind it, 256 KiB at a
        time, not the whole log at once in the daemon's memory."""
        size = 48 << 20
        job = self.submit("head -c %d /dev/zero | tr '\\0' y" % size)
        self.wait(job)
        c = self.client()
        before = vm_kib(self.d.proc.pid, "VmHWM")
        frames = b""
        for i, msg in enumerate(({"t": "submit", "id": 100, "task": "noop"},
                                 {"t": "log", "id": 101, "job": job})):
            body = msgpack.packb(msg)
            frames += struct.pack(">I", len(body)) + body
        c.send_raw(frames)
        self.assertEqual(c.recv_for(100)["t"], "accepted")
        total = 0
        while True:
            m = c.recv_for(101)
            if m["t"] != "output":
                break
            total += len(m["data"])
        self.assertEqual((m["t"], total), ("ok", size))
        grown = vm_kib(self.d.proc.pid, "VmHWM") - before
        self.assertLess(grown, 16 * 1024, "%d KiB more at the peak" % grown)

    def test_many_readers_each_get_every_byte(self):
        """Three log requests on one connection share its pace; twenty
        watchers on twenty connections follow one job: each gets it all."""
        big = self.submit("head -c %d /dev/zero | tr '\\0' b" % (4 << 20))
        self.wait(big)
        c = self.client()
        rids = [c.request("log", job=big) for _ in range(3)]
        got = dict.fromkeys(rids, 0)
        done = set()
        while len(done) < 3:
            m = c.recv()
            self.assertIsNotNone(m)
            if m["t"] == "output":
                got[m["id"]] += len(m["data"])
            else:
                self.assertEqual(m["t"], "ok", m)
                done.add(m["id"])
        self.assertEqual(list(got.values()), [4 << 20] * 3)
        g = self.d.gate()
        job = self.submit("echo one; read x < %s; seq 1 100000" % g.path)
        self.wait_log(job, "one\n")
        watchers = []
        for _ in range(20):
            w = self.client()
            watchers.append((w, w.request("watch", job=job)))
        g.release()
        want = b"one\n" + b"".join(b"%d\n" % i for i in range(1, 100001))
        for w, rid in watchers:
            ev = w.until_end(rid)
            self.assertEqual(b"".join(m["data"] for m in ev
                                      if m["t"] == "output"), want)
            self.assertEqual(ev[-1]["state"], "succeeded")

    def test_a_job_of_another_user_is_no_such_job(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: acts as uid %d" % NOBODY)
        os.chmod(self.d.socket, 0o666)
        job = self.submit("echo secret")
        self.wait(job)
        r = self.ctl("log", job, user=NOBODY)
        self.assertEqual(r.returncode, 4)
        self.assertIn("no such job: %d" % job, r.stderr)
        self.assertEqual(r.stdout, "")
        r = self.ctl("log", "-f", job, user=NOBODY)
        self.assertEqual((r.returncode, r.stdout), (4, ""))
        r = self.ctl("watch", job, user=NOBODY)
        self.assertEqual((r.returncode, r.stdout), (4, ""))
        # the files are the daemon's alone
        logs = os.path.join(self.state, "logs")
        self.assertEqual(os.stat(logs).st_mode & 0o777, 0o700)
        for name in os.listdir(logs):
            st = os.stat(os.path.join(logs, name))
            self.assertEqual((st.st_mode & 0o777, st.st_uid), (0o600, 0))
        # root reads it
        self.assertEqual(self.ctl("log", job).stdout, "secret\n")
        # a user's own job: theirs and root's to read, no one else's
        r = self.ctl("submit", "exec", "--", "sh", "-c", "echo mine",
                     user=NOBODY)
        self.assertEqual(r.returncode, 0, r.stderr)
        own = int(r.stdout)
        self.wait(own)
        r = self.ctl("log", own, user=NOBODY)
        self.assertEqual((r.returncode, r.stdout), (0, "mine\n"), r.stderr)
        self.assertEqual(self.ctl("log", own).stdout, "mine\n")
        r = self.ctl("log", own, user=NOBODY - 1)
        self.assertEqual((r.returncode, r.stdout), (4, ""))

    def test_logs_outlive_the_daemon(self):
        job = self.submit("echo kept; echo also >&2")
        self.wait(job)
        self.d.close()
        self.d = Daemon("--state-dir", self.state)
        r = self.ctl("log", job)
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "kept\n", "also\n"))
        r = self.ctl("log", "--tail", "1", "--stderr", job)
        self.assertEqual(r.stdout + r.stderr, "also\n")
        # the store has the job: its state, its replay, its end
        c = self.client()
        out, last = self.read_log(c, job=job)
        self.assertEqual((last["t"], last["state"]), ("ok", "succeeded"))
        r = self.ctl("watch", job)
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, 'kept\n', "also\n"))
        failed = self.submit("echo no; exit 2")
        self.wait(failed)
        self.d.close()
        self.d = Daemon("--state-dir", self.state)
        r = self.ctl("log", "-f", failed)
        self.assertEqual((r.returncode, r.stdout), (1, "no\n"))
        r = self.ctl("watch", failed)
        self.assertEqual((r.returncode, r.stdout), (1, "no\n"))

    def test_a_job_without_output_is_no_such_job_only_when_it_is_not(self):
        job = self.submit("true")
        self.wait(job)
        self.d.close()
        self.d = Daemon("--state-dir", self.state)
        r = self.ctl("log", job)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        r = self.ctl("log", job + 1)
        self.assertEqual(r.returncode, 4)

    def test_a_job_without_output_leaves_no_file(self):
        job = self.submit("true")
        self.wait(job)
        self.assertEqual(os.listdir(os.path.join(self.state, "logs")), [])
        r = self.ctl("log", job)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))


class TestCaps(LogTest):
    extra = ("--log-limit", "8K", "--log-total-limit", "40K")

    def test_past_the_cap_the_head_and_tail_are_kept(self):
        lines = "".join("line %06d\n" % i for i in range(20000))
        job = self.submit("i=0; while [ $i -lt 20000 ]; do "
                          "printf 'line %06d\\n' $i; i=$((i+1)); done")
        self.wait(job)
        r = self.ctl("log", job)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertTrue(0 < len(out) <= 8192, len(out))
        # the head is a prefix of the output and the tail a suffix
        k = 0
        while k < len(out) and out[k] == lines[k]:
            k += 1
        self.assertGreater(k, 2000)
        self.assertTrue(lines.endswith(out[k:]), out[k:k + 40])
        self.assertGreater(len(out) - k, 1000)
        self.assertRegex(r.stderr, r"job %d: (\d+) bytes of output not kept"
                         % job)
        skipped = int(r.stderr.split(": ")[2].split()[0])
        self.assertEqual(k + skipped + (len(out) - k), len(lines))
        # on the wire: skipped on the first output after the gap
        c = self.client()
        msgs, last = self.read_log(c, job=job)
        gaps = [m.get("skipped") for m in msgs if "skipped" in m]
        self.assertEqual(gaps, [skipped])
        # the files stay within the cap
        logs = os.path.join(self.state, "logs")
        self.assertLessEqual(sum(os.path.getsize(os.path.join(logs, f))
                                 for f in os.listdir(logs)), 8192)
        r = self.ctl("log", "--tail", "3", job)
        self.assertEqual(r.stdout, lines[-3 * 12:])

    def test_watch_and_log_say_where_output_was_not_kept(self):
        lines = "".join("%d\n" % i for i in range(1, 20001))
        job = self.submit("seq 1 20000")
        self.wait(job)
        for cmd in ("watch", "log"):
            # one pipe for both streams: the notice shows where the gap is
            r = subprocess.run([CONCTL, "--socket", self.d.socket, cmd,
                                str(job)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               timeout=BOUND)
            self.assertEqual(r.returncode, 0, r.stdout)
            m = re.search(r"concctl: job %d: (\d+) bytes of output not "
                          r"kept here\n" % job, r.stdout)
            self.assertIsNotNone(m, (cmd, r.stdout[-200:]))
            head, tail = r.stdout[:m.start()], r.stdout[m.end():]
            self.assertTrue(lines.startswith(head) and head, cmd)
            self.assertTrue(lines.endswith(tail) and tail, cmd)
            self.assertEqual(len(head) + int(m.group(1)) + len(tail),
                             len(lines), cmd)

    def test_over_the_total_cap_the_oldest_logs_go(self):
        jobs = []
        for i in range(8):  # about 6 KiB each: 48 KiB in all
            jobs.append(self.submit(
                "head -c 6000 /dev/zero | tr '\\0' %s; echo" % "abcdefgh"[i]))
            self.wait(jobs[-1])
        logs = os.path.join(self.state, "logs")
        total = sum(os.path.getsize(os.path.join(logs, f))
                    for f in os.listdir(logs))
        self.assertLessEqual(total, 40 * 1024)
        self.assertEqual(self.ctl("log", jobs[0]).stdout, "")
        self.assertEqual(self.ctl("log", jobs[-1]).stdout,
                         "h" * 6000 + "\n")


class TestRetention(LogTest):
    extra = ("--max-finished", "1")

    def test_a_job_the_store_forgets_takes_its_log_along(self):
        first = self.submit("echo first")
        self.wait(first)
        self.assertEqual(self.ctl("log", first).stdout, "first\n")
        for i in range(3):  # more finished jobs than are kept
            self.wait(self.submit("echo later %d" % i))
        logs = os.path.join(self.state, "logs")
        deadline = time.monotonic() + BOUND
        while "%d.0" % first in os.listdir(logs):
            # the store's retention runs with its next commit
            self.assertLess(time.monotonic(), deadline, os.listdir(logs))
            self.wait(self.submit("true"))
        r = self.ctl("log", first)
        self.assertEqual((r.returncode, r.stdout), (4, ""))
        self.assertIn("no such job", r.stderr)


class TestMemoryRetention(LogTest):
    memory = True
    extra = ("--state-dir", "none", "--max-finished", "1")

    def test_in_memory_a_forgotten_job_takes_its_log_along(self):
        first = self.submit("echo first")
        self.wait(first)
        self.wait(self.submit("echo second"))
        self.wait(self.submit("echo third"))
        r = self.ctl("log", first)
        self.assertEqual((r.returncode, r.stdout), (4, ""))


class TestFullDisk(LogTest):
    """The logs directory on a 256 KiB tmpfs: output that does not fit is
    counted, said, and the daemon goes on."""

    def setUp(self):
        if os.geteuid() != 0 or shutil.which("mount") is None:
            self.skipTest("needs root to mount a small tmpfs")
        self.state = tempfile.mkdtemp(prefix="concd-state-")
        self.logs = os.path.join(self.state, "logs")
        os.mkdir(self.logs, 0o700)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700",
                            "tmpfs", self.logs], capture_output=True,
                           text=True)
        if r.returncode != 0:
            shutil.rmtree(self.state, ignore_errors=True)
            self.skipTest("cannot mount a tmpfs: " + r.stderr.strip())
        self.d = Daemon("--state-dir", self.state)

    def tearDown(self):
        try:
            self.d.close()
        finally:
            subprocess.run(["umount", self.logs], capture_output=True)
            shutil.rmtree(self.state, ignore_errors=True)

    def test_output_a_full_disk_does_not_take_is_counted(self):
        size = 1 << 20
        job = self.submit("head -c %d /dev/zero | tr '\\0' x" % size)
        self.wait(job)
        r = self.ctl("log", job)
        self.assertEqual(r.returncode, 0, r.stderr)
        kept = len(r.stdout)
        self.assertTrue(0 < kept < 256 * 1024, kept)
        self.assertEqual(r.stdout, "x" * kept)
        lost = int(r.stderr.split(": ")[2].split()[0])
        self.assertEqual(kept + lost, size, r.stderr)
        self.assertIn("output not kept", self.d.log())
        # the daemon goes on: jobs run, other logs are read
        other = self.submit("echo small")
        self.wait(other)
        self.assertEqual(self.ctl("status", other).returncode, 0)
        r = self.ctl("log", "-f", job)
        self.assertEqual((r.returncode, len(r.stdout)), (0, kept))


class TestStateDirNone(LogTest):
    memory = True
    extra = ("--state-dir", "none", "--log-limit", "4K")

    def test_without_a_state_directory_logs_are_kept_in_memory(self):
        job = self.submit("echo in memory; echo e >&2")
        self.wait(job)
        r = self.ctl("log", job)
        self.assertEqual((r.stdout, r.stderr), ("in memory\n", "e\n"))
        self.assertEqual(os.listdir(self.state), [])
        r = self.ctl("watch", job)
        self.assertEqual(r.stdout, 'in memory\n')

    def test_none_keeps_logs_in_memory_within_the_cap(self):
        job = self.submit("head -c 100000 /dev/zero | tr '\\0' z")
        self.wait(job)
        r = self.ctl("log", job)
        self.assertLessEqual(len(r.stdout), 4096)
        self.assertEqual(r.stdout, "z" * len(r.stdout))
        self.assertIn("bytes of output not kept", r.stderr)


if __name__ == "__main__":
    harness.main()
