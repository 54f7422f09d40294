/*
 * pool_remote.h -- pool_remote.c: the remote executor, warm concd
 * workers on Slurm's nodes.
 */
#ifndef POOL_REMOTE_H
#define POOL_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

#include "executor.h"

extern const struct executor remote_executor;

/* At start: cancel the allocations an earlier concd left. */
void pool_remote_init(int busy_poll_us);
/*
 * Ask Slurm for an allocation of n tasks and start one worker in each
 * (partition and time_limit may be NULL): the allocation's Slurm name
 * into name, or -1 with a reason.
 */
int pool_remote_add(unsigned n, const char *partition, const char *time_limit,
                    char *name, size_t namelen, char *cause, size_t causelen);
/*
 * Every remote worker takes no new job, finishes its own and exits; then
 * its allocation ends.  How many workers were told.
 */
unsigned pool_remote_remove(void);
/* Workers that run jobs or will soon (pending, starting, ready). */
unsigned pool_remote_available(void);
void pool_remote_foreach(void (*)(const struct pool_worker_info *, void *),
                         void *);

#endif
