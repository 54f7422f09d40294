/*
 * task_int.h -- task.c's side that only concd sees: the task table, the
 * task contexts' life and the executors' hooks.  task.h is its other
 * side, the task ABI that tasks see.
 */
#ifndef TASK_INT_H
#define TASK_INT_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "proto.h"
#include "task.h"

#define TASK_MAX_TASKS 64 /* built-in and plugin tasks */

/* Hooks an executor gives the task functions. */
struct exec_ops {
	void (*progress)(struct task_ctx *, uint64_t done, uint64_t total,
	                 const char *msg);
	void (*output)(struct task_ctx *, int stream, const void *, size_t);
	void (*release)(pid_t, int pidfd, unsigned grace_ms); /* or reap_now */
	bool (*full)(struct task_ctx *); /* optional: task_output_full() */
	/* optional: a cancel the executor knows of before ctx->cancel */
	bool (*cancelled)(struct task_ctx *);
	bool on_loop;   /* task_on_loop() */
	bool on_thread; /* task_on_thread() */
};

extern const struct task *const task_builtin[];

const struct task *task_find(const char *name, size_t len);
size_t task_count(void);
const struct task *task_at(size_t);
int task_index(const struct task *);
int task_register(const struct task *, char *cause, size_t causelen);

int task_validate(const struct task *, const msgpack_object *args, char *cause,
                  size_t causelen);
enum proto_exec task_default_exec(const struct task *);
unsigned task_exec_bit(enum proto_exec);

/*
 * Set up the context and call start(); -1 with ctx->error set.  The job's
 * task_worker_state is worker_state until this thread starts another.
 */
int task_ctx_start(struct task_ctx *, struct job *, const struct exec_ops *,
                   void *worker_state);
enum task_step task_ctx_step(struct task_ctx *);

/*
 * A pool worker's warm state (a warm thread or process, or the one a
 * --fresh job gets): each task's init runs on the worker's first job of
 * that task, its fini when the worker ends.
 */
struct task_warm {
	void *state[TASK_MAX_TASKS];
	bool inited[TASK_MAX_TASKS];
};

/* The task's init if this worker has not run it yet, then
 * task_ctx_start with its warm state; -1 with ctx->error set. */
int task_warm_start(struct task_warm *, struct task_ctx *, struct job *,
                    const struct exec_ops *);
/* The fini of every task this worker has run the init of. */
void task_warm_fini(struct task_warm *);
/* stop() if owed; frees state; keeps result and error. */
void task_ctx_stop(struct task_ctx *);
void task_ctx_free(struct task_ctx *);

/*
 * Run step() to the end on the calling thread: for pool workers.  After
 * a step that did not end the job, pause(ctx, st, arg) waits out a
 * TASK_WAIT (and returns at once after a TASK_YIELD) and does the
 * worker's own work between steps; false ends the job, failed.
 */
enum task_step task_run_blocking(struct task_ctx *,
                                 bool (*pause)(struct task_ctx *,
                                               enum task_step, void *arg),
                                 void *arg);
/* Cancelled, and stepped on to wind down (TASK_WINDS_DOWN) rather than cut. */
bool task_winding_down(struct task_ctx *);

#endif
