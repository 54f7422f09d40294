/*
 * logread.c -- readers of kept output: the `log` request, and `watch`,
 * which replays a job's log and then follows it.
 *
 * A reader reads its job's log (joblog.c) straight into its connection's
 * output, a chunk of up to PROTO_MAX_STR bytes per output message, until
 * the connection is backlogged; the connection's drained hook brings it
 * back.  A reader that has read all there is waits for the log's changed
 * hook: the log grew, or the job ended.  So a reader of any speed gets
 * every byte kept, and its end (a watch's, or a follower's) comes after
 * the last one.  Readers are found by their job (a log changed) and by
 * their connection (it drained, or closed) through two small hash tables.
 */
#include <sys/queue.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "job.h"
#include "joblog.h"
#include "logread.h"
#include "loop.h"
#include "proto.h"

struct reader {
	struct conn *conn;
	uint64_t req;
	uint64_t id;
	struct logread_opts o;
	struct joblog_cursor cur;
	struct pbuf end; /* the job's end message, sent after the last byte */
	bool opened;     /* cur is placed: the log was there */
	bool ended;      /* the job has ended (or is not in the table) */
	bool blocked;    /* until its connection drains */
	LIST_ENTRY(reader) by_id;
	LIST_ENTRY(reader) by_conn;
};

#define LOGREAD_BUCKETS 256 /* a power of two */
static LIST_HEAD(reader_list, reader) by_id[LOGREAD_BUCKETS],
    by_conn[LOGREAD_BUCKETS];
static size_t nreaders;

static struct reader_list *
id_bucket(uint64_t id)
{
	return &by_id[id & (LOGREAD_BUCKETS - 1)];
}

static struct reader_list *
conn_bucket(const struct conn *c)
{
	uint64_t h = (uint64_t)(uintptr_t)c * UINT64_C(0x9e3779b97f4a7c15);

	return &by_conn[h >> 56 & (LOGREAD_BUCKETS - 1)];
}

static void
reader_free(struct reader *r)
{
	LIST_REMOVE(r, by_id);
	LIST_REMOVE(r, by_conn);
	nreaders--;
	pbuf_free(&r->end);
	free(r);
}

/*
 * The job is final, or gone from the table: no more output comes.  A
 * follower keeps the job's end for after the last byte; it missed
 * nothing, so its end reports nothing dropped.
 */
static void
reader_ended(struct reader *r, const struct job *j)
{
	struct watch own = {.index = -1};

	r->ended = true;
	if (j != NULL && PROTO_STATE_FINAL(j->state) &&
	    (r->o.follow || r->o.watch))
		job_encode_end(&r->end, j, &own, r->req, -1);
}

/* The reply that closes a request: the end, or ok with the state. */
static void
reader_finish(struct reader *r)
{
	struct pbuf *b = conn_out(r->conn);
	struct proto_enc e;
	struct job *j;

	if (r->end.len > 0)
		pbuf_append(b, r->end.data, r->end.len);
	else {
		proto_enc_begin(&e, b, PROTO_OK, r->req);
		proto_enc_u64(&e, PF_JOB, r->id);
		if ((j = job_find(r->id)) != NULL)
			proto_enc_cstr(&e, PF_STATE, proto_states[j->state]);
		else if (r->o.state >= 0 && r->o.state < PS_COUNT)
			proto_enc_cstr(&e, PF_STATE, proto_states[r->o.state]);
		proto_enc_end(&e);
	}
	conn_dirty(r->conn);
	reader_free(r);
}

/*
 * One output message, its data read from the log in place: the bin's
 * length is set once the read says how much there was.  A gap with
 * nothing after it yet goes in a message of no data.  False: nothing to
 * send for now.
 */
