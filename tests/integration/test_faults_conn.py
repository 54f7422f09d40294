"""Faults on the client side of concd: clients that never read, clients
killed in the middle of a request, a thousand clients at once.  Memory
is read from /proc/PID/status, descriptors from /proc/PID/fd."""
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import msgpack

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BOUND, CONCTL, VALGRIND, DaemonTest,  # noqa: E402
                     frame, rss_kib, sanitized)

MIB = 1024 * 1024
OUT_LIMIT = 64 * MIB  # concd-protocol(7): the cap on a connection's output


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class RssPeak:
    """The largest VmRSS of pid while the block runs, sampled every 2 ms
    by a thread: a spike between two of the test's own steps counts."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = rss_kib(pid)
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while self.running:
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, AssertionError):
                return
            time.sleep(0.002)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


class Fifo:
    """Commands wait on it (sh -c 'read x < FIFO'); the test holds it open
    for reading and writing, so that opening it never blocks, and releases
    n of them by writing n lines."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="concd-fifo-")
        self.path = os.path.join(self.dir, "hold")
        os.mkfifo(self.path)
        self.fd = os.open(self.path, os.O_RDWR)

    def argv(self, then="true"):
        return ["sh", "-c", "read x < %s; %s" % (self.path, then)]

    def release(self, n):
        os.write(self.fd, b"\n" * n)

    def close(self):
        os.close(self.fd)
        os.unlink(self.path)
        os.rmdir(self.dir)


