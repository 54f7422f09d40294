/*
 * crash.c -- a plugin whose task kills the worker process running it, in
 * its first step, before the worker has written anything about the job:
 * the fault tests' crashing job.  It runs on worker processes only.
 */
#include <signal.h>

#include <concd/task.h>

static int
crash_start(struct task_ctx *ctx, const union task_value *argv)
{
	return 0;
}

static enum task_step
crash_step(struct task_ctx *ctx)
{
	raise(SIGSEGV);
	return task_fail(ctx, "still here after SIGSEGV");
}

static const struct task crash = {
    .abi = CONCD_TASK_ABI,
    .name = "crash",
    .summary = "kill the worker process that runs it (fault tests)",
    .traits = TASK_CPU,
    .executors = TASK_ON_PROCESS,
    .start = crash_start,
    .step = crash_step,
};

const int concd_plugin_abi = CONCD_TASK_ABI;
const struct task *const concd_plugin_tasks[] = {&crash, NULL};
