#!/usr/bin/python3
"""slurmbench.py -- what concd adds to a Slurm job: on a private
single-node cluster (tests/integration/slurm_cluster.py), N `exec true`
jobs on the slurm executor, one after another through one connection
(submit, wait for the end, the next), against N `srun true` run one after
another by this script in the same minutes.  Medians of RUNS runs, the
ratio of each run to its own baseline.  Target (issue 13): <= 1.1x srun.
(Many jobs at once would measure Slurm's scheduler instead: on two CPUs
it starts the jobs that wait for one at its own pace, seconds apart.)

Needs root, slurm-wlm and munge (scripts/deps.sh).  Run it by hand on an
idle machine:
    /usr/bin/python3 tests/bench/slurmbench.py build/daemon/concd
--check runs it tiny and checks the outcomes, never a timing (ctest).
"""
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
from slurm_cluster import Cluster  # noqa: E402


def srun_seq(cluster, n):
    t0 = time.monotonic()
    for _ in range(n):
        cluster.run("srun", "true", check=True)
    return time.monotonic() - t0


def concd_seq(c, n):
    t0 = time.monotonic()
    for _ in range(n):
        r = c.call("submit", task="exec", exec="slurm", watch=True,
                   args={"argv": ["true"]})
        assert r["t"] == "accepted", r
        end = c.until_end(r["id"])[-1]
        assert end["state"] == "succeeded", end
    return time.monotonic() - t0


def main():
    check = "--check" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--check"]
    if len(args) != 1:
        sys.exit("usage: slurmbench.py [--check] CONCD")
    why = Cluster.why_not()
    if why is not None:
        print("SKIP: %s" % why)
        sys.exit(77 if check else 0)
    n = 3 if check else int(os.environ.get("JOBS", "100"))
    runs = 1 if check else int(os.environ.get("RUNS", "5"))
    with Cluster() as cluster, tempfile.TemporaryDirectory(
            prefix="concd-slurmbench-") as tmp:
        conf = os.path.join(tmp, "concd.conf")
        with open(conf, "w") as f:
            f.write("[slurm]\nenabled = yes\n")
        d = harness.Daemon("-c", conf, "--state-dir",
                           os.path.join(tmp, "state"), exe=args[0],
                           env=cluster.env())
        try:
            c = d.client()
            srun, seq = [], []
            for r in range(runs):
                srun.append(srun_seq(cluster, n))
                seq.append(concd_seq(c, n))
                print("run %d: srun %.3f s, concd %.3f s"
                      % (r + 1, srun[-1], seq[-1]), flush=True)
        finally:
            d.close()
    if check:
        print("slurmbench: ok")
        return
    med = statistics.median
    ratio = med(s / b for s, b in zip(seq, srun))
    print("\n%d x exec true, medians of %d runs:" % (n, runs))
    print("  srun true, one by one          %7.3f s  %5.1f ms/job"
          % (med(srun), med(srun) * 1000 / n))
    print("  -x slurm, one by one           %7.3f s  %5.1f ms/job  "
          "%.3fx srun  (target <= 1.1x: %s)"
          % (med(seq), med(seq) * 1000 / n, ratio,
             "ok" if ratio <= 1.1 else "MISSED"))


if __name__ == "__main__":
    main()
