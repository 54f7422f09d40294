"""concd under systemd's contracts, without systemd: sd_notify through a
test-owned NOTIFY_SOCKET, socket activation through systemd-socket-activate,
journal priority prefixes, and the forking start-up."""
import os
import signal
import subprocess
import sys
import tempfile
import shutil
import select
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import (BOUND, CONCD, VALGRIND, Client, Daemon,  # noqa: E402
                     Notify, maps_library)


def wait_for_exit(pid, bound=BOUND):
    """Wait for a process that is not our child to end, through a pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        if not p.poll(bound * 1000):
            raise AssertionError("pid %d still running after %ss"
                                 % (pid, bound))
    finally:
        os.close(fd)


def wait_count(notify, message, n, bound=BOUND):
    """Wait for n more copies of message than notify has now."""
    with notify.cond:
        want = notify.messages.count(message) + n
        if not notify.cond.wait_for(
                lambda: notify.messages.count(message) >= want, bound):
            raise AssertionError("%d more %r did not come within %ss"
                                 % (n, message, bound))


def proc_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def pids_with_arg(arg):
    """The processes with arg among their arguments."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                if arg.encode() in f.read().split(b"\0"):
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def read_to_eof(f, bound=BOUND):
    """All a pipe holds until end-of-file, which must come within bound."""
    data = b""
    deadline = time.monotonic() + bound
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([f], [], [], left)[0]:
            raise AssertionError("no end-of-file within %ss (read %r)"
                                 % (bound, data))
        chunk = os.read(f.fileno(), 4096)
        if not chunk:
            return data
        data += chunk


class Notifications(unittest.TestCase):
    def test_ready_status_and_stopping_reach_the_notify_socket(self):
        d = Daemon()
        try:
            c = d.client()
            job = c.call("submit", task="sleep", args={"ms": 600000})["job"]
            status = d.notify.wait_for("STATUS=1 running")
            self.assertEqual(status, "STATUS=1 running, 0 queued, 0 finished")
            c.call("cancel", job=job)
            d.notify.wait_for("STATUS=0 running, 0 queued, 1 finished")
            self.assertEqual(d.stop(), 0)
            d.notify.wait_for("STOPPING=1")
        finally:
            d.close()

    def test_once_stopping_status_says_only_the_drain(self):
        """STATUS= after STOPPING=1 is the drain's, never the running
        daemon's line.  The watchdog's pings (every 300 ms) are the
        daemon's own clock: three after a change mean the STATUS= timer
        (200 ms) has had its turn."""
        d = Daemon("-p", "1", env={"WATCHDOG_USEC": "600000"})
        fifos = [os.path.join(d.dir, "hold%d" % i) for i in range(2)]
        try:
            c = d.client()
            held = []
            for f in fifos:
                os.mkfifo(f)
                rid = c.request("submit", task="exec",
                                args={"argv": ["cat", f]}, watch=True)
                held.append((rid, c.recv_for(rid)["job"]))
            killed = c.call("submit", task="sleep", args={"ms": 600000},
                            daemon=True)["job"]
            for _, job in held + [(None, killed)]:
                c.wait_state(job, "running")
            d.proc.send_signal(signal.SIGTERM)
            d.notify.wait_for("STOPPING=1")
            c.wait_state(killed, "cancelled")
            # the first held command ends: one job less to drain
            with open(fifos[0], "w"):
                pass
            self.assertEqual(c.until_end(held[0][0])[-1]["state"],
                             "succeeded")
            d.notify.wait_for("STATUS=stopping: draining 1 running, "
                              "0 queued")
            wait_count(d.notify, "WATCHDOG=1", 3)
            with open(fifos[1], "w"):
                pass
            self.assertEqual(c.until_end(held[1][0])[-1]["state"],
                             "succeeded")
            self.assertEqual(d.proc.wait(BOUND), 0)
            msgs = d.notify.messages
            after = msgs[msgs.index("STOPPING=1"):]
            status = [m for m in after if m.startswith("STATUS=")]
            self.assertTrue(status, msgs)
            for m in status:
                self.assertTrue(m.startswith("STATUS=stopping: draining "),
                                status)
        finally:
            d.close()

    def log_lines(self, journal_stream):
        """The lines concd logs from start to stop with stderr a pipe and
        JOURNAL_STREAM set by journal_stream(the pipe's stat)."""
        d = tempfile.mkdtemp(prefix="concd-test-")
        notify = Notify(os.path.join(d, "notify"))
        r, w = os.pipe()
        env = dict(os.environ, NOTIFY_SOCKET=notify.path,
                   INVOCATION_ID="0123456789abcdef",
                   JOURNAL_STREAM=journal_stream(os.fstat(w)))
        try:
            p = subprocess.Popen([CONCD, "-f", "-t", "1", "-p", "1", "-s",
                                  os.path.join(d, "s"), "--state-dir",
                                  os.path.join(d, "state")],
                                 env=env, stderr=w)
            os.close(w)
            with os.fdopen(r) as f:
                try:
                    notify.wait_for("READY=1")
                    p.send_signal(signal.SIGTERM)
                    self.assertEqual(p.wait(BOUND), 0)
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.wait(BOUND)
                lines = f.read().splitlines()
            self.assertTrue(lines)
            return lines
        finally:
            notify.close()
            shutil.rmtree(d, ignore_errors=True)

    def test_logs_carry_priority_prefixes_only_when_stderr_is_the_journal(self):
        # stderr is the stream JOURNAL_STREAM names: journald's prefixes
        lines = self.log_lines(lambda st: "%d:%d" % (st.st_dev, st.st_ino))
        self.assertTrue(all(l.startswith("<6>") for l in lines), lines)
        self.assertIn("<6>stopped", lines)
        # inherited from a service, naming another stream: plain lines
        other = os.stat("/")
        for value in (lambda st: "%d:%d" % (other.st_dev, other.st_ino),
                      lambda st: "%d:%d" % (st.st_dev, st.st_ino + 1),
                      lambda st: "garbage", lambda st: ""):
            lines = self.log_lines(value)
            self.assertTrue(all(l.startswith("concd: ") for l in lines),
                            lines)

    def test_a_second_daemon_on_the_same_socket_refuses_to_start(self):
        d = Daemon()
        try:
            r = subprocess.run([CONCD, "-f", "-s", d.socket,
                                "--state-dir", "none"],
                               capture_output=True, text=True, timeout=BOUND)
            self.assertEqual(r.returncode, 1)
            self.assertIn("already listening", r.stderr)
            self.assertEqual(d.client().call("ping")["t"], "pong")
        finally:
            d.close()


