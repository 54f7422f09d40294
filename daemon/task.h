/*
 * task.h -- the task ABI: how a piece of work is written once and run by
 * every executor it declares.  Built-in tasks use exactly this header,
 * as will plugins.
 *
 * A task is a resumable step function.  start() parses nothing (the
 * daemon has already validated the arguments against the task's table)
 * and sets up the per-job state; step() does a slice of work and says
 * what comes next:
 *
 *	TASK_DONE	finished; the result (if any) was packed with
 *			task_result()
 *	TASK_FAILED	finished with an error set by task_fail()
 *	TASK_YIELD	more to do: let other jobs run, then call step again
 *	TASK_WAIT	wait (task_wait_ms or task_wait_fd said for what),
 *			then call step again
 *
 * Executors differ only in how they wait: a thread sleeps or polls, the
 * event loop arms a timer or an fd event.  stop() releases the per-job
 * state, whatever happened.  A task is asked to stop early when
 * task_cancelled() turns true; waits are interrupted at once.
 */
#ifndef CONCD_TASK_H
#define CONCD_TASK_H

#include <sys/types.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/*
 * Bump when struct task or the functions below change incompatibly.
 * Additions that old plugins need not know of keep it (task_output_full
 * was added to ABI 1: a plugin that calls it needs a concd that has it).
 */
#define CONCD_TASK_ABI 1

/* What the work is like: `auto` picks the executor from the first three. */
enum task_trait {
	TASK_NONBLOCKING = 1 << 0, /* waits without blocking: the loop */
	TASK_BLOCKING = 1 << 1,    /* calls blocking code: a thread */
	TASK_CPU = 1 << 2,         /* computes: a process */
	/*
	 * Runs code its user supplied (exec's command): a root concd runs it
	 * as the job's owner, an unprivileged one only for its own user
	 * unless exec-other-users is set (concd.conf(5)).
	 */
	TASK_USER_CODE = 1 << 3,
	/*
	 * Cancelled (or timed out), the job is not cut off: step() is called
	 * again at once, with task_cancelled() true, and goes on being called
	 * (its output still delivered) until it returns TASK_DONE or
	 * TASK_FAILED, within TASK_WIND_DOWN_MS of the cancel.  The job ends
	 * cancelled (timed_out) then.  exec uses this to let a command's
	 * process group exit.
	 */
	TASK_WINDS_DOWN = 1 << 4,
	/*
	 * Runs a command of its own, outside concd's pools (exec): by default
	 * it takes one CPU slot of its group (queue.c), where a task that
	 * runs inside concd takes none, the pools bounding it already.
	 */
	TASK_COMMAND = 1 << 5,
	/*
	 * Runs the user's code inside concd's workers (python): on a root
	 * concd, another user's jobs of it run in worker processes started
	 * as that user (pool_process.c), and are refused (permission) on
	 * the other executors, whose workers have concd's rights.
	 */
	TASK_NOT_AS_OWNER = 1 << 6,
};

#define TASK_WIND_DOWN_MS 60000

/* Executors a task can run on. */
enum task_executor {
	TASK_ON_LOOP = 1 << 0,
	TASK_ON_THREAD = 1 << 1,
	TASK_ON_PROCESS = 1 << 2,
	TASK_ON_ALL = TASK_ON_LOOP | TASK_ON_THREAD | TASK_ON_PROCESS,
};

enum task_step {
	TASK_DONE,
	TASK_FAILED,
	TASK_YIELD,
	TASK_WAIT,
};

enum task_arg_type {
	TASK_ARG_INT,
	TASK_ARG_BOOL,
	TASK_ARG_STR,
	TASK_ARG_LIST, /* array of strings; min/max bound the count */
	TASK_ARG_MAP,  /* map of string to string; min/max bound the count */
};

#define TASK_MAX_ARGS 8

/* One row per argument; the daemon validates requests against it. */
struct task_arg {
	const char *name;
	enum task_arg_type type;
	bool required;
	int64_t min, max; /* TASK_ARG_INT: range; TASK_ARG_STR: length */
	int64_t def;      /* default for an absent INT or BOOL */
	const char *help;
};

union task_value {
	int64_t i;
	bool b;
	struct {
		const char
		    *ptr; /* not NUL-terminated; lives as long as the job */
		size_t len;
	} s;
	/*
	 * TASK_ARG_LIST and TASK_ARG_MAP: the msgpack array or map, NULL when
	 * absent.  Valid only during start(): copy what is needed.  Every
	 * element (or key and value) is a MSGPACK_OBJECT_STR.
	 */
	const msgpack_object *o;
};

struct task_ctx;

struct task {
	int abi; /* CONCD_TASK_ABI */
	const char *name;
	const char *summary;
	unsigned traits;    /* enum task_trait */
	unsigned executors; /* enum task_executor */
	size_t state_size;  /* bytes of zeroed per-job state */
	const struct task_arg *args;
	size_t nargs;
	bool any_args; /* accept any map (noop); then argv is empty */

	/* Optional per-worker state, made once per warm worker. */
	int (*init)(void **worker_state, char *err, size_t errlen);
	void (*fini)(void *worker_state);

	/* argv[i] holds the value of args[i] (or its default). */
	int (*start)(struct task_ctx *, const union task_value *argv);
	enum task_step (*step)(struct task_ctx *);
	void (*stop)(struct task_ctx *); /* optional */
};

/* ---- what a task may call ---- */

