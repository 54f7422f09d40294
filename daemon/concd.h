/*
 * concd.h -- the daemon's internal interfaces.
 *
 * One thread, the loop thread, owns every structure declared here.  Pool
 * workers touch only a running job's task context (struct task_ctx) and
 * the hand-off queues of their own pool.
 */
#ifndef CONCD_H
#define CONCD_H

#include <sys/queue.h>
#include <sys/types.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "loop.h"
#include "proto.h"
#include "task.h"

struct conn;
struct job;

/* ---- log.c ---- */

void log_init(bool debug);
void log_silence(void);
void log_to_fd(int);
void log_to_syslog(void);
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- notify.c: systemd, and nothing else, lives here ---- */

int notify_listen_fds(int *fds, int max);
bool notify_enabled(void); /* is there a NOTIFY_SOCKET to tell? */
void notify_ready(void);
void notify_stopping(void);
void notify_status(const char *);
void notify_watchdog(void);
uint64_t notify_watchdog_interval(void);
void notify_close(void);

/* ---- limits ---- */

#define TASK_MAX_TASKS     64 /* built-in and plugin tasks */
#define POOL_MAX_THREADS   1024
#define POOL_MAX_PROCESSES 256
#define WORKER_FD          3 /* a worker process's socketpair end */
#define WORKER_SHM_FD      4 /* its record page, see struct worker_shm */

/* ---- task.c ---- */

/*
 * The task context: what a task sees.  While a job runs on a pool
 * worker, only that worker touches it (cancel is atomic); the loop reads
 * it again once the worker has handed the job back.
 */
struct exec_ops;

struct task_ctx {
	const struct exec_ops *ops; /* the executor running it */
	void *state;
	void *worker_state;
	struct pbuf result;
	char *error;
	uint32_t wait_ms;
	int wait_fd;
	bool wait_write;
	bool started;       /* start() succeeded: stop() is owed */
	atomic_bool cancel; /* set by the loop, read by the worker */
};

/* Hooks an executor gives the task functions. */
struct exec_ops {
	void (*progress)(struct task_ctx *, uint64_t done, uint64_t total,
	                 const char *msg);
	void (*output)(struct task_ctx *, int stream, const void *, size_t);
	void (*release)(pid_t, int pidfd, unsigned grace_ms); /* or reap_now */
	bool (*full)(struct task_ctx *); /* optional: task_output_full() */
	bool on_loop;                    /* task_on_loop() */
};

extern const struct task *const task_builtin[];

const struct task *task_find(const char *name, size_t len);
size_t task_count(void);
const struct task *task_at(size_t);
int task_index(const struct task *);
int task_register(const struct task *, char *cause, size_t causelen);

int task_validate(const struct task *, const msgpack_object *args, char *cause,
                  size_t causelen);
enum proto_exec task_default_exec(const struct task *);
unsigned task_exec_bit(enum proto_exec);

/* Set up the context and call start(); -1 with ctx->error set. */
int task_ctx_start(struct task_ctx *, struct job *, const struct exec_ops *,
                   void *worker_state);
enum task_step task_ctx_step(struct task_ctx *);

/*
 * A pool worker's warm state (a warm thread or process, or the one a
 * --fresh job gets): each task's init runs on the worker's first job of
 * that task, its fini when the worker ends.
 */
struct task_warm {
	void *state[TASK_MAX_TASKS];
	bool inited[TASK_MAX_TASKS];
};

/* The task's init if this worker has not run it yet, then
 * task_ctx_start with its warm state; -1 with ctx->error set. */
int task_warm_start(struct task_warm *, struct task_ctx *, struct job *,
                    const struct exec_ops *);
/* The fini of every task this worker has run the init of. */
void task_warm_fini(struct task_warm *);
/* stop() if owed; frees state; keeps result and error. */
void task_ctx_stop(struct task_ctx *);
void task_ctx_free(struct task_ctx *);

/*
 * Run step() to the end on the calling thread: for pool workers.  After
 * a step that did not end the job, pause(ctx, st, arg) waits out a
 * TASK_WAIT (and returns at once after a TASK_YIELD) and does the
 * worker's own work between steps; false ends the job, failed.
 */
enum task_step task_run_blocking(struct task_ctx *,
                                 bool (*pause)(struct task_ctx *,
                                               enum task_step, void *arg),
                                 void *arg);
/* Cancelled, and stepped on to wind down (TASK_WINDS_DOWN) rather than cut. */
bool task_winding_down(struct task_ctx *);

/* ---- reap.c: children that tasks hand over ---- */

void reap_init(struct event_base *);
/* On the loop: SIGKILL after grace_ms, reap when the pidfd says so. */
void reap_later(pid_t pid, int pidfd, unsigned grace_ms);
/* On a worker: wait for it here, SIGKILL after grace_ms. */
void reap_now(pid_t pid, int pidfd, unsigned grace_ms);
size_t reap_pending(void);
void reap_shutdown(void);

/* ---- plugin.c ---- */

int plugin_load_dir(const char *dir);
void plugin_unload(void);

