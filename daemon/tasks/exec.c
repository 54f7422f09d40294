/*
 * exec -- run a real command and stream its output: stdout and stderr
 * line by line, the exit status as the result.
 *
 * The command is started with posix_spawnp, never fork (the daemon may
 * be large, and a spawn costs the same whatever its size), in a process
 * group of its own, with its signals back to their defaults and no
 * daemon descriptor but its three standard ones.  One epoll descriptor
 * stands for the stdout and stderr pipes and the stdin pipe while there
 * is input left to write, so every executor waits on one fd.  The job
 * ends when both pipes are at EOF and the command has exited: waiting for
 * both keeps the tail of the output.  Most commands have exited by the
 * time their pipes are at EOF; only one that is still running then gets
 * a pidfd in the epoll set to wait for its exit.  (Every spawn copies
 * and closes the daemon's whole descriptor table, so each descriptor a
 * running job holds makes every other job's spawn slower: a job usually
 * holds three.)  A cancelled command gets SIGTERM, then SIGKILL grace ms later,
 * and the daemon reaps it: no zombies.
 */
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../task.h"

extern char **environ;

#define EXEC_LINE      4096         /* longest line emitted whole */
#define EXEC_BUDGET    (256 * 1024) /* bytes read per step: fairness */
#define EXEC_CHUNK     (64 * 1024)  /* bytes per read(2), a pipe's worth */
#define EXEC_ARG_MAX   4096         /* bytes in one argv string */
#define EXEC_STDIN_MAX (256 * 1024) /* the wire's longest string */
#define EXEC_SHOW      200          /* bytes of a name quoted in errors */

enum { EXEC_ARGV, EXEC_CWD, EXEC_ENV, EXEC_STDIN, EXEC_GRACE };

static const struct task_arg exec_args[] = {
    [EXEC_ARGV] = {"argv", TASK_ARG_LIST, true, 1, 256, 0,
                   "the command and its arguments; argv[0] is looked up "
                   "in PATH"},
    [EXEC_CWD] = {"cwd", TASK_ARG_STR, false, 1, 4096, 0,
                  "the directory to run it in"},
    [EXEC_ENV] = {"env", TASK_ARG_MAP, false, 0, 256, 0,
                  "variables added to (or replacing those of) concd's "
                  "environment"},
    [EXEC_STDIN] = {"stdin", TASK_ARG_STR, false, 0, EXEC_STDIN_MAX, 0,
                    "data written to its standard input, then closed "
                    "(default: /dev/null)"},
    [EXEC_GRACE] = {"grace", TASK_ARG_INT, false, 0, 60000, 2000,
                    "milliseconds between SIGTERM and SIGKILL on cancel "
                    "or timeout"},
};

/* What epoll tells apart, in epoll_event.data.u32. */
enum { EXEC_OUT, EXEC_ERR, EXEC_IN, EXEC_PID };

/* One output stream: its pipe and the line it is in the middle of. */
struct exec_stream {
	int fd; /* our read end; -1 at EOF */
	size_t len;
	char line[EXEC_LINE];
};

struct exec_state {
	pid_t pid; /* also its process group; 0 once reaped */
	int pidfd; /* opened when needed, see exec_step */
	int epfd;
	int infd; /* stdin pipe's write end while input remains */
	unsigned grace;
	char *in; /* stdin data */
	size_t inlen, inoff;
	struct exec_stream out[2]; /* stdout, stderr */
};

/* A name as errors quote it: long ones are cut short. */
static int
exec_shown(size_t len)
{
	return (int)(len > EXEC_SHOW ? EXEC_SHOW : len);
}

static const char *
exec_ellipsis(size_t len)
{
	return len > EXEC_SHOW ? "..." : "";
}

static void
exec_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void
exec_free_strv(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* A NUL-terminated copy of a msgpack string; NULL if out of memory. */
static char *
exec_strdup(const msgpack_object *o)
{
	char *s = malloc(o->via.str.size + 1);

	if (s != NULL) {
		memcpy(s, o->via.str.ptr, o->via.str.size);
		s[o->via.str.size] = '\0';
	}
	return s;
}

static int
exec_copy_argv(struct task_ctx *ctx, const msgpack_object *list, char ***out)
{
	uint32_t i, n;
	char **v;

	if (list->type != MSGPACK_OBJECT_ARRAY || list->via.array.size < 1) {
		task_fail(ctx, "exec: argv must be a list of strings");
		return -1;
	}
	n = list->via.array.size;
	for (i = 0; i < n; i++) {
		const msgpack_object *o = &list->via.array.ptr[i];

		if (o->type != MSGPACK_OBJECT_STR) {
			task_fail(ctx, "exec: argv must be a list of strings");
			return -1;
		}
		if (o->via.str.size > EXEC_ARG_MAX ||
		    (i == 0 && o->via.str.size == 0)) {
			task_fail(ctx,
			          "exec: argv[%u] must be at most %d bytes "
			          "long (argv[0] not empty)",
			          i, EXEC_ARG_MAX);
			return -1;
		}
		if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL) {
			task_fail(ctx, "exec: argv[%u] contains a NUL byte", i);
			return -1;
		}
	}
	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		if ((v[i] = exec_strdup(&list->via.array.ptr[i])) == NULL) {
			exec_free_strv(v);
			goto nomem;
		}
	}
	*out = v;
	return 0;
