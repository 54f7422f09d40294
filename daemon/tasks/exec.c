/*
 * exec -- run a real command and stream its output: stdout and stderr
 * line by line, the exit status as the result.
 *
 * The command is started as posix_spawnp starts one, never with fork
 * (the daemon may be large, and a spawn costs the same whatever its
 * size): a child that shares the daemon's memory until it has exec'd
 * (clone with CLONE_VM | CLONE_VFORK), in a process group of its own,
 * with its signals back to their defaults and no daemon descriptor but
 * its three standard ones.  One epoll descriptor
 * stands for the stdout and stderr pipes and the stdin pipe while there
 * is input left to write, so every executor waits on one fd.  The job
 * ends when both pipes are at EOF and the command has exited: waiting for
 * both keeps the tail of the output.  Most commands have exited by the
 * time their pipes are at EOF; only one that is still running then gets
 * a pidfd in the epoll set to wait for its exit.  A cancelled command's
 * process group gets SIGTERM, then SIGKILL grace ms later (a timerfd in
 * the epoll set); the job winds down meanwhile, reading the pipes, and
 * ends once the command is reaped and its group gone.  No zombies.
 *
 * On the loop the spawn itself is handed to spawner threads.  A spawn
 * holds its caller until the child has exec'd, and the kernel copies and
 * then closes the caller's whole descriptor table for every child: on the
 * loop thread, a gather of 1,000 commands would stall every client while
 * they start one by one, each slower than the last as the running ones
 * hold more descriptors.  A spawner thread has a descriptor table of its
 * own (unshare(CLONE_FILES)), nearly empty, and gets the child's pipe
 * ends through SCM_RIGHTS from a feeder thread, which takes requests from
 * a queue in memory (the loop only appends) and may block on a full
 * socket.  The job's pipes are in its epoll set from the start, and when
 * the spawn fails the closing of the write ends wakes the job.  A job
 * ending before its spawn was taken up leaves the request behind, to be
 * dropped unstarted.
 *
 * Whose command it is.  A root concd starts another user's command as
 * that user, as atd and cron do: the account is looked up where the spawn
 * runs (a spawner thread or a pool worker, never the loop: NSS may
 * block), and the child takes the user's groups, gid and uid with raw
 * system calls before it changes directory and execs.  The command gets
 * an environment of its own (HOME, USER, LOGNAME, SHELL and PATH, then
 * env=), never concd's, and starts in cwd= or the user's home directory
 * (/ if the user cannot enter it).  Root's own commands, and every command
 * of a concd that is not root, run as concd with its environment.
 */
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../task.h"

extern char **environ;

#define EXEC_LINE      4096         /* longest line emitted whole */
#define EXEC_BUDGET    (256 * 1024) /* bytes read per step: fairness */
#define EXEC_SHARE     (64 * 1024)  /* the same on the loop, which all share */
#define EXEC_CHUNK     (64 * 1024)  /* bytes per read(2), a pipe's worth */
#define EXEC_ARG_MAX   4096         /* bytes in one argv string */
#define EXEC_STDIN_MAX (256 * 1024) /* the wire's longest string */
#define EXEC_SHOW      200          /* bytes of a name quoted in errors */
#define EXEC_SPAWNERS  4            /* spawner threads, at most */
/* PATH for a command run as its owner, unless env= sets one */
#define EXEC_USER_PATH "/usr/local/bin:/usr/bin:/bin"

/*
 * ThreadSanitizer tracks descriptors by number, process-wide, and knows
 * nothing of a thread's own table: there, spawners share the daemon's.
 */
#if defined(__SANITIZE_THREAD__)
#define EXEC_OWN_TABLE 0
#else
#define EXEC_OWN_TABLE 1
#endif

enum { EXEC_ARGV, EXEC_CWD, EXEC_ENV, EXEC_STDIN, EXEC_GRACE };

