#!/usr/bin/python3
"""pybench.py -- the figures of issue 14 (Python functions on concd), each
against the standard library's concurrent.futures.ProcessPoolExecutor(2)
measured in the same run.  A concd of its own on a private socket, with 2
warm threads, 2 warm processes and the python task (PLUGIN_DIR, the
build's plugins/dir), the package from the tree's python/ directory, the
functions in a module written to a temporary directory.  Medians of RUNS
runs (default 5), the ratio of each run to its own baseline:

  map     list(ex.map(square, range(CALLS))) on ConcdExecutor("process")
          against ProcessPoolExecutor(2).map (default chunksize);
          target >= 5x the baseline's calls/s.
  rtt     one ex.submit(noop).result(), the median of ROUNDS, against
          ProcessPoolExecutor(2)'s (warm); target <= 1/4.  Beside it, the
          same call by a bare client (a socket, one frame out, frames in
          until the end, on the bench's thread): the floor of the round
          trip through concd and its worker, without the library.
  fresh   the first result in a new Python program (a subprocess) whose
          function imports a module that takes 200 ms to import, after an
          earlier program warmed concd's workers, against the same
          program on ProcessPoolExecutor(2); timed inside the program,
          from before its first import to its first result; target <= 1/10.
  primes  count_primes(N) as 2 jobs, wall clock from submit to both
          results: on 2 processes against 1 (target >= 1.9x), on 2
          threads against 1 (about 1.0x: one GIL); the pools are resized
          with `resize` requests between the runs.  Beside it, the
          machine's own speed-up, the control: the same 2 calls in plain
          processes forked by the bench, both in one against one in each
          of two, wall clock from the start signal to the last end.

Build concd in Release first, then run it by hand on an idle machine:
    cmake -S . -B rel -DCMAKE_BUILD_TYPE=Release && cmake --build rel -j2
    /usr/bin/python3 tests/bench/pybench.py rel/daemon/concd rel/plugins/dir
--check runs it tiny and checks the outcomes, never a timing (ctest).
"""
import concurrent.futures as cf
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.abspath(os.path.join(HERE, "..", "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, PYDIR)
import harness  # noqa: E402
import concd  # noqa: E402
from concd.futures import ConcdExecutor  # noqa: E402

# the functions, in a module of their own (concd imports them by name)
FUNCS = '''\
def square(x):
    return x * x


def noop():
    return None


def count_primes(n):
    """Primes below n, by trial division: pure bytecode, holds the GIL."""
    count = 0
    for k in range(2, n):
        d = 2
        while d * d <= k:
            if k % d == 0:
                break
            d += 1
        else:
            count += 1
    return count


def uses_heavy():
    import pybench_heavy
    return pybench_heavy.VALUE
'''
HEAVY = '''\
import time
time.sleep(0.2)  # a module that takes 200 ms to import
VALUE = 42
'''
# the fresh program: argv[1] "concd" or "pool"; prints the seconds from
# before its first import to its first result, and the result
FRESH = '''\
import time
t0 = time.perf_counter()
import sys
sys.path[:0] = [%(pydir)r, %(mods)r]
import pybench_funcs
if sys.argv[1] == "concd":
    from concd.futures import ConcdExecutor
    ex = ConcdExecutor(executor="process", socket=%(socket)r)
else:
    from concurrent.futures import ProcessPoolExecutor
    ex = ProcessPoolExecutor(2)
r = ex.submit(pybench_funcs.uses_heavy).result()
t = time.perf_counter() - t0
print(t, r)
ex.shutdown()
'''


def bench_map(ex, calls):
    t0 = time.perf_counter()
    out = list(ex.map(square, range(calls)))
    t = time.perf_counter() - t0
    assert out[:3] == [0, 1, 4] and out[-1] == (calls - 1) ** 2, out[-3:]
    assert len(out) == calls
    return calls / t


def bench_rtt(ex, rounds):
    ex.submit(noop).result()  # warm
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = ex.submit(noop).result()
        times.append(time.perf_counter() - t0)
        assert r is None, r
    return statistics.median(times)


def bench_bare(path, mods, rounds):
    """The round trip of the noop call without the library's connection:
    one frame out (concd.pack), the replies read on this thread until the
    end (concd.Frames)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    frames = concd.Frames()

    def request(m):
        s.sendall(concd.pack(m))
        while True:
            for r in list(frames):  # all of them: Frames drops them then
                if r["t"] in ("welcome", "end", "error"):
                    return r
            data = s.recv(1 << 16)
            assert data, "concd closed the connection"
            frames.feed(data)
    try:
        assert request({"t": "hello", "id": 1,
                        "version": concd.PROTO_VERSION})["t"] == "welcome"
        call = {"t": "submit", "watch": True, "task": "python",
                "exec": "process",
                "args": {"call": "pybench_funcs:noop", "args": [],
                         "kwargs": {}, "path": [mods], "cwd": mods}}
        times = []
        for i in range(rounds + 1):
            t0 = time.perf_counter()
            r = request(dict(call, id=2 + i))
            times.append(time.perf_counter() - t0)
            assert r.get("state") == "succeeded", r
        return statistics.median(times[1:])  # the first one warms
    finally:
        s.close()


def fresh_program(kind, socket, mods):
    code = FRESH % {"pydir": PYDIR, "mods": mods, "socket": socket}
    # modules byte-compiled once, as installed ones are (cmake --install
    # compiles the package): their caches in the module directory
    env = dict(os.environ, PYTHONPYCACHEPREFIX=os.path.join(mods, "pyc"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run(["/usr/bin/python3", "-c", code, kind],
                         capture_output=True, text=True, timeout=60,
                         env=env)
    assert out.returncode == 0, out.stderr
    t, r = out.stdout.split()
    assert r == "42", out.stdout
    return float(t)


def primes_pair(ex, n):
    t0 = time.perf_counter()
    fs = [ex.submit(count_primes, n) for _ in range(2)]
    rs = [f.result() for f in fs]
    t = time.perf_counter() - t0
    assert rs[0] == rs[1] and rs[0] == count_primes_small(n), rs
    return t


def plain_pair(n, procs):
    """count_primes(n) twice in plain forked processes: both in one
    (procs 1) or one in each of two (procs 2); the seconds from the start
    signal to the last end."""
    want = count_primes_small(n)
    kids = []
    for _ in range(procs):
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # only the computation: nothing of the parent's
            try:
                os.read(go_r, 1)
                ok = all(count_primes(n) == want for _ in range(2 // procs))
                os.write(done_w, b"1" if ok else b"0")
            finally:
                os._exit(0)
        os.close(go_r)
        os.close(done_w)
        kids.append((pid, go_w, done_r))
    t0 = time.perf_counter()
    for _, go_w, _ in kids:
        os.write(go_w, b"g")
    ends = [os.read(done_r, 1) for _, _, done_r in kids]
    t = time.perf_counter() - t0
    for pid, go_w, done_r in kids:
        os.close(go_w)
        os.close(done_r)
        os.waitpid(pid, 0)
    assert ends == [b"1"] * procs, ends
    return t


def count_primes_small(n):
    # the answer, once per n (the bench's own process may take long here)
    if n not in _answers:
        _answers[n] = count_primes(n)
    return _answers[n]


_answers = {}


def main():
    check = "--check" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--check"]
    if len(args) != 2:
        sys.exit("usage: pybench.py [--check] CONCD PLUGIN_DIR")
    concd_exe, plugins = args
    if not plugins or not os.path.exists(os.path.join(plugins,
                                                      "python.so")):
        print("SKIP: no python task in %r (python3-dev missing?)" % plugins)
        sys.exit(77 if check else 0)
    runs = 1 if check else int(os.environ.get("RUNS", "5"))
    calls = 200 if check else int(os.environ.get("CALLS", "100000"))
    rounds = 5 if check else int(os.environ.get("ROUNDS", "500"))
    primes_n = 2000 if check else int(os.environ.get("PRIMES", "300000"))
    with tempfile.TemporaryDirectory(prefix="concd-pybench-") as mods:
        with open(os.path.join(mods, "pybench_funcs.py"), "w") as f:
            f.write(FUNCS)
        with open(os.path.join(mods, "pybench_heavy.py"), "w") as f:
            f.write(HEAVY)
        sys.path.insert(0, mods)
        global square, noop, count_primes
        import pybench_funcs
        square = pybench_funcs.square
        noop = pybench_funcs.noop
        count_primes = pybench_funcs.count_primes
        d = harness.Daemon("-p", "2", "--plugin-dir", plugins,
                           "--state-dir", "none", threads=2, exe=concd_exe)
        try:
            rows = run(d, mods, runs, calls, rounds, primes_n)
        finally:
            d.close()
    if check:
        print("pybench: ok")
        return
    report(rows, runs, calls, rounds, primes_n)


def run(d, mods, runs, calls, rounds, primes_n):
    rows = {k: [] for k in ("map", "map0", "rtt", "rtt0", "bare", "fresh",
                            "fresh0", "p1", "p2", "t1", "t2", "b1", "b2")}
    with ConcdExecutor(executor="process", socket=d.socket) as ex, \
            cf.ProcessPoolExecutor(2) as pool:
        bench_rtt(pool, 1)  # the pool's workers started
        # an earlier program warms concd's workers (both of them), and
        # each kind of program has its modules compiled once
        for _ in range(2):
            fresh_program("concd", d.socket, mods)
        fresh_program("pool", d.socket, mods)
        for r in range(runs):
            rows["map0"].append(bench_map(pool, calls))
            rows["map"].append(bench_map(ex, calls))
            rows["rtt0"].append(bench_rtt(pool, rounds))
            rows["rtt"].append(bench_rtt(ex, rounds))
            rows["bare"].append(bench_bare(d.socket, mods, rounds))
            rows["fresh0"].append(fresh_program("pool", d.socket, mods))
            rows["fresh"].append(fresh_program("concd", d.socket, mods))
            print("run %d: map %.0f/s (pool %.0f/s), rtt %.0f us (pool "
                  "%.0f us, bare %.0f us), fresh %.1f ms (pool %.1f ms)"
                  % (r + 1, rows["map"][-1], rows["map0"][-1],
                     rows["rtt"][-1] * 1e6, rows["rtt0"][-1] * 1e6,
                     rows["bare"][-1] * 1e6,
                     rows["fresh"][-1] * 1e3, rows["fresh0"][-1] * 1e3),
                  flush=True)
    c = d.client()
    th = ConcdExecutor(executor="thread", socket=d.socket)
    pr = ConcdExecutor(executor="process", socket=d.socket)
    try:
        count_primes_small(primes_n)
        for r in range(runs):
            for size in (1, 2):
                c.call("resize", threads=size, processes=size)
                until_pool(c, size)
                rows["p%d" % size].append(primes_pair(pr, primes_n))
                rows["t%d" % size].append(primes_pair(th, primes_n))
                rows["b%d" % size].append(plain_pair(primes_n, size))
            print("run %d: count_primes x2: 1 process %.3f s, 2 processes "
                  "%.3f s, 1 thread %.3f s, 2 threads %.3f s; plain "
                  "processes, 1 %.3f s, 2 %.3f s"
                  % (r + 1, rows["p1"][-1], rows["p2"][-1], rows["t1"][-1],
                     rows["t2"][-1], rows["b1"][-1], rows["b2"][-1]),
                  flush=True)
    finally:
        th.shutdown()
        pr.shutdown()
    return rows


def until_pool(c, size):
    """Wait for the pools to have size live workers each (each pool reply
    is an event; the asking is bounded)."""
    deadline = time.monotonic() + harness.BOUND
    while time.monotonic() < deadline:
        p = c.call("pool")
        ws = p.get("workers", [])
        live = {}
        for w in ws:
            if w.get("state") in ("idle", "busy") and w.get("worker", -1) >= 0:
                live[w.get("exec")] = live.get(w.get("exec"), 0) + 1
        if live.get("thread") == size and live.get("process") == size:
            return
        time.sleep(0.01)
    raise AssertionError("pools not at %d workers within %ss: %r"
                         % (size, harness.BOUND, p))


def report(rows, runs, calls, rounds, n):
    med = statistics.median

    def ratio(a, b):
        return med(x / y for x, y in zip(rows[a], rows[b]))

    def span(k, scale=1.0):
        return "%.4g-%.4g" % (min(rows[k]) * scale, max(rows[k]) * scale)

    m, r, f = ratio("map", "map0"), ratio("rtt", "rtt0"), \
        ratio("fresh", "fresh0")
    p, t, b0 = ratio("p1", "p2"), ratio("t1", "t2"), ratio("b1", "b2")
    print("\nmedians of %d runs (range of the runs in brackets); load "
          "average at the end %.2f %.2f %.2f:" % ((runs,) + os.getloadavg()))
    print("  map square x%d    concd %8.0f/s [%s]  pool %8.0f/s [%s]  "
          "%.2fx  (target >= 5x: %s)"
          % (calls, med(rows["map"]), span("map"), med(rows["map0"]),
             span("map0"), m, "ok" if m >= 5 else "MISSED"))
    print("  submit().result()  concd %8.0f us [%s]  pool %8.0f us [%s]  "
          "%.3fx  (target <= 0.25x: %s)"
          % (med(rows["rtt"]) * 1e6, span("rtt", 1e6),
             med(rows["rtt0"]) * 1e6, span("rtt0", 1e6), r,
             "ok" if r <= 0.25 else "MISSED"))
    b = ratio("bare", "rtt0")
    print("  bare client (floor) concd %7.0f us [%s]  %.3fx the pool's"
          % (med(rows["bare"]) * 1e6, span("bare", 1e6), b))
    print("  fresh program      concd %8.1f ms [%s]  pool %8.1f ms [%s]  "
          "%.3fx  (target <= 0.1x: %s)"
          % (med(rows["fresh"]) * 1e3, span("fresh", 1e3),
             med(rows["fresh0"]) * 1e3, span("fresh0", 1e3), f,
             "ok" if f <= 0.1 else "MISSED"))
    print("  count_primes(%d) x2, wall clock:" % n)
    print("    1 process %.3f s  2 processes %.3f s  speed-up %.2fx  "
          "(target >= 1.9x: %s)" % (med(rows["p1"]), med(rows["p2"]), p,
                                    "ok" if p >= 1.9 else "MISSED"))
    print("    1 thread  %.3f s  2 threads   %.3f s  speed-up %.2fx  "
          "(about 1.0x: the GIL)" % (med(rows["t1"]), med(rows["t2"]), t))
    print("    the control, plain processes: 1 %.3f s  2 %.3f s  speed-up "
          "%.2fx (concd's process speed-up is %.2f of it)"
          % (med(rows["b1"]), med(rows["b2"]), b0, p / b0))


if __name__ == "__main__":
    main()
