/*
 * server.c -- the listening socket (bound here or handed over by
 * systemd), accepting connections, signals, and the orderly stop.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "concd.h"

#define SERVER_MAX_LISTEN 8

struct event_base *server_base;

static struct {
	int fds[SERVER_MAX_LISTEN];
	struct event *ev[SERVER_MAX_LISTEN];
	int nfds;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool bound; /* we made path, so we remove it */
	struct event *backoff;
	struct event *watchdog;
	struct event *sig[3];
	bool stopping;
	uid_t uid;
	uint64_t started;
	struct server_options *opt;
} srv;

uint64_t
server_started_us(void)
{
	return srv.started;
}

uint64_t
server_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * Busy polling.  On this kind of machine a wake-up from epoll_wait costs
 * about as much as the rest of a job's round trip, so after the loop has
 * had work it keeps looking for more, without sleeping, for busy_poll µs;
 * a request, a reply from a worker process or a result from a worker
 * thread arriving in that window costs no wake-up.  The window restarts
 * whenever a pass finds something; sched_yield between passes gives the
 * CPU to anything else runnable, and once a yield shows that something
 * else wanted the CPU, the loop sleeps: polling only uses idle time.  An
 * idle daemon sleeps.
 *
 * The window adapts, as KVM's halt polling does: a window that finds no
 * request or result halves the next one, down to none; work that comes
 * sooner than busy_poll µs after the loop went to sleep, which a window
 * would have caught, doubles it again, up to busy_poll.  Jobs that wake
 * the loop only for their own events (the pipes of exec commands, say)
 * so stop paying for windows that never find anything; polling also keeps
 * the core from going idle, and an idle core is where the kernel moves a
 * runnable task waiting on a busy one.
 *
 * While the loop polls, worker threads post their results without waking
 * it (server_wake): the loop's passes call sched_poll, which takes them.
 * Before it sleeps, the loop says so (server_polling = false) and then
 * looks once more; a thread posts, then reads server_polling.  With both
 * orders sequentially consistent, one of them sees the other: either the
 * thread wakes the loop, or the loop's last look finds the post.
 */
bool server_worked;
static atomic_bool server_polling;

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

void
server_wake(struct event *ev)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&server_polling, memory_order_relaxed))
		event_active(ev, EV_READ, 1);
}

/* The current window, in ns: 0 .. busy_poll. */
static uint64_t poll_window;

uint64_t
busy_poll_next(uint64_t window, uint64_t max, bool caught)
{
	if (!caught)
		return window / 2 < max / 8 ? 0 : window / 2;
	if (window == 0)
		return max / 8;
	return window * 2 > max ? max : window * 2;
}

/*
 * Poll until a quiet poll_window has passed: false if the loop must
 * exit.  A poll that found nothing halves the window.
 */
static bool
server_poll(uint64_t max)
{
	const int flags = EVLOOP_NONBLOCK | EVLOOP_NO_EXIT_ON_EMPTY;
	uint64_t now, until = mono_ns() + poll_window;
	bool found = false;

	atomic_store(&server_polling, true);
	for (;;) {
		server_worked = false;
		if (event_base_loop(server_base, flags) < 0 ||
		    event_base_got_exit(server_base)) {
			atomic_store(&server_polling, false);
			return false;
		}
		if (sched_poll() || server_worked) {
			found = true;
			until = mono_ns() + poll_window;
			continue;
		}
		if ((now = mono_ns()) < until) {
			sched_yield();
			/* a yield that ran something else: the CPU is wanted */
			if (mono_ns() - now < BUSY_POLL_CONTESTED_US * 1000)
				continue;
		}
		atomic_store(&server_polling, false);
		if (!sched_poll())
			break;
		atomic_store(&server_polling, true);
		found = true;
		until = mono_ns() + poll_window;
	}
	if (!found)
		poll_window = busy_poll_next(poll_window, max, false);
	return true;
}

void
server_run(int busy_poll_us)
{
	const int flags = EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY;
	uint64_t max = (uint64_t)busy_poll_us * 1000, slept = 0;

	poll_window = max;
	for (;;) {
		if (max > 0) {
			server_worked = false;
			slept = mono_ns();
		}
		if (event_base_loop(server_base, flags) < 0 ||
		    event_base_got_exit(server_base))
			return;
		if (max == 0)
			continue;
		/* work a window would have caught: widen it again */
		if (poll_window < max && server_worked &&
		    mono_ns() - slept < max)
			poll_window = busy_poll_next(poll_window, max, true);
		if (poll_window > 0 && !server_poll(max))
			return;
	}
}

