/*
 * conn.c -- one client connection: its reads, its output buffer and its
 * watches.  A read drains every complete frame in the buffer; replies
 * pile up in one output buffer that is written once per loop pass (see
 * conn_dirty), and write interest is armed only while output is left.
 * A connection whose peer lets its output pile up is not read from (its
 * requests wait, unparsed) until the output has drained: a client that
 * pipelines requests without reading replies costs a bounded amount.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "loop.h"

#define CONN_READ_CHUNK (64 * 1024)
#define CONN_CONGESTED  (256 * 1024)       /* output bytes: skip progress */
#define CONN_PAUSE      (4 * 1024 * 1024)  /* read no more requests ... */
#define CONN_RESUME     (1024 * 1024)      /* ... until down to this */
#define CONN_DRAINED    (64 * 1024)        /* a held job's output resumes */
#define CONN_HOLD_MAX   (16 * 1024 * 1024) /* a job's output past holding */
#define CONN_OUT_LIMIT  (64 * 1024 * 1024) /* a peer that never reads */
#define CONN_TRIM_AT    (128 * 1024)       /* a frame this large: trim */

/*
 * Output that waits for the store: from a reply that may only go out
 * once its batch is committed on, everything written to the connection.
 * A segment is one batch's: the frames written while it was the store's
 * open batch, and its replies, each to be written at its place among
 * them (off) once the batch is committed (conn_release).  A connection
 * has a segment per batch outstanding, so two or three at most.
 */
struct conn_hole {
	struct conn_reply r;
	size_t off; /* where it goes in the segment's frames */
};

struct conn_seg {
	uint64_t seq;
	struct conn_hole *holes;
	size_t n, cap;
	struct pbuf after; /* frames written since the first reply */
	TAILQ_ENTRY(conn_seg) link;
};

/* A descriptor to go with byte `at` of a connection's output. */
struct conn_fd {
	size_t at;
	int fd; /* our duplicate, closed once sent */
};

struct conn {
	int fd;
	const struct conn_handler *handler;
	void *arg;
	uid_t uid;
	pid_t pid;
	struct event *rev;
	struct event *wev;
	struct pbuf in;
	struct pbuf out;
	size_t out_off; /* bytes of out already written */
	msgpack_zone zone;
	struct watch_list watches;
	TAILQ_HEAD(conn_segs, conn_seg) segs; /* empty unless replies wait */
	bool dirty;
	bool writing;        /* wev is added: the socket was full */
	bool closing;        /* flush what is queued, then close */
	bool paused;         /* rev is deleted: over CONN_PAUSE unsent */
	bool backlog;        /* call the drained hook once it has drained */
	bool held;           /* conn_hold_reads: rev is not added */
	uint64_t again;      /* conn_again: the store's seq its request waits
	                        for, rev deleted; 0: none */
	bool again_ready;    /* the store has it: dispatched again soon */
	bool retried;        /* the request is being dispatched again */
	struct conn_fd *fds; /* descriptors to pass (conn_pass_fd), in order */
	size_t nfds;
	TAILQ_ENTRY(conn) link;
	TAILQ_ENTRY(conn) dirty_link;
	TAILQ_ENTRY(conn) wait_link;  /* on waiting while it has segments */
	TAILQ_ENTRY(conn) again_link; /* on agains while again != 0 */
};

static TAILQ_HEAD(, conn) conns = TAILQ_HEAD_INITIALIZER(conns);
static TAILQ_HEAD(, conn) dirty = TAILQ_HEAD_INITIALIZER(dirty);
static TAILQ_HEAD(, conn) waiting = TAILQ_HEAD_INITIALIZER(waiting);
static TAILQ_HEAD(, conn) agains = TAILQ_HEAD_INITIALIZER(agains);
static struct event *flush_ev, *again_ev;
static struct conn *reading; /* in conn_read_cb, which flushes it itself */
static size_t nconns;
static void (*conn_batch_hook)(void);
#define CONN_DRAINED_HOOKS 2
static void (*drained_hooks[CONN_DRAINED_HOOKS])(struct conn *);

