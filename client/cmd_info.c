/*
 * cmd_info.c -- the commands that ask about jobs and the daemon: status,
 * ps, tasks, ping and shutdown.
 *
 * With --json the reply has already been printed by conn.c, so each
 * command only checks it and returns.
 */
#include <err.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "concctl.h"

static uint64_t
info_realtime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
info_progress(const struct proto_msg *m, char *buf, size_t size)
{
	uint64_t done = proto_u64(m, PF_DONE, 0), total;

	total = proto_u64(m, PF_TOTAL, 0);
	if (done == 0 && total == 0)
		snprintf(buf, size, "-");
	else
		render_progress_text(buf, size, done, total);
}

static int
info_protocol_error(const struct proto_fault *f, const char *what)
{
	warnx("protocol error in %s: %s", what, f->message);
	return CTL_CONNECT;
}

/* ---- status ---- */

#define INFO_LABEL "%-10s "

/* "finished   2026-12-07 11:38:35 (ran 2.00s)": a time and a span. */
static void
info_span_line(const char *label, uint64_t t, bool has_span, uint64_t span_us,
               const char *verb)
{
	char when[64], span[32];

	render_time(when, sizeof(when), t);
	if (t != 0 && has_span) {
		render_duration(span, sizeof(span), span_us);
		printf(INFO_LABEL "%s (%s %s)\n", label, when, verb, span);
	} else
		printf(INFO_LABEL "%s\n", label, when);
}

/* A time and, if it is not before since, the span from there. */
static void
info_time_line(const char *label, uint64_t t, uint64_t since, const char *verb)
{
	info_span_line(label, t, since != 0 && t >= since, t - since, verb);
}

/*
 * "worker 0 thread (tid 812, served 12)", "worker fresh process (pid 813)":
 * a process's pid comes in the tid field; a fresh worker served one job.
 */
static void
info_print_worker(const struct proto_msg *m)
{
	char w[32], buf[17];
	const char *x;

	x = render_str(m, PF_EXEC, buf, sizeof(buf));
	if (strcmp(x, proto_execs[PX_SLURM]) == 0)
		return; /* Slurm's: the slurm line says where */
	render_worker(m, w, sizeof(w));
	printf(INFO_LABEL "%s", "worker", w);
	if (!proto_has(m, PF_WORKER)) {
		printf("\n");
		return;
	}
	printf(" %s", x);
	if (proto_has(m, PF_TID)) {
		printf(" (%s %" PRIu64,
		       strcmp(x, proto_execs[PX_PROCESS]) == 0 ||
		               strcmp(x, proto_execs[PX_REMOTE]) == 0
		           ? "pid"
		           : "tid",
		       proto_u64(m, PF_TID, 0));
		if (proto_i64(m, PF_WORKER, -1) >= 0)
			printf(", served %" PRIu64, proto_u64(m, PF_SERVED, 0));
		printf(")");
	}
	printf("\n");
}

/* Where a job waits its turn: group, priority, label, held, start. */
static void
info_print_queue(const struct proto_msg *m)
{
	char a[257];

	printf(INFO_LABEL "%s\n", "group",
	       proto_has(m, PF_GROUP) ? render_str(m, PF_GROUP, a, sizeof(a))
	                              : "default");
	if (proto_has(m, PF_PRIORITY))
		printf(INFO_LABEL "%" PRId64 "\n", "priority",
		       proto_i64(m, PF_PRIORITY, 0));
	if (proto_has(m, PF_CPUS))
		printf(INFO_LABEL "%" PRIu64 "\n", "cpus",
		       proto_u64(m, PF_CPUS, 0));
	if (proto_has(m, PF_LABEL))
		printf(INFO_LABEL "%s\n", "label",
		       render_str(m, PF_LABEL, a, sizeof(a)));
	if (proto_bool(m, PF_HELD, false))
		printf(INFO_LABEL "yes (concctl resume %" PRIu64 ")\n", "held",
		       proto_u64(m, PF_JOB, 0));
	if (proto_has(m, PF_AT)) {
		render_time(a, sizeof(a), proto_u64(m, PF_AT, 0));
		printf(INFO_LABEL "%s\n", "at", a);
	}
	if (proto_has(m, PF_AHEAD))
		printf(INFO_LABEL "%" PRIu64 " jobs\n", "ahead",
		       proto_u64(m, PF_AHEAD, 0));
}

