/*
 * pool_process.c -- the warm process pool.  M worker processes are
 * started at start-up (and on resize) by re-executing concd in its worker
 * role with posix_spawn, so starting one costs the same however large
 * the daemon has grown.  Each is connected by a socketpair that the loop
 * watches like any client connection, with the same frames and codec.
 *
 * Jobs wait in one queue here; a worker is given several at once when
 * the queue is deep (so a stream of small jobs costs one write per
 * batch), one at a time otherwise (so a long job does not hold others
 * back).  A worker that dies fails only the job it was running; the jobs
 * it had not started go back to the front of the queue, and a new worker
 * takes its place.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "concd.h"

#define PROC_DEPTH    64   /* jobs given to one worker ahead of time */
#define PROC_SHORT_US 2000 /* jobs shorter than this are batched */
#define PROC_GRACE_S  5    /* a cancelled job's time to stop */

extern char **environ;

struct pworker {
	int index; /* -1: a fresh worker for one job */
	pid_t pid;
	struct conn *conn;
	struct job_queue jobs; /* given to it, in order */
	size_t njobs;
	uint32_t served;
	uint32_t given; /* jobs handed to it, for max-jobs-per-worker */
	uint64_t spawned;
	bool retiring;
	struct event *grace; /* a cancelled job that must end by then */
	TAILQ_ENTRY(pworker) link;
};
TAILQ_HEAD(pworker_list, pworker);

static struct {
	struct pworker_list workers;     /* the pool and fresh ones */
	int size;                        /* workers wanted in the pool */
	uint64_t run_us[TASK_MAX_TASKS]; /* a task's recent job length */
	int max_jobs;                    /* a worker is replaced after these */
	char *plugin_dir;
	char busy_poll[16]; /* --busy-poll, for warm workers */
	char exe[PATH_MAX]; /* concd's own path, see proc_exe */
	dev_t exe_dev;
	ino_t exe_ino;
	struct job_queue queue;
	size_t nqueued, nrunning;
	bool stopping;
} pp = {
    .workers = TAILQ_HEAD_INITIALIZER(pp.workers),
    .queue = TAILQ_HEAD_INITIALIZER(pp.queue),
};

static void proc_dispatch_msg(struct conn *, const struct proto_msg *);
static void proc_closed(struct conn *, void *);
static void proc_dispatch(void);
static void proc_grace_cb(evutil_socket_t, short, void *);

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

static struct pworker *
proc_spawn(int index)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct pworker *w;
	char idx[16];
	char *argv[10];
	sigset_t none;
	int sv[2], rc, n = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn("process pool: socketpair");
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
	if (pp.plugin_dir != NULL) {
		argv[n++] = (char *)"--plugin-dir";
		argv[n++] = pp.plugin_dir;
	}
	argv[n] = NULL;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], WORKER_FD);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr,
	                         POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		rc = ENOMEM;
	} else {
		rc =
		    posix_spawn(&w->pid, proc_exe(), &fa, &attr, argv, environ);
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	if (rc != 0) {
		errno = rc;
		log_warn("process pool: cannot start worker %d", index);
		close(sv[0]);
		free(w);
		return NULL;
	}
	evutil_make_socket_nonblocking(sv[0]);
	w->index = index;
	w->spawned = server_now_us();
	if ((w->grace = evtimer_new(server_base, proc_grace_cb, w)) == NULL)
		abort(); /* out of memory */
	TAILQ_INIT(&w->jobs);
	if ((w->conn = conn_new_with(sv[0], &proc_handler, w)) == NULL) {
		close(sv[0]);
		kill(w->pid, SIGKILL);
		waitpid(w->pid, NULL, 0);
		event_free(w->grace);
		free(w);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&pp.workers, w, link);
	log_debug("process worker %d: pid %d", index, (int)w->pid);
	return w;
}

static void
proc_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pworker *w = arg;
	struct job *j;

	TAILQ_FOREACH(j, &w->jobs, link)
	{
		if (j->state == PS_RUNNING && atomic_load(&j->ctx.cancel)) {
			log_warnx(
			    "process worker %d (pid %d): job %llu did not "
			    "stop within %d s of its cancel; killing it",
			    w->index, (int)w->pid, (unsigned long long)j->id,
			    PROC_GRACE_S);
			kill(w->pid, SIGKILL); /* proc_closed does the rest */
			return;
		}
	}
}

static void
proc_give(struct pworker *w, struct job *j)
{
	struct proto_enc e;

	TAILQ_INSERT_TAIL(&w->jobs, j, link);
	w->njobs++;
	w->given++;
	j->xdata = w;
	proto_enc_begin(&e, conn_out(w->conn), PROTO_RUN, 0);
	proto_enc_u64(&e, PF_JOB, j->id);
	proto_enc_cstr(&e, PF_TASK, j->task->name);
	if (j->args_len > 0)
		proto_enc_raw(&e, PF_ARGS, j->args, j->args_len);
	proto_enc_end(&e);
	conn_dirty(w->conn);
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
	if (w->njobs == 0)
		conn_hangup(w->conn);
	proc_spawn(w->index);
}

