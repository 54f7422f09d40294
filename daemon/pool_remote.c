/*
 * pool_remote.c -- the remote executor: warm concd workers on the nodes
 * of a Slurm cluster.  `pool add --slurm N` asks Slurm for an allocation
 * of N tasks (salloc --no-shell, run on the loop: it may wait for Slurm
 * as long as Slurm makes it), then starts one worker in each task, an
 * `srun --jobid=J --ntasks=1 ... concd --worker I --stdio`, whose
 * standard input and output (one socketpair, relayed by srun) carry the
 * worker protocol as a local worker's socketpair does (worker_msg.c).
 * Its first frame is a hello with its protocol version, node and pid; a
 * worker that speaks another protocol is refused.
 *
 * Jobs wait in one queue here and go to the ready worker with the
 * fewest, up to REMOTE_DEPTH each, so that a stream of small jobs crosses
 * srun's relay in batches; a worker that falls idle while another holds
 * jobs it has not begun has them asked back for it (revoke), as in
 * pool_process.c.  A worker that goes away (its srun ends, the
 * node is lost, the allocation is cancelled) fails only the jobs it had
 * started, with node_failed naming its node; those it had not started go
 * back to the queue (one whose start had not reached concd may thus run
 * again).  Its row stays in the pool, lost.
 *
 * pool_remote_remove, slurm.idle-release seconds without work and concd's
 * stop end allocations the same way: no new jobs, the workers finish
 * theirs, their input ends and they exit, then the allocation is
 * cancelled.  Everything runs as concd's user.
 */
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "executor.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "pool_remote.h"
#include "reap.h"
#include "slurm.h"
#include "spawner.h"
#include "task.h"
#include "task_int.h"
#include "worker_msg.h"

#define REMOTE_DEPTH    256  /* jobs given to one worker ahead of time */
#define REMOTE_GRACE_S  5    /* a cancelled job's time to stop */
#define REMOTE_EXIT_MS  5000 /* a worker's srun's time to end */
#define REMOTE_DEAD_MAX 64   /* rows of lost or refused workers kept */
#define REMOTE_OUT_MAX  4096 /* bytes of salloc's output kept */

enum rstate {
	RW_PENDING,  /* its allocation is not granted yet */
	RW_STARTING, /* srun started, no hello yet */
	RW_READY,
	RW_DRAINING, /* takes no new job; exits after its last */
	RW_EXITING,  /* its input ended: waiting for its srun */
	RW_LOST,     /* went away with the pool still wanting it */
	RW_REFUSED,  /* spoke another protocol */
	RW_FAILED,   /* its allocation or its srun could not start */
};

static const char *const rstate_names[] = {
    [RW_PENDING] = "pending",   [RW_STARTING] = "starting", [RW_READY] = "idle",
    [RW_DRAINING] = "draining", [RW_EXITING] = "exiting",   [RW_LOST] = "lost",
    [RW_REFUSED] = "refused",   [RW_FAILED] = "failed",
};

struct ralloc;

struct rworker {
	struct ralloc *a;
	int index;
	enum rstate state;
	pid_t srun; /* 0: none, or reaped */
	int pidfd;
	struct event *exit_ev; /* its srun ended */
	struct event *kill_ev; /* ... or is made to */
	struct event *grace;   /* a cancelled job that must end by then */
	struct conn *conn;
	pid_t pid; /* on its node, as its hello says */
	char node[64];
	struct worker_jobs jobs; /* given to it */
	uint32_t served;
	uint64_t since;
	TAILQ_ENTRY(rworker) link;     /* all workers */
	TAILQ_ENTRY(rworker) in_alloc; /* its allocation's */
};
TAILQ_HEAD(rworker_list, rworker);

struct ralloc {
	unsigned k;
	char name[64];
	uint64_t slurm_id; /* 0: not granted yet */
	pid_t salloc;      /* while it waits for Slurm */
	int out_fd;        /* its output */
	struct event *out_ev;
	char out[REMOTE_OUT_MAX];
	size_t outlen;
	bool ending;   /* no new jobs: released when its workers are gone */
	bool released; /* cancelled; kept while rows of lost workers are */
	struct event *idle_ev;
	struct rworker_list workers;
	TAILQ_ENTRY(ralloc) link;
};
TAILQ_HEAD(ralloc_list, ralloc);

