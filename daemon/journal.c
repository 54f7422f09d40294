/*
 * journal.c -- the job store's journal, DIR/jobs.journal.
 *
 * A commit of SQLite in WAL mode costs 17 µs here, more than half of it
 * in the locks it takes and drops; one write(2) of a record costs 2 µs.
 * So a batch of rows is appended here, and a reply that waits for it
 * goes out at once; SQLite gets the batches later, many in one commit,
 * from the store's thread.  Once SQLite has every record of the file,
 * the file is emptied.  After a crash, the next concd writes what the
 * file holds into SQLite before anything else (journal_replay).
 *
 * A record is a header (struct jhead: a magic, the payload's length, a
 * CRC-32 of the seq and the payload) and the payload.  A record cut short
 * by a crash, or not whole on disk after a power loss, fails its length
 * or its checksum: it and what follows are dropped.  Its reply had not
 * gone out: it goes only after the whole record is written.
 *
 * Under a steady load SQLite may never have caught up with the file, so
 * it is never empty: past JOURNAL_ROTATE bytes, the file is renamed
 * DIR/jobs.journal.1 and a new one begun; the old one goes once SQLite
 * has its last record.  A replay reads the old one, then the new one.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "journal.h"
#include "log.h"

#define JOURNAL_MAGIC  0x4e524a43u /* "CJRN" */
#define JOURNAL_ROTATE (8u << 20)
#define JOURNAL_IOV    8 /* a record's iovecs, at most, with its header */

struct jhead {
	uint32_t magic;
	uint32_t len; /* of the payload */
	uint32_t crc; /* of seq and the payload */
	uint32_t pad; /* 0 */
	uint64_t seq;
};

struct journal {
	int fd;
	bool sync;
	char path[PATH_MAX], old[PATH_MAX];
	uint64_t size;     /* bytes in the file */
	uint64_t last;     /* the seq of the last record appended */
	uint64_t old_last; /* the old file's last record's; 0: no old file */
};

static void
journal_paths(const char *dir, char *path, char *old)
{
	snprintf(path, PATH_MAX, "%s/jobs.journal", dir);
	snprintf(old, PATH_MAX, "%s/jobs.journal.1", dir);
}

static uint32_t
journal_crc(uint64_t seq, const struct iovec *iov, int n)
{
	uLong crc = crc32(0L, Z_NULL, 0);
	int i;

	crc = crc32(crc, (const Bytef *)&seq, sizeof(seq));
	/* (crc32 of a NULL buffer is its first value again, not crc) */
	for (i = 0; i < n; i++)
		if (iov[i].iov_len > 0)
			crc = crc32_z(crc, iov[i].iov_base, iov[i].iov_len);
	return (uint32_t)crc;
}

static bool
all_zero(const unsigned char *p, size_t n)
{
	while (n > 0 && *p == 0)
		p++, n--;
	return n == 0;
}

/*
 * The records of one file, in order, to fn; -1 with cause on a file that
 * is not a journal or an error of fn's.  A torn end is dropped, with a
 * warning.
 */
