/*
 * cmd_complete.c -- what the shell completes a word to.
 *
 * The completion scripts (client/completion/) run
 *
 *	concctl __complete CWORD WORD0 WORD1 ...
 *
 * with the words of the command line (as bash splits them, "=" apart)
 * and the index of the one being completed, and print what this prints:
 * a first line saying what the word is -- "words", then one candidate a
 * line, already narrowed to the word's prefix; or "files", "dirs",
 * "commands" or "users", which the shell completes itself -- so that the
 * scripts stay a few lines and the grammar stays in cmd.c's tables.
 * Task names, job ids and groups are asked of the daemon, within
 * COMPLETE_WAIT in all; a daemon that is not there, or slow, gives none,
 * and nothing is ever printed on the standard error.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "concctl.h"

#define COMPLETE_WAIT 500000 /* µs for every question to the daemon */
#define COMPLETE_JOBS 200    /* the newest job ids offered */

struct complete {
	struct ctl *ctl;
	const char *cur; /* the word being completed */
	size_t curlen;
	const char *head; /* what comes before the part completed: "id," */
	size_t headlen;
	int64_t deadline;
	bool asked;      /* the daemon was tried */
	bool connected;  /* and answered the handshake */
	bool mode_given; /* the first line is out */
};

/* The first line: what kind of word this is. */
static void
complete_mode(struct complete *x, const char *mode)
{
	if (!x->mode_given)
		printf("%s\n", mode);
	x->mode_given = true;
}

/* A candidate, if it extends what is typed; len -1: a C string. */
static void
complete_word(struct complete *x, const char *w, ssize_t len)
{
	size_t n = len < 0 ? strlen(w) : (size_t)len;
	size_t i;

	complete_mode(x, "words");
	if (n < x->curlen || strncmp(w, x->cur, x->curlen) != 0)
		return;
	for (i = 0; i < n; i++)
		if ((unsigned char)w[i] < 0x20 || w[i] == 0x7f)
			return; /* nothing that could break a line */
	printf("%.*s%.*s\n", (int)x->headlen, x->head, (int)n, w);
}

/* ---- asking the daemon ---- */

static bool
complete_connect(struct complete *x)
{
	if (!x->asked) {
		x->asked = true;
		x->connected = conn_open_until(&x->ctl->conn, x->ctl->socket,
		                               x->deadline) == CONN_OK;
	}
	return x->connected;
}

/* Ask, and wait for the reply of the type wanted; false if none came. */
static bool
complete_call(struct complete *x, struct proto_enc *e, uint64_t id,
              enum proto_type want, struct proto_msg *m)
{
	struct conn *c = &x->ctl->conn;

	if (conn_send(c, e) != CONN_OK)
		return false;
	for (;;) {
		if (conn_recv(c, m, x->deadline) != CONN_OK)
			return false;
		if (m->id == id)
			return m->type == want;
	}
}

/* Each map of an array field of m, decoded, handed to fn. */
static void
complete_rows(struct complete *x, const struct proto_msg *m, enum proto_field f,
              void (*fn)(struct complete *, const struct proto_msg *))
{
	const msgpack_object_array *rows;
	struct proto_msg row;
	struct proto_fault fault;
	uint32_t i;

	if (!proto_has(m, f) || m->f[f].type != MSGPACK_OBJECT_ARRAY)
		return;
	rows = &m->f[f].via.array;
	for (i = 0; i < rows->size; i++)
		if (proto_decode_fields(&rows->ptr[i], &row, &fault) == 0)
			fn(x, &row);
}

static void
complete_name_row(struct complete *x, const struct proto_msg *row)
{
	const char *s;
	size_t len;

	if ((s = proto_str(row, PF_NAME, &len)) != NULL)
		complete_word(x, s, (ssize_t)len);
}

static void
complete_tasks(struct complete *x)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;

	complete_mode(x, "words");
	if (!complete_connect(x))
		return;
	id = conn_begin(&x->ctl->conn, &e, PROTO_TASKS);
	if (complete_call(x, &e, id, PROTO_TASKLIST, &m))
		complete_rows(x, &m, PF_TASKS, complete_name_row);
}

static void
complete_job_row(struct complete *x, const struct proto_msg *row)
{
	char id[24];

	snprintf(id, sizeof(id), "%" PRIu64, proto_u64(row, PF_JOB, 0));
	complete_word(x, id, -1);
}

/* The ids of the newest jobs: all of them, or those not finished. */
static void
complete_jobs(struct complete *x, bool all)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;

	complete_mode(x, "words");
	if (!complete_connect(x))
		return;
	id = conn_begin(&x->ctl->conn, &e, PROTO_PS);
	proto_enc_bool(&e, PF_ALL, all);
	proto_enc_u64(&e, PF_LIMIT, COMPLETE_JOBS);
	if (complete_call(x, &e, id, PROTO_JOBS, &m))
		complete_rows(x, &m, PF_JOBS, complete_job_row);
}

