/*
 * job.h -- job.c: the job table, its records and their events, and the
 * task context every job carries.
 *
 * One thread, the loop thread, owns every structure declared here.  Pool
 * workers touch only a running job's task context (struct task_ctx) and
 * the hand-off queues of their own pool.
 */
#ifndef JOB_H
#define JOB_H

#include <sys/queue.h>
#include <sys/types.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "conn.h"
#include "proto.h"

struct exec_ops;
struct gather;
struct store_row;
struct task;

/*
 * The task context: what a task sees.  While a job runs on a pool
 * worker, only that worker touches it (cancel is atomic); the loop reads
 * it again once the worker has handed the job back.
 */
struct task_ctx {
	const struct exec_ops *ops; /* the executor running it */
	struct pbuf result;
	char *error;
	uint32_t wait_ms;
	int wait_fd;
	bool wait_write;
	uint8_t code; /* enum proto_error a failure has; PE_NONE: its own */
	bool started; /* start() succeeded: stop() is owed */
	atomic_bool cancel;  /* set by the loop, read by the worker */
	bool exited;         /* a command's outcome is known (task_exit) */
	uint8_t exit_code;   /* its exit status, when exit_signal is 0 */
	uint8_t exit_signal; /* the signal that killed it */
};

struct watch {
	struct conn *conn;
	uint64_t req;
	int32_t index;    /* -1: none; WATCH_GATHER: each job's own index */
	uint64_t dropped; /* output bytes it missed (not for WATCH_GATHER) */
	bool attached;    /* the submitter's: the job's output waits for it */
	bool logged;      /* output and end come from the job's log instead */
	LIST_ENTRY(watch) by_job;
	LIST_ENTRY(watch) by_conn;
};
/* A gather request's one watch on all of its jobs. */
#define WATCH_GATHER (-2)

/*
 * What a thread worker hands back, under its pool's lock: the loop copies
 * it into the job's own fields when it takes the job's events.
 */
struct job_handoff {
	uint8_t post;  /* POOL_POST_* bits not yet taken */
	bool pending;  /* loop-owned: not yet handed over */
	bool ended;    /* end posted: its worker may be gone */
	uint8_t state; /* final state, with POOL_POST_END */
	int32_t worker;
	pid_t tid;
	uint32_t served;
	uint64_t started;
	uint64_t done, total;
	char *msg;
	struct pbuf out;        /* [stream][u32 length][bytes]... */
	bool held;              /* for its client: see thread_output */
	pthread_cond_t *waiter; /* its worker waits there */
};

/*
 * A job record.  Fields are ordered by size so that the record has no
 * holes: a sleeping loop job costs little more than this (DESIGN.md §9).
 */
struct job {
	uint64_t id;
	const struct task *task;
	struct job *hnext;     /* id hash chain */
	TAILQ_ENTRY(job) link; /* executor queue, then finished list */
	struct event *timer;   /* the timeout while running; the retry delay */
	struct gather *gather; /* the gather request it came in, or NULL */
	char *msg;
	struct watch_list watches;
	struct job_extra *extra; /* what it asks beyond its task, or NULL */

	uint64_t submitted, started, finished; /* µs since the epoch */
	uint64_t timeout_ms;
	uint64_t done, total;
	/*
	 * How long it ran, in µs of the monotonic clock, which no setting of
	 * the wall clock moves: while it runs, the monotonic time it started
	 * at (job_runtime gives the span so far).
	 */
	uint64_t ran;

	uint32_t retry_delay_ms;
	uid_t uid;
	uint32_t args_len; /* of its raw arguments: job_args */
	uint32_t gindex;   /* its index in its gather request */
	int32_t worker;    /* index in its pool, -1: none */
	pid_t tid;
	uint32_t served;
	uint32_t dslot; /* its place among the jobs the store is owed */
	uint32_t qpos;  /* its place in a heap of queue.c */

