/*
 * log.c -- messages to stderr.  When stderr is the journal's stream each
 * line starts with a <N> syslog priority, which journald turns into the
 * entry's priority; in a terminal, a file or a pipe the lines are plain.
 * A daemon that went to the background writes to its caller's stderr
 * until it serves, then to syslog(3).
 */
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "systemd.h"

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

/* ---- the audit trail: one record per event in a job's life ---- */

/* Bytes that need no quoting in a shell word. */
static bool
log_word_plain(const char *w, size_t n)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyz"
	                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                            "0123456789_@%+=:,./-";
	size_t i;

	for (i = 0; i < n; i++)
		if (w[i] == '\0' || strchr(plain, w[i]) == NULL)
			return false;
	return n > 0;
}

/* A control character or a byte that is not UTF-8 somewhere in w? */
static bool
log_word_binary(const char *w, size_t n)
{
	const unsigned char *p = (const unsigned char *)w;
	size_t i, k;

	for (i = 0; i < n; i += k) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return true;
		if ((k = proto_utf8_seq(p + i, n - i)) == 0)
			return true;
	}
	return false;
}

/* What is written so far of a line, cut at its size (out.cut). */
struct log_out {
	char *buf;
	size_t size; /* of buf, the NUL included */
	size_t len;
	bool cut;
};