/* ---- config.c ---- */

/* concd's settings: defaults, then the file, then the flags (main.c). */
struct server_options {
	char *config_path;
	char *socket_path;
	char *plugin_dir;
	int threads;
	int processes;
	int max_jobs_per_worker; /* 0: no limit */
	int stop_timeout;        /* seconds to drain on stop */
	int queue_limit;         /* queued jobs per executor */
	int finished_ttl;        /* seconds finished jobs are kept, 0: ever */
	int busy_poll;           /* µs of polling before sleeping, 0: none */
	int exec_other_users;    /* a non-root concd runs others' exec jobs */
	long admin_gid;          /* admin-group's gid, -1: none */
	size_t max_finished;
	bool foreground;
	bool debug;
	uint32_t cmdline; /* config keys set by flags */
};

int config_load(const char *path, bool required, struct server_options *,
                uint32_t keep, char *cause, size_t causelen);
int config_load_stream(FILE *, const char *name, struct server_options *,
                       uint32_t keep, char *cause, size_t causelen);
uint32_t config_key_bit(const char *name);
uint32_t config_fixed_mask(void);
void config_free(struct server_options *);

/* ---- job.c ---- */

struct watch {
	struct conn *conn;
	uint64_t req;
	int32_t index;    /* -1: none; WATCH_GATHER: each job's own index */
	uint64_t dropped; /* output bytes it missed (not for WATCH_GATHER) */
	bool attached;    /* the submitter's: the job's output waits for it */
	LIST_ENTRY(watch) by_job;
	LIST_ENTRY(watch) by_conn;
};
LIST_HEAD(watch_list, watch);
/* A gather request's one watch on all of its jobs. */
#define WATCH_GATHER (-2)

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
	struct gather *group;  /* the gather request it came in, or NULL */
	char *msg;
	char *args; /* raw msgpack map, after the record (job_new) */
	struct watch_list watches;
	void *xdata; /* the executor's own */

	uint64_t submitted, started, finished; /* µs since the epoch */
	uint64_t timeout_ms;
	uint64_t done, total;
	uint64_t dropped; /* output bytes any watcher missed, in all */

	uint32_t retry_delay_ms;
	uid_t uid;
	uint32_t args_len;
	uint32_t gindex; /* its index in its gather request */
	int32_t worker;  /* index in its pool, -1: none */
	pid_t tid;
	uint32_t served;

	uint8_t state;     /* enum proto_state */
	uint8_t requested; /* enum proto_exec */
	uint8_t exec;      /* enum proto_exec, as run */
	uint8_t err;       /* enum proto_error */
	uint8_t attempt;   /* 1, then 2... with retries */
	uint8_t retries;   /* attempts after the first, at most */
	bool daemon;
	bool fresh;
	bool timing_out;   /* a cancel caused by the timeout */
	bool retry_wait;   /* between attempts, on the timer */
	bool held;         /* made, not yet given to an executor (gather) */
	bool has_ev;       /* loop_ev is set up */
	bool inline_state; /* the task's state follows the arguments */
	bool revoking;     /* asked back from its worker process */
	bool out_held;     /* an attached watcher is backlogged: see job_output */

	union {
		/*
		 * What a pool worker hands back, under its pool's lock: the
		 * loop copies it into the fields above when it takes the job's
		 * events.
		 */
		struct {
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
			struct pbuf out; /* [stream][u32 length][bytes]... */
			bool held;       /* for its client: see thread_output */
			pthread_cond_t *waiter; /* its worker waits there */
		} handoff;
		/* a loop job's one event: its timer, its fd wait or its yield
		 */
		struct event loop_ev;
	};
	struct task_ctx ctx;
};
/* The job a task context belongs to: every context lives in its job. */
#define CTX_JOB(c)                                                             \
	((struct job *)(void *)((char *)(c)-offsetof(struct job, ctx)))
/* job_new's one allocation: the record, its arguments, its task's state */
#define JOB_ARGS_ROOM(len) (((size_t)(len) + 15) & ~(size_t)15)

static inline void *
job_state_buf(struct job *j)
{
	return j->inline_state ? (char *)(j + 1) + JOB_ARGS_ROOM(j->args_len)
	                       : NULL;
}
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
	void (*free)(struct task_ctx *); /* task_ctx_free */
};
void job_hook_sched(const struct job_hooks *);
void job_init(size_t max_finished, uint64_t finished_ttl_s);
void job_set_retention(size_t max_finished, uint64_t finished_ttl_s);
uint64_t job_last_id(void);
size_t job_total(void);
/* Tie jobs together (gather): with fail_fast, one failure cancels all. */
struct gather *job_group_new(size_t n, bool fail_fast);
void job_group_add(struct gather *, struct job *);
/* Watch every job of the group, each event with its job's index. */
int job_group_watch(struct gather *, struct conn *, uint64_t req);
void job_group_submit(struct gather *);
void job_shutdown(void);
/* Out of the table, never freed: a stuck thread may still touch it. */
void job_abandon(struct job *);
struct job *job_new(const struct job_submit *);
struct job *job_find(uint64_t id);
void job_start(struct job *);
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
void job_unwatch_conn(struct conn *);
/* The end event for watch w; NULL: for whoever asks, as status does. */
void job_encode_end(struct pbuf *, const struct job *, const struct watch *w,
                    uint64_t req, int32_t index);
