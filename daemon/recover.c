/*
 * recover.c -- a restart after a crash, or after a stop that cut jobs
 * off: the store's queued and running jobs come back, each as the
 * daemon/non-daemon distinction says.
 *
 *   queued, not a daemon job    queued again, and it runs
 *   running, not a daemon job   failed "interrupted", and retried if it
 *                               has attempts left (this one counts)
 *   daemon job, queued/running  cancelled: its lifetime was the daemon's
 *
 * A job that ran on Slurm (the slurm executor) is asked after: one still
 * queued or running there is cancelled (scancel) and ends interrupted as
 * above; one that ended while no concd ran ends as Slurm says it did.
 *
 * Before any of that, and before any worker exists, the commands the
 * previous concd left running are killed: they carry its store's name in
 * their environment (spawn.c), so they are found however far they forked.
 */
#include <sys/mman.h>
#include <sys/types.h>

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deps.h"
#include "executor.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "queue.h"
#include "recover.h"
#include "slurm.h"
#include "store.h"
#include "task.h"
#include "task_int.h"

/* Does /proc/PID/environ hold the variable marker ("NAME=value")? */
static bool
recover_marked(const char *pid, const char *marker)
{
	char path[64], buf[65536];
	size_t mlen = strlen(marker), off = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/environ", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	while (off < (size_t)n) {
		const char *v = buf + off;
		size_t len = strlen(v);

		if (len == mlen && memcmp(v, marker, mlen) == 0)
			return true;
		off += len + 1;
	}
	return false;
}

/*
 * Kill what the previous concd of this store left running: every process
 * but this one whose environment has its CONCD_INSTANCE, and its process
 * group.  Returns how many.
 */
size_t
recover_kill_leftovers(void)
{
	char marker[80];
	struct dirent *d;
	size_t killed = 0;
	pid_t self = getpid(), pid, pgid;
	DIR *proc;

	if (!store_enabled() || *store_instance() == '\0')
		return 0;
	snprintf(marker, sizeof(marker), "CONCD_INSTANCE=%s", store_instance());
	if ((proc = opendir("/proc")) == NULL)
		return 0;
	while ((d = readdir(proc)) != NULL) {
		if (!isdigit((unsigned char)d->d_name[0]))
			continue;
		pid = (pid_t)atol(d->d_name);
		if (pid == self || !recover_marked(d->d_name, marker))
			continue;
		if ((pgid = getpgid(pid)) > 1 && pgid != getpgrp())
			(void)kill(-pgid, SIGKILL);
		if (kill(pid, SIGKILL) == 0)
			killed++;
	}
	closedir(proc);
	if (killed > 0)
		log_info("recovery: killed %zu processes the previous concd "
		         "left running",
		         killed);
	return killed;
}

struct recover_count {
	size_t queued, interrupted, cancelled, lost, reconciled;
};

#define RECOVER_INTERRUPTED "concd stopped while the job ran"
#define RECOVER_DAEMON      "a daemon job ends with the concd that runs it"

/* A row whose job is not made again: it ends in the store as s says. */
static void
recover_end_row(const struct store_row *row, enum proto_state s,
                enum proto_error err, const char *message)
{
	struct store_row r = *row;

	r.insert = false;
	r.state = (uint8_t)s;
	r.err = (uint8_t)err;
	r.error = message;
	r.result = NULL;
	r.result_len = 0;
	r.finished = loop_now_us();
	if (r.started == 0)
		r.started = r.finished;
	store_put(&r);
	store_mark();
}

/*
 * A row whose job cannot be made again (its task or its executor is
 * gone).  A daemon job, and a job interrupted with no attempt left, end
 * as they would anyway; a job that would run again fails with why it
 * cannot.
 */
static void
recover_lost(const struct store_row *r, enum proto_error err, const char *cause,
             struct recover_count *n)
{
	if (r->daemon) {
		recover_end_row(r, PS_CANCELLED, PE_CANCELLED, RECOVER_DAEMON);
		n->cancelled++;
	} else if (r->state == PS_RUNNING && r->attempt > r->retries) {
		recover_end_row(r, PS_FAILED, PE_INTERRUPTED,
		                RECOVER_INTERRUPTED);
		n->interrupted++;
	} else {
		recover_end_row(r, PS_FAILED, err, cause);
		n->lost++;
	}
}

