"""Warm pools: the process pool, crash isolation, fresh workers, resize,
config reload, warm per-worker state and task plugins."""
import os
import shutil
import signal
import struct
import sys
import tempfile
import unittest

import msgpack

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, VALGRIND, Daemon, DaemonTest  # noqa: E402

PLUGINS = os.environ.get("CONCD_PLUGINS", "")


def run(c, **submit):
    rid = c.request("submit", watch=True, **submit)
    return c.until_end(rid)


def pool_rows(c, exec_):
    return [w for w in c.call("pool")["workers"] if w["exec"] == exec_]


def wait_until(c, check, bound=BOUND):
    """Re-ask the daemon until check(pool reply) holds; each round trip is
    an event, and the loop is bounded."""
    import time
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        p = c.call("pool")
        if check(p):
            return p
    raise AssertionError("pool never reached the expected state: %r" % p)


class ProcessPool(DaemonTest):
    args = ("-p", "2")

    def test_pool_starts_with_the_configured_workers(self):
        c = self.d.client()
        p = c.call("pool")
        self.assertEqual((p["threads"], p["processes"]), (2, 2))
        procs = pool_rows(c, "process")
        self.assertEqual(sorted(w["worker"] for w in procs), [0, 1])
        self.assertTrue(all(w["state"] == "idle" for w in procs))
        pids = {w["pid"] for w in procs}
        self.assertEqual(len(pids), 2)
        self.assertNotIn(self.d.proc.pid, pids)
        self.assertEqual(len(pool_rows(c, "thread")), 2)
        self.assertEqual(len(pool_rows(c, "loop")), 1)

    def test_jobs_run_in_the_workers_and_reuse_them(self):
        c = self.d.client()
        pids = {w["pid"] for w in pool_rows(c, "process")}
        seen = set()
        for i in range(6):
            end = run(c, task="primes", args={"n": 100000},
                      exec="process")[-1]
            self.assertEqual((end["state"], end["result"]), ("succeeded",
                                                              9592))
            self.assertIn(end["tid"], pids)
            seen.add(end["tid"])
        served = sum(w["served"] for w in pool_rows(c, "process"))
        self.assertEqual(served, 6)

    def test_progress_streams_back_from_a_worker_process(self):
        ev = run(self.d.client(), task="sleep", args={"ms": 200, "steps": 4},
                 exec="process")
        self.assertEqual([e["done"] for e in ev if e["t"] == "progress"],
                         [1, 2, 3, 4])
        self.assertEqual(ev[-1]["result"], 200)

    def test_idle_workers_exit_by_themselves_when_concd_stops(self):
        # they run their exit path (under ASan, its leak check) instead
        # of being killed
        d = Daemon("-d", "-p", "2")
        try:
            c = d.client()
            workers = pool_rows(c, "process")
            end = run(c, task="primes", args={"n": 1000},
                      exec="process")[-1]
            self.assertEqual(end["result"], 168)
            self.assertEqual(d.stop(), 0)
            log = d.log()
            for w in workers:
                self.assertIn("process worker %d (pid %d) exited\n"
                              % (w["worker"], w["pid"]), log)
            self.assertNotIn("while stopping", log)
        finally:
            d.close()

    def test_a_job_queued_in_a_busy_worker_ends_at_once_when_cancelled(self):
        d = Daemon("-p", "1")
        try:
            c = d.client()
            gate = d.gate()
            # in one write, so that the sleep is handed to the worker
            # behind the held job, before that job has started
            frames = b""
            for rid, (task, args) in enumerate(
                    (("exec", {"argv": gate.argv}),
                     ("sleep", {"ms": 600000})), 1):
                body = msgpack.packb(dict(t="submit", id=rid, task=task,
                                          args=args, exec="process",
                                          watch=True))
                frames += struct.pack(">I", len(body)) + body
            c.next_id = 3
            c.send_raw(frames)
            held = c.recv_for(1)["job"]
            queued = c.recv_for(2)["job"]
            c.wait_state(held, "running")
            self.assertEqual(c.call("cancel", job=queued)["t"], "ok")
            end = c.until_end(2)[-1]
            self.assertEqual((end["job"], end["state"]),
                             (queued, "cancelled"))
            self.assertEqual(c.call("status", job=held)["state"], "running")
            gate.release()
            self.assertEqual(c.until_end(1)[-1]["state"], "succeeded")
        finally:
            d.close()

    def test_a_killed_worker_fails_only_its_job_and_is_replaced(self):
        c = self.d.client()
        rid = c.request("submit", task="sleep", args={"ms": 600000},
                        exec="process", watch=True)
        job = c.recv()["job"]
        other = c.call("submit", task="sleep", args={"ms": 300},
                       exec="process")["job"]
        st = c.wait_state(job, "running")
        os.kill(st["tid"], signal.SIGKILL)
        end = c.until_end(rid)[-1]
        self.assertEqual((end["state"], end["error"]),
                         ("failed", "worker_died"))
        self.assertIn("killed by signal 9", end["message"])
        # the pool is back to size with a new pid; the other job is fine
        p = wait_until(c, lambda p: len([w for w in p["workers"]
                                         if w["exec"] == "process"]) == 2)
        self.assertNotIn(st["tid"], [w.get("pid") for w in p["workers"]])
        self.assertEqual(c.until_end(c.request("watch", job=other))[-1]
                         ["state"], "succeeded")
        self.assertEqual(run(c, task="primes", args={"n": 1000},
                             exec="process")[-1]["result"], 168)
        self.assertIn("killed by signal 9", self.d.log())

    def test_cancel_reaches_a_job_inside_a_worker(self):
        c = self.d.client()
        rid = c.request("submit", task="sleep", args={"ms": 600000},
                        exec="process", watch=True)
        job = c.recv()["job"]
        c.wait_state(job, "running")
        c.request("cancel", job=job)
        self.assertEqual(c.until_end(rid)[-1]["state"], "cancelled")
        # the same worker serves on
        end = run(c, task="noop", exec="process")[-1]
        self.assertEqual(end["state"], "succeeded")

    def test_a_worker_that_ignores_a_cancel_is_killed_and_replaced(self):
        c = self.d.client()
        rid = c.request("submit", task="sleep", args={"ms": 600000},
                        exec="process", watch=True)
        job = c.recv_for(rid)["job"]
        st = c.wait_state(job, "running")
        os.kill(st["tid"], signal.SIGSTOP)  # it cannot hear the cancel
        wait_until(c, lambda p: any(w.get("pid") == st["tid"] and
                                    w["state"] == "stopped"
                                    for w in p["workers"]))
        c.call("cancel", job=job)
        end = c.until_end(rid)[-1]
        self.assertEqual(end["state"], "cancelled")
        self.assertIn("cannot hear its cancel (worker stopped)", self.d.log())
        p = wait_until(c, lambda p: len([w for w in p["workers"]
                                         if w["exec"] == "process"]) == 2)
        self.assertNotIn(st["tid"], [w.get("pid") for w in p["workers"]])

    def test_fresh_jobs_get_a_worker_of_their_own(self):
        c = self.d.client()
        pool_pids = {w["pid"] for w in pool_rows(c, "process")}
        a = run(c, task="primes", args={"n": 1000}, exec="process",
                fresh=True)[-1]
        b = run(c, task="primes", args={"n": 1000}, exec="process",
                fresh=True)[-1]
        for e in (a, b):
            self.assertEqual((e["result"], e["worker"], e["served"]),
                             (168, -1, 1))
            self.assertNotIn(e["tid"], pool_pids)
        self.assertNotEqual(a["tid"], b["tid"])
        t = run(c, task="primes", args={"n": 1000}, exec="thread",
                fresh=True)[-1]
        self.assertEqual((t["result"], t["worker"]), (168, -1))
        # fresh workers are gone afterwards: no zombies
        wait_until(c, lambda p: all(w["state"] != "fresh"
                                    for w in p["workers"]))
        for e in (a, b):
            self.assertFalse(os.path.exists("/proc/%d" % e["tid"]))

    def test_resize_grows_and_shrinks_both_pools(self):
        c = self.d.client()
        ok = c.call("resize", threads=4, processes=3)
        self.assertEqual((ok["t"], ok["threads"], ok["processes"]),
                         ("ok", 4, 3))
        p = c.call("pool")
        self.assertEqual(len(pool_rows(c, "process")), 3)
        self.assertEqual(len(pool_rows(c, "thread")), 4)
        busy = c.call("submit", task="sleep", args={"ms": 400},
                      exec="process")["job"]
        c.call("resize", threads=1, processes=1)
        wait_until(c, lambda p: len([w for w in p["workers"]
                                     if w["exec"] == "thread"]) == 1)
        # a busy worker finishes its job before it leaves
        self.assertEqual(c.until_end(c.request("watch", job=busy))[-1]
                         ["state"], "succeeded")
        wait_until(c, lambda p: len([w for w in p["workers"]
                                     if w["exec"] == "process"]) == 1)
        self.assertEqual(run(c, task="primes", args={"n": 1000},
                             exec="process")[-1]["result"], 168)
        self.assertEqual(p["t"], "poolinfo")

    def test_resize_refuses_out_of_range_sizes(self):
        c = self.d.client()
        m = c.call("resize", threads=0)
        self.assertEqual((m["t"], m["error"]), ("error", "bad_field"))
        m = c.call("resize", processes=100000)
        self.assertEqual((m["t"], m["error"]), ("error", "bad_field"))

    def test_deep_queues_are_spread_over_both_workers(self):
        c = self.d.client()
        rids = [c.request("submit", task="primes", args={"n": 2000000},
                          exec="process", watch=True) for _ in range(8)]
        ends = []
        for rid in rids:
            ends.append(c.until_end(rid)[-1])
        self.assertTrue(all(e["result"] == 148933 for e in ends))
        self.assertEqual({e["worker"] for e in ends}, {0, 1})


