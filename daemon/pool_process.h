/*
 * pool_process.h -- pool_process.c: the executor of pre-forked worker
 * processes (worker.c).
 */
#ifndef POOL_PROCESS_H
#define POOL_PROCESS_H

#include "executor.h"

extern const struct executor process_executor;
int pool_process_init(int nprocesses, const char *plugin_dir,
                      int max_jobs_per_worker, int busy_poll_us);
void pool_process_set_max_jobs(int);
/* Seconds a user's worker is kept without a job (user-worker-idle). */
void pool_process_set_user_idle(int);
int pool_process_resize(int);
int pool_process_size(void);
void pool_process_foreach(void (*)(const struct pool_worker_info *, void *),
                          void *);

#endif
