"""concctl ps -o: the columns chosen and their order, +COLUMNS, an unknown
column refused before connecting, the COMMAND column (the daemon's command
line when it sends one, else the task), cut to $COLUMNS, --json giving
the same rows as the table, and RUNTIME, which no setting of the wall
clock moves."""
import json
import os
import pwd
import re
import shlex
import sqlite3
import struct
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import DaemonTest  # noqa: E402

DEFAULT = ["ID", "TASK", "STATE", "EXEC", "WORKER", "PROGRESS", "AGE",
           "COMMAND"]


class PsColumns(DaemonTest):
    def ctl(self, *args, **kw):
        r = self.d.concctl(*args, **kw)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def jobs(self):
        """Three finished jobs and one running, held by a gate: their ids."""
        c = self.d.client()
        ids = []
        for task, args in (("noop", {}), ("sleep", {"ms": 1}),
                           ("primes", {"n": 100})):
            rid = c.request("submit", task=task, args=args, watch=True)
            ev = c.until_end(rid)
            self.assertEqual(ev[-1]["state"], "succeeded", ev)
            ids.append(ev[-1]["job"])
        self.gate = self.d.gate()
        rid = c.request("submit", task="exec",
                        args={"argv": self.gate.argv})
        ids.append(c.recv_for(rid)["job"])
        c.wait_state(ids[-1], "running")
        return ids

    def rows(self, out):
        return [line.split() for line in out.splitlines()]

    def test_the_default_columns_are_those_of_before_and_command(self):
        self.jobs()
        r = self.ctl("ps", "-a")
        self.assertEqual(r.stdout.splitlines()[0].split(), DEFAULT)
        # ps -n 0: the titles alone
        r = self.ctl("ps", "-a", "-n", "0")
        self.assertEqual(r.stdout, "  ".join(DEFAULT) + "\n")

    def test_o_shows_the_columns_named_in_that_order(self):
        ids = self.jobs()
        r = self.ctl("ps", "-a", "-o", "state,Id,task")
        rows = self.rows(r.stdout)
        self.assertEqual(rows[0], ["STATE", "ID", "TASK"])
        self.assertEqual(rows[1:], [
            ["succeeded", str(ids[0]), "noop"],
            ["succeeded", str(ids[1]), "sleep"],
            ["succeeded", str(ids[2]), "primes"],
            ["running", str(ids[3]), "exec"]])
        r = self.ctl("ps", "--output=+uid,user")
        self.assertEqual(self.rows(r.stdout)[0], DEFAULT + ["UID", "USER"])
        r = self.ctl("ps", "-o", "ID,UID,USER")
        self.assertEqual(self.rows(r.stdout)[1], [
            str(ids[3]), str(os.getuid()), pwd.getpwuid(os.getuid()).pw_name])

    def test_an_unknown_column_is_a_usage_error_before_connecting(self):
        r = harness.subprocess.run(
            [harness.CONCTL, "-s", "/nonexistent/sock", "ps", "-o",
             "id,colour"], capture_output=True, text=True,
            timeout=harness.BOUND)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("ps: unknown column: colour, valid: ID,TASK,STATE,",
                      r.stderr)
        self.assertNotIn("connect", r.stderr)
        # and concctl(1) describes each valid one
        valid = r.stderr.split("valid: ")[1].split()[0].split(",")
        with open(os.path.join(os.path.dirname(__file__), "..", "..",
                               "man", "concctl.1")) as f:
            page = f.read()
        described = set()
        for line in page.splitlines():
            if line.startswith(".It ") and line[4:5].isupper():
                described.update(w.strip(",") for w in line[4:].split())
        self.assertEqual(set(valid) - described, set())

    def test_json_gives_the_same_rows_as_the_table(self):
        self.jobs()
        cols = "id,task,state,exec,worker,command,group,label"
        table = self.rows(self.ctl("ps", "-a", "-o", cols).stdout)
        r = self.ctl("ps", "-a", "-o", cols, "--json")
        self.assertEqual(r.stderr, "")  # no counts: stdout is the JSON
        rows = json.loads(r.stdout)["jobs"]
        self.assertEqual(len(rows), len(table) - 1)
        for t, j in zip(table[1:], rows):
            self.assertEqual(list(j), cols.split(","))
            self.assertIsInstance(j["id"], int)
            shown = ["-" if v is None else str(v) for v in j.values()]
            # COMMAND may hold spaces: compare it whole, from the end
            n = len(cols.split(",")) - 3
            self.assertEqual(t[:n], shown[:n])
            self.assertEqual(t[-2:], shown[-2:])
            self.assertEqual(" ".join(t[n:-2]), shown[n])
        # without -o, --json is the daemon's reply, as before
        r = self.ctl("ps", "-a", "--json")
        self.assertEqual(json.loads(r.stdout)["t"], "jobs")

    def test_group_label_and_priority_come_from_the_jobs_fields(self):
        c = self.d.client()
        self.assertEqual(c.call("group", op="add", name="gpu")["t"], "ok")
        jobs = []
        for fields in ({"label": "nightly"}, {"priority": 3},
                       {"group": "gpu", "priority": -2}, {}):
            rid = c.request("submit", task="noop", watch=True, **fields)
            jobs.append(c.until_end(rid)[-1]["job"])
        r = self.ctl("ps", "-a", "-o", "id,group,label,priority")
        # a job of the default group and priority: the daemon leaves both
        # out, ps shows them as status does
        self.assertEqual(self.rows(r.stdout), [
            ["ID", "GROUP", "LABEL", "PRIORITY"],
            [str(jobs[0]), "default", "nightly", "0"],
            [str(jobs[1]), "default", "-", "3"],
            [str(jobs[2]), "gpu", "-", "-2"],
            [str(jobs[3]), "default", "-", "0"]])
        self.assertRegex(self.ctl("status", jobs[3]).stdout,
                         r"(?m)^group\s+default$")
        r = self.ctl("ps", "-a", "-o", "id,group,label,priority", "--json")
        self.assertEqual(json.loads(r.stdout)["jobs"], [
            {"id": jobs[0], "group": "default", "label": "nightly",
             "priority": 0},
            {"id": jobs[1], "group": "default", "label": None,
             "priority": 3},
            {"id": jobs[2], "group": "gpu", "label": None, "priority": -2},
            {"id": jobs[3], "group": "default", "label": None,
             "priority": 0}])

    def test_command_is_the_daemons_command_line_else_the_task(self):
        ids = self.jobs()
        wire = {j["job"]: j for j in
                self.d.client().call("ps", all=True)["jobs"]}
        r = self.ctl("ps", "-a", "-o", "id,command")
        shown = {int(line.split(None, 1)[0]): line.split(None, 1)[1]
                 for line in r.stdout.splitlines()[1:]}
        for job in ids:
            want = wire[job].get("command", wire[job]["task"])
            self.assertEqual(shown[job], want)
        if "command" in wire[ids[3]]:
            self.assertEqual(shown[ids[3]], shlex.join(self.gate.argv))

    def test_command_is_cut_to_the_width_and_the_rest_are_not(self):
        ids = self.jobs()
        wire = self.d.client().call("status", job=ids[3])
        if "command" not in wire:
            self.skipTest("this concd sends no command line")
        full = self.ctl("ps", "-o", "id,state,command").stdout
        self.assertIn(shlex.join(self.gate.argv), full)
        cut = self.ctl("ps", "-o", "id,state,command",
                       env={"COLUMNS": "30"}).stdout
        for line in cut.splitlines():
            self.assertLessEqual(len(line), 30, cut)
        self.assertEqual(cut.splitlines()[1].split()[:2],
                         [str(ids[3]), "running"])

    def test_cells_print_as_status_prints_them_with_no_control(self):
        """A backslash is itself in every cell (libsmartcols wrote one
        before an x as "\\x5c"), a cell is what status prints, and no
        control character reaches the output raw: C0 and DEL as concd
        quotes them in COMMAND or '?', C1 (U+0080-U+009F) as '?'."""
        c = self.d.client()
        submitted = [
            dict(task="exec", args={"argv": ["echo", "C:\\xfoo\\bar"]},
                 label="l\\x\\n caf\u00e9"),
            dict(task="exec",
                 args={"argv": ["printf", "a\nb\tc\x1b[31m\u009b\x7f"]},
                 label="c1\u009bx"),
            dict(task="noop", args={"x": "a\\b\x1b[31m\u009bc"}),
        ]
        ids = []
        for fields in submitted:
            ev = c.until_end(c.request("submit", watch=True, **fields))
            self.assertEqual(ev[-1]["state"], "succeeded", ev)
            ids.append(ev[-1]["job"])

        def cells(column):
            out = self.ctl("ps", "-a", "-o", "id," + column).stdout
            for ch in out:
                self.assertFalse(ch != "\n" and (ord(ch) < 0x20 or
                                                 0x7f <= ord(ch) <= 0x9f),
                                 "%r in %r" % (ch, out))
            self.assertNotIn("x5c", out)
            return {int(line.split(None, 1)[0]): line.split(None, 1)[1]
                    for line in out.splitlines()[1:]}

        def status(job, key):
            out = self.ctl("status", str(job)).stdout
            for line in out.splitlines():
                if line.split(None, 1)[0] == key:
                    return line.split(None, 1)[1]
            self.fail("no %s in %r" % (key, out))

        command, label = cells("command"), cells("label")
        self.assertEqual(command[ids[0]], "echo 'C:\\xfoo\\bar'")
        self.assertEqual(label[ids[0]], "l\\x\\n caf\u00e9")
        self.assertEqual(label[ids[1]], "c1?x")
        self.assertTrue(command[ids[1]].startswith("printf $'a\\x0ab\\x09c"),
                        command[ids[1]])
        for job in ids[:2]:
            self.assertEqual(command[job], status(job, "command"))
            self.assertEqual(label[job], status(job, "label"))
        self.assertEqual(cells("result")[ids[2]],
                         '{"x":"a\\\\b\\u001B[31m?c"}')

    def test_runtime_is_how_long_the_job_ran_on_each_executor(self):
        c = self.d.client()
        for ex in ("loop", "thread", "process"):
            t0 = time.monotonic()
            rid = c.request("submit", task="sleep", args={"ms": 200},
                            exec=ex, watch=True)
            end = c.until_end(rid)[-1]
            took = time.monotonic() - t0
            self.assertEqual((end["state"], end["exec"]), ("succeeded", ex))
            self.assertGreaterEqual(end["runtime"], 200000, ex)
            self.assertLessEqual(end["runtime"], took * 1e6, ex)
            st = c.call("status", job=end["job"])
            self.assertEqual(st["runtime"], end["runtime"], ex)


