/*
 * logread.h -- logread.c: readers of kept output.  The `log` request and
 * `watch` read a job's log at the pace their connection takes it; with
 * follow, they go on as the log grows, and end after its last byte.
 */
#ifndef LOGREAD_H
#define LOGREAD_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"

struct logread_opts {
	unsigned streams; /* JOBLOG_BOTH, or one stream's bit */
	uint64_t offset;
	uint64_t length; /* UINT64_MAX: no bound */
	uint64_t tail;   /* last lines; UINT64_MAX: all */
	bool follow;     /* until the job ends, then its end message */
	bool watch;      /* a watch: the end message, never ok */
	/* a job no longer in the table: its state, -1: unknown ... */
	int state;
	/* ... and the end message a watch sends after the output, or NULL */
	const struct pbuf *end;
};

/* Register the hooks of joblog.c and conn.c. */
void logread_init(void);
/*
 * Send job id's kept output to c on request req; the caller checked
 * that the peer may read it.  -1: out of memory.
 */
int logread_start(struct conn *c, uint64_t req, uint64_t id,
                  const struct logread_opts *);
/* A connection closes: its readers go. */
void logread_unwatch_conn(struct conn *c);

#endif
