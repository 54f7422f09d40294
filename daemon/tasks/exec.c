/*
 * exec -- run a real command and stream its output: stdout and stderr
 * line by line, the exit status as the result.
 *
 * The command is started by spawn.c (spawn_start): on the loop, by its
 * spawner threads, elsewhere on the caller; as the job's owner when a
 * root concd runs another user's job.  One epoll descriptor
 * stands for the stdout and stderr pipes and the stdin pipe while there
 * is input left to write, so every executor waits on one fd.  The job's
 * pipes are in its epoll set from the start, and when a handed-off spawn
 * fails the closing of the write ends wakes the job.  The job
 * ends when both pipes are at EOF and the command has exited: waiting for
 * both keeps the tail of the output.  Most commands have exited by the
 * time their pipes are at EOF; only one that is still running then gets
 * a pidfd in the epoll set to wait for its exit.  A cancelled command's
 * process group gets SIGTERM, then SIGKILL grace ms later (a timerfd in
 * the epoll set); the job winds down meanwhile, reading the pipes, and
 * ends once the command is reaped and its group gone.  No zombies.
 *
 * Where there are cgroups (cgroup.c) the command runs in its job's own,
 * made by the spawn with the job's limits: a cancel's signals reach the
 * processes that left the group too, an OOM kill ends the job with the
 * error oom, and what is left in it when the job ends is killed.
 *
 * On the slurm executor the command is srun's (slurm_exec_argv): Slurm
 * places it, limits it and runs it; the job's limits go to srun, not to a
 * cgroup here.  What srun passes on is the command's output, but for the
 * line the command writes first to standard error, which tells the Slurm
 * job id and the node (kept in the job's record, not in its output), and
 * slurmstepd's line on how Slurm ended a job, which the outcome maps
 * (its time limit: timed_out; a node failure: node_failed; preemption:
 * preempted).  A cancel asks scancel for SIGTERM, and after the grace
 * period for the end of the Slurm job.
 */
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../spawner.h"
#include "../task.h"

extern char **environ;

#define EXEC_LINE      4096         /* longest line emitted whole */
#define EXEC_BUDGET    (256 * 1024) /* bytes read per step: fairness */
#define EXEC_SHARE     (64 * 1024)  /* the same on the loop, which all share */
#define EXEC_CHUNK     (64 * 1024)  /* bytes per read(2), a pipe's worth */
#define EXEC_ARGS      65536        /* argv strings: the wire's most */
#define EXEC_ARG_MAX   131071       /* bytes in one: the kernel's most */
#define EXEC_VARS      4096         /* env variables: as the job's env */
#define EXEC_STDIN_MAX (256 * 1024) /* the wire's longest string */
#define EXEC_SHOW      200          /* bytes of a name quoted in errors */

enum { EXEC_ARGV, EXEC_CWD, EXEC_ENV, EXEC_STDIN, EXEC_GRACE };

static const struct task_arg exec_args[] = {
    [EXEC_ARGV] = {"argv", TASK_ARG_LIST, true, 1, EXEC_ARGS, 0,
                   "the command and its arguments; argv[0] is looked up "
                   "in PATH"},
    [EXEC_CWD] = {"cwd", TASK_ARG_STR, false, 1, 4096, 0,
                  "the directory to run it in"},
    [EXEC_ENV] = {"env", TASK_ARG_MAP, false, 0, EXEC_VARS, 0,
                  "variables added to (or replacing those of) the "
                  "command's environment"},
    [EXEC_STDIN] = {"stdin", TASK_ARG_STR, false, 0, EXEC_STDIN_MAX, 0,
                    "data written to its standard input, then closed "
                    "(default: what its client streams, else /dev/null)"},
    [EXEC_GRACE] = {"grace", TASK_ARG_INT, false, 0, TASK_WIND_DOWN_MS, 2000,
                    "milliseconds between SIGTERM and SIGKILL on cancel "
                    "or timeout"},
};

