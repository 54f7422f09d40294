/*
 * log.c -- messages to stderr.  Under systemd each line starts with a
 * <N> syslog priority, which journald turns into the entry's priority;
 * in a terminal the lines are plain.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "concd.h"

static bool log_prefix;
static bool log_debugging;
static bool log_silent;

/* Worker processes leave the talking to the daemon. */
void
log_silence(void)
{
	log_silent = true;
}

void
log_init(bool debug)
{
	log_debugging = debug;
	log_prefix =
	    getenv("INVOCATION_ID") != NULL || getenv("JOURNAL_STREAM") != NULL;
}

static void
log_vwrite(int pri, const char *fmt, va_list ap, const char *err)
{
	char line[1024];
	int n = 0;

	if (log_prefix)
		n = snprintf(line, sizeof(line), "<%d>", pri);
	else
		n = snprintf(line, sizeof(line), "concd: ");
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (err != NULL)
		fprintf(stderr, "%s: %s\n", line, err);
	else
		fprintf(stderr, "%s\n", line);
}

static bool
log_wanted(int pri)
{
	return !log_silent && (pri != LOG_DEBUG || log_debugging);
}

void
log_warn(const char *fmt, ...)
{
	const char *err = strerror(errno);
	va_list ap;

	if (!log_wanted(LOG_WARNING))
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, fmt, ap, err);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	if (!log_wanted(LOG_WARNING))
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_WARNING, fmt, ap, NULL);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	if (!log_wanted(LOG_INFO))
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_INFO, fmt, ap, NULL);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_wanted(LOG_DEBUG))
		return;
	va_start(ap, fmt);
	log_vwrite(LOG_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, fmt, ap, err);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
