/*
 * counter -- the race-condition demonstration: T threads increment one
 * shared counter N times each, with or without a mutex.
 *
 * Without the lock each increment is a relaxed atomic load followed by a
 * relaxed atomic store: two threads can load the same value and both
 * store value + 1, so updates are lost, yet there is no data race in the
 * C sense (no undefined behaviour, nothing for ThreadSanitizer to report).
 * With the lock the count is exact.
 *
 * The first step starts the threads; each one, when it ends, marks itself
 * done and signals an eventfd.  Steps then wait for that fd, join the
 * threads that have ended and report progress as threads joined/total,
 * so the executor keeps hearing cancels while the threads run.  The
 * threads look at the cancel flag every 65536 increments.
 */
#include <sys/eventfd.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "../task.h"

#define COUNTER_MAX_THREADS 64
#define COUNTER_CHECK_EVERY 65536 /* increments between cancel checks */

enum { COUNTER_THREADS, COUNTER_ITERS, COUNTER_LOCK };

static const struct task_arg counter_args[] = {
    [COUNTER_THREADS] = {"threads", TASK_ARG_INT, false, 1, COUNTER_MAX_THREADS,
                         4, "threads incrementing the shared counter"},
    [COUNTER_ITERS] = {"iters", TASK_ARG_INT, false, 1, 100000000, 1000000,
                       "increments per thread"},
    [COUNTER_LOCK] = {"lock", TASK_ARG_BOOL, false, 0, 1, 0,
                      "take a mutex around each increment"},
};

struct counter_state;

struct counter_thread {
	struct counter_state *s;
	pthread_t tid;
	atomic_bool done; /* set by the thread as it ends */
	bool joined;
};

struct counter_state {
	struct task_ctx *ctx;
	uint32_t nthreads;
	uint64_t iters;
	bool lock;

	uint32_t nstarted, njoined;
	int efd; /* written by each thread as it ends */
	bool mutex_ready;
	atomic_bool quit; /* stop early */

	pthread_mutex_t mutex;
	uint64_t locked_count;       /* lock=true: under mutex */
	_Atomic uint64_t racy_count; /* lock=false: relaxed load + store */

	struct counter_thread th[COUNTER_MAX_THREADS];
};

static bool
counter_stopping(struct counter_state *s)
{
	return atomic_load_explicit(&s->quit, memory_order_relaxed) ||
	       task_cancelled(s->ctx);
}

static void *
counter_thread_main(void *arg)
{
	struct counter_thread *t = arg;
	struct counter_state *s = t->s;
	uint64_t one = 1, i, v;
	ssize_t n;

	for (i = 0; i < s->iters; i++) {
		if (i % COUNTER_CHECK_EVERY == 0 && i > 0 &&
		    counter_stopping(s))
			break;
		if (s->lock) {
			pthread_mutex_lock(&s->mutex);
			s->locked_count++;
			pthread_mutex_unlock(&s->mutex);
		} else {
			v = atomic_load_explicit(&s->racy_count,
			                         memory_order_relaxed);
			atomic_store_explicit(&s->racy_count, v + 1,
			                      memory_order_relaxed);
		}
	}
	atomic_store_explicit(&t->done, true, memory_order_release);
	/* Cannot fail: 64 writes of 1 do not fill an eventfd. */
	n = write(s->efd, &one, sizeof(one));
	(void)n;
	return NULL;
}

/* Join the threads that have ended, or all of them. */
static void
counter_join(struct counter_state *s, bool all)
{
	uint32_t i;

	for (i = 0; i < s->nstarted; i++) {
		struct counter_thread *t = &s->th[i];

		if (t->joined)
			continue;
		if (!all &&
		    !atomic_load_explicit(&t->done, memory_order_acquire))
			continue;
		pthread_join(t->tid, NULL);
		t->joined = true;
		s->njoined++;
	}
}

static uint64_t
counter_value(struct counter_state *s)
{
	if (s->lock)
		return s->locked_count; /* every thread is joined */
	return atomic_load_explicit(&s->racy_count, memory_order_relaxed);
}

