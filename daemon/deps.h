/*
 * deps.h -- deps.c: jobs that wait for other jobs (--after), and the
 * failure that ends a whole chain at once.
 */
#ifndef DEPS_H
#define DEPS_H

#include <stdbool.h>

struct job;

/* Does the job wait for others?  Then deps.c queues it once they end. */
bool deps_hold(struct job *);
/* A job reached its final state: its dependents go on, or fail. */
void deps_ended(struct job *);
/* Cancel a job that waits for others: true if it did (it has ended). */
bool deps_cancel(struct job *);

#endif
