"""The man pages against the programs they describe.

Every "$ " command of concd-concurrency(7) that mentions concctl is run,
in page order, against a private concd started like the page's: the
tutorial must work as written, exiting as the page says and printing
what its text promises (TUTORIAL), and must not pass without a daemon.
The examples of concd(8) print the output they show.  The reference pages
must name every option, configuration key, command, task and message the
code has.
"""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import (BOUND, CLOCK_SLACK, CONCD, CONCTL, VALGRIND,  # noqa
                     Daemon)

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
MAN = os.path.join(TOP, "man")
# seconds for one tutorial command, an upper bound; longer under a
# sanitizer that slows CPU work down (tests/integration/CMakeLists.txt)
COMMAND_BOUND = 60.0 * float(os.environ.get("CONCD_TEST_SLOWDOWN", "1"))
# Under a sanitizer 100 launches of concctl may take longer than the
# page's five-second sleeps (ASan's concctl takes 60 ms to start on the
# build machine): some have ended before `pool` and `ps` look.
SLOW = (float(os.environ.get("CONCD_TEST_SLOWDOWN", "1")) > 1
        or os.environ.get("CONCD_TEST_SANITIZED") == "1")
LOOP_SLEEPERS = r"[1-9]\d?|100" if SLOW else "100"
PLUGINS = os.environ.get("CONCD_PLUGINS", "")  # where greet.so is built
# where the python task's plugin is built, when it is (python3-dev): the
# tutorial's daemon loads it, and the lines of the page's section on it
# are skipped without it
PYTHON_PLUGINS = os.environ.get("CONCD_PYTHON_PLUGINS", "")
PYTHON_SECTION = ".Sh PYTHON ON THREADS AND PROCESSES"
FILE_COMMENT = re.compile(r'^\.\\"\s*file\s+(\S+)\s*$')

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


def page_files(page):
    """{name: text} of the literal displays that follow a comment line
    `.\\" file NAME`: files the page asks its reader to save."""
    files, name, text = {}, None, None
    for line in read("man", page).splitlines():
        m = FILE_COMMENT.match(line)
        if m:
            name = m.group(1)
        elif name and text is None and line.startswith(".Bd"):
            text = []
        elif text is not None and line.startswith(".Ed"):
            files[name] = "".join(unescape(x) + "\n" for x in text)
            name, text = None, None
        elif text is not None:
            text.append(line)
    return files


