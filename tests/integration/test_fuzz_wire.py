"""concd under random requests over its socket (tests/fuzz fuzzes the
frame reader and decoder alone; this reaches the handlers behind them),
and concctl under random command lines.

A seeded generator makes requests of every type concd-protocol(7) names,
and some it does not: fields valid, missing, of the wrong MessagePack type
or unknown; numbers at the edges of 32 and 64 bits; strings that are not
UTF-8, hold a NUL or pass the limits; maps and arrays nested too deep;
jobs of every task, executor, group, dependency and queue option.  Four
connections send them and drain what comes back, and now and then one
vanishes; a few frames go damaged byte by byte on connections of their
own.  After every 250 requests a new connection must get its pong; at the
end a plain job must still run, and concd must stop with status 0 and no
sanitizer report (Daemon.close); then a concd starts on its store, and
serves what it kept.  As root, a process of the user nobody sends
requests of its own meanwhile, and a second run puts the store on an
8 MiB tmpfs that the test fills half way through the requests and again
at three quarters (concd gives up its reserve the first time), then
empties: concd must refuse what it cannot keep, and take jobs again.  A
third run kills concd (SIGKILL) half way and starts it again on its
store and socket: the requests go on against the one that read back the
journal.

concctl gets commands, their prefixes, options with values right, wrong
or missing, and arguments of every kind: it must exit with a status
concctl(1) documents, and a sanitized build must report nothing.

Only harmless work can start: the exec task gets commands from a fixed
list, the python task calls from a fixed list; no request shuts concd
down.  A longer session by hand, from the build directory's environment:

  CONCD_FUZZ_SEEDS=100-139 CONCD_FUZZ_REQUESTS=20000 \\
      /usr/bin/python3 tests/integration/test_fuzz_wire.py
"""
import collections
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest

import msgpack

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import (BOUND, CONCTL, SANITIZER_OPTIONS,  # noqa: E402
                     SANITIZER_REPORTS, VALGRIND, Daemon)

PLUGINS = os.environ.get("CONCD_PYTHON_PLUGINS")
# fewer under valgrind, where each costs fifty times as much
REQUESTS = int(os.environ.get("CONCD_FUZZ_REQUESTS",
                              "250" if VALGRIND else "2500"))
PING_EVERY = 250
NOBODY = 65534  # the other user, when the test runs as root


def seeds():
    lo, _, hi = os.environ.get("CONCD_FUZZ_SEEDS", "1-2").partition("-")
    return range(int(lo), int(hi or lo) + 1)


TYPES = ["ping", "submit", "gather", "watch", "status", "cancel", "result",
         "log", "input", "group", "hold", "release", "wait", "restart",
         "tasks", "pool", "ps", "clean", "resize", "remote", "hello",
         # replies and worker messages, which a client may not send
         "welcome", "end", "run", "started", "returned", "nonsense"]
BUSY = ["submit", "gather", "status", "cancel", "log", "ps", "restart",
        "hold", "release", "input"]
TASKS = ["noop", "sleep", "primes", "exec", "checksum", "counter", "table",
         "python", "nosuch", ""]
EXECS = ["loop", "thread", "process", "auto", "remote", "slurm", "bogus"]
STATES = ["queued", "running", "succeeded", "failed", "cancelled",
          "timed_out", "interrupted", "bogus"]
FIELDS = ("t id version task args exec daemon watch fresh timeout job "
          "state uid done total msg result error message worker all limit "
          "jobs name data index attempt retries retry_delay fail_fast offset "
          "length tail follow since until cwd env stdin eof exit signal "
          "command group priority cpus label at held parallel paused op "
          "after after_any before mem pids count partition time threads "
          "processes cancel_pending stream umask").split()
ARGV = [["true"], ["false"], ["sh", "-c", "echo out; echo err >&2"],
        ["sh", "-c", "exit 7"], ["sleep", "0.05"], ["cat"],
        ["printf", "%s", "x" * 3000], ["/nonexistent/command"], [""], []]
CALLS = ["builtins:len", "math:sqrt", "json:dumps", "builtins:print",
         "time:sleep", "no.such.module:f", "builtins:", ":len", "math"]