/* How a Slurm job that ended while no concd ran ends its concd job. */
static const struct {
	const char *state; /* Slurm's JobState */
	enum proto_state s;
	enum proto_error err;
	const char *why;
} recover_slurm_ends[] = {
    {"TIMEOUT", PS_TIMED_OUT, PE_TIMED_OUT,
     "Slurm's time limit for it ran out"},
    {"NODE_FAIL", PS_FAILED, PE_NODE_FAILED, "its node failed (Slurm)"},
    {"PREEMPTED", PS_FAILED, PE_PREEMPTED, "Slurm preempted it"},
    {"OUT_OF_MEMORY", PS_FAILED, PE_OOM, "killed for exceeding its memory"},
};

/*
 * A job that was running on Slurm: true when Slurm says how it ended
 * (and it has ended so), false when it ends interrupted: it was still
 * queued or running there (and is cancelled now), was cancelled, or is
 * gone.
 */
static bool
recover_slurm(struct job *j, const struct store_row *r)
{
	static bool unreachable; /* each question would wait its timeout */
	uint64_t sid = r->x != NULL ? r->x->slurm_id : 0;
	char state[32], why[160];
	int exit = 0, sig = 0, q = -2;
	size_t i;

	if (slurm_ready() && !unreachable)
		q = slurm_query(sid, &exit, &sig, state, sizeof(state));
	if (q == -2 && slurm_ready() && !unreachable) {
		unreachable = true;
		log_warnx("recovery: Slurm cannot be asked (scontrol show job "
		          "failed): its jobs end interrupted");
	}
	if (q != 0 || strcmp(state, "CANCELLED") == 0) {
		slurm_cancel(r->id, 0); /* queued or running there still */
		log_info("recovery: job %llu: Slurm job %llu %s; cancelled",
		         (unsigned long long)r->id, (unsigned long long)sid,
		         q == 1    ? "still queued or running"
		         : q == -2 ? "not asked after"
		                   : "gone or cancelled");
		return false;
	}
	log_info("recovery: job %llu: Slurm job %llu ended %s, exit %d:%d",
	         (unsigned long long)r->id, (unsigned long long)sid, state,
	         exit, sig);
	for (i = 0;
	     i < sizeof(recover_slurm_ends) / sizeof(*recover_slurm_ends); i++)
		if (strcmp(state, recover_slurm_ends[i].state) == 0) {
			job_end_restored_exit(j, recover_slurm_ends[i].s,
			                      recover_slurm_ends[i].err,
			                      recover_slurm_ends[i].why, exit,
			                      sig);
			return true;
		}
	if (sig != 0)
		snprintf(why, sizeof(why),
		         "killed by signal %d (while concd was down)", sig);
	else
		snprintf(why, sizeof(why),
		         "exited with status %d (while concd was down)", exit);
	job_end_restored_exit(
	    j, exit == 0 && sig == 0 ? PS_SUCCEEDED : PS_FAILED, PE_NONE,
	    exit == 0 && sig == 0 ? NULL : why, exit, sig);
	return true;
}

/*
 * A large store's jobs grow the heap by hundreds of MB at once (about 400
 * MB for a million queued no-ops), and every 4 KiB page's first touch is
 * a fault, some 5 µs each on a virtual machine: a second of a restart.
 * So once RECOVER_BULK rows are read, the heap grows in steps of
 * RECOVER_PAD (M_TOP_PAD) and each step is asked for in transparent huge
 * pages (MADV_HUGEPAGE; THP's "madvise" mode honours it, "always" needs
 * it not): one fault for 2 MiB.  A restart with 1,000,000 queued jobs
 * was ready in 1.91-2.04 s against 2.41-2.56 s without (medians of 3,
 * alternating).  Setting M_TOP_PAD fixes glibc's mmap threshold at its
 * first value, 128 KiB, from then on; pipelined no-ops showed no change.
 */
#define RECOVER_BULK  (1u << 16)
#define RECOVER_PAD   (32u << 20)
#define RECOVER_THP   (2u << 20)
#define GLIBC_TOP_PAD (128 * 1024) /* glibc's own M_TOP_PAD */

