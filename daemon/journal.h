#ifndef JOURNAL_H
#define JOURNAL_H

#include <sys/uio.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The job store's journal: records appended to DIR/jobs.journal, each
 * framed and checksummed, so that what a reply told of is kept once its
 * record is in the file, before SQLite has it.  See journal.c.
 */
struct journal;

/* A record's payload, and the seq it was appended with; 0 or -1 (stop). */
typedef int (*journal_fn)(uint64_t seq, const void *p, size_t len, void *arg);

int journal_replay(const char *dir, journal_fn, void *arg, char *cause,
                   size_t len);
int journal_remove(const char *dir, char *cause, size_t len);
struct journal *journal_open(const char *dir, bool sync, char *cause,
                             size_t len);
int journal_append(struct journal *, uint64_t seq, const struct iovec *, int n);
void journal_written(struct journal *, uint64_t seq);
uint64_t journal_last(const struct journal *);
void journal_close(struct journal *, bool written);

#endif
