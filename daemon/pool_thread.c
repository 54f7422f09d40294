/*
 * pool_thread.c -- the warm thread pool.  N threads are created at start
 * and serve every job.  Jobs go to the workers through one locked queue;
 * what the workers report (started, progress, ended) comes back through
 * a second list under the same lock, coalesced per job, and wakes the
 * loop once per batch with loop_wake(): not at all while the loop
 * polls, since its passes take the list themselves (thread_poll).
 *
 * Waits are interruptible: a timed wait sleeps on the worker's own
 * condition variable, an fd wait polls the fd and the worker's eventfd;
 * cancelling a job signals both.
 *
 * A shrinking pool lets its highest-numbered workers finish their job and
 * leave; a --fresh job gets a thread made for it alone.  Threads that
 * have left are joined by the loop.  A thread that cannot be started
 * (out of descriptors for its eventfd, or of threads) is tried again with
 * a growing delay until the pool is full; none starts while concd stops.
 */
#include <sys/eventfd.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "executor.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "pool_thread.h"
#include "task.h"
#include "task_int.h"

#define POOL_POST_STARTED  0x01
#define POOL_POST_PROGRESS 0x02
#define POOL_POST_END      0x04
#define POOL_POST_OUTPUT   0x08
#define POOL_OUTPUT_LIMIT  (256 * 1024) /* per job, awaiting the loop */
#define POOL_RETRY_MIN_MS  10   /* a failed start is tried again after */
#define POOL_RETRY_MAX_MS  1000 /* ... doubling up to this */
#define POOL_WATCH_MS      100  /* posted starts are taken this often */

static _Thread_local struct tworker *thread_self; /* a worker's own */

struct tworker {
	pthread_t thread;
	int index;           /* -1: a fresh thread for one job */
	pthread_cond_t cond; /* interruptible waits */
	int wakefd;          /* interrupts fd waits */
	struct job *fresh_job;
	bool exited; /* under the lock: ready to be joined */
	struct task_warm warm;

	pid_t tid; /* set by the thread itself before it takes a job */

	/*
	 * Under the lock, for `concctl pool`: the worker keeps them, the loop
	 * only reads them.  The loop never follows a job back to its worker
	 * once the worker has posted the job's end: the worker may be gone.
	 */
	uint64_t job;
	uint32_t served;
	pid_t shown_tid;
	uint64_t since;
	TAILQ_ENTRY(tworker) link;
};
TAILQ_HEAD(tworker_list, tworker);

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct job_queue todo;
	int idle;
	bool stopping;
	struct job **posted; /* jobs with handoff.post set */
	size_t nposted, capposted;
	atomic_bool wake_pending; /* written under the lock; see thread_poll */
	int size;                 /* workers wanted: index >= size leaves */
	int nexited;

	/* loop-owned */
	struct event *wake_ev;
	struct event *submit_ev;
	struct event *fill_ev;    /* the next try at starting missing workers */
	unsigned retry_ms;        /* its delay; 0: the pool is full */
	struct event *watch_ev;   /* takes posted starts while jobs queue */
	struct job_queue pending; /* submitted during this loop pass */
	struct tworker_list workers;
	size_t nqueued, nrunning;
	struct taken {
		struct job *job;
		uint8_t post, state;
		uint64_t started;
		struct pbuf out;
	} * taken;
	size_t captaken;
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .workers = TAILQ_HEAD_INITIALIZER(pool.workers),
};
static pthread_condattr_t pool_condattr;

static int thread_fill(void);

static const struct timeval thread_watch_every = {0, POOL_WATCH_MS * 1000};

/* Called with the lock held: list j for the loop, without waking it. */
static void
pool_list_locked(struct job *j, uint8_t bits)
{
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
}

/* With the lock held: does the caller have to wake the loop? */
static bool
pool_wake_locked(void)
{
	bool wake =
	    !atomic_load_explicit(&pool.wake_pending, memory_order_relaxed);

	atomic_store(&pool.wake_pending, true);
	return wake;
}

static bool
pool_post_locked(struct job *j, uint8_t bits)
{
	pool_list_locked(j, bits);
	return pool_wake_locked();
}