/* The job's state: state_size zeroed bytes, 8-byte aligned. */
void *task_state(struct task_ctx *);
/*
 * The state init made on the worker running the job (NULL on the loop or
 * without init), for start, step and stop as its worker calls them.
 */
void *task_worker_state(struct task_ctx *);
/* The job's raw msgpack arguments (a map), e.g. to echo them. */
const char *task_args_raw(struct task_ctx *, size_t *len);

/*
 * Stream output (e.g. a command's stdout or stderr) to the job's
 * watchers: stream 1 is stdout, 2 stderr.  The client that submitted the
 * job gets all of it: while that client is behind, the job is held.  On
 * a worker thread or process the call then blocks until the client has
 * caught up; on the loop, which must not block, it returns, and
 * task_output_full() turns true: the task should stop producing output
 * and return TASK_YIELD or TASK_WAIT, and is not stepped again until the
 * client has caught up.  (A task that does not ask is held after its
 * step.)  Other watchers get what they keep up with; what a slow one
 * misses is dropped and counted, never buffered without end.
 */
void task_output(struct task_ctx *, int stream, const void *data, size_t len);
/* True while the job's output is held (always false on a worker). */
bool task_output_full(struct task_ctx *);
/*
 * Hand a child process over to the daemon, from stop(): the task has
 * sent its process group SIGTERM; the daemon sends SIGKILL to the group
 * if it has not exited after grace_ms, and reaps it either way, so no
 * zombie is left.  Takes ownership of pidfd (from pidfd_open).
 */
void task_release_child(struct task_ctx *, pid_t pid, int pidfd,
                        unsigned grace_ms);
/*
 * The caller's context, sent with the job: its working directory, an
 * absolute path (NULL: none), its umask (-1: none), and the environment
 * it chose to pass, a msgpack map of names to values (NULL: none; *len
 * its bytes).  Valid while the job runs.
 */
const char *task_cwd(struct task_ctx *);
int task_umask(struct task_ctx *);
const char *task_env(struct task_ctx *, size_t *len);
/*
 * The job's standard input when its client streams it (stdin "stream"):
 * the read end of a pipe, borrowed (dup it to keep it), or -1.  A
 * command given it reads what the client sends, then EOF.
 */
int task_stdin(struct task_ctx *);
/* Report progress; the daemon coalesces it for slow watchers. */
void task_progress(struct task_ctx *, uint64_t done, uint64_t total,
                   const char *msg);
/* Pack exactly one msgpack value as the job's result. */
msgpack_packer *task_result(struct task_ctx *);
/*
 * How the command the job ran ended (exec): it exited with status code
 * (sig 0), or signal sig killed it.  Its end event and record carry it
 * as exit or signal, and `concctl run` exits with it.
 */
void task_exit(struct task_ctx *, int code, int sig);
/* Record an error; returns TASK_FAILED so `return task_fail(...)` reads. */
enum task_step task_fail(struct task_ctx *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
enum task_step task_wait_ms(struct task_ctx *, uint64_t ms);
enum task_step task_wait_fd(struct task_ctx *, int fd, bool writable);
/*
 * Whether the job is cancelled (or timed out).  Safe to call from another
 * thread while step() runs, also on a worker process whose step() blocks:
 * a cancel is seen there before the worker reads its message.
 */
bool task_cancelled(struct task_ctx *);
/*
 * Whether the job runs on the event loop, which every client shares:
 * there, start() and step() must not block even briefly (exec hands
 * its posix_spawn to a thread of its own).
 */
bool task_on_loop(struct task_ctx *);
/*
 * Whether the job runs on a thread of the thread pool, inside concd's
 * process (its working directory is concd's, shared by every thread).
 */
bool task_on_thread(struct task_ctx *);

/*
 * Identity.  A job is owned by the uid of the client that submitted it.
 * When concd runs as root and the owner is another user, whatever the job
 * does on the user's behalf is done with the owner's credentials:
 * task_as_owner() is true then.  Otherwise (root's own jobs, and every job
 * of a concd that runs as an ordinary user) it acts as concd.
 */
uid_t task_owner(struct task_ctx *);
/* The job's id, as its owner sees it in concctl. */
uint64_t task_job_id(struct task_ctx *);
bool task_as_owner(struct task_ctx *);

/* The PATH of code run as its owner (a command, a user's worker). */
#define TASK_USER_PATH "/usr/local/bin:/usr/bin:/bin"

/* A user's account, as login(1) and initgroups(3) would set it up. */
struct task_account {
	uid_t uid;
	gid_t gid; /* the primary group */
	int ngroups;
	gid_t *groups; /* supplementary groups, the primary one among them */
	char *name, *home, *shell;
};

/*
 * Look uid up in the user database (NSS: it may block, so never on the
 * loop).  0, or -1 with a reason in err: no such user, or the errno.
 */
int task_account_get(uid_t uid, struct task_account *, char *err,
                     size_t errlen);
void task_account_free(struct task_account *);

/*
 * open(2) a path the user named (O_CLOEXEC is added), with the owner's
 * credentials when task_as_owner(): its fsuid, fsgid and supplementary
 * groups on the calling thread alone, restored before it returns, so the
 * owner is refused what the owner could not open (EACCES).  It looks the
 * owner up in the user database, which may block: for tasks that do not
 * run on the loop.  -1 with errno; EPERM when the owner has no account.
 */
int task_open(struct task_ctx *, const char *path, int flags, mode_t mode);

#endif
