/*
 * pool_thread.c -- the warm thread pool.  N threads are created at start
 * and serve every job.  Jobs go to the workers through one locked queue;
 * what the workers report (started, progress, ended) comes back through
 * a second list under the same lock, coalesced per job, and wakes the
 * loop once per batch with event_active().
 *
 * Waits are interruptible: a timed wait sleeps on the worker's own
 * condition variable, an fd wait polls the fd and the worker's eventfd;
 * cancelling a job signals both.
 */
#include <sys/eventfd.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "concd.h"

#define POOL_POST_STARTED  0x01
#define POOL_POST_PROGRESS 0x02
#define POOL_POST_END	   0x04

struct tworker {
	pthread_t thread;
	int index;
	pthread_cond_t cond; /* interruptible waits */
	int wakefd;	     /* interrupts fd waits */
	void *worker_state[1];
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct job_queue todo;
	int idle;
	bool stopping;
	struct job **posted; /* jobs with handoff.post set */
	size_t nposted, capposted;
	bool wake_pending;

	/* loop-owned */
	struct event *wake_ev;
	struct tworker *workers;
	int nworkers;
	size_t nqueued, nrunning;
	struct taken {
		struct job *job;
		uint8_t post, state;
		uint64_t started;
	} *taken;
	size_t captaken;
} pool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
};

static uint64_t
pool_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Called with the lock held. */
static bool
pool_post_locked(struct job *j, uint8_t bits)
{
	bool wake;

	if (j->handoff.post == 0) {
		if (pool.nposted == pool.capposted) {
			size_t n = pool.capposted ? pool.capposted * 2 : 256;
			struct job **p = realloc(pool.posted, n * sizeof(*p));
			if (p == NULL)
				abort();
			pool.posted = p;
			pool.capposted = n;
		}
		pool.posted[pool.nposted++] = j;
	}
	j->handoff.post |= bits;
	wake = !pool.wake_pending;
	pool.wake_pending = true;
	return wake;
}

static void
thread_progress(struct task_ctx *ctx, uint64_t done, uint64_t total,
    const char *msg)
{
	struct job *j = ctx->job;
	char *copy = msg != NULL ? strndup(msg, 255) : NULL, *old = NULL;
	bool wake;

	pthread_mutex_lock(&pool.lock);
	j->handoff.done = done;
	j->handoff.total = total;
	if (copy != NULL) {
		old = j->handoff.msg;
		j->handoff.msg = copy;
	}
	wake = pool_post_locked(j, POOL_POST_PROGRESS);
	pthread_mutex_unlock(&pool.lock);
	free(old);
	if (wake)
		event_active(pool.wake_ev, EV_READ, 1);
}

static const struct exec_ops thread_ops = {
	.progress = thread_progress,
};

static bool
thread_wait(struct task_ctx *ctx, void *arg)
{
	struct tworker *w = arg;
	struct timespec deadline;
	struct pollfd pfd[2];
	uint64_t v;

	if (ctx->wait_fd >= 0) {
		pfd[0].fd = ctx->wait_fd;
		pfd[0].events = ctx->wait_write ? POLLOUT : POLLIN;
		pfd[1].fd = w->wakefd;
		pfd[1].events = POLLIN;
		while (!task_cancelled(ctx) && poll(pfd, 2, -1) < 0 &&
		    errno == EINTR)
			;
		if (pfd[1].revents & POLLIN)
			(void)read(w->wakefd, &v, sizeof(v));
		return !task_cancelled(ctx);
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)(ctx->wait_ms / 1000);
	deadline.tv_nsec += (long)(ctx->wait_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&pool.lock);
	while (!task_cancelled(ctx) &&
	    pthread_cond_timedwait(&w->cond, &pool.lock, &deadline) !=
		ETIMEDOUT)
		;
	pthread_mutex_unlock(&pool.lock);
	return !task_cancelled(ctx);
}

static void
thread_run(struct tworker *w, struct job *j, uint32_t served)
{
	struct task_ctx *ctx = &j->ctx;
	enum task_step st = TASK_FAILED;
	bool wake;

	pthread_mutex_lock(&pool.lock);
	j->handoff.worker = w->index;
	j->handoff.tid = gettid();
	j->handoff.served = served;
	j->handoff.started = pool_now_us();
	wake = pool_post_locked(j, POOL_POST_STARTED);
	pthread_mutex_unlock(&pool.lock);
	if (wake)
		event_active(pool.wake_ev, EV_READ, 1);

	if (!task_cancelled(ctx) &&
	    task_ctx_start(ctx, j, &thread_ops, w->worker_state[0]) == 0)
		st = task_run_blocking(ctx, thread_wait, w);
	task_ctx_stop(ctx);

	pthread_mutex_lock(&pool.lock);
	if (st == TASK_DONE)
		j->handoff.state = PS_SUCCEEDED;
	else if (task_cancelled(ctx))
		j->handoff.state = PS_CANCELLED;
	else
		j->handoff.state = PS_FAILED;
	wake = pool_post_locked(j, POOL_POST_END);
	pthread_mutex_unlock(&pool.lock);
	if (wake)
		event_active(pool.wake_ev, EV_READ, 1);
}