def section_lines(page, heading):
    """The range of the page's line numbers in the section heading."""
    lines = read("man", page).splitlines()
    start = lines.index(heading) + 1
    end = next((n for n in range(start, len(lines))
                if lines[n].startswith(".Sh ")), len(lines))
    return range(start, end + 1)


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
    return re.findall(r'\{"([a-z][a-z.-]*)",\s*CONFIG_', table)


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
        # a key of the [slurm] section, slurm.NAME, is NAME in SLURM
        slurm = src[src.index(".Sh SLURM"):]
        slurm = slurm[:slurm.index(".Sh ", 4)]
        self.assertNoneMissing(
            [k for k in keys
             if not has_item(slurm if k.startswith("slurm.") else src,
                             r"\b(Ic|Cm) %s(?![\w-])"
                             % k.replace("slurm.", "", 1))],
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

    def test_concd_protocol_7_names_the_protocol_version(self):
        src = roff_source("concd-protocol.7")
        self.assertIn("the client speaks, currently %d."
                      % harness.PROTO_VERSION, src)
        self.assertIn('"version": %d}' % harness.PROTO_VERSION, src)

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


# What the tutorial promises for each of its commands, in page order: the
# page's text for the command, and a check of what it printed.  A check
# raises AssertionError (through want()) when the output is not what the
# page says; the exit status is checked apart, against the page's
# `.\" exit N`.  A check may keep what a later one compares with in
# `seen`, which also holds the page's shell variables.
PROGRESS = r"(?:job \d+: \d+/\d+ \d+%\n)*"  # what `run` prints on stderr


def want(ok, what):
    if not ok:
        raise AssertionError(what)


def match(pattern, text, what):
    want(re.fullmatch(pattern, text) is not None,
         "%s: %r does not match %r" % (what, text, pattern))


def out(pattern):
    """stdout is exactly pattern (a regular expression)."""
    return lambda r, seen: match(pattern, r.stdout, "stdout")


def err(pattern, stdout=""):
    """stderr is exactly pattern, stdout is stdout (both regexes)."""
    def check(r, seen):
        match(pattern, r.stderr, "stderr")
        match(stdout, r.stdout, "stdout")
    return check


def count(n):
    """A run that prints n and, on stderr, at most its progress."""
    def check(r, seen):
        match(r"%d\n" % n, r.stdout, "stdout")
        match(PROGRESS, r.stderr, "stderr")
    return check


def job_id(r, seen):
    match(r"[1-9][0-9]*\n", r.stdout, "the new job's id")


def silent(r, seen):
    match("", r.stdout + r.stderr, "output")


def took(check, seconds):
    """check, and the command took at least seconds."""
    def both(r, seen):
        check(r, seen)
        want(r.elapsed >= seconds, "returned after %.2fs, before %ss"
             % (r.elapsed, seconds))
    return both


def group_row(name, *cells):
    """`concctl group list`'s header and the row of one group."""
    def check(r, seen):
        lines = r.stdout.splitlines()
        want(len(lines) == 2 and lines[0].split()[:6] == [
            "GROUP", "PARALLEL", "USED", "QUEUED", "RUNNING", "STATE"],
            "not a group table: %r" % r.stdout)
        want(lines[1].split()[:6] == [name, *cells, "active"],
             "not %s %s: %r" % (name, cells, lines[1]))
    return check


def failed_after(var):
    """The job ended failed at once, naming the job in $var."""
    def check(r, seen):
        match(r"concctl: job \d+ failed: job %s, which it runs after, "
              r"failed\n" % re.escape(seen[var]), r.stderr, "stderr")
        match("", r.stdout, "stdout")
    return check


def status_line(label, value):
    """`concctl status` has the line LABEL VALUE."""
    def check(r, seen):
        want(re.search(r"(?m)^%s +%s$" % (label, re.escape(value)),
                       r.stdout) is not None,
             "no %s %s: %r" % (label, value, r.stdout))
    return check


def sizes(threads, processes):
    return out(r"threads %d, processes %d\n" % (threads, processes))


def pool_rows(r):
    """`concctl pool`'s worker rows as dicts, and its queue line."""
    lines = r.stdout.splitlines()
    want(lines and lines[0].split() == ["EXEC", "WORKER", "PID/TID", "STATE",
                                        "SERVED", "UPTIME", "JOB"],
         "no pool table: %r" % r.stdout)
    rows = []
    for line in lines[1:]:
        f = line.split()
        if f[0] in ("loop", "thread", "process"):
            rows.append(dict(exec=f[0], worker=int(f[1]), pid=f[2],
                             state=f[3], served=int(f[4]), uptime=f[5]))
    queue = [line for line in lines if line.startswith("queue: ")]
    want(len(queue) == 1, "no queue line: %r" % r.stdout)
    return rows, queue[0]


def idle_pool(served=None):
    """Two threads and two processes, idle (and having served served)."""
    def check(r, seen):
        rows, _ = pool_rows(r)
        for x in ("thread", "process"):
            mine = [w for w in rows if w["exec"] == x]
            want(len(mine) == 2 and all(w["state"] == "idle" for w in mine),
                 "not two idle %s workers: %r" % (x, r.stdout))
            if served is not None:
                want(all(w["served"] == served for w in mine),
                     "%s workers served other than %d: %r"
                     % (x, served, r.stdout))
        seen["processes"] = {w["worker"]: w for w in rows
                             if w["exec"] == "process"}
    return check


def pool_loop_busy(r, seen):
    idle_pool()(r, seen)
    _, queue = pool_rows(r)
    want(re.match(r"queue: loop (%s) running;" % LOOP_SLEEPERS, queue),
         "not 100 jobs on the loop: %r" % queue)


def pool_served_one_more(r, seen):
    before = sum(w["served"] for w in seen["processes"].values())
    idle_pool()(r, seen)
    after = sum(w["served"] for w in seen["processes"].values())
    want(after == before + 1, "process SERVED went from %d to %d"
         % (before, after))


def pool_after_crash(r, seen):
    crashed = seen["crashed"]
    old = seen["processes"][crashed]
    idle_pool()(r, seen)
    new = seen["processes"][crashed]
    want(new["pid"] != old["pid"] and new["served"] == 0
         and new["uptime"] in ("0s", "1s"),
         "process worker %d is not new: %r" % (crashed, r.stdout))


def crash(r, seen):
    m = re.fullmatch(r"concctl: job \d+ failed: process worker (\d) "
                     r"\(pid (\d+)\) was killed by signal 11 "
                     r"\(Segmentation fault\)\n", r.stderr)
    want(m is not None, "stderr: %r" % r.stderr)
    seen["crashed"] = int(m.group(1))


def ps_three_on_the_loop(r, seen):
    lines = r.stdout.splitlines()
    want(len(lines) == 4 and all(
        re.fullmatch(r"\s*\d+\s+sleep\s+running\s+loop\s+0\s+.*", line)
        for line in lines[1:]), "not three sleeps on the loop: %r"
        % r.stdout)
    match(r"counts: (%s) running, \d+ succeeded\nshowing 3 of \1\n"
          % LOOP_SLEEPERS, r.stderr, "stderr")


def tasks(r, seen):
    rows = {}
    for line in r.stdout.splitlines():
        m = re.match(r"(\w+)\s+([a-z,]+)\s+(loop|thread|process)\s+"
                     r"(non-blocking|blocking|cpu)\s", line)
        if m:
            rows[m.group(1)] = m.groups()[1:]
    want(rows.get("sleep", ())[1:] == ("loop", "non-blocking")
         and rows.get("checksum", ())[1:] == ("thread", "blocking")
         and rows.get("primes", ())[1:] == ("process", "cpu"),
         "tasks are not listed with executors, default and traits: %r"
         % r.stdout)
    want("auto picks: " in r.stdout, "no auto line: %r" % r.stdout)


def checksum_passwd(r, seen):
    m = json.loads(r.stdout)
    with open("/etc/passwd", "rb") as f:
        data = f.read()
    want(m == {"path": "/etc/passwd", "size": len(data),
               "fnv1a64": "%016x" % fnv1a64(data)},
         "not /etc/passwd's size and FNV-1a digest: %r" % r.stdout)


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def json_end(r, seen):
    end = json.loads(r.stdout.splitlines()[-1])
    want(end["t"] == "end" and end["exec"] == "process"
         and end["result"] == 78498 and "worker" in end and "tid" in end,
         "not an end on a process with 78498: %r" % r.stdout)


def table_first(r, seen):
    m = json.loads(r.stdout)
    want((m["n"], m["primes"], m["inits"]) == (1000000, 78498, 1),
         "not 78498 primes from a table built once: %r" % r.stdout)


def status_fields(r):
    return dict(re.findall(r"(?m)^(\w+)\s+(.*)$", r.stdout))


def status_table(fresh):
    def check(r, seen):
        st = status_fields(r)
        want(st.get("state") == "succeeded"
             and json.loads(st.get("result", "{}")).get("primes") == 78498,
             "not a table job that answered 78498: %r" % r.stdout)
        worker = r"fresh process \(pid \d+\)" if fresh else \
            r"\d process \(pid \d+, served \d+\)"
        match(worker, st.get("worker", ""), "worker")
        match(r".* \(ran [0-9.]+(us|ms|s)\)", st.get("finished", ""),
              "finished")
    return check


def status_running(r, seen):
    st = status_fields(r)
    want(st.get("state") == "running" and st.get("executor", "")
         .startswith("loop") and st.get("progress") in ("-", "1/3 33%"),
         "not running on the loop at - or 1/3: %r" % r.stdout)


def status_done(r, seen):
    st = status_fields(r)
    want(st.get("state") == "succeeded" and st.get("progress") == "3/3 100%"
         and st.get("result") == "3000" and all(
             st.get(k, "-") != "-" for k in ("submitted", "started",
                                             "finished")),
         "not succeeded at 3/3 with its times: %r" % r.stdout)


def cancelled_by_id(r, seen):
    match(r"job %s: cancelled\n" % re.escape(seen.get("id", "")),
          r.stdout, "stdout")


def timed_out_after_a_second(r, seen):
    match(r"concctl: job \d+ timed out\n", r.stderr, "stderr")
    want(r.elapsed >= 1.0 - CLOCK_SLACK,
         "timed out after %.3f s, not one second" % r.elapsed)


def retried(r, seen):
    match("working\n" * 3, r.stdout, "stdout")
    # the last attempt's status is run's own, not reported
    match(r"job (\d+): attempt 2 after: exited with status 3\n"
          r"job \1: attempt 3 after: exited with status 3\n",
          r.stderr, "stderr")


def gathered(*lines, order=True):
    """`concctl gather` lines INDEX ID STATE RESULT, with the ids left
    out of lines."""
    def check(r, seen):
        got = [re.sub(r"^(\d+) \d+ ", r"\1 ", line)
               for line in r.stdout.splitlines()]
        want(got == list(lines) if order else
             (sorted(got) == sorted(lines) and got[0] == lines[-1]),
             "gathered %r, not %r" % (r.stdout, lines))
    return check


def wait_any(r, seen):
    match(r"%s succeeded\n" % re.escape(seen.get("b", "")), r.stdout,
          "stdout")


def counter(lock):
    def check(r, seen):
        m = json.loads(r.stdout)
        want(m["lock"] is lock and m["expected"] == 8000000
             and m["lost"] == m["expected"] - m["actual"]
             and (m["actual"] == 8000000 if lock else
                  0 < m["actual"] <= 8000000),
             "not the counter's figures: %r" % r.stdout)
        match(PROGRESS, r.stderr, "stderr")
    return check


def status_primes(queued, result="50847534"):
    """A billion's primes (or result); with queued, the job waited for
    another."""
    def check(r, seen):
        st = status_fields(r)
        want(st.get("state") == "succeeded"
             and st.get("result") == result,
             "not %s: %r" % (result, r.stdout))
        if queued:
            m = re.search(r"\(queued (?:(\d+)m)?([0-9.]+)(us|ms|s)\)",
                          st.get("started", ""))
            want(m and 60 * int(m.group(1) or 0) + float(m.group(2)) * {
                "us": 1e-6, "ms": 1e-3, "s": 1}[m.group(3)] >= 0.1,
                 "not queued behind the other job: %r" % r.stdout)
    return check


def status_python(fresh):
    """A python job that counted 168 primes, on a warm or fresh
    process."""
    def check(r, seen):
        st = status_fields(r)
        want(st.get("state") == "succeeded" and st.get("result") == "168",
             "not a python job that answered 168: %r" % r.stdout)
        worker = r"fresh process \(pid \d+\)" if fresh else \
            r"\d process \(pid \d+, served \d+\)"
        match(worker, st.get("worker", ""), "worker")
    return check


def lifetimes(r, seen):
    match("4000\n", r.stdout, "stdout")
    match(r"concctl: job \d+ cancelled\n", r.stderr, "stderr")


# the python task's call of the page's pyprimes.py: (n, executor)
PY = "python call=pyprimes:count_primes args='[%d]' path=$PWD -x %s"
TUTORIAL = [
    ("concctl ping", out(r"pong from concd \S+ pid \d+ in [0-9.]+ ms\n")),
    ("concctl pool", idle_pool(served=0)),
    ("concctl run primes n=5000000 -x loop", count(348513)),
    ("concctl run primes n=5000000 -x thread", count(348513)),
    ("concctl run primes n=5000000 -x process", count(348513)),
    ("concctl run checksum path=/etc/passwd", checksum_passwd),
    ("concctl run checksum path=/etc/passwd -x loop",
     err(r"concctl: bad_executor: task checksum cannot run on the loop "
         r"executor\n")),
    ("seq 10000 | sed 's/.*/sleep ms=1000/' | concctl gather -q | "
     "tail -n 1", out(r"9999 \d+ succeeded 1000\n")),
    ("for i in $(seq 100); do concctl submit sleep ms=5000 >/dev/null; "
     "done", silent),
    ("concctl pool", pool_loop_busy),
    ("concctl ps -n 3", ps_three_on_the_loop),
    ("concctl run primes n=100000000 -x process", count(5761455)),
    ("concctl pool", pool_served_one_more),
    ("concctl pool", idle_pool()),
    ("concctl run exec -x process -- sh -c 'kill -SEGV $PPID'", crash),
    ("concctl pool", pool_after_crash),
    ("concctl run primes n=100000 -x process", count(9592)),
    ("concctl tasks", tasks),
    ("concctl run sleep ms=100", count(100)),
    ("concctl run primes n=1000000", count(78498)),
    ("concctl --json run primes n=1000000", json_end),
    ("concctl run table n=1000000", table_first),
    ("w=$(concctl submit table n=1000000)", job_id),
    ("f=$(concctl submit table n=1000000 --fresh)", job_id),
    ("concctl wait $w $f", silent),
    ("concctl status $w", status_table(fresh=False)),
    ("concctl status $f", status_table(fresh=True)),
    ("concctl pool", idle_pool()),
    ("concctl pool resize --threads 4", sizes(4, 2)),
    ("concctl pool resize --threads 2", sizes(2, 2)),
    ("id=$(concctl submit sleep ms=3000 steps=3)", job_id),
    ("concctl status $id", status_running),
    ("concctl wait $id --timeout 1",
     err(r"concctl: timed out waiting for job \d+\n")),
    ("concctl wait $id", silent),
    ("concctl status $id", status_done),
    ("id=$(concctl submit sleep ms=60000)", job_id),
    ("concctl cancel $id", cancelled_by_id),
    ("concctl wait $id", err(r"concctl: job \d+ cancelled\n")),
    ("id=$(concctl submit sleep ms=2000)", job_id),
    ("concctl result $id", err(r"concctl: not_finished: job \d+ is "
                               r"running\n")),
    ("concctl wait $id", silent),
    ("concctl result $id", out("2000\n")),
    ("concctl run checksum path=/nonexistent",
     err(r"concctl: job \d+ failed: checksum: cannot open /nonexistent: "
         r"No such file or directory\n")),
    ("concctl run primes n=-1",
     err(r"concctl: bad_args: primes: n must be between 0 and "
         r"4000000000\n")),
    ("concctl run sleep ms=5000 --timeout 1", timed_out_after_a_second),
    ("concctl run exec -- sh -c 'echo working; exit 3'",
     err(r"", "working\n")),
    ("concctl run exec --retries 2 --retry-delay 0.5 -- sh -c "
     "'echo working; exit 3'", retried),
    ("printf 'sleep ms=600\\nprimes n=100000000\\nprimes n=1000\\n' | "
     "concctl gather", gathered("0 succeeded 600", "1 succeeded 5761455",
                                "2 succeeded 168")),
    ("printf 'sleep ms=600\\nprimes n=100000000\\nprimes n=1000\\n' | "
     "concctl gather --as-completed",
     gathered("0 succeeded 600", "1 succeeded 5761455", "2 succeeded 168",
              order=False)),
    ("seq 5 | sed 's/.*/primes n=&000000/' | concctl gather",
     gathered("0 succeeded 78498", "1 succeeded 148933",
              "2 succeeded 216816", "3 succeeded 283146",
              "4 succeeded 348513")),
    ("printf 'sleep ms=3000\\nexec -- false\\nsleep ms=3000\\n' | "
     "concctl gather", gathered("0 succeeded 3000",
                                "1 failed exited with status 1",
                                "2 succeeded 3000")),
    ("printf 'sleep ms=3000\\nexec -- false\\nsleep ms=3000\\n' | "
     "concctl gather --fail-fast",
     gathered("0 cancelled job was cancelled",
              "1 failed exited with status 1",
              "2 cancelled job was cancelled")),
    ("printf 'primes n=10\\nprimes n=-1\\n' | concctl gather",
     err(r"concctl: gather: line 2 \(index 1\): bad_args: primes: n must "
         r"be between 0 and 4000000000\n")),
    ("a=$(concctl submit sleep ms=2000)", job_id),
    ("b=$(concctl submit sleep ms=500)", job_id),
    ("concctl wait --any $a $b", wait_any),
    ("concctl wait $a $b", silent),
    ("concctl run counter threads=8 iters=1000000 lock=false",
     counter(lock=False)),
    ("concctl run counter threads=8 iters=1000000 lock=true",
     counter(lock=True)),
    ("concctl pool resize --threads 1", sizes(1, 2)),
    ("a=$(concctl submit primes n=1000000000 -x thread)", job_id),
    ("b=$(concctl submit primes n=1000000000 -x thread)", job_id),
    ("concctl wait $a $b", silent),
    ("concctl status $b", status_primes(queued=True)),
    ("concctl pool resize --threads 2", sizes(2, 2)),
    ("a=$(concctl submit primes n=1000000000 -x thread)", job_id),
    ("b=$(concctl submit primes n=1000000000 -x thread)", job_id),
    ("concctl wait $a $b", silent),
    ("concctl status $b", status_primes(queued=False)),
    ("concctl pool resize --processes 1", sizes(2, 1)),
    ("a=$(concctl submit primes n=1000000000 -x process)", job_id),
    ("b=$(concctl submit primes n=1000000000 -x process)", job_id),
    ("concctl wait $a $b", silent),
    ("concctl status $b", status_primes(queued=True)),
    ("concctl pool resize --processes 2", sizes(2, 2)),
    ("a=$(concctl submit primes n=1000000000 -x process)", job_id),
    ("b=$(concctl submit primes n=1000000000 -x process)", job_id),
    ("concctl wait $a $b", silent),
    ("concctl status $b", status_primes(queued=False)),
    ("concctl run " + PY % (300000, "thread"), count(25997)),
    ("concctl run " + PY % (300000, "process"), count(25997)),
    ("a=$(concctl submit " + PY % (300000, "thread") + ")", job_id),
    ("concctl wait $a", silent),
    ("concctl status $a", status_primes(queued=False, result="25997")),
    ("a=$(concctl submit " + PY % (300000, "thread") + ")", job_id),
    ("b=$(concctl submit " + PY % (300000, "thread") + ")", job_id),
    ("concctl wait $a $b", silent),
    ("concctl status $b", status_primes(queued=False, result="25997")),
    ("a=$(concctl submit " + PY % (300000, "process") + ")", job_id),
    ("concctl wait $a", silent),
    ("concctl status $a", status_primes(queued=False, result="25997")),
    ("a=$(concctl submit " + PY % (300000, "process") + ")", job_id),
    ("b=$(concctl submit " + PY % (300000, "process") + ")", job_id),
    ("concctl wait $a $b", silent),
    ("concctl status $b", status_primes(queued=False, result="25997")),
    ("w=$(concctl submit " + PY % (1000, "process") + ")", job_id),
    ("f=$(concctl submit " + PY % (1000, "process") + " --fresh)", job_id),
    ("concctl wait $w $f", silent),
    ("concctl status $w", status_python(fresh=False)),
    ("concctl status $f", status_python(fresh=True)),
    ("concctl group add two --parallel 2",
     out(r"group two: added \(parallel 2, active\)\n")),
    ("for i in 1 2 3 4 5 6; do concctl submit --group two exec -- sleep 1; "
     "done", out(r"(\d+\n){6}")),
    ("concctl group list two", group_row("two", "2", "2", "4", "2")),
    ("concctl wait --group two", took(silent, 2.0)),
    ("concctl group pause two",
     out(r"group two: paused \(parallel 2, paused\)\n")),
    ("a=$(concctl submit --group two exec -- true)", job_id),
    ("b=$(concctl submit --group two --priority 10 exec -- true)", job_id),
    ("concctl status $a", status_line("ahead", "1 jobs")),
    ("concctl group resume two",
     out(r"group two: resumed \(parallel 2, active\)\n")),
    ("concctl wait $a $b", silent),
    ("a=$(concctl submit exec -- sh -c 'exit 3')", job_id),
    ("concctl run --after $a exec -- echo never", failed_after("a")),
    ("b=$(concctl submit exec -- true)", job_id),
    ("concctl run --after $b exec -- echo after", out(r"after\n")),
    ("concctl run sleep ms=4000 --daemon & concctl run sleep ms=4000 & "
     "sleep 1; concctl shutdown; wait", lifetimes),
]

# Figures the page gives in its text, which the checks above compare with:
# the page must still say them.
TUTORIAL_FIGURES = ["348513", "FNV-1a", "9999 Ar id No succeeded 1000",
                    "5761455", "killed by signal 11 (Segmentation fault)",
                    "9592", "prints 100", "prints 78498", "inits",
                    "fresh process", "threads 4, processes 2", "3/3",
                    "job N: cancelled", "prints 2000",
                    "cannot open /nonexistent: \\&No such file",
                    "n must be between 0 and 4000000000",
                    "attempt 2 after: exited with status 3",
                    "succeeded 5761455", "succeeded 168",
                    "the last being 348513",
                    "failed exited with status 1", "exactly 8000000",
                    "50847534", "job N cancelled", "prints 4000",
                    "ahead 1 jobs", "4 jobs queued and 2",
                    "which it runs after, failed", "25997", "168 primes",
                    "fresh process started an interpreter"]


def start_daemon():
    """A daemon like the tutorial's, whose STATUS= lines are read as they
    come: a long run of jobs must not fill the notify socket's queue."""
    # The tutorial's job kills its worker with SIGSEGV: under ASan or TSan
    # the worker must die of it as the page says, not report it and exit.
    plugins = ("--plugin-dir", PYTHON_PLUGINS) if PYTHON_PLUGINS else ()
    d = Daemon("-p", "2", *plugins, threads=2,
               env={"ASAN_OPTIONS": "handle_segv=0",
                    "TSAN_OPTIONS": "handle_segv=0"})
    # the files the page asks its reader to save, where the commands run
    for name, text in page_files("concd-concurrency.7").items():
        with open(os.path.join(d.dir, name), "w") as f:
            f.write(text)

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
        self.skipped_python = []  # page lines left out: no python task

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

    def sh(self, command, env=None):
        """command in bash with pipefail, as a reader's shell would run it
        but failing when any part of a pipeline fails; its time taken in
        .elapsed."""
        start = time.monotonic()
        r = subprocess.run(["bash", "-o", "pipefail", "-c", command],
                           env=env or self.env(), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True,
                           timeout=COMMAND_BOUND, cwd=self.daemons[-1].dir)
        r.elapsed = time.monotonic() - start
        return r

    def run_tutorial(self, env=None):
        """Runs the page's commands in order; yields each with its page
        line, expected status, result and check."""
        commands = page_commands("concd-concurrency.7")
        self.assertEqual([text for _, text, _ in commands],
                         [text for text, _ in TUTORIAL],
                         "the page's commands are not those TUTORIAL "
                         "checks, in the same order")
        crashed = False
        python = section_lines("concd-concurrency.7", PYTHON_SECTION)
        for (line, text, status), (_, check) in zip(commands, TUTORIAL):
            # without the python task (no python3-dev), its section's
            # lines are left out, and the test says so (skipped_python)
            if not PYTHON_PLUGINS and line in python:
                self.skipped_python.append(line)
                continue
            # Under valgrind, valgrind gets the worker's SIGSEGV and the
            # worker dies of it later, during another job: the crash and
            # the look at the pool after it are left out.
            if VALGRIND and ("kill -SEGV" in text or crashed):
                crashed = "kill -SEGV" in text
                continue
            m = ASSIGNMENT.match(text)
            try:
                r = self.sh(m.group(2) if m else text, env)
            except subprocess.TimeoutExpired:
                self.fail("concd-concurrency.7:%d: %r took more than "
                          "%ss" % (line, text, COMMAND_BOUND))
            if m:
                self.vars[m.group(1)] = r.stdout.strip()
            yield line, text, status, r, check

    def restart_after_shutdown(self):
        """A tutorial line stopped the daemon: let it finish, start
        another like it for the lines that follow."""
        d = self.daemons[-1]
        rc = d.proc.wait(BOUND)
        self.assertEqual(rc, 0, "concd did not stop cleanly:\n" + d.log())
        self.daemons.append(start_daemon())

    def test_every_command_of_concd_concurrency_7_works_as_written(self):
        seen = {}
        for line, text, status, r, check in self.run_tutorial():
            with self.subTest(line=line, command=text):
                self.assertEqual(
                    r.returncode, status,
                    "concd-concurrency.7:%d: %r exited %d, the page says "
                    "%d\nstdout: %s\nstderr: %s" % (
                        line, text, r.returncode, status, r.stdout[-2000:],
                        r.stderr[-2000:]))
                seen.update(self.vars)
                try:
                    check(r, seen)
                except (AssertionError, ValueError, KeyError,
                        IndexError) as e:
                    self.fail("concd-concurrency.7:%d: %r printed what the "
                              "page does not say: %s\nstderr: %s"
                              % (line, text, e, r.stderr[-2000:]))
            if re.search(r"\bconcctl\s+shutdown\b", text):
                self.restart_after_shutdown()
        if self.skipped_python:
            with self.subTest(lines=self.skipped_python):
                self.skipTest("the python task is not built (no "
                              "python3-dev: CONCD_PYTHON_PLUGINS is empty): "
                              "the %d lines of %s were not run"
                              % (len(self.skipped_python),
                                 PYTHON_SECTION[4:]))

    def test_every_command_of_concd_concurrency_7_fails_without_a_daemon(self):
        # the test above can fail: with no daemon at the socket, every
        # command exits otherwise or prints otherwise than the page says
        env = self.env()
        env["CONCD_SOCKET"] = os.path.join(self.daemons[-1].dir, "absent")
        passed = []
        seen = {}
        for line, text, status, r, check in self.run_tutorial(env):
            if r.returncode == status:
                seen.update(self.vars)
                try:
                    check(r, seen)
                    passed.append("%d: %s" % (line, text))
                except (AssertionError, ValueError, KeyError, IndexError):
                    pass
        self.assertEqual(passed, [], "lines that pass without a daemon")

    def test_concd_concurrency_7_still_gives_the_figures_checked(self):
        page = read("man", "concd-concurrency.7")
        self.assertEqual([f for f in TUTORIAL_FIGURES if f not in page], [])

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


def page_examples(page):
    """The "$ concctl" lines of the page's literal displays that are
    followed by the output they print (lines that are not commands)."""
    examples = []
    in_display = False
    for line in read("man", page).splitlines():
        if line.startswith(".Bd") and "-literal" in line:
            in_display, current = True, None
        elif line.startswith(".Ed"):
            in_display = False
        elif not in_display:
            continue
        elif line.startswith("$ concctl "):
            current = [unescape(line[2:]), ""]
            examples.append(current)
        elif line.startswith(("$ ", "# ", ".")):
            current = None
        elif current is not None:
            current[1] += unescape(line) + "\n"
    return [(text, output) for text, output in examples if output]


@unittest.skipUnless(PLUGINS, "CONCD_PLUGINS is not set (the greet plugin)")
class Examples(unittest.TestCase):
    """The examples of concd(8) that show their output print it."""

    def test_the_examples_of_concd_8_print_what_they_show(self):
        examples = page_examples("concd.8")
        self.assertEqual(len(examples), 2, examples)
        d = Daemon("-t", "4", "-p", "2", "--plugin-dir", PLUGINS)
        try:
            for text, output in examples:
                text = text.replace("/tmp/concd.sock", d.socket)
                r = subprocess.run(
                    ["bash", "-o", "pipefail", "-c", text],
                    env=dict(os.environ, CONCD_SOCKET=d.socket,
                             PATH=os.path.dirname(os.path.abspath(CONCTL))
                             + os.pathsep + os.environ.get("PATH", "")),
                    capture_output=True, text=True, timeout=COMMAND_BOUND)
                self.assertEqual((r.returncode, r.stdout), (0, output),
                                 "%r: %s" % (text, r.stderr))
        finally:
            d.close()


if __name__ == "__main__":
    harness.main()
