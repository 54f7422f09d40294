/*
 * joblog.c -- kept output: each job's stdout and stderr in segments of
 * records, in files of the logs directory or in memory.
 *
 * A job's log is made when its first output comes (a job without output
 * costs nothing).  Segment 0, the head, takes the first half of the
 * job's cap; then tail segments 1, 2, ... of a quarter each, of which
 * only the last two are kept: a job that writes past its cap keeps its
 * head and its last quarter to half, and the gap between them is known
 * from the origin record each tail segment starts with.  Files are
 * named ID.SEGMENT, mode 0600.
 *
 * A record is an 8-byte header, its data and the header again as a
 * trailer, so a log can be walked both ways (tail).  Types: stdout,
 * stderr, the owner (first in the head) and the origin (first in a tail
 * segment: each stream's bytes before it and the head's end).  Output
 * is gathered in a record per stream run and written once per loop pass
 * (or every JOBLOG_PEND bytes); a reader writes what is pending first.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>

#include "joblog.h"
#include "log.h"
#include "loop.h"
#include "proto.h"

#define REC_HDR     8
#define REC_OVER    (2 * REC_HDR) /* header and trailer */
#define REC_OWNER   3
#define REC_ORIGIN  4
#define OWNER_LEN   8
#define ORIGIN_LEN  32
#define JOBLOG_PEND (64 * 1024) /* pending bytes that are written at once */
#define JOBLOG_NSEG 3           /* in memory: the head, two tail segments */

static const char rec_magic[3] = {'C', 'J', 'L'};

struct jlog {
	uint64_t id;
	struct jlog *hnext;
	TAILQ_ENTRY(jlog) link;  /* live, or done (oldest ended first) */
	TAILQ_ENTRY(jlog) dlink; /* dirty: pending bytes to write */
	uid_t owner;
	bool ended;
	bool dirty;
	bool known;  /* the fields below were read back (a log of a past run) */
	bool broken; /* a write failed: it takes no more */
	int fd;      /* files: segment seg, while it is written */
	uint32_t seg;          /* the last segment */
	uint32_t first;        /* the oldest tail segment kept, when seg > 0 */
	uint64_t used;         /* bytes of segment seg, pending ones too */
	uint64_t prev_used;    /* bytes of tail segment seg - 1 */
	uint64_t disk;         /* bytes of all its segments */
	uint64_t written[2];   /* bytes of each stream, ever */
	uint64_t pend_data[2]; /* bytes of each stream in pend */
	uint64_t lost[2];      /* bytes of each stream a write failed to keep */
	uint64_t head_end[2];
	struct pbuf pend;
	size_t open; /* pend offset of the open record; SIZE_MAX: none */
	uint8_t open_type;
	struct pbuf *mem; /* in memory: JOBLOG_NSEG segments */
};
TAILQ_HEAD(jlog_list, jlog);

static struct {
	int dfd; /* the logs directory; -1: in memory */
	uint64_t job_limit, total_limit;
	uint64_t total;
	struct jlog **bucket;
	size_t nbucket, count;
	struct jlog_list live, done, dirty;
	struct event *flush_ev;
	void (*changed)(uint64_t);
} jl = {.dfd = -1};

static void joblog_flush_one(struct jlog *);
static void joblog_trim(void);

static size_t
jl_slot(uint64_t id)
{
	return (size_t)id & (jl.nbucket - 1);
}

static struct jlog *
jl_find(uint64_t id)
{
	struct jlog *l;

	if (jl.bucket == NULL)
		return NULL;
	for (l = jl.bucket[jl_slot(id)]; l != NULL; l = l->hnext)
		if (l->id == id)
			return l;
	return NULL;
}

