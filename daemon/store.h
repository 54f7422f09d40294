/*
 * store.h -- store.c: the job store, an SQLite database in WAL mode in
 * the state directory (DIR/jobs.db), written in one transaction per loop
 * pass.  What survives a crash is what was committed; a client hears
 * `accepted` only for a committed job.
 *
 * Every function is the loop thread's, unless it says otherwise.
 */
#ifndef STORE_H
#define STORE_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What a job asks beyond its task: the caller's context and the queue's
 * options (a job that asks none of it has none).  Held by a job (job.c
 * owns its strings), and by a row while it is handed over or read.
 */
enum job_stdin { JOB_STDIN_NULL, JOB_STDIN_STREAM };

/* In a gather, an element of after may name a line of the same gather. */
#define JOB_AFTER_LINE       (UINT64_C(1) << 63)
#define JOB_AFTER_IS_LINE(a) (((a)&JOB_AFTER_LINE) != 0)

struct job_extra {
	char *cwd;       /* the caller's directory, absolute; or NULL */
	char *env;       /* msgpack map of names to values; or NULL */
	char *command;   /* the command line, shell-quoted; or NULL */
	char *group;     /* NULL: the default group */
	char *label;     /* or NULL */
	uint64_t *after; /* the jobs it waits for */
	uint32_t env_len;
	uint32_t nafter;
	int64_t priority;    /* higher first in its group; 0 by default */
	uint64_t at;         /* µs since the epoch it is due; 0: at once */
	uint64_t mem;        /* bytes; 0: no limit */
	uint64_t pids;       /* processes and threads; 0: no limit */
	uint64_t restart_of; /* the job it restarts; 0: none */
	uint64_t cause;      /* the job whose failure ended it; 0: none */
	uint32_t cpus;       /* CPU slots; 0: the default of its task */
	int32_t exit;        /* its command's exit status; -1: none */
	int32_t signal;      /* the signal that killed it; -1: none */
	uint64_t slurm_id;   /* its Slurm job (the slurm executor); 0: none */
	char *node;          /* the node it ran on there; or NULL */
	uint8_t stdin_mode;  /* enum job_stdin */
	bool after_any;      /* run once they end, however they end */
	bool held;           /* a queued job held back */
	uint16_t umask;      /* its command's umask + 1; 0: none given */
	/* not stored here: a streamed standard input's read end + 1
	 * (input.c); output bytes any watcher missed, in all, which the
	 * job's row holds (a rare count, kept out of struct job) */
	int stdin_pipe;
	uint64_t dropped;
};

/* A group of the queue, as the store holds it. */
struct store_group {
	const char *name;
	uint64_t parallel;  /* CPU slots; 0: no limit */
	uint64_t mem, pids; /* defaults for its jobs; 0: none */
	uid_t uid;          /* who made it */
	bool paused;
};

/*
 * One job as the store holds it.  Strings and blobs point into the
 * caller's memory while it hands a row over (store_put copies them) or
 * into the store's while a read's callback runs.
 */
struct store_row {
	uint64_t id;
	const char *task;
	const char *args;                      /* msgpack map, or NULL */
	const char *error;                     /* the error text, or NULL */
	const char *msg;                       /* progress message, or NULL */
	const char *result;                    /* msgpack value, or NULL */
	uint64_t submitted, started, finished; /* µs since the epoch */
	uint64_t runtime; /* µs it ran, or has run, by the monotonic clock */
	uint64_t timeout_ms;
	uint64_t done, total, dropped;
	uint32_t args_len, result_len;
	uint32_t retry_delay_ms;
	uint32_t served;
	int32_t worker;
	pid_t tid;
	uid_t uid;
	uint8_t state;     /* enum proto_state */
	uint8_t requested; /* enum proto_exec */
	uint8_t exec;      /* enum proto_exec */
	uint8_t err;       /* enum proto_error */
	uint8_t attempt, retries;
	bool daemon, fresh;
	bool insert; /* a new row, else the fields a job's life changes */
	const struct job_extra *x; /* or NULL */
};

