/*
 * loop.c -- the event loop and what every floor above it shares: the
 * event base, the clocks, waking the loop from another thread, and
 * running it with busy polling.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include <event2/thread.h>

#include "loop.h"

struct event_base *loop_base;

static bool (*loop_poll_hook)(void);
static struct {
	void (*fn)(void *);
	void *arg;
} loop_changed_hooks[LOOP_MAX_CHANGED_HOOKS];
static size_t loop_nchanged;
static uint64_t loop_started;
static uint64_t loop_slack;
static bool loop_stopping_now;

int
loop_init(void)
{
	struct event_config *cfg;

	evthread_use_pthreads();
	if ((cfg = event_config_new()) == NULL)
		return -1;
	/* Look for I/O again after at most 64 callbacks: fairness. */
	event_config_set_max_dispatch_interval(cfg, NULL, 64, 0);
	loop_base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	loop_started = loop_now_us();
#ifdef CLOCK_MONOTONIC_COARSE
	{
		struct timespec res;

		if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 &&
		    res.tv_sec == 0)
			loop_slack = (uint64_t)res.tv_nsec / 1000 + 1;
	}
#endif
	return loop_base != NULL ? 0 : -1;
}

uint64_t
loop_started_us(void)
{
	return loop_started;
}

void
loop_wait_add(struct event *ev, uint64_t ms)
{
	struct timeval tv = {0, 0};
	uint64_t us;

	if (ms > 0) {
		event_base_update_cache_time(loop_base);
		us = ms * 1000 + loop_slack;
		tv.tv_sec = (time_t)(us / 1000000);
		tv.tv_usec = (suseconds_t)(us % 1000000);
	}
	evtimer_add(ev, &tv);
}

void
loop_set_stopping(void)
{
	loop_stopping_now = true;
}

bool
loop_stopping(void)
{
	return loop_stopping_now;
}

int
loop_hook_changed(void (*fn)(void *), void *arg)
{
	size_t i;

	for (i = 0; i < loop_nchanged; i++)
		if (loop_changed_hooks[i].fn == fn &&
		    loop_changed_hooks[i].arg == arg)
			return 0; /* registered already */
	if (loop_nchanged == LOOP_MAX_CHANGED_HOOKS)
		return -1;
	loop_changed_hooks[loop_nchanged].fn = fn;
	loop_changed_hooks[loop_nchanged].arg = arg;
	loop_nchanged++;
	return 0;
}

void
loop_changed(void)
{
	size_t i;

	for (i = 0; i < loop_nchanged; i++)
		loop_changed_hooks[i].fn(loop_changed_hooks[i].arg);
}

void
loop_free(void)
{
	if (loop_base != NULL)
		event_base_free(loop_base);
	loop_base = NULL;
	loop_nchanged = 0;
	loop_poll_hook = NULL;
	libevent_global_shutdown();
}

uint64_t
loop_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
loop_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * Busy polling.  On this kind of machine a wake-up from epoll_wait costs
 * about as much as the rest of a job's round trip, so after the loop has
 * had work it keeps looking for more, without sleeping, for busy_poll µs;
 * a request, a reply from a worker process or a result from a worker
 * thread arriving in that window costs no wake-up.  The window restarts
 * whenever a pass finds something; sched_yield between passes gives the
 * CPU to anything else runnable, and once a yield shows that something
 * else wanted the CPU, the loop sleeps: polling only uses idle time.  An
 * idle daemon sleeps.
 *
 * The window adapts, as KVM's halt polling does: a window that finds no
 * request or result halves the next one, down to none; work that comes
 * sooner than busy_poll µs after the loop went to sleep, which a window
 * would have caught, doubles it again, up to busy_poll.  Jobs that wake
 * the loop only for their own events (the pipes of exec commands, say)
 * so stop paying for windows that never find anything; polling also keeps
 * the core from going idle, and an idle core is where the kernel moves a
 * runnable task waiting on a busy one.
 *
 * While the loop polls, worker threads post their results without waking
 * it (loop_wake): the loop's passes call the poll hook (sched.c's), which
 * takes them.  Before it sleeps, the loop says so (loop_polling = false)
 * and then looks once more; a thread posts, then reads loop_polling.
 * With both orders sequentially consistent, one of them sees the other:
 * either the thread wakes the loop, or the loop's last look finds the
 * post.
 */
bool loop_worked;
static atomic_bool loop_polling;

int
loop_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

void
loop_wake(struct event *ev)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&loop_polling, memory_order_relaxed))
		event_active(ev, EV_READ, 1);
}

/* The current window, in µs: 0 .. busy_poll. */
static uint64_t poll_window;

uint64_t
loop_poll_next(uint64_t window, uint64_t max, bool caught)
{
	if (!caught)
		return window / 2 < max / 8 ? 0 : window / 2;
	if (window == 0)
		return max / 8;
	return window * 2 > max ? max : window * 2;
}

void
loop_hook_poll(bool (*fn)(void))
{
	loop_poll_hook = fn;
}

/* What other threads posted for the loop: true if there was something. */
static bool
loop_take_posted(void)
{
	return loop_poll_hook != NULL && loop_poll_hook();
}

/*
 * Poll until a quiet poll_window has passed: false if the loop must
 * exit.  A poll that found nothing halves the window.
 */
static bool
loop_poll(uint64_t max)
{
	const int flags = EVLOOP_NONBLOCK | EVLOOP_NO_EXIT_ON_EMPTY;
	uint64_t now, until = loop_mono_us() + poll_window;
	bool found = false;

	atomic_store(&loop_polling, true);
	for (;;) {
		loop_worked = false;
		if (event_base_loop(loop_base, flags) < 0 ||
		    event_base_got_exit(loop_base)) {
			atomic_store(&loop_polling, false);
			return false;
		}
		if (loop_take_posted() || loop_worked) {
			found = true;
			until = loop_mono_us() + poll_window;
			continue;
		}
		if ((now = loop_mono_us()) < until) {
			sched_yield();
			/* a yield that ran something else: the CPU is wanted */
			if (loop_mono_us() - now < BUSY_POLL_CONTESTED_US)
				continue;
		}
		atomic_store(&loop_polling, false);
		if (!loop_take_posted())
			break;
		atomic_store(&loop_polling, true);
		found = true;
		until = loop_mono_us() + poll_window;
	}
	if (!found)
		poll_window = loop_poll_next(poll_window, max, false);
	return true;
}

void
loop_run(int busy_poll_us)
{
	const int flags = EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY;
	uint64_t max = (uint64_t)busy_poll_us, slept = 0;

	poll_window = max;
	for (;;) {
		if (max > 0) {
			loop_worked = false;
			slept = loop_mono_us();
		}
		if (event_base_loop(loop_base, flags) < 0 ||
		    event_base_got_exit(loop_base))
			return;
		if (max == 0)
			continue;
		/* work a window would have caught: widen it again */
		if (poll_window < max && loop_worked &&
		    loop_mono_us() - slept < max)
			poll_window = loop_poll_next(poll_window, max, true);
		if (poll_window > 0 && !loop_poll(max))
			return;
	}
}

void
loop_retry_later(struct event *ev, unsigned *ms, unsigned min, unsigned max)
{
	struct timeval tv;

	if (*ms == 0)
		*ms = min;
	else if ((*ms *= 2) > max)
		*ms = max;
	tv.tv_sec = *ms / 1000;
	tv.tv_usec = (suseconds_t)(*ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}
