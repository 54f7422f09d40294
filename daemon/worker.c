/*
 * worker.c -- a worker process of the process pool.  concd starts it as
 * `concd --worker INDEX [--once] [--busy-poll USEC]` with a socketpair on fd 3
 * that carries the same frames as a client connection: "run" and "cancel" come
 * in, "started", "progress" and "end" go out; "revoke" asks for a queued
 * run back, and "returned" gives it.  The worker has no listening
 * socket, no clients and no event loop: it runs one job at a time with
 * blocking I/O, queues the runs that arrive meanwhile, and batches its
 * replies, writing them when it has nothing left to run or must wait.
 * With nothing left to run it polls its socket for --busy-poll µs before
 * it sleeps in poll(2), so a run sent soon after costs no wake-up.
 * It exits when the daemon goes away (EOF, or PR_SET_PDEATHSIG).
 *
 * A remote worker (`--stdio`, on a cluster node, started by srun for
 * pool_remote.c) reads its frames from standard input and writes them to
 * standard output, which srun relays; its first frame is a "hello" with
 * the protocol version, its node and its pid.  It has no record page and
 * no descriptors come with its runs (a streamed standard input is not
 * possible there); the end of its standard input is the end of the daemon.
 * Its standard output is the channel alone: fd 1 then points to its
 * standard error, which srun relays to concd's log.
 *
 * A user's worker (`--user UID`, pool_process.c) runs a user's own code
 * (python) for a root concd: it takes the user's identity as login(1)
 * would, with no way back, before it loads a plugin, and runs only jobs
 * of that user.
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job.h"
#include "log.h"
#include "store.h"
#include "loop.h"
#include "store.h"
#include "task.h"
#include "task_int.h"
#include "worker.h"

#define WORKER_FLUSH_AT    (64 * 1024)
#define WORKER_PROGRESS_MS 20
#define WORKER_FDS_MAX     64 /* descriptors one read takes at most */

static struct {
	int fd;     /* from the daemon */
	int out_fd; /* to the daemon: fd, or the channel's copy of fd 1 */
	int index;
	pid_t pid;
	bool once;
	bool stdio;          /* a remote worker: see the top of this file */
	int busy_poll;       /* µs */
	int64_t progress_at; /* ms: progress goes out at most every 20 ms */
	bool eof;
	bool answer; /* a read left a reply that must not wait for a batch */
	uint32_t served;
	struct pbuf in, out;
	msgpack_zone zone;
	struct job_queue queue;
	struct job *current;
	struct worker_shm *shm; /* what concd reads if this worker dies */
	struct task_warm warm;
	int *fds; /* passed with runs not yet read, in order */
	size_t nfds, fdcap;
	bool user; /* a user's worker: runs only uid's jobs */
	uid_t uid;
	char *refusal; /* a user's worker that is not the user: why */
} wk;

extern char **environ;

/* What a user's worker keeps of concd's environment: no more. */
bool
worker_env_kept(const char *var)
{
	static const char *const kept[] = {
	    "LANG=",         "LC_",           "TZ=",
	    "ASAN_OPTIONS=", "LSAN_OPTIONS=", "UBSAN_OPTIONS=",
	    "TSAN_OPTIONS=",
	};
	size_t i;

	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		if (strncmp(var, kept[i], strlen(kept[i])) == 0)
			return true;
	return false;
}

/* The account's environment, as exec gives a command run as its owner. */
static int
worker_user_env(const struct task_account *a)
{
	char **v, **keep, *eq;
	size_t n = 0, k = 0;
	int rc = 0;

	while (environ[n] != NULL)
		n++;
	if ((keep = calloc(n + 1, sizeof(*keep))) == NULL)
		return -1;
	for (v = environ; *v != NULL; v++)
		if (worker_env_kept(*v) && (keep[k++] = strdup(*v)) == NULL)
			rc = -1;
	if (rc == 0 && clearenv() != 0)
		rc = -1;
	/* setenv's copies, which the C library keeps track of */
	for (v = keep; rc == 0 && *v != NULL; v++) {
		if ((eq = strchr(*v, '=')) == NULL)
			continue;
		*eq = '\0';
		if (setenv(*v, eq + 1, 1) < 0)
			rc = -1;
	}
	for (v = keep; *v != NULL; v++)
		free(*v);
	free(keep);
	if (rc < 0 || setenv("HOME", a->home, 1) < 0 ||
	    setenv("USER", a->name, 1) < 0 ||
	    setenv("LOGNAME", a->name, 1) < 0 ||
	    setenv("SHELL", a->shell, 1) < 0 ||
	    setenv("PATH", TASK_USER_PATH, 1) < 0)
		return -1;
	return 0;
}

