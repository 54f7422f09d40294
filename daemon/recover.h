/*
 * recover.h -- recover.c: the jobs of the store, back after a restart.
 */
#ifndef RECOVER_H
#define RECOVER_H

#include <stddef.h>

/* Before any worker starts: kill the previous concd's commands. */
size_t recover_kill_leftovers(void);
/* After the executors: queued jobs again, running ones interrupted. */
void recover_jobs(void);

#endif
