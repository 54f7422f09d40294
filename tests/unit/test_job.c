/*
 * test_job.c -- the job table and state machine: ids, lookups, state
 * counts, transitions, retention of finished jobs and visibility.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "executor.h"
#include "job.h"
#include "task.h"
#include "task_int.h"

static struct job_submit js;

static int
setup(void **state)
{
	job_init(3, 0);
	sched_init();
	memset(&js, 0, sizeof(js));
	js.task = task_find("noop", 4);
	js.exec = PX_LOOP;
	js.uid = 1000;
	return 0;
}

static int
teardown(void **state)
{
	job_shutdown();
	return 0;
}

static size_t
count(enum proto_state s)
{
	size_t c[PS_COUNT];

	job_counts(c);
	return c[s];
}

static void
new_jobs_are_queued_with_increasing_ids(void **state)
{
	struct job *a = job_new(&js), *b = job_new(&js);

	assert_int_equal(a->state, PS_QUEUED);
	assert_true(b->id > a->id);
	assert_int_equal(count(PS_QUEUED), 2);
	assert_ptr_equal(job_find(a->id), a);
	assert_ptr_equal(job_find(b->id), b);
	assert_null(job_find(b->id + 1));
	assert_null(job_find(0));
}

static void
start_and_finish_move_the_state_and_counts(void **state)
{
	struct job *j = job_new(&js);

	job_start(j);
	assert_int_equal(j->state, PS_RUNNING);
	assert_true(j->started >= j->submitted);
	assert_int_equal(count(PS_RUNNING), 1);
	assert_int_equal(count(PS_QUEUED), 0);
	task_fail(&j->ctx, "it broke");
	job_finish(j, PS_FAILED);
	assert_int_equal(j->state, PS_FAILED);
	assert_int_equal(j->err, PE_TASK_FAILED);
	assert_string_equal(j->ctx.error, "it broke");
	assert_true(j->finished >= j->started);
	assert_int_equal(count(PS_RUNNING), 0);
	assert_int_equal(count(PS_FAILED), 1);
}

static void
final_states_carry_their_error_codes(void **state)
{
	struct job *c = job_new(&js), *t = job_new(&js), *s = job_new(&js);

	job_finish(c, PS_CANCELLED);
	job_finish(t, PS_TIMED_OUT);
	job_finish(s, PS_SUCCEEDED);
	assert_int_equal(c->err, PE_CANCELLED);
	assert_int_equal(t->err, PE_TIMED_OUT);
	assert_int_equal(s->err, PE_NONE);
	/* a queued job that never ran still gets a start time */
	assert_int_equal(c->started, c->finished);
}

static void
only_the_newest_finished_jobs_are_kept(void **state)
{
	uint64_t ids[5];
	int i;

	for (i = 0; i < 5; i++) {
		struct job *j = job_new(&js);
		ids[i] = j->id;
		job_finish(j, PS_SUCCEEDED);
	}
	/* max_finished is 3 in setup() */
	assert_null(job_find(ids[0]));
	assert_null(job_find(ids[1]));
	assert_non_null(job_find(ids[2]));
	assert_non_null(job_find(ids[4]));
	assert_int_equal(count(PS_SUCCEEDED), 3);
}

static void
cancelling_a_finished_job_is_refused(void **state)
{
	struct job *j = job_new(&js);

	job_finish(j, PS_SUCCEEDED);
	assert_int_equal(job_cancel(j), -1);
	assert_int_equal(j->state, PS_SUCCEEDED);
}

static void
lookups_survive_table_growth(void **state)
{
	static uint64_t ids[20000];
	int i;

	for (i = 0; i < 20000; i++)
		ids[i] = job_new(&js)->id;
	for (i = 0; i < 20000; i++) {
		struct job *j = job_find(ids[i]);
		assert_non_null(j);
		assert_int_equal(j->id, ids[i]);
	}
	assert_int_equal(count(PS_QUEUED), 20000);
}

static void
users_see_their_own_jobs_and_root_sees_all(void **state)
{
	struct job *j = job_new(&js);

	assert_true(job_visible(j, 1000));
	assert_false(job_visible(j, 1001));
	assert_true(job_visible(j, 0));
}

static void
arguments_are_copied_into_the_job(void **state)
{
	char raw[] = {(char)0x81, (char)0xa1, 'n', 0x05};
	struct job *j;

	js.args = raw;
	js.args_len = sizeof(raw);
	j = job_new(&js);
	raw[3] = 0x06;
	assert_int_equal(j->args_len, 4);
	assert_int_equal(job_args(j)[3], 0x05);
	js.args = NULL;
	js.args_len = 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        new_jobs_are_queued_with_increasing_ids, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        start_and_finish_move_the_state_and_counts, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        final_states_carry_their_error_codes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        only_the_newest_finished_jobs_are_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        cancelling_a_finished_job_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(lookups_survive_table_growth, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        users_see_their_own_jobs_and_root_sees_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(arguments_are_copied_into_the_job,
	                                    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