static void
jl_grow(void)
{
	size_t n = jl.nbucket * 2, i, s;
	struct jlog **b = calloc(n, sizeof(*b)), *l, *next;

	if (b == NULL)
		return;
	for (i = 0; i < jl.nbucket; i++)
		for (l = jl.bucket[i]; l != NULL; l = next) {
			next = l->hnext;
			s = (size_t)l->id & (n - 1);
			l->hnext = b[s];
			b[s] = l;
		}
	free(jl.bucket);
	jl.bucket = b;
	jl.nbucket = n;
}

static struct jlog *
jl_new(uint64_t id)
{
	struct jlog *l;
	size_t s;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	if (jl.dfd < 0 &&
	    (l->mem = calloc(JOBLOG_NSEG, sizeof(*l->mem))) == NULL) {
		free(l);
		return NULL;
	}
	l->id = id;
	l->fd = -1;
	l->open = SIZE_MAX;
	if (jl.count >= 2 * jl.nbucket)
		jl_grow();
	s = jl_slot(id);
	l->hnext = jl.bucket[s];
	jl.bucket[s] = l;
	jl.count++;
	return l;
}

static void
seg_name(char *buf, size_t len, uint64_t id, uint32_t seg)
{
	snprintf(buf, len, "%" PRIu64 ".%" PRIu32, id, seg);
}

/* In memory: the buffer of segment seg, NULL if it is not kept. */
static struct pbuf *
seg_mem(struct jlog *l, uint32_t seg)
{
	if (seg > l->seg || (seg > 0 && seg < l->first))
		return NULL;
	return &l->mem[seg == 0 ? 0 : 1 + (seg & 1)];
}

static void
seg_remove(struct jlog *l, uint32_t seg)
{
	char name[48];
	struct pbuf *m;

	if (jl.dfd >= 0) {
		seg_name(name, sizeof(name), l->id, seg);
		if (unlinkat(jl.dfd, name, 0) < 0 && errno != ENOENT)
			log_warn("logs: %s", name);
	} else if ((m = seg_mem(l, seg)) != NULL)
		m->len = 0;
}

/* Out of the table, its segments removed, freed. */
static void
jl_free(struct jlog *l, bool remove)
{
	struct jlog **p;
	uint32_t s;

	for (p = &jl.bucket[jl_slot(l->id)]; *p != l; p = &(*p)->hnext)
		;
	*p = l->hnext;
	jl.count--;
	if (l->dirty)
		TAILQ_REMOVE(&jl.dirty, l, dlink);
	TAILQ_REMOVE(l->ended ? &jl.done : &jl.live, l, link);
	if (l->fd >= 0)
		close(l->fd);
	if (remove) {
		for (s = l->seg; s >= 1 && s >= l->first; s--)
			seg_remove(l, s);
		seg_remove(l, 0);
	}
	jl.total -= l->disk;
	if (l->mem != NULL) {
		for (s = 0; s < JOBLOG_NSEG; s++)
			pbuf_free(&l->mem[s]);
		free(l->mem);
	}
	pbuf_free(&l->pend);
	free(l);
}

/* ---- reading segments ---- */