class Recycling(DaemonTest):
    args = ("-p", "1", "--max-jobs-per-worker", "3")

    def test_a_worker_is_replaced_after_max_jobs(self):
        c = self.d.client()
        pids = [run(c, task="noop", exec="process")[-1]["tid"]
                for _ in range(7)]
        self.assertEqual(len(set(pids[0:3])), 1)
        self.assertEqual(len(set(pids[3:6])), 1)
        self.assertNotEqual(pids[0], pids[3])
        self.assertNotEqual(pids[3], pids[6])


class NoProcesses(DaemonTest):
    args = ("-p", "0")

    def test_auto_falls_back_to_threads_and_process_is_refused(self):
        c = self.d.client()
        self.assertEqual(run(c, task="primes", args={"n": 10})[-1]["exec"],
                         "thread")
        m = c.call("submit", task="primes", args={"n": 10}, exec="process")
        self.assertEqual((m["t"], m["error"]), ("error", "bad_executor"))


def worker_argv(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().decode().split("\0")[:-1]


def thread_state(pid, tid):
    with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class BusyPoll(DaemonTest):
    # No timer at all: no sweep (--finished-ttl 0), no STATUS= (no
    # NOTIFY_SOCKET).  A result the loop failed to hear would never be
    # heard, and the job's end would not come within the bound.
    args = ("-p", "1", "--finished-ttl", "0")
    notify = False

    def test_every_end_is_heard_as_the_poll_window_opens_and_closes(self):
        c = self.d.client()
        shapes = [
            ("noop", {}, None),
            ("sleep", {"ms": 1}, 1),          # outlasts the window
            ("sleep", {"ms": 4, "steps": 4}, 4),
            ("primes", {"n": 30000}, 3245),
        ]
        for i in range(240):
            task, args, want = shapes[i % len(shapes)]
            ex = ("thread", "process", "loop")[i % 3]
            end = run(c, task=task, args=args, exec=ex)[-1]
            self.assertEqual(end["state"], "succeeded", (i, task, ex, end))
            if want is not None:
                self.assertEqual(end["result"], want, (i, task, ex))

    def test_warm_workers_are_told_the_window_and_an_idle_daemon_sleeps(self):
        c = self.d.client()
        for ex in ("loop", "thread", "process"):
            self.assertEqual(run(c, task="noop", exec=ex)[-1]["state"],
                             "succeeded")
        pid = pool_rows(c, "process")[0]["pid"]
        argv = worker_argv(pid)
        self.assertEqual(argv[argv.index("--busy-poll") + 1], "50")
        # Polling yields but never sleeps: a loop or worker stuck polling
        # would stay runnable (R) for good.
        import time
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            states = (thread_state(self.d.proc.pid, self.d.proc.pid),
                      thread_state(pid, pid))
            if states == ("S", "S"):
                break
        self.assertEqual(states, ("S", "S"))


class LongBusyPoll(DaemonTest):
    # A window of 0.1 s: the worker is surely polling when the next
    # frames come.
    args = ("-p", "1", "--busy-poll", "100000")

    def test_a_run_and_its_cancel_in_one_read_end_the_job_at_once(self):
        import msgpack
        import struct
        c = self.d.client()
        self.assertEqual(run(c, task="noop", exec="process")[-1]["job"], 1)
        # job 2 and its cancel reach the daemon, then the polling worker,
        # in one write each
        frames = b""
        for m in (dict(t="submit", id=10, task="sleep",
                       args={"ms": 600000}, exec="process", watch=True),
                  dict(t="cancel", id=11, job=2)):
            body = msgpack.packb(m)
            frames += struct.pack(">I", len(body)) + body
        c.send_raw(frames)
        end = c.until_end(10)[-1]
        self.assertEqual((end["job"], end["state"]), (2, "cancelled"))
        self.assertEqual(c.recv_for(11)["t"], "ok")


class NoBusyPoll(DaemonTest):
    args = ("-p", "1", "--busy-poll", "0")

    def test_without_polling_every_executor_still_answers(self):
        c = self.d.client()
        for ex in ("loop", "thread", "process"):
            for _ in range(20):
                end = run(c, task="primes", args={"n": 1000}, exec=ex)[-1]
                self.assertEqual((end["state"], end["result"]),
                                 ("succeeded", 168))
        argv = worker_argv(pool_rows(c, "process")[0]["pid"])
        self.assertEqual(argv[argv.index("--busy-poll") + 1], "0")

    def test_the_window_is_bounded(self):
        import subprocess
        from harness import CONCD
        r = subprocess.run([CONCD, "--busy-poll", "100001"],
                           capture_output=True, text=True, timeout=BOUND)
        self.assertEqual(r.returncode, 2)
        self.assertIn("busy-poll must be a number from 0 to 100000",
                      r.stderr)


@unittest.skipIf(VALGRIND, "under valgrind /proc/PID/exe names valgrind")
class Upgrade(unittest.TestCase):
    def test_workers_run_the_daemons_binary_even_once_it_is_replaced(self):
        import tempfile
        from harness import CONCD
        d = tempfile.mkdtemp()
        exe = os.path.join(d, "concd")
        shutil.copy(CONCD, exe)
        try:
            dm = Daemon("-p", "1", exe=exe)
            try:
                c = dm.client()
                w = pool_rows(c, "process")[0]["pid"]
                self.assertEqual(os.readlink("/proc/%d/exe" % w), exe)
                # an upgrade puts a new file at the path
                shutil.copy(CONCD, exe + ".new")
                os.rename(exe + ".new", exe)
                own = os.readlink("/proc/%d/exe" % dm.proc.pid)
                self.assertEqual(own, exe + " (deleted)")
                self.assertEqual(c.call("resize", processes=2)["t"], "ok")
                p = wait_until(c, lambda p: len(
                    [w for w in p["workers"] if w["exec"] == "process"]) == 2)
                new = [w["pid"] for w in p["workers"]
                       if w["exec"] == "process" and w["worker"] == 1][0]
                self.assertEqual(os.readlink("/proc/%d/exe" % new), own)
                end = run(c, task="primes", args={"n": 1000}, exec="process",
                          fresh=True)[-1]
                self.assertEqual((end["state"], end["result"]),
                                 ("succeeded", 168))
            finally:
                dm.close()
        finally:
            shutil.rmtree(d)


class Config(unittest.TestCase):
    def test_config_sets_pools_and_sighup_reloads_them(self):
        import tempfile
        d = tempfile.mkdtemp()
        conf = os.path.join(d, "concd.conf")
        with open(conf, "w") as f:
            f.write("# test\nthreads = 3\nprocesses=1\n")
        try:
            dm = Daemon("-c", conf)
            try:
                c = dm.client()
                p = c.call("pool")
                # -t 2 from the harness wins over the file
                self.assertEqual((p["threads"], p["processes"]), (2, 1))
                job = c.call("submit", task="sleep", args={"ms": 300},
                             exec="process")["job"]
                with open(conf, "w") as f:
                    f.write("threads = 5\nprocesses = 2\n")
                dm.proc.send_signal(signal.SIGHUP)
                wait_until(c, lambda p: p["processes"] == 2)
                self.assertEqual(c.call("pool")["threads"], 2)
                self.assertEqual(c.until_end(c.request("watch", job=job))
                                 [-1]["state"], "succeeded")
                with open(conf, "w") as f:
                    f.write("processes = lots\n")
                dm.proc.send_signal(signal.SIGHUP)
                self.assertEqual(c.call("ping")["t"], "pong")
            finally:
                dm.close()
        finally:
            shutil.rmtree(d)

    def test_bad_config_stops_start_up_with_the_line(self):
        import subprocess
        import tempfile
        from harness import CONCD
        d = tempfile.mkdtemp()
        try:
            conf = os.path.join(d, "concd.conf")
            with open(conf, "w") as f:
                f.write("threads = 2\nfrobs = 1\n")
            r = subprocess.run([CONCD, "-f", "-c", conf, "-s",
                                os.path.join(d, "s")], capture_output=True,
                               text=True, timeout=BOUND)
            self.assertEqual(r.returncode, 1)
            self.assertIn("concd.conf:2: unknown key \"frobs\"", r.stderr)
            r = subprocess.run([CONCD, "-f", "-c", os.path.join(d, "none")],
                               capture_output=True, text=True, timeout=BOUND)
            self.assertEqual(r.returncode, 1)
            self.assertIn("No such file", r.stderr)
        finally:
            shutil.rmtree(d)


    def start(self, conf_text, args=None):
        """concd -f with conf_text as its file and args (None: -s, a
        socket of its own): (the run, the conf path), for a start-up that
        is refused."""
        import subprocess
        from harness import CONCD
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        conf = os.path.join(d, "concd.conf")
        with open(conf, "w") as f:
            f.write(conf_text)
        if args is None:
            args = ("-s", os.path.join(d, "s"))
        r = subprocess.run([CONCD, "-f", "-c", conf, "--state-dir", "none"] +
                           list(args), capture_output=True, text=True,
                           timeout=BOUND)
        return r, conf

    def test_an_admin_group_that_does_not_exist_stops_start_up(self):
        """By name or by number: a gid that no group has is refused as a
        name that none has."""
        import grp
        gid = 999999
        while True:
            try:
                grp.getgrgid(gid)
            except KeyError:
                break
            gid += 1
        for value in (str(gid), "nosuchgroup"):
            r, conf = self.start("threads = 2\nadmin-group = %s\n" % value)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(r.stderr, "concd: %s:2: admin-group: no group "
                             "\"%s\"\n" % (conf, value))

    def test_the_files_socket_is_checked_with_its_line_even_under_s(self):
        """A socket path longer than a socket address holds stops the
        start with FILE:LINE, with -s overriding it or not; -s itself is
        checked as the key is (exit 2)."""
        long = "/tmp/" + "a" * 110
        for args in ((), None):
            r, conf = self.start("threads = 2\nsocket = %s\n" % long, args)
            self.assertEqual(r.returncode, 1, (args, r.stderr))
            self.assertEqual(r.stderr, "concd: %s:2: socket: 115 bytes, "
                             "longer than the 107 a socket address holds: "
                             "%s\n" % (conf, long), args)
        r, conf = self.start("threads = 2\n", ("-s", long))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr, "concd: --socket: socket: 115 bytes, "
                         "longer than the 107 a socket address holds: "
                         "%s\n" % long)


