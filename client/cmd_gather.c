/*
 * cmd_gather.c -- gather: many jobs in one request.
 *
 * The jobs are read, one per line, and checked before concctl connects,
 * so a bad line is a usage error and nothing is sent; every line is
 * packed as it is read.  They go in one gather request, or, when they do
 * not fit in one frame or number more than a request may hold, in several
 * sent one after another, each once the one before it was accepted (its
 * job ids then stand for the @N references to its lines).  Then the jobs
 * of all of them are followed together, as one gather: each job's outcome
 * becomes one line, printed in input order or as the jobs complete, their
 * output is passed on with the job's index in front, and a terminal gets one
 * bar for them all.
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
             "[--mem SIZE] [--pids N] "
             "[--after ID|@N[,...] | --after-any ID|@N[,...]] "
             "[-- COMMAND [ARG ...]]",
    .minargs = 1,
    .maxargs = -1,
    .words = CMD_WORDS_TASK,
    .options = CMD_OPT_JOB,
    .bare = true,
};

/* What a request may hold besides its jobs: t, id, fail_fast. */
#define GATHER_FRAME_ROOM (PROTO_MAX_FRAME - 64)
/*
 * A line's longest: words of one byte on the wire take three here
 * ('' and a blank), so a longer one is more than a request holds.
 */
#define GATHER_LINE_MAX (4 * PROTO_MAX_FRAME)

/* Keep one parsed line: its fields packed, its after list aside. */
static void
gather_keep(struct cmd_batch *b, struct cmd_args *la, unsigned lineno)
{
	struct cmd_line *l;
	msgpack_packer pk;
	uint32_t nafter = la->nafter, cap;

	if (b->n == 0 || (b->n >= 64 && (b->n & (b->n - 1)) == 0)) {
		cap = b->n == 0 ? 64 : b->n * 2;
		b->line = reallocarray(b->line, cap, sizeof(*b->line));
		if (b->line == NULL)
			err(CTL_CONNECT, "reallocarray");
	}
	l = &b->line[b->n++];
	l->lineno = lineno;
	l->off = b->fields.len;
	la->nafter = 0; /* after is packed as each request needs it */
	msgpack_packer_init(&pk, &b->fields, pbuf_write_cb);
	l->nfields = (uint32_t)cmd_job_pack(&pk, la);
	l->len = b->fields.len - l->off;
	l->dep = b->ndeps;
	l->ndeps = nafter;
	if (b->ndeps + nafter > b->capdeps) {
		b->capdeps = (b->ndeps + nafter) * 2;
		b->deps = reallocarray(b->deps, b->capdeps, sizeof(*b->deps));
		if (b->deps == NULL)
			err(CTL_CONNECT, "reallocarray");
	}
	if (nafter > 0)
		memcpy(b->deps + b->ndeps, la->after,
		       nafter * sizeof(*b->deps));
	b->ndeps += nafter;
}

/* The bytes line i takes in a request, at most. */
static size_t
gather_line_size(const struct cmd_batch *b, uint32_t i)
{
	/* a map header, its fields, after: a key, an array, an id each */
	return 5 + b->line[i].len + 7 + 5 + 10 * (size_t)b->line[i].ndeps;
}

/*
 * The order in which the lines are sent when they need more than one
 * request: each after the lines it names (@N), else in input order; a
 * depth-first walk from each line in turn, without recursion.  -1 after
 * a message naming a cycle.
 */
static int
gather_order(struct cmd_batch *b)
{
	enum { WHITE, GREY, BLACK };
	uint8_t *colour = calloc(b->n, 1);
	uint32_t *stack = calloc(b->n, sizeof(*stack));
	uint32_t *next = calloc(b->n, sizeof(*next)); /* the dep to look at */
	uint32_t i, top, k = 0;

	b->order = calloc(b->n, sizeof(*b->order));
	if (colour == NULL || stack == NULL || next == NULL || b->order == NULL)
		err(CTL_CONNECT, "calloc");
	for (i = 0; i < b->n; i++) {
		if (colour[i] != WHITE)
			continue;
		top = 0;
		stack[top++] = i;
		colour[i] = GREY;
		while (top > 0) {
			uint32_t l = stack[top - 1];
			const struct cmd_line *ln = &b->line[l];
			const struct cmd_dep *d;

			if (next[l] == ln->ndeps) {
				colour[l] = BLACK;
				b->order[k++] = l;
				top--;
				continue;
			}
			d = &b->deps[ln->dep + next[l]++];
			if (!d->line || colour[d->v] == BLACK)
				continue;
			if (colour[d->v] == GREY) {
				warnx("gather: line %u (index %" PRIu32 "): "
				      "--after @%" PRIu64 ": a cycle: the "
				      "lines wait for each other",
				      ln->lineno, l, d->v);
				free(colour);
				free(stack);
				free(next);
				return -1;
			}
			colour[d->v] = GREY;
			stack[top++] = (uint32_t)d->v;
		}
	}
	free(colour);
	free(stack);
	free(next);
	return 0;
}

