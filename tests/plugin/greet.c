/*
 * greet.c -- an example concd task plugin.  Build it against the
 * installed <concd/task.h>, drop the .so into concd's plugin directory,
 * and `concctl run greet name=world` answers "hello, world" after a
 * short wait on the event loop.
 */
#include <stdio.h>
#include <string.h>

#include <concd/task.h>

enum { GREET_NAME, GREET_MS };

static const struct task_arg greet_args[] = {
    [GREET_NAME] = {"name", TASK_ARG_STR, true, 1, 64, 0, "who to greet"},
    [GREET_MS] = {"ms", TASK_ARG_INT, false, 0, 60000, 10,
                  "milliseconds to think first"},
};

struct greet {
	char name[65];
	int64_t ms;
	bool waited;
};

static int
greet_start(struct task_ctx *ctx, const union task_value *argv)
{
	struct greet *g = task_state(ctx);

	snprintf(g->name, sizeof(g->name), "%.*s", (int)argv[GREET_NAME].s.len,
	         argv[GREET_NAME].s.ptr);
	g->ms = argv[GREET_MS].i;
	return 0;
}

static enum task_step
greet_step(struct task_ctx *ctx)
{
	struct greet *g = task_state(ctx);
	char text[80];
	int n;

	if (!g->waited) {
		g->waited = true;
		return task_wait_ms(ctx, (uint64_t)g->ms);
	}
	n = snprintf(text, sizeof(text), "hello, %s", g->name);
	msgpack_pack_str_with_body(task_result(ctx), text, (size_t)n);
	return TASK_DONE;
}

static const struct task greet = {
    .abi = CONCD_TASK_ABI,
    .name = "greet",
    .summary = "say hello after a short wait (example plugin)",
    .traits = TASK_NONBLOCKING,
    .executors = TASK_ON_ALL,
    .state_size = sizeof(struct greet),
    .args = greet_args,
    .nargs = sizeof(greet_args) / sizeof(greet_args[0]),
    .start = greet_start,
    .step = greet_step,
};

const int concd_plugin_abi = CONCD_TASK_ABI;
const struct task *const concd_plugin_tasks[] = {&greet, NULL};
