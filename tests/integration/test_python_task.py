"""The python task: module:function on warm thread and process workers,
with msgpack arguments and results, tracebacks, progress, cancel, timeout,
imports kept warm, and a root concd's refusal of other users' calls.

The functions live in a module directory the test writes and sends as
`path`, as a client sends the caller's sys.path.
"""
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (BOUND, VALGRIND, Daemon, maps_library, rss_kib,  # noqa: E402
                     sanitized)

PLUGINS = os.environ.get("CONCD_PYTHON_PLUGINS", "")
EXECUTORS = ("thread", "process")
USER = "concd-pyuser"  # made and removed by the tests of users' workers

FUNCS = '''
import os
import threading
import time

import _concd_task

_local = threading.local()


def per_thread():
    _local.calls = getattr(_local, "calls", 0) + 1
    return [threading.get_ident(), _local.calls]


def add(a, b=1, *, c=0):
    return (a + b + c, "sum")


def echo(*args, **kwargs):
    return [list(args), kwargs]


def boom():
    raise ValueError("no good: %d" % 42)


def thing():
    return object()


def huge(n):
    return b"x" * n


def through_gate(path):
    with open(path) as f:  # blocks until the test releases the gate
        f.readline()
    return "through"


def chunks(n):
    return [b"x" * (256 * 1024)] * n


def nest(n):
    v = []
    for _ in range(n - 1):
        v = [v]
    return v


def c_int_size():
    import ctypes  # an extension module: libpython's symbols are global
    return ctypes.sizeof(ctypes.c_int)


def pid():
    return os.getpid()


def say(n):
    """Prints to both streams, through print, write and the bytes
    buffer, n times."""
    import sys
    for i in range(n):
        print("out", i, "é")
        sys.stderr.write("err %d\\n" % i)
    sys.stdout.buffer.write(b"\\xff raw\\n")
    sys.stdout.flush()
    # what writes to a file descriptor (faulthandler, a command's output)
    # has the worker's own
    return [n, sys.stdout.fileno(), sys.stderr.fileno()]


def take_signals():
    """signal.signal for concd's stop, interrupt and reload signals: what
    each answered."""
    import signal
    out = []
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            signal.signal(s, signal.SIG_IGN)
            out.append("took")
        except ValueError as e:
            out.append(str(e))
    return out


def cwd():
    return os.getcwd()


def umask():
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def steps(n, gate):
    """Reports n steps, then ends once the test opens the fifo gate."""
    for i in range(n):
        _concd_task.progress(i + 1, n, "step %d" % (i + 1))
    with open(gate) as f:
        f.read()
    return n


def spin():
    """Bytecode forever, after saying it runs: only a cancel ends it."""
    _concd_task.progress(0, 1, "spinning")
    while True:
        pass


def polite():
    """Ends by itself once cancelled() turns true (no exception)."""
    _concd_task.progress(0, 1, "waiting")
    while not _concd_task.cancelled():
        time.sleep(0.001)
    return "noticed"


class Box:
    @staticmethod
    def size():
        return 3
'''

# counts its own imports in a file beside it: one line per import
COUNTED = '''
import os
_here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_here, "imports"), "a") as _f:
    _f.write("import\\n")


def imports():
    with open(os.path.join(_here, "imports")) as f:
        return len(f.read().splitlines())
'''


def setUpModule():
    if not os.path.exists(os.path.join(PLUGINS, "python.so")) or \
            not os.path.exists(os.path.join(PLUGINS, "python",
                                            "concd_python.so")):
        raise unittest.SkipTest("the python task is not built "
                                "(python3-dev missing: CONCD_PYTHON_PLUGINS)")