static void
complete_groups(struct complete *x)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;

	complete_mode(x, "words");
	if (!complete_connect(x))
		return;
	id = conn_begin(&x->ctl->conn, &e, PROTO_GROUP);
	proto_enc_cstr(&e, PF_OP, "list");
	if (complete_call(x, &e, id, PROTO_GROUPLIST, &m))
		complete_rows(x, &m, PF_GROUPS, complete_name_row);
}

/* A task's argument names, "ms=", from its usage: "ms=N [steps=K]". */
static void
complete_task_args(struct complete *x, const char *task)
{
	const msgpack_object_array *tasks;
	struct proto_enc e;
	struct proto_msg m, row;
	struct proto_fault f;
	const char *s, *p, *eq;
	size_t len, n;
	uint64_t id;
	uint32_t i;

	complete_mode(x, "words");
	if (!complete_connect(x))
		return;
	id = conn_begin(&x->ctl->conn, &e, PROTO_TASKS);
	if (!complete_call(x, &e, id, PROTO_TASKLIST, &m) ||
	    !proto_has(&m, PF_TASKS))
		return;
	tasks = &m.f[PF_TASKS].via.array;
	for (i = 0; i < tasks->size; i++) {
		if (proto_decode_fields(&tasks->ptr[i], &row, &f) < 0 ||
		    (s = proto_str(&row, PF_NAME, &len)) == NULL ||
		    len != strlen(task) || memcmp(s, task, len) != 0 ||
		    (s = proto_str(&row, PF_USAGE, &len)) == NULL)
			continue;
		for (p = s; p < s + len; p += n) {
			n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_.");
			eq = p + n;
			if (n > 0 && eq < s + len && *eq == '=' &&
			    (p == s || strchr(" [", p[-1]) != NULL))
				complete_word(x, p, (ssize_t)n + 1);
			if (n == 0)
				n = 1;
		}
	}
}

/* ---- what the words are ---- */

/* Complete only from rest on, a point within the word (after a comma). */
static void
complete_behind(struct complete *x, const char *rest)
{
	if (x->head == NULL)
		x->head = x->cur;
	x->headlen = (size_t)(rest - x->head);
	x->curlen -= (size_t)(rest - x->cur);
	x->cur = rest;
}

static void
complete_columns(struct complete *x)
{
	const char *comma = strrchr(x->cur, ',');
	char name[32];
	bool lower;
	size_t i;

	/* "id,sta" completes "sta" after "id,"; "+gr" after "+" */
	if (comma != NULL || *x->cur == '+') {
		const char *rest = comma != NULL ? comma + 1 : x->cur + 1;

		complete_behind(x, rest);
	}
	/* in the case the user types them */
	lower = x->curlen > 0
	            ? islower((unsigned char)x->cur[0])
	            : x->head != NULL && islower((unsigned char)x->head[0]);
	for (i = 0; i < cmd_ps_count(); i++) {
		const char *col = cmd_ps_name(i);
		size_t k;

		for (k = 0; col[k] != '\0' && k + 1 < sizeof(name); k++)
			name[k] = lower ? (char)tolower((unsigned char)col[k])
			                : col[k];
		name[k] = '\0';
		complete_word(x, name, -1);
	}
}

static void
complete_list(struct complete *x, const char *const *words, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		complete_word(x, words[i], -1);
}

/* An option's value, by the option. */
static void
complete_value(struct complete *x, uint64_t flag)
{
	const char *comma;

	if (flag == CMD_OPT_EXEC)
		complete_list(x, proto_execs, PX_COUNT);
	else if (flag == CMD_OPT_STATE)
		complete_list(x, proto_states, PS_COUNT);
	else if (flag == CMD_OPT_TASK)
		complete_tasks(x);
	else if (flag == CMD_OPT_GROUP)
		complete_groups(x);
	else if (flag == CMD_OPT_OUTPUT)
		complete_columns(x);
	else if (flag == CMD_OPT_AFTER) {
		if ((comma = strrchr(x->cur, ',')) != NULL)
			complete_behind(x, comma + 1);
		complete_jobs(x, true);
	} else if (flag == CMD_OPT_USER)
		complete_mode(x, "users");
	else if (flag == CMD_OPT_CWD)
		complete_mode(x, "dirs");
	else if (flag == CMD_OPT_ENV)
		complete_mode(x, "variables"); /* the shell's own */
	else
		complete_mode(x, "words"); /* a number, a time: nothing */
}