/* Hand queued jobs to pool workers. */
static void
proc_dispatch(void)
{
	struct pworker *w, *best;
	struct job *j;
	size_t depth;
	int nworkers = 0;

	TAILQ_FOREACH(w, &pp.workers, link)
	if (w->index >= 0 && !w->retiring)
		nworkers++;
	while ((j = TAILQ_FIRST(&pp.queue)) != NULL) {
		/*
		 * A deep queue of short jobs goes out in batches (a write per
		 * batch); long jobs go one at a time to idle workers, so none
		 * waits behind another while a worker is free.
		 */
		depth = pp.nqueued > (size_t)nworkers &&
		                pp.run_us[task_index(j->task)] < PROC_SHORT_US
		            ? PROC_DEPTH
		            : 1;
		best = NULL;
		TAILQ_FOREACH(w, &pp.workers, link)
		{
			if (w->index < 0 || w->retiring || w->njobs >= depth)
				continue;
			if (best == NULL || w->njobs < best->njobs)
				best = w;
		}
		if (best == NULL)
			return;
		TAILQ_REMOVE(&pp.queue, j, link);
		proc_give(best, j);
		if (pp.max_jobs > 0 && best->given >= (uint32_t)pp.max_jobs)
			proc_recycle(best);
	}
}

static struct job *
proc_job(struct pworker *w, uint64_t id)
{
	struct job *j;

	TAILQ_FOREACH(j, &w->jobs, link)
	if (j->id == id)
		return j;
	return NULL;
}

