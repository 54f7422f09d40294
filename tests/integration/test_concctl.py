"""concctl against a real concd: output, exit codes and errors as a user
sees them."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, CONCTL, DaemonTest  # noqa: E402

NOBODY = 65534
POOL_TITLES = ["EXEC", "WORKER", "PID/TID", "STATE", "SERVED", "UPTIME",
               "JOB"]


class Concctl(DaemonTest):
    args = ("-p", "2")

    def ctl(self, *args, **kw):
        return self.d.concctl(*args, **kw)

    def test_run_prints_the_result_and_exits_zero(self):
        r = self.ctl("run", "primes", "n=5000000", "-x", "thread")
        self.assertEqual((r.returncode, r.stdout), (0, "348513\n"))

    def test_run_on_each_executor_gives_the_same_answer(self):
        for x in ("loop", "thread", "process", "auto"):
            r = self.ctl("run", "primes", "n=100000", "-x", x)
            self.assertEqual((r.returncode, r.stdout), (0, "9592\n"), x)

    def test_piped_progress_is_plain_lines_on_stderr(self):
        r = self.ctl("run", "sleep", "ms=300", "steps=3", "-x", "loop")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "300\n")
        lines = [l for l in r.stderr.splitlines() if l.startswith("job ")]
        self.assertEqual(len(lines), 3, r.stderr)
        self.assertTrue(lines[-1].endswith("3/3 100%"), lines)

    def test_submit_returns_an_id_at_once_then_status_ps_wait(self):
        gate = self.d.gate()
        r = self.ctl("submit", "exec", "--", *gate.argv)
        self.assertEqual(r.returncode, 0)
        job = r.stdout.strip()
        self.assertTrue(job.isdigit(), r.stdout)
        st = self.ctl("status", job)
        self.assertEqual(st.returncode, 0)
        self.assertRegex(st.stdout, r"state\s+(queued|running)")
        ps = self.ctl("ps")
        self.assertRegex(ps.stdout, r"(?m)^\s*%s\s+exec\s" % job)
        gate.release()
        w = self.ctl("wait", job)
        self.assertEqual(w.returncode, 0)
        self.assertRegex(self.ctl("status", job).stdout, r"state\s+succeeded")
        self.assertEqual(self.ctl("result", job).stdout, '{"status":0}\n')

    def test_cancel_makes_wait_exit_with_the_cancelled_code(self):
        job = self.ctl("submit", "sleep", "ms=600000", "-x",
                       "thread").stdout.strip()
        self.assertEqual(self.ctl("cancel", job).returncode, 0)
        self.assertEqual(self.ctl("wait", job).returncode, 5)
        self.assertRegex(self.ctl("status", job).stdout, r"state\s+cancelled")

    def test_cancelling_a_job_that_had_ended_says_already_and_exits_0(self):
        c = self.d.client()
        held = int(self.ctl("submit", "--hold", "sleep", "ms=1").stdout)
        done = int(self.ctl("submit", "noop").stdout)
        c.wait_state(done, "succeeded")
        r = self.ctl("cancel", held)
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "job %d: cancelled\n" % held, ""))
        r = self.ctl("cancel", held, done)
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "job %d: already cancelled\n"
                          "job %d: already succeeded\n" % (held, done), ""))
        # on the wire: already, only for a job the cancel changed nothing of
        other = int(self.ctl("submit", "--hold", "sleep", "ms=1").stdout)
        for job, already in ((other, False), (other, True), (done, True)):
            m = c.call("cancel", job=job)
            self.assertEqual((m["t"], m.get("already", False)),
                             ("ok", already), m)

    def test_cancel_wait_hold_and_release_take_every_id_given(self):
        c = self.d.client()
        gate = c.call("submit", task="sleep", args={"ms": 600000})["job"]
        jobs = []
        for i in range(600):
            m = c.call("submit", task="noop", after=[gate])
            self.assertEqual(m["t"], "accepted", m)
            jobs.append(str(m["job"]))
        for verb, line in (("pause", "held"), ("resume", "released")):
            r = self.ctl(verb, *jobs)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.count(": %s\n" % line), 600,
                             r.stdout[-300:])
        r = self.ctl("cancel", *jobs)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(": cancelled\n"), 600)
        r = self.ctl("wait", *jobs)
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertEqual(self.ctl("cancel", gate).returncode, 0)

    def test_requests_past_what_concd_reads_unanswered_do_not_hang(self):
        # concd stops reading a peer that leaves 4 MiB of its replies
        # unread: 100,000 cancels, each refused, are more than that, and
        # concctl reads the replies while it waits to send the rest
        first = 10 ** 6
        r = self.ctl("cancel", *range(first, first + 100000))
        self.assertEqual(r.returncode, 4, r.stderr[-300:])
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 100000)
        self.assertEqual(lines[-1], "concctl: no_such_job: no such job: %d"
                         % (first + 99999))

    def test_output_onto_a_full_disk_is_an_error_not_a_success(self):
        # a log cut short must not pass for a whole one: status 7, or
        # 125 where the status is the command's, and the reason
        job = self.ctl("submit", "exec", "--", "seq", "100000").stdout.strip()
        self.assertEqual(self.ctl("wait", job).returncode, 0)
        for args, status in ((("log", job), 7), (("ps", "--all"), 7),
                             (("--json", "status", job), 7),
                             (("--help",), 7),
                             (("run", "exec", "--", "seq", "10"), 125),
                             (("run", "exec", "--", "sh", "-c",
                               "echo x; exit 3"), 125)):
            with self.subTest(args=args), open("/dev/full", "w") as full:
                r = subprocess.run([CONCTL, "--socket", self.d.socket] +
                                   list(args), stdout=full,
                                   stderr=subprocess.PIPE, text=True,
                                   timeout=BOUND * harness.SLOWDOWN)
                self.assertEqual(r.returncode, status, r.stderr)
                self.assertIn("concctl: cannot write the standard output: "
                              "No space left on device\n", r.stderr)

    def test_started_with_a_standard_stream_closed(self):
        # the socket must not take the closed stream's number: a job's
        # input would be read from the connection, its output written
        # into it
        def run(close, *args):
            return subprocess.run([CONCTL, "--socket", self.d.socket] +
                                  list(args), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True,
                                  preexec_fn=lambda: os.close(close),
                                  timeout=BOUND * harness.SLOWDOWN)
        r = run(0, "run", "exec", "--", "sh", "-c", "cat; echo done")
        self.assertEqual((r.returncode, r.stdout), (0, "done\n"), r.stderr)
        for args, status in ((("run", "exec", "--", "echo", "hi"), 125),
                             (("ps",), 7)):
            r = run(1, *args)
            self.assertEqual(r.returncode, status, r.stderr)
            self.assertIn("concctl: cannot write the standard output: "
                          "Bad file descriptor\n", r.stderr)
        r = run(2, "run", "exec", "--", "echo", "hi")
        self.assertEqual((r.returncode, r.stdout), (0, "hi\n"))

    def test_watch_and_log_follow_stop_at_output_they_cannot_write(self):
        # as tail -f does: following on would lose the rest too; the job
        # is left running
        gate = self.d.gate()
        job = self.ctl("submit", "exec", "--", "sh", "-c",
                       "echo one; " + gate.argv[2]).stdout.strip()
        c = self.d.client()
        c.wait_state(int(job), "running")
        for args in (("watch", job), ("log", "--follow", job),
                     ("--json", "watch", job)):
            with self.subTest(args=args), open("/dev/full", "w") as full:
                r = subprocess.run([CONCTL, "--socket", self.d.socket] +
                                   list(args), stdout=full,
                                   stderr=subprocess.PIPE, text=True,
                                   timeout=BOUND * harness.SLOWDOWN)
                self.assertEqual(r.returncode, 7, r.stderr)
                self.assertIn("cannot write the standard output", r.stderr)
        self.assertRegex(self.ctl("status", job).stdout, r"state\s+running")
        gate.release()
        self.assertEqual(self.ctl("wait", job).returncode, 0)

    def test_wait_with_a_timeout_exits_6_and_leaves_the_job(self):
        job = self.ctl("submit", "sleep", "ms=600000").stdout.strip()
        r = self.ctl("wait", job, "--timeout", "0.2")
        self.assertEqual(r.returncode, 6)
        self.assertRegex(self.ctl("status", job).stdout, r"state\s+running")
        self.ctl("cancel", job)

    def test_a_reader_that_leaves_cancels_what_it_read_and_concctl_dies(self):
        # concctl run exec -- yes | head -1: yes must not run on, unread;
        # concctl ends as a writer into a closed pipe does, of SIGPIPE
        c = self.d.client()
        for argv, lines in ((["run", "exec", "--", "yes"], None),
                            (["gather"], b"exec -- yes\nexec -- yes\n")):
            with self.subTest(command=argv[0]):
                before = {j["job"] for j in c.call("ps", all=True)["jobs"]}
                p = subprocess.Popen([CONCTL, "--socket", self.d.socket]
                                     + argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
                if lines is not None:
                    p.stdin.write(lines)
                p.stdin.close()
                self.assertTrue(p.stdout.readline())
                p.stdout.close()
                self.assertEqual(p.wait(BOUND), -signal.SIGPIPE)
                err = p.stderr.read().decode()
                p.stderr.close()
                jobs = [j for j in c.call("ps", all=True)["jobs"]
                        if j["job"] not in before]
                self.assertEqual(len(jobs), 1 if lines is None else 2)
                if lines is None:  # run says so; gather's lines are gone
                    self.assertIn("job %d cancelled" % jobs[0]["job"], err)
                for j in jobs:
                    self.assertEqual(
                        c.wait_state(j["job"], "cancelled")["state"],
                        "cancelled")

    def test_a_timeout_beyond_a_year_is_a_usage_error_saying_so(self):
        r = self.d.concctl("run", "sleep", "ms=10", "--timeout", "1e9")
        self.assertEqual(r.returncode, 2)
        self.assertIn("concctl: run: invalid timeout: 1e9 (seconds, more "
                      "than 0, at most 31536000)", r.stderr)

    def test_run_with_a_timeout_ends_timed_out(self):
        r = self.ctl("run", "sleep", "ms=600000", "--timeout", "0.2",
                     "-x", "process")
        self.assertEqual(r.returncode, 6)
        self.assertIn("timed out", r.stderr)

    def test_json_prints_one_object_per_line(self):
        r = self.ctl("--json", "run", "primes", "n=100000")
        self.assertEqual(r.returncode, 0)
        msgs = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(msgs[0]["t"], "accepted")
        self.assertEqual(msgs[-1]["t"], "end")
        self.assertEqual(msgs[-1]["result"], 9592)
        self.assertEqual(msgs[-1]["state"], "succeeded")

    def test_arguments_are_typed(self):
        r = self.ctl("--json", "run", "noop", "a=12", "b=true", "c=x y",
                     "d=-3", "e=1.5")
        end = json.loads(r.stdout.splitlines()[-1])
        self.assertEqual(end["result"],
                         {"a": 12, "b": True, "c": "x y", "d": -3, "e": "1.5"})

    def test_refusals_exit_4_with_the_daemons_reason(self):
        cases = [
            (("run", "nope"), "unknown_task"),
            (("run", "primes", "n=x"), "n must be an integer"),
            (("run", "primes"), "missing argument n"),
            (("run", "primes", "n=5", "-x", "loop", "--fresh"), "fresh"),
            (("status", "999999"), "no such job"),
            (("cancel", "999999"), "no such job"),
            (("result", "999999"), "no such job"),
        ]
        for args, text in cases:
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 4, args)
            self.assertIn(text, r.stderr, args)

    def test_usage_errors_exit_2(self):
        for args in (("frobnicate",), ("run",), ("status",),
                     ("run", "primes", "n"), ("run", "primes", "-x", "gpu"),
                     ("wait", "abc")):
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertTrue(r.stderr.strip(), args)

    def test_unique_prefixes_and_ambiguity(self):
        self.assertEqual(self.ctl("pi").stdout.split()[0], "pong")
        r = self.ctl("s", "1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("ambiguous command: s, could be:", r.stderr)
        self.assertIn("status", r.stderr)
        self.assertIn("submit", r.stderr)

    def test_help_on_every_command(self):
        for cmd in ("run", "submit", "wait", "status", "ps", "cancel",
                    "result", "ping", "tasks", "shutdown", "pool"):
            r = self.ctl(cmd, "--help")
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn(cmd, r.stdout)

    def test_usage_names_every_job_option_and_executor(self):
        # --mem, --pids, slurm and remote were left out of the usage
        for cmd in ("run", "submit"):
            r = self.ctl("help", cmd)
            self.assertIn("[--mem SIZE] [--pids N]",
                          " ".join(r.stdout.split()), cmd)
            self.assertIn("auto, loop, thread, process, slurm or remote",
                          r.stdout)
        r = self.ctl("help", "gather")
        self.assertIn("[--mem SIZE] [--pids N]", " ".join(r.stdout.split()))
        r = self.ctl("run", "-x", "bogus", "noop")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown executor: bogus, valid: auto, loop, thread, "
                      "process, slurm, remote\n", r.stderr)

    def test_cannot_connect_exits_3(self):
        r = subprocess.run([CONCTL, "--socket", "/nonexistent/concd.sock",
                            "ping"], capture_output=True, text=True,
                           timeout=BOUND)
        self.assertEqual(r.returncode, 3)
        self.assertIn("cannot connect to /nonexistent/concd.sock", r.stderr)

    def test_tasks_lists_every_task_with_its_default(self):
        r = self.ctl("tasks")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"(?m)^primes\s+\S+\s+process")
        self.assertRegex(r.stdout, r"(?m)^sleep\s+\S+\s+loop")

    def test_interrupting_run_cancels_its_job(self):
        p = subprocess.Popen([CONCTL, "--socket", self.d.socket, "run",
                              "sleep", "ms=600000", "steps=600"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        c = self.d.client()
        job = c.first_job()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=BOUND)
        self.assertEqual(p.returncode, 130)
        self.assertEqual(c.call("status", job=job)["state"], "cancelled")

    def test_other_users_cannot_see_or_touch_my_jobs(self):
        os.chmod(self.d.socket, 0o666)
        mine = self.ctl("submit", "sleep", "ms=600000").stdout.strip()
        theirs = self.ctl("submit", "sleep", "ms=600000",
                          user=NOBODY).stdout.strip()
        self.assertTrue(theirs.isdigit())
        ps = self.ctl("ps", user=NOBODY).stdout
        self.assertNotRegex(ps, r"(?m)^\s*%s\s" % mine)
        self.assertRegex(ps, r"(?m)^\s*%s\s" % theirs)
        r = self.ctl("cancel", mine, user=NOBODY)
        self.assertEqual(r.returncode, 4)
        self.assertIn("no such job", r.stderr)
        self.assertEqual(self.ctl("status", mine, user=NOBODY).returncode, 4)
        r = self.ctl("shutdown", user=NOBODY)
        self.assertEqual(r.returncode, 4)
        self.assertIn("permission", r.stderr)
        # root sees and controls everyone's
        self.assertRegex(self.ctl("ps").stdout, r"(?m)^\s*%s\s" % theirs)
        self.assertEqual(self.ctl("cancel", theirs).returncode, 0)
        self.assertEqual(self.ctl("cancel", mine).returncode, 0)

    def pool(self):
        """concctl pool as rows of words, and its whole output."""
        r = self.ctl("pool")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), POOL_TITLES)
        rows = [l.split() for l in lines[1:]
                if not l.startswith(("queue:", "size:", "limits:"))]
        return rows, r.stdout

    def pool_until(self, ok):
        """Read the pool until ok(rows) holds; bounded, never a delay."""
        deadline = time.monotonic() + BOUND
        while True:
            rows, out = self.pool()
            if ok(rows) or time.monotonic() > deadline:
                return rows, out

    @staticmethod
    def count(rows, exec_):
        return len([r for r in rows if r[0] == exec_])

    def test_pool_lists_the_loop_and_every_idle_worker(self):
        rows, out = self.pool()
        self.assertEqual([r[0] for r in rows],
                         ["loop"] + ["thread"] * 2 + ["process"] * 2, out)
        self.assertEqual([r[3] for r in rows],
                         ["loop", "idle", "idle", "idle", "idle"], out)
        self.assertEqual([r[1] for r in rows], ["0", "0", "1", "0", "1"])
        self.assertEqual([r[6] for r in rows], ["-"] * 5)
        self.assertIn("queue: loop 0 running; thread 0 running, 0 queued; "
                      "process 0 running, 0 queued\n", out)
        self.assertIn("size: threads 2, processes 2\n", out)

    def test_pool_shows_the_busy_process_worker_and_its_job(self):
        job = self.ctl("submit", "sleep", "ms=600000", "-x",
                       "process").stdout.strip()
        self.assertTrue(job.isdigit(), job)

        def busy(rows):
            return [r for r in rows if r[0] == "process" and r[3] == "busy"]
        rows, out = self.pool_until(busy)
        self.assertEqual(len(busy(rows)), 1, out)
        self.assertEqual(busy(rows)[0][6], job, out)
        self.assertIn("process 1 running, 0 queued", out)
        self.assertEqual(self.ctl("cancel", job).returncode, 0)

    def test_pool_resize_changes_the_number_of_workers(self):
        r = self.ctl("pool", "resize", "--processes", "3", "--threads", "1")
        self.assertEqual((r.returncode, r.stdout),
                         (0, "threads 1, processes 3\n"), r.stderr)
        rows, out = self.pool_until(
            lambda rows: (self.count(rows, "thread"),
                          self.count(rows, "process")) == (1, 3))
        self.assertEqual(self.count(rows, "thread"), 1, out)
        self.assertEqual(self.count(rows, "process"), 3, out)
        self.assertEqual(self.count(rows, "loop"), 1, out)
        self.assertIn("size: threads 1, processes 3\n", out)

    def test_pool_resize_needs_an_option_a_valid_size_and_permission(self):
        r = self.ctl("pool", "resize")
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing option: --threads or --processes", r.stderr)
        r = self.ctl("pool", "resize", "--threads", "many")
        self.assertEqual(r.returncode, 2)
        r = self.ctl("pool", "frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown subcommand: frobnicate", r.stderr)
        r = self.ctl("pool", "resize", "--threads", "0")
        self.assertEqual(r.returncode, 4)
        self.assertIn("bad_field: threads must be from 1", r.stderr)
        os.chmod(self.d.socket, 0o666)
        r = self.ctl("pool", "resize", "--processes", "1", user=NOBODY)
        self.assertEqual(r.returncode, 4)
        self.assertIn("permission_denied", r.stderr)
        self.assertEqual(self.count(self.pool()[0], "process"), 2)

    def test_pool_help_documents_resize(self):
        r = self.ctl("pool", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("pool resize [--threads N] [--processes M]", r.stdout)
        self.assertIn("--processes M", r.stdout)
        r = self.ctl("help", "pool", "resize")
        self.assertEqual(r.returncode, 0)
        self.assertIn("admins: root, admin-group, a user instance's user",
                      " ".join(r.stdout.split()))

    def test_fresh_process_runs_the_job_outside_the_pool(self):
        r = self.ctl("run", "primes", "n=1000", "-x", "process", "--fresh")
        self.assertEqual((r.returncode, r.stdout), (0, "168\n"), r.stderr)
        r = self.ctl("--json", "run", "primes", "n=1000", "-x", "process",
                     "--fresh")
        end = json.loads(r.stdout.splitlines()[-1])
        self.assertEqual((end["t"], end["exec"], end["worker"]),
                         ("end", "process", -1))
        job = end["job"]
        self.assertRegex(self.ctl("status", job).stdout,
                         r"(?m)^worker\s+fresh process \(pid %d\)$"
                         % end["tid"])
        self.assertRegex(self.ctl("ps", "-a").stdout,
                         r"(?m)^\s*%d\s+primes\s+succeeded\s+process\s+"
                         r"fresh\s" % job)
        # the warm processes served nothing
        rows, out = self.pool()
        self.assertEqual([r[4] for r in rows if r[0] == "process"],
                         ["0", "0"], out)

    def test_status_names_the_warm_worker_and_its_executor(self):
        for x, idname in (("thread", "tid"), ("process", "pid")):
            r = self.ctl("--json", "run", "primes", "n=1000", "-x", x)
            end = json.loads(r.stdout.splitlines()[-1])
            st = self.ctl("status", end["job"]).stdout
            self.assertRegex(st, r"(?m)^worker\s+%d %s \(%s %d, served 1\)$"
                             % (end["worker"], x, idname, end["tid"]))

    def test_tasks_shows_traits_and_the_auto_rule(self):
        r = self.ctl("tasks")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout.splitlines()[0].split(),
                         ["NAME", "EXECUTORS", "DEFAULT", "TRAITS",
                          "SUMMARY"])
        self.assertRegex(r.stdout, r"(?m)^primes\s+\S+\s+process\s+cpu\s")
        self.assertRegex(r.stdout,
                         r"(?m)^sleep\s+\S+\s+loop\s+non-blocking\s")
        self.assertIn("auto picks: non-blocking -> loop, blocking -> thread, "
                      "cpu -> process (thread when concd runs without "
                      "processes)\n", r.stdout)


if __name__ == "__main__":
    harness.main()
