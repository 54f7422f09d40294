/*
 * test_spawn.c -- the spawner driven through spawner.h: commands started
 * with pipes of the test's own, their output read to EOF, the command
 * waited for on a pidfd and reaped with spawn_reap.  Every test runs
 * twice: spawning on the caller, and handed to the spawner threads
 * (settled with spawn_wait).
 */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "spawner.h"

#define BOUND_MS 30000 /* an upper bound for any wait, never a delay */

static bool async; /* this run's: handed to the spawner threads */

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* A command as spawn_start takes it: argv and cwd copied, as concd's. */
static struct spawn_cmd
cmd_for(const char *const *argv, const char *cwd)
{
	struct spawn_cmd c = {.uid = getuid()};
	size_t n, i;

	for (n = 0; argv[n] != NULL; n++)
		;
	assert_non_null(c.argv = calloc(n + 1, sizeof(*c.argv)));
	for (i = 0; i < n; i++)
		assert_non_null(c.argv[i] = strdup(argv[i]));
	if (cwd != NULL)
		assert_non_null(c.cwd = strdup(cwd));
	return c;
}

/* A started command, its pipes' read ends and its stdin's write end. */
struct child {
	pid_t pid;
	int out, err, in; /* ours; in -1: the command has /dev/null */
};

/*
 * Start argv (in cwd) with pipes to the test, stdin a pipe when with_in:
 * 0 with c, or the errno with the error in why (to free), as spawn_start
 * and spawn_wait give them.
 */
static int
start(const char *const *argv, const char *cwd, bool with_in, struct child *c,
      char **why)
{
	struct spawn_cmd cmd = cmd_for(argv, cwd);
	int out[2], err[2], in[2] = {-1, -1}, rc;
	struct spawn *pending;

	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	if (with_in)
		assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	c->out = out[0];
	c->err = err[0];
	c->in = in[1];
	c->pid = 0;
	rc = spawn_start(&cmd, in[0], out[1], err[1], async, &pending, &c->pid,
	                 why);
	spawn_cmd_free(&cmd);
	assert_true(!async || rc != 0 || pending != NULL);
	if (rc == 0 && pending != NULL)
		rc = spawn_wait(pending, &c->pid, why);
	if (rc == 0)
		assert_true(c->pid > 0);
	return rc;
}

/* Read fd to EOF into buf (NUL-terminated); the number of bytes. */
static size_t
read_all(int fd, char *buf, size_t size)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t len = 0;
	ssize_t n;

	for (;;) {
		assert_int_equal(poll(&pfd, 1, BOUND_MS), 1);
		n = read(fd, buf + len, size - 1 - len);
		assert_true(n >= 0);
		if (n == 0)
			break;
		len += (size_t)n;
		assert_true(len < size - 1);
	}
	buf[len] = '\0';
	return len;
}

/*
 * Wait for the command's exit on a pidfd, then reap it: how it ended.
 * Without pidfd_open (under valgrind), look again every 10 ms, bounded.
 */
static siginfo_t
reap(pid_t pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
	siginfo_t si;
	int waited, rc;

	if (pidfd >= 0) {
		assert_int_equal(poll(&pfd, 1, BOUND_MS), 1);
		close(pidfd);
	}
	for (waited = 0;
	     (rc = spawn_reap(pid, &si)) == 0 && pidfd < 0 && waited < BOUND_MS;
	     waited += 10)
		(void)poll(NULL, 0, 10);
	assert_int_equal(rc, 1);
	assert_int_equal(si.si_pid, pid);
	return si;
}

/* Run argv (in cwd) to the end: exit status 0, out and err as given. */
static void
run_ok(const char *const *argv, const char *cwd, const char *want_out,
       const char *want_err)
{
	char buf[8192], *why = NULL;
	struct child c;
	siginfo_t si;

	assert_int_equal(start(argv, cwd, false, &c, &why), 0);
	read_all(c.out, buf, sizeof(buf));
	assert_string_equal(buf, want_out);
	read_all(c.err, buf, sizeof(buf));
	assert_string_equal(buf, want_err);
	si = reap(c.pid);
	assert_int_equal(si.si_code, CLD_EXITED);
	assert_int_equal(si.si_status, 0);
	close(c.out);
	close(c.err);
}

/* The error a command that cannot start gets; asserts it failed. */
static void
assert_start_fails(const char *const *argv, const char *cwd, int rc,
                   const char *want)
{
	char *why = NULL;
	struct child c;

	assert_int_equal(start(argv, cwd, false, &c, &why), rc);
	assert_non_null(why);
	assert_string_equal(why, want);
	free(why);
	/* the spawn closed the child's ends: EOF, nothing written */
	assert_int_equal(read(c.out, &rc, 1), 0);
	assert_int_equal(read(c.err, &rc, 1), 0);
	close(c.out);
	close(c.err);
}

