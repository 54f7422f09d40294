/*
 * pool_process.c -- the warm process pool.  M worker processes are
 * started at start-up (and on resize) by re-executing concd in its worker
 * role with posix_spawn, so starting one costs the same however large
 * the daemon has grown.  Each is connected by a socketpair that the loop
 * watches like any client connection, with the same frames and codec,
 * and shares a record page with the daemon (struct worker_shm).
 *
 * Jobs wait in one queue here and go to the worker with the fewest, so an
 * idle worker always gets the next one; only when every worker has work
 * does one get several at once (a stream of small jobs then costs one
 * write per batch).  A worker that falls idle while another holds jobs it
 * has not started asks for them back ("revoke"), so no job waits behind a
 * long one while a worker is free.
 *
 * A worker that dies fails the jobs it had run, even those whose
 * "started" had not reached us: its record page says which; the jobs it
 * had not started go back to the front of the queue.  A new worker takes
 * its place, and a worker that cannot be started (out of descriptors,
 * processes or memory) is tried again with a growing delay until the
 * pool is full; no worker starts while concd stops.
 *
 * On a root concd, another user's jobs of a task that runs the user's
 * code inside the worker (TASK_NOT_AS_OWNER: python) never go to the
 * pool, whose workers have root's rights.  They go to that user's own
 * workers (struct pgroup), started on demand as the user (`--user UID`:
 * the worker takes the user's identity before it loads a plugin) up to
 * the pool's size, given jobs and asked for them back as the pool's are,
 * and retired after user-worker-idle seconds without a job.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "cgroup.h"
#include "conn.h"
#include "executor.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "pool_process.h"
#include "spawner.h"
#include "store.h"
#include "task.h"
#include "task_int.h"
#include "worker.h"
#include "worker_msg.h"

#define PROC_DEPTH        64   /* jobs given to one worker ahead of time */
#define PROC_GRACE_S      5    /* a cancelled job's time to stop */
#define PROC_RETRY_MIN_MS 10   /* a failed start is tried again after */
#define PROC_RETRY_MAX_MS 1000 /* ... doubling up to this */
#define PROC_WATCH_MS     100  /* record pages are read this often */
#define PROC_EXIT_MS      5000 /* an idle worker's time to exit at shutdown */

extern char **environ;

/* Workers of one owner with their queue: the pool, or a user's. */
struct pgroup {
	bool user; /* a user's workers, not the pool */
	uid_t uid; /* a user's: whose */
	struct job_queue queue;
	size_t nrevoking;  /* jobs asked back from its workers */
	unsigned nworkers; /* a user's: its workers, fresh ones among them */
	TAILQ_ENTRY(pgroup) link;
};
TAILQ_HEAD(pgroup_list, pgroup);

struct pworker {
	struct pgroup *g;
	int index; /* -1: a fresh worker for one job */
	pid_t pid;
	int fd; /* the daemon's end of its socket, owned by conn */
	bool reaped;
	int status; /* once reaped */
	struct conn *conn;
	struct worker_shm *shm;
	struct worker_jobs jobs; /* given to it */
	uint32_t served;
	uint32_t given; /* jobs handed to it, for max-jobs-per-worker */
	uint64_t spawned;
	bool retiring;
	struct event *grace; /* a cancelled job that must end by then */
	struct event *idle;  /* a user's worker: retired when it fires */
	TAILQ_ENTRY(pworker) link;
};
TAILQ_HEAD(pworker_list, pworker);

static struct {
	struct pworker_list workers; /* the pool and fresh ones */
	int size;                    /* workers wanted in the pool */
	int max_jobs;                /* a worker is replaced after these */
	char *plugin_dir;
	char busy_poll[16]; /* --busy-poll, for warm workers */
	char exe[PATH_MAX]; /* concd's own path, see proc_exe */
	dev_t exe_dev;
	ino_t exe_ino;
	struct pgroup pool;       /* concd's own workers */
	struct pgroup_list users; /* users' workers, on a root concd */
	struct timeval user_idle; /* user-worker-idle */
	size_t nqueued, nrunning;
	struct event *fill_ev;  /* the next try at starting missing workers */
	unsigned retry_ms;      /* its delay; 0: the pool is full */
	struct event *watch_ev; /* reads the record pages while jobs are out */
	bool stopping;
} pp = {
    .workers = TAILQ_HEAD_INITIALIZER(pp.workers),
    .pool = {.queue = TAILQ_HEAD_INITIALIZER(pp.pool.queue)},
    .users = TAILQ_HEAD_INITIALIZER(pp.users),
    .user_idle = {60, 0},
};

static void proc_dispatch_msg(struct conn *, const struct proto_msg *);
static void proc_closed(struct conn *, void *);
static void proc_dispatch(void);
static int proc_fill(void);
static void proc_grace_cb(evutil_socket_t, short, void *);
static void proc_idle_cb(evutil_socket_t, short, void *);