static void
log_put(struct log_out *o, const char *s, size_t n)
{
	size_t room = o->size - 1 - o->len;

	if (n > room) {
		n = room;
		o->cut = true;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

/* Inside $'...': the letter of c's backslash escape, or 0. */
static char
log_escape(char c)
{
	static const struct {
		char c, name;
	} escapes[] = {
	    {'\\', '\\'}, {'\'', '\''}, {'\n', 'n'}, {'\t', 't'}, {'\r', 'r'},
	};
	size_t i;

	for (i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++)
		if (escapes[i].c == c)
			return escapes[i].name;
	return '\0';
}

/*
 * One argv word as a POSIX shell reads it back: as is when it holds only
 * plain characters, else in single quotes ('\'' for a quote); a word
 * with control characters or bytes that are not UTF-8 in bash's $'...',
 * with \n, \t, \xNN, so that the line stays one line.
 */
static void
log_word(struct log_out *o, const char *w, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)w;
	size_t i, k;

	if (log_word_plain(w, n)) {
		log_put(o, w, n);
		return;
	}
	if (!log_word_binary(w, n)) {
		log_put(o, "'", 1);
		for (i = 0; i < n; i++)
			if (w[i] == '\'')
				log_put(o, "'\\''", 4);
			else
				log_put(o, w + i, 1);
		log_put(o, "'", 1);
		return;
	}
	log_put(o, "$'", 2);
	for (i = 0; i < n; i += k) {
		char esc[4] = {'\\', 'x', hex[p[i] >> 4], hex[p[i] & 15]};

		k = 1;
		if ((esc[1] = log_escape(w[i])) != '\0')
			log_put(o, esc, 2);
		else if (p[i] < 0x20 || p[i] == 0x7f ||
		         (k = proto_utf8_seq(p + i, n - i)) == 0) {
			k = 1;
			esc[1] = 'x';
			log_put(o, esc, 4);
		} else
			log_put(o, w + i, k);
	}
	log_put(o, "'", 1);
}

/* The "argv" array of a msgpack map, or NULL. */
static const msgpack_object_array *
log_argv(const msgpack_object *args)
{
	uint32_t i;

	if (args->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (i = 0; i < args->via.map.size; i++) {
		const msgpack_object_kv *kv = &args->via.map.ptr[i];

		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == 4 &&
		    memcmp(kv->key.via.str.ptr, "argv", 4) == 0 &&
		    kv->val.type == MSGPACK_OBJECT_ARRAY)
			return &kv->val.via.array;
	}
	return NULL;
}

size_t
log_command(char *buf, size_t len, const char *args, size_t args_len)
{
	struct log_out o = {buf, len, 0, false};
	const msgpack_object_array *argv;
	msgpack_unpacked u;
	size_t off = 0;
	uint32_t i;

	if (len == 0)
		return 0;
	msgpack_unpacked_init(&u);
	if (args != NULL &&
	    msgpack_unpack_next(&u, args, args_len, &off) ==
	        MSGPACK_UNPACK_SUCCESS &&
	    (argv = log_argv(&u.data)) != NULL) {
		for (i = 0; i < argv->size && !o.cut; i++) {
			const msgpack_object *w = &argv->ptr[i];

			if (i > 0)
				log_put(&o, " ", 1);
			if (w->type == MSGPACK_OBJECT_STR)
				log_word(&o, w->via.str.ptr, w->via.str.size);
			else
				log_put(&o, "?", 1);
		}
	}
	msgpack_unpacked_destroy(&u);
	if (o.cut && len > 4) {
		/* "..." in place of the end, not inside a character */
		o.len = len - 4;
		while (o.len > 0 && ((unsigned char)buf[o.len] & 0xc0) == 0x80)
			o.len--;
		memcpy(buf + o.len, "...", 3);
		o.len += 3;
	}
	buf[o.len] = '\0';
	return o.len;
}

/* A field the caller left out, as the line shows it. */
static const char *
log_or_dash(const char *s)
{
	return s != NULL ? s : "-";
}

/*
 * "job 42 accepted: uid 1000 exec sleep 1": who ran what, when a job is
 * accepted; "job 42 finished: failed (task_failed)": the outcome, on any
 * other event.
 */
static size_t log_job_line_fast(char *, const struct log_job *);

size_t
log_job_line(char *buf, size_t len, const struct log_job *j)
{
	char line[LOG_JOB_LINE + 128];
	size_t n = log_job_line_fast(line, j);

	if (len == 0)
		return 0;
	if (n >= len)
		n = len - 1;
	memcpy(buf, line, n);
	buf[n] = '\0';
	return n;
}

/* One "NAME=value" field in the rest of buf, its iovec in iov[*n]. */
static void log_field(struct iovec *iov, size_t *n, struct log_out *o,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
log_field(struct iovec *iov, size_t *n, struct log_out *o, const char *fmt, ...)
{
	size_t room = o->size - o->len;
	va_list ap;
	int w;

	if (room <= 1)
		return;
	va_start(ap, fmt);
	w = vsnprintf(o->buf + o->len, room, fmt, ap);
	va_end(ap);
	if (w < 0)
		return;
	if ((size_t)w >= room)
		w = (int)room - 1;
	iov[*n].iov_base = o->buf + o->len;
	iov[*n].iov_len = (size_t)w;
	(*n)++;
	o->len += (size_t)w + 1; /* past the NUL */
}

size_t
log_job_fields(const struct log_job *j, struct iovec iov[LOG_JOB_FIELDS],
               char *buf, size_t len)
{
	struct log_out o = {buf, len, 0, false};
	char line[LOG_JOB_LINE];
	size_t n = 0;

	log_job_line(line, sizeof(line), j);
	log_field(iov, &n, &o, "MESSAGE=%s", line);
	log_field(iov, &n, &o, "PRIORITY=%d", LOG_INFO);
	log_field(iov, &n, &o, "SYSLOG_IDENTIFIER=concd");
	log_field(iov, &n, &o, "JOB_ID=%llu", (unsigned long long)j->id);
	log_field(iov, &n, &o, "JOB_EVENT=%s", log_or_dash(j->event));
	log_field(iov, &n, &o, "TASK=%s", log_or_dash(j->task));
	log_field(iov, &n, &o, "OWNER_UID=%u", (unsigned)j->uid);
	if (j->state != NULL)
		log_field(iov, &n, &o, "STATE=%s", j->state);
	if (j->error != NULL)
		log_field(iov, &n, &o, "ERROR=%s", j->error);
	if (j->command != NULL)
		log_field(iov, &n, &o, "COMMAND=%s", j->command);
	return n;
}

/*
 * To the journal with fields of its own when stderr is the journal's
 * stream, else one info line; from any thread.  A record the journal
 * refuses goes to stderr as a line.
 */
void
log_job(const struct log_job *j)
{
	struct iovec iov[LOG_JOB_FIELDS];
	char buf[2 * LOG_JOB_LINE + 256];
	char line[LOG_JOB_LINE];
	size_t n;

	if (!log_wanted(LOG_INFO))
		return;
	if (log_prefix && !log_syslog) { /* stderr is the journal */
		static atomic_bool told;
		int rc;

		n = log_job_fields(j, iov, buf, sizeof(buf));
		if ((rc = systemd_journal_sendv(iov, (int)n)) >= 0)
			return;
		if (rc == -ELIBACC && !atomic_exchange(&told, true))
			log_warnx("journal: %s; job records go as lines",
			          systemd_error());
	}
	log_job_line(line, sizeof(line), j);
	log_info("%s", line);
}

/* Append s (at most max bytes of it) at p; the end. */
static char *
log_fast(char *p, const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	memcpy(p, s, n);
	return p + n;
}

static char *
log_fast_u64(char *p, uint64_t v)
{
	char d[20];
	size_t n = 0;

	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	while (n > 0)
		*p++ = d[--n];
	return p;
}

/*
 * log_job_line's line, written by hand: a busy store logs hundreds of
 * thousands a second, and printf's share of that was large.
 */
static size_t
log_job_line_fast(char *buf, const struct log_job *j)
{
	const char *event = log_or_dash(j->event);
	char *p = buf;

	p = log_fast(p, "job ", 4);
	p = log_fast_u64(p, j->id);
	*p++ = ' ';
	p = log_fast(p, event, 32);
	p = log_fast(p, ": ", 2);
	if (strcmp(event, "accepted") == 0) {
		p = log_fast(p, "uid ", 4);
		p = log_fast_u64(p, j->uid);
		*p++ = ' ';
		p = log_fast(p, log_or_dash(j->task), 64);
		if (j->command != NULL) {
			*p++ = ' ';
			p = log_fast(p, j->command, LOG_JOB_LINE - 200);
		}
	} else {
		p = log_fast(p, log_or_dash(j->state), 32);
		if (j->error != NULL) {
			p = log_fast(p, " (", 2);
			p = log_fast(p, j->error, 32);
			*p++ = ')';
		}
	}
	return (size_t)(p - buf);
}

/*
 * Many events at once (a store batch): to the journal one by one, else
 * their lines in as few writes as a 64 KiB buffer allows, each line
 * whole.
 */
void
log_jobs(const struct log_job *jobs, size_t n)
{
	char buf[65536];
	size_t i, len = 0;

	if (!log_wanted(LOG_INFO))
		return;
	if (log_syslog || log_prefix || log_fd < 0) {
		for (i = 0; i < n; i++)
			log_job(&jobs[i]);
		return;
	}
	for (i = 0; i < n; i++) {
		if (sizeof(buf) - len < LOG_JOB_LINE + 16) {
			(void)write(log_fd, buf, len);
			len = 0;
		}
		memcpy(buf + len, "concd: ", 7);
		len += 7;
		len += log_job_line_fast(buf + len, &jobs[i]);
		buf[len++] = '\n';
	}
	if (len > 0)
		(void)write(log_fd, buf, len);
}
