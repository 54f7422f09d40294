/*
 * conn.h -- conn.c: connections, framed messages in and out, and the
 * watches each one holds (the watches themselves are job.c's).
 */
#ifndef CONN_H
#define CONN_H

#include <sys/queue.h>
#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"

struct conn;
struct watch;
/* The watches a connection holds, linked by their by_conn entries. */
LIST_HEAD(watch_list, watch);

/* What a connection does with its messages; clients get request.c's. */
struct conn_handler {
	void (*dispatch)(struct conn *, const struct proto_msg *);
	void (*closed)(struct conn *, void *arg); /* optional */
	/*
	 * A client: while its output is congested its requests are not
	 * read.  A worker process is always read, or it could block in a
	 * write while the daemon waits for it to read.
	 */
	bool paced;
};

struct conn *conn_new_with(int fd, const struct conn_handler *, void *arg);
void *conn_arg(const struct conn *);
void conn_close(struct conn *);
struct pbuf *conn_out(struct conn *);
/* A reply that is written once the store has written a batch. */
struct conn_reply {
	uint64_t req;
	uint64_t first; /* the first job's id */
	uint32_t n;     /* jobs, from first on */
	uint8_t kind;   /* the request's: its writer's to say */
	uint8_t state;
};
int conn_defer(struct conn *, uint64_t seq, const struct conn_reply *);
void conn_release(uint64_t seq,
                  void (*fill)(struct pbuf *, const struct conn_reply *));
/* Called after output was queued: the flush runs once per loop pass. */
void conn_dirty(struct conn *);
/* True while the peer is slow: progress may be skipped. */
bool conn_congested(const struct conn *);
/* Over the high-water mark: the drained hook follows once it drains. */
bool conn_backlogged(struct conn *);
bool conn_overfull(const struct conn *);
/* Add a hook called when a backlogged connection has drained. */
void conn_hook_drained(void (*)(struct conn *));
void conn_hold_reads(struct conn *, bool hold);
void conn_again(struct conn *, uint64_t seq);
bool conn_retried(const struct conn *);
void conn_again_release(uint64_t seq);
/*
 * Pass a duplicate of fd (SCM_RIGHTS) with the next byte queued: the
 * peer receives it no later than that byte.  Only for a connection whose
 * output does not wait for the store (a worker process's).  0, or -1.
 */
int conn_pass_fd(struct conn *, int fd);
void conn_flush_final(int ms);
struct watch_list *conn_watches(struct conn *);
uid_t conn_uid(const struct conn *);
bool conn_in_group(const struct conn *, gid_t);
void conn_close_all(void);
void conn_hangup(struct conn *);
size_t conn_count(void);
/*
 * Run after a read's batch of requests was dispatched and before its
 * replies are written: sched.c hands the batch's jobs to the workers.
 */
void conn_hook_batch(void (*)(void));

#endif
