"""The python task: module:function on warm thread and process workers,
with msgpack arguments and results, tracebacks, progress, cancel, timeout,
imports kept warm, and a root concd's refusal of other users' calls.

The functions live in a module directory the test writes and sends as
`path`, as a client sends the caller's sys.path.
"""
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BOUND, CONCTL, Daemon  # noqa: E402

PLUGINS = os.environ.get("CONCD_PYTHON_PLUGINS", "")
EXECUTORS = ("thread", "process")
USER = "concd-pyuser"  # made and removed by the refusal test

FUNCS = '''
import os
import time

import _concd_task


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


def cwd():
    return os.getcwd()


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

    def maps_libpython(self, pid):
        with open("/proc/%d/maps" % pid) as f:
            return "libpython3" in f.read()

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

    def wait_running(self, rid):
        """The job's first progress event: the function runs."""
        while True:
            m = self.c.recv_for(rid)
            self.assertIsNotNone(m)
            self.assertNotIn(m["t"], ("end", "error"), m)
            if m["t"] == "progress":
                return m["job"]

    def test_cancel_interrupts_a_running_call_and_the_worker_serves_on(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                before = self.ok("pt_funcs:pid", x)
                rid = self.submit("pt_funcs:spin", x)
                job = self.wait_running(rid)
                t0 = time.monotonic()
                self.c.request("cancel", job=job)
                end = self.c.until_end(rid)[-1]
                self.assertEqual(end["state"], "cancelled", end)
                # an exception at the next bytecode, not the 5 s grace
                # and kill of a worker process
                self.assertLess(time.monotonic() - t0, 4.0)
                self.assertEqual(self.ok("pt_funcs:pid", x), before)

    def test_a_call_sees_cancelled_and_may_end_by_itself(self):
        rid = self.submit("pt_funcs:polite", "thread")
        job = self.wait_running(rid)
        self.c.request("cancel", job=job)
        self.assertEqual(self.c.until_end(rid)[-1]["state"], "cancelled")

    def test_a_timeout_interrupts_a_running_call(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                t0 = time.monotonic()
                end = self.run_call("pt_funcs:spin", x, timeout=200)
                self.assertEqual(end["state"], "timed_out", end)
                self.assertLess(time.monotonic() - t0, 4.0)

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

    def test_another_users_calls_are_refused_on_a_root_concd(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: it creates the user " + USER)
        if shutil.which("useradd") is None:
            self.skipTest("useradd is not installed")
        subprocess.run(["userdel", USER], capture_output=True)
        subprocess.run(["useradd", "--no-create-home", USER], check=True,
                       capture_output=True, timeout=BOUND)
        try:
            os.chmod(self.d.socket, 0o666)
            u = pwd.getpwnam(USER).pw_uid
            r = self.d.concctl("run", "python", "call=pt_funcs:pid",
                               "path=" + self.mods, user=u)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("python jobs of uid %d are refused: this concd "
                          "runs as root" % u, r.stderr)
            self.assertIn("per-user workers are not there yet", r.stderr)
            # root's own calls run
            self.ok("pt_funcs:pid", "process")
        finally:
            subprocess.run(["userdel", USER], capture_output=True)


if __name__ == "__main__":
    harness.main()
