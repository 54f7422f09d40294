/*
 * test_deps.c -- the order of a gather's lines that name each other
 * (@N): a cycle is refused and its lines named, in the order they wait.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deps.h"

/*
 * The references of n lines, one string per line ("1 2": the line
 * names @1 and @2), checked; the cause when refused.
 */
static int
check(size_t n, const char *const *lines, char *cause, size_t len)
{
	uint32_t first[16], refs[64];
	size_t i, k = 0;
	int rc;

	for (i = 0; i < n; i++) {
		const char *p = lines[i];
		char *end;

		first[i] = (uint32_t)k;
		while (*p != '\0') {
			refs[k++] = (uint32_t)strtoul(p, &end, 10);
			p = end;
		}
	}
	first[n] = (uint32_t)k;
	cause[0] = '\0';
	rc = deps_order_check(n, first, refs, cause, len);
	return rc;
}

/* Backward, forward and shared references without a cycle pass. */
static void
a_workflow_in_any_order_passes(void **state)
{
	static const char *const lines[] = {"", "0", "0", "1 2", "5", "3"};
	char cause[128];

	assert_int_equal(check(6, lines, cause, sizeof(cause)), 0);
	assert_string_equal(cause, "");
}

/* A line that names itself is a cycle of one. */
static void
a_line_naming_itself_is_a_cycle(void **state)
{
	static const char *const lines[] = {"", "1"};
	char cause[128];

	assert_int_equal(check(2, lines, cause, sizeof(cause)), -1);
	assert_string_equal(cause, "after: a cycle: @1 waits for @1");
}

/* The cycle is named, not the lines waiting behind it. */
static void
a_cycle_is_named_without_the_lines_behind_it(void **state)
{
	/* 0 waits for 3; 1 -> 3 -> 2 -> 1; 4 waits for 0 */
	static const char *const lines[] = {"3", "3", "1", "2", "0"};
	char cause[128];

	assert_int_equal(check(5, lines, cause, sizeof(cause)), -1);
	assert_string_equal(cause,
	                    "after: a cycle: @1 waits for @3 waits for @2 "
	                    "waits for @1");
}

/* A cause too small for the whole cycle is cut, still terminated. */
static void
a_long_cycle_is_cut_to_the_room(void **state)
{
	static const char *const lines[] = {"1", "2", "3", "4", "5", "0"};
	char cause[24];

	assert_int_equal(check(6, lines, cause, sizeof(cause)), -1);
	assert_int_equal(strlen(cause), sizeof(cause) - 1);
	assert_memory_equal(cause, "after: a cycle: @0", 18);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_workflow_in_any_order_passes),
	    cmocka_unit_test(a_line_naming_itself_is_a_cycle),
	    cmocka_unit_test(a_cycle_is_named_without_the_lines_behind_it),
	    cmocka_unit_test(a_long_cycle_is_cut_to_the_room),
	};

	return cmocka_run_group_tests_name("gather order", tests, NULL, NULL);
}
