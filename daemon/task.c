/*
 * task.c -- the task table, argument validation against each task's
 * argument rows, and the functions a task calls on its context.
 */
#include <sys/fsuid.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job.h"
#include "log.h"
#include "reap.h"
#include "store.h"
#include "task.h"
#include "task_int.h"

extern const struct task task_noop, task_sleep, task_primes, task_counter,
    task_checksum, task_table, task_exec;

const struct task *const task_builtin[] = {
    &task_noop,     &task_sleep, &task_primes, &task_counter,
    &task_checksum, &task_table, &task_exec,
};
#define TASK_BUILTIN_COUNT (sizeof(task_builtin) / sizeof(task_builtin[0]))

/*
 * The registry: the built-in tasks, then those plugins add at start-up
 * (before any worker exists, so lookups need no lock).
 */
static struct {
	pthread_once_t once;
	const struct task *task[TASK_MAX_TASKS];
	size_t n;
} reg = {.once = PTHREAD_ONCE_INIT};

static void
task_registry_init(void)
{
	size_t i;

	for (i = 0; i < TASK_BUILTIN_COUNT && i < TASK_MAX_TASKS; i++)
		reg.task[reg.n++] = task_builtin[i];
}

size_t
task_count(void)
{
	pthread_once(&reg.once, task_registry_init);
	return reg.n;
}

const struct task *
task_at(size_t i)
{
	pthread_once(&reg.once, task_registry_init);
	return i < reg.n ? reg.task[i] : NULL;
}

int
task_index(const struct task *t)
{
	size_t i;

	pthread_once(&reg.once, task_registry_init);
	for (i = 0; i < reg.n; i++)
		if (reg.task[i] == t)
			return (int)i;
	return 0;
}

const struct task *
task_find(const char *name, size_t len)
{
	size_t i;

	pthread_once(&reg.once, task_registry_init);
	for (i = 0; i < reg.n; i++) {
		const char *n = reg.task[i]->name;
		if (strncmp(n, name, len) == 0 && n[len] == '\0')
			return reg.task[i];
	}
	return NULL;
}

/* Check a task from a plugin and add it; -1 with the reason. */
int
task_register(const struct task *t, char *cause, size_t causelen)
{
	size_t i;

	pthread_once(&reg.once, task_registry_init);
	if (t->abi != CONCD_TASK_ABI) {
		snprintf(cause, causelen, "task ABI %d, concd needs %d", t->abi,
		         CONCD_TASK_ABI);
		return -1;
	}
	if (t->name == NULL || *t->name == '\0' || strlen(t->name) > 64 ||
	    t->start == NULL || t->step == NULL || t->executors == 0 ||
	    (t->executors & ~(unsigned)TASK_ON_ALL) != 0 ||
	    t->nargs > TASK_MAX_ARGS || (t->nargs > 0 && t->args == NULL)) {
		snprintf(cause, causelen, "task %s is malformed",
		         t->name != NULL ? t->name : "(unnamed)");
		return -1;
	}
	for (i = 0; i < t->nargs; i++) {
		if (t->args[i].name == NULL || t->args[i].type > TASK_ARG_MAP) {
			snprintf(cause, causelen,
			         "task %s: argument %zu is malformed", t->name,
			         i);
			return -1;
		}
	}
	if (task_find(t->name, strlen(t->name)) != NULL) {
		snprintf(cause, causelen, "a task named %s exists already",
		         t->name);
		return -1;
	}
	if (reg.n == TASK_MAX_TASKS) {
		snprintf(cause, causelen, "more than %d tasks", TASK_MAX_TASKS);
		return -1;
	}
	reg.task[reg.n++] = t;
	return 0;
}

unsigned
task_exec_bit(enum proto_exec x)
{
	switch (x) {
	case PX_LOOP:
		return TASK_ON_LOOP;
	case PX_THREAD:
		return TASK_ON_THREAD;
	case PX_PROCESS:
	case PX_REMOTE: /* a worker process on a cluster node */
		return TASK_ON_PROCESS;
	default:
		return 0;
	}
}

