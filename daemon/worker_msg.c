/*
 * worker_msg.c -- what the daemon writes to a worker and reads from it:
 * the "run" that carries a job, and a worker's "progress", "output" and
 * "end" applied to the job.  The executors of worker processes
 * (pool_process.c, pool_remote.c) share it; how they queue, dispatch and
 * lose workers is their own.
 */
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "store.h"
#include "task.h"
#include "task_int.h"
#include "worker_msg.h"

struct job *
worker_jobs_find(const struct job_queue *q, uint64_t id)
{
	struct job *j;

	TAILQ_FOREACH(j, q, link)
		if (j->id == id)
			return j;
	return NULL;
}

void
worker_jobs_add(struct worker_jobs *h, struct job *j, void *worker)
{
	TAILQ_INSERT_TAIL(&h->q, j, link);
	h->n++;
	j->xdata = worker;
}

void
worker_jobs_remove(struct worker_jobs *h, struct job *j, size_t *revoking)
{
	TAILQ_REMOVE(&h->q, j, link);
	h->n--;
	j->xdata = NULL;
	if (j->revoking) {
		j->revoking = false;
		h->nrevoking--;
		(*revoking)--;
	}
}

void
worker_jobs_revoke(struct worker_jobs *h, struct pbuf *out, size_t n,
                   size_t *revoking)
{
	struct job *j = TAILQ_LAST(&h->q, job_queue);
	struct proto_enc e;

	while (n-- > 1)
		j = TAILQ_PREV(j, job_queue, link);
	for (; j != NULL; j = TAILQ_NEXT(j, link)) {
		j->revoking = true;
		proto_enc_begin(&e, out, PROTO_REVOKE, 0);
		proto_enc_u64(&e, PF_JOB, j->id);
		proto_enc_end(&e);
		h->nrevoking++;
		(*revoking)++;
	}
}

void
worker_msg_run(struct pbuf *out, const struct job *j, bool stream)
{
	struct proto_enc e;

	proto_enc_begin(&e, out, PROTO_RUN, 0);
	proto_enc_u64(&e, PF_JOB, j->id);
	proto_enc_cstr(&e, PF_TASK, j->task->name);
	proto_enc_u64(&e, PF_UID, j->uid); /* whose identity it acts with */
	if (stream)
		proto_enc_cstr(&e, PF_STDIN, "stream");
	/* the caller's context, for a task that asks (task_cwd, task_env) */
	if (j->extra != NULL && j->extra->cwd != NULL)
		proto_enc_cstr(&e, PF_CWD, j->extra->cwd);
	if (j->extra != NULL && j->extra->umask != 0)
		proto_enc_u64(&e, PF_UMASK, j->extra->umask - 1u);
	if (j->extra != NULL && j->extra->env != NULL)
		proto_enc_raw(&e, PF_ENV, j->extra->env, j->extra->env_len);
	/* its limits, which its command's cgroup or rlimits enforce */
	if (j->extra != NULL && j->extra->mem > 0)
		proto_enc_u64(&e, PF_MEM, j->extra->mem);
	if (j->extra != NULL && j->extra->pids > 0)
		proto_enc_u64(&e, PF_PIDS, j->extra->pids);
	if (j->extra != NULL && j->extra->cpus > 0)
		proto_enc_u64(&e, PF_CPUS, j->extra->cpus);
	if (j->args_len > 0)
		proto_enc_raw(&e, PF_ARGS, job_args(j), j->args_len);
	proto_enc_end(&e);
}

enum proto_state
worker_msg_end(struct job *j, const struct proto_msg *m)
{
	size_t len;
	const char *state = proto_str(m, PF_STATE, &len);
	int s = state != NULL ? proto_state_lookup(state, len) : -1;

	if (s == PS_SUCCEEDED && proto_has(m, PF_RESULT)) {
		msgpack_packer pk;

		j->ctx.result.len = 0;
		msgpack_packer_init(&pk, &j->ctx.result, pbuf_write_cb);
		msgpack_pack_object(&pk, m->f[PF_RESULT]);
	} else if (proto_has(m, PF_MESSAGE)) {
		char msg[1024];

		free(j->ctx.error);
		j->ctx.error =
		    strdup(proto_strcpy(m, PF_MESSAGE, msg, sizeof(msg)));
	}
	if (proto_has(m, PF_EXIT) || proto_has(m, PF_SIGNAL))
		task_exit(&j->ctx, (int)(proto_u64(m, PF_EXIT, 0) & 0xff),
		          (int)(proto_u64(m, PF_SIGNAL, 0) & 0x7f));
	if (s == PS_FAILED && proto_has(m, PF_ERROR)) {
		const char *code = proto_str(m, PF_ERROR, &len);
		int e = code != NULL ? proto_error_lookup(code, len) : -1;

		/* what a task may say of its failure: oom */
		if (e == PE_OOM)
			j->ctx.code = (uint8_t)e;
	}
	if (s < PS_SUCCEEDED)
		s = PS_FAILED;
	return (enum proto_state)s;
}

void
worker_msg_progress(struct job *j, const struct proto_msg *m)
{
	char msg[256];

	job_progress(j, proto_u64(m, PF_DONE, 0), proto_u64(m, PF_TOTAL, 0),
	             proto_has(m, PF_MSG)
	                 ? proto_strcpy(m, PF_MSG, msg, sizeof(msg))
	                 : NULL);
}

bool
worker_msg_output(struct job *j, const struct proto_msg *m)
{
	size_t len;
	const char *stream = proto_str(m, PF_STREAM, &len);
	const msgpack_object *d = &m->f[PF_DATA];

	if (d->type == MSGPACK_OBJECT_BIN)
		job_output(j,
		           stream != NULL && len == 6 &&
		                   memcmp(stream, "stderr", 6) == 0
		               ? 2
		               : 1,
		           d->via.bin.ptr, d->via.bin.size);
	return job_output_held(j);
}
