/*
 * cmd_gather.c -- gather: many jobs in one request.
 *
 * The jobs are read, one per line, and checked before concctl connects,
 * so a bad line is a usage error and nothing is sent; every line is
 * packed into the one gather request as it is read.  Then the jobs are
 * followed together: each job's outcome becomes one line, printed in
 * input order or as the jobs complete, their output is passed on with
 * the job's index in front, and a terminal gets one bar for them all.
 */
#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "concctl.h"

/* How long gather waits for cancelled jobs to end after an interrupt. */
#define GATHER_CANCEL_WAIT 5

/* A line of the input: the options of run, and no others. */
static const struct cmd_entry gather_line = {
    .name = "gather line",
    .usage = "TASK [key=value ...] [-x EXECUTOR] [--daemon] [--fresh] "
             "[--timeout SECONDS] [--retries N] [--retry-delay SECONDS] "
             "[-- COMMAND [ARG ...]]",
    .minargs = 1,
    .maxargs = -1,
    .words = CMD_WORDS_TASK,
    .options = CMD_OPT_JOB,
    .bare = true,
};

/* Pack one parsed line as a map of job fields at the end of body. */
static void
gather_pack(struct pbuf *body, const struct cmd_args *la)
{
	struct pbuf pairs = {0};
	msgpack_packer pk;
	size_t n;

	msgpack_packer_init(&pk, &pairs, pbuf_write_cb);
	n = cmd_job_pack(&pk, la);
	msgpack_packer_init(&pk, body, pbuf_write_cb);
	msgpack_pack_map(&pk, n);
	pbuf_append(body, pairs.data, pairs.len);
	pbuf_free(&pairs);
}

/*
 * Read the jobs, check each line as run would check its words, and pack
 * them into a->batch.  Returns CTL_OK, or CTL_USAGE after a message
 * naming the line.
 */
int
cmd_gather_prepare(struct ctl *ctl, struct cmd_args *a)
{
	struct cmd_batch *b = &a->batch;
	struct cmd_entry le = gather_line;
	struct cmd_args *la = NULL;
	struct pbuf body = {0};
	msgpack_packer pk;
	char *line = NULL, *words[CMD_MAX_ARGS + 1], name[64];
	const char *cause;
	size_t cap = 0, lcap = 0;
	unsigned lineno = 0;
	int n, ret = CTL_USAGE;
	FILE *f = stdin;

	b->from = "the standard input";
	if (a->argc == 1 && strcmp(a->argv[0], "-") != 0) {
		b->from = a->argv[0];
		if ((f = fopen(a->argv[0], "r")) == NULL) {
			warnx("gather: %s: %s", a->argv[0], strerror(errno));
			return CTL_USAGE;
		}
	}
	if ((la = malloc(sizeof(*la))) == NULL)
		err(CTL_CONNECT, "malloc");
	memset(la, 0, sizeof(*la));
	le.name = name;
	while (getline(&line, &cap, f) != -1) {
		snprintf(name, sizeof(name), "gather: line %u", ++lineno);
		if ((n = cmd_split(line, words, CMD_MAX_ARGS + 1, &cause)) <
		    0) {
			warnx("%s: %s", name, cause);
			goto out;
		}
		if (n == 0)
			continue;
		if (cmd_parse(&le, n, words, la, ctl) < 0)
			goto out;
		gather_pack(&body, la);
		cmd_args_clear(la);
		if (b->n == lcap) {
			lcap = lcap == 0 ? 64 : lcap * 2;
			b->lines =
			    reallocarray(b->lines, lcap, sizeof(*b->lines));
			if (b->lines == NULL)
				err(CTL_CONNECT, "reallocarray");
		}
		b->lines[b->n++] = lineno;
	}
	if (ferror(f)) {
		warnx("gather: %s: %s", b->from, strerror(errno));
		goto out;
	}
	if (b->n == 0) {
		warnx("gather: no jobs in %s", b->from);
		goto out;
	}
	msgpack_packer_init(&pk, &b->jobs, pbuf_write_cb);
	msgpack_pack_array(&pk, b->n);
	pbuf_append(&b->jobs, body.data, body.len);
	ret = CTL_OK;
out:
	cmd_args_clear(la);
	free(la);
	free(line);
	pbuf_free(&body);
	if (f != stdin)
		fclose(f);
	return ret;
}

/* One job of the gather. */
struct gather_job {
	uint64_t id;
	char *line; /* the outcome line, once the job ended */
	bool ended;
	bool printed;
	bool bol[2]; /* its stdout and stderr are at the start of a line */
};

struct gather {
	struct ctl *ctl;
	const struct cmd_batch *batch;
	struct gather_job *jobs;
	uint32_t n;
	uint32_t next; /* in input order, the next line to print */
	uint32_t ended;
	uint32_t failed; /* ended other than succeeded */
	int worst;
	bool accepted;
	bool as_completed;
	struct render_progress bar;
};