int
worker_become(uid_t uid)
{
	struct task_account a;
	char err[256];
	int rc = -1;

	wk.user = true;
	wk.uid = uid;
	if (task_account_get(uid, &a, err, sizeof(err)) < 0) {
		if (asprintf(&wk.refusal, "cannot run as uid %u: %s",
		             (unsigned)uid, err) < 0)
			_exit(1);
		return -1;
	}
	if (setgroups((size_t)a.ngroups, a.groups) < 0 ||
	    setresgid(a.gid, a.gid, a.gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		snprintf(err, sizeof(err), "%s", strerror(errno));
	} else if (uid != 0 && (setresuid(0, 0, 0) == 0 || geteuid() == 0)) {
		snprintf(err, sizeof(err), "root's rights stayed");
	} else if (worker_user_env(&a) < 0) {
		snprintf(err, sizeof(err), "out of memory");
	} else {
		/* the call's cwd moves it; until then, as a login would */
		if (chdir(a.home) < 0 && chdir("/") < 0)
			_exit(1);
		umask(022);
		rc = 0;
	}
	if (rc < 0 && asprintf(&wk.refusal,
	                       "cannot take the identity of %s "
	                       "(uid %u): %s",
	                       a.name, (unsigned)uid, err) < 0)
		_exit(1);
	task_account_free(&a);
	return rc;
}

static void
worker_flush(void)
{
	size_t off = 0;
	ssize_t n;

	while (off < wk.out.len) {
		n = write(wk.out_fd, wk.out.data + off, wk.out.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) { /* one description for both */
			struct pollfd pfd = {.fd = wk.out_fd,
			                     .events = POLLOUT};

			(void)poll(&pfd, 1, -1);
			continue;
		}
		if (n <= 0)
			_exit(0); /* the daemon is gone */
		off += (size_t)n;
	}
	wk.out.len = 0;
}

struct worker_end {
	const struct job *j;
	enum proto_state state;
};

static void
worker_end_fields(struct proto_enc *e, void *arg, bool result)
{
	const struct worker_end *a = arg;
	const struct job *j = a->j;

	proto_enc_u64(e, PF_JOB, j->id);
	if (j->ctx.exited && j->ctx.exit_signal != 0)
		proto_enc_u64(e, PF_SIGNAL, j->ctx.exit_signal);
	else if (j->ctx.exited)
		proto_enc_u64(e, PF_EXIT, j->ctx.exit_code);
	if (!result) { /* too large for a frame: the job still ends */
		proto_enc_result_too_large(e, j->ctx.result.len);
		return;
	}
	proto_enc_cstr(e, PF_STATE, proto_states[a->state]);
	if (a->state == PS_SUCCEEDED) {
		if (j->ctx.result.len > 0)
			proto_enc_raw(e, PF_RESULT, j->ctx.result.data,
			              j->ctx.result.len);
		else
			proto_enc_raw(e, PF_RESULT, "\xc0", 1);
	} else if (j->ctx.error != NULL)
		proto_enc_ctext(e, PF_MESSAGE, j->ctx.error);
	if (a->state == PS_FAILED && j->ctx.code != PE_NONE)
		proto_enc_cstr(e, PF_ERROR, proto_errors[j->ctx.code].name);
}

static void
worker_send_end(struct job *j, enum proto_state state)
{
	struct worker_end a = {.j = j, .state = state};

	(void)proto_enc_result_frame(&wk.out, PROTO_END, 0, worker_end_fields,
	                             &a);
	if (wk.out.len >= WORKER_FLUSH_AT)
		worker_flush();
}

/*
 * Read from the daemon, taking the descriptors that come with the bytes
 * (a streamed standard input's pipe, with its job's run) in order.
 */
static ssize_t
worker_recv(void)
{
	char cbuf[CMSG_SPACE(WORKER_FDS_MAX * sizeof(int))];
	struct iovec iov = {.iov_base = wk.in.data + wk.in.len,
	                    .iov_len = wk.in.cap - wk.in.len};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = cbuf,
	                    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm;
	size_t i, nfd;
	ssize_t n;
	int fd;

	if (wk.stdio) /* a pipe or a socket: no descriptors come */
		return read(wk.fd, iov.iov_base, iov.iov_len);
	n = recvmsg(wk.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return n;
	if (mh.msg_flags & MSG_CTRUNC)
		_exit(1); /* descriptors lost: runs and pipes would not match */
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < nfd; i++) {
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(fd));
			/* one lost would give a later job another's input */
			if (wk.nfds == wk.fdcap &&
			    (wk.fds = realloc(wk.fds, (wk.fdcap += 16) *
			                                  sizeof(int))) == NULL)
				_exit(1);
			wk.fds[wk.nfds++] = fd;
		}
	}
	return n;
}

