/*
 * test_msg.c -- the protocol's tables (msg.c): every row named, no
 * duplicate names, required fields that exist, and the name lookups.
 */
#include "proto_fixture.h"

/* ---- tables and name lookups ---- */

static void
tables_name_every_row(void **state)
{
	int i;

	for (i = 0; i < PROTO_TYPE_COUNT; i++) {
		assert_non_null(proto_types[i].name);
		assert_true(proto_types[i].name[0] != '\0');
		assert_non_null(proto_types[i].doc);
	}
	for (i = 0; i < PF_FIELD_COUNT; i++) {
		assert_non_null(proto_fields[i].name);
		assert_true(proto_fields[i].name[0] != '\0');
		assert_in_range(proto_fields[i].type, PV_UINT, PV_ANY);
	}
	for (i = 0; i < PE_COUNT; i++) {
		assert_non_null(proto_errors[i].name);
		assert_true(proto_errors[i].name[0] != '\0');
		assert_non_null(proto_errors[i].text);
		assert_true(proto_errors[i].text[0] != '\0');
	}
	for (i = 0; i < PS_COUNT; i++)
		assert_true(proto_states[i] != NULL && proto_states[i][0]);
	for (i = 0; i < PX_COUNT; i++)
		assert_true(proto_execs[i] != NULL && proto_execs[i][0]);
}

static void
tables_hold_no_duplicate_names(void **state)
{
	int i, j;

	for (i = 0; i < PROTO_TYPE_COUNT; i++)
		for (j = i + 1; j < PROTO_TYPE_COUNT; j++)
			assert_string_not_equal(proto_types[i].name,
			                        proto_types[j].name);
	for (i = 0; i < PF_FIELD_COUNT; i++)
		for (j = i + 1; j < PF_FIELD_COUNT; j++)
			assert_string_not_equal(proto_fields[i].name,
			                        proto_fields[j].name);
	for (i = 0; i < PE_COUNT; i++)
		for (j = i + 1; j < PE_COUNT; j++)
			assert_string_not_equal(proto_errors[i].name,
			                        proto_errors[j].name);
	for (i = 0; i < PS_COUNT; i++)
		for (j = i + 1; j < PS_COUNT; j++)
			assert_string_not_equal(proto_states[i],
			                        proto_states[j]);
	for (i = 0; i < PX_COUNT; i++)
		for (j = i + 1; j < PX_COUNT; j++)
			assert_string_not_equal(proto_execs[i], proto_execs[j]);
}

static void
tables_list_requests_before_replies(void **state)
{
	int i;

	for (i = 0; i < PROTO_TYPE_COUNT; i++)
		assert_int_equal(proto_types[i].request, i < PROTO_WELCOME);
}

static void
tables_required_fields_are_real_fields(void **state)
{
	/* required is a mask of the first 64 fields only */
	const uint64_t real = PF_FIELD_COUNT >= 64
	                          ? ~UINT64_C(0)
	                          : (UINT64_C(1) << (PF_FIELD_COUNT % 64)) - 1;
	int i;

	for (i = 0; i < PROTO_TYPE_COUNT; i++)
		assert_int_equal(proto_types[i].required & ~real, 0);
}

static void
state_final_marks_only_terminal_states(void **state)
{
	assert_false(PROTO_STATE_FINAL(PS_QUEUED));
	assert_false(PROTO_STATE_FINAL(PS_RUNNING));
	assert_true(PROTO_STATE_FINAL(PS_SUCCEEDED));
	assert_true(PROTO_STATE_FINAL(PS_FAILED));
	assert_true(PROTO_STATE_FINAL(PS_CANCELLED));
	assert_true(PROTO_STATE_FINAL(PS_TIMED_OUT));
}

static void
lookups_round_trip_every_name(void **state)
{
	int i;

	for (i = 0; i < PROTO_TYPE_COUNT; i++)
		assert_int_equal(proto_type_lookup(proto_types[i].name,
		                                   strlen(proto_types[i].name)),
		                 i);
	for (i = 0; i < PF_FIELD_COUNT; i++)
		assert_int_equal(
		    proto_field_lookup(proto_fields[i].name,
		                       strlen(proto_fields[i].name)),
		    i);
	for (i = 0; i < PE_COUNT; i++)
		assert_int_equal(
		    proto_error_lookup(proto_errors[i].name,
		                       strlen(proto_errors[i].name)),
		    i);
	for (i = 0; i < PS_COUNT; i++)
		assert_int_equal(proto_state_lookup(proto_states[i],
		                                    strlen(proto_states[i])),
		                 i);
	for (i = 0; i < PX_COUNT; i++)
		assert_int_equal(
		    proto_exec_lookup(proto_execs[i], strlen(proto_execs[i])),
		    i);
}

static void
lookups_return_minus_one_for_unknown_names(void **state)
{
	static const char *const unknown[] = {
	    "",        "x",     "frobnicate", "PING",   "Task",
	    "pin",     "pings", "tas",        "tasks2", "queue",
	    "queuedd", "thr",   "bad_fram",   "none ",
	};
	size_t i;

	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		const char *s = unknown[i];

		assert_int_equal(proto_type_lookup(s, strlen(s)), -1);
		assert_int_equal(proto_field_lookup(s, strlen(s)), -1);
		assert_int_equal(proto_error_lookup(s, strlen(s)), -1);
		assert_int_equal(proto_state_lookup(s, strlen(s)), -1);
		assert_int_equal(proto_exec_lookup(s, strlen(s)), -1);
	}
	/* a name from one table is unknown to the others */
	assert_int_equal(proto_field_lookup("submit", 6), -1);
	assert_int_equal(proto_type_lookup("version", 7), -1);
	assert_int_equal(proto_state_lookup("loop", 4), -1);
	assert_int_equal(proto_exec_lookup("queued", 6), -1);
}

