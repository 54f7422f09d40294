/*
 * deps.h -- deps.c: jobs that wait for other jobs (--after), and the
 * failure that ends a whole chain at once.
 */
#ifndef DEPS_H
#define DEPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct job;

/* Does the job wait for others?  Then deps.c queues it once they end. */
bool deps_hold(struct job *);
/* A job reached its final state: its dependents go on, or fail. */
void deps_ended(struct job *);
/* Cancel a job that waits for others: true if it did (it has ended). */
bool deps_cancel(struct job *);
/*
 * While concd stops: mark and count the jobs that wait, directly or not,
 * for a job the stop leaves queued (queue_parked); deps_is_parked tells
 * whether a job is one of those of the last count.
 */
size_t deps_parked(void);
bool deps_is_parked(const struct job *);
/* After a restart's recovery: waited-for jobs that did not come back. */
void deps_recovered(void);
/*
 * The references among n lines of one gather (line i names the lines
 * refs[first[i]] .. refs[first[i + 1] - 1], each < n): 0, or -1 with a
 * cause that names the lines of a cycle.
 */
int deps_order_check(size_t n, const uint32_t *first, const uint32_t *refs,
                     char *cause, size_t len);
void deps_shutdown(void);

#endif