static struct {
	struct rworker_list workers;
	struct ralloc_list allocs;
	struct job_queue queue;
	size_t nqueued, nrunning;
	size_t nrevoking; /* jobs asked back from all workers */
	unsigned next_k;
	unsigned ndead; /* rows kept of lost, refused and failed workers */
	char busy_poll[16];
	bool stopping;
} rp = {
    .workers = TAILQ_HEAD_INITIALIZER(rp.workers),
    .allocs = TAILQ_HEAD_INITIALIZER(rp.allocs),
    .queue = TAILQ_HEAD_INITIALIZER(rp.queue),
};

static void remote_dispatch_msg(struct conn *, const struct proto_msg *);
static void remote_closed(struct conn *, void *);
static void remote_dispatch(void);
static void remote_alloc_check(struct ralloc *);
static void remote_grace_cb(evutil_socket_t, short, void *);

/* A job's xdata while its lost worker's jobs are being ended. */
static char remote_gone;
#define REMOTE_GONE ((void *)&remote_gone)

static const struct conn_handler remote_handler = {
    .dispatch = remote_dispatch_msg,
    .closed = remote_closed,
};

static bool
remote_live(const struct rworker *w)
{
	return w->state <= RW_DRAINING;
}

unsigned
pool_remote_available(void)
{
	const struct rworker *w;
	unsigned n = 0;

	TAILQ_FOREACH(w, &rp.workers, link)
		if (w->state <= RW_READY && !w->a->ending)
			n++;
	return n;
}

static unsigned
remote_count_live(void)
{
	const struct rworker *w;
	unsigned n = 0;

	TAILQ_FOREACH(w, &rp.workers, link)
		if (w->state <= RW_EXITING)
			n++;
	return n;
}

static void
remote_free_argv(char **argv)
{
	size_t i;

	for (i = 0; argv != NULL && argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

static const char *
remote_node(const struct rworker *w)
{
	return w->node[0] != '\0' ? w->node : "an unknown node";
}

static void
remote_alloc_destroy(struct ralloc *a)
{
	TAILQ_REMOVE(&rp.allocs, a, link);
	if (a->out_ev != NULL)
		event_free(a->out_ev);
	if (a->out_fd >= 0)
		close(a->out_fd);
	if (a->idle_ev != NULL)
		event_free(a->idle_ev);
	free(a);
}

/* A row goes; a released allocation goes with its last. */
static void
remote_free(struct rworker *w)
{
	struct ralloc *a = w->a;

	if (w->state >= RW_LOST)
		rp.ndead--;
	TAILQ_REMOVE(&rp.workers, w, link);
	TAILQ_REMOVE(&a->workers, w, in_alloc);
	if (w->exit_ev != NULL)
		event_free(w->exit_ev);
	if (w->kill_ev != NULL)
		event_free(w->kill_ev);
	if (w->grace != NULL)
		event_free(w->grace);
	if (w->pidfd >= 0)
		close(w->pidfd);
	free(w);
	if (a->released && TAILQ_EMPTY(&a->workers))
		remote_alloc_destroy(a);
}

/* A row no longer live; the oldest such rows go beyond REMOTE_DEAD_MAX. */
static void
remote_dead(struct rworker *w, enum rstate s)
{
	struct rworker *o, *next;

	if (w->state < RW_LOST)
		rp.ndead++;
	w->state = s;
	for (o = TAILQ_FIRST(&rp.workers);
	     o != NULL && rp.ndead > REMOTE_DEAD_MAX; o = next) {
		next = TAILQ_NEXT(o, link);
		if (o->state >= RW_LOST && o->srun == 0 && o != w)
			remote_free(o);
	}
}

/* The allocation is cancelled (once). */
static void
remote_alloc_release(struct ralloc *a)
{
	if (!a->released && a->slurm_id != 0) {
		log_info("remote pool: allocation %s (Slurm job %" PRIu64
		         ") released",
		         a->name, a->slurm_id);
		/* at the stop, nothing would reap a scancel left running */
		slurm_cancel_job(a->slurm_id, rp.stopping);
	}
	a->released = true;
}

/* Its srun ended: reaped; the allocation may end now. */
static void
remote_srun_ended(struct rworker *w)
{
	int status;

	if (w->srun > 0) {
		while (waitpid(w->srun, &status, 0) < 0 && errno == EINTR)
			;
		w->srun = 0;
	}
	if (w->exit_ev != NULL)
		event_del(w->exit_ev);
	if (w->kill_ev != NULL)
		event_del(w->kill_ev);
	if (w->conn != NULL)
		return; /* its channel closes too: remote_closed then */
	remote_alloc_check(w->a);
}

static void
remote_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	remote_srun_ended(arg);
}

static void
remote_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rworker *w = arg;

	if (w->srun > 0)
		kill(w->srun, SIGKILL);
}

