/*
 * queue.h -- queue.c: the groups a job waits in for its CPU slots, in
 * order of priority, then submission; schedules and holds.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct conn;
struct job;

/* A group's name: letters, digits, '.', '_' and '-', at most this long. */
#define QUEUE_NAME_MAX 64
/* Groups at most, `default` and those of concd.conf included. */
#define QUEUE_MAX_GROUPS 1024

/* The `default` group, with a limit of ncpu slots. */
void queue_init(unsigned ncpu);
void queue_shutdown(void);

/* A job the job table admits: counted in its group until it ends. */
void queue_admit(struct job *);
/* A job that may run once its group has room: now, or when it has. */
void queue_submit(struct job *);
/*
 * While on (nested), submitted jobs wait in their groups, however much
 * room there is, and start when it is turned off, by priority: for jobs
 * that become ready together (a restart, a dependency that ended).
 */
void queue_defer(bool on);
/* It failed and will be retried: its slots go back meanwhile. */
void queue_requeue(struct job *);
/* It reached its final state: its slots go to the next job. */
void queue_ended(struct job *);
/* Cancel a job that waits in its group: true if it did (it has ended). */
bool queue_cancel(struct job *);

/* Jobs waiting in groups, scheduled or held: they count in queue-limit. */
size_t queue_waiting(void);
/*
 * A job that waits for a hold, a paused group or its start time: a stop
 * leaves it queued in the store for the next start instead of waiting.
 */
bool queue_parked(const struct job *);
size_t queue_parked_count(void);
/* Does the group exist?  Else -1 with the cause. */
int queue_check_group(const char *name, size_t len, char *cause, size_t);
/* CPU slots a job takes: --cpus, else 1 for a command, 0 for a task. */
uint32_t queue_job_cpus(const struct job *);
/* The job's group. */
const char *queue_job_group(const struct job *);
/* Jobs ahead of a job waiting in its group; false if it is not waiting. */
bool queue_ahead(const struct job *, uint64_t *);
/* The same for n jobs at once, with one walk of each group (ps). */
void queue_ahead_many(struct job *const *, size_t n, uint64_t *ahead,
                      bool *waiting);

/*
 * The requests.  Each writes its reply (or error) to the connection;
 * admin: the caller may change any group and hold any job.
 */
void queue_request_group(struct conn *, const struct proto_msg *, bool admin);
/* Hold a queued job back (hold), or let it go on (release). */
int queue_hold(struct job *, bool hold, enum proto_error *, char *cause,
               size_t len);
/*
 * Why job id in state cannot be held or released: it is starting, running
 * or has ended.
 */
void queue_hold_refused(uint64_t id, int state, bool starting, bool hold,
                        char *cause, size_t len);
void queue_request_wait(struct conn *, const struct proto_msg *);
/* A client went away: its waits go with it. */
void queue_unwait_conn(struct conn *);

/*
 * The groups of concd.conf: made, or set to the file's values (at the
 * start and at each reload).  -1 with the cause at the first that fails.
 */
struct config_group;
int queue_config(const struct config_group *, size_t n, char *cause,
                 size_t len);

#endif
