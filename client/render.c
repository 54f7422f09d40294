/*
 * render.c -- what the user sees: msgpack values as JSON or plain text,
 * tables, times and durations, and the progress of a job as a live bar
 * on a terminal or as one plain line per event.
 *
 * Text that comes from the daemon (messages, task names) is shown with
 * control characters replaced, so a job cannot drive the terminal;
 * results and a job's own output go to stdout (and stderr) as they are.
 */
#include <sys/ioctl.h>

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "concctl.h"

#define RENDER_BAR_WIDTH 20
#define RENDER_REDRAW_US 50000  /* at most 20 redraws a second */
#define RENDER_FIRST_US  200000 /* no bar for jobs quicker than this */

/*
 * Copy a daemon string into dst, NUL-terminated, without controls: each
 * C0 control, DEL and C1 control (U+0080 to U+009F, which a terminal may
 * take for ESC [ and the like) becomes '?'.
 */
const char *
render_safe(char *dst, size_t size, const char *s, size_t len)
{
	size_t i, o = 0;

	if (size == 0)
		return dst;
	if (s == NULL)
		len = 0;
	for (i = 0; i < len && o < size - 1; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == 0xc2 && i + 1 < len &&
		    (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f) {
			dst[o++] = '?';
			i++;
			continue;
		}
		dst[o++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	dst[o] = '\0';
	return dst;
}

/* A string field made printable, "-" when absent or empty. */
const char *
render_str(const struct proto_msg *m, enum proto_field f, char *buf,
           size_t size)
{
	const char *s;
	size_t len;

	if ((s = proto_str(m, f, &len)) == NULL || len == 0)
		return "-";
	return render_safe(buf, size, s, len);
}

/* A worker's index, "fresh" for one made for a single job, "-" for none. */
void
render_worker(const struct proto_msg *m, char *buf, size_t size)
{
	int64_t w = proto_i64(m, PF_WORKER, -1);

	if (!proto_has(m, PF_WORKER))
		snprintf(buf, size, "-");
	else if (w < 0)
		snprintf(buf, size, "fresh");
	else
		snprintf(buf, size, "%" PRId64, w);
}

void
render_table_init(struct render_table *t, size_t cols, size_t rows,
                  const char *const *titles, const bool *right)
{
	if (cols > RENDER_TABLE_MAX_COLS)
		errx(CTL_CONNECT, "render_table_init: %zu columns", cols);
	t->cols = cols;
	t->rows = rows;
	t->titles = titles;
	t->right = right;
	t->cell = calloc(rows * cols + 1, sizeof(*t->cell));
	t->below = calloc(rows + 1, sizeof(*t->below));
	if (t->cell == NULL || t->below == NULL)
		err(CTL_CONNECT, "calloc");
}

void
render_table_set(struct render_table *t, size_t row, size_t col, const char *s)
{
	free(t->cell[row * t->cols + col]);
	if ((t->cell[row * t->cols + col] = strdup(s)) == NULL)
		err(CTL_CONNECT, "strdup");
}

/* A line of its own under a row, indented to the second column. */
void
render_table_below(struct render_table *t, size_t row, const char *s)
{
	free(t->below[row]);
	if ((t->below[row] = strdup(s)) == NULL)
		err(CTL_CONNECT, "strdup");
}

static void
render_table_row(const struct render_table *t, const char *const *cells,
                 const size_t *width)
{
	size_t c;

	for (c = 0; c < t->cols; c++) {
		const char *s = cells[c] != NULL ? cells[c] : "";
		bool last = c + 1 == t->cols;

		if (t->right[c])
			printf("%*s", (int)width[c], s);
		else if (last)
			printf("%s", s);
		else
			printf("%-*s", (int)width[c], s);
		printf("%s", last ? "\n" : "  ");
	}
}

void
render_table_print(const struct render_table *t)
{
	size_t width[RENDER_TABLE_MAX_COLS] = {0}, r, c, len;

	for (c = 0; c < t->cols; c++)
		width[c] = strlen(t->titles[c]);
	for (r = 0; r < t->rows; r++) {
		for (c = 0; c < t->cols; c++) {
			const char *s = t->cell[r * t->cols + c];

			if (s != NULL && (len = strlen(s)) > width[c])
				width[c] = len;
		}
	}
	render_table_row(t, t->titles, width);
	for (r = 0; r < t->rows; r++) {
		render_table_row(t, (const char *const *)&t->cell[r * t->cols],
		                 width);
		if (t->below[r] != NULL)
			printf("%*s%s\n", (int)width[0] + 2, "", t->below[r]);
	}
}

void
render_table_free(struct render_table *t)
{
	size_t i;

	for (i = 0; i < t->rows * t->cols; i++)
		free(t->cell[i]);
	for (i = 0; i < t->rows; i++)
		free(t->below[i]);
	free(t->cell);
	free(t->below);
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
static json_t *
render_json_str(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	json_t *j;
	char *fixed;
	size_t i = 0, out = 0, n;

	if ((j = json_stringn(s, len)) != NULL)
		return j;
	if ((fixed = malloc(len * 3 + 1)) == NULL)
		return json_null();
	while (i < len) {
		if ((n = proto_utf8_seq(p + i, len - i)) == 0) {
			memcpy(fixed + out, "\xef\xbf\xbd", 3);
			out += 3;
			i++;
			continue;
		}
		memcpy(fixed + out, s + i, n);
		out += n;
		i += n;
	}
	j = json_stringn(fixed, out);
	free(fixed);
	return j != NULL ? j : json_null();
}

static json_t *
render_json_base64(const char *s, size_t len)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                             "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)s;
	char *out;
	size_t i, o = 0;
	json_t *j;

	if ((out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return json_null();
	for (i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		out[o++] = digits[v >> 18 & 63];
		out[o++] = digits[v >> 12 & 63];
		out[o++] = i + 1 < len ? digits[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? digits[v & 63] : '=';
	}
	j = json_stringn(out, o);
	free(out);
	return j;
}

static json_t *render_json(const msgpack_object *);

static json_t *
render_json_map(const msgpack_object_map *map)
{
	json_t *obj = json_object(), *key, *val;
	uint32_t i;
	char *text;

	for (i = 0; i < map->size; i++) {
		const msgpack_object *k = &map->ptr[i].key;

		val = render_json(&map->ptr[i].val);
		key = k->type == MSGPACK_OBJECT_STR
		          ? render_json_str(k->via.str.ptr, k->via.str.size)
		          : render_json(k);
		if (json_is_string(key))
			json_object_setn_new(obj, json_string_value(key),
			                     json_string_length(key), val);
		else if ((text = json_dumps(key, JSON_ENCODE_ANY |
		                                     JSON_COMPACT)) != NULL) {
			json_object_set_new(obj, text, val);
			free(text);
		} else
			json_decref(val);
		json_decref(key);
	}
	return obj;
}

/* A msgpack value as JSON; maps with keys that are not strings get
 * their keys written as JSON text. */
static json_t *
render_json(const msgpack_object *o)
{
	json_t *j;
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			return json_real((double)o->via.u64);
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (!isfinite(o->via.f64))
			return json_null();
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return render_json_str(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return render_json_base64(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		j = json_array();
		for (i = 0; i < o->via.array.size; i++)
			json_array_append_new(
			    j, render_json(&o->via.array.ptr[i]));
		return j;
	case MSGPACK_OBJECT_MAP:
		return render_json_map(&o->via.map);
	default:
		return json_null();
	}
}

/* One message as one compact JSON object on a line of stdout. */
void
render_json_line(const msgpack_object *o)
{
	json_t *j = render_json(o);

	json_dumpf(j, stdout, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(j);
	putchar('\n');
	ctl_flush_stdout();
}

/*
 * A result on f: integers and strings plainly, anything else as compact
 * JSON, always ending with a newline.
 */
void
render_value(FILE *f, const msgpack_object *o)
{
	json_t *j;

	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(f, "%" PRIu64 "\n", o->via.u64);
		return;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(f, "%" PRId64 "\n", o->via.i64);
		return;
	case MSGPACK_OBJECT_STR:
		fwrite(o->via.str.ptr, 1, o->via.str.size, f);
		if (o->via.str.size == 0 ||
		    o->via.str.ptr[o->via.str.size - 1] != '\n')
			fputc('\n', f);
		return;
	default:
		j = render_json(o);
		json_dumpf(j, f, JSON_ENCODE_ANY | JSON_COMPACT);
		json_decref(j);
		fputc('\n', f);
	}
}

/* "10/30 33%", or "10" when the total is not known. */
void
render_progress_text(char *buf, size_t size, uint64_t done, uint64_t total)
{
	int pct;

	if (total == 0) {
		snprintf(buf, size, "%" PRIu64, done);
		return;
	}
	pct = done >= total ? 100 : (int)((double)done * 100 / (double)total);
	snprintf(buf, size, "%" PRIu64 "/%" PRIu64 " %d%%", done, total, pct);
}

/* Follow job (or a whole gather, with its label) from now on. */
void
render_progress_init(struct render_progress *p, uint64_t job, const char *label)
{
	memset(p, 0, sizeof(*p));
	p->job = job;
	p->label = label;
	p->ahead = -1;
	p->start = conn_now();
}

/* Microseconds since the epoch. */
static int64_t
render_realtime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * The job's start, given in the daemon's time (µs since the epoch), on
 * our monotonic clock: the rate is measured from there.
 */
static void
render_progress_began(struct render_progress *p, const struct proto_msg *m)
{
	int64_t started = (int64_t)proto_u64(m, PF_STARTED, 0);
	int64_t now = conn_now(), ago = render_realtime() - started;

	if (started <= 0)
		return;
	p->began = now - (ago > 0 ? ago : 0);
	if (p->began <= 0)
		p->began = 1;
}

/* Take in a progress event: the job runs. */
void
render_progress_update(struct render_progress *p, const struct proto_msg *m)
{
	size_t len;
	const char *s;

	p->done = proto_u64(m, PF_DONE, p->done);
	p->total = proto_u64(m, PF_TOTAL, p->total);
	s = proto_str(m, PF_MSG, &len);
	render_safe(p->msg, sizeof(p->msg), s, len);
	render_progress_began(p, m);
	p->queued = false;
	p->seen = true;
	p->dirty = true;
}

/*
 * Take in the job's record (a status reply): queued, with the number of
 * jobs ahead of it when the daemon says, or started at some time.
 */
void
render_progress_record(struct render_progress *p, const struct proto_msg *m)
{
	char state[17];
	int st;

	proto_strcpy(m, PF_STATE, state, sizeof(state));
	if ((st = proto_state_lookup(state, strlen(state))) < 0)
		return;
	p->queued = st == PS_QUEUED;
	p->ahead = p->queued && proto_has(m, PF_AHEAD)
	               ? (int64_t)proto_u64(m, PF_AHEAD, 0)
	               : -1;
	if (!p->queued)
		render_progress_began(p, m);
	p->dirty = true;
}

/* The plain form: "job 7: 10/30 33% step 10". */
void
render_progress_line(const struct render_progress *p)
{
	char text[64];

	render_progress_text(text, sizeof(text), p->done, p->total);
	fprintf(stderr, "job %" PRIu64 ": %s%s%s\n", p->job, text,
	        *p->msg != '\0' ? " " : "", p->msg);
}

static void
render_rate(char *buf, size_t size, double r)
{
	static const char units[] = " kMGTP";
	int u = 0;

	while (r >= 1000 && units[u + 1] != '\0') {
		r /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%.1f/s", r);
	else
		snprintf(buf, size, "%.1f%c/s", r, units[u]);
}

static void
render_clock(char *buf, size_t size, int64_t usec)
{
	int64_t s = usec / 1000000;

	if (s >= 3600)
		snprintf(buf, size, "%" PRId64 ":%02d:%02d", s / 3600,
		         (int)(s / 60 % 60), (int)(s % 60));
	else
		snprintf(buf, size, "%d:%02d", (int)(s / 60), (int)(s % 60));
}

/*
 * When the bar should next be drawn: soon after news, else once a second
 * for the clock; the first time only if the job takes a while.
 */
int64_t
render_progress_due(const struct render_progress *p)
{
	if (p->dirty)
		return p->drawn + RENDER_REDRAW_US;
	if (p->drawn == 0)
		return p->start + RENDER_FIRST_US;
	return p->drawn + 1000000;
}

/*
 * The bar's line at now, uncut: "job 7 [###...]  33%  1.2k/s  0:05  ETA
 * 0:10  msg".  The rate and the time count from the job's start (from
 * when following began, until that is known); the ETA is the work left
 * at that rate.  A job waiting for its turn: "job 7  queued (3 ahead)
 * 0:05", the time it has waited so far as we know.
 */
void
render_progress_format(const struct render_progress *p, int64_t now, char *line,
                       size_t size)
{
	char bar[RENDER_BAR_WIDTH + 1], rate[32], clock[32], eta[48];
	char label[64], ahead[32];
	int64_t from = p->began > 0 ? p->began : p->start;
	int64_t elapsed = now > from ? now - from : 0;
	double secs = (double)elapsed / 1e6, r = 0;
	int fill, pct;

	if (p->label != NULL)
		snprintf(label, sizeof(label), "%s", p->label);
	else
		snprintf(label, sizeof(label), "job %" PRIu64, p->job);
	if (p->queued) {
		if (p->ahead >= 0)
			snprintf(ahead, sizeof(ahead), " (%" PRId64 " ahead)",
			         p->ahead);
		else
			ahead[0] = '\0';
		render_clock(clock, sizeof(clock),
		             now > p->start ? now - p->start : 0);
		snprintf(line, size, "%s  queued%s  %s", label, ahead, clock);
		return;
	}
	render_clock(clock, sizeof(clock), elapsed);
	if (secs >= 0.1 && p->done > 0) {
		r = (double)p->done / secs;
		render_rate(rate, sizeof(rate), r);
	} else
		snprintf(rate, sizeof(rate), "-/s");
	eta[0] = '\0';
	if (r > 0 && p->total > p->done) {
		snprintf(eta, sizeof(eta), "  ETA ");
		render_clock(eta + 6, sizeof(eta) - 6,
		             (int64_t)((double)(p->total - p->done) / r * 1e6) +
		                 999999);
	}
	if (!p->seen)
		snprintf(line, size, "%s  %s", label, clock);
	else if (p->total == 0)
		snprintf(line, size, "%s  %" PRIu64 " done  %s  %s  %s", label,
		         p->done, rate, clock, p->msg);
	else {
		pct = p->done >= p->total
		          ? 100
		          : (int)((double)p->done * 100 / (double)p->total);
		fill = pct * RENDER_BAR_WIDTH / 100;
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(RENDER_BAR_WIDTH - fill));
		bar[RENDER_BAR_WIDTH] = '\0';
		snprintf(line, size, "%s [%s] %3d%%  %s  %s%s  %s", label, bar,
		         pct, rate, clock, eta, p->msg);
	}
}

/* Draw the bar on stderr if it is due, cut to the terminal's width. */
void
render_progress_draw(struct render_progress *p)
{
	char line[512];
	struct winsize ws;
	int64_t now = conn_now();
	size_t cols = 80, len;

	if (now < render_progress_due(p))
		return;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		cols = ws.ws_col;
	if (cols > sizeof(line))
		cols = sizeof(line);
	render_progress_format(p, now, line, sizeof(line));
	/* stay off the last column so the terminal never wraps */
	len = strlen(line);
	if (len > cols - 1) {
		len = cols - 1;
		while (len > 0 && ((unsigned char)line[len] & 0xc0) == 0x80)
			len--;
		line[len] = '\0';
	}
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
	p->visible = true;
	p->drawn = now;
	p->dirty = false;
}

/* Remove the bar so that other output starts on a clean line. */
void
render_progress_clear(struct render_progress *p)
{
	if (!p->visible)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	p->visible = false;
}

/* Forget a job's progress: it starts again (a retry). */
void
render_progress_reset(struct render_progress *p)
{
	p->done = p->total = 0;
	p->msg[0] = '\0';
	p->began = 0;
	p->seen = false;
	p->dirty = true;
}

static int stdout_errno; /* of the first write to stdout that failed */

static void
ctl_stdout_failed(int err)
{
	if (stdout_errno == 0)
		stdout_errno = err;
}

void
ctl_flush_stdout(void)
{
	if (fflush(stdout) != 0)
		ctl_stdout_failed(errno);
}

int
ctl_stdout_errno(void)
{
	return stdout_errno;
}

static int
render_write(FILE *f, const char *s, size_t len)
{
	if (len > 0 && fwrite(s, 1, len, f) != len) {
		if (f == stdout)
			ctl_stdout_failed(errno);
		return -1;
	}
	return 0;
}

/*
 * A job's output event: its bytes, as they are, on our stdout or stderr,
 * whichever the job wrote to.  With a prefix, each line starts with it;
 * bol[stream] says whether the stream is at the start of a line.
 * Returns -1 if the event has no data.
 */
int
render_output(const struct proto_msg *m, const char *prefix, bool bol[2])
{
	const msgpack_object *d = &m->f[PF_DATA];
	const char *s, *nl;
	size_t len, n;
	bool err = proto_obj_streq(&m->f[PF_STREAM], "stderr");
	FILE *f = err ? stderr : stdout;

	if (!proto_has(m, PF_DATA))
		return -1;
	if (d->type == MSGPACK_OBJECT_BIN) {
		s = d->via.bin.ptr;
		len = d->via.bin.size;
	} else if (d->type == MSGPACK_OBJECT_STR) {
		s = d->via.str.ptr;
		len = d->via.str.size;
	} else
		return -1;
	if (err)
		ctl_flush_stdout(); /* what came first shows first */
	while (len > 0) {
		if (prefix != NULL && bol[err])
			render_write(f, prefix, strlen(prefix));
		nl = prefix != NULL ? memchr(s, '\n', len) : NULL;
		n = nl != NULL ? (size_t)(nl - s) + 1 : len;
		render_write(f, s, n);
		bol[err] = s[n - 1] == '\n';
		s += n;
		len -= n;
	}
	if (err)
		fflush(stderr);
	else
		ctl_flush_stdout();
	return 0;
}

/*
 * A result on one line of text: as render_value prints it, without its
 * final newline and with control characters (inner newlines) replaced.
 */
void
render_line_value(char *buf, size_t size, const msgpack_object *o)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if ((f = open_memstream(&text, &len)) == NULL) {
		snprintf(buf, size, "?");
		return;
	}
	render_value(f, o);
	fclose(f);
	if (len > 0 && text[len - 1] == '\n')
		len--;
	render_safe(buf, size, text, len);
	free(text);
}

/* Local time with milliseconds, or "-" for 0. */
void
render_time(char *buf, size_t size, uint64_t usec)
{
	time_t t = (time_t)(usec / 1000000);
	struct tm tm;
	char s[32];

	if (usec == 0 || localtime_r(&t, &tm) == NULL) {
		snprintf(buf, size, "-");
		return;
	}
	strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03d", s, (int)(usec / 1000 % 1000));
}

/* A precise span: "850us", "12.3ms", "4.56s", "3m07s", "2h05m". */
void
render_duration(char *buf, size_t size, uint64_t usec)
{
	uint64_t s = usec / 1000000;

	if (usec < 1000)
		snprintf(buf, size, "%" PRIu64 "us", usec);
	else if (usec < 1000000)
		snprintf(buf, size, "%.1fms", (double)usec / 1e3);
	else if (s < 60)
		snprintf(buf, size, "%.2fs", (double)usec / 1e6);
	else
		render_age(buf, size, usec);
}

/* A coarse span for tables: "5s", "3m07s", "2h05m", "4d03h". */
void
render_age(char *buf, size_t size, uint64_t usec)
{
	uint64_t s = usec / 1000000;

	if (s < 60)
		snprintf(buf, size, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, size, "%" PRIu64 "m%02" PRIu64 "s", s / 60,
		         s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%" PRIu64 "h%02" PRIu64 "m", s / 3600,
		         s / 60 % 60);
	else
		snprintf(buf, size, "%" PRIu64 "d%02" PRIu64 "h", s / 86400,
		         s / 3600 % 24);
}