/* As in worker.c: a progress snapshot every 20 ms (and the last) is plenty. */
static void
thread_progress(struct task_ctx *ctx, uint64_t done, uint64_t total,
                const char *msg)
{
	static _Thread_local uint64_t last;
	struct job *j = CTX_JOB(ctx);
	uint64_t now = loop_now_us();
	char *copy, *old = NULL;
	bool wake;

	if (done < total && now - last < 20000)
		return;
	last = now;
	copy = msg != NULL ? strndup(msg, 255) : NULL;

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
		loop_wake(pool.wake_ev);
}

/*
 * Output waits for the loop in a bounded buffer: [stream][len][bytes].
 * The worker waits here while the buffer is full (the loop has not taken
 * it yet) or the job is held for its client (the loop sets held, and
 * clears it in thread_resume); a cancel ends only the second wait, since
 * the loop takes the buffer whatever happens.
 */
static void
thread_output(struct task_ctx *ctx, int stream, const void *data, size_t len)
{
	struct job *j = CTX_JOB(ctx);
	uint32_t n = (uint32_t)len;
	char s = (char)stream;
	bool wake;

	pthread_mutex_lock(&pool.lock);
	/* what is in the buffer was posted: the loop comes to take it */
	while ((j->handoff.out.len > 0 &&
	        j->handoff.out.len + len + 5 > POOL_OUTPUT_LIMIT) ||
	       (j->handoff.held && !task_cancelled(ctx))) {
		j->handoff.waiter = &thread_self->cond;
		pthread_cond_wait(&thread_self->cond, &pool.lock);
		j->handoff.waiter = NULL;
	}
	pbuf_append(&j->handoff.out, &s, 1);
	pbuf_append(&j->handoff.out, &n, 4);
	pbuf_append(&j->handoff.out, data, len);
	wake = pool_post_locked(j, POOL_POST_OUTPUT);
	pthread_mutex_unlock(&pool.lock);
	if (wake)
		loop_wake(pool.wake_ev);
}

static const struct exec_ops thread_ops = {
    .progress = thread_progress,
    .output = thread_output,
    .on_thread = true,
};