/* What epoll tells apart, in epoll_event.data.u32. */
enum { EXEC_OUT, EXEC_ERR, EXEC_IN, EXEC_PID, EXEC_TIMER };

/* One output stream: its pipe and the line it is in the middle of. */
struct exec_stream {
	int fd; /* our read end; -1 at EOF */
	size_t len;
	char *line; /* EXEC_LINE bytes, once a line is left unfinished */
};

struct exec_state {
	struct spawn *req;     /* a spawn not yet known to be done */
	struct cgroup_job *cg; /* the job's cgroup; NULL: none */
	pid_t pid;             /* also its process group; 0 once reaped */
	pid_t pgid;            /* the group, kept once the command is reaped */
	int pidfd;             /* opened when needed, see exec_step */
	int epfd;
	int infd;    /* stdin pipe's write end while input remains */
	int timerfd; /* cancelled: the grace period, in the epoll set */
	unsigned grace;
	bool stepped; /* the first step waits: nothing is ready before it */
	bool winding; /* cancelled: the group has had SIGTERM */
	bool killed;  /* and, after the grace period, SIGKILL */
	bool slurm;   /* under srun: the slurm executor */
	bool placed;  /* and Slurm has said where */
	uint8_t slurm_end; /* enum slurm_end: how Slurm ended it */
	uint8_t slurm_sig; /* srun says a signal killed the command */
	char *in;          /* stdin data */
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
			spawn_strv_free(v);
			goto nomem;
		}
	}
	*out = v;
	return 0;
nomem:
	task_fail(ctx, "exec: out of memory");
	return -1;
}

/* Whether map has the name key (a msgpack string). */
static bool
exec_map_has(const msgpack_object *map, const char *name, size_t len)
{
	uint32_t i;

	for (i = 0; map != NULL && i < map->via.map.size; i++) {
		const msgpack_object *key = &map->via.map.ptr[i].key;

		if (key->via.str.size == len &&
		    memcmp(key->via.str.ptr, name, len) == 0)
			return true;
	}
	return false;
}