def maps_libsystemd(pid):
    return maps_library(pid, "/libsystemd.so")


class Libsystemd(unittest.TestCase):
    """concd loads libsystemd the first time it needs it (systemd.c): a
    concd systemd did not start leaves it, and the libraries it brings,
    unmapped (0.9 MiB of an idle concd)."""

    def test_a_concd_outside_systemd_does_not_map_it(self):
        d = Daemon()
        try:
            self.assertEqual(d.client().call("ping")["t"], "pong")
            self.assertFalse(maps_libsystemd(d.proc.pid))
        finally:
            d.close()

    def test_a_watchdog_loads_it_and_is_pinged(self):
        d = Daemon(env={"WATCHDOG_USEC": "600000"})
        try:
            wait_count(d.notify, "WATCHDOG=1", 1)
            self.assertTrue(maps_libsystemd(d.proc.pid))
        finally:
            d.close()

    def test_a_library_that_cannot_be_loaded_is_named_and_concd_serves(self):
        # an empty file first in the search path: dlopen refuses it
        lib = tempfile.mkdtemp(prefix="concd-lib-")
        self.addCleanup(shutil.rmtree, lib)
        open(os.path.join(lib, "libsystemd.so.0"), "w").close()
        d = Daemon(env={"WATCHDOG_USEC": "600000", "LD_LIBRARY_PATH": lib})
        try:
            d.wait_log("watchdog: %s/libsystemd.so.0: " % lib)
            self.assertEqual(d.client().call("ping")["t"], "pong")
            self.assertFalse(maps_libsystemd(d.proc.pid))
            self.assertEqual(d.stop(), 0)
        finally:
            d.close()


