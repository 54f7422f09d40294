"""concctl against a real concd: exec jobs and their output, gather,
retries, waiting for a queue slot, wait --any and ps paging, as a user
sees them: output, exit codes and messages."""
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, CONCTL, VALGRIND, Daemon, DaemonTest  # noqa: E402

# Fails until its third run in the directory it runs in.
FLAKY = ('n=$(cat f 2>/dev/null || echo 0); n=$((n+1)); echo $n > f; '
         '[ $n -ge 3 ]')
RESULT_LINE = re.compile(r"^(\d+) (\d+) (\w+) (.*)$")


def result_lines(stdout):
    """gather's outcome lines, without the jobs' own output."""
    return [RESULT_LINE.match(l).groups() for l in stdout.splitlines()
            if RESULT_LINE.match(l)]


def read_line(f, bound=BOUND):
    """The next line of a child's output, waiting at most bound."""
    sel = selectors.DefaultSelector()
    sel.register(f, selectors.EVENT_READ)
    if not sel.select(bound):
        raise AssertionError("no line within %ss" % bound)
    return f.readline()


class Base(DaemonTest):
    args = ("-p", "2")

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="concctl4-")
        os.chmod(self.tmp, 0o755)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def ctl(self, *args, **kw):
        return self.d.concctl(*args, **kw)

    def popen(self, *args):
        return subprocess.Popen([CONCTL, "--socket", self.d.socket] +
                                [str(a) for a in args],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def gather(self, text, *args):
        return self.ctl("gather", *args, input=text)

    def jobs_known(self):
        return self.d.client().call("ps", all=True)["total"]

    def wait_running(self, c, n, bound=BOUND):
        """Ask ps until n jobs run; bounded, never a delay."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            ps = c.call("ps", state="running")
            if ps["total"] >= n:
                return [j["job"] for j in ps["jobs"]]
        raise AssertionError("%d jobs never ran: %r" % (n, ps))


class Exec(Base):
    def test_output_goes_to_stdout_and_stderr_and_success_exits_0(self):
        r = self.ctl("run", "exec", "--", "sh", "-c",
                     "echo out; echo err >&2; echo more")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "out\nmore\n")  # no result after it
        self.assertEqual(r.stderr, "err\n")

    def test_a_failing_command_exits_with_its_own_status(self):
        r = self.ctl("run", "exec", "--", "sh", "-c", "echo partial; exit 3")
        self.assertEqual(r.returncode, 3)
        self.assertEqual(r.stdout, "partial\n")
        self.assertEqual(r.stderr, "")  # its status says it all

    @unittest.skipIf(VALGRIND, "valgrind runs the command itself")
    def test_a_command_that_cannot_run_fails(self):
        r = self.ctl("run", "exec", "--", "no-such-command-here")
        self.assertEqual(r.returncode, 125)  # no status of its own
        self.assertIn('cannot run "no-such-command-here"', r.stderr)

    def test_an_interrupt_exits_130_whatever_the_cancelled_command_did(self):
        # the command dies of the cancel's SIGTERM (143), or traps it
        # and exits 7: concctl was interrupted, so 130, and it says why
        c = self.d.client()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            for script in ("echo ready; sleep 600",
                           'trap "exit 7" TERM; echo ready; '
                           'sleep 600 & wait'):
                p = self.popen("run", "exec", "--", "sh", "-c", script)
                self.assertEqual(read_line(p.stdout), "ready\n")
                p.send_signal(sig)
                out, err = p.communicate(timeout=BOUND)
                job = c.call("ps", all=True)["jobs"][-1]["job"]
                self.assertEqual((p.returncode, out, err),
                                 (130, "", "concctl: job %d cancelled\n"
                                  % job), (sig, script))
                self.assertEqual(c.call("status", job=job)["state"],
                                 "cancelled")

    def test_words_after_dashdash_are_argv_even_options(self):
        r = self.ctl("run", "exec", "-x", "thread", "--", "printf", "%s|",
                     "a b", "-x", "--timeout", "--", "k=v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "a b|-x|--timeout|--|k=v|")

    def test_a_command_of_thousands_of_words_and_env_options_runs(self):
        # as xargs builds them; each word and each --env reaches it
        words = [str(i) for i in range(5000)]
        env = []
        for i in range(300):
            env += ["--env", "V%d=%d" % (i, i)]
        r = self.ctl("run", *env, "exec", "--", "sh", "-c",
                     "echo $# $1 ${5000} $V0 $V299", "sh", *words)
        self.assertEqual((r.returncode, r.stdout),
                         (0, "5000 0 4999 0 299\n"), r.stderr)

    def test_a_directory_whose_name_is_not_utf8_is_named_as_the_cause(self):
        # the protocol carries text as UTF-8: the message says what to do
        d = os.path.join(os.fsencode(self.tmp), b"d\xff")
        os.mkdir(d)

        def ctl(*args):
            return subprocess.run([CONCTL, "--socket", self.d.socket] +
                                  list(args), cwd=d, capture_output=True,
                                  stdin=subprocess.DEVNULL, timeout=BOUND)
        r = ctl("run", "exec", "--", "pwd")
        self.assertEqual(r.returncode, 125, r.stderr)
        self.assertIn(b"concctl: run: the job's directory is not UTF-8, "
                      b"which concd's protocol cannot carry: " + d +
                      b"; name another with --cwd\n", r.stderr)
        r = ctl("run", "--cwd", "/", "exec", "--", "pwd")
        self.assertEqual((r.returncode, r.stdout), (0, b"/\n"), r.stderr)

    def test_dashdash_mistakes_are_usage_errors(self):
        for args, text in ((("run", "exec", "--"), "missing command"),
                           (("run", "--", "echo"), "missing task name"),
                           (("run", "exec", "argv=x", "--", "echo"),
                            "argument given twice: argv"),
                           (("run", "exec", "env=x", "env.A=1", "--",
                             "env"), "argument given twice: env"),
                           (("submit", "exec", "--"), "missing command")):
            r = self.ctl(*args)
            # run exec keeps its own failures apart from a command's
            self.assertEqual(r.returncode,
                             125 if args[:2] == ("run", "exec") else 2,
                             (args, r.stderr))
            self.assertIn(text, r.stderr, args)

    def test_only_the_task_name_makes_a_run_exec_an_options_value_does_not(self):
        # an option's value "exec" leaves a sleep job's usage error at 2
        # and no connection at 3; the task exec, after options and their
        # values, makes them 125
        bad = ("--timeout", "-1")
        nowhere = ("-s", "/nonexistent/concd.sock")
        for args, status in (
                (("run", "sleep", "ms=1", "--label", "exec") + bad, 2),
                (("run", "--label=exec", "sleep", "ms=1") + bad, 2),
                (("run", "-eexec", "sleep", "ms=1") + bad, 2),
                (("run", "-x", "loop", "sleep", "-e", "exec") + bad, 2),
                (("run", "--", "exec"), 2),
                (nowhere + ("run", "sleep", "ms=1", "-e", "exec"), 3),
                (nowhere + ("run", "sleep", "--label", "exec"), 3),
                (("run", "--label", "x", "exec") + bad + ("--", "true"), 125),
                (("run", "-x", "thread", "exec") + bad + ("--", "true"), 125),
                (("run", "-qxthread", "exec") + bad + ("--", "true"), 125),
                (("run", "-e", "A=1", "exec") + bad + ("--", "true"), 125),
                (nowhere + ("run", "-e", "exec", "exec", "--", "true"),
                 125)):
            if args[0] != "-s":
                args = ("-s", self.d.socket) + args
            r = subprocess.run([CONCTL] + list(args), capture_output=True,
                               text=True, stdin=subprocess.DEVNULL,
                               timeout=BOUND)
            self.assertEqual(r.returncode, status, (args, r.stderr))
            self.assertTrue(r.stderr.startswith("concctl: "), r.stderr)

    def test_exec_without_a_command_is_refused_by_the_daemon(self):
        r = self.ctl("run", "exec")
        self.assertEqual(r.returncode, 125, r.stderr)
        self.assertIn("argv", r.stderr)

    def test_cwd_env_and_stdin(self):
        r = self.ctl("run", "exec", "cwd=" + self.tmp, "env.GREETING=hi 1",
                     "env.N=42", "stdin=12", "--", "sh", "-c",
                     'pwd; echo "$GREETING/$N"; cat')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%s\nhi 1/42\n12" % self.tmp)

    def test_stdin_from_a_file(self):
        path = os.path.join(self.tmp, "in")
        with open(path, "w") as f:
            f.write("one\ntwo\nthree\n")
        r = self.ctl("run", "exec", "stdin=@" + path, "--", "wc", "-l")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "3"), r.stderr)
        r = self.ctl("run", "exec", "stdin=@@at", "--", "cat")
        self.assertEqual(r.stdout, "@at")
        r = self.ctl("run", "exec", "stdin=@" + path + ".missing", "--",
                     "cat")
        self.assertEqual(r.returncode, 125)  # a usage error of run exec
        self.assertIn("No such file", r.stderr)

    def test_submit_exec_then_wait_and_result(self):
        r = self.ctl("submit", "exec", "--", "sh", "-c", "exit 0")
        self.assertEqual(r.returncode, 0, r.stderr)
        job = r.stdout.strip()
        self.assertEqual(self.ctl("wait", job).returncode, 0)
        st = self.ctl("status", job).stdout
        self.assertRegex(st, r"(?m)^task\s+exec$")
        self.assertRegex(st, r"(?m)^state\s+succeeded$")

    def test_json_shows_output_events_and_nothing_raw(self):
        r = self.ctl("--json", "run", "exec", "--", "echo", "hello")
        self.assertEqual(r.returncode, 0, r.stderr)
        msgs = [json.loads(l) for l in r.stdout.splitlines()]
        out = [m for m in msgs if m["t"] == "output"]
        self.assertEqual([(m["stream"], m["data"]) for m in out],
                         [("stdout", "aGVsbG8K")])  # base64 of hello\n
        self.assertEqual(msgs[-1]["t"], "end")

    def test_output_of_other_tasks_is_not_printed_as_results(self):
        r = self.ctl("run", "noop", "a=1")
        self.assertEqual((r.returncode, r.stdout), (0, '{"a":1}\n'))

    def test_a_reader_too_slow_slows_the_command_and_misses_nothing(self):
        # concctl's stdout is a pipe nobody reads until the command waits
        # on its own full pipe: concctl stops reading the socket, concd
        # stops reading the command's pipes, and nothing is dropped.
        pidfile = os.path.join(self.tmp, "pid")
        p = self.popen("run", "exec", "--", "sh", "-c",
                       "echo $$ > %s; head -c 16000000 /dev/zero | "
                       "tr '\\0' x | fold -w 1000" % pidfile)
        deadline = time.monotonic() + BOUND
        while not os.path.exists(pidfile) or not open(pidfile).read():
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)  # polling for the file, bounded
        group = int(open(pidfile).read())
        while not self.blocked_on_a_pipe(group, "fold"):
            self.assertLess(time.monotonic(), deadline,
                            "the command never waited on its pipe")
            time.sleep(0.01)  # polling /proc, bounded
        out, err = p.communicate(timeout=BOUND)
        self.assertEqual((p.returncode, err), (0, ""))
        # 16,000,000 x in lines of 1000, the last without its newline
        self.assertEqual(len(out), 16015999)
        job = self.d.client().call("ps", all=True)["jobs"][-1]["job"]
        self.assertNotIn("dropped", self.ctl("status", job).stdout)

    @staticmethod
    def blocked_on_a_pipe(pgid, comm):
        """Is a process comm of group pgid sleeping on a full pipe?"""
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/stat" % pid) as f:
                    stat = f.read()
                with open("/proc/%s/wchan" % pid) as f:
                    wchan = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if (int(fields[2]) == pgid and "(%s)" % comm in stat
                    and "pipe_write" in wchan):
                return True
        return False


class Gather(Base):
    MIX = ("# a comment, then a blank line\n"
           "\n"
           "primes n=1000\n"
           "sleep ms=300 steps=3 -x thread\n"
           "exec -- nosuch-command\n"
           "exec --timeout 30 -- sh -c 'echo \"out put\"; echo err >&2'\n")

    @unittest.skipIf(VALGRIND, "valgrind runs the command itself")
    def test_results_in_input_order_and_failures_gathered(self):
        r = self.gather(self.MIX)
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = result_lines(r.stdout)
        self.assertEqual([l[0] for l in lines], ["0", "1", "2", "3"])
        ids = [int(l[1]) for l in lines]
        self.assertEqual(ids, list(range(ids[0], ids[0] + 4)))
        self.assertEqual([(l[2], l[3]) for l in lines[:2]],
                         [("succeeded", "168"), ("succeeded", "300")])
        self.assertEqual(lines[2][2], "failed")
        self.assertTrue(lines[2][3].startswith(
            'exec: cannot run "nosuch-command"'), lines[2])
        self.assertEqual(lines[3][2], "succeeded")
        # the jobs' output, each line after its index
        self.assertIn("[3] out put\n", r.stdout)
        self.assertIn("[3] err\n", r.stderr)

    def test_all_succeeded_exits_0(self):
        r = self.gather("noop a=1\nnoop b=2\nprimes n=100 -x process\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = result_lines(r.stdout)
        self.assertEqual([(l[0], l[2], l[3]) for l in lines],
                         [("0", "succeeded", '{"a":1}'),
                          ("1", "succeeded", '{"b":2}'),
                          ("2", "succeeded", "25")])

    def test_exit_status_is_the_worst_outcome(self):
        r = self.gather("noop\nsleep ms=600000 --timeout 0.1\n")
        self.assertEqual(r.returncode, 6, r.stderr)
        self.assertEqual(result_lines(r.stdout)[1][2], "timed_out")
        r = self.gather("sleep ms=600000 --timeout 0.1\nexec -- false\n")
        self.assertEqual(r.returncode, 1, r.stderr)

    def test_as_completed_prints_a_fast_job_before_a_slow_one(self):
        gate = self.d.gate()
        text = "exec -x loop -- %s\nnoop\n" % " ".join(
            shlex.quote(a) for a in gate.argv)
        p = subprocess.Popen([CONCTL, "--socket", self.d.socket, "gather",
                              "--as-completed"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        p.stdin.write(text)
        p.stdin.close()
        p.stdin = None
        # the noop's line comes while the first job is held
        self.assertEqual(read_line(p.stdout).split()[0], "1")
        gate.release()
        out, err = p.communicate(timeout=BOUND)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual([l[0] for l in result_lines(out)], ["0"])
        r = self.gather(text)
        self.assertEqual([l[0] for l in result_lines(r.stdout)], ["0", "1"])

    def test_fail_fast_cancels_the_rest(self):
        r = self.gather("sleep ms=600000\n"
                        "exec -- sh -c 'exit 2'\n"
                        "sleep ms=600000 -x thread\n", "--fail-fast")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual([l[2] for l in result_lines(r.stdout)],
                         ["cancelled", "failed", "cancelled"])
        self.assertEqual(result_lines(r.stdout)[1][3], "exited with status 2")

    def test_an_unknown_task_refuses_the_whole_gather(self):
        before = self.jobs_known()
        r = self.gather("noop\n\nnosuchtask x=1\nnoop\n")
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("gather: line 3 (index 1): unknown_task:", r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(self.jobs_known(), before)

    def test_a_bad_line_is_a_usage_error_and_nothing_is_sent(self):
        before = self.jobs_known()
        cases = [("noop\nprimes n=1 --bogus\n", "line 2: unknown option"),
                 ("noop\n\nprimes n\n", "line 3: expected key=value"),
                 ("noop 'x\n", "line 1: unterminated '"),
                 ("exec --\n", "line 1: missing command"),
                 ("noop --json\n", "line 1: unknown option: --json"),
                 ("# nothing\n\n", "no jobs")]
        for text, err in cases:
            r = self.gather(text)
            self.assertEqual(r.returncode, 2, (text, r.stderr))
            self.assertIn(err, r.stderr, text)
        self.assertEqual(self.jobs_known(), before)

    def test_lines_are_checked_before_connecting(self):
        cmd = [CONCTL, "--socket", "/nonexistent/concd.sock", "gather"]
        r = subprocess.run(cmd, input="noop\nnoop --bogus\n",
                           capture_output=True, text=True, timeout=BOUND)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("line 2: unknown option: --bogus", r.stderr)
        r = subprocess.run(cmd, input="noop\n", capture_output=True,
                           text=True, timeout=BOUND)
        self.assertEqual(r.returncode, 3, r.stderr)

    def test_a_line_of_many_words(self):
        line = "exec -- sh -c 'echo $#' sh %s\n" % " ".join(
            str(i) for i in range(3000))
        r = self.gather(line)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("[0] 3000\n", r.stdout)

    def test_a_line_longer_than_a_request_can_hold_is_refused(self):
        # checked before connecting, and before its words take memory
        cmd = [CONCTL, "--socket", "/nonexistent/concd.sock", "gather"]
        r = subprocess.run(cmd, input="noop\nexec -- true %s\n" % (
            "ab " * 1500000), capture_output=True, text=True,
            timeout=BOUND)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr, "concctl: gather: line 2: longer than 4 "
                         "MiB, more than a job's request can hold\n")

    def test_a_line_of_a_quarter_million_arguments_is_read_at_once(self):
        # its key=value words and --env options were compared pairwise:
        # a line of 400,000 took minutes before its error or its connect
        cmd = [CONCTL, "--socket", "/nonexistent/concd.sock", "gather"]
        line = "noop %s k0=2 x.a=1\n" % " ".join(
            "k%d=1" % i for i in range(400000))
        r = subprocess.run(cmd, input=line, capture_output=True, text=True,
                           timeout=BOUND)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("concctl: gather: line 1: argument given twice: k0\n",
                      r.stderr)
        line = "noop %s --env V7\n" % " ".join(
            "--env V%d=1" % i for i in range(250000))
        r = subprocess.run(cmd, input=line, capture_output=True, text=True,
                           timeout=BOUND)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertTrue(r.stderr.startswith(
            "concctl: cannot connect to /nonexistent/concd.sock: "), r.stderr)

    def test_jobs_are_read_from_a_file(self):
        path = os.path.join(self.tmp, "jobs.txt")
        with open(path, "w") as f:
            f.write("noop  'a b'=c  d=\"e \\\"f\\\"\"  # trailing comment\n")
        r = self.ctl("gather", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(result_lines(r.stdout)[0][3],
                         '{"a b":"c","d":"e \\"f\\""}')
        r = self.ctl("gather", path + ".missing")
        self.assertEqual(r.returncode, 2)

    def test_retries_per_line(self):
        r = self.gather("exec cwd=%s --retries 2 -- sh -c '%s'\n"
                        % (self.tmp, FLAKY))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(result_lines(r.stdout)[0][2], "succeeded")
        self.assertRegex(r.stderr, r"(?m)^\[0\] job \d+: attempt 2 after: "
                         r"exited with status 1$")
        self.assertRegex(r.stderr, r"(?m)^\[0\] job \d+: attempt 3 after: ")

    def test_json_prints_every_reply(self):
        r = self.ctl("--json", "gather", input="noop\nprimes n=10\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        msgs = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(msgs[0]["t"], "accepted")
        self.assertEqual(len(msgs[0]["jobs"]), 2)
        ends = [m for m in msgs if m["t"] == "end"]
        self.assertEqual(sorted(m["index"] for m in ends), [0, 1])

    def test_interrupt_cancels_every_job(self):
        p = subprocess.Popen([CONCTL, "--socket", self.d.socket, "gather"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        p.stdin.write("noop\nsleep ms=600000\nsleep ms=600000 -x thread\n")
        p.stdin.close()
        p.stdin = None
        c = self.d.client()
        jobs = self.wait_running(c, 2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=BOUND)
        self.assertEqual(p.returncode, 130, err)
        for job in jobs:
            self.assertEqual(c.call("status", job=job)["state"], "cancelled")
        self.assertEqual([l[2] for l in result_lines(out)],
                         ["succeeded", "cancelled", "cancelled"])

    def test_help(self):
        r = self.ctl("gather", "--help")
        self.assertEqual(r.returncode, 0)
        for opt in ("--as-completed", "--fail-fast", "--wait-for-slot"):
            self.assertIn(opt, r.stdout)


class Retries(Base):
    def flaky(self, *opts):
        return self.ctl("run", *opts, "exec", "cwd=" + self.tmp, "--", "sh",
                        "-c", FLAKY)

    def test_a_job_that_fails_twice_succeeds_with_two_retries(self):
        r = self.flaky("--retries", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        attempts = re.findall(r"(?m)^job \d+: attempt (\d) after: "
                              r"exited with status 1$", r.stderr)
        self.assertEqual(attempts, ["2", "3"], r.stderr)

    def test_one_retry_is_not_enough(self):
        r = self.flaky("--retries", "1", "--retry-delay", "0.01")
        # the last attempt's command exited 1: so does run
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"(?m)^job \d+: attempt 2 after: "
                         r"exited with status 1$")
        self.assertNotIn("attempt 3", r.stderr)

    def test_status_shows_the_attempt(self):
        r = self.ctl("submit", "--retries", "2", "--retry-delay", "0",
                     "exec", "cwd=" + self.tmp, "--", "sh", "-c", FLAKY)
        job = r.stdout.strip()
        self.assertEqual(self.ctl("wait", job).returncode, 0)
        self.assertRegex(self.ctl("status", job).stdout,
                         r"(?m)^attempt\s+3 of 3$")
        job = self.ctl("submit", "noop").stdout.strip()
        self.ctl("wait", job)
        self.assertNotIn("attempt", self.ctl("status", job).stdout)

    def test_quiet_hides_the_attempts(self):
        r = self.flaky("-q", "--retries", "2")
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_bad_values(self):
        for args in (("--retries", "x"), ("--retries", "-1"),
                     ("--retry-delay", "-1"), ("--retry-delay", "soon")):
            r = self.ctl("run", "noop", *args)
            self.assertEqual(r.returncode, 2, args)
        r = self.ctl("run", "noop", "--retries", "1000")
        self.assertEqual(r.returncode, 4)
        self.assertIn("retries", r.stderr)

    def test_a_retry_delay_beyond_an_hour_is_a_usage_error_in_seconds(self):
        # concd takes up to an hour: concctl says so before sending
        for cmd in ("run", "submit"):
            for value in ("7200", "3600.001"):
                r = self.ctl(cmd, "noop", "--retry-delay", value)
                self.assertEqual(r.returncode, 2, (cmd, value, r.stderr))
                self.assertIn("concctl: %s: invalid retry delay: %s "
                              "(seconds, 0 or more, at most 3600)\n"
                              % (cmd, value), r.stderr)
        r = self.gather("noop --retry-delay 7200\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("invalid retry delay: 7200 (seconds, 0 or more, at "
                      "most 3600)", r.stderr)
        self.assertEqual(self.jobs_known(), 0)
        r = self.ctl("run", "noop", "--retry-delay", "3600")
        self.assertEqual(r.returncode, 0, r.stderr)


class WaitAny(Base):
    def test_the_first_to_end_decides(self):
        slow = self.ctl("submit", "sleep", "ms=600000").stdout.strip()
        fast = self.ctl("submit", "sleep", "ms=20").stdout.strip()
        r = self.ctl("wait", "--any", slow, fast)
        self.assertEqual((r.returncode, r.stdout), (0, "%s succeeded\n" % fast))
        bad = self.ctl("submit", "exec", "--", "false").stdout.strip()
        r = self.ctl("wait", slow, bad, "--any")
        self.assertEqual((r.returncode, r.stdout), (1, "%s failed\n" % bad))
        self.assertIn("job %s failed: exited with status 1" % bad, r.stderr)
        r = self.ctl("wait", "--any", slow, "--timeout", "0.1")
        self.assertEqual(r.returncode, 6)
        self.assertEqual(self.ctl("cancel", slow).returncode, 0)
        r = self.ctl("wait", "--any", slow)
        self.assertEqual((r.returncode, r.stdout), (5, "%s cancelled\n" % slow))


class Ps(Base):
    def test_state_limit_and_counts(self):
        r = self.gather("noop\n" * 5 + "exec -- false\n")
        self.assertEqual(r.returncode, 1)
        slow = self.ctl("submit", "sleep", "ms=600000").stdout.strip()
        r = self.ctl("ps", "--state", "succeeded", "-n", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = r.stdout.splitlines()[1:]
        self.assertEqual(len(rows), 2)
        self.assertTrue(all(row.split()[2] == "succeeded" for row in rows))
        self.assertIn("counts: 1 running, 5 succeeded, 1 failed\n", r.stderr)
        self.assertIn("showing 2 of 5\n", r.stderr)
        r = self.ctl("ps", "--limit", "3", "-a")
        self.assertEqual(len(r.stdout.splitlines()), 4)
        self.assertEqual(r.stdout.splitlines()[-1].split()[0], slow)
        self.assertIn("showing 3 of 7\n", r.stderr)
        r = self.ctl("ps")
        self.assertNotIn("showing", r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 2)
        r = self.ctl("ps", "--state", "failed", "-q")
        self.assertEqual((len(r.stdout.splitlines()), r.stderr), (2, ""))
        r = self.ctl("ps", "--state", "sleepy")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown state: sleepy", r.stderr)
        self.ctl("cancel", slow)


class QueueFull(unittest.TestCase):
    def setUp(self):
        self.d = Daemon("-p", "1", "--queue-limit", "1", threads=1)

    def tearDown(self):
        self.d.close()

    def ctl(self, *args, **kw):
        return self.d.concctl(*args, **kw)

    def fill(self):
        """One thread job running, one queued: the thread queue is full.
        Daemon jobs: concd does not drain them when the test stops it."""
        c = self.d.client()
        busy = self.ctl("submit", "sleep", "ms=600000", "-x", "thread",
                        "--daemon").stdout.strip()
        c.wait_state(int(busy), "running")
        queued = self.ctl("submit", "sleep", "ms=600000", "-x", "thread",
                          "--daemon").stdout.strip()
        self.assertTrue(queued.isdigit())
        return busy, queued

    def read_line(self, f, bound=BOUND):
        return read_line(f, bound)

    def test_a_full_queue_exits_4_without_waiting(self):
        self.fill()
        for args in (("submit", "noop", "-x", "thread"),
                     ("run", "noop", "-x", "thread")):
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 4, args)
            self.assertIn("concctl: queue_full: ", r.stderr)
        r = self.ctl("gather", input="noop -x thread\n")
        self.assertEqual(r.returncode, 4)
        self.assertIn("queue_full", r.stderr)

    def wait_for_slot(self, *cmd):
        p = subprocess.Popen([CONCTL, "--socket", self.d.socket] +
                             list(cmd) + ["--wait-for-slot"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.assertEqual(self.read_line(p.stderr),
                         "concctl: queue full, waiting for a slot\n")
        return p

    def test_wait_for_slot_waits_until_there_is_room(self):
        busy, queued = self.fill()
        p = self.wait_for_slot("submit", "noop", "-x", "thread")
        self.assertEqual(self.ctl("cancel", queued).returncode, 0)  # room
        out, err = p.communicate(timeout=BOUND)
        self.assertEqual((p.returncode, err), (0, ""))  # said once
        self.assertTrue(out.strip().isdigit(), out)
        # the noop now waits behind busy: the queue is full again
        p = self.wait_for_slot("run", "noop", "a=1", "-x", "thread")
        self.assertEqual(self.ctl("cancel", busy).returncode, 0)
        out, err = p.communicate(timeout=BOUND)
        self.assertEqual((p.returncode, out, err), (0, '{"a":1}\n', ""))

    def test_an_interrupt_ends_the_wait(self):
        self.fill()
        p = subprocess.Popen([CONCTL, "--socket", self.d.socket, "gather",
                              "--wait-for-slot"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        p.stdin.write("noop -x thread\n")
        p.stdin.close()
        p.stdin = None
        self.assertIn("waiting for a slot", self.read_line(p.stderr))
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=BOUND)
        self.assertEqual(p.returncode, 130)


class Help(Base):
    def test_help_names_the_new_options(self):
        r = self.ctl("run", "--help")
        for opt in ("--retries N", "--retry-delay SECONDS", "--wait-for-slot",
                    "-- COMMAND"):
            self.assertIn(opt, r.stdout)
        self.assertIn("--any", self.ctl("wait", "--help").stdout)
        self.assertIn("--state STATE", self.ctl("ps", "--help").stdout)


if __name__ == "__main__":
    harness.main()
