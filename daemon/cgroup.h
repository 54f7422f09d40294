/*
 * cgroup.h -- cgroup.c: a job's resource limits and the control group
 * that holds all of its processes.
 */
#ifndef CGROUP_H
#define CGROUP_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How limits are enforced, from the least to the most. */
enum cgroup_level {
	CGROUP_RLIMIT, /* setrlimit in the command: no cgroup of its own */
	CGROUP_V1,     /* cgroup v1 memory, cpu and pids controllers */
	CGROUP_V2,     /* a delegated cgroup v2 subtree */
	CGROUP_LEVELS
};

/* A job's limits; 0: none. */
struct cgroup_limits {
	uint64_t mem;  /* bytes */
	uint64_t pids; /* processes and threads */
	uint32_t cpus; /* CPUs' worth of time (cpu.max) */
};

/*
 * Find what this machine offers and set it up: want is "auto" (the most
 * there is) or a level's name, which must then be there.  instance names
 * this concd's cgroups beside other concds'.  0, or -1 with a cause; auto
 * always succeeds, at the rlimit level if nothing else.  Before any
 * thread or worker process is started: at cgroup v2 concd moves itself
 * into a leaf of its own cgroup.
 */
int cgroup_init(const char *want, const char *instance, char *cause,
                size_t causelen);
enum cgroup_level cgroup_level(void);
/* Where cgroup_init reads cgroup and mountinfo: /proc/self (tests). */
void cgroup_set_procdir(const char *dir);
/* "cgroup2", "cgroup1" or "rlimit"; or NULL for an unknown level name. */
const char *cgroup_level_name(enum cgroup_level);
int cgroup_level_lookup(const char *name);
/* What a worker process needs to do the same (cgroup_adopt). */
const char *cgroup_spec(void);
int cgroup_adopt(const char *spec);
/* Kill and remove what is left of jobs' cgroups; at the stop. */
void cgroup_fini(void);

/* One job's cgroup (a directory per hierarchy in use). */
struct cgroup_job;

/* Its paths only (no system call): NULL at the rlimit level. */
struct cgroup_job *cgroup_job_new(uint64_t id);
/*
 * Make its directories and write its limits.  0, or -1 with a cause
 * (the limits cannot be had: the job fails with it).
 */
int cgroup_job_make(struct cgroup_job *, const struct cgroup_limits *,
                    char *cause, size_t causelen);
/* Its directories: a process joins the job by writing "0" to each
 * one's cgroup.procs. */
size_t cgroup_job_procs(const struct cgroup_job *, const char **paths,
                        size_t max);
/* Whether the kernel's OOM killer killed one of its processes. */
bool cgroup_job_oom(const struct cgroup_job *);
/*
 * sig to every process in it but those of process group except (0:
 * none), which the caller signals itself.
 */
void cgroup_job_signal(const struct cgroup_job *, int sig, pid_t except);
/* SIGKILL to every process in it: cgroup.kill where there is one. */
void cgroup_job_kill(const struct cgroup_job *);
/*
 * Remove it, first killing what is left in it when kill; a directory
 * whose processes are still dying is removed later (by the next job's
 * cgroup_job_free or cgroup_job_make, or cgroup_fini).
 */
void cgroup_job_free(struct cgroup_job *, bool kill);

#endif