static void conn_read_cb(evutil_socket_t, short, void *);
static void conn_write_cb(evutil_socket_t, short, void *);
static void conn_flush_cb(evutil_socket_t, short, void *);
static void conn_again_cb(evutil_socket_t, short, void *);

struct conn *
conn_new_with(int fd, const struct conn_handler *h, void *arg)
{
	struct conn *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("SO_PEERCRED");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->fd = fd;
	c->handler = h;
	c->arg = arg;
	c->uid = cred.uid;
	c->pid = cred.pid;
	LIST_INIT(&c->watches);
	TAILQ_INIT(&c->segs);
	msgpack_zone_init(&c->zone, 4096);
	c->rev =
	    event_new(loop_base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wev = event_new(loop_base, fd, EV_WRITE, conn_write_cb, c);
	if (flush_ev == NULL)
		flush_ev = event_new(loop_base, -1, 0, conn_flush_cb, NULL);
	if (again_ev == NULL)
		again_ev = event_new(loop_base, -1, 0, conn_again_cb, NULL);
	if (c->rev == NULL || c->wev == NULL || flush_ev == NULL ||
	    again_ev == NULL) {
		if (c->rev != NULL)
			event_free(c->rev);
		if (c->wev != NULL)
			event_free(c->wev);
		msgpack_zone_destroy(&c->zone);
		free(c);
		return NULL;
	}
	event_add(c->rev, NULL);
	TAILQ_INSERT_TAIL(&conns, c, link);
	nconns++;
	log_debug("connection from uid %u pid %d", (unsigned)c->uid,
	          (int)c->pid);
	return c;
}

static void
conn_seg_free(struct conn_seg *g)
{
	free(g->holes);
	pbuf_free(&g->after);
	free(g);
}

void
conn_close(struct conn *c)
{
	/* a peer that let its output pile up leaves megabytes freed */
	bool trim = c->out.cap > CONN_RESUME;
	struct conn_seg *g;

	if (c->handler->closed != NULL)
		c->handler->closed(c, c->arg);
	if (!TAILQ_EMPTY(&c->segs))
		TAILQ_REMOVE(&waiting, c, wait_link);
	if (c->again != 0)
		TAILQ_REMOVE(&agains, c, again_link);
	while ((g = TAILQ_FIRST(&c->segs)) != NULL) {
		TAILQ_REMOVE(&c->segs, g, link);
		conn_seg_free(g);
	}
	if (c->dirty)
		TAILQ_REMOVE(&dirty, c, dirty_link);
	TAILQ_REMOVE(&conns, c, link);
	nconns--;
	event_free(c->rev);
	event_free(c->wev);
	close(c->fd);
	while (c->nfds > 0)
		close(c->fds[--c->nfds].fd);
	free(c->fds);
	pbuf_free(&c->in);
	pbuf_free(&c->out);
	msgpack_zone_destroy(&c->zone);
	free(c);
	if (trim)
		malloc_trim(0);
}

void
conn_close_all(void)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&conns)) != NULL)
		conn_close(c);
	if (flush_ev != NULL) {
		event_free(flush_ev);
		flush_ev = NULL;
	}
	if (again_ev != NULL) {
		event_free(again_ev);
		again_ev = NULL;
	}
}

size_t
conn_count(void)
{
	return nconns;
}

/*
 * Where the next frame goes: the output buffer, or while replies wait
 * for the store, after them.
 */
struct pbuf *
conn_out(struct conn *c)
{
	return TAILQ_EMPTY(&c->segs) ? &c->out
	                             : &TAILQ_LAST(&c->segs, conn_segs)->after;
}

/*
 * A reply that waits for the store's batch seq: fill writes it in its
 * place once that batch is written.
 */