/* A ps request's filter; 0, -1 or NULL: any. */
struct store_filter {
	int state;        /* enum proto_state */
	bool all;         /* finished jobs too */
	const char *task; /* NUL-terminated */
	int64_t uid;
	uint64_t since, until; /* submitted, µs */
	const char *group;     /* NUL-terminated: "default" also matches none */
	const char *label;     /* NUL-terminated */
	size_t limit;
};

/*
 * Open DIR/jobs.db, creating it and DIR if need be; NULL: no store, jobs
 * live in memory only.  fsync: every commit is synced (synchronous=FULL)
 * and survives a power loss.  -1 with the cause: a file that is not a
 * concd store, a corrupt one, one of a newer concd, no permission.
 */
int store_open(const char *dir, bool fsync, char *cause, size_t len);
/* The store's thread and events: after loop_init. */
int store_start(void);
bool store_enabled(void);
bool store_writable(void);
/* Rows are wanted: by the store, or without one by the audit trail. */
bool store_wanted(void);
/* The first id that was never given out. */
uint64_t store_next_id(void);
/* This store's name: it marks the commands its jobs run. */
const char *store_instance(void);
/* The database's path (jobs.db in the state directory). */
const char *store_path(void);
/* Every queued or running job, in id order, for recovery. */
int store_each_live(void (*)(const struct store_row *, void *), void *);

/*
 * Writing.  Something changed (store_mark): at the end of the loop pass
 * the collect hook puts its rows (store_put), and they are committed
 * together, on the loop when they are few and the store's thread is
 * idle, else on that thread.  The committed hooks hear of each batch:
 * ok, or not (a full disk): new jobs of a failed batch are not kept;
 * its other rows are written with the next batch.
 */
/* collect(hold): how many rows it held back, see job_collect. */
void store_hook_collect(size_t (*)(bool hold));
int store_hook_committed(void (*)(uint64_t seq, bool ok));
/* SQLite has every batch up to seq; UINT64_MAX: it refused a commit. */
void store_hook_written(void (*)(uint64_t seq));
void store_hook_forgotten(void (*)(uint64_t id));
/* The next id the job table gives out: kept when retention deletes. */
void store_hook_next_id(uint64_t (*)(void));
void store_mark(void);
void store_put(const struct store_row *);
/* The batch that rows put now go in: what a reply must wait for. */
uint64_t store_seq(void);
/* Reserve ids below upto; those below store_ids_reserved() are safe. */
void store_reserve_ids(uint64_t upto);
uint64_t store_ids_reserved(void);
/* The open batch to the journal now: the ids it reserves are safe. */
void store_seal(void);
/* A reply waits for it: it is committed even if it has nothing in it. */
void store_want(void);
/* Collect and commit now, if nothing is being committed. */
void store_commit(void);
/* Why new jobs are refused, while the last commit failed; else NULL. */
const char *store_failing(void);
void store_set_retention(size_t max_finished, uint64_t finished_ttl_s);

/*
 * Groups: written with the next batch (a reply that tells of a change
 * waits for store_seq(), as a job's does).  store_groups reads them all.
 */
void store_put_group(const struct store_group *);
void store_delete_group(const char *name);
int store_groups(void (*)(const struct store_group *, void *), void *);

/* Reading, on the loop, from what is committed. */
/* Commit what the job table holds now, waiting (see store.c). */
void store_sync(void);
/* The seq SQLite must have for a read to agree with the job table, or 0. */
uint64_t store_behind(void);
int store_get(uint64_t id, void (*)(const struct store_row *, void *), void *);
/* The newest rows that match, oldest first; -1 on an error, logged. */
int store_list(const struct store_filter *,
               void (*)(const struct store_row *, void *), void *);
/* Jobs per state that match f's task, uid and times. */
int store_count(const struct store_filter *, size_t counts[]);

/*
 * Forget finished jobs: in state (-1: any final one), finished before
 * before (µs; 0: whenever), of uid (-1: anyone's); fn gets each id.
 * Returns how many, or -1.
 */
int store_clean(int state, uint64_t before, int64_t uid,
                void (*fn)(uint64_t, void *), void *arg);

/* Commit what is left, stop the thread, close. */
void store_close(void);

#endif
