/*
 * loop.h -- the ground floor of the daemon (DESIGN.md §14): the event
 * base, the clocks, waking the loop from another thread, and running it
 * with busy polling.  It knows nothing of the floors above it.
 */
#ifndef LOOP_H
#define LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

extern struct event_base *loop_base;

/* Make loop_base; -1 if libevent cannot. */
int loop_init(void);
void loop_free(void);

/* When loop_init ran, in wall-clock µs. */
uint64_t loop_started_us(void);
/* Wall-clock µs since the epoch: what jobs and workers report. */
uint64_t loop_now_us(void);
/* Monotonic µs: for measuring intervals. */
uint64_t loop_mono_us(void);
/*
 * Arm timer ev for a wait of ms that must not end early, counted from now
 * (not from the start of this pass: libevent's cached time falls behind
 * in a long pass); 0: at once, after the next poll.  libevent times its
 * timers by the kernel's coarse monotonic clock, which moves in ticks
 * (4 ms at HZ=250), so a timer may fire up to a tick before its time by
 * the precise clock: the wait is armed that much, the clock's
 * resolution, longer.
 */
void loop_wait_add(struct event *ev, uint64_t ms);

/*
 * pthread_create, the new thread blocking every signal: signals are the
 * loop's, so none runs a handler on a pool's thread or interrupts a
 * task's system call there.  0 or an errno.
 */
int loop_thread_create(pthread_t *, void *(*)(void *), void *);
/* Run the loop until it is told to exit; see loop.c. */
/* A sched_yield that takes longer ran something else: polling stops. */
#define BUSY_POLL_CONTESTED_US 20
void loop_run(int busy_poll_us);
/* From another thread, after posting work for the loop: wake it unless it
 * polls. */
void loop_wake(struct event *);
/* Set by callbacks that did work: the loop keeps polling a while longer. */
extern bool loop_worked;
/* While it polls, the loop takes what other threads posted through this
 * hook (sched.c's): true if there was something. */
void loop_hook_poll(bool (*)(void));
/*
 * The daemon is stopping: no new jobs or retries.  The floor that stops
 * it (server.c) says so; any floor may ask.
 */
void loop_set_stopping(void);
bool loop_stopping(void);

/*
 * Something a stop may be waiting for changed (a job's state, a child
 * reaped): any floor calls loop_changed(), and the floors above that want
 * to know (server.c's stop, sched.c's STATUS= line) register a hook, run
 * in the order registered, each once.  -1 if there is no room for
 * another.
 */
#define LOOP_MAX_CHANGED_HOOKS 4
int loop_hook_changed(void (*)(void *), void *arg);
void loop_changed(void);

/*
 * The busy-poll window after the current one (µs, max the --busy-poll
 * bound): halved when a poll caught nothing, none below max / 8; when
 * work came that a window would have caught, doubled, from max / 8 up.
 */
uint64_t loop_poll_next(uint64_t window, uint64_t max, bool caught);
/*
 * Something failed and is tried again on ev's timer: *ms (0 the first
 * time) becomes the next delay, from min doubling up to max, and the
 * timer is armed with it.
 */
void loop_retry_later(struct event *ev, unsigned *ms, unsigned min,
                      unsigned max);

#endif