/* The next descriptor the daemon passed, or -1. */
static int
worker_take_fd(void)
{
	int fd;

	if (wk.nfds == 0)
		return -1;
	fd = wk.fds[0];
	memmove(wk.fds, wk.fds + 1, --wk.nfds * sizeof(int));
	return fd;
}

/* The caller's context a run carries (task_cwd, task_umask, task_env). */
static void
worker_context(struct job *j, const struct proto_msg *m)
{
	struct job_extra *x = job_extra(j);
	struct pbuf b = {0};
	msgpack_packer pk;
	const char *cwd;
	size_t len;

	if (x == NULL)
		_exit(1);
	if ((cwd = proto_str(m, PF_CWD, &len)) != NULL &&
	    (x->cwd = strndup(cwd, len)) == NULL)
		_exit(1);
	if (proto_has(m, PF_UMASK)) /* concd checked it: at most 0777 */
		x->umask = (uint16_t)((proto_u64(m, PF_UMASK, 0) & 0777) + 1);
	if (proto_has(m, PF_ENV)) {
		msgpack_packer_init(&pk, &b, pbuf_write_cb);
		msgpack_pack_object(&pk, m->f[PF_ENV]);
		x->env = b.data;
		x->env_len = (uint32_t)b.len;
	}
}

static void
worker_free_job(struct job *j)
{
	task_ctx_free(&j->ctx);
	if (job_stdin(j) >= 0)
		close(job_stdin(j));
	job_extra_free(j->extra);
	free(j);
}