class Requests:
    """The generator: one random.Random, and the highest job id seen in a
    reply, so that most ids asked about exist."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        self.top = 1

    def num(self):
        r, c = self.r, self.r.random()
        if c < 0.5:
            return r.randint(0, 10)
        if c < 0.65:
            return r.randint(0, 100000)
        if c < 0.8:
            return r.choice([2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53,
                             2**63 - 1, 2**63, 2**64 - 1])
        if c < 0.9:
            return r.randint(-2**63, -1)
        return r.randint(0, self.top + 5)

    def text(self):
        r, c = self.r, self.r.random()
        if c < 0.4:
            return r.choice(["", "a", "default", "g1", "g2", "é", "a\x00b",
                             "../x", "/tmp", "-n", "x" * 64])
        if c < 0.6:
            return "".join(chr(r.randint(1, 0x7ff))
                           for _ in range(r.randint(0, 40)))
        if c < 0.7:
            return "y" * r.choice([255, 256, 4095, 4096, 65536]
                                  if r.random() < 0.3 else [255, 256])
        if c < 0.85:  # bytes: a str when the frame packs raw strings
            return bytes(r.randint(0, 255) for _ in range(r.randint(0, 20)))
        return r.choice(STATES + TASKS + EXECS)

    def value(self, depth=0):
        r = self.r
        c = r.random() * (0.6 if depth > 3 else 1.0)
        if c < 0.2:
            return self.num()
        if c < 0.4:
            return self.text()
        if c < 0.5:
            return r.choice([True, False, None, 1.5, -0.0, float("nan")])
        if c < 0.75:
            return [self.value(depth + 1) for _ in range(r.randint(0, 5))]
        if c < 0.95:
            return {(r.choice(FIELDS) if r.random() < 0.5 else self.text()):
                    self.value(depth + 1) for _ in range(r.randint(0, 5))}
        return [[[[[[[[[[1]]]]]]]]]] if r.random() < 0.5 else \
            {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}

    def args(self, task):
        r = self.r
        if task == "sleep":
            return {"ms": r.choice([0, 1, 10, 200, 1500]),
                    "steps": r.choice([1, 2, 5])}
        if task in ("primes", "table"):
            return {"n": r.choice([0, 1, 10, 1000, 100000])}
        if task == "exec":
            a = {"argv": r.choice(ARGV)}
            for k, v in (("stdin", ["pipe", "null", "x"]),
                         ("grace", [0, 10, 100])):
                if r.random() < 0.25:
                    a[k] = r.choice(v)
            return a
        if task == "checksum":
            return {"path": r.choice(["/etc/hostname", "/nonexistent", "/",
                                      "/proc/self/status", "/dev/null"])}
        if task == "python":
            a = {"call": r.choice(CALLS),
                 "args": r.choice([[], [4], ["x"], [0.01]])}
            for k, v in (("umask", [0, 0o77, 0o1000, -1, "x"]),
                         ("cwd", ["/", "/nonexistent", "", 5]),
                         ("path", [[], ["/nonexistent"], "/tmp:/", [1]])):
                if r.random() < 0.25:
                    a[k] = r.choice(v)
            return a
        return {}

    def job(self):
        r = self.r
        if r.random() < 0.6:  # one concd should accept
            task = r.choice(["noop", "sleep", "primes", "exec", "checksum",
                             "python", "table"])
            m = {"task": task, "args": self.args(task)}
            if task == "python" and r.random() < 0.8:
                m["args"] = {"call": r.choice(CALLS[:2]), "args": [4]}
            if task in ("primes", "python", "checksum", "table"):
                m["exec"] = r.choice(["thread", "process"])
            elif task in ("noop", "sleep"):
                m["exec"] = r.choice(["loop", "thread", "process"])
            gens = (("watch", lambda: r.random() < 0.5),
                    ("daemon", lambda: r.random() < 0.5),
                    ("timeout", lambda: r.choice([5, 100, 2000])),
                    ("retries", lambda: r.choice([1, 2])),
                    ("group", lambda: r.choice(["g1", "g2", "default"])),
                    ("priority", lambda: r.randint(-5, 5)),
                    ("held", lambda: True),
                    ("after", lambda: [r.randint(1, self.top)]),
                    ("umask", lambda: 0o27),
                    ("label", lambda: "lab"))
            p = 0.15
        else:
            task = r.choice(TASKS)
            m = {"task": task, "args": self.args(task)}
            gens = (("exec", lambda: r.choice(EXECS)),
                    ("watch", lambda: r.random() < 0.5),
                    ("daemon", lambda: r.random() < 0.5),
                    ("fresh", lambda: r.random() < 0.3),
                    ("timeout", lambda: r.choice([0, 5, 100, 2000])),
                    ("retries", lambda: r.choice([0, 1, 2, 11])),
                    ("retry_delay", lambda: r.choice([0, 5, 50])),
                    ("group", lambda: r.choice(["g1", "g2", "default", ""])),
                    ("priority", lambda: r.randint(-5, 5)),
                    ("label", lambda: r.choice(["l", "", "lab" * 30])),
                    ("held", lambda: r.random() < 0.5),
                    ("after", lambda: [r.randint(1, self.top + 2)
                                       for _ in range(r.randint(0, 3))]),
                    ("after_any", lambda: r.random() < 0.5),
                    ("cwd", lambda: r.choice(["/", "/tmp", "rel", "/nonex"])),
                    ("umask", lambda: r.choice([0, 0o22, 0o777, 0o1000])),
                    ("env", lambda: {"A": "1", r.choice(["B", "", "C=D"]):
                                     "2"}),
                    ("stdin", lambda: r.choice(["pipe", "null", "bogus"])),
                    ("cpus", lambda: r.choice([0, 1, 2, 64])),
                    ("mem", lambda: r.choice([0, 1 << 20, 1 << 40])),
                    ("pids", lambda: r.choice([0, 1, 10])),
                    ("at", lambda: int(time.time() * 1e6) + r.choice(
                        [-10**6, 10**5, 3 * 10**6])))
            p = 0.25
        for k, gen in gens:
            if r.random() < p:
                m[k] = gen()
        return m

    def request(self):
        r = self.r
        t = r.choice(TYPES) if r.random() < 0.7 else r.choice(BUSY)
        m = {"t": t}
        some = lambda: r.randint(0, self.top + 3)  # noqa: E731
        if t == "submit":
            m.update(self.job())
        elif t == "gather":
            m["jobs"] = [self.job() for _ in range(r.randint(0, 8))]
            if r.random() < 0.3:
                m["fail_fast"] = True
        elif t in ("watch", "status", "cancel", "result", "hold", "release",
                   "restart"):
            m["job"] = some()
        elif t == "log":
            m["job"] = some()
            for k, gen in (("stream", lambda: r.choice(["stdout", "stderr",
                                                        "both", "x"])),
                           ("offset", self.num), ("length", self.num),
                           ("tail", self.num),
                           ("follow", lambda: r.random() < 0.5)):
                if r.random() < 0.3:
                    m[k] = gen()
        elif t == "input":
            m["job"] = some()
            m["data"] = bytes(r.randint(0, 255)
                              for _ in range(r.randint(0, 100)))
            if r.random() < 0.3:
                m["eof"] = True
        elif t == "group":
            m["op"] = r.choice(["add", "list", "pause", "resume", "remove",
                                "set", "bogus"])
            m["name"] = r.choice(["g1", "g2", "default", "", "x" * 300])
            for k, v in (("parallel", [0, 1, 2, 100000]),
                         ("mem", [0, 1 << 20]), ("pids", [0, 5])):
                if r.random() < 0.4:
                    m[k] = r.choice(v)
        elif t == "wait":
            m["group"] = r.choice(["g1", "g2", "default", "nosuch"])
        elif t in ("ps", "clean"):
            for k, gen in (("all", lambda: r.random() < 0.5),
                           ("state", lambda: r.choice(STATES)),
                           ("task", lambda: r.choice(TASKS)),
                           ("group", lambda: r.choice(["g1", "default"])),
                           ("label", lambda: "lab"), ("limit", self.num),
                           ("since", self.num), ("until", self.num),
                           ("before", self.num), ("uid", self.num)):
                if r.random() < 0.3:
                    m[k] = gen()
        elif t == "resize":
            m["threads"] = r.choice([0, 1, 2, 3, 5000])
            m["processes"] = r.choice([0, 1, 2, 3, 100000])
        elif t == "remote":
            m["op"] = r.choice(["add", "remove", "bogus"])
            m["count"] = r.choice([0, 1, 2])
        elif t == "hello":
            m["version"] = r.choice([0, 1, 2, 999])
        for _ in range(r.choice([0, 0, 0, 0, 0, 1, 1, 2, 4])):
            c = r.random()
            keys = [k for k in m if k != "t"]
            if c < 0.3 and keys:
                del m[r.choice(keys)]
            elif c < 0.65 and keys:
                m[r.choice(keys)] = self.value()
            elif c < 0.9:
                m[r.choice(FIELDS)] = self.value()
            else:
                m["t"] = self.value()
        if m.get("t") == "shutdown":
            m["t"] = "ping"
        return m


def pack(m, raw_strings=False):
    """m framed; raw_strings packs bytes as MessagePack str (not bin), so
    that strings that are not UTF-8 go out."""
    try:
        body = msgpack.packb(m, use_bin_type=not raw_strings)
    except (OverflowError, ValueError, TypeError):
        body = msgpack.packb({"t": "ping"})
    return struct.pack(">I", len(body)) + body


class Conn:
    """A connection whose replies a thread reads and drops, noting the
    highest job id among them."""

    def __init__(self, path, gen):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(BOUND)
        self.s.connect(path)
        self.gen = gen
        self.open = True
        self.next = 1
        self.reader = threading.Thread(target=self.drain, daemon=True)
        self.reader.start()

    def drain(self):
        buf = b""
        try:
            while True:
                d = self.s.recv(1 << 16)
                if not d:
                    break
                buf += d
                while len(buf) >= 4:
                    n = struct.unpack(">I", buf[:4])[0]
                    if len(buf) < 4 + n:
                        break
                    m = msgpack.unpackb(buf[4:4 + n], raw=True,
                                        strict_map_key=False)
                    job = m.get(b"job") if isinstance(m, dict) else None
                    if isinstance(job, int):
                        self.gen.top = max(self.gen.top, job)
                    buf = buf[4 + n:]
        except OSError:
            pass
        self.open = False

    def send(self, m):
        r = self.gen.r
        m["id"] = self.next if r.random() < 0.95 else self.gen.value()
        self.next += 1
        self.s.sendall(pack(m, raw_strings=r.random() < 0.15))

    def close(self):
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.s.close()
        self.reader.join(BOUND)


def damaged(path, gen):
    """A request damaged byte by byte, on a connection of its own."""
    r = gen.r
    data = bytearray(pack(gen.request()))
    for _ in range(r.randint(1, 6)):
        c = r.random()
        if c < 0.4 and data:
            data[r.randrange(len(data))] ^= 1 << r.randrange(8)
        elif c < 0.6:
            del data[r.randint(0, len(data)):]
        elif c < 0.8:
            data[0:4] = struct.pack(">I", r.choice([0, 1, 2**20, 2**20 + 1,
                                                    2**32 - 1]))
        else:
            data += bytes(r.randint(0, 255) for _ in range(r.randint(1, 64)))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.05)  # concd may wait for the rest of a frame
    try:
        s.connect(path)
        s.sendall(bytes(data))
        if r.random() < 0.5:
            s.recv(1 << 16)
    except OSError:
        pass
    s.close()


def fill(path):
    """Write path until its disk is full (more of it, if it is there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 512):
            while True:
                try:
                    if os.write(fd, chunk) == 0:
                        break
                except OSError:
                    break  # ENOSPC
    finally:
        os.close(fd)


