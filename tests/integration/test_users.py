"""Several users on one concd: whose identity a job acts with, who may see
and control what, and who is admin (concd(8) SECURITY).

The module makes its own users and groups, so it runs only as root and
skips otherwise; it removes them at the end, whatever happened:
  concd-alice, concd-bob   members of concd-users
  concd-boss               a member of concd-admins, named admin-group
Each user runs concctl through runuser(1), which gives it the groups
initgroups(3) gives it, as a login would.
"""
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BOUND, CONCD, CONCTL, VALGRIND, Daemon, Notify  # noqa: E402

ALICE, BOB, BOSS = "concd-alice", "concd-bob", "concd-boss"
USERS_GROUP, ADMINS_GROUP = "concd-users", "concd-admins"
NO_ACCOUNT_UID = 54321  # a uid the test checks has no passwd entry
EXECUTORS = ("loop", "thread", "process")

top = None  # the temporary directory: homes, sockets, files


def _run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True, timeout=BOUND)


def _remove_accounts():
    """Remove the test's users and groups, if they are there (also what a
    killed earlier run left)."""
    for u in (ALICE, BOB, BOSS):
        try:
            pwd.getpwnam(u)
        except KeyError:
            continue
        subprocess.run(["userdel", u], capture_output=True, timeout=BOUND)
    for g in (USERS_GROUP, ADMINS_GROUP, ALICE, BOB, BOSS):
        try:
            grp.getgrnam(g)
        except KeyError:
            continue
        subprocess.run(["groupdel", g], capture_output=True, timeout=BOUND)


def setUpModule():
    global top
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root: it creates and removes the "
                                "users concd-alice, concd-bob, concd-boss")
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "runuser",
                 "setpriv"):
        if shutil.which(tool) is None:
            raise unittest.SkipTest("%s is not installed" % tool)
    _remove_accounts()
    top = tempfile.mkdtemp(prefix="concd-users-")
    os.chmod(top, 0o755)
    try:
        _run("groupadd", USERS_GROUP)
        _run("groupadd", ADMINS_GROUP)
        for u, g in ((ALICE, USERS_GROUP), (BOB, USERS_GROUP),
                     (BOSS, ADMINS_GROUP)):
            home = os.path.join(top, u)
            _run("useradd", "--home-dir", home, "--create-home",
                 "--shell", "/bin/sh", "--user-group", "--groups", g, u)
            os.chmod(home, 0o700)
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    _remove_accounts()
    if top is not None:
        shutil.rmtree(top, ignore_errors=True)


def uid(user):
    return pwd.getpwnam(user).pw_uid


def groups_of(user):
    """The gids initgroups(3) gives user: its primary group and the
    groups that list it."""
    pw = pwd.getpwnam(user)
    return set(os.getgrouplist(user, pw.pw_gid))


def write_file(path, data, owner=None, group=None, mode=0o600):
    with open(path, "w") as f:
        f.write(data)
    os.chown(path, uid(owner) if owner else 0,
             grp.getgrnam(group).gr_gid if group else 0)
    os.chmod(path, mode)


