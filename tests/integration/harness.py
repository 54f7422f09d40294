"""A real concd on a private socket, for the integration tests.

The daemon is started in the foreground with a NOTIFY_SOCKET owned by the
test, and is ready when READY=1 arrives: no test sleeps to "wait enough";
every wait has a generous upper bound instead.
"""
import atexit
import os
import shlex
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

import msgpack

CONCD = os.environ.get("CONCD", "build/daemon/concd")
CONCTL = os.environ.get("CONCTL", "build/client/concctl")
# The protocol version, read from proto.h, its one definition.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "..", "..", "proto", "proto.h")) as _f:
    PROTO_VERSION = int(next(line.split()[2] for line in _f
                             if line.startswith("#define PROTO_VERSION ")))
BOUND = 30.0  # seconds: an upper bound, never a delay
# Under valgrind (scripts/test.sh --valgrind) everything runs many times
# slower and valgrind stands between concd and the commands it runs: tests
# of time bounds and of exec's own errors and signals say so and skip.
VALGRIND = bool(os.environ.get("CONCD_VALGRIND"))
# concd's timers run on libevent's coarse monotonic clock, so a timer
# may fire up to one clock tick (4 ms at 250 Hz) before the same span
# measured on a fine clock has passed: lower bounds allow this much
CLOCK_SLACK = 0.010  # seconds
# how long concd may take to stop after SIGTERM, an upper bound: under a
# sanitizer or valgrind everything runs slower
SLOWDOWN = float(os.environ.get("CONCD_TEST_SLOWDOWN", "1")) * (
    4 if VALGRIND else 1)
STOP_BOUND = 60.0 * SLOWDOWN
# The sanitizers' reports, which fail the test whose concd wrote them
# (or whose worker processes did: they share concd's stderr).
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "runtime error:",
                     "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer")
# The sanitizers write their reports to stderr (concd's log file here)
# and exit non-zero; options already in the environment come last and win.
SANITIZER_OPTIONS = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
    # the python task's interpreter never frees its own (scripts/lsan.supp)
    "LSAN_OPTIONS": "suppressions=" + os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
        "lsan.supp"),
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "TSAN_OPTIONS": "halt_on_error=1:exitcode=66",
}


class Notify:
    """A datagram socket standing in for systemd's notify socket.  A thread
    reads it all the time, as systemd does."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(4096).decode()
            except OSError:
                return
            if not data:
                return
            with self.cond:
                self.messages.extend(data.split("\n"))
                self.cond.notify_all()

    def wait_for(self, prefix, bound=BOUND, proc=None):
        """The first message that starts with prefix, within bound; with
        proc, one that exits first fails the wait at once."""
        deadline = time.monotonic() + bound
        with self.cond:
            while True:
                for m in self.messages:
                    if m.startswith(prefix):
                        return m
                if proc is not None and proc.poll() is not None:
                    raise AssertionError("concd exited with %d before %r "
                                         "(got %r)" % (proc.returncode,
                                                       prefix, self.messages))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %r from concd within %ss "
                                         "(got %r)"
                                         % (prefix, bound, self.messages))
                # a process's exit is no message: it is looked for too
                self.cond.wait(min(left, 0.05) if proc is not None else left)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def frame(msg):
    """msg as concd-protocol(7) frames it: a 4-byte big-endian length,
    then the MessagePack body."""
    body = msgpack.packb(msg)
    return struct.pack(">I", len(body)) + body


def proc_state(pid):
    """The one-letter state of pid, or None when /proc has no such pid."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2]


# Every concd started, so that none outlives a module whose test failed
# before stopping it (ctest would wait for the output it holds open).
_running = []


@atexit.register
def _kill_leftovers():
    for proc in _running:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Gate:
    """Holds the commands of exec jobs until the test releases them, so
    that a job is running for as long as the test needs it to, whatever
    the machine's speed.  The command (argv) opens a fifo, which blocks
    until release() opens the other end, then reads a line and exits 0.
    Once released, the gate stays open for the commands that come later."""

    def __init__(self, path):
        self.path = path
        os.mkfifo(path)
        self.fd = None
        self.argv = ["sh", "-c", "read x < " + shlex.quote(path)]

    def release(self):
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
            os.write(self.fd, b"\n" * 4096)  # a line for each command

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def maps_library(pid, *names):
    """Whether process pid has a file mapped whose path holds one of
    names (a library: "libasan", "/libsystemd.so")."""
    with open("/proc/%d/maps" % pid) as f:
        return any(n in line for line in f for n in names)


