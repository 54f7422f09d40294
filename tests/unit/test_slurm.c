/*
 * test_slurm.c -- slurm.c's pure parts: the srun command line of an exec
 * job (the [slurm] settings and the job's own options mapped to srun's),
 * the mark its command writes first, srun's and slurmstepd's lines on how
 * it ended; the command lines of remote workers (the salloc of an
 * allocation, the srun of one worker) and what salloc says when it grants
 * one.  The integration tests (test_slurm_exec.py, test_slurm_remote.py)
 * run them against a real cluster.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "slurm.h"

static char *
words(char **v)
{
	static char buf[4096];
	size_t i;

	buf[0] = '\0';
	for (i = 0; v[i] != NULL; i++) {
		if (i > 0)
			strcat(buf, " ");
		strcat(buf, v[i]);
	}
	return buf;
}

static void
words_free(char **v)
{
	size_t i;

	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static void
test_disabled_says_why(void **state)
{
	struct config_slurm cfg = {0};

	(void)state;
	assert_int_equal(slurm_init(&cfg, "0123456789abcdef", "/bin/concd"), 0);
	assert_false(slurm_ready());
	assert_string_equal(
	    slurm_why(), "Slurm is not enabled (slurm.enabled in concd.conf)");
	slurm_fini();
}

static void
test_the_command_line_maps_the_site_and_the_job(void **state)
{
	struct config_slurm cfg = {.enabled = 1,
	                           .partition = "batch",
	                           .account = "physics",
	                           .qos = "low",
	                           .srun_options =
	                               " --exclusive\t--hint=nomultithread "};
	struct slurm_request r = {.id = 42,
	                          .cpus = 4,
	                          .mem = 8ull << 30,
	                          .timeout_ms = 600000,
	                          .grace_ms = 2000};
	char *argv[] = {"./simulate", "--steps", "10", NULL};
	char name[64], **v;

	(void)state;
	unsetenv("SLURM_CONF");
	assert_int_equal(slurm_init(&cfg, "0123456789abcdef", "/bin/concd"), 0);
	slurm_job_name(42, name, sizeof(name));
	assert_string_equal(name, "concd-0123456789ab-42");
	v = slurm_exec_argv(&r, argv);
	assert_non_null(v);
	/* srun is wherever PATH has it (or "srun" without one) */
	assert_non_null(strstr(words(v), "srun --unbuffered --quiet "
	                                 "--job-name=concd-0123456789ab-42 "
	                                 "--ntasks=1 --partition=batch "
	                                 "--account=physics --qos=low "
	                                 "--exclusive --hint=nomultithread "
	                                 "--cpus-per-task=4 --mem=8388608K "
	                                 "--time=12 /bin/sh -c "));
	assert_non_null(strstr(words(v), " concd ./simulate --steps 10"));
	words_free(v);
	slurm_fini();
}

static void
test_slurm_conf_reaches_srun_through_env(void **state)
{
	struct config_slurm cfg = {.enabled = 1};
	struct slurm_request r = {.id = 1};
	char *argv[] = {"true", NULL};
	char **v;

	(void)state;
	setenv("SLURM_CONF", "/tmp/x/slurm.conf", 1);
	assert_int_equal(slurm_init(&cfg, "abc", "/bin/concd"), 0);
	v = slurm_exec_argv(&r, argv);
	assert_string_equal(v[0], "/usr/bin/env");
	assert_string_equal(v[1], "SLURM_CONF=/tmp/x/slurm.conf");
	/* no limit asked: none given */
	assert_null(strstr(words(v), "--time"));
	assert_null(strstr(words(v), "--mem"));
	assert_null(strstr(words(v), "--cpus-per-task"));
	words_free(v);
	unsetenv("SLURM_CONF");
	slurm_fini();
}

static void
test_the_mark_gives_the_job_and_the_node(void **state)
{
	static const char line[] = SLURM_MARK "4711 node07\n";
	uint64_t id = 0;
	char node[16];

	(void)state;
	assert_true(
	    slurm_parse_mark(line, sizeof(line) - 1, &id, node, sizeof(node)));
	assert_int_equal(id, 4711);
	assert_string_equal(node, "node07");
	/* an ordinary line is output */
	assert_false(
	    slurm_parse_mark("4711 node07\n", 12, &id, node, sizeof(node)));
	/* a node name longer than the room is cut, still terminated */
	assert_true(slurm_parse_mark(SLURM_MARK "1 averyveryverylongnodename",
	                             SLURM_MARK_LEN + 28, &id, node, 8));
	assert_string_equal(node, "averyve");
	/* a mark without an id: Slurm set none */
	assert_true(slurm_parse_mark(SLURM_MARK " n1\n", SLURM_MARK_LEN + 4,
	                             &id, node, sizeof(node)));
	assert_int_equal(id, 0);
}