static int
journal_replay_file(const char *path, journal_fn fn, void *arg, size_t *records,
                    char *cause, size_t len)
{
	const unsigned char *m;
	struct stat st;
	struct jhead h;
	size_t off = 0, size;
	int fd, rc = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(cause, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(cause, len, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if ((size = (size_t)st.st_size) == 0) {
		close(fd);
		return 0;
	}
	m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		snprintf(cause, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (size - off >= sizeof(h)) {
		struct iovec v;

		memcpy(&h, m + off, sizeof(h));
		if (h.magic != JOURNAL_MAGIC) {
			if (off == 0 && !all_zero(m, size)) {
				snprintf(
				    cause, len,
				    "%s: not a journal of concd's job store; "
				    "move it away to start without it",
				    path);
				rc = -1;
			}
			break;
		}
		if (h.len > size - off - sizeof(h))
			break;
		v.iov_base = (void *)(m + off + sizeof(h));
		v.iov_len = h.len;
		if (journal_crc(h.seq, &v, 1) != h.crc)
			break;
		if (fn(h.seq, v.iov_base, h.len, arg) < 0) {
			snprintf(cause, len,
			         "%s: a record at byte %zu cannot be "
			         "read back",
			         path, off);
			rc = -1;
			break;
		}
		(*records)++;
		off += sizeof(h) + h.len;
	}
	if (rc == 0 && off < size)
		log_warnx("%s: its last %zu bytes are not a whole record (a "
		          "write cut short by a crash, or damaged): dropped",
		          path, size - off);
	munmap((void *)m, size);
	return rc;
}

/*
 * Every record the journal files of dir hold, the old file's first, to
 * fn; how many, or -1 with cause.
 */
int
journal_replay(const char *dir, journal_fn fn, void *arg, char *cause,
               size_t len)
{
	char path[PATH_MAX], old[PATH_MAX];
	size_t records = 0;

	journal_paths(dir, path, old);
	if (journal_replay_file(old, fn, arg, &records, cause, len) < 0 ||
	    journal_replay_file(path, fn, arg, &records, cause, len) < 0)
		return -1;
	return records > INT_MAX ? INT_MAX : (int)records;
}

/* The files go: what they held is in SQLite.  -1 with cause. */
int
journal_remove(const char *dir, char *cause, size_t len)
{
	char path[PATH_MAX], old[PATH_MAX];

	journal_paths(dir, path, old);
	if ((unlink(old) < 0 && errno != ENOENT) ||
	    (unlink(path) < 0 && errno != ENOENT)) {
		snprintf(cause, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
journal_create(struct journal *j)
{
	j->fd = open(j->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	j->size = 0;
	return j->fd < 0 ? -1 : 0;
}

/* A new, empty journal in dir (journal_remove first); NULL with cause. */
struct journal *
journal_open(const char *dir, bool sync, char *cause, size_t len)
{
	struct journal *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		snprintf(cause, len, "journal: %s", strerror(errno));
		return NULL;
	}
	journal_paths(dir, j->path, j->old);
	j->sync = sync;
	if (journal_create(j) < 0) {
		snprintf(cause, len, "%s: %s", j->path, strerror(errno));
		free(j);
		return NULL;
	}
	return j;
}

/* Past JOURNAL_ROTATE bytes, and no old file: a new file. */
static void
journal_rotate(struct journal *j)
{
	int fd = j->fd;

	if (j->size < JOURNAL_ROTATE || j->old_last != 0)
		return;
	if (rename(j->path, j->old) < 0) {
		log_warn("%s", j->old);
		return;
	}
	if (journal_create(j) < 0) {
		/* appends go on to the old file, under its new name */
		log_warn("%s", j->path);
		j->fd = fd;
		return;
	}
	close(fd);
	j->old_last = j->last;
}

/*
 * A record of seq (increasing) whose payload is iov[0..n): 0 once it is
 * whole in the file (and on disk, with sync), or -1 with errno and no
 * part of it left in the file.
 */
int
journal_append(struct journal *j, uint64_t seq, const struct iovec *iov, int n)
{
	struct iovec v[JOURNAL_IOV];
	struct jhead h = {.magic = JOURNAL_MAGIC, .seq = seq};
	size_t total = sizeof(h), done = 0;
	ssize_t w;
	int i, k = 0, err;

	if (n >= JOURNAL_IOV) {
		errno = EINVAL;
		return -1;
	}
	journal_rotate(j);
	for (i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (total - sizeof(h) > UINT32_MAX) {
		errno = EFBIG;
		return -1;
	}
	h.len = (uint32_t)(total - sizeof(h));
	h.crc = journal_crc(seq, iov, n);
	v[0] = (struct iovec){&h, sizeof(h)};
	memcpy(v + 1, iov, (size_t)n * sizeof(*iov));
	n++;
	while (done < total) {
		if ((w = writev(j->fd, v + k, n - k)) < 0) {
			if (errno == EINTR)
				continue;
			goto cut;
		}
		if (w == 0) {
			errno = ENOSPC;
			goto cut;
		}
		done += (size_t)w;
		/* a short write: on from where it stopped */
		while (k < n && (size_t)w >= v[k].iov_len)
			w -= (ssize_t)v[k++].iov_len;
		if (k < n) {
			v[k].iov_base = (char *)v[k].iov_base + w;
			v[k].iov_len -= (size_t)w;
		}
	}
	if (j->sync && fdatasync(j->fd) < 0)
		goto cut;
	j->size += total;
	j->last = seq;
	return 0;
cut:
	err = errno;
	if (done > 0 && ftruncate(j->fd, (off_t)j->size) < 0)
		log_warn("%s", j->path);
	errno = err;
	return -1;
}

uint64_t
journal_last(const struct journal *j)
{
	return j != NULL ? j->last : 0;
}

/* SQLite has every record up to seq: the files that hold no other go. */
void
journal_written(struct journal *j, uint64_t seq)
{
	if (j == NULL)
		return;
	if (j->old_last != 0 && seq >= j->old_last) {
		if (unlink(j->old) < 0 && errno != ENOENT)
			log_warn("%s", j->old);
		j->old_last = 0;
	}
	if (seq >= j->last && j->size > 0 && j->old_last == 0) {
		if (ftruncate(j->fd, 0) < 0)
			log_warn("%s", j->path);
		else
			j->size = 0;
	}
}

/* written: SQLite has every record, and the files go. */
void
journal_close(struct journal *j, bool written)
{
	if (j == NULL)
		return;
	close(j->fd);
	if (written) {
		if (unlink(j->old) < 0 && errno != ENOENT)
			log_warn("%s", j->old);
		if (unlink(j->path) < 0 && errno != ENOENT)
			log_warn("%s", j->path);
	}
	free(j);
}