/*
 * An allocation whose workers are all gone (exited, lost or refused), and
 * whose sruns have ended, is cancelled; the rows of its lost workers stay.
 */
static void
remote_alloc_check(struct ralloc *a)
{
	struct rworker *w, *next;

	if (a->salloc > 0)
		return; /* granted or not, it says so first */
	TAILQ_FOREACH(w, &a->workers, in_alloc)
		if (w->srun > 0 || remote_live(w))
			return;
	if (!a->ending && a->slurm_id != 0)
		log_warnx("remote pool: allocation %s (Slurm job %" PRIu64
		          ") has no worker left",
		          a->name, a->slurm_id);
	a->ending = true;
	remote_alloc_release(a);
	if (TAILQ_EMPTY(&a->workers)) {
		remote_alloc_destroy(a);
		return;
	}
	for (w = TAILQ_FIRST(&a->workers); w != NULL; w = next) {
		next = TAILQ_NEXT(w, in_alloc);
		if (w->state < RW_LOST)
			remote_free(w); /* the last frees a */
	}
}

/* The job queue has nobody to go to: it fails rather than wait forever. */
static void
remote_fail_queue(void)
{
	struct job *j;

	if (pool_remote_available() > 0)
		return;
	while ((j = TAILQ_FIRST(&rp.queue)) != NULL) {
		TAILQ_REMOVE(&rp.queue, j, link);
		rp.nqueued--;
		task_fail(&j->ctx,
		          "no remote workers: concctl pool add --slurm N");
		j->err = PE_BAD_EXECUTOR;
		job_finish(j, PS_FAILED);
	}
}

static void remote_alloc_end(struct ralloc *);

static void
remote_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ralloc *a = arg;

	log_info("remote pool: allocation %s idle for %d s: releasing it",
	         a->name, slurm_config()->idle_release);
	remote_alloc_end(a);
	remote_fail_queue();
}

/* An allocation with no job on any worker is released after a while. */
static void
remote_idle_arm(struct ralloc *a)
{
	struct timeval tv = {slurm_config()->idle_release, 0};
	struct rworker *w;

	if (a->ending || tv.tv_sec <= 0 || a->idle_ev == NULL)
		return;
	TAILQ_FOREACH(w, &a->workers, in_alloc) {
		if (w->jobs.n > 0 || w->state < RW_READY) {
			evtimer_del(a->idle_ev);
			return;
		}
	}
	if (!evtimer_pending(a->idle_ev, NULL))
		evtimer_add(a->idle_ev, &tv);
}

/* Start worker w of a granted allocation: its srun, its channel. */
static void
remote_start(struct rworker *w)
{
	char **argv;
	int sv[2];

	w->state = RW_FAILED;
	if ((argv = slurm_worker_argv(w->a->slurm_id, w->index,
	                              slurm_config()->worker_path, rp.busy_poll,
	                              spawn_nofile_soft())) == NULL)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn("remote pool: worker %d", w->index);
		remote_free_argv(argv);
		goto fail;
	}
	w->srun = slurm_spawn(argv, sv[1], sv[1], SLURM_SPAWN_KEEP);
	remote_free_argv(argv);
	close(sv[1]);
	if (w->srun < 0) {
		w->srun = 0;
		close(sv[0]);
		goto fail;
	}
	w->pidfd = (int)syscall(SYS_pidfd_open, w->srun, 0);
	if (w->pidfd >= 0) {
		w->exit_ev =
		    event_new(loop_base, w->pidfd, EV_READ, remote_exit_cb, w);
		if (w->exit_ev != NULL)
			event_add(w->exit_ev, NULL);
	}
	w->kill_ev = evtimer_new(loop_base, remote_kill_cb, w);
	w->grace = evtimer_new(loop_base, remote_grace_cb, w);
	evutil_make_socket_nonblocking(sv[0]);
	if ((w->conn = conn_new_with(sv[0], &remote_handler, w)) == NULL) {
		close(sv[0]);
		kill(w->srun, SIGKILL);
		goto fail;
	}
	w->state = RW_STARTING;
	w->since = loop_now_us();
	log_debug("remote worker %d: srun pid %d in Slurm job %" PRIu64,
	          w->index, (int)w->srun, w->a->slurm_id);
	return;