static void *
thread_main(void *arg)
{
	struct tworker *w = arg;
	uint32_t served = 0;
	struct job *j;

	pthread_mutex_lock(&pool.lock);
	for (;;) {
		while (TAILQ_EMPTY(&pool.todo) && !pool.stopping) {
			pool.idle++;
			pthread_cond_wait(&pool.work, &pool.lock);
			pool.idle--;
		}
		if (pool.stopping)
			break;
		j = TAILQ_FIRST(&pool.todo);
		TAILQ_REMOVE(&pool.todo, j, link);
		j->handoff.worker = w->index; /* now running: see cancel */
		pthread_mutex_unlock(&pool.lock);
		thread_run(w, j, ++served);
		pthread_mutex_lock(&pool.lock);
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

/*
 * The loop takes what the workers posted: under the lock it copies the
 * hand-off fields into the job, then, unlocked, sends the events.
 */
static void
thread_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	size_t n, i;

	pthread_mutex_lock(&pool.lock);
	n = pool.nposted;
	if (n > pool.captaken) {
		struct taken *t = realloc(pool.taken, n * sizeof(*t));
		if (t == NULL)
			abort();
		pool.taken = t;
		pool.captaken = n;
	}
	for (i = 0; i < n; i++) {
		struct job *j = pool.posted[i];
		uint8_t post = j->handoff.post;

		if (post & POOL_POST_STARTED) {
			j->worker = j->handoff.worker;
			j->tid = j->handoff.tid;
			j->served = j->handoff.served;
		}
		if (post & POOL_POST_PROGRESS) {
			j->done = j->handoff.done;
			j->total = j->handoff.total;
			if (j->handoff.msg != NULL) {
				free(j->msg);
				j->msg = j->handoff.msg;
				j->handoff.msg = NULL;
			}
		}
		pool.taken[i].job = j;
		pool.taken[i].post = post;
		pool.taken[i].state = j->handoff.state;
		pool.taken[i].started = j->handoff.started;
		j->handoff.post = 0;
	}
	pool.nposted = 0;
	pool.wake_pending = false;
	pthread_mutex_unlock(&pool.lock);

	for (i = 0; i < n; i++) {
		struct taken *t = &pool.taken[i];

		if (t->post & POOL_POST_STARTED) {
			pool.nqueued--;
			pool.nrunning++;
			job_start(t->job);
			t->job->started = t->started;
		}
		if ((t->post & (POOL_POST_PROGRESS | POOL_POST_END)) ==
		    POOL_POST_PROGRESS)
			job_progress(t->job, t->job->done, t->job->total, NULL);
		if (t->post & POOL_POST_END) {
			pool.nrunning--;
			job_finish(t->job, t->state);
		}
	}
}

static void
thread_submit(struct job *j)
{
	pool.nqueued++;
	pthread_mutex_lock(&pool.lock);
	j->handoff.worker = -1; /* queued */
	TAILQ_INSERT_TAIL(&pool.todo, j, link);
	if (pool.idle > 0)
		pthread_cond_signal(&pool.work);
	pthread_mutex_unlock(&pool.lock);
}

static void
thread_cancel(struct job *j)
{
	bool queued;

	pthread_mutex_lock(&pool.lock);
	atomic_store(&j->ctx.cancel, true);
	queued = j->handoff.worker < 0;
	if (queued) {
		TAILQ_REMOVE(&pool.todo, j, link);
	} else {
		struct tworker *w = &pool.workers[j->handoff.worker];
		uint64_t one = 1;

		pthread_cond_signal(&w->cond);
		(void)write(w->wakefd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&pool.lock);
	if (queued) {
		pool.nqueued--;
		job_finish(j, PS_CANCELLED);
	}
}

int
pool_thread_init(struct event_base *base, int n)
{
	pthread_condattr_t attr;
	int i;

	/* timed waits measure against CLOCK_MONOTONIC */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);

	TAILQ_INIT(&pool.todo);
	pool.wake_ev = event_new(base, -1, EV_READ, thread_wake_cb, NULL);
	pool.workers = calloc((size_t)n, sizeof(*pool.workers));
	if (pool.wake_ev == NULL || pool.workers == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		struct tworker *w = &pool.workers[i];

		w->index = i;
		pthread_cond_init(&w->cond, &attr);
		w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->wakefd < 0 ||
		    pthread_create(&w->thread, NULL, thread_main, w) != 0) {
			log_warn("thread pool: worker %d", i);
			return -1;
		}
		pool.nworkers++;
	}
	pthread_condattr_destroy(&attr);
	return 0;
}

int
pool_thread_size(void)
{
	return pool.nworkers;
}

static size_t
thread_running(void)
{
	return pool.nrunning;
}

static size_t
thread_queued(void)
{
	return pool.nqueued;
}

static void
thread_shutdown(void)
{
	int i;

	pthread_mutex_lock(&pool.lock);
	pool.stopping = true;
	pthread_cond_broadcast(&pool.work);
	pthread_mutex_unlock(&pool.lock);
	for (i = 0; i < pool.nworkers; i++) {
		pthread_join(pool.workers[i].thread, NULL);
		pthread_cond_destroy(&pool.workers[i].cond);
		close(pool.workers[i].wakefd);
	}
	free(pool.workers);
	pool.workers = NULL;
	pool.nworkers = 0;
	if (pool.wake_ev != NULL)
		event_free(pool.wake_ev);
	pool.wake_ev = NULL;
	free(pool.posted);
	free(pool.taken);
	pool.posted = NULL;
	pool.taken = NULL;
}

const struct executor thread_executor = {
	.kind = PX_THREAD,
	.name = "thread",
	.submit = thread_submit,
	.cancel = thread_cancel,
	.shutdown = thread_shutdown,
	.running = thread_running,
	.queued = thread_queued,
};