/* A job's xdata while its dead worker's jobs are being ended. */
static char proc_gone;
#define PROC_GONE ((void *)&proc_gone)

static const struct timeval proc_watch_every = {0, PROC_WATCH_MS * 1000};

static const struct conn_handler proc_handler = {
    .dispatch = proc_dispatch_msg,
    .closed = proc_closed,
};

/*
 * The binary a worker runs: the daemon's own.  Its path as it was at
 * start-up, while that still names the same file; /proc/self/exe once it
 * does not (the package was upgraded: the worker must speak the daemon's
 * protocol).  The path comes first because tools that run concd under
 * another program, such as valgrind, follow an exec of the path but not
 * of /proc/self/exe, which names that program.
 */
static void
proc_find_exe(void)
{
	struct stat st;
	ssize_t n = readlink("/proc/self/exe", pp.exe, sizeof(pp.exe) - 1);

	pp.exe[n > 0 ? n : 0] = '\0';
	if (n <= 0 || stat(pp.exe, &st) < 0) {
		pp.exe[0] = '\0';
		return;
	}
	pp.exe_dev = st.st_dev;
	pp.exe_ino = st.st_ino;
}

static const char *
proc_exe(void)
{
	struct stat st;

	if (pp.exe[0] != '\0' && stat(pp.exe, &st) == 0 &&
	    st.st_dev == pp.exe_dev && st.st_ino == pp.exe_ino)
		return pp.exe;
	return "/proc/self/exe";
}

/*
 * The record page a worker shares with us: a memfd, on a descriptor above
 * those the worker gets (posix_spawn's dup2s must not overwrite it).
 */
static int
proc_shm(struct worker_shm **out)
{
	int fd = memfd_create("concd-worker", MFD_CLOEXEC), hi;
	void *p;

	if (fd >= 0 && fd <= WORKER_SHM_FD) {
		hi = fcntl(fd, F_DUPFD_CLOEXEC, WORKER_SHM_FD + 1);
		close(fd);
		fd = hi;
	}
	if (fd < 0)
		return -1;
	if (ftruncate(fd, sizeof(struct worker_shm)) < 0 ||
	    (p = mmap(NULL, sizeof(struct worker_shm), PROT_READ | PROT_WRITE,
	              MAP_SHARED, fd, 0)) == MAP_FAILED) {
		close(fd);
		return -1;
	}
	*out = p;
	return fd;
}

/*
 * What a user's worker starts with of concd's environment: what it keeps
 * (worker_env_kept) and the instance's mark, which a start after a crash
 * finds it by (recover.c).  Never the rest: the strings a process starts
 * with stay in its memory, and a user's worker's memory is the user's.
 * The strings are environ's; NULL when out of memory.
 */
static char **
proc_user_env(void)
{
	size_t n = 0, k = 0;
	char **env, **v;

	while (environ[n] != NULL)
		n++;
	if ((env = calloc(n + 1, sizeof(*env))) == NULL)
		return NULL;
	for (v = environ; *v != NULL; v++)
		if (worker_env_kept(*v) ||
		    strncmp(*v, "CONCD_INSTANCE=", 15) == 0)
			env[k++] = *v;
	return env;
}

/*
 * A worker's descriptors: its socket and its page; a user's worker
 * /dev/null as its standard ones, for concd's may be root's terminal or
 * log.  Nothing else of concd's, not even what it was started with open.
 */
static void
proc_spawn_fds(posix_spawn_file_actions_t *fa, const struct pgroup *g, int sock,
               int shmfd)
{
	posix_spawn_file_actions_adddup2(fa, sock, WORKER_FD);
	posix_spawn_file_actions_adddup2(fa, shmfd, WORKER_SHM_FD);
	if (g->user) {
		posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY,
		                                 0);
		posix_spawn_file_actions_addopen(fa, 1, "/dev/null", O_WRONLY,
		                                 0);
		posix_spawn_file_actions_adddup2(fa, 1, 2);
	}
	posix_spawn_file_actions_addclosefrom_np(fa, WORKER_SHM_FD + 1);
}