static int
exec_check_env(struct task_ctx *ctx, const msgpack_object *map)
{
	uint32_t i;

	if (map->type != MSGPACK_OBJECT_MAP) {
		task_fail(ctx, "exec: env must be a map of strings to strings");
		return -1;
	}
	for (i = 0; i < map->via.map.size; i++) {
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
	return 0;
}

/*
 * The child's environment: base (concd's own, or none for a command run
 * as its owner), less the names the maps set, then the maps' NAME=VALUE
 * strings: the caller's environment (map[0]), then env= (map[1]), the
 * later winning.  Inherited entries are borrowed from base; *own holds
 * the strings made here, to free.
 */
static int
exec_make_env(struct task_ctx *ctx, const msgpack_object *map[2], char **base,
              char ***envp, char ***own)
{
	uint32_t i, n = 0;
	size_t nenv = 0, e = 0, m = 0, k;
	char **v, **mine;
	int w;

	for (w = 0; w < 2; w++) {
		if (map[w] != NULL && exec_check_env(ctx, map[w]) < 0)
			return -1;
		n += map[w] != NULL ? map[w]->via.map.size : 0;
	}
	while (base != NULL && base[nenv] != NULL)
		nenv++;
	if ((v = calloc(nenv + n + 1, sizeof(*v))) == NULL)
		goto nomem;
	if ((mine = calloc(n + 1, sizeof(*mine))) == NULL) {
		free(v);
		goto nomem;
	}
	for (k = 0; k < nenv; k++) {
		size_t len = strcspn(base[k], "=");

		if (!exec_map_has(map[0], base[k], len) &&
		    !exec_map_has(map[1], base[k], len))
			v[e++] = base[k];
	}
	for (w = 0; w < 2; w++) {
		for (i = 0; map[w] != NULL && i < map[w]->via.map.size; i++) {
			const msgpack_object *key = &map[w]->via.map.ptr[i].key;
			const msgpack_object *val = &map[w]->via.map.ptr[i].val;

			if (w == 0 && exec_map_has(map[1], key->via.str.ptr,
			                           key->via.str.size))
				continue; /* env= sets it */
			if (asprintf(&mine[m], "%.*s=%.*s",
			             (int)key->via.str.size, key->via.str.ptr,
			             (int)val->via.str.size,
			             val->via.str.ptr) < 0) {
				mine[m] = NULL;
				spawn_strv_free(mine);
				free(v);
				goto nomem;
			}
			v[e++] = mine[m++];
		}
	}
	*envp = v;
	*own = mine;
	return 0;
nomem:
	task_fail(ctx, "exec: out of memory");
	return -1;
}

/*
 * The working directory, checked so that a bad one gets a clear error.
 * A command run as its owner is checked by the child, as the owner.
 */
static int
exec_check_cwd(struct task_ctx *ctx, const union task_value *v, bool check,
               char **out)
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
	if (!check)
		why = NULL;
	else if (stat(cwd, &st) < 0)
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

/* A pipe end of our own, fresh: it has no other status flag to keep. */
static int
exec_set_nonblock(int fd)
{
	return fcntl(fd, F_SETFL, O_NONBLOCK);
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

/* Fail the job with why (taken over), or a plain message without it. */
static void
exec_fail_with(struct task_ctx *ctx, char *why)
{
	task_fail(ctx, "%s",
	          why != NULL ? why : "exec: cannot run the command");
	free(why);
}

/* Close the job's own descriptors: its pipe ends, pidfd and epoll set. */
static void
exec_close_ours(struct exec_state *s)
{
	exec_close(&s->pidfd);
	exec_close(&s->out[0].fd);
	exec_close(&s->out[1].fd);
	exec_close(&s->infd);
	exec_close(&s->timerfd);
	exec_close(&s->epfd);
}

/* Close fds[0..n). */
static void
exec_close_fds(int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		exec_close(&fds[i]);
}

/*
 * The job's side of the pipes, in its epoll set, before the command
 * exists: our ends are close-on-exec (another thread may be spawning
 * too) and non-blocking.  The child's ends are left in outp[1], errp[1]
 * and inp[0] (-1: /dev/null).
 */
static int
exec_pipes(struct task_ctx *ctx, struct exec_state *s, int outp[2], int errp[2],
           int inp[2], bool with_stdin)
{
	const char *what = "pipe";

	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    (with_stdin && pipe2(inp, O_CLOEXEC) < 0))
		goto fail;
	/* streamed by its client: the command reads the job's own pipe */
	if (!with_stdin && task_stdin(ctx) >= 0 &&
	    (inp[0] = fcntl(task_stdin(ctx), F_DUPFD_CLOEXEC, 0)) < 0)
		goto fail;
	s->out[0].fd = outp[0];
	s->out[1].fd = errp[0];
	s->infd = inp[1];
	outp[0] = errp[0] = inp[1] = -1;
	what = "epoll";
	if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    exec_watch(s, s->out[0].fd, EPOLLIN, EXEC_OUT) < 0 ||
	    exec_watch(s, s->out[1].fd, EPOLLIN, EXEC_ERR) < 0)
		goto fail;
	what = "fcntl";
	if (exec_set_nonblock(s->out[0].fd) < 0 ||
	    exec_set_nonblock(s->out[1].fd) < 0)
		goto fail;
	if (s->infd >= 0 && s->inlen == 0) {
		exec_close(&s->infd); /* stdin="": EOF at once */
	} else if (s->infd >= 0) {
		if (exec_set_nonblock(s->infd) < 0 ||
		    exec_watch(s, s->infd, EPOLLOUT, EXEC_IN) < 0)
			goto fail;
	}
	return 0;
fail:
	task_fail(ctx, "exec: %s: %s", what, strerror(errno));
	exec_close_fds(outp, 2);
	exec_close_fds(errp, 2);
	exec_close_fds(inp, 2);
	exec_close_ours(s);
	return -1;
}

