"""ConcdExecutor.map in chunks (python/concd/futures.py): each job of the
`python` task makes chunksize calls, as ProcessPoolExecutor's do, so that
a call costs little more than the function; against a real concd with
the python task (CONCD_PYTHON_PLUGINS), skipped without it."""
import concurrent.futures as cf
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import harness  # noqa: E402
from harness import BOUND, DaemonTest  # noqa: E402

import concd  # noqa: E402
from concd.futures import ConcdExecutor  # noqa: E402
import pyclient_funcs  # noqa: E402


class MapTest(DaemonTest):
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

    def jobs(self):
        return self.c.ps(all=True, task="python", limit=1)["total"]

    def test_chunksize_calls_make_one_job(self):
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

    def test_a_timeout_raises_and_cancels_the_jobs_left(self):
        it = self.ex.map(pyclient_funcs.slow, [10 ** 9] * 4, chunksize=2,
                         timeout=0.2)
        with self.assertRaises(cf.TimeoutError):
            next(it)
        # the chunks were cancelled: their calls saw cancelled() and ended
        self.ex.shutdown(wait=True)
        self.assertEqual(self.c.ps(state="running")["jobs"], [])


if __name__ == "__main__":
    harness.main()
