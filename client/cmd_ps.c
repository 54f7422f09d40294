/*
 * cmd_ps.c -- the columns of ps: one row per column (its name, how it is
 * aligned and typed in JSON, the function that fills its cell), the -o
 * list that picks them, and one libsmartcols table that is printed as
 * text or, with --json, as JSON rows: the same rows and cells either way.
 *
 * A cell is NULL when the row has no such value: "-" in the text, null
 * in JSON.  COMMAND is cut to the terminal's width, the other columns
 * never are.
 */
#include <err.h>
#include <inttypes.h>
#include <locale.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <wchar.h>
#include <wctype.h>

#include <libsmartcols.h>

#include "concctl.h"

#define PS_SEPARATOR "  "

typedef const char *(*ps_cell_fn)(const struct proto_msg *, uint64_t now,
                                  char *, size_t);

static const char *
ps_u64(const struct proto_msg *m, enum proto_field f, char *buf, size_t size)
{
	if (!proto_has(m, f))
		return NULL;
	snprintf(buf, size, "%" PRIu64, proto_u64(m, f, 0));
	return buf;
}

static const char *
ps_str(const struct proto_msg *m, enum proto_field f, char *buf, size_t size)
{
	const char *s;
	size_t len;

	if ((s = proto_str(m, f, &len)) == NULL || len == 0)
		return NULL;
	return render_safe(buf, size, s, len);
}

static const char *
ps_time(const struct proto_msg *m, enum proto_field f, char *buf, size_t size)
{
	if (proto_u64(m, f, 0) == 0)
		return NULL;
	render_time(buf, size, proto_u64(m, f, 0));
	return buf;
}

static const char *
ps_id(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	return ps_u64(m, PF_JOB, buf, size);
}

static const char *
ps_task(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	return ps_str(m, PF_TASK, buf, size);
}

static const char *
ps_state(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	return ps_str(m, PF_STATE, buf, size);
}

/* The executor that runs the job, or before it starts the one asked for. */
static const char *
ps_exec(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	return ps_str(m, proto_has(m, PF_EXEC) ? PF_EXEC : PF_REQUESTED, buf,
	              size);
}

static const char *
ps_worker(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	if (!proto_has(m, PF_WORKER))
		return NULL;
	render_worker(m, buf, size);
	return buf;
}

static const char *
ps_progress(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	uint64_t done = proto_u64(m, PF_DONE, 0), total;

	total = proto_u64(m, PF_TOTAL, 0);
	if (done == 0 && total == 0)
		return NULL;
	render_progress_text(buf, size, done, total);
	return buf;
}

static const char *
ps_age(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	uint64_t submitted = proto_u64(m, PF_SUBMITTED, 0);

	if (submitted == 0)
		return NULL;
	render_age(buf, size, now > submitted ? now - submitted : 0);
	return buf;
}

/* Whether a word must be quoted for a POSIX shell to read it back. */
static bool
ps_plain(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x80 || (ch >= 'a' && ch <= 'z') ||
		    (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    strchr("@%+=:,./_-", ch) != NULL)
			continue;
		return false;
	}
	return true;
}

/*
 * A word as a POSIX shell would read it back: as it is when it holds
 * nothing special, else in single quotes, each ' as '\''.  Control
 * characters are shown as '?' (render_safe).  Appended to buf.
 */
void
cmd_ps_quote(char *buf, size_t size, const char *s, size_t len)
{
	size_t off = strlen(buf), i;
	char ch[2] = {0, 0};

	if (ps_plain(s, len)) {
		snprintf(buf + off, size - off, "%.*s", (int)len, s);
	} else {
		snprintf(buf + off, size - off, "'");
		for (i = 0; i < len; i++) {
			off = strlen(buf);
			if (s[i] == '\'') {
				snprintf(buf + off, size - off, "'\\''");
				continue;
			}
			render_safe(ch, sizeof(ch), s + i, 1);
			snprintf(buf + off, size - off, "%s", ch);
		}
		off = strlen(buf);
		snprintf(buf + off, size - off, "'");
	}
}

