/*
 * spawn -- start a task's command: as posix_spawnp starts one, never
 * with fork (the daemon may be large, and a spawn costs the same whatever
 * its size): a child that shares the daemon's memory until it has exec'd
 * (clone with CLONE_VM | CLONE_VFORK), in a session of its own, with its
 * signals back to their defaults and no daemon descriptor but
 * its three standard ones.
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
 * socket.  When the spawn fails, the closing of the child's ends wakes
 * the caller, who waits on its own ends.  A spawn given up before it was
 * taken up is left behind, to be dropped unstarted.
 *
 * Whose command it is.  A root concd starts another user's command as
 * that user, as atd and cron do: the account is looked up where the spawn
 * runs (a spawner thread or a pool worker, never the loop: NSS may
 * block), and the child takes the user's groups, gid and uid with raw
 * system calls before it changes directory and execs.  The command gets
 * an environment of its own (HOME, USER, LOGNAME, SHELL and PATH, then
 * the caller's variables), never concd's, and starts in its cwd or the
 * user's home directory (/ if the user cannot enter it).  Root's own
 * commands, and every command of a concd that is not root, run as concd
 * with its environment.
 *
 * Its job's limits.  Where there are cgroups the spawn makes the job's
 * (cgroup.c) and opens its cgroup.procs files; the child writes "0" to
 * each first thing, while it is still root and before it can fork, so
 * that nothing the command starts is ever outside.  Without cgroups the
 * child sets RLIMIT_AS and RLIMIT_NPROC instead.
 */
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

#include "job.h"
#include "spawner.h"
#include "store.h"
#include "task.h"

extern char **environ;

#define SPAWN_SHOW    200 /* bytes of a name quoted in errors */
#define SPAWN_THREADS 4   /* spawner threads, at most */

/*
 * ThreadSanitizer tracks descriptors by number, process-wide, and knows
 * nothing of a thread's own table: there, spawners share the daemon's.
 */
#if defined(__SANITIZE_THREAD__)
#define SPAWN_OWN_TABLE 0
#else
#define SPAWN_OWN_TABLE 1
#endif

/* A spawn handed to the spawner threads: they own everything here. */
struct spawn {
	TAILQ_ENTRY(spawn) link; /* in spawner.queue */
	int fds[3];              /* the child's ends, in the daemon's table */
	struct spawn_cmd cmd;
	char *why;     /* the job's error when rc != 0 (NULL: no memory) */
	int phase;     /* SPAWN_*, under spawner.mu */
	bool orphaned; /* given up first: the spawner frees it */
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
	TAILQ_HEAD(, spawn) queue;
	int sock; /* the feeder's end; -1: no spawners, spawn on the caller */
	int threads, ready, shared; /* shared: spawners in the daemon's table */
	bool stopping;              /* the process exits: the threads end */
	int sv1;                    /* the spawners' end, if shared */
	pthread_t tid[SPAWN_THREADS + 1]; /* the spawners, then the feeder */
} spawner = {.once = PTHREAD_ONCE_INIT,
             .mu = PTHREAD_MUTEX_INITIALIZER,
             .cv = PTHREAD_COND_INITIALIZER,
             .more = PTHREAD_COND_INITIALIZER,
             .queue = TAILQ_HEAD_INITIALIZER(spawner.queue),
             .sock = -1,
             .sv1 = -1};

/*
 * The soft limit on open files commands start with, the one concd was
 * started with before it raised its own; 0: concd's.  Set before any
 * thread starts, read by the children.
 */
static uint64_t spawn_nofile;

void
spawn_set_nofile(uint64_t soft)
{
	spawn_nofile = soft;
}

uint64_t
spawn_nofile_soft(void)
{
	return spawn_nofile;
}

/* A name as errors quote it: long ones are cut short. */
static int
spawn_shown(size_t len)
{
	return (int)(len > SPAWN_SHOW ? SPAWN_SHOW : len);
}

static const char *
spawn_ellipsis(size_t len)
{
	return len > SPAWN_SHOW ? "..." : "";
}

static void
spawn_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void
spawn_strv_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

void
spawn_job_limits(struct task_ctx *ctx, struct cgroup_limits *l)
{
	const struct job *j = CTX_JOB(ctx);

	memset(l, 0, sizeof(*l));
	if (j->extra != NULL) {
		l->mem = j->extra->mem;
		l->pids = j->extra->pids;
		l->cpus = j->extra->cpus;
	}
}