int
conn_defer(struct conn *c, uint64_t seq, const struct conn_reply *r)
{
	struct conn_seg *g = TAILQ_LAST(&c->segs, conn_segs);
	struct conn_hole *p;
	size_t n;

	if (g == NULL || g->seq != seq) {
		if ((g = calloc(1, sizeof(*g))) == NULL)
			return -1;
		g->seq = seq;
		if (TAILQ_EMPTY(&c->segs))
			TAILQ_INSERT_TAIL(&waiting, c, wait_link);
		TAILQ_INSERT_TAIL(&c->segs, g, link);
	}
	if (g->n == g->cap) {
		n = g->cap ? g->cap * 2 : 16;
		if ((p = realloc(g->holes, n * sizeof(*p))) == NULL)
			return -1;
		g->holes = p;
		g->cap = n;
	}
	g->holes[g->n].r = *r;
	g->holes[g->n++].off = g->after.len;
	return 0;
}

/* The store wrote batch seq: what waited on it goes out. */
void
conn_release(uint64_t seq,
             void (*fill)(struct pbuf *, const struct conn_reply *))
{
	struct conn *c, *next;
	struct conn_seg *g;
	size_t i;

	for (c = TAILQ_FIRST(&waiting); c != NULL; c = next) {
		next = TAILQ_NEXT(c, wait_link);
		while ((g = TAILQ_FIRST(&c->segs)) != NULL && g->seq <= seq) {
			size_t at = 0;

			TAILQ_REMOVE(&c->segs, g, link);
			for (i = 0; i < g->n; i++) {
				pbuf_append(&c->out, g->after.data + at,
				            g->holes[i].off - at);
				at = g->holes[i].off;
				fill(&c->out, &g->holes[i].r);
			}
			pbuf_append(&c->out, g->after.data + at,
			            g->after.len - at);
			conn_seg_free(g);
		}
		if (TAILQ_EMPTY(&c->segs))
			TAILQ_REMOVE(&waiting, c, wait_link);
		conn_dirty(c);
	}
}

void *
conn_arg(const struct conn *c)
{
	return c->arg;
}

uid_t
conn_uid(const struct conn *c)
{
	return c->uid;
}

/*
 * Whether the peer was in group gid when it connected: its gid, or one of
 * its supplementary groups as the kernel recorded them (SO_PEERGROUPS).
 * The user database is not asked: the loop must not wait on NSS.
 */
bool
conn_in_group(const struct conn *c, gid_t gid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t small[64], *g = small;
	size_t i, n;
	bool in = false;

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	    cred.gid == gid)
		return true;
	len = sizeof(small);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
		if (errno != ERANGE || (g = malloc(len)) == NULL ||
		    getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
			if (g != small)
				free(g);
			return false;
		}
	}
	n = len / sizeof(*g);
	for (i = 0; i < n && !in; i++)
		in = g[i] == gid;
	if (g != small)
		free(g);
	return in;
}

struct watch_list *
conn_watches(struct conn *c)
{
	return &c->watches;
}

/* Queued output, with what waits for the store. */
static size_t
conn_unsent(const struct conn *c)
{
	const struct conn_seg *g;
	size_t n = c->out.len - c->out_off;

	TAILQ_FOREACH(g, &c->segs, link)
		n += g->after.len + g->n * sizeof(g->holes[0]);
	return n;
}

bool
conn_congested(const struct conn *c)
{
	return conn_unsent(c) > CONN_CONGESTED;
}

/*
 * The cap on queued output: what request reading does not bound (the
 * events of the jobs a peer watches) ends the connection once it has
 * reached the cap unread.
 */
static bool
conn_over_limit(const struct conn *c)
{
	if (conn_unsent(c) <= CONN_OUT_LIMIT)
		return false;
	log_warnx("uid %u pid %d: not reading its replies, closing",
	          (unsigned)c->uid, (int)c->pid);
	return true;
}