static int
counter_start(struct task_ctx *ctx, const union task_value *argv)
{
	struct counter_state *s = task_state(ctx);
	uint32_t i;

	s->ctx = ctx;
	s->nthreads = (uint32_t)argv[COUNTER_THREADS].i;
	s->iters = (uint64_t)argv[COUNTER_ITERS].i;
	s->lock = argv[COUNTER_LOCK].b;
	atomic_init(&s->quit, false);
	atomic_init(&s->racy_count, 0);
	for (i = 0; i < COUNTER_MAX_THREADS; i++)
		atomic_init(&s->th[i].done, false);
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0) {
		task_fail(ctx, "counter: eventfd: %s", strerror(errno));
		return -1;
	}
	if (pthread_mutex_init(&s->mutex, NULL) != 0) {
		close(s->efd);
		task_fail(ctx, "counter: cannot create the mutex");
		return -1;
	}
	s->mutex_ready = true;
	return 0;
}

/* The first step: start the threads; -1 (all joined again) on failure. */
static int
counter_spawn(struct task_ctx *ctx, struct counter_state *s)
{
	struct counter_thread *t;
	int rc;

	for (s->nstarted = 0; s->nstarted < s->nthreads; s->nstarted++) {
		t = &s->th[s->nstarted];
		t->s = s;
		rc = pthread_create(&t->tid, NULL, counter_thread_main, t);
		if (rc != 0) {
			atomic_store(&s->quit, true);
			counter_join(s, true);
			task_fail(ctx,
			          "counter: cannot start thread %u of %u: %s",
			          s->nstarted + 1, s->nthreads, strerror(rc));
			return -1;
		}
	}
	return 0;
}

static enum task_step
counter_step(struct task_ctx *ctx)
{
	struct counter_state *s = task_state(ctx);
	msgpack_packer *pk;
	uint64_t expected, actual, drain;
	uint32_t before;
	ssize_t n;

	if (s->nstarted == 0 && counter_spawn(ctx, s) < 0)
		return TASK_FAILED;
	if (task_cancelled(ctx)) {
		atomic_store(&s->quit, true);
		counter_join(s, true);
		return task_fail(ctx,
		                 "counter: cancelled after %llu of %llu "
		                 "increments",
		                 (unsigned long long)counter_value(s),
		                 (unsigned long long)s->nthreads * s->iters);
	}
	n = read(s->efd, &drain, sizeof(drain)); /* reset, then look */
	(void)n;
	before = s->njoined;
	counter_join(s, false);
	if (s->njoined != before)
		task_progress(ctx, s->njoined, s->nthreads, NULL);
	if (s->njoined < s->nthreads)
		return task_wait_fd(ctx, s->efd, false);

	expected = (uint64_t)s->nthreads * s->iters;
	actual = counter_value(s);
	pk = task_result(ctx);
	msgpack_pack_map(pk, 4);
	msgpack_pack_str_with_body(pk, "expected", 8);
	msgpack_pack_uint64(pk, expected);
	msgpack_pack_str_with_body(pk, "actual", 6);
	msgpack_pack_uint64(pk, actual);
	msgpack_pack_str_with_body(pk, "lost", 4);
	msgpack_pack_uint64(pk, expected - actual);
	msgpack_pack_str_with_body(pk, "lock", 4);
	if (s->lock)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	return TASK_DONE;
}

static void
counter_stop(struct task_ctx *ctx)
{
	struct counter_state *s = task_state(ctx);

	atomic_store(&s->quit, true);
	counter_join(s, true);
	if (s->mutex_ready)
		pthread_mutex_destroy(&s->mutex);
	close(s->efd);
}

const struct task task_counter = {
    .abi = CONCD_TASK_ABI,
    .name = "counter",
    .summary = "threads increment one counter, with or without a lock",
    .traits = TASK_CPU,
    .executors = TASK_ON_THREAD | TASK_ON_PROCESS,
    .state_size = sizeof(struct counter_state),
    .args = counter_args,
    .nargs = sizeof(counter_args) / sizeof(counter_args[0]),
    .start = counter_start,
    .step = counter_step,
    .stop = counter_stop,
};
