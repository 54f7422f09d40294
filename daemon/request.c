/*
 * request.c -- what the daemon does with each request: one row per
 * message type in the table at the bottom, one function per row.  A
 * user's mistake becomes an error reply; only framing faults and a
 * version mismatch end the connection.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "concd.h"

#define PS_DEFAULT_LIMIT 1000

static void
reply_error(struct conn *c, uint64_t id, enum proto_error code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
reply_error(struct conn *c, uint64_t id, enum proto_error code,
    const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	proto_enc_error(conn_out(c), id, code, message);
	conn_dirty(c);
}

/* Find a job the peer may see; replies with the error when not. */
static struct job *
request_job(struct conn *c, const struct proto_msg *m)
{
	uint64_t id = proto_u64(m, PF_JOB, 0);
	struct job *j = job_find(id);

	if (j == NULL || !job_visible(j, conn_uid(c))) {
		/* Another user's job is as good as absent. */
		reply_error(c, m->id, PE_NO_SUCH_JOB, "no such job: %llu",
		    (unsigned long long)id);
		return NULL;
	}
	return j;
}

static void
request_hello(struct conn *c, const struct proto_msg *m)
{
	struct proto_enc e;
	uint64_t v = proto_u64(m, PF_VERSION, 0);

	if (v != PROTO_VERSION) {
		reply_error(c, m->id, PE_VERSION,
		    "protocol version %llu is not supported (concd speaks %d)",
		    (unsigned long long)v, PROTO_VERSION);
		conn_hangup(c);
		return;
	}
	proto_enc_begin(&e, conn_out(c), PROTO_WELCOME, m->id);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	proto_enc_cstr(&e, PF_SERVER, "concd " CONCD_VERSION);
	proto_enc_u64(&e, PF_PID, (uint64_t)getpid());
	proto_enc_end(&e);
	conn_dirty(c);
}

static void
request_ping(struct conn *c, const struct proto_msg *m)
{
	struct proto_enc e;

	proto_enc_begin(&e, conn_out(c), PROTO_PONG, m->id);
	proto_enc_end(&e);
	conn_dirty(c);
}

static void
request_submit(struct conn *c, const struct proto_msg *m)
{
	static struct pbuf args;
	struct job_submit js;
	struct proto_enc e;
	struct job *j;
	const char *name, *xname;
	size_t len, xlen;
	char cause[256];
	int x = PX_AUTO;

	if (server_stopping()) {
		reply_error(c, m->id, PE_SHUTTING_DOWN,
		    "concd is shutting down");
		return;
	}
	memset(&js, 0, sizeof(js));
	name = proto_str(m, PF_TASK, &len);
	if ((js.task = task_find(name, len)) == NULL) {
		reply_error(c, m->id, PE_UNKNOWN_TASK,
		    "no such task \"%.*s\" (see concctl tasks)",
		    (int)(len > 64 ? 64 : len), name);
		return;
	}
	if ((xname = proto_str(m, PF_EXEC, &xlen)) != NULL &&
	    (x = proto_exec_lookup(xname, xlen)) < 0) {
		reply_error(c, m->id, PE_BAD_EXECUTOR,
		    "unknown executor \"%.*s\" (auto, loop, thread, process)",
		    (int)xlen, xname);
		return;
	}
	js.requested = (enum proto_exec)x;
	js.fresh = proto_bool(m, PF_FRESH, false);
	if (sched_choose(js.task, js.requested, js.fresh, &js.exec, cause,
		sizeof(cause)) < 0) {
		reply_error(c, m->id, PE_BAD_EXECUTOR, "%s", cause);
		return;
	}
	if (proto_has(m, PF_ARGS)) {
		if (task_validate(js.task, &m->f[PF_ARGS], cause,
			sizeof(cause)) < 0) {
			reply_error(c, m->id, PE_BAD_ARGS, "%s", cause);
			return;
		}
		if (m->f[PF_ARGS].via.map.size > 0) {
			msgpack_packer pk;

			args.len = 0;
			msgpack_packer_init(&pk, &args, pbuf_write_cb);
			msgpack_pack_object(&pk, m->f[PF_ARGS]);
			js.args = args.data;
			js.args_len = args.len;
		}
	} else if (task_validate(js.task, NULL, cause, sizeof(cause)) < 0) {
		reply_error(c, m->id, PE_BAD_ARGS, "%s", cause);
		return;
	}
	js.daemon = proto_bool(m, PF_DAEMON, false);
	js.uid = conn_uid(c);
	js.timeout_ms = proto_u64(m, PF_TIMEOUT, 0);
	if ((j = job_new(&js)) == NULL) {
		reply_error(c, m->id, PE_INTERNAL, "out of memory");
		return;
	}
	proto_enc_begin(&e, conn_out(c), PROTO_ACCEPTED, m->id);
	proto_enc_u64(&e, PF_JOB, j->id);
	proto_enc_end(&e);
	conn_dirty(c);
	if (proto_bool(m, PF_WATCH, false))
		job_watch(j, c, m->id, -1);
	sched_submit(j);
}