/*
 * Wait for a handed-off spawn to be done and take its outcome: 0 and
 * s->pid, or the errno (the job fails with its error).  Only waits when
 * the spawner has taken the request up, which is a matter of a spawn.
 */
static int
exec_spawn_settle(struct task_ctx *ctx, struct exec_state *s)
{
	char *why;
	pid_t pid;
	int rc;

	rc = spawn_wait(s->req, &pid, &why);
	s->req = NULL;
	if (rc == 0)
		s->pid = s->pgid = pid;
	else
		exec_fail_with(ctx, why);
	return rc;
}

/*
 * Start the command: on a spawner thread when the job runs on the loop,
 * else here.  The strings are taken over when handed off.
 */
static int
exec_spawn(struct task_ctx *ctx, struct exec_state *s, struct spawn_cmd *cmd,
           bool with_stdin)
{
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1};
	char *why;
	pid_t pid;

	if (exec_pipes(ctx, s, outp, errp, inp, with_stdin) < 0)
		return -1;
	if (spawn_start(cmd, inp[0], outp[1], errp[1], task_on_loop(ctx),
	                &s->req, &pid, &why) != 0) {
		exec_fail_with(ctx, why);
		exec_close_ours(s);
		return -1;
	}
	if (s->req == NULL)
		s->pid = s->pgid = pid;
	return 0;
}

/* The command as srun's: Slurm runs it, and says where first. */
static int
exec_slurm_argv(struct task_ctx *ctx, struct exec_state *s,
                struct spawn_cmd *cmd)
{
	struct slurm_request r;
	char **v;

	if (!slurm_ready()) {
		task_fail(ctx, "exec: %s", slurm_why());
		return -1;
	}
	spawn_slurm_request(ctx, s->grace, &r);
	if ((v = slurm_exec_argv(&r, cmd->argv)) == NULL) {
		task_fail(ctx, "exec: out of memory");
		return -1;
	}
	spawn_strv_free(cmd->argv);
	cmd->argv = v;
	return 0;
}

/*
 * Copy what the command needs and start it.  The argv list and env map
 * are valid only during start (task.h): everything is copied here.
 */