static void
worker_on_run(const struct proto_msg *m)
{
	/* the arguments, packed again: copied into the job, the room kept */
	static struct pbuf args;
	struct job *j;
	const char *name;
	size_t len;

	args.len = 0;
	if (proto_has(m, PF_ARGS) && m->f[PF_ARGS].type == MSGPACK_OBJECT_MAP &&
	    m->f[PF_ARGS].via.map.size > 0) {
		msgpack_packer pk;

		msgpack_packer_init(&pk, &args, pbuf_write_cb);
		msgpack_pack_object(&pk, m->f[PF_ARGS]);
	}
	name = proto_str(m, PF_TASK, &len);
	if ((j = job_alloc(task_find(name, len), args.data, args.len)) == NULL)
		_exit(1);
	j->id = proto_u64(m, PF_JOB, 0);
	/* without its owner, the job could act as root: it does not run */
	j->uid = (uid_t)proto_u64(m, PF_UID, UINT32_MAX);
	if ((proto_has(m, PF_MEM) || proto_has(m, PF_PIDS) ||
	     proto_has(m, PF_CPUS)) &&
	    job_extra(j) != NULL) {
		j->extra->mem = proto_u64(m, PF_MEM, 0);
		j->extra->pids = proto_u64(m, PF_PIDS, 0);
		j->extra->cpus = (uint32_t)proto_u64(m, PF_CPUS, 0);
	}
	if (proto_has(m, PF_STDIN) && wk.stdio) {
		task_fail(&j->ctx, "a remote worker cannot take a streamed "
		                   "standard input");
		worker_send_end(j, PS_FAILED);
		worker_free_job(j);
		return;
	}
	if (proto_has(m, PF_STDIN) && job_set_stdin(j, worker_take_fd()) < 0)
		_exit(1);
	if (proto_has(m, PF_CWD) || proto_has(m, PF_ENV) ||
	    proto_has(m, PF_UMASK))
		worker_context(j, m);
	if (wk.user && (wk.refusal != NULL || j->uid != wk.uid)) {
		task_fail(&j->ctx, "%s",
		          wk.refusal != NULL
		              ? wk.refusal
		              : "a job of another user: refused");
		worker_send_end(j, PS_FAILED);
		worker_free_job(j);
		return;
	}
	if (j->task == NULL) {
		task_fail(&j->ctx, "no task \"%.*s\" in this worker", (int)len,
		          name);
		worker_send_end(j, PS_FAILED);
		worker_free_job(j);
		return;
	}
	TAILQ_INSERT_TAIL(&wk.queue, j, link);
}

static void
worker_on_cancel(const struct proto_msg *m)
{
	uint64_t id = proto_u64(m, PF_JOB, 0);
	struct job *j;

	if (wk.current != NULL && wk.current->id == id) {
		atomic_store(&wk.current->ctx.cancel, true);
		return;
	}
	TAILQ_FOREACH(j, &wk.queue, link) {
		if (j->id == id) {
			TAILQ_REMOVE(&wk.queue, j, link);
			worker_send_end(j, PS_CANCELLED);
			worker_free_job(j);
			wk.answer = true;
			return;
		}
	}
}

/* "revoke": a job still in our queue goes back to the daemon unstarted. */
static void
worker_on_revoke(const struct proto_msg *m)
{
	uint64_t id = proto_u64(m, PF_JOB, 0);
	struct proto_enc e;
	struct job *j;

	TAILQ_FOREACH(j, &wk.queue, link) {
		if (j->id == id) {
			TAILQ_REMOVE(&wk.queue, j, link);
			proto_enc_begin(&e, &wk.out, PROTO_RETURNED, 0);
			proto_enc_u64(&e, PF_JOB, id);
			proto_enc_end(&e);
			worker_free_job(j);
			wk.answer = true;
			return;
		}
	}
	/* started already, or ended: its end tells the daemon */
}

/* Read what is there (or wait for it when block); false on EOF. */
static bool
worker_read(int timeout_ms)
{
	struct pollfd pfd = {.fd = wk.fd, .events = POLLIN};
	struct proto_msg m;
	struct proto_fault f;
	const char *payload;
	size_t plen, off = 0;
	ssize_t n, used;

	if (wk.eof)
		return false;
	if (timeout_ms != 0) {
		n = poll(&pfd, 1, timeout_ms);
		if (n <= 0)
			return true;
	}
	pbuf_reserve(&wk.in, 64 * 1024);
	n = worker_recv();
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0) {
		wk.eof = true;
		return false;
	}
	wk.in.len += (size_t)n;
	while ((used = proto_frame_next(wk.in.data + off, wk.in.len - off,
	                                &payload, &plen)) > 0) {
		off += (size_t)used;
		if (proto_decode(payload, plen, &wk.zone, &m, &f) !=
		    PROTO_DECODE_OK) {
			fprintf(stderr, "concd worker %d: bad message: %s\n",
			        wk.index, f.message);
			_exit(1);
		}
		if (m.type == PROTO_RUN)
			worker_on_run(&m);
		else if (m.type == PROTO_CANCEL)
			worker_on_cancel(&m);
		else if (m.type == PROTO_REVOKE)
			worker_on_revoke(&m);
	}
	if (used < 0)
		_exit(1);
	pbuf_consume(&wk.in, off);
	/* a queued job's cancel or revoke is answered now, not after a run */
	if (wk.answer) {
		wk.answer = false;
		worker_flush();
	}
	return true;
}

