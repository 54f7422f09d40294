/*
 * hook.c -- concd.conf's on-end: a command run by /bin/sh -c as each
 * job reaches its final state, as the job's owner (as exec's commands
 * are), with CONCD_JOB_ID, CONCD_STATE, CONCD_EXIT, CONCD_GROUP and
 * CONCD_LABEL in its environment.
 *
 * Nothing here waits: the command is started by spawn.c's spawner
 * threads, its output read from a pipe on the loop (the last line is
 * kept for the log), its exit seen through a pidfd and reaped at once.
 * A hook that cannot start, or exits with a status other than 0 or by a
 * signal, is logged with that last line.  At most HOOK_RUNNING run at a
 * time and HOOK_QUEUED wait; past that, a job's hook is dropped and
 * counted in the log.  At the stop the waiting ones are dropped and the
 * running ones reaped.
 */
#include <sys/queue.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hook.h"
#include "job.h"
#include "log.h"
#include "store.h"
#include "loop.h"
#include "spawner.h"

extern char **environ;

#define HOOK_RUNNING 8
#define HOOK_QUEUED  4096
#define HOOK_TAIL    200 /* bytes of its last line kept for the log */
#define HOOK_VARS    4   /* CONCD_STATE, _EXIT, _GROUP, _LABEL */

struct hook_run {
	TAILQ_ENTRY(hook_run) link;
	uint64_t job;
	uid_t uid;
	char *vars[HOOK_VARS + 1];
	struct spawn *req; /* handed to the spawners, not yet settled */
	pid_t pid;         /* 0: not started, or reaped */
	int outfd, pidfd;
	struct event *out_ev, *pid_ev, *settle_ev;
	size_t tlen;
	bool line_done;           /* the kept line ended with a newline */
	char tail[HOOK_TAIL + 1]; /* its output's last line */
};
TAILQ_HEAD(hook_list, hook_run);

static struct {
	char *command; /* NULL: no hook */
	struct hook_list queued, running;
	size_t nqueued, nrunning;
	uint64_t dropped; /* since the last warning */
} hk = {.queued = TAILQ_HEAD_INITIALIZER(hk.queued),
        .running = TAILQ_HEAD_INITIALIZER(hk.running)};

static void hook_next(void);
static void hook_settle_cb(evutil_socket_t, short, void *);

int
hook_set_on_end(const char *command)
{
	char *s = NULL;

	if (command != NULL && (s = strdup(command)) == NULL)
		return -1;
	free(hk.command);
	hk.command = s;
	return 0;
}

static void
hook_free(struct hook_run *r)
{
	size_t i;

	for (i = 0; i < HOOK_VARS; i++)
		free(r->vars[i]);
	if (r->out_ev != NULL)
		event_free(r->out_ev);
	if (r->pid_ev != NULL)
		event_free(r->pid_ev);
	if (r->settle_ev != NULL)
		event_free(r->settle_ev);
	if (r->outfd >= 0)
		close(r->outfd);
	if (r->pidfd >= 0)
		close(r->pidfd);
	free(r);
}

/* It is over: off the running list, and the next one starts. */
static void
hook_done(struct hook_run *r)
{
	TAILQ_REMOVE(&hk.running, r, link);
	hk.nrunning--;
	hook_free(r);
	hook_next();
}

/* Keep the last line of what it wrote (a trailing newline dropped). */
static void
hook_keep(struct hook_run *r, const char *p, size_t n)
{
	const char *nl;
	bool ends = n > 0 && p[n - 1] == '\n';

	while (n > 0 && p[n - 1] == '\n')
		n--;
	if ((nl = memrchr(p, '\n', n)) != NULL) {
		n -= (size_t)(nl + 1 - p);
		p = nl + 1;
		r->tlen = 0;
	} else if (n > 0 && r->line_done) {
		r->tlen = 0; /* a line after the one kept */
	}
	if (n > 0 || ends)
		r->line_done = ends;
	if (n > HOOK_TAIL - r->tlen)
		n = HOOK_TAIL - r->tlen;
	memcpy(r->tail + r->tlen, p, n);
	r->tlen += n;
	r->tail[r->tlen] = '\0';
}

