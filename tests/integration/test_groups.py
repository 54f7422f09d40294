"""The queue's groups (concd(8) QUEUE, concctl(1) group): every job waits
in a group for its CPU slots, `default` holding as many as the machine has
CPUs; groups are added, changed, paused, resumed and removed by their
creator or an admin; queued jobs are held and released, cancelled while
they wait, and `wait --group` answers once a group is idle.

Commands are held running by gates (a fifo each) that the test opens:
nothing here waits for a duration."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BOUND, DaemonTest  # noqa: E402

NCPU = os.sysconf("SC_NPROCESSORS_ONLN")
# uids without accounts: group requests need none
ALICE, BOB = 54321, 54322


class Groups(DaemonTest):
    args = ("-p", "1")

    def client(self):
        c = self.d.client()
        self.addCleanup(c.close)
        return c

    def submit(self, c, argv=None, **fields):
        """A job's id: an exec job of argv, or a no-op sleep."""
        if argv is None:
            m = c.call("submit", task="sleep", args={"ms": 0}, **fields)
        else:
            m = c.call("submit", task="exec", args={"argv": argv},
                       **fields)
        self.assertEqual(m["t"], "accepted", m)
        return m["job"]

    def groups(self, c):
        m = c.call("group", op="list")
        self.assertEqual(m["t"], "grouplist", m)
        return {g["name"]: g for g in m["groups"]}

    def no_reply_yet(self, c, rid):
        """Nothing for request rid has come before the answer to a ping
        sent after it: the daemon has not answered it, for now."""
        c.call("ping")
        self.assertEqual([m for m in c.pending if m.get("id") == rid], [])

    def assert_error(self, m, code, text):
        self.assertEqual((m["t"], m["error"]), ("error", code), m)
        self.assertIn(text, m["message"])

    def fill_default(self, c):
        """As many gated exec jobs as the default group has slots, all
        running: (gates, jobs)."""
        gates = [self.d.gate() for _ in range(NCPU)]
        jobs = [self.submit(c, g.argv) for g in gates]
        for j in jobs:
            c.wait_state(j, "running")
        return gates, jobs

    # ---- the default group and its slots ----

    def test_the_default_group_has_a_slot_per_cpu_and_no_owner(self):
        g = self.groups(self.client())["default"]
        self.assertEqual((g["parallel"], g["paused"], g["uid"], g["cpus"]),
                         (NCPU, False, 0, 0))
        self.assertEqual(g["counts"], {"queued": 0, "running": 0})

    def test_exec_commands_beyond_the_cpus_wait_their_turn_in_order(self):
        c = self.client()
        gates = [self.d.gate() for _ in range(NCPU + 3)]
        jobs = [self.submit(c, g.argv) for g in gates]
        for j in jobs[:NCPU]:
            c.wait_state(j, "running")
        for k, j in enumerate(jobs[NCPU:]):
            st = c.call("status", job=j)
            self.assertEqual((st["state"], st["ahead"]), ("queued", k), st)
        g = self.groups(c)["default"]
        self.assertEqual((g["cpus"], g["counts"]),
                         (NCPU, {"queued": 3, "running": NCPU}))
        # ps says how many are ahead of each queued job, as status does
        rows = {r["job"]: r for r in c.call("ps")["jobs"]}
        self.assertEqual([rows[j].get("ahead") for j in jobs],
                         [None] * NCPU + [0, 1, 2])
        # one ends: the oldest queued job, and only it, takes its slot
        gates[0].release()
        self.assertEqual(c.wait_state(jobs[0], "succeeded")["state"],
                         "succeeded")
        c.wait_state(jobs[NCPU], "running")
        for k, j in enumerate(jobs[NCPU + 1:]):
            st = c.call("status", job=j)
            self.assertEqual((st["state"], st["ahead"]), ("queued", k), st)
        for g in gates:
            g.release()
        for j in jobs:
            c.wait_state(j, "succeeded")
        g = self.groups(c)["default"]
        self.assertEqual((g["cpus"], g["counts"]),
                         (0, {"queued": 0, "running": 0}))

    def test_six_commands_on_two_cpus_never_run_more_than_two_at_once(self):
        # through concctl, as a user would; each command notes its start
        # and waits at its gate, and only one gate opens at a time
        c = self.client()
        n = NCPU + 4
        gates = [self.d.gate() for _ in range(n)]
        jobs = []
        for g in gates:
            r = self.d.concctl("submit", "exec", "--", *g.argv)
            self.assertEqual(r.returncode, 0, r.stderr)
            jobs.append(int(r.stdout))
        for k in range(n):
            states = [c.call("status", job=j)["state"] for j in jobs]
            running = [j for j, s in zip(jobs, states) if s == "running"]
            self.assertLessEqual(len(running), NCPU, states)
            c.wait_state(jobs[k], "running")
            gates[k].release()
            c.wait_state(jobs[k], "succeeded")

    def test_tasks_that_run_inside_concd_take_no_slot(self):
        c = self.client()
        self.fill_default(c)
        # a no-op loop job runs at once although every slot is taken
        rid = c.request("submit", task="sleep", args={"ms": 0}, watch=True)
        self.assertEqual(c.until_end(rid)[-1]["state"], "succeeded")

    def test_a_queued_job_is_cancelled_where_it_waits(self):
        c = self.client()
        self.fill_default(c)
        gate = self.d.gate()
        a, b, d = (self.submit(c, gate.argv) for _ in range(3))
        self.assertEqual(c.call("status", job=d)["ahead"], 2)
        m = c.call("cancel", job=b)
        self.assertEqual((m["t"], m["state"]), ("ok", "cancelled"), m)
        st = c.call("status", job=b)
        self.assertEqual((st["state"], st["error"]),
                         ("cancelled", "cancelled"))
        self.assertEqual(c.call("status", job=d)["ahead"], 1)
        self.assertEqual(self.groups(c)["default"]["counts"],
                         {"queued": 2, "running": NCPU})

    # ---- holds ----

    def test_a_held_job_keeps_waiting_until_it_is_released(self):
        c = self.client()
        gates, _ = self.fill_default(c)
        gate = self.d.gate()
        a, b = self.submit(c, gate.argv), self.submit(c, gate.argv)
        m = c.call("hold", job=a)
        self.assertEqual((m["t"], m["job"], m["held"]), ("ok", a, True), m)
        # b moves up; a is queued, held, with no place in line
        self.assertEqual(c.call("status", job=b)["ahead"], 0)
        st = c.call("status", job=a)
        self.assertEqual(st["state"], "queued")
        self.assertNotIn("ahead", st)
        # a slot comes free: b takes it, not a
        gates[0].release()
        c.wait_state(b, "running")
        self.assertEqual(c.call("status", job=a)["state"], "queued")
        m = c.call("release", job=a)
        self.assertEqual((m["t"], m["held"]), ("ok", False), m)
        self.assertEqual(c.call("status", job=a)["ahead"], 0)
        for g in gates + [gate]:
            g.release()
        c.wait_state(a, "succeeded")
        c.wait_state(b, "succeeded")

    def test_only_a_queued_job_can_be_held(self):
        c = self.client()
        gates, jobs = self.fill_default(c)
        self.assert_error(c.call("hold", job=jobs[0]), "bad_field",
                          "job %d is running: only a queued job can be held"
                          % jobs[0])
        gates[0].release()
        c.wait_state(jobs[0], "succeeded")
        self.assert_error(c.call("release", job=jobs[0]), "bad_field",
                          "job %d has already ended (succeeded): only a "
                          "queued job can be released" % jobs[0])
        r = self.d.concctl("pause", jobs[0])
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (4, "", "concctl: bad_field: job %d has already "
                          "ended (succeeded): only a queued job can be "
                          "held\n" % jobs[0]))
        self.assert_error(c.call("hold", job=999999), "no_such_job",
                          "999999")

    def test_concctl_pause_and_resume_hold_and_release_jobs(self):
        c = self.client()
        self.fill_default(c)
        gate = self.d.gate()
        j = self.submit(c, gate.argv)
        r = self.d.concctl("pause", j)
        self.assertEqual((r.returncode, r.stdout), (0, "job %d: held\n" % j),
                         r.stderr)
        r = self.d.concctl("status", j)
        self.assertRegex(r.stdout, r"held +yes")
        r = self.d.concctl("resume", j)
        self.assertEqual((r.returncode, r.stdout),
                         (0, "job %d: released\n" % j), r.stderr)
        r = self.d.concctl("status", j)
        self.assertRegex(r.stdout, r"ahead +0 jobs")
        self.assertNotRegex(r.stdout, r"held")
        r = self.d.concctl("pause", j, 999999)
        self.assertEqual(r.returncode, 4)
        self.assertIn("no such job", r.stderr)

    # ---- pausing a group ----

    def test_a_paused_group_starts_nothing_until_resumed(self):
        c = self.client()
        m = c.call("group", op="pause", name="default")
        self.assertEqual((m["t"], m["paused"]), ("ok", True), m)
        j = self.submit(c, ["true"])
        s = self.submit(c)  # even a job that takes no slot waits
        self.assertEqual(c.call("status", job=j)["state"], "queued")
        self.assertEqual(c.call("status", job=s)["ahead"], 1)
        m = c.call("group", op="resume", name="default")
        self.assertEqual((m["t"], m["paused"]), ("ok", False), m)
        c.wait_state(j, "succeeded")
        c.wait_state(s, "succeeded")

    # ---- adding, changing and removing groups ----

    def test_groups_are_added_set_listed_and_removed(self):
        c = self.client()
        m = c.call("group", op="add", name="gpu", parallel=1)
        self.assertEqual((m["t"], m["name"], m["parallel"], m["paused"]),
                         ("ok", "gpu", 1, False), m)
        self.assert_error(c.call("group", op="add", name="gpu"),
                          "bad_field", "group gpu exists already")
        m = c.call("group", op="set", name="gpu", parallel=4)
        self.assertEqual(m["parallel"], 4)
        self.assertEqual(sorted(self.groups(c)), ["default", "gpu"])
        one = c.call("group", op="list", name="gpu")["groups"]
        self.assertEqual([g["name"] for g in one], ["gpu"])
        m = c.call("group", op="remove", name="gpu")
        self.assertEqual((m["t"], m["name"]), ("ok", "gpu"), m)
        self.assertEqual(sorted(self.groups(c)), ["default"])
        self.assert_error(c.call("group", op="set", name="gpu", parallel=1),
                          "no_such_group", 'no such group "gpu"')

    def test_bad_group_requests_are_refused_with_reasons(self):
        c = self.client()
        self.assert_error(c.call("group", op="frob"), "bad_field",
                          'unknown op "frob" (list, add, set, pause, '
                          'resume, remove)')
        self.assert_error(c.call("group", op="add"), "bad_field",
                          'group add needs the group\'s "name"')
        for bad in ("a b", "-x", ".x", "x" * 65, "g/h", "", "caf\u00e9"):
            m = c.call("group", op="add", name=bad)
            self.assertEqual((m["t"], m["error"]), ("error", "bad_field"),
                             (bad, m))
            if len(bad) <= 64:  # longer ones, the decoder refuses
                self.assertIn("invalid group name", m["message"])
        # the message states the rule the name broke: '.' may not lead
        self.assert_error(c.call("group", op="add", name=".bad"),
                          "bad_field",
                          'invalid group name ".bad": 1 to 64 letters, '
                          "digits, '.', '_' or '-', not starting with '-' "
                          "or '.'")
        self.assertEqual(sorted(self.groups(c)), ["default"])
        self.assert_error(c.call("group", op="remove", name="default"),
                          "permission_denied",
                          "group default cannot be removed")
        self.assert_error(c.call("wait", group="nope"), "no_such_group",
                          'no such group "nope"')

    def test_parallel_over_1000000_is_refused_as_in_concd_conf(self):
        """concd.conf(5)'s range, 0 to 1000000, at run time too: concd
        refuses more (bad_field) and makes or changes no group, and
        concctl refuses it before connecting (exit 2).  A group's pids
        is held to 4194304 the same way."""
        c = self.client()
        for op, name in (("add", "g3"), ("set", "default")):
            for n in (1000001, 2 ** 64 - 1):
                self.assert_error(
                    c.call("group", op=op, name=name, parallel=n),
                    "bad_field",
                    "parallel must be from 0 to 1000000, not %d" % n)
            self.assert_error(
                c.call("group", op=op, name=name, pids=4194305),
                "bad_field", "pids must be from 0 to 4194304, not 4194305")
        self.assertEqual(sorted(self.groups(c)), ["default"])
        self.assertEqual(self.groups(c)["default"]["parallel"], NCPU)
        for args in (("add", "g3"), ("set", "default")):
            for n in ("1000001", "18446744073709551615"):
                r = self.d.concctl("group", *args, "--parallel", n)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stderr.splitlines()[0],
                                 "concctl: group %s: --parallel must be "
                                 "from 0 to 1000000: %s" % (args[0], n))
        self.assertEqual(sorted(self.groups(c)), ["default"])
        r = self.d.concctl("group", "add", "g3", "--parallel", "1000000")
        self.assertEqual(r.stdout,
                         "group g3: added (parallel 1000000, active)\n")

    def test_a_name_over_64_bytes_is_refused_never_cut(self):
        """A name one byte too long is refused, and never taken for the
        name it starts with: the group of 64 a's stays."""
        c = self.client()
        g64 = "a" * 64
        self.assertEqual(c.call("group", op="add", name=g64)["t"], "ok")
        too_long = 'field "%s" must be a string (within its size limit)'
        for op in ("remove", "set", "pause", "list", "add"):
            self.assert_error(c.call("group", op=op, name=g64 + "-other",
                                     parallel=1),
                              "bad_field", too_long % "name")
        self.assert_error(c.call("wait", group=g64 + "ZZZ"), "bad_field",
                          too_long % "group")
        self.assert_error(c.call("ps", group=g64 + "X"), "bad_field",
                          too_long % "group")
        self.assert_error(c.call("submit", task="sleep", args={"ms": 0},
                                 group=g64 + "X"),
                          "bad_field", too_long % "group")
        self.assertEqual(self.groups(c)[g64]["parallel"], 0)
        self.assertEqual(sorted(self.groups(c)), [g64, "default"])

    def test_concctl_refuses_an_over_long_name_before_connecting(self):
        """Exit status 2 and the name, before connecting: the same with no
        daemon at all, and the group of 64 a's is left as it was."""
        g64 = "a" * 64
        r = self.d.concctl("group", "add", g64)
        self.assertEqual(r.returncode, 0, r.stderr)
        gone = os.path.join(self.d.dir, "nothing-here.sock")
        cases = [
            (("group", "remove", g64 + "-other"), "group remove",
             "group name longer than 64 bytes: " + g64 + "-other"),
            (("group", "add", g64 + "X", "--parallel", "1"), "group add",
             "group name longer than 64 bytes: " + g64 + "X"),
            (("group", "set", g64 + "X", "--parallel", "1"), "group set",
             "group name longer than 64 bytes: " + g64 + "X"),
            (("group", "pause", g64 + "X"), "group pause",
             "group name longer than 64 bytes: " + g64 + "X"),
            (("group", "resume", g64 + "X"), "group resume",
             "group name longer than 64 bytes: " + g64 + "X"),
            (("group", "list", g64 + "X"), "group list",
             "group name longer than 64 bytes: " + g64 + "X"),
            (("wait", "--group", g64 + "ZZZ"), "wait",
             "group name longer than 64 bytes: " + g64 + "ZZZ"),
            (("ps", "-g", g64 + "X"), "ps",
             "group name longer than 64 bytes: " + g64 + "X"),
            (("run", "-g", g64 + "X", "sleep", "ms=0"), "run",
             "group name longer than 64 bytes: " + g64 + "X"),
            (("submit", "--label", "l" * 129, "sleep", "ms=0"), "submit",
             "label longer than 128 bytes: " + "l" * 129),
            (("ps", "--label", "l" * 129), "ps",
             "label longer than 128 bytes: " + "l" * 129),
            (("ps", "--task", "t" * 65), "ps",
             "task name longer than 64 bytes: " + "t" * 65),
            (("submit", "t" * 65), "submit",
             "task name longer than 64 bytes: " + "t" * 65),
        ]
        for args, cmd, why in cases:
            for sock in (self.d.socket, gone):
                r = subprocess.run([harness.CONCTL, "-s", sock] +
                                   list(args), capture_output=True,
                                   text=True, timeout=BOUND)
                self.assertEqual(r.returncode, 2, (args, r.stderr))
                self.assertEqual(r.stderr.splitlines()[0],
                                 "concctl: %s: %s" % (cmd, why), args)
        # names at the limit are taken
        r = self.d.concctl("submit", "--label", "l" * 128, "-g", g64,
                           "sleep", "ms=0")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.d.concctl("--json", "group", "list")
        groups = {g["name"]: g for g in json.loads(r.stdout)["groups"]}
        self.assertEqual(sorted(groups), [g64, "default"])
        self.assertEqual(groups[g64]["parallel"], 0)

    def test_a_group_with_jobs_is_not_removed(self):
        c = self.client()
        c.call("group", op="add", name="mine", parallel=1)
        c.call("group", op="pause", name="mine")
        j = self.submit(c, ["true"], group="mine")
        self.assertEqual(c.call("status", job=j)["group"], "mine")
        self.assert_error(c.call("group", op="remove", name="mine"),
                          "not_finished",
                          "group mine has 1 jobs queued or running")
        c.call("cancel", job=j)
        m = c.call("group", op="remove", name="mine")
        self.assertEqual(m["t"], "ok", m)
        self.assertNotIn("mine", self.groups(c))

    def test_only_its_creator_or_an_admin_changes_a_group(self):
        os.chmod(self.d.socket, 0o666)
        ok = self.d.concctl("group", "add", "alices", "--parallel", "2",
                            user=ALICE)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual(ok.stdout,
                         "group alices: added (parallel 2, active)\n")
        for args in (("set", "alices", "--parallel", "9"),
                     ("pause", "alices"), ("resume", "alices"),
                     ("remove", "alices")):
            r = self.d.concctl("group", *args, user=BOB)
            self.assertEqual(r.returncode, 4, r.stderr)
            self.assertIn("group alices belongs to uid %d: only its "
                          "creator or an admin may change it" % ALICE,
                          r.stderr)
        # nor may a user change default, which belongs to no user
        r = self.d.concctl("group", "pause", "default", user=ALICE)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("belongs to uid 0", r.stderr)
        # anyone may list; the creator changes it, and root (admin) too
        r = self.d.concctl("--json", "group", "list", user=BOB)
        groups = {g["name"]: g for g in json.loads(r.stdout)["groups"]}
        self.assertEqual(groups["alices"]["uid"], ALICE)
        r = self.d.concctl("group", "pause", "alices", user=ALICE)
        self.assertEqual(r.stdout,
                         "group alices: paused (parallel 2, paused)\n")
        r = self.d.concctl("group", "set", "alices", "--parallel", "0")
        self.assertEqual(r.stdout,
                         "group alices: set (no limit, paused)\n")
        r = self.d.concctl("group", "rm", "alices", user=ALICE)
        self.assertEqual((r.returncode, r.stdout),
                         (0, "group alices: removed\n"), r.stderr)
        # a job is held and released by its owner and admins alone
        r = self.d.concctl("submit", "--hold", "sleep", "ms=0")
        job = int(r.stdout)
        r = self.d.concctl("resume", job, user=ALICE)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("no such job", r.stderr)
        self.assertEqual(self.d.concctl("resume", job).returncode, 0)

    def test_concctl_group_list_shows_each_group(self):
        self.d.concctl("group", "add", "gpu", "--parallel", "1")
        r = self.d.concctl("group")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["GROUP", "PARALLEL", "USED",
                                            "QUEUED", "RUNNING", "STATE",
                                            "OWNER"])
        self.assertEqual(lines[1].split(),
                         ["default", str(NCPU), "0", "0", "0", "active",
                          "0"])
        self.assertEqual(lines[2].split(),
                         ["gpu", "1", "0", "0", "0", "active", "0"])

    # ---- wait --group ----

    def test_wait_for_a_group_answers_once_it_is_idle(self):
        c = self.client()
        gate = self.d.gate()
        j = self.submit(c, gate.argv)
        rid = c.request("wait", group="default")
        self.no_reply_yet(c, rid)
        # an idle group answers at once
        m = c.call("group", op="add", name="idle")
        m = c.call("wait", group="idle")
        self.assertEqual((m["t"], m["group"]), ("ok", "idle"), m)
        gate.release()
        m = c.recv_for(rid)
        self.assertEqual((m["t"], m["group"]), ("ok", "default"), m)
        self.assertEqual(c.call("status", job=j)["state"], "succeeded")

    def test_concctl_wait_group_exits_0_when_idle_and_6_on_timeout(self):
        c = self.client()
        gate = self.d.gate()
        j = self.submit(c, gate.argv)
        c.wait_state(j, "running")
        r = self.d.concctl("wait", "--group", "default", "--timeout", "0.2")
        self.assertEqual(r.returncode, 6, r.stderr)
        self.assertIn("group default still has jobs", r.stderr)
        gate.release()
        r = self.d.concctl("wait", "--group", "default")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(c.call("status", job=j)["state"], "succeeded")
        r = self.d.concctl("wait", "--group", "default", "1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("job ids and --group exclude each other", r.stderr)
        r = self.d.concctl("wait")
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing argument: job ids, or --group", r.stderr)

    def test_a_waiting_client_that_leaves_is_forgotten(self):
        c = self.client()
        gate = self.d.gate()
        j = self.submit(c, gate.argv)
        w = self.d.client()
        w.request("wait", group="default")
        w.call("ping")
        w.close()
        # another waiter is answered as if the first had never been
        rid = c.request("wait", group="default")
        self.no_reply_yet(c, rid)
        gate.release()
        m = c.recv_for(rid)
        self.assertEqual((m["t"], m["group"]), ("ok", "default"), m)
        self.assertEqual(c.call("status", job=j)["state"], "succeeded")


    # ---- groups of one's own, priorities, slots ----

    def test_a_group_with_a_limit_of_one_runs_its_jobs_one_at_a_time(self):
        c = self.client()
        c.call("group", op="add", name="gpu", parallel=1)
        gates = [self.d.gate() for _ in range(3)]
        jobs = [self.submit(c, g.argv, group="gpu") for g in gates]
        c.wait_state(jobs[0], "running")
        self.assertEqual([c.call("status", job=j).get("ahead")
                          for j in jobs], [None, 0, 1])
        # the default group is not held up by gpu
        other = self.submit(c, ["true"])
        c.wait_state(other, "succeeded")
        for k, g in enumerate(gates):
            g.release()
            c.wait_state(jobs[k], "succeeded")
            if k + 1 < len(jobs):
                c.wait_state(jobs[k + 1], "running")
        st = c.call("status", job=jobs[0])
        self.assertEqual(st["group"], "gpu")

    def test_higher_priority_first_then_submission_order(self):
        c = self.client()
        c.call("group", op="add", name="q", parallel=1)
        c.call("group", op="pause", name="q")
        gate = self.d.gate()
        low = self.submit(c, gate.argv, group="q", priority=-5)
        a = self.submit(c, gate.argv, group="q")
        b = self.submit(c, gate.argv, group="q")
        urgent = self.submit(c, gate.argv, group="q", priority=10)
        ahead = {j: c.call("status", job=j)["ahead"]
                 for j in (low, a, b, urgent)}
        self.assertEqual(ahead, {urgent: 0, a: 1, b: 2, low: 3})
        self.assertEqual(c.call("status", job=urgent)["priority"], 10)
        c.call("group", op="resume", name="q")
        c.wait_state(urgent, "running")
        order = [urgent]
        gate.release()
        for j in (a, b, low):
            c.wait_state(j, "succeeded")
        # with the gate open each ran as the one before ended
        starts = sorted((c.call("status", job=j)["started"], j)
                        for j in (urgent, a, b, low))
        self.assertEqual([j for _, j in starts], order + [a, b, low])

    def started_order(self, c, jobs):
        for j in jobs:
            c.wait_state(j, "succeeded")
        return [j for _, j in sorted((c.call("status", job=j)["started"], j)
                                     for j in jobs)]

    def test_jobs_a_dependency_releases_together_start_by_priority(self):
        # the first released took the group's slot: 0, 10, 5
        c = self.client()
        c.call("group", op="add", name="q", parallel=1)
        gate = self.d.gate()
        first = self.submit(c, gate.argv)
        c.wait_state(first, "running")
        jobs = {p: self.submit(c, ["true"], group="q", priority=p,
                               after=[first])
                for p in (0, 5, 10)}
        gate.release()
        self.assertEqual(self.started_order(c, list(jobs.values())),
                         [jobs[10], jobs[5], jobs[0]])

    def test_jobs_due_together_start_by_priority(self):
        c = self.client()
        c.call("group", op="add", name="q", parallel=1)
        at = int((time.time() + 0.5 * harness.SLOWDOWN) * 1e6)
        jobs = {p: self.submit(c, ["true"], group="q", priority=p, at=at)
                for p in (0, 5, 10)}
        self.assertEqual(self.started_order(c, list(jobs.values())),
                         [jobs[10], jobs[5], jobs[0]])

    def test_a_job_takes_its_cpus_in_slots_and_a_big_one_runs_alone(self):
        c = self.client()
        c.call("group", op="add", name="w", parallel=3)
        g1, g2, g3 = self.d.gate(), self.d.gate(), self.d.gate()
        two = self.submit(c, g1.argv, group="w", cpus=2)
        c.wait_state(two, "running")
        self.assertEqual(self.groups(c)["w"]["cpus"], 2)
        # a second 2-slot job does not fit in the 1 slot left: it waits
        # and so does the 1-slot job behind it (no overtaking)
        two_more = self.submit(c, g2.argv, group="w", cpus=2)
        one = self.submit(c, g2.argv, group="w")
        self.assertEqual(c.call("status", job=two_more)["ahead"], 0)
        self.assertEqual(c.call("status", job=one)["ahead"], 1)
        # more than the limit: it runs, alone, once the group is empty
        big = self.submit(c, g3.argv, group="w", cpus=8)
        g1.release()
        c.wait_state(two_more, "running")
        c.wait_state(one, "running")
        self.assertEqual(self.groups(c)["w"]["cpus"], 3)
        self.assertEqual(c.call("status", job=big)["state"], "queued")
        g2.release()
        c.wait_state(big, "running")
        self.assertEqual(self.groups(c)["w"]["cpus"], 8)
        g3.release()
        c.wait_state(big, "succeeded")

    def test_a_job_whose_group_has_gone_waits_in_default(self):
        # a restart gives the new job its old group, removed since
        c = self.client()
        c.call("group", op="add", name="tmp")
        rid = c.request("submit", task="exec", args={"argv": ["true"]},
                        group="tmp", watch=True)
        old = c.until_end(rid)[-1]["job"]
        self.assertEqual(c.call("group", op="remove", name="tmp")["t"], "ok")
        m = c.call("restart", job=old)
        self.assertEqual(m["t"], "accepted", m)
        st = c.wait_state(m["job"], "succeeded")
        self.assertEqual(st["restart_of"], old)
        self.assertNotIn("group", st)
        self.d.wait_log("job %d: group tmp is gone; it waits in default"
                        % m["job"])
        # and default is idle again: its count was kept right
        self.assertEqual(c.call("wait", group="default")["t"], "ok")

    def test_a_job_in_an_unknown_group_is_refused(self):
        c = self.client()
        m = c.call("submit", task="exec", args={"argv": ["true"]},
                   group="nope")
        self.assert_error(m, "no_such_group", 'no such group "nope"')
        r = self.d.concctl("submit", "--group", "nope", "exec", "--",
                           "true")
        self.assertEqual(r.returncode, 4)
        self.assertIn('no such group "nope"', r.stderr)

    def test_a_retried_job_keeps_its_place_in_its_group(self):
        c = self.client()
        c.call("group", op="add", name="r", parallel=1)
        flag = os.path.join(self.d.dir, "failed-once")
        a_gate, b_gate, c_gate = self.d.gate(), self.d.gate(), self.d.gate()
        # a fails once, at its gate, then succeeds; it gives its slot
        # back meanwhile
        a = self.submit(c, ["sh", "-c", "test -e %s && exit 0; touch %s; "
                            "read x < %s; exit 1" % (flag, flag, a_gate.path)],
                        group="r", retries=1, retry_delay=1)
        c.wait_state(a, "running")
        b = self.submit(c, b_gate.argv, group="r")
        d = self.submit(c, c_gate.argv, group="r")
        self.assertEqual(c.call("status", job=d)["ahead"], 1)
        a_gate.release()
        c.wait_state(b, "running")
        # a is back in line, before d which came after it
        deadline = harness.time.monotonic() + BOUND
        while True:
            st = c.call("status", job=a)
            if "ahead" in st or harness.time.monotonic() > deadline:
                break
        self.assertEqual((st["state"], st["ahead"], st["attempt"]),
                         ("queued", 0, 2), st)
        self.assertEqual(c.call("status", job=d)["ahead"], 1)
        b_gate.release()
        c.wait_state(a, "succeeded")
        c_gate.release()
        c.wait_state(d, "succeeded")
        self.assertLess(c.call("status", job=a)["finished"],
                        c.call("status", job=d)["started"])

    # ---- schedules ----

    def test_a_job_due_later_waits_and_one_due_already_runs(self):
        c = self.client()
        now = int(harness.time.time() * 1e6)
        later = self.submit(c, ["true"], at=now + 3600 * 10**6)
        past = self.submit(c, ["true"], at=now - 10**6)
        c.wait_state(past, "succeeded")
        st = c.call("status", job=later)
        self.assertEqual((st["state"], st["at"]), ("queued", now + 3600e6))
        self.assertNotIn("ahead", st)
        m = c.call("cancel", job=later)
        self.assertEqual(m["state"], "cancelled")

    def test_a_job_runs_once_its_time_comes(self):
        c = self.client()
        rid = c.request("submit", task="exec", args={"argv": ["true"]},
                        at=int((harness.time.time() + 0.3) * 1e6),
                        watch=True)
        t0 = harness.time.time()
        ev = c.until_end(rid)
        self.assertEqual(ev[-1]["state"], "succeeded")
        self.assertGreaterEqual(ev[-1]["started"] / 1e6,
                                t0 + 0.3 - 0.05 - harness.CLOCK_SLACK)

    def test_concctl_in_and_at_say_when(self):
        c = self.client()
        r = self.d.concctl("submit", "--in", "1h", "--label", "nightly",
                           "--priority", "3", "exec", "--", "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        j = int(r.stdout)
        st = c.call("status", job=j)
        self.assertAlmostEqual(st["at"] / 1e6, harness.time.time() + 3600,
                               delta=60)
        self.assertEqual((st["label"], st["priority"]), ("nightly", 3))
        r = self.d.concctl("submit", "--at", "2099-12-24T08:00", "exec",
                           "--", "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = c.call("status", job=int(r.stdout))
        self.assertEqual(harness.time.localtime(st["at"] / 1e6)[:5],
                         (2099, 12, 24, 8, 0))
        r = self.d.concctl("submit", "--at", "23:59", "exec", "--", "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = c.call("status", job=int(r.stdout))
        self.assertEqual(harness.time.localtime(st["at"] / 1e6)[3:5],
                         (23, 59))
        self.assertGreater(st["at"] / 1e6, harness.time.time())
        for bad, why in ((("--at", "25:00"), "invalid time for --at"),
                         (("--in", "soon"), "invalid duration for --in"),
                         (("--at", "01:00", "--in", "1h"),
                          "--at and --in exclude each other")):
            r = self.d.concctl("submit", *bad, "exec", "--", "true")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(why, r.stderr)
        r = self.d.concctl("status", j)
        self.assertRegex(r.stdout, r"label +nightly")
        self.assertRegex(r.stdout, r"priority +3")
        self.assertRegex(r.stdout, r"at +\d{4}-\d\d-\d\d ")

    def test_submit_hold_waits_for_resume(self):
        c = self.client()
        r = self.d.concctl("submit", "--hold", "exec", "--", "true")
        j = int(r.stdout)
        st = c.call("status", job=j)
        self.assertEqual((st["state"], st["held"]), ("queued", True))
        self.assertEqual(self.d.concctl("resume", j).returncode, 0)
        c.wait_state(j, "succeeded")
        self.assertNotIn("held", c.call("status", job=j))

    # ---- ps filters ----

    def test_ps_lists_the_jobs_of_a_group_or_a_label(self):
        c = self.client()
        c.call("group", op="add", name="gpu", parallel=1)
        c.call("group", op="pause", name="gpu")
        a = self.submit(c, ["true"], group="gpu", label="nightly")
        b = self.submit(c, ["true"], group="gpu")
        d = self.submit(c, ["true"], label="nightly")
        c.wait_state(d, "succeeded")
        ids = lambda m: sorted(r["job"] for r in m["jobs"])  # noqa: E731
        self.assertEqual(ids(c.call("ps", group="gpu")), [a, b])
        self.assertEqual(ids(c.call("ps", label="nightly", all=True)),
                         [a, d])
        self.assertEqual(ids(c.call("ps", group="gpu", label="nightly")),
                         [a])
        self.assertEqual(ids(c.call("ps", group="default", all=True)), [d])
        # finished jobs come from the store, filtered the same way
        self.assertEqual(ids(c.call("ps", state="succeeded",
                                    label="nightly")), [d])
        self.assertEqual(ids(c.call("ps", state="succeeded",
                                    group="default")), [d])
        r = self.d.concctl("--json", "ps", "--group", "gpu", "--label",
                           "nightly")
        self.assertEqual([row["job"] for row in
                          json.loads(r.stdout)["jobs"]], [a])


class Restart(unittest.TestCase):
    """Groups and queued jobs outlive concd: a stop leaves the parked ones
    (held, paused, scheduled) in the store, and the next concd has them in
    the same order."""

    def test_groups_and_queued_jobs_come_back_in_order(self):
        state = harness.tempfile.mkdtemp(prefix="concd-groups-")
        self.addCleanup(harness.shutil.rmtree, state, True)
        d = harness.Daemon("-p", "1", "--state-dir", state)
        try:
            c = d.client()
            c.call("group", op="add", name="gpu", parallel=1)
            c.call("group", op="pause", name="gpu")
            jobs = [c.call("submit", task="exec", args={"argv": ["true"]},
                           group="gpu", priority=p)["job"]
                    for p in (0, 5, 0)]
            held = c.call("submit", task="exec", args={"argv": ["true"]},
                          held=True)["job"]
            before = {j: c.call("status", job=j).get("ahead")
                      for j in jobs}
            self.assertEqual(before, {jobs[1]: 0, jobs[0]: 1, jobs[2]: 2})
            self.assertEqual(d.stop(), 0)
            self.assertIn("4 held, paused or scheduled jobs, and jobs that "
                          "wait for them, stay queued in the store for the "
                          "next start", d.log())
        finally:
            d.close()
        d = harness.Daemon("-p", "1", "--state-dir", state)
        try:
            c = d.client()
            g = {x["name"]: x for x in c.call("group", op="list")["groups"]}
            self.assertEqual((g["gpu"]["parallel"], g["gpu"]["paused"]),
                             (1, True))
            after = {j: c.call("status", job=j).get("ahead") for j in jobs}
            self.assertEqual(after, before)
            self.assertEqual(c.call("status", job=held)["held"], True)
            c.call("group", op="resume", name="gpu")
            c.call("release", job=held)
            for j in jobs + [held]:
                c.wait_state(j, "succeeded")
            starts = sorted((c.call("status", job=j)["started"], j)
                            for j in jobs)
            self.assertEqual([j for _, j in starts],
                             [jobs[1], jobs[0], jobs[2]])
        finally:
            d.close()

    def test_queued_jobs_start_by_priority_after_a_crash(self):
        # recovery handed them on in id order, and the first took the
        # group's slot: 0, 10, 5
        state = harness.tempfile.mkdtemp(prefix="concd-groups-")
        self.addCleanup(harness.shutil.rmtree, state, True)
        d = harness.Daemon("-p", "1", "--state-dir", state)
        try:
            c = d.client()
            c.call("group", op="add", name="gpu", parallel=1)
            gate = d.gate()
            first = c.call("submit", task="exec", args={"argv": gate.argv},
                           group="gpu")["job"]
            c.wait_state(first, "running")
            jobs = {p: c.call("submit", task="exec",
                              args={"argv": ["true"]}, group="gpu",
                              priority=p)["job"]
                    for p in (0, 5, 10)}
            d.expect_exit(-9)
            d.proc.kill()
            d.proc.wait(BOUND)
        finally:
            d.close()
        d = harness.Daemon("-p", "1", "--state-dir", state)
        try:
            c = d.client()
            for j in jobs.values():
                c.wait_state(j, "succeeded")
            starts = sorted((c.call("status", job=j)["started"], j)
                            for j in jobs.values())
            self.assertEqual([j for _, j in starts],
                             [jobs[10], jobs[5], jobs[0]])
        finally:
            d.close()

    def test_without_a_store_a_stop_cancels_parked_jobs(self):
        d = harness.Daemon("-p", "1", "--state-dir", "none")
        try:
            c = d.client()
            j = c.call("submit", task="exec", args={"argv": ["true"]},
                       held=True)["job"]
            self.assertEqual(c.call("status", job=j)["state"], "queued")
            self.assertEqual(d.stop(), 0)
            self.assertIn("cancelled 1 queued", d.log())
        finally:
            d.close()


CLOCKSHIFT = os.environ.get("CONCD_CLOCKSHIFT", "")


@unittest.skipUnless(os.path.exists(CLOCKSHIFT),
                     "no clockshift library (CONCD_CLOCKSHIFT)")
@unittest.skipIf(os.environ.get("CONCD_TEST_SANITIZED") == "1",
                 "a sanitizer's runtime must be the first library loaded")
class WallClock(unittest.TestCase):
    """A start time is a time of the wall clock: a clock set forward past
    it (an NTP step, date -s, a machine that slept) starts the job then,
    not once as long again has passed.  concd's wall clock is moved by
    tests/integration/clockshift.c, the machine's is left alone."""

    def test_a_clock_set_past_a_start_time_starts_the_job(self):
        shift = harness.tempfile.NamedTemporaryFile(prefix="concd-clock-")
        self.addCleanup(shift.close)
        os.pwrite(shift.fileno(), harness.struct.pack("=q", 0), 0)
        d = harness.Daemon(env={"LD_PRELOAD": CLOCKSHIFT,
                                "CONCD_CLOCKSHIFT_FILE": shift.name})
        self.addCleanup(d.close)
        c = d.client()
        at = int(harness.time.time()) + 3600
        r = d.concctl("submit", "--at", "@%d" % at, "exec", "--", "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        j = int(r.stdout)
        self.assertEqual(c.call("status", job=j)["state"], "queued")
        os.pwrite(shift.fileno(), harness.struct.pack("=q", 3601), 0)
        c.wait_state(j, "succeeded")
        self.assertGreaterEqual(c.call("status", job=j)["started"] / 1e6,
                                at)


class ConfGroups(DaemonTest):
    """Groups of concd.conf: made at the start, owned by no user, not
    removed at run time, set again by a reload."""

    def setUp(self):
        self.conf = os.path.join(harness.tempfile.mkdtemp(), "concd.conf")
        self.addCleanup(harness.shutil.rmtree, os.path.dirname(self.conf))
        with open(self.conf, "w") as f:
            f.write("group = gpu parallel=1\n"
                    "group = batch parallel=3 paused=yes\n"
                    "group = default parallel=5\n"
                    "group = lim mem=64M pids=32\n")
        self.d = harness.Daemon("-c", self.conf)

    def test_conf_groups_exist_with_their_settings(self):
        c = self.d.client()
        m = c.call("group", op="list")
        got = {g["name"]: (g["parallel"], g["paused"], g["uid"])
               for g in m["groups"]}
        self.assertEqual(got, {"default": (5, False, 0),
                               "gpu": (1, False, 0),
                               "batch": (3, True, 0),
                               "lim": (0, False, 0)})
        lim = [g for g in m["groups"] if g["name"] == "lim"][0]
        self.assertEqual((lim["mem"], lim["pids"]), (64 << 20, 32))
        self.assertNotIn("mem", [g for g in m["groups"]
                                 if g["name"] == "gpu"][0])
        m = c.call("group", op="remove", name="gpu")
        self.assertEqual((m["t"], m["error"]), ("error", "permission_denied"))
        self.assertIn("it is set in concd.conf", m["message"])

    def test_a_group_s_limits_go_to_jobs_that_ask_for_none(self):
        c = self.d.client()
        rid = c.request("submit", task="exec", args={"argv": ["true"]},
                        group="lim", watch=True)
        end = c.until_end(rid)[-1]
        self.assertEqual(end["state"], "succeeded")
        st = c.call("status", job=end["job"])
        self.assertEqual((st["mem"], st["pids"]), (64 << 20, 32))
        rid = c.request("submit", task="exec", args={"argv": ["true"]},
                        group="lim", mem=1 << 30, watch=True)
        end = c.until_end(rid)[-1]
        st = c.call("status", job=end["job"])
        self.assertEqual((st["mem"], st["pids"]), (1 << 30, 32))

    def test_a_reload_sets_conf_groups_again(self):
        c = self.d.client()
        c.call("group", op="set", name="gpu", parallel=7)
        with open(self.conf, "w") as f:
            f.write("group = gpu parallel=2\ngroup = new\n")
        self.d.proc.send_signal(harness.signal.SIGHUP)
        self.d.wait_log("reloaded")
        got = {g["name"]: g["parallel"]
               for g in c.call("group", op="list")["groups"]}
        self.assertEqual((got["gpu"], got["new"]), (2, 0))
        # batch is no longer in the file: an admin may remove it now
        m = c.call("group", op="remove", name="batch")
        self.assertEqual(m["t"], "ok", m)


class Fairness(unittest.TestCase):
    """Slots that come free in several groups at once go to the groups in
    turn, one job each: one thread runs the jobs in the order they were
    handed on, and each job's `served` says its place in that order."""

    def test_groups_resumed_together_take_turns(self):
        tmp = harness.tempfile.mkdtemp()
        self.addCleanup(harness.shutil.rmtree, tmp)
        conf = os.path.join(tmp, "concd.conf")
        with open(conf, "w") as f:
            f.write("group = a paused=yes\ngroup = b paused=yes\n")
        d = harness.Daemon("-c", conf, "-p", "0", threads=1)
        self.addCleanup(d.close)
        c = d.client()
        jobs = {(g, i): c.call("submit", task="sleep", args={"ms": 0},
                               exec="thread", group=g)["job"]
                for g in "ab" for i in range(3)}
        # one reload resumes both
        with open(conf, "w") as f:
            f.write("group = a\ngroup = b\n")
        d.proc.send_signal(harness.signal.SIGHUP)
        served = {k: c.wait_state(j, "succeeded")["served"]
                  for k, j in jobs.items()}
        order = [k for _, k in sorted((v, k) for k, v in served.items())]
        self.assertEqual(order, [("a", 0), ("b", 0), ("a", 1), ("b", 1),
                                 ("a", 2), ("b", 2)])


class BadConf(unittest.TestCase):
    def test_a_bad_group_line_stops_concd_with_its_line_number(self):
        d = harness.tempfile.mkdtemp()
        self.addCleanup(harness.shutil.rmtree, d)
        conf = os.path.join(d, "concd.conf")
        for line, why in (("group = gpu parallel=x",
                           'group gpu: "parallel=x" is not parallel=N, '
                           'paused=yes|no, mem=SIZE or pids=N'),
                          ("group = gpu parallel=1000001",
                           'group gpu: "parallel=1000001" is not'),
                          ("group = gpu pids=-1", 'group gpu: "pids=-1" is not'),
                          ("group = -bad", "group: a name of 1 to 64 "
                           "letters"),
                          ("group = .bad", "group: a name of 1 to 64 "
                           "letters"),
                          ("group = gpu paused=maybe",
                           'group gpu: "paused=maybe" is not')):
            with open(conf, "w") as f:
                f.write("\n" + line + "\n")
            r = harness.subprocess.run(
                [harness.CONCD, "-f", "-c", conf, "-s",
                 os.path.join(d, "s"), "--state-dir", "none"],
                capture_output=True, text=True, timeout=BOUND)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("concd.conf:2: " + why, r.stderr)


if __name__ == "__main__":
    harness.main()