/* Under valgrind, valgrind runs the commands, with signals of its own. */
static void
skip_under_valgrind(void)
{
	if (getenv("CONCD_VALGRIND") != NULL) {
		print_message("SKIP: valgrind runs the commands, with signals "
		              "of its own\n");
		skip();
	}
}

/* ---- behaviour ---- */

static void
a_command_runs_with_its_pipes_and_is_reaped_when_it_exits(void **state)
{
	char buf[64], *why = NULL;
	struct child c;
	siginfo_t si;

	assert_int_equal(start(ARGV("sh", "-c", "read x; echo \"$x\"; exit 3"),
	                       NULL, true, &c, &why),
	                 0);
	/* it waits for its input: still running, not reaped */
	assert_int_equal(spawn_reap(c.pid, &si), 0);
	assert_int_equal(write(c.in, "hello\n", 6), 6);
	close(c.in);
	read_all(c.out, buf, sizeof(buf));
	assert_string_equal(buf, "hello\n");
	si = reap(c.pid);
	assert_int_equal(si.si_code, CLD_EXITED);
	assert_int_equal(si.si_status, 3);
	/* reaped once: it is no child any more */
	assert_int_equal(spawn_reap(c.pid, &si), -1);
	assert_int_equal(errno, ECHILD);
	close(c.out);
	close(c.err);
}

static void
only_the_three_standard_fds_reach_the_command(void **state)
{
	run_ok(ARGV("sh", "-c", "ls /proc/$$/fd"), NULL, "0\n1\n2\n", "");
}

/* fd moved out of slots 0 to 2, if it is there. */
static int
above_2(int fd)
{
	int to = fd;

	if (fd >= 0 && fd < 3) {
		to = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		close(fd);
	}
	return to;
}

/*
 * The test's 0 and 1 closed: the command's stdout pipe end is
 * descriptor 1 already, which must still reach the command, open.
 */
static void
pipes_reach_the_command_even_in_concds_own_slots_0_to_2(void **state)
{
	char buf[64], *why = NULL;
	struct child c;
	int in, out, rc;

	/* (ctest may start the test with 0 closed already) */
	while (fcntl(0, F_GETFD) < 0 || fcntl(1, F_GETFD) < 0)
		assert_in_range(open("/dev/null", O_RDWR), 0, 1);
	in = dup(0);
	out = dup(1);
	assert_true(in > 2 && out > 2);
	close(0);
	close(1);
	rc = start(ARGV("sh", "-c", "cat; echo err >&2"), NULL, true, &c, &why);
	/* the test's own ends leave 0 and 1 before they are restored */
	c.out = above_2(c.out);
	c.err = above_2(c.err);
	c.in = above_2(c.in);
	assert_int_equal(dup2(in, 0), 0);
	assert_int_equal(dup2(out, 1), 1);
	close(in);
	close(out);
	assert_int_equal(rc, 0);
	assert_int_equal(write(c.in, "data\n", 5), 5);
	close(c.in);
	read_all(c.out, buf, sizeof(buf));
	assert_string_equal(buf, "data\n");
	read_all(c.err, buf, sizeof(buf));
	assert_string_equal(buf, "err\n");
	assert_int_equal(reap(c.pid).si_status, 0);
	close(c.out);
	close(c.err);
}

/* A hex mask from a /proc/PID/status line such as "SigIgn:\t...". */
static unsigned long long
status_mask(const char *text, const char *name)
{
	const char *p = strstr(text, name);

	assert_non_null(p);
	return strtoull(p + strlen(name) + 1, NULL, 16);
}

static void
signals_start_at_their_defaults_in_a_group_of_its_own(void **state)
{
	/* the test ignores these, and concd handles others; the command
	 * gets every signal at its default, real-time ones too */
	const int ign[] = {SIGPIPE, SIGHUP,       SIGQUIT,
	                   SIGUSR2, SIGRTMIN + 2, SIGRTMAX};
	void (*was[6])(int);
	char buf[4096], *why = NULL;
	struct child c;
	size_t i;

	for (i = 0; i < 6; i++)
		was[i] = signal(ign[i], SIG_IGN);
	assert_int_equal(
	    start(ARGV("sh", "-c",
	               /* builtins only: the shell blocks signals while it
	                * forks */
	               "while read -r k v; do case $k in Sig[BI]*) echo "
	               "\"$k\t$v\";; esac; done </proc/$$/status;"
	               " test $(cut -d' ' -f5 /proc/$$/stat) = $$ && echo own "
	               "group"),
	          NULL, false, &c, &why),
	    0);
	read_all(c.out, buf, sizeof(buf));
	assert_int_equal(reap(c.pid).si_status, 0);
	assert_int_equal(status_mask(buf, "SigBlk:"), 0);
	assert_int_equal(status_mask(buf, "SigIgn:"), 0);
	assert_non_null(strstr(buf, "\nown group\n"));
	close(c.out);
	close(c.err);
	for (i = 0; i < 6; i++)
		signal(ign[i], was[i]);
}