class Connections(DaemonTest):
    def setUp(self):
        super().setUp()
        self.pid = self.d.proc.pid
        self.fifo = Fifo()
        # open from before any descriptor count to after the last one
        self.probe = self.d.client()
        # a thousand commands at once: the default group gets no limit
        # (concd(8) QUEUE)
        self.probe.call("group", op="set", name="default", parallel=0)
        # the spawner keeps descriptors from its first command on
        rid = self.probe.request("submit", task="exec", watch=True,
                                 args={"argv": ["true"]})
        self.assertEqual(self.probe.until_end(rid)[-1]["state"],
                         "succeeded")

    def tearDown(self):
        self.fifo.close()
        super().tearDown()

    def wait_for(self, what, cond, bound=BOUND):
        """Ask cond until it holds; a ping between two tries lets concd
        run a loop pass, so every try follows an event."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if cond():
                return
            self.assertEqual(self.probe.call("ping")["t"], "pong")
        raise AssertionError("%s: not within %ss" % (what, bound))

    def wait_counts(self, c, **want):
        def ok():
            counts = c.call("ps", limit=0)["counts"]
            return all(counts[k] == v for k, v in want.items())
        self.wait_for("counts %r" % want, ok)

    def pipeline_without_reading(self, request, n):
        """Send n copies of request on a connection that never reads,
        until concd stops reading it.  Returns the socket, the requests
        sent, and concd's RSS growth in KiB meanwhile; another client's
        pings are answered all along."""
        other = self.probe
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.d.socket)
        s.setblocking(False)
        one = frame(request)
        data = one * n
        off = 0
        before = rss_kib(self.pid)
        deadline = time.monotonic() + BOUND
        with RssPeak(self.pid) as rss:
            while off < len(data):
                self.assertLess(time.monotonic(), deadline,
                                "concd kept reading for %ss" % BOUND)
                try:
                    off += s.send(data[off:off + 65536])
                    continue
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    self.fail("concd closed the connection after %d "
                              "requests" % (off // len(one)))
                # the socket is full: is concd still reading it?
                for _ in range(20):
                    self.assertEqual(other.call("ping")["t"], "pong")
                _, w, _ = select.select([], [s], [], 0)
                if not w:
                    break  # twenty passes later, still full: it stopped
        self.assertLess(off, len(data),
                        "concd read all %d requests of a client that "
                        "reads nothing" % n)
        return s, off // len(one), rss.peak - before

    def assert_rss_drops_back(self, before):
        self.wait_for("RSS back near %d KiB" % before,
                      lambda: rss_kib(self.pid) < before + 1024)

    def check_pipelining(self, request, n):
        fds, before = fd_count(self.pid), rss_kib(self.pid)
        s, sent, growth = self.pipeline_without_reading(request, n)
        sys.stderr.write("\n  %s: %d requests sent of %d; concd's RSS "
                         "%d KiB before, +%d KiB while the client "
                         "did not read, " % (request["t"], sent, n,
                                             before, growth))
        if not VALGRIND:
            self.assertLess(growth * 1024, OUT_LIMIT)
        # it was slowed down, not cut off
        self.assertNotIn("not reading its replies", self.d.log())
        s.close()
        self.wait_for("fds back to %d" % fds,
                      lambda: fd_count(self.pid) == fds)
        if not VALGRIND and not sanitized(self.pid):
            self.assert_rss_drops_back(before)
        sys.stderr.write("%d KiB after it closed\n"
                         % rss_kib(self.pid))

    def test_a_client_pipelining_ps_without_reading_stays_bounded(self):
        # two hundred rows: every reply is over 30 KB
        c = self.probe
        c.request("gather", jobs=[{"task": "noop"}] * 200)
        ends = 0
        while ends < 200:
            ends += c.recv()["t"] == "end"
        self.check_pipelining({"t": "ps", "id": 1, "all": True}, 100000)

    def test_a_client_pipelining_tasks_without_reading_stays_bounded(self):
        self.check_pipelining({"t": "tasks", "id": 1}, 200000)

    def test_a_client_that_reads_late_gets_every_reply_in_order(self):
        """The requests concd held back while a client did not read are
        answered once it reads, in order, none lost or repeated."""
        n = 40000
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.d.socket)
        s.setblocking(False)
        data = b"".join(frame({"t": "tasks", "id": i}) for i in range(1, n))
        data += frame({"t": "ping", "id": n})
        off, buf, want = 0, b"", 1
        paused = False
        deadline = time.monotonic() + 4 * BOUND
        while want <= n:
            self.assertLess(time.monotonic(), deadline)
            if off < len(data):
                try:
                    off += s.send(data[off:off + 65536])
                except BlockingIOError:
                    pass
            if not paused:
                # read nothing until concd has stopped reading
                for _ in range(20):
                    self.probe.call("ping")
                _, w, _ = select.select([], [s], [], 0)
                paused = not w
                continue
            select.select([s], [], [], BOUND)
            try:
                b = s.recv(1 << 20)
            except BlockingIOError:
                continue
            self.assertTrue(b, "concd closed the connection")
            buf += b
            while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(
                    ">I", buf[:4])[0]:
                size = struct.unpack(">I", buf[:4])[0]
                m = msgpack.unpackb(buf[4:4 + size], raw=False)
                buf = buf[4 + size:]
                self.assertEqual(m["id"], want, m)
                self.assertEqual(m["t"], "pong" if want == n else "tasklist")
                want += 1
        s.close()

    def test_a_client_with_64_mib_of_events_unread_is_closed(self):
        """What request reading cannot bound, the events of jobs a client
        watches, is capped: the jobs end all the same."""
        c = self.probe
        # hold both thread workers so that the noop jobs queue up
        holders = [c.call("submit", task="exec", exec="thread",
                          args={"argv": self.fifo.argv()})["job"]
                   for _ in range(2)]
        self.wait_counts(c, running=2)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.d.socket)
        big = {k: "x" * (225 * 1024) for k in "abcd"}  # 900 KiB
        n = OUT_LIMIT // (900 * 1024) + 8
        s.sendall(b"".join(frame({"t": "submit", "id": i + 1, "task": "noop",
                                  "exec": "thread", "watch": True,
                                  "args": big}) for i in range(n)))
        self.wait_counts(c, queued=n)
        self.fifo.release(2)
        self.wait_for("the log line",
                      lambda: "not reading its replies, closing"
                      in self.d.log())
        # what was written before the close, then the end of the stream
        got = 0
        s.settimeout(BOUND)
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            got += len(b)
        self.assertLess(got, n * 900 * 1024)
        s.close()
        self.wait_counts(c, queued=0, running=0)
        for job in holders + list(range(holders[-1] + 1,
                                        holders[-1] + 1 + n)):
            self.assertEqual(c.call("result", job=job)["state"],
                             "succeeded", job)
        self.assertEqual(c.call("ping")["t"], "pong")

    def concctl(self, *args, stdin=None):
        return subprocess.Popen(
            [CONCTL, "--socket", self.d.socket] + list(args),
            stdin=subprocess.PIPE if stdin is not None else
            subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def kill_client_mid_run(self, start, njobs):
        c = self.probe
        fds = fd_count(self.pid)
        p = start()
        self.wait_counts(c, running=njobs)
        jobs = [r["job"] for r in c.call("ps")["jobs"]]
        self.assertEqual(len(jobs), njobs)
        p.kill()
        p.wait(BOUND)
        self.fifo.release(njobs)
        for job in jobs:
            end = c.until_end(c.request("watch", job=job))[-1]
            self.assertEqual((end["t"], end["state"]), ("end", "succeeded"),
                             end)
        self.wait_for("fds back to %d" % fds,
                      lambda: fd_count(self.pid) == fds)

    def test_a_client_killed_mid_exec_leaves_its_job_to_end(self):
        self.kill_client_mid_run(
            lambda: self.concctl("run", "exec", "--",
                                 *self.fifo.argv("echo done")), 1)

    def test_a_client_killed_mid_gather_leaves_its_jobs_to_end(self):
        line = "exec -- %s\n" % " ".join(
            "'%s'" % a for a in self.fifo.argv("echo done"))
        lines = (line * 3 + "sleep ms=1\n").encode()

        def start():
            p = self.concctl("gather", stdin=lines)
            p.stdin.write(lines)
            p.stdin.close()
            return p
        self.kill_client_mid_run(start, 3)

    def test_a_thousand_clients_each_running_a_job_are_all_served(self):
        n = 1000
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < n + 100:
            self.skipTest("RLIMIT_NOFILE hard limit %d < %d" % (hard, n + 100))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        try:
            self.thousand_clients(n)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def thousand_clients(self, n):
        watcher = self.probe
        fds = fd_count(self.pid)
        clients = [self.d.client() for _ in range(n)]
        rids = [cl.request("submit", task="exec", watch=True,
                           args={"argv": self.fifo.argv("echo $PPID")})
                for cl in clients]
        for cl in clients:
            self.assertEqual(cl.recv()["t"], "accepted")
        # every job at once: a thousand commands wait on the fifo
        self.wait_counts(watcher, running=n)
        self.fifo.release(n)
        for cl, rid in zip(clients, rids):
            ev = cl.until_end(rid)
            self.assertEqual(ev[-1]["state"], "succeeded", ev[-1])
            self.assertEqual([e["t"] for e in ev], ["output", "end"])
        for cl in clients:
            cl.close()
        self.wait_for("fds back to %d" % fds,
                      lambda: fd_count(self.pid) == fds)
        # and the one of setUp
        self.assertEqual(watcher.call("ps", limit=0)["counts"]["succeeded"],
                         n + 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