static bool
reader_send(struct reader *r)
{
	static const char *const names[] = {"stdout", "stderr"};
	struct pbuf *b = conn_out(r->conn);
	struct proto_enc e;
	uint64_t skipped;
	size_t at, n;
	int stream;

	proto_enc_begin(&e, b, PROTO_OUTPUT, r->req);
	proto_enc_u64(&e, PF_JOB, r->id);
	proto_enc_key(&e, PF_DATA);
	at = b->len;
	pbuf_reserve(b, 5 + PROTO_MAX_STR);
	n = joblog_read(&r->cur, b->data + at + 5, PROTO_MAX_STR, &stream,
	                &skipped);
	if (n == 0 && skipped == 0) {
		b->len = e.start;
		return false;
	}
	b->data[at] = (char)0xc6; /* bin 32 */
	b->data[at + 1] = (char)(n >> 24);
	b->data[at + 2] = (char)(n >> 16);
	b->data[at + 3] = (char)(n >> 8);
	b->data[at + 4] = (char)n;
	b->len = at + 5 + n;
	if (stream == 0) /* a gap alone: of the one stream read, or stdout */
		stream = r->o.streams == 2 ? JOBLOG_STDERR : JOBLOG_STDOUT;
	proto_enc_cstr(&e, PF_STREAM, names[stream == JOBLOG_STDERR]);
	if (skipped > 0)
		proto_enc_u64(&e, PF_SKIPPED, skipped);
	proto_enc_end(&e);
	conn_dirty(r->conn);
	return true;
}

/* Read on while the connection takes it; finish when all is sent. */
static void
reader_pump(struct reader *r)
{
	struct logread_opts *o = &r->o;

	for (;;) {
		if (conn_backlogged(r->conn)) {
			r->blocked = true;
			return;
		}
		if (!r->opened) {
			if (joblog_open(&r->cur, r->id, o->streams, o->offset,
			                o->length, o->tail) < 0) {
				/* no output yet: none at all, if it ended */
				if (r->ended || !o->follow)
					reader_finish(r);
				else /* the last lines of none: what comes */
					o->tail = UINT64_MAX;
				return;
			}
			r->opened = true;
		}
		if (reader_send(r))
			continue;
		if (!o->follow || r->cur.left == 0 ||
		    (r->ended && joblog_done(&r->cur)))
			reader_finish(r);
		return; /* the log's changed hook brings it back */
	}
}

/* A log grew or ended, or its job did: its readers read on. */
static void
logread_changed(uint64_t id)
{
	struct reader *r, *next;
	struct job *j;

	if (nreaders == 0)
		return;
	for (r = LIST_FIRST(id_bucket(id)); r != NULL; r = next) {
		next = LIST_NEXT(r, by_id);
		if (r->id != id)
			continue;
		if (!r->ended &&
		    ((j = job_find(id)) == NULL || PROTO_STATE_FINAL(j->state)))
			reader_ended(r, j);
		if (!r->blocked)
			reader_pump(r);
	}
}

static void
logread_drained(struct conn *c)
{
	struct reader *r, *next;

	if (nreaders == 0)
		return;
	for (r = LIST_FIRST(conn_bucket(c)); r != NULL; r = next) {
		next = LIST_NEXT(r, by_conn);
		if (r->conn == c && r->blocked) {
			r->blocked = false;
			reader_pump(r);
		}
	}
}

void
logread_init(void)
{
	joblog_hook_changed(logread_changed);
	conn_hook_drained(logread_drained);
}

int
logread_start(struct conn *c, uint64_t req, uint64_t id,
              const struct logread_opts *o)
{
	struct reader *r;
	struct job *j = job_find(id);

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	r->conn = c;
	r->req = req;
	r->id = id;
	r->o = *o;
	if (r->o.watch)
		r->o.follow = true;
	if (j == NULL && o->end != NULL && r->o.follow)
		pbuf_append(&r->end, o->end->data, o->end->len);
	r->o.end = NULL;
	if (j == NULL || PROTO_STATE_FINAL(j->state))
		reader_ended(r, j);
	else if (r->o.watch && job_watch_logged(j, c, req) < 0) {
		free(r);
		return -1;
	}
	LIST_INSERT_HEAD(id_bucket(id), r, by_id);
	LIST_INSERT_HEAD(conn_bucket(c), r, by_conn);
	nreaders++;
	reader_pump(r);
	return 0;
}

void
logread_unwatch_conn(struct conn *c)
{
	struct reader *r, *next;

	if (nreaders == 0)
		return;
	for (r = LIST_FIRST(conn_bucket(c)); r != NULL; r = next) {
		next = LIST_NEXT(r, by_conn);
		if (r->conn == c)
			reader_free(r);
	}
}