enum task_step
spawn_oom(struct task_ctx *ctx, int status)
{
	ctx->code = PE_OOM;
	return task_fail(ctx,
	                 "killed for exceeding its memory limit "
	                 "(the kernel's OOM killer; status %d)",
	                 status);
}

bool
spawn_on_slurm(struct task_ctx *ctx)
{
	return CTX_JOB(ctx)->exec == PX_SLURM;
}

void
spawn_slurm_request(struct task_ctx *ctx, unsigned grace_ms,
                    struct slurm_request *r)
{
	const struct job *j = CTX_JOB(ctx);

	memset(r, 0, sizeof(*r));
	r->id = j->id;
	r->timeout_ms = j->timeout_ms;
	r->grace_ms = grace_ms;
	if (j->extra != NULL) {
		r->cpus = j->extra->cpus;
		r->mem = j->extra->mem;
	}
}

enum task_step
spawn_slurm_ended(struct task_ctx *ctx, enum slurm_end end)
{
	const struct job *j = CTX_JOB(ctx);
	const char *node = j->extra != NULL && j->extra->node != NULL
	                       ? j->extra->node
	                       : "(unknown)";

	switch (end) {
	case SLURM_END_TIME_LIMIT:
		ctx->code = PE_TIMED_OUT;
		return task_fail(ctx, "Slurm's time limit for it ran out");
	case SLURM_END_NODE_FAIL:
		ctx->code = PE_NODE_FAILED;
		return task_fail(ctx, "node %s failed (Slurm)", node);
	default:
		ctx->code = PE_PREEMPTED;
		return task_fail(ctx, "Slurm preempted it on node %s", node);
	}
}

void
spawn_slurm_placed(struct task_ctx *ctx, uint64_t slurm_id, const char *node)
{
	job_placed(CTX_JOB(ctx), slurm_id, node);
}

void
spawn_cmd_free(struct spawn_cmd *cmd)
{
	spawn_strv_free(cmd->argv);
	spawn_strv_free(cmd->own);
	free(cmd->envp);
	free(cmd->cwd);
	memset(cmd, 0, sizeof(*cmd));
}

/*
 * What the child needs, on its parent's stack.  The child runs in its
 * parent's memory (CLONE_VM) while the parent waits (CLONE_VFORK), so it
 * reads these in place and writes err back.
 */
struct spawn_child {
	char **argv, **envp;
	const char *path; /* the PATH to search; NULL: argv[0] has a '/' */
	size_t flen;      /* strlen(argv[0]) */
	const char *cwd;
	const struct task_account *as; /* whose command; NULL: concd's */
	int fd[3];   /* what becomes 0, 1 and 2; fd[0] -1: /dev/null */
	int join[4]; /* the job's cgroup.procs files, written "0" */
	int njoin;
	struct rlimit rl_as, rl_nproc; /* rlim_max 0: not set */
	int err;      /* why the child could not run the command */
	int stage;    /* SPAWN_AT_*: what it was doing then */
	int umask;    /* -1: concd's */
	bool all_ids; /* as: its real and saved uids are the owner's too */
};

/* What a child was doing when it failed, for the job's error. */
enum {
	SPAWN_AT_EXEC,
	SPAWN_AT_CWD,
	SPAWN_AT_IDENTITY,
	SPAWN_AT_CGROUP,
	SPAWN_AT_RLIMIT
};

/* The child's stack: a part of its parent's, which waits meanwhile. */
#define SPAWN_CHILD_STACK (16 * 1024)

/*
 * ThreadSanitizer's clone() takes every clone for a fork and resets its
 * own state in the child, which CLONE_VM shares with the parent: there,
 * glibc's clone is called by its other name.
 */
