/*
 * slurm.h -- slurm.c: what concd knows of Slurm: whether it may use it,
 * where its commands are, and the srun and scancel command lines of the
 * jobs it hands to it (the slurm executor) and of the remote workers it
 * starts there.
 */
#ifndef SLURM_H
#define SLURM_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config_slurm;

enum slurm_tool {
	SLURM_SRUN,
	SLURM_SCANCEL,
	SLURM_SALLOC,
	SLURM_SCONTROL,
	SLURM_NTOOLS
};

/*
 * How a Slurm job ended when it did not simply exit: what srun's standard
 * error says of it (slurmstepd's "*** JOB n ON node CANCELLED AT time DUE
 * TO why ***").
 */
enum slurm_end {
	SLURM_END_NONE,
	SLURM_END_TIME_LIMIT,
	SLURM_END_NODE_FAIL,
	SLURM_END_PREEMPTED,
	SLURM_END_CANCELLED
};

/* The first line a job's command writes to standard error under srun. */
#define SLURM_MARK     "\036concd-slurm "
#define SLURM_MARK_LEN (sizeof(SLURM_MARK) - 1)

/*
 * Take the [slurm] section (copied) and look srun, scancel, salloc and
 * scontrol up in PATH.  instance names this concd's jobs in Slurm
 * (concd-INSTANCE-ID), self is concd's own path, the remote workers'
 * default.  Slurm not enabled, or not installed, is not an error: the
 * executors that need it say why they cannot run (slurm_why).
 */
int slurm_init(const struct config_slurm *, const char *instance,
               const char *self);
void slurm_fini(void);
/* Whether Slurm can be used; if not, why (a sentence without a period). */
bool slurm_ready(void);
const char *slurm_why(void);
const struct config_slurm *slurm_config(void);
const char *slurm_tool(enum slurm_tool);
/* The Slurm job name of concd's job id, into buf. */
void slurm_job_name(uint64_t id, char *buf, size_t len);
/*
 * Start one of Slurm's commands (argv[0] a path) in a process group of
 * its own, with default signal dispositions and mask, and in, out and err
 * as its standard descriptors: -1 is /dev/null, SLURM_SPAWN_KEEP concd's
 * own.  Its pid, or -1 (logged).
 */
#define SLURM_SPAWN_KEEP (-2)
pid_t slurm_spawn(char *const argv[], int in, int out, int err);

/* The Slurm job name of remote workers' allocation k, into buf. */
void slurm_pool_name(unsigned k, char *buf, size_t len);
/*
 * The salloc that holds ntasks tasks for remote workers, named name, with
 * the site's options (partition, account, qos, salloc-options); partition
 * and time_limit (Slurm's --time) if not NULL: partition replaces the
 * site's.  The srun of remote worker index in Slurm job slurm_id: one
 * task on one node, started with path --worker INDEX --stdio,
 * --busy-poll USEC unless busy_poll is NULL, and --nofile SOFT unless
 * nofile is 0.  Both
 * NULL-terminated, to free with their strings (spawn_strv_free); NULL if
 * out of memory.
 */
char **slurm_alloc_argv(const char *name, unsigned ntasks,
                        const char *partition, const char *time_limit);
char **slurm_worker_argv(uint64_t slurm_id, int index, const char *path,
                         const char *busy_poll, uint64_t nofile);
/*
 * The Slurm job id in salloc's "Granted job allocation N" among its
 * output's lines, or 0.
 */
uint64_t slurm_parse_granted(const char *out, size_t len);
/*
 * Cancel, waited for, the allocations of remote workers that an earlier
 * concd of this instance left (its pool names): how many, or -1.
 */
int slurm_cancel_leftovers(void);
/*
 * Cancel Slurm job slurm_id, or those named name: scancel, waited for
 * when wait (at concd's stop), else reaped on the loop.
 */
void slurm_cancel_job(uint64_t slurm_id, bool wait);
void slurm_cancel_name(const char *name);

/* What an exec job asks of Slurm beyond its command: 0: nothing. */
struct slurm_request {
	uint64_t id;         /* concd's job id: the Slurm job's name */
	uint32_t cpus;       /* --cpus-per-task */
	uint64_t mem;        /* bytes: --mem */
	uint64_t timeout_ms; /* with grace_ms: --time */
	uint32_t grace_ms;
};

/*
 * The srun command line that runs argv as a Slurm job: NULL-terminated,
 * to free with its strings (spawn_strv_free); NULL if out of memory.
 * The command writes SLURM_MARK, the Slurm job id, the node and a newline
 * to standard error first (slurm_parse_mark).
 */
char **slurm_exec_argv(const struct slurm_request *, char *const argv[]);
/*
 * A line of srun's standard error: the mark (true, with the Slurm job id
 * and its node into node, NUL-terminated) or not.
 */
bool slurm_parse_mark(const char *line, size_t len, uint64_t *slurm_id,
                      char *node, size_t nodelen);
/*
 * The signal that killed the command, from srun's line on its end
 * ("srun: error: NODE: task 0: Killed"); 0 if the line is not one.
 */
int slurm_parse_signal(const char *line, size_t len);
/* What a line of srun's standard error says of the job's end. */
enum slurm_end slurm_parse_end(const char *line, size_t len);
/*
 * Ask Slurm to signal (sig, running steps only) or to cancel (sig 0) the
 * job of concd's job id, and a pending one to be dropped in either case:
 * scancel, as concd, not waited for (reaped on the loop).
 */
void slurm_cancel(uint64_t id, int sig);
/*
 * At start, for a job that was running on Slurm when concd stopped: what
 * Slurm says of it now (scontrol show job), waited for.  1: still queued
 * or running; 0: it ended, with *exit and *sig as Slurm has them, and
 * *state its JobState (COMPLETED, FAILED, TIMEOUT, NODE_FAIL...); -1:
 * Slurm does not know it (any more), or it never had an id; -2: Slurm
 * cannot be asked (scontrol failed, or gave no answer within 5 s:
 * slurmctld down?).
 */
int slurm_query(uint64_t slurm_id, int *exit, int *sig, char *state,
                size_t statelen);

#endif