@unittest.skipUnless(PLUGINS, "CONCD_PLUGINS is not set")
class Plugins(unittest.TestCase):
    def setUp(self):
        import tempfile
        self.dir = tempfile.mkdtemp()
        for name in ("greet.so", "bad_abi.so", "dup_name.so"):
            shutil.copy(os.path.join(PLUGINS, name), self.dir)
        with open(os.path.join(self.dir, "junk.so"), "w") as f:
            f.write("not an object\n")
        self.d = Daemon("-p", "1", "--plugin-dir", self.dir)

    def tearDown(self):
        self.d.close()
        shutil.rmtree(self.dir)

    def test_a_plugin_task_runs_on_every_executor(self):
        c = self.d.client()
        for x in ("loop", "thread", "process"):
            end = run(c, task="greet", args={"name": "world"}, exec=x)[-1]
            self.assertEqual((end["state"], end["result"]),
                             ("succeeded", "hello, world"), x)
        m = c.call("submit", task="greet", args={})
        self.assertEqual((m["t"], m["error"]), ("error", "bad_args"))

    def test_tasks_lists_plugin_tasks(self):
        names = [t["name"] for t in self.d.client().call("tasks")["tasks"]]
        self.assertIn("greet", names)
        self.assertEqual(names.count("sleep"), 1)

    def test_bad_plugins_are_refused_with_a_log_line(self):
        log = self.d.log()
        self.assertIn("bad_abi.so: refused: built for task ABI", log)
        self.assertIn("dup_name.so: task refused: a task named sleep", log)
        self.assertIn("junk.so", log)
        self.assertIn("greet.so: task greet", log)
        # the built-in sleep is the one that runs
        end = run(self.d.client(), task="sleep", args={"ms": 1})[-1]
        self.assertEqual(end["result"], 1)


if __name__ == "__main__":
    harness.main()
