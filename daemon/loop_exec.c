/*
 * loop_exec.c -- the loop executor: jobs run as cooperative steps on the
 * event loop itself.  Each job owns one event, reused for whatever it
 * waits on next: a timer, an fd, or (to yield) being made active so it
 * runs again after the events already pending.
 */
#include <stdlib.h>
#include <unistd.h>

#include "executor.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "loop_exec.h"
#include "reap.h"
#include "task.h"
#include "task_int.h"

/* Its own jobs, and the slurm executor's (exec jobs under srun). */
static size_t loop_nrunning, slurm_nrunning;
static pid_t loop_pid;
static uint32_t loop_served;

static void loop_step_cb(evutil_socket_t, short, void *);

static void
loop_progress(struct task_ctx *ctx, uint64_t done, uint64_t total,
              const char *msg)
{
	job_progress(CTX_JOB(ctx), done, total, msg);
}

static void
loop_output(struct task_ctx *ctx, int stream, const void *data, size_t len)
{
	job_output(CTX_JOB(ctx), stream, data, len);
}

/* A held job's task may stop producing output within its step. */
static bool
loop_full(struct task_ctx *ctx)
{
	return job_output_held(CTX_JOB(ctx));
}

static const struct exec_ops loop_ops = {
    .progress = loop_progress,
    .output = loop_output,
    .full = loop_full,
    .release = reap_later, /* the loop must not wait */
    .on_loop = true,
};

uint64_t
loop_exec_served(void)
{
	return loop_served;
}

void
loop_exec_init(void)
{
	loop_pid = getpid();
}

static void
loop_end(struct job *j, enum proto_state s)
{
	if (j->has_ev) {
		event_del(&j->loop_ev);
		j->has_ev = false;
	}
	if (j->exec == PX_SLURM)
		slurm_nrunning--;
	else
		loop_nrunning--;
	job_finish(j, s);
}

/*
 * Arm the job's one event for what its last step asked.  A yield is a
 * timer of no length: libevent runs it after the next poll of the
 * descriptors, so a job that always has more to do lets every other
 * ready connection and job run between two of its steps.
 */
static void
loop_arm(struct job *j)
{
	struct task_ctx *ctx = &j->ctx;
	struct event *ev = &j->loop_ev;

	/* the job's one event, lives in the job itself */
	j->has_ev = true;
	if (ctx->wait_fd >= 0) {
		event_assign(ev, loop_base, ctx->wait_fd,
		             ctx->wait_write ? EV_WRITE : EV_READ, loop_step_cb,
		             j);
		event_add(ev, NULL);
	} else {
		evtimer_assign(ev, loop_base, loop_step_cb, j);
		loop_wait_add(ev, ctx->wait_ms);
	}
}

static void
loop_exec_run(struct job *j)
{
	struct task_ctx *ctx = &j->ctx;
	enum task_step st = task_ctx_step(ctx);

	if (st == TASK_DONE) {
		loop_end(j, PS_SUCCEEDED);
		return;
	}
	if (st == TASK_FAILED) {
		loop_end(j, task_cancelled(ctx) ? PS_CANCELLED : PS_FAILED);
		return;
	}
	if (st == TASK_YIELD) {
		ctx->wait_fd = -1;
		ctx->wait_ms = 0;
	}
	/* parked while its client catches up: loop_resume arms it */
	if (!job_output_held(j))
		loop_arm(j);
}

static void
loop_step_cb(evutil_socket_t fd, short what, void *arg)
{
	loop_exec_run(arg);
}

static void
loop_submit(struct job *j)
{
	job_start(j);
	j->worker = 0;
	j->tid = loop_pid;
	j->served = ++loop_served;
	if (j->exec == PX_SLURM)
		slurm_nrunning++;
	else
		loop_nrunning++;
	if (task_ctx_start(&j->ctx, j, &loop_ops, NULL) < 0) {
		loop_end(j, PS_FAILED);
		return;
	}
	loop_exec_run(j);
}

static void
loop_cancel(struct job *j)
{
	atomic_store(&j->ctx.cancel, true);
	if (!(j->task->traits & TASK_WINDS_DOWN)) {
		loop_end(j, PS_CANCELLED);
		return;
	}
	/* its next steps wind it down: the first one now */
	if (j->has_ev)
		event_del(&j->loop_ev);
	j->ctx.wait_fd = -1;
	j->ctx.wait_ms = 0;
	loop_arm(j);
}

/* A parked job waits again for what its last step asked. */
static void
loop_resume(struct job *j)
{
	if (j->state != PS_RUNNING ||
	    (j->has_ev &&
	     event_pending(&j->loop_ev, EV_TIMEOUT | EV_READ | EV_WRITE, NULL)))
		return;
	loop_arm(j);
}

static size_t
loop_running(void)
{
	return loop_nrunning;
}

static size_t
loop_queued(void)
{
	return 0;
}

static void
loop_shutdown(void)
{
}

const struct executor loop_executor = {
    .submit = loop_submit,
    .cancel = loop_cancel,
    .resume = loop_resume,
    .shutdown = loop_shutdown,
    .running = loop_running,
    .queued = loop_queued,
};

static size_t
slurm_running(void)
{
	return slurm_nrunning;
}

/*
 * The slurm executor: an exec job whose command is srun's (tasks/exec.c),
 * run as the loop runs its jobs; Slurm queues, places and runs it.
 */
const struct executor slurm_executor = {
    .submit = loop_submit,
    .cancel = loop_cancel,
    .resume = loop_resume,
    .shutdown = loop_shutdown,
    .running = slurm_running,
    .queued = loop_queued,
};
