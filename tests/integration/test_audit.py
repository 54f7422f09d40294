"""The audit trail as the journal gets it: concd with its stderr the
journal's stream (JOURNAL_STREAM naming it) sends each job's records to
journald's socket with fields of their own, and keeps its other messages
on stderr with priority prefixes.

There is no journald here, so the module binds a stand-in datagram socket
where sd_journal_send(3) sends, /run/systemd/journal/socket: it runs only
as root and where no journal listens, and skips otherwise.

FakeJournal and JournalDaemon are the helpers for any test of what concd
sends to the journal: FakeJournal(path) collects the records (dicts of
fields), JournalDaemon starts concd with stderr a file that JOURNAL_STREAM
names.
"""
import array
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, CONCD, STOP_BOUND, Client, Notify  # noqa: E402

JOURNAL_DIR = "/run/systemd/journal"
JOURNAL_SOCKET = JOURNAL_DIR + "/socket"
STATES = ("queued", "running", "succeeded", "failed", "cancelled",
          "timed_out")


def journal_fields(data):
    """journald's native format into a dict: NAME=value\\n, or for a value
    with a newline NAME\\n, a little-endian 64-bit length, value, \\n."""
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        eq = data.find(b"=", i, nl)
        if eq >= 0:
            fields[data[i:eq].decode()] = data[eq + 1:nl].decode(
                errors="surrogateescape")
            i = nl + 1
            continue
        n, = struct.unpack("<Q", data[nl + 1:nl + 9])
        fields[data[i:nl].decode()] = data[nl + 9:nl + 9 + n].decode(
            errors="surrogateescape")
        i = nl + 9 + n + 1
    return fields