static int
exec_start(struct task_ctx *ctx, const union task_value *argv)
{
	struct exec_state *s = task_state(ctx);
	struct spawn_cmd cmd = {.uid = task_owner(ctx),
	                        .job = task_job_id(ctx),
	                        .as_owner = task_as_owner(ctx),
	                        .umask = (uint16_t)(task_umask(ctx) + 1)};
	const msgpack_object *list = argv[EXEC_ARGV].o;
	const msgpack_object *env[2] = {NULL, argv[EXEC_ENV].o};
	union task_value cwd = argv[EXEC_CWD];
	msgpack_object caller_env;
	msgpack_zone zone;
	const char *raw;
	size_t len, off = 0;
	int rc = -1;

	s->pidfd = s->epfd = s->infd = s->out[0].fd = s->out[1].fd = -1;
	s->timerfd = -1;
	s->grace = (unsigned)argv[EXEC_GRACE].i;
	s->slurm = spawn_on_slurm(ctx);
	if (!s->slurm)
		spawn_job_limits(ctx, &cmd.lim);
	/* every command in a cgroup of its own where there are cgroups */
	if (s->slurm)
		; /* Slurm's limits: srun itself is but a relay */
	else if (cgroup_level() == CGROUP_RLIMIT)
		cmd.rlimit = true;
	else if ((s->cg = cgroup_job_new(task_job_id(ctx))) == NULL) {
		task_fail(ctx, "exec: out of memory");
		goto out;
	}
	cmd.cg = s->cg;
	if (list == NULL) {
		task_fail(ctx, "exec: missing argument argv");
		goto out;
	}
	msgpack_zone_init(&zone, 256);
	if (exec_copy_argv(ctx, list, &cmd.argv) < 0)
		goto out;
	if (s->slurm && exec_slurm_argv(ctx, s, &cmd) < 0)
		goto out;
	/* the caller's directory and environment, unless cwd= and env= */
	if (cwd.s.ptr == NULL && (cwd.s.ptr = task_cwd(ctx)) != NULL)
		cwd.s.len = strlen(cwd.s.ptr);
	if ((raw = task_env(ctx, &len)) != NULL &&
	    msgpack_unpack(raw, len, &off, &zone, &caller_env) ==
	        MSGPACK_UNPACK_SUCCESS)
		env[0] = &caller_env;
	if (cwd.s.ptr != NULL &&
	    exec_check_cwd(ctx, &cwd, !cmd.as_owner, &cmd.cwd) < 0)
		goto out;
	if ((env[0] != NULL || env[1] != NULL) &&
	    exec_make_env(ctx, env, cmd.as_owner ? NULL : environ, &cmd.envp,
	                  &cmd.own) < 0)
		goto out;
	if (argv[EXEC_STDIN].s.ptr != NULL && argv[EXEC_STDIN].s.len > 0) {
		if ((s->in = malloc(argv[EXEC_STDIN].s.len)) == NULL) {
			task_fail(ctx, "exec: out of memory");
			goto out;
		}
		memcpy(s->in, argv[EXEC_STDIN].s.ptr, argv[EXEC_STDIN].s.len);
		s->inlen = argv[EXEC_STDIN].s.len;
	}
	rc = exec_spawn(ctx, s, &cmd, argv[EXEC_STDIN].s.ptr != NULL);
out:
	msgpack_zone_destroy(&zone);
	spawn_cmd_free(&cmd);
	if (rc < 0) {
		free(s->in);
		s->in = NULL;
		cgroup_job_free(s->cg, true); /* a spawn that failed here */
		s->cg = NULL;
	}
	return rc;
}

/* The stream's line buffer, made when a line is first left unfinished. */
static bool
exec_line_buf(struct exec_stream *o)
{
	if (o->line == NULL)
		o->line = malloc(EXEC_LINE);
	return o->line != NULL;
}

/*
 * A line (or piece) of output to pass on.  Under srun, standard error's
 * lines are looked at first: the mark is taken out of the output, and a
 * line on how Slurm ended the job is remembered.
 */
static void
exec_emit(struct task_ctx *ctx, struct exec_state *s, int stream, const char *p,
          size_t n)
{
	enum slurm_end end;
	uint64_t id;
	char node[256];
	int sig;

	if (s->slurm && stream == 2 && n > 0) {
		if (!s->placed &&
		    slurm_parse_mark(p, n, &id, node, sizeof(node))) {
			s->placed = true;
			spawn_slurm_placed(ctx, id, node);
			return;
		}
		if ((end = slurm_parse_end(p, n)) != SLURM_END_NONE)
			s->slurm_end = (uint8_t)end;
		if ((sig = slurm_parse_signal(p, n)) > 0)
			s->slurm_sig = (uint8_t)sig;
	}
	task_output(ctx, stream, p, n);
}

/*
 * Pass data on line by line: each complete line with its newline, a
 * line longer than EXEC_LINE in pieces of that size.  Bytes go through
 * as they are.  Complete lines are emitted straight from the chunk;
 * only the unfinished one is copied into the stream's line buffer.
 */
static void
exec_lines(struct task_ctx *ctx, struct exec_state *s, int stream,
           struct exec_stream *o, const char *p, size_t n)
{
	const char *nl;
	size_t take;

