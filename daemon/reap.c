/*
 * reap.c -- child processes that tasks hand over when they stop (exec's
 * commands, on cancel or timeout).  The task has sent the process group
 * SIGTERM; if the child is still there after the grace period its group
 * gets SIGKILL.  Either way it is reaped: concd leaves no zombies.  On
 * the loop this is event-driven; a worker thread or process just waits.
 */
#include <sys/queue.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "reap.h"

struct reap {
	pid_t pid;
	int pidfd;
	struct event *exited;
	struct event *grace;
	LIST_ENTRY(reap) link;
};

static struct event_base *reap_base;
static LIST_HEAD(, reap) reaps = LIST_HEAD_INITIALIZER(reaps);
static size_t nreaps;

void
reap_init(struct event_base *base)
{
	reap_base = base;
}

static void
reap_collect(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void
reap_free(struct reap *r)
{
	LIST_REMOVE(r, link);
	nreaps--;
	event_free(r->exited);
	event_free(r->grace);
	close(r->pidfd);
	free(r);
	loop_changed(); /* a stop may be waiting for this */
}

static void
reap_exited_cb(evutil_socket_t fd, short what, void *arg)
{
	struct reap *r = arg;

	reap_collect(r->pid);
	reap_free(r);
}

static void
reap_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct reap *r = arg;

	log_debug("pid %d still there after its grace period: SIGKILL",
	          (int)r->pid);
	kill(-r->pid, SIGKILL);
	kill(r->pid, SIGKILL);
}

void
reap_later(pid_t pid, int pidfd, unsigned grace_ms)
{
	struct reap *r;

	if (reap_base == NULL || (r = calloc(1, sizeof(*r))) == NULL) {
		reap_now(pid, pidfd, grace_ms);
		return;
	}
	r->pid = pid;
	r->pidfd = pidfd;
	r->exited = event_new(reap_base, pidfd, EV_READ, reap_exited_cb, r);
	r->grace = evtimer_new(reap_base, reap_grace_cb, r);
	LIST_INSERT_HEAD(&reaps, r, link);
	nreaps++;
	event_add(r->exited, NULL);
	loop_wait_add(r->grace, grace_ms); /* reap_base is the loop's */
}

void
reap_now(pid_t pid, int pidfd, unsigned grace_ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};

	if (poll(&p, 1, (int)grace_ms) <= 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	reap_collect(pid);
	close(pidfd);
}

size_t
reap_pending(void)
{
	return nreaps;
}

/* On exit: what is left gets SIGKILL now and is reaped. */
void
reap_shutdown(void)
{
	struct reap *r;

	while ((r = LIST_FIRST(&reaps)) != NULL) {
		kill(-r->pid, SIGKILL);
		kill(r->pid, SIGKILL);
		reap_collect(r->pid);
		reap_free(r);
	}
}