class UsersTest(unittest.TestCase):
    """A root concd whose socket every user may reach."""

    config = "admin-group = %s\n" % ADMINS_GROUP

    def setUp(self):
        self.conf = os.path.join(top, "concd.conf")
        with open(self.conf, "w") as f:
            f.write(self.config)
        # a variable of root's environment that users' commands never see
        self.d = Daemon("-p", "1", "-c", self.conf,
                        env={"CONCD_ROOT_ONLY": "secret"})
        os.chmod(self.d.socket, 0o666)

    def tearDown(self):
        self.d.close()

    def ctl(self, user, *args, input=None):
        cmd = [CONCTL, "--socket", self.d.socket] + [str(a) for a in args]
        if user is not None:
            cmd = ["runuser", "-u", user, "--"] + cmd
        return subprocess.run(cmd, input=input, capture_output=True,
                              text=True, timeout=BOUND)

    def ok(self, user, *args):
        r = self.ctl(user, *args)
        self.assertEqual(r.returncode, 0, "%s %s: %s" % (user, args,
                                                         r.stderr))
        return r.stdout

    def refused(self, user, *args, rc, message):
        r = self.ctl(user, *args)
        self.assertEqual(r.returncode, rc, "%s %s: %r %r"
                         % (user, args, r.stdout, r.stderr))
        self.assertIn(message, r.stderr)
        return r

    def alive(self):
        self.assertEqual(self.ctl(None, "ping").returncode, 0)

    def wire_run(self, user, argv, x):
        """Run argv as an exec job of user, submitted on the wire
        without a cwd (concctl always sends its own): its stdout."""
        script = (
            "import sys; sys.path.insert(0, %r)\n"
            "from harness import Client\n"
            "c = Client(%r)\n"
            "ev = c.until_end(c.request('submit', task='exec', exec=%r,\n"
            "                           args={'argv': %r}, watch=True))\n"
            "sys.stdout.buffer.write(b''.join(e['data'] for e in ev\n"
            "                        if e['t'] == 'output'))\n"
            % (os.path.dirname(os.path.abspath(__file__)), self.d.socket,
               x, argv))
        r = subprocess.run(["runuser", "-u", user, "--", "/usr/bin/python3",
                            "-c", script], capture_output=True, text=True,
                           timeout=BOUND, cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout


class RootConcdTest(UsersTest):
    def test_an_exec_command_runs_with_its_owners_uid_and_groups(self):
        for x in EXECUTORS:
            with self.subTest(executor=x):
                out = self.ok(ALICE, "run", "exec", "-x", x, "--",
                              "sh", "-c", "id -u; id -ru; id -g; id -rg; "
                              "id -G")
                u, ru, g, rg, gs = out.split("\n")[:5]
                self.assertEqual((int(u), int(ru)), (uid(ALICE),) * 2)
                self.assertEqual((int(g), int(rg)),
                                 (pwd.getpwnam(ALICE).pw_gid,) * 2)
                self.assertEqual({int(n) for n in gs.split()},
                                 groups_of(ALICE))
                self.assertIn(grp.getgrnam(USERS_GROUP).gr_gid,
                              {int(n) for n in gs.split()})
        # a command named by its path, not looked up in PATH
        self.assertEqual(self.ok(ALICE, "run", "exec", "--", "/usr/bin/id",
                                 "-ru"), "%d\n" % uid(ALICE))
        # root's own commands still run as root
        self.assertEqual(self.ok(None, "run", "exec", "--", "id", "-u"),
                         "0\n")

    def test_an_exec_command_gets_its_owners_environment_never_roots(self):
        script = ('echo "$HOME|$USER|$LOGNAME|$SHELL|'
                  '${CONCD_ROOT_ONLY-unset}"; pwd')
        home = os.path.join(top, BOB)
        for x in EXECUTORS:
            with self.subTest(executor=x):
                # in the caller's directory, through concctl
                out = self.ok(BOB, "run", "exec", "-x", x, "--",
                              "sh", "-c", script)
                self.assertEqual(out, "%s|%s|%s|/bin/sh|unset\n%s\n"
                                 % (home, BOB, BOB, os.getcwd()))
                # in the owner's home when the job names no directory
                out = self.wire_run(BOB, ["sh", "-c", script], x)
                self.assertEqual(out, "%s|%s|%s|/bin/sh|unset\n%s\n"
                                 % (home, BOB, BOB, home))
        # root's commands keep concd's environment
        out = self.ok(None, "run", "exec", "--", "sh", "-c",
                      'echo "${CONCD_ROOT_ONLY-unset}"')
        self.assertEqual(out, "secret\n")

    def test_env_and_cwd_of_the_job_apply_as_its_owner(self):
        out = self.ok(ALICE, "run", "exec", "env.HOME=/nowhere",
                      "env.GREETING=hi", "cwd=/tmp", "--", "sh", "-c",
                      'echo "$HOME $GREETING $USER"; pwd')
        self.assertEqual(out, "/nowhere hi %s\n/tmp\n" % ALICE)
        if VALGRIND:
            return  # valgrind runs the child as a fork: no error comes back
        # a directory she cannot enter is refused by name, as her
        for x in EXECUTORS:
            with self.subTest(executor=x):
                self.refused(ALICE, "run", "exec", "-x", x,
                             "cwd=" + os.path.join(top, BOB), "--", "pwd",
                             rc=125, message='exec: cannot use cwd "%s": '
                             'Permission denied' % os.path.join(top, BOB))

    def test_a_command_runs_in_root_when_its_owner_cannot_enter_home(self):
        home = os.path.join(top, ALICE)
        os.chmod(home, 0o000)
        try:
            out = self.wire_run(ALICE, ["pwd"], "loop")
        finally:
            os.chmod(home, 0o700)
        self.assertEqual(out, "/\n")

    def test_files_of_an_exec_job_are_its_owners(self):
        path = os.path.join(top, ALICE, "made-by-job")
        self.ok(ALICE, "run", "exec", "--", "touch", path)
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_gid),
                         (uid(ALICE), pwd.getpwnam(ALICE).pw_gid))
        self.assertEqual(st.st_mode & 0o777, 0o644)

    def test_checksum_opens_a_path_with_its_owners_credentials(self):
        for x in ("thread", "process"):
            with self.subTest(executor=x):
                self.refused(ALICE, "run", "checksum", "path=/etc/shadow",
                             "-x", x, rc=1, message="checksum: cannot open "
                             "/etc/shadow: Permission denied")
        # a file only alice can read: hers to read, bob's to be refused
        mine = os.path.join(top, "alices-file")
        write_file(mine, "alice's data\n", owner=ALICE)
        for x in ("thread", "process"):
            with self.subTest(executor=x):
                out = json.loads(self.ok(ALICE, "--json", "run", "checksum",
                                         "path=" + mine, "-x", x)
                                 .strip().split("\n")[-1])
                self.assertEqual(out["result"]["size"], 13)
                self.refused(BOB, "run", "checksum", "path=" + mine, "-x",
                             x, rc=1, message="checksum: cannot open %s: "
                             "Permission denied" % mine)
        # a group's file: read through a supplementary group
        shared = os.path.join(top, "users-file")
        write_file(shared, "shared\n", group=USERS_GROUP, mode=0o640)
        self.ok(BOB, "run", "checksum", "path=" + shared)
        self.refused(BOSS, "run", "checksum", "path=" + shared, rc=1,
                     message="Permission denied")
        # root's own jobs open as root
        self.ok(None, "run", "checksum", "path=/etc/shadow")

    def test_an_exec_job_of_a_uid_without_an_account_fails_clearly(self):
        with self.assertRaises(KeyError):
            pwd.getpwuid(NO_ACCOUNT_UID)
        cmd = ["setpriv", "--reuid=%d" % NO_ACCOUNT_UID,
               "--regid=%d" % NO_ACCOUNT_UID, "--clear-groups", CONCTL,
               "--socket", self.d.socket, "run", "exec", "-x"]
        for x in EXECUTORS:
            with self.subTest(executor=x):
                r = subprocess.run(cmd + [x, "--", "id", "-u"],
                                   capture_output=True, text=True,
                                   timeout=BOUND)
                self.assertEqual(r.returncode, 125, r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertIn("exec: uid %d has no entry in the user "
                              "database" % NO_ACCOUNT_UID, r.stderr)

    def test_only_its_owner_and_admins_see_and_cancel_a_job(self):
        job = self.ok(ALICE, "submit", "sleep", "ms=600000").strip()
        self.assertTrue(job.isdigit())
        self.refused(BOB, "status", job, rc=4, message="no such job")
        self.refused(BOB, "cancel", job, rc=4, message="no such job")
        self.assertNotIn(job, self.ok(BOB, "ps", "-a").split())
        st = json.loads(self.ok(ALICE, "--json", "status", job))
        self.assertEqual((st["state"], st["uid"]), ("running", uid(ALICE)))
        # a member of admin-group sees and controls it, as root does
        self.assertIn(job, self.ok(BOSS, "ps").split())
        self.ok(BOSS, "cancel", job)
        st = json.loads(self.ok(ALICE, "--json", "status", job))
        self.assertEqual(st["state"], "cancelled")

    def test_shutdown_and_resize_need_an_admin(self):
        self.refused(ALICE, "shutdown", rc=4, message="permission_denied")
        self.refused(ALICE, "pool", "resize", "--threads", "3", rc=4,
                     message="permission_denied")
        # nor from inside her own exec job (under valgrind that concctl
        # would be traced, with a log file she cannot write)
        if not VALGRIND:
            self.refused(ALICE, "run", "exec", "--",
                         os.path.abspath(CONCTL), "--socket",
                         self.d.socket, "shutdown", rc=4,
                         message="permission_denied")
        self.alive()
        # a member of admin-group may
        out = json.loads(self.ok(BOSS, "--json", "pool", "resize",
                                 "--threads", "3"))
        self.assertEqual(out["threads"], 3)
        self.ok(BOSS, "shutdown")
        self.assertEqual(self.d.proc.wait(BOUND), 0)

    def test_pool_shows_other_users_job_ids_only_to_admins(self):
        fifo = os.path.join(top, "hold")
        os.mkfifo(fifo)
        os.chmod(fifo, 0o666)
        try:
            bobs = self.ok(BOB, "submit", "exec", "-x", "thread", "--",
                           "sh", "-c", "read x < " + fifo).strip()
            alices = self.ok(ALICE, "submit", "exec", "-x", "process",
                             "--", "sh", "-c", "read x < " + fifo).strip()
            c = self.d.client()
            c.wait_state(int(bobs), "running")
            c.wait_state(int(alices), "running")
            c.close()

            def jobs(user):
                info = json.loads(self.ok(user, "--json", "pool"))
                busy = [w for w in info["workers"] if w["state"] == "busy"]
                self.assertEqual(len(busy), 2, info)
                return sorted(w.get("job", 0) for w in busy)

            self.assertEqual(jobs(ALICE), [0, int(alices)])
            self.assertEqual(jobs(BOB), [0, int(bobs)])
            both = sorted([int(alices), int(bobs)])
            self.assertEqual(jobs(BOSS), both)
            self.assertEqual(jobs(None), both)
        finally:
            # release both commands: each reads one line
            with open(fifo, "w") as f:
                f.write("go\ngo\n")
        for job in (alices, bobs):
            self.ok(None, "wait", job)


class UserJobLimitTest(UsersTest):
    """No user fills the queues for the others (user-job-limit)."""

    config = UsersTest.config + "user-job-limit = 3\n"

    def test_each_user_has_at_most_user_job_limit_unfinished_jobs(self):
        done = self.ok(ALICE, "submit", "noop").strip()
        self.ok(ALICE, "wait", done)
        held = [self.ok(ALICE, "submit", "--hold", "noop").strip()
                for _ in range(3)]
        full = ("queue_full: uid %d has 3 unfinished jobs, as many as each "
                "user may (user-job-limit); try again later" % uid(ALICE))
        self.refused(ALICE, "submit", "--hold", "noop", rc=4, message=full)
        r = self.ctl(ALICE, "gather", input="noop\n")
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn(full, r.stderr)
        self.refused(ALICE, "run", "exec", "--", "true", rc=125,
                     message=full)
        self.refused(ALICE, "restart", done, rc=4, message=full)
        # the others are not held back by her jobs: another user, and
        # root, the daemon's own uid, which has no such limit
        for _ in range(3):
            self.ok(BOB, "submit", "--hold", "noop")
        for _ in range(4):
            self.ok(None, "submit", "--hold", "noop")
        # a job that ends makes room
        self.ok(ALICE, "cancel", held[0])
        self.assertEqual(self.ok(ALICE, "run", "exec", "--", "echo", "ok"),
                         "ok\n")
        self.ok(ALICE, "submit", "--hold", "noop")
        self.refused(ALICE, "submit", "noop", rc=4, message=full)

class UserInstanceTest(unittest.TestCase):
    """concd run by alice herself, as `systemctl --user` would."""

    def start(self, config):
        self.dir = tempfile.mkdtemp(prefix="instance-", dir=top)
        os.chown(self.dir, uid(ALICE), 0)
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "concd.sock")
        conf = os.path.join(self.dir, "concd.conf")
        with open(conf, "w") as f:
            f.write(config)
        self.notify = Notify(os.path.join(self.dir, "notify"))
        os.chmod(self.notify.path, 0o666)
        self.log = open(os.path.join(self.dir, "stderr"), "w")
        # her instance keeps its jobs in $XDG_STATE_HOME/concd
        self.xdg = os.path.join(self.dir, "xdg-state")
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.path,
                   XDG_STATE_HOME=self.xdg)
        env.pop("INVOCATION_ID", None)
        env.pop("JOURNAL_STREAM", None)
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=%d" % uid(ALICE),
             "--regid=%d" % pwd.getpwnam(ALICE).pw_gid, "--init-groups",
             CONCD, "-f", "-s", self.sock, "-c", conf, "-t", "1"],
            env=env, stderr=self.log)
        self.notify.wait_for("READY=1")
        os.chmod(self.sock, 0o666)  # as root: let bob reach her socket

    def tearDown(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(BOUND)
        self.log.close()
        if rc != 0:
            with open(os.path.join(self.dir, "stderr")) as f:
                sys.stderr.write(f.read())
        self.notify.close()
        self.assertEqual(rc, 0, "concd exited with %d" % rc)

    def ctl(self, user, *args):
        return subprocess.run(["runuser", "-u", user, "--", CONCTL,
                               "--socket", self.sock] + list(args),
                              capture_output=True, text=True,
                              timeout=BOUND)

    def test_it_refuses_other_users_exec_jobs(self):
        self.start("processes = 1\n")
        r = self.ctl(BOB, "run", "exec", "--", "id", "-u")
        self.assertEqual(r.returncode, 125, r.stderr)  # refused: no status
        self.assertEqual(r.stdout, "")
        self.assertIn("permission_denied: exec jobs of uid %d are refused"
                      % uid(BOB), r.stderr)
        self.assertIn("exec-other-users", r.stderr)
        # other tasks run no user code, and her own exec jobs run
        self.assertEqual(self.ctl(BOB, "run", "sleep", "ms=1").returncode, 0)
        r = self.ctl(ALICE, "run", "exec", "--", "id", "-u")
        self.assertEqual(r.stdout, "%d\n" % uid(ALICE), r.stderr)
        # she is admin of her own instance; bob is not
        r = self.ctl(BOB, "shutdown")
        self.assertEqual(r.returncode, 4)
        self.assertIn("permission_denied", r.stderr)
        self.assertEqual(self.ctl(ALICE, "shutdown").returncode, 0)
        self.assertEqual(self.proc.wait(BOUND), 0)

    def test_exec_other_users_runs_them_as_the_instances_user(self):
        self.start("exec-other-users = yes\nprocesses = 1\n")
        for x in EXECUTORS:
            with self.subTest(executor=x):
                r = self.ctl(BOB, "run", "exec", "-x", x, "--", "id", "-u")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, "%d\n" % uid(ALICE))
        # a reload without the key revokes it
        with open(os.path.join(self.dir, "concd.conf"), "w") as f:
            f.write("processes = 2\n")
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + BOUND
        while json.loads(self.ctl(ALICE, "--json", "pool").stdout)[
                "processes"] != 2:
            self.assertLess(time.monotonic(), deadline, "no reload")
        r = self.ctl(BOB, "run", "exec", "--", "id", "-u")
        self.assertEqual(r.returncode, 125)
        self.assertIn("permission_denied", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
