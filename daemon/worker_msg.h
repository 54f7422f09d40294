/*
 * worker_msg.h -- worker_msg.c: the daemon's side of the worker protocol,
 * shared by the executors whose workers speak it (pool_process.c over a
 * socketpair, pool_remote.c over srun's standard input and output).
 */
#ifndef WORKER_MSG_H
#define WORKER_MSG_H

#include <stdbool.h>

#include "proto.h"

struct job;

/*
 * Queue the "run" of j in out; stream: its standard input's pipe goes
 * with it (passed on the socket just before).
 */
void worker_msg_run(struct pbuf *out, const struct job *j, bool stream);
/* Queue a "revoke" of j in out: asked back, if not begun. */
void worker_msg_revoke(struct pbuf *out, struct job *j);
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