/*
 * Cut the lines into requests that each fit in a frame and hold at most
 * PROTO_MAX_GATHER jobs.  One request needs no order: the daemon resolves
 * its @N, forward or back, and refuses a cycle.
 */
static int
gather_split(struct cmd_batch *b)
{
	size_t size = 5, s;
	uint32_t i, cap = 0;

	for (i = 0; i < b->n; i++)
		size += gather_line_size(b, i);
	if (size <= GATHER_FRAME_ROOM && b->n <= PROTO_MAX_GATHER) {
		if ((b->order = calloc(b->n, sizeof(*b->order))) == NULL)
			err(CTL_CONNECT, "calloc");
		for (i = 0; i < b->n; i++)
			b->order[i] = i;
	} else if (gather_order(b) < 0)
		return -1;
	for (i = 0; i < b->n; i++) {
		s = gather_line_size(b, b->order[i]);
		if (b->nframes == 0 ||
		    b->frames[b->nframes - 1].n == PROTO_MAX_GATHER ||
		    size + s > GATHER_FRAME_ROOM) {
			if (b->nframes == cap) {
				cap = cap ? cap * 2 : 4;
				b->frames = reallocarray(b->frames, cap,
				                         sizeof(*b->frames));
				if (b->frames == NULL)
					err(CTL_CONNECT, "reallocarray");
			}
			b->frames[b->nframes++] =
			    (struct cmd_frame){.first = i, .n = 0};
			size = 5;
		}
		b->frames[b->nframes - 1].n++;
		size += s;
	}
	return 0;
}

/*
 * Read the jobs, check each line as run would check its words, and keep
 * them in a->batch.  Returns CTL_OK, or CTL_USAGE after a message naming
 * the line.
 */
