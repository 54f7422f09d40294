/*
 * test_slurm.c -- the command lines of remote workers (the salloc of an
 * allocation, the srun of one worker) and what salloc says when it grants
 * one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "slurm.h"

/* argv's words joined with spaces, into buf. */
static const char *
joined(char **argv, char *buf, size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; argv[i] != NULL && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
		                        i > 0 ? " " : "", argv[i]);
	return buf;
}

static void
argv_free(char **argv)
{
	size_t i;

	for (i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

static int
setup(void **state)
{
	struct config_slurm cfg = {
	    .partition = "debug",
	    .account = "lab",
	    .salloc_options = "--mem-per-cpu=2G  --constraint=fast",
	    .max_workers = 64,
	};

	(void)state;
	/* not enabled: no PATH lookup, the tools keep their names */
	return slurm_init(&cfg, "0123456789abcdef", "/usr/sbin/concd");
}

static int
teardown(void **state)
{
	(void)state;
	slurm_fini();
	return 0;
}

static void
an_allocation_holds_n_tasks_with_the_sites_options(void **state)
{
	char buf[512], name[64];
	char **argv;

	(void)state;
	slurm_pool_name(3, name, sizeof(name));
	assert_string_equal(name, "concd-0123456789ab-pool-3");
	argv = slurm_alloc_argv(name, 4, NULL, NULL);
	assert_non_null(argv);
	assert_string_equal(joined(argv, buf, sizeof(buf)),
	                    "salloc --no-shell "
	                    "--job-name=concd-0123456789ab-pool-3 --ntasks=4 "
	                    "--partition=debug --account=lab "
	                    "--mem-per-cpu=2G --constraint=fast");
	argv_free(argv);
}

static void
a_requests_partition_replaces_the_sites_and_time_is_added(void **state)
{
	char buf[512];
	char **argv;

	(void)state;
	argv = slurm_alloc_argv("p", 1, "batch", "2:00:00");
	assert_non_null(argv);
	assert_string_equal(joined(argv, buf, sizeof(buf)),
	                    "salloc --no-shell --job-name=p --ntasks=1 "
	                    "--partition=batch --account=lab "
	                    "--mem-per-cpu=2G --constraint=fast "
	                    "--time=2:00:00");
	argv_free(argv);
}

static void
a_worker_is_one_task_of_the_allocation_on_stdio(void **state)
{
	char buf[512];
	char **argv;

	(void)state;
	argv = slurm_worker_argv(42, 7, slurm_config()->worker_path, NULL);
	assert_non_null(argv);
	assert_string_equal(joined(argv, buf, sizeof(buf)),
	                    "srun --jobid=42 --ntasks=1 --nodes=1 --exact "
	                    "--unbuffered --quiet /usr/sbin/concd --worker 7 "
	                    "--stdio");
	argv_free(argv);
	/* concd's --busy-poll, as its local workers get it */
	argv = slurm_worker_argv(42, 0, "concd", "50");
	assert_non_null(argv);
	assert_string_equal(joined(argv, buf, sizeof(buf)),
	                    "srun --jobid=42 --ntasks=1 --nodes=1 --exact "
	                    "--unbuffered --quiet concd --worker 0 --stdio "
	                    "--busy-poll 50");
	argv_free(argv);
}

static void
the_granted_job_id_is_read_from_sallocs_words(void **state)
{
	static const char granted[] =
	    "salloc: Pending job allocation 17\n"
	    "salloc: job 17 queued and waiting for resources\n"
	    "salloc: job 17 has been allocated resources\n"
	    "salloc: Granted job allocation 17\n";
	static const char refused[] =
	    "salloc: error: invalid partition specified: nope\n"
	    "salloc: error: Job submit/allocate failed: Invalid partition "
	    "name specified\n";

	(void)state;
	assert_int_equal(slurm_parse_granted(granted, strlen(granted)), 17);
	assert_int_equal(slurm_parse_granted(refused, strlen(refused)), 0);
	/* cut short: no digits, no id */
	assert_int_equal(slurm_parse_granted("Granted job allocation ", 23), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        an_allocation_holds_n_tasks_with_the_sites_options),
	    cmocka_unit_test(
	        a_requests_partition_replaces_the_sites_and_time_is_added),
	    cmocka_unit_test(a_worker_is_one_task_of_the_allocation_on_stdio),
	    cmocka_unit_test(the_granted_job_id_is_read_from_sallocs_words),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