def sanitized(pid):
    """Whether process pid runs with AddressSanitizer or ThreadSanitizer,
    whose allocators keep freed memory: its RSS does not drop back when a
    buffer is freed, and says little of what the program holds."""
    return maps_library(pid, "libasan", "libtsan")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def store_instance(state_dir):
    """The instance id (the name of its cgroups, its Slurm jobs and its
    commands' CONCD_INSTANCE) in the store in state_dir, or None."""
    import sqlite3
    path = os.path.join(state_dir, "jobs.db")
    if not os.path.exists(path):
        return None
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=1)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = "
                             "'instance'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def remove_cgroups(names, root="/sys/fs/cgroup", depth=5):
    """Remove the cgroup directories called one of names (with the job
    cgroups inside them) that a killed concd left, as far as they are
    empty."""
    names = set(names)
    for top, dirs, _ in os.walk(root):
        if top[len(root):].count(os.sep) >= depth:
            dirs[:] = []
            continue
        for d in [d for d in dirs if d in names]:
            dirs.remove(d)
            for sub, _, _ in sorted(os.walk(os.path.join(top, d)),
                                    key=lambda w: -len(w[0])):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


class Daemon:
    """concd in the foreground on a private socket.  close() stops it with
    SIGTERM and fails the test unless it exits 0 within STOP_BOUND with no
    sanitizer report in its log; a test that crashes or kills concd on
    purpose says so with expect_exit()."""

    def __init__(self, *args, threads=2, env=None, preexec_fn=None,
                 notify=True, exe=CONCD, socket_path=None):
        self.exit_statuses = (0,)
        self.sanitizer_reports_allowed = False
        self.clients = []  # closed by close()
        self.gates = []  # released and closed by close()
        self.dir = tempfile.mkdtemp(prefix="concd-test-")
        os.chmod(self.dir, 0o755)
        self.socket = socket_path or os.path.join(self.dir, "concd.sock")
        self.notify = Notify(os.path.join(self.dir, "notify"))
        e = dict(os.environ)
        e.pop("INVOCATION_ID", None)
        e.pop("JOURNAL_STREAM", None)
        if notify:
            e["NOTIFY_SOCKET"] = self.notify.path
        else:
            e.pop("NOTIFY_SOCKET", None)
        e.update(env or {})
        for name, options in SANITIZER_OPTIONS.items():
            e[name] = options + (":" + e[name] if e.get(name) else "")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.stderr = open(self.stderr_path, "w")
        # its own store, unless the test names one (or none)
        self.state_dir = os.path.join(self.dir, "state")
        if not any(str(a).startswith("--state-dir") for a in args):
            args = ("--state-dir", self.state_dir) + tuple(args)
        try:
            self.proc = subprocess.Popen(
                [exe, "-f", "-s", self.socket, "-t", str(threads)] +
                list(args), env=e, stderr=self.stderr,
                preexec_fn=preexec_fn)
        except BaseException:  # nothing started: nothing left behind
            self.stderr.close()
            self.notify.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        _running.append(self.proc)
        try:
            if notify:
                self.notify.wait_for("READY=1", proc=self.proc)
            else:
                self.wait_listening()
        except AssertionError as e:
            # no test gets this daemon to close: it goes now, with its log
            log = self.log()
            self._release()
            raise AssertionError("%s; its log:\n%s" % (e, log)) from None

    def wait_listening(self):
        """Without a NOTIFY_SOCKET: try to connect until concd answers;
        every attempt is an event, and the attempts are bounded."""
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("concd exited with %d"
                                     % self.proc.returncode)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return
            except OSError:
                pass
            finally:
                s.close()
        raise AssertionError("concd did not listen within %ss" % BOUND)

    def log(self):
        with open(self.stderr_path) as f:
            return f.read()

    def wait_log(self, text, bound=BOUND):
        """Read concd's log until it has text; bounded."""
        deadline = time.monotonic() + bound
        while text not in self.log():
            if time.monotonic() > deadline:
                raise AssertionError("no %r in concd's log within %ss:\n%s"
                                     % (text, bound, self.log()))
            time.sleep(0.01)  # a file has no event to wait for

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(BOUND)

    def expect_exit(self, *statuses, sanitizer_reports=False):
        """The test crashes or kills concd on purpose: close() accepts
        any of statuses (Popen's returncode: -N for signal N; none given:
        any status), and sanitizer reports in the log if told so."""
        self.exit_statuses = statuses or None
        self.sanitizer_reports_allowed = sanitizer_reports

    def sanitizer_report(self):
        """The first line of a sanitizer's report in concd's log, or
        None."""
        for line in self.log().splitlines():
            if any(r in line for r in SANITIZER_REPORTS):
                return line
        return None

    def close(self):
        """Stop concd with SIGTERM and check how it went: exit status 0
        (or what expect_exit() allows) within STOP_BOUND, and a log with
        no sanitizer report.  Cleans up whatever the outcome."""
        try:
            self._stop_and_check()
        finally:
            self._release()

    def _release(self):
        """Kill concd if it still runs, remove what a concd that did not
        exit 0 left, and close and delete what the harness made for it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(BOUND)
        if self.proc.returncode != 0:
            # a concd killed (or crashed) leaves its cgroups behind,
            # named by its pid or by its store: the private store the
            # harness gave it (a store the test named is left alone:
            # another concd may run on it by now, under the same name)
            remove_cgroups(("concd-%d" % self.proc.pid,
                            "concd-%s" % store_instance(self.state_dir)))
        for c in self.clients:
            c.close()
        for g in self.gates:
            g.close()
        self.stderr.close()
        self.notify.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def gate(self):
        """A new Gate, released when the daemon is closed at the latest."""
        g = Gate(os.path.join(self.dir, "gate%d" % len(self.gates)))
        self.gates.append(g)
        return g

    def _stop_and_check(self):
        problems = []
        for g in self.gates:
            g.release()  # what they hold is not left for concd to drain
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_BOUND)
            except subprocess.TimeoutExpired:
                where = threads_report(self.proc.pid)
                self.proc.kill()
                self.proc.wait(BOUND)
                problems.append("concd did not stop within %ss of SIGTERM;"
                                " where its threads were:\n%s"
                                % (STOP_BOUND, where))
        rc = self.proc.returncode
        if (not problems and self.exit_statuses is not None
                and rc not in self.exit_statuses):
            problems.append("concd exited with %d, not %s" % (
                rc, " or ".join(map(str, self.exit_statuses))))
        report = self.sanitizer_report()
        if report is not None and not self.sanitizer_reports_allowed:
            problems.append("a sanitizer reported: " + report)
        if problems:
            raise AssertionError("; ".join(problems)
                                 + "\nconcd's log:\n" + self.log()[-20000:])

    def client(self):
        c = Client(self.socket)
        self.clients.append(c)
        return c

    def concctl(self, *args, input=None, user=None, env=None):
        cmd = [CONCTL, "--socket", self.socket] + [str(a) for a in args]
        if user is not None:
            cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user,
                   "--clear-groups"] + cmd
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run(cmd, input=input, capture_output=True,
                              text=True, timeout=BOUND * SLOWDOWN, env=e)


def threads_report(pid):
    """Where each thread of a process that hangs is: its state, kernel
    wait channel, system call and signal masks from /proc (a pending
    SIGTERM that no thread takes shows in ShdPnd), then its stacks if gdb
    is installed.  For the failure message of a test, never a check."""
    lines = []
    for tid in sorted(os.listdir("/proc/%d/task" % pid), key=int):
        t = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(t + "status") as f:
                st = dict(line.rstrip("\n").split(":\t", 1)
                          for line in f if ":\t" in line)
            with open(t + "wchan") as f:
                wchan = f.read()
            with open(t + "syscall") as f:
                sysc = f.read().split()[0]
        except OSError:
            continue  # gone meanwhile
        lines.append("%s %s %s wchan=%s syscall=%s SigPnd=%s ShdPnd=%s "
                     "SigBlk=%s" % (tid, st.get("Name"), st.get("State"),
                                    wchan, sysc, st.get("SigPnd"),
                                    st.get("ShdPnd"), st.get("SigBlk")))
    gdb = shutil.which("gdb")
    if gdb is not None:
        try:
            r = subprocess.run([gdb, "-batch", "-nx", "-p", str(pid), "-ex",
                                "thread apply all bt 30"],
                               capture_output=True, text=True,
                               timeout=BOUND * SLOWDOWN)
            lines += [x for x in r.stdout.splitlines()
                      if x.startswith(("Thread ", "#"))]
        except subprocess.TimeoutExpired:
            lines.append("(gdb did not answer)")
    return "\n".join(lines)


class Client:
    """Speaks the wire format with Python's msgpack: an independent check
    that frames really are what concd-protocol(7) says."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(BOUND)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        self.pending = []  # messages read while looking for another id

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, msg):
        self.sock.sendall(frame(msg))

    def request(self, t, **fields):
        rid = self.next_id
        self.next_id += 1
        self.send(dict(t=t, id=rid, **fields))
        return rid

    def recv(self):
        """The next message, or None when the daemon closed."""
        if self.pending:
            return self.pending.pop(0)
        return self._read()

    def recv_for(self, rid):
        """The next message for request rid; others wait their turn."""
        for i, m in enumerate(self.pending):
            if m.get("id") == rid:
                return self.pending.pop(i)
        while True:
            m = self._read()
            if m is None or m.get("id") == rid:
                return m
            self.pending.append(m)

    def _read(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    m = msgpack.unpackb(self.buf[4:4 + n], raw=False)
                    self.buf = self.buf[4 + n:]
                    return m
            data = self.sock.recv(1 << 16)
            if not data:
                return None
            self.buf += data

    def call(self, t, **fields):
        rid = self.request(t, **fields)
        m = self.recv_for(rid)
        assert m is not None, "connection closed before the reply"
        return m

    def until_end(self, rid):
        events = []
        while True:
            m = self.recv_for(rid)
            assert m is not None, "connection closed before the end event"
            events.append(m)
            if m["t"] in ("end", "error"):
                return events

    def wait_state(self, job, *states, bound=BOUND):
        """Ask for the job's status until it is in one of states: each
        answer is an event, and the asking is bounded."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            st = self.call("status", job=job)
            if st.get("state") in states:
                return st
        raise AssertionError("job %d never reached %r: %r"
                             % (job, states, st))

    def first_job(self, bound=BOUND):
        """The id of the first job ps shows, asking until there is one."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            jobs = self.call("ps")["jobs"]
            if jobs:
                return jobs[0]["job"]
        raise AssertionError("no job appeared within %ss" % bound)

    def close(self):
        self.sock.close()


class DaemonTest(unittest.TestCase):
    args = ()
    threads = 2
    notify = True  # False: no NOTIFY_SOCKET, so no STATUS= timer either

    def setUp(self):
        self.d = Daemon(*self.args, threads=self.threads, notify=self.notify)

    def tearDown(self):
        self.d.close()


# Skipped tests are listed when the module ends, one line each, as
# "SKIP: <test id> -- <reason>": scripts/test.sh collects them from
# ctest's log, so a skip is seen, not counted as a pass.
_skipped = []
_add_skip = unittest.TestResult.addSkip


def _record_skip(result, test, reason):
    _skipped.append((test.id(), reason))
    _add_skip(result, test, reason)


def _list_skips():
    for test, reason in _skipped:
        sys.stderr.write("SKIP: %s -- %s\n" % (test, reason))
    sys.stderr.flush()


unittest.TestResult.addSkip = _record_skip
atexit.register(_list_skips)

# A module all of whose tests were skipped exits with this status, which
# ctest counts as skipped (SKIP_RETURN_CODE in CMakeLists.txt).
SKIP_RETURN_CODE = 77


def main():
    """unittest.main, with SKIP_RETURN_CODE when every test skipped."""
    result = unittest.main(exit=False, verbosity=2).result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.testsRun > 0 and len(result.skipped) == result.testsRun:
        sys.exit(SKIP_RETURN_CODE)
    sys.exit(0)
