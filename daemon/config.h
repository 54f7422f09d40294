/*
 * config.h -- config.c: concd's settings and their bounds.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The bounds of the pools' sizes, for the file, the flags and `resize`. */
#define POOL_MAX_THREADS   1024
#define POOL_MAX_PROCESSES 256

/* A `group` line of concd.conf: a queue group and its settings. */
struct config_group {
	char name[65];
	uint64_t parallel; /* CPU slots, 0: no limit */
	uint64_t mem;      /* its jobs' memory limit by default; 0: none */
	uint64_t pids;     /* its jobs' processes by default; 0: none */
	bool paused;
};
#define CONFIG_MAX_GROUPS 256

/*
 * The [slurm] section of concd.conf (its keys are slurm.NAME): whether
 * jobs may go to Slurm, and the options of the jobs and allocations concd
 * asks it for.  Read at start only.
 */
struct config_slurm {
	int enabled;
	char *partition, *account, *qos;
	char *srun_options;   /* extra words for every srun */
	char *salloc_options; /* extra words for every allocation */
	char *worker_path;    /* concd on the nodes; NULL: this concd's path */
	int max_workers;      /* remote workers at most */
	int idle_release;     /* seconds an idle allocation is kept */
	int auto_remote;      /* auto may choose the remote executor */
};

/* concd's settings: defaults, then the file, then the flags (main.c). */
struct server_options {
	char *config_path;
	char *socket_path;
	char *plugin_dir;
	char *state_dir; /* "none": no store */
	char *limits;    /* "auto" or a level: cgroup.c; NULL: auto */
	char *on_end;    /* a command run as each job ends; NULL: none */
	int threads;
	int processes;
	int max_jobs_per_worker; /* 0: no limit */
	int user_worker_idle;    /* seconds a user's worker is kept idle */
	int stop_timeout;        /* seconds to drain on stop */
	int queue_limit;         /* queued jobs per executor */
	int user_job_limit;      /* unfinished jobs of each other user */
	int finished_ttl;        /* seconds finished jobs are kept, 0: ever */
	int busy_poll;           /* µs of polling before sleeping, 0: none */
	int exec_other_users;    /* a non-root concd runs others' exec jobs */
	long admin_gid;          /* admin-group's gid, -1: none */
	int store_fsync;         /* sync every commit */
	size_t max_finished;
	uint64_t log_limit;       /* bytes of output kept per job */
	uint64_t log_total_limit; /* bytes of output kept in all */
	bool foreground;
	bool debug;
	uint32_t cmdline;            /* config keys set by flags */
	struct config_group *groups; /* the file's groups, in its order */
	struct config_slurm slurm;
	size_t ngroups;
};

int config_load(const char *path, bool required, struct server_options *,
                uint32_t keep, char *cause, size_t causelen);
int config_load_stream(FILE *, const char *name, struct server_options *,
                       uint32_t keep, char *cause, size_t causelen);
uint32_t config_key_bit(const char *name);
uint32_t config_fixed_mask(void);
void config_free(struct server_options *);

#endif
