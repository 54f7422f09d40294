"""The Python client library (python/concd) against a real concd:
concd.Client's requests and errors, concd.aio.Client, and
concd.futures.ConcdExecutor with tasks, commands and, when the daemon has
the `python` task, Python functions."""
import asyncio
import concurrent.futures as cf
import os
import random
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import harness  # noqa: E402
from harness import BOUND, DaemonTest  # noqa: E402

import concd  # noqa: E402
import concd.aio  # noqa: E402
import concd.task  # noqa: E402
from concd.futures import ConcdExecutor, callable_name  # noqa: E402
import pyclient_funcs  # noqa: E402


def executor_made_under_umask(mask, socket):
    """A ConcdExecutor made while the program's umask is mask."""
    old = os.umask(mask)
    try:
        return ConcdExecutor(socket=socket)
    finally:
        os.umask(old)


def until(predicate, what, bound=BOUND):
    """Ask predicate() until it is true: each answer is an event, and the
    asking is bounded."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError("%s: not within %ss" % (what, bound))


def in_child(body):
    """Run body() in a forked child: its exit status, 0 when body returned,
    1 when it raised (the traceback on stderr); bounded."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            body()
            code = 0
        except BaseException:  # noqa: B902 -- reported by the status
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child did not return")


class ClientTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.c = concd.Client(self.d.socket, timeout=BOUND)

    def tearDown(self):
        self.c.close()
        super().tearDown()

    def test_hello_reads_the_servers_version_and_ping_answers(self):
        self.assertEqual(self.c.server_version, harness.PROTO_VERSION)
        self.assertEqual(concd.PROTO_VERSION, harness.PROTO_VERSION)
        self.assertTrue(self.c.server.startswith("concd "))
        self.assertEqual(self.c.server_pid, self.d.proc.pid)
        self.assertEqual(self.c.ping()["t"], "pong")

    def test_the_socket_comes_from_CONCD_SOCKET(self):
        old = os.environ.get("CONCD_SOCKET")
        os.environ["CONCD_SOCKET"] = self.d.socket
        try:
            self.assertEqual(concd.default_socket(), self.d.socket)
            with concd.Client() as c:
                self.assertEqual(c.ping()["t"], "pong")
        finally:
            if old is None:
                del os.environ["CONCD_SOCKET"]
            else:
                os.environ["CONCD_SOCKET"] = old

    def test_a_missing_socket_is_a_connection_error_naming_it(self):
        path = os.path.join(self.d.dir, "nothing.sock")
        with self.assertRaises(ConnectionError) as cm:
            concd.Client(path)
        self.assertIn(path, str(cm.exception))

    def test_submit_wait_status_result_and_run(self):
        job = self.c.submit("primes", {"n": 100000})
        end = self.c.wait(job)
        self.assertEqual((end["state"], end["result"]), ("succeeded", 9592))
        self.assertEqual(self.c.status(job)["state"], "succeeded")
        self.assertEqual(self.c.result(job)["result"], 9592)
        self.assertEqual(self.c.run("noop", {"a": 1}), {"a": 1})
        self.assertEqual(self.c.run("sleep", {"ms": 1}, executor="thread"),
                         1)

    def test_errors_are_exceptions_named_after_their_codes(self):
        cases = [
            (concd.UnknownTask, lambda: self.c.submit("no-such-task")),
            (concd.BadArgs, lambda: self.c.submit("sleep", {"ms": "x"})),
            (concd.BadExecutor,
             lambda: self.c.submit("noop", executor="nowhere")),
            (concd.NoSuchJob, lambda: self.c.status(999999)),
            (concd.NoSuchGroup, lambda: self.c.submit("noop", group="nope")),
        ]
        for cls, request in cases:
            with self.assertRaises(cls) as cm:
                request()
            self.assertIsInstance(cm.exception, concd.ConcdError)
            self.assertEqual(concd.ERRORS[cm.exception.code], cls)
            self.assertTrue(cm.exception.message)
        job = self.c.submit("sleep", {"ms": 60000})
        with self.assertRaises(concd.NotFinished):
            self.c.result(job)
        self.assertEqual(self.c.cancel(job)["job"], job)
        self.assertEqual(self.c.wait(job)["state"], "cancelled")

    def test_a_failed_job_raises_its_error_with_the_end(self):
        with self.assertRaises(concd.TaskFailed) as cm:
            self.c.run("exec", {"argv": ["sh", "-c", "exit 3"]})
        self.assertIn("status 3", cm.exception.message)
        self.assertEqual(cm.exception.end["exit"], 3)
        self.assertIsNotNone(cm.exception.job)
        with self.assertRaises(concd.TimedOut):
            self.c.run("sleep", {"ms": 60000}, timeout=0.05)

    def test_a_reply_not_within_the_timeout_raises_Timeout(self):
        job = self.c.submit("sleep", {"ms": 60000})
        with self.assertRaises(concd.Timeout):
            self.c.wait(job, timeout=0.05)
        self.assertIsInstance(concd.Timeout(), TimeoutError)
        self.c.cancel(job)
        self.assertEqual(self.c.wait(job)["state"], "cancelled")

    def test_a_timeout_bounds_a_whole_wait_of_a_job_with_progress(self):
        """Before the fix the timeout began again at every message: a job
        that reports progress never timed out (wait returned at its end,
        3 s later)."""
        job = self.c.submit("sleep", {"ms": 3000, "steps": 30},
                            executor="loop")
        with self.assertRaises(concd.Timeout):
            self.c.wait(job, timeout=0.5)
        with concd.Client(self.d.socket, timeout=0.5) as c:
            with self.assertRaises(concd.Timeout):
                c.run("sleep", {"ms": 3000, "steps": 30}, executor="loop")

        async def main():
            async with await concd.aio.Client.connect(self.d.socket) as c:
                with self.assertRaises(concd.Timeout):
                    await c.wait(job, timeout=0.5)
            async with await concd.aio.Client.connect(
                    self.d.socket, timeout=0.5) as c:
                with self.assertRaises(concd.Timeout):
                    await c.run("sleep", {"ms": 3000, "steps": 30},
                                executor="loop")
        asyncio.run(main())
        self.assertEqual(self.c.cancel(job)["job"], job)

    def test_a_timeout_of_a_month_is_taken(self):
        """Before the fix a timeout past 24.8 days (poll's int of
        milliseconds) raised OverflowError."""
        month = 30 * 86400
        with concd.Client(self.d.socket, timeout=month) as c:
            self.assertEqual(c.ping()["t"], "pong")
            job = c.submit("sleep", {"ms": 1}, executor="loop")
            self.assertEqual(c.wait(job, timeout=month)["result"], 1)
        ex = ConcdExecutor("loop", socket=self.d.socket)
        self.assertEqual(ex.submit_task("noop", i=1).result(timeout=month),
                         {"i": 1})
        ex.shutdown()

    def test_gather_streams_every_jobs_events_with_its_index(self):
        w = self.c.gather([concd.submit_fields("noop", {"i": i})
                           for i in range(50)])
        msgs = list(w)
        self.assertEqual(msgs[0]["t"], "accepted")
        self.assertEqual(len(w.jobs), 50)
        ends = {m["index"]: m["result"] for m in msgs if m["t"] == "end"}
        self.assertEqual(ends, {i: {"i": i} for i in range(50)})
        with self.assertRaises(concd.BadArgs) as cm:
            self.c.gather([concd.submit_fields("noop"),
                           concd.submit_fields("sleep", {"ms": "x"})]).end()
        self.assertEqual(cm.exception.index, 1)

    def test_replies_larger_than_the_first_read_arrive_whole(self):
        # the read buffer starts at READ_FIRST and grows once a read fills
        # it: replies of every size around both, each byte checked
        self.assertEqual(len(self.c._rbuf), concd.READ_FIRST)
        sizes = [10, concd.READ_FIRST - 100, concd.READ_FIRST * 3,
                 concd.READ_SIZE + 12345, 700000, 5]
        for n in sizes:
            # strings of at most 200 KB each (concd's limit is 256 KiB)
            args = {"b%d" % at: bytes((i * 7 + at) % 251 for i in range(
                at, min(n, at + 200000))) for at in range(0, n, 200000)}
            self.assertEqual(self.c.run("noop", args), args)
        self.assertEqual(len(self.c._rbuf), concd.READ_SIZE)

    def test_close_ends_the_background_reader(self):
        before = threading.active_count()
        job = self.c.submit("sleep", {"ms": 60000})  # starts the reader
        done = self.c._bg_done
        self.assertTrue(done.locked())
        self.c.close()
        # close() returned after the reader did: its lock is free
        self.assertFalse(done.locked())
        self.assertEqual(threading.active_count(), before)
        with concd.Client(self.d.socket, timeout=BOUND) as c:
            self.assertEqual(c.cancel(job)["job"], job)

    def test_close_in_a_forked_child_returns(self):
        # the child has the connection but not the reader: close() must
        # not wait for a thread that is not there
        self.assertEqual(self.c.ping()["t"], "pong")  # the reader runs
        pid = os.fork()
        if pid == 0:
            try:
                self.c.close()
            finally:
                os._exit(7)
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.01)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            self.fail("close() in the forked child did not return")
        self.assertEqual(os.waitstatus_to_exitcode(status), 7)
        self.assertEqual(self.c.ping()["t"], "pong")  # the parent's goes on

    def test_a_client_dropped_unclosed_closes(self):
        """Before the fix its background reader held it: every client
        dropped without close() kept its connection and a thread."""
        import gc

        def counts():
            return (len(os.listdir("/proc/self/task")),
                    len(os.listdir("/proc/self/fd")))
        gc.collect()
        before = counts()
        for i in range(30):
            c = concd.Client(self.d.socket)
            self.assertEqual(c.run("noop", {"i": i}), {"i": i})
            del c
        gc.collect()
        until(lambda: all(n <= m for n, m in zip(counts(), before)),
              "threads and descriptors back to %s" % (before,))

    def test_a_forked_child_cannot_use_the_parents_connection(self):
        """Before the fix the child read and wrote the parent's
        connection: it took replies meant for the parent."""
        job = self.c.submit("sleep", {"ms": 60000}, executor="loop")
        parent = os.getpid()

        def child():
            for request in (self.c.ping, lambda: self.c.wait(job, 1)):
                try:
                    request()
                except RuntimeError as e:
                    if str(e) != ("this concd client was made in process "
                                  "%d: make a new one in the child" % parent):
                        raise
                else:
                    raise AssertionError("the child used the connection")
            self.c.close()
            with concd.Client(self.d.socket, timeout=BOUND) as c:
                c.ping()  # a client of its own works
        self.assertEqual(in_child(child), 0)
        self.assertEqual(self.c.cancel(job)["job"], job)
        self.assertEqual(self.c.wait(job)["state"], "cancelled")

    def test_a_read_that_poll_saw_ready_keeps_the_deadline(self):
        # poll may see bytes that another reader of the socket (a forked
        # child before the fix) takes first: the read must not then wait
        # past the timeout
        job = self.c.submit("sleep", {"ms": 60000}, executor="loop")
        self.c._readable = lambda seconds: True
        out = {}

        def wait():
            try:
                self.c.wait(job, timeout=0.2)
            except concd.Timeout as e:
                out["e"] = e
        t = threading.Thread(target=wait)
        t.start()
        t.join(BOUND / 2)
        self.assertFalse(t.is_alive(), "the read waits past the timeout")
        self.assertIsInstance(out.get("e"), concd.Timeout)
        del self.c._readable
        self.c.cancel(job)
        self.assertEqual(self.c.wait(job)["state"], "cancelled")

    def test_threads_share_one_connection_with_requests_in_flight(self):
        results = {}

        def worker(k):
            results[k] = [self.c.run("noop", {"k": k, "i": i})["i"]
                          for i in range(100)]
        threads = [threading.Thread(target=worker, args=(k,))
                   for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(BOUND)
        self.assertEqual(results, {k: list(range(100)) for k in range(8)})

    def test_ps_tasks_pool_log_and_input(self):
        job = self.c.submit("exec", {"argv": ["cat"]}, stdin="stream")
        self.c.input(job, b"one\n")
        self.c.input(job, b"two\n", eof=True)
        self.assertEqual(self.c.wait(job)["state"], "succeeded")
        self.assertEqual(self.c.log(job), b"one\ntwo\n")
        rows = self.c.ps(all=True)["jobs"]
        self.assertIn(job, [r["job"] for r in rows])
        names = [t["name"] for t in self.c.tasks()]
        self.assertIn("primes", names)
        self.assertIn("workers", self.c.pool())

    def test_a_refused_input_is_raised(self):
        """concd answers an input only to refuse it.  Before the fix the
        clients dropped that answer: input() to a job that takes none
        seemed to work."""
        plain = self.c.submit("exec", {"argv": ["sleep", "60"]}, daemon=True)
        with self.assertRaises(concd.BadField) as e:
            self.c.input(plain, b"lost\n", check=True)
        self.assertIn("job %d" % plain, str(e.exception))
        with self.assertRaises(concd.NoSuchJob):
            self.c.input(10 ** 9, b"x", check=True)
        # unchecked: the next input() raises it, once
        self.c.input(plain, b"lost\n")
        job = self.c.submit("exec", {"argv": ["cat"]}, stdin="stream")
        with self.assertRaises(concd.BadField) as e:
            self.c.input(job, b"one\n")
        self.assertIn("job %d" % plain, str(e.exception))
        self.c.input(job, b"one\n")
        self.c.input(job, b"two\n", eof=True, check=True)
        self.assertEqual(self.c.wait(job)["state"], "succeeded")
        self.assertEqual(self.c.log(job), b"one\ntwo\n")
        self.c.cancel(plain)
        self.assertEqual(self.c.wait(plain)["state"], "cancelled")
        # a job that has ended drops its input without a word
        self.c.input(job, b"three\n", check=True)


    def test_a_refusal_is_raised_by_a_later_input_alone(self):
        """Before the fix the refusal was read only by another request:
        inputs alone never raised it."""
        plain = self.c.submit("exec", {"argv": ["sleep", "60"]}, daemon=True)
        job = self.c.submit("exec", {"argv": ["cat"]}, stdin="stream")
        self.c.input(plain, b"lost\n")

        def refused():
            try:
                self.c.input(job, b"")
            except concd.BadField as e:
                return e
        self.assertIn("job %d" % plain, str(until(refused, "refused")))
        self.c.input(job, b"", eof=True, check=True)
        self.assertEqual(self.c.wait(job)["state"], "succeeded")
        self.c.cancel(plain)


class FakeDaemon:
    """A socket that answers the first frame with `reply` (a map, or None
    for a welcome) and then closes the connection after the second, having
    answered it with `then` when given (as is, an id 0 error say)."""

    def __init__(self, path, reply=None, then=None):
        import socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.reply = reply
        self.then = then
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.sock.accept()
        with conn:
            for n in range(2):
                frames = concd.Frames()
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    frames.feed(data)
                    msgs = list(frames)
                    if msgs:
                        break
                if n == 1:
                    if self.then is not None:
                        conn.sendall(concd.pack(self.then))
                    return  # closes with the request unanswered
                reply = self.reply or {"t": "welcome", "server": "fake",
                                       "version": harness.PROTO_VERSION,
                                       "pid": 1}
                conn.sendall(concd.pack(dict(reply, id=msgs[0]["id"])))
                if self.reply is not None:
                    return

    def close(self):
        self.thread.join(BOUND)
        self.sock.close()


class WithoutConcdTest(unittest.TestCase):
    def setUp(self):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="concd-test-")
        self.path = os.path.join(self.dir, "s")

    def tearDown(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_a_daemon_of_another_version_raises_VersionMismatch(self):
        fake = FakeDaemon(self.path, {"t": "error",
                                      "error": "version_mismatch",
                                      "message": "speaks 5"})
        with self.assertRaises(concd.VersionMismatch) as cm:
            concd.Client(self.path, timeout=BOUND)
        self.assertIn("speaks 5", str(cm.exception))
        fake.close()

    def test_a_frame_concd_could_not_read_fails_the_requests_in_flight(
            self):
        # concd answers such a frame with an error of id 0 and closes:
        # the requests waiting raise that error, not a timeout
        bad = {"t": "error", "id": 0, "error": "bad_frame",
               "message": "malformed frame: trailing bytes"}
        fake = FakeDaemon(self.path, then=bad)
        c = concd.Client(self.path, timeout=BOUND)
        with self.assertRaises(concd.BadFrame) as cm:
            c.status(1)
        self.assertIn("trailing bytes", str(cm.exception))
        with self.assertRaises(concd.BadFrame):
            c.ping()
        c.close()
        fake.close()

        os.unlink(self.path)
        fake = FakeDaemon(self.path, then=bad)

        async def main():
            c = await concd.aio.Client.connect(self.path, timeout=BOUND)
            with self.assertRaises(concd.BadFrame):
                await c.status(1)
            await c.close()
        asyncio.run(main())
        fake.close()

    def test_requests_in_flight_when_the_connection_closes_fail(self):
        fake = FakeDaemon(self.path)
        c = concd.Client(self.path, timeout=BOUND)
        self.assertEqual(c.server, "fake")
        with self.assertRaises(concd.ConnectionLost):
            c.status(1)
        with self.assertRaises(concd.ConnectionLost):
            c.ping()
        c.close()
        fake.close()


    def test_what_the_worker_cannot_have_is_refused_with_TypeError(self):
        """Before the fix an integer past MessagePack's range raised
        OverflowError, and a function defined under the main script's
        __main__ guard was sent, to fail on the worker."""
        import subprocess
        import textwrap
        with self.assertRaises(TypeError) as cm:
            concd.pack({"t": "submit", "args": {"x": 2 ** 64}})
        self.assertIn("an integer out of its range", str(cm.exception))
        script = os.path.join(self.dir, "pyclient_main.py")
        with open(script, "w") as f:
            f.write(textwrap.dedent("""\
                from concd.futures import callable_name

                def top(x):
                    return x

                if __name__ == "__main__":
                    def guarded(x):
                        return x
                    print(callable_name(top))
                    try:
                        callable_name(guarded)
                    except TypeError as e:
                        print(e)
                """))
        env = dict(os.environ, PYTHONPATH=os.path.join(HERE, "..", "..",
                                                       "python"))
        r = subprocess.run([sys.executable, script], capture_output=True,
                           env=env, timeout=BOUND)
        self.assertEqual(r.stderr, b"")
        self.assertEqual(r.stdout.decode(), (
            "pyclient_main:top\n"
            "cannot send guarded to concd: it is defined under if __name__ "
            "== \"__main__\": in %s, which a worker importing the script "
            "does not run (define it at the top level)\n" % script))


class AioTest(DaemonTest):
    def test_the_asyncio_client_pipelines_requests_and_raises_errors(self):
        async def main():
            c = await concd.aio.Client.connect(self.d.socket, timeout=BOUND)
            async with c:
                self.assertEqual(c.server_version, harness.PROTO_VERSION)
                self.assertEqual((await c.ping())["t"], "pong")
                r = await asyncio.gather(*(c.run("noop", {"i": i})
                                           for i in range(200)))
                self.assertEqual([x["i"] for x in r], list(range(200)))
                job = await c.submit("sleep", {"ms": 5})
                self.assertEqual((await c.wait(job))["result"], 5)
                with self.assertRaises(concd.UnknownTask):
                    await c.submit("no-such-task")
                with self.assertRaises(concd.NoSuchJob):
                    await c.status(999999)
                w = await c.gather([concd.submit_fields("noop", {"i": i})
                                    for i in range(10)])
                ends = [m async for m in w if m["t"] == "end"]
                self.assertEqual(sorted(m["index"] for m in ends),
                                 list(range(10)))
                job = await c.submit("exec", {"argv": ["cat"]},
                                     stdin="stream")
                await c.input(job, b"abc", eof=True)
                await c.wait(job)
                self.assertEqual(await c.log(job), b"abc")
                # a refusal: raised by this input() with check, else by
                # the next one (dropped before the fix)
                plain = await c.submit("exec", {"argv": ["sleep", "60"]},
                                       daemon=True)
                with self.assertRaises(concd.BadField):
                    await c.input(plain, b"x", check=True)
                await c.input(plain, b"x")
                await c.ping()  # the refusal has come
                with self.assertRaises(concd.BadField) as e:
                    await c.input(plain, b"x")
                self.assertIn("job %d" % plain, str(e.exception))
                await c.input(10 ** 9, b"x")
                await c.ping()
                with self.assertRaises(concd.NoSuchJob):
                    await c.input(plain, b"x")
                await c.cancel(plain)
                self.assertEqual((await c.wait(plain))["state"], "cancelled")
        asyncio.run(main())


    def test_a_client_used_after_its_event_loop_ended_says_so(self):
        """Before the fix a request on a later loop hung, close() raised
        'Event loop is closed' and the transport was left unclosed."""
        import subprocess
        script = """if True:
            import asyncio, sys
            import concd.aio

            async def first():
                c = await concd.aio.Client.connect(sys.argv[1])
                await c.ping()
                return c
            c = asyncio.run(first())

            async def second():
                try:
                    await asyncio.wait_for(c.ping(), %r)
                except RuntimeError as e:
                    print("RuntimeError:", e)
                except asyncio.TimeoutError:
                    print("hung")
                await c.close()
                print("closed")
            asyncio.run(second())
            """ % (BOUND / 2)
        env = dict(os.environ, PYTHONPATH=os.path.join(HERE, "..", "..",
                                                       "python"))
        r = subprocess.run([sys.executable, "-W", "default", "-c", script,
                            self.d.socket], capture_output=True, env=env,
                           timeout=BOUND)
        self.assertEqual(r.stdout.decode(), (
            "RuntimeError: this concd.aio client belongs to the event loop "
            "it was connected on, which has ended or is another: connect a "
            "new one on this loop\nclosed\n"))
        self.assertEqual(r.stderr, b"")


class ExecutorTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.ex = ConcdExecutor(socket=self.d.socket)
        self.c = concd.Client(self.d.socket, timeout=BOUND)

    def tearDown(self):
        self.ex.shutdown(cancel_futures=True)
        self.c.close()
        super().tearDown()

    def running(self, f):
        until(lambda: f.job is not None
              and self.c.status(f.job)["state"] == "running",
              "job running")

    def test_submit_task_gives_futures_of_the_results(self):
        fs = [self.ex.submit_task("noop", x=1),
              self.ex.submit_task("sleep", ms=10),
              self.ex.submit_task("primes", n=100000)]
        self.assertTrue(all(isinstance(f, cf.Future) for f in fs))
        self.assertEqual([f.result(BOUND) for f in fs], [{"x": 1}, 10, 9592])
        self.assertEqual(self.c.status(fs[2].job)["exec"], "process")
        with self.assertRaises(concd.UnknownTask):
            self.ex.submit_task("no-such-task").result(BOUND)

    def test_options_per_executor_and_per_call(self):
        f = self.ex.options(executor="thread").submit_task("primes", n=1000)
        self.assertEqual(f.result(BOUND), 168)
        self.assertEqual(self.c.status(f.job)["exec"], "thread")
        with self.assertRaises(concd.TimedOut):
            self.ex.options(executor="loop", timeout=0.05).submit_task(
                "sleep", ms=60000).result(BOUND)
        f = self.ex.options(daemon=True, retries=2).submit_task("noop")
        f.result(BOUND)
        st = self.c.status(f.job)
        self.assertEqual((st["daemon"], st["retries"]), (True, 2))
        with self.assertRaises(TypeError):
            self.ex.options(colour="blue")
        with self.assertRaises(ValueError):
            ConcdExecutor(executor="nowhere", socket=self.d.socket)

    def test_a_command_gets_the_umask_the_program_had(self):
        ex = executor_made_under_umask(0o27, self.d.socket)
        try:
            f = ex.submit_exec(["sh", "-c", "umask"])
            self.assertEqual((f.result(BOUND), f.output()), (0, b"0027\n"))
            f = ex.options(umask=0o77).submit_exec(["sh", "-c", "umask"])
            self.assertEqual((f.result(BOUND), f.output()), (0, b"0077\n"))
            for bad in (0o1000, -1, "077", True, 1.5):
                with self.assertRaises(ValueError):
                    ex.options(umask=bad)
                with self.assertRaises(ValueError):
                    ConcdExecutor(socket=self.d.socket, umask=bad)
        finally:
            ex.shutdown()

    def test_map_task_gives_results_in_order(self):
        out = list(self.ex.map_task("noop", ({"i": i} for i in range(3000)),
                                    chunksize=500))
        self.assertEqual([r["i"] for r in out], list(range(3000)))
        fs = self.ex.gather_tasks([("primes", {"n": n})
                                   for n in (10, 100, 1000)])
        self.assertEqual([f.result(BOUND) for f in fs], [4, 25, 168])

    def test_a_map_timeout_counts_from_the_call(self):
        """Before the fix it counted from the end of the submitting: the
        time a slow iterable took was not counted."""
        def slow_args():
            yield {"ms": 300}
            time.sleep(0.6)  # an iterable that takes its time

        it = self.ex.options(executor="loop").map_task("sleep", slow_args(),
                                                        timeout=0.5)
        with self.assertRaises(cf.TimeoutError):
            next(it)

    def test_progress_callbacks_get_done_total_msg(self):
        seen = []
        f = self.ex.options(executor="loop").submit_task("sleep", ms=100,
                                                         steps=4)
        f.add_progress_callback(lambda *a: seen.append(a))
        self.assertEqual(f.result(BOUND), 100)
        self.assertTrue(seen, "no progress event")
        self.assertTrue(all(len(a) == 3 and a[1] == 4 for a in seen), seen)

    def test_a_done_callback_may_submit_and_cancel(self):
        got = []
        done = threading.Event()

        def then(f):
            g = self.ex.options(executor="loop").submit_task("sleep",
                                                             ms=60000)
            g.cancel()
            h = self.ex.submit_task("noop", prev=f.result())
            h.add_done_callback(lambda h: (got.append((g, h)), done.set()))
        self.ex.submit_task("noop", x=1).add_done_callback(then)
        self.assertTrue(done.wait(BOUND))
        g, h = got[0]
        self.assertEqual(h.result(), {"prev": {"x": 1}})
        self.assertTrue(g.cancelled())
        self.assertEqual(self.c.wait(until(lambda: g.job, "accepted"))[
            "state"], "cancelled")

    def test_submit_exec_collects_output_or_hands_it_to_a_callback(self):
        f = self.ex.submit_exec(["sh", "-c", "echo out; echo err >&2"])
        self.assertEqual(f.result(BOUND), 0)
        self.assertEqual(f.output("stdout"), b"out\n")
        self.assertEqual(f.output("stderr"), b"err\n")
        got = []
        f = self.ex.submit_exec(["echo", "hi"],
                                output=lambda s, d: got.append((s, d)))
        self.assertEqual(f.result(BOUND), 0)
        self.assertEqual(got, [("stdout", b"hi\n")])
        f = self.ex.submit_exec(["sh", "-c", "pwd; exit 4"], cwd="/")
        with self.assertRaises(concd.TaskFailed) as cm:
            f.result(BOUND)
        self.assertEqual(cm.exception.end["exit"], 4)
        self.assertEqual(f.output(), b"/\n")

    def test_cancel_stops_a_running_job_on_concd(self):
        f = self.ex.options(executor="loop").submit_task("sleep", ms=60000)
        self.running(f)
        self.assertTrue(f.cancel())
        self.assertTrue(f.cancelled())
        self.assertEqual(self.c.wait(f.job)["state"], "cancelled")
        with self.assertRaises(cf.CancelledError):
            f.result(BOUND)

    def test_cancel_before_accepted_cancels_the_job_once_accepted(self):
        f = self.ex.options(executor="loop").submit_task("sleep", ms=60000)
        self.assertTrue(f.cancel())
        job = until(lambda: f.job, "accepted")
        self.assertEqual(self.c.wait(job)["state"], "cancelled")

    def test_shutdown_cancel_futures_cancels_the_queued_jobs(self):
        self.c.group("add", "one", parallel=1)
        ex = ConcdExecutor("loop", socket=self.d.socket, group="one", cpus=1)
        fs = [ex.submit_task("sleep", ms=60000) for _ in range(4)]
        self.running(fs[0])
        until(lambda: all(f.job for f in fs), "all accepted")
        ex.shutdown(wait=False, cancel_futures=True)
        self.assertFalse(fs[0].cancelled())
        self.assertTrue(all(f.cancelled() for f in fs[1:]))
        for f in fs[1:]:
            self.assertEqual(self.c.wait(f.job)["state"], "cancelled")
        with self.assertRaises(RuntimeError):
            ex.submit_task("noop")
        self.assertEqual(self.c.status(fs[0].job)["state"], "running")
        fs[0].cancel()
        self.assertEqual(self.c.wait(fs[0].job)["state"], "cancelled")

    def test_shutdown_in_a_forked_child_leaves_the_parents_futures(self):
        """Before the fix the child's shutdown (leaving a with block) read
        the parent's connection for the futures' ends: the parent's
        result() timed out, its future pending."""
        ex = ConcdExecutor("loop", socket=self.d.socket)
        f = ex.submit_task("sleep", ms=60000)
        g = ex.submit_task("sleep", ms=1)

        def child():
            for use in (lambda: ex.submit_task("noop"),
                        lambda: f.result(1)):
                with self.assertRaises(RuntimeError) as cm:
                    use()
                self.assertIn("make a new one in the child",
                              str(cm.exception))
            with ex:
                pass  # shutdown(wait=True): only the descriptor closes
        self.assertEqual(in_child(child), 0)
        self.assertEqual(g.result(BOUND), 1)
        self.assertTrue(f.cancel())
        self.assertEqual(self.c.wait(f.job)["state"], "cancelled")
        self.assertEqual(ex.submit_task("noop", i=2).result(BOUND), {"i": 2})
        ex.shutdown()

    def test_shutdown_cancel_futures_cancels_more_jobs_than_a_ps_holds(
            self):
        """Before the fix shutdown asked one ps of every queued job, which
        concd refuses past a frame (about 10000 jobs), and cancelled
        nothing, silently."""
        self.c.group("add", "one", parallel=1)
        ex = ConcdExecutor("loop", socket=self.d.socket, group="one", cpus=1)
        first = ex.submit_task("sleep", ms=60000)
        self.running(first)
        fs = ex.gather_tasks([("sleep", {"ms": 60000})] * 12000)
        until(lambda: all(f.job for f in fs), "all accepted")
        ex.shutdown(wait=False, cancel_futures=True)
        self.assertEqual(sum(not f.cancelled() for f in fs), 0)
        self.assertFalse(first.cancelled())
        until(lambda: self.c.ps(state="queued", limit=0)["total"] == 0,
              "no job queued")
        self.assertEqual(self.c.status(first.job)["state"], "running")
        self.c.cancel(first.job)

    def test_a_submit_that_shutdown_overtakes_raises_RuntimeError(self):
        """Before the fix a submit that had passed the shutdown check when
        shutdown(wait=True) closed the connection returned a future that
        failed with ConnectionLost."""
        ex = ConcdExecutor("loop", socket=self.d.socket)
        check_open = ex._shared.check_open

        def then_shutdown():
            check_open()  # passed: shutdown comes in between
            t = threading.Thread(target=ex.shutdown)
            t.start()
            t.join(BOUND)
        ex._shared.check_open = then_shutdown
        with self.assertRaises(RuntimeError) as cm:
            ex.submit_task("noop")
        self.assertEqual(str(cm.exception),
                         "cannot schedule new futures after shutdown")

    def test_an_executor_dropped_without_shutdown_closes(self):
        """Before the fix each executor dropped without shutdown() kept
        its connection and its background reader for good."""
        import gc

        def counts():
            return (len(os.listdir("/proc/self/task")),
                    len(os.listdir("/proc/self/fd")))
        gc.collect()
        before = counts()
        for i in range(30):
            ex = ConcdExecutor("loop", socket=self.d.socket)
            self.assertEqual(ex.submit_task("noop", i=i).result(BOUND),
                             {"i": i})
            view = ex.options(executor="thread")
            del ex  # the view holds the connection
            self.assertEqual(view.submit_task("noop").result(BOUND), {})
        del view
        gc.collect()
        until(lambda: all(n <= m for n, m in zip(counts(), before)),
              "threads and descriptors back to %s" % (before,))

    def test_shutdown_waits_for_the_futures(self):
        ex = ConcdExecutor("loop", socket=self.d.socket)
        fs = [ex.submit_task("sleep", ms=20) for _ in range(5)]
        ex.shutdown(wait=True)
        self.assertTrue(all(f.done() for f in fs))
        self.assertEqual([f.result() for f in fs], [20] * 5)

    def test_cf_wait_and_as_completed(self):
        ex = self.ex.options(executor="loop")
        fs = [ex.submit_task("sleep", ms=ms) for ms in (300, 1, 100)]
        done, not_done = cf.wait(fs, timeout=BOUND,
                                 return_when=cf.FIRST_COMPLETED)
        self.assertIn(fs[1], done)
        self.assertEqual([f.result() for f in cf.as_completed(fs, BOUND)],
                         [1, 100, 300])
        g = ex.submit_task("sleep", ms=60000)
        g.cancel()
        done, _ = cf.wait([g], timeout=BOUND)
        self.assertEqual(done, {g})

    def test_asyncio_wrap_future(self):
        async def main():
            fs = [self.ex.submit_task("noop", i=i) for i in range(20)]
            return await asyncio.gather(*map(asyncio.wrap_future, fs))
        out = asyncio.run(main())
        self.assertEqual([r["i"] for r in out], list(range(20)))

    def test_a_lambda_a_closure_or_a_bound_method_is_refused(self):
        def local(x):
            return x
        for fn, why in ((lambda x: x, "lambda"), (local, "inside another"),
                        ("x".upper, "bound to an instance")):
            with self.assertRaises(TypeError) as cm:
                self.ex.submit(fn, 1)
            self.assertIn(why, str(cm.exception))
        self.assertEqual(callable_name(pyclient_funcs.square),
                         "pyclient_funcs:square")
        self.assertEqual(callable_name(pyclient_funcs.Maths.cube),
                         "pyclient_funcs:Maths.cube")
        with self.assertRaises(TypeError):
            self.ex.submit(pyclient_funcs.square, object())
        with self.assertRaises(TypeError):
            self.ex.submit(pyclient_funcs.square, 2 ** 64)

    # who reads the connection: a waiting thread, else the background one

    def test_replies_nobody_waits_for_are_read_all_the_same(self):
        # no result(), no done(), no callback: the background reader takes
        # them (their output too), so concd's buffer for us never fills
        ex = self.ex.options(executor="loop")
        fs = [ex.submit_exec(["sh", "-c", "head -c 65536 /dev/zero"])
              for _ in range(40)]
        until(lambda: all(f.end is not None for f in fs), "every end read")
        self.assertEqual({f.end["state"] for f in fs}, {"succeeded"})
        self.assertEqual({len(f.output()) for f in fs}, {65536})

    def test_replies_sent_after_the_reader_went_idle_are_read(self):
        # the background reader, with nothing left to read, sleeps until
        # a request wakes it: the requests of a program that was idle
        # for a while are read as those of a busy one
        ex = self.ex.options(executor="loop")
        self.assertEqual(ex.submit_task("noop").result(BOUND), {})
        c = ex.client

        def reader_asleep():
            frame = sys._current_frames().get(c._bg)
            return frame is not None and frame.f_code.co_name == "wait" \
                and not c._pending and c._bg_idle
        until(reader_asleep, "the background reader asleep")
        fs = [ex.submit_exec(["sh", "-c", "head -c 4096 /dev/zero"])
              for _ in range(10)]
        until(lambda: all(f.end is not None for f in fs), "every end read")
        self.assertEqual({len(f.output()) for f in fs}, {4096})

    def test_a_thread_waiting_for_one_reply_reads_another_threads(self):
        ex = self.ex.options(executor="loop")
        slow = ex.submit_task("sleep", ms=60000)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "slow", slow.exception(BOUND)))
        t.start()
        # the thread reads (its turn) while this one waits for a reply
        # it takes: handed over when it arrives
        until(lambda: ex.client._reading is not None, "a thread reading")
        self.assertEqual(ex.submit_task("sleep", ms=10).result(BOUND), 10)
        self.assertFalse(slow.done())
        slow.cancel()
        t.join(BOUND)
        self.assertFalse(t.is_alive())
        self.assertTrue(slow.cancelled())

    def test_a_cancel_that_concd_ends_first_ends_the_reading_threads_wait(
            self):
        """cancel() asks concd, then cancels the future; a thread reading
        for the future may get concd's end before the second step: the
        end cancels the future itself, or that thread read on (until
        something else came, at worst never)."""
        ex = self.ex.options(executor="loop")
        slow = ex.submit_task("sleep", ms=60000)
        out = {}

        def wait():
            try:
                slow.exception(BOUND)
            except cf.CancelledError:
                out["slow"] = "cancelled"

        t = threading.Thread(target=wait)
        t.start()
        until(lambda: ex.client._reading == t.ident, "the other thread reading")
        until(lambda: slow.job is not None, "the job accepted")
        # cancel()'s first step alone, as if this thread stopped there
        slow._want_cancel = True
        ex._cancel_job(slow.job)
        t.join(BOUND)
        self.assertFalse(t.is_alive())
        self.assertEqual(out, {"slow": "cancelled"})
        self.assertTrue(slow.cancelled())
        self.assertTrue(slow.cancel())

    def test_result_with_a_timeout_raises_TimeoutError_reading_or_not(self):
        ex = self.ex.options(executor="loop")
        f = ex.submit_task("sleep", ms=60000)
        t0 = time.monotonic()
        with self.assertRaises(cf.TimeoutError):
            f.result(timeout=0.2)  # this thread reads
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        g = ex.submit_task("sleep", ms=60000)
        t = threading.Thread(target=lambda: g.exception(BOUND))
        t.start()
        until(lambda: ex.client._reading == t.ident, "the other thread reading")
        with self.assertRaises(cf.TimeoutError):
            f.exception(timeout=0.2)  # another thread reads
        self.assertFalse(f.done())
        self.assertEqual(ex.submit_task("noop", i=1).result(BOUND), {"i": 1})
        for h in (f, g):
            h.cancel()
        t.join(BOUND)
        self.assertFalse(t.is_alive())

    def test_a_timeout_holds_on_a_connection_past_descriptor_1024(self):
        # a program with many files open: select() cannot take the
        # connection's descriptor, so the wait must not use it
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 1200:
            self.skipTest("RLIMIT_NOFILE's hard limit is %d" % hard)
        if soft != resource.RLIM_INFINITY and soft < 1200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE,
                            (soft, hard))
        fillers = []
        try:
            while not fillers or fillers[-1] < 1100:
                fillers.append(os.open("/dev/null", os.O_RDONLY))
            ex = ConcdExecutor("loop", socket=self.d.socket)
        finally:
            for fd in fillers:
                os.close(fd)
        self.assertGreater(ex.client._sock.fileno(), 1024)
        f = ex.submit_task("sleep", ms=60000)
        out = {}

        def wait():
            try:
                f.result(timeout=0.2)
            except cf.TimeoutError as e:
                out["e"] = e
        t = threading.Thread(target=wait)
        t.start()
        t.join(BOUND / 2)
        self.assertFalse(t.is_alive(), "result(timeout=0.2) still waits")
        self.assertIsInstance(out.get("e"), cf.TimeoutError)
        f.cancel()
        ex.shutdown()

    def test_an_interrupted_wait_gives_the_read_turn_back(self):
        """A KeyboardInterrupt (here from a 1 ms timer) between taking the
        turn to read and the try that gives it back left the connection
        to the interrupted thread: its next result() raised 'a callback
        cannot wait', every other thread's hung."""
        import signal

        # the timer interrupts result() only, once each: never the test's
        # own lines
        state = {"armed": False, "interrupts": 0}

        def interrupt(signum, frame):
            if state["armed"]:
                state["armed"] = False
                state["interrupts"] += 1
                raise KeyboardInterrupt
        # an executor of its own: an interrupted read may lose the end of
        # a future it had read (what this test leaves to the turn alone)
        ex = ConcdExecutor("loop", socket=self.d.socket)
        self.addCleanup(ex.shutdown, wait=False)
        pad = "x" * 2000  # replies that take more than one read
        old = signal.signal(signal.SIGALRM, interrupt)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
            for i in range(3000):
                f = ex.submit_task("noop", pad=pad)
                try:
                    state["armed"] = True
                    f.result(BOUND)
                    state["armed"] = False
                except KeyboardInterrupt:
                    pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        self.assertGreater(state["interrupts"], 0)
        self.assertIsNone(ex.client._reading)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", ex.submit_task("noop", i=1).result(BOUND)))
        t.start()
        t.join(BOUND)
        self.assertEqual(out, {"r": {"i": 1}})
        self.assertEqual(ex.submit_task("noop", i=2).result(BOUND), {"i": 2})

    def test_a_callback_that_waits_for_a_reply_raises_instead_of_hanging(
            self):
        ex = self.ex.options(executor="loop")
        later = ex.submit_task("sleep", ms=60000)
        seen = []
        done = threading.Event()

        def cb(f):
            try:
                later.result(BOUND)
            except Exception as e:  # noqa: B902 -- what it raised
                seen.append(e)
            done.set()
        ex.submit_task("noop").add_done_callback(cb)
        self.assertTrue(done.wait(BOUND))
        self.assertIsInstance(seen[0], RuntimeError)
        self.assertIn("callback cannot wait", str(seen[0]))
        later.cancel()

    def test_a_thread_reading_when_the_connection_closes_gets_ConnectionLost(
            self):
        ex = ConcdExecutor("loop", socket=self.d.socket)
        f = ex.submit_task("sleep", ms=60000)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "e", f.exception(BOUND)))
        t.start()
        until(lambda: f.job is not None and ex.client._reading == t.ident,
              "the thread reading, the job accepted")
        ex.client.close()
        t.join(BOUND)
        self.assertFalse(t.is_alive())
        self.assertIsInstance(out["e"], concd.ConnectionLost)
        self.c.cancel(f.job)

    def test_concd_task_runs_outside_concd(self):
        self.assertIsNone(concd.task.progress(1, 2, "x"))
        self.assertFalse(concd.task.cancelled())
        self.assertEqual(pyclient_funcs.slow(3), 3)