static void
gather_print(struct gather *g, uint32_t i)
{
	if (g->jobs[i].printed || g->ctl->json)
		return;
	render_progress_clear(&g->bar);
	printf("%s\n", g->jobs[i].line);
	fflush(stdout);
	g->jobs[i].printed = true;
}

/* "2 19 failed exec: cannot run ..." for the end event m of job i. */
static int
gather_end(struct gather *g, uint32_t i, const struct proto_msg *m)
{
	struct gather_job *j = &g->jobs[i];
	char text[1025];
	const char *s;
	size_t len;
	int st, ret;

	if ((st = cmd_job_state(m)) < 0)
		return -1;
	if (st == PS_SUCCEEDED) {
		if (proto_has(m, PF_RESULT))
			render_line_value(text, sizeof(text), &m->f[PF_RESULT]);
		else
			snprintf(text, sizeof(text), "-");
	} else {
		if ((s = proto_str(m, PF_MESSAGE, &len)) == NULL || len == 0)
			s = proto_str(m, PF_ERROR, &len);
		render_safe(text, sizeof(text), s, len);
	}
	if (asprintf(&j->line, "%" PRIu32 " %" PRIu64 " %s %s", i, j->id,
	             proto_states[st], *text != '\0' ? text : "-") < 0)
		err(CTL_CONNECT, "asprintf");
	if (proto_u64(m, PF_DROPPED, 0) > 0 && !g->ctl->json) {
		render_progress_clear(&g->bar);
		warnx("[%" PRIu32 "] %" PRIu64 " bytes of output were dropped "
		      "(reader too slow)",
		      i, proto_u64(m, PF_DROPPED, 0));
	}
	j->ended = true;
	g->ended++;
	ret = cmd_job_exit(st);
	if (ret != CTL_OK)
		g->failed++;
	g->worst = cmd_job_worse(g->worst, ret);
	g->bar.done = g->ended;
	g->bar.dirty = true;
	if (g->failed > 0)
		snprintf(g->bar.msg, sizeof(g->bar.msg), "%" PRIu32 " failed",
		         g->failed);
	if (g->as_completed)
		gather_print(g, i);
	while (!g->as_completed && g->next < g->n && g->jobs[g->next].ended)
		gather_print(g, g->next++);
	return 0;
}

/* The accepted reply: the job ids in input order. */
static int
gather_accepted(struct gather *g, const struct proto_msg *m)
{
	const msgpack_object_array *ids;
	uint32_t i;

	if (!proto_has(m, PF_JOBS)) {
		warnx("protocol error: gather accepted without jobs");
		return -1;
	}
	ids = &m->f[PF_JOBS].via.array;
	for (i = 0; i < ids->size && i < g->n; i++) {
		if (ids->ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
			warnx("protocol error: a job id that is no number");
			return -1;
		}
		g->jobs[i].id = ids->ptr[i].via.u64;
	}
	/* the daemon ran out of memory part way: the rest never ran */
	for (; i < g->n; i++) {
		if (asprintf(&g->jobs[i].line,
		             "%" PRIu32 " - refused not submitted", i) < 0)
			err(CTL_CONNECT, "asprintf");
		g->jobs[i].ended = true;
		g->ended++;
		g->failed++;
		g->worst = cmd_job_worse(g->worst, CTL_REFUSED);
	}
	g->accepted = true;
	g->bar.label = "gather";
	g->bar.total = g->n;
	g->bar.done = g->ended;
	g->bar.seen = true;
	g->bar.start = conn_now();
	return 0;
}

/* Cancel every job that has not ended, in one write. */
static enum conn_status
gather_cancel(struct gather *g)
{
	struct conn *c = &g->ctl->conn;
	struct proto_enc e;
	uint32_t i;

	for (i = 0; i < g->n; i++) {
		if (g->jobs[i].ended)
			continue;
		conn_begin(c, &e, PROTO_CANCEL);
		proto_enc_u64(&e, PF_JOB, g->jobs[i].id);
		proto_enc_end(&e);
	}
	return conn_flush(c);
}

/* The gather was refused: say which line, if it was one entry. */
static int
gather_refused(struct gather *g, const struct proto_msg *m)
{
	char code[33], message[1025];
	uint64_t index;
	const char *s;
	size_t len;

	if (!proto_has(m, PF_INDEX) ||
	    (index = proto_u64(m, PF_INDEX, 0)) >= g->n)
		return cmd_refused(m);
	s = proto_str(m, PF_ERROR, &len);
	render_safe(code, sizeof(code), s, len);
	s = proto_str(m, PF_MESSAGE, &len);
	render_safe(message, sizeof(message), s, len);
	warnx("gather: line %u (index %" PRIu64 "): %s: %s",
	      g->batch->lines[index], index, code, message);
	return CTL_REFUSED;
}

