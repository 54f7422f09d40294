"""A private single-node Slurm cluster for the tests of Slurm's executors.

munged with a generated key, slurmctld and slurmd with a generated
slurm.conf, all in a temporary directory: their state, spool, logs, pid
files and munge's socket are there, their ports are free loopback ports
found at start, and the node has this machine's real CPU count and memory.
Nothing outside the directory is touched; stop() stops every daemon it
started, by pid, and removes the directory.  Clients (srun, scancel, concd
itself) find the cluster through SLURM_CONF, which env() gives.

Needs root (slurmd runs jobs as their users) and Debian's slurm-wlm and
munge (scripts/deps.sh installs them); Cluster.why_not() says what is
missing.
"""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BOUND = 60.0  # seconds: an upper bound on the cluster's start, never a delay
TOOLS = ("munged", "slurmctld", "slurmd", "srun", "sinfo", "scancel",
         "salloc", "scontrol", "squeue")
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def _which(name):
    for d in os.environ.get("PATH", "").split(":") + list(SBIN):
        p = os.path.join(d, name)
        if d and os.access(p, os.X_OK):
            return p
    return None


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


class Cluster:
    """Start with Cluster(); the node is idle when the constructor
    returns.  stop() (or a with block) ends it."""

    @staticmethod
    def why_not():
        if os.geteuid() != 0:
            return "a private Slurm cluster needs root (slurmd runs jobs " \
                   "as their users)"
        missing = [t for t in TOOLS if _which(t) is None]
        if missing:
            return "Slurm is not installed (%s missing; scripts/deps.sh " \
                   "installs slurm-wlm and munge)" % ", ".join(missing)
        return None

    def __init__(self, cpus=None):
        # slurmd's job step daemons (slurmstepd) leave it: they become
        # ours to reap, not left as zombies of a pid 1 that reaps none
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
        self.procs = {}
        self.dir = tempfile.mkdtemp(prefix="concd-slurm-")
        os.chmod(self.dir, 0o755)
        try:
            self._start(cpus or os.cpu_count())
        except BaseException:
            self.stop()
            raise

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def env(self, base=None):
        e = dict(os.environ if base is None else base)
        e["SLURM_CONF"] = self.conf
        return e

    def _start(self, cpus):
        for d in ("munge", "state", "spool", "log"):
            os.mkdir(self.path(d), 0o755)
        key = self.path("munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self.munge_socket = self.path("munge", "socket")
        self._run("munged", [
            _which("munged"), "-F", "--force",
            "--socket=" + self.munge_socket, "--key-file=" + key,
            "--log-file=" + self.path("log", "munged.log"),
            "--pid-file=" + self.path("munge", "pid"),
            "--seed-file=" + self.path("munge", "seed"), "--num-threads=2"])
        self._wait(lambda: os.path.exists(self.munge_socket), "munged")
        self.node = socket.gethostname().split(".")[0]
        self.cpus = cpus
        self.conf = self.path("slurm.conf")
        with open(self.conf, "w") as f:
            f.write(_CONF.format(
                dir=self.dir, node=self.node, cpus=cpus, mem=_mem_mb(),
                ctld_port=_free_port(), d_port=_free_port(),
                munge=self.munge_socket))
        env = self.env()
        self._run("slurmctld", [_which("slurmctld"), "-D", "-i", "-f",
                                self.conf], env)
        self._run("slurmd", [_which("slurmd"), "-D", "-f", self.conf], env)
        self._wait(lambda: self.node_state() == "idle", "the node idle")

    def _run(self, name, argv, env=None):
        log = open(self.path("log", name + ".out"), "w")
        self.procs[name] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            start_new_session=True)
        log.close()

    def _wait(self, cond, what):
        deadline = time.monotonic() + BOUND
        while not cond():
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError("%s exited %d before %s: %s" % (
                        name, p.returncode, what, self.log(name)))
            if time.monotonic() > deadline:
                raise RuntimeError("no %s within %d s" % (what, BOUND))
            time.sleep(0.05)

    def log(self, name):
        try:
            with open(self.path("log", name + ".out")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def node_state(self):
        r = subprocess.run([_which("sinfo"), "-h", "-n", self.node, "-o",
                            "%T"], env=self.env(), capture_output=True,
                           text=True, timeout=BOUND)
        return r.stdout.strip().rstrip("*")

    def run(self, *argv, **kw):
        """A Slurm command against this cluster: CompletedProcess."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", BOUND)
        return subprocess.run([_which(argv[0])] + list(argv[1:]),
                              env=self.env(kw.pop("env", None)), **kw)

    def jobs(self):
        """The cluster's jobs: a list of (id, name, state)."""
        r = self.run("squeue", "-h", "-o", "%i %j %T")
        return [tuple(line.split()) for line in r.stdout.splitlines()]

    def stop(self):
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.pop(name, None)
            if p is None:
                continue
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=BOUND)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self._reap_steps()
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _reap_steps():
        """Reap the step daemons that were left to this process; they
        end with slurmd."""
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            left = []
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open("/proc/%s/stat" % pid) as f:
                        stat = f.read()
                except OSError:
                    continue
                comm = stat[stat.index("(") + 1:stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2:].split()
                if int(fields[1]) == os.getpid() and comm == "slurmstepd":
                    left.append(int(pid))
            if not left:
                return
            for pid in left:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


_CONF = """\
ClusterName=concdtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=2
MinJobAge=600
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=batch Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