static struct pworker *
proc_spawn(struct pgroup *g, int index)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct worker_shm *shm = NULL;
	struct pworker *w = NULL;
	char idx[16], uid[16], nofile[24];
	char *argv[16], **env;
	sigset_t none;
	int sv[2] = {-1, -1}, shmfd, rc, n = 0;

	if ((shmfd = proc_shm(&shm)) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = errno;
		if (shmfd >= 0) {
			close(shmfd);
			munmap(shm, sizeof(*shm));
		}
		errno = rc;
		if (index < 0 || pp.retry_ms == 0)
			log_warn("process pool: cannot start worker %d", index);
		return NULL;
	}
	snprintf(idx, sizeof(idx), "%d", index);
	argv[n++] = (char *)"concd";
	argv[n++] = (char *)"--worker";
	argv[n++] = idx;
	if (index < 0) {
		argv[n++] = (char *)"--once";
	} else {
		argv[n++] = (char *)"--busy-poll";
		argv[n++] = pp.busy_poll;
	}
	if (g->user) {
		/* first: the user's identity before anything else */
		snprintf(uid, sizeof(uid), "%u", (unsigned)g->uid);
		argv[n++] = (char *)"--user";
		argv[n++] = uid;
	}
	if (pp.plugin_dir != NULL) {
		argv[n++] = (char *)"--plugin-dir";
		argv[n++] = pp.plugin_dir;
	}
	if (spawn_nofile_soft() > 0) {
		snprintf(nofile, sizeof(nofile), "%" PRIu64,
		         spawn_nofile_soft());
		argv[n++] = (char *)"--nofile";
		argv[n++] = nofile;
	}
	if (!g->user) {
		/* its commands' cgroups, as the daemon's */
		argv[n++] = (char *)"--cgroup";
		argv[n++] = (char *)cgroup_spec();
	}
	argv[n] = NULL;

	posix_spawn_file_actions_init(&fa);
	proc_spawn_fds(&fa, g, sv[1], shmfd);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr,
	                         POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
	env = g->user ? proc_user_env() : environ;
	if (env == NULL || (w = calloc(1, sizeof(*w))) == NULL)
		rc = ENOMEM;
	else
		rc = posix_spawn(&w->pid, proc_exe(), &fa, &attr, argv, env);
	if (env != environ)
		free(env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	close(shmfd);
	if (rc != 0) {
		errno = rc;
		if (index < 0 || pp.retry_ms == 0)
			log_warn("process pool: cannot start worker %d", index);
		close(sv[0]);
		munmap(shm, sizeof(*shm));
		free(w);
		return NULL;
	}
	evutil_make_socket_nonblocking(sv[0]);
	w->g = g;
	w->fd = sv[0];
	w->index = index;
	w->shm = shm;
	w->spawned = loop_now_us();
	if ((w->grace = evtimer_new(loop_base, proc_grace_cb, w)) == NULL ||
	    (g->user &&
	     (w->idle = evtimer_new(loop_base, proc_idle_cb, w)) == NULL))
		abort(); /* out of memory */
	TAILQ_INIT(&w->jobs.q);
	if ((w->conn = conn_new_with(sv[0], &proc_handler, w)) == NULL) {
		close(sv[0]);
		kill(w->pid, SIGKILL);
		waitpid(w->pid, NULL, 0);
		event_free(w->grace);
		if (w->idle != NULL)
			event_free(w->idle);
		munmap(shm, sizeof(*shm));
		free(w);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&pp.workers, w, link);
	g->nworkers++;
	if (g->user)
		log_debug("process worker %d of uid %u: pid %d", index,
		          (unsigned)g->uid, (int)w->pid);
	else
		log_debug("process worker %d: pid %d", index, (int)w->pid);
	return w;
}

static void
proc_fill_cb(evutil_socket_t fd, short what, void *arg)
{
	proc_fill();
	proc_dispatch(); /* the queue waited for them */
}

/*
 * Start the pool's missing workers.  Those that cannot start (EMFILE,
 * EAGAIN, ENOMEM) are tried again after 10 ms, 20 ms... up to a second,
 * until the pool is full.  Returns how many are still missing.
 */
static int
proc_fill(void)
{
	bool have[POOL_MAX_PROCESSES] = {false};
	struct pworker *w;
	int i, missing = 0;

	if (pp.stopping || loop_stopping())
		return 0;
	TAILQ_FOREACH(w, &pp.workers, link)
		if (w->g == &pp.pool && w->index >= 0 && !w->retiring)
			have[w->index] = true;
	for (i = 0; i < pp.size; i++)
		if (!have[i] && proc_spawn(&pp.pool, i) == NULL)
			missing++;
	if (missing == 0) {
		if (pp.retry_ms > 0)
			log_info("process pool: all %d workers running again",
			         pp.size);
		pp.retry_ms = 0;
		evtimer_del(pp.fill_ev);
		return 0;
	}
	if (pp.retry_ms == 0)
		log_warnx("process pool: %d of %d workers missing; trying "
		          "again until they start",
		          missing, pp.size);
	loop_retry_later(pp.fill_ev, &pp.retry_ms, PROC_RETRY_MIN_MS,
	                 PROC_RETRY_MAX_MS);
	return missing;
}

/* Is the worker stopped (SIGSTOP, SIGTSTP, a debugger)? */
static bool
proc_stopped(pid_t pid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "pid (comm) S ...": comm may hold anything, the last ')' ends it */
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return false;
	return p[2] == 'T' || p[2] == 't';
}

/* Has the worker begun j, as far as its record page tells? */
static bool
proc_has_started(const struct pworker *w, const struct job *j)
{
	return j->state == PS_RUNNING ||
	       atomic_load_explicit(&w->shm->started, memory_order_acquire) ==
	           j->id;
}

/*
 * A cancelled job that does not end in time, or whose worker is stopped
 * and cannot hear the cancel, has its worker killed: the job still ends
 * cancelled (or timed out), with the reason as its message.
 */
