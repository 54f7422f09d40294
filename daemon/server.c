/*
 * server.c -- the listening socket (bound here or handed over by
 * systemd), accepting connections, signals, and the orderly stop.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "deps.h"
#include "executor.h"
#include "hook.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "pool_process.h"
#include "pool_thread.h"
#include "queue.h"
#include "reap.h"
#include "request.h"
#include "server.h"
#include "store.h"
#include "task.h"

#define SERVER_MAX_LISTEN 8

static struct {
	int fds[SERVER_MAX_LISTEN];
	struct event *ev[SERVER_MAX_LISTEN];
	int nfds;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool bound;      /* we made path, so we remove it */
	char names[256]; /* what we listen on, for the log */
	struct event *backoff;
	struct event *watchdog;
	struct event *sig[3];
	uid_t uid;
	struct server_options *opt;
} srv;

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

/* How long a daemon that takes our connection has to answer a ping. */
#define PROBE_MS 5000

/*
 * Is a daemon already answering on path?  One killed a moment ago can
 * still hold its socket while the kernel takes its process apart, or
 * while a command it was starting has not yet executed: the socket's
 * backlog takes the connection, then drops it once the last copy is
 * closed.  So a daemon is there only if it answers a ping (any frame
 * back will do), or keeps the connection PROBE_MS without answering:
 * one that is stuck is not for us to replace.
 */
static bool
socket_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	struct pbuf b = {0};
	struct proto_enc e;
	bool alive = false;
	char c;
	int n;

	if (fd < 0)
		return false;
	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0) {
		proto_enc_begin(&e, &b, PROTO_PING, 1);
		proto_enc_end(&e);
		if (send(fd, b.data, b.len, MSG_NOSIGNAL) == (ssize_t)b.len) {
			while ((n = poll(&p, 1, PROBE_MS)) < 0 &&
			       errno == EINTR)
				;
			alive = n == 0 || recv(fd, &c, 1, 0) == 1;
		}
		pbuf_free(&b);
	}
	close(fd);
	return alive;
}

/*
 * The name of a socket systemd handed over: its path, @name for the
 * abstract namespace, or the descriptor when it has no name.
 */
static void
server_socket_name(int fd, char *buf, size_t size)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	size_t n;

	memset(&sun, 0, sizeof(sun));
	if (getsockname(fd, (struct sockaddr *)&sun, &len) < 0 ||
	    sun.sun_family != AF_UNIX ||
	    len <= offsetof(struct sockaddr_un, sun_path)) {
		snprintf(buf, size, "fd %d", fd);
		return;
	}
	n = len - offsetof(struct sockaddr_un, sun_path);
	if (sun.sun_path[0] == '\0')
		snprintf(buf, size, "@%.*s", (int)(n - 1), sun.sun_path + 1);
	else
		snprintf(buf, size, "%.*s", (int)strnlen(sun.sun_path, n),
		         sun.sun_path);
}

/* What concd listens on: a path, or those of the sockets handed over. */
const char *
server_listen_names(void)
{
	return srv.names;
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
			size_t off = strlen(srv.names);

			fcntl(srv.fds[n], F_SETFL, fl | O_NONBLOCK);
			fcntl(srv.fds[n], F_SETFD, FD_CLOEXEC);
			if (n > 0 && off + 2 < sizeof(srv.names)) {
				strcpy(srv.names + off, ", ");
				off += 2;
			}
			server_socket_name(srv.fds[n], srv.names + off,
			                   sizeof(srv.names) - off);
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
	snprintf(srv.names, sizeof(srv.names), "%s", path);
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
		if (conn_new_with(fd, &request_handler, NULL) == NULL)
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
	size_t parked;       /* held, paused, scheduled, after those: kept */
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
	event_base_loopexit(loop_base, NULL);
}

static size_t
server_active(void)
{
	size_t counts[PS_COUNT];

	job_counts(counts);
	/*
	 * with a store, the jobs parked in the queue, and those that wait for
	 * them, wait for the next start
	 */
	return counts[PS_QUEUED] + counts[PS_RUNNING] -
	       (store_enabled() ? queue_parked_count() + deps_parked() : 0);
}

/* Stop once nothing is queued or running. */
static void
server_stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
	if (server_active() + reap_pending() > 0)
		return;
	event_del(stop.check);
	evtimer_del(stop.timer);
	/* one more pass lets the final events go out first */
	event_base_once(loop_base, -1, EV_TIMEOUT, server_exit_cb, NULL, NULL);
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
 * One job of server_cancel's: whether it was a queued job cut off (the
 * cut counts those, and names the others).
 */
static bool
server_cancel_one(struct job *j, bool all, bool queued)
{
	bool was_queued = j->state == PS_QUEUED;

	if (all && atomic_load(&j->ctx.cancel))
		return false; /* a daemon or dropped job still ending */
	if (!j->daemon && store_enabled() &&
	    (queue_parked(j) || deps_is_parked(j))) {
		stop.parked += !all;
		return false; /* queued in the store for the next start */
	}
	if (all) {
		if (!j->daemon)
			stop.cut++;
		else
			stop.killed++;
		if (!was_queued)
			log_warnx("job %llu (%s) cut off while %s",
			          (unsigned long long)j->id, j->task->name,
			          proto_states[j->state]);
	} else if (j->daemon) {
		stop.killed++;
	} else if ((queued || queue_parked(j)) && was_queued) {
		stop.dropped++;
	} else {
		stop.draining++;
		return false;
	}
	job_cancel(j);
	return all && was_queued;
}