/* A file of mode mode in dir, with the given text. */
static void
put_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* PATH as execvp reads it: concd's own, in order, "" the working dir. */
static void
path_is_searched_as_execvp_searches_it(void **state)
{
	char a[] = "/tmp/concd-path-XXXXXX", b[] = "/tmp/concd-path-XXXXXX";
	char path[256], *was = getenv("PATH");

	skip_under_valgrind();
	was = was != NULL ? strdup(was) : NULL;
	assert_non_null(mkdtemp(a));
	assert_non_null(mkdtemp(b));
	put_file(a, "concd-t", "#!/bin/sh\necho a\n", 0644); /* not +x */
	put_file(b, "concd-t", "#!/bin/sh\necho b\n", 0755);

	/* a's copy cannot run: b's, later in PATH, does */
	snprintf(path, sizeof(path), "/nonexistent:%s:%s:/usr/bin:/bin", a, b);
	setenv("PATH", path, 1);
	run_ok(ARGV("concd-t"), NULL, "b\n", "");

	/* only a's: the EACCES is the error, not the ENOENT after it */
	snprintf(path, sizeof(path), "%s:/nonexistent", a);
	setenv("PATH", path, 1);
	assert_start_fails(ARGV("concd-t"), NULL, EACCES,
	                   "exec: cannot run \"concd-t\": Permission denied");

	/* an empty entry is the command's working directory */
	setenv("PATH", "/nonexistent::/bin", 1);
	run_ok(ARGV("concd-t"), b, "b\n", "");

	if (was != NULL)
		setenv("PATH", was, 1);
	else
		unsetenv("PATH");
	free(was);
	snprintf(path, sizeof(path), "%s/concd-t", a);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/concd-t", b);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(a), 0);
	assert_int_equal(rmdir(b), 0);
}

static void
a_command_that_cannot_start_is_named_in_the_error(void **state)
{
	skip_under_valgrind();
	assert_start_fails(
	    ARGV("nosuch"), NULL, ENOENT,
	    "exec: cannot run \"nosuch\": No such file or directory");
	assert_start_fails(ARGV("true"), "/nonexistent", ENOENT,
	                   "exec: cannot use cwd \"/nonexistent\": No such "
	                   "file or directory");
}

#define NCANCEL 100

/*
 * Spawns given up at once: each is either dropped unstarted (its pipe
 * ends closed, nothing written) or was under way and is waited for
 * (spawn_cancel gives its pid, and it runs to its end).  Nothing is
 * left behind either way.
 */
static void
a_pending_spawn_given_up_is_dropped_or_waited_for(void **state)
{
	struct spawn *pending[NCANCEL];
	int out[NCANCEL], fd[2], i, dropped = 0;
	char buf[64], *why;
	pid_t pid;

	if (!async) {
		print_message("SKIP: %s -- a spawn on the caller is never "
		              "pending\n",
		              __func__);
		skip();
	}
	for (i = 0; i < NCANCEL; i++) {
		struct spawn_cmd cmd = cmd_for(ARGV("echo", "ran"), NULL);

		assert_int_equal(pipe2(fd, O_CLOEXEC), 0);
		out[i] = fd[0];
		assert_int_equal(spawn_start(&cmd, -1, fd[1], dup(fd[1]), true,
		                             &pending[i], &pid, &why),
		                 0);
		spawn_cmd_free(&cmd);
		assert_non_null(pending[i]);
	}
	for (i = NCANCEL - 1; i >= 0; i--) {
		pid = spawn_cancel(pending[i]);
		assert_true(pid >= 0);
		read_all(out[i], buf, sizeof(buf));
		if (pid == 0) {
			assert_string_equal(buf, ""); /* never started */
			dropped++;
		} else {
			assert_string_equal(buf, "ran\n");
			assert_int_equal(reap(pid).si_status, 0);
		}
		close(out[i]);
	}
	print_message("%d of %d dropped unstarted\n", dropped, NCANCEL);
	/* no child left to reap */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static int
on_the_caller(void **state)
{
	async = false;
	return 0;
}

static int
on_spawner_threads(void **state)
{
	async = true;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        a_command_runs_with_its_pipes_and_is_reaped_when_it_exits),
	    cmocka_unit_test(only_the_three_standard_fds_reach_the_command),
	    cmocka_unit_test(
	        pipes_reach_the_command_even_in_concds_own_slots_0_to_2),
	    cmocka_unit_test(
	        signals_start_at_their_defaults_in_a_group_of_its_own),
	    cmocka_unit_test(path_is_searched_as_execvp_searches_it),
	    cmocka_unit_test(a_command_that_cannot_start_is_named_in_the_error),
	    cmocka_unit_test(a_pending_spawn_given_up_is_dropped_or_waited_for),
	};

	return cmocka_run_group_tests_name("spawning on the caller", tests,
	                                   on_the_caller, NULL) +
	       cmocka_run_group_tests_name("spawning on spawner threads", tests,
	                                   on_spawner_threads, NULL);
}
