/*
 * pool_thread.h -- pool_thread.c: the executor of warm threads.
 */
#ifndef POOL_THREAD_H
#define POOL_THREAD_H

#include "executor.h"

struct event_base;

extern const struct executor thread_executor;
int pool_thread_init(struct event_base *, int nthreads);
int pool_thread_resize(int);
int pool_thread_size(void);
void pool_thread_foreach(void (*)(const struct pool_worker_info *, void *),
                         void *);

#endif