nomem:
	task_fail(ctx, "exec: out of memory");
	return -1;
}

/*
 * The child's environment: concd's own, less the names env= sets, then
 * env='s NAME=VALUE strings.  Inherited entries are borrowed from
 * environ; *own holds the strings made here, to free.
 */
static int
exec_make_env(struct task_ctx *ctx, const msgpack_object *map, char ***envp,
              char ***own)
{
	uint32_t i, k, n;
	size_t nenv = 0, e = 0;
	char **v, **mine;

	if (map->type != MSGPACK_OBJECT_MAP) {
		task_fail(ctx, "exec: env must be a map of strings to strings");
		return -1;
	}
	n = map->via.map.size;
	for (i = 0; i < n; i++) {
		const msgpack_object *key = &map->via.map.ptr[i].key;
		const msgpack_object *val = &map->via.map.ptr[i].val;

		if (key->type != MSGPACK_OBJECT_STR ||
		    val->type != MSGPACK_OBJECT_STR) {
			task_fail(
			    ctx,
			    "exec: env must be a map of strings to strings");
			return -1;
		}
		if (key->via.str.size == 0 ||
		    memchr(key->via.str.ptr, '=', key->via.str.size) != NULL ||
		    memchr(key->via.str.ptr, '\0', key->via.str.size) != NULL) {
			task_fail(ctx,
			          "exec: \"%.*s%s\" is not a valid environment "
			          "variable name",
			          exec_shown(key->via.str.size),
			          key->via.str.ptr,
			          exec_ellipsis(key->via.str.size));
			return -1;
		}
		if (memchr(val->via.str.ptr, '\0', val->via.str.size) != NULL) {
			task_fail(ctx,
			          "exec: the value of %.*s%s contains a NUL "
			          "byte",
			          exec_shown(key->via.str.size),
			          key->via.str.ptr,
			          exec_ellipsis(key->via.str.size));
			return -1;
		}
	}
	while (environ != NULL && environ[nenv] != NULL)
		nenv++;
	if ((v = calloc(nenv + n + 1, sizeof(*v))) == NULL)
		goto nomem;
	if ((mine = calloc(n + 1, sizeof(*mine))) == NULL) {
		free(v);
		goto nomem;
	}
	for (k = 0; k < nenv; k++) {
		const char *cur = environ[k];
		size_t len = strcspn(cur, "=");
		bool replaced = false;

		for (i = 0; i < n && !replaced; i++) {
			const msgpack_object *key = &map->via.map.ptr[i].key;

			replaced = key->via.str.size == len &&
			           memcmp(key->via.str.ptr, cur, len) == 0;
		}
		if (!replaced)
			v[e++] = environ[k];
	}
	for (i = 0; i < n; i++) {
		const msgpack_object *key = &map->via.map.ptr[i].key;
		const msgpack_object *val = &map->via.map.ptr[i].val;

		if (asprintf(&mine[i], "%.*s=%.*s", (int)key->via.str.size,
		             key->via.str.ptr, (int)val->via.str.size,
		             val->via.str.ptr) < 0) {
			mine[i] = NULL;
			exec_free_strv(mine);
			free(v);
			goto nomem;
		}
		v[e++] = mine[i];
	}
	*envp = v;
	*own = mine;
	return 0;
nomem:
	task_fail(ctx, "exec: out of memory");
	return -1;
}

