/*
 * python_shim.c -- the python task as concd loads it (python.so): the
 * task's table and nothing of Python.  A worker's first python job loads
 * the task itself, python/concd_python.so beside it, which is linked
 * against libpython3, and every call goes on to it; so concd and its
 * workers map libpython only once they run a python job.  It is loaded
 * RTLD_GLOBAL, as Python's own extension modules (_ctypes, _decimal, ...)
 * expect of the library that embeds it, and never unloaded.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <concd/task.h>

#include "python.h"

static const struct task task_python;

static struct {
	pthread_mutex_t lock;
	const struct task *impl;
} shim = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* python/concd_python.so beside this object, loaded once. */
static const struct task *
shim_load(char *err, size_t errlen)
{
	const struct task *t;
	char path[PATH_MAX];
	const char *slash;
	Dl_info info;
	void *h;

	pthread_mutex_lock(&shim.lock);
	if ((t = shim.impl) != NULL)
		goto out;
	if (dladdr(&task_python, &info) == 0 || info.dli_fname == NULL ||
	    (slash = strrchr(info.dli_fname, '/')) == NULL) {
		snprintf(err, errlen, "cannot tell where python.so is");
		goto out;
	}
	snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - info.dli_fname),
	         info.dli_fname, PYTHON_IMPL_PATH);
	if ((h = dlopen(path, RTLD_NOW | RTLD_GLOBAL)) == NULL) {
		snprintf(err, errlen, "%s", dlerror());
		goto out;
	}
	t = dlsym(h, PYTHON_IMPL_SYMBOL);
	if (t == NULL || t->abi != CONCD_TASK_ABI ||
	    t->state_size > PYTHON_STATE_SIZE) {
		snprintf(err, errlen, "%s: not the python task of this concd",
		         path);
		t = NULL;
		goto out;
	}
	shim.impl = t;
out:
	pthread_mutex_unlock(&shim.lock);
	return t;
}

static int
shim_init(void **worker_state, char *err, size_t errlen)
{
	const struct task *t = shim_load(err, errlen);

	return t != NULL ? t->init(worker_state, err, errlen) : -1;
}

/* the rest comes only after an init that loaded it */
static void
shim_fini(void *worker_state)
{
	shim.impl->fini(worker_state);
}

static int
shim_start(struct task_ctx *ctx, const union task_value *argv)
{
	return shim.impl->start(ctx, argv);
}

static enum task_step
shim_step(struct task_ctx *ctx)
{
	return shim.impl->step(ctx);
}

static void
shim_stop(struct task_ctx *ctx)
{
	shim.impl->stop(ctx);
}

static const struct task task_python = {
    .abi = CONCD_TASK_ABI,
    .name = "python",
    .summary = "call module:function with msgpack args on a warm "
               "interpreter",
    .traits = TASK_CPU | TASK_USER_CODE | TASK_NOT_AS_OWNER,
    .executors = TASK_ON_THREAD | TASK_ON_PROCESS,
    .state_size = PYTHON_STATE_SIZE,
    .any_args = true,
    .init = shim_init,
    .fini = shim_fini,
    .start = shim_start,
    .step = shim_step,
    .stop = shim_stop,
};

const int concd_plugin_abi = CONCD_TASK_ABI;
const struct task *const concd_plugin_tasks[] = {&task_python, NULL};