static bool
thread_wait(struct task_ctx *ctx, void *arg)
{
	struct tworker *w = arg;
	struct timespec deadline;
	struct pollfd pfd[2];
	bool was = task_cancelled(ctx); /* a job winding down waits too */
	uint64_t v;

	if (ctx->wait_fd >= 0) {
		/* a cancel writes wakefd */
		pfd[0].fd = ctx->wait_fd;
		pfd[0].events = ctx->wait_write ? POLLOUT : POLLIN;
		pfd[1].fd = w->wakefd;
		pfd[1].events = POLLIN;
		while (poll(pfd, 2, -1) < 0 && errno == EINTR)
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
	while ((was || !task_cancelled(ctx)) &&
	       pthread_cond_timedwait(&w->cond, &pool.lock, &deadline) !=
	           ETIMEDOUT)
		;
	pthread_mutex_unlock(&pool.lock);
	return !task_cancelled(ctx);
}

struct thread_steps {
	struct tworker *w;
	bool reported; /* the loop was woken after the first step */
};

/*
 * Between two steps: the first one wakes the loop, which then shows the
 * job running; a wait is waited out here.
 */
static bool
thread_pause(struct task_ctx *ctx, enum task_step st, void *arg)
{
	struct thread_steps *s = arg;
	bool wake;

	if (!s->reported) {
		s->reported = true;
		pthread_mutex_lock(&pool.lock);
		wake = pool_wake_locked();
		pthread_mutex_unlock(&pool.lock);
		if (wake)
			loop_wake(pool.wake_ev);
	}
	/* a wait a cancel cut short: the end, unless the job winds down */
	return st != TASK_WAIT || thread_wait(ctx, s->w) ||
	       task_winding_down(ctx);
}

/*
 * Run one job.  "Started" rides along with the job's next report rather
 * than waking the loop on its own: a short job costs the loop one wake-up
 * in all; a longer one wakes it after its first step.
 */
static void
thread_run(struct tworker *w, struct job *j, uint32_t served)
{
	struct task_ctx *ctx = &j->ctx;
	struct thread_steps steps = {.w = w};
	enum task_step st = TASK_FAILED;
	bool wake;

	pthread_mutex_lock(&pool.lock);
	j->handoff.worker = w->index;
	j->handoff.tid = w->tid;
	j->handoff.served = served;
	w->job = j->id;
	w->served = served;
	w->shown_tid = w->tid;
	j->handoff.started = loop_now_us();
	pool_list_locked(j, POOL_POST_STARTED);
	pthread_mutex_unlock(&pool.lock);

	if (!task_cancelled(ctx) &&
	    task_warm_start(&w->warm, ctx, j, &thread_ops) == 0)
		st = task_run_blocking(ctx, thread_pause, &steps);
	task_ctx_stop(ctx);

	pthread_mutex_lock(&pool.lock);
	if (st == TASK_DONE)
		j->handoff.state = PS_SUCCEEDED;
	else if (task_cancelled(ctx))
		j->handoff.state = PS_CANCELLED;
	else
		j->handoff.state = PS_FAILED;
	w->job = 0;
	j->handoff.ended = true; /* see thread_cancel */
	wake = pool_post_locked(j, POOL_POST_END);
	pthread_mutex_unlock(&pool.lock);
	if (wake)
		loop_wake(pool.wake_ev);
}

/* With the lock held: tell the loop this thread can be joined. */
static bool
thread_leave_locked(struct tworker *w)
{
	w->exited = true;
	pool.nexited++;
	return pool_wake_locked();
}

static void *
thread_main(void *arg)
{
	struct tworker *w = arg;
	uint32_t served = 0;
	struct job *j;
	bool wake;

	w->tid = gettid();
	thread_self = w;
	if (w->fresh_job != NULL) {
		thread_run(w, w->fresh_job, 1);
	} else {
		pthread_mutex_lock(&pool.lock);
		for (;;) {
			while (TAILQ_EMPTY(&pool.todo) && !pool.stopping &&
			       w->index < pool.size) {
				pool.idle++;
				pthread_cond_wait(&pool.work, &pool.lock);
				pool.idle--;
			}
			if (pool.stopping || w->index >= pool.size)
				break;
			j = TAILQ_FIRST(&pool.todo);
			TAILQ_REMOVE(&pool.todo, j, link);
			j->xdata = w; /* now running: see thread_cancel */
			pthread_mutex_unlock(&pool.lock);
			thread_run(w, j, ++served);
			pthread_mutex_lock(&pool.lock);
		}
		pthread_mutex_unlock(&pool.lock);
	}
	task_warm_fini(&w->warm);
	pthread_mutex_lock(&pool.lock);
	wake = thread_leave_locked(w);
	pthread_mutex_unlock(&pool.lock);
	if (wake)
		loop_wake(pool.wake_ev);
	return NULL;
}

static void
thread_free(struct tworker *w)
{
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	close(w->wakefd);
	free(w);
}

/* Join the threads that have left; the loop's side of a shrink. */
static void
thread_reap(void)
{
	struct tworker *w, *next;
	bool refill = false;

	for (w = TAILQ_FIRST(&pool.workers); w != NULL; w = next) {
		bool gone;

		next = TAILQ_NEXT(w, link);
		pthread_mutex_lock(&pool.lock);
		gone = w->exited;
		if (gone)
			pool.nexited--;
		pthread_mutex_unlock(&pool.lock);
		if (!gone)
			continue;
		TAILQ_REMOVE(&pool.workers, w, link);
		/* it left as the pool shrank, but the pool grew back */
		if (w->index >= 0 && w->index < pool.size)
			refill = true;
		thread_free(w);
	}
	if (refill)
		thread_fill();
}

static struct tworker *
thread_spawn(int index, struct job *fresh)
{
	struct tworker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->index = index;
	w->fresh_job = fresh;
	w->since = loop_now_us();
	pthread_cond_init(&w->cond, &pool_condattr);
	w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fresh != NULL)
		fresh->xdata = w;
	if (w->wakefd < 0 ||
	    (errno = loop_thread_create(&w->thread, thread_main, w)) != 0) {
		if (index < 0 || pool.retry_ms == 0)
			log_warn("thread pool: cannot start worker %d", index);
		if (w->wakefd >= 0)
			close(w->wakefd);
		pthread_cond_destroy(&w->cond);
		free(w);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&pool.workers, w, link);
	return w;
}

/*
 * The loop takes what the workers posted: under the lock it copies the
 * hand-off fields into the job, then, unlocked, sends the events.
 */