/*
 * The caller's context: the command line, the directory, and the
 * environment it passed, a variable a line, NAME=VALUE, or NAME (value
 * hidden) for one whose name looks secret.
 */
static void
info_print_context(const struct proto_msg *m)
{
	const msgpack_object_map *env;
	char name[257], value[1025];
	const char *label = "env";
	uint32_t i;

	if (proto_has(m, PF_COMMAND))
		printf(INFO_LABEL "%s\n", "command",
		       render_str(m, PF_COMMAND, value, sizeof(value)));
	if (proto_has(m, PF_CWD))
		printf(INFO_LABEL "%s\n", "cwd",
		       render_str(m, PF_CWD, value, sizeof(value)));
	if (proto_has(m, PF_UMASK))
		printf(INFO_LABEL "%04" PRIo64 "\n", "umask",
		       proto_u64(m, PF_UMASK, 0));
	if (!proto_has(m, PF_ENV))
		return;
	env = &m->f[PF_ENV].via.map;
	for (i = 0; i < env->size; i++, label = "") {
		const msgpack_object *k = &env->ptr[i].key;
		const msgpack_object *v = &env->ptr[i].val;

		if (k->type != MSGPACK_OBJECT_STR)
			continue;
		render_safe(name, sizeof(name), k->via.str.ptr,
		            k->via.str.size);
		if (v->type == MSGPACK_OBJECT_STR)
			printf(INFO_LABEL "%s=%s\n", label, name,
			       render_safe(value, sizeof(value), v->via.str.ptr,
			                   v->via.str.size));
		else
			printf(INFO_LABEL "%s (value hidden)\n", label, name);
	}
}

/*
 * "after 3, 4 (their success)", "restart of 7", "cause 3": how a job
 * is tied to others.
 */