static void
lookups_compare_exactly_len_bytes(void **state)
{
	/* names on the wire are not NUL-terminated */
	assert_int_equal(proto_type_lookup("pingpong", 4), PROTO_PING);
	assert_int_equal(proto_type_lookup("tasks", 4), -1);
	assert_int_equal(proto_field_lookup("tasks", 4), PF_TASK);
	assert_int_equal(proto_field_lookup("tasks", 5), PF_TASKS);
	assert_int_equal(proto_error_lookup("internalXX", 8), PE_INTERNAL);
	assert_int_equal(proto_state_lookup("running!", 7), PS_RUNNING);
	assert_int_equal(proto_exec_lookup("loopy", 4), PX_LOOP);
	assert_int_equal(proto_exec_lookup("loop", 3), -1);
}

/*
 * A peer can put a NUL inside a key or a state/error/exec name: "queued\0"
 * is not "queued", and looking it up must not read past the table's name.
 * Returns the number of wrong answers, each reported on stderr.
 */
static int
nul_lookup_wrong(int (*lookup)(const char *, size_t), const char *row,
                 int extra)
{
	char name[80];
	size_t n = strlen(row);
	int r;

	memcpy(name, row, n + 1);
	name[n + 1] = (char)extra;
	r = lookup(name, extra < 0 ? n + 1 : n + 2);
	if (r == -1)
		return 0;
	fprintf(stderr, "lookup of \"%s\\0\" + byte %d returned %d\n", row,
	        extra, r);
	return 1;
}

static int
lookup_names_with_nul(void)
{
	int i, b, wrong = 0;

	for (i = 0; i < PS_COUNT; i++)
		wrong +=
		    nul_lookup_wrong(proto_state_lookup, proto_states[i], -1);
	for (i = 0; i < PX_COUNT; i++)
		wrong +=
		    nul_lookup_wrong(proto_exec_lookup, proto_execs[i], -1);
	for (i = 0; i < PE_COUNT; i++)
		wrong += nul_lookup_wrong(proto_error_lookup,
		                          proto_errors[i].name, -1);
	for (b = 0; b < 256; b++) {
		for (i = 0; i < PF_FIELD_COUNT; i++)
			wrong += nul_lookup_wrong(proto_field_lookup,
			                          proto_fields[i].name, b);
		for (i = 0; i < PROTO_TYPE_COUNT; i++)
			wrong += nul_lookup_wrong(proto_type_lookup,
			                          proto_types[i].name, b);
	}
	return wrong;
}

/*
 * A key is compared with the table's names for its whole length, and it
 * may be as long as PROTO_MAX_STR: "id\0" followed by 256 KiB is not "id",
 * and deciding so must not read 256 KiB past the string "id".  Every
 * last byte is tried so that one of the keys hashes into the chain that
 * holds "id", whatever the table's layout.  Returns the wrong answers.
 */
static int
decode_long_keys_with_nul(void)
{
	size_t klen = PROTO_MAX_STR, n;
	msgpack_zone zone;
	struct proto_msg m;
	struct proto_fault f;
	char *p;
	int b, wrong = 0;

	if ((p = malloc(klen + 32)) == NULL || !msgpack_zone_init(&zone, 4096))
		return 1;
	for (b = 0; b < 256; b++) {
		/* {"t": "ping", <str32 "id\0AAA...A" + b>: 1} */
		memcpy(p, "\x82\xa1t\xa4ping\xdb", 9);
		p[9] = (char)(klen >> 24);
		p[10] = (char)(klen >> 16);
		p[11] = (char)(klen >> 8);
		p[12] = (char)klen;
		memcpy(p + 13, "id", 3);
		memset(p + 16, 'A', klen - 4);
		p[13 + klen - 1] = (char)b;
		n = 13 + klen;
		p[n++] = 1;
		if (proto_decode(p, n, &zone, &m, &f) != PROTO_DECODE_OK ||
		    m.present != B(T)) {
			fprintf(stderr,
			        "key \"id\\0\" + %zu bytes ending in "
			        "%d: not ignored\n",
			        klen - 3, b);
			wrong++;
		}
	}
	msgpack_zone_destroy(&zone);
	free(p);
	return wrong;
}

/* Run fn in a child: a crash or a sanitizer's report fails one test. */
static void
assert_child_returns_zero(int (*fn)(void))
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0)
		_exit(fn() == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
decode_ignores_a_max_length_key_starting_with_a_name_and_nul(void **state)
{
	assert_child_returns_zero(decode_long_keys_with_nul);
}

/*
 * In a child process, so that a sanitizer's report of a read past a
 * table name fails this test alone instead of ending the whole run.
 */
static void
lookups_treat_embedded_nul_as_a_different_name(void **state)
{
	assert_child_returns_zero(lookup_names_with_nul);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tables_name_every_row),
	    cmocka_unit_test(tables_hold_no_duplicate_names),
	    cmocka_unit_test(tables_list_requests_before_replies),
	    cmocka_unit_test(tables_required_fields_are_real_fields),
	    cmocka_unit_test(state_final_marks_only_terminal_states),
	    cmocka_unit_test(lookups_round_trip_every_name),
	    cmocka_unit_test(lookups_return_minus_one_for_unknown_names),
	    cmocka_unit_test(lookups_compare_exactly_len_bytes),
	    cmocka_unit_test(lookups_treat_embedded_nul_as_a_different_name),
	    cmocka_unit_test(
	        decode_ignores_a_max_length_key_starting_with_a_name_and_nul),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
