"""Dependencies between jobs (--after, --after-any, gather's @N), restart,
clean, and gathers larger than one request, against a real concd: the
states, errors, causes, messages and exit codes a user sees."""
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import VALGRIND, DaemonTest  # noqa: E402

GREET = os.path.join(os.environ.get("CONCD_PLUGINS", ""), "greet.so")
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

    @unittest.skipIf(VALGRIND, "some ten thousand commands: too slow under "
                     "valgrind")
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


class After(Base):
    def submit(self, *args):
        r = self.ctl("submit", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return int(r.stdout)

    def gated(self, *opts):
        """A job held running until its gate is released."""
        g = self.d.gate()
        return g, self.submit(*opts, "exec", "--", *g.argv)

    def status(self, job):
        return self.d.client().call("status", job=job)

    def test_a_job_waits_for_the_success_of_the_jobs_it_names(self):
        c = self.d.client()
        g, a = self.gated()
        c.wait_state(a, "running")
        b = self.submit("--after", a, "sleep", "ms=0")
        self.assertEqual(self.status(b)["state"], "queued")
        self.assertEqual(self.status(b)["after"], [a])
        g.release()
        st = c.wait_state(b, "succeeded")
        self.assertGreaterEqual(st["started"], self.status(a)["finished"])

    def test_a_job_waits_for_all_it_names(self):
        c = self.d.client()
        g1, a1 = self.gated()
        g2, a2 = self.gated()
        b = self.submit("--after", "%d,%d" % (a1, a2), "sleep", "ms=0")
        g1.release()
        c.wait_state(a1, "succeeded")
        self.assertEqual(self.status(b)["state"], "queued")
        g2.release()
        c.wait_state(b, "succeeded")

    def test_a_failure_ends_the_whole_chain_at_once(self):
        c = self.d.client()
        g, a = self.gated()
        chain = [a]
        for _ in range(5):
            chain.append(self.submit("--after", chain[-1], "sleep", "ms=0"))
        self.assertEqual(self.ctl("cancel", a).returncode, 0)
        for job in chain[1:]:
            st = c.wait_state(job, "failed")
            self.assertEqual(st["error"], "dependency_failed")
            self.assertEqual(st["cause"], a)
            self.assertRegex(st["message"],
                             r"^job %d(, which it runs after,)? was "
                             r"cancelled" % a)
        self.assertEqual(self.status(chain[1])["message"],
                         "job %d, which it runs after, was cancelled" % a)
        self.assertEqual(
            self.status(chain[3])["message"],
            "job %d was cancelled, and job %d, which it runs after, "
            "failed with it" % (a, chain[2]))
        out = self.ctl("status", chain[2]).stdout
        self.assertIn("\nafter      %d (their success)\n" % chain[1], out)
        self.assertIn("\ncause      job %d failed first\n" % a, out)
        r = self.ctl("wait", chain[-1])
        self.assertEqual(r.returncode, 1)
        self.assertIn("job %d failed: job %d was cancelled" % (chain[-1], a),
                      r.stderr)

    def test_a_failed_or_timed_out_dependency_fails_its_dependents(self):
        c = self.d.client()
        a = self.submit("exec", "--", "false")
        b = self.submit("--after", a, "sleep", "ms=0")
        st = c.wait_state(b, "failed")
        self.assertEqual((st["error"], st["cause"]),
                         ("dependency_failed", a))
        self.assertIn("job %d, which it runs after, failed" % a,
                      st["message"])
        t = self.submit("--timeout", "0.05", "sleep", "ms=20000")
        u = self.submit("--after", t, "sleep", "ms=0")
        st = c.wait_state(u, "failed")
        self.assertIn("job %d, which it runs after, timed out" % t,
                      st["message"])

    def test_a_dependent_of_a_failed_job_is_not_retried(self):
        c = self.d.client()
        a = self.submit("exec", "--", "false")
        b = self.submit("--after", a, "--retries", "3", "sleep", "ms=0")
        st = c.wait_state(b, "failed")
        self.assertEqual(st["error"], "dependency_failed")
        self.assertEqual(st["attempt"], 1)  # the first was the last

    def test_after_any_runs_whatever_the_end(self):
        c = self.d.client()
        a = self.submit("exec", "--", "false")
        b = self.submit("--after-any", a, "exec", "--", "true")
        c.wait_state(b, "succeeded")
        self.assertTrue(self.status(b)["after_any"])
        # and a chain behind it is not failed by a's failure
        g, x = self.gated()
        y = self.submit("--after-any", x, "sleep", "ms=0")
        self.ctl("cancel", x)
        c.wait_state(y, "succeeded")

    def test_after_and_after_any_do_not_mix(self):
        r = self.ctl("submit", "--after", "1", "--after-any", "2",
                     "sleep", "ms=0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--after and --after-any do not mix", r.stderr)

    def test_an_unknown_job_is_refused_at_submit(self):
        r = self.ctl("submit", "--after", "424242", "sleep", "ms=0")
        self.assertEqual(r.returncode, 4)
        self.assertIn("bad_field: after: no such job: 424242", r.stderr)
        self.assertEqual(self.ctl("ps", "-a", "-q").stdout.count("sleep"),
                         0)

    def test_at_n_outside_a_gather_is_a_usage_error(self):
        r = self.ctl("submit", "--after", "@0", "sleep", "ms=0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("@N names a line of a gather", r.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to be another user")
    def test_another_users_job_is_as_good_as_unknown(self):
        os.chmod(self.d.socket, 0o666)
        r = self.d.concctl("submit", "sleep", "ms=0", user=65534)
        self.assertEqual(r.returncode, 0, r.stderr)
        theirs = int(r.stdout)
        mine = self.submit("sleep", "ms=0")
        r = self.d.concctl("submit", "--after", mine, "sleep", "ms=0",
                           user=65534)
        self.assertEqual(r.returncode, 4)
        self.assertIn("after: no such job: %d" % mine, r.stderr)
        # root, an admin, may name anyone's
        self.submit("--after", theirs, "sleep", "ms=0")

    def test_a_job_that_ended_already_counts_as_it_ended(self):
        c = self.d.client()
        a = self.submit("sleep", "ms=0")
        c.wait_state(a, "succeeded")
        b = self.submit("--after", a, "sleep", "ms=0")
        c.wait_state(b, "succeeded")
        f = self.submit("exec", "--", "false")
        c.wait_state(f, "failed")
        g = self.submit("--after", f, "sleep", "ms=0")
        st = c.wait_state(g, "failed")
        self.assertEqual((st["error"], st["cause"]), ("dependency_failed", f))

    def test_a_job_waiting_for_others_can_be_cancelled(self):
        c = self.d.client()
        g, a = self.gated()
        b = self.submit("--after", a, "sleep", "ms=0")
        d = self.submit("--after", b, "sleep", "ms=0")
        r = self.ctl("cancel", b)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(c.wait_state(b, "cancelled")["error"], "cancelled")
        self.assertEqual(c.wait_state(d, "failed")["cause"], b)
        g.release()
        c.wait_state(a, "succeeded")

    def test_a_workflow_in_one_gather(self):
        out = os.path.join(self.tmp, "flow")
        step = "exec %%s -- sh -c 'echo %%s >> %s'" % out
        r = self.gather([step % ("--after @3", "d"),
                         step % ("", "a"),
                         step % ("--after @1", "b"),
                         step % ("--after @0,@2", "e"),
                         ][:0] + [
            step % ("", "a"),
            step % ("--after @0", "b"),
            step % ("--after @0", "c"),
            step % ("--after @1,@2", "d"),
            step % ("--after @5", "f"),   # forward: line 5 runs first
            step % ("--after @3", "e"),
        ])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            got = f.read().split()
        self.assertEqual(got[0], "a")
        self.assertEqual(sorted(got[1:3]), ["b", "c"])
        self.assertEqual(got[3:], ["d", "e", "f"])
        rows = result_lines(r.stdout)
        self.assertEqual(self.status(int(rows[4][1]))["after"],
                         [int(rows[5][1])])

    def test_a_cycle_in_a_gather_is_refused(self):
        r = self.gather(["sleep ms=0", "sleep ms=0 --after @3",
                         "sleep ms=0 --after @1", "sleep ms=0 --after @2"])
        self.assertEqual(r.returncode, 4)
        self.assertIn("bad_field: after: a cycle: @1 waits for @3 waits for "
                      "@2 waits for @1", r.stderr)
        r = self.gather(["sleep ms=0 --after @0"])
        self.assertEqual(r.returncode, 4)
        self.assertIn("a cycle: @0 waits for @0", r.stderr)
        self.assertEqual(self.ctl("ps", "-a", "-q").stdout.count("sleep"),
                         0)

    def test_a_failure_in_a_gather_names_the_first_failed_job(self):
        r = self.gather(["exec -- false", "sleep ms=0 --after @0",
                         "sleep ms=0 --after @1", "sleep ms=0 --after-any @2"])
        self.assertEqual(r.returncode, 1)
        rows = result_lines(r.stdout)
        self.assertEqual([x[2] for x in rows],
                         ["failed", "failed", "failed", "succeeded"])
        self.assertIn("job %s, which it runs after, failed" % rows[0][1],
                      rows[1][3])
        self.assertEqual(self.status(int(rows[2][1]))["cause"],
                         int(rows[0][1]))


class AfterStored(unittest.TestCase):
    """Jobs that only the store remembers: finished before a restart."""

    def daemon(self, state_dir):
        d = harness.Daemon("-p", "1", "--state-dir", state_dir)
        self.addCleanup(d.close)
        return d

    def setUp(self):
        top = tempfile.mkdtemp(prefix="concd-deps-state-")
        self.addCleanup(shutil.rmtree, top, ignore_errors=True)
        self.state = os.path.join(top, "state")

    def submit(self, d, *args):
        r = d.concctl("submit", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return int(r.stdout)

    def test_a_dependency_only_the_store_has_is_resolved_from_it(self):
        d = self.daemon(self.state)
        c = d.client()
        f = self.submit(d, "exec", "--", "false")
        ok = self.submit(d, "sleep", "ms=0")
        a = self.submit(d, "exec", "--", "false")
        b = self.submit(d, "--after", a, "sleep", "ms=0")
        c.wait_state(b, "failed")
        c.wait_state(ok, "succeeded")
        self.assertEqual(d.stop(), 0)
        d = self.daemon(self.state)
        c = d.client()
        self.assertEqual(c.call("ps")["total"], 0)  # nothing in memory
        x = self.submit(d, "--after", ok, "sleep", "ms=0")
        c.wait_state(x, "succeeded")
        y = self.submit(d, "--after", f, "sleep", "ms=0")
        st = c.wait_state(y, "failed")
        self.assertEqual((st["error"], st["cause"]), ("dependency_failed", f))
        # a job failed by its dependency hands on the first failure
        z = self.submit(d, "--after", b, "sleep", "ms=0")
        self.assertEqual(c.wait_state(z, "failed")["cause"], a)
        self.assertEqual(
            d.concctl("submit", "--after", 99999, "sleep", "ms=0").returncode,
            4)
        # and a restart of a job only the store has
        r = d.concctl("restart", ok)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = c.wait_state(int(r.stdout), "succeeded")
        self.assertEqual((st["restart_of"], st["task"]), (ok, "sleep"))

    def test_a_chain_waiting_at_a_restart_still_ends(self):
        d = self.daemon(self.state)
        c = d.client()
        g = d.gate()
        a = self.submit(d, "exec", "--", *g.argv)
        c.wait_state(a, "running")
        b = self.submit(d, "--after", a, "sleep", "ms=0")
        e = self.submit(d, "--after", b, "sleep", "ms=0")
        self.assertEqual(c.call("status", job=e)["state"], "queued")
        self.assertEqual(d.stop(signal.SIGKILL), -signal.SIGKILL)
        d.expect_exit(-signal.SIGKILL)
        d = self.daemon(self.state)
        c = d.client()
        # a was cut off (interrupted): its chain fails, nothing waits on
        self.assertEqual(c.wait_state(a, "failed")["error"], "interrupted")
        st = c.wait_state(e, "failed")
        self.assertEqual((st["error"], st["cause"]), ("dependency_failed", a))
        self.assertEqual(c.call("ps")["total"], 0)

    def test_a_job_waiting_for_a_later_id_at_a_restart(self):
        """A gather's line that waits for a later line: at the restart
        the waiting job comes back before the job it waits for."""
        d = self.daemon(self.state)
        c = d.client()
        g = d.gate()
        r = d.client()
        rid = r.request("gather", jobs=[
            dict(task="sleep", args={"ms": 0}, after=["@1"]),
            dict(task="exec", args={"argv": g.argv}),
            dict(task="sleep", args={"ms": 0}, after=["@1"])])
        ids = r.recv_for(rid)["jobs"]
        c.wait_state(ids[1], "running")
        self.assertEqual(d.stop(signal.SIGKILL), -signal.SIGKILL)
        d.expect_exit(-signal.SIGKILL)
        d = self.daemon(self.state)
        c = d.client()
        for job in (ids[0], ids[2]):
            st = c.wait_state(job, "failed")
            self.assertEqual((st["error"], st["cause"]),
                             ("dependency_failed", ids[1]))

    @unittest.skipUnless(os.path.exists(GREET),
                         "the greet plugin is not built (CONCD_PLUGINS)")
    def test_a_job_waited_for_whose_task_is_gone_at_a_restart(self):
        """The job waited for cannot come back (its plugin is gone): the
        store's word on it ends the job waiting for it."""
        plugins = tempfile.mkdtemp(prefix="concd-deps-plugins-")
        self.addCleanup(shutil.rmtree, plugins, ignore_errors=True)
        shutil.copy(GREET, plugins)
        d = harness.Daemon("-p", "1", "--state-dir", self.state,
                           "--plugin-dir", plugins)
        self.addCleanup(d.close)
        c = d.client()
        rid = c.request("gather", jobs=[
            dict(task="sleep", args={"ms": 0}, after=["@1"]),
            dict(task="greet", args={"name": "x", "ms": 60000})])
        ids = c.recv_for(rid)["jobs"]
        c.wait_state(ids[1], "running")
        self.assertEqual(d.stop(signal.SIGKILL), -signal.SIGKILL)
        d.expect_exit(-signal.SIGKILL)
        d = self.daemon(self.state)
        c = d.client()
        st = c.wait_state(ids[0], "failed")
        self.assertEqual((st["error"], st["cause"]),
                         ("dependency_failed", ids[1]))
        self.assertIn("job %d, which it runs after, failed" % ids[1],
                      st["message"])


class Restart(Base):
    def test_a_finished_job_runs_again_as_a_new_linked_job(self):
        c = self.d.client()
        out = os.path.join(self.tmp, "runs")
        r = self.ctl("run", "--retries", "1", "exec", "--", "sh", "-c",
                     "echo ran >> %s; exit 3" % out)
        self.assertNotEqual(r.returncode, 0)
        old = c.call("ps", all=True)["jobs"][-1]["job"]
        r = self.ctl("restart", old)
        self.assertEqual(r.returncode, 0, r.stderr)
        new = int(r.stdout)
        self.assertNotEqual(new, old)
        st = c.wait_state(new, "failed")
        self.assertEqual(st["restart_of"], old)
        self.assertIn("\nrestart of %d\n" % old,
                      self.ctl("status", new).stdout)
        self.assertEqual(st["retries"], 1)
        self.assertEqual(st["task"], "exec")
        with open(out) as f:
            self.assertEqual(f.read(), "ran\n" * 4)  # 2 attempts, twice
        self.assertNotIn("restart_of", c.call("status", job=old))

    def test_a_job_failed_by_its_dependency_restarts_without_it(self):
        c = self.d.client()
        a = int(self.ctl("submit", "exec", "--", "false").stdout)
        b = int(self.ctl("submit", "--after", a, "sleep", "ms=0").stdout)
        c.wait_state(b, "failed")
        new = int(self.ctl("restart", b).stdout)
        st = c.wait_state(new, "succeeded")
        self.assertNotIn("after", st)
        self.assertNotIn("cause", st)

    def test_an_unfinished_or_unknown_job_is_not_restarted(self):
        c = self.d.client()
        g = self.d.gate()
        a = int(self.ctl("submit", "exec", "--", *g.argv).stdout)
        c.wait_state(a, "running")
        r = self.ctl("restart", a)
        self.assertEqual(r.returncode, 4)
        self.assertIn("not_finished: job %d is running" % a, r.stderr)
        r = self.ctl("restart", 777777)
        self.assertEqual(r.returncode, 4)
        self.assertIn("no_such_job: no such job: 777777", r.stderr)


class Clean(Base):
    def ids(self):
        return {j["job"] for j in self.d.client().call(
            "ps", all=True)["jobs"]}

    def test_clean_forgets_finished_jobs_and_their_logs(self):
        c = self.d.client()
        ok = int(self.ctl("submit", "exec", "--", "echo", "kept").stdout)
        bad = int(self.ctl("submit", "exec", "--", "false").stdout)
        c.wait_state(ok, "succeeded")
        c.wait_state(bad, "failed")
        g = self.d.gate()
        live = int(self.ctl("submit", "exec", "--", *g.argv).stdout)
        c.wait_state(live, "running")
        r = self.ctl("clean", "--state", "failed")
        self.assertEqual((r.returncode, r.stdout),
                         (0, "1 finished jobs forgotten\n"), r.stderr)
        self.assertEqual(self.ids(), {ok, live})
        self.assertEqual(c.call("status", job=bad)["error"], "no_such_job")
        self.assertEqual(self.ctl("log", ok).stdout, "kept\n")
        r = self.ctl("clean")
        self.assertEqual(r.stdout, "1 finished jobs forgotten\n")
        self.assertEqual(self.ids(), {live})
        r = self.ctl("log", ok)
        self.assertEqual(r.returncode, 4)
        self.assertIn("no such job", r.stderr)
        # a forgotten job can no longer be named
        r = self.ctl("submit", "--after", ok, "sleep", "ms=0")
        self.assertEqual(r.returncode, 4)

    def test_clean_before_keeps_what_finished_later(self):
        c = self.d.client()
        a = int(self.ctl("submit", "sleep", "ms=0").stdout)
        c.wait_state(a, "succeeded")
        mid = c.call("status", job=a)["finished"] + 1
        b = int(self.ctl("submit", "sleep", "ms=0").stdout)
        c.wait_state(b, "succeeded")
        m = c.call("clean", before=mid)
        self.assertEqual(m["t"], "ok")
        self.assertEqual(m["forgotten"], 1)
        self.assertEqual(self.ids(), {b})

    def test_clean_of_a_state_that_is_not_final_is_refused(self):
        m = self.d.client().call("clean", state="queued")
        self.assertEqual(m["error"], "bad_field")
        self.assertIn("state must be succeeded, failed, cancelled or "
                      "timed_out", m["message"])

    @unittest.skipUnless(os.geteuid() == 0, "needs root to be another user")
    def test_a_user_cleans_only_their_own_jobs(self):
        os.chmod(self.d.socket, 0o666)
        c = self.d.client()
        mine = int(self.ctl("submit", "sleep", "ms=0").stdout)
        r = self.d.concctl("submit", "sleep", "ms=0", user=65534)
        theirs = int(r.stdout)
        c.wait_state(mine, "succeeded")
        c.wait_state(theirs, "succeeded")
        r = self.d.concctl("clean", user=65534)
        self.assertEqual(r.stdout, "1 finished jobs forgotten\n", r.stderr)
        self.assertEqual(self.ids(), {mine})
        r = self.d.concctl("clean", "-u", "0", user=65534)
        self.assertEqual(r.returncode, 4)
        self.assertIn("permission_denied", r.stderr)


if __name__ == "__main__":
    harness.main()