uid_t
server_uid(void)
{
	return srv.uid;
}

bool
server_stopping(void)
{
	return srv.stopping;
}

static int
mkdir_parent(const char *path, mode_t mode)
{
	char dir[PATH_MAX], *p;

	if (strlen(path) >= sizeof(dir))
		return -1;
	strcpy(dir, path);
	if ((p = strrchr(dir, '/')) == NULL || p == dir)
		return 0;
	*p = '\0';
	for (p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(dir, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Is a daemon already answering on path? */
static bool
socket_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return false;
	alive = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return alive;
}

int
server_listen(const char *path, char *cause, size_t causelen)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t mask;
	int fd, n;

	srv.uid = geteuid();
	n = notify_listen_fds(srv.fds, SERVER_MAX_LISTEN);
	if (n > 0) {
		srv.nfds = n;
		for (n = 0; n < srv.nfds; n++) {
			int fl = fcntl(srv.fds[n], F_GETFL);
			fcntl(srv.fds[n], F_SETFL, fl | O_NONBLOCK);
			fcntl(srv.fds[n], F_SETFD, FD_CLOEXEC);
		}
		log_info("using %d socket(s) from systemd", srv.nfds);
		return 0;
	}

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(cause, causelen, "socket path too long: %s", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (mkdir_parent(path, srv.uid == 0 ? 0755 : 0700) < 0) {
		snprintf(cause, causelen,
		         "cannot create the directory of %s: %s", path,
		         strerror(errno));
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(cause, causelen,
			         "%s exists and is not a socket", path);
			return -1;
		}
		if (socket_alive(&sun)) {
			snprintf(cause, causelen,
			         "another concd is already listening on %s",
			         path);
			return -1;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(cause, causelen, "socket: %s", strerror(errno));
		return -1;
	}
	/* 0660 for the system instance (group concd), 0600 for a user's. */
	mask = umask(srv.uid == 0 ? 0117 : 0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(mask);
		snprintf(cause, causelen, "bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(mask);
	if (listen(fd, SOMAXCONN) < 0) {
		snprintf(cause, causelen, "listen %s: %s", path,
		         strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	strcpy(srv.path, path);
	srv.bound = true;
	srv.fds[0] = fd;
	srv.nfds = 1;
	return 0;
}

static void
server_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	int i;

	for (i = 0; i < srv.nfds; i++)
		event_add(srv.ev[i], NULL);
}

static void
server_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	static const struct timeval pause = {1, 0};
	int fd, i, n;

	/* A batch per wake-up; the rest wait for the next pass. */
	for (n = 0; n < 64; n++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				log_warn("accept: backing off for a second");
				for (i = 0; i < srv.nfds; i++)
					event_del(srv.ev[i]);
				evtimer_add(srv.backoff, &pause);
			} else if (errno != EAGAIN && errno != EINTR &&
			           errno != ECONNABORTED)
				log_warn("accept");
			return;
		}
		if (conn_new(fd) == NULL)
			close(fd);
	}
}

/*
 * Stopping: no new connections or jobs; --daemon jobs are killed at once;
 * the others are drained (queued ones too, unless cancel_pending) within
 * the stop timeout; then whatever is left is cut off.  Final events
 * reach the clients still connected before concd exits.
 */
static struct {
	struct event *check; /* runs on every state change */
	struct event *timer; /* the stop timeout, then the hard limit */
	size_t killed;       /* daemon jobs */
	size_t dropped;      /* queued jobs cancelled by cancel_pending */
	size_t draining;     /* non-daemon jobs waited for */
	size_t cut;          /* of those, cut off by timeout or signal */
	bool cutting;
} stop;

#define STOP_HARD_LIMIT 10 /* seconds for cancelled jobs to end */

static void
server_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	log_info("stopped: %zu jobs drained, %zu daemon jobs killed, "
	         "%zu queued jobs cancelled, %zu cut off",
	         stop.draining - stop.cut, stop.killed, stop.dropped, stop.cut);
	conn_flush_final(2000);
	event_base_loopexit(server_base, NULL);
}

static size_t
server_active(void)
{
	size_t counts[PS_COUNT];

	job_counts(counts);
	return counts[PS_QUEUED] + counts[PS_RUNNING];
}

/* Stop once nothing is queued or running. */
static void
server_stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
	size_t counts[PS_COUNT];
	char status[128];

	job_counts(counts);
	if (counts[PS_QUEUED] + counts[PS_RUNNING] + reap_pending() > 0) {
		snprintf(status, sizeof(status),
		         "stopping: draining %zu running, %zu queued",
		         counts[PS_RUNNING], counts[PS_QUEUED]);
		notify_status(status);
		return;
	}
	event_del(stop.check);
	evtimer_del(stop.timer);
	/* one more pass lets the final events go out first */
	event_base_once(server_base, -1, EV_TIMEOUT, server_exit_cb, NULL,
	                NULL);
}

