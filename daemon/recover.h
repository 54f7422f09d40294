/*
 * recover.h -- recover.c: the jobs of the store, back after a restart.
 */
#ifndef RECOVER_H
#define RECOVER_H

#include <stddef.h>

/* Before any worker starts: kill the previous concd's commands. */
size_t recover_kill_leftovers(void);
/*
 * After the executors: queued jobs again, running ones interrupted.  -1
 * with the cause when the store cannot be read in full: concd does not
 * start on it.
 */
int recover_jobs(char *cause, size_t len);

#endif
