/* noop -- returns its arguments: the smallest job, for benchmarks. */
#include "../task.h"

static int
noop_start(struct task_ctx *ctx, const union task_value *argv)
{
	return 0;
}

static enum task_step
noop_step(struct task_ctx *ctx)
{
	msgpack_packer *pk = task_result(ctx);
	size_t len;
	const char *raw = task_args_raw(ctx, &len);

	if (len == 0)
		msgpack_pack_map(pk, 0);
	else
		pk->callback(pk->data, raw, len);
	return TASK_DONE;
}

const struct task task_noop = {
    .abi = CONCD_TASK_ABI,
    .name = "noop",
    .summary = "return the arguments at once",
    .traits = TASK_NONBLOCKING,
    .executors = TASK_ON_ALL,
    .any_args = true,
    .start = noop_start,
    .step = noop_step,
};
