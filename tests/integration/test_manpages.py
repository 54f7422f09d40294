"""The man pages against the programs they describe.

Every "$ " command of concd-concurrency(7) that mentions concctl is run,
in page order, against a private concd started like the page's: the
tutorial must work as written.  The reference pages must name every
option, configuration key, command, task and message the code has.
"""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BOUND, CONCD, CONCTL, VALGRIND, Daemon  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
MAN = os.path.join(TOP, "man")
# seconds for one tutorial command, an upper bound; longer under a
# sanitizer that slows CPU work down (tests/integration/CMakeLists.txt)
COMMAND_BOUND = 60.0 * float(os.environ.get("CONCD_TEST_SLOWDOWN", "1"))

# roff escapes that may appear in the pages' literal displays
ROFF_ESCAPES = [("\\(aq", "'"), ("\\(dq", '"'), ("\\(ti", "~"),
                ("\\(ha", "^"), ("\\-", "-"), ("\\&", ""), ("\\e", "\\")]

ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=\$\((.*)\)$")
EXPECTED_EXIT = re.compile(r'^\.\\"\s*exit\s+(\d+)\s*$')


def read(*path):
    with open(os.path.join(TOP, *path)) as f:
        return f.read()


def unescape(line):
    for esc, text in ROFF_ESCAPES:
        line = line.replace(esc, text)
    return line


def page_commands(page):
    """The "$ " lines of the page's literal displays that mention
    concctl, in order, each with the exit status the page expects: 0, or
    N when the next line is the comment `.\\" exit N`."""
    commands = []
    in_display = False
    for number, line in enumerate(read("man", page).splitlines(), 1):
        if line.startswith(".Bd") and "-literal" in line:
            in_display = True
        elif line.startswith(".Ed"):
            in_display = False
        elif in_display and line.startswith("$ "):
            text = unescape(line[2:])
            commands.append([number, text, 0, "concctl" in text])
        elif in_display and commands and EXPECTED_EXIT.match(line):
            commands[-1][2] = int(EXPECTED_EXIT.match(line).group(1))
    return [(n, text, status) for n, text, status, runs in commands
            if runs]


def roff_source(page):
    """A page's source with \\- as -, for looking names up."""
    return read("man", page).replace("\\-", "-")


def has_item(source, pattern):
    return re.search(r"(?m)^\.It\b.*" + pattern, source) is not None


def concd_options():
    """(short, long) options from `concd --help`."""
    out = subprocess.run([CONCD, "--help"], capture_output=True, text=True,
                         timeout=BOUND).stdout
    options = []
    for line in out.splitlines():
        m = re.match(r"^\s+(?:(-[A-Za-z0-9]),\s+)?(--[a-z][a-z-]*)", line)
        if m:
            options.append((m.group(1), m.group(2)))
    return options


def concctl_commands():
    """Command names from `concctl help`, subcommands as "pool resize"."""
    out = subprocess.run([CONCTL, "help"], capture_output=True, text=True,
                         timeout=BOUND).stdout
    names, listing = [], False
    for line in out.splitlines():
        if line.startswith("Commands"):
            listing = True
        elif listing and re.match(r"^  [a-z]", line):
            words = []
            for w in line.split():
                if not re.fullmatch(r"[a-z][a-z-]*", w):
                    break
                words.append(w)
            names.append(" ".join(words))
    return names


def config_keys():
    """The keys of config.c's table."""
    src = read("daemon", "config.c")
    table = src[src.index("config_keys[] = {"):]
    table = table[:table.index("};")]
    return re.findall(r'\{"([a-z][a-z-]*)",\s*CONFIG_', table)


def table_names(src, table, prefix):
    """The names of a msg.c table's rows: [PREFIX_X] = {"name", ..."""
    body = src[src.index(table):]
    body = body[:body.index("};")]
    return re.findall(r"\[%s\w+\]\s*=\s*\{\s*\"([a-z_]+)\"" % prefix, body)