/* The command's options ("--name"), or the global ones before it. */
static void
complete_options(struct complete *x, uint64_t options)
{
	static const char *const global[] = {
	    "--socket", "--json", "--quiet", "--help", "--version",
	};
	const struct cmd_option_entry *o;
	char word[64];
	size_t i, n;

	if (options == 0) {
		complete_list(x, global, sizeof(global) / sizeof(global[0]));
		return;
	}
	o = cmd_option_rows(&n);
	for (i = 0; i < n; i++) {
		if ((options & o[i].flag) == 0)
			continue;
		snprintf(word, sizeof(word), "--%s", o[i].long_name);
		complete_word(x, word, -1);
	}
}

/* The row a word names among rows: its name, alias or unique prefix. */
static const struct cmd_entry *
complete_lookup(const struct cmd_entry *rows, size_t n, const char *w)
{
	const struct cmd_entry *found = NULL;
	const char *name;
	size_t i, matches = 0;

	for (i = 0; i < n; i++) {
		name = strrchr(rows[i].name, ' ');
		name = name != NULL ? name + 1 : rows[i].name;
		if (strcmp(name, w) == 0 ||
		    (rows[i].alias != NULL && strcmp(rows[i].alias, w) == 0))
			return &rows[i];
		if (*w != '\0' && strncmp(name, w, strlen(w)) == 0) {
			found = &rows[i];
			matches++;
		}
	}
	return matches == 1 ? found : NULL;
}

static void
complete_names(struct complete *x, const struct cmd_entry *rows, size_t n)
{
	const char *name;
	size_t i;

	for (i = 0; i < n; i++) {
		name = strrchr(rows[i].name, ' ');
		complete_word(x, name != NULL ? name + 1 : rows[i].name, -1);
	}
}

/* The option a word names ("--state", "-x", "--state=ru"), or NULL. */
static const struct cmd_option_entry *
complete_option(const char *w, uint64_t options)
{
	const struct cmd_option_entry *o;
	size_t i, n, len = strcspn(w, "=");

	o = cmd_option_rows(&n);
	for (i = 0; i < n; i++) {
		if ((options & o[i].flag) == 0)
			continue;
		if ((w[1] == '-' && strlen(o[i].long_name) == len - 2 &&
		     strncmp(w + 2, o[i].long_name, len - 2) == 0) ||
		    (w[1] != '-' && o[i].short_name != 0 &&
		     w[strlen(w) - 1] == o[i].short_name))
			return &o[i];
	}
	return NULL;
}

static void
complete_files(struct complete *x)
{
	complete_mode(x, "files");
}

/* help's words: the commands. */
static void
complete_commands(struct complete *x)
{
	const struct cmd_entry *rows;
	size_t n;

	rows = cmd_commands(&n);
	complete_names(x, rows, n);
}

/* Free words, by what the usage calls them: "[FILE]", "GROUP", ... */
static const struct complete_kind {
	const char *placeholder;
	void (*fn)(struct complete *);
} complete_kinds[] = {
    {"FILE", complete_files},
    {"GROUP", complete_groups},
    {"NAME", complete_groups}, /* group pause NAME, ... */
    {"COMMAND", complete_commands},
};

/*
 * The first word of the usage that is not an option or its value, with
 * its brackets and dots off: what the command's free words are.
 */
static void
complete_placeholder(struct complete *x, const struct cmd_entry *ce)
{
	const char *p = ce->usage;
	size_t n, i;
	bool option = false;

	while (*p != '\0') {
		p += strspn(p, " ");
		n = strcspn(p, " ");
		if (*p == '[' && p[1] == '-')
			option = true;
		if (!option && *p != '-') {
			const char *w = p + strspn(p, "[");
			size_t len = strcspn(w, " ].");

			for (i = 0; i < sizeof(complete_kinds) /
			                    sizeof(complete_kinds[0]);
			     i++)
				if (strlen(complete_kinds[i].placeholder) ==
				        len &&
				    strncmp(w, complete_kinds[i].placeholder,
				            len) == 0)
					complete_kinds[i].fn(x);
			break;
		}
		if (n > 0 && p[n - 1] == ']')
			option = false;
		p += n;
	}
	complete_mode(x, "words");
}

/*
 * The words after the command name, up to the one being completed:
 * what that one is -- an option, an option's value, a positional word
 * of the command's kind, or after "--" an exec job's command.
 */
