/*
 * test_slurm.c -- slurm.c's pure parts: the srun command line of an exec
 * job (the [slurm] settings and the job's own options mapped to srun's),
 * the mark its command writes first, and slurmstepd's line on how Slurm
 * ended a job.  The integration tests (test_slurm_exec.py) run them
 * against a real cluster.
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

static char *
joined(char **v)
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
strv_free(char **v)
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
	assert_non_null(strstr(joined(v), "srun --unbuffered --quiet "
	                                  "--job-name=concd-0123456789ab-42 "
	                                  "--ntasks=1 --partition=batch "
	                                  "--account=physics --qos=low "
	                                  "--exclusive --hint=nomultithread "
	                                  "--cpus-per-task=4 --mem=8388608K "
	                                  "--time=12 /bin/sh -c "));
	assert_non_null(strstr(joined(v), " concd ./simulate --steps 10"));
	strv_free(v);
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
	assert_null(strstr(joined(v), "--time"));
	assert_null(strstr(joined(v), "--mem"));
	assert_null(strstr(joined(v), "--cpus-per-task"));
	strv_free(v);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