static void
test_slurmstepds_line_says_how_slurm_ended_it(void **state)
{
	static const struct {
		const char *line;
		enum slurm_end end;
	} cases[] = {
	    {"slurmstepd-n1: error: *** STEP 12.0 ON n1 CANCELLED AT "
	     "2026-12-06T10:54:37 DUE TO TIME LIMIT ***",
	     SLURM_END_TIME_LIMIT},
	    {"slurmstepd: error: *** JOB 12 ON n1 CANCELLED AT "
	     "2026-12-06T10:54:37 DUE TO NODE FAILURE ***",
	     SLURM_END_NODE_FAIL},
	    {"slurmstepd: error: *** JOB 12 ON n1 CANCELLED AT "
	     "2026-12-06T10:54:37 DUE TO PREEMPTION ***",
	     SLURM_END_PREEMPTED},
	    {"slurmstepd-n1: error: *** STEP 7.0 ON n1 CANCELLED AT "
	     "2026-12-06T10:38:37 ***",
	     SLURM_END_CANCELLED},
	    /* the command's own words are not Slurm's */
	    {"echo *** JOB 12 ON n1 CANCELLED AT x DUE TO TIME LIMIT ***",
	     SLURM_END_NONE},
	    {"srun: error: n1: task 0: Exited with exit code 3",
	     SLURM_END_NONE},
	    {"slurmstepd", SLURM_END_NONE},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(
		    slurm_parse_end(cases[i].line, strlen(cases[i].line)),
		    cases[i].end);
}

static void
test_sruns_line_says_which_signal_killed_the_command(void **state)
{
	static const struct {
		const char *line;
		int sig;
	} cases[] = {
	    {"srun: error: n1: task 0: Killed\n", 9},
	    {"srun: error: n1: task 0: Terminated\n", 15},
	    {"srun: error: n1: task 0: Segmentation fault", 11},
	    {"srun: error: n1: task 0: Exited with exit code 137\n", 0},
	    {"srun: error: n1: task 0: Killed by a bear\n", 0},
	    {"error: n1: task 0: Killed\n", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(
		    slurm_parse_signal(cases[i].line, strlen(cases[i].line)),
		    cases[i].sig);
}

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
	argv = slurm_worker_argv(42, 7, slurm_config()->worker_path, NULL, 0);
	assert_non_null(argv);
	assert_string_equal(joined(argv, buf, sizeof(buf)),
	                    "srun --jobid=42 --ntasks=1 --nodes=1 --exact "
	                    "--unbuffered --quiet /usr/sbin/concd --worker 7 "
	                    "--stdio");
	argv_free(argv);
	/* concd's --busy-poll, as its local workers get it */
	/* and the soft limit on open files concd was started with */
	argv = slurm_worker_argv(42, 0, "concd", "50", 1024);
	assert_non_null(argv);
	assert_string_equal(joined(argv, buf, sizeof(buf)),
	                    "srun --jobid=42 --ntasks=1 --nodes=1 --exact "
	                    "--unbuffered --quiet concd --worker 0 --stdio "
	                    "--busy-poll 50 --nofile 1024");
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
	    cmocka_unit_test(test_disabled_says_why),
	    cmocka_unit_test(test_the_command_line_maps_the_site_and_the_job),
	    cmocka_unit_test(test_slurm_conf_reaches_srun_through_env),
	    cmocka_unit_test(test_the_mark_gives_the_job_and_the_node),
	    cmocka_unit_test(test_slurmstepds_line_says_how_slurm_ended_it),
	    cmocka_unit_test(
	        test_sruns_line_says_which_signal_killed_the_command),
	    cmocka_unit_test_setup_teardown(
	        an_allocation_holds_n_tasks_with_the_sites_options, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        a_requests_partition_replaces_the_sites_and_time_is_added,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        a_worker_is_one_task_of_the_allocation_on_stdio, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        the_granted_job_id_is_read_from_sallocs_words, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