class StartUp(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="concd-test-")
        self.socket = os.path.join(self.dir, "sub", "concd.sock")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    @unittest.skipIf(VALGRIND, "valgrind has no pidfd_open")
    def test_without_f_concd_returns_once_it_serves(self):
        r = subprocess.run([CONCD, "-s", self.socket, "-t", "1",
                            "--state-dir", os.path.join(self.dir, "state")],
                           timeout=BOUND)
        self.assertEqual(r.returncode, 0)
        c = Client(self.socket)  # no retry: it must be listening now
        m = c.call("hello", version=harness.PROTO_VERSION)
        pid = m["pid"]
        self.assertEqual(c.call("shutdown")["t"], "ok")
        self.assertIsNone(c.recv())
        wait_for_exit(pid)
        self.assertFalse(os.path.exists(self.socket))

    @unittest.skipIf(VALGRIND, "valgrind has no pidfd_open")
    def test_without_f_concd_leaves_its_callers_files_and_directory(self):
        """Detached: the caller's pipes reach end-of-file while concd
        runs, its working directory (and its workers') is /, and the
        relative paths it was given, on the command line and in the
        file, still name the same files."""
        # paths relative to the directory above this test's own, so the
        # words on concd's command line are unique to this test
        rel = os.path.basename(self.dir)
        conf = "processes = %d\nplugin-dir = " + rel + "/plugins\n"
        with open(os.path.join(self.dir, "concd.conf"), "w") as f:
            f.write(conf % 1)
        os.mkdir(os.path.join(self.dir, "plugins"))
        plugins = os.environ.get("CONCD_PLUGINS")
        if plugins:
            shutil.copy(os.path.join(plugins, "greet.so"),
                        os.path.join(self.dir, "plugins"))
        rel_socket = rel + "/sub/concd.sock"
        p = subprocess.Popen([os.path.abspath(CONCD), "-s", rel_socket,
                              "-c", rel + "/concd.conf", "-t", "1",
                              "--state-dir", rel + "/state"],
                             cwd=os.path.dirname(self.dir),
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertEqual(p.wait(BOUND), 0)
            c = Client(self.socket)
            pid = c.call("hello", version=harness.PROTO_VERSION)["pid"]
            # end-of-file on both pipes while concd still answers
            self.assertEqual(read_to_eof(p.stdout), b"")
            read_to_eof(p.stderr)
            self.assertEqual(c.call("ping")["t"], "pong")
            pool = c.call("pool")
            self.assertEqual(pool["processes"], 1)
            procs = [pid] + [w["pid"] for w in pool["workers"]
                             if w["exec"] == "process"]
            self.assertEqual(len(procs), 2)
            for q in procs:
                self.assertEqual(os.readlink("/proc/%d/cwd" % q), "/")
                for fd in (0, 1, 2):
                    self.assertEqual(os.readlink("/proc/%d/fd/%d" % (q, fd)),
                                     "/dev/null", (q, fd))
            self.assertEqual(os.getsid(pid), pid)
            if plugins:
                rid = c.request("submit", task="greet",
                                args={"name": "x"}, exec="process",
                                watch=True)
                self.assertEqual(c.until_end(rid)[-1]["state"], "succeeded")
            # a reload reads the file named relative to the caller
            with open(os.path.join(self.dir, "concd.conf"), "w") as f:
                f.write(conf % 2)
            os.kill(pid, signal.SIGHUP)
            deadline = time.monotonic() + BOUND
            while c.call("pool")["processes"] != 2:
                self.assertLess(time.monotonic(), deadline)
            self.assertEqual(c.call("shutdown")["t"], "ok")
            self.assertIsNone(c.recv())
            c.close()
            wait_for_exit(pid)
            self.assertFalse(os.path.exists(self.socket))
        finally:
            p.stdout.close()
            p.stderr.close()
            for q in pids_with_arg(rel_socket):
                os.kill(q, signal.SIGKILL)

    @unittest.skipIf(VALGRIND, "valgrind has no pidfd_open")
    def test_started_with_its_standard_descriptors_closed_concd_serves(self):
        """A descriptor concd opens must never be taken for stdin, stdout
        or stderr, with or without -f."""
        def close_std():
            for fd in (0, 1, 2):
                os.close(fd)
        for fg in ([], ["-f"]):
            with self.subTest(foreground=bool(fg)):
                notify = Notify(os.path.join(self.dir, "notify"))
                env = dict(os.environ, NOTIFY_SOCKET=notify.path)
                p = subprocess.Popen([CONCD, "-s", self.socket, "-t", "1",
                                      "-p", "1", "-d", "--state-dir",
                                      os.path.join(self.dir, "state")] + fg,
                                     env=env,
                                     preexec_fn=close_std)
                pid = p.pid
                try:
                    notify.wait_for("READY=1")
                    c = Client(self.socket)
                    # with -d every request is logged: not into a socket
                    for _ in range(3):
                        self.assertEqual(c.call("ping")["t"], "pong")
                    pid = c.call("hello", version=harness.PROTO_VERSION)["pid"]
                    for fd in (0, 1, 2):
                        self.assertEqual(
                            os.readlink("/proc/%d/fd/%d" % (pid, fd)),
                            "/dev/null", fd)
                    self.assertEqual(c.call("shutdown")["t"], "ok")
                    self.assertIsNone(c.recv())
                    c.close()
                    wait_for_exit(pid)
                    self.assertEqual(p.wait(BOUND), 0)
                finally:
                    # a daemon that went to the background unheard of
                    # is known by the socket path, unique to this test
                    for q in [pid] + pids_with_arg(self.socket):
                        if proc_alive(q):
                            os.kill(q, signal.SIGKILL)
                    p.wait(BOUND)
                    notify.close()
                    os.unlink(notify.path)

    @unittest.skipIf(VALGRIND, "valgrind keeps descriptors of its own")
    def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(self):
        import resource
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard == resource.RLIM_INFINITY or hard <= 1024:
            self.skipTest("needs a hard RLIMIT_NOFILE above 1024")

        def as_systemd_does():
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        d = Daemon(preexec_fn=as_systemd_does)
        try:
            with open("/proc/%d/limits" % d.proc.pid) as f:
                row = [ln.split() for ln in f
                       if ln.startswith("Max open files")][0]
            self.assertEqual((int(row[3]), int(row[4])), (hard, hard))
        finally:
            d.stop()
            d.close()

    def test_usage_errors_exit_2_and_help_exits_0(self):
        r = subprocess.run([CONCD, "--threads", "0"], capture_output=True,
                           text=True, timeout=BOUND)
        self.assertEqual(r.returncode, 2)
        self.assertIn("threads must be a number from 1 to 1024", r.stderr)
        r = subprocess.run([CONCD, "--bogus"], capture_output=True,
                           text=True, timeout=BOUND)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: concd", r.stderr)
        r = subprocess.run([CONCD, "--help"], capture_output=True,
                           text=True, timeout=BOUND)
        self.assertEqual(r.returncode, 0)
        for opt in ("--foreground", "--socket", "--threads",
                    "--max-finished", "--debug", "--version"):
            self.assertIn(opt, r.stdout)
        # what they print lost on a full disk is an error, not a success
        for opt in ("--help", "-V"):
            with open("/dev/full", "w") as full:
                r = subprocess.run([CONCD, opt], stdout=full,
                                   stderr=subprocess.PIPE, text=True,
                                   timeout=BOUND)
            self.assertEqual((r.returncode, r.stderr),
                             (1, "concd: cannot write the standard output: "
                                 "No space left on device\n"), opt)

    def test_a_socket_path_that_is_not_a_socket_is_refused(self):
        path = os.path.join(self.dir, "file")
        open(path, "w").close()
        r = subprocess.run([CONCD, "-f", "-s", path, "--state-dir", "none"],
                           capture_output=True,
                           text=True, timeout=BOUND)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a socket", r.stderr)

    def test_socket_activation_hands_over_the_listening_socket(self):
        if shutil.which("systemd-socket-activate") is None:
            self.skipTest("systemd-socket-activate is not installed")
        notify = Notify(os.path.join(self.dir, "notify"))
        sock = os.path.join(self.dir, "act.sock")
        sock2 = os.path.join(self.dir, "act2.sock")
        env = ["-E", "NOTIFY_SOCKET=" + notify.path]
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env += ["-E", "%s=%s" % (k, os.environ[k])]
        act = subprocess.Popen(
            ["systemd-socket-activate", "-l", sock, "-l", sock2,
             "--fdname=concd:concd"] + env +
            [CONCD, "-f", "-t", "1", "-s", os.path.join(self.dir, "unused"),
             "--state-dir", os.path.join(self.dir, "state")],
            stderr=subprocess.PIPE, text=True)
        try:
            # "Listening on PATH as 3." says the socket is there
            self.assertIn("Listening on", act.stderr.readline())
            self.assertIn("Listening on", act.stderr.readline())
            c = Client(sock)  # this connection starts concd
            m = c.call("hello", version=harness.PROTO_VERSION)
            self.assertEqual(m["t"], "welcome")
            notify.wait_for("READY=1")
            self.assertFalse(os.path.exists(os.path.join(self.dir, "unused")))
            c2 = Client(sock2)
            self.assertEqual(c2.call("ping")["t"], "pong")
            c2.close()
            os.kill(m["pid"], signal.SIGTERM)
            self.assertEqual(act.wait(BOUND), 0)
            log = act.stderr.read()
            self.assertIn("using 2 socket(s) from systemd", log)
            # the ready line names the sockets received, not -s's path
            self.assertIn("listening on %s, %s\n" % (sock, sock2), log)
        finally:
            if act.poll() is None:
                act.kill()
                act.wait(BOUND)
            notify.close()


if __name__ == "__main__":
    harness.main()
