/*
 * reap.h -- reap.c: children that tasks hand over.
 */
#ifndef REAP_H
#define REAP_H

#include <sys/types.h>

#include <stddef.h>

struct event_base;

void reap_init(struct event_base *);
/* On the loop: SIGKILL after grace_ms, reap when the pidfd says so. */
void reap_later(pid_t pid, int pidfd, unsigned grace_ms);
/* On a worker: wait for it here, SIGKILL after grace_ms. */
void reap_now(pid_t pid, int pidfd, unsigned grace_ms);
size_t reap_pending(void);
void reap_shutdown(void);

#endif