/* Read what it wrote; at EOF the pipe is closed. */
static void
hook_read(struct hook_run *r)
{
	char buf[4096];
	ssize_t n;

	while (r->outfd >= 0) {
		n = read(r->outfd, buf, sizeof(buf));
		if (n > 0) {
			hook_keep(r, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		event_free(r->out_ev);
		r->out_ev = NULL;
		close(r->outfd);
		r->outfd = -1;
	}
}

static void
hook_out_cb(evutil_socket_t fd, short what, void *arg)
{
	hook_read(arg);
}

/* It has exited: reaped, and logged unless it succeeded. */
static void
hook_pid_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hook_run *r = arg;
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG) < 0 &&
	    errno == EINTR)
		return; /* the event comes again */
	hook_read(r);   /* what it left in the pipe */
	if (si.si_code == CLD_EXITED && si.si_status != 0)
		log_warnx("on-end for job %llu exited with status %d%s%s",
		          (unsigned long long)r->job, si.si_status,
		          r->tlen > 0 ? ": " : "", r->tail);
	else if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED)
		log_warnx("on-end for job %llu killed by signal %d%s%s",
		          (unsigned long long)r->job, si.si_status,
		          r->tlen > 0 ? ": " : "", r->tail);
	r->pid = 0;
	hook_done(r);
}

/*
 * Watch the process's exit through a pidfd; without one (out of
 * descriptors), look again a little later: it is never left a zombie.
 */
static void
hook_watch(struct hook_run *r)
{
	static const struct timeval later = {0, 100000};

	if (r->pidfd < 0)
		r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
	if (r->pidfd >= 0 && r->pid_ev == NULL)
		r->pid_ev =
		    event_new(loop_base, r->pidfd, EV_READ, hook_pid_cb, r);
	if (r->pid_ev != NULL && event_add(r->pid_ev, NULL) == 0)
		return;
	if (r->settle_ev == NULL)
		r->settle_ev = evtimer_new(loop_base, hook_settle_cb, r);
	if (r->settle_ev != NULL)
		evtimer_add(r->settle_ev, &later);
}

/* The spawn is settled: watch the process, or log why it did not start. */
static void
hook_settled(struct hook_run *r)
{
	char *why = NULL;
	pid_t pid;

	if (spawn_wait(r->req, &pid, &why) != 0) {
		r->req = NULL;
		log_warnx("on-end for job %llu: %s", (unsigned long long)r->job,
		          why != NULL ? why : "cannot start the command");
		free(why);
		hook_done(r);
		return;
	}
	r->req = NULL;
	r->pid = pid;
	hook_watch(r);
}

/* A spawner has it: looked at every few ms until the spawn is done. */
static void
hook_settle_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval again = {0, 5000};
	struct hook_run *r = arg;

	if (r->req == NULL) {
		hook_watch(r); /* a pidfd, at last */
		return;
	}
	if (!spawn_done(r->req)) {
		evtimer_add(r->settle_ev, &again);
		return;
	}
	hook_settled(r);
}

/* What the hook is told of a job. */
struct hook_job {
	uint64_t id;
	uid_t uid;
	const char *state, *exit, *group, *label; /* NULL: "" */
};

static void
hook_job_of(const struct job *j, struct hook_job *h, char *exit, size_t len)
{
	const struct job_extra *x = j->extra;

	h->id = j->id;
	h->uid = j->uid;
	h->state = proto_states[j->state];
	h->exit = NULL;
	h->group = x != NULL && x->group != NULL ? x->group : "default";
	h->label = x != NULL ? x->label : NULL;
	/* as a shell gives it: 128 + N for signal N */
	if (x != NULL && x->exit >= 0)
		snprintf(exit, len, "%d", (int)x->exit);
	else if (x != NULL && x->signal >= 0)
		snprintf(exit, len, "%d", 128 + (int)x->signal);
	else
		exit = NULL;
	h->exit = exit;
}

/* The job's variables, as its command sees them. */
static int
hook_vars(struct hook_run *r, const struct hook_job *h)
{
	const char *fmt[HOOK_VARS] = {"CONCD_STATE=%s", "CONCD_EXIT=%s",
	                              "CONCD_GROUP=%s", "CONCD_LABEL=%s"};
	const char *val[HOOK_VARS] = {h->state, h->exit, h->group, h->label};
	size_t i;

	for (i = 0; i < HOOK_VARS; i++)
		if (asprintf(&r->vars[i], fmt[i],
		             val[i] != NULL ? val[i] : "") < 0) {
			r->vars[i] = NULL;
			return -1;
		}
	return 0;
}

/*
 * The command's environment: concd's own and the variables (a command
 * run as its owner gets the owner's account's instead, in spawn.c).
 */