class FakeJournal:
    """A datagram socket standing in for journald's, read by a thread as
    journald would.  A record too large for a datagram comes as a memfd
    (SCM_RIGHTS), which is read too."""

    def __init__(self, path=JOURNAL_SOCKET):
        self.path = path
        self.made_dir = None
        d = os.path.dirname(path)
        if not os.path.isdir(d):
            os.makedirs(d, 0o755)
            self.made_dir = d
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind(path)
        except OSError:
            self.sock.close()
            self._remove_dir()
            raise
        self.records = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @staticmethod
    def available():
        """Why a FakeJournal cannot be had here, or None."""
        if os.geteuid() != 0:
            return "binds %s: needs root" % JOURNAL_SOCKET
        if os.path.exists(JOURNAL_SOCKET):
            return "a journal listens at %s already" % JOURNAL_SOCKET
        return None

    def _read(self):
        fds = array.array("i")
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(
                    1 << 17, socket.CMSG_SPACE(fds.itemsize))
            except OSError:
                return
            if not data and not anc:
                return
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fd, = struct.unpack("i", payload[:4])
                    with os.fdopen(fd, "rb") as f:
                        data = f.read()
            with self.cond:
                self.records.append(journal_fields(data))
                self.cond.notify_all()

    def wait_for(self, match, bound=BOUND):
        """The first record for which match(record) is true, waiting up to
        bound seconds; None if none came."""
        deadline = time.monotonic() + bound
        with self.cond:
            while True:
                for r in self.records:
                    if match(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def _remove_dir(self):
        if self.made_dir is not None:
            try:
                os.rmdir(self.made_dir)
            except OSError:
                pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(BOUND)
        try:
            os.unlink(self.path)
        except OSError:
            pass
        self._remove_dir()


class JournalDaemon:
    """concd in the foreground with its stderr a file that JOURNAL_STREAM
    names, as systemd's StandardError=journal would set it up; ready at
    READY=1.  close() stops it and checks that it exited 0."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="concd-test-")
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "concd.sock")
        self.notify = Notify(os.path.join(self.dir, "notify"))
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.stderr = open(self.stderr_path, "w")
        st = os.fstat(self.stderr.fileno())
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.path,
                   JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        env.pop("INVOCATION_ID", None)
        for name, options in harness.SANITIZER_OPTIONS.items():
            env[name] = options + (":" + env[name] if env.get(name) else "")
        self.proc = subprocess.Popen(
            [CONCD, "-f", "-s", self.socket, "-t", "2", "--state-dir",
             os.path.join(self.dir, "state")] + list(args),
            env=env, stderr=self.stderr)
        self.clients = []
        try:
            self.notify.wait_for("READY=1")
        except BaseException:
            self.close()
            raise

    def client(self):
        c = Client(self.socket)
        self.clients.append(c)
        return c

    def log(self):
        with open(self.stderr_path) as f:
            return f.read()

    def stop(self):
        """SIGTERM; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(STOP_BOUND)

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(BOUND)
        finally:
            for c in self.clients:
                c.close()
            self.stderr.close()
            self.notify.close()
            shutil.rmtree(self.dir, ignore_errors=True)


class Audit(unittest.TestCase):
    def setUp(self):
        why = FakeJournal.available()
        if why is not None:
            self.skipTest(why)
        self.journal = FakeJournal()
        self.addCleanup(self.journal.close)
        self.d = JournalDaemon()
        self.addCleanup(self.d.close)

    def run_job(self, **fields):
        """Submit a job and wait for its end: its status record."""
        c = self.d.client()
        rid = c.request("submit", watch=True, **fields)
        events = c.until_end(rid)
        self.assertEqual(events[-1]["t"], "end", events)
        return c.call("status", job=events[0]["job"])

    def record(self, job, event, bound=BOUND):
        return self.journal.wait_for(
            lambda r: r.get("JOB_ID") == str(job)
            and r.get("JOB_EVENT") == event, bound)

    def test_each_job_event_is_a_journal_record_with_its_fields(self):
        failed = self.run_job(task="exec",
                              args={"argv": ["sh", "-c", "exit 3"]})
        ok = self.run_job(task="noop")
        self.assertEqual(failed["state"], "failed")
        # The jobs have ended: their accepted records went out before
        # that, so a short wait tells whether concd logs job events at all.
        first = self.record(failed["job"], "accepted", bound=3.0)
        if first is None:
            self.skipTest("no job event reached the journal: log_job is "
                          "not called on job events yet")
        common = {"PRIORITY": "6", "SYSLOG_IDENTIFIER": "concd",
                  "OWNER_UID": "0"}
        for k, v in common.items():
            self.assertEqual(first.get(k), v, first)
        self.assertEqual(first["TASK"], "exec")
        self.assertIn(first["STATE"], STATES)
        self.assertEqual(first["COMMAND"], "sh -c 'exit 3'")
        self.assertEqual(first["MESSAGE"], "job %d accepted: uid 0 exec "
                         "sh -c 'exit 3'" % failed["job"])
        self.assertNotIn("ERROR", first)
        end = self.record(failed["job"], "finished")
        self.assertIsNotNone(end, self.journal.records)
        for k, v in common.items():
            self.assertEqual(end.get(k), v, end)
        self.assertEqual((end["TASK"], end["STATE"], end["ERROR"]),
                         ("exec", "failed", failed["error"]))
        self.assertEqual(end["MESSAGE"], "job %d finished: failed (%s)"
                         % (failed["job"], failed["error"]))
        a = self.record(ok["job"], "accepted")
        self.assertIsNotNone(a, self.journal.records)
        self.assertEqual(a["MESSAGE"], "job %d accepted: uid 0 noop"
                         % ok["job"])
        self.assertNotIn("COMMAND", a)
        end = self.record(ok["job"], "finished")
        self.assertIsNotNone(end, self.journal.records)
        self.assertEqual((end["TASK"], end["STATE"], end["MESSAGE"]),
                         ("noop", "succeeded",
                          "job %d finished: succeeded" % ok["job"]))
        self.assertNotIn("ERROR", end)
        self.assertEqual(self.d.stop(), 0)

    def test_the_daemons_own_messages_stay_on_stderr_with_priorities(self):
        self.run_job(task="noop")
        self.assertEqual(self.d.stop(), 0)
        lines = self.d.log().splitlines()
        self.assertIn("<6>stopped", lines)
        self.assertTrue(all(l.startswith("<") for l in lines), lines)
        # the journal got job records, if any, and nothing else
        with self.journal.cond:
            others = [r for r in self.journal.records if "JOB_ID" not in r]
        self.assertEqual(others, [])


if __name__ == "__main__":
    harness.main()