static const struct task_arg exec_args[] = {
    [EXEC_ARGV] = {"argv", TASK_ARG_LIST, true, 1, 256, 0,
                   "the command and its arguments; argv[0] is looked up "
                   "in PATH"},
    [EXEC_CWD] = {"cwd", TASK_ARG_STR, false, 1, 4096, 0,
                  "the directory to run it in"},
    [EXEC_ENV] = {"env", TASK_ARG_MAP, false, 0, 256, 0,
                  "variables added to (or replacing those of) the "
                  "command's environment"},
    [EXEC_STDIN] = {"stdin", TASK_ARG_STR, false, 0, EXEC_STDIN_MAX, 0,
                    "data written to its standard input, then closed "
                    "(default: /dev/null)"},
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

/*
 * A command to start, as exec_start copied it.  envp NULL: concd's
 * environment, or only the account's when as_owner.
 */
struct exec_cmd {
	char **argv, **envp, **own, *cwd;
	uid_t uid;     /* the job's owner */
	bool as_owner; /* start it as uid, with uid's account */
};

/* A spawn handed to the spawner threads: they own everything here. */
struct exec_req {
	TAILQ_ENTRY(exec_req) link; /* in spawner.queue */
	int fds[3]; /* the child's ends, in the daemon's table */
	struct exec_cmd cmd;
	char *why;     /* the job's error when rc != 0 (NULL: no memory) */
	int phase;     /* SPAWN_*, under spawner.mu */
	bool orphaned; /* its job ended first: the spawner frees it */
	bool with_stdin;
	pid_t pid;
	int rc; /* the spawn's errno; 0: pid runs */
};

enum { SPAWN_QUEUED, SPAWN_RUNNING, SPAWN_DONE };

static struct {
	pthread_once_t once;
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* a spawn is done; a spawner is set up */
	pthread_cond_t more; /* the queue has a request for the feeder */
	TAILQ_HEAD(, exec_req) queue;
	int sock; /* the feeder's end; -1: no spawners, spawn on the caller */
	int threads, ready, shared; /* shared: spawners in the daemon's table */
	bool stopping;              /* the process exits: the threads end */
	int sv1;                    /* the spawners' end, if shared */
	pthread_t tid[EXEC_SPAWNERS + 1]; /* the spawners, then the feeder */
} spawner = {.once = PTHREAD_ONCE_INIT,
             .mu = PTHREAD_MUTEX_INITIALIZER,
             .cv = PTHREAD_COND_INITIALIZER,
             .more = PTHREAD_COND_INITIALIZER,
             .queue = TAILQ_HEAD_INITIALIZER(spawner.queue),
             .sock = -1,
             .sv1 = -1};

struct exec_state {
	struct exec_req *req; /* a spawn not yet known to be done */
	pid_t pid;            /* also its process group; 0 once reaped */
	pid_t pgid;           /* the group, kept once the command is reaped */
	int pidfd;            /* opened when needed, see exec_step */
	int epfd;
	int infd;    /* stdin pipe's write end while input remains */
	int timerfd; /* cancelled: the grace period, in the epoll set */
	unsigned grace;
	bool stepped; /* the first step waits: nothing is ready before it */
	bool winding; /* cancelled: the group has had SIGTERM */
	bool killed;  /* and, after the grace period, SIGKILL */
	char *in;     /* stdin data */
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
 * The child's environment: base (concd's own, or none for a command run
 * as its owner), less the names env= sets, then env='s NAME=VALUE
 * strings.  Inherited entries are borrowed from base; *own holds the
 * strings made here, to free.
 */
static int
exec_make_env(struct task_ctx *ctx, const msgpack_object *map, char **base,
              char ***envp, char ***own)
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
	while (base != NULL && base[nenv] != NULL)
		nenv++;
	if ((v = calloc(nenv + n + 1, sizeof(*v))) == NULL)
		goto nomem;
	if ((mine = calloc(n + 1, sizeof(*mine))) == NULL) {
		free(v);
		goto nomem;
	}
	for (k = 0; k < nenv; k++) {
		const char *cur = base[k];
		size_t len = strcspn(cur, "=");
		bool replaced = false;

		for (i = 0; i < n && !replaced; i++) {
			const msgpack_object *key = &map->via.map.ptr[i].key;

			replaced = key->via.str.size == len &&
			           memcmp(key->via.str.ptr, cur, len) == 0;
		}
		if (!replaced)
			v[e++] = base[k];
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

/*
 * What the child needs, on its parent's stack.  The child runs in its
 * parent's memory (CLONE_VM) while the parent waits (CLONE_VFORK), so it
 * reads these in place and writes err back.
 */
struct exec_child {
	char **argv, **envp;
	const char *path; /* the PATH to search; NULL: argv[0] has a '/' */
	size_t flen;      /* strlen(argv[0]) */
	const char *cwd;
	const struct task_account *as; /* whose command; NULL: concd's */
	int fd[3];    /* what becomes 0, 1 and 2; fd[0] -1: /dev/null */
	int err;      /* why the child could not run the command */
	int stage;    /* EXEC_AT_*: what it was doing then */
	bool all_ids; /* as: its real and saved uids are the owner's too */
};

/* What a child was doing when it failed, for the job's error. */
enum { EXEC_AT_EXEC, EXEC_AT_CWD, EXEC_AT_IDENTITY };

/* The child's stack: a part of its parent's, which waits meanwhile. */
#define EXEC_CHILD_STACK (16 * 1024)

/*
 * ThreadSanitizer's clone() takes every clone for a fork and resets its
 * own state in the child, which CLONE_VM shares with the parent: there,
 * glibc's clone is called by its other name.
 */
#if defined(__SANITIZE_THREAD__)
extern int __clone(int (*)(void *), void *, int, void *, ...);
#define exec_clone __clone
#else
#define exec_clone clone
#endif

/*
 * execve file in the child; 0 with errno when it did not, -1 when the
 * child must give up.  A command run as its owner searches PATH with only
 * the effective uid the owner's, checking what the owner may execute: its
 * real and saved uids stay root's, so the owner cannot signal, and stop,
 * a child that holds its parent.  They become the owner's at the last
 * moment, before the execve; a stop that lands in between holds the
 * spawner until the owner continues the child or it is killed.
 */
__attribute__((no_sanitize("address,thread,undefined"))) static int
exec_child_execve(struct exec_child *c, const char *file)
{
	if (c->as != NULL && !c->all_ids) {
		if (syscall(SYS_faccessat2, AT_FDCWD, file, X_OK, AT_EACCESS) <
		        0 &&
		    errno != ENOSYS)
			return 0;
		c->stage = EXEC_AT_IDENTITY;
		if (syscall(SYS_setresuid, c->as->uid, c->as->uid, c->as->uid) <
		    0)
			return -1;
		c->stage = EXEC_AT_EXEC;
		c->all_ids = true;
	}
	syscall(SYS_execve, file, c->argv, c->envp);
	return 0;
}

/*
 * The child, between clone and execve.  It shares its parent's memory,
 * so it makes raw system calls only, and no sanitizer looks on: their
 * bookkeeping is its parent's.  Signals are blocked on entry.
 */
__attribute__((no_sanitize("address,thread,undefined"))) static int
exec_child_main(void *arg)
{
	struct exec_child *c = arg;
	unsigned long dfl[4] = {0, 0, 0, 0}; /* kernel sigaction: SIG_DFL */
	uint64_t none = 0;                   /* kernel sigset: empty */
	char buf[PATH_MAX];
	const char *p, *end;
	int src[3], i, last = ENOENT;
	bool eacces = false;
	size_t n;

	/* every standard signal: handled, ignored (by concd or its parent) */
	for (i = 1; i < 32; i++)
		if (i != SIGKILL && i != SIGSTOP)
			syscall(SYS_rt_sigaction, i, dfl, NULL, sizeof(none));
	if (syscall(SYS_setpgid, 0, 0) < 0)
		goto fail;
	src[0] = c->fd[0] >= 0 ? c->fd[0]
	                       : (int)syscall(SYS_openat, AT_FDCWD, "/dev/null",
	                                      O_RDONLY | O_CLOEXEC);
	src[1] = c->fd[1];
	src[2] = c->fd[2];
	/* out of 0, 1 and 2 first, so that no dup3 clobbers a source */
	for (i = 0; i < 3; i++) {
		if (src[i] >= 0 && src[i] < 3)
			src[i] =
			    (int)syscall(SYS_fcntl, src[i], F_DUPFD_CLOEXEC, 3);
		if (src[i] < 0)
			goto fail;
	}
	for (i = 0; i < 3; i++)
		if (syscall(SYS_dup3, src[i], i, 0) < 0)
			goto fail;
	if (syscall(SYS_close_range, 3, ~0U, 0) < 0)
		goto fail;
	if (c->as != NULL) {
		/*
		 * The user's identity, on this process alone (raw calls: no
		 * glibc broadcast to the threads it does not have); the uid
		 * the effective one only, until exec_child_execve.  Changing
		 * it makes the shared memory undumpable: the user cannot
		 * trace the child while it is the daemon's (and the daemon's
		 * core dumps follow fs.suid_dumpable from then on).
		 */
		c->stage = EXEC_AT_IDENTITY;
		if (syscall(SYS_setgroups, (size_t)c->as->ngroups,
		            c->as->groups) < 0 ||
		    syscall(SYS_setresgid, c->as->gid, c->as->gid, c->as->gid) <
		        0 ||
		    syscall(SYS_setresuid, -1, c->as->uid, -1) < 0)
			goto fail;
		syscall(SYS_umask, 022);
	}
	c->stage = EXEC_AT_CWD;
	if (c->cwd != NULL && syscall(SYS_chdir, c->cwd) < 0)
		goto fail;
	/* no cwd=: the owner's home, or / if the owner cannot enter it */
	if (c->cwd == NULL && c->as != NULL &&
	    syscall(SYS_chdir, c->as->home) < 0 && syscall(SYS_chdir, "/") < 0)
		goto fail;
	c->stage = EXEC_AT_EXEC;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
	if (c->path == NULL) {
		(void)exec_child_execve(c, c->argv[0]);
		goto fail;
	}
	/* as execvp: each PATH entry in turn, "" for the working directory */
	for (p = c->path;; p = end + 1) {
		for (end = p; *end != '\0' && *end != ':'; end++)
			;
		n = (size_t)(end - p);
		if (n + 1 + c->flen < sizeof(buf)) {
			for (i = 0; i < (int)n; i++)
				buf[i] = p[i];
			if (n > 0)
				buf[n++] = '/';
			for (i = 0; i <= (int)c->flen; i++)
				buf[n + (size_t)i] = c->argv[0][i];
			if (exec_child_execve(c, buf) < 0)
				goto fail;
			switch (errno) {
			case EACCES:
				eacces = true;
				/* FALLTHROUGH */
			case ENOENT:
			case ENOTDIR:
			case ESTALE:
			case ENODEV:
			case ETIMEDOUT:
				last = errno;
				break;
			default:
				goto fail;
			}
		} else {
			last = ENAMETOOLONG;
		}
		if (*end == '\0')
			break;
	}
	errno = eacces ? EACCES : last;
fail:
	c->err = errno != 0 ? errno : EINVAL;
	syscall(SYS_exit_group, 127);
	return 127;
}

/*
 * Start argv[0], looked up in PATH as execvp does, with the standard
 * descriptors in (-1: /dev/null), out and err, in a process group of its
 * own, with default signal dispositions and mask.  Returns 0 or an
 * errno.
 *
 * This is what posix_spawnp does, less a cost measured here: glibc maps
 * and unmaps a stack for every child, and on a multi-threaded daemon the
 * unmap flushes the other cores' TLBs.  The child here runs on part of
 * the caller's stack.  It resets the standard signals; execve resets the
 * real-time ones the daemon handles, and it ignores none.
 */
static int
exec_spawn_child(pid_t *pid, struct exec_child *cp)
{
	_Alignas(16) char stack[EXEC_CHILD_STACK];
	struct exec_child c = *cp;
	sigset_t all, old;
	pid_t p;
	int rc;

	c.flen = strlen(c.argv[0]);
	c.err = 0;
	c.stage = EXEC_AT_EXEC;
	c.all_ids = false;
	/* no handler of the daemon's may run in the child */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	p = exec_clone(exec_child_main, stack + sizeof(stack),
	               CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
	rc = p < 0 ? errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	cp->stage = c.stage;
	if (rc != 0)
		return rc;
	if (c.err != 0) {
		/* it has exited: reap it here, it was never the job's */
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
		return c.err;
	}
	*pid = p;
	return 0;
}

/* The job's error for a command that did not start: errno rc at stage. */
static char *
exec_why(const struct exec_cmd *cmd, int stage, int rc)
{
	const char *name =
	    stage == EXEC_AT_CWD && cmd->cwd != NULL ? cmd->cwd : cmd->argv[0];
	size_t len = strlen(name);
	char *s;

	if (stage == EXEC_AT_IDENTITY)
		rc =
		    asprintf(&s, "exec: cannot take the identity of uid %u: %s",
		             (unsigned)cmd->uid, strerror(rc));
	else if (stage == EXEC_AT_CWD && cmd->cwd == NULL)
		rc = asprintf(&s,
		              "exec: cannot change to the home directory "
		              "or /: %s",
		              strerror(rc));
	else
		rc = asprintf(&s, "exec: cannot %s \"%.*s%s\": %s",
		              stage == EXEC_AT_CWD ? "use cwd" : "run",
		              exec_shown(len), name, exec_ellipsis(len),
		              strerror(rc));
	return rc < 0 ? NULL : s;
}

/* Fail the job with why (taken over), or a plain message without it. */
static void
exec_fail_with(struct task_ctx *ctx, char *why)
{
	task_fail(ctx, "%s",
	          why != NULL ? why : "exec: cannot run the command");
	free(why);
}

static char *
exec_find_env(char **envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp != NULL && *envp != NULL; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/*
 * A command's environment as its owner: the account's HOME, USER,
 * LOGNAME and SHELL and a default PATH, each unless env= set it (in
 * envp), then envp.  The array and the strings made here go to *own.
 */
static char **
exec_owner_env(const struct task_account *a, char **envp, char ***own)
{
	const struct {
		const char *name, *value;
	} vars[] = {{"HOME", a->home},
	            {"USER", a->name},
	            {"LOGNAME", a->name},
	            {"SHELL", a->shell},
	            {"PATH", EXEC_USER_PATH}};
	size_t nvars = sizeof(vars) / sizeof(vars[0]), n = 0, k = 0, i;
	char **v, **mine;

	while (envp != NULL && envp[n] != NULL)
		n++;
	if ((v = calloc(n + nvars + 1, sizeof(*v))) == NULL)
		return NULL;
	if ((mine = calloc(nvars + 1, sizeof(*mine))) == NULL) {
		free(v);
		return NULL;
	}
	for (i = 0; i < nvars; i++) {
		if (exec_find_env(envp, vars[i].name) != NULL)
			continue;
		if (asprintf(&mine[k], "%s=%s", vars[i].name, vars[i].value) <
		    0) {
			mine[k] = NULL;
			exec_free_strv(mine);
			free(v);
			return NULL;
		}
		v[k] = mine[k];
		k++;
	}
	for (i = 0; i < n; i++)
		v[k++] = envp[i];
	*own = mine;
	return v;
}

/*
 * Start cmd with the standard descriptors in (-1: /dev/null), out and
 * err: as concd, or as its owner, whose account is looked up here (this
 * may block: never on the loop).  0, or an errno with the job's error in
 * *why (NULL if out of memory).
 */
static int
exec_spawn_cmd(pid_t *pid, const struct exec_cmd *cmd, int in, int out, int err,
               char **why)
{
	struct exec_child c = {.argv = cmd->argv,
	                       .envp = cmd->envp != NULL ? cmd->envp : environ,
	                       .cwd = cmd->cwd,
	                       .fd = {in, out, err}};
	struct task_account a;
	char **envp = NULL, **own = NULL, text[160];
	int rc;

	*why = NULL;
	if (cmd->as_owner) {
		if (task_account_get(cmd->uid, &a, text, sizeof(text)) < 0) {
			if (asprintf(why, "exec: %s", text) < 0)
				*why = NULL;
			return EPERM;
		}
		if ((envp = exec_owner_env(&a, cmd->envp, &own)) == NULL) {
			task_account_free(&a);
			return ENOMEM;
		}
		c.envp = envp;
		c.as = &a;
	}
	/* looked up in the PATH the command gets, env= included */
	if (strchr(c.argv[0], '/') == NULL &&
	    (c.path = exec_find_env(c.envp, "PATH")) == NULL)
		c.path = "/bin:/usr/bin";
	if ((rc = exec_spawn_child(pid, &c)) != 0)
		*why = exec_why(cmd, c.stage, rc);
	if (cmd->as_owner) {
		free(envp);
		exec_free_strv(own);
		task_account_free(&a);
	}
	return rc;
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

static void
exec_cmd_free(struct exec_cmd *cmd)
{
	exec_free_strv(cmd->argv);
	exec_free_strv(cmd->own);
	free(cmd->envp);
	free(cmd->cwd);
	memset(cmd, 0, sizeof(*cmd));
}

static void
exec_req_free(struct exec_req *r)
{
	exec_cmd_free(&r->cmd);
	free(r->why);
	free(r);
}

/* Tell a request's waiters it is done (with rc and pid set). */
static void
exec_req_done(struct exec_req *r)
{
	pthread_mutex_lock(&spawner.mu);
	r->phase = SPAWN_DONE;
	pthread_cond_broadcast(&spawner.cv);
	pthread_mutex_unlock(&spawner.mu);
}

/* Take a request up, unless its job ended first: then drop it here. */
static bool
exec_req_take(struct exec_req *r, int *fds, size_t nfd)
{
	pthread_mutex_lock(&spawner.mu);
	if (r->orphaned) {
		pthread_mutex_unlock(&spawner.mu);
		exec_close_fds(fds, nfd);
		exec_req_free(r);
		return false;
	}
	r->phase = SPAWN_RUNNING;
	pthread_mutex_unlock(&spawner.mu);
	return true;
}

/*
 * Spawn a request's command with the child's ends in fds, then close
 * them: without a child, that is what wakes the job.
 */
static void
exec_req_spawn(struct exec_req *r, int *fds, size_t nfd)
{
	if (nfd != (r->with_stdin ? 3u : 2u)) {
		r->rc = EBADF;
		r->why = exec_why(&r->cmd, EXEC_AT_EXEC, EBADF);
	} else {
		r->rc = exec_spawn_cmd(&r->pid, &r->cmd,
		                       r->with_stdin ? fds[2] : -1, fds[0],
		                       fds[1], &r->why);
	}
	exec_close_fds(fds, nfd);
	exec_req_done(r);
}

static void *
exec_spawner_main(void *arg)
{
	int sock = (int)(intptr_t)arg, fds[3];
	char cbuf[CMSG_SPACE(sizeof(fds))];
	struct exec_req *r;
	struct cmsghdr *cm;
	struct msghdr mh;
	struct iovec iov;
	bool own = EXEC_OWN_TABLE && unshare(CLONE_FILES) == 0;
	ssize_t n;
	size_t nfd;

	if (own) {
		/* a copy of the daemon's table: keep only the request socket */
		if (sock > 3)
			close_range(3, (unsigned)sock - 1, 0);
		close_range((unsigned)sock + 1, ~0U, 0);
	}
	/* without a table of its own it still keeps the loop from waiting */
	pthread_mutex_lock(&spawner.mu);
	spawner.ready++;
	spawner.shared += !own;
	pthread_cond_broadcast(&spawner.cv);
	pthread_mutex_unlock(&spawner.mu);
	for (;;) {
		iov.iov_base = &r;
		iov.iov_len = sizeof(r);
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		if ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) == 0 ||
		    (n < 0 && (errno == EBADF || errno == ENOTSOCK)))
			return NULL; /* the daemon is going */
		if (n != (ssize_t)sizeof(r))
			continue; /* EINTR, or a passing shortage */
		cm = CMSG_FIRSTHDR(&mh);
		nfd = cm != NULL && cm->cmsg_type == SCM_RIGHTS
		          ? (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int)
		          : 0;
		if (nfd > 3)
			nfd = 3; /* the feeder sends at most three */
		if (nfd > 0)
			memcpy(fds, CMSG_DATA(cm), nfd * sizeof(int));
		if (exec_req_take(r, fds, nfd))
			exec_req_spawn(r, fds, nfd);
	}
}

/*
 * The feeder: in the daemon's descriptor table, it passes each queued
 * request's pipe ends to the spawners, then closes them here.  Should
 * that fail, it spawns the command itself.
 */
static void *
exec_feeder_main(void *arg)
{
	char cbuf[CMSG_SPACE(3 * sizeof(int))];
	struct exec_req *r;
	struct cmsghdr *cm;
	struct msghdr mh;
	struct iovec iov;
	int fds[3];
	size_t nfd;
	ssize_t n;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&spawner.mu);
		while ((r = TAILQ_FIRST(&spawner.queue)) == NULL &&
		       !spawner.stopping)
			pthread_cond_wait(&spawner.more, &spawner.mu);
		if (r == NULL) {
			pthread_mutex_unlock(&spawner.mu);
			return NULL;
		}
		TAILQ_REMOVE(&spawner.queue, r, link);
		memcpy(fds, r->fds, sizeof(fds));
		nfd = r->with_stdin ? 3 : 2;
		if (r->orphaned || spawner.stopping) {
			pthread_mutex_unlock(&spawner.mu);
			exec_close_fds(fds, nfd);
			exec_req_free(r);
			continue;
		}
		pthread_mutex_unlock(&spawner.mu);
		iov.iov_base = &r;
		iov.iov_len = sizeof(r);
		memset(&mh, 0, sizeof(mh));
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfd * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfd * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfd * sizeof(int));
		while ((n = sendmsg(spawner.sock, &mh, MSG_NOSIGNAL)) < 0 &&
		       errno == EINTR)
			;
		if (n < 0) {
			/* r is still ours: spawn it from this table */
			if (exec_req_take(r, fds, nfd))
				exec_req_spawn(r, fds, nfd);
			continue;
		}
		/* r is the spawners' now; these copies were passed on */
		exec_close_fds(fds, nfd);
	}
	return NULL;
}