static void
info_print_deps(const struct proto_msg *m)
{
	const msgpack_object_array *a;
	uint32_t i;

	if (proto_has(m, PF_AFTER) &&
	    m->f[PF_AFTER].type == MSGPACK_OBJECT_ARRAY) {
		a = &m->f[PF_AFTER].via.array;
		printf(INFO_LABEL, "after");
		for (i = 0; i < a->size; i++)
			if (a->ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				printf("%s%" PRIu64, i > 0 ? ", " : "",
				       a->ptr[i].via.u64);
		printf(" (%s)\n", proto_bool(m, PF_AFTER_ANY, false)
		                      ? "their end, however they end"
		                      : "their success");
	}
	if (proto_has(m, PF_RESTART_OF))
		printf(INFO_LABEL "%" PRIu64 "\n", "restart of",
		       proto_u64(m, PF_RESTART_OF, 0));
	if (proto_has(m, PF_CAUSE))
		printf(INFO_LABEL "job %" PRIu64 " failed first\n", "cause",
		       proto_u64(m, PF_CAUSE, 0));
}

/* "limits     mem 2G, pids 100": what an exec job's command may use. */
static void
info_print_limits(const struct proto_msg *m)
{
	char size[32];

	if (!proto_has(m, PF_MEM) && !proto_has(m, PF_PIDS))
		return;
	printf(INFO_LABEL, "limits");
	if (proto_has(m, PF_MEM))
		printf("mem %s", proto_size_format(size, sizeof(size),
		                                   proto_u64(m, PF_MEM, 0)));
	if (proto_has(m, PF_PIDS))
		printf("%spids %" PRIu64, proto_has(m, PF_MEM) ? ", " : "",
		       proto_u64(m, PF_PIDS, 0));
	printf("\n");
}

static void
info_print_job(const struct proto_msg *m)
{
	char a[1025], b[64];
	uint64_t submitted = proto_u64(m, PF_SUBMITTED, 0);
	uint64_t started = proto_u64(m, PF_STARTED, 0);
	const char *s;
	size_t len;

	printf(INFO_LABEL "%" PRIu64 "\n", "job", proto_u64(m, PF_JOB, 0));
	printf(INFO_LABEL "%s\n", "task", render_str(m, PF_TASK, a, sizeof(a)));
	info_print_context(m);
	printf(INFO_LABEL "%s\n", "state",
	       render_str(m, PF_STATE, a, sizeof(a)));
	if (proto_has(m, PF_RETRIES))
		printf(INFO_LABEL "%" PRIu64 " of %" PRIu64 "\n", "attempt",
		       proto_u64(m, PF_ATTEMPT, 1),
		       proto_u64(m, PF_RETRIES, 0) + 1);
	printf(INFO_LABEL "%s", "executor",
	       render_str(m, PF_EXEC, a, sizeof(a)));
	if (proto_has(m, PF_REQUESTED))
		printf(" (requested %s)",
		       render_str(m, PF_REQUESTED, a, sizeof(a)));
	printf("\n");
	printf(INFO_LABEL "%s\n", "daemon",
	       proto_bool(m, PF_DAEMON, false) ? "yes" : "no");
	info_print_queue(m);
	if (proto_has(m, PF_UID))
		printf(INFO_LABEL "%" PRIu64 "\n", "uid",
		       proto_u64(m, PF_UID, 0));
	info_progress(m, b, sizeof(b));
	printf(INFO_LABEL "%s", "progress", b);
	if ((s = proto_str(m, PF_MSG, &len)) != NULL && len > 0)
		printf(" %s", render_safe(a, sizeof(a), s, len));
	printf("\n");
	info_print_worker(m);
	if (proto_has(m, PF_SLURM_JOB) || proto_has(m, PF_NODE)) {
		/* "slurm      job 41 on node n07" */
		printf(INFO_LABEL "job %" PRIu64, "slurm",
		       proto_u64(m, PF_SLURM_JOB, 0));
		if (proto_has(m, PF_NODE))
			printf(" on node %s",
			       render_str(m, PF_NODE, a, sizeof(a)));
		printf("\n");
	}
	info_print_deps(m);
	info_print_limits(m);
	if (proto_u64(m, PF_DROPPED, 0) > 0)
		printf(INFO_LABEL "%" PRIu64 " bytes of output\n", "dropped",
		       proto_u64(m, PF_DROPPED, 0));
	info_time_line("submitted", submitted, 0, "");
	info_time_line("started", started, submitted, "queued");
	info_span_line("finished", proto_u64(m, PF_FINISHED, 0),
	               proto_has(m, PF_RUNTIME), proto_u64(m, PF_RUNTIME, 0),
	               "ran");
	if (proto_has(m, PF_EXIT))
		printf(INFO_LABEL "%" PRIu64 "\n", "exit",
		       proto_u64(m, PF_EXIT, 0));
	if (proto_has(m, PF_SIGNAL))
		printf(INFO_LABEL "%" PRIu64 " (exit status %" PRIu64 ")\n",
		       "signal", proto_u64(m, PF_SIGNAL, 0),
		       128 + proto_u64(m, PF_SIGNAL, 0));
	if (proto_has(m, PF_RESULT)) {
		printf(INFO_LABEL, "result");
		render_value(stdout, &m->f[PF_RESULT]);
	}
	if (proto_has(m, PF_RESULT_OMITTED))
		printf(INFO_LABEL "left out: %" PRIu64
		                  " bytes, too large for a reply\n",
		       "result", proto_u64(m, PF_RESULT_OMITTED, 0));
	if (proto_has(m, PF_ERROR)) {
		printf(INFO_LABEL "%s", "error",
		       render_str(m, PF_ERROR, b, sizeof(b)));
		if (proto_has(m, PF_MESSAGE))
			printf(": %s", render_str(m, PF_MESSAGE, a, sizeof(a)));
		printf("\n");
	}
}

int
cmd_info_status(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_STATUS);
	proto_enc_u64(&e, PF_JOB, a->jobs[0]);
	if ((ret = cmd_call(ctl, &e, id, PROTO_JOB, &m)) != CTL_OK)
		return ret;
	if (!ctl->json)
		info_print_job(&m);
	return CTL_OK;
}

/* ---- ps ---- */

/*
 * Below the table, on stderr: "counts: 2 running, 1 queued" from the
 * counts map, in the order of states, and "showing 5 of 31" when the
 * limit cut rows off.
 */