/*
 * A job's record, as status and ps send it; without result, a result is
 * left out and its size given instead (result_omitted).
 */
void job_encode_record(struct proto_enc *, const struct job *, bool result);
/* The bytes a job's result takes in a record: 0 when it has none. */
size_t job_result_size(const struct job *);
void job_foreach(void (*)(struct job *, void *), void *);
void job_counts(size_t counts[PS_COUNT]);

/* ---- sched.c: executors behind one interface ---- */

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
	int index;         /* -1: a fresh worker */
	uint64_t id;       /* thread id or process id */
	uint32_t served;   /* jobs it has run */
	uint64_t since;    /* µs since the epoch */
	const char *state; /* idle, busy, retiring, fresh */
	uint64_t job;      /* the job it runs, 0: none */
};

const struct executor *sched_executor(enum proto_exec);
/* Choose the executor for a request: -1 with a reason if impossible. */
int sched_choose(const struct task *, enum proto_exec requested, bool fresh,
                 enum proto_exec *out, char *cause, size_t causelen);
/* Register sched.c's hooks with the floors below it. */
void sched_init(void);
void sched_submit(struct job *);
void sched_flush(void);
bool sched_poll(void);
void sched_set_queue_limit(size_t);
/* Room for n more jobs on executor x? */
bool sched_has_room(enum proto_exec x, size_t n);
void sched_status_stopping(void);
void sched_shutdown(void);

/* ---- loop_exec.c ---- */

extern const struct executor loop_executor;
void loop_exec_init(void);
uint64_t loop_exec_served(void);

/* ---- pool_thread.c ---- */

extern const struct executor thread_executor;
int pool_thread_init(struct event_base *, int nthreads);
int pool_thread_resize(int);
int pool_thread_size(void);
void pool_thread_foreach(void (*)(const struct pool_worker_info *, void *),
                         void *);

/* ---- pool_process.c ---- */

extern const struct executor process_executor;
int pool_process_init(int nprocesses, const char *plugin_dir,
                      int max_jobs_per_worker, int busy_poll_us);
void pool_process_set_max_jobs(int);
int pool_process_resize(int);
int pool_process_size(void);
void pool_process_foreach(void (*)(const struct pool_worker_info *, void *),
                          void *);

/* ---- worker.c ---- */

int worker_main(int index, bool once, int busy_poll_us);

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
};

/* ---- conn.c ---- */

/* What a connection does with its messages; clients get request.c's. */
struct conn_handler {
	void (*dispatch)(struct conn *, const struct proto_msg *);
	void (*closed)(struct conn *, void *arg); /* optional */
	/*
	 * A client: while its output is congested its requests are not
	 * read.  A worker process is always read, or it could block in a
	 * write while the daemon waits for it to read.
	 */
	bool paced;
};

struct conn *conn_new_with(int fd, const struct conn_handler *, void *arg);
void *conn_arg(const struct conn *);
void conn_close(struct conn *);
struct pbuf *conn_out(struct conn *);
/* Called after output was queued: the flush runs once per loop pass. */
void conn_dirty(struct conn *);
/* True while the peer is slow: progress may be skipped. */
bool conn_congested(const struct conn *);
/* Over the high-water mark: the drained hook follows once it drains. */
bool conn_backlogged(struct conn *);
bool conn_overfull(const struct conn *);
void conn_set_drained_hook(void (*)(struct conn *));
void conn_hold_reads(struct conn *, bool hold);
void conn_flush_final(int ms);
struct watch_list *conn_watches(struct conn *);
uid_t conn_uid(const struct conn *);
bool conn_in_group(const struct conn *, gid_t);
void conn_close_all(void);
void conn_hangup(struct conn *);
size_t conn_count(void);
/*
 * Run after a read's batch of requests was dispatched and before its
 * replies are written: sched.c hands the batch's jobs to the workers.
 */
void conn_hook_batch(void (*)(void));

/* ---- request.c ---- */

/* A client's connection: requests, and its watches ended on close. */
extern const struct conn_handler request_handler;
/* What a `shutdown` request calls: server.c registers server_shutdown. */
void request_hook_shutdown(void (*)(const char *why, bool cancel_pending));

/*
 * Who may do what, from concd.conf: admin_gid (-1: none) names the group
 * whose members are admins besides root; exec_other_users lets a concd
 * that is not root run other users' user code, as itself.
 */
void request_set_policy(bool exec_other_users, long admin_gid);

/* ---- server.c ---- */

int server_listen(const char *path, char *cause, size_t causelen);
const char *server_listen_names(void);
void server_start(struct server_options *);
void server_shutdown(const char *why, bool cancel_pending);
void server_free(void);

#endif
