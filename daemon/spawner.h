/*
 * spawner.h -- spawn.c's interface: starting a command for a task (the
 * child that shares the daemon's memory until it has exec'd, PATH search,
 * another user's identity, and the spawner threads that start commands
 * for the loop).
 *
 * Internal to concd: built-in tasks (tasks/exec.c) include it, plugins do
 * not get it (it is not installed; their ABI is task.h alone).  Not
 * named spawn.h: with daemon/ on the include path, that would stand in
 * for POSIX <spawn.h> in every file that includes it.
 */
#ifndef CONCD_SPAWNER_H
#define CONCD_SPAWNER_H

#include <sys/types.h>

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "cgroup.h"
#include "slurm.h"
#include "task.h"

/*
 * A command to start.  argv, own and the array envp are the command's
 * (spawn_cmd_free frees them); the strings of envp not in own are
 * borrowed (from environ).  envp NULL: concd's environment, or only the
 * account's when as_owner.  cwd NULL: concd's, or the owner's home.
 */
struct spawn_cmd {
	char **argv, **envp, **own, *cwd;
	uid_t uid;     /* the job's owner */
	uint64_t job;  /* its id: CONCD_JOB_ID in its environment */
	bool as_owner; /* start it as uid, with uid's account */
	/* its umask + 1; 0: concd's, or 022 as its owner */
	uint16_t umask;
	/*
	 * The job's cgroup (borrowed: the caller frees it after the spawn
	 * is settled), made with lim by the spawn and joined by the child
	 * before it execs; NULL: none, and lim is applied with setrlimit
	 * (RLIMIT_AS for mem, RLIMIT_NPROC for pids) when rlimit is set.
	 */
	struct cgroup_job *cg;
	struct cgroup_limits lim;
	bool rlimit;
};

/* A spawn handed to the spawner threads and not yet known to be done. */
struct spawn;

/*
 * Start cmd's argv[0], looked up in the PATH it gets as execvp does, with
 * in (-1: /dev/null), out and err as its standard descriptors and no
 * other, in a session (and process group) of its own, with default signal
 * dispositions and mask; as its owner when cmd->as_owner.  in, out and err are
 * taken over: closed here, or passed on.
 *
 * async (on the loop, which must not wait): the spawn is handed to the
 * spawner threads, which take cmd's strings over, and *pending is set;
 * spawn_wait or spawn_cancel settles it.  The closing of out and err (by
 * the spawner, after the spawn) is what tells the caller it is done.
 * Without spawner threads, or not async, the command is started here
 * (this may block: the owner's account is looked up) and *pending is
 * NULL.  0, with *pid or *pending; else an errno, with the job's error
 * in *why (to free; NULL if out of memory).
 */
int spawn_start(struct spawn_cmd *cmd, int in, int out, int err, bool async,
                struct spawn **pending, pid_t *pid, char **why);
/*
 * Wait for a pending spawn to be done, which takes no longer than a
 * spawn once the spawners have taken it up, and free it: 0 with *pid, or
 * an errno with the job's error in *why, as spawn_start.
 */
int spawn_wait(struct spawn *, pid_t *pid, char **why);
/* Whether spawn_wait would return at once. */
bool spawn_done(struct spawn *);
/*
 * Give a pending spawn up and free it: one not yet taken up is dropped
 * unstarted (0); else it is waited for, and the command's pid is
 * returned if it started (0 if it did not).
 */
pid_t spawn_cancel(struct spawn *);
/*
 * Reap the command if it has exited: 1 when it was (si says how it ended),
 * 0 while it runs on, -1 with errno on an error.
 */
int spawn_reap(pid_t pid, siginfo_t *si);

/* The resource limits the job asked for (0: none). */
void spawn_job_limits(struct task_ctx *, struct cgroup_limits *);
/*
 * The job fails with error oom: the kernel's OOM killer killed a process
 * of its cgroup, and the command ended with status (128+N: signal N).
 */
enum task_step spawn_oom(struct task_ctx *, int status);

/* Whether the job runs on the slurm executor: its command under srun. */
bool spawn_on_slurm(struct task_ctx *);
/* What the job asks of Slurm beyond its command (slurm_exec_argv). */
void spawn_slurm_request(struct task_ctx *, unsigned grace_ms,
                         struct slurm_request *);
/*
 * Slurm ended the job (end: not SLURM_END_NONE): it fails with the error
 * timed_out (and ends so), node_failed, or preempted.
 */
enum task_step spawn_slurm_ended(struct task_ctx *, enum slurm_end end);
/* Slurm has placed the job: its Slurm job id and node, for its record. */
void spawn_slurm_placed(struct task_ctx *, uint64_t slurm_id, const char *node);

/*
 * Commands start with soft as their soft limit on open files (0: with
 * concd's): the limit concd was started with, before it raised its own.
 * Set before any thread starts.
 */
void spawn_set_nofile(uint64_t soft);
uint64_t spawn_nofile_soft(void);

void spawn_cmd_free(struct spawn_cmd *);
/* Free a NULL-terminated array of strings and the strings. */
void spawn_strv_free(char **);

#endif