static void
thread_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	size_t n, i;
	bool reap;

	loop_worked = true;
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
		pool.taken[i].out = j->handoff.out;
		memset(&j->handoff.out, 0, sizeof(j->handoff.out));
		if (j->handoff.waiter != NULL)
			pthread_cond_signal(j->handoff.waiter);
		pool.taken[i].job = j;
		pool.taken[i].post = post;
		pool.taken[i].state = j->handoff.state;
		pool.taken[i].started = j->handoff.started;
		j->handoff.post = 0;
	}
	pool.nposted = 0;
	atomic_store_explicit(&pool.wake_pending, false, memory_order_relaxed);
	reap = pool.nexited > 0; /* a thread leaving later wakes us again */
	pthread_mutex_unlock(&pool.lock);

	for (i = 0; i < n; i++) {
		struct taken *t = &pool.taken[i];

		if (t->post & POOL_POST_STARTED) {
			pool.nqueued--;
			pool.nrunning++;
			job_start(t->job);
			job_started_at(t->job, t->started);
		}
		if (t->out.len > 0) {
			size_t off = 0;
			uint32_t len;

			while (off + 5 <= t->out.len) {
				memcpy(&len, t->out.data + off + 1, 4);
				job_output(t->job, t->out.data[off],
				           t->out.data + off + 5, len);
				off += 5 + len;
			}
			/* its client is behind: the worker waits for it */
			if (job_output_held(t->job)) {
				pthread_mutex_lock(&pool.lock);
				if (!t->job->handoff.ended)
					t->job->handoff.held = true;
				pthread_mutex_unlock(&pool.lock);
			}
		}
		pbuf_free(&t->out);
		if ((t->post & (POOL_POST_PROGRESS | POOL_POST_END)) ==
		    POOL_POST_PROGRESS)
			job_progress(t->job, t->job->done, t->job->total, NULL);
		if (t->post & POOL_POST_END) {
			pool.nrunning--;
			t->job->xdata = NULL;
			job_finish(t->job, t->state);
		}
	}
	if (reap)
		thread_reap();
}

/*
 * Jobs submitted during one loop pass go to the workers together: one
 * lock, and a signal per job only while workers are idle.  The signals
 * come after the unlock, so a woken worker does not block on the lock
 * the loop still holds.
 */
static void
thread_flush(void)
{
	struct job *j;
	int n = 0;
	bool all;

	if (TAILQ_EMPTY(&pool.pending))
		return;
	pthread_mutex_lock(&pool.lock);
	while ((j = TAILQ_FIRST(&pool.pending)) != NULL) {
		TAILQ_REMOVE(&pool.pending, j, link);
		j->handoff.pending = false;
		TAILQ_INSERT_TAIL(&pool.todo, j, link);
		n++;
	}
	all = n >= pool.idle;
	pthread_mutex_unlock(&pool.lock);
	if (!evtimer_pending(pool.watch_ev, NULL))
		evtimer_add(pool.watch_ev, &thread_watch_every);
	if (all)
		pthread_cond_broadcast(&pool.work);
	else
		while (n-- > 0)
			pthread_cond_signal(&pool.work);
}

/*
 * A job's start is posted without waking the loop, and wakes it with the
 * job's first report: a job whose first step lasts long would look
 * queued, and its time limit would not count, until then.  While jobs
 * are queued, the loop takes what was posted every 100 ms.
 */
static void
thread_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	thread_wake_cb(-1, 0, NULL);
	if (pool.nqueued > 0)
		evtimer_add(pool.watch_ev, &thread_watch_every);
}

/* The loop is polling: take what the workers posted, if anything. */
static bool
thread_poll(void)
{
	if (!atomic_load(&pool.wake_pending))
		return false;
	thread_wake_cb(-1, 0, NULL);
	return true;
}

static void
thread_submit_cb(evutil_socket_t fd, short what, void *arg)
{
	thread_flush();
}

static void
thread_submit(struct job *j)
{
	pool.nqueued++;
	j->handoff.ended = false; /* a retry reuses the job */
	j->handoff.held = false;
	if (j->fresh) {
		if (thread_spawn(-1, j) == NULL) {
			pool.nqueued--;
			task_fail(&j->ctx, "cannot start a fresh thread");
			job_finish(j, PS_FAILED);
		}
		return;
	}
	j->xdata = NULL;          /* queued */
	j->handoff.ended = false; /* a retry reuses the job */
	j->handoff.pending = true;
	if (TAILQ_EMPTY(&pool.pending))
		event_active(pool.submit_ev, 0, 1);
	TAILQ_INSERT_TAIL(&pool.pending, j, link);
}

