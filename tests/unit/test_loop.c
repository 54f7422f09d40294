/*
 * test_loop.c -- the loop's own policies: how the busy-poll window
 * adapts to what it catches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "loop.h"

#define MAX 50000 /* the --busy-poll bound; the unit does not matter here */

/* From window w, n steps that all did (or did not) catch: each window. */
static void
assert_steps(uint64_t w, bool caught, const uint64_t *want, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		w = loop_poll_next(w, MAX, caught);
		assert_int_equal(w, want[i]);
	}
}

/* Windows that catch nothing halve it, then turn polling off. */
static void
empty_windows_halve_the_window_down_to_none(void **state)
{
	/* 3125 would be under an eighth of the bound: off */
	static const uint64_t want[] = {25000, 12500, 6250, 0, 0};

	assert_steps(MAX, false, want, 5);
}

/* Work a window would have caught widens it again, up to the bound. */
static void
work_a_window_would_catch_doubles_it_up_to_the_bound(void **state)
{
	static const uint64_t want[] = {6250, 12500, 25000, MAX, MAX};

	assert_steps(0, true, want, 5);
	/* from a window that is not a power-of-two step: capped */
	assert_int_equal(loop_poll_next(40000, MAX, true), MAX);
}

/* --busy-poll 0: there is never a window. */
static void
no_bound_no_window(void **state)
{
	assert_int_equal(loop_poll_next(0, 0, true), 0);
	assert_int_equal(loop_poll_next(0, 0, false), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(empty_windows_halve_the_window_down_to_none),
	    cmocka_unit_test(
	        work_a_window_would_catch_doubles_it_up_to_the_bound),
	    cmocka_unit_test(no_bound_no_window),
	};

	return cmocka_run_group_tests_name("busy polling", tests, NULL, NULL);
}