#if defined(__SANITIZE_THREAD__)
extern int __clone(int (*)(void *), void *, int, void *, ...);
#define spawn_clone __clone
#else
#define spawn_clone clone
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
spawn_child_execve(struct spawn_child *c, const char *file)
{
	if (c->as != NULL && !c->all_ids) {
		if (syscall(SYS_faccessat2, AT_FDCWD, file, X_OK, AT_EACCESS) <
		        0 &&
		    errno != ENOSYS)
			return 0;
		c->stage = SPAWN_AT_IDENTITY;
		if (syscall(SYS_setresuid, c->as->uid, c->as->uid, c->as->uid) <
		    0)
			return -1;
		c->stage = SPAWN_AT_EXEC;
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
spawn_child_main(void *arg)
{
	struct spawn_child *c = arg;
	unsigned long dfl[4] = {0, 0, 0, 0}; /* kernel sigaction: SIG_DFL */
	uint64_t none = 0;                   /* kernel sigset: empty */
	struct rlimit nofile;
	char buf[PATH_MAX];
	const char *p, *end;
	int src[3], i, last = ENOENT;
	bool eacces = false;
	size_t n;

	/*
	 * Every signal to its default: handled or ignored by concd or its
	 * parent, and the real-time ones too, for glibc's posix_spawn, which
	 * starts a worker process, leaves its own two (32, 33) ignored.
	 */
	for (i = 1; i < NSIG; i++)
		if (i != SIGKILL && i != SIGSTOP)
			syscall(SYS_rt_sigaction, i, dfl, NULL, sizeof(none));
	/*
	 * A session of its own, and so a process group and no controlling
	 * terminal: a command that shared the terminal of a concd started
	 * from one could push input into it (TIOCSTI) as its owner.
	 */
	if (syscall(SYS_setsid) < 0)
		goto fail;
	/* into the job's cgroup, while still root, before it can fork */
	c->stage = SPAWN_AT_CGROUP;
	for (i = 0; i < c->njoin; i++)
		if (syscall(SYS_write, c->join[i], "0", 1) != 1)
			goto fail;
	c->stage = SPAWN_AT_RLIMIT;
	/* lowered, never raised: the hard limit may be below it */
	if (spawn_nofile > 0 &&
	    syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &nofile) == 0 &&
	    nofile.rlim_cur > spawn_nofile) {
		nofile.rlim_cur = spawn_nofile;
		syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &nofile, NULL);
	}
	if ((c->rl_as.rlim_max > 0 &&
	     syscall(SYS_prlimit64, 0, RLIMIT_AS, &c->rl_as, NULL) < 0) ||
	    (c->rl_nproc.rlim_max > 0 &&
	     syscall(SYS_prlimit64, 0, RLIMIT_NPROC, &c->rl_nproc, NULL) < 0))
		goto fail;
	c->stage = SPAWN_AT_EXEC;
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
		 * the effective one only, until spawn_child_execve.  Changing
		 * it makes the shared memory undumpable: the user cannot
		 * trace the child while it is the daemon's (and the daemon's
		 * core dumps follow fs.suid_dumpable from then on).
		 */
		c->stage = SPAWN_AT_IDENTITY;
		if (syscall(SYS_setgroups, (size_t)c->as->ngroups,
		            c->as->groups) < 0 ||
		    syscall(SYS_setresgid, c->as->gid, c->as->gid, c->as->gid) <
		        0 ||
		    syscall(SYS_setresuid, -1, c->as->uid, -1) < 0)
			goto fail;
	}
	if (c->umask >= 0)
		syscall(SYS_umask, c->umask);
	c->stage = SPAWN_AT_CWD;
	if (c->cwd != NULL && syscall(SYS_chdir, c->cwd) < 0)
		goto fail;
	/* no cwd=: the owner's home, or / if the owner cannot enter it */
	if (c->cwd == NULL && c->as != NULL &&
	    syscall(SYS_chdir, c->as->home) < 0 && syscall(SYS_chdir, "/") < 0)
		goto fail;
	c->stage = SPAWN_AT_EXEC;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
	if (c->path == NULL) {
		(void)spawn_child_execve(c, c->argv[0]);
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
			if (spawn_child_execve(c, buf) < 0)
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
 * descriptors in (-1: /dev/null), out and err, in a session of its own
 * (and so a process group), with default signal dispositions and mask.  Returns
 * 0 or an errno.
 *
 * This is what posix_spawnp does, less a cost measured here: glibc maps
 * and unmaps a stack for every child, and on a multi-threaded daemon the
 * unmap flushes the other cores' TLBs.  The child here runs on part of
 * the caller's stack.  It resets the standard signals; execve resets the
 * real-time ones the daemon handles, and it ignores none.
 */
static int
spawn_clone_child(pid_t *pid, struct spawn_child *cp)
{
	_Alignas(16) char stack[SPAWN_CHILD_STACK];
	struct spawn_child c = *cp;
	sigset_t all, old;
	pid_t p;
	int rc;

	c.flen = strlen(c.argv[0]);
	c.err = 0;
	c.stage = SPAWN_AT_EXEC;
	c.all_ids = false;
	/* no handler of the daemon's may run in the child */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	p = spawn_clone(spawn_child_main, stack + sizeof(stack),
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
spawn_why(const struct spawn_cmd *cmd, int stage, int rc)
{
	const char *name =
	    stage == SPAWN_AT_CWD && cmd->cwd != NULL ? cmd->cwd : cmd->argv[0];
	size_t len = strlen(name);
	char *s;

	if (stage == SPAWN_AT_CGROUP)
		rc = asprintf(&s, "exec: cannot join the job's cgroup: %s",
		              strerror(rc));
	else if (stage == SPAWN_AT_RLIMIT)
		rc = asprintf(&s, "exec: cannot set the job's rlimits: %s",
		              strerror(rc));
	else if (stage == SPAWN_AT_IDENTITY)
		rc =
		    asprintf(&s, "exec: cannot take the identity of uid %u: %s",
		             (unsigned)cmd->uid, strerror(rc));
	else if (stage == SPAWN_AT_CWD && cmd->cwd == NULL)
		rc = asprintf(&s,
		              "exec: cannot change to the home directory "
		              "or /: %s",
		              strerror(rc));
	else
		rc = asprintf(&s, "exec: cannot %s \"%.*s%s\": %s",
		              stage == SPAWN_AT_CWD ? "use cwd" : "run",
		              spawn_shown(len), name, spawn_ellipsis(len),
		              strerror(rc));
	return rc < 0 ? NULL : s;
}

static char *
spawn_find_env(char **envp, const char *name)
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
spawn_owner_env(const struct task_account *a, char **envp, char ***own)
{
	const struct {
		const char *name, *value;
	} vars[] = {{"HOME", a->home},
	            {"USER", a->name},
	            {"LOGNAME", a->name},
	            {"SHELL", a->shell},
	            {"PATH", TASK_USER_PATH}};
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
		if (spawn_find_env(envp, vars[i].name) != NULL)
			continue;
		if (asprintf(&mine[k], "%s=%s", vars[i].name, vars[i].value) <
		    0) {
			mine[k] = NULL;
			spawn_strv_free(mine);
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
 * Every command carries its job's id and the store's name (concd's
 * CONCD_INSTANCE) in its environment, and its children inherit them: a
 * concd that restarts after a crash finds the commands the crashed one
 * left running by them (recover.c), however they were started.
 */
static char **
spawn_mark_env(char **envp, char vars[2][80], uint64_t job)
{
	const char *instance = getenv("CONCD_INSTANCE");
	size_t n = 0, k = 0, i;
	char **v;

	while (envp != NULL && envp[n] != NULL)
		n++;
	if ((v = calloc(n + 3, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (strncmp(envp[i], "CONCD_JOB_ID=", 13) != 0 &&
		    strncmp(envp[i], "CONCD_INSTANCE=", 15) != 0)
			v[k++] = envp[i];
	snprintf(vars[0], sizeof(vars[0]), "CONCD_JOB_ID=%llu",
	         (unsigned long long)job);
	v[k++] = vars[0];
	if (instance != NULL) {
		snprintf(vars[1], sizeof(vars[1]), "CONCD_INSTANCE=%s",
		         instance);
		v[k++] = vars[1];
	}
	return v;
}

/*
 * The job's limits for the child: its cgroup made and the cgroup.procs
 * files opened for it to join, or the rlimits it sets.  0, or an errno
 * with the job's error in *why.
 */
static int
spawn_limits(const struct spawn_cmd *cmd, struct spawn_child *c, char **why)
{
	const char *dirs[4];
	char text[512], path[4096];
	size_t i, n;

	if (cmd->cg == NULL) {
		if (cmd->rlimit && cmd->lim.mem > 0)
			c->rl_as.rlim_cur = c->rl_as.rlim_max = cmd->lim.mem;
		if (cmd->rlimit && cmd->lim.pids > 0)
			c->rl_nproc.rlim_cur = c->rl_nproc.rlim_max =
			    cmd->lim.pids;
		return 0;
	}
	if (cgroup_job_make(cmd->cg, &cmd->lim, text, sizeof(text)) < 0) {
		*why = strdup(text);
		return EPERM;
	}
	n = cgroup_job_procs(cmd->cg, dirs, sizeof(dirs) / sizeof(dirs[0]));
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", dirs[i]);
		if ((c->join[c->njoin] = open(path, O_WRONLY | O_CLOEXEC)) <
		    0) {
			int rc = errno;

			if (asprintf(why, "exec: cannot join %s: %s", dirs[i],
			             strerror(rc)) < 0)
				*why = NULL;
			return rc;
		}
		c->njoin++;
	}
	return 0;
}

/*
 * Start cmd with the standard descriptors in (-1: /dev/null), out and
 * err: as concd, or as its owner, whose account is looked up here (this
 * may block: never on the loop).  0, or an errno with the job's error in
 * *why (NULL if out of memory).
 */
static int
spawn_run(pid_t *pid, const struct spawn_cmd *cmd, int in, int out, int err,
          char **why)
{
	struct spawn_child c = {.argv = cmd->argv,
	                        .envp = cmd->envp != NULL ? cmd->envp : environ,
	                        .cwd = cmd->cwd,
	                        .fd = {in, out, err},
	                        .umask = cmd->umask != 0 ? cmd->umask - 1
	                                 : cmd->as_owner ? 022
	                                                 : -1};
	struct task_account a;
	char **envp = NULL, **own = NULL, **marked, text[160], vars[2][80];
	int rc, i;

	*why = NULL;
	if ((rc = spawn_limits(cmd, &c, why)) != 0)
		goto out;
	if (cmd->as_owner) {
		if (task_account_get(cmd->uid, &a, text, sizeof(text)) < 0) {
			if (asprintf(why, "exec: %s", text) < 0)
				*why = NULL;
			rc = EPERM;
			goto out;
		}
		if ((envp = spawn_owner_env(&a, cmd->envp, &own)) == NULL) {
			task_account_free(&a);
			rc = ENOMEM;
			goto out;
		}
		c.envp = envp;
		c.as = &a;
	}
	if ((marked = spawn_mark_env(c.envp, vars, cmd->job)) == NULL) {
		if (cmd->as_owner) {
			free(envp);
			spawn_strv_free(own);
			task_account_free(&a);
		}
		rc = ENOMEM;
		goto out;
	}
	c.envp = marked;
	/* looked up in the PATH the command gets, env= included */
	if (strchr(c.argv[0], '/') == NULL &&
	    (c.path = spawn_find_env(c.envp, "PATH")) == NULL)
		c.path = "/bin:/usr/bin";
	if ((rc = spawn_clone_child(pid, &c)) != 0)
		*why = spawn_why(cmd, c.stage, rc);
	free(marked);
	if (cmd->as_owner) {
		free(envp);
		spawn_strv_free(own);
		task_account_free(&a);
	}
out:
	for (i = 0; i < c.njoin; i++)
		close(c.join[i]);
	return rc;
}

/* Close fds[0..n). */
static void
spawn_close_fds(int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		spawn_close(&fds[i]);
}

static void
spawn_req_free(struct spawn *r)
{
	spawn_cmd_free(&r->cmd);
	free(r->why);
	free(r);
}

/* Tell a request's waiters it is done (with rc and pid set). */
static void
spawn_req_done(struct spawn *r)
{
	pthread_mutex_lock(&spawner.mu);
	r->phase = SPAWN_DONE;
	pthread_cond_broadcast(&spawner.cv);
	pthread_mutex_unlock(&spawner.mu);
}

/* Take a request up, unless its job ended first: then drop it here. */
static bool
spawn_req_take(struct spawn *r, int *fds, size_t nfd)
{
	pthread_mutex_lock(&spawner.mu);
	if (r->orphaned) {
		pthread_mutex_unlock(&spawner.mu);
		spawn_close_fds(fds, nfd);
		spawn_req_free(r);
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
spawn_req_run(struct spawn *r, int *fds, size_t nfd)
{
	if (nfd != (r->with_stdin ? 3u : 2u)) {
		r->rc = EBADF;
		r->why = spawn_why(&r->cmd, SPAWN_AT_EXEC, EBADF);
	} else {
		r->rc = spawn_run(&r->pid, &r->cmd, r->with_stdin ? fds[2] : -1,
		                  fds[0], fds[1], &r->why);
	}
	spawn_close_fds(fds, nfd);
	spawn_req_done(r);
}

static void *
spawn_thread_main(void *arg)
{
	int sock = (int)(intptr_t)arg, fds[3];
	char cbuf[CMSG_SPACE(sizeof(fds))];
	struct spawn *r;
	struct cmsghdr *cm;
	struct msghdr mh;
	struct iovec iov;
	bool own = SPAWN_OWN_TABLE && unshare(CLONE_FILES) == 0;
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
		if (spawn_req_take(r, fds, nfd))
			spawn_req_run(r, fds, nfd);
	}
}

/*
 * The feeder: in the daemon's descriptor table, it passes each queued
 * request's pipe ends to the spawners, then closes them here.  Should
 * that fail, it spawns the command itself.
 */
static void *
spawn_feeder_main(void *arg)
{
	char cbuf[CMSG_SPACE(3 * sizeof(int))];
	struct spawn *r;
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
			spawn_close_fds(fds, nfd);
			spawn_req_free(r);
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
			if (spawn_req_take(r, fds, nfd))
				spawn_req_run(r, fds, nfd);
			continue;
		}
		/* r is the spawners' now; these copies were passed on */
		spawn_close_fds(fds, nfd);
	}
	return NULL;
}

/* Start the threads once; without them, spawns run on the caller. */
static void
spawn_init(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int sv[2], i,
	    n = ncpu < 1               ? 1
	        : ncpu > SPAWN_THREADS ? SPAWN_THREADS
	                               : (int)ncpu;
	sigset_t all, old;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the loop's */
	for (i = 0; i < n; i++) {
		if (pthread_create(&spawner.tid[spawner.threads], NULL,
		                   spawn_thread_main,
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
	                   spawn_feeder_main, NULL) != 0) {
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
spawn_fini(void)
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
 * strings and the child's descriptors (all taken over).  NULL when there
 * are no spawners: the caller spawns on its own thread.
 */
static struct spawn *
spawn_off(struct spawn_cmd *cmd, int in, int out, int err)
{
	struct spawn *r;

	pthread_once(&spawner.once, spawn_init);
	if (spawner.sock < 0 || (r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->fds[0] = out;
	r->fds[1] = err;
	r->fds[2] = in;
	r->with_stdin = in >= 0;
	r->cmd = *cmd;
	memset(cmd, 0, sizeof(*cmd));
	pthread_mutex_lock(&spawner.mu);
	TAILQ_INSERT_TAIL(&spawner.queue, r, link);
	pthread_mutex_unlock(&spawner.mu);
	/* after the unlock: the feeder wakes to a free lock */
	pthread_cond_signal(&spawner.more);
	return r;
}

int
spawn_start(struct spawn_cmd *cmd, int in, int out, int err, bool async,
            struct spawn **pending, pid_t *pid, char **why)
{
	int rc;

	*why = NULL;
	if (async && (*pending = spawn_off(cmd, in, out, err)) != NULL)
		return 0;
	*pending = NULL;
	rc = spawn_run(pid, cmd, in, out, err, why);
	spawn_close(&in);
	spawn_close(&out);
	spawn_close(&err);
	return rc;
}

int
spawn_wait(struct spawn *r, pid_t *pid, char **why)
{
	int rc;

	pthread_mutex_lock(&spawner.mu);
	while (r->phase != SPAWN_DONE)
		pthread_cond_wait(&spawner.cv, &spawner.mu);
	pthread_mutex_unlock(&spawner.mu);
	*why = NULL;
	if ((rc = r->rc) == 0)
		*pid = r->pid;
	else {
		*why = r->why;
		r->why = NULL;
	}
	spawn_req_free(r);
	return rc;
}

bool
spawn_done(struct spawn *r)
{
	bool done;

	pthread_mutex_lock(&spawner.mu);
	done = r->phase == SPAWN_DONE;
	pthread_mutex_unlock(&spawner.mu);
	return done;
}

pid_t
spawn_cancel(struct spawn *r)
{
	bool dropped;
	char *why;
	pid_t pid;

	pthread_mutex_lock(&spawner.mu);
	if ((dropped = r->phase == SPAWN_QUEUED))
		r->orphaned = true;
	pthread_mutex_unlock(&spawner.mu);
	if (dropped)
		return 0;
	if (spawn_wait(r, &pid, &why) != 0) {
		free(why);
		return 0;
	}
	return pid;
}

int
spawn_reap(pid_t pid, siginfo_t *si)
{
	memset(si, 0, sizeof(*si));
	while (waitid(P_PID, (id_t)pid, si, WEXITED | WNOHANG) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return si->si_pid != 0;
}