fail:
	log_warnx("remote pool: worker %d of %s cannot start", w->index,
	          w->a->name);
	remote_dead(w, RW_FAILED);
}

/* What salloc said, once it ended: the allocation, or why not. */
static void
remote_granted(struct ralloc *a)
{
	struct rworker *w;
	char *last;

	a->slurm_id = slurm_parse_granted(a->out, a->outlen);
	if (a->ending) {
		/* removed while it waited: its rows go, a granted one ends */
		remote_alloc_check(a);
		remote_fail_queue();
		return;
	}
	if (a->slurm_id == 0) {
		/* its last line says why */
		a->out[a->outlen] = '\0';
		while (a->outlen > 0 && a->out[a->outlen - 1] == '\n')
			a->out[--a->outlen] = '\0';
		last =
		    (last = strrchr(a->out, '\n')) != NULL ? last + 1 : a->out;
		log_warnx("remote pool: no allocation %s: %s", a->name,
		          *last != '\0' ? last : "salloc failed");
		a->ending = true;
		TAILQ_FOREACH(w, &a->workers, in_alloc)
			remote_dead(w, RW_FAILED);
		remote_alloc_check(a);
		remote_fail_queue();
		return;
	}
	log_info("remote pool: allocation %s is Slurm job %" PRIu64, a->name,
	         a->slurm_id);
	TAILQ_FOREACH(w, &a->workers, in_alloc)
		remote_start(w);
	remote_alloc_check(a);
	remote_fail_queue();
}

static void
remote_salloc_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ralloc *a = arg;
	ssize_t n;
	int status;

	if (a->outlen >= sizeof(a->out) - 1) /* keep the last part */
		a->outlen = 0;
	n = read(fd, a->out + a->outlen, sizeof(a->out) - 1 - a->outlen);
	if (n > 0) {
		a->outlen += (size_t)n;
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* its output ended: salloc has ended, or is about to */
	event_free(a->out_ev);
	a->out_ev = NULL;
	close(a->out_fd);
	a->out_fd = -1;
	while (waitpid(a->salloc, &status, 0) < 0 && errno == EINTR)
		;
	a->salloc = 0;
	remote_granted(a);
}

int
pool_remote_add(unsigned n, const char *partition, const char *time_limit,
                char *name, size_t namelen, char *cause, size_t causelen)
{
	const struct config_slurm *cfg = slurm_config();
	bool used[POOL_MAX_PROCESSES] = {false};
	struct ralloc *a;
	struct rworker *w;
	char **argv;
	unsigned live = remote_count_live(), i;
	int p[2], idx = 0;

	if (!slurm_ready()) {
		snprintf(cause, causelen, "%s", slurm_why());
		return -1;
	}
	if (rp.stopping || loop_stopping()) {
		snprintf(cause, causelen, "concd is stopping");
		return -1;
	}
	if (n == 0 || live + n > (unsigned)cfg->max_workers) {
		snprintf(cause, causelen,
		         "%u remote workers run or start, %u more would pass "
		         "slurm.max-workers (%d)",
		         live, n, cfg->max_workers);
		return -1;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(cause, causelen, "out of memory");
		return -1;
	}
	a->k = rp.next_k++;
	a->out_fd = -1;
	TAILQ_INIT(&a->workers);
	slurm_pool_name(a->k, a->name, sizeof(a->name));
	argv = slurm_alloc_argv(a->name, n, partition, time_limit);
	if (argv == NULL || pipe2(p, O_CLOEXEC) < 0) {
		snprintf(cause, causelen, "%s", strerror(errno));
		remote_free_argv(argv);
		free(a);
		return -1;
	}
	a->salloc = slurm_spawn(argv, -1, p[1], p[1]);
	remote_free_argv(argv);
	close(p[1]);
	if (a->salloc < 0) {
		snprintf(cause, causelen, "cannot run salloc: see concd's log");
		close(p[0]);
		free(a);
		return -1;
	}
	a->out_fd = p[0];
	evutil_make_socket_nonblocking(p[0]);
	a->out_ev = event_new(loop_base, p[0], EV_READ | EV_PERSIST,
	                      remote_salloc_cb, a);
	a->idle_ev = evtimer_new(loop_base, remote_idle_cb, a);
	if (a->out_ev == NULL || a->idle_ev == NULL)
		abort(); /* out of memory */
	event_add(a->out_ev, NULL);
	TAILQ_INSERT_TAIL(&rp.allocs, a, link);
	TAILQ_FOREACH(w, &rp.workers, link)
		if (remote_live(w) || w->state == RW_EXITING)
			used[w->index] = true;
	for (i = 0; i < n; i++) {
		if ((w = calloc(1, sizeof(*w))) == NULL)
			abort(); /* out of memory */
		while (idx < POOL_MAX_PROCESSES - 1 && used[idx])
			idx++;
		used[idx] = true;
		w->index = idx;
		w->a = a;
		w->pidfd = -1;
		w->state = RW_PENDING;
		w->since = loop_now_us();
		TAILQ_INIT(&w->jobs.q);
		TAILQ_INSERT_TAIL(&rp.workers, w, link);
		TAILQ_INSERT_TAIL(&a->workers, w, in_alloc);
	}
	snprintf(name, namelen, "%s", a->name);
	log_info("remote pool: asking Slurm for %u workers (%s)", n, a->name);
	return 0;
}