/* The working directory, checked so that a bad one gets a clear error. */
static int
exec_check_cwd(struct task_ctx *ctx, const union task_value *v, char **out)
{
	const char *why = NULL;
	struct stat st;
	char *cwd;

	if (memchr(v->s.ptr, '\0', v->s.len) != NULL) {
		task_fail(ctx, "exec: cwd contains a NUL byte");
		return -1;
	}
	if ((cwd = malloc(v->s.len + 1)) == NULL) {
		task_fail(ctx, "exec: out of memory");
		return -1;
	}
	memcpy(cwd, v->s.ptr, v->s.len);
	cwd[v->s.len] = '\0';
	if (stat(cwd, &st) < 0)
		why = strerror(errno);
	else if (!S_ISDIR(st.st_mode))
		why = strerror(ENOTDIR);
	else if (faccessat(AT_FDCWD, cwd, X_OK, AT_EACCESS) < 0)
		why = strerror(errno);
	if (why != NULL) {
		task_fail(ctx, "exec: cannot use cwd \"%.*s%s\": %s",
		          exec_shown(v->s.len), cwd, exec_ellipsis(v->s.len),
		          why);
		free(cwd);
		return -1;
	}
	*out = cwd;
	return 0;
}

static int
exec_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int
exec_watch(struct exec_state *s, int fd, uint32_t events, uint32_t tag)
{
	struct epoll_event ev = {.events = events, .data.u32 = tag};

	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void
exec_unwatch(struct exec_state *s, int *fd)
{
	if (*fd >= 0)
		(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, *fd, NULL);
	exec_close(fd);
}

/*
 * Start the command.  Our pipe ends are close-on-exec (another thread
 * may be spawning too) and non-blocking; the child gets only 0, 1, 2.
 */
static int
exec_spawn(struct task_ctx *ctx, struct exec_state *s, char **argv, char **envp,
           const char *cwd, bool with_stdin)
{
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t mask, def;
	const char *what;
	pid_t pid;
	int rc;

	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    (with_stdin && pipe2(inp, O_CLOEXEC) < 0)) {
		what = "pipe";
		rc = errno;
		goto fail;
	}
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
		what = "posix_spawn";
		goto fail;
	}
	if ((with_stdin ? posix_spawn_file_actions_adddup2(&fa, inp[0], 0)
	                : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
	                                                   O_RDONLY, 0)) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, outp[1], 1) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, errp[1], 2) != 0 ||
	    posix_spawn_file_actions_addclosefrom_np(&fa, 3) != 0 ||
	    (cwd != NULL &&
	     posix_spawn_file_actions_addchdir_np(&fa, cwd) != 0)) {
		posix_spawn_file_actions_destroy(&fa);
		what = "posix_spawn";
		rc = ENOMEM; /* the only way these fail with valid fds */
		goto fail;
	}

	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
	                                  POSIX_SPAWN_SETSIGMASK |
	                                  POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	sigemptyset(&mask);
	posix_spawnattr_setsigmask(&at, &mask);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGHUP);
	sigaddset(&def, SIGCHLD);
	posix_spawnattr_setsigdefault(&at, &def);

	rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	exec_close(&outp[1]);
	exec_close(&errp[1]);
	exec_close(&inp[0]);
	if (rc != 0) {
		size_t len = strlen(argv[0]);

		task_fail(ctx, "exec: cannot run \"%.*s%s\": %s",
		          exec_shown(len), argv[0], exec_ellipsis(len),
		          strerror(rc));
		goto close;
	}

	s->pid = pid;
	s->out[0].fd = outp[0];
	s->out[1].fd = errp[0];
	s->infd = inp[1];
	what = "epoll";
	if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    exec_watch(s, s->out[0].fd, EPOLLIN, EXEC_OUT) < 0 ||
	    exec_watch(s, s->out[1].fd, EPOLLIN, EXEC_ERR) < 0)
		goto kill;
	what = "fcntl";
	if (exec_set_nonblock(s->out[0].fd) < 0 ||
	    exec_set_nonblock(s->out[1].fd) < 0)
		goto kill;
	if (s->infd >= 0 && s->inlen == 0) {
		exec_close(&s->infd); /* stdin="": EOF at once */
	} else if (s->infd >= 0) {
		if (exec_set_nonblock(s->infd) < 0 ||
		    exec_watch(s, s->infd, EPOLLOUT, EXEC_IN) < 0)
			goto kill;
	}
	return 0;

kill:
	rc = errno;
	kill(-pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	s->pid = 0;
fail:
	task_fail(ctx, "exec: %s: %s", what, strerror(rc));
close:
	exec_close(&outp[0]);
	exec_close(&outp[1]);
	exec_close(&errp[0]);
	exec_close(&errp[1]);
	exec_close(&inp[0]);
	exec_close(&inp[1]);
	s->out[0].fd = s->out[1].fd = s->infd = -1;
	exec_close(&s->pidfd);
	exec_close(&s->epfd);
	return -1;
}

/*
 * Copy what the command needs and start it.  The argv list and env map
 * are valid only during start (task.h): everything is copied here.
 */