static void
info_ps_footer(const struct proto_msg *m, uint32_t rows)
{
	const msgpack_object_map *counts;
	uint64_t total = proto_u64(m, PF_TOTAL, rows);
	uint32_t i;
	int s, n = 0;

	ctl_flush_stdout();
	if (proto_has(m, PF_COUNTS)) {
		counts = &m->f[PF_COUNTS].via.map;
		fprintf(stderr, "counts: ");
		for (s = 0; s < PS_COUNT; s++) {
			for (i = 0; i < counts->size; i++) {
				const msgpack_object_kv *kv = &counts->ptr[i];

				if (!proto_obj_streq(&kv->key,
				                     proto_states[s]) ||
				    kv->val.type !=
				        MSGPACK_OBJECT_POSITIVE_INTEGER ||
				    kv->val.via.u64 == 0)
					continue;
				fprintf(stderr, "%s%" PRIu64 " %s",
				        n++ == 0 ? "" : ", ", kv->val.via.u64,
				        proto_states[s]);
			}
		}
		fprintf(stderr, "%s\n", n == 0 ? "no jobs" : "");
	}
	if (total > rows)
		fprintf(stderr, "showing %" PRIu32 " of %" PRIu64 "\n", rows,
		        total);
}

/*
 * Before connecting: a window that holds no time and an unknown column
 * are usage errors.
 */
int
cmd_info_ps_check(struct ctl *ctl, struct cmd_args *a)
{
	struct cmd_ps_cols cols;
	char cause[512];

	if ((a->seen & CMD_OPT_SINCE) && (a->seen & CMD_OPT_UNTIL) &&
	    a->until <= a->since) {
		warnx("ps: --until must be later than --since");
		return CTL_USAGE;
	}
	if (cmd_ps_parse(a->output, &cols, cause, sizeof(cause)) < 0) {
		warnx("ps: %s", cause);
		return CTL_USAGE;
	}
	return CTL_OK;
}

int
cmd_info_ps(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	struct cmd_ps_cols cols;
	const msgpack_object_array *jobs, none = {0, NULL};
	uint64_t id, now = info_realtime();
	char cause[512];
	int ret;

	if (cmd_ps_parse(a->output, &cols, cause, sizeof(cause)) < 0) {
		warnx("ps: %s", cause);
		return CTL_USAGE;
	}
	/* with -o, --json gives the table's rows rather than the reply */
	if (a->output != NULL)
		ctl->conn.json = false;
	id = conn_begin(&ctl->conn, &e, PROTO_PS);
	proto_enc_bool(&e, PF_ALL, (a->seen & CMD_OPT_ALL) != 0);
	if (a->seen & CMD_OPT_LIMIT)
		proto_enc_u64(&e, PF_LIMIT, a->limit);
	if (a->state >= 0)
		proto_enc_cstr(&e, PF_STATE, proto_states[a->state]);
	if (a->task != NULL)
		proto_enc_cstr(&e, PF_TASK, a->task);
	if (a->seen & CMD_OPT_USER)
		proto_enc_u64(&e, PF_UID, a->uid);
	if (a->seen & CMD_OPT_SINCE)
		proto_enc_u64(&e, PF_SINCE, a->since);
	if (a->seen & CMD_OPT_UNTIL)
		proto_enc_u64(&e, PF_UNTIL, a->until);
	if (a->group != NULL)
		proto_enc_cstr(&e, PF_GROUP, a->group);
	if (a->label != NULL)
		proto_enc_cstr(&e, PF_LABEL, a->label);
	if ((ret = cmd_call(ctl, &e, id, PROTO_JOBS, &m)) != CTL_OK)
		return ret;
	if (ctl->json && a->output == NULL)
		return CTL_OK;
	jobs = proto_has(&m, PF_JOBS) ? &m.f[PF_JOBS].via.array : &none;
	if (cmd_ps_print(&cols, jobs, ctl->json, now) < 0)
		return CTL_CONNECT;
	if (!ctl->quiet && !ctl->json)
		info_ps_footer(&m, jobs->size);
	return CTL_OK;
}

/* ---- tasks ---- */

static const char *const info_tasks_titles[] = {
    "NAME", "EXECUTORS", "DEFAULT", "TRAITS", "SUMMARY",
};
static const bool info_tasks_right[] = {false, false, false, false, false};
#define INFO_TASKS_COLS                                                        \
	(sizeof(info_tasks_titles) / sizeof(info_tasks_titles[0]))
_Static_assert(INFO_TASKS_COLS ==
                   sizeof(info_tasks_right) / sizeof(info_tasks_right[0]),
               "tasks columns");

/* How concd's auto executor follows from a task's traits. */
#define INFO_AUTO_RULE                                                         \
	"auto picks: non-blocking -> loop, blocking -> thread, cpu -> "        \
	"process (thread when concd runs without processes)"