/* Start the threads once; without them, spawns run on the caller. */
static void
exec_spawner_init(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int sv[2], i,
	    n = ncpu < 1               ? 1
	        : ncpu > EXEC_SPAWNERS ? EXEC_SPAWNERS
	                               : (int)ncpu;
	sigset_t all, old;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the loop's */
	for (i = 0; i < n; i++) {
		if (pthread_create(&spawner.tid[spawner.threads], NULL,
		                   exec_spawner_main,
		                   (void *)(intptr_t)sv[1]) == 0)
			spawner.threads++;
	}
	pthread_mutex_lock(&spawner.mu);
	while (spawner.ready < spawner.threads)
		pthread_cond_wait(&spawner.cv, &spawner.mu);
	pthread_mutex_unlock(&spawner.mu);
	/* the spawners with tables of their own hold their end there now */
	if (spawner.shared == 0)
		close(sv[1]);
	spawner.sock = sv[0];
	if (spawner.threads == 0 ||
	    pthread_create(&spawner.tid[spawner.threads], NULL,
	                   exec_feeder_main, NULL) != 0) {
		close(sv[0]); /* the spawners see EOF and end */
		spawner.sock = -1;
		for (i = 0; i < spawner.threads; i++)
			pthread_join(spawner.tid[i], NULL);
		if (spawner.shared > 0)
			close(sv[1]);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	spawner.sv1 = sv[1];
}

/*
 * At exit: the feeder drops what is queued (every job has been stopped
 * by then) and ends, the spawners see the socket close and end.
 */
__attribute__((destructor)) static void
exec_spawner_fini(void)
{
	int i;

	if (spawner.sock < 0)
		return;
	pthread_mutex_lock(&spawner.mu);
	spawner.stopping = true;
	pthread_cond_broadcast(&spawner.more);
	pthread_mutex_unlock(&spawner.mu);
	pthread_join(spawner.tid[spawner.threads], NULL);
	close(spawner.sock);
	for (i = 0; i < spawner.threads; i++)
		pthread_join(spawner.tid[i], NULL);
	if (spawner.shared > 0)
		close(spawner.sv1);
	spawner.sock = -1;
}

/*
 * Queue the spawn for the spawner threads, giving them the command's
 * strings and the child's pipe ends (all taken over).  -1 when there
 * are no spawners: the caller spawns on its own thread.
 */
static int
exec_spawn_off(struct exec_state *s, struct exec_cmd *cmd, int outp[2],
               int errp[2], int inp[2])
{
	struct exec_req *r;

	pthread_once(&spawner.once, exec_spawner_init);
	if (spawner.sock < 0 || (r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	r->fds[0] = outp[1];
	r->fds[1] = errp[1];
	r->fds[2] = inp[0];
	r->with_stdin = inp[0] >= 0;
	r->cmd = *cmd;
	memset(cmd, 0, sizeof(*cmd));
	outp[1] = errp[1] = inp[0] = -1;
	s->req = r;
	pthread_mutex_lock(&spawner.mu);
	TAILQ_INSERT_TAIL(&spawner.queue, r, link);
	pthread_mutex_unlock(&spawner.mu);
	/* after the unlock: the feeder wakes to a free lock */
	pthread_cond_signal(&spawner.more);
	return 0;
}

/*
 * Wait for a handed-off spawn to be done and take its outcome: 0 and
 * s->pid, or the errno (reported on ctx, if given).  Only waits when the
 * spawner has taken the request up, which is a matter of a spawn.
 */
static int
exec_spawn_settle(struct task_ctx *ctx, struct exec_state *s)
{
	struct exec_req *r = s->req;
	int rc;

	pthread_mutex_lock(&spawner.mu);
	while (r->phase != SPAWN_DONE)
		pthread_cond_wait(&spawner.cv, &spawner.mu);
	pthread_mutex_unlock(&spawner.mu);
	if ((rc = r->rc) == 0)
		s->pid = s->pgid = r->pid;
	else if (ctx != NULL) {
		exec_fail_with(ctx, r->why);
		r->why = NULL;
	}
	exec_req_free(r);
	s->req = NULL;
	return rc;
}

/*
 * Start the command: on a spawner thread when the job runs on the loop,
 * else here.  The strings are taken over when handed off.
 */
static int
exec_spawn(struct task_ctx *ctx, struct exec_state *s, struct exec_cmd *cmd,
           bool with_stdin)
{
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1};
	char *why;
	pid_t pid;
	int rc;

	if (exec_pipes(ctx, s, outp, errp, inp, with_stdin) < 0)
		return -1;
	if (task_on_loop(ctx) && exec_spawn_off(s, cmd, outp, errp, inp) == 0)
		return 0;
	rc = exec_spawn_cmd(&pid, cmd, inp[0], outp[1], errp[1], &why);
	exec_close(&outp[1]);
	exec_close(&errp[1]);
	exec_close(&inp[0]);
	if (rc != 0) {
		exec_fail_with(ctx, why);
		exec_close_ours(s);
		return -1;
	}
	s->pid = s->pgid = pid;
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
	struct exec_cmd cmd = {.uid = task_owner(ctx),
	                       .as_owner = task_as_owner(ctx)};
	const msgpack_object *list = argv[EXEC_ARGV].o;
	const msgpack_object *env = argv[EXEC_ENV].o;
	int rc = -1;

	s->pidfd = s->epfd = s->infd = s->out[0].fd = s->out[1].fd = -1;
	s->timerfd = -1;
	s->grace = (unsigned)argv[EXEC_GRACE].i;
	if (list == NULL) {
		task_fail(ctx, "exec: missing argument argv");
		goto out;
	}
	if (exec_copy_argv(ctx, list, &cmd.argv) < 0)
		goto out;
	if (argv[EXEC_CWD].s.ptr != NULL &&
	    exec_check_cwd(ctx, &argv[EXEC_CWD], !cmd.as_owner, &cmd.cwd) < 0)
		goto out;
	if (env != NULL &&
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
	exec_cmd_free(&cmd);
	if (rc < 0) {
		free(s->in);
		s->in = NULL;
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
		if (o->len == 0 &&
		    (nl != NULL || take == EXEC_LINE || !exec_line_buf(o))) {
			/* whole; or unfinished, with no memory to keep it */
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
			exec_lines(ctx, which + 1, o, chunk, (size_t)n);
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

/*
 * A spawn the job's cancel finds handed off: -1 when it was not taken up
 * (the spawner drops it unstarted), else 0 once it is done.
 */
static int
exec_spawn_abandon(struct exec_state *s)
{
	pthread_mutex_lock(&spawner.mu);
	if (s->req->phase == SPAWN_QUEUED) {
		s->req->orphaned = true;
		s->req = NULL;
	}
	pthread_mutex_unlock(&spawner.mu);
	if (s->req == NULL)
		return -1;
	(void)exec_spawn_settle(NULL, s);
	return 0;
}

static void
exec_signal_group(struct exec_state *s, int sig)
{
	if (kill(-s->pgid, sig) < 0 && s->pid > 0)
		kill(s->pid, sig);
}

/*
 * Cancelled (or timed out): the command's process group gets SIGTERM and
 * the grace period starts, a timer in the epoll set.  The job goes on
 * reading the pipes, so what the command writes while it cleans up is
 * delivered and it never meets a closed pipe.  -1 when there is nothing
 * to wind down.
 */
static int
exec_wind_down(struct exec_state *s)
{
	struct itimerspec it = {{0, 0}, {0, 0}};

	s->winding = true;
	if (s->req != NULL && exec_spawn_abandon(s) < 0)
		return -1;
	if (s->pgid <= 0)
		return -1; /* the spawn failed */
	exec_signal_group(s, SIGTERM);
	it.it_value.tv_sec = s->grace / 1000;
	it.it_value.tv_nsec = (long)(s->grace % 1000) * 1000000 + 1;
	s->timerfd =
	    timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->timerfd < 0 || timerfd_settime(s->timerfd, 0, &it, NULL) < 0 ||
	    exec_watch(s, s->timerfd, EPOLLIN, EXEC_TIMER) < 0) {
		/* no timer, no grace period */
		exec_close(&s->timerfd);
		exec_signal_group(s, SIGKILL);
		s->killed = true;
	}
	return 0;
}

/* The grace period is over: what is left of the group gets SIGKILL. */
static void
exec_grace_over(struct exec_state *s)
{
	uint64_t n;

	(void)read(s->timerfd, &n, sizeof(n));
	exec_unwatch(s, &s->timerfd);
	if (!s->killed)
		exec_signal_group(s, SIGKILL);
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
exec_wound_down(struct exec_state *s)
{
	if (!s->killed)
		kill(-s->pgid, SIGKILL);
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

	if (task_cancelled(ctx) && !s->winding && exec_wind_down(s) < 0)
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
			exec_grace_over(s);
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
		return exec_wound_down(s); /* reaped while winding down */
	switch (exec_reap(s, &si)) {
	case 1:
		if (s->winding)
			return exec_wound_down(s);
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
	if (s->pid > 0 && s->winding) /* cut off winding down: no more grace */
		kill(-s->pgid, SIGKILL);
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
    .traits = TASK_NONBLOCKING | TASK_USER_CODE | TASK_WINDS_DOWN,
    .executors = TASK_ON_ALL,
    .state_size = sizeof(struct exec_state),
    .args = exec_args,
    .nargs = sizeof(exec_args) / sizeof(exec_args[0]),
    .start = exec_start,
    .step = exec_step,
    .stop = exec_stop,
};
