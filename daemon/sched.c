/*
 * sched.c -- executors behind one interface: choosing one for a job,
 * handing jobs to it, and the STATUS= line that sums them up (the drain's
 * progress once the daemon stops).
 */
#include <stdio.h>

#include "config.h"
#include "conn.h"
#include "deps.h"
#include "executor.h"
#include "hook.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "loop_exec.h"
#include "notify.h"
#include "pool_process.h"
#include "pool_remote.h"
#include "pool_thread.h"
#include "queue.h"
#include "slurm.h"
#include "task.h"
#include "task_int.h"

static const struct executor *const executors[PX_COUNT] = {
    [PX_LOOP] = &loop_executor,       [PX_THREAD] = &thread_executor,
    [PX_PROCESS] = &process_executor, [PX_SLURM] = &slurm_executor,
    [PX_REMOTE] = &remote_executor,
};

static struct event *status_ev;
static size_t queue_limit = 1000000;
static bool status_pending;
static bool status_stopping;

static void sched_changed_cb(void *);

const struct executor *
sched_executor(enum proto_exec x)
{
	return x < PX_COUNT ? executors[x] : NULL;
}

int
sched_choose(const struct task *t, enum proto_exec requested, bool fresh,
             enum proto_exec *out, char *cause, size_t causelen)
{
	enum proto_exec x = requested;

	if (x == PX_AUTO) {
		x = task_default_exec(t);
		/* off this machine only if concd.conf says so */
		if (x == PX_PROCESS && slurm_config()->auto_remote &&
		    slurm_ready() && pool_remote_available() > 0)
			x = PX_REMOTE;
		else if (x == PX_PROCESS && pool_process_size() == 0 &&
		         (t->executors & TASK_ON_THREAD))
			x = PX_THREAD;
	}
	if (x == PX_PROCESS && pool_process_size() == 0 && !fresh) {
		snprintf(cause, causelen,
		         "there are no worker processes (concd -p 0)");
		return -1;
	}
	if ((x == PX_SLURM || x == PX_REMOTE) && !slurm_ready()) {
		snprintf(cause, causelen,
		         "the %s executor is not available: %s", proto_execs[x],
		         slurm_why());
		return -1;
	}
	if (x == PX_REMOTE && pool_remote_available() == 0) {
		snprintf(cause, causelen,
		         "no remote workers: concctl pool add --slurm N");
		return -1;
	}
	if (executors[x] == NULL) {
		snprintf(cause, causelen, "the %s executor is not available",
		         proto_execs[x]);
		return -1;
	}
	if (x == PX_SLURM && !(t->traits & TASK_COMMAND)) {
		snprintf(cause, causelen,
		         "task %s cannot run on the slurm executor, which runs "
		         "commands (exec)",
		         t->name);
		return -1;
	}
	if (x != PX_SLURM && (t->executors & task_exec_bit(x)) == 0) {
		snprintf(cause, causelen,
		         "task %s cannot run on the %s executor", t->name,
		         proto_execs[x]);
		return -1;
	}
	if (fresh && x != PX_THREAD && x != PX_PROCESS) {
		snprintf(cause, causelen,
		         "\"fresh\" needs the thread or process executor, "
		         "not the %s",
		         x == PX_LOOP ? "loop" : proto_execs[x]);
		return -1;
	}
	*out = x;
	return 0;
}

void
sched_set_queue_limit(size_t n)
{
	queue_limit = n;
}

bool
sched_has_room(enum proto_exec x, size_t n)
{
	const struct executor *ex = executors[x];

	/* the jobs waiting in their groups count too */
	return ex != NULL && ex->queued() + queue_waiting() + n <= queue_limit;
}

static void
sched_cancel(struct job *j)
{
	if (deps_cancel(j) || queue_cancel(j))
		return;
	executors[j->exec]->cancel(j);
}

/*
 * A job the job table admits: it waits for the jobs it depends on
 * (deps.c), then for room in its group (queue.c), then its executor has it.
 */
void
sched_admit(struct job *j)
{
	queue_admit(j);
	if (!deps_hold(j))
		queue_submit(j);
}

/* It failed and will be retried after its delay: its slots go back. */
static void
sched_requeue(struct job *j)
{
	queue_requeue(j);
}

static void
sched_ended(struct job *j)
{
	queue_ended(j);
	deps_ended(j);
	hook_ended(j);
}

/* A job whose output was held for its client may go on. */
static void
sched_resume(struct job *j)
{
	if (executors[j->exec]->resume != NULL)
		executors[j->exec]->resume(j);
}

static const struct job_hooks sched_job_hooks = {
    .submit = sched_admit,
    .cancel = sched_cancel,
    .resume = sched_resume,
    .stop = task_ctx_stop,
    .free = task_ctx_free,
    .ended = sched_ended,
    .requeue = sched_requeue,
};

void
sched_init(void)
{
	job_hook_sched(&sched_job_hooks);
	loop_hook_poll(sched_poll);
	conn_hook_batch(sched_flush);
	if (loop_hook_changed(sched_changed_cb, NULL) < 0)
		fatalx("sched_init: no room for a loop hook");
}

/* To its executor, now. */
void
sched_submit(struct job *j)
{
	executors[j->exec]->submit(j);
}

/*
 * A read of a client's requests ends here before its replies are written:
 * the workers start on the jobs while the replies go out.
 */
void
sched_flush(void)
{
	size_t i;

	for (i = 0; i < PX_COUNT; i++)
		if (executors[i] != NULL && executors[i]->flush != NULL)
			executors[i]->flush();
}

bool
sched_poll(void)
{
	bool found = false;
	size_t i;

	for (i = 0; i < PX_COUNT; i++)
		if (executors[i] != NULL && executors[i]->poll != NULL &&
		    executors[i]->poll())
			found = true;
	return found;
}

/* Once the daemon stops, STATUS= says only how the drain goes. */
static void
sched_status_send(void)
{
	size_t counts[PS_COUNT];
	char line[128];

	job_counts(counts);
	if (status_stopping)
		snprintf(line, sizeof(line),
		         "stopping: draining %zu running, %zu queued",
		         counts[PS_RUNNING], counts[PS_QUEUED]);
	else
		snprintf(line, sizeof(line),
		         "%zu running, %zu queued, %zu finished",
		         counts[PS_RUNNING], counts[PS_QUEUED],
		         counts[PS_SUCCEEDED] + counts[PS_FAILED] +
		             counts[PS_CANCELLED] + counts[PS_TIMED_OUT]);
	notify_status(line);
}

static void
sched_status_cb(evutil_socket_t fd, short what, void *arg)
{
	status_pending = false;
	sched_status_send();
}

/* The stop has begun: say so now, and from now on. */
void
sched_status_stopping(void)
{
	status_stopping = true;
	sched_status_send();
}

/*
 * STATUS= is sent at most five times a second, however busy, and only
 * when there is a service manager to tell: otherwise no timer runs.
 */
static void
sched_changed_cb(void *arg)
{
	static const struct timeval delay = {0, 200000};

	if (status_pending || loop_base == NULL || !notify_enabled())
		return;
	if (status_ev == NULL)
		status_ev = evtimer_new(loop_base, sched_status_cb, NULL);
	status_pending = true;
	evtimer_add(status_ev, &delay);
}

void
sched_shutdown(void)
{
	size_t i;

	for (i = 0; i < PX_COUNT; i++)
		if (executors[i] != NULL)
			executors[i]->shutdown();
	deps_shutdown();
	if (status_ev != NULL) {
		event_free(status_ev);
		status_ev = NULL;
	}
}