static char **
hook_env(struct hook_run *r, bool as_owner)
{
	size_t n = 0, k = 0, i;
	char **v;

	while (!as_owner && environ[n] != NULL)
		n++;
	if ((v = calloc(n + HOOK_VARS + 1, sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "CONCD_", 6) != 0 ||
		    strncmp(environ[i], "CONCD_INSTANCE=", 15) == 0)
			v[k++] = environ[i];
	for (i = 0; i < HOOK_VARS; i++)
		v[k++] = r->vars[i];
	return v;
}

/* Start one: -1 when it cannot (logged). */
static int
hook_start(struct hook_run *r)
{
	static const struct timeval soon = {0, 1000};
	struct spawn_cmd cmd = {.uid = r->uid,
	                        .job = r->job,
	                        .as_owner = geteuid() == 0 && r->uid != 0};
	char *why = NULL;
	int p[2] = {-1, -1}, err = -1;
	pid_t pid;

	if ((cmd.argv = calloc(4, sizeof(*cmd.argv))) == NULL ||
	    (cmd.argv[0] = strdup("/bin/sh")) == NULL ||
	    (cmd.argv[1] = strdup("-c")) == NULL ||
	    (cmd.argv[2] = strdup(hk.command)) == NULL ||
	    (cmd.envp = hook_env(r, cmd.as_owner)) == NULL ||
	    pipe2(p, O_CLOEXEC) < 0 || fcntl(p[0], F_SETFL, O_NONBLOCK) < 0 ||
	    (err = fcntl(p[1], F_DUPFD_CLOEXEC, 3)) < 0) {
		log_warnx("on-end for job %llu: %s", (unsigned long long)r->job,
		          strerror(errno != 0 ? errno : ENOMEM));
		goto fail;
	}
	r->outfd = p[0];
	p[0] = -1;
	/* the spawners take the strings over; the variables stay ours */
	if (spawn_start(&cmd, -1, p[1], err, true, &r->req, &pid, &why) != 0) {
		log_warnx("on-end for job %llu: %s", (unsigned long long)r->job,
		          why != NULL ? why : "cannot start the command");
		free(why);
		spawn_cmd_free(&cmd);
		return -1;
	}
	spawn_cmd_free(&cmd);
	if ((r->out_ev = event_new(loop_base, r->outfd, EV_READ | EV_PERSIST,
	                           hook_out_cb, r)) != NULL)
		event_add(r->out_ev, NULL);
	if (r->req == NULL) { /* started here: no spawner threads */
		r->pid = pid;
		hook_watch(r);
		return 0;
	}
	r->settle_ev = evtimer_new(loop_base, hook_settle_cb, r);
	evtimer_add(r->settle_ev, &soon);
	return 0;
fail:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	if (err >= 0)
		close(err);
	spawn_cmd_free(&cmd);
	return -1;
}

/* Start what waits, as far as there is room. */
static void
hook_next(void)
{
	struct hook_run *r;

	while (hk.nrunning < HOOK_RUNNING &&
	       (r = TAILQ_FIRST(&hk.queued)) != NULL) {
		TAILQ_REMOVE(&hk.queued, r, link);
		hk.nqueued--;
		TAILQ_INSERT_TAIL(&hk.running, r, link);
		hk.nrunning++;
		if (hook_start(r) < 0) {
			TAILQ_REMOVE(&hk.running, r, link);
			hk.nrunning--;
			hook_free(r);
		}
	}
	if (hk.dropped > 0 && hk.nqueued == 0) {
		log_warnx("on-end: %llu jobs' hooks dropped: more than %d "
		          "were waiting",
		          (unsigned long long)hk.dropped, HOOK_QUEUED);
		hk.dropped = 0;
	}
}

void
hook_ended(const struct job *j)
{
	struct hook_run *r;
	struct hook_job h;
	char exit[16];

	if (hk.command == NULL || loop_base == NULL)
		return;
	hook_job_of(j, &h, exit, sizeof(exit));
	if (hk.nqueued >= HOOK_QUEUED) {
		hk.dropped++;
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		hk.dropped++;
		return;
	}
	r->job = h.id;
	r->uid = h.uid;
	r->outfd = r->pidfd = -1;
	if (hook_vars(r, &h) < 0) {
		hook_free(r);
		hk.dropped++;
		return;
	}
	TAILQ_INSERT_TAIL(&hk.queued, r, link);
	hk.nqueued++;
	hook_next();
}

void
hook_shutdown(void)
{
	struct hook_run *r;
	char *why;
	pid_t pid;

	while ((r = TAILQ_FIRST(&hk.queued)) != NULL) {
		TAILQ_REMOVE(&hk.queued, r, link);
		hook_free(r);
	}
	hk.nqueued = 0;
	/*
	 * The running ones are neither waited for nor killed: they go on,
	 * and init reaps them once concd has exited.
	 */
	while ((r = TAILQ_FIRST(&hk.running)) != NULL) {
		if (r->req != NULL && spawn_wait(r->req, &pid, &why) != 0)
			free(why);
		r->req = NULL;
		TAILQ_REMOVE(&hk.running, r, link);
		hook_free(r);
	}
	hk.nrunning = 0;
	free(hk.command);
	hk.command = NULL;
}