def ping(path):
    """The answer to a ping on a new connection, within BOUND; None if
    concd closed it."""
    c = harness.Client(path)
    try:
        c.request("ping")
        return c.recv()
    finally:
        c.close()


class RandomRequests(unittest.TestCase):
    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="concd-test-state-")

    def tearDown(self):
        shutil.rmtree(self.state, ignore_errors=True)

    def send(self, path, seed, count, nconns, midway=None):
        """count requests of the generator seeded seed, on nconns
        connections; a ping on a new connection after each PING_EVERY;
        midway() half way through, and again at three quarters."""
        gen = Requests(seed)
        conns = [Conn(path, gen) for _ in range(nconns)]
        last = collections.deque(maxlen=20)  # for the failure's message
        try:
            for n in range(1, count + 1):
                if midway is not None and n in (count // 2, count * 3 // 4):
                    midway()
                if gen.r.random() < 0.03:
                    damaged(path, gen)
                    continue
                i = gen.r.randrange(len(conns))
                if not conns[i].open:  # concd closed it: a bad frame
                    conns[i].close()
                    conns[i] = Conn(path, gen)
                m = gen.request()
                last.append(m)
                try:
                    conns[i].send(m)
                except OSError:
                    conns[i].open = False
                if gen.r.random() < 0.001:  # a client that vanishes
                    conns[i].close()
                    conns[i] = Conn(path, gen)
                if n % PING_EVERY == 0:
                    self.assertEqual((ping(path) or {}).get("t"), "pong",
                                     "seed %d, after request %d; the last "
                                     "ones: %r" % (seed, n, list(last)))
        finally:
            for c in conns:
                c.close()

    def fuzz(self, seed, state=None, midway=None, room=None, crash=False,
             extra=(), count=REQUESTS):
        """Requests against a concd on store state; midway() half way
        through them and at three quarters, room() after them; with crash,
        concd is killed (SIGKILL) half way and started again on its store
        and socket."""
        state = state or os.path.join(self.state, str(seed))
        args = ["-p", "2", "--stop-timeout", "5", "--state-dir", state]
        args += extra
        if PLUGINS:
            args += ["--plugin-dir", PLUGINS]
        d = first = Daemon(*args)
        other = None
        if os.geteuid() == 0 and not crash:
            # as root, another user sends requests too: its jobs run as
            # it, and it may not touch root's
            os.chmod(d.socket, 0o666)
            other = os.fork()
            if other == 0:
                status = 1
                try:
                    os.setgroups([])
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
                    self.send(d.socket, seed + 100000, REQUESTS // 2, 2)
                    status = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(status)
        if crash:
            def midway():
                nonlocal d
                if d is not first:
                    return  # once
                first.expect_exit(-signal.SIGKILL)
                first.proc.kill()
                first.proc.wait(BOUND)
                d = Daemon(*args, socket_path=first.socket)
        try:
            self.send(d.socket, seed, count, 4, midway)
            if room is not None:
                # the disk filled twice: concd gave up its reserve the
                # first time, and its writes met a full disk again
                d.wait_log("the disk is full")
                room()
            # everyone else is still served: a plain job runs, in a group
            # of its own (the commands that wait for input hold slots of
            # the others); a store that was full takes jobs again within
            # its retry bound
            c = d.client()
            deadline = time.monotonic() + BOUND
            while True:
                m = c.call("group", op="add", name="check", parallel=0)
                if m["t"] == "ok" or m.get("error") != "store_failed":
                    break
                self.assertLess(time.monotonic(), deadline, m)
            self.assertEqual(m["t"], "ok", m)
            while True:
                rid = c.request("submit", task="noop", args={"k": seed},
                                exec="loop", group="check", watch=True)
                m = c.recv_for(rid)
                if m["t"] == "accepted" or m.get("error") != "store_failed":
                    break
                self.assertLess(time.monotonic(), deadline, m)
            self.assertEqual(m["t"], "accepted", m)
            end = c.until_end(rid)[-1]
            self.assertEqual((end["t"], end.get("result")),
                             ("end", {"k": seed}), end)
        finally:
            if other is not None:
                _, status = os.waitpid(other, 0)
                self.assertEqual(status, 0, "the other user's requests")
            d.close()  # status 0 within its bound, no sanitizer report
            if d is not first:
                first.close()  # killed: its directory goes now
        # what it kept comes back: a concd starts on its store and serves
        d = Daemon(*args)
        try:
            c = d.client()
            self.assertEqual(c.call("ping")["t"], "pong")
            m = c.call("ps", all=True, limit=100)
            self.assertEqual(m["t"], "jobs", m)
            for job in m["jobs"]:
                st = c.call("status", job=job["job"])
                self.assertEqual((st["t"], st["job"]), ("job", job["job"]))
        finally:
            d.close()

    def test_random_requests_leave_concd_serving_and_stopping_cleanly(self):
        for seed in seeds():
            with self.subTest(seed=seed):
                self.fuzz(seed)

    def test_random_requests_with_concd_killed_and_started_again(self):
        for seed in seeds():
            with self.subTest(seed=seed):
                self.fuzz(seed + 2000, crash=True)

    def test_random_requests_on_a_store_whose_disk_fills(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        for seed in seeds():
            with self.subTest(seed=seed):
                mnt = tempfile.mkdtemp(prefix="concd-tmpfs-")
                try:
                    p = subprocess.run(["mount", "-t", "tmpfs", "-o",
                                        "size=%d,mode=0700" % (8 << 20),
                                        "tmpfs", mnt],
                                       capture_output=True, text=True)
                    if p.returncode != 0:
                        self.skipTest("cannot mount a tmpfs: " + p.stderr)
                    filler = os.path.join(mnt, "filler")
                    # few finished jobs kept: the logs of more (a page
                    # each, however small) would fill the disk themselves;
                    # five times the requests: enough for the rows of the
                    # jobs accepted before to grow the WAL past what the
                    # reserve would leave (fixed in the commit that added
                    # this: the WAL is truncated)
                    self.fuzz(seed + 1000, os.path.join(mnt, "state"),
                              lambda: fill(filler),
                              lambda: os.unlink(filler),
                              extra=("--max-finished", "500"),
                              count=REQUESTS * 5)
                finally:
                    subprocess.run(["umount", "-l", mnt],
                                   capture_output=True)
                    os.rmdir(mnt)


# concctl's command lines: commands (and prefixes, none of shutdown),
# options with values right, wrong or missing, arguments of every kind
COMMANDS = ["cancel", "clean", "gather", "group", "group add", "group list",
            "group pause", "group remove", "group resume", "group set",
            "help", "log", "pause", "ping", "pool", "pool resize",
            "pool add", "pool remove", "ps", "restart", "result", "resume",
            "run", "status", "submit", "tasks", "wait", "watch", "st", "s",
            "re", "g", "po", "nosuch", "", "-", "--", "help run",
            "help group set", "help nosuch"]
NUMBERS = ["0", "1", "2", "-1", "1.5", "1e3", "99999999999999999999", "0x10",
           "", "abc", " 3", "3 ", "2s", "1h", "0.001", "nan", "inf"]
WORDS = ["", "x", "é", "\udcff".encode("utf-8", "surrogatepass").decode(
    "utf-8", "surrogateescape"), "a b", "-x", "--", "=", "a=b=c",
    "x" * 5000, "%s%n", "../..", "/", "g1", "default", "root", "nobody"]
WHENS = ["now", "10:00", "25:61", "2026-12-31", "tomorrow", "1h", "-1s", "",
         "+5m", "@1", "1796654154"]
OPTIONS = [("-a", None), ("--all", None), ("-x", EXECS), ("--daemon", None),
           ("--fresh", None), ("--timeout", NUMBERS), ("-n", NUMBERS),
           ("--limit", NUMBERS), ("--cancel-pending", None),
           ("--threads", ["1", "2", "0", "-1", "x", "99999"]),
           ("--processes", ["0", "1", "2", "-1", "x", "99999"]),
           ("--retries", NUMBERS), ("--retry-delay", NUMBERS),
           ("--wait-for-slot", None), ("--as-completed", None),
           ("--fail-fast", None), ("--any", None), ("--state", STATES),
           ("--task", TASKS), ("-u", WORDS), ("--since", WHENS),
           ("--until", WHENS), ("-f", None), ("--tail", NUMBERS),
           ("--stdout", None), ("--stderr", None),
           ("-e", ["A=1", "A", "=1", "", "A=" + "v" * 5000, "PATH"]),
           ("--env-all", None), ("--cwd", ["/", "/nonexistent", "rel", ""]),
           ("--no-stdin", None), ("-g", WORDS), ("--priority", NUMBERS),
           ("--cpus", NUMBERS), ("--label", WORDS), ("--at", WHENS),
           ("--in", WHENS + NUMBERS), ("--hold", None),
           ("--parallel", NUMBERS), ("--after", ["1", "1,2", "@1", ",", "x"]),
           ("--after-any", ["1", "2,1", ""]), ("--before", WHENS),
           ("--mem", ["1M", "1G", "0", "x", "1T"]), ("--pids", NUMBERS),
           ("-o", ["id,state", "nosuch", "", ",", "id" * 100]),
           ("--slurm", NUMBERS), ("--partition", WORDS), ("--time", WORDS),
           ("--json", None), ("-q", None), ("--help", None),
           ("--no-such-option", None)]
TASK_ARGS = ["ms=10", "ms=1500", "n=1000", "n=x", "path=/etc/hostname",
             "call=math:sqrt", "args=[4]", "args=[", "x=", "=y", "a=b=c",
             "steps=2", "ms=-1", "ms=99999999999999999999"]


class CommandLines:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def argv(self):
        r = self.r
        argv = []
        if r.random() < 0.2:
            argv.append(r.choice(["--json", "-q", "--help", "-V"]))
        argv += r.choice(COMMANDS).split()
        name = argv[-1] if argv else ""
        if name in ("run", "submit"):
            task = r.choice(TASKS)
            argv.append(task)
            argv += r.sample(TASK_ARGS, r.randint(0, 3))
        if name in ("cancel", "log", "status", "result", "watch",
                    "restart", "wait", "pause", "resume") and \
                r.random() < 0.8:
            argv.append(str(r.randint(1, 6)))
        elif name in ("add", "pause", "remove", "resume", "set") and \
                r.random() < 0.8:
            argv.append(r.choice(["g1", "g2", "default"]))
        for _ in range(r.choice([0, 0, 0, 1, 1, 2, 4])):
            opt, values = r.choice(OPTIONS)
            if values is None or r.random() < 0.1:
                argv.append(opt)
            elif opt.startswith("--") and r.random() < 0.3:
                argv.append(opt + "=" + r.choice(values))
            else:
                argv += [opt, r.choice(values)]
        for _ in range(r.choice([0, 0, 0, 0, 1, 2])):
            argv.append(r.choice(["1", "2", "3", "0", "-1", "@1", "x",
                                  "99999999999999999999"] + WORDS))
        if name in ("run", "submit") and argv[argv.index(name) + 1:][:1] \
                == ["exec"] and r.random() < 0.8:
            argv += ["--"] + r.choice(ARGV)
        return argv


class RandomCommandLines(unittest.TestCase):
    """concctl given random command lines against a concd: it never
    crashes, answers with a documented exit status (concctl(1)), and its
    sanitizers (in a sanitized build) report nothing."""

    def test_random_command_lines_get_a_documented_status(self):
        d = Daemon("-p", "1")
        env = dict(os.environ)
        for name, options in SANITIZER_OPTIONS.items():
            env[name] = options + (":" + env[name] if env.get(name) else "")
        env.pop("CONCD_SOCKET", None)
        try:
            for seed in seeds():
                gen = CommandLines(seed)
                for _ in range(max(20, REQUESTS // 25)):
                    argv = gen.argv()
                    try:
                        r = subprocess.run(
                            [CONCTL, "-s", d.socket] + argv, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=10)
                    except subprocess.TimeoutExpired:
                        continue  # a wait or a follow: fine, and killed
                    err = r.stderr.decode("utf-8", "replace")
                    why = (seed, argv, r.returncode, err[-2000:])
                    # run exec and wait give the command's status, or
                    # 124 and 125 for their own (a word exec is enough)
                    command = "exec" in argv and ("run" in argv or
                                                  "wait" in argv)
                    self.assertIn(r.returncode,
                                  range(256) if command else range(7), why)
                    self.assertFalse(any(x in err for x in
                                         SANITIZER_REPORTS), why)
            self.assertEqual(d.client().call("ping")["t"], "pong")
        finally:
            d.close()


if __name__ == "__main__":
    harness.main()