/*
 * True while the queued output, what waits for the store included, is
 * over the high-water mark: a job whose output this connection must get
 * in full stops producing it, a reader of a log stops reading.  The
 * drained hook is called once it is back to the low-water mark.
 */
bool
conn_backlogged(struct conn *c)
{
	if (conn_unsent(c) <= CONN_CONGESTED)
		return false;
	c->backlog = true;
	return true;
}

/* Past what even a held job may queue (it did not stop): drop it. */
bool
conn_overfull(const struct conn *c)
{
	return c->out.len - c->out_off > CONN_HOLD_MAX;
}

/* Each floor above that waits for backlogs registers one hook. */
void
conn_hook_drained(void (*fn)(struct conn *))
{
	size_t i;

	for (i = 0; i < CONN_DRAINED_HOOKS; i++)
		if (drained_hooks[i] == NULL || drained_hooks[i] == fn) {
			drained_hooks[i] = fn;
			return;
		}
	fatalx("conn_hook_drained: no room for another hook");
}

/* Stop reading the peer (it waits on a full socket), or start again. */
void
conn_hold_reads(struct conn *c, bool hold)
{
	if (hold == c->held || c->closing)
		return;
	c->held = hold;
	if (hold)
		event_del(c->rev);
	else if (!c->paused && c->again == 0)
		event_add(c->rev, NULL);
}

void
conn_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	TAILQ_INSERT_TAIL(&dirty, c, dirty_link);
	if (c != reading)
		event_active(flush_ev, 0, 1);
}

/* Tell the room above that a backlog has drained. */
static void
conn_drained(struct conn *c)
{
	size_t i;

	if (c->backlog && c->out.len - c->out_off <= CONN_DRAINED) {
		c->backlog = false;
		for (i = 0; i < CONN_DRAINED_HOOKS && drained_hooks[i]; i++)
			drained_hooks[i](c);
	}
}

int
conn_pass_fd(struct conn *c, int fd)
{
	struct conn_fd *v;
	int dup;

	if (!TAILQ_EMPTY(&c->segs)) {
		errno = EINVAL; /* its output waits for the store: no place */
		return -1;
	}
	if ((v = realloc(c->fds, (c->nfds + 1) * sizeof(*v))) == NULL)
		return -1;
	c->fds = v;
	if ((dup = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -1;
	v[c->nfds].at = c->out.len;
	v[c->nfds].fd = dup;
	c->nfds++;
	return 0;
}

/*
 * Write output from c->out_off up to the next descriptor to pass, or
 * with that descriptor when it goes with the first byte.
 */
static ssize_t
conn_write(struct conn *c)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *cm;
	size_t end = c->out.len;
	ssize_t n;

	if (c->nfds == 0)
		return write(c->fd, c->out.data + c->out_off,
		             c->out.len - c->out_off);
	if (c->nfds > 1)
		end = c->fds[1].at;
	if (c->fds[0].at > c->out_off)
		return write(c->fd, c->out.data + c->out_off,
		             c->fds[0].at - c->out_off);
	memset(&mh, 0, sizeof(mh));
	memset(cbuf, 0, sizeof(cbuf));
	iov.iov_base = c->out.data + c->out_off;
	iov.iov_len = end - c->out_off;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->fds[0].fd, sizeof(int));
	n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
	if (n > 0) {
		close(c->fds[0].fd);
		memmove(c->fds, c->fds + 1, --c->nfds * sizeof(*c->fds));
	}
	return n;
}

/* Write what is queued; returns -1 when the connection is gone. */
static int
conn_flush(struct conn *c)
{
	ssize_t n;
	size_t i;

	while (c->out_off < c->out.len) {
		n = conn_write(c);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return -1;
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out.len) {
		for (i = 0; i < c->nfds; i++) /* to go with bytes not queued */
			c->fds[i].at -= c->out_off;
		c->out.len = c->out_off = 0;
		if (c->closing)
			return -1;
		conn_drained(c);
		return 0;
	}
	if (conn_over_limit(c))
		return -1;
	/* Compact once the written part dominates. */
	if (c->out_off > c->out.len / 2) {
		pbuf_consume(&c->out, c->out_off);
		for (i = 0; i < c->nfds; i++)
			c->fds[i].at -= c->out_off;
		c->out_off = 0;
	}
	c->writing = true;
	event_add(c->wev, NULL);
	conn_drained(c);
	return 0;
}

