/*
 * test_config.c -- concd.conf as config.c reads it: what is refused, with
 * which reason, and what a key set on the command line keeps.
 */
#include <sys/stat.h>

#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

struct fixture {
	char dir[64];
	char file[96];
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	strcpy(fx->dir, "/tmp/concd-config-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->file, sizeof(fx->file), "%s/concd.conf", fx->dir);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	unlink(fx->file);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Load text as the file; returns config_load's rc, cause in cause. */
static int
load(struct fixture *fx, const char *text, struct server_options *o,
     uint32_t keep, char *cause, size_t causelen)
{
	write_file(fx->file, text);
	cause[0] = '\0';
	return config_load(fx->file, true, o, keep, cause, causelen);
}

/* A directory is not a configuration file, even an optional one. */
static void
a_directory_is_refused_by_name(void **state)
{
	struct fixture *fx = *state;
	struct server_options o = {.threads = 2};
	char cause[512], want[128];

	assert_int_equal(
	    config_load(fx->dir, true, &o, 0, cause, sizeof(cause)), -1);
	snprintf(want, sizeof(want), "%s: Is a directory", fx->dir);
	assert_string_equal(cause, want);
	assert_int_equal(
	    config_load(fx->dir, false, &o, 0, cause, sizeof(cause)), -1);
	assert_string_equal(cause, want);
	assert_int_equal(o.threads, 2);
	config_free(&o);
}

/*
 * [slurm] starts the Slurm section: its keys are slurm.NAME, which may
 * also be written so anywhere; no other section exists.
 */
static void
the_slurm_section_holds_the_slurm_keys(void **state)
{
	struct fixture *fx = *state;
	struct server_options o = {.threads = 2};
	char cause[512];

	assert_int_equal(
	    load(fx,
	         "threads = 3\n"
	         "slurm.account = physics\n"
	         "[slurm]  # the cluster\n"
	         "enabled = yes\n"
	         "partition = batch\n"
	         "srun-options = --exclusive --hint=nomultithread\n"
	         "max-workers = 8\n",
	         &o, 0, cause, sizeof(cause)),
	    0);
	assert_int_equal(o.threads, 3);
	assert_int_equal(o.slurm.enabled, 1);
	assert_string_equal(o.slurm.partition, "batch");
	assert_string_equal(o.slurm.account, "physics");
	assert_string_equal(o.slurm.srun_options,
	                    "--exclusive --hint=nomultithread");
	assert_int_equal(o.slurm.max_workers, 8);
	config_free(&o);
	assert_null(o.slurm.partition);

	/* after [slurm], a key of the top is not there */
	assert_int_equal(
	    load(fx, "[slurm]\nthreads = 3\n", &o, 0, cause, sizeof(cause)),
	    -1);
	assert_non_null(strstr(cause, ":2: unknown key \"slurm.threads\""));
	assert_int_equal(load(fx, "[cluster]\n", &o, 0, cause, sizeof(cause)),
	                 -1);
	assert_non_null(strstr(cause, ":1: unknown section \"[cluster]\" "
	                              "(there is only [slurm])"));
	assert_int_equal(load(fx, "[slurm]\nmax-workers = 1000\n", &o, 0, cause,
	                      sizeof(cause)),
	                 -1);
	assert_non_null(strstr(cause, ":2: slurm.max-workers must be a "
	                              "number from 0 to 256"));
	config_free(&o);
}

/* Load n bytes, NULs and all, as the file. */
static int
load_bytes(struct fixture *fx, const char *bytes, size_t n,
           struct server_options *o, char *cause, size_t causelen)
{
	FILE *f = fopen(fx->file, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(bytes, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	cause[0] = '\0';
	return config_load(fx->file, true, o, 0, cause, causelen);
}

/*
 * A line is read whole: a comment of any length up to 64 KiB is a
 * comment, and the lines after it keep their numbers.  Before, a fixed
 * buffer of 4 KiB cut a long comment in two and refused its second half
 * as line 2, "expected key = value".
 */
static void
a_long_line_is_one_line(void **state)
{
	struct fixture *fx = *state;
	struct server_options o = {.threads = 2};
	size_t n = 70000;
	char cause[512], *text = malloc(n + 64);

	assert_non_null(text);
	text[0] = '#';
	memset(text + 1, 'x', 5000);
	strcpy(text + 5001, "\nthreads = 3\n");
	assert_int_equal(load(fx, text, &o, 0, cause, sizeof(cause)), 0);
	assert_int_equal(o.threads, 3);
	/* the lines after a long one keep their numbers */
	strcpy(text + 5001, "\nthreads = 3\nnosuch = 1\n");
	assert_int_equal(load(fx, text, &o, 0, cause, sizeof(cause)), -1);
	assert_non_null(strstr(cause, ":3: unknown key \"nosuch\""));
	/* a line of 65536 bytes is one; past that, it is refused by number */
	memset(text, 'x', n);
	memcpy(text, "plugin-dir = /", 14);
	text[65536] = '\n';
	text[65537] = '\0';
	assert_int_equal(load(fx, text, &o, 0, cause, sizeof(cause)), -1);
	assert_non_null(strstr(cause, ":1: plugin-dir: bad path"));
	strcpy(text + 65536, "x\n");
	assert_int_equal(load(fx, text, &o, 0, cause, sizeof(cause)), -1);
	assert_non_null(strstr(cause, ":1: the line is longer than 65536 "
	                              "bytes"));
	/* the last line needs no newline */
	assert_int_equal(
	    load(fx, "# one\nthreads = 4", &o, 0, cause, sizeof(cause)), 0);
	assert_int_equal(o.threads, 4);
	/* nor is a NUL byte taken for the end of a line */
	assert_int_equal(load_bytes(fx, "threads = 3\n# a\0b\n", 19, &o, cause,
	                            sizeof(cause)),
	                 -1);
	assert_non_null(strstr(cause, ":2: the line holds a NUL byte"));
	free(text);
	config_free(&o);
}

#define NITEMS(a) (sizeof(a) / sizeof((a)[0]))

/* A tiny generator: the same inputs every run. */
static uint64_t
next_random(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/*
 * Files made of random lines (keys right and wrong, values of every
 * kind, sections, stray bytes): each loads or is refused with a cause,
 * and nothing is left allocated once config_free has run (ASan).
 */
static void
random_files_load_or_are_refused_with_a_cause(void **state)
{
	/* clang-format off */
	static const char *const keys[] = {
	    "threads", "processes", "max-finished", "socket", "plugin-dir",
	    "stop-timeout", "queue-limit", "busy-poll", "exec-other-users",
	    "admin-group", "state-dir", "store-fsync", "log-limit",
	    "log-total-limit", "group", "limits", "on-end", "slurm.enabled",
	    "slurm.partition", "max-workers", "srun-options", "nosuch", "",
	    "=", "[slurm]", "[x]", "#", "threads threads"};
	static const char *const values[] = {
	    "0", "1", "2", "-1", "+3", " 7 ", "99999999999999999999", "0x10",
	    "yes", "no", "on", "maybe", "4K", "1M", "1T", "9999T", "", "/tmp",
	    "relative", "root", "nosuchgroup", "gpu parallel=2",
	    "gpu paused=yes parallel=", "a b c", "= =", "#x", "\xff\xfe",
	    "cpu,memory", "sh -c 'echo'", "[slurm]"};
	/* clang-format on */
	struct fixture *fx = *state;
	struct server_options o = {.threads = 2};
	char text[2048], cause[512];
	uint64_t x = 0x9e3779b97f4a7c15u;
	size_t n, k, lines;
	int i, rc, loaded = 0;

	for (i = 0; i < 3000; i++) {
		n = 0;
		lines = next_random(&x) % 8;
		for (k = 0; k < lines && n < sizeof(text) - 256; k++) {
			const char *key = keys[next_random(&x) % NITEMS(keys)];
			const char *value =
			    values[next_random(&x) % NITEMS(values)];

			switch (next_random(&x) % 6) {
			case 0: /* a line of its own */
				n += (size_t)snprintf(
				    text + n, sizeof(text) - n, "%s\n", key);
				break;
			case 1: /* random bytes */
				while (next_random(&x) % 16 != 0 &&
				       n < sizeof(text) - 2)
					text[n++] =
					    (char)(next_random(&x) % 255 + 1);
				text[n++] = '\n';
				break;
			default:
				n += (size_t)snprintf(
				    text + n, sizeof(text) - n, "%s = %s%s\n",
				    key, value,
				    next_random(&x) % 4 == 0 ? " # note" : "");
			}
		}
		text[n] = '\0';
		rc = load(fx, text, &o, 0, cause, sizeof(cause));
		assert_true(rc == 0 || rc == -1);
		if (rc < 0)
			assert_true(cause[0] != '\0');
		else
			loaded++;
		config_free(&o);
	}
	/* enough of them load for the values to be set, not only refused */
	assert_true(loaded > 100);
}

/* Numbers are plain decimal: no sign, no space inside, no base prefix. */
static void
numbers_are_plain_decimal(void **state)
{
	static const char *const bad[] = {
	    "threads = +3\n",  "threads = -3\n", "threads = 0x3\n",
	    "threads = 3 4\n", "threads = 3k\n", "threads =\n",
	};
	struct fixture *fx = *state;
	struct server_options o = {.threads = 2};
	char cause[512];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(load(fx, bad[i], &o, 0, cause, sizeof(cause)),
		                 -1);
		assert_non_null(strstr(cause, ":1: threads must be a number "
		                              "from 1 to 1024"));
		assert_int_equal(o.threads, 2);
	}
	assert_int_equal(
	    load(fx, "threads = 007\n", &o, 0, cause, sizeof(cause)), 0);
	assert_int_equal(o.threads, 7);
	config_free(&o);
}

/*
 * socket must fit in a socket address (107 bytes), made absolute, and the
 * file's value is checked even when -s overrides the key, with its line.
 */
static void
socket_must_fit_a_socket_address_even_when_overridden(void **state)
{
	struct fixture *fx = *state;
	struct server_options o = {0};
	uint32_t keep = config_key_bit("socket");
	char cause[512], text[300], path[200], cwd[4096];
	size_t n;

	memset(path, 'a', sizeof(path));
	memcpy(path, "/tmp/", 5);
	path[107] = '\0'; /* 107 bytes: the most */
	snprintf(text, sizeof(text), "threads = 2\nsocket = %s\n", path);
	assert_int_equal(load(fx, text, &o, 0, cause, sizeof(cause)), 0);
	assert_string_equal(o.socket_path, path);
	config_free(&o);
	path[107] = 'a';
	path[108] = '\0';
	snprintf(text, sizeof(text), "threads = 2\nsocket = %s\n", path);
	for (n = 0; n < 2; n++) {
		assert_int_equal(
		    load(fx, text, &o, n ? keep : 0, cause, sizeof(cause)), -1);
		assert_non_null(strstr(cause,
		                       "concd.conf:2: socket: 108 bytes, "
		                       "longer than the 107 a socket "
		                       "address holds: /tmp/aaa"));
		assert_null(o.socket_path);
	}
	/* a relative path counts the directory it is made absolute with */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(fx->dir), 0);
	n = 107 - strlen(fx->dir) - 1;
	memset(path, 'r', n + 1);
	path[n + 1] = '\0';
	snprintf(text, sizeof(text), "socket = %s\n", path);
	assert_int_equal(load(fx, text, &o, 0, cause, sizeof(cause)), -1);
	assert_non_null(strstr(cause, ":1: socket: 108 bytes made absolute"));
	path[n] = '\0';
	snprintf(text, sizeof(text), "socket = %s\n", path);
	assert_int_equal(load(fx, text, &o, 0, cause, sizeof(cause)), 0);
	assert_int_equal(chdir(cwd), 0);
	config_free(&o);
}

/*
 * admin-group names a group by name or by number, and either way the
 * group must exist: a gid that the group database does not have is an
 * error, as a name it does not have is.
 */
static void
admin_group_must_exist_by_name_or_number(void **state)
{
	struct fixture *fx = *state;
	struct server_options o = {.admin_gid = -1};
	char cause[512], text[64], want[64];
	struct group *gr;
	gid_t none = 999999;

	while (getgrgid(none) != NULL)
		none++;
	snprintf(text, sizeof(text), "admin-group = %u\n", (unsigned)none);
	assert_int_equal(load(fx, text, &o, 0, cause, sizeof(cause)), -1);
	snprintf(want, sizeof(want), ":1: admin-group: no group \"%u\"",
	         (unsigned)none);
	assert_non_null(strstr(cause, want));
	assert_int_equal(o.admin_gid, -1);
	assert_int_equal(load(fx, "admin-group = nosuchgroup\n", &o, 0, cause,
	                      sizeof(cause)),
	                 -1);
	assert_non_null(strstr(cause, ":1: admin-group: no group "
	                              "\"nosuchgroup\""));
	/* a group that exists, by its number and by its name */
	assert_non_null(gr = getgrgid(0));
	assert_int_equal(
	    load(fx, "admin-group = 0\n", &o, 0, cause, sizeof(cause)), 0);
	assert_int_equal(o.admin_gid, 0);
	o.admin_gid = -1;
	snprintf(text, sizeof(text), "admin-group = %s\n", gr->gr_name);
	assert_int_equal(load(fx, text, &o, 0, cause, sizeof(cause)), 0);
	assert_int_equal(o.admin_gid, 0);
	config_free(&o);
}

/*
 * A key given on the command line keeps its value, but the file's value
 * is still checked: a mistake in the file is reported, not hidden.
 */
static void
a_bad_value_is_an_error_even_when_a_flag_overrides_the_key(void **state)
{
	struct fixture *fx = *state;
	struct server_options o = {.threads = 2, .processes = 4};
	uint32_t keep = config_key_bit("processes");
	char cause[512];

	assert_int_equal(load(fx, "threads = 3\nprocesses = -1\n", &o, keep,
	                      cause, sizeof(cause)),
	                 -1);
	assert_non_null(strstr(cause, "concd.conf:2: processes must be a "
	                              "number from 0 to 256"));
	assert_int_equal(o.processes, 4);
	/* a good value of a kept key is read and left alone */
	o.threads = 2;
	assert_int_equal(load(fx, "threads = 3\nprocesses = 1\n", &o, keep,
	                      cause, sizeof(cause)),
	                 0);
	assert_int_equal(o.threads, 3);
	assert_int_equal(o.processes, 4);
	/* a kept path is checked too, and not replaced */
	o.socket_path = strdup("/run/kept.sock");
	keep = config_key_bit("socket");
	assert_int_equal(load(fx, "socket = /run/other.sock\n", &o, keep, cause,
	                      sizeof(cause)),
	                 0);
	assert_string_equal(o.socket_path, "/run/kept.sock");
	config_free(&o);
}

/* A missing file is an error only when it is required. */
static void
a_missing_file_is_an_error_only_when_required(void **state)
{
	struct fixture *fx = *state;
	struct server_options o = {.threads = 2};
	char cause[512], want[160];

	assert_int_equal(
	    config_load(fx->file, false, &o, 0, cause, sizeof(cause)), 0);
	assert_int_equal(
	    config_load(fx->file, true, &o, 0, cause, sizeof(cause)), -1);
	snprintf(want, sizeof(want), "%s: No such file or directory", fx->file);
	assert_string_equal(cause, want);
	config_free(&o);
}

/* Sizes: decimal bytes or K, M, G, T (powers of 1024), within bounds. */
static void
sizes_take_a_unit_and_keep_their_bounds(void **state)
{
	static const struct {
		const char *text;
		uint64_t want; /* 0: refused */
	} cases[] = {
	    {"log-limit = 4096\n", 4096},
	    {"log-limit = 64M\n", 64ULL << 20},
	    {"log-limit = 2T\n", 2ULL << 40},
	    {"log-limit = 4095\n", 0},
	    {"log-limit = 3K\n", 0},
	    {"log-limit = 64m\n", 0},
	    {"log-limit = 64MB\n", 0},
	    {"log-limit = -1\n", 0},
	    {"log-limit = 99999999999T\n", 0},
	    {"log-limit = 99999999999999999999\n", 0},
	};
	struct server_options o;
	char cause[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&o, 0, sizeof(o));
		if (cases[i].want == 0) {
			assert_int_equal(load(*state, cases[i].text, &o, 0,
			                      cause, sizeof(cause)),
			                 -1);
			assert_non_null(strstr(cause,
			                       "log-limit must be a size "
			                       "of at least 4096 bytes"));
		} else {
			assert_int_equal(load(*state, cases[i].text, &o, 0,
			                      cause, sizeof(cause)),
			                 0);
			assert_int_equal(o.log_limit, cases[i].want);
		}
	}
	memset(&o, 0, sizeof(o));
	o.log_total_limit = 1;
	assert_int_equal(
	    load(*state, "log-total-limit = 0\n", &o, 0, cause, sizeof(cause)),
	    0);
	assert_int_equal(o.log_total_limit, 0);
}

/* on-end and limits: a command line (to its comment) and a word. */
static void
strings_keep_their_words_and_must_not_be_empty(void **state)
{
	struct server_options o;
	char cause[256], big[5000];

	memset(&o, 0, sizeof(o));
	assert_int_equal(load(*state,
	                      "on-end = notify-send \"$CONCD_JOB_ID\" done "
	                      "# not this\nlimits = rlimit\n",
	                      &o, 0, cause, sizeof(cause)),
	                 0);
	assert_string_equal(o.on_end, "notify-send \"$CONCD_JOB_ID\" done");
	assert_string_equal(o.limits, "rlimit");
	config_free(&o);
	assert_null(o.on_end);
	assert_null(o.limits);
	assert_int_equal(
	    load(*state, "on-end =\n", &o, 0, cause, sizeof(cause)), -1);
	assert_non_null(strstr(cause, "on-end must be 1 to 4096 bytes long"));
	memset(big, 'x', sizeof(big) - 2);
	memcpy(big, "on-end=", 7);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(load(*state, big, &o, 0, cause, sizeof(cause)), -1);
	assert_non_null(strstr(cause, "on-end must be 1 to 4096 bytes long"));
	config_free(&o);
}

static void
group_lines_add_up_and_the_last_of_a_name_wins(void **state)
{
	struct fixture *fx = *state;
	struct server_options o = {0};
	char cause[512];

	assert_int_equal(load(fx,
	                      "group = gpu parallel=1\n"
	                      "group = batch  paused=yes mem=2G pids=64\n"
	                      "group = gpu parallel=2 paused=no\n"
	                      "group = default\n",
	                      &o, 0, cause, sizeof(cause)),
	                 0);
	assert_int_equal(o.ngroups, 3);
	assert_string_equal(o.groups[0].name, "gpu");
	assert_int_equal(o.groups[0].parallel, 2);
	assert_false(o.groups[0].paused);
	assert_string_equal(o.groups[1].name, "batch");
	assert_int_equal(o.groups[1].parallel, 0);
	assert_true(o.groups[1].paused);
	assert_int_equal(o.groups[1].mem, UINT64_C(2) << 30);
	assert_int_equal(o.groups[1].pids, 64);
	assert_string_equal(o.groups[2].name, "default");
	config_free(&o);
	assert_null(o.groups);
	assert_int_equal(o.ngroups, 0);
}

static void
a_bad_group_line_says_what_is_wrong(void **state)
{
	static const struct {
		const char *line, *why;
	} bad[] = {
	    {"group =\n", "group: a name of 1 to 64"},
	    {"group = -x\n", "group: a name of 1 to 64"},
	    {"group = .x\n", "group: a name of 1 to 64"},
	    {"group = a/b\n", "group: a name of 1 to 64"},
	    {"group = gpu parallel=\n", "group gpu: \"parallel=\" is not"},
	    {"group = gpu parallel=1000001\n", "\"parallel=1000001\" is not"},
	    {"group = gpu paused=maybe\n", "\"paused=maybe\" is not"},
	    {"group = gpu mem=lots\n", "\"mem=lots\" is not"},
	    {"group = gpu pids=4194305\n", "\"pids=4194305\" is not"},
	    {"group = gpu slots=2\n", "\"slots=2\" is not parallel=N"},
	};
	struct fixture *fx = *state;
	struct server_options o = {0};
	char cause[512];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		    load(fx, bad[i].line, &o, 0, cause, sizeof(cause)), -1);
		if (strstr(cause, bad[i].why) == NULL)
			fail_msg("%s: %s", bad[i].line, cause);
	}
	assert_int_equal(o.ngroups, 0);
	config_free(&o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(a_directory_is_refused_by_name,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        the_slurm_section_holds_the_slurm_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(numbers_are_plain_decimal, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        a_bad_value_is_an_error_even_when_a_flag_overrides_the_key,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        admin_group_must_exist_by_name_or_number, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        socket_must_fit_a_socket_address_even_when_overridden, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        a_missing_file_is_an_error_only_when_required, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        sizes_take_a_unit_and_keep_their_bounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        strings_keep_their_words_and_must_not_be_empty, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        group_lines_add_up_and_the_last_of_a_name_wins, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(a_bad_group_line_says_what_is_wrong,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(a_long_line_is_one_line, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        random_files_load_or_are_refused_with_a_cause, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
