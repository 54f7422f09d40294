/*
 * test_server.c -- the loop's own policies: how the busy-poll window
 * adapts to what it catches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "concd.h"

#define MAX 50000 /* ns: the default --busy-poll 50 */

/* Windows that catch nothing halve it, then turn polling off. */
static void
empty_windows_halve_the_window_down_to_none(void **state)
{
	uint64_t w = MAX;

	w = busy_poll_next(w, MAX, false);
	assert_int_equal(w, 25000);
	w = busy_poll_next(w, MAX, false);
	assert_int_equal(w, 12500);
	w = busy_poll_next(w, MAX, false);
	assert_int_equal(w, 6250);
	/* 3125 is under an eighth of the bound: off */
	w = busy_poll_next(w, MAX, false);
	assert_int_equal(w, 0);
	assert_int_equal(busy_poll_next(w, MAX, false), 0);
}

/* Work a window would have caught widens it again, up to the bound. */
static void
work_a_window_would_catch_doubles_it_up_to_the_bound(void **state)
{
	uint64_t w = 0;

	w = busy_poll_next(w, MAX, true);
	assert_int_equal(w, 6250);
	w = busy_poll_next(w, MAX, true);
	assert_int_equal(w, 12500);
	w = busy_poll_next(w, MAX, true);
	assert_int_equal(w, 25000);
	w = busy_poll_next(w, MAX, true);
	assert_int_equal(w, MAX);
	assert_int_equal(busy_poll_next(w, MAX, true), MAX);
	/* from a window that is not a power-of-two step: capped */
	assert_int_equal(busy_poll_next(40000, MAX, true), MAX);
}

/* --busy-poll 0: there is never a window. */
static void
no_bound_no_window(void **state)
{
	assert_int_equal(busy_poll_next(0, 0, true), 0);
	assert_int_equal(busy_poll_next(0, 0, false), 0);
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
