/*
 * executor.h -- sched.c: executors behind one interface (named so
 * because <sched.h> is the system's).
 */
#ifndef EXECUTOR_H
#define EXECUTOR_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct job;
struct task;

struct executor {
	/* Take a queued job: start it now or queue it. */
	void (*submit)(struct job *);
	/* Cancel a queued or running job; it finishes through job_finish. */
	void (*cancel)(struct job *);
	/* A held job's attached watchers have caught up: let it go on. */
	void (*resume)(struct job *);
	void (*shutdown)(void);
	size_t (*running)(void);
	size_t (*queued)(void);
	/* Optional: hand over at once what submit batched for later. */
	void (*flush)(void);
	/*
	 * Optional: while the loop polls (loop_run), take what other threads
	 * posted with loop_wake; true if there was something.
	 */
	bool (*poll)(void);
};

/* One row of `concctl pool`. */
struct pool_worker_info {
	enum proto_exec exec;
	int index;          /* -1: a fresh worker */
	bool user;          /* one of a user's workers (pool_process.c) */
	uid_t uid;          /* ... started as uid */
	uint64_t id;        /* thread id or process id */
	uint32_t served;    /* jobs it has run */
	uint64_t since;     /* µs since the epoch */
	const char *state;  /* idle, busy, retiring, fresh */
	uint64_t job;       /* the job it runs, 0: none */
	const char *node;   /* a remote worker's node, or NULL */
	uint64_t slurm_job; /* its allocation's Slurm job, 0: none yet */
};

const struct executor *sched_executor(enum proto_exec);
/* Choose the executor for a request: -1 with a reason if impossible. */
int sched_choose(const struct task *, enum proto_exec requested, bool fresh,
                 enum proto_exec *out, char *cause, size_t causelen);
/* Register sched.c's hooks with the floors below it. */
void sched_init(void);
/* A job to run: after the jobs it depends on, when its group has room. */
void sched_admit(struct job *);
/* To its executor, now. */
void sched_submit(struct job *);
void sched_flush(void);
bool sched_poll(void);
void sched_set_queue_limit(size_t);
/* Room for n more jobs on executor x? */
bool sched_has_room(enum proto_exec x, size_t n);
void sched_status_stopping(void);
void sched_shutdown(void);

#endif
