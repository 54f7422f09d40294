/*
 * cmd_job.c -- the commands that start, follow and end jobs: run,
 * submit, watch, wait, result and cancel.
 *
 * A job's final event decides the exit status through job_outcomes;
 * run and watch follow a job through job_follow, which draws progress
 * and, for run, cancels the job on an interrupt.
 */
#include <err.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "concctl.h"

/* How long run waits for a cancelled job to end after an interrupt. */
#define JOB_CANCEL_WAIT 5

/* What each final state means for the exit status and the user. */
static const struct job_outcome {
	int exit;
	const char *what;  /* NULL: success */
	const char *usual; /* error code not worth repeating */
} job_outcomes[PS_COUNT] = {
    [PS_SUCCEEDED] = {.exit = CTL_OK},
    [PS_FAILED] = {.exit = CTL_FAILED, .what = "failed"},
    [PS_CANCELLED] = {.exit = CTL_CANCELLED,
                      .what = "cancelled",
                      .usual = "cancelled"},
    [PS_TIMED_OUT] = {.exit = CTL_TIMEOUT,
                      .what = "timed out",
                      .usual = "timed_out"},
};

/* From least to most severe, for wait and cancel with several jobs. */
static const int job_severity[] = {
    CTL_OK, CTL_CANCELLED, CTL_TIMEOUT, CTL_FAILED, CTL_REFUSED, CTL_CONNECT,
};

static int
job_worse(int a, int b)
{
	size_t i;

	for (i = 0; i < sizeof(job_severity) / sizeof(job_severity[0]); i++) {
		if (job_severity[i] == a)
			return b;
		if (job_severity[i] == b)
			return a;
	}
	return a;
}

/* An end event: print the result or what went wrong; the exit status. */
static int
job_end(struct ctl *ctl, const struct proto_msg *m, bool print)
{
	const struct job_outcome *o;
	char state[17], code[33], message[1025];
	uint64_t job = proto_u64(m, PF_JOB, 0);
	const char *s;
	size_t len;
	int st;

	proto_strcpy(m, PF_STATE, state, sizeof(state));
	st = proto_state_lookup(state, strlen(state));
	if (st < 0 || !PROTO_STATE_FINAL(st)) {
		render_safe(code, sizeof(code), state, strlen(state));
		warnx("protocol error: job %" PRIu64 " ended as \"%s\"", job,
		      code);
		return CTL_CONNECT;
	}
	o = &job_outcomes[st];
	if (o->what == NULL) {
		if (print && !ctl->json && proto_has(m, PF_RESULT)) {
			render_value(stdout, &m->f[PF_RESULT]);
			fflush(stdout);
		}
		return CTL_OK;
	}
	s = proto_str(m, PF_ERROR, &len);
	render_safe(code, sizeof(code), s, len);
	if ((s = proto_str(m, PF_MESSAGE, &len)) == NULL) {
		s = code;
		len = strlen(code);
	}
	render_safe(message, sizeof(message), s, len);
	if (*message == '\0' ||
	    (o->usual != NULL && strcmp(code, o->usual) == 0))
		warnx("job %" PRIu64 " %s", job, o->what);
	else
		warnx("job %" PRIu64 " %s: %s", job, o->what, message);
	return o->exit;
}

static uint64_t
job_encode_submit(struct conn *c, struct proto_enc *e, const struct cmd_args *a,
                  bool watch)
{
	uint64_t id;
	int i;

	id = conn_begin(c, e, PROTO_SUBMIT);
	proto_enc_cstr(e, PF_TASK, a->argv[0]);
	proto_enc_key(e, PF_ARGS);
	proto_enc_map_open(e);
	for (i = 0; i < a->nkv; i++) {
		const struct cmd_kv *kv = &a->kv[i];

		proto_enc_elem(e);
		msgpack_pack_str_with_body(&e->pk, kv->key, kv->keylen);
		switch (kv->type) {
		case CMD_VALUE_INT:
			msgpack_pack_int64(&e->pk, kv->i);
			break;
		case CMD_VALUE_BOOL:
			if (kv->i)
				msgpack_pack_true(&e->pk);
			else
				msgpack_pack_false(&e->pk);
			break;
		case CMD_VALUE_STR:
			msgpack_pack_str_with_body(&e->pk, kv->s,
			                           strlen(kv->s));
			break;
		}
	}
	proto_enc_close(e);
	if (a->seen & CMD_OPT_EXEC)
		proto_enc_cstr(e, PF_EXEC, proto_execs[a->exec]);
	if (a->seen & CMD_OPT_DAEMON)
		proto_enc_bool(e, PF_DAEMON, true);
	if (a->seen & CMD_OPT_FRESH)
		proto_enc_bool(e, PF_FRESH, true);
	proto_enc_bool(e, PF_WATCH, watch);
	if (a->timeout_ms != 0)
		proto_enc_u64(e, PF_TIMEOUT, a->timeout_ms);
	return id;
}