/* The workers of a that may go now go; the others after their jobs. */
static void
remote_alloc_end(struct ralloc *a)
{
	struct rworker *w;

	a->ending = true;
	if (a->idle_ev != NULL)
		evtimer_del(a->idle_ev);
	if (a->salloc > 0) {
		/* still waiting for Slurm: it gives up, and the request too */
		kill(a->salloc, SIGTERM);
		slurm_cancel_name(a->name);
	}
	TAILQ_FOREACH(w, &a->workers, in_alloc) {
		if (w->state == RW_READY || w->state == RW_STARTING)
			w->state = RW_DRAINING;
		if (w->state == RW_DRAINING && w->jobs.n == 0) {
			w->state = RW_EXITING;
			conn_hangup(w->conn);
		}
	}
	remote_alloc_check(a);
}

unsigned
pool_remote_remove(void)
{
	struct ralloc *a, *next;
	struct rworker *w, *wn;
	unsigned n = 0;

	/* the rows of lost workers go */
	for (w = TAILQ_FIRST(&rp.workers); w != NULL; w = wn) {
		wn = TAILQ_NEXT(w, link);
		if (w->state >= RW_LOST && w->srun == 0)
			remote_free(w);
		else if (remote_live(w))
			n++;
	}
	for (a = TAILQ_FIRST(&rp.allocs); a != NULL; a = next) {
		next = TAILQ_NEXT(a, link);
		remote_alloc_end(a); /* may free a */
	}
	remote_fail_queue();
	return n;
}

static struct job *
remote_job(struct rworker *w, uint64_t id)
{
	return worker_jobs_find(&w->jobs.q, id);
}

static void
remote_give(struct rworker *w, struct job *j)
{
	worker_jobs_add(&w->jobs, j, w);
	worker_msg_run(conn_out(w->conn), j, false);
	conn_dirty(w->conn);
	if (w->a->idle_ev != NULL)
		evtimer_del(w->a->idle_ev);
}

static bool
remote_takes_jobs(const struct rworker *w)
{
	return w->state == RW_READY && w->jobs.nrevoking == 0 &&
	       w->jobs.n < REMOTE_DEPTH;
}

/*
 * No worker waits idle while another holds jobs it has not begun: as in
 * the process pool, the one with the most waiting is asked for the later
 * half of them, once for each idle worker.
 */
static void
remote_steal(void)
{
	struct rworker *w, *from;
	size_t idle = 0, waiting, most;

	if (!TAILQ_EMPTY(&rp.queue))
		return;
	TAILQ_FOREACH(w, &rp.workers, link)
		if (remote_takes_jobs(w) && w->jobs.n == 0)
			idle++;
	while (idle > rp.nrevoking) {
		from = NULL;
		most = 0;
		TAILQ_FOREACH(w, &rp.workers, link) {
			if (w->conn == NULL || w->jobs.nrevoking > 0 ||
			    w->jobs.n < 2)
				continue;
			if ((waiting = w->jobs.n - 1) > most) {
				most = waiting;
				from = w;
			}
		}
		if (from == NULL)
			return;
		worker_jobs_revoke(&from->jobs, conn_out(from->conn),
		                   (most + 1) / 2, &rp.nrevoking);
		conn_dirty(from->conn);
	}
}

/* Queued jobs to ready workers: each to the one with the fewest. */
static void
remote_dispatch(void)
{
	struct rworker *w, *best;
	struct job *j;

	while ((j = TAILQ_FIRST(&rp.queue)) != NULL) {
		best = NULL;
		TAILQ_FOREACH(w, &rp.workers, link) {
			if (remote_takes_jobs(w) &&
			    (best == NULL || w->jobs.n < best->jobs.n))
				best = w;
		}
		if (best == NULL)
			break;
		TAILQ_REMOVE(&rp.queue, j, link);
		remote_give(best, j);
	}
	remote_steal();
}