	uint8_t state;     /* enum proto_state */
	uint8_t requested; /* enum proto_exec */
	uint8_t exec;      /* enum proto_exec, as run */
	uint8_t err;       /* enum proto_error */
	uint8_t attempt;   /* 1, then 2... with retries */
	uint8_t retries;   /* attempts after the first, at most */
	uint8_t qstate;    /* where queue.c has it (enum in queue.c) */
	/* The loop's alone: a pool worker reads none of them. */
	bool daemon : 1;
	bool fresh : 1;
	bool timing_out : 1; /* a cancel caused by the timeout */
	bool retry_wait : 1; /* between attempts, on the timer */
	bool held : 1;       /* made, not yet given to an executor (gather) */
	bool has_ev : 1;     /* loop_ev is set up */
	bool revoking : 1;   /* asked back from its worker process */
	bool out_held : 1;   /* an attached watcher fell behind: job_output */
	bool dirty : 1;      /* changed since the store last got its row */
	bool stored : 1;     /* its row is in the store, or on its way */
	bool deferred : 1; /* new, running: its first row waits (job_collect) */

	/* What its executor keeps: a loop job its event, a pool job these. */
	union {
		struct {
			void *xdata; /* the pool's own: the worker running it */
			struct job_handoff handoff; /* the thread pool's */
		};
		/* a loop job's one event: timer, fd wait or yield */
		struct event loop_ev;
	};
	struct task_ctx ctx;
};
/* The job a task context belongs to: every context lives in its job. */
#define CTX_JOB(c)                                                             \
	((struct job *)(void *)((char *)(c)-offsetof(struct job, ctx)))
/*
 * A job is one allocation (job_alloc): the record, its raw arguments (a
 * msgpack map), its task's state, which starts 8-byte aligned.
 */
#define JOB_ARGS_ROOM(len) (((size_t)(len) + 7) & ~(size_t)7)
_Static_assert(sizeof(struct job) % 8 == 0, "a task's state is 8-aligned");

static inline const char *
job_args(const struct job *j)
{
	return j->args_len > 0 ? (const char *)(j + 1) : NULL;
}

/* Its task's state, which follows its arguments, or NULL if it has none. */
void *job_state_buf(struct job *);
TAILQ_HEAD(job_queue, job);

struct job_submit {
	const struct task *task;
	uint8_t retries;
	uint32_t retry_delay_ms;
	const char *args;
	size_t args_len;
	enum proto_exec requested;
	enum proto_exec exec;
	bool daemon;
	bool fresh;
	uid_t uid;
	uint64_t timeout_ms;
	const struct job_extra *extra; /* copied by job_new; or NULL */
};

/*
 * What the job table needs of the floor above it, which runs the jobs:
 * sched.c registers these (sched_init).
 */
struct job_hooks {
	void (*submit)(struct job *);    /* hand it to its executor */
	void (*cancel)(struct job *);    /* a queued or running job */
	void (*resume)(struct job *);    /* its held output may go on */
	void (*stop)(struct task_ctx *); /* it ended: task_ctx_stop */
	/* it reached its final state (no retry follows): slots, dependents */
	void (*ended)(struct job *);
	void (*free)(struct task_ctx *); /* task_ctx_free */
	/* it ended and will run again after its retry delay */
	void (*requeue)(struct job *);
};
void job_hook_sched(const struct job_hooks *);
void job_init(size_t max_finished, uint64_t finished_ttl_s);
void job_set_retention(size_t max_finished, uint64_t finished_ttl_s);
/* user-job-limit: unfinished jobs of each uid but concd's own */
void job_set_user_limit(size_t n);
/* Whether uid may have n more unfinished jobs; *has: how many it has. */
bool job_user_room(uid_t uid, size_t n, size_t *has);
uint64_t job_last_id(void);
size_t job_total(void);
/* Tie jobs together (gather): with fail_fast, one failure cancels all. */
struct gather *job_gather_new(size_t n, bool fail_fast);
void job_gather_add(struct gather *, struct job *);
/* Watch every job of the gather, each event with its job's index. */
int job_gather_watch(struct gather *, struct conn *, uint64_t req);
void job_gather_submit(struct gather *);
void job_shutdown(void);
/* Out of the table, never freed: a stuck thread may still touch it. */
void job_abandon(struct job *);
struct job *job_new(const struct job_submit *);
/*
 * The record alone, zeroed but for its task, arguments (copied) and
 * context: the job table's and a worker process's; free() frees it.
 */