	while (n > 0) {
		take = n < EXEC_LINE - o->len ? n : EXEC_LINE - o->len;
		nl = memchr(p, '\n', take);
		if (nl != NULL)
			take = (size_t)(nl - p) + 1;
		if (o->len == 0 &&
		    (nl != NULL || take == EXEC_LINE || !exec_line_buf(o))) {
			/* whole; or unfinished, with no memory to keep it */
			exec_emit(ctx, s, stream, p, take);
		} else {
			memcpy(o->line + o->len, p, take);
			o->len += take;
			if (nl != NULL || o->len == EXEC_LINE) {
				exec_emit(ctx, s, stream, o->line, o->len);
				o->len = 0;
			}
		}
		p += take;
		n -= take;
	}
}

/*
 * Read one pipe until it is empty, at EOF, or the step's budget is spent;
 * or until the job's client is behind (task_output_full): the step ends
 * and the command, once its pipe is full, waits until the client catches up.
 */
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
			exec_lines(ctx, s, which + 1, o, chunk, (size_t)n);
			if (task_output_full(ctx))
				*budget = 0;
			if ((size_t)n < want)
				break; /* empty for now: epoll tells more */
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		/* EOF (or a read error): the last line may lack its \n */
		if (o->len > 0)
			exec_emit(ctx, s, which + 1, o->line, o->len);
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
	int rc = spawn_reap(s->pid, si);

	if (rc != 0)
		s->pid = 0; /* reaped, or not ours to signal any more */
	return rc;
}

static enum task_step
exec_outcome(struct task_ctx *ctx, struct exec_state *s, const siginfo_t *sr)
{
	siginfo_t sk, *si = (siginfo_t *)sr;
	const char *name;
	msgpack_packer *pk;

	/* srun exits 128+N for a command killed by signal N, and says so */
	if (s->slurm && si->si_code == CLD_EXITED && s->slurm_sig > 0 &&
	    si->si_status == 128 + s->slurm_sig) {
		sk = *sr;
		sk.si_code = CLD_KILLED;
		sk.si_status = s->slurm_sig;
		si = &sk;
	}
	if (si->si_code == CLD_EXITED)
		task_exit(ctx, si->si_status, 0);
	else
		task_exit(ctx, 0, si->si_status);
	if (s->slurm_end != SLURM_END_NONE &&
	    s->slurm_end != SLURM_END_CANCELLED)
		return spawn_slurm_ended(ctx, (enum slurm_end)s->slurm_end);
	if (si->si_code == CLD_EXITED && si->si_status == 0) {
		pk = task_result(ctx);
		msgpack_pack_map(pk, 1);
		msgpack_pack_str_with_body(pk, "status", 6);
		msgpack_pack_int(pk, 0);
		return TASK_DONE;
	}
	/* the kernel killed a process of it for its memory limit */
	if (s->cg != NULL && cgroup_job_oom(s->cg))
		return spawn_oom(ctx, si->si_code == CLD_EXITED
		                          ? si->si_status
		                          : 128 + si->si_status);
	if (si->si_code == CLD_EXITED)
		return task_fail(ctx, "exited with status %d", si->si_status);
	if ((name = sigabbrev_np(si->si_status)) != NULL)
		return task_fail(ctx, "killed by signal %d (SIG%s)",
		                 si->si_status, name);
	return task_fail(ctx, "killed by signal %d", si->si_status);
}

/*
 * A spawn the job's cancel finds handed off: -1 when it was not taken up
 * (the spawner drops it unstarted) or did not start, else 0 once the
 * command runs.
 */
static int
exec_spawn_abandon(struct exec_state *s)
{
	pid_t pid = spawn_cancel(s->req);

	s->req = NULL;
	if (pid > 0)
		s->pid = s->pgid = pid;
	return pid > 0 ? 0 : -1;
}

/* sig to the process group pgid, or to pid alone if there is none. */
static void
exec_kill_group(pid_t pgid, pid_t pid, int sig)
{
	if (kill(-pgid, sig) < 0 && pid > 0)
		kill(pid, sig);
}