static void conn_resume(struct conn *);
static void conn_go_on(struct conn *);

/* After a write: close, or take requests again once the output drained. */
static void
conn_flushed(struct conn *c, int r)
{
	if (r < 0)
		conn_close(c);
	else if (c->paused && conn_unsent(c) <= CONN_RESUME)
		conn_resume(c);
}

static void
conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&dirty)) != NULL) {
		TAILQ_REMOVE(&dirty, c, dirty_link);
		c->dirty = false;
		if (!c->writing)
			conn_flushed(c, conn_flush(c));
		else if (conn_over_limit(c)) /* else the write event does it */
			conn_close(c);
	}
}

/*
 * Before exiting: give every connection's queued output up to ms in all
 * to drain, so final events reach clients that are still reading.
 */
void
conn_flush_final(int ms)
{
	struct conn *c, *next;
	uint64_t t0 = loop_mono_us();
	long left;

	for (c = TAILQ_FIRST(&conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		while (c->out_off < c->out.len) {
			struct pollfd p = {.fd = c->fd, .events = POLLOUT};

			left = ms - (long)((loop_mono_us() - t0) / 1000);
			if (left <= 0 || poll(&p, 1, (int)left) <= 0)
				return;
			c->closing = false;
			if (conn_flush(c) < 0)
				break;
		}
	}
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	c->writing = false;
	conn_flushed(c, conn_flush(c));
}

/* A fault in the framing itself: say why, then hang up. */
static void
conn_reject(struct conn *c, uint64_t id, enum proto_error code, const char *why)
{
	log_debug("uid %u pid %d: %s", (unsigned)c->uid, (int)c->pid, why);
	proto_enc_error(&c->out, id, code, why);
	c->closing = true;
	event_del(c->rev);
	conn_dirty(c);
}

/* Its output piles up: read no more of its requests for now. */
static void
conn_pause(struct conn *c)
{
	c->paused = true;
	event_del(c->rev);
}

/*
 * Dispatch the complete frames read so far, until a client's unsent
 * output passes CONN_PAUSE: the frames left wait in c->in, and the
 * socket is not read, so a peer that sends faster than it reads blocks
 * in its own write.
 */
static void
conn_process(struct conn *c)
{
	struct proto_msg msg;
	struct proto_fault f;
	const char *payload;
	size_t plen, off = 0;
	ssize_t used;
	bool large = false;

	reading = c;
	while (!c->closing && c->again == 0) {
		if (c->handler->paced && conn_unsent(c) > CONN_PAUSE) {
			conn_pause(c);
			break;
		}
		used = proto_frame_next(c->in.data + off, c->in.len - off,
		                        &payload, &plen);
		if (used == 0)
			break;
		if (used < 0) {
			conn_reject(c, 0, PE_FRAME_TOO_LARGE,
			            "frame larger than 1 MiB");
			break;
		}
		off += (size_t)used;
		large |= plen >= CONN_TRIM_AT;
		switch (proto_decode(payload, plen, &c->zone, &msg, &f)) {
		case PROTO_DECODE_OK:
			c->handler->dispatch(c, &msg);
			c->retried = false;
			if (c->again != 0) /* its frame stays, for later */
				off -= (size_t)used;
			break;
		case PROTO_DECODE_REJECT:
			proto_enc_error(conn_out(c), msg.id, f.code, f.message);
			conn_dirty(c);
			break;
		case PROTO_DECODE_BAD:
			conn_reject(c, 0, f.code, f.message);
			break;
		}
	}
	pbuf_consume(&c->in, off);
	if (large && !c->closing) {
		/*
		 * A large frame (a gather) leaves megabytes of decoded objects
		 * and parsed jobs freed among the job records: hand those
		 * pages back, or a daemon full of sleeping jobs keeps them.
		 */
		msgpack_zone_clear(&c->zone);
		if (c->in.len == 0)
			pbuf_free(&c->in);
		malloc_trim(0);
	}
	reading = NULL;
}

/*
 * The requests read already go first, then the socket is read again.
 * Their replies go out with the next flush (conn_dirty left the flush
 * event alone while processing).
 */
static void
conn_go_on(struct conn *c)
{
	if (!c->closing && !c->held && !c->paused && c->again == 0)
		event_add(c->rev, NULL);
	conn_process(c);
	if (conn_batch_hook != NULL)
		conn_batch_hook();
	if (c->dirty)
		event_active(flush_ev, 0, 1);
}

/* Its output has drained. */
static void
conn_resume(struct conn *c)
{
	c->paused = false;
	conn_go_on(c);
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t n;

	loop_worked = true;

	pbuf_reserve(&c->in, CONN_READ_CHUNK);
	n = read(fd, c->in.data + c->in.len, c->in.cap - c->in.len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	c->in.len += (size_t)n;
	conn_process(c);
	/*
	 * This batch's replies go out now, a round trip saves a pass; but
	 * first the jobs go to the workers, and a worker process's run
	 * frame is written before the replies, so the jobs start while the
	 * replies are being written.  (conn_dirty left the flush event alone
	 * for this connection.)  The workers' frames go now also when the
	 * replies wait for the store: the commit comes after them.
	 */
	if (conn_batch_hook != NULL)
		conn_batch_hook();
	if (c->dirty) {
		TAILQ_REMOVE(&dirty, c, dirty_link);
		TAILQ_INSERT_TAIL(&dirty, c, dirty_link);
	}
	if (!TAILQ_EMPTY(&dirty))
		conn_flush_cb(-1, 0, NULL);
}

/*
 * A request that must wait for the store (a read that must agree with
 * the job table, SQLite behind it): its frame stays unread and the
 * connection is not read, the requests after it waiting behind it, until
 * the store has batch seq; then it is dispatched again, with
 * conn_retried true.  Everyone else is served meanwhile.  Only from the
 * dispatch of c's request, before it has done anything.
 */
void
conn_again(struct conn *c, uint64_t seq)
{
	c->again = seq;
	event_del(c->rev);
	TAILQ_INSERT_TAIL(&agains, c, again_link);
}

bool
conn_retried(const struct conn *c)
{
	return c->retried;
}

/*
 * The store has every batch up to seq (UINT64_MAX: it will have no more
 * for now, it failed): the requests that waited for them are dispatched
 * again, from the loop (the store may tell of it in the middle of
 * another request's dispatch).
 */
void
conn_again_release(uint64_t seq)
{
	struct conn *c;
	bool any = false;

	TAILQ_FOREACH(c, &agains, again_link)
		if (c->again <= seq)
			any = c->again_ready = true;
	if (any)
		event_active(again_ev, 0, 1);
}

static void
conn_again_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c;

	/* from the head each time: a dispatch may close other connections */
	for (;;) {
		TAILQ_FOREACH(c, &agains, again_link)
			if (c->again_ready)
				break;
		if (c == NULL)
			break;
		TAILQ_REMOVE(&agains, c, again_link);
		c->again = 0;
		c->again_ready = false;
		c->retried = true;
		if (!c->paused) /* else once its output has drained */
			conn_go_on(c);
	}
}

void
conn_hook_batch(void (*fn)(void))
{
	conn_batch_hook = fn;
}

/* The request handlers use this to end a connection after a reply. */
void
conn_hangup(struct conn *c)
{
	c->closing = true;
	event_del(c->rev);
	conn_dirty(c);
}
