/*
 * worker_msg.h -- worker_msg.c: the daemon's side of the worker protocol,
 * shared by the executors whose workers speak it (pool_process.c over a
 * socketpair, pool_remote.c over srun's standard input and output).
 */
#ifndef WORKER_MSG_H
#define WORKER_MSG_H

#include <stdbool.h>
#include <stddef.h>

#include "job.h"
#include "proto.h"

/*
 * The jobs given to one worker, in order (those it runs or has run, then
 * those waiting in it): n in all, nrevoking of them asked back.
 */
struct worker_jobs {
	struct job_queue q;
	size_t n;
	size_t nrevoking;
};

/* The job id in q, or NULL. */
struct job *worker_jobs_find(const struct job_queue *q, uint64_t id);
/* j goes to worker (its xdata from then on), last of its jobs. */
void worker_jobs_add(struct worker_jobs *, struct job *j, void *worker);
/*
 * j leaves its worker (it ended, came back or the worker went away);
 * *revoking, the pool's count of jobs asked back, follows.
 */
void worker_jobs_remove(struct worker_jobs *, struct job *j, size_t *revoking);
/*
 * Queue in out a "revoke" of each of the last n jobs, in order: those the
 * worker has not begun come back in "returned", the others end as usual.
 */
void worker_jobs_revoke(struct worker_jobs *, struct pbuf *out, size_t n,
                        size_t *revoking);

/*
 * Queue the "run" of j in out; stream: its standard input's pipe goes
 * with it (passed on the socket just before).
 */
void worker_msg_run(struct pbuf *out, const struct job *j, bool stream);
/*
 * An "end" from a worker: j's result or error, exit status and error code
 * as it says; returns the state j ends in (job_finish is the caller's).
 */
enum proto_state worker_msg_end(struct job *j, const struct proto_msg *m);
void worker_msg_progress(struct job *j, const struct proto_msg *m);
/*
 * An "output" from a worker: to j's watchers and log.  True if j's client
 * is behind, and the worker's connection should not be read for now.
 */
bool worker_msg_output(struct job *j, const struct proto_msg *m);

#endif
