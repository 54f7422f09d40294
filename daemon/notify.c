/*
 * notify.c -- the daemon's only contact with libsystemd: socket
 * activation and sd_notify.  Both do nothing outside systemd.
 */
#include <string.h>

#include <systemd/sd-daemon.h>

#include "concd.h"

int
notify_listen_fds(int *fds, int max)
{
	int n, i;

	n = sd_listen_fds(1);
	if (n < 0) {
		log_warnx("sd_listen_fds: %s", strerror(-n));
		return 0;
	}
	for (i = 0; i < n && i < max; i++)
		fds[i] = SD_LISTEN_FDS_START + i;
	return n < max ? n : max;
}

void
notify_ready(void)
{
	sd_notify(0, "READY=1");
}

void
notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void
notify_status(const char *status)
{
	sd_notifyf(0, "STATUS=%s", status);
}