/*
 * Ids first: finishing a job may free others, so no walk while
 * cancelling.  all: every active job (the cut), else the daemon ones and
 * (with queued) the queued ones.  The cut takes the queued jobs first,
 * so that no worker a running job leaves starts one of them.
 */
static void
server_cancel(bool all, bool queued)
{
	struct id_list l = {NULL, 0, 0};
	struct job *j;
	size_t i, cut_queued = 0;
	int pass;

	job_foreach(server_collect_cb, &l);
	if (store_enabled())
		(void)deps_parked(); /* marks them for deps_is_parked */
	for (pass = all ? 0 : 1; pass < 2; pass++)
		for (i = 0; i < l.n; i++)
			if ((j = job_find(l.ids[i])) != NULL &&
			    !PROTO_STATE_FINAL(j->state) &&
			    (pass == 1 || j->state == PS_QUEUED))
				cut_queued += server_cancel_one(j, all, queued);
	if (cut_queued > 0)
		log_warnx("%zu queued jobs cut off", cut_queued);
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
	evtimer_assign(stop.timer, loop_base, server_hard_limit_cb, NULL);
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

	if (loop_stopping())
		return;
	loop_set_stopping();
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
	if (stop.parked > 0)
		log_info("%zu held, paused or scheduled jobs, and jobs that "
		         "wait for them, stay queued in the store for the next "
		         "start",
		         stop.parked);
	sched_status_stopping();
	stop.check =
	    event_new(loop_base, -1, EV_PERSIST, server_stop_check_cb, NULL);
	stop.timer = evtimer_new(loop_base, server_stop_timeout_cb, NULL);
	evtimer_add(stop.timer, &limit);
	event_active(stop.check, 0, 1);
}

/* loop_changed() runs this on every state change. */
static void
server_changed_cb(void *arg)
{
	if (loop_stopping() && stop.check != NULL)
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
	char cause[512], *on_end;

	o.socket_path = o.plugin_dir = o.config_path = o.state_dir = NULL;
	o.limits = o.on_end = NULL;
	o.groups = NULL;
	o.ngroups = 0;
	memset(&o.slurm, 0, sizeof(o.slurm)); /* read at start only */
	/* who may do what: a key taken out of the file is revoked */
	o.exec_other_users = 0;
	o.admin_gid = -1;
	/* asked to read the file: a missing one is an error here */
	if (config_load(srv.opt->config_path, true, &o,
	                srv.opt->cmdline | fixed, cause, sizeof(cause)) < 0) {
		log_warnx("reload: %s; keeping the running configuration",
		          cause);
		config_free(&o);
		return;
	}
	if (queue_config(o.groups, o.ngroups, cause, sizeof(cause)) < 0)
		log_warnx("reload: %s", cause);
	on_end = o.on_end; /* the one string kept */
	o.on_end = NULL;
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
	srv.opt->user_job_limit = o.user_job_limit;
	job_set_user_limit((size_t)o.user_job_limit);
	job_set_retention(srv.opt->max_finished, (uint64_t)o.finished_ttl);
	store_set_retention(srv.opt->max_finished, (uint64_t)o.finished_ttl);
	pool_process_set_max_jobs(o.max_jobs_per_worker);
	srv.opt->user_worker_idle = o.user_worker_idle;
	pool_process_set_user_idle(o.user_worker_idle);
	if (hook_set_on_end(on_end) == 0) {
		free(srv.opt->on_end);
		srv.opt->on_end = on_end;
	} else {
		free(on_end);
	}
	srv.opt->exec_other_users = o.exec_other_users;
	srv.opt->admin_gid = o.admin_gid;
	request_set_policy(o.exec_other_users != 0, o.admin_gid);
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
			event_base_loopexit(loop_base, NULL);
		} else if (loop_stopping())
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
	if (loop_hook_changed(server_changed_cb, NULL) < 0)
		fatalx("server_start: no room for a loop hook");
	request_hook_shutdown(server_shutdown);
	request_set_policy(opt->exec_other_users != 0, opt->admin_gid);
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < 3; i++) {
		srv.sig[i] =
		    evsignal_new(loop_base, sigs[i], server_signal_cb, NULL);
		evsignal_add(srv.sig[i], NULL);
	}
	srv.backoff = evtimer_new(loop_base, server_backoff_cb, NULL);
	if (wd > 0) {
		/* the loop answers WatchdogSec= as long as it turns */
		struct timeval tv = {(time_t)(wd / 1000000),
		                     (suseconds_t)(wd % 1000000)};

		srv.watchdog = event_new(loop_base, -1, EV_PERSIST,
		                         server_watchdog_cb, NULL);
		event_add(srv.watchdog, &tv);
	}
	for (i = 0; i < srv.nfds; i++) {
		srv.ev[i] =
		    event_new(loop_base, srv.fds[i], EV_READ | EV_PERSIST,
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
	if (srv.bound && !loop_stopping())
		unlink(srv.path);
}
