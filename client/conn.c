/*
 * conn.c -- one blocking connection to concd: connect and shake hands,
 * send whole frames, and hand back decoded replies one at a time.
 *
 * Replies point into the read buffer and the zone, so a reply stays
 * valid until the next conn_recv.  Signals are blocked outside ppoll(),
 * so an interrupt is noticed exactly there and never lost.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "concctl.h"

#define CONN_READ_SIZE  65536
#define CONN_FEED_CHUNK 65536        /* input bytes per message */
#define CONN_FEED_AHEAD (256 * 1024) /* unsent bytes: read no more input */

/* Microseconds on the monotonic clock. */
int64_t
conn_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
conn_fault(struct conn *c, const struct proto_msg *m)
{
	char code[33], message[1025];
	size_t len;
	const char *s;

	s = proto_str(m, PF_ERROR, &len);
	render_safe(code, sizeof(code), s, len);
	s = proto_str(m, PF_MESSAGE, &len);
	render_safe(message, sizeof(message), s, len);
	snprintf(c->cause, sizeof(c->cause), "%s: %s", code, message);
}

static enum conn_status
conn_handshake(struct conn *c, int64_t deadline)
{
	struct proto_enc e;
	struct proto_msg m;
	enum conn_status st;
	uint64_t id;

	id = conn_begin(c, &e, PROTO_HELLO);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	if ((st = conn_send(c, &e)) != CONN_OK)
		return st;
	for (;;) {
		if ((st = conn_recv(c, &m, deadline)) != CONN_OK)
			break;
		if (m.type == PROTO_ERROR) {
			conn_fault(c, &m);
			st = CONN_ERROR;
			break;
		}
		if (m.id != id)
			continue;
		if (m.type != PROTO_WELCOME) {
			snprintf(c->cause, sizeof(c->cause),
			         "protocol error: %s instead of welcome",
			         proto_types[m.type].name);
			st = CONN_ERROR;
			break;
		}
		if (proto_u64(&m, PF_VERSION, 0) != PROTO_VERSION) {
			snprintf(
			    c->cause, sizeof(c->cause),
			    "protocol version mismatch: concd speaks %" PRIu64
			    ", concctl %d",
			    proto_u64(&m, PF_VERSION, 0), PROTO_VERSION);
			st = CONN_ERROR;
			break;
		}
		proto_strcpy(&m, PF_SERVER, c->server, sizeof(c->server));
		c->pid = proto_u64(&m, PF_PID, 0);
		break;
	}
	return st;
}

enum conn_status
conn_open(struct conn *c, const char *path)
{
	return conn_open_until(c, path, -1);
}

/* Connect, and have the handshake done by deadline (conn_now; -1: none). */
enum conn_status
conn_open_until(struct conn *c, const char *path, int64_t deadline)
{
	struct sockaddr_un sun;
	const char *hint;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->feed_fd = -1;
	c->path = path;
	c->next_id = 1;
	c->intr_seen = ctl_interrupted;
	if (!msgpack_zone_init(&c->zone, 4096)) {
		snprintf(c->cause, sizeof(c->cause), "out of memory");
		return CONN_ERROR;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(c->cause, sizeof(c->cause),
		         "cannot connect to %s: socket path too long", path);
		return CONN_ERROR;
	}
	memcpy(sun.sun_path, path, strlen(path));
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		snprintf(c->cause, sizeof(c->cause), "socket: %s",
		         strerror(errno));
		return CONN_ERROR;
	}
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		hint = errno == ENOENT || errno == ECONNREFUSED
		           ? " (is concd running?)"
		           : "";
		snprintf(c->cause, sizeof(c->cause),
		         "cannot connect to %s: %s%s", path, strerror(errno),
		         hint);
		return CONN_ERROR;
	}
	return conn_handshake(c, deadline);
}

void
conn_close(struct conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	pbuf_free(&c->rbuf);
	pbuf_free(&c->wbuf);
	pbuf_free(&c->aside);
	msgpack_zone_destroy(&c->zone);
}

/* Start a request; returns the id its replies will carry. */
uint64_t
conn_begin(struct conn *c, struct proto_enc *e, enum proto_type type)
{
	uint64_t id = c->next_id++;

	proto_enc_begin(e, &c->wbuf, type, id);
	return id;
}

/* Finish the request e and write it, with any finished before it. */
enum conn_status
conn_send(struct conn *c, struct proto_enc *e)
{
	if (proto_enc_end(e) < 0) {
		c->wbuf.len = 0;
		snprintf(c->cause, sizeof(c->cause),
		         "request too large (more than %d bytes)",
		         PROTO_MAX_FRAME);
		return CONN_TOOBIG;
	}
	return conn_flush(c);
}

/*
 * What the socket has now, read onto the end of b: CONN_OK (nothing, if
 * interrupted or there is nothing yet), CONN_CLOSED or CONN_ERROR.
 */
