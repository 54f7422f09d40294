"""Shell completion: bash's _concctl (client/completion/concctl.bash), run
the way bash runs it, completes commands, each command's options and
their values, task names and arguments, job ids and groups asked of a
test daemon, and an exec job's command; without a daemon, or with one
that does not answer, it completes what it knows, quickly and silently.
cmake --install puts it where bash-completion looks. zsh's _concctl, when
zsh is installed."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, CONCTL, DaemonTest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "client", "completion",
                      "concctl.bash")
ZSCRIPT = os.path.join(HERE, "..", "..", "client", "completion", "_concctl")
# how long a completion may take when the daemon does not answer: its
# half a second, and room for a loaded machine
QUICK = 5


def complete(words, socket_path=None, script=SCRIPT, env=None):
    """What bash completes the last word of words to: COMPREPLY, and
    what the function wrote on stderr."""
    words = list(words)
    if socket_path is not None:
        words[1:1] = ["-s", socket_path]
    words[0] = CONCTL
    program = ("source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_concctl\n"
               "printf '%%s\\n' \"${COMPREPLY[@]}\"\n" % (
                   shq(script), " ".join(shq(w) for w in words),
                   len(words) - 1))
    e = dict(os.environ)
    e.pop("CONCD_SOCKET", None)
    e.update(env or {})
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", program],
                       capture_output=True, text=True, timeout=BOUND, env=e)
    assert r.returncode == 0, r
    return [w for w in r.stdout.split("\n") if w != ""], r.stderr


def shq(s):
    return "'" + s.replace("'", "'\\''") + "'"


COMMANDS = ["cancel", "gather", "help", "log", "ping", "pool", "ps",
            "result", "run", "shutdown", "status", "submit", "tasks",
            "wait", "watch"]


class Offline(unittest.TestCase):
    """What needs no daemon, and what happens without one."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="concd-complete-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.nowhere = os.path.join(self.dir, "no-such.sock")

    def c(self, *words):
        return complete(("concctl",) + words, self.nowhere)

    def test_commands_and_their_prefixes(self):
        got, err = self.c("")
        self.assertEqual(err, "")
        for cmd in COMMANDS:
            self.assertIn(cmd, got)
        self.assertEqual(self.c("st")[0], ["status"])
        self.assertEqual(self.c("s")[0], ["shutdown", "status", "submit"])
        self.assertEqual(self.c("pool", "")[0], ["resize", "add", "remove"])
        self.assertIn("--socket", complete(("concctl", "--s"))[0])

    def test_each_command_gets_its_own_options(self):
        ps = self.c("ps", "--")[0]
        for opt in ("--all", "--state", "--task", "--since", "--output",
                    "--json", "--help"):
            self.assertIn(opt, ps)
        self.assertNotIn("--as-completed", ps)
        gather = self.c("gather", "--")[0]
        self.assertIn("--as-completed", gather)
        self.assertNotIn("--state", gather)
        self.assertEqual(self.c("wait", "--a")[0], ["--any"])
        add = self.c("pool", "add", "--")[0]
        for opt in ("--slurm", "--partition", "--time"):
            self.assertIn(opt, add)
        self.assertNotIn("--threads", add)
        self.assertEqual(self.c("pool", "remove", "--s")[0], ["--slurm"])

    def test_option_values(self):
        self.assertEqual(self.c("ps", "--state", "r")[0], ["running"])
        # bash hands "--state=ru" over as three words
        self.assertEqual(self.c("ps", "--state", "=", "ru")[0], ["running"])
        self.assertEqual(self.c("run", "-x", "th")[0], ["thread"])
        self.assertEqual(sorted(self.c("ps", "-o", "id,sta")[0]),
                         ["id,started", "id,state"])
        self.assertEqual(self.c("ps", "-o", "+GR")[0], ["+GROUP"])

    def test_an_exec_jobs_command_and_its_files(self):
        self.assertIn("true", self.c("run", "exec", "--", "tru")[0])
        self.assertIn("/etc/passwd",
                      self.c("run", "exec", "--", "cat", "/etc/pass")[0])
        self.assertIn("/etc", self.c("gather", "/et")[0])

    def test_without_a_daemon_ids_and_tasks_are_silently_none(self):
        start = time.monotonic()
        for words in (("status", ""), ("cancel", ""), ("run", ""),
                      ("ps", "--task", "")):
            got, err = self.c(*words)
            self.assertEqual((got, err), ([], ""), words)
        self.assertLess(time.monotonic() - start, QUICK)

    def test_a_daemon_that_does_not_answer_costs_half_a_second(self):
        path = os.path.join(self.dir, "mute.sock")
        mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mute.bind(path)
        mute.listen(8)  # never accepted: the hello is never answered
        try:
            start = time.monotonic()
            got, err = complete(("concctl", "status", ""), path)
            elapsed = time.monotonic() - start
        finally:
            mute.close()
        self.assertEqual((got, err), ([], ""))
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertLess(elapsed, QUICK)