/*
 * sig to the command's process group, and to every process of its
 * cgroup, which holds those that left the group (setsid) too.  SIGTERM
 * is followed by SIGCONT, as systemd does: a stopped process (kill -STOP,
 * ^Z in a shell it runs) would otherwise hold it until SIGKILL, and
 * never run its handler.
 */
static void
exec_signal_group(struct task_ctx *ctx, struct exec_state *s, int sig)
{
	if (s->slurm) {
		/* Slurm signals the command; srun is the relay */
		slurm_cancel(task_job_id(ctx), sig == SIGKILL ? 0 : sig);
		if (sig != SIGKILL)
			return;
	}
	exec_kill_group(s->pgid, s->pid, sig);
	if (sig == SIGTERM)
		exec_kill_group(s->pgid, s->pid, SIGCONT);
	if (s->cg != NULL && sig == SIGKILL)
		cgroup_job_kill(s->cg);
	else if (s->cg != NULL) {
		cgroup_job_signal(s->cg, sig, s->pgid);
		if (sig == SIGTERM)
			cgroup_job_signal(s->cg, SIGCONT, s->pgid);
	}
}

/*
 * Cancelled (or timed out): the command's process group gets SIGTERM and
 * the grace period starts, a timer in the epoll set.  The job goes on
 * reading the pipes, so what the command writes while it cleans up is
 * delivered and it never meets a closed pipe.  -1 when there is nothing
 * to wind down.
 */
static int
exec_wind_down(struct task_ctx *ctx, struct exec_state *s)
{
	struct itimerspec it = {{0, 0}, {0, 0}};

	s->winding = true;
	if (s->req != NULL && exec_spawn_abandon(s) < 0)
		return -1;
	if (s->pgid <= 0)
		return -1; /* the spawn failed */
	exec_signal_group(ctx, s, SIGTERM);
	it.it_value.tv_sec = s->grace / 1000;
	it.it_value.tv_nsec = (long)(s->grace % 1000) * 1000000 + 1;
	s->timerfd =
	    timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->timerfd < 0 || timerfd_settime(s->timerfd, 0, &it, NULL) < 0 ||
	    exec_watch(s, s->timerfd, EPOLLIN, EXEC_TIMER) < 0) {
		/* no timer, no grace period */
		exec_close(&s->timerfd);
		exec_signal_group(ctx, s, SIGKILL);
		s->killed = true;
	}
	return 0;
}

/* The grace period is over: what is left of the group gets SIGKILL. */
static void
exec_grace_over(struct task_ctx *ctx, struct exec_state *s)
{
	uint64_t n;

	(void)read(s->timerfd, &n, sizeof(n));
	exec_unwatch(s, &s->timerfd);
	if (!s->killed)
		exec_signal_group(ctx, s, SIGKILL);
	s->killed = true;
}

/*
 * Cancelled, the command reaped and its pipes at EOF: the job ends.  A
 * process of its group that let go of both pipes is not waited for (none
 * can be told from a zombie without a look at every process): what is
 * left of the group gets SIGKILL, so a cancelled job leaves nothing of
 * its command running.
 */
static enum task_step
exec_wound_down(struct task_ctx *ctx, struct exec_state *s)
{
	if (!s->killed)
		exec_signal_group(ctx, s, SIGKILL);
	s->killed = true;
	return TASK_FAILED; /* the executor makes it cancelled */
}