struct id_list {
	uint64_t *ids;
	size_t n, cap;
};

static void
server_collect_cb(struct job *j, void *arg)
{
	struct id_list *l = arg;

	if (PROTO_STATE_FINAL(j->state))
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		uint64_t *p = realloc(l->ids, cap * sizeof(*p));
		if (p == NULL)
			return;
		l->ids = p;
		l->cap = cap;
	}
	l->ids[l->n++] = j->id;
}

/*
 * Ids first: finishing a job may free others, so no walk while
 * cancelling.  which: 0 all active jobs, 1 the daemon ones and (with
 * queued) the queued ones.
 */
static void
server_cancel(bool all, bool queued)
{
	struct id_list l = {NULL, 0, 0};
	struct job *j;
	size_t i;

	job_foreach(server_collect_cb, &l);
	for (i = 0; i < l.n; i++) {
		if ((j = job_find(l.ids[i])) == NULL ||
		    PROTO_STATE_FINAL(j->state))
			continue;
		if (all && atomic_load(&j->ctx.cancel))
			continue; /* a daemon or dropped job still ending */
		if (all) {
			if (!j->daemon)
				stop.cut++;
			else
				stop.killed++;
			log_warnx("job %llu (%s) cut off while %s",
			          (unsigned long long)j->id, j->task->name,
			          proto_states[j->state]);
		} else if (j->daemon) {
			stop.killed++;
		} else if (queued && j->state == PS_QUEUED) {
			stop.dropped++;
		} else {
			stop.draining++;
			continue;
		}
		job_cancel(j);
	}
	free(l.ids);
}

static void
server_hard_limit_cb(evutil_socket_t fd, short what, void *arg)
{
	log_warnx("%zu jobs did not end after being cancelled; exiting",
	          server_active());
	server_exit_cb(-1, 0, NULL);
}

/* The stop timeout, or a second signal: cancel what is left. */
static void
server_cut(const char *why)
{
	static const struct timeval hard = {STOP_HARD_LIMIT, 0};

	if (stop.cutting)
		return;
	stop.cutting = true;
	log_warnx("%s: cancelling the %zu jobs still active", why,
	          server_active());
	server_cancel(true, true);
	evtimer_del(stop.timer);
	evtimer_assign(stop.timer, server_base, server_hard_limit_cb, NULL);
	evtimer_add(stop.timer, &hard);
	event_active(stop.check, 0, 1);
}

static void
server_stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	server_cut("stop timeout");
}

void
server_shutdown(const char *why, bool cancel_pending)
{
	struct timeval limit = {srv.opt != NULL ? srv.opt->stop_timeout : 0, 0};
	int i;

	if (srv.stopping)
		return;
	srv.stopping = true;
	notify_stopping();
	for (i = 0; i < srv.nfds; i++) {
		event_del(srv.ev[i]);
		close(srv.fds[i]);
	}
	srv.nfds = 0;
	if (srv.bound)
		unlink(srv.path);
	server_cancel(false, cancel_pending);
	log_info("%s: stopping; draining %zu jobs (for at most %ld s), "
	         "killed %zu daemon jobs, cancelled %zu queued",
	         why, stop.draining, (long)limit.tv_sec, stop.killed,
	         stop.dropped);
	stop.check =
	    event_new(server_base, -1, EV_PERSIST, server_stop_check_cb, NULL);
	stop.timer = evtimer_new(server_base, server_stop_timeout_cb, NULL);
	evtimer_add(stop.timer, &limit);
	event_active(stop.check, 0, 1);
}