/* The strings of an array field joined by commas; "-" for none. */
static void
info_join(const struct proto_msg *m, enum proto_field f, char *buf, size_t size)
{
	const msgpack_object_array *arr;
	char item[32];
	size_t off = 0;
	uint32_t i;

	buf[0] = '\0';
	if (!proto_has(m, f)) {
		snprintf(buf, size, "-");
		return;
	}
	arr = &m->f[f].via.array;
	for (i = 0; i < arr->size && off < size; i++) {
		if (arr->ptr[i].type != MSGPACK_OBJECT_STR)
			continue;
		render_safe(item, sizeof(item), arr->ptr[i].via.str.ptr,
		            arr->ptr[i].via.str.size);
		off += (size_t)snprintf(buf + off, size - off, "%s%s",
		                        off == 0 ? "" : ",", item);
	}
	if (off == 0)
		snprintf(buf, size, "-");
}

int
cmd_info_tasks(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m, row;
	struct proto_fault f;
	struct render_table t;
	const msgpack_object_array *tasks;
	char buf[300], usage[300];
	const char *s;
	size_t len;
	uint64_t id;
	uint32_t i;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_TASKS);
	if ((ret = cmd_call(ctl, &e, id, PROTO_TASKLIST, &m)) != CTL_OK)
		return ret;
	if (ctl->json)
		return CTL_OK;
	tasks = &m.f[PF_TASKS].via.array;
	render_table_init(&t, INFO_TASKS_COLS, tasks->size, info_tasks_titles,
	                  info_tasks_right);
	for (i = 0; i < tasks->size; i++) {
		if (proto_decode_fields(&tasks->ptr[i], &row, &f) < 0) {
			render_table_free(&t);
			return info_protocol_error(&f, "a task");
		}
		render_table_set(&t, i, 0,
		                 render_str(&row, PF_NAME, buf, sizeof(buf)));
		info_join(&row, PF_EXECUTORS, buf, sizeof(buf));
		render_table_set(&t, i, 1, buf);
		render_table_set(
		    &t, i, 2, render_str(&row, PF_DEFAULT, buf, sizeof(buf)));
		info_join(&row, PF_TRAITS, buf, sizeof(buf));
		render_table_set(&t, i, 3, buf);
		render_table_set(
		    &t, i, 4, render_str(&row, PF_SUMMARY, buf, sizeof(buf)));
		if ((s = proto_str(&row, PF_USAGE, &len)) != NULL && len > 0) {
			snprintf(usage, sizeof(usage), "usage: %s",
			         render_safe(buf, sizeof(buf), s, len));
			render_table_below(&t, i, usage);
		}
	}
	render_table_print(&t);
	render_table_free(&t);
	if (!ctl->quiet)
		printf("%s\n", INFO_AUTO_RULE);
	return CTL_OK;
}

/* ---- ping, shutdown ---- */

int
cmd_info_ping(struct ctl *ctl, struct cmd_args *a)
{
	struct conn *c = &ctl->conn;
	struct proto_enc e;
	struct proto_msg m;
	char server[sizeof(c->server)], name[sizeof(c->server) + 8];
	int64_t start;
	uint64_t id;
	int ret;

	start = conn_now();
	id = conn_begin(c, &e, PROTO_PING);
	if ((ret = cmd_call(ctl, &e, id, PROTO_PONG, &m)) != CTL_OK)
		return ret;
	if (ctl->json)
		return CTL_OK;
	/* the welcome's server is "concd 0.1.0" or just a version */
	render_safe(server, sizeof(server), c->server, strlen(c->server));
	if (strncmp(server, "concd", 5) == 0)
		snprintf(name, sizeof(name), "%s", server);
	else
		snprintf(name, sizeof(name), "concd%s%s",
		         *server != '\0' ? " " : "", server);
	printf("pong from %s pid %" PRIu64 " in %.2f ms\n", name, c->pid,
	       (double)(conn_now() - start) / 1000);
	return CTL_OK;
}

int
cmd_info_shutdown(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;

	id = conn_begin(&ctl->conn, &e, PROTO_SHUTDOWN);
	if (a->seen & CMD_OPT_CANCEL_PENDING)
		proto_enc_bool(&e, PF_CANCEL_PENDING, true);
	return cmd_call(ctl, &e, id, PROTO_OK, &m);
}
