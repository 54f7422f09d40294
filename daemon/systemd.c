/*
 * systemd.c -- libsystemd, loaded (dlopen) at its first use, the first
 * time concd is asked for what only systemd gives: sockets it passed,
 * its watchdog, its journal.  A concd started by hand, in a container or
 * by a test does not map it: with the libraries it brings (libgcrypt,
 * liblzma, libzstd, liblz4, libcap, libgpg-error) it was 0.9 MiB of an
 * idle concd's 5 MiB.  The rest of systemd's protocol (sd_notify's
 * datagrams) is notify.c's own.
 *
 * On log.c's floor, for log.c and notify.c: it calls nothing of concd's,
 * and says why the library could not be had through systemd_error.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include "systemd.h"

#define SYSTEMD_LIB "libsystemd.so.0"

static struct {
	pthread_once_t once;
	void *lib;
	int (*listen_fds)(int);
	int (*watchdog_enabled)(int, uint64_t *);
	int (*journal_sendv)(const struct iovec *, int);
	char error[256];
} sd = {.once = PTHREAD_ONCE_INIT};

/* the pointers above are of the header's types */
_Static_assert(_Generic(&sd_listen_fds, int (*)(int) : 1, default : 0),
               "sd_listen_fds");
_Static_assert(_Generic(&sd_watchdog_enabled, int (*)(int, uint64_t *) : 1,
                        default : 0),
               "sd_watchdog_enabled");
_Static_assert(_Generic(&sd_journal_sendv,
                        int (*)(const struct iovec *, int) : 1, default : 0),
               "sd_journal_sendv");

static void
systemd_load(void)
{
	const char *e;

	if ((sd.lib = dlopen(SYSTEMD_LIB, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		e = dlerror();
		snprintf(sd.error, sizeof(sd.error), "%s",
		         e != NULL ? e : SYSTEMD_LIB ": cannot be loaded");
		return;
	}
	/* POSIX's way from a symbol to a function pointer */
	*(void **)&sd.listen_fds = dlsym(sd.lib, "sd_listen_fds");
	*(void **)&sd.watchdog_enabled = dlsym(sd.lib, "sd_watchdog_enabled");
	*(void **)&sd.journal_sendv = dlsym(sd.lib, "sd_journal_sendv");
	if (sd.listen_fds == NULL || sd.watchdog_enabled == NULL ||
	    sd.journal_sendv == NULL) {
		snprintf(sd.error, sizeof(sd.error),
		         "%s: a function is missing", SYSTEMD_LIB);
		dlclose(sd.lib);
		sd.lib = NULL;
	}
}

static int
systemd_have(void)
{
	pthread_once(&sd.once, systemd_load);
	return sd.lib != NULL ? 0 : -ELIBACC;
}

const char *
systemd_error(void)
{
	return sd.error;
}

int
systemd_listen_fds(void)
{
	int rc;

	/* sd_listen_fds(1) would also unset the variables: none are set */
	if (getenv("LISTEN_PID") == NULL)
		return 0;
	if ((rc = systemd_have()) < 0)
		return rc;
	return sd.listen_fds(1);
}

int
systemd_watchdog_enabled(uint64_t *usec)
{
	int rc;

	if (getenv("WATCHDOG_USEC") == NULL)
		return 0;
	if ((rc = systemd_have()) < 0)
		return rc;
	return sd.watchdog_enabled(0, usec);
}

int
systemd_journal_sendv(const struct iovec *iov, int n)
{
	int rc;

	if ((rc = systemd_have()) < 0)
		return rc;
	return sd.journal_sendv(iov, n);
}