/* Send a request that names one job; returns its id in *id. */
static enum conn_status
job_request(struct conn *c, enum proto_type type, uint64_t job, uint64_t *id)
{
	struct proto_enc e;
	uint64_t rid;

	rid = conn_begin(c, &e, type);
	proto_enc_u64(&e, PF_JOB, job);
	if (id != NULL)
		*id = rid;
	return conn_send(c, &e);
}

/*
 * Follow the events of request req until the job's end.  For run (own),
 * the first interrupt cancels the job and waits a while for its end;
 * otherwise an interrupt leaves at once.
 */
static int
job_follow(struct ctl *ctl, uint64_t req, uint64_t job, bool own)
{
	struct conn *c = &ctl->conn;
	struct render_progress p;
	struct proto_msg m;
	enum conn_status st;
	bool have_job = !own, cancelling = false;
	int64_t deadline = -1, wake, due;
	int ret;

	memset(&p, 0, sizeof(p));
	p.job = job;
	p.start = conn_now();
	for (;;) {
		wake = deadline;
		if (ctl->bar && have_job) {
			due = render_progress_due(&p);
			if (wake < 0 || due < wake)
				wake = due;
		}
		st = conn_recv(c, &m, wake);
		if (st == CONN_TIMEOUT) {
			if (deadline >= 0 && conn_now() >= deadline) {
				render_progress_clear(&p);
				warnx("job %" PRIu64 " did not end within %d "
				      "seconds of being cancelled",
				      job, JOB_CANCEL_WAIT);
				return CTL_INTERRUPTED;
			}
			render_progress_draw(&p);
			continue;
		}
		if (st == CONN_INTR) {
			if (!own || cancelling) {
				render_progress_clear(&p);
				return CTL_INTERRUPTED;
			}
			cancelling = true;
			deadline = conn_now() + JOB_CANCEL_WAIT * 1000000;
			if (have_job &&
			    job_request(c, PROTO_CANCEL, job, NULL) != CONN_OK)
				goto lost;
			continue;
		}
		if (st != CONN_OK) {
			render_progress_clear(&p);
			ret = cmd_conn_exit(ctl, st);
			return cancelling ? CTL_INTERRUPTED : ret;
		}
		if (m.id != req)
			continue; /* e.g. the reply to our cancel */
		switch (m.type) {
		case PROTO_ACCEPTED:
			job = p.job = proto_u64(&m, PF_JOB, 0);
			have_job = true;
			p.start = conn_now();
			if (cancelling &&
			    job_request(c, PROTO_CANCEL, job, NULL) != CONN_OK)
				goto lost;
			break;
		case PROTO_PROGRESS:
			render_progress_update(&p, &m);
			if (ctl->bar)
				render_progress_draw(&p);
			else if (!ctl->quiet && !ctl->json)
				render_progress_line(&p);
			break;
		case PROTO_END:
			render_progress_clear(&p);
			ret = job_end(ctl, &m, true);
			return cancelling ? CTL_INTERRUPTED : ret;
		case PROTO_ERROR:
			render_progress_clear(&p);
			ret = cmd_refused(&m);
			return cancelling ? CTL_INTERRUPTED : ret;
		default:
			break;
		}
	}
lost:
	render_progress_clear(&p);
	warnx("cannot cancel job %" PRIu64 ": %s", job,
	      *c->cause != '\0' ? c->cause : "connection lost");
	return CTL_INTERRUPTED;
}

int
cmd_job_run(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	enum conn_status st;
	uint64_t id;

	id = job_encode_submit(&ctl->conn, &e, a, true);
	if ((st = conn_send(&ctl->conn, &e)) != CONN_OK)
		return cmd_conn_exit(ctl, st);
	return job_follow(ctl, id, 0, true);
}

int
cmd_job_submit(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;
	int ret;

	id = job_encode_submit(&ctl->conn, &e, a, false);
	if ((ret = cmd_call(ctl, &e, id, PROTO_ACCEPTED, &m)) != CTL_OK)
		return ret;
	if (!ctl->json)
		printf("%" PRIu64 "\n", proto_u64(&m, PF_JOB, 0));
	return CTL_OK;
}