/* One argument of the fallback command line: key=value, shell-quoted. */
static void
ps_arg(char *buf, size_t size, const msgpack_object_kv *kv)
{
	const msgpack_object *v = &kv->val;
	char text[1025], word[1200];
	uint32_t i;
	size_t off;

	if (kv->key.type != MSGPACK_OBJECT_STR)
		return;
	off = strlen(buf);
	if (proto_obj_streq(&kv->key, "argv") &&
	    v->type == MSGPACK_OBJECT_ARRAY) {
		/* exec's command line, as concctl takes it after -- */
		snprintf(buf + off, size - off, " --");
		for (i = 0; i < v->via.array.size; i++) {
			const msgpack_object *w = &v->via.array.ptr[i];

			if (w->type != MSGPACK_OBJECT_STR)
				continue;
			off = strlen(buf);
			snprintf(buf + off, size - off, " ");
			cmd_ps_quote(buf, size, w->via.str.ptr,
			             w->via.str.size);
		}
		return;
	}
	snprintf(word, sizeof(word), "%.*s=", (int)kv->key.via.str.size,
	         kv->key.via.str.ptr);
	if (v->type == MSGPACK_OBJECT_STR)
		snprintf(text, sizeof(text), "%.*s", (int)v->via.str.size,
		         v->via.str.ptr);
	else
		render_line_value(text, sizeof(text), v);
	off = strlen(word);
	snprintf(word + off, sizeof(word) - off, "%s", text);
	snprintf(buf + strlen(buf), size - strlen(buf), " ");
	cmd_ps_quote(buf, size, word, strlen(word));
}

/*
 * The command line: the daemon's, shell-quoted; for a job without one
 * the task and its arguments as concctl would take them.
 */
static const char *
ps_command(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	const msgpack_object_map *args;
	uint32_t i;

	if (ps_str(m, PF_COMMAND, buf, size) != NULL)
		return buf;
	if (ps_str(m, PF_TASK, buf, size) == NULL)
		return NULL;
	if (proto_has(m, PF_ARGS) && m->f[PF_ARGS].type == MSGPACK_OBJECT_MAP) {
		args = &m->f[PF_ARGS].via.map;
		for (i = 0; i < args->size; i++)
			ps_arg(buf, size, &args->ptr[i]);
	}
	return buf;
}

/*
 * The daemon leaves out the default group and priority 0: ps shows them,
 * as status shows the group.
 */
static const char *
ps_group(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	if (ps_str(m, PF_GROUP, buf, size) == NULL)
		snprintf(buf, size, "default");
	return buf;
}

static const char *
ps_label(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	return ps_str(m, PF_LABEL, buf, size);
}

static const char *
ps_priority(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	snprintf(buf, size, "%" PRId64, proto_i64(m, PF_PRIORITY, 0));
	return buf;
}

static const char *
ps_ahead(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	return ps_u64(m, PF_AHEAD, buf, size);
}

static const char *
ps_uid(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	return ps_u64(m, PF_UID, buf, size);
}

/* The owner's name, or the uid when it has none; the last one kept. */
static const char *
ps_user(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	static char name[64];
	static uint64_t uid = UINT64_MAX;
	struct passwd *pw;

	if (!proto_has(m, PF_UID))
		return NULL;
	if (proto_u64(m, PF_UID, 0) != uid) {
		uid = proto_u64(m, PF_UID, 0);
		if ((pw = getpwuid((uid_t)uid)) != NULL)
			render_safe(name, sizeof(name), pw->pw_name,
			            strlen(pw->pw_name));
		else
			snprintf(name, sizeof(name), "%" PRIu64, uid);
	}
	snprintf(buf, size, "%s", name);
	return buf;
}

static const char *
ps_submitted(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	return ps_time(m, PF_SUBMITTED, buf, size);
}

static const char *
ps_started(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	return ps_time(m, PF_STARTED, buf, size);
}

static const char *
ps_finished(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	return ps_time(m, PF_FINISHED, buf, size);
}

/* How long the job ran, or has run so far: the daemon's measure. */
static const char *
ps_runtime(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	if (!proto_has(m, PF_RUNTIME))
		return NULL;
	render_duration(buf, size, proto_u64(m, PF_RUNTIME, 0));
	return buf;
}

static const char *
ps_error(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	return ps_str(m, PF_ERROR, buf, size);
}

static const char *
ps_result(const struct proto_msg *m, uint64_t now, char *buf, size_t size)
{
	if (!proto_has(m, PF_RESULT))
		return NULL;
	render_line_value(buf, size, &m->f[PF_RESULT]);
	return buf;
}