static enum task_step
exec_step(struct task_ctx *ctx)
{
	struct exec_state *s = task_state(ctx);
	struct epoll_event ev[5];
	size_t budget = task_on_loop(ctx) ? EXEC_SHARE : EXEC_BUDGET;
	siginfo_t si;
	int i, n;

	if (task_cancelled(ctx) && !s->winding && exec_wind_down(ctx, s) < 0)
		return TASK_FAILED;
	if (!s->stepped) {
		s->stepped = true;
		return task_wait_fd(ctx, s->epfd, false);
	}
	n = epoll_wait(s->epfd, ev, 5, 0);
	if (n < 0 && errno != EINTR)
		return task_fail(ctx, "exec: epoll_wait: %s", strerror(errno));
	for (i = 0; i < n && budget > 0; i++) {
		if (ev[i].data.u32 == EXEC_OUT || ev[i].data.u32 == EXEC_ERR)
			exec_read(ctx, s, (int)ev[i].data.u32, &budget);
		else if (ev[i].data.u32 == EXEC_IN)
			exec_write(s);
		else if (ev[i].data.u32 == EXEC_TIMER)
			exec_grace_over(ctx, s);
		/* EXEC_PID: it has exited, reaped below */
	}
	if (budget == 0)
		return TASK_YIELD;
	if (s->out[0].fd >= 0 || s->out[1].fd >= 0)
		return task_wait_fd(ctx, s->epfd, false);

	/*
	 * Both pipes at EOF: the command has exited, or soon will; or a
	 * handed-off spawn failed, which closed the write ends.
	 */
	if (s->req != NULL && exec_spawn_settle(ctx, s) != 0)
		return TASK_FAILED;
	if (s->pid == 0)
		return exec_wound_down(ctx, s); /* reaped while winding down */
	switch (exec_reap(s, &si)) {
	case 1:
		if (s->winding) {
			task_exit(ctx,
			          si.si_code == CLD_EXITED ? si.si_status : 0,
			          si.si_code == CLD_EXITED ? 0 : si.si_status);
			return exec_wound_down(ctx, s);
		}
		return exec_outcome(ctx, s, &si);
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
 * Finished, failed, or cut off.  A cancelled job has wound down by now
 * (exec_wind_down); one the daemon cut off (it exits, or a worker gave
 * up) may not have: a command not yet reaped gets SIGTERM in its whole
 * process group and goes to the daemon, which sends SIGKILL after the
 * grace period and reaps it.  If the command itself has exited but
 * processes it started still hold its pipes open, nothing is left to time
 * a grace period by: they get SIGKILL at once.
 */
static void
exec_stop(struct task_ctx *ctx)
{
	struct exec_state *s = task_state(ctx);
	siginfo_t si;

	if (s->req != NULL)
		(void)exec_spawn_abandon(s);
	if (s->pid > 0 && s->slurm) /* srun is cut off: Slurm's job ends */
		slurm_cancel(task_job_id(ctx), 0);
	if (s->pid > 0 && s->winding) /* cut off winding down: no more grace */
		kill(-s->pgid, SIGKILL);
	if (s->pid > 0) {
		memset(&si, 0, sizeof(si));
		exec_kill_group(s->pid, s->pid, SIGTERM);
		exec_kill_group(s->pid, s->pid, SIGCONT);
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
		/* its cgroup goes once it is empty; nothing is killed early */
		cgroup_job_free(s->cg, false);
		s->cg = NULL;
	}
	/* what is left of the job (it let go of the pipes) is killed */
	cgroup_job_free(s->cg, true);
	s->cg = NULL;
	exec_close_ours(s);
	free(s->in);
	s->in = NULL;
	free(s->out[0].line);
	free(s->out[1].line);
	s->out[0].line = s->out[1].line = NULL;
}

const struct task task_exec = {
    .abi = CONCD_TASK_ABI,
    .name = "exec",
    .summary = "run a command, streaming its stdout and stderr lines",
    .traits =
        TASK_NONBLOCKING | TASK_USER_CODE | TASK_WINDS_DOWN | TASK_COMMAND,
    .executors = TASK_ON_ALL,
    .state_size = sizeof(struct exec_state),
    .args = exec_args,
    .nargs = sizeof(exec_args) / sizeof(exec_args[0]),
    .start = exec_start,
    .step = exec_step,
    .stop = exec_stop,
};
