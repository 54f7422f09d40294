/*
 * log.c -- messages to stderr.  When stderr is the journal's stream each
 * line starts with a <N> syslog priority, which journald turns into the
 * entry's priority; in a terminal, a file or a pipe the lines are plain.
 * A daemon that went to the background writes to its caller's stderr
 * until it serves, then to syslog(3).
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static bool log_prefix;
static bool log_debugging;
static bool log_silent;
static bool log_syslog;
static int log_fd = STDERR_FILENO;

/* Worker processes leave the talking to the daemon. */
void
log_silence(void)
{
	log_silent = true;
}

/*
 * systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it connected
 * stderr to.  The variable is inherited by everything started below the
 * service (a shell in a terminal, say), so it counts only while stderr is
 * still that stream.
 */
static bool
log_stderr_is_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int end = 0;

	if (v == NULL || sscanf(v, "%llu:%llu%n", &dev, &ino, &end) != 2 ||
	    v[end] != '\0' || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void
log_init(bool debug)
{
	log_debugging = debug;
	log_prefix = log_stderr_is_journal();
}

/* Write to fd instead of stderr (the caller's, kept while detaching). */
void
log_to_fd(int fd)
{
	log_fd = fd;
}

/* From now on, syslog(3); the descriptor log_to_fd gave is closed. */
void
log_to_syslog(void)
{
	openlog("concd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = true;
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = -1;
}

static void
log_vwrite(int pri, const char *fmt, va_list ap, const char *err)
{
	char line[1024];
	size_t len;
	int n = 0;

	/* syslog(3) adds a priority and a name of its own */
	if (log_prefix && !log_syslog)
		n = snprintf(line, sizeof(line), "<%d>", pri);
	else if (!log_syslog)
		n = snprintf(line, sizeof(line), "concd: ");
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	len = strlen(line);
	if (err != NULL)
		snprintf(line + len, sizeof(line) - len, ": %s", err);
	if (log_syslog) {
		syslog(pri, "%s", line);
		return;
	}
	/* one write per line: lines from several threads stay whole */
	len = strlen(line);
	if (len == sizeof(line) - 1)
		len--;
	line[len++] = '\n';
	(void)write(log_fd, line, len);
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