static void
request_watch(struct conn *c, const struct proto_msg *m)
{
	struct job *j = request_job(c, m);

	if (j != NULL && job_watch(j, c, m->id, -1) < 0)
		reply_error(c, m->id, PE_INTERNAL, "out of memory");
}

static void
request_status(struct conn *c, const struct proto_msg *m)
{
	struct job *j = request_job(c, m);
	struct proto_enc e;

	if (j == NULL)
		return;
	proto_enc_begin(&e, conn_out(c), PROTO_JOB, m->id);
	job_encode_record(&e, j);
	proto_enc_end(&e);
	conn_dirty(c);
}

struct ps_walk {
	uid_t uid;
	bool all;
	struct job **rows;
	size_t n, cap;
	size_t counts[PS_COUNT];
};

static void
ps_collect(struct job *j, void *arg)
{
	struct ps_walk *w = arg;

	if (!job_visible(j, w->uid))
		return;
	w->counts[j->state]++;
	if (!w->all && PROTO_STATE_FINAL(j->state))
		return;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct job **r = realloc(w->rows, cap * sizeof(*r));
		if (r == NULL)
			return;
		w->rows = r;
		w->cap = cap;
	}
	w->rows[w->n++] = j;
}

static int
ps_cmp(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a;
	const struct job *y = *(struct job *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static void
request_ps(struct conn *c, const struct proto_msg *m)
{
	struct ps_walk w = {.uid = conn_uid(c)};
	size_t limit = proto_u64(m, PF_LIMIT, PS_DEFAULT_LIMIT), i, first;
	struct proto_enc e;

	w.all = proto_bool(m, PF_ALL, false);
	job_foreach(ps_collect, &w);
	if (w.n > 0)
		qsort(w.rows, w.n, sizeof(*w.rows), ps_cmp);
	/* the newest rows, when there are more than the limit */
	first = w.n > limit ? w.n - limit : 0;
	proto_enc_begin(&e, conn_out(c), PROTO_JOBS, m->id);
	proto_enc_key(&e, PF_JOBS);
	proto_enc_array_open(&e);
	for (i = first; i < w.n; i++) {
		proto_enc_map_open(&e);
		job_encode_record(&e, w.rows[i]);
		proto_enc_close(&e);
	}
	proto_enc_close(&e);
	proto_enc_key(&e, PF_COUNTS);
	proto_enc_map_open(&e);
	for (i = 0; i < PS_COUNT; i++) {
		msgpack_pack_str_with_body(&e.pk, proto_states[i],
		    strlen(proto_states[i]));
		msgpack_pack_uint64(&e.pk, w.counts[i]);
		proto_enc_elem(&e);
	}
	proto_enc_close(&e);
	if (proto_enc_end(&e) < 0)
		reply_error(c, m->id, PE_INTERNAL,
		    "too many jobs for one reply: use a smaller limit");
	conn_dirty(c);
	free(w.rows);
}

static void
request_cancel(struct conn *c, const struct proto_msg *m)
{
	struct job *j = request_job(c, m);
	struct proto_enc e;

	if (j == NULL)
		return;
	job_cancel(j);
	proto_enc_begin(&e, conn_out(c), PROTO_OK, m->id);
	proto_enc_u64(&e, PF_JOB, j->id);
	proto_enc_cstr(&e, PF_STATE, proto_states[j->state]);
	proto_enc_end(&e);
	conn_dirty(c);
}

static void
request_result(struct conn *c, const struct proto_msg *m)
{
	struct job *j = request_job(c, m);

	if (j == NULL)
		return;
	if (!PROTO_STATE_FINAL(j->state)) {
		reply_error(c, m->id, PE_NOT_FINISHED, "job %llu is %s",
		    (unsigned long long)j->id, proto_states[j->state]);
		return;
	}
	job_encode_end(conn_out(c), j, m->id, -1);
	conn_dirty(c);
}

static void
enc_names(struct proto_enc *e, enum proto_field f, unsigned bits,
    const char *const *names, size_t n)
{
	size_t i;

	proto_enc_key(e, f);
	proto_enc_array_open(e);
	for (i = 0; i < n; i++) {
		if (bits & (1u << i)) {
			msgpack_pack_str_with_body(&e->pk, names[i],
			    strlen(names[i]));
			proto_enc_elem(e);
		}
	}
	proto_enc_close(e);
}

static void
task_usage(const struct task *t, char *buf, size_t size)
{
	size_t i, n = 0;

	n += (size_t)snprintf(buf, size, "%s", t->name);
	if (t->any_args && n < size)
		n += (size_t)snprintf(buf + n, size - n, " [key=value ...]");
	for (i = 0; i < t->nargs && n < size; i++) {
		const struct task_arg *a = &t->args[i];
		const char *v = a->type == TASK_ARG_INT    ? "N"
		    : a->type == TASK_ARG_BOOL ? "true|false"
					       : "STR";
		n += (size_t)snprintf(buf + n, size - n,
		    a->required ? " %s=%s" : " [%s=%s]", a->name, v);
	}
}

static void
request_tasks(struct conn *c, const struct proto_msg *m)
{
	static const char *const traits[] = {"non-blocking", "blocking",
	    "cpu"};
	static const char *const execs[] = {"loop", "thread", "process"};
	struct proto_enc e;
	char usage[256];
	size_t i;

	proto_enc_begin(&e, conn_out(c), PROTO_TASKLIST, m->id);
	proto_enc_key(&e, PF_TASKS);
	proto_enc_array_open(&e);
	for (i = 0; i < task_count(); i++) {
		const struct task *t = task_at(i);

		proto_enc_map_open(&e);
		proto_enc_cstr(&e, PF_NAME, t->name);
		proto_enc_cstr(&e, PF_SUMMARY, t->summary);
		task_usage(t, usage, sizeof(usage));
		proto_enc_cstr(&e, PF_USAGE, usage);
		enc_names(&e, PF_TRAITS, t->traits, traits, 3);
		enc_names(&e, PF_EXECUTORS, t->executors, execs, 3);
		proto_enc_cstr(&e, PF_DEFAULT,
		    proto_execs[task_default_exec(t)]);
		proto_enc_close(&e);
	}
	proto_enc_close(&e);
	proto_enc_end(&e);
	conn_dirty(c);
}

static void
request_shutdown(struct conn *c, const struct proto_msg *m)
{
	struct proto_enc e;

	if (conn_uid(c) != 0 && conn_uid(c) != server_uid()) {
		reply_error(c, m->id, PE_PERMISSION,
		    "only root or the daemon's user may shut it down");
		return;
	}
	proto_enc_begin(&e, conn_out(c), PROTO_OK, m->id);
	proto_enc_end(&e);
	conn_dirty(c);
	server_shutdown("shutdown requested",
	    proto_bool(m, PF_CANCEL_PENDING, false));
}

struct pool_walk {
	struct proto_enc *e;
	uint64_t now;
};

static void
pool_row(const struct pool_worker_info *w, void *arg)
{
	struct pool_walk *pw = arg;
	struct proto_enc *e = pw->e;

	proto_enc_map_open(e);
	proto_enc_cstr(e, PF_EXEC, proto_execs[w->exec]);
	proto_enc_i64(e, PF_WORKER, w->index);
	proto_enc_u64(e, w->exec == PX_PROCESS ? PF_PID : PF_TID, w->id);
	proto_enc_cstr(e, PF_STATE, w->state);
	proto_enc_u64(e, PF_SERVED, w->served);
	proto_enc_u64(e, PF_UPTIME, pw->now > w->since ? pw->now - w->since : 0);
	if (w->job != 0)
		proto_enc_u64(e, PF_JOB, w->job);
	proto_enc_close(e);
}

static void
request_pool(struct conn *c, const struct proto_msg *m)
{
	struct proto_enc e;
	struct pool_walk pw = {&e, server_now_us()};
	struct pool_worker_info loop = {
		.exec = PX_LOOP,
		.index = 0,
		.id = (uint64_t)getpid(),
		.state = "loop",
		.since = server_started_us(),
	};
	int x;

	proto_enc_begin(&e, conn_out(c), PROTO_POOLINFO, m->id);
	proto_enc_u64(&e, PF_THREADS, (uint64_t)pool_thread_size());
	proto_enc_u64(&e, PF_PROCESSES, (uint64_t)pool_process_size());
	proto_enc_key(&e, PF_WORKERS);
	proto_enc_array_open(&e);
	loop.served = (uint32_t)loop_exec_served();
	pool_row(&loop, &pw);
	pool_thread_foreach(pool_row, &pw);
	pool_process_foreach(pool_row, &pw);
	proto_enc_close(&e);
	proto_enc_key(&e, PF_QUEUES);
	proto_enc_map_open(&e);
	for (x = PX_LOOP; x < PX_COUNT; x++) {
		const struct executor *ex = sched_executor((enum proto_exec)x);

		msgpack_pack_str_with_body(&e.pk, proto_execs[x],
		    strlen(proto_execs[x]));
		msgpack_pack_map(&e.pk, 2);
		msgpack_pack_str_with_body(&e.pk, "queued", 6);
		msgpack_pack_uint64(&e.pk, ex->queued());
		msgpack_pack_str_with_body(&e.pk, "running", 7);
		msgpack_pack_uint64(&e.pk, ex->running());
		proto_enc_elem(&e);
	}
	proto_enc_close(&e);
	proto_enc_end(&e);
	conn_dirty(c);
}

static void
request_resize(struct conn *c, const struct proto_msg *m)
{
	struct proto_enc e;
	uint64_t t = proto_u64(m, PF_THREADS, 0);
	uint64_t p = proto_u64(m, PF_PROCESSES, 0);

	if (conn_uid(c) != 0 && conn_uid(c) != server_uid()) {
		reply_error(c, m->id, PE_PERMISSION,
		    "only root or the daemon's user may resize the pools");
		return;
	}
	if (proto_has(m, PF_THREADS) && (t < 1 || t > POOL_MAX_THREADS)) {
		reply_error(c, m->id, PE_BAD_FIELD,
		    "threads must be from 1 to %d", POOL_MAX_THREADS);
		return;
	}
	if (proto_has(m, PF_PROCESSES) && p > POOL_MAX_PROCESSES) {
		reply_error(c, m->id, PE_BAD_FIELD,
		    "processes must be from 0 to %d", POOL_MAX_PROCESSES);
		return;
	}
	if ((proto_has(m, PF_THREADS) && pool_thread_resize((int)t) < 0) ||
	    (proto_has(m, PF_PROCESSES) &&
		pool_process_resize((int)p) < 0)) {
		reply_error(c, m->id, PE_INTERNAL,
		    "could not start every worker: see concd's log");
		return;
	}
	log_info("pools resized by uid %u: %d threads, %d processes",
	    (unsigned)conn_uid(c), pool_thread_size(), pool_process_size());
	proto_enc_begin(&e, conn_out(c), PROTO_OK, m->id);
	proto_enc_u64(&e, PF_THREADS, (uint64_t)pool_thread_size());
	proto_enc_u64(&e, PF_PROCESSES, (uint64_t)pool_process_size());
	proto_enc_end(&e);
	conn_dirty(c);
}

static void
request_not_a_request(struct conn *c, const struct proto_msg *m)
{
	reply_error(c, m->id, PE_UNKNOWN_MESSAGE,
	    "\"%s\" is a reply, not a request", proto_types[m->type].name);
}

static void (*const request_table[PROTO_TYPE_COUNT])(struct conn *,
    const struct proto_msg *) = {
	[PROTO_HELLO] = request_hello,
	[PROTO_PING] = request_ping,
	[PROTO_SUBMIT] = request_submit,
	[PROTO_WATCH] = request_watch,
	[PROTO_STATUS] = request_status,
	[PROTO_PS] = request_ps,
	[PROTO_CANCEL] = request_cancel,
	[PROTO_RESULT] = request_result,
	[PROTO_TASKS] = request_tasks,
	[PROTO_SHUTDOWN] = request_shutdown,
	[PROTO_POOL] = request_pool,
	[PROTO_RESIZE] = request_resize,
};

void
request_dispatch(struct conn *c, const struct proto_msg *m)
{
	if (request_table[m->type] != NULL)
		request_table[m->type](c, m);
	else
		request_not_a_request(c, m);
}