/*
 * The rule of thumb: waits that need no thread go to the loop, blocking
 * calls to threads, computation to processes (isolation; C threads would
 * run it in parallel too).  sched.c falls back to threads when there is
 * no process pool.
 */
enum proto_exec
task_default_exec(const struct task *t)
{
	if ((t->traits & TASK_NONBLOCKING) && (t->executors & TASK_ON_LOOP))
		return PX_LOOP;
	if ((t->traits & TASK_CPU) && (t->executors & TASK_ON_PROCESS))
		return PX_PROCESS;
	if (t->executors & TASK_ON_THREAD)
		return PX_THREAD;
	if (t->executors & TASK_ON_PROCESS)
		return PX_PROCESS;
	return PX_LOOP;
}

static const char *const arg_type_names[] = {
    [TASK_ARG_INT] = "an integer",
    [TASK_ARG_BOOL] = "true or false",
    [TASK_ARG_STR] = "a string",
    [TASK_ARG_LIST] = "a list of strings",
    [TASK_ARG_MAP] = "a map of strings to strings",
};

/* An array (or map) whose elements (keys and values) are all strings. */
static bool
all_strings(const msgpack_object *o)
{
	uint32_t i;

	if (o->type == MSGPACK_OBJECT_ARRAY) {
		for (i = 0; i < o->via.array.size; i++)
			if (o->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
				return false;
		return true;
	}
	for (i = 0; i < o->via.map.size; i++)
		if (o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR ||
		    o->via.map.ptr[i].val.type != MSGPACK_OBJECT_STR)
			return false;
	return true;
}

static int
arg_find(const struct task *t, const msgpack_object *key)
{
	size_t i;

	for (i = 0; i < t->nargs; i++)
		if (proto_obj_streq(key, t->args[i].name))
			return (int)i;
	return -1;
}

static int
arg_parse(const struct task *t, const msgpack_object *args,
          union task_value *argv, char *cause, size_t causelen)
{
	bool seen[TASK_MAX_ARGS] = {false};
	uint32_t i;
	size_t k;

	if (t->any_args)
		return 0;
	if (args != NULL && args->type != MSGPACK_OBJECT_MAP) {
		snprintf(cause, causelen, "arguments must be a map");
		return -1;
	}
	for (k = 0; k < t->nargs; k++) {
		if (t->args[k].type == TASK_ARG_BOOL)
			argv[k].b = t->args[k].def != 0;
		else if (t->args[k].type == TASK_ARG_LIST ||
		         t->args[k].type == TASK_ARG_MAP)
			argv[k].o = NULL;
		else if (t->args[k].type == TASK_ARG_STR) {
			argv[k].s.ptr = NULL;
			argv[k].s.len = 0;
		} else
			argv[k].i = t->args[k].def;
	}
	for (i = 0; args != NULL && i < args->via.map.size; i++) {
		const msgpack_object *key = &args->via.map.ptr[i].key;
		const msgpack_object *val = &args->via.map.ptr[i].val;
		const struct task_arg *a;
		int n = arg_find(t, key);
		bool ok;

		if (n < 0) {
			char name[129];

			if (key->type == MSGPACK_OBJECT_STR)
				snprintf(cause, causelen,
				         "%s: unknown argument \"%s\"", t->name,
				         proto_quote(name, sizeof(name),
				                     key->via.str.ptr,
				                     key->via.str.size));
			else
				snprintf(cause, causelen,
				         "%s: argument names must be strings",
				         t->name);
			return -1;
		}
		a = &t->args[n];
		seen[n] = true;
		switch (a->type) {
		case TASK_ARG_INT:
			ok = val->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
			     val->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
			if (ok &&
			    val->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
			    val->via.u64 > (uint64_t)a->max) {
				snprintf(cause, causelen,
				         "%s: %s must be at most %lld", t->name,
				         a->name, (long long)a->max);
				return -1;
			}
			if (ok) {
				argv[n].i = val->via.i64;
				if (argv[n].i < a->min || argv[n].i > a->max) {
					snprintf(
					    cause, causelen,
					    "%s: %s must be between %lld and "
					    "%lld",
					    t->name, a->name, (long long)a->min,
					    (long long)a->max);
					return -1;
				}
			}
			break;
		case TASK_ARG_BOOL:
			ok = val->type == MSGPACK_OBJECT_BOOLEAN;
			if (ok)
				argv[n].b = val->via.boolean;
			break;
		case TASK_ARG_STR:
			ok = val->type == MSGPACK_OBJECT_STR;
			if (ok && ((int64_t)val->via.str.size < a->min ||
			           (int64_t)val->via.str.size > a->max)) {
				snprintf(
				    cause, causelen,
				    "%s: %s must be %lld to %lld bytes long",
				    t->name, a->name, (long long)a->min,
				    (long long)a->max);
				return -1;
			}
			if (ok) {
				argv[n].s.ptr = val->via.str.ptr;
				argv[n].s.len = val->via.str.size;
			}
			break;
		case TASK_ARG_LIST:
		case TASK_ARG_MAP: {
			uint32_t count;

			ok = val->type == (a->type == TASK_ARG_LIST
			                       ? MSGPACK_OBJECT_ARRAY
			                       : MSGPACK_OBJECT_MAP) &&
			     all_strings(val);
			if (!ok)
				break;
			count = a->type == TASK_ARG_LIST ? val->via.array.size
			                                 : val->via.map.size;
			if ((int64_t)count < a->min ||
			    (int64_t)count > a->max) {
				snprintf(
				    cause, causelen,
				    "%s: %s must have %lld to %lld entries",
				    t->name, a->name, (long long)a->min,
				    (long long)a->max);
				return -1;
			}
			argv[n].o = val;
			break;
		}
		default:
			ok = false;
		}
		if (!ok) {
			snprintf(cause, causelen, "%s: %s must be %s", t->name,
			         a->name, arg_type_names[a->type]);
			return -1;
		}
	}
	for (k = 0; k < t->nargs; k++) {
		if (t->args[k].required && !seen[k]) {
			snprintf(cause, causelen, "%s: missing argument %s",
			         t->name, t->args[k].name);
			return -1;
		}
	}
	return 0;
}

int
task_validate(const struct task *t, const msgpack_object *args, char *cause,
              size_t causelen)
{
	union task_value argv[TASK_MAX_ARGS];

	return arg_parse(t, args, argv, cause, causelen);
}

/* ---- the context ---- */

/*
 * The worker state of the job this thread started last: a pool worker
 * runs one job at a time from its start to its end, and the loop, which
 * runs many, has none.  Kept here, not in every job's context.
 */
static _Thread_local void *worker_state_here;

int
task_ctx_start(struct task_ctx *ctx, struct job *job,
               const struct exec_ops *ops, void *worker_state)
{
	union task_value argv[TASK_MAX_ARGS];
	msgpack_zone zone;
	msgpack_object args;
	size_t off = 0;
	char cause[256];
	int rc;

	ctx->ops = ops;
	worker_state_here = worker_state;
	ctx->wait_fd = -1;
	/* an earlier attempt's outcome is not this one's */
	ctx->exited = false;
	/* the state lives in the job's own allocation (job_alloc) */
	if (job->task->state_size > 0)
		memset(job_state_buf(job), 0, job->task->state_size);
	/* The arguments were validated at submission. */
	msgpack_zone_init(&zone, 256);
	if (!job->task->any_args) {
		if (job->args_len == 0 ||
		    msgpack_unpack(job_args(job), job->args_len, &off, &zone,
		                   &args) != MSGPACK_UNPACK_SUCCESS)
			rc = arg_parse(job->task, NULL, argv, cause,
			               sizeof(cause));
		else
			rc = arg_parse(job->task, &args, argv, cause,
			               sizeof(cause));
		if (rc < 0) {
			msgpack_zone_destroy(&zone);
			task_fail(ctx, "%s", cause);
			return -1;
		}
	}
	/* list and map values point into the zone: it outlives start() */
	rc = job->task->start(ctx, argv);
	msgpack_zone_destroy(&zone);
	if (rc < 0) {
		if (ctx->error == NULL)
			task_fail(ctx, "%s: could not start", job->task->name);
		return -1;
	}
	ctx->started = true;
	return 0;
}

int
task_warm_start(struct task_warm *w, struct task_ctx *ctx, struct job *job,
                const struct exec_ops *ops)
{
	const struct task *t = job->task;
	int ti = task_index(t);
	char err[256] = "";

	if (t->init != NULL && !w->inited[ti]) {
		if (t->init(&w->state[ti], err, sizeof(err)) < 0) {
			task_fail(ctx, "%s: init failed: %s", t->name, err);
			return -1;
		}
		w->inited[ti] = true;
	}
	return task_ctx_start(ctx, job, ops, w->state[ti]);
}

void
task_warm_fini(struct task_warm *w)
{
	size_t i;

	for (i = 0; i < TASK_MAX_TASKS; i++) {
		const struct task *t = task_at(i);
		if (w->inited[i] && t != NULL && t->fini != NULL)
			t->fini(w->state[i]);
	}
}

enum task_step
task_ctx_step(struct task_ctx *ctx)
{
	ctx->wait_ms = 0;
	ctx->wait_fd = -1;
	return CTX_JOB(ctx)->task->step(ctx);
}

void
task_ctx_stop(struct task_ctx *ctx)
{
	struct job *j = CTX_JOB(ctx);

	if (ctx->started && j->task->stop != NULL)
		j->task->stop(ctx);
	ctx->started = false;
}

void
task_ctx_free(struct task_ctx *ctx)
{
	task_ctx_stop(ctx);
	pbuf_free(&ctx->result);
	free(ctx->error);
	ctx->error = NULL;
}

/* Cancelled, and stepped on to wind down (TASK_WINDS_DOWN) rather than cut. */
bool
task_winding_down(struct task_ctx *ctx)
{
	return (CTX_JOB(ctx)->task->traits & TASK_WINDS_DOWN) &&
	       task_cancelled(ctx);
}

/*
 * The pool workers' step loop, on the calling thread: a cancel is heard
 * before every step (it cuts the job off, unless the task winds down),
 * and between two steps the executor's pause waits out a TASK_WAIT and
 * does its own work; its false ends the job.
 */
enum task_step
task_run_blocking(struct task_ctx *ctx,
                  bool (*pause)(struct task_ctx *, enum task_step, void *arg),
                  void *arg)
{
	bool winds = (CTX_JOB(ctx)->task->traits & TASK_WINDS_DOWN) != 0;
	enum task_step st;

	for (;;) {
		if (task_cancelled(ctx) && !winds)
			return TASK_FAILED;
		st = task_ctx_step(ctx);
		if (st == TASK_DONE || st == TASK_FAILED)
			return st;
		if (!pause(ctx, st, arg))
			return TASK_FAILED; /* cancelled, or the worker goes */
	}
}

void *
task_state(struct task_ctx *ctx)
{
	return job_state_buf(CTX_JOB(ctx));
}

void *
task_worker_state(struct task_ctx *ctx)
{
	(void)ctx;
	return worker_state_here;
}

const char *
task_args_raw(struct task_ctx *ctx, size_t *len)
{
	*len = CTX_JOB(ctx)->args_len;
	return job_args(CTX_JOB(ctx));
}

void
task_output(struct task_ctx *ctx, int stream, const void *data, size_t len)
{
	if (len > 0 && ctx->ops->output != NULL)
		ctx->ops->output(ctx, stream, data, len);
}

bool
task_output_full(struct task_ctx *ctx)
{
	return ctx->ops != NULL && ctx->ops->full != NULL &&
	       !task_cancelled(ctx) && ctx->ops->full(ctx);
}

void
task_release_child(struct task_ctx *ctx, pid_t pid, int pidfd,
                   unsigned grace_ms)
{
	if (ctx->ops != NULL && ctx->ops->release != NULL)
		ctx->ops->release(pid, pidfd, grace_ms);
	else
		reap_now(pid, pidfd, grace_ms);
}

void
task_progress(struct task_ctx *ctx, uint64_t done, uint64_t total,
              const char *msg)
{
	ctx->ops->progress(ctx, done, total, msg);
}

msgpack_packer *
task_result(struct task_ctx *ctx)
{
	ctx->result.len = 0;
	/* one packer per thread: a task packs its result within a step */
	static _Thread_local msgpack_packer pk;

	msgpack_packer_init(&pk, &ctx->result, pbuf_write_cb);
	return &pk;
}

enum task_step
task_fail(struct task_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(ctx->error);
	ctx->error = s != NULL ? s : strdup("task failed");
	return TASK_FAILED;
}

const char *
task_cwd(struct task_ctx *ctx)
{
	const struct job_extra *x = CTX_JOB(ctx)->extra;

	return x != NULL ? x->cwd : NULL;
}

int
task_umask(struct task_ctx *ctx)
{
	const struct job_extra *x = CTX_JOB(ctx)->extra;

	return x != NULL && x->umask != 0 ? x->umask - 1 : -1;
}

const char *
task_env(struct task_ctx *ctx, size_t *len)
{
	const struct job_extra *x = CTX_JOB(ctx)->extra;

	*len = x != NULL ? x->env_len : 0;
	return x != NULL ? x->env : NULL;
}

int
task_stdin(struct task_ctx *ctx)
{
	return job_stdin(CTX_JOB(ctx));
}

void
task_exit(struct task_ctx *ctx, int code, int sig)
{
	ctx->exited = true;
	ctx->exit_code = (uint8_t)(sig != 0 ? 0 : code);
	ctx->exit_signal = (uint8_t)sig;
}

enum task_step
task_wait_ms(struct task_ctx *ctx, uint64_t ms)
{
	ctx->wait_ms = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
	ctx->wait_fd = -1;
	return TASK_WAIT;
}

enum task_step
task_wait_fd(struct task_ctx *ctx, int fd, bool writable)
{
	ctx->wait_fd = fd;
	ctx->wait_write = writable;
	return TASK_WAIT;
}

bool
task_cancelled(struct task_ctx *ctx)
{
	if (atomic_load_explicit(&ctx->cancel, memory_order_relaxed))
		return true;
	return ctx->ops != NULL && ctx->ops->cancelled != NULL &&
	       ctx->ops->cancelled(ctx);
}

bool
task_on_thread(struct task_ctx *ctx)
{
	return ctx->ops != NULL && ctx->ops->on_thread;
}

bool
task_on_loop(struct task_ctx *ctx)
{
	return ctx->ops != NULL && ctx->ops->on_loop;
}

uid_t
task_owner(struct task_ctx *ctx)
{
	return CTX_JOB(ctx)->uid;
}

uint64_t
task_job_id(struct task_ctx *ctx)
{
	return CTX_JOB(ctx)->id;
}

bool
task_as_owner(struct task_ctx *ctx)
{
	return geteuid() == 0 && CTX_JOB(ctx)->uid != 0;
}

#define TASK_PW_BUF_MAX (1024 * 1024) /* a passwd entry's strings, at most */

void
task_account_free(struct task_account *a)
{
	free(a->groups);
	free(a->name);
	free(a->home);
	free(a->shell);
	memset(a, 0, sizeof(*a));
}

/* The groups initgroups(3) would give name: getgrouplist, grown to fit. */
static int
task_account_groups(struct task_account *a)
{
	int n = 32, want;
	gid_t *g;

	for (;;) {
		if ((g = realloc(a->groups, (size_t)n * sizeof(*g))) == NULL)
			return -1;
		a->groups = g;
		want = n;
		if (getgrouplist(a->name, a->gid, g, &want) >= 0) {
			a->ngroups = want;
			return 0;
		}
		if (want <= n || want > 65536) {
			errno = ERANGE;
			return -1;
		}
		n = want;
	}
}

int
task_account_get(uid_t uid, struct task_account *a, char *err, size_t errlen)
{
	struct passwd pw, *found = NULL;
	size_t size = 16384;
	char *buf = NULL, *nb;
	int rc;

	memset(a, 0, sizeof(*a));
	for (;;) {
		if ((nb = realloc(buf, size)) == NULL) {
			rc = ENOMEM;
			break;
		}
		buf = nb;
		rc = getpwuid_r(uid, &pw, buf, size, &found);
		if (rc != ERANGE || size >= TASK_PW_BUF_MAX)
			break;
		size *= 2;
	}
	if (rc == 0 && found == NULL) {
		free(buf);
		snprintf(err, errlen,
		         "uid %u has no entry in the user database",
		         (unsigned)uid);
		return -1;
	}
	if (rc != 0)
		goto fail;
	a->uid = pw.pw_uid;
	a->gid = pw.pw_gid;
	a->name = strdup(pw.pw_name);
	a->home =
	    strdup(pw.pw_dir != NULL && *pw.pw_dir != '\0' ? pw.pw_dir : "/");
	a->shell =
	    strdup(pw.pw_shell != NULL && *pw.pw_shell != '\0' ? pw.pw_shell
	                                                       : "/bin/sh");
	if (a->name == NULL || a->home == NULL || a->shell == NULL) {
		rc = ENOMEM;
		goto fail;
	}
	if (task_account_groups(a) < 0) {
		rc = errno;
		goto fail;
	}
	free(buf);
	return 0;
fail:
	free(buf);
	task_account_free(a);
	snprintf(err, errlen, "cannot look up uid %u: %s", (unsigned)uid,
	         strerror(rc));
	return -1;
}

/* Put the thread's file system credentials back: it must not go on as
 * anyone else. */
static void
task_fs_restore(uid_t uid, gid_t gid, int ngroups, const gid_t *groups)
{
	setfsuid(uid);
	setfsgid(gid);
	if ((uid_t)setfsuid((uid_t)-1) != uid ||
	    (gid_t)setfsgid((gid_t)-1) != gid ||
	    syscall(SYS_setgroups, (size_t)ngroups, groups) < 0) {
		log_warnx("task_open: cannot restore the thread's credentials");
		abort();
	}
}

/*
 * The owner's credentials on this thread only: setfsuid and setfsgid
 * are per thread, and the raw setgroups system call too (glibc's
 * setgroups would change every thread's).
 */
int
task_open(struct task_ctx *ctx, const char *path, int flags, mode_t mode)
{
	struct task_account a;
	uid_t fsuid;
	gid_t fsgid, *saved = NULL;
	int nsaved, fd = -1, e;
	char why[128];

	if (!task_as_owner(ctx))
		return open(path, flags | O_CLOEXEC, mode);
	if (task_account_get(task_owner(ctx), &a, why, sizeof(why)) < 0) {
		errno = EPERM;
		return -1;
	}
	if ((nsaved = getgroups(0, NULL)) < 0 ||
	    (saved = calloc((size_t)nsaved + 1, sizeof(*saved))) == NULL ||
	    (nsaved = getgroups(nsaved, saved)) < 0) {
		e = errno;
		goto out;
	}
	fsuid = (uid_t)setfsuid((uid_t)-1);
	fsgid = (gid_t)setfsgid((gid_t)-1);
	if (syscall(SYS_setgroups, (size_t)a.ngroups, a.groups) < 0) {
		e = errno;
		goto out;
	}
	setfsgid(a.gid);
	setfsuid(a.uid);
	if ((uid_t)setfsuid((uid_t)-1) != a.uid ||
	    (gid_t)setfsgid((gid_t)-1) != a.gid) {
		e = EPERM;
	} else {
		fd = open(path, flags | O_CLOEXEC, mode);
		e = errno;
	}
	task_fs_restore(fsuid, fsgid, nsaved, saved);
out:
	free(saved);
	task_account_free(&a);
	errno = e;
	return fd;
}