/* Bytes of segment seg at off; 0 at its end, -1 if it is not kept. */
static ssize_t
seg_pread(struct jlog *l, uint32_t seg, void *buf, size_t len, uint64_t off)
{
	char name[48];
	struct pbuf *m;
	ssize_t n;
	int fd;

	if (seg > l->seg || (seg > 0 && seg < l->first))
		return -1;
	if (l->mem != NULL) {
		if ((m = seg_mem(l, seg)) == NULL)
			return -1;
		if (off >= m->len)
			return 0;
		n = (ssize_t)(m->len - off < len ? m->len - off : len);
		memcpy(buf, m->data + off, (size_t)n);
		return n;
	}
	seg_name(name, sizeof(name), l->id, seg);
	if ((fd = openat(jl.dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return errno == ENOENT ? -1 : 0;
	do
		n = pread(fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	close(fd);
	return n < 0 ? 0 : n;
}

static uint64_t
seg_size(struct jlog *l, uint32_t seg)
{
	char name[48];
	struct stat st;
	struct pbuf *m;

	if (l->mem != NULL)
		return (m = seg_mem(l, seg)) != NULL ? m->len : 0;
	seg_name(name, sizeof(name), l->id, seg);
	return fstatat(jl.dfd, name, &st, 0) == 0 ? (uint64_t)st.st_size : 0;
}

/* A record header (or trailer) at p: its data length and type. */
static bool
rec_parse(const char *p, uint32_t *len, uint8_t *type)
{
	if (memcmp(p + 5, rec_magic, sizeof(rec_magic)) != 0)
		return false;
	memcpy(len, p, 4);
	*type = (uint8_t)p[4];
	switch (*type) {
	case JOBLOG_STDOUT:
	case JOBLOG_STDERR:
		return true;
	case REC_OWNER:
		return *len == OWNER_LEN;
	case REC_ORIGIN:
		return *len == ORIGIN_LEN;
	}
	return false;
}

static void
rec_header(char *p, uint32_t len, uint8_t type)
{
	memcpy(p, &len, 4);
	p[4] = (char)type;
	memcpy(p + 5, rec_magic, sizeof(rec_magic));
}

/*
 * A log of an earlier run: what its last segment holds (the bytes of
 * each stream, from its origin and records), its owner.
 */
static void
jl_load(struct jlog *l)
{
	char buf[64 * 1024], name[48];
	uint64_t off = 0, size, v[4];
	uint32_t len;
	uint8_t type;
	ssize_t n;
	bool head = l->seg == 0;
	int fd;

	if (l->known)
		return;
	l->known = true;
	memset(l->written, 0, sizeof(l->written));
	if (seg_pread(l, 0, buf, REC_OVER + OWNER_LEN, 0) ==
	        REC_OVER + OWNER_LEN &&
	    rec_parse(buf, &len, &type) && type == REC_OWNER) {
		memcpy(&v[0], buf + REC_HDR, 8);
		l->owner = (uid_t)v[0];
	}
	/* walk the last segment, header to header */
	size = seg_size(l, l->seg);
	for (;;) {
		n = seg_pread(l, l->seg, buf, REC_HDR + ORIGIN_LEN, off);
		if (n < REC_HDR || !rec_parse(buf, &len, &type) ||
		    off + REC_OVER + len > size)
			break;
		if (type == REC_ORIGIN) {
			if (n < REC_HDR + ORIGIN_LEN)
				break;
			memcpy(v, buf + REC_HDR, sizeof(v));
			l->written[0] = v[0];
			l->written[1] = v[1];
			l->head_end[0] = v[2];
			l->head_end[1] = v[3];
		} else if (type <= JOBLOG_STDERR)
			l->written[type - 1] += len;
		off += REC_OVER + (uint64_t)len;
	}
	if (head)
		memcpy(l->head_end, l->written, sizeof(l->head_end));
	if (off < size && jl.dfd >= 0) {
		/* a record cut short (a crash of the machine): it goes */
		seg_name(name, sizeof(name), l->id, l->seg);
		if ((fd = openat(jl.dfd, name,
		                 O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
			if (ftruncate(fd, (off_t)off) == 0) {
				l->disk -= size - off;
				jl.total -= size - off;
			}
			close(fd);
		}
	}
	l->used = seg_size(l, l->seg);
	l->prev_used =
	    l->seg >= 2 && l->first < l->seg ? seg_size(l, l->seg - 1) : 0;
}

/* ---- writing ---- */

static void
joblog_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct jlog *l;
	uint64_t id;

	while ((l = TAILQ_FIRST(&jl.dirty)) != NULL) {
		id = l->id;
		joblog_flush_one(l);
		if (jl.changed != NULL)
			jl.changed(id);
	}
	joblog_trim();
}

/* Close the open record: its length in the header, then the trailer. */
static void
rec_close(struct jlog *l)
{
	uint32_t len;

	if (l->open == SIZE_MAX)
		return;
	len = (uint32_t)(l->pend.len - l->open - REC_HDR);
	rec_header(l->pend.data + l->open, len, l->open_type);
	pbuf_reserve(&l->pend, REC_HDR);
	rec_header(l->pend.data + l->pend.len, len, l->open_type);
	l->pend.len += REC_HDR;
	l->open = SIZE_MAX;
}

/* A whole record into the pending bytes. */
static void
rec_put(struct jlog *l, uint8_t type, const void *data, uint32_t len)
{
	char h[REC_HDR];

	rec_close(l);
	rec_header(h, len, type);
	pbuf_append(&l->pend, h, REC_HDR);
	pbuf_append(&l->pend, data, len);
	pbuf_append(&l->pend, h, REC_HDR);
	l->used += REC_OVER + len;
}

/* Write what is pending to the last segment. */
static void
joblog_flush_one(struct jlog *l)
{
	char name[48];
	size_t off = 0;
	off_t start = 0;
	ssize_t n;

	if (l->dirty) {
		TAILQ_REMOVE(&jl.dirty, l, dlink);
		l->dirty = false;
	}
	rec_close(l);
	if (l->pend.len == 0)
		return;
	if (l->mem != NULL) {
		pbuf_append(seg_mem(l, l->seg), l->pend.data, l->pend.len);
		off = l->pend.len;
	} else if (l->fd < 0 && !l->broken) {
		seg_name(name, sizeof(name), l->id, l->seg);
		l->fd = openat(jl.dfd, name,
		               O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
		                   O_NOFOLLOW,
		               0600);
		if (l->fd < 0) {
			log_warn("logs: %s", name);
			l->broken = true;
		}
	}
	if (l->fd >= 0)
		start = lseek(l->fd, 0, SEEK_END);
	while (l->fd >= 0 && off < l->pend.len) {
		n = write(l->fd, l->pend.data + off, l->pend.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* a full disk: whole records only, the rest counted */
			log_warn("logs: job %" PRIu64 ": output not kept",
			         l->id);
			if (start < 0 || ftruncate(l->fd, start) < 0)
				start =
				    -1; /* a record cut short: readers stop */
			l->broken = true;
			close(l->fd);
			l->fd = -1;
			off = start < 0 ? off : 0;
			break;
		}
		off += (size_t)n;
	}
	if (off < l->pend.len) {
		l->lost[0] += l->pend_data[0];
		l->lost[1] += l->pend_data[1];
	}
	l->pend_data[0] = l->pend_data[1] = 0;
	l->disk += off;
	jl.total += off;
	l->pend.len = 0;
	if (l->pend.cap > 4 * JOBLOG_PEND)
		pbuf_free(&l->pend);
}

/*
 * The last segment is full: the next one starts.  From the third tail
 * segment on, the oldest tail segment goes; the new one begins with its
 * origin.
 */
static void
jl_rotate(struct jlog *l)
{
	uint64_t origin[4];
	uint32_t next = l->seg + 1;

	joblog_flush_one(l);
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	if (l->seg == 0)
		memcpy(l->head_end, l->written, sizeof(l->head_end));
	if (next >= 3) {
		seg_remove(l, next - 2);
		l->disk -= l->prev_used;
		jl.total -= l->prev_used;
		l->first = next - 1;
	} else
		l->first = 1;
	l->prev_used = l->seg >= 1 ? l->used : 0;
	l->seg = next;
	l->used = 0;
	origin[0] = l->written[0];
	origin[1] = l->written[1];
	origin[2] = l->head_end[0];
	origin[3] = l->head_end[1];
	rec_put(l, REC_ORIGIN, origin, sizeof(origin));
}

static void
jl_dirty(struct jlog *l)
{
	if (l->dirty)
		return;
	l->dirty = true;
	TAILQ_INSERT_TAIL(&jl.dirty, l, dlink);
	if (jl.flush_ev != NULL)
		event_active(jl.flush_ev, 0, 1);
}

void
joblog_write(uint64_t id, uid_t owner, int stream, const void *data, size_t len)
{
	uint64_t cap, room, owner64 = owner;
	const char *p = data;
	struct jlog *l;
	size_t take;
	uint8_t type = stream == JOBLOG_STDERR ? JOBLOG_STDERR : JOBLOG_STDOUT;

	if (len == 0 || jl.bucket == NULL)
		return;
	if ((l = jl_find(id)) == NULL) {
		if ((l = jl_new(id)) == NULL)
			return;
		l->known = true;
		l->owner = owner;
		TAILQ_INSERT_TAIL(&jl.live, l, link);
		rec_put(l, REC_OWNER, &owner64, sizeof(owner64));
	} else if (l->ended) {
		/* a job of an earlier run that goes on (it was re-queued) */
		jl_load(l);
		TAILQ_REMOVE(&jl.done, l, link);
		TAILQ_INSERT_TAIL(&jl.live, l, link);
		l->ended = false;
	}
	if (l->broken) {
		l->lost[type - 1] += len;
		jl_dirty(l); /* its readers learn of it */
		return;
	}
	while (len > 0) {
		cap = l->seg == 0 ? jl.job_limit / 2 : jl.job_limit / 4;
		if (l->open != SIZE_MAX && l->open_type != type)
			rec_close(l);
		room = l->used + (l->open == SIZE_MAX ? REC_OVER : 0);
		if (room >= cap) {
			jl_rotate(l);
			continue;
		}
		room = cap - room;
		take = len < room ? len : (size_t)room;
		if (take > UINT32_MAX / 2)
			take = UINT32_MAX / 2;
		if (l->open == SIZE_MAX) {
			l->open = l->pend.len;
			l->open_type = type;
			pbuf_reserve(&l->pend, REC_HDR);
			l->pend.len += REC_HDR;
			l->used += REC_OVER;
		}
		pbuf_append(&l->pend, p, take);
		l->pend_data[type - 1] += take;
		l->used += take;
		l->written[type - 1] += take;
		p += take;
		len -= take;
		if (l->pend.len >= JOBLOG_PEND)
			joblog_flush_one(
			    l); /* readers learn at the pass's end */
	}
	jl_dirty(l);
}

void
joblog_end(uint64_t id)
{
	struct jlog *l = jl_find(id);

	if (l == NULL || l->ended) {
		/* no output: its readers learn of the end all the same */
		if (l == NULL && jl.changed != NULL)
			jl.changed(id);
		return;
	}
	joblog_flush_one(l);
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	pbuf_free(&l->pend);
	TAILQ_REMOVE(&jl.live, l, link);
	TAILQ_INSERT_TAIL(&jl.done, l, link);
	l->ended = true;
	if (jl.changed != NULL)
		jl.changed(id);
	joblog_trim();
}

void
joblog_forget(uint64_t id)
{
	struct jlog *l = jl_find(id);

	if (l == NULL)
		return;
	jl_free(l, true);
	if (jl.changed != NULL)
		jl.changed(id);
}

/* Over the total cap: the logs of the jobs that ended first go first. */
static void
joblog_trim(void)
{
	struct jlog *l;
	uint64_t id;

	while (jl.total > jl.total_limit &&
	       (l = TAILQ_FIRST(&jl.done)) != NULL) {
		id = l->id;
		log_debug("logs: job %" PRIu64 ": removed, over the total cap",
		          id);
		jl_free(l, true);
		if (jl.changed != NULL)
			jl.changed(id);
	}
}

bool
joblog_owner(uint64_t id, uid_t *owner)
{
	struct jlog *l = jl_find(id);

	if (l == NULL)
		return false;
	jl_load(l);
	*owner = l->owner;
	return true;
}

uint64_t
joblog_total(void)
{
	return jl.total;
}

void
joblog_hook_changed(void (*fn)(uint64_t))
{
	jl.changed = fn;
}

/* ---- start and stop ---- */

static int
jl_cmp(const void *a, const void *b)
{
	uint64_t x = (*(struct jlog *const *)a)->id;
	uint64_t y = (*(struct jlog *const *)b)->id;

	return x < y ? -1 : x > y;
}

/* The logs of earlier runs: ended, oldest (lowest id) first. */
static void
joblog_scan(void)
{
	struct jlog *l, **all = NULL, **p;
	unsigned long long id;
	unsigned seg;
	struct dirent *d;
	struct stat st;
	size_t n = 0, cap = 0, i;
	int fd, k;
	DIR *dir;

	if ((fd = dup(jl.dfd)) < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((d = readdir(dir)) != NULL) {
		if (sscanf(d->d_name, "%llu.%u%n", &id, &seg, &k) != 2 ||
		    d->d_name[k] != '\0' ||
		    fstatat(jl.dfd, d->d_name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if ((l = jl_find(id)) == NULL) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				if ((p = realloc(all, cap * sizeof(*p))) ==
				    NULL)
					break;
				all = p;
			}
			if ((l = jl_new(id)) == NULL)
				break;
			l->ended = true;
			l->first = UINT32_MAX;
			all[n++] = l;
		}
		if (seg > l->seg)
			l->seg = seg;
		if (seg > 0 && seg < l->first)
			l->first = seg;
		l->disk += (uint64_t)st.st_size;
		jl.total += (uint64_t)st.st_size;
	}
	closedir(dir);
	if (n > 1)
		qsort(all, n, sizeof(*all), jl_cmp);
	for (i = 0; i < n; i++) {
		if (all[i]->seg == 0)
			all[i]->first = 0;
		TAILQ_INSERT_TAIL(&jl.done, all[i], link);
	}
	free(all);
}

int
joblog_init(const char *dir, uint64_t job_limit, uint64_t total_limit,
            char *err, size_t len)
{
	struct stat st;

	TAILQ_INIT(&jl.live);
	TAILQ_INIT(&jl.done);
	TAILQ_INIT(&jl.dirty);
	jl.job_limit =
	    job_limit < JOBLOG_LIMIT_MIN ? JOBLOG_LIMIT_MIN : job_limit;
	jl.total_limit = total_limit;
	jl.nbucket = 256;
	if ((jl.bucket = calloc(jl.nbucket, sizeof(*jl.bucket))) == NULL) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	if (loop_base != NULL)
		jl.flush_ev =
		    event_new(loop_base, -1, 0, joblog_flush_cb, NULL);
	if (dir == NULL)
		return 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	jl.dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (jl.dfd < 0 || fstat(jl.dfd, &st) < 0) {
		snprintf(err, len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, len, "%s: owned by uid %u, not by concd's", dir,
		         (unsigned)st.st_uid);
		return -1;
	}
	if ((st.st_mode & 077) != 0 && fchmod(jl.dfd, 0700) < 0) {
		snprintf(err, len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	joblog_scan();
	joblog_trim();
	return 0;
}

void
joblog_shutdown(void)
{
	struct jlog *l;
	size_t i;

	for (i = 0; i < jl.nbucket; i++)
		while ((l = jl.bucket[i]) != NULL) {
			joblog_flush_one(l);
			jl_free(l, false);
		}
	free(jl.bucket);
	if (jl.flush_ev != NULL)
		event_free(jl.flush_ev);
	if (jl.dfd >= 0)
		close(jl.dfd);
	memset(&jl, 0, sizeof(jl));
	jl.dfd = -1;
}

/* ---- cursors ---- */

/* The segment after seg that is still kept. */
static uint32_t
seg_next(const struct jlog *l, uint32_t seg)
{
	return seg + 1 < l->first ? l->first : seg + 1;
}

/*
 * Walk back from the end to the start of the last tail lines of the
 * selected streams (a last newline ends the last line), counting each
 * stream's bytes after that point.
 */
static bool
cursor_tail(struct joblog_cursor *c, struct jlog *l, uint64_t lines)
{
	static char buf[64 * 1024];
	uint64_t after[2] = {0, 0}, v[4], pos, start, dpos, n, found = 0;
	uint32_t seg = l->seg, len;
	uint8_t type;
	bool last = true; /* the last selected byte is still ahead */
	char h[REC_HDR], *nl;

	for (;;) {
		pos = seg_size(l, seg);
		while (pos >= REC_OVER) {
			if (seg_pread(l, seg, h, REC_HDR, pos - REC_HDR) !=
			        REC_HDR ||
			    !rec_parse(h, &len, &type) ||
			    pos < REC_OVER + (uint64_t)len)
				goto all;
			start = pos - REC_OVER - len;
			if (type == REC_ORIGIN && seg == l->first) {
				/* the gap before it is after the head's bytes
				 */
				if (seg_pread(l, seg, buf, REC_OVER + len,
				              start) != REC_OVER + len)
					goto all;
				memcpy(v, buf + REC_HDR, sizeof(v));
				after[0] += v[0] - v[2];
				after[1] += v[1] - v[3];
			}
			if (type > JOBLOG_STDERR || !(c->streams & type)) {
				if (type <= JOBLOG_STDERR)
					after[type - 1] += len;
				pos = start;
				continue;
			}
			dpos = start + REC_HDR + len; /* scan back from here */
			while (dpos > start + REC_HDR) {
				n = dpos - (start + REC_HDR);
				if (n > sizeof(buf))
					n = sizeof(buf);
				if (seg_pread(l, seg, buf, n, dpos - n) !=
				    (ssize_t)n)
					goto all;
				if (last && buf[n - 1] == '\n') {
					n--; /* the last line's own newline */
					after[type - 1]++;
					dpos--;
				}
				last = false;
				while (n > 0 &&
				       (nl = memrchr(buf, '\n', n)) != NULL) {
					size_t tail =
					    n - (size_t)(nl - buf) - 1;

					after[type - 1] += tail;
					dpos -= tail;
					n -= tail;
					if (++found == lines) {
						c->seg = seg;
						c->in_rec = true;
						c->rec_type = type;
						c->off = dpos;
						c->rec_left = start + REC_HDR +
						              len - dpos;
						goto placed;
					}
					n--;
					after[type - 1]++;
					dpos--;
				}
				after[type - 1] += n;
				dpos -= n;
			}
			pos = start;
		}
		if (seg == 0)
			break;
		seg = seg > l->first ? seg - 1 : 0;
	}
all:
	return false; /* fewer lines than that: from the start */
placed:
	c->pos[0] = l->written[0] - after[0];
	c->pos[1] = l->written[1] - after[1];
	return true;
}

int
joblog_open(struct joblog_cursor *c, uint64_t id, unsigned streams,
            uint64_t offset, uint64_t length, uint64_t tail)
{
	struct jlog *l = jl_find(id);

	memset(c, 0, sizeof(*c));
	c->id = id;
	c->streams = streams & JOBLOG_BOTH;
	c->left = length;
	if (l == NULL)
		return -1;
	joblog_flush_one(l);
	jl_load(l);
	if (tail == 0) {
		/* from the end: only what comes next */
		c->seg = l->seg;
		c->off = seg_size(l, l->seg);
		memcpy(c->pos, l->written, sizeof(c->pos));
	} else if (tail != UINT64_MAX)
		(void)cursor_tail(c, l, tail); /* fewer lines: from the start */
	else
		c->skip = offset;
	return 0;
}

bool
joblog_done(const struct joblog_cursor *c)
{
	struct jlog *l;

	if (c->left == 0 || (l = jl_find(c->id)) == NULL)
		return true;
	return l->ended && !l->dirty && c->seg >= l->seg &&
	       c->off >= seg_size(l, l->seg);
}

/* What a record at the cursor's place tells: origin's gap, or nothing. */
static void
cursor_origin(struct joblog_cursor *c, const char *data)
{
	uint64_t v[4];
	int s;

	memcpy(v, data, sizeof(v));
	for (s = 0; s < 2; s++) {
		if (v[s] <= c->pos[s])
			continue;
		if (c->streams & (1u << s)) {
			uint64_t gap = v[s] - c->pos[s];
			uint64_t k = gap < c->skip ? gap : c->skip;

			c->skip -= k;
			c->skipped += gap - k;
		}
		c->pos[s] = v[s];
	}
}

size_t
joblog_read(struct joblog_cursor *c, void *out, size_t cap, int *stream,
            uint64_t *skipped)
{
	struct jlog *l = jl_find(c->id);
	char *buf = out, *raw;
	size_t w = 0, p, got, n;
	uint64_t gap = 0;
	uint32_t len;
	uint8_t type, run = 0;
	ssize_t r;
	bool stop = false, end = false;

	*stream = 0;
	*skipped = 0;
	if (l == NULL || c->left == 0)
		return 0;
	if (l->dirty || l->open != SIZE_MAX)
		joblog_flush_one(l);
	while (!stop && w + REC_OVER + ORIGIN_LEN < cap) {
		raw = buf + w;
		r = seg_pread(l, c->seg, raw, cap - w, c->off);
		if (r < 0 || (r == 0 && c->seg < l->seg)) {
			/* gone under the cursor, or at its end: the next */
			if (c->seg >= l->seg) {
				end = true;
				break;
			}
			c->seg = seg_next(l, c->seg);
			c->off = 0;
			c->in_rec = false;
			continue;
		}
		if (r == 0) {
			end = true;
			break;
		}
		got = (size_t)r;
		p = 0;
		while (p < got && !stop) {
			if (!c->in_rec) {
				if (got - p < REC_HDR)
					break;
				if (!rec_parse(raw + p, &len, &type)) {
					/* not a record: the segment ends here
					 */
					c->off = UINT64_MAX / 2;
					break;
				}
				if (type > JOBLOG_STDERR) {
					if (got - p < REC_OVER + len)
						break;
					if (type == REC_ORIGIN)
						cursor_origin(c, raw + p +
						                     REC_HDR);
					p += REC_OVER + len;
					c->off += REC_OVER + len;
					/* a gap goes with the bytes after it */
					stop = w > 0 && c->skipped > 0;
					continue;
				}
				c->in_rec = true;
				c->rec_type = type;
				c->rec_left = len;
				p += REC_HDR;
				c->off += REC_HDR;
				continue;
			}
			if (c->rec_left == 0) {
				if (got - p < REC_HDR)
					break;
				p += REC_HDR;
				c->off += REC_HDR;
				c->in_rec = false;
				continue;
			}
			n = got - p < c->rec_left ? got - p : c->rec_left;
			type = c->rec_type;
			if (c->streams & type) {
				if (run != 0 && run != type) {
					stop = true;
					break;
				}
				if (c->skip > 0) {
					n = n < c->skip ? n : c->skip;
					c->skip -= n;
				} else {
					n = n < c->left ? n : c->left;
					if (w == 0) {
						gap = c->skipped;
						c->skipped = 0;
					}
					memmove(buf + w, raw + p, n);
					w += n;
					run = type;
					if (c->left != UINT64_MAX)
						c->left -= n;
				}
			}
			p += n;
			c->off += n;
			c->rec_left -= n;
			c->pos[type - 1] += n;
			if (c->left == 0)
				stop = true;
		}
		if (!stop && p == 0 && got < cap - w)
			break; /* a partial record at the end: for now */
	}
	*stream = run;
	*skipped = w > 0 ? gap : 0;
	if (w == 0 && end) {
		/* nothing after them: what was not kept is told now */
		uint64_t lost = ((c->streams & 1) ? l->lost[0] : 0) +
		                ((c->streams & 2) ? l->lost[1] : 0);

		c->skipped += lost - c->lost;
		c->lost = lost;
		*skipped = c->skipped;
		c->skipped = 0;
	}
	return w;
}