static void
thread_cancel(struct job *j)
{
	struct tworker *w;
	uint64_t one = 1;

	atomic_store(&j->ctx.cancel, true);
	if (j->handoff.pending) {
		TAILQ_REMOVE(&pool.pending, j, link);
		j->handoff.pending = false;
		pool.nqueued--;
		job_finish(j, PS_CANCELLED);
		return;
	}
	pthread_mutex_lock(&pool.lock);
	if (j->handoff.ended) {
		/* its end is on the way; its worker may be gone */
		pthread_mutex_unlock(&pool.lock);
		return;
	}
	if ((w = j->xdata) == NULL) {
		TAILQ_REMOVE(&pool.todo, j, link);
	} else {
		pthread_cond_signal(&w->cond);
		(void)write(w->wakefd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&pool.lock);
	if (w == NULL) {
		pool.nqueued--;
		job_finish(j, PS_CANCELLED);
	}
}

static void
thread_fill_cb(evutil_socket_t fd, short what, void *arg)
{
	thread_fill();
}

/*
 * Start the pool's missing workers; those that cannot start are tried
 * again after 10 ms, 20 ms... up to a second.  How many are missing.
 */
static int
thread_fill(void)
{
	bool have[POOL_MAX_THREADS] = {false};
	struct tworker *w;
	int i, missing = 0;

	if (pool.stopping || loop_stopping())
		return 0;
	TAILQ_FOREACH(w, &pool.workers, link)
		if (w->index >= 0 && w->index < pool.size)
			have[w->index] = true;
	for (i = 0; i < pool.size; i++)
		if (!have[i] && thread_spawn(i, NULL) == NULL)
			missing++;
	if (missing == 0) {
		if (pool.retry_ms > 0)
			log_info("thread pool: all %d workers running again",
			         pool.size);
		pool.retry_ms = 0;
		evtimer_del(pool.fill_ev);
		return 0;
	}
	if (pool.retry_ms == 0)
		log_warnx("thread pool: %d of %d workers missing; trying "
		          "again until they start",
		          missing, pool.size);
	loop_retry_later(pool.fill_ev, &pool.retry_ms, POOL_RETRY_MIN_MS,
	                 POOL_RETRY_MAX_MS);
	return missing;
}

/* The job's client has caught up: its worker may go on. */
static void
thread_resume(struct job *j)
{
	pthread_mutex_lock(&pool.lock);
	j->handoff.held = false;
	if (j->handoff.waiter != NULL)
		pthread_cond_signal(j->handoff.waiter);
	pthread_mutex_unlock(&pool.lock);
}

int
pool_thread_init(struct event_base *base, int n)
{
	/* timed waits measure against CLOCK_MONOTONIC */
	pthread_condattr_init(&pool_condattr);
	pthread_condattr_setclock(&pool_condattr, CLOCK_MONOTONIC);
	TAILQ_INIT(&pool.todo);
	TAILQ_INIT(&pool.pending);
	pool.wake_ev = event_new(base, -1, EV_READ, thread_wake_cb, NULL);
	pool.submit_ev = event_new(base, -1, 0, thread_submit_cb, NULL);
	pool.fill_ev = evtimer_new(base, thread_fill_cb, NULL);
	pool.watch_ev = evtimer_new(base, thread_watch_cb, NULL);
	if (pool.wake_ev == NULL || pool.submit_ev == NULL ||
	    pool.fill_ev == NULL || pool.watch_ev == NULL || n < 1 ||
	    n > POOL_MAX_THREADS)
		return -1;
	pool.size = n;
	return thread_fill() == 0 ? 0 : -1; /* at start-up, all or nothing */
}

/* Workers that cannot start yet are tried again until they do. */
int
pool_thread_resize(int n)
{
	if (n < 1 || n > POOL_MAX_THREADS)
		return -1;
	pthread_mutex_lock(&pool.lock);
	pool.size = n;
	pthread_cond_broadcast(&pool.work); /* the extra ones leave */
	pthread_mutex_unlock(&pool.lock);
	thread_fill();
	return 0;
}

int
pool_thread_size(void)
{
	return pool.size;
}

void
pool_thread_foreach(void (*fn)(const struct pool_worker_info *, void *),
                    void *arg)
{
	bool have[POOL_MAX_THREADS] = {false};
	struct pool_worker_info info;
	struct tworker *w;
	int i;

	pthread_mutex_lock(&pool.lock);
	TAILQ_FOREACH(w, &pool.workers, link) {
		memset(&info, 0, sizeof(info));
		info.exec = PX_THREAD;
		info.index = w->index;
		info.id = (uint64_t)w->shown_tid;
		info.served = w->served;
		info.since = w->since;
		info.job = w->job;
		info.state = w->index < 0            ? "fresh"
		             : w->index >= pool.size ? "retiring"
		             : w->job != 0           ? "busy"
		                                     : "idle";
		pthread_mutex_unlock(&pool.lock);
		fn(&info, arg); /* encodes a row: not under the lock */
		pthread_mutex_lock(&pool.lock);
	}
	pthread_mutex_unlock(&pool.lock);
	/* the pool's places that no thread holds: being started again */
	TAILQ_FOREACH(w, &pool.workers, link)
		if (w->index >= 0 && w->index < pool.size)
			have[w->index] = true;
	for (i = 0; i < pool.size; i++) {
		if (have[i])
			continue;
		memset(&info, 0, sizeof(info));
		info.exec = PX_THREAD;
		info.index = i;
		info.since = loop_now_us();
		info.state = "missing";
		fn(&info, arg);
	}
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

/*
 * Join a worker at the stop.  The stop has waited for every job already,
 * up to its hard limit, so a thread still inside a job after another
 * second is stuck in a step (a thread cannot be killed): it is left to
 * the process's exit rather than waited for forever.
 */
static bool
thread_join_at_stop(struct tworker *w)
{
	struct timespec until;
	struct job *j;
	uint64_t job;

	pthread_mutex_lock(&pool.lock);
	job = w->job;
	pthread_mutex_unlock(&pool.lock);
	if (job == 0) {
		thread_free(w);
		return true;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 1;
	if (pthread_timedjoin_np(w->thread, NULL, &until) == 0) {
		pthread_cond_destroy(&w->cond);
		close(w->wakefd);
		free(w);
		return true;
	}
	log_warnx("thread worker %d is stuck in job %llu; exiting without it",
	          w->index, (unsigned long long)job);
	pthread_detach(w->thread);
	/* the thread still holds the job: its memory stays until the exit */
	if ((j = job_find(job)) != NULL)
		job_abandon(j);
	return false;
}

static void
thread_shutdown(void)
{
	struct tworker *w;
	bool left = false;

	pthread_mutex_lock(&pool.lock);
	pool.stopping = true;
	pthread_cond_broadcast(&pool.work);
	pthread_mutex_unlock(&pool.lock);
	while ((w = TAILQ_FIRST(&pool.workers)) != NULL) {
		TAILQ_REMOVE(&pool.workers, w, link);
		if (!thread_join_at_stop(w))
			left = true;
	}
	if (left) {
		/*
		 * A thread left behind may still post its job's end: it
		 * finds the list it posts to and never wakes the loop.
		 */
		pthread_mutex_lock(&pool.lock);
		atomic_store(&pool.wake_pending, true);
		pthread_mutex_unlock(&pool.lock);
		return;
	}
	if (pool.wake_ev != NULL)
		event_free(pool.wake_ev);
	if (pool.submit_ev != NULL)
		event_free(pool.submit_ev);
	if (pool.fill_ev != NULL)
		event_free(pool.fill_ev);
	if (pool.watch_ev != NULL)
		event_free(pool.watch_ev);
	pool.wake_ev = pool.submit_ev = pool.fill_ev = pool.watch_ev = NULL;
	free(pool.posted);
	free(pool.taken);
	pool.posted = NULL;
	pool.taken = NULL;
	pthread_condattr_destroy(&pool_condattr);
}

const struct executor thread_executor = {
    .submit = thread_submit,
    .cancel = thread_cancel,
    .resume = thread_resume,
    .shutdown = thread_shutdown,
    .running = thread_running,
    .queued = thread_queued,
    .flush = thread_flush,
    .poll = thread_poll,
};
