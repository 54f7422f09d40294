"""Dependencies between jobs (--after, --after-any, gather's @N), restart,
clean, and gathers larger than one request, against a real concd: the
states, errors, causes, messages and exit codes a user sees."""
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, DaemonTest  # noqa: E402

RESULT_LINE = re.compile(r"^(\d+) (\S+) (\w+) (.*)$")


def result_lines(stdout):
    """gather's outcome lines: (index, job, state, rest)."""
    return [RESULT_LINE.match(l).groups() for l in stdout.splitlines()
            if RESULT_LINE.match(l)]


class Base(DaemonTest):
    args = ("-p", "2")

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="concd-deps-")
        os.chmod(self.tmp, 0o755)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def ctl(self, *args, **kw):
        return self.d.concctl(*args, **kw)

    def gather(self, lines, *opts):
        return self.ctl("gather", *opts, input="".join(l + "\n"
                                                      for l in lines))


class LargeGather(Base):
    def test_more_jobs_than_one_request_holds_run_as_one_gather(self):
        n = 25000  # three requests of at most 10,000
        r = self.gather(["sleep ms=1"] * n)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = result_lines(r.stdout)
        self.assertEqual([int(x[0]) for x in rows], list(range(n)))
        self.assertEqual({x[2] for x in rows}, {"succeeded"})
        self.assertEqual(len({x[1] for x in rows}), n)  # n distinct jobs

    def test_a_gather_larger_than_a_frame_is_split(self):
        word = "x" * 2000
        n = 1500  # some 3 MB of requests, each at most 1 MiB
        r = self.gather(["exec -- echo %d%s" % (i, word) for i in range(n)])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("too large", r.stderr)
        rows = result_lines(r.stdout)
        self.assertEqual([int(x[0]) for x in rows], list(range(n)))
        self.assertEqual({x[2] for x in rows}, {"succeeded"})
        # each job's own output, behind its index
        self.assertIn("[1499] 1499" + word, r.stdout)

    def test_as_completed_covers_every_request(self):
        n = 12000
        r = self.gather(["sleep ms=1"] * n, "--as-completed")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = result_lines(r.stdout)
        self.assertEqual(sorted(int(x[0]) for x in rows), list(range(n)))

    def test_at_references_across_requests_are_resolved(self):
        out = os.path.join(self.tmp, "order")
        n = 12000
        lines = ["sleep ms=0"] * n
        # line 0 waits for line 11000, in the second request
        lines[0] = "exec --after @11000 -- sh -c 'echo a >> %s'" % out
        lines[11000] = "exec -- sh -c 'echo b >> %s'" % out
        # and line 11500 for line 5, in the first
        lines[11500] = "exec --after @5,@0 -- sh -c 'echo c >> %s'" % out
        r = self.gather(lines)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            self.assertEqual(f.read(), "b\na\nc\n")
        self.assertEqual(len(result_lines(r.stdout)), n)

    def test_a_cycle_across_requests_is_a_usage_error(self):
        lines = ["sleep ms=0"] * 12000
        lines[1] = "sleep ms=0 --after @11001"
        lines[11001] = "sleep ms=0 --after @1"
        r = self.gather(lines)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("cycle", r.stderr)
        self.assertEqual(self.ctl("ps", "-a", "--json").stdout.count(
            '"job"'), 0)

    def test_fail_fast_reaches_every_request(self):
        n = 12000
        lines = ["exec -- false"] + ["sleep ms=20000"] * (n - 1)
        start = time.monotonic()
        r = self.gather(lines, "--fail-fast")
        self.assertLess(time.monotonic() - start, 15)
        self.assertEqual(r.returncode, 1, r.stderr)
        rows = result_lines(r.stdout)
        self.assertEqual(len(rows), n)
        self.assertEqual(rows[0][2], "failed")
        self.assertEqual({x[2] for x in rows[1:]}, {"cancelled"})

    def test_a_reference_to_no_line_is_a_usage_error(self):
        r = self.gather(["sleep ms=0", "sleep ms=0 --after @2"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("line 2 (index 1): --after @2: there is no such line "
                      "(@0 to @1)", r.stderr)


if __name__ == "__main__":
    harness.main()