static int64_t
now_ms(void)
{
	return (int64_t)(loop_mono_us() / 1000);
}

/*
 * Read without sleeping, for up to busy_poll µs, until a run arrives or
 * a read leaves something to send (a queued job's cancel sends its end);
 * sched_yield lets anything else runnable on this CPU go first, and a
 * yield that ran something else ends the polling, as in the loop
 * (loop.c).  False on EOF.
 */
static bool
worker_poll(void)
{
	int64_t t0 = (int64_t)loop_mono_us(), t;

	for (;;) {
		if (!worker_read(0))
			return false;
		if (!TAILQ_EMPTY(&wk.queue) || wk.out.len > 0)
			return true;
		if ((t = (int64_t)loop_mono_us()) - t0 >= wk.busy_poll)
			return true;
		sched_yield();
		if ((int64_t)loop_mono_us() - t > BUSY_POLL_CONTESTED_US)
			return true;
	}
}

/*
 * Progress is a snapshot: sending one per step of a fast CPU task would
 * cost the daemon a frame each; every 50 ms (and the last one) is plenty.
 */
static void
worker_progress(struct task_ctx *ctx, uint64_t done, uint64_t total,
                const char *msg)
{
	struct proto_enc e;
	int64_t now = now_ms();

	if (done < total && now - wk.progress_at < WORKER_PROGRESS_MS)
		return;
	wk.progress_at = now;

	proto_enc_begin(&e, &wk.out, PROTO_PROGRESS, 0);
	proto_enc_u64(&e, PF_JOB, CTX_JOB(ctx)->id);
	proto_enc_u64(&e, PF_DONE, done);
	proto_enc_u64(&e, PF_TOTAL, total);
	if (msg != NULL)
		proto_enc_text(&e, PF_MSG, msg, strnlen(msg, 255));
	proto_enc_end(&e);
	/*
	 * Out now (at most every 20 ms): a step that reports progress may
	 * not return for long (a python call), and nothing else would send it
	 */
	worker_flush();
}

static void
worker_output(struct task_ctx *ctx, int stream, const void *data, size_t len)
{
	static const char *const names[] = {"stdout", "stderr"};
	struct proto_enc e;

	proto_enc_begin(&e, &wk.out, PROTO_OUTPUT, 0);
	proto_enc_u64(&e, PF_JOB, CTX_JOB(ctx)->id);
	proto_enc_cstr(&e, PF_STREAM, names[stream == 2]);
	proto_enc_key(&e, PF_DATA);
	msgpack_pack_bin_with_body(&e.pk, data, len);
	proto_enc_end(&e);
	/* a blocking write here holds the command back: backpressure */
	if (wk.out.len >= WORKER_FLUSH_AT)
		worker_flush();
}

/* concd's cancel of the running job, in the record page (struct worker_shm) */
static bool
worker_cancelled(struct task_ctx *ctx)
{
	/*
	 * A task that winds down (exec) hears its cancel between its steps,
	 * from the daemon's "cancel", which also times its grace period
	 */
	if (CTX_JOB(ctx)->task->traits & TASK_WINDS_DOWN)
		return false;
	if (atomic_load_explicit(&wk.shm->cancel, memory_order_acquire) !=
	    task_job_id(ctx))
		return false;
	atomic_store(&ctx->cancel, true);
	return true;
}

static const struct exec_ops worker_ops = {
    .progress = worker_progress,
    .output = worker_output,
    .cancelled = worker_cancelled,
};