/* sched.c calls this on every state change. */
void
server_state_changed(void)
{
	if (srv.stopping && stop.check != NULL)
		event_active(stop.check, 0, 1);
}

/*
 * SIGHUP: read the config file again and apply what can change while
 * running (pool sizes, max-jobs-per-worker); jobs carry on.  Keys given
 * on the command line keep their values.
 */
static void
server_reload(void)
{
	struct server_options o = *srv.opt;
	uint32_t fixed = config_fixed_mask();
	char cause[512];

	o.socket_path = o.plugin_dir = o.config_path = NULL;
	if (config_load(srv.opt->config_path, false, &o,
	                srv.opt->cmdline | fixed, cause, sizeof(cause)) < 0) {
		log_warnx("reload: %s; keeping the running configuration",
		          cause);
		config_free(&o);
		return;
	}
	config_free(&o);
	if (o.threads != srv.opt->threads && pool_thread_resize(o.threads) == 0)
		srv.opt->threads = o.threads;
	if (o.processes != srv.opt->processes &&
	    pool_process_resize(o.processes) == 0)
		srv.opt->processes = o.processes;
	srv.opt->max_jobs_per_worker = o.max_jobs_per_worker;
	srv.opt->stop_timeout = o.stop_timeout;
	srv.opt->queue_limit = o.queue_limit;
	srv.opt->finished_ttl = o.finished_ttl;
	sched_set_queue_limit((size_t)o.queue_limit);
	job_set_retention(srv.opt->max_finished, (uint64_t)o.finished_ttl);
	pool_process_set_max_jobs(o.max_jobs_per_worker);
	log_info("reloaded %s: %d threads, %d processes", srv.opt->config_path,
	         pool_thread_size(), pool_process_size());
}

static void
server_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGHUP:
		server_reload();
		break;
	default:
		if (stop.cutting) {
			log_warnx("%s a third time: exiting now",
			          strsignal(sig));
			event_base_loopexit(server_base, NULL);
		} else if (srv.stopping)
			server_cut(strsignal(sig));
		else
			server_shutdown(strsignal(sig), false);
	}
}

static void
server_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	notify_watchdog();
}

void
server_start(struct server_options *opt)
{
	uint64_t wd = notify_watchdog_interval();
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
	int i;

	srv.opt = opt;
	srv.started = server_now_us();
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < 3; i++) {
		srv.sig[i] =
		    evsignal_new(server_base, sigs[i], server_signal_cb, NULL);
		evsignal_add(srv.sig[i], NULL);
	}
	srv.backoff = evtimer_new(server_base, server_backoff_cb, NULL);
	if (wd > 0) {
		/* the loop answers WatchdogSec= as long as it turns */
		struct timeval tv = {(time_t)(wd / 1000000),
		                     (suseconds_t)(wd % 1000000)};

		srv.watchdog = event_new(server_base, -1, EV_PERSIST,
		                         server_watchdog_cb, NULL);
		event_add(srv.watchdog, &tv);
	}
	for (i = 0; i < srv.nfds; i++) {
		srv.ev[i] =
		    event_new(server_base, srv.fds[i], EV_READ | EV_PERSIST,
		              server_accept_cb, NULL);
		event_add(srv.ev[i], NULL);
	}
}

void
server_free(void)
{
	int i;

	for (i = 0; i < 3; i++)
		if (srv.sig[i] != NULL)
			event_free(srv.sig[i]);
	for (i = 0; i < SERVER_MAX_LISTEN; i++)
		if (srv.ev[i] != NULL)
			event_free(srv.ev[i]);
	for (i = 0; i < srv.nfds; i++)
		close(srv.fds[i]);
	if (srv.backoff != NULL)
		event_free(srv.backoff);
	if (srv.watchdog != NULL)
		event_free(srv.watchdog);
	notify_close();
	if (stop.check != NULL)
		event_free(stop.check);
	if (stop.timer != NULL)
		event_free(stop.timer);
	if (srv.bound && !srv.stopping)
		unlink(srv.path);
}
