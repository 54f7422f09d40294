/*
 * notify.c -- the daemon's contact with its service manager: socket
 * activation and the watchdog (libsystemd's, through systemd.c) and the
 * notify protocol.
 * Notifications are datagrams sent without blocking: a manager that does
 * not read its socket costs a STATUS= line, never a stalled loop.  Both
 * do nothing outside systemd.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"
#include "systemd.h"

static struct {
	int fd;
	struct sockaddr_un addr;
	socklen_t len;
	bool tried;
} nt = {.fd = -1};

int
notify_listen_fds(int *fds, int max)
{
	int n, i;

	n = systemd_listen_fds();
	if (n == -ELIBACC) {
		log_warnx("socket activation: %s", systemd_error());
		return 0;
	}
	if (n < 0) {
		log_warnx("sd_listen_fds: %s", strerror(-n));
		return 0;
	}
	for (i = 0; i < n && i < max; i++)
		fds[i] = SD_LISTEN_FDS_START + i;
	return n < max ? n : max;
}

/* $NOTIFY_SOCKET: a path, or '@' for the abstract namespace. */
static void
notify_open(void)
{
	const char *p = getenv("NOTIFY_SOCKET");
	size_t n;

	nt.tried = true;
	if (p == NULL || (p[0] != '/' && p[0] != '@') ||
	    (n = strlen(p)) >= sizeof(nt.addr.sun_path))
		return;
	nt.addr.sun_family = AF_UNIX;
	memcpy(nt.addr.sun_path, p, n);
	if (p[0] == '@')
		nt.addr.sun_path[0] = '\0';
	nt.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	nt.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
}

static void
notify_send(const char *msg)
{
	if (!nt.tried)
		notify_open();
	if (nt.fd < 0)
		return;
	if (sendto(nt.fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
	           (struct sockaddr *)&nt.addr, nt.len) < 0)
		log_debug("notify: %s: %s", msg, strerror(errno));
}

bool
notify_enabled(void)
{
	if (!nt.tried)
		notify_open();
	return nt.fd >= 0;
}

void
notify_ready(void)
{
	notify_send("READY=1");
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1");
}

void
notify_status(const char *status)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "STATUS=%s", status);
	notify_send(msg);
}

void
notify_watchdog(void)
{
	notify_send("WATCHDOG=1");
}

/* Half of WatchdogSec, in µs, or 0 when no watchdog is asked for. */
uint64_t
notify_watchdog_interval(void)
{
	uint64_t usec = 0;
	int rc = systemd_watchdog_enabled(&usec);

	if (rc == -ELIBACC)
		log_warnx("watchdog: %s", systemd_error());
	if (rc <= 0)
		return 0;
	return usec / 2;
}

void
notify_close(void)
{
	if (nt.fd >= 0)
		close(nt.fd);
	nt.fd = -1;
}