/* A wait that still hears "cancel" from the daemon. */
static bool
worker_wait(struct task_ctx *ctx, void *arg)
{
	/* in µs: a deadline in whole ms would end it up to 1 ms early */
	uint64_t deadline = loop_mono_us() + ctx->wait_ms * 1000;
	bool was = task_cancelled(ctx); /* a job winding down waits too */
	struct pollfd pfd[2];

	worker_flush();
	for (;;) {
		uint64_t now = loop_mono_us();
		/* poll's ms, rounded up: it may sleep longer, never shorter */
		int64_t left =
		    now < deadline ? (int64_t)(deadline - now + 999) / 1000 : 0;
		int n;

		if (task_cancelled(ctx) && !was)
			return false;
		pfd[0].fd = wk.fd;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		if (ctx->wait_fd >= 0) {
			pfd[1].fd = ctx->wait_fd;
			pfd[1].events = ctx->wait_write ? POLLOUT : POLLIN;
			pfd[1].revents = 0;
		} else if (left <= 0)
			return true;
		n = poll(pfd, ctx->wait_fd >= 0 ? 2 : 1,
		         ctx->wait_fd >= 0 ? -1 : (int)left);
		if (n < 0 && errno != EINTR)
			return false;
		if (n > 0 && pfd[0].revents) {
			if (!worker_read(0))
				return false; /* the daemon is gone: stop */
			/* the end of a queued job cancelled meanwhile */
			worker_flush();
		}
		if (ctx->wait_fd >= 0 && pfd[1].revents)
			return !task_cancelled(ctx);
	}
}

/*
 * Between two steps: what the step wrote goes out, a wait is waited out,
 * and cancels are heard; false when the daemon is gone.
 */
static bool
worker_pause(struct task_ctx *ctx, enum task_step st, void *arg)
{
	if (wk.out.len > 0)
		worker_flush();
	/* a wait a cancel cut short: the end, unless the job winds down */
	if (st == TASK_WAIT && !worker_wait(ctx, NULL) &&
	    (!task_winding_down(ctx) || wk.eof))
		return false;
	return worker_read(0);
}

static void
worker_send_started(struct job *j, uint64_t now)
{
	struct proto_enc e;

	proto_enc_begin(&e, &wk.out, PROTO_STARTED, 0);
	proto_enc_u64(&e, PF_JOB, j->id);
	proto_enc_u64(&e, PF_PID, (uint64_t)wk.pid);
	proto_enc_u64(&e, PF_SERVED, wk.served);
	proto_enc_u64(&e, PF_STARTED, now);
	proto_enc_end(&e);
}

static void
worker_run(struct job *j)
{
	struct task_ctx *ctx = &j->ctx;
	enum task_step st = TASK_FAILED;
	uint64_t now = loop_now_us();

	/*
	 * Ends held for a write of many go out before a job whose one step
	 * may last (user code, CPU work, blocking I/O): held behind it, they
	 * were results their callers waited for until the worker had run
	 * all it had.  A non-blocking task's steps are short, or pause.
	 */
	if (wk.out.len > 0 &&
	    (j->task->traits & (TASK_CPU | TASK_BLOCKING | TASK_USER_CODE)))
		worker_flush();
	wk.current = j;
	wk.served++;
	/* before any of its code runs: if it kills us, concd knows */
	atomic_store_explicit(&wk.shm->began_us, now, memory_order_relaxed);
	atomic_store_explicit(&wk.shm->started, j->id, memory_order_release);
	worker_send_started(j, now);
	/* a job of one step: started and end go out in one write */
	if (task_warm_start(&wk.warm, ctx, j, &worker_ops) == 0)
		st = task_run_blocking(ctx, worker_pause, NULL);
	task_ctx_stop(ctx);
	if (st == TASK_DONE)
		worker_send_end(j, PS_SUCCEEDED);
	else
		worker_send_end(j,
		                task_cancelled(ctx) ? PS_CANCELLED : PS_FAILED);
	atomic_store_explicit(&wk.shm->ended, j->id, memory_order_release);
	wk.current = NULL;
	worker_free_job(j);
}

/*
 * The record page concd handed over on WORKER_SHM_FD; a page of our own
 * if there is none, so that the worker runs all the same.
 */
