/*
 * systemd.h -- systemd.c: libsystemd, loaded at its first use.
 */
#ifndef SYSTEMD_H
#define SYSTEMD_H

#include <sys/uio.h>

#include <stdint.h>

/*
 * As libsystemd's functions of the same names (sd_listen_fds,
 * sd_watchdog_enabled, sd_journal_sendv); -ELIBACC when the library
 * cannot be loaded (systemd_error says why).  The first two load it only
 * when the service manager passed what they read (LISTEN_PID,
 * WATCHDOG_USEC).  From any thread.
 */
int systemd_listen_fds(void);
int systemd_watchdog_enabled(uint64_t *usec);
int systemd_journal_sendv(const struct iovec *iov, int n);
const char *systemd_error(void);

#endif