CLOCKSHIFT = os.environ.get("CONCD_CLOCKSHIFT", "")


def span_us(text):
    """The microseconds of a span as concctl renders one under a minute:
    "812us", "12.3ms", "2.05s"."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s)", text)
    assert m, "not a span: %r" % text
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


@unittest.skipUnless(os.path.exists(CLOCKSHIFT),
                     "no clockshift library (CONCD_CLOCKSHIFT)")
@unittest.skipIf(os.environ.get("CONCD_TEST_SANITIZED") == "1",
                 "a sanitizer's runtime must be the first library loaded")
class Runtime(unittest.TestCase):
    """How long a job ran is measured by the monotonic clock: the wall
    clock set back or forward while it runs (an NTP step at boot, date -s)
    changes its start and end times, not its RUNTIME, status's "ran" or the
    store's seconds.  concd's wall clock is moved by
    tests/integration/clockshift.c, the machine's is left alone."""

    def test_a_clock_set_while_a_job_runs_leaves_its_runtime_alone(self):
        shift = tempfile.NamedTemporaryFile(prefix="concd-clock-")
        self.addCleanup(shift.close)
        os.pwrite(shift.fileno(), struct.pack("=q", 0), 0)
        # kept however old the clock set a day ahead makes them look
        d = harness.Daemon("--finished-ttl", "0",
                           env={"LD_PRELOAD": CLOCKSHIFT,
                                "CONCD_CLOCKSHIFT_FILE": shift.name})
        self.addCleanup(d.close)
        c = d.client()
        spans = {}
        for ahead in (-3600, 86400):  # back an hour, then a day ahead
            gate = d.gate()
            t0 = time.monotonic()
            j = c.call("submit", task="exec", args={"argv": gate.argv})["job"]
            c.wait_state(j, "running")
            t1 = time.monotonic()
            os.pwrite(shift.fileno(), struct.pack("=q", ahead), 0)
            # running: the span so far, by the same clock
            so_far = c.call("status", job=j)["runtime"]
            self.assertLess(so_far, (time.monotonic() - t0) * 1e6)
            # it runs on for 0.2 s: a span no rounding hides
            time.sleep(max(0.0, t1 + 0.2 - time.monotonic()))
            t2 = time.monotonic()
            gate.release()
            end = c.wait_state(j, "succeeded")
            t3 = time.monotonic()
            # it ran from before t1 to after t2, within t0 to t3
            self.assertGreaterEqual(end["runtime"], (t2 - t1) * 1e6)
            self.assertGreaterEqual(end["runtime"], so_far)
            self.assertLessEqual(end["runtime"], (t3 - t0) * 1e6)
            spans[j] = (t2 - t1, t3 - t0)
            r = d.concctl("ps", "-a", "-o", "id,runtime")
            self.assertEqual(r.returncode, 0, r.stderr)
            shown = dict(line.split() for line in r.stdout.splitlines()[1:])
            # rounded to 10 ms at the coarsest, "2.05s"
            self.assertLessEqual(abs(span_us(shown[str(j)]) - end["runtime"]),
                                 5000, r.stdout)
            r = d.concctl("status", str(j))
            self.assertEqual(r.returncode, 0, r.stderr)
            ran = re.search(r"^finished .*\(ran (\S+)\)$", r.stdout, re.M)
            self.assertIsNotNone(ran, r.stdout)
            self.assertEqual(ran.group(1), shown[str(j)])
        state = d.state_dir
        self.assertEqual(d.stop(), 0)
        with sqlite3.connect(os.path.join(state, "jobs.db")) as db:
            got = dict(db.execute("select id, seconds from history"))
        db.close()
        for j, (least, most) in spans.items():
            self.assertGreaterEqual(got[j], least)
            self.assertLessEqual(got[j], most)


if __name__ == "__main__":
    harness.main()