static const struct ps_column {
	const char *name;
	int flags; /* SCOLS_FL_* */
	int json;  /* SCOLS_JSON_* */
	ps_cell_fn cell;
	bool shown; /* a default column */
} ps_columns[] = {
    {"ID", SCOLS_FL_RIGHT, SCOLS_JSON_NUMBER, ps_id, true},
    {"TASK", 0, SCOLS_JSON_STRING, ps_task, true},
    {"STATE", 0, SCOLS_JSON_STRING, ps_state, true},
    {"EXEC", 0, SCOLS_JSON_STRING, ps_exec, true},
    {"WORKER", SCOLS_FL_RIGHT, SCOLS_JSON_STRING, ps_worker, true},
    {"PROGRESS", 0, SCOLS_JSON_STRING, ps_progress, true},
    {"AGE", SCOLS_FL_RIGHT, SCOLS_JSON_STRING, ps_age, true},
    {"COMMAND", SCOLS_FL_TRUNC, SCOLS_JSON_STRING, ps_command, true},
    {"GROUP", 0, SCOLS_JSON_STRING, ps_group, false},
    {"LABEL", 0, SCOLS_JSON_STRING, ps_label, false},
    {"PRIORITY", SCOLS_FL_RIGHT, SCOLS_JSON_NUMBER, ps_priority, false},
    {"AHEAD", SCOLS_FL_RIGHT, SCOLS_JSON_NUMBER, ps_ahead, false},
    {"USER", 0, SCOLS_JSON_STRING, ps_user, false},
    {"UID", SCOLS_FL_RIGHT, SCOLS_JSON_NUMBER, ps_uid, false},
    {"SUBMITTED", 0, SCOLS_JSON_STRING, ps_submitted, false},
    {"STARTED", 0, SCOLS_JSON_STRING, ps_started, false},
    {"FINISHED", 0, SCOLS_JSON_STRING, ps_finished, false},
    {"RUNTIME", SCOLS_FL_RIGHT, SCOLS_JSON_STRING, ps_runtime, false},
    {"ERROR", 0, SCOLS_JSON_STRING, ps_error, false},
    {"RESULT", SCOLS_FL_TRUNC, SCOLS_JSON_STRING, ps_result, false},
};
#define PS_COLUMNS (sizeof(ps_columns) / sizeof(ps_columns[0]))
_Static_assert(PS_COLUMNS <= CMD_PS_MAX_COLS, "ps columns");

size_t
cmd_ps_count(void)
{
	return PS_COLUMNS;
}

const char *
cmd_ps_name(size_t col)
{
	return ps_columns[col].name;
}

/* The column named name (any case); PS_COLUMNS if none. */
size_t
cmd_ps_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < PS_COLUMNS; i++)
		if (strlen(ps_columns[i].name) == len &&
		    strncasecmp(ps_columns[i].name, name, len) == 0)
			return i;
	return PS_COLUMNS;
}

/*
 * "ID,STATE,COMMAND": those columns in that order; "+GROUP,LABEL": the
 * default ones and those.  Names in any case.  -1 with the cause.
 */