class PythonTaskTest(unittest.TestCase):
    def setUp(self):
        self.mods = tempfile.mkdtemp(prefix="concd-pymods-")
        os.chmod(self.mods, 0o755)
        with open(os.path.join(self.mods, "pt_funcs.py"), "w") as f:
            f.write(FUNCS)
        with open(os.path.join(self.mods, "pt_counted.py"), "w") as f:
            f.write(COUNTED)
        self.d = Daemon("-p", "1", "--plugin-dir", PLUGINS)
        self.c = self.d.client()

    def tearDown(self):
        try:
            self.d.close()
        finally:  # a failed close leaves no module directory behind
            shutil.rmtree(self.mods, ignore_errors=True)

    def submit(self, call, x, **kw):
        args = dict(call=call, path=[self.mods])
        for k in ("args", "kwargs", "cwd"):
            if k in kw:
                args[k] = kw.pop(k)
        if "args_umask" in kw:
            args["umask"] = kw.pop("args_umask")
        return self.c.request("submit", task="python", args=args, exec=x,
                              watch=True, **kw)

    def run_call(self, call, x, **kw):
        return self.c.until_end(self.submit(call, x, **kw))[-1]

    def ok(self, call, x, **kw):
        end = self.run_call(call, x, **kw)
        self.assertEqual(end["state"], "succeeded", end)
        return end.get("result")

    def failed(self, call, x, **kw):
        end = self.run_call(call, x, **kw)
        self.assertEqual((end["state"], end["error"]),
                         ("failed", "task_failed"), end)
        return end["message"]

    def test_a_call_returns_its_result_with_args_and_kwargs(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                self.assertEqual(self.ok("pt_funcs:add", x, args=[5]),
                                 [6, "sum"])
                self.assertEqual(self.ok("pt_funcs:add", x, args=[5],
                                         kwargs={"b": 10, "c": 100}),
                                 [115, "sum"])
                value = [None, True, -3, 2 ** 64 - 1, 1.5, "é", b"\x00\xff",
                         [1, [2]], {"k": {"n": [None]}}]
                self.assertEqual(self.ok("pt_funcs:echo", x, args=value,
                                         kwargs={"z": b"b"}),
                                 [value, {"z": b"b"}])
                self.assertEqual(self.ok("pt_funcs:Box.size", x), 3)

    def test_a_call_on_concds_threads_cannot_take_concds_signals(self):
        # one thread: the interpreter's first call runs on it
        self.d.close()
        self.d = Daemon("-p", "1", "--plugin-dir", PLUGINS, threads=1)
        self.c = self.d.client()
        # a worker process's call runs on its main thread, as in
        # ProcessPoolExecutor: its handlers are its worker's own
        self.assertEqual(self.ok("pt_funcs:take_signals", "process"),
                         ["took"] * 3)
        # on concd's own threads, as on a ThreadPoolExecutor's, only the
        # main thread may set handlers, and none runs calls
        self.assertEqual(self.ok("pt_funcs:take_signals", "thread"),
                         ["signal only works in main thread of the main "
                          "interpreter"] * 3)
        self.d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.d.proc.wait(BOUND), 0, self.d.log())

    def maps_libpython(self, pid):
        return maps_library(pid, "libpython3")

    def test_libpython_is_mapped_only_once_a_python_job_runs(self):
        workers = [w["pid"] for w in self.c.call("pool")["workers"]
                   if w["exec"] == "process"]
        self.assertEqual(len(workers), 1)
        self.assertFalse(self.maps_libpython(self.d.proc.pid))
        self.assertFalse(self.maps_libpython(workers[0]))
        self.assertEqual(self.ok("pt_funcs:pid", "process"), workers[0])
        self.assertTrue(self.maps_libpython(workers[0]))
        self.assertFalse(self.maps_libpython(self.d.proc.pid))
        self.ok("pt_funcs:pid", "thread")
        self.assertTrue(self.maps_libpython(self.d.proc.pid))

    def test_extension_modules_import(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                self.assertEqual(self.ok("pt_funcs:c_int_size", x), 4)

    def test_the_auto_executor_is_process_and_the_loop_is_refused(self):
        rid = self.submit("pt_funcs:pid", "auto")
        end = self.c.until_end(rid)[-1]
        self.assertNotEqual(end["result"], self.d.proc.pid)
        m = self.c.call("submit", task="python",
                        args={"call": "pt_funcs:pid"}, exec="loop")
        self.assertEqual((m["t"], m["error"]), ("error", "bad_executor"))

    def test_an_exception_fails_the_job_with_type_message_and_traceback(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                msg = self.failed("pt_funcs:boom", x)
                first, rest = msg.split("\n", 1)
                self.assertEqual(first, "ValueError: no good: 42")
                self.assertTrue(rest.startswith(
                    "Traceback (most recent call last):\n"), msg)
                self.assertIn("pt_funcs.py\", line ", rest)
                self.assertIn('raise ValueError("no good: %d" % 42)', rest)

    def test_a_module_or_function_that_is_not_there_fails_clearly(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                self.assertTrue(self.failed("pt_nowhere:f", x).startswith(
                    "ModuleNotFoundError: No module named 'pt_nowhere'"))
                self.assertTrue(self.failed("pt_funcs:nope", x).startswith(
                    "AttributeError: module 'pt_funcs' has no attribute "
                    "'nope'"))
                self.assertTrue(self.failed("pt_funcs", x).startswith(
                    "ValueError: call is module:function"))
        m = self.c.call("submit", task="python", args={"path": [self.mods]})
        end = self.c.until_end(self.c.request("watch", job=m["job"]))[-1]
        self.assertIn("call=module:function is required", end["message"])

    def test_a_result_that_cannot_be_encoded_fails_clearly(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                self.assertTrue(self.failed("pt_funcs:thing", x).startswith(
                    "TypeError: the result cannot be encoded as msgpack: a "
                    "object"))

    def test_a_result_larger_than_a_frame_is_refused_clearly(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                msg = self.failed("pt_funcs:chunks", x, args=[5])
                self.assertIn("python: the result is too large: 1310746 "
                              "bytes of msgpack, and a result holds at "
                              "most 1044480", msg)
                # the protocol's other limits, each said (one string)
                msg = self.failed("pt_funcs:huge", x, args=[300000])
                self.assertTrue(msg.startswith(
                    "ValueError: the result cannot be sent: a bytes of "
                    "300000 bytes, and one string or bytes holds at most "
                    "262144"), msg)
                msg = self.failed("pt_funcs:nest", x, args=[8])
                self.assertIn("nested more than 7 deep", msg)
                # just under the limits still goes, and the worker lives
                self.assertEqual(len(self.ok("pt_funcs:chunks", x,
                                             args=[3])), 3)
                self.assertEqual(self.ok("pt_funcs:nest", x, args=[7]),
                                 [[[[[[[]]]]]]])

    def test_progress_from_inside_the_function_reaches_the_watcher(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                gate = os.path.join(self.mods, "gate-" + x)
                os.mkfifo(gate)
                rid = self.submit("pt_funcs:steps", x, args=[3, gate])
                # concd may coalesce them, but the last one comes while
                # the call waits: each says where the call was
                while True:
                    m = self.c.recv_for(rid)
                    self.assertIn(m["t"], ("accepted", "progress"), m)
                    if m["t"] == "progress":
                        self.assertEqual((m["total"], m.get("msg")),
                                         (3, "step %d" % m["done"]))
                        if m["done"] == 3:
                            break
                with open(gate, "w") as f:
                    f.write("go\n")
                self.assertEqual(self.c.until_end(rid)[-1]["result"], 3)

    def test_what_a_call_prints_is_its_jobs_output(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                events = self.c.until_end(self.submit("pt_funcs:say", x,
                                                      args=[3]))
                self.assertEqual(events[-1].get("result"), [3, 1, 2],
                                 events[-1])
                out = {"stdout": b"", "stderr": b""}
                for m in events:
                    if m["t"] == "output":
                        out[m["stream"]] += m["data"]
                self.assertEqual(out["stdout"],
                                 "out 0 é\nout 1 é\nout 2 é\n".encode()
                                 + b"\xff raw\n")
                self.assertEqual(out["stderr"], b"err 0\nerr 1\nerr 2\n")
                # a line at a time, not print's pieces one by one
                self.assertEqual([m["data"][-1:] for m in events
                                  if m["t"] == "output"], [b"\n"] * 7)
                # kept, as an exec job's is (concctl writes each stream
                # to its own)
                r = self.d.concctl("log", "--stderr", events[-1]["job"])
                self.assertEqual((r.returncode, r.stdout, r.stderr),
                                 (0, "", "err 0\nerr 1\nerr 2\n"))
        # none of it in concd's own log
        self.assertNotIn("err 0", self.d.log())

    def wait_running(self, rid):
        """The job's first progress event: the function runs."""
        while True:
            m = self.c.recv_for(rid)
            self.assertIsNotNone(m)
            self.assertNotIn(m["t"], ("end", "error"), m)
            if m["t"] == "progress":
                return m["job"]

    def assert_interrupted(self, x, before):
        """The call really stopped, by an exception in it: its worker is
        idle again (a thread whose call spun on stays busy, the grace
        over) and a worker process is the one from before (not killed
        after the grace)."""
        deadline = time.monotonic() + BOUND * harness.SLOWDOWN
        while True:
            ws = [w for w in self.c.call("pool")["workers"]
                  if w["exec"] == x]
            if ws and all(w["state"] == "idle" for w in ws):
                break
            self.assertLess(time.monotonic(), deadline, ws)
        # under valgrind a worker process's watcher may not get the GIL
        # within the 5 s grace: the grace then kills it, as designed
        if not VALGRIND or x == "thread":
            self.assertEqual(self.ok("pt_funcs:pid", x), before)

    def test_cancel_interrupts_a_running_call_and_the_worker_serves_on(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                before = self.ok("pt_funcs:pid", x)
                rid = self.submit("pt_funcs:spin", x)
                job = self.wait_running(rid)
                self.c.request("cancel", job=job)
                end = self.c.until_end(rid)[-1]
                self.assertEqual(end["state"], "cancelled", end)
                self.assert_interrupted(x, before)

    def test_a_call_sees_cancelled_and_may_end_by_itself(self):
        rid = self.submit("pt_funcs:polite", "thread")
        job = self.wait_running(rid)
        self.c.request("cancel", job=job)
        self.assertEqual(self.c.until_end(rid)[-1]["state"], "cancelled")

    def test_a_timeout_interrupts_a_running_call(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                before = self.ok("pt_funcs:pid", x)
                end = self.run_call("pt_funcs:spin", x, timeout=200)
                self.assertEqual(end["state"], "timed_out", end)
                self.assert_interrupted(x, before)

    def test_imports_stay_warm_across_calls_and_fresh_pays_them_again(self):
        self.assertEqual(self.ok("pt_counted:imports", "process"), 1)
        self.assertEqual(self.ok("pt_counted:imports", "process"), 1)
        # a fresh worker imports it again; the warm one still has it
        self.assertEqual(self.ok("pt_counted:imports", "process",
                                 fresh=True), 2)
        self.assertEqual(self.ok("pt_counted:imports", "process"), 2)
        # the thread pool's interpreter is another one: its own import
        self.assertEqual(self.ok("pt_counted:imports", "thread"), 3)
        self.assertEqual(self.ok("pt_counted:imports", "thread"), 3)

    def test_a_threads_locals_last_from_call_to_call_on_its_worker(self):
        # threading.local (a cached connection, say) is kept by a worker's
        # thread between its calls, on a thread of concd's as in a process
        for x in EXECUTORS:
            with self.subTest(executor=x):
                seen = {}
                for _ in range(6):
                    ident, calls = self.ok("pt_funcs:per_thread", x)
                    seen[ident] = seen.get(ident, 0) + 1
                    self.assertEqual(calls, seen[ident])
                self.assertEqual(sum(seen.values()), 6)
                self.assertGreater(max(seen.values()), 1)

    def test_path_is_taken_off_sys_path_after_the_call(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                self.ok("pt_funcs:pid", x)
                m = self.c.call("submit", task="python", exec=x, watch=True,
                                args={"call": "sys:path.copy"})
                end = self.c.until_end(m["id"])[-1]
                self.assertNotIn(self.mods, end["result"])

    def test_a_process_call_runs_in_cwd_a_thread_call_in_concds(self):
        self.assertEqual(self.ok("pt_funcs:cwd", "process", cwd=self.mods),
                         self.mods)
        self.assertEqual(self.ok("pt_funcs:cwd", "thread", cwd=self.mods),
                         os.getcwd())

    def test_an_end_goes_out_while_the_next_call_runs(self):
        # -p 1: a gather's two calls reach the one worker in one write;
        # the first one's end was held with the worker's other replies
        # until the second had returned
        first, second = self.d.gate(), self.d.gate()
        rid = self.c.request("gather", jobs=[
            {"task": "python", "exec": "process",
             "args": {"call": "pt_funcs:through_gate", "path": [self.mods],
                      "args": [g.path]}} for g in (first, second)])
        self.assertEqual(self.c.recv_for(rid)["t"], "accepted")
        first.release()
        m = self.c.recv_for(rid)
        while m is not None and m["t"] != "end":
            m = self.c.recv_for(rid)
        self.assertIsNotNone(m, "no end while the second call runs")
        self.assertEqual((m["index"], m["state"], m["result"]),
                         (0, "succeeded", "through"))
        second.release()
        m = self.c.recv_for(rid)
        while m is not None and m["t"] != "end":
            m = self.c.recv_for(rid)
        self.assertEqual((m["index"], m["state"]), (1, "succeeded"))

    def test_a_process_call_runs_with_the_callers_umask(self):
        mine = os.umask(0o22)
        os.umask(mine)  # concd's, which the test started
        # the job's umask (concctl's field), or the one of its arguments
        self.assertEqual(self.ok("pt_funcs:umask", "process", umask=0o27),
                         0o27)
        self.assertEqual(self.ok("pt_funcs:umask", "process", umask=0o27,
                                 args_umask=0o77), 0o77)
        # the one worker process has its own back after each call
        self.assertEqual(self.ok("pt_funcs:umask", "process"), mine)
        # a thread shares concd's umask with every other thread
        self.assertEqual(self.ok("pt_funcs:umask", "thread", umask=0o77),
                         mine)
        for bad in (0o1000, -1, "077"):
            self.assertEqual(self.failed("pt_funcs:umask", "process",
                                         args_umask=bad),
                             "ValueError: umask is a file mode creation "
                             "mask, 0 to 0o777")

    def test_concctl_reads_the_umask_argument_in_octal(self):
        # as umask(1) does: umask=077 was sent as 77, the mask 0o115,
        # which left files group- and world-writable
        for word, mask in (("umask=077", "63"), ("umask=22", "18"),
                           ("umask=0", "0"), ("umask=0777", "511")):
            r = self.d.concctl("run", "python", "call=pt_funcs:umask",
                               "path=" + self.mods, "-x", "process", word)
            self.assertEqual((r.returncode, r.stdout), (0, mask + "\n"),
                             (word, r.stderr))
        for word in ("umask=8", "umask=1000", "umask=-1", "umask="):
            r = self.d.concctl("run", "python", "call=pt_funcs:umask",
                               "path=" + self.mods, word)
            self.assertEqual(r.returncode, 2, (word, r.stderr))
            self.assertIn("concctl: run: umask is an octal mask, 0 to "
                          "0777: %s\n" % word, r.stderr)

    def test_concctl_runs_a_call_with_json_args_from_the_shell(self):
        r = self.d.concctl("run", "python", "call=pt_funcs:add",
                           "args=[5]", 'kwargs={"c": 2}', "path=" + self.mods,
                           "-x", "process")
        self.assertEqual((r.returncode, r.stdout), (0, '[8,"sum"]\n'),
                         r.stderr)
        r = self.d.concctl("run", "python", "call=pt_funcs:add",
                           "args=[5", "path=" + self.mods)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("args given as a string is read as JSON", r.stderr)

    def kill_mid_call(self, x):
        """A call whose worker process is killed: the call fails with
        worker_died, and the next call runs in a new worker."""
        before = self.ok("pt_funcs:pid", x)
        rid = self.submit("pt_funcs:spin", x)
        job = self.wait_running(rid)
        os.kill(before, signal.SIGKILL)
        end = self.c.until_end(rid)[-1]
        self.assertEqual((end["job"], end["state"], end["error"]),
                         (job, "failed", "worker_died"), end)
        self.assertIn("(pid %d) was killed by signal 9" % before,
                      end["message"])
        after = self.ok("pt_funcs:pid", x)
        self.assertNotEqual(after, before)
        return after

    def test_the_thread_that_started_python_may_retire(self):
        # the interpreter starts on thread 1 (thread 0 is busy), which a
        # resize then retires, while thread 0 takes the next calls
        busy = self.c.call("submit", task="sleep", exec="thread",
                           args={"ms": 60000})["job"]
        self.assertEqual(self.ok("pt_funcs:pid", "thread"), self.d.proc.pid)
        self.c.call("cancel", job=busy)
        self.c.call("resize", threads=1)
        rids = [self.submit("pt_funcs:add", "thread", args=[i])
                for i in range(20)]
        for i, rid in enumerate(rids):
            end = self.c.until_end(rid)[-1]
            self.assertEqual((end["state"], end["result"], end["worker"]),
                             ("succeeded", [i + 1, "sum"], 0), end)
        # and a cancel still interrupts a call
        rid = self.submit("pt_funcs:spin", "thread")
        job = self.wait_running(rid)
        self.c.request("cancel", job=job)
        self.assertEqual(self.c.until_end(rid)[-1]["state"], "cancelled")

    def test_a_worker_killed_mid_call_fails_the_call_and_the_next_runs(self):
        self.kill_mid_call("process")

    def test_a_finished_call_keeps_little_of_concds_memory(self):
        """concd keeps a finished job's record (--max-finished of them):
        a python job's held 8 KiB of room for its directory and an error
        (and each submit faulted in new pages of concd's heap)."""
        if VALGRIND or sanitized(self.d.proc.pid):
            self.skipTest("the allocator is not glibc's: its RSS says "
                          "nothing of concd's own")
        calls = 2000
        for i in range(100):  # the worker and concd's structures warm
            self.ok("pt_funcs:add", "process", args=[i], cwd=self.mods)
        before = rss_kib(self.d.proc.pid)
        for i in range(calls):
            self.ok("pt_funcs:add", "process", args=[i], cwd=self.mods)
        per_job = (rss_kib(self.d.proc.pid) - before) * 1024 / calls
        self.assertEqual(len(self.c.call("ps", all=True, limit=calls)
                             ["jobs"]), calls)  # all still kept
        self.assertLess(per_job, 3072, "bytes of RSS per finished job")


WHOAMI = '''
import os


def whoami():
    return [os.getuid(), os.geteuid(), os.getgid(), sorted(os.getgroups()),
            os.environ.get("HOME"), os.environ.get("USER"),
            os.environ.get("NOTIFY_SOCKET"), os.getpid()]


def mine():
    """What only the user may read: the module's own directory."""
    return sorted(os.listdir(os.path.dirname(os.path.abspath(__file__))))
'''

# a fresh Python program of the user's, with the client package
AS_USER = '''
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import concd
import pu_funcs
from concd.futures import ConcdExecutor
with ConcdExecutor(executor="process") as ex:
    print(ex.submit(pu_funcs.whoami).result()[0])
try:
    with ConcdExecutor(executor="thread") as ex:
        ex.submit(pu_funcs.whoami).result()
except concd.PermissionDenied as e:
    print("refused:", e.message)
'''


class FirstCalls(unittest.TestCase):
    def test_first_calls_on_several_threads_at_once_start_one_interpreter(
            self):
        # each thread's first call starts the interpreter or waits for the
        # one that does; before, a second thread started it again while
        # the first waited, and concd died of SIGSEGV
        for _ in range(3):
            d = Daemon("-p", "0", "--plugin-dir", PLUGINS, threads=4)
            try:
                c = d.client()
                rid = c.request("gather", jobs=[
                    {"task": "python", "exec": "thread",
                     "args": {"call": "math:sqrt", "args": [i * i]}}
                    for i in range(8)])
                self.assertEqual(c.recv_for(rid)["t"], "accepted")
                ends = [c.recv_for(rid) for _ in range(8)]
                self.assertEqual(sorted((e["state"], e.get("result"))
                                        for e in ends),
                                 [("succeeded", float(i)) for i in range(8)],
                                 ends)
            finally:
                d.close()  # status 0, no sanitizer report


class UserClient(harness.Client):
    """A connection made with uid as the effective uid: concd takes it for
    that user's (SO_PEERCRED)."""

    def __init__(self, path, uid):
        os.seteuid(uid)
        try:
            super().__init__(path)
        finally:
            os.seteuid(0)


class UserWorkersTest(unittest.TestCase):
    """A root concd runs another user's python calls in worker processes
    started as that user: never with root's rights, never on a thread."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root: it creates the user " +
                                    USER)
        if shutil.which("useradd") is None:
            raise unittest.SkipTest("useradd is not installed")
        subprocess.run(["userdel", "-r", USER], capture_output=True)
        subprocess.run(["useradd", "--create-home", USER], check=True,
                       capture_output=True, timeout=BOUND)
        cls.pw = pwd.getpwnam(USER)
        # the user's modules: in the user's home, which only they can read
        os.chmod(cls.pw.pw_dir, 0o700)
        cls.umods = os.path.join(cls.pw.pw_dir, "mods")
        os.mkdir(cls.umods, 0o700)
        with open(os.path.join(cls.umods, "pu_funcs.py"), "w") as f:
            f.write(WHOAMI)
        with open(os.path.join(cls.umods, "pt_funcs.py"), "w") as f:
            f.write(FUNCS)
        for name in ("", "pu_funcs.py", "pt_funcs.py"):
            os.chown(os.path.join(cls.umods, name), cls.pw.pw_uid,
                     cls.pw.pw_gid)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["userdel", "-r", USER], capture_output=True)

    def setUp(self):
        self.d = Daemon("-p", "1", "--plugin-dir", PLUGINS)
        self.c = self.d.client()
        os.chmod(self.d.socket, 0o666)
        self.uc = UserClient(self.d.socket, self.pw.pw_uid)

    def tearDown(self):
        self.uc.close()
        self.d.close()

    def root_pid(self):
        m = self.c.call("submit", task="python", exec="process", watch=True,
                        args=dict(call="os:getpid"))
        end = self.c.until_end(m["id"])[-1]
        self.assertEqual(end["state"], "succeeded", end)
        return end["result"]

    def user_call(self, call, x="process", **kw):
        """A call of the user's, as the user submits it: its end."""
        m = self.uc.call("submit", task="python", exec=x, watch=True,
                         args=dict(call=call, path=[self.umods]), **kw)
        if m["t"] == "error":
            return m
        return self.uc.until_end(m["id"])[-1]

    def user_ok(self, call, x="process", **kw):
        end = self.user_call(call, x, **kw)
        self.assertEqual(end.get("state"), "succeeded", end)
        return end["result"]

    def user_workers(self):
        return [w for w in self.c.call("pool")["workers"]
                if w.get("uid") == self.pw.pw_uid]

    def test_a_users_call_runs_in_a_worker_process_of_that_user(self):
        pw = self.pw
        groups = sorted(os.getgrouplist(pw.pw_name, pw.pw_gid))
        who = self.user_ok("pu_funcs:whoami")
        self.assertEqual(who[:7], [pw.pw_uid, pw.pw_uid, pw.pw_gid, groups,
                                   pw.pw_dir, pw.pw_name, None])
        # what only the user may read, and write (the imports' cache)
        self.assertEqual(self.user_ok("pu_funcs:mine"),
                         ["__pycache__", "pt_funcs.py", "pu_funcs.py"])
        self.assertEqual(os.stat(os.path.join(self.umods,
                                              "__pycache__")).st_uid,
                         pw.pw_uid)
        # kept warm: the next call runs in the same process
        self.assertEqual(self.user_ok("pu_funcs:whoami")[7], who[7])
        workers = self.user_workers()
        self.assertEqual([(w["exec"], w["worker"], w["pid"], w["state"])
                          for w in workers],
                         [("process", 0, who[7], "idle")])
        # root's calls run in the pool, which is not the user's
        self.assertNotEqual(self.root_pid(), who[7])
        r = self.d.concctl("pool")
        self.assertRegex(r.stdout, r"process +0 \(%s\) +%d +idle" %
                         (USER, who[7]))

    def test_a_users_call_on_a_thread_is_refused(self):
        end = self.user_call("pu_funcs:whoami", "thread")
        self.assertEqual(end["t"], "error", end)
        self.assertEqual(end["error"], "permission_denied")
        self.assertEqual(end["message"],
                         "python jobs of uid %d run only on the process "
                         "executor, in worker processes started as uid %d: "
                         "this concd runs as root, and its worker threads "
                         "have root's rights" % ((self.pw.pw_uid,) * 2))
        self.assertEqual(self.user_workers(), [])

    def test_a_users_fresh_call_runs_as_the_user_in_a_new_process(self):
        warm = self.user_ok("pu_funcs:whoami")
        fresh = self.user_ok("pu_funcs:whoami", fresh=True)
        self.assertEqual(fresh[:3], warm[:3])
        self.assertNotEqual(fresh[7], warm[7])

    def test_a_users_calls_use_up_to_the_pools_size_of_workers(self):
        # two calls at once on a pool of one: the user's second worker
        # waits as the pool's would, in order
        rids = [self.uc.request("submit", task="python", exec="process",
                                watch=True,
                                args=dict(call="pu_funcs:whoami",
                                          path=[self.umods]))
                for _ in range(3)]
        pids = {self.uc.until_end(r)[-1]["result"][7] for r in rids}
        self.assertEqual(len(pids), 1)
        self.assertEqual(len(self.user_workers()), 1)

    def test_a_users_worker_killed_mid_call(self):
        pid = self.user_ok("pu_funcs:whoami")[7]
        m = self.uc.call("submit", task="python", exec="process",
                         watch=True, args=dict(call="pt_funcs:spin",
                                               path=[self.umods]))
        while True:
            e = self.uc.recv_for(m["id"])
            self.assertIsNotNone(e)
            if e["t"] == "progress":
                break
        os.kill(pid, signal.SIGKILL)
        end = self.uc.until_end(m["id"])[-1]
        self.assertEqual((end["state"], end["error"]),
                         ("failed", "worker_died"), end)
        who = self.user_ok("pu_funcs:whoami")
        self.assertEqual(who[0], self.pw.pw_uid)
        self.assertNotEqual(who[7], pid)

    def test_a_users_worker_starts_with_nothing_of_the_daemons(self):
        # concd started with a secret in its environment and a root-only
        # file open, as a shell can leave one: the strings a worker
        # starts with stay in its memory, which is the user's, and its
        # standard streams were concd's (a terminal, the log)
        tmp = tempfile.mkdtemp(prefix="concd-userworker-")
        self.addCleanup(shutil.rmtree, tmp, True)
        secret = os.path.join(tmp, "root-only")
        wrapper = os.path.join(tmp, "concd")
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\nexec 7>>"%s"\nexec "%s" "$@"\n'
                    % (secret, os.path.abspath(harness.CONCD)))
        os.chmod(wrapper, 0o755)
        d = Daemon("-p", "1", "--plugin-dir", PLUGINS, exe=wrapper,
                   env={"CONCD_ROOT_ONLY": "secret"})
        self.addCleanup(d.close)
        os.chmod(d.socket, 0o666)
        uc = UserClient(d.socket, self.pw.pw_uid)
        self.addCleanup(uc.close)
        m = uc.call("submit", task="python", exec="process", watch=True,
                    args=dict(call="pu_funcs:whoami", path=[self.umods]))
        end = uc.until_end(m["id"])[-1]
        self.assertEqual(end["state"], "succeeded", end)
        pid = end["result"][7]
        with open("/proc/%d/environ" % pid, "rb") as f:
            names = {v.split(b"=")[0] for v in f.read().split(b"\0") if v}
        self.assertNotIn(b"CONCD_ROOT_ONLY", names)
        self.assertIn(b"CONCD_INSTANCE", names)  # for a start after a crash
        fds = {int(n): os.readlink("/proc/%d/fd/%s" % (pid, n))
               for n in os.listdir("/proc/%d/fd" % pid)}
        self.assertEqual([fds.get(n) for n in (0, 1, 2)], ["/dev/null"] * 3)
        self.assertNotIn(secret, fds.values())
        self.assertTrue(fds[3].startswith("socket:"), fds)
        # root's worker: concd's standard streams, but not the file
        c = d.client()
        m = c.call("submit", task="python", exec="process", watch=True,
                   args=dict(call="os:getpid"))
        pid = c.until_end(m["id"])[-1]["result"]
        fds = [os.readlink("/proc/%d/fd/%s" % (pid, n))
               for n in os.listdir("/proc/%d/fd" % pid)]
        self.assertNotIn(secret, fds)

    def test_the_client_library_as_the_user(self):
        pkg = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "..", "..", "python")
        r = subprocess.run(
            ["setpriv", "--reuid=%d" % self.pw.pw_uid,
             "--regid=%d" % self.pw.pw_gid, "--init-groups",
             "/usr/bin/python3", "-c", AS_USER, os.path.abspath(pkg),
             self.umods],
            capture_output=True, text=True, timeout=BOUND,
            cwd=self.pw.pw_dir,
            env=dict(os.environ, CONCD_SOCKET=self.d.socket,
                     HOME=self.pw.pw_dir))
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], str(self.pw.pw_uid))
        self.assertTrue(lines[1].startswith("refused: python jobs of uid "
                                            "%d run only on the process "
                                            "executor" % self.pw.pw_uid),
                        lines)


class UserWorkersIdleTest(unittest.TestCase):
    """user-worker-idle: a user's worker leaves after that long idle."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: it creates the user " + USER)
        subprocess.run(["userdel", "-r", USER], capture_output=True)
        subprocess.run(["useradd", "--no-create-home", USER], check=True,
                       capture_output=True, timeout=BOUND)
        self.uid = pwd.getpwnam(USER).pw_uid
        self.mods = tempfile.mkdtemp(prefix="concd-pymods-")
        os.chmod(self.mods, 0o755)
        with open(os.path.join(self.mods, "pu_funcs.py"), "w") as f:
            f.write(WHOAMI)
        self.conf = os.path.join(self.mods, "concd.conf")
        with open(self.conf, "w") as f:
            f.write("processes = 1\nuser-worker-idle = 3600\n")
        self.d = Daemon("--plugin-dir", PLUGINS, "-c", self.conf)
        os.chmod(self.d.socket, 0o666)

    def tearDown(self):
        try:
            self.d.close()
        finally:
            shutil.rmtree(self.mods, ignore_errors=True)
            subprocess.run(["userdel", USER], capture_output=True)

    def user_call(self):
        r = self.d.concctl("run", "python", "call=pu_funcs:whoami",
                           "path=" + self.mods, "-x", "process",
                           user=self.uid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("[%d," % self.uid), r.stdout)

    def test_an_idle_users_worker_is_retired(self):
        c = self.d.client()
        self.user_call()
        self.assertEqual([w["state"] for w in c.call("pool")["workers"]
                          if w.get("uid") == self.uid], ["idle"])
        # reloaded: from the next time it falls idle
        with open(self.conf, "w") as f:
            f.write("processes = 2\nuser-worker-idle = 0\n")
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + BOUND
        while c.call("pool")["processes"] != 2:
            self.assertLess(time.monotonic(), deadline, "no reload")
        self.user_call()
        deadline = time.monotonic() + BOUND
        while any(w.get("uid") == self.uid
                  for w in c.call("pool")["workers"]):
            self.assertLess(time.monotonic(), deadline,
                            "the idle worker stayed")
            c.call("ping")
        # and a new call starts a new one
        self.user_call()


if __name__ == "__main__":
    harness.main()
