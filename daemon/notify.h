/*
 * notify.h -- notify.c: systemd, and nothing else, lives here.
 */
#ifndef NOTIFY_H
#define NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

int notify_listen_fds(int *fds, int max);
bool notify_enabled(void); /* is there a NOTIFY_SOCKET to tell? */
void notify_ready(void);
void notify_stopping(void);
void notify_status(const char *);
void notify_watchdog(void);
uint64_t notify_watchdog_interval(void);
void notify_close(void);

#endif