static void
proc_kill_for(struct pworker *w, struct job *j, const char *why)
{
	log_warnx("process worker %d (pid %d): job %llu %s; killing it",
	          w->index, (int)w->pid, (unsigned long long)j->id, why);
	task_fail(&j->ctx, "%s: its worker process (pid %d) was killed", why,
	          (int)w->pid);
	kill(w->pid, SIGKILL); /* proc_closed does the rest */
}

static void
proc_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pworker *w = arg;
	struct job *j;
	char why[64];

	TAILQ_FOREACH(j, &w->jobs.q, link) {
		if (atomic_load(&j->ctx.cancel) && proc_has_started(w, j)) {
			snprintf(why, sizeof(why),
			         "did not stop within %d s of its cancel",
			         PROC_GRACE_S);
			proc_kill_for(w, j, why);
			return;
		}
	}
}

static struct job *
proc_job(struct pworker *w, uint64_t id)
{
	return worker_jobs_find(&w->jobs.q, id);
}

/* j runs in w: as its "started" says, or its record page first. */
static void
proc_started(struct pworker *w, struct job *j, pid_t pid, uint32_t served,
             uint64_t at)
{
	j->worker = w->index;
	j->tid = pid;
	j->served = w->served = served;
	if (j->state != PS_QUEUED)
		return; /* the record page told us first */
	pp.nqueued--;
	pp.nrunning++;
	job_start(j);
	if (at != 0)
		job_started_at(j, at);
}

/*
 * A job whose first step is long has begun, but its "started" waits for
 * the batch: its worker's record page says so, and from then on the job
 * is running and its time limit counts.
 */
static void
proc_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pworker *w;
	struct job *j;
	uint64_t id;
	bool waiting = false;

	TAILQ_FOREACH(w, &pp.workers, link) {
		id = atomic_load_explicit(&w->shm->started,
		                          memory_order_acquire);
		if (id != 0 && id != atomic_load(&w->shm->ended) &&
		    (j = proc_job(w, id)) != NULL && j->state == PS_QUEUED)
			proc_started(w, j, w->pid, w->served + 1,
			             atomic_load(&w->shm->began_us));
		/* until every job given out is known to have started */
		TAILQ_FOREACH(j, &w->jobs.q, link)
			if (j->state == PS_QUEUED)
				waiting = true;
	}
	if (waiting)
		evtimer_add(pp.watch_ev, &proc_watch_every);
}

static void
proc_give(struct pworker *w, struct job *j)
{
	bool stream;

	worker_jobs_add(&w->jobs, j, w);
	w->given++;
	if (w->idle != NULL)
		evtimer_del(w->idle);
	/* a streamed standard input: the pipe's read end goes with the run */
	stream = job_stdin(j) >= 0 && conn_pass_fd(w->conn, job_stdin(j)) == 0;
	worker_msg_run(conn_out(w->conn), j, stream);
	conn_dirty(w->conn);
	if (!evtimer_pending(pp.watch_ev, NULL))
		evtimer_add(pp.watch_ev, &proc_watch_every);
}

/* j leaves its worker's list: it ended, came back or the worker died. */
static void
proc_take(struct pworker *w, struct job *j)
{
	worker_jobs_remove(&w->jobs, j, &w->g->nrevoking);
	/* a user's worker is kept warm while it is used */
	if (w->idle != NULL && w->jobs.n == 0 && !w->retiring)
		evtimer_add(w->idle, &pp.user_idle);
}

/* A user's worker without a job for user-worker-idle seconds leaves. */
static void
proc_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pworker *w = arg;

	if (w->jobs.n > 0 || w->retiring)
		return;
	log_debug("process worker %d of uid %u (pid %d): idle, retired",
	          w->index, (unsigned)w->g->uid, (int)w->pid);
	w->retiring = true;
	conn_hangup(w->conn);
}

/*
 * A worker that has been given max-jobs-per-worker jobs takes no more:
 * it leaves after its last one, and a new worker takes its index now.
 */
static void
proc_recycle(struct pworker *w)
{
	w->retiring = true;
	log_debug("process worker %d (pid %d): recycled after %u jobs",
	          w->index, (int)w->pid, w->given);
	if (w->jobs.n == 0)
		conn_hangup(w->conn);
	proc_fill();
}

/* A pool worker that may be given jobs now. */
static bool
proc_takes_jobs(const struct pworker *w)
{
	return w->index >= 0 && !w->retiring && w->jobs.nrevoking == 0 &&
	       w->jobs.n < PROC_DEPTH;
}

/*
 * An idle worker never waits while another of its group holds jobs it
 * has not started: for each idle worker not yet covered by jobs on their
 * way back, ask the worker with the most waiting jobs for the later half.
 * Its first job may be running and is never asked for.
 */
