/*
 * input.h -- input.c: a job's standard input, streamed by its client.
 */
#ifndef INPUT_H
#define INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

struct job;

struct input;

/*
 * A pipe for a job's standard input, fed by c's `input` messages; NULL
 * when none can be made (the job is not to be accepted).  Attached to its
 * job, the read end is job_stdin(j) until the job ends (-1 from
 * input_attach: out of memory); input_free drops one not attached.
 */
struct input *input_new(struct conn *c);
int input_attach(struct input *, struct job *j);
void input_free(struct input *);
/*
 * Bytes (and eof: the end) of job's standard input from c.  0, or -1
 * with a cause when c may not send it input.  Bytes for a job whose
 * input is closed (its command closed its standard input, or the job
 * ended) are dropped.
 */
int input_put(struct conn *c, uint64_t job, const void *data, size_t len,
              bool eof, const char **cause);
/* c went away: the standard input of each job it streamed to ends. */
void input_conn_closed(struct conn *c);
/* j reached its final state: its pipe goes. */
void input_ended(struct job *j);

#endif
