/*
 * test_concctl.c -- concctl's rendering (client/): ps's -o list, the
 * cells of its columns (COMMAND from the daemon's command line or from the
 * task and its arguments, shell-quoted), the table cut to a width and its
 * JSON rows, and the progress bar's line: the rate from the job's start,
 * the ETA, and "queued (N ahead)".
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "concctl.h"

volatile sig_atomic_t ctl_interrupted;

/* ---- rows built as the daemon would send them ---- */

struct row {
	msgpack_sbuffer sb;
	msgpack_unpacked up;
	struct proto_msg m;
};

static void
pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/*
 * A row from "key=value" pairs: a value of digits is an integer, "[a|b]"
 * an array of strings, "{k:v,k:v}" a map of strings, else a string.
 */
static void
row_make(struct row *r, ...)
{
	msgpack_packer pk;
	struct proto_fault f;
	const char *kv[32];
	size_t n = 0, i, off;
	va_list ap;

	va_start(ap, r);
	while ((kv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	msgpack_sbuffer_init(&r->sb);
	msgpack_packer_init(&pk, &r->sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	for (i = 0; i < n; i++) {
		const char *eq = strchr(kv[i], '='), *v = eq + 1;
		char item[256];

		msgpack_pack_str_with_body(&pk, kv[i], (size_t)(eq - kv[i]));
		if (*v == '[' || *v == '{') {
			bool map = *v == '{';
			size_t count = 1;
			const char *p;

			for (p = v; *p != '\0'; p++)
				count += *p == (map ? ',' : '|');
			if (map)
				msgpack_pack_map(&pk, count);
			else
				msgpack_pack_array(&pk, count);
			for (p = v + 1; *p != '\0'; p += off + 1) {
				off = strcspn(p, map ? ",}" : "|]");
				snprintf(item, sizeof(item), "%.*s", (int)off,
				         p);
				if (map) {
					char *colon = strchr(item, ':');

					*colon = '\0';
					pack_str(&pk, item);
					pack_str(&pk, colon + 1);
				} else
					pack_str(&pk, item);
			}
		} else if (*v >= '0' && *v <= '9')
			msgpack_pack_uint64(&pk, strtoull(v, NULL, 10));
		else
			pack_str(&pk, v);
	}
	msgpack_unpacked_init(&r->up);
	assert_int_equal(
	    msgpack_unpack_next(&r->up, r->sb.data, r->sb.size, NULL),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(proto_decode_fields(&r->up.data, &r->m, &f), 0);
}

static void
row_free(struct row *r)
{
	msgpack_unpacked_destroy(&r->up);
	msgpack_sbuffer_destroy(&r->sb);
}

static size_t
col(const char *name)
{
	size_t c = cmd_ps_find(name, strlen(name));

	assert_true(c < cmd_ps_count());
	return c;
}

/* ---- -o ---- */

static void
the_default_columns_keep_what_ps_showed_and_add_command(void **state)
{
	static const char *const want[] = {
	    "ID",     "TASK",     "STATE", "EXEC",
	    "WORKER", "PROGRESS", "AGE",   "COMMAND",
	};
	struct cmd_ps_cols c;
	char cause[512];
	size_t i;

	assert_int_equal(cmd_ps_parse(NULL, &c, cause, sizeof(cause)), 0);
	assert_int_equal(c.n, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < c.n; i++)
		assert_string_equal(cmd_ps_name(c.col[i]), want[i]);
}

static void
o_names_columns_in_its_order_in_any_case(void **state)
{
	struct cmd_ps_cols c;
	char cause[512];

	assert_int_equal(
	    cmd_ps_parse("label,Id,COMMAND,group", &c, cause, sizeof(cause)),
	    0);
	assert_int_equal(c.n, 4);
	assert_string_equal(cmd_ps_name(c.col[0]), "LABEL");
	assert_string_equal(cmd_ps_name(c.col[1]), "ID");
	assert_string_equal(cmd_ps_name(c.col[2]), "COMMAND");
	assert_string_equal(cmd_ps_name(c.col[3]), "GROUP");
	assert_int_equal(cmd_ps_parse("+group,label", &c, cause, sizeof(cause)),
	                 0);
	assert_int_equal(c.n, 10);
	assert_string_equal(cmd_ps_name(c.col[7]), "COMMAND");
	assert_string_equal(cmd_ps_name(c.col[8]), "GROUP");
	assert_string_equal(cmd_ps_name(c.col[9]), "LABEL");
}

static void
an_unknown_or_empty_column_is_refused_with_the_valid_names(void **state)
{
	struct cmd_ps_cols c;
	char cause[512];

	assert_int_equal(cmd_ps_parse("id,bogus", &c, cause, sizeof(cause)),
	                 -1);
	assert_non_null(strstr(cause, "unknown column: bogus, valid: ID,"));
	assert_non_null(strstr(cause, "COMMAND,GROUP,LABEL"));
	assert_int_equal(cmd_ps_parse("id,,state", &c, cause, sizeof(cause)),
	                 -1);
	assert_non_null(strstr(cause, "unknown column: , valid"));
	assert_int_equal(cmd_ps_parse("", &c, cause, sizeof(cause)), -1);
}

static void
ps_help_names_every_column(void **state)
{
	char *argv[] = {"ps"}, *text = NULL;
	const struct cmd_entry *ce;
	size_t len = 0, i;
	FILE *f;
	int used;

	assert_non_null(ce = cmd_find(1, argv, &used));
	assert_non_null(f = open_memstream(&text, &len));
	cmd_usage(f, ce, true);
	fclose(f);
	for (i = 0; i < cmd_ps_count(); i++)
		assert_non_null(strstr(text, cmd_ps_name(i)));
	free(text);
}

/* ---- cells ---- */

static void
quoting_gives_back_what_a_shell_reads(void **state)
{
	char buf[128];

	buf[0] = '\0';
	cmd_ps_quote(buf, sizeof(buf), "make", 4);
	assert_string_equal(buf, "make");
	buf[0] = '\0';
	cmd_ps_quote(buf, sizeof(buf), "a b", 3);
	assert_string_equal(buf, "'a b'");
	buf[0] = '\0';
	cmd_ps_quote(buf, sizeof(buf), "it's", 4);
	assert_string_equal(buf, "'it'\\''s'");
	buf[0] = '\0';
	cmd_ps_quote(buf, sizeof(buf), "", 0);
	assert_string_equal(buf, "''");
	buf[0] = '\0';
	cmd_ps_quote(buf, sizeof(buf), "a\nb", 3);
	assert_string_equal(buf, "'a?b'");
	/* cut short, never past the buffer */
	buf[0] = '\0';
	cmd_ps_quote(buf, 6, "a b c d e", 9);
	assert_string_equal(buf, "'a b ");
}

static void
command_is_the_daemons_command_line_else_the_task_and_its_args(void **state)
{
	struct row r;
	char buf[256];

	row_make(&r, "job=7", "task=exec", "command=sh -c 'exit 3'", NULL);
	cmd_ps_cell(col("COMMAND"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "sh -c 'exit 3'");
	row_free(&r);

	row_make(&r, "job=7", "task=sleep", "args={ms:500,path:/a b}", NULL);
	cmd_ps_cell(col("COMMAND"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "sleep ms=500 'path=/a b'");
	row_free(&r);

	row_make(&r, "job=7", "task=noop", NULL);
	cmd_ps_cell(col("COMMAND"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "noop");
	row_free(&r);
}

static void
command_of_an_exec_job_without_one_is_its_argv_quoted(void **state)
{
	struct row r;
	char buf[256];

	row_make(&r, "job=7", "task=exec", NULL);
	msgpack_unpacked_destroy(&r.up);
	msgpack_sbuffer_destroy(&r.sb);
	{
		msgpack_packer pk;
		struct proto_fault f;

		msgpack_sbuffer_init(&r.sb);
		msgpack_packer_init(&pk, &r.sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 3);
		pack_str(&pk, "job");
		msgpack_pack_uint64(&pk, 7);
		pack_str(&pk, "task");
		pack_str(&pk, "exec");
		pack_str(&pk, "args");
		msgpack_pack_map(&pk, 1);
		pack_str(&pk, "argv");
		msgpack_pack_array(&pk, 3);
		pack_str(&pk, "sh");
		pack_str(&pk, "-c");
		pack_str(&pk, "echo 'hi'");
		msgpack_unpacked_init(&r.up);
		assert_int_equal(
		    msgpack_unpack_next(&r.up, r.sb.data, r.sb.size, NULL),
		    MSGPACK_UNPACK_SUCCESS);
		assert_int_equal(proto_decode_fields(&r.up.data, &r.m, &f), 0);
	}
	cmd_ps_cell(col("COMMAND"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "exec -- sh -c 'echo '\\''hi'\\'''");
	row_free(&r);
}

static void
group_and_priority_show_their_defaults_the_rest_a_dash_when_absent(void **state)
{
	struct row r;
	char buf[256];

	row_make(&r, "job=7", "task=noop", "group=gpu", "label=nightly",
	         "ahead=3", NULL);
	cmd_ps_cell(col("GROUP"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "gpu");
	cmd_ps_cell(col("LABEL"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "nightly");
	cmd_ps_cell(col("AHEAD"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "3");
	cmd_ps_cell(col("PRIORITY"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "0"); /* the daemon leaves the default out */
	row_free(&r);
	row_make(&r, "job=8", "task=noop", "priority=5", NULL);
	cmd_ps_cell(col("GROUP"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "default");
	cmd_ps_cell(col("PRIORITY"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "5");
	cmd_ps_cell(col("LABEL"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	cmd_ps_cell(col("AHEAD"), &r.m, 0, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	row_free(&r);
}

/* ---- the table ---- */

/* What f printed on stdout, with stdout a file. */
static char *
captured(void (*f)(void *), void *arg)
{
	FILE *tmp = tmpfile();
	int saved = dup(STDOUT_FILENO);
	char *text;
	long len;

	assert_non_null(tmp);
	fflush(stdout);
	assert_int_not_equal(dup2(fileno(tmp), STDOUT_FILENO), -1);
	f(arg);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	len = ftell(tmp);
	assert_true(len >= 0);
	text = calloc(1, (size_t)len + 1);
	rewind(tmp);
	assert_int_equal(fread(text, 1, (size_t)len, tmp), (size_t)len);
	fclose(tmp);
	return text;
}

struct print_args {
	const char *spec;
	bool json;
	msgpack_object_array rows;
};

static void
print_cb(void *arg)
{
	struct print_args *a = arg;
	struct cmd_ps_cols c;
	char cause[256];

	assert_int_equal(cmd_ps_parse(a->spec, &c, cause, sizeof(cause)), 0);
	assert_int_equal(cmd_ps_print(&c, &a->rows, a->json, 0), 0);
}

#define LONG_COMMAND                                                           \
	"sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; done; sleep 100'"

static void
command_is_cut_to_columns_and_nothing_else_is(void **state)
{
	struct row r[2];
	msgpack_object objs[2];
	struct print_args a = {.spec = "id,state,command"};
	char *out, *line, *save;
	int n = 0;

	row_make(&r[0], "job=7", "task=exec", "state=running",
	         "command=" LONG_COMMAND, NULL);
	row_make(&r[1], "job=12345", "task=noop", "state=queued", NULL);
	objs[0] = r[0].up.data;
	objs[1] = r[1].up.data;
	a.rows.size = 2;
	a.rows.ptr = objs;

	setenv("COLUMNS", "40", 1);
	out = captured(print_cb, &a);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save), n++)
		assert_true(strlen(line) <= 40);
	assert_int_equal(n, 3);
	free(out);

	/* in the middle, COMMAND gives way and the columns after it stay */
	a.spec = "id,command,state";
	out = captured(print_cb, &a);
	n = 0;
	for (line = strtok_r(out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save), n++) {
		assert_true(strlen(line) <= 40);
		assert_true(strstr(line, n == 0   ? "STATE"
		                         : n == 1 ? "running"
		                                  : "queued") != NULL);
	}
	assert_int_equal(n, 3);
	free(out);
	a.spec = "id,state,command";

	/* without a terminal or COLUMNS: whole */
	unsetenv("COLUMNS");
	out = captured(print_cb, &a);
	assert_string_equal(out, "   ID  STATE    COMMAND\n"
	                         "    7  running  " LONG_COMMAND "\n"
	                         "12345  queued   noop\n");
	free(out);
	row_free(&r[0]);
	row_free(&r[1]);
}

static void
json_rows_are_the_tables_rows_uncut_with_nulls(void **state)
{
	struct row r[2];
	msgpack_object objs[2];
	struct print_args a = {.spec = "id,group,label,command", .json = true};
	char *out;

	row_make(&r[0], "job=7", "task=exec", "group=gpu",
	         "command=" LONG_COMMAND, NULL);
	row_make(&r[1], "job=8", "task=noop", NULL);
	objs[0] = r[0].up.data;
	objs[1] = r[1].up.data;
	a.rows.size = 2;
	a.rows.ptr = objs;
	setenv("COLUMNS", "20", 1);
	out = captured(print_cb, &a);
	unsetenv("COLUMNS");
	assert_non_null(strstr(out, "\"jobs\": ["));
	assert_non_null(strstr(out, "\"id\": 7,"));
	assert_non_null(strstr(out, "\"group\": \"gpu\","));
	assert_non_null(strstr(out, "\"command\": \"sh -c 'for i in 1 2 3 4 5 "
	                            "6 7 8 9 10; do echo $i; done; sleep "
	                            "100'\""));
	assert_non_null(strstr(out, "\"id\": 8,"));
	assert_non_null(strstr(out, "\"group\": \"default\","));
	assert_non_null(strstr(out, "\"label\": null,"));
	assert_non_null(strstr(out, "\"command\": \"noop\""));
	free(out);
	row_free(&r[0]);
	row_free(&r[1]);
}

static void
a_table_without_rows_still_has_its_titles(void **state)
{
	struct print_args a = {.spec = "id,command"};
	char *out;

	out = captured(print_cb, &a);
	assert_string_equal(out, "ID  COMMAND\n");
	free(out);
}

/* ---- the progress bar ---- */

#define SEC INT64_C(1000000)

static void
the_rate_and_eta_count_from_the_jobs_start_not_its_submission(void **state)
{
	struct render_progress p;
	char line[256];

	render_progress_init(&p, 7, NULL);
	p.start = 100 * SEC; /* submitted, and queued for 10 s */
	p.began = 110 * SEC; /* started */
	p.seen = true;
	p.done = 20;
	p.total = 100;
	/* 20 done in the 2 s since the start: 10/s, 80 left: 8 s */
	render_progress_format(&p, 112 * SEC, line, sizeof(line));
	assert_string_equal(line, "job 7 [####................]  20%  10.0/s"
	                          "  0:02  ETA 0:08  ");
	/* until the start is known, from when following began */
	p.began = 0;
	render_progress_format(&p, 104 * SEC, line, sizeof(line));
	assert_string_equal(line, "job 7 [####................]  20%  5.0/s"
	                          "  0:04  ETA 0:16  ");
}

static void
no_eta_without_a_rate_or_a_total(void **state)
{
	struct render_progress p;
	char line[256];

	render_progress_init(&p, 7, NULL);
	p.start = p.began = 100 * SEC;
	p.seen = true;
	p.total = 100;
	render_progress_format(&p, 103 * SEC, line, sizeof(line));
	assert_string_equal(line,
	                    "job 7 [....................]   0%  -/s  0:03  ");
	p.total = 0;
	p.done = 30;
	snprintf(p.msg, sizeof(p.msg), "step 30");
	render_progress_format(&p, 103 * SEC, line, sizeof(line));
	assert_string_equal(line, "job 7  30 done  10.0/s  0:03  step 30");
	p.total = 30; /* done: nothing left to wait for */
	render_progress_format(&p, 103 * SEC, line, sizeof(line));
	assert_null(strstr(line, "ETA"));
}

static void
a_queued_job_says_how_many_are_ahead_when_the_daemon_says(void **state)
{
	struct render_progress p;
	struct row r;
	char line[256];

	render_progress_init(&p, 7, NULL);
	p.start = 100 * SEC;
	row_make(&r, "job=7", "state=queued", "ahead=3", NULL);
	render_progress_record(&p, &r.m);
	row_free(&r);
	render_progress_format(&p, 105 * SEC, line, sizeof(line));
	assert_string_equal(line, "job 7  queued (3 ahead)  0:05");
	row_make(&r, "job=7", "state=queued", NULL);
	render_progress_record(&p, &r.m);
	row_free(&r);
	render_progress_format(&p, 105 * SEC, line, sizeof(line));
	assert_string_equal(line, "job 7  queued  0:05");
	/* running: the start is taken from the record */
	row_make(&r, "job=7", "state=running", "started=1000000", NULL);
	render_progress_record(&p, &r.m);
	row_free(&r);
	assert_false(p.queued);
	assert_true(p.began > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        the_default_columns_keep_what_ps_showed_and_add_command),
	    cmocka_unit_test(o_names_columns_in_its_order_in_any_case),
	    cmocka_unit_test(
	        an_unknown_or_empty_column_is_refused_with_the_valid_names),
	    cmocka_unit_test(ps_help_names_every_column),
	    cmocka_unit_test(quoting_gives_back_what_a_shell_reads),
	    cmocka_unit_test(
	        command_is_the_daemons_command_line_else_the_task_and_its_args),
	    cmocka_unit_test(
	        command_of_an_exec_job_without_one_is_its_argv_quoted),
	    cmocka_unit_test(
	        group_and_priority_show_their_defaults_the_rest_a_dash_when_absent),
	    cmocka_unit_test(command_is_cut_to_columns_and_nothing_else_is),
	    cmocka_unit_test(json_rows_are_the_tables_rows_uncut_with_nulls),
	    cmocka_unit_test(a_table_without_rows_still_has_its_titles),
	    cmocka_unit_test(
	        the_rate_and_eta_count_from_the_jobs_start_not_its_submission),
	    cmocka_unit_test(no_eta_without_a_rate_or_a_total),
	    cmocka_unit_test(
	        a_queued_job_says_how_many_are_ahead_when_the_daemon_says),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
