/*
 * faulty.c -- a plugin whose tasks misbehave, for the fault tests.
 *
 * crash: kills the worker process running it, in its first step, before
 * the worker has written anything about the job.
 * hang: never returns from its first step, so it never hears a cancel;
 * it also runs on a thread.  It reports progress (1 of 1) once in the
 * step, so that a test knows a cancel from then on goes unheard.
 */
#include <signal.h>
#include <unistd.h>

#include <concd/task.h>

static int
faulty_start(struct task_ctx *ctx, const union task_value *argv)
{
	return 0;
}

static enum task_step
crash_step(struct task_ctx *ctx)
{
	raise(SIGSEGV);
	return task_fail(ctx, "still here after SIGSEGV");
}

static enum task_step
hang_step(struct task_ctx *ctx)
{
	task_progress(ctx, 1, 1, "hanging");
	for (;;)
		pause();
	return TASK_DONE; /* not reached */
}

static const struct task crash = {
    .abi = CONCD_TASK_ABI,
    .name = "crash",
    .summary = "kill the worker process that runs it (fault tests)",
    .traits = TASK_CPU,
    .executors = TASK_ON_PROCESS,
    .start = faulty_start,
    .step = crash_step,
};

static const struct task hang = {
    .abi = CONCD_TASK_ABI,
    .name = "hang",
    .summary = "never return from a step (fault tests)",
    .traits = TASK_CPU,
    .executors = TASK_ON_THREAD | TASK_ON_PROCESS,
    .start = faulty_start,
    .step = hang_step,
};

const int concd_plugin_abi = CONCD_TASK_ABI;
const struct task *const concd_plugin_tasks[] = {&crash, &hang, NULL};