static void
remote_started(struct rworker *w, struct job *j, const struct proto_msg *m)
{
	j->worker = w->index;
	j->tid = (pid_t)proto_u64(m, PF_PID, 0);
	j->served = w->served = (uint32_t)proto_u64(m, PF_SERVED, 0);
	if (j->state != PS_QUEUED)
		return;
	rp.nqueued--;
	rp.nrunning++;
	job_placed(j, w->a->slurm_id, w->node);
	job_start(j);
	if (proto_has(m, PF_STARTED))
		j->started = proto_u64(m, PF_STARTED, 0);
}

/* Its first frame: the protocol it speaks, its node and pid. */
static void
remote_hello(struct rworker *w, const struct proto_msg *m)
{
	uint64_t v = proto_u64(m, PF_VERSION, 0);

	proto_strcpy(m, PF_NODE, w->node, sizeof(w->node));
	w->pid = (pid_t)proto_u64(m, PF_PID, 0);
	if (v != PROTO_VERSION) {
		log_warnx(
		    "remote worker %d on %s speaks protocol %" PRIu64
		    ", concd speaks %d: refused (slurm.worker-path is %s)",
		    w->index, remote_node(w), v, PROTO_VERSION,
		    slurm_config()->worker_path);
		remote_dead(w, RW_REFUSED);
		conn_hangup(w->conn); /* its input ends: it exits */
		return;
	}
	log_info("remote worker %d: pid %d on %s (Slurm job %" PRIu64 ")",
	         w->index, (int)w->pid, remote_node(w), w->a->slurm_id);
	if (w->state == RW_STARTING) {
		w->state = RW_READY;
		remote_idle_arm(w->a);
	} else if (w->state == RW_DRAINING) {
		w->state = RW_EXITING;
		conn_hangup(w->conn);
	}
	remote_dispatch();
}

static void
remote_on_end(struct rworker *w, struct job *j, const struct proto_msg *m)
{
	worker_jobs_remove(&w->jobs, j, &rp.nrevoking);
	if (j->state == PS_RUNNING)
		rp.nrunning--;
	else
		rp.nqueued--;
	if (j->state == PS_QUEUED) /* its started came with its end */
		job_placed(j, w->a->slurm_id, w->node);
	job_finish(j, worker_msg_end(j, m));
}

static void
remote_dispatch_msg(struct conn *c, const struct proto_msg *m)
{
	struct rworker *w = conn_arg(c);
	struct job *j;

	if (m->type == PROTO_HELLO) {
		if (w->state == RW_STARTING || w->state == RW_DRAINING)
			remote_hello(w, m);
		return;
	}
	if (w->state == RW_STARTING || w->state == RW_REFUSED) {
		/* a peer that did not say hello first is not a worker */
		if (w->state == RW_STARTING) {
			log_warnx("remote worker %d: no hello from %s: refused",
			          w->index, slurm_config()->worker_path);
			remote_dead(w, RW_REFUSED);
			conn_hangup(c);
		}
		return;
	}
	if ((j = remote_job(w, proto_u64(m, PF_JOB, 0))) == NULL)
		return; /* cancelled meanwhile, or a stray message */
	switch (m->type) {
	case PROTO_STARTED:
		remote_started(w, j, m);
		break;
	case PROTO_PROGRESS:
		worker_msg_progress(j, m);
		break;
	case PROTO_OUTPUT:
		if (worker_msg_output(j, m))
			conn_hold_reads(c, true);
		break;
	case PROTO_RETURNED:
		/* given back unstarted: first in line again */
		worker_jobs_remove(&w->jobs, j, &rp.nrevoking);
		if (atomic_load(&j->ctx.cancel)) {
			rp.nqueued--;
			job_finish(j, PS_CANCELLED);
		} else {
			TAILQ_INSERT_HEAD(&rp.queue, j, link);
		}
		if (w->state == RW_DRAINING && w->jobs.n == 0) {
			w->state = RW_EXITING;
			conn_hangup(w->conn);
		}
		remote_dispatch();
		break;
	case PROTO_END:
		conn_hold_reads(c, false);
		remote_on_end(w, j, m);
		if (w->state == RW_DRAINING && w->jobs.n == 0) {
			w->state = RW_EXITING;
			conn_hangup(w->conn);
		}
		remote_dispatch();
		remote_idle_arm(w->a);
		break;
	default:
		break;
	}
}