static enum conn_status
conn_read_onto(struct conn *c, struct pbuf *b)
{
	ssize_t n;

	pbuf_reserve(b, CONN_READ_SIZE);
	n = read(c->fd, b->data + b->len, b->cap - b->len);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return CONN_OK;
	if (n == 0 || (n == -1 && errno == ECONNRESET))
		return CONN_CLOSED;
	if (n == -1) {
		snprintf(c->cause, sizeof(c->cause), "read from %s: %s",
		         c->path, strerror(errno));
		return CONN_ERROR;
	}
	b->len += (size_t)n;
	return CONN_OK;
}

/*
 * Wait until the socket takes more.  Meanwhile what the daemon sends is
 * read aside: a daemon whose replies to us wait unread stops reading our
 * requests, and a send that only waited would wait for good.
 */
static enum conn_status
conn_wait_room(struct conn *c)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN | POLLOUT};

	if (c->intr_seen != ctl_interrupted) {
		c->intr_seen = ctl_interrupted;
		return CONN_INTR;
	}
	if (poll(&pfd, 1, -1) == -1)
		return CONN_OK; /* EINTR: looked at above */
	if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) == 0)
		return CONN_OK;
	return conn_read_onto(c, &c->aside);
}

/* Write every finished request in the write buffer. */
enum conn_status
conn_flush(struct conn *c)
{
	enum conn_status st;
	size_t off = 0;
	ssize_t n;

	while (off < c->wbuf.len) {
		n = send(c->fd, c->wbuf.data + off, c->wbuf.len - off,
		         MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			st = conn_wait_room(c);
			if (st == CONN_INTR) {
				/* the rest goes out as replies are awaited */
				pbuf_consume(&c->wbuf, off);
				return st;
			}
			if (st != CONN_OK) {
				c->wbuf.len = 0;
				return st;
			}
			continue;
		}
		if (n == -1) {
			c->wbuf.len = 0;
			if (errno == EPIPE || errno == ECONNRESET)
				return CONN_CLOSED;
			snprintf(c->cause, sizeof(c->cause), "write to %s: %s",
			         c->path, strerror(errno));
			return CONN_ERROR;
		}
		off += (size_t)n;
	}
	c->wbuf.len = 0;
	return CONN_OK;
}

void
conn_feed(struct conn *c, int fd, uint64_t job)
{
	c->feed_fd = fd;
	c->feed_job = job;
}

/*
 * Read a chunk of the job's standard input and queue it as an input
 * message; at its end (or a read error) queue the eof.
 */
