/*
 * queue.h -- queue.c: the groups a job waits in for its CPU slots, in
 * order of priority, then submission; schedules and holds.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include <stdbool.h>

struct job;

/* A job that may run once its group has room: now, or when it has. */
void queue_submit(struct job *);
/* It reached its final state: its slots go to the next job. */
void queue_ended(struct job *);
/* Cancel a job that waits in its group: true if it did (it has ended). */
bool queue_cancel(struct job *);

#endif