class ReferencePages(unittest.TestCase):
    def assertNoneMissing(self, missing, page):
        self.assertEqual(missing, [], "not described in %s: %s"
                         % (page, ", ".join(missing)))

    def test_concd_8_describes_every_option_of_concd_help(self):
        src = roff_source("concd.8")
        options = concd_options()
        self.assertGreater(len(options), 10, "cannot parse concd --help")
        missing = []
        for short, long in options:
            if short and not has_item(src, r"\bFl %s\b" % short[1:]):
                missing.append(short)
            # mdoc: "Fl \-socket" renders as --socket
            if not has_item(src, r"\bFl %s(?![\w-])" % long[1:]):
                missing.append(long)
        self.assertNoneMissing(missing, "concd.8")

    def test_concd_conf_5_describes_every_key_of_config_c(self):
        src = roff_source("concd.conf.5")
        keys = config_keys()
        self.assertGreater(len(keys), 5, "cannot parse daemon/config.c")
        self.assertNoneMissing(
            [k for k in keys
             if not has_item(src, r"\b(Ic|Cm) %s(?![\w-])" % k)],
            "concd.conf.5")

    def test_concctl_1_describes_every_command_of_concctl_help(self):
        src = roff_source("concctl.1")
        names = concctl_commands()
        self.assertGreater(len(names), 5, "cannot parse concctl help")
        self.assertNoneMissing(
            [n for n in names
             if not re.search(r"\bCm\s+" + r"\s+".join(n.split())
                              + r"(?![\w-])", src)],
            "concctl.1")

    def test_concd_protocol_7_describes_every_message_and_field(self):
        src = roff_source("concd-protocol.7")
        msg = read("proto", "msg.c")
        types = table_names(msg, "proto_types[PROTO_TYPE_COUNT] = {",
                            "PROTO_")
        fields = table_names(msg, "proto_fields[PF_FIELD_COUNT] = {", "PF_")
        errors = table_names(msg, "proto_errors[PE_COUNT] = {", "PE_")
        self.assertGreater(len(types), 20, "cannot parse proto/msg.c")
        missing = ["message " + t for t in types
                   if not has_item(src, r"\bLi %s\b" % t)]
        missing += ["field " + f for f in fields
                    if not re.search(r"(?m)^\.It Li %s Ta" % f, src)]
        missing += ["error " + e for e in errors if e != "none" and
                    not re.search(r"(?m)^\.It Li %s Ta" % e, src)]
        self.assertNoneMissing(missing, "concd-protocol.7")


def start_daemon():
    """A daemon like the tutorial's, whose STATUS= lines are read as they
    come: a long run of jobs must not fill the notify socket's queue."""
    # The tutorial's job kills its worker with SIGSEGV: under ASan the
    # worker must die of it as the page says, not report it and exit 1.
    d = Daemon("-p", "2", threads=2, env={"ASAN_OPTIONS": "handle_segv=0"})

    def drain():
        sock = d.notify.sock
        while sock.fileno() >= 0:  # until Daemon.close
            try:
                sock.settimeout(0.2)
                sock.recv(4096)
            except (socket.timeout, OSError):
                pass

    threading.Thread(target=drain, daemon=True).start()
    return d


class Tutorial(unittest.TestCase):
    """concd-concurrency(7), run as a reader would run it."""

    def setUp(self):
        self.daemons = [start_daemon()]
        self.vars = {}

    def tearDown(self):
        # every daemon is stopped and checked, even after one failed
        failures = []
        for d in self.daemons:
            try:
                d.close()
            except AssertionError as e:
                failures.append(str(e))
        if failures:
            self.fail("\n".join(failures))

    def env(self):
        e = dict(os.environ)
        e.update(self.vars)
        e["CONCD_SOCKET"] = self.daemons[-1].socket
        e["PATH"] = (os.path.dirname(os.path.abspath(CONCTL)) + os.pathsep
                     + e.get("PATH", ""))
        return e

    def sh(self, command):
        return subprocess.run(["sh", "-c", command], env=self.env(),
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=COMMAND_BOUND,
                              cwd=self.daemons[-1].dir)

    def restart_after_shutdown(self):
        """A tutorial line stopped the daemon: let it finish, start
        another like it for the lines that follow."""
        d = self.daemons[-1]
        rc = d.proc.wait(BOUND)
        self.assertEqual(rc, 0, "concd did not stop cleanly:\n" + d.log())
        self.daemons.append(start_daemon())

    def test_every_command_of_concd_concurrency_7_works_as_written(self):
        commands = page_commands("concd-concurrency.7")
        self.assertGreater(len(commands), 20,
                           "cannot find the tutorial's commands")
        for line, text, status in commands:
            if VALGRIND and "kill -SEGV" in text:
                continue  # valgrind, not the worker, gets the signal
            with self.subTest(line=line, command=text):
                m = ASSIGNMENT.match(text)
                try:
                    r = self.sh(m.group(2) if m else text)
                except subprocess.TimeoutExpired:
                    self.fail("concd-concurrency.7:%d: %r took more than "
                              "%ss" % (line, text, COMMAND_BOUND))
                if m:
                    self.vars[m.group(1)] = r.stdout.strip()
                self.assertEqual(
                    r.returncode, status,
                    "concd-concurrency.7:%d: %r exited %d, the page says "
                    "%d\nstdout: %s\nstderr: %s" % (
                        line, text, r.returncode, status, r.stdout[-2000:],
                        r.stderr[-2000:]))
            if re.search(r"\bconcctl\s+shutdown\b", text):
                self.restart_after_shutdown()

    def test_concd_8_describes_every_task_of_concctl_tasks(self):
        r = subprocess.run([CONCTL, "--json", "tasks"], env=self.env(),
                           capture_output=True, text=True, timeout=BOUND)
        self.assertEqual(r.returncode, 0, r.stderr)
        tasks = [t["name"] for line in r.stdout.splitlines()
                 for m in [json.loads(line)] if m.get("t") == "tasklist"
                 for t in m["tasks"]]
        self.assertIn("primes", tasks)
        src = roff_source("concd.8")
        for name in tasks:
            self.assertTrue(has_item(src, r"\bCm %s(?![\w-])" % name) or
                            re.search(r"(?m)^\.It Xo\n\.Cm %s\b" % name, src),
                            "task %s is not an item of concd.8" % name)


if __name__ == "__main__":
    harness.main()