class PythonDaemonTest(DaemonTest):
    """A concd with the `python` task (skipped without it), an executor on
    it and a client."""

    # the build's python task plugin (tests/integration/CMakeLists.txt)
    if os.environ.get("CONCD_PYTHON_PLUGINS"):
        args = ("--plugin-dir", os.environ["CONCD_PYTHON_PLUGINS"])

    def setUp(self):
        super().setUp()
        self.c = concd.Client(self.d.socket, timeout=BOUND)
        if "python" not in [t["name"] for t in self.c.tasks()]:
            self.c.close()
            self.d.close()  # tearDown does not run after a skip
            self.skipTest("this concd has no python task")
        self.ex = ConcdExecutor(socket=self.d.socket)

    def tearDown(self):
        if hasattr(self, "ex"):
            self.ex.shutdown(cancel_futures=True)
            self.c.close()
        super().tearDown()


class PythonTaskTest(PythonDaemonTest):
    """Python functions on concd's workers."""

    def jobs(self):
        return self.c.ps(all=True, task="python", limit=1)["total"]

    def test_map_with_chunksize_calls_makes_one_job_of_them(self):
        before = self.jobs()
        self.assertEqual(list(self.ex.map(pyclient_funcs.add, range(1000),
                                          range(1000), chunksize=100,
                                          timeout=BOUND)),
                         [2 * x for x in range(1000)])
        self.assertEqual(self.jobs() - before, 10)

    def test_without_a_chunksize_about_64_jobs_of_at_most_1000(self):
        before = self.jobs()
        self.assertEqual(list(self.ex.map(pyclient_funcs.square, range(2000),
                                          timeout=BOUND)),
                         [x * x for x in range(2000)])
        self.assertEqual(self.jobs() - before, 63)  # 32 calls each
        before = self.jobs()
        self.assertEqual(sum(self.ex.map(pyclient_funcs.square,
                                         range(100000), timeout=BOUND)),
                         sum(x * x for x in range(100000)))
        self.assertEqual(self.jobs() - before, 100)
        before = self.jobs()
        self.assertEqual(list(self.ex.map(pyclient_funcs.square, [3])), [9])
        self.assertEqual(list(self.ex.map(pyclient_funcs.square, [])), [])
        self.assertEqual(self.jobs() - before, 1)
        with self.assertRaises(ValueError):
            self.ex.map(pyclient_funcs.square, [1], chunksize=0)

    def test_a_call_on_a_process_gets_the_umask_the_program_had(self):
        ex = executor_made_under_umask(0o27, self.d.socket)
        try:
            self.assertEqual(ex.submit(pyclient_funcs.umask).result(BOUND),
                             0o27)
            ex77 = ex.options(umask=0o77)
            self.assertEqual(ex77.submit(pyclient_funcs.umask).result(BOUND),
                             0o77)
            # one call a job, and chunks of calls
            for size in (1, 2):
                self.assertEqual(list(ex77.map(pyclient_funcs.umask,
                                               range(4), chunksize=size,
                                               timeout=BOUND)), [0o77] * 4)
        finally:
            ex.shutdown()

    def test_what_a_function_prints_is_its_futures_output(self):
        f = self.ex.submit(pyclient_funcs.chatty, "ann")
        self.assertEqual(f.result(BOUND), 3)
        self.assertEqual((f.output(), f.output("stderr")),
                         (b"hello, ann\n", b""))

    def test_an_exception_raises_at_its_chunk_as_in_the_standard_library(
            self):
        it = self.ex.map(pyclient_funcs.add, [1, 2, 3, None], [1, 1, 1, 1],
                         chunksize=2, timeout=BOUND)
        self.assertEqual([next(it), next(it)], [2, 3])
        with self.assertRaises(concd.TaskFailed) as cm:
            next(it)
        self.assertEqual(cm.exception.remote_type, "TypeError")

    def test_a_chunk_too_large_for_a_frame_is_sent_again_call_by_call(self):
        # 6 x 200 KB: more than a frame's 1 MiB in one result
        before = self.jobs()
        out = list(self.ex.map(pyclient_funcs.big, [200000] * 6,
                               chunksize=6, timeout=BOUND))
        self.assertEqual([len(x) for x in out], [200000] * 6)
        self.assertEqual(self.jobs() - before, 7)
        # one call whose result is too large fails as from submit()
        with self.assertRaises(concd.TaskFailed):
            list(self.ex.map(pyclient_funcs.big, [1, 4 << 20], chunksize=2,
                             timeout=BOUND))

    def test_a_chunk_sent_again_survives_shutdown_and_is_cancelled(self):
        """Before the fix the calls of a chunk too large for a frame were
        sent again only when the iteration reached it: after shutdown()
        that failed with ConnectionLost, and leaving the iteration did
        not cancel them."""
        it = self.ex.map(pyclient_funcs.big, [200000] * 12, chunksize=6)
        self.ex.shutdown(wait=True)
        self.assertEqual([len(x) for x in it], [200000] * 12)
        ex = ConcdExecutor(socket=self.d.socket)
        it = ex.map(pyclient_funcs.big_then_slow, [200000] * 6, range(6),
                    chunksize=6, timeout=BOUND / 2)
        self.assertEqual(len(next(it)), 200000)
        it.close()  # the five calls still running are cancelled
        ex.shutdown(wait=True)
        self.assertEqual(self.c.ps(task="python")["jobs"], [])

    def test_a_timeout_raises_and_cancels_the_jobs_left(self):
        it = self.ex.map(pyclient_funcs.slow, [10 ** 9] * 4, chunksize=2,
                         timeout=0.2)
        with self.assertRaises(cf.TimeoutError):
            next(it)
        # the chunks were cancelled: their calls saw cancelled() and ended
        self.ex.shutdown(wait=True)
        self.assertEqual(self.c.ps(state="running")["jobs"], [])

    def test_a_value_over_a_limit_fails_its_call_alone(self):
        # concd refuses that request under its id: the connection, and
        # the calls in flight on it, go on
        slow = self.ex.submit(pyclient_funcs.add, 1, 2)
        deep = [[[[[[1]]]]]]  # with the request's own levels: 9
        with self.assertRaises(concd.BadField) as cm:
            self.ex.submit(pyclient_funcs.pair, deep, 1).result(BOUND)
        self.assertIn("over the protocol's limits: nested too deeply",
                      str(cm.exception))
        self.assertEqual(slow.result(BOUND), 3)
        self.assertEqual(self.ex.submit(pyclient_funcs.pair, deep[0],
                                        1).result(BOUND), [deep[0], 1])

    def test_default_chunks_keep_to_the_frame_and_nesting_limits(self):
        """Before the fix the default chunks of calls that each fit were
        too large for a frame (ValueError "a None request of ...") or
        nested too deeply (BadField for every call of the chunk)."""
        blob = [b"x" * 131072] * 4  # 512 KiB and a little: two a frame
        before = self.jobs()
        self.assertEqual(list(self.ex.map(len, [blob] * 65,
                                          timeout=BOUND)), [4] * 65)
        self.assertEqual(self.jobs() - before, 65)  # chunks of 2, halved
        items = [[[i]] for i in range(200)]
        self.assertEqual(list(self.ex.map(pyclient_funcs.ident, items,
                                          timeout=BOUND)), items)
        # an item nested too deeply for any job fails its call alone
        it = self.ex.map(pyclient_funcs.ident, [1, 2, [[[[3]]]], 4],
                         chunksize=4, timeout=BOUND)
        self.assertEqual([next(it), next(it)], [1, 2])
        with self.assertRaises(concd.BadField) as cm:
            next(it)
        self.assertIn("nested too deeply", str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            self.ex.map(len, [[b"x" * 262144] * 5] * 2, chunksize=2)
        self.assertRegex(str(cm.exception), "^a job of [0-9]+ bytes is over "
                         "concd's frame limit of 1048576 bytes$")

    def test_submit_runs_a_function_and_gives_its_result(self):
        self.assertEqual(self.ex.submit(pyclient_funcs.square, 12).result(
            BOUND), 144)
        self.assertEqual(self.ex.submit(pyclient_funcs.add, 1, 2,
                                        scale=3).result(BOUND), 9)
        self.assertEqual(self.ex.submit(pyclient_funcs.pair, 1, "a").result(
            BOUND), [1, "a"])
        self.assertEqual(self.ex.submit(pyclient_funcs.Maths.cube,
                                        3).result(BOUND), 27)
        self.assertEqual(self.ex.submit(pyclient_funcs.where).result(BOUND),
                         os.getcwd())

    def test_thread_and_process_executors_run_functions(self):
        for kind in ("thread", "process"):
            f = self.ex.options(executor=kind).submit(pyclient_funcs.square,
                                                      5)
            self.assertEqual(f.result(BOUND), 25)
            self.assertEqual(self.c.status(f.job)["exec"], kind)

    def test_map_gives_results_in_order(self):
        self.assertEqual(list(self.ex.map(pyclient_funcs.square,
                                          range(2000), timeout=BOUND)),
                         [x * x for x in range(2000)])
        self.assertEqual(list(self.ex.map(pyclient_funcs.add, [1, 2],
                                          [10, 20], chunksize=1)), [11, 22])

    def test_an_exception_raises_TaskFailed_with_type_and_traceback(self):
        with self.assertRaises(concd.TaskFailed) as cm:
            self.ex.submit(pyclient_funcs.fail, "boom").result(BOUND)
        self.assertEqual(cm.exception.remote_type, "ValueError")
        self.assertIn("boom", str(cm.exception))
        self.assertIn("Traceback", cm.exception.remote_traceback)

    def test_remote_type_and_traceback_of_any_message(self):
        """Before the fix a message of several lines gave a traceback that
        began with its second line, and one without a traceback no
        type."""
        with self.assertRaises(concd.TaskFailed) as cm:
            self.ex.submit(pyclient_funcs.fail_lines).result(BOUND)
        e = cm.exception
        self.assertEqual(e.remote_type, "ValueError")
        self.assertTrue(e.message.startswith("ValueError: line1\nline2: x\n"))
        self.assertTrue(e.remote_traceback.startswith(
            "Traceback (most recent call last):\n"), e.remote_traceback)
        self.assertIn("fail_lines", e.remote_traceback)
        with self.assertRaises(concd.TaskFailed) as cm:
            self.ex.submit(pyclient_funcs.unencodable).result(BOUND)
        self.assertEqual((cm.exception.remote_type,
                          cm.exception.remote_traceback), ("TypeError", None))
        with self.assertRaises(concd.TaskFailed) as cm:
            self.c.run("exec", {"argv": ["sh", "-c", "exit 3"]})
        self.assertEqual((cm.exception.remote_type,
                          cm.exception.remote_traceback), (None, None))

    def test_a_result_that_cannot_be_encoded_fails_the_job(self):
        with self.assertRaises(concd.ConcdError):
            self.ex.submit(pyclient_funcs.unencodable).result(BOUND)

    def test_a_result_larger_than_a_frame_fails_the_job(self):
        with self.assertRaises(concd.ConcdError) as cm:
            self.ex.submit(pyclient_funcs.big, 4 << 20).result(BOUND)
        self.assertNotIsInstance(cm.exception, concd.Cancelled)
        self.assertEqual(self.ex.submit(pyclient_funcs.big, 10).result(
            BOUND), b"x" * 10)

    def test_a_function_whose_module_is_not_on_the_path_fails(self):
        d = os.path.join(self.d.dir, "elsewhere")
        os.mkdir(d)
        with open(os.path.join(d, "pyclient_elsewhere.py"), "w") as f:
            f.write("def here():\n    return 1\n")
        sys.path.insert(0, d)
        try:
            import pyclient_elsewhere
        finally:
            sys.path.remove(d)
        os.rename(d, d + ".gone")
        with self.assertRaises(concd.TaskFailed) as cm:
            self.ex.submit(pyclient_elsewhere.here).result(BOUND)
        self.assertIn("pyclient_elsewhere", str(cm.exception))
        self.assertEqual(cm.exception.remote_type, "ModuleNotFoundError")

    def test_a_time_limit_stops_a_running_function(self):
        with self.assertRaises(concd.TimedOut):
            self.ex.options(timeout=0.2).submit(pyclient_funcs.slow,
                                                10 ** 9).result(BOUND)

    def test_cancel_stops_a_running_function(self):
        for kind in ("thread", "process"):
            f = self.ex.options(executor=kind).submit(pyclient_funcs.slow,
                                                      10 ** 9)
            self.running_with_progress(f)
            self.assertTrue(f.cancel())
            self.assertEqual(self.c.wait(f.job)["state"], "cancelled")

    def running_with_progress(self, f):
        seen = threading.Event()
        f.add_progress_callback(lambda *a: seen.set())
        self.assertTrue(seen.wait(BOUND), "no progress from the function")


class RandomUseTest(PythonDaemonTest):
    """Seeded random use of executors from several threads at once: every
    call of the library, in any order, with quiet spells longer than the
    background reader's 50 ms.  Every future must end with no thread
    waiting for it (the background reader reads), nothing may raise but
    what the call is documented to raise, and no thread may be left.
    CONCD_PYCLIENT_SEEDS (default 1-2) and CONCD_PYCLIENT_SECONDS (default
    2, for each of the two ways) make longer sessions by hand."""

    def seeds(self):
        first, _, last = os.environ.get("CONCD_PYCLIENT_SEEDS",
                                        "1-2").partition("-")
        return range(int(first), int(last or first) + 1)

    def test_random_use_of_shared_executors(self):
        seconds = float(os.environ.get("CONCD_PYCLIENT_SECONDS", "2"))
        for seed in self.seeds():
            with self.subTest(seed=seed):
                self.run_seed(seed, seconds, shared=True)
                self.run_seed(seed, seconds, shared=False)

    def run_seed(self, seed, seconds, shared):
        before = threading.active_count()
        futures, errors, lock = [], [], threading.Lock()
        shared_ex = ConcdExecutor(socket=self.d.socket)
        clients = [shared_ex.client]
        expected = (cf.TimeoutError, cf.CancelledError, concd.ConcdError)

        def act(r, ex, mine):
            c = r.random()
            if c < 0.2:
                f = ex.options(executor=r.choice(
                    ["loop", "thread", "process"])).submit_task(
                        "sleep", ms=r.choice([0, 1, 20, 80]))
            elif c < 0.3:
                f = ex.options(executor="loop").submit_exec(
                    ["sh", "-c", "head -c %d /dev/zero" % r.choice(
                        [0, 10, 70000])])
            elif c < 0.45:
                f = ex.options(executor=r.choice(
                    ["thread", "process"])).submit(pyclient_funcs.add, 1,
                                                   r.randint(0, 9))
            elif c < 0.5:
                n = r.randint(0, 30)
                self.assertEqual(list(ex.map(pyclient_funcs.square,
                                             range(n), timeout=BOUND)),
                                 [x * x for x in range(n)])
                return
            else:
                if not mine:
                    return
                f = r.choice(mine)
                op = r.random()
                if op < 0.3:
                    try:
                        f.result(timeout=r.choice([0, 0.01, 0.1]))
                    except expected:
                        pass
                elif op < 0.5:
                    f.cancel()
                elif op < 0.7:
                    f.add_done_callback(lambda f: None)
                elif op < 0.9:
                    f.done()
                else:
                    time.sleep(r.choice([0.06, 0.12]))  # a quiet spell
                return
            mine.append(f)

        def worker(k):
            r = random.Random(seed * 100 + k)
            end = time.monotonic() + seconds
            try:
                while time.monotonic() < end:
                    ex = shared_ex if shared else ConcdExecutor(
                        socket=self.d.socket,
                        executor=r.choice(["thread", "process"]))
                    mine = []
                    with lock:
                        clients.append(ex.client)
                    for _ in range(r.randint(1, 40)):
                        act(r, ex, mine)
                    with lock:
                        futures.extend(mine)
                    if not shared:
                        how = r.random()
                        if how < 0.4:
                            ex.shutdown(wait=True, cancel_futures=True)
                        elif how < 0.8:
                            ex.shutdown(wait=False,
                                        cancel_futures=r.random() < 0.5)
                        else:
                            with ex:
                                pass
            except Exception as e:  # reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=worker, args=(k,))
                   for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(BOUND + seconds)
        self.assertEqual([t for t in threads if t.is_alive()], [])
        self.assertEqual(errors, [])
        # nobody waits: the background readers must read every end
        until(lambda: all(f._finished() for f in futures),
              "every future ended (%d)" % len(futures))
        shared_ex.shutdown(wait=True)
        # every connection closed, and its background reader returned
        until(lambda: all(c._stopping and (
            c._bg_done is None or not c._bg_done.locked())
            for c in clients), "every reader gone")
        until(lambda: threading.active_count() == before,
              "the executors' threads gone")


if __name__ == "__main__":
    harness.main()