static void
conn_feed_read(struct conn *c)
{
	char buf[CONN_FEED_CHUNK];
	struct proto_enc e;
	ssize_t n;

	n = read(c->feed_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	conn_begin(c, &e, PROTO_INPUT);
	proto_enc_u64(&e, PF_JOB, c->feed_job);
	if (n > 0) {
		proto_enc_key(&e, PF_DATA);
		msgpack_pack_bin_with_body(&e.pk, buf, (size_t)n);
	} else {
		proto_enc_bool(&e, PF_EOF, true);
		c->feed_fd = -1;
	}
	(void)proto_enc_end(&e);
}

/* Write what the socket takes now of the queued messages. */
static enum conn_status
conn_write_some(struct conn *c)
{
	ssize_t n;

	n = send(c->fd, c->wbuf.data, c->wbuf.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return CONN_OK;
	if (n == -1) {
		c->wbuf.len = 0;
		if (errno == EPIPE || errno == ECONNRESET)
			return CONN_CLOSED;
		snprintf(c->cause, sizeof(c->cause), "write to %s: %s", c->path,
		         strerror(errno));
		return CONN_ERROR;
	}
	pbuf_consume(&c->wbuf, (size_t)n);
	return CONN_OK;
}

/* The signal mask ppoll() waits with: interrupts let through. */
static void
conn_waitmask(sigset_t *mask)
{
	sigprocmask(SIG_SETMASK, NULL, mask);
	sigdelset(mask, SIGINT);
	sigdelset(mask, SIGTERM);
	sigdelset(mask, SIGHUP);
}

/* Sleep for usec microseconds: CONN_OK, or CONN_INTR at an interrupt. */
enum conn_status
conn_pause(struct conn *c, int64_t usec)
{
	int64_t deadline = conn_now() + usec, left;
	struct timespec ts;
	sigset_t mask;

	conn_waitmask(&mask);
	for (;;) {
		if (c->intr_seen != ctl_interrupted) {
			c->intr_seen = ctl_interrupted;
			return CONN_INTR;
		}
		if ((left = deadline - conn_now()) <= 0)
			return CONN_OK;
		ts.tv_sec = left / 1000000;
		ts.tv_nsec = (left % 1000000) * 1000;
		ppoll(NULL, 0, &ts, &mask);
	}
}

/*
 * Decode one frame into m.  Returns 1, 0 to skip the frame (a message
 * type this client does not know), or -1 with the cause set.
 */
static int
conn_decode(struct conn *c, const char *payload, size_t len,
            struct proto_msg *m)
{
	struct proto_fault f;
	enum proto_decode_result r;
	msgpack_object root;
	size_t off = 0;

	r = proto_decode(payload, len, &c->zone, m, &f);
	if (r == PROTO_DECODE_REJECT && f.code == PE_UNKNOWN_MESSAGE)
		return 0;
	/*
	 * A gather's accepted names its jobs, not one job, though the table
	 * in proto/msg.c still requires "job" of every accepted.
	 */
	if (r == PROTO_DECODE_REJECT && f.code == PE_BAD_FIELD &&
	    strcmp(f.message, "missing field \"job\"") == 0 &&
	    m->type == PROTO_ACCEPTED && proto_has(m, PF_JOBS))
		r = PROTO_DECODE_OK;
	if (r != PROTO_DECODE_OK) {
		snprintf(c->cause, sizeof(c->cause), "protocol error: %s",
		         f.message);
		return -1;
	}
	if (proto_types[m->type].request) {
		snprintf(c->cause, sizeof(c->cause),
		         "protocol error: daemon sent a %s request",
		         proto_types[m->type].name);
		return -1;
	}
	if (c->json && msgpack_unpack(payload, len, &off, &c->zone, &root) ==
	                   MSGPACK_UNPACK_SUCCESS)
		render_json_line(&root);
	if (m->type == PROTO_ERROR && m->id == 0) {
		/* not about any request: the daemon is giving up on us */
		conn_fault(c, m);
		return -1;
	}
	return 1;
}

/*
 * Wait for the next reply until deadline (conn_now() time, -1: none).
 * Returns CONN_OK with the reply in m, or why there is none.
 */
enum conn_status
conn_recv(struct conn *c, struct proto_msg *m, int64_t deadline)
{
	struct pollfd pfd[2] = {{.fd = c->fd, .events = POLLIN},
	                        {.fd = -1, .events = POLLIN}};
	struct timespec ts;
	const char *payload;
	enum conn_status st;
	sigset_t mask;
	size_t plen;
	ssize_t n;
	int64_t left;

	/*
	 * The frames read are passed over, not moved out one by one: a
	 * buffer of many (what was read aside) would be moved as often.
	 */
	c->roff += c->consumed;
	c->consumed = 0;
	if (c->roff == c->rbuf.len)
		c->rbuf.len = c->roff = 0;
	if (c->aside.len > 0) {
		pbuf_append(&c->rbuf, c->aside.data, c->aside.len);
		c->aside.len = 0;
	}
	conn_waitmask(&mask);
	for (;;) {
		if (c->intr_seen != ctl_interrupted) {
			c->intr_seen = ctl_interrupted;
			return CONN_INTR;
		}
		n = proto_frame_next(c->rbuf.data + c->roff,
		                     c->rbuf.len - c->roff, &payload, &plen);
		if (n < 0) {
			snprintf(c->cause, sizeof(c->cause),
			         "protocol error: frame too large");
			return CONN_ERROR;
		}
		if (n > 0) {
			switch (conn_decode(c, payload, plen, m)) {
			case 1:
				c->consumed = (size_t)n;
				return CONN_OK;
			case 0:
				c->roff += (size_t)n;
				continue;
			default:
				return CONN_ERROR;
			}
		}
		if (deadline >= 0) {
			if ((left = deadline - conn_now()) <= 0)
				return CONN_TIMEOUT;
			ts.tv_sec = left / 1000000;
			ts.tv_nsec = (left % 1000000) * 1000;
		}
		/* standard input is read only while the socket keeps up */
		pfd[0].events = POLLIN | (c->wbuf.len > 0 ? POLLOUT : 0);
		pfd[1].fd = c->wbuf.len < CONN_FEED_AHEAD ? c->feed_fd : -1;
		if (ppoll(pfd, 2, deadline >= 0 ? &ts : NULL, &mask) == -1) {
			if (errno == EINTR)
				continue;
			snprintf(c->cause, sizeof(c->cause), "poll: %s",
			         strerror(errno));
			return CONN_ERROR;
		}
		if (pfd[1].revents != 0)
			conn_feed_read(c);
		if ((pfd[0].revents & POLLOUT) || pfd[1].revents != 0) {
			if ((st = conn_write_some(c)) != CONN_OK)
				return st;
		}
		if ((pfd[0].revents & ~POLLOUT) == 0)
			continue;
		if (c->roff > 0) {
			/* what is left is part of a frame: nothing returned */
			pbuf_consume(&c->rbuf, c->roff);
			c->roff = 0;
		}
		if ((st = conn_read_onto(c, &c->rbuf)) != CONN_OK)
			return st;
	}
}
