/*
 * input.c -- a job's standard input, streamed by the client that
 * submitted it (stdin "stream"): its `input` messages go into a pipe
 * made with the job, whose read end the command gets as its standard
 * input on whatever executor runs it (a worker process is handed the
 * read end with the job's run message).
 *
 * The loop writes into the pipe without blocking.  What the pipe does
 * not take waits here; once INPUT_HOLD bytes wait, the client's socket
 * is not read until the command has taken them down to INPUT_RESUME:
 * the client then blocks in its write, and so does whatever feeds it.
 * The end of the client's input (eof), the client going away, and the
 * command closing its standard input all close the write end; the job's
 * end closes both.  The read end is kept by concd until the job ends, so
 * a job that is retried, or given back by a worker, starts with it again.
 *
 * Few jobs stream at once (one per waiting client), so they are in one
 * list, looked up by job id.
 */
#include <sys/queue.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "input.h"
#include "job.h"
#include "log.h"
#include "loop.h"

#define INPUT_HOLD   (256 * 1024) /* bytes waiting: stop reading the client */
#define INPUT_RESUME (64 * 1024)  /* ... until down to this */

struct input {
	uint64_t job;
	struct conn *conn; /* the client that streams it; NULL once gone */
	int wfd;           /* the pipe's write end; -1 once closed */
	int rfd;           /* its read end, the command's standard input */
	struct pbuf pending;
	size_t off;       /* of pending, already written */
	bool eof;         /* no more input: close wfd once pending is written */
	bool holding;     /* its client's reads are held for it */
	struct event *ev; /* wfd writable, while bytes wait */
	LIST_ENTRY(input) link;
};

static LIST_HEAD(, input) inputs = LIST_HEAD_INITIALIZER(inputs);

static struct input *
input_find(uint64_t job)
{
	struct input *in;

	LIST_FOREACH(in, &inputs, link)
		if (in->job == job)
			return in;
	return NULL;
}

/* Whether another stream of c still wants its reads held. */
static bool
input_conn_holding(const struct conn *c, const struct input *but)
{
	const struct input *in;

	LIST_FOREACH(in, &inputs, link)
		if (in != but && in->conn == c && in->holding)
			return true;
	return false;
}

static void
input_hold(struct input *in, bool hold)
{
	if (in->holding == hold || in->conn == NULL)
		return;
	in->holding = hold;
	if (hold || !input_conn_holding(in->conn, in))
		conn_hold_reads(in->conn, hold);
}

/* No more input for the command: the write end closes, nothing waits. */
static void
input_shut(struct input *in)
{
	if (in->ev != NULL)
		event_del(in->ev);
	if (in->wfd >= 0)
		close(in->wfd);
	in->wfd = -1;
	pbuf_free(&in->pending);
	in->off = 0;
	input_hold(in, false);
}

/* Write what waits; the write end closes at the end or when refused. */
static void
input_drain(struct input *in)
{
	ssize_t n;

	while (in->wfd >= 0 && in->off < in->pending.len) {
		n = write(in->wfd, in->pending.data + in->off,
		          in->pending.len - in->off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) { /* EPIPE: the command wants no more */
			input_shut(in);
			return;
		}
		in->off += (size_t)n;
	}
	if (in->off == in->pending.len) {
		in->pending.len = in->off = 0;
		if (in->pending.cap > INPUT_RESUME)
			pbuf_free(&in->pending);
		if (in->ev != NULL)
			event_del(in->ev);
		if (in->eof)
			input_shut(in);
	} else {
		/* what was written goes, or a steady stream grows it */
		if (in->off >= in->pending.len / 2) {
			pbuf_consume(&in->pending, in->off);
			in->off = 0;
		}
		if (in->ev != NULL)
			event_add(in->ev, NULL);
	}
	if (in->pending.len - in->off <= INPUT_RESUME)
		input_hold(in, false);
	else if (in->pending.len - in->off >= INPUT_HOLD)
		input_hold(in, true);
}

static void
input_writable_cb(evutil_socket_t fd, short what, void *arg)
{
	struct input *in = arg;

	(void)fd;
	(void)what;
	loop_worked = true;
	input_drain(in);
}

struct input *
input_new(struct conn *c)
{
	struct input *in;
	int p[2];

	if ((in = calloc(1, sizeof(*in))) == NULL)
		return NULL;
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_warn("input: pipe");
		free(in);
		return NULL;
	}
	if (fcntl(p[1], F_SETFL, O_NONBLOCK) < 0 ||
	    (in->ev = event_new(loop_base, p[1], EV_WRITE, input_writable_cb,
	                        in)) == NULL) {
		close(p[0]);
		close(p[1]);
		free(in);
		return NULL;
	}
	in->conn = c;
	in->rfd = p[0];
	in->wfd = p[1];
	return in;
}

int
input_attach(struct input *in, struct job *j)
{
	if (job_set_stdin(j, in->rfd) < 0)
		return -1;
	in->job = j->id;
	LIST_INSERT_HEAD(&inputs, in, link);
	return 0;
}

void
input_free(struct input *in)
{
	if (in == NULL)
		return;
	input_shut(in);
	if (in->ev != NULL)
		event_free(in->ev);
	close(in->rfd);
	free(in);
}

int
input_put(struct conn *c, uint64_t job, const void *data, size_t len, bool eof,
          const char **cause)
{
	struct input *in = input_find(job);

	if (in == NULL || in->conn != c) {
		*cause =
		    "takes no input from this connection: only the client "
		    "that submitted it with stdin \"stream\" sends it input";
		return -1;
	}
	if (in->eof) {
		*cause = "its input has ended (eof) already";
		return -1;
	}
	if (in->wfd < 0)
		return 0; /* the command closed it: what follows is dropped */
	if (len > 0)
		pbuf_append(&in->pending, data, len);
	in->eof = eof;
	input_drain(in);
	return 0;
}

void
input_conn_closed(struct conn *c)
{
	struct input *in;

	LIST_FOREACH(in, &inputs, link) {
		if (in->conn != c)
			continue;
		input_shut(in); /* the client is gone: so is the input */
		in->conn = NULL;
	}
}

void
input_ended(struct job *j)
{
	struct input *in = input_find(j->id);

	if (in == NULL)
		return;
	LIST_REMOVE(in, link);
	(void)job_set_stdin(j, -1);
	input_free(in);
}