class Online(DaemonTest):
    def c(self, *words):
        got, err = complete(("concctl",) + words, self.d.socket)
        self.assertEqual(err, "")
        return got

    def test_task_names_and_their_arguments_come_from_the_daemon(self):
        tasks = [t["name"] for t in self.d.client().call("tasks")["tasks"]]
        self.assertEqual(sorted(self.c("run", "")), sorted(tasks))
        self.assertEqual(self.c("submit", "sl"), ["sleep"])
        self.assertEqual(sorted(self.c("run", "sleep", "")),
                         ["ms=", "steps="])
        self.assertEqual(self.c("ps", "--task", "pri"), ["primes"])

    def test_job_ids_come_from_the_daemon(self):
        c = self.d.client()
        rid = c.request("submit", task="noop", watch=True)
        done = c.until_end(rid)[-1]["job"]
        gate = self.d.gate()
        running = c.call("submit", task="exec",
                         args={"argv": gate.argv})["job"]
        c.wait_state(running, "running")
        self.assertEqual(sorted(self.c("status", "")),
                         sorted([str(done), str(running)]))
        # only a job that has not finished can be cancelled
        self.assertEqual(self.c("cancel", ""), [str(running)])
        self.assertEqual(self.c("wait", str(done)[0]),
                         sorted({str(j) for j in (done, running)
                                 if str(j).startswith(str(done)[0])}))

    def test_groups_come_from_the_daemon(self):
        options = complete(("concctl", "submit", "--"), self.d.socket)[0]
        if "--group" not in options:
            self.skipTest("this concctl has no --group")
        reply = self.d.client().call("group", op="list")
        if reply["t"] != "grouplist":
            self.skipTest("this concd lists no groups: %r" % reply)
        names = [g["name"] for g in reply["groups"]]
        self.assertIn("default", names)
        self.assertEqual(sorted(self.c("submit", "--group", "")),
                         sorted(names))


class Installed(DaemonTest):
    def test_cmake_install_puts_it_where_bash_completion_looks(self):
        build = os.path.dirname(os.path.dirname(os.path.abspath(CONCTL)))
        if not os.path.exists(os.path.join(build, "cmake_install.cmake")):
            self.skipTest("concctl is not in a build tree: %s" % CONCTL)
        prefix = tempfile.mkdtemp(prefix="concd-install-")
        self.addCleanup(shutil.rmtree, prefix, ignore_errors=True)
        r = subprocess.run(["cmake", "--install", build, "--prefix",
                            prefix], capture_output=True, text=True,
                           timeout=BOUND)
        self.assertEqual(r.returncode, 0, r.stderr)
        script = os.path.join(prefix, "share", "bash-completion",
                              "completions", "concctl")
        self.assertTrue(os.path.exists(script), r.stdout)
        self.assertTrue(os.path.exists(os.path.join(
            prefix, "share", "zsh", "site-functions", "_concctl")))
        got, err = complete(("concctl", "status", ""), self.d.socket,
                            script=script)
        self.assertEqual((got, err), ([], ""))
        self.assertEqual(complete(("concctl", "pi"), self.d.socket,
                                  script=script)[0], ["ping"])


@unittest.skipUnless(shutil.which("zsh"), "zsh is not installed")
class Zsh(DaemonTest):
    def zcomplete(self, *words):
        """What zsh's _concctl adds for the last word, through a stub
        compadd that prints its words."""
        words = [CONCTL, "-s", self.d.socket] + list(words)
        program = (
            "compadd() { while [[ $1 == -* && $1 != -- ]]; do "
            "[[ $1 == -S ]] && shift; shift; done; shift; "
            "print -l -- \"$@\"; }\n"
            "_files() { print FILES; }\n_command_names() { print CMDS; }\n"
            "words=(%s)\nCURRENT=%d\nsource %s\n" % (
                " ".join(shq(w) for w in words), len(words), shq(ZSCRIPT)))
        r = subprocess.run(["zsh", "-f", "-c", program], capture_output=True,
                           text=True, timeout=BOUND)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        return [w for w in r.stdout.split("\n") if w]

    def test_zsh_completes_from_the_same_answers(self):
        self.assertEqual(self.zcomplete("st"), ["status"])
        self.assertEqual(self.zcomplete("ps", "--state=ru"),
                         ["--state=running"])
        self.assertEqual(sorted(self.zcomplete("run", "sleep", "")),
                         ["ms=", "steps="])
        self.assertEqual(self.zcomplete("run", "exec", "--", "ec"), ["CMDS"])


if __name__ == "__main__":
    harness.main()