static size_t recover_rows;
static uintptr_t recover_brk; /* the heap's end when last looked at */

static void
recover_heap(void)
{
	uintptr_t top, from;

	if (++recover_rows < RECOVER_BULK)
		return;
	if (recover_rows == RECOVER_BULK) {
		mallopt(M_TOP_PAD, RECOVER_PAD);
		recover_brk = (uintptr_t)sbrk(0);
	}
	if ((top = (uintptr_t)sbrk(0)) <= recover_brk)
		return;
	from = (recover_brk + RECOVER_THP - 1) & ~(uintptr_t)(RECOVER_THP - 1);
	if (top > from)
		(void)madvise((void *)from, top - from, MADV_HUGEPAGE);
	recover_brk = top;
}

static void
recover_row(const struct store_row *r, void *arg)
{
	struct recover_count *n = arg;
	struct job_submit js = {0};
	char cause[256];
	struct job *j;
	enum proto_exec x;

	recover_heap();
	if ((js.task = task_find(r->task, strlen(r->task))) == NULL) {
		snprintf(cause, sizeof(cause),
		         "task %s is no longer available (at the restart)",
		         r->task);
		recover_lost(r, PE_UNKNOWN_TASK, cause, n);
		return;
	}
	if (sched_choose(js.task, (enum proto_exec)r->requested, r->fresh, &x,
	                 cause, sizeof(cause)) < 0) {
		recover_lost(r, PE_BAD_EXECUTOR, cause, n);
		return;
	}
	js.args = r->args;
	js.args_len = r->args_len;
	js.requested = (enum proto_exec)r->requested;
	js.exec = x;
	js.daemon = r->daemon;
	js.fresh = r->fresh;
	js.uid = r->uid;
	js.timeout_ms = r->timeout_ms;
	js.retries = r->retries;
	js.retry_delay_ms = r->retry_delay_ms;
	js.extra = r->x;
	if ((j = job_restore(&js, r)) == NULL) {
		recover_end_row(r, PS_FAILED, PE_INTERNAL,
		                "out of memory at the restart");
		n->lost++;
		return;
	}
	if (r->daemon) {
		if (r->state == PS_RUNNING && r->exec == PX_SLURM)
			slurm_cancel(r->id, 0);
		job_end_restored(j, PS_CANCELLED, PE_CANCELLED, RECOVER_DAEMON);
		n->cancelled++;
	} else if (r->state == PS_RUNNING && r->exec == PX_SLURM &&
	           recover_slurm(j, r)) {
		n->reconciled++;
	} else if (r->state == PS_RUNNING) {
		job_end_restored(j, PS_FAILED, PE_INTERRUPTED,
		                 RECOVER_INTERRUPTED);
		n->interrupted++;
	} else {
		sched_admit(j);
		n->queued++;
	}
}

int
recover_jobs(char *cause, size_t len)
{
	struct recover_count n = {0};
	int rc;

	if (!store_enabled())
		return 0;
	/*
	 * A store that cannot be read in full is not served from: the jobs
	 * it holds past the damage would be lost, or run without what they
	 * were given (a hold, a group, a start time).
	 */
	queue_defer(true); /* they start by priority once all are read */
	if ((rc = store_each_live(recover_row, &n)) < 0) {
		snprintf(
		    cause, len,
		    "recovery: %s cannot be read in full, so its jobs "
		    "cannot be recovered; concd does not start on a "
		    "damaged store: repair it (sqlite3's .recover) or move "
		    "it away",
		    store_path());
		return -1; /* and nothing starts: concd stops at once */
	}
	queue_defer(false);
	if (recover_rows >= RECOVER_BULK)
		mallopt(M_TOP_PAD, GLIBC_TOP_PAD);
	deps_recovered();
	sched_flush();
	if (n.queued + n.interrupted + n.cancelled + n.lost + n.reconciled > 0)
		log_info(
		    "recovery: %zu jobs queued again, %zu interrupted, "
		    "%zu daemon jobs cancelled, %zu that cannot run failed, "
		    "%zu ended on Slurm while concd was down",
		    n.queued, n.interrupted, n.cancelled, n.lost, n.reconciled);
	return 0;
}