static void
complete_args(struct complete *x, const struct cmd_entry *ce, char **w, int n)
{
	const struct cmd_option_entry *o = NULL;
	uint64_t options = cmd_options_of(ce);
	const char *task = NULL, *eq;
	int i, positional = 0, after = -1;

	for (i = 0; i < n; i++) {
		if (after >= 0) {
			after++;
			continue;
		}
		if (o != NULL) { /* its value */
			o = NULL;
			continue;
		}
		if (strcmp(w[i], "--") == 0) {
			after = 0;
			continue;
		}
		if (w[i][0] == '-' && w[i][1] != '\0') {
			o = complete_option(w[i], options);
			if (o != NULL && (o->arg == NULL || strchr(w[i], '=')))
				o = NULL;
			/* bash gives "--state=ru" as "--state" "=" "ru" */
			if (o != NULL && i + 1 < n &&
			    strcmp(w[i + 1], "=") == 0)
				i++;
			continue;
		}
		if (strcmp(w[i], "=") == 0)
			continue;
		if (positional++ == 0)
			task = w[i];
	}
	if (o != NULL) {
		complete_value(x, o->flag);
		return;
	}
	if (after >= 0) {
		complete_mode(x, after == 0 ? "commands" : "files");
		return;
	}
	if (x->cur[0] == '-' && x->cur[1] == '-' &&
	    (eq = strchr(x->cur, '=')) != NULL) {
		/* "--state=ru" in one word (zsh) */
		if ((o = complete_option(x->cur, options)) != NULL &&
		    o->arg != NULL) {
			x->head = x->cur;
			x->headlen = (size_t)(eq - x->cur) + 1;
			x->cur = eq + 1;
			x->curlen = strlen(x->cur);
			complete_value(x, o->flag);
		}
		complete_mode(x, "words");
		return;
	}
	if (x->cur[0] == '-') {
		complete_options(x, options);
		return;
	}
	if (ce->nsubs > 0 && positional == 0)
		complete_names(x, ce->subs, ce->nsubs);
	switch (ce->words) {
	case CMD_WORDS_JOBS:
		complete_jobs(x, strcmp(ce->name, "cancel") != 0);
		break;
	case CMD_WORDS_TASK:
		if (positional == 0)
			complete_tasks(x);
		else
			complete_task_args(x, task);
		break;
	default:
		complete_placeholder(x, ce);
		break;
	}
}

/*
 * argv: CWORD, then the command line's words from concctl itself.
 * Always exits 0, printing at least the first line.
 */
int
cmd_complete(struct ctl *ctl, int argc, char **argv)
{
	struct complete x = {.ctl = ctl,
	                     .deadline = conn_now() + COMPLETE_WAIT};
	const struct cmd_entry *ce = NULL, *sub, *rows;
	char **w;
	long cword;
	size_t nrows;
	int i, n;

	ctl->conn.fd = -1;
	ctl->json = false;
	if (argc < 2 || (cword = strtol(argv[0], NULL, 10)) < 1 ||
	    cword >= argc - 1) {
		complete_mode(&x, "words");
		return CTL_OK;
	}
	w = argv + 1;
	n = (int)cword; /* words before the one completed, concctl's too */
	x.cur = w[n];
	if (strcmp(x.cur, "=") == 0) { /* "--state=": what follows it */
		x.head = x.cur;
		x.headlen = 1;
		x.cur = "";
	}
	x.curlen = strlen(x.cur);
	/* the global options, and the socket they may name */
	for (i = 1; i < n && w[i][0] == '-'; i++) {
		if (strcmp(w[i], "-s") == 0 || strcmp(w[i], "--socket") == 0) {
			if (i + 1 < n)
				ctl->socket = w[++i];
			else
				complete_mode(&x, "files");
		} else if (strncmp(w[i], "--socket=", 9) == 0)
			ctl->socket = w[i] + 9;
		else if (strncmp(w[i], "-s", 2) == 0)
			ctl->socket = w[i] + 2;
	}
	if (x.mode_given) /* the socket's path */
		goto out;
	if (i == n) { /* the command's name, or a global option */
		if (x.cur[0] == '-')
			complete_options(&x, 0);
		else {
			rows = cmd_commands(&nrows);
			complete_names(&x, rows, nrows);
		}
		goto out;
	}
	rows = cmd_commands(&nrows);
	if ((ce = complete_lookup(rows, nrows, w[i++])) == NULL) {
		complete_mode(&x, "words");
		goto out;
	}
	/* a subcommand's name ("pool resize") */
	if (ce->nsubs > 0 && i < n && w[i][0] != '-' &&
	    (sub = complete_lookup(ce->subs, ce->nsubs, w[i])) != NULL) {
		ce = sub;
		i++;
	}
	complete_args(&x, ce, w + i, n - i);
out:
	complete_mode(&x, "words");
	ctl_flush_stdout();
	if (x.asked)
		conn_close(&ctl->conn);
	return CTL_OK;
}