static void
proc_on_end(struct pworker *w, struct job *j, const struct proto_msg *m)
{
	size_t len;
	const char *state = proto_str(m, PF_STATE, &len);
	int s = state != NULL ? proto_state_lookup(state, len) : -1;

	TAILQ_REMOVE(&w->jobs, j, link);
	w->njobs--;
	j->xdata = NULL;
	if (j->state == PS_RUNNING)
		pp.nrunning--;
	else
		pp.nqueued--;
	if (s == PS_SUCCEEDED && proto_has(m, PF_RESULT)) {
		msgpack_packer pk;

		j->ctx.result.len = 0;
		msgpack_packer_init(&pk, &j->ctx.result, pbuf_write_cb);
		msgpack_pack_object(&pk, m->f[PF_RESULT]);
	} else if (proto_has(m, PF_MESSAGE)) {
		char msg[1024];

		free(j->ctx.error);
		j->ctx.error =
		    strdup(proto_strcpy(m, PF_MESSAGE, msg, sizeof(msg)));
	}
	if (s < PS_SUCCEEDED)
		s = PS_FAILED;
	if (j->started > 0) {
		uint64_t *avg = &pp.run_us[task_index(j->task)];
		uint64_t took = server_now_us() - j->started;

		*avg = (*avg * 7 + took) / 8;
	}
	job_finish(j, (enum proto_state)s);
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
		pp.nqueued--;
		pp.nrunning++;
		j->worker = w->index;
		j->tid = (pid_t)proto_u64(m, PF_PID, 0);
		j->served = w->served = (uint32_t)proto_u64(m, PF_SERVED, 0);
		job_start(j);
		j->started = proto_u64(m, PF_STARTED, j->started);
		break;
	case PROTO_PROGRESS: {
		char msg[256];

		job_progress(j, proto_u64(m, PF_DONE, 0),
		             proto_u64(m, PF_TOTAL, 0),
		             proto_has(m, PF_MSG)
		                 ? proto_strcpy(m, PF_MSG, msg, sizeof(msg))
		                 : NULL);
		break;
	}
	case PROTO_OUTPUT: {
		size_t len;
		const char *stream = proto_str(m, PF_STREAM, &len);
		const msgpack_object *d = &m->f[PF_DATA];

		if (d->type == MSGPACK_OBJECT_BIN)
			job_output(j,
			           stream != NULL && len == 6 &&
			                   memcmp(stream, "stderr", 6) == 0
			               ? 2
			               : 1,
			           d->via.bin.ptr, d->via.bin.size);
		/*
		 * Its client is behind: the worker's output waits in the
		 * socket, the worker in its write, the command on its pipe.
		 */
		if (job_output_held(j))
			conn_hold_reads(c, true);
		break;
	}
	case PROTO_END:
		conn_hold_reads(c, false);
		proc_on_end(w, j, m);
		if (w->retiring && w->njobs == 0)
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

/* The worker's socket closed: it exited, crashed or was retired. */
static void
proc_closed(struct conn *c, void *arg)
{
	struct pworker *w = arg;
	struct job *j;
	char how[96];
	int status = 0;

	kill(w->pid, SIGKILL); /* in case it only closed the socket */
	while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
		;
	describe_status(status, how, sizeof(how));
	TAILQ_REMOVE(&pp.workers, w, link);
	/* the job it ran fails; those it had not started go back */
	while ((j = TAILQ_LAST(&w->jobs, job_queue)) != NULL) {
		TAILQ_REMOVE(&w->jobs, j, link);
		j->xdata = NULL;
		if (j->state == PS_RUNNING) {
			pp.nrunning--;
			task_fail(&j->ctx, "process worker %d (pid %d) %s",
			          w->index, (int)w->pid, how);
			j->err = PE_WORKER_DIED;
			job_finish(j, atomic_load(&j->ctx.cancel) ? PS_CANCELLED
			                                          : PS_FAILED);
		} else if (atomic_load(&j->ctx.cancel)) {
			pp.nqueued--;
			job_finish(j, PS_CANCELLED);
		} else {
			TAILQ_INSERT_HEAD(&pp.queue, j, link);
		}
	}
	if (w->index >= 0 && !w->retiring && !pp.stopping)
		log_warnx("process worker %d (pid %d) %s; starting another",
		          w->index, (int)w->pid, how);
	if (w->index >= 0 && !w->retiring && !pp.stopping && w->index < pp.size)
		proc_spawn(w->index);
	event_free(w->grace);
	free(w);
	if (!pp.stopping)
		proc_dispatch();
}

static void
proc_submit(struct job *j)
{
	struct pworker *w;

	pp.nqueued++;
	if (j->fresh) {
		if ((w = proc_spawn(-1)) == NULL) {
			pp.nqueued--;
			task_fail(&j->ctx,
			          "cannot start a fresh worker process");
			job_finish(j, PS_FAILED);
			return;
		}
		proc_give(w, j);
		return;
	}
	TAILQ_INSERT_TAIL(&pp.queue, j, link);
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
	if (w != NULL)
		conn_hold_reads(w->conn, false); /* it must hear the cancel */
	if (w == NULL) {
		/* still in our queue: it never starts */
		TAILQ_REMOVE(&pp.queue, j, link);
		pp.nqueued--;
		job_finish(j, PS_CANCELLED);
		return;
	}
	proto_enc_begin(&e, conn_out(w->conn), PROTO_CANCEL, 0);
	proto_enc_u64(&e, PF_JOB, j->id);
	proto_enc_end(&e);
	conn_dirty(w->conn);
	/* a job stuck in a step never hears it: its worker is replaced */
	if (j->state == PS_RUNNING)
		evtimer_add(w->grace, j->task->traits & TASK_WINDS_DOWN
		                          ? &wind_down
		                          : &grace);
}

/* The job's client has caught up: read what its worker wrote. */
static void
proc_resume(struct job *j)
{
	struct pworker *w = j->xdata;

	if (w != NULL)
		conn_hold_reads(w->conn, false);
}

int
pool_process_init(int n, const char *plugin_dir, int max_jobs, int busy_poll)
{
	pp.size = n;
	pp.max_jobs = max_jobs;
	snprintf(pp.busy_poll, sizeof(pp.busy_poll), "%d", busy_poll);
	proc_find_exe();
	if (plugin_dir != NULL)
		pp.plugin_dir = strdup(plugin_dir);
	return pool_process_resize(n);
}

void
pool_process_set_max_jobs(int n)
{
	pp.max_jobs = n;
}

int
pool_process_resize(int n)
{
	struct pworker *w;
	bool have[POOL_MAX_PROCESSES] = {false};
	int i;

	if (n < 0 || n > POOL_MAX_PROCESSES)
		return -1;
	pp.size = n;
	TAILQ_FOREACH(w, &pp.workers, link)
	{
		if (w->index < 0 || w->retiring)
			continue;
		if (w->index >= n) {
			/* no new jobs; it leaves once its last one ends */
			w->retiring = true;
			if (w->njobs == 0)
				conn_hangup(w->conn);
		} else
			have[w->index] = true;
	}
	for (i = 0; i < n; i++)
		if (!have[i] && proc_spawn(i) == NULL)
			return -1;
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
	struct pworker *w;
	struct pool_worker_info info;

	TAILQ_FOREACH(w, &pp.workers, link)
	{
		struct job *j;

		memset(&info, 0, sizeof(info));
		info.exec = PX_PROCESS;
		info.index = w->index;
		info.id = (uint64_t)w->pid;
		info.served = w->served;
		info.since = w->spawned;
		info.state = w->retiring ? "retiring" : "idle";
		TAILQ_FOREACH(j, &w->jobs, link)
		{
			if (j->state == PS_RUNNING) {
				info.job = j->id;
				info.state = w->retiring ? "retiring" : "busy";
			}
		}
		if (w->index < 0)
			info.state = "fresh";
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

static void
proc_shutdown(void)
{
	struct pworker *w;

	pp.stopping = true;
	while ((w = TAILQ_FIRST(&pp.workers)) != NULL)
		conn_close(w->conn); /* proc_closed reaps and frees it */
	free(pp.plugin_dir);
	pp.plugin_dir = NULL;
}

const struct executor process_executor = {
    .kind = PX_PROCESS,
    .name = "process",
    .submit = proc_submit,
    .cancel = proc_cancel,
    .resume = proc_resume,
    .shutdown = proc_shutdown,
    .running = proc_running,
    .queued = proc_queued,
};
