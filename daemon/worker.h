/*
 * worker.h -- worker.c: a worker process, and what it shares with
 * pool_process.c.
 */
#ifndef WORKER_H
#define WORKER_H

#include <sys/types.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define WORKER_FD     3 /* a worker process's socketpair end */
#define WORKER_SHM_FD 4 /* its record page, see struct worker_shm */

/* stdio: a remote worker, on standard input and output (worker.c) */
int worker_main(int index, bool once, bool stdio, int busy_poll_us);
/*
 * A user's worker (`--user UID`, started by a root concd): take the
 * user's identity for good, before anything else.  -1 if it cannot: the
 * worker then fails every job it is given, with the reason.
 */
int worker_become(uid_t uid);
/* Whether a user's worker keeps this NAME=VALUE of concd's environment. */
bool worker_env_kept(const char *var);

/*
 * A page that a worker process and concd both map (a memfd the worker
 * finds on WORKER_SHM_FD): the worker notes in it which job it starts
 * before any of the job's code runs, and which one it last ended.  Its
 * "started" and "end" messages go out in batches, so when a worker dies
 * this page is what tells concd which jobs it had run, and while a job's
 * first step lasts, that it is running.
 */
struct worker_shm {
	_Atomic uint64_t started;  /* the job it began last, 0: none yet */
	_Atomic uint64_t ended;    /* the job whose end it wrote last */
	_Atomic uint64_t began_us; /* when it began it, µs since the epoch */
	/*
	 * concd: the running job it cancels, written before the "cancel"
	 * message, so that a step that blocks (python) hears it at once
	 */
	_Atomic uint64_t cancel;
};

#endif