static int
exec_start(struct task_ctx *ctx, const union task_value *argv)
{
	struct exec_state *s = task_state(ctx);
	char **cargv = NULL, **envp = NULL, **own = NULL, *cwd = NULL;
	const msgpack_object *list = argv[EXEC_ARGV].o;
	const msgpack_object *env = argv[EXEC_ENV].o;
	int rc = -1;

	s->pidfd = s->epfd = s->infd = s->out[0].fd = s->out[1].fd = -1;
	s->grace = (unsigned)argv[EXEC_GRACE].i;
	if (list == NULL) {
		task_fail(ctx, "exec: missing argument argv");
		goto out;
	}
	if (exec_copy_argv(ctx, list, &cargv) < 0)
		goto out;
	if (argv[EXEC_CWD].s.ptr != NULL &&
	    exec_check_cwd(ctx, &argv[EXEC_CWD], &cwd) < 0)
		goto out;
	if (env != NULL && exec_make_env(ctx, env, &envp, &own) < 0)
		goto out;
	if (argv[EXEC_STDIN].s.ptr != NULL && argv[EXEC_STDIN].s.len > 0) {
		if ((s->in = malloc(argv[EXEC_STDIN].s.len)) == NULL) {
			task_fail(ctx, "exec: out of memory");
			goto out;
		}
		memcpy(s->in, argv[EXEC_STDIN].s.ptr, argv[EXEC_STDIN].s.len);
		s->inlen = argv[EXEC_STDIN].s.len;
	}
	rc = exec_spawn(ctx, s, cargv, envp != NULL ? envp : environ, cwd,
	                argv[EXEC_STDIN].s.ptr != NULL);
out:
	exec_free_strv(cargv);
	exec_free_strv(own);
	free(envp);
	free(cwd);
	if (rc < 0) {
		free(s->in);
		s->in = NULL;
	}
	return rc;
}

/*
 * Pass data on line by line: each complete line with its newline, a
 * line longer than EXEC_LINE in pieces of that size.  Bytes go through
 * as they are.  Complete lines are emitted straight from the chunk;
 * only the unfinished one is copied into the stream's line buffer.
 */
static void
exec_lines(struct task_ctx *ctx, int stream, struct exec_stream *o,
           const char *p, size_t n)
{
	const char *nl;
	size_t take;

	while (n > 0) {
		take = n < EXEC_LINE - o->len ? n : EXEC_LINE - o->len;
		nl = memchr(p, '\n', take);
		if (nl != NULL)
			take = (size_t)(nl - p) + 1;
		if (o->len == 0 && (nl != NULL || take == EXEC_LINE)) {
			task_output(ctx, stream, p, take);
		} else {
			memcpy(o->line + o->len, p, take);
			o->len += take;
			if (nl != NULL || o->len == EXEC_LINE) {
				task_output(ctx, stream, o->line, o->len);
				o->len = 0;
			}
		}
		p += take;
		n -= take;
	}
}