static void
proc_steal(struct pgroup *g)
{
	struct pworker *w, *from;
	size_t idle = 0, waiting, most;

	if (!TAILQ_EMPTY(&g->queue))
		return;
	TAILQ_FOREACH(w, &pp.workers, link)
		if (w->g == g && proc_takes_jobs(w) && w->jobs.n == 0)
			idle++;
	while (idle > g->nrevoking) {
		from = NULL;
		most = 0;
		TAILQ_FOREACH(w, &pp.workers, link) {
			if (w->g != g || w->index < 0 ||
			    w->jobs.nrevoking > 0 || w->jobs.n < 2)
				continue;
			if ((waiting = w->jobs.n - 1) > most) {
				most = waiting;
				from = w;
			}
		}
		if (from == NULL)
			return;
		worker_jobs_revoke(&from->jobs, conn_out(from->conn),
		                   (most + 1) / 2, &g->nrevoking);
		conn_dirty(from->conn);
	}
}

/*
 * A new worker for a user's group, when it has fewer than the pool's size
 * and all it has are busy: the smallest index not in use.
 */
static struct pworker *
proc_user_spawn(struct pgroup *g, const struct pworker *best)
{
	bool have[POOL_MAX_PROCESSES] = {false};
	const struct pworker *w;
	int i, live = 0;

	if (best != NULL && best->jobs.n == 0)
		return NULL;
	TAILQ_FOREACH(w, &pp.workers, link) {
		if (w->g == g && w->index >= 0 && !w->retiring) {
			have[w->index] = true;
			live++;
		}
	}
	if (live >= pp.size)
		return NULL;
	for (i = 0; have[i]; i++)
		;
	return proc_spawn(g, i);
}

/* A job that cannot run as its owner: no worker of the user's starts. */
static void
proc_user_refuse(struct pgroup *g, struct job *j, const char *why)
{
	TAILQ_REMOVE(&g->queue, j, link);
	pp.nqueued--;
	task_fail(&j->ctx,
	          "cannot start a worker process as uid %u to run it: %s",
	          (unsigned)g->uid, why);
	job_finish(j, PS_FAILED);
}

/* Hand a group's queued jobs to its workers: each to the one with the
 * fewest; a user's group starts workers as it needs them. */
static void
proc_dispatch_group(struct pgroup *g)
{
	struct pworker *w, *best;
	struct job *j;

	while ((j = TAILQ_FIRST(&g->queue)) != NULL) {
		best = NULL;
		TAILQ_FOREACH(w, &pp.workers, link) {
			if (w->g == g && proc_takes_jobs(w) &&
			    (best == NULL || w->jobs.n < best->jobs.n))
				best = w;
		}
		errno = 0;
		if (g->user && !pp.stopping && !loop_stopping()) {
			if ((w = proc_user_spawn(g, best)) != NULL) {
				best = w;
			} else if (best == NULL && g->nworkers == 0) {
				proc_user_refuse(g, j,
				                 errno != 0
				                     ? strerror(errno)
				                     : "the pool has no "
				                       "worker processes");
				continue;
			}
		}
		if (best == NULL)
			break;
		TAILQ_REMOVE(&g->queue, j, link);
		proc_give(best, j);
		if (pp.max_jobs > 0 && best->given >= (uint32_t)pp.max_jobs)
			proc_recycle(best);
	}
	proc_steal(g);
}

/*
 * A user's group with neither workers nor jobs is forgotten: only when
 * its last worker has gone (proc_closed, called from the loop), so that
 * no dispatch above is walking it; one whose workers never started stays
 * until then, or until concd stops.
 */
static void
proc_user_gc(struct pgroup *g)
{
	if (!g->user || g->nworkers > 0 || !TAILQ_EMPTY(&g->queue))
		return;
	TAILQ_REMOVE(&pp.users, g, link);
	free(g);
}

static void
proc_dispatch(void)
{
	struct pgroup *g;

	proc_dispatch_group(&pp.pool);
	TAILQ_FOREACH(g, &pp.users, link)
		proc_dispatch_group(g);
}

static void
proc_on_end(struct pworker *w, struct job *j, const struct proto_msg *m)
{
	proc_take(w, j);
	if (j->state == PS_RUNNING)
		pp.nrunning--;
	else
		pp.nqueued--;
	job_finish(j, worker_msg_end(j, m));
}

/* A job the worker gave back unstarted: first in line again. */
static void
proc_on_returned(struct pworker *w, struct job *j)
{
	proc_take(w, j);
	if (atomic_load(&j->ctx.cancel)) {
		pp.nqueued--;
		job_finish(j, PS_CANCELLED);
		return;
	}
	TAILQ_INSERT_HEAD(&w->g->queue, j, link);
}

