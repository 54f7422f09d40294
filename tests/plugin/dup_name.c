/* dup_name.c -- a plugin whose task takes a built-in's name: refused. */
#include <concd/task.h>

static int
dup_start(struct task_ctx *ctx, const union task_value *argv)
{
	return 0;
}

static enum task_step
dup_step(struct task_ctx *ctx)
{
	return TASK_DONE;
}

static const struct task dup = {
    .abi = CONCD_TASK_ABI,
    .name = "sleep",
    .summary = "a second task called sleep",
    .traits = TASK_NONBLOCKING,
    .executors = TASK_ON_LOOP,
    .start = dup_start,
    .step = dup_step,
};

const int concd_plugin_abi = CONCD_TASK_ABI;
const struct task *const concd_plugin_tasks[] = {&dup, NULL};