/* Follow the events of request req until every job has ended. */
static int
gather_follow(struct gather *g, uint64_t req, struct cmd_slot *slot)
{
	struct ctl *ctl = g->ctl;
	struct conn *c = &ctl->conn;
	struct proto_msg m;
	enum conn_status st;
	bool cancelling = false;
	int64_t deadline = -1, wake, due;
	char prefix[24];
	uint64_t i;
	int ret;

	while (g->ended < g->n || !g->accepted) {
		wake = deadline;
		if (ctl->bar && g->accepted) {
			due = render_progress_due(&g->bar);
			if (wake < 0 || due < wake)
				wake = due;
		}
		st = conn_recv(c, &m, wake);
		if (st == CONN_TIMEOUT) {
			if (deadline >= 0 && conn_now() >= deadline) {
				render_progress_clear(&g->bar);
				warnx("%" PRIu32 " jobs did not end within %d "
				      "seconds of being cancelled",
				      g->n - g->ended, GATHER_CANCEL_WAIT);
				return CTL_INTERRUPTED;
			}
			render_progress_draw(&g->bar);
			continue;
		}
		if (st == CONN_INTR) {
			render_progress_clear(&g->bar);
			if (cancelling)
				return CTL_INTERRUPTED;
			cancelling = true;
			deadline = conn_now() + GATHER_CANCEL_WAIT * 1000000;
			if (g->accepted && gather_cancel(g) != CONN_OK)
				goto lost;
			continue;
		}
		if (st != CONN_OK) {
			render_progress_clear(&g->bar);
			ret = cmd_conn_exit(ctl, st);
			return cancelling ? CTL_INTERRUPTED : ret;
		}
		if (m.id != req)
			continue; /* the replies to our cancels */
		i = proto_u64(&m, PF_INDEX, UINT64_MAX);
		switch (m.type) {
		case PROTO_ACCEPTED:
			if (gather_accepted(g, &m) < 0)
				return CTL_CONNECT;
			if (cancelling && gather_cancel(g) != CONN_OK)
				goto lost;
			break;
		case PROTO_ERROR:
			render_progress_clear(&g->bar);
			if (g->accepted) {
				g->worst =
				    cmd_job_worse(g->worst, cmd_refused(&m));
				break;
			}
			if (proto_has(&m, PF_INDEX))
				ret = gather_refused(g, &m);
			else if (cancelling)
				ret = cmd_refused(&m);
			else if ((ret = cmd_slot_refused(ctl, slot, &m)) < 0)
				break; /* sent again: read on */
			return cancelling ? CTL_INTERRUPTED : ret;
		case PROTO_OUTPUT:
			if (ctl->json || i >= g->n)
				break;
			render_progress_clear(&g->bar);
			snprintf(prefix, sizeof(prefix), "[%" PRIu64 "] ", i);
			if (render_output(&m, prefix, g->jobs[i].bol) < 0) {
				warnx("protocol error: output without data");
				return CTL_CONNECT;
			}
			break;
		case PROTO_RETRY:
			render_progress_clear(&g->bar);
			snprintf(prefix, sizeof(prefix), "[%" PRIu64 "] ", i);
			cmd_job_retry_line(ctl, &m, prefix);
			break;
		case PROTO_END:
			if (i >= g->n || g->jobs[i].ended)
				break;
			if (gather_end(g, (uint32_t)i, &m) < 0)
				return CTL_CONNECT;
			if (ctl->bar)
				render_progress_draw(&g->bar);
			break;
		default:
			break;
		}
	}
	render_progress_clear(&g->bar);
	return cancelling ? CTL_INTERRUPTED : g->worst;
lost:
	render_progress_clear(&g->bar);
	warnx("cannot cancel the jobs: %s",
	      *c->cause != '\0' ? c->cause : "connection lost");
	return CTL_INTERRUPTED;
}

int
cmd_gather(struct ctl *ctl, struct cmd_args *a)
{
	struct cmd_slot slot = {.wait = (a->seen & CMD_OPT_WAIT_SLOT) != 0};
	struct gather g = {
	    .ctl = ctl,
	    .batch = &a->batch,
	    .n = a->batch.n,
	    .worst = CTL_OK,
	    .as_completed = (a->seen & CMD_OPT_AS_COMPLETED) != 0,
	};
	struct proto_enc e;
	enum conn_status st;
	uint64_t req;
	uint32_t i;
	int ret;

	if ((g.jobs = calloc(g.n, sizeof(*g.jobs))) == NULL)
		err(CTL_CONNECT, "calloc");
	for (i = 0; i < g.n; i++)
		g.jobs[i].bol[0] = g.jobs[i].bol[1] = true;
	req = conn_begin(&ctl->conn, &e, PROTO_GATHER);
	proto_enc_raw(&e, PF_JOBS, a->batch.jobs.data, a->batch.jobs.len);
	if (a->seen & CMD_OPT_FAIL_FAST)
		proto_enc_bool(&e, PF_FAIL_FAST, true);
	if ((st = cmd_slot_send(ctl, &slot, &e)) != CONN_OK)
		ret = cmd_conn_exit(ctl, st);
	else
		ret = gather_follow(&g, req, &slot);
	for (i = 0; i < g.n; i++)
		free(g.jobs[i].line);
	free(g.jobs);
	cmd_slot_free(&slot);
	return ret;
}
