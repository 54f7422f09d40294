"""concd under systemd's contracts, without systemd: sd_notify through a
test-owned NOTIFY_SOCKET, socket activation through systemd-socket-activate,
journal priority prefixes, and the forking start-up."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import shutil
import select
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, CONCD, VALGRIND, Client, Daemon, Notify  # noqa: E402


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

    def test_logs_carry_priority_prefixes_only_under_systemd(self):
        d = Daemon(env={"INVOCATION_ID": "0123456789abcdef"})
        try:
            self.assertEqual(d.stop(), 0)
            lines = d.log().splitlines()
            self.assertTrue(lines)
            self.assertTrue(all(l.startswith("<6>") for l in lines), lines)
        finally:
            d.close()
        d = Daemon()
        try:
            self.assertEqual(d.stop(), 0)
            lines = d.log().splitlines()
            self.assertTrue(all(l.startswith("concd: ") for l in lines),
                            lines)
        finally:
            d.close()

    def test_a_second_daemon_on_the_same_socket_refuses_to_start(self):
        d = Daemon()
        try:
            r = subprocess.run([CONCD, "-f", "-s", d.socket],
                               capture_output=True, text=True, timeout=BOUND)
            self.assertEqual(r.returncode, 1)
            self.assertIn("already listening", r.stderr)
            self.assertEqual(d.client().call("ping")["t"], "pong")
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
        r = subprocess.run([CONCD, "-s", self.socket, "-t", "1"],
                           timeout=BOUND)
        self.assertEqual(r.returncode, 0)
        c = Client(self.socket)  # no retry: it must be listening now
        m = c.call("hello", version=1)
        pid = m["pid"]
        self.assertEqual(c.call("shutdown")["t"], "ok")
        self.assertIsNone(c.recv())
        wait_for_exit(pid)
        self.assertFalse(os.path.exists(self.socket))

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

    def test_a_socket_path_that_is_not_a_socket_is_refused(self):
        path = os.path.join(self.dir, "file")
        open(path, "w").close()
        r = subprocess.run([CONCD, "-f", "-s", path], capture_output=True,
                           text=True, timeout=BOUND)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a socket", r.stderr)

    def test_socket_activation_hands_over_the_listening_socket(self):
        if shutil.which("systemd-socket-activate") is None:
            self.skipTest("systemd-socket-activate is not installed")
        notify = Notify(os.path.join(self.dir, "notify"))
        sock = os.path.join(self.dir, "act.sock")
        env = ["-E", "NOTIFY_SOCKET=" + notify.path]
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env += ["-E", "%s=%s" % (k, os.environ[k])]
        act = subprocess.Popen(
            ["systemd-socket-activate", "-l", sock, "--fdname=concd"] + env +
            [CONCD, "-f", "-t", "1", "-s", os.path.join(self.dir, "unused")],
            stderr=subprocess.PIPE, text=True)
        try:
            # "Listening on PATH as 3." says the socket is there
            self.assertIn("Listening on", act.stderr.readline())
            c = Client(sock)  # this connection starts concd
            m = c.call("hello", version=1)
            self.assertEqual(m["t"], "welcome")
            notify.wait_for("READY=1")
            self.assertFalse(os.path.exists(os.path.join(self.dir, "unused")))
            os.kill(m["pid"], signal.SIGTERM)
            self.assertEqual(act.wait(BOUND), 0)
            self.assertIn("socket(s) from systemd", act.stderr.read())
        finally:
            if act.poll() is None:
                act.kill()
                act.wait(BOUND)
            notify.close()


if __name__ == "__main__":
    harness.main()