int
cmd_job_watch(struct ctl *ctl, struct cmd_args *a)
{
	enum conn_status st;
	uint64_t id;

	st = job_request(&ctl->conn, PROTO_WATCH, a->jobs[0], &id);
	if (st != CONN_OK)
		return cmd_conn_exit(ctl, st);
	return job_follow(ctl, id, a->jobs[0], false);
}

int
cmd_job_result(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_RESULT);
	proto_enc_u64(&e, PF_JOB, a->jobs[0]);
	if ((ret = cmd_call(ctl, &e, id, PROTO_END, &m)) != CTL_OK)
		return ret;
	return job_end(ctl, &m, true);
}

/*
 * Send one request of type per job; the ids are consecutive, so the
 * reply to job i carries first + i.
 */
static int
job_send_all(struct ctl *ctl, enum proto_type type, struct cmd_args *a,
             uint64_t *first)
{
	enum conn_status st;
	uint64_t id;
	int i;

	for (i = 0; i < a->argc; i++) {
		if ((st = job_request(&ctl->conn, type, a->jobs[i], &id)) !=
		    CONN_OK)
			return cmd_conn_exit(ctl, st);
		if (i == 0)
			*first = id;
	}
	return CTL_OK;
}

static void
job_timed_out(const struct cmd_args *a, const bool *done)
{
	char list[256] = "";
	size_t off = 0;
	int i, n = 0;

	for (i = 0; i < a->argc; i++) {
		if (done[i])
			continue;
		if (off < sizeof(list))
			off += (size_t)snprintf(list + off, sizeof(list) - off,
			                        "%s%" PRIu64,
			                        n == 0 ? "" : ", ", a->jobs[i]);
		n++;
	}
	if (off >= sizeof(list))
		memcpy(list + sizeof(list) - 4, "...", 4);
	warnx("timed out waiting for job%s %s", n == 1 ? "" : "s", list);
}

int
cmd_job_wait(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_msg m;
	enum conn_status st;
	bool done[CMD_MAX_ARGS] = {false};
	int64_t deadline = -1;
	uint64_t first = 0, i;
	int ret, worst = CTL_OK, pending = a->argc;

	if (a->timeout_ms != 0)
		deadline = conn_now() + (int64_t)a->timeout_ms * 1000;
	if ((ret = job_send_all(ctl, PROTO_WATCH, a, &first)) != CTL_OK)
		return ret;
	while (pending > 0) {
		st = conn_recv(&ctl->conn, &m, deadline);
		if (st == CONN_TIMEOUT) {
			job_timed_out(a, done);
			return CTL_TIMEOUT;
		}
		if (st != CONN_OK)
			return cmd_conn_exit(ctl, st);
		i = m.id - first;
		if (m.id < first || i >= (uint64_t)a->argc || done[i])
			continue;
		if (m.type == PROTO_END)
			ret = job_end(ctl, &m, false);
		else if (m.type == PROTO_ERROR)
			ret = cmd_refused(&m);
		else
			continue;
		done[i] = true;
		pending--;
		worst = job_worse(worst, ret);
	}
	return worst;
}

int
cmd_job_cancel(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_msg m;
	enum conn_status st;
	bool done[CMD_MAX_ARGS] = {false};
	char state[17];
	uint64_t first = 0, i;
	int ret, s, worst = CTL_OK, pending = a->argc;

	if ((ret = job_send_all(ctl, PROTO_CANCEL, a, &first)) != CTL_OK)
		return ret;
	while (pending > 0) {
		if ((st = conn_recv(&ctl->conn, &m, -1)) != CONN_OK)
			return cmd_conn_exit(ctl, st);
		i = m.id - first;
		if (m.id < first || i >= (uint64_t)a->argc || done[i])
			continue;
		if (m.type == PROTO_ERROR)
			worst = job_worse(worst, cmd_refused(&m));
		else if (m.type != PROTO_OK)
			continue;
		else if (!ctl->quiet && !ctl->json) {
			proto_strcpy(&m, PF_STATE, state, sizeof(state));
			s = proto_state_lookup(state, strlen(state));
			if (s == PS_CANCELLED)
				printf("job %" PRIu64 ": cancelled\n",
				       a->jobs[i]);
			else if (s < 0)
				printf("job %" PRIu64 ": cancel requested\n",
				       a->jobs[i]);
			else if (!PROTO_STATE_FINAL(s))
				printf("job %" PRIu64 ": cancelling (%s)\n",
				       a->jobs[i], state);
			else
				printf("job %" PRIu64 ": already %s\n",
				       a->jobs[i], state);
		}
		done[i] = true;
		pending--;
	}
	return worst;
}