/* Read one pipe until it is empty, at EOF, or the step's budget is spent. */
static void
exec_read(struct task_ctx *ctx, struct exec_state *s, int which, size_t *budget)
{
	struct exec_stream *o = &s->out[which];
	char chunk[EXEC_CHUNK];
	size_t want;
	ssize_t n;

	while (o->fd >= 0 && *budget > 0) {
		want = *budget < sizeof(chunk) ? *budget : sizeof(chunk);
		n = read(o->fd, chunk, want);
		if (n > 0) {
			*budget -= (size_t)n;
			exec_lines(ctx, which + 1, o, chunk, (size_t)n);
			if ((size_t)n < want)
				break; /* empty for now: epoll tells more */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		/* EOF (or a read error): the last line may lack its \n */
		task_output(ctx, which + 1, o->line, o->len);
		o->len = 0;
		exec_unwatch(s, &o->fd);
	}
}

/* Write what stdin data the pipe takes; close it when all is written. */
static void
exec_write(struct exec_state *s)
{
	ssize_t n;

	while (s->infd >= 0 && s->inoff < s->inlen) {
		n = write(s->infd, s->in + s->inoff, s->inlen - s->inoff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0)
			break; /* EPIPE: the command does not want the rest */
		s->inoff += (size_t)n;
	}
	exec_unwatch(s, &s->infd);
	free(s->in);
	s->in = NULL;
	s->inlen = s->inoff = 0;
}

/*
 * Reap the command if it has exited: 1 when it was (si says how it
 * ended), 0 while it runs on, -1 on an error.
 */
static int
exec_reap(struct exec_state *s, siginfo_t *si)
{
	memset(si, 0, sizeof(*si));
	while (waitid(P_PID, (id_t)s->pid, si, WEXITED | WNOHANG) < 0) {
		if (errno != EINTR) {
			s->pid = 0; /* not ours to signal any more */
			return -1;
		}
	}
	if (si->si_pid == 0)
		return 0;
	s->pid = 0;
	return 1;
}

static enum task_step
exec_outcome(struct task_ctx *ctx, const siginfo_t *si)
{
	const char *name;
	msgpack_packer *pk;

	if (si->si_code == CLD_EXITED && si->si_status == 0) {
		pk = task_result(ctx);
		msgpack_pack_map(pk, 1);
		msgpack_pack_str_with_body(pk, "status", 6);
		msgpack_pack_int(pk, 0);
		return TASK_DONE;
	}
	if (si->si_code == CLD_EXITED)
		return task_fail(ctx, "exited with status %d", si->si_status);
	if ((name = sigabbrev_np(si->si_status)) != NULL)
		return task_fail(ctx, "killed by signal %d (SIG%s)",
		                 si->si_status, name);
	return task_fail(ctx, "killed by signal %d", si->si_status);
}

static enum task_step
exec_step(struct task_ctx *ctx)
{
	struct exec_state *s = task_state(ctx);
	struct epoll_event ev[4];
	size_t budget = EXEC_BUDGET;
	siginfo_t si;
	int i, n;

	if (task_cancelled(ctx))
		return TASK_FAILED;
	n = epoll_wait(s->epfd, ev, 4, 0);
	if (n < 0 && errno != EINTR)
		return task_fail(ctx, "exec: epoll_wait: %s", strerror(errno));
	for (i = 0; i < n && budget > 0; i++) {
		if (ev[i].data.u32 == EXEC_OUT || ev[i].data.u32 == EXEC_ERR)
			exec_read(ctx, s, (int)ev[i].data.u32, &budget);
		else if (ev[i].data.u32 == EXEC_IN)
			exec_write(s);
		/* EXEC_PID: it has exited, reaped below */
	}
	if (budget == 0)
		return TASK_YIELD;
	if (s->out[0].fd >= 0 || s->out[1].fd >= 0)
		return task_wait_fd(ctx, s->epfd, false);

	/* Both pipes at EOF: the command has exited, or soon will. */
	switch (exec_reap(s, &si)) {
	case 1:
		return exec_outcome(ctx, &si);
	case -1:
		return task_fail(ctx, "exec: waitid: %s", strerror(errno));
	}
	if (s->pidfd < 0) {
		s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
		if (s->pidfd < 0 ||
		    exec_watch(s, s->pidfd, EPOLLIN, EXEC_PID) < 0) {
			exec_close(&s->pidfd);
			return task_wait_ms(ctx, 10); /* look again, then */
		}
	}
	return task_wait_fd(ctx, s->epfd, false);
}

/*
 * Finished, failed, cancelled or timed out.  A command not yet reaped
 * gets SIGTERM in its whole process group and goes to the daemon, which
 * sends SIGKILL after the grace period and reaps it.  If the command
 * itself has exited but processes it started still hold its pipes open,
 * nothing is left to time a grace period by: they get SIGKILL at once.
 */
static void
exec_stop(struct task_ctx *ctx)
{
	struct exec_state *s = task_state(ctx);
	siginfo_t si;

	if (s->pid > 0) {
		memset(&si, 0, sizeof(si));
		if (kill(-s->pid, SIGTERM) < 0)
			kill(s->pid, SIGTERM);
		if (waitid(P_PID, (id_t)s->pid, &si,
		           WEXITED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid != 0)
			kill(-s->pid, SIGKILL);
		if (s->pidfd < 0)
			s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
		if (s->pidfd >= 0) {
			task_release_child(ctx, s->pid, s->pidfd, s->grace);
		} else {
			/* no pidfd (out of descriptors?): no grace either */
			kill(-s->pid, SIGKILL);
			while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		s->pid = 0;
		s->pidfd = -1;
	}
	exec_close(&s->pidfd);
	exec_close(&s->out[0].fd);
	exec_close(&s->out[1].fd);
	exec_close(&s->infd);
	exec_close(&s->epfd);
	free(s->in);
	s->in = NULL;
}

const struct task task_exec = {
    .abi = CONCD_TASK_ABI,
    .name = "exec",
    .summary = "run a command, streaming its stdout and stderr lines",
    .traits = TASK_NONBLOCKING,
    .executors = TASK_ON_ALL,
    .state_size = sizeof(struct exec_state),
    .args = exec_args,
    .nargs = sizeof(exec_args) / sizeof(exec_args[0]),
    .start = exec_start,
    .step = exec_step,
    .stop = exec_stop,
};