int
cmd_gather_prepare(struct ctl *ctl, struct cmd_args *a)
{
	struct cmd_batch *b = &a->batch;
	struct cmd_entry le = gather_line;
	struct cmd_args *la = NULL;
	char *line = NULL, **words = NULL, name[64];
	const char *cause;
	size_t cap = 0, room = 0, len;
	ssize_t got;
	unsigned lineno = 0;
	uint32_t i, k;
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
	while ((got = getline(&line, &cap, f)) != -1) {
		snprintf(name, sizeof(name), "gather: line %u", ++lineno);
		if (got > GATHER_LINE_MAX) {
			warnx("%s: longer than %d MiB, more than a job's "
			      "request can hold",
			      name, GATHER_LINE_MAX >> 20);
			goto out;
		}
		/* a word and the blank after it: two bytes at least */
		len = (size_t)got / 2 + 1;
		if (len > room) {
			free(words);
			if ((words = calloc(len, sizeof(*words))) == NULL)
				err(CTL_CONNECT, "calloc");
			room = len;
		}
		if ((n = cmd_split(line, words, (int)room, &cause)) < 0) {
			warnx("%s: %s", name, cause);
			goto out;
		}
		if (n == 0)
			continue;
		if (cmd_parse(&le, n, words, la, ctl) < 0)
			goto out;
		if (b->n == UINT32_MAX) {
			warnx("%s: too many jobs", name);
			goto out;
		}
		gather_keep(b, la, lineno);
		cmd_args_clear(la);
	}
	if (ferror(f)) {
		warnx("gather: %s: %s", b->from, strerror(errno));
		goto out;
	}
	if (b->n == 0) {
		warnx("gather: no jobs in %s", b->from);
		goto out;
	}
	for (i = 0; i < b->n; i++)
		for (k = 0; k < b->line[i].ndeps; k++) {
			const struct cmd_dep *d = &b->deps[b->line[i].dep + k];

			if (d->line && d->v >= b->n) {
				warnx("gather: line %u (index %" PRIu32 "): "
				      "--after @%" PRIu64 ": there is no such "
				      "line (@0 to @%" PRIu32 ")",
				      b->line[i].lineno, i, d->v, b->n - 1);
				goto out;
			}
		}
	if (gather_split(b) < 0)
		goto out;
	ret = CTL_OK;
out:
	cmd_args_clear(la);
	free(la);
	free(words);
	free(line);
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

/* One request of the gather, and the lines it holds. */
struct gather_req {
	uint64_t req;
	bool sent, accepted;
};

struct gather {
	struct ctl *ctl;
	const struct cmd_batch *batch;
	struct gather_job *jobs; /* in input order */
	struct gather_req *reqs; /* one per batch frame */
	uint32_t *pos;           /* each line's place in batch->order */
	uint32_t n;
	uint32_t next;  /* in input order, the next line to print */
	uint32_t nsent; /* requests sent */
	uint32_t ended;
	uint32_t failed; /* ended other than succeeded */
	int worst;
	bool as_completed;
	bool fail_fast;
	bool stopped; /* no more requests go out: interrupted, failed fast */
	struct render_progress bar;
};

static void
gather_print(struct gather *g, uint32_t i)
{
	if (g->jobs[i].printed || g->ctl->json)
		return;
	render_progress_clear(&g->bar);
	printf("%s\n", g->jobs[i].line);
	ctl_flush_stdout();
	g->jobs[i].printed = true;
}

/* Line i ended, with its outcome line, and exit status ret. */
static void
gather_ended(struct gather *g, uint32_t i, int ret)
{
	g->jobs[i].ended = true;
	g->ended++;
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
}

/* The lines of the requests not sent: they end as never submitted. */
static void
gather_unsent(struct gather *g, uint32_t from, const char *why, int ret)
{
	const struct cmd_batch *b = g->batch;
	uint32_t f, k, i;

	g->stopped = true;
	for (f = from; f < b->nframes; f++) {
		for (k = 0; k < b->frames[f].n; k++) {
			i = b->order[b->frames[f].first + k];
			if (g->jobs[i].ended)
				continue;
			if (asprintf(&g->jobs[i].line, "%" PRIu32 " - %s", i,
			             why) < 0)
				err(CTL_CONNECT, "asprintf");
			gather_ended(g, i, ret);
		}
	}
}

/* "2 19 failed exec: cannot run ..." for the end event m of job i. */
static int
gather_end(struct gather *g, uint32_t i, const struct proto_msg *m)
{
	struct gather_job *j = &g->jobs[i];
	char text[1025];
	const char *s;
	size_t len;
	int st;

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
	gather_ended(g, i, cmd_job_exit(st));
	return st;
}

/* The accepted reply of request f: its job ids, in its order. */
static int
gather_accepted(struct gather *g, uint32_t f, const struct proto_msg *m)
{
	const struct cmd_frame *fr = &g->batch->frames[f];
	const msgpack_object_array *ids;
	uint32_t k, i;

	if (!proto_has(m, PF_JOBS)) {
		warnx("protocol error: gather accepted without jobs");
		return -1;
	}
	ids = &m->f[PF_JOBS].via.array;
	for (k = 0; k < ids->size && k < fr->n; k++) {
		if (ids->ptr[k].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
			warnx("protocol error: a job id that is no number");
			return -1;
		}
		g->jobs[g->batch->order[fr->first + k]].id =
		    ids->ptr[k].via.u64;
	}
	/* the daemon ran out of memory part way: the rest never ran */
	for (; k < fr->n; k++) {
		i = g->batch->order[fr->first + k];
		if (asprintf(&g->jobs[i].line,
		             "%" PRIu32 " - refused not submitted", i) < 0)
			err(CTL_CONNECT, "asprintf");
		gather_ended(g, i, CTL_REFUSED);
	}
	g->reqs[f].accepted = true;
	if (!g->bar.seen) {
		g->bar.label = "gather";
		g->bar.total = g->n;
		g->bar.seen = true;
		g->bar.start = conn_now();
	}
	g->bar.done = g->ended;
	return 0;
}

/* Cancel every job that was accepted and has not ended, in one write. */
static enum conn_status
gather_cancel(struct gather *g)
{
	const struct cmd_batch *b = g->batch;
	struct conn *c = &g->ctl->conn;
	struct proto_enc e;
	uint32_t f, k, i;

	for (f = 0; f < g->nsent; f++) {
		if (!g->reqs[f].accepted)
			continue;
		for (k = 0; k < b->frames[f].n; k++) {
			i = b->order[b->frames[f].first + k];
			if (g->jobs[i].ended)
				continue;
			conn_begin(c, &e, PROTO_CANCEL);
			proto_enc_u64(&e, PF_JOB, g->jobs[i].id);
			proto_enc_end(&e);
		}
	}
	return conn_flush(c);
}

/*
 * Send request f: its lines, each naming the lines it runs after by @k,
 * its place in this request, or by the job id an earlier one was given.
 */
static enum conn_status
gather_send(struct gather *g, uint32_t f, struct cmd_slot *slot)
{
	const struct cmd_batch *b = g->batch;
	const struct cmd_frame *fr = &b->frames[f];
	struct conn *c = &g->ctl->conn;
	struct cmd_dep after[CMD_MAX_AFTER];
	struct proto_enc e;
	uint32_t k, d, r;

	g->reqs[f].req = conn_begin(c, &e, PROTO_GATHER);
	g->reqs[f].sent = true;
	g->nsent = f + 1;
	proto_enc_key(&e, PF_JOBS);
	proto_enc_array_open(&e);
	for (k = 0; k < fr->n; k++) {
		const struct cmd_line *l = &b->line[b->order[fr->first + k]];

		msgpack_pack_map(&e.pk, l->nfields + (l->ndeps > 0));
		pbuf_append(e.buf, b->fields.data + l->off, l->len);
		for (d = 0; d < l->ndeps; d++) {
			after[d] = b->deps[l->dep + d];
			if (!after[d].line)
				continue;
			r = (uint32_t)after[d].v;
			if (g->pos[r] >= fr->first)
				after[d].v = g->pos[r] - fr->first;
			else
				after[d] = (struct cmd_dep){.v = g->jobs[r].id};
		}
		if (l->ndeps > 0)
			cmd_job_pack_after(&e.pk, after, l->ndeps);
		proto_enc_elem(&e);
	}
	proto_enc_close(&e);
	if (g->fail_fast)
		proto_enc_bool(&e, PF_FAIL_FAST, true);
	return cmd_slot_send(g->ctl, slot, &e);
}

/* The request a reply belongs to, or -1. */
static int
gather_req_of(const struct gather *g, uint64_t id)
{
	uint32_t f;

	for (f = 0; f < g->nsent; f++)
		if (g->reqs[f].req == id)
			return (int)f;
	return -1;
}

/* Request f was refused: say which line, if it was one entry. */
static int
gather_refused(struct gather *g, uint32_t f, const struct proto_msg *m)
{
	const struct cmd_frame *fr = &g->batch->frames[f];
	char code[33], message[1025];
	uint64_t index;
	uint32_t i;
	const char *s;
	size_t len;

	if (!proto_has(m, PF_INDEX) ||
	    (index = proto_u64(m, PF_INDEX, 0)) >= fr->n)
		return cmd_refused(m);
	i = g->batch->order[fr->first + index];
	s = proto_str(m, PF_ERROR, &len);
	render_safe(code, sizeof(code), s, len);
	s = proto_str(m, PF_MESSAGE, &len);
	render_safe(message, sizeof(message), s, len);
	warnx("gather: line %u (index %" PRIu32 "): %s: %s",
	      g->batch->line[i].lineno, i, code, message);
	return CTL_REFUSED;
}

/*
 * Follow the events of every request until every job has ended; send
 * each request once the one before it was accepted.
 */
static int
gather_follow(struct gather *g, struct cmd_slot *slot)
{
	const struct cmd_batch *b = g->batch;
	struct ctl *ctl = g->ctl;
	struct conn *c = &ctl->conn;
	struct proto_msg m;
	enum conn_status st;
	bool cancelling = false;
	int64_t deadline = -1, wake, due;
	char prefix[24];
	uint64_t k;
	uint32_t i;
	int ret, f, state;

	while (g->ended < g->n) {
		wake = deadline;
		if (ctl->bar && g->bar.seen) {
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
			gather_unsent(g, g->nsent, "cancelled not submitted",
			              CTL_CANCELLED);
			if (gather_cancel(g) != CONN_OK)
				goto lost;
			continue;
		}
		if (st != CONN_OK) {
			render_progress_clear(&g->bar);
			ret = cmd_conn_exit(ctl, st);
			return cancelling ? CTL_INTERRUPTED : ret;
		}
		if ((f = gather_req_of(g, m.id)) < 0)
			continue; /* the replies to our cancels */
		k = proto_u64(&m, PF_INDEX, UINT64_MAX);
		i = k < b->frames[f].n ? b->order[b->frames[f].first + k]
		                       : UINT32_MAX;
		switch (m.type) {
		case PROTO_ACCEPTED:
			if (gather_accepted(g, (uint32_t)f, &m) < 0)
				return CTL_CONNECT;
			if ((cancelling || g->stopped) &&
			    gather_cancel(g) != CONN_OK)
				goto lost;
			if (!g->stopped && g->nsent < b->nframes &&
			    (st = gather_send(g, g->nsent, slot)) != CONN_OK) {
				render_progress_clear(&g->bar);
				warnx("gather: %s", c->cause);
				g->worst = cmd_job_worse(
				    g->worst, cmd_conn_exit(ctl, st));
				gather_unsent(g, g->nsent - 1,
				              "refused not submitted",
				              CTL_REFUSED);
			}
			break;
		case PROTO_ERROR:
			render_progress_clear(&g->bar);
			if (g->reqs[f].accepted) {
				g->worst =
				    cmd_job_worse(g->worst, cmd_refused(&m));
				break;
			}
			if (proto_has(&m, PF_INDEX))
				ret = gather_refused(g, (uint32_t)f, &m);
			else if (cancelling)
				ret = cmd_refused(&m);
			else if ((ret = cmd_slot_refused(ctl, slot, &m)) < 0)
				break; /* sent again: read on */
			if (f == 0)
				return cancelling ? CTL_INTERRUPTED : ret;
			/* the jobs of the requests before it go on */
			gather_unsent(g, (uint32_t)f, "refused not submitted",
			              ret);
			break;
		case PROTO_OUTPUT:
			if (ctl->json || i >= g->n)
				break;
			render_progress_clear(&g->bar);
			snprintf(prefix, sizeof(prefix), "[%" PRIu32 "] ", i);
			if (render_output(&m, prefix, g->jobs[i].bol) < 0) {
				warnx("protocol error: output without data");
				return CTL_CONNECT;
			}
			break;
		case PROTO_RETRY:
			render_progress_clear(&g->bar);
			snprintf(prefix, sizeof(prefix), "[%" PRIu32 "] ", i);
			cmd_job_retry_line(ctl, &m, prefix);
			break;
		case PROTO_END:
			if (i >= g->n || g->jobs[i].ended)
				break;
			if ((state = gather_end(g, i, &m)) < 0)
				return CTL_CONNECT;
			/* one failure stops the requests still to come too */
			if (g->fail_fast && !g->stopped &&
			    (state == PS_FAILED || state == PS_TIMED_OUT)) {
				gather_unsent(g, g->nsent,
				              "cancelled not submitted",
				              CTL_CANCELLED);
				if (gather_cancel(g) != CONN_OK)
					goto lost;
			}
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
	    .fail_fast = (a->seen & CMD_OPT_FAIL_FAST) != 0,
	};
	enum conn_status st;
	uint32_t i;
	int ret;

	g.jobs = calloc(g.n, sizeof(*g.jobs));
	g.pos = calloc(g.n, sizeof(*g.pos));
	g.reqs = calloc(a->batch.nframes, sizeof(*g.reqs));
	if (g.jobs == NULL || g.pos == NULL || g.reqs == NULL)
		err(CTL_CONNECT, "calloc");
	for (i = 0; i < g.n; i++) {
		g.jobs[i].bol[0] = g.jobs[i].bol[1] = true;
		g.pos[a->batch.order[i]] = i;
	}
	if ((st = gather_send(&g, 0, &slot)) != CONN_OK)
		ret = cmd_conn_exit(ctl, st);
	else
		ret = gather_follow(&g, &slot);
	for (i = 0; i < g.n; i++)
		free(g.jobs[i].line);
	free(g.jobs);
	free(g.pos);
	free(g.reqs);
	cmd_slot_free(&slot);
	return ret;
}