static void
worker_map_shm(void)
{
	static struct worker_shm none;
	struct stat st;
	void *p = MAP_FAILED;

	if (fstat(WORKER_SHM_FD, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size >= (off_t)sizeof(struct worker_shm)) {
		p = mmap(NULL, sizeof(struct worker_shm),
		         PROT_READ | PROT_WRITE, MAP_SHARED, WORKER_SHM_FD, 0);
		close(WORKER_SHM_FD);
	}
	wk.shm = p != MAP_FAILED ? p : &none;
}

/*
 * A remote worker's channel: standard input and output move to
 * descriptors of their own, fd 0 reads /dev/null and fd 1 writes to
 * standard error, so that nothing but frames reaches the daemon.
 */
static int
worker_stdio(void)
{
	int null;

	if ((wk.fd = fcntl(0, F_DUPFD_CLOEXEC, 10)) < 0 ||
	    (wk.out_fd = fcntl(1, F_DUPFD_CLOEXEC, 10)) < 0 ||
	    fcntl(wk.fd, F_SETFL, fcntl(wk.fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    (null = open("/dev/null", O_RDONLY)) < 0)
		return -1;
	if (dup2(null, 0) < 0 || dup2(2, 1) < 0)
		return -1;
	if (null > 2)
		close(null);
	return 0;
}

/* The first frame of a remote worker: its protocol, node and pid. */
static void
worker_hello(void)
{
	struct proto_enc e;
	char node[256];

	if (gethostname(node, sizeof(node)) < 0)
		snprintf(node, sizeof(node), "unknown");
	node[sizeof(node) - 1] = '\0';
	proto_enc_begin(&e, &wk.out, PROTO_HELLO, 0);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	proto_enc_cstr(&e, PF_NODE, node);
	proto_enc_u64(&e, PF_PID, (uint64_t)wk.pid);
	proto_enc_u64(&e, PF_WORKER, (uint64_t)wk.index);
	proto_enc_end(&e);
	worker_flush();
}

int
worker_main(int index, bool once, bool stdio, int busy_poll)
{
	struct job *j;
	bool polled = false;

	wk.fd = wk.out_fd = WORKER_FD;
	wk.pid = getpid();
	wk.index = index;
	wk.once = once;
	wk.stdio = stdio;
	wk.busy_poll = busy_poll;
	TAILQ_INIT(&wk.queue);
	msgpack_zone_init(&wk.zone, 4096);
	signal(SIGPIPE, SIG_IGN);
	if (stdio) {
		static struct worker_shm none;

		if (worker_stdio() < 0) {
			fprintf(stderr, "concd worker %d: %s\n", index,
			        strerror(errno));
			return 1;
		}
		wk.shm = &none;
		worker_hello();
	} else {
		worker_map_shm();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	}
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	for (;;) {
		if (TAILQ_EMPTY(&wk.queue)) {
			/* what a read left to send goes first */
			worker_flush();
			if (wk.once && wk.served > 0)
				break;
			if (wk.busy_poll > 0 && !polled) {
				polled = true;
				if (!worker_poll())
					break;
			} else if (!worker_read(-1)) {
				break;
			}
			continue;
		}
		polled = false;
		j = TAILQ_FIRST(&wk.queue);
		TAILQ_REMOVE(&wk.queue, j, link);
		worker_run(j);
		/*
		 * Before the next queued run, hear the cancels that came
		 * meanwhile; with none queued, the top of the loop sends the
		 * end first and then waits.
		 */
		if (!TAILQ_EMPTY(&wk.queue) && !worker_read(0) &&
		    TAILQ_EMPTY(&wk.queue))
			break;
	}
	worker_flush();
	while ((j = TAILQ_FIRST(&wk.queue)) != NULL) {
		TAILQ_REMOVE(&wk.queue, j, link);
		worker_free_job(j);
	}
	task_warm_fini(&wk.warm);
	pbuf_free(&wk.in);
	pbuf_free(&wk.out);
	msgpack_zone_destroy(&wk.zone);
	free(wk.refusal);
	return 0;
}
