/* sleep -- wait ms milliseconds in steps, reporting progress per step. */
#include "../task.h"

enum { SLEEP_MS, SLEEP_STEPS };

static const struct task_arg sleep_args[] = {
    [SLEEP_MS] = {"ms", TASK_ARG_INT, true, 0, 86400000, 0,
                  "milliseconds to wait"},
    [SLEEP_STEPS] = {"steps", TASK_ARG_INT, false, 1, 1000000, 1,
                     "steps to divide the wait into, with progress after each"},
};

struct sleep_state {
	uint64_t ms;
	uint32_t steps;
	uint32_t done;
};

static int
sleep_start(struct task_ctx *ctx, const union task_value *argv)
{
	struct sleep_state *s = task_state(ctx);

	s->ms = (uint64_t)argv[SLEEP_MS].i;
	s->steps = (uint32_t)argv[SLEEP_STEPS].i;
	return 0;
}

static enum task_step
sleep_step(struct task_ctx *ctx)
{
	struct sleep_state *s = task_state(ctx);
	uint64_t from, to;

	if (s->done > 0 && s->steps > 1)
		task_progress(ctx, s->done, s->steps, NULL);
	if (s->done == s->steps) {
		msgpack_pack_uint64(task_result(ctx), s->ms);
		return TASK_DONE;
	}
	/* Spread the remainder so the steps add up to exactly ms. */
	from = s->ms * s->done / s->steps;
	to = s->ms * (s->done + 1) / s->steps;
	s->done++;
	return task_wait_ms(ctx, to - from);
}

const struct task task_sleep = {
    .abi = CONCD_TASK_ABI,
    .name = "sleep",
    .summary = "wait ms milliseconds in steps, with progress",
    .traits = TASK_NONBLOCKING,
    .executors = TASK_ON_ALL,
    .state_size = sizeof(struct sleep_state),
    .args = sleep_args,
    .nargs = sizeof(sleep_args) / sizeof(sleep_args[0]),
    .start = sleep_start,
    .step = sleep_step,
};