struct job *job_alloc(const struct task *, const char *args, size_t len);
/* A copy of x in memory of its own, or NULL (out of memory). */
struct job_extra *job_extra_dup(const struct job_extra *x);
void job_extra_free(struct job_extra *);
/* The job's extra, made (zeroed, exit and signal -1) if it has none. */
struct job_extra *job_extra(struct job *);
/* Where Slurm runs it (the slurm executor): kept in its record. */
void job_placed(struct job *, uint64_t slurm_id, const char *node);
/*
 * A restored job whose command ended while no concd ran (Slurm kept it):
 * its exit status (sig: the signal, 0: none); a job that exited 0
 * succeeds, with the result an exec job has.
 */
void job_end_restored_exit(struct job *, enum proto_state, enum proto_error,
                           const char *message, int exit, int sig);
/*
 * The read end of the pipe of a job's streamed standard input (input.c),
 * kept in its extra while the job lives, or -1.  job_set_stdin: 0, or -1
 * when out of memory.
 */
int job_stdin(const struct job *);
int job_set_stdin(struct job *, int fd);
/*
 * Jobs first .. first + n - 1, just made, go to their executors; returns
 * the store batch their rows go in, which the reply that tells of them
 * must wait for (0: no store).  They run while their batch is written.
 */
uint64_t job_admit(uint64_t first, size_t n);
/* A job of the store, at a restart: made with its id, attempt and times. */
struct job *job_restore(const struct job_submit *, const struct store_row *);
/* A restored job that cannot go on ends so, with this error. */
void job_end_restored(struct job *, enum proto_state, enum proto_error,
                      const char *message);
/* Something in the job's record changed (its extra): the store gets it. */
void job_changed(struct job *);
/* A job as a store row: its pointers are the job's own. */
void job_row(const struct job *, struct store_row *);
/* Put the rows of the jobs that changed into the store (its hook). */
size_t job_collect(bool hold);
struct job *job_find(uint64_t id);
void job_start(struct job *);
/*
 * After job_start: its worker on this machine stamped its start at, on
 * the wall clock, a moment before the loop heard of it; its run time
 * counts from there.
 */
void job_started_at(struct job *, uint64_t at);
void job_progress(struct job *, uint64_t done, uint64_t total, const char *msg);
/*
 * Output goes in full to the attached watchers (the submitter's) and to
 * the others that keep up.  When an attached one falls behind the job is
 * held (job_output_held): its executor stops it producing output until
 * the executor's resume() is called.
 */
void job_output(struct job *, int stream, const void *, size_t);
bool job_output_held(const struct job *);
/* Final state from the job's context: result or error. */
void job_finish(struct job *, enum proto_state);
int job_cancel(struct job *);
bool job_visible(const struct job *, uid_t);
/* attached: the submitter's watch, which gets every byte of output */
int job_watch(struct job *, struct conn *, uint64_t req, int32_t index,
              bool attached);
/*
 * A watch that gets the job's progress and retries but neither its
 * output nor its end: a reader of the job's log sends those (logread.c).
 */
int job_watch_logged(struct job *, struct conn *, uint64_t req);
void job_unwatch_conn(struct conn *);
/* The end event for watch w; NULL: for whoever asks, as status does. */
void job_encode_end(struct pbuf *, const struct job *, const struct watch *w,
                    uint64_t req, int32_t index);
/*
 * A job's record, as status and ps send it; without result, a result is
 * left out and its size given instead (result_omitted).
 */
void job_encode_record(struct proto_enc *, const struct job *, bool result);
/*
 * The environment a job was given (status adds it to the record): each
 * name with its value, or nil when the name looks secret (KEY, SECRET,
 * TOKEN, PASS, CREDENTIAL, AUTH, COOKIE, SESSION, PRIVATE, SIGNATURE).
 */
void job_encode_env(struct proto_enc *, const struct job_extra *);
/* A record as the store gave it, for a job no longer in memory. */
void job_encode_row(struct proto_enc *, const struct store_row *, bool result);
/* The end event of such a job. */
void job_encode_row_end(struct pbuf *, const struct store_row *, uint64_t req);
/* The bytes a job's result takes in a record: 0 when it has none. */
size_t job_result_size(const struct job *);
void job_foreach(void (*)(struct job *, void *), void *);
/* Forget the finished jobs that match, and their logs; how many. */
size_t job_clean(bool (*match)(const struct job *, void *), void *arg);
void job_counts(size_t counts[PS_COUNT]);

#endif
