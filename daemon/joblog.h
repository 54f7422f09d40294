/*
 * joblog.h -- joblog.c: every job's output, kept.
 *
 * Each job's stdout and stderr go, in the order written, into files of
 * the state directory's logs/ (or into memory with --state-dir none), up
 * to a cap per job: past it the head and the tail are kept and the gap
 * between them is remembered.  A total cap removes the logs of the
 * oldest finished jobs first.  Readers walk a log with a cursor, at
 * their own pace; a hook tells the floor above when a log grew or
 * ended.  Loop thread only.
 */
#ifndef JOBLOG_H
#define JOBLOG_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults of --log-limit and --log-total-limit, and the least limit. */
#define JOBLOG_LIMIT       (64ULL * 1024 * 1024)
#define JOBLOG_TOTAL_LIMIT (1024ULL * 1024 * 1024)
#define JOBLOG_LIMIT_MIN   4096

/* Streams, as job_output numbers them; masks are 1 << (stream - 1). */
#define JOBLOG_STDOUT 1
#define JOBLOG_STDERR 2
#define JOBLOG_BOTH   3 /* a mask: both streams */

/*
 * dir: the logs directory (made 0700 if missing), whose logs of earlier
 * runs are taken over; NULL keeps logs in memory.  -1 with err.
 */
int joblog_init(const char *dir, uint64_t job_limit, uint64_t total_limit,
                char *err, size_t len);
/* Write what is pending and free everything (at exit). */
void joblog_shutdown(void);
void joblog_write(uint64_t id, uid_t owner, int stream, const void *, size_t);
/*
 * The job reached its final state: nothing more will be written.  The
 * changed hook is called, with or without a log.
 */
void joblog_end(uint64_t id);
/* The job is gone for good (retention): its log goes too. */
void joblog_forget(uint64_t id);
/* Is there a log of job id, and whose is it? */
bool joblog_owner(uint64_t id, uid_t *owner);
/* Bytes the logs take in all, for tests and statistics. */
uint64_t joblog_total(void);
/*
 * Called after the log of job id grew, ended or went: the floor above
 * wakes its readers (one hook).
 */
void joblog_hook_changed(void (*)(uint64_t id));

/* A reader's place in a log. */
struct joblog_cursor {
	uint64_t id;
	unsigned streams; /* mask: JOBLOG_BOTH, or one stream's bit */
	uint32_t seg;     /* the segment: 0 the head, 1... the tail's */
	bool in_rec;      /* off is in a record's data, else at a header */
	uint8_t rec_type;
	uint64_t off;      /* in the segment */
	uint64_t rec_left; /* data bytes left in the record */
	uint64_t pos[2];   /* bytes of each stream written before here */
	uint64_t skip;     /* selected bytes still to pass over (offset) */
	uint64_t left;     /* selected bytes still to read; UINT64_MAX: all */
	uint64_t skipped;  /* bytes not kept, reported with the next read */
	uint64_t lost;     /* selected bytes a failed write lost, reported */
};

/*
 * Place c at selected byte offset (counting bytes not kept too), or,
 * when tail is not UINT64_MAX, at the start of the last tail lines (0:
 * at the end), offset unused; length bounds what it reads.  -1 if job id
 * has no log.
 */
int joblog_open(struct joblog_cursor *c, uint64_t id, unsigned streams,
                uint64_t offset, uint64_t length, uint64_t tail);
/*
 * Read the next bytes of one stream into buf: returns how many (0: none
 * for now), their stream, and the bytes before them that were not kept
 * (*skipped, 0 mostly).  At the end, 0 with *skipped set reports bytes
 * not kept that nothing follows yet (past the cap, or lost to a full
 * disk).
 */
size_t joblog_read(struct joblog_cursor *c, void *buf, size_t cap, int *stream,
                   uint64_t *skipped);
/* Will c never read more: the log ended and c is at its end, or gone? */
bool joblog_done(const struct joblog_cursor *c);

#endif