int
cmd_ps_parse(const char *spec, struct cmd_ps_cols *c, char *cause, size_t size)
{
	const char *p = spec, *end;
	size_t i, col, off;

	c->n = 0;
	if (spec == NULL || *spec == '+') {
		for (i = 0; i < PS_COLUMNS; i++)
			if (ps_columns[i].shown)
				c->col[c->n++] = (uint8_t)i;
		if (spec == NULL)
			return 0;
		p++;
	}
	for (;;) {
		end = p + strcspn(p, ",");
		col = cmd_ps_find(p, (size_t)(end - p));
		if (col == PS_COLUMNS) {
			off = (size_t)snprintf(
			    cause, size,
			    "unknown column: %.*s, valid: ", (int)(end - p), p);
			for (i = 0; i < PS_COLUMNS && off < size; i++)
				off += (size_t)snprintf(cause + off, size - off,
				                        "%s%s", i ? "," : "",
				                        ps_columns[i].name);
			return -1;
		}
		if (c->n == CMD_PS_MAX_COLS) {
			snprintf(cause, size, "more than %d columns",
			         CMD_PS_MAX_COLS);
			return -1;
		}
		c->col[c->n++] = (uint8_t)col;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	return 0;
}

/* One cell as the table shows it: "-" when the row has no such value. */
void
cmd_ps_cell(size_t col, const struct proto_msg *row, uint64_t now, char *buf,
            size_t size)
{
	*buf = '\0';
	if (ps_columns[col].cell(row, now, buf, size) == NULL)
		snprintf(buf, size, "-");
}

/* The width COMMAND is cut to: the terminal's, or $COLUMNS when piped. */
static void
ps_width(struct libscols_table *tb)
{
	const char *s = getenv("COLUMNS");
	long n;

	if (isatty(STDOUT_FILENO) || s == NULL)
		return; /* libsmartcols asks the terminal, if there is one */
	if ((n = strtol(s, NULL, 10)) > 0 && n < 100000) {
		scols_table_set_termwidth(tb, (size_t)n);
		scols_table_set_termforce(tb, SCOLS_TERMFORCE_ALWAYS);
	}
}

/*
 * A cell made printable in place, for libsmartcols to print as it is
 * (its own encoding wrote a backslash before an x as "\x5c", where
 * status prints the backslash): each character that is not printable
 * (a C1 control; render_safe took the others) and each byte that is not
 * UTF-8 (a cell cut inside a character) becomes '?', as in status.
 * Unencoded, libsmartcols loops on a byte it cannot read.
 */
static void
ps_printable(char *s)
{
	size_t in = 0, out = 0, len = strlen(s), n;
	mbstate_t st;
	wchar_t wc;

	memset(&st, 0, sizeof(st));
	while (in < len) {
		n = mbrtowc(&wc, s + in, len - in, &st);
		if (n == 0 || n > len - in || !iswprint((wint_t)wc)) {
			s[out++] = '?';
			in += n == 0 || n > len - in ? 1 : n;
			memset(&st, 0, sizeof(st));
			continue;
		}
		memmove(s + out, s + in, n);
		out += n;
		in += n;
	}
	s[out] = '\0';
}

/*
 * The rows of a jobs reply in the columns c: a table on stdout, or with
 * json the same rows as {"jobs": [{"id": 7, ...}]}.  0, or -1 after a
 * message about a bad row.
 */
int
cmd_ps_print(const struct cmd_ps_cols *c, const msgpack_object_array *rows,
             bool json, uint64_t now)
{
	struct libscols_table *tb;
	struct libscols_column *cl;
	struct libscols_line *ln;
	struct proto_msg row;
	struct proto_fault f;
	char buf[4200], *locale = NULL;
	const char *s;
	size_t i;
	uint32_t r;
	int ret = 0;

	if ((tb = scols_new_table()) == NULL)
		err(CTL_CONNECT, "scols_new_table");
	scols_table_set_name(tb, "jobs");
	scols_table_set_column_separator(tb, PS_SEPARATOR);
	scols_table_enable_json(tb, json);
	if (!json) {
		/*
		 * Cells as they are (ps_printable), read as the protocol's
		 * UTF-8, which status prints whatever the locale: in the C
		 * locale libsmartcols would take each byte of an "é" for
		 * one it cannot print.
		 */
		scols_table_enable_noencoding(tb, 1);
		if ((s = setlocale(LC_CTYPE, NULL)) != NULL &&
		    (locale = strdup(s)) == NULL)
			err(CTL_CONNECT, "strdup");
		(void)setlocale(LC_CTYPE, "C.UTF-8");
	}
	ps_width(tb);
	for (i = 0; i < c->n; i++) {
		const struct ps_column *pc = &ps_columns[c->col[i]];

		cl = scols_table_new_column(tb, pc->name, 0, pc->flags);
		if (cl == NULL)
			err(CTL_CONNECT, "scols_table_new_column");
		scols_column_set_json_type(cl, pc->json);
	}
	for (r = 0; r < rows->size; r++) {
		if (proto_decode_fields(&rows->ptr[r], &row, &f) < 0) {
			warnx("protocol error in a ps row: %s", f.message);
			ret = -1;
			break;
		}
		if ((ln = scols_table_new_line(tb, NULL)) == NULL)
			err(CTL_CONNECT, "scols_table_new_line");
		for (i = 0; i < c->n; i++) {
			*buf = '\0';
			s = ps_columns[c->col[i]].cell(&row, now, buf,
			                               sizeof(buf));
			if (s == NULL && !json)
				s = "-";
			if (s != NULL && !json) {
				if (s != buf)
					snprintf(buf, sizeof(buf), "%s", s);
				ps_printable(buf);
				s = buf;
			}
			if (s != NULL && scols_line_set_data(ln, i, s) != 0)
				err(CTL_CONNECT, "scols_line_set_data");
		}
	}
	if (ret == 0 && rows->size == 0 && !json) {
		/* libsmartcols prints nothing for a table without rows */
		for (i = 0; i < c->n; i++)
			printf("%s%s", i ? PS_SEPARATOR : "",
			       ps_columns[c->col[i]].name);
		printf("\n");
	} else if (ret == 0)
		scols_print_table(tb);
	ctl_flush_stdout();
	scols_unref_table(tb);
	if (locale != NULL) {
		(void)setlocale(LC_CTYPE, locale);
		free(locale);
	}
	return ret;
}