/*
 * The channel closed: the worker exited (its input ended), or its srun,
 * node or allocation went away.  Jobs it had started fail with
 * node_failed; the others go back to the queue.
 */
static void
remote_closed(struct conn *c, void *arg)
{
	static const struct timeval exit_bound = {REMOTE_EXIT_MS / 1000, 0};
	struct rworker *w = arg;
	struct job_queue gone = TAILQ_HEAD_INITIALIZER(gone);
	struct job *j;

	w->conn = NULL;
	if (w->srun > 0 && w->kill_ev != NULL)
		evtimer_add(w->kill_ev, &exit_bound);
	if (w->state == RW_EXITING || w->state == RW_REFUSED) {
		/* as it was told: it exits */
	} else if (w->state == RW_STARTING && !rp.stopping) {
		log_warnx("remote worker %d in Slurm job %" PRIu64
		          " ended before its hello (srun's own words are "
		          "above): is slurm.worker-path (%s) on the node?",
		          w->index, w->a->slurm_id,
		          slurm_config()->worker_path);
		remote_dead(w, RW_FAILED);
	} else if (!rp.stopping) {
		log_warnx("remote worker %d (pid %d) on %s, Slurm job %" PRIu64
		          ", was lost%s",
		          w->index, (int)w->pid, remote_node(w), w->a->slurm_id,
		          w->jobs.n > 0 ? " with jobs on it" : "");
		remote_dead(w, RW_LOST);
	} else {
		w->state = RW_EXITING;
	}
	while ((j = TAILQ_FIRST(&w->jobs.q)) != NULL) {
		worker_jobs_remove(&w->jobs, j, &rp.nrevoking);
		j->xdata = REMOTE_GONE;
		TAILQ_INSERT_TAIL(&gone, j, link);
	}
	/* from the last: those it had not started go back, in order */
	while ((j = TAILQ_LAST(&gone, job_queue)) != NULL) {
		TAILQ_REMOVE(&gone, j, link);
		j->xdata = NULL;
		if (j->state == PS_RUNNING) {
			rp.nrunning--;
			if (atomic_load(&j->ctx.cancel)) {
				job_finish(j, PS_CANCELLED);
				continue;
			}
			task_fail(&j->ctx,
			          "remote worker %d (pid %d) on node %s, Slurm "
			          "job %" PRIu64 ", was lost while the job ran",
			          w->index, (int)w->pid, remote_node(w),
			          w->a->slurm_id);
			j->err = PE_NODE_FAILED;
			job_finish(j, PS_FAILED);
		} else if (atomic_load(&j->ctx.cancel)) {
			rp.nqueued--;
			job_finish(j, PS_CANCELLED);
		} else {
			TAILQ_INSERT_HEAD(&rp.queue, j, link);
		}
	}
	if (w->srun == 0)
		remote_alloc_check(w->a);
	if (!rp.stopping) {
		remote_dispatch();
		remote_fail_queue();
	}
}

static void
remote_submit(struct job *j)
{
	rp.nqueued++;
	TAILQ_INSERT_TAIL(&rp.queue, j, link);
	remote_dispatch();
	remote_fail_queue();
}

/*
 * A cancelled job still running after REMOTE_GRACE_S has its worker
 * ended: its srun is sent SIGTERM, which it hands to the worker.
 */
static void
remote_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rworker *w = arg;
	struct job *j;

	TAILQ_FOREACH(j, &w->jobs.q, link) {
		if (atomic_load(&j->ctx.cancel) && j->state == PS_RUNNING &&
		    w->srun > 0) {
			log_warnx("remote worker %d on %s: job %" PRIu64
			          " did not stop within %d s of its cancel; "
			          "ending the worker",
			          w->index, remote_node(w), j->id,
			          REMOTE_GRACE_S);
			task_fail(&j->ctx,
			          "did not stop within %d s of its cancel: its "
			          "remote worker (pid %d on %s) was ended",
			          REMOTE_GRACE_S, (int)w->pid, remote_node(w));
			kill(w->srun, SIGTERM);
			return;
		}
	}
}