static void
proc_dispatch_msg(struct conn *c, const struct proto_msg *m)
{
	struct pworker *w = conn_arg(c);
	struct job *j = proc_job(w, proto_u64(m, PF_JOB, 0));

	if (j == NULL)
		return; /* cancelled meanwhile, or a stray message */
	switch (m->type) {
	case PROTO_STARTED:
		proc_started(w, j, (pid_t)proto_u64(m, PF_PID, 0),
		             (uint32_t)proto_u64(m, PF_SERVED, 0),
		             proto_u64(m, PF_STARTED, 0));
		break;
	case PROTO_PROGRESS:
		worker_msg_progress(j, m);
		break;
	case PROTO_OUTPUT:
		/*
		 * Its client is behind: the worker's output waits in the
		 * socket, the worker in its write, the command on its pipe.
		 */
		if (worker_msg_output(j, m))
			conn_hold_reads(c, true);
		break;
	case PROTO_END:
	case PROTO_RETURNED:
		if (m->type == PROTO_END) {
			conn_hold_reads(c, false);
			proc_on_end(w, j, m);
		} else {
			proc_on_returned(w, j);
		}
		if (w->retiring && w->jobs.n == 0)
			conn_hangup(w->conn);
		proc_dispatch();
		break;
	default:
		break;
	}
}

static const char *
describe_status(int status, char *buf, size_t size)
{
	if (WIFSIGNALED(status))
		snprintf(buf, size, "was killed by signal %d (%s)",
		         WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d",
		         WEXITSTATUS(status));
	else
		snprintf(buf, size, "stopped");
	return buf;
}

/*
 * A job the dead worker w had run ends: cancelled (or timed out) if that
 * was asked for, else failed with worker_died.  running: it was inside
 * the job, rather than past its end.
 */
static void
proc_lost(struct pworker *w, struct job *j, const char *how, bool running)
{
	if (j->state == PS_RUNNING)
		pp.nrunning--;
	else
		pp.nqueued--;
	j->worker = w->index;
	j->tid = w->pid;
	if (atomic_load(&j->ctx.cancel)) {
		if (j->ctx.error == NULL)
			task_fail(&j->ctx, "process worker %d (pid %d) %s",
			          w->index, (int)w->pid, how);
		job_finish(j, PS_CANCELLED);
		return;
	}
	task_fail(&j->ctx, "process worker %d (pid %d) %s%s", w->index,
	          (int)w->pid, how,
	          running ? "" : " before the job's end reached concd");
	j->err = PE_WORKER_DIED;
	job_finish(j, PS_FAILED);
}

/*
 * The worker's socket closed: it exited, crashed or was retired.  It runs
 * its jobs in order, so those up to the one its record page says it
 * started last have run and end here; the others never started and go
 * back to the front of the queue, unless they were cancelled.  Ending a
 * job may cancel others (a fail_fast gather), some of them this worker's:
 * those not yet ended are marked PROC_GONE, for proc_cancel to leave.
 */
