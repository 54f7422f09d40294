/*
 * hook.h -- hook.c: concd.conf's on-end, a command run as each job ends.
 */
#ifndef HOOK_H
#define HOOK_H

struct job;

/* The command (for /bin/sh -c); NULL: none.  -1 if out of memory. */
int hook_set_on_end(const char *command);
/* A job reached its final state: its hook runs (or waits its turn). */
void hook_ended(const struct job *);
/* At the stop: drop what waits; let what runs go on. */
void hook_shutdown(void);

#endif