static void
remote_cancel(struct job *j)
{
	static const struct timeval grace = {REMOTE_GRACE_S, 0};
	struct rworker *w = j->xdata;
	struct proto_enc e;

	atomic_store(&j->ctx.cancel, true);
	if (w == REMOTE_GONE)
		return; /* its worker was lost: remote_closed ends it */
	if (w == NULL) {
		/* still in our queue: it never starts */
		TAILQ_REMOVE(&rp.queue, j, link);
		rp.nqueued--;
		job_finish(j, PS_CANCELLED);
		return;
	}
	conn_hold_reads(w->conn, false); /* it must hear the cancel */
	proto_enc_begin(&e, conn_out(w->conn), PROTO_CANCEL, 0);
	proto_enc_u64(&e, PF_JOB, j->id);
	proto_enc_end(&e);
	conn_dirty(w->conn);
	if (j->state == PS_RUNNING && w->grace != NULL)
		evtimer_add(w->grace, &grace);
}

static void
remote_resume(struct job *j)
{
	struct rworker *w = j->xdata;

	if (w != NULL && w != REMOTE_GONE && w->conn != NULL)
		conn_hold_reads(w->conn, false);
}

void
pool_remote_foreach(void (*fn)(const struct pool_worker_info *, void *),
                    void *arg)
{
	struct pool_worker_info info;
	struct rworker *w;
	struct job *j;

	TAILQ_FOREACH(w, &rp.workers, link) {
		memset(&info, 0, sizeof(info));
		info.exec = PX_REMOTE;
		info.index = w->index;
		info.id = (uint64_t)w->pid;
		info.served = w->served;
		info.since = w->since;
		info.state = rstate_names[w->state];
		info.node = w->node[0] != '\0' ? w->node : NULL;
		info.slurm_job = w->a->slurm_id;
		TAILQ_FOREACH(j, &w->jobs.q, link) {
			if (j->state == PS_RUNNING) {
				info.job = j->id;
				if (w->state == RW_READY)
					info.state = "busy";
			}
		}
		fn(&info, arg);
	}
}

void
pool_remote_init(int busy_poll)
{
	snprintf(rp.busy_poll, sizeof(rp.busy_poll), "%d", busy_poll);
	if (slurm_ready())
		(void)slurm_cancel_leftovers();
}

static size_t
remote_running(void)
{
	return rp.nrunning;
}

static size_t
remote_queued(void)
{
	return rp.nqueued;
}

/*
 * At the stop (after the drain): every worker's input ends and it exits;
 * its srun is waited for (REMOTE_EXIT_MS at most, then killed), then
 * every allocation is cancelled.
 */
static void
remote_shutdown(void)
{
	const struct timespec tick = {0, 1000000}; /* 1 ms */
	struct rworker *w;
	struct ralloc *a;
	bool waiting;
	int ms, status;

	rp.stopping = true;
	TAILQ_FOREACH(a, &rp.allocs, link) {
		if (a->salloc > 0) {
			kill(a->salloc, SIGTERM);
			slurm_cancel_name(a->name);
			while (waitpid(a->salloc, &status, 0) < 0 &&
			       errno == EINTR)
				;
			a->salloc = 0;
		}
	}
	TAILQ_FOREACH(w, &rp.workers, link)
		if (w->conn != NULL)
			conn_close(w->conn); /* remote_closed: its jobs end */
	for (ms = 0; ms < REMOTE_EXIT_MS; ms++) {
		waiting = false;
		TAILQ_FOREACH(w, &rp.workers, link) {
			if (w->srun <= 0)
				continue;
			if (waitpid(w->srun, &status, WNOHANG) == w->srun)
				w->srun = 0;
			else
				waiting = true;
		}
		if (!waiting)
			break;
		nanosleep(&tick, NULL);
	}
	TAILQ_FOREACH(w, &rp.workers, link) {
		if (w->srun > 0) {
			kill(w->srun, SIGKILL);
			while (waitpid(w->srun, &status, 0) < 0 &&
			       errno == EINTR)
				;
			w->srun = 0;
		}
	}
	while ((a = TAILQ_FIRST(&rp.allocs)) != NULL) {
		a->ending = true;
		remote_alloc_release(a);
		if (TAILQ_EMPTY(&a->workers))
			remote_alloc_destroy(a);
		else
			while (TAILQ_FIRST(&rp.allocs) == a)
				remote_free(TAILQ_FIRST(&a->workers));
	}
}

const struct executor remote_executor = {
    .submit = remote_submit,
    .cancel = remote_cancel,
    .resume = remote_resume,
    .shutdown = remote_shutdown,
    .running = remote_running,
    .queued = remote_queued,
};