static void
proc_closed(struct conn *c, void *arg)
{
	struct pworker *w = arg;
	struct job_queue gone = TAILQ_HEAD_INITIALIZER(gone);
	struct job_queue back = TAILQ_HEAD_INITIALIZER(back);
	struct pgroup *g = w->g;
	struct job *j, *next;
	uint64_t started, ended;
	bool ran, stillborn;
	char how[96];
	int status = 0;

	if (w->reaped) {
		status = w->status;
	} else {
		kill(w->pid, SIGKILL); /* in case it only closed the socket */
		while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	describe_status(status, how, sizeof(how));
	if (pp.stopping && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		log_debug("process worker %d (pid %d) exited", w->index,
		          (int)w->pid);
	else if (pp.stopping)
		log_warnx("process worker %d (pid %d) %s while stopping",
		          w->index, (int)w->pid, how);
	TAILQ_REMOVE(&pp.workers, w, link);
	started = atomic_load_explicit(&w->shm->started, memory_order_acquire);
	ended = atomic_load_explicit(&w->shm->ended, memory_order_acquire);
	ran = started != 0 && proc_job(w, started) != NULL;
	/*
	 * A user's worker that died before it began a job (it could not
	 * start, or take the user's identity) fails its jobs: another in
	 * its place would do the same.
	 */
	stillborn = g->user && started == 0 && w->served == 0;
	while ((j = TAILQ_FIRST(&w->jobs.q)) != NULL) {
		proc_take(w, j);
		j->xdata = PROC_GONE;
		TAILQ_INSERT_TAIL(&gone, j, link);
	}
	/* first those that go back, so every job is somewhere when the
	 * others end */
	for (j = ran ? worker_jobs_find(&gone, started) : TAILQ_FIRST(&gone);
	     j != NULL; j = next) {
		next = TAILQ_NEXT(j, link);
		if ((ran && j->id == started) || atomic_load(&j->ctx.cancel) ||
		    stillborn)
			continue;
		TAILQ_REMOVE(&gone, j, link);
		TAILQ_INSERT_TAIL(&back, j, link);
	}
	while ((j = TAILQ_LAST(&back, job_queue)) != NULL) {
		TAILQ_REMOVE(&back, j, link);
		j->xdata = NULL;
		TAILQ_INSERT_HEAD(&g->queue, j, link);
	}
	while ((j = TAILQ_FIRST(&gone)) != NULL) {
		TAILQ_REMOVE(&gone, j, link);
		j->xdata = NULL;
		if (stillborn && !atomic_load(&j->ctx.cancel)) {
			pp.nqueued--;
			task_fail(&j->ctx,
			          "its worker process (pid %d, as uid %u) %s "
			          "before it began a job",
			          (int)w->pid, (unsigned)g->uid, how);
			j->err = PE_WORKER_DIED;
			job_finish(j, PS_FAILED);
		} else if (ran) {
			if (j->id == started)
				ran = false;
			proc_lost(w, j, how, !ran && ended != started);
		} else {
			pp.nqueued--;
			job_finish(j, PS_CANCELLED);
		}
	}
	if (g->user && !w->retiring && !pp.stopping)
		log_warnx("process worker %d of uid %u (pid %d) %s", w->index,
		          (unsigned)g->uid, (int)w->pid, how);
	else if (w->index >= 0 && !w->retiring && !pp.stopping)
		log_warnx("process worker %d (pid %d) %s%s", w->index,
		          (int)w->pid, how,
		          loop_stopping() ? "" : "; starting another");
	event_free(w->grace);
	if (w->idle != NULL)
		event_free(w->idle);
	munmap(w->shm, sizeof(*w->shm));
	free(w);
	g->nworkers--;
	if (!pp.stopping) {
		proc_fill();
		proc_dispatch();
		proc_user_gc(g);
	}
}

/* The workers that run j: the pool's, or its owner's (made if create). */
static struct pgroup *
proc_group(struct job *j, bool create)
{
	struct pgroup *g;

	if (!(j->task->traits & TASK_NOT_AS_OWNER) || !task_as_owner(&j->ctx))
		return &pp.pool;
	TAILQ_FOREACH(g, &pp.users, link)
		if (g->uid == j->uid)
			return g;
	if (!create || (g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	g->user = true;
	g->uid = j->uid;
	TAILQ_INIT(&g->queue);
	TAILQ_INSERT_TAIL(&pp.users, g, link);
	return g;
}

static void
proc_submit(struct job *j)
{
	struct pgroup *g = proc_group(j, true);
	struct pworker *w;

	if (g == NULL) {
		task_fail(&j->ctx, "out of memory");
		job_finish(j, PS_FAILED);
		return;
	}
	pp.nqueued++;
	if (j->fresh) {
		if ((w = proc_spawn(g, -1)) == NULL) {
			pp.nqueued--;
			task_fail(&j->ctx,
			          "cannot start a fresh worker process");
			job_finish(j, PS_FAILED);
			return;
		}
		proc_give(w, j);
		return;
	}
	TAILQ_INSERT_TAIL(&g->queue, j, link);
	proc_dispatch();
}

static void
proc_cancel(struct job *j)
{
	static const struct timeval grace = {PROC_GRACE_S, 0};
	static const struct timeval wind_down = {
	    PROC_GRACE_S + TASK_WIND_DOWN_MS / 1000, 0};
	struct pworker *w = j->xdata;
	struct proto_enc e;

	atomic_store(&j->ctx.cancel, true);
	if (w == PROC_GONE)
		return; /* its worker died: proc_closed ends it */
	if (w != NULL)
		conn_hold_reads(w->conn, false); /* it must hear the cancel */
	if (w == NULL) {
		/* still in our queue: it never starts */
		struct pgroup *g = proc_group(j, false);

		TAILQ_REMOVE(&g->queue, j, link);
		pp.nqueued--;
		job_finish(j, PS_CANCELLED);
		return;
	}
	if (proc_has_started(w, j))
		atomic_store_explicit(&w->shm->cancel, j->id,
		                      memory_order_release);
	proto_enc_begin(&e, conn_out(w->conn), PROTO_CANCEL, 0);
	proto_enc_u64(&e, PF_JOB, j->id);
	proto_enc_end(&e);
	conn_dirty(w->conn);
	if (!proc_has_started(w, j))
		return; /* its worker drops it from its queue */
	/* a stopped worker, or a job stuck in a step, never hears it */
	if (proc_stopped(w->pid))
		proc_kill_for(w, j, "cannot hear its cancel (worker stopped)");
	else
		evtimer_add(w->grace, j->task->traits & TASK_WINDS_DOWN
		                          ? &wind_down
		                          : &grace);
}

/* The job's client has caught up: read what its worker wrote. */
static void
proc_resume(struct job *j)
{
	struct pworker *w = j->xdata;

	if (w != NULL && w != PROC_GONE)
		conn_hold_reads(w->conn, false);
}

int
pool_process_init(int n, const char *plugin_dir, int max_jobs, int busy_poll)
{
	pp.max_jobs = max_jobs;
	snprintf(pp.busy_poll, sizeof(pp.busy_poll), "%d", busy_poll);
	proc_find_exe();
	if (plugin_dir != NULL)
		pp.plugin_dir = strdup(plugin_dir);
	pp.fill_ev = evtimer_new(loop_base, proc_fill_cb, NULL);
	pp.watch_ev = evtimer_new(loop_base, proc_watch_cb, NULL);
	if (pp.fill_ev == NULL || pp.watch_ev == NULL)
		return -1;
	if (n < 0 || n > POOL_MAX_PROCESSES)
		return -1;
	pp.size = n;
	return proc_fill() == 0 ? 0 : -1; /* at start-up, all or nothing */
}

void
pool_process_set_max_jobs(int n)
{
	pp.max_jobs = n;
}

/* From then on: a worker idle now keeps the time it was given. */
void
pool_process_set_user_idle(int seconds)
{
	pp.user_idle.tv_sec = seconds;
	pp.user_idle.tv_usec = 0;
}

/* Workers that cannot start yet are tried again until they do. */
int
pool_process_resize(int n)
{
	struct pworker *w;

	if (n < 0 || n > POOL_MAX_PROCESSES)
		return -1;
	pp.size = n;
	TAILQ_FOREACH(w, &pp.workers, link) {
		if (w->index >= n && !w->retiring) {
			/* no new jobs; it leaves once its last one ends */
			w->retiring = true;
			if (w->jobs.n == 0)
				conn_hangup(w->conn);
		}
	}
	proc_fill();
	proc_dispatch();
	return 0;
}

int
pool_process_size(void)
{
	return pp.size;
}

void
pool_process_foreach(void (*fn)(const struct pool_worker_info *, void *),
                     void *arg)
{
	bool have[POOL_MAX_PROCESSES] = {false};
	struct pool_worker_info info;
	struct pworker *w;
	int i;

	TAILQ_FOREACH(w, &pp.workers, link) {
		struct job *j;

		memset(&info, 0, sizeof(info));
		info.exec = PX_PROCESS;
		info.index = w->index;
		info.user = w->g->user;
		info.uid = w->g->uid;
		info.id = (uint64_t)w->pid;
		info.served = w->served;
		info.since = w->spawned;
		info.state = w->retiring ? "retiring" : "idle";
		TAILQ_FOREACH(j, &w->jobs.q, link) {
			if (j->state == PS_RUNNING) {
				info.job = j->id;
				info.state = w->retiring ? "retiring" : "busy";
			}
		}
		if (w->index < 0)
			info.state = "fresh";
		else if (proc_stopped(w->pid))
			info.state = "stopped";
		if (w->g == &pp.pool && w->index >= 0 && !w->retiring)
			have[w->index] = true;
		fn(&info, arg);
	}
	/* the pool's places that no worker holds: being started again */
	for (i = 0; i < pp.size; i++) {
		if (have[i])
			continue;
		memset(&info, 0, sizeof(info));
		info.exec = PX_PROCESS;
		info.index = i;
		info.since = loop_now_us();
		info.state = "missing";
		fn(&info, arg);
	}
}

static size_t
proc_running(void)
{
	return pp.nrunning;
}

static size_t
proc_queued(void)
{
	return pp.nqueued;
}

/*
 * At shutdown, idle workers are told to go by the end of their socket and
 * exit as a program does, running its exit handlers (a sanitizer's leak
 * check among them); proc_closed kills the others, and one that has not
 * exited within PROC_EXIT_MS.
 */
static void
proc_let_exit(void)
{
	const struct timespec tick = {0, 1000000}; /* 1 ms */
	struct pworker *w;
	bool waiting;
	int ms;

	TAILQ_FOREACH(w, &pp.workers, link)
		if (w->jobs.n == 0)
			shutdown(w->fd, SHUT_WR);
	for (ms = 0; ms < PROC_EXIT_MS; ms++) {
		waiting = false;
		TAILQ_FOREACH(w, &pp.workers, link) {
			if (w->jobs.n > 0 || w->reaped)
				continue;
			if (waitpid(w->pid, &w->status, WNOHANG) == w->pid)
				w->reaped = true;
			else
				waiting = true;
		}
		if (!waiting)
			break;
		nanosleep(&tick, NULL);
	}
}

static void
proc_shutdown(void)
{
	struct pworker *w;
	struct pgroup *g;

	pp.stopping = true;
	proc_let_exit();
	while ((w = TAILQ_FIRST(&pp.workers)) != NULL)
		conn_close(w->conn); /* proc_closed reaps and frees it */
	while ((g = TAILQ_FIRST(&pp.users)) != NULL) {
		TAILQ_REMOVE(&pp.users, g, link);
		free(g);
	}
	if (pp.fill_ev != NULL)
		event_free(pp.fill_ev);
	if (pp.watch_ev != NULL)
		event_free(pp.watch_ev);
	pp.fill_ev = pp.watch_ev = NULL;
	free(pp.plugin_dir);
	pp.plugin_dir = NULL;
}

const struct executor process_executor = {
    .submit = proc_submit,
    .cancel = proc_cancel,
    .resume = proc_resume,
    .shutdown = proc_shutdown,
    .running = proc_running,
    .queued = proc_queued,
};
