/*
 * test_cgroup.c -- cgroup.c against a cgroup file system of the test's
 * own: a directory tree with the files the kernel would have, and a
 * /proc/self/cgroup and mountinfo that point at it.  What concd writes
 * to each file (the limits, the controllers it enables, cgroup.kill) and
 * what it reads (memory.events, memory.oom_control) are checked here on
 * any machine, for cgroup v2 with a delegated subtree as well as v1; the
 * integration tests (test_limits.py) run the level the machine has.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cgroup.h"

static char top[64];

/* A file under top with its text (made with its directories). */
static void
put(const char *rel, const char *text)
{
	char path[512], *p;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	for (p = path + strlen(top) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			fail_msg("mkdir %s: %s", path, strerror(errno));
		*p = '/';
	}
	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* The text of a file under top. */
static const char *
get(const char *rel)
{
	static char buf[256];
	char path[512];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", top, rel);
	if ((fd = open(path, O_RDONLY)) < 0)
		fail_msg("%s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

/* /proc/self/cgroup and mountinfo of the fake machine. */
static void
machine(const char *cgroup, const char *mounts)
{
	static char proc[128]; /* cgroup.c keeps the pointer */
	char line[1024], *text = NULL;
	const char *p, *nl;
	size_t len = 0;

	put("proc/cgroup", cgroup);
	/* "TYPE OPTS PATH" lines: mountinfo's, with the mount under top */
	for (p = mounts; *p != '\0'; p = nl + 1) {
		char type[16], opts[64], where[64];

		nl = strchr(p, '\n');
		assert_int_equal(sscanf(p, "%15s %63s %63s", type, opts, where),
		                 3);
		len += (size_t)snprintf(line, sizeof(line),
		                        "30 20 0:26 / %s/%s rw - %s %s %s\n",
		                        top, where, type, type, opts);
		text = realloc(text, len + 1);
		assert_non_null(text);
		memcpy(text + len - strlen(line), line, strlen(line) + 1);
	}
	put("proc/mountinfo", text != NULL ? text : "");
	free(text);
	snprintf(proc, sizeof(proc), "%s/proc", top);
	cgroup_set_procdir(proc);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(top, sizeof(top), "/tmp/concd-cgroup-XXXXXX");
	assert_non_null(mkdtemp(top));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	cgroup_fini();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void
v2_delegated_subtree_gets_a_leaf_for_concd_and_limits_per_job(void **state)
{
	struct cgroup_limits lim = {
	    .mem = UINT64_C(2) << 30, .pids = 10, .cpus = 2};
	struct cgroup_job *j;
	const char *dirs[4];
	char cause[256], want[512], pid[32];

	(void)state;
	machine("0::/svc\n", "cgroup2 rw fs\n");
	put("fs/svc/cgroup.controllers", "cpuset cpu io memory pids\n");
	put("fs/svc/cgroup.subtree_control", "");
	put("fs/svc/cgroup.procs", "");
	put("fs/svc/daemon/cgroup.procs", "");
	put("fs/svc/jobs/cgroup.subtree_control", "");
	assert_int_equal(cgroup_init("cgroup2", "x", cause, sizeof(cause)), 0);
	assert_int_equal(cgroup_level(), CGROUP_V2);
	assert_string_equal(cgroup_level_name(cgroup_level()), "cgroup2");
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	assert_string_equal(get("fs/svc/daemon/cgroup.procs"), pid);
	assert_string_equal(get("fs/svc/cgroup.subtree_control"),
	                    "+memory +pids +cpu");
	assert_string_equal(get("fs/svc/jobs/cgroup.subtree_control"),
	                    "+memory +pids +cpu");
	snprintf(want, sizeof(want), "cgroup2\n%s/fs/svc/jobs\n\n\n", top);
	assert_string_equal(cgroup_spec(), want);

	/* the kernel's files of job 7's cgroup */
	put("fs/svc/jobs/7/cgroup.procs", "");
	put("fs/svc/jobs/7/cgroup.kill", "");
	put("fs/svc/jobs/7/memory.max", "");
	put("fs/svc/jobs/7/memory.swap.max", "");
	put("fs/svc/jobs/7/memory.oom.group", "");
	put("fs/svc/jobs/7/cpu.max", "");
	put("fs/svc/jobs/7/pids.max", "");
	put("fs/svc/jobs/7/memory.events",
	    "low 0\nhigh 0\nmax 2\noom 0\noom_kill 0\n");
	assert_non_null(j = cgroup_job_new(7));
	assert_int_equal(cgroup_job_make(j, &lim, cause, sizeof(cause)), 0);
	assert_string_equal(get("fs/svc/jobs/7/memory.max"), "2147483648");
	assert_string_equal(get("fs/svc/jobs/7/memory.swap.max"), "0");
	assert_string_equal(get("fs/svc/jobs/7/memory.oom.group"), "1");
	assert_string_equal(get("fs/svc/jobs/7/cpu.max"), "200000 100000");
	assert_string_equal(get("fs/svc/jobs/7/pids.max"), "10");
	assert_int_equal(cgroup_job_procs(j, dirs, 4), 1);
	snprintf(want, sizeof(want), "%s/fs/svc/jobs/7", top);
	assert_string_equal(dirs[0], want);
	assert_false(cgroup_job_oom(j));
	put("fs/svc/jobs/7/memory.events",
	    "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\noom_group_kill 1\n");
	assert_true(cgroup_job_oom(j));
	cgroup_job_kill(j);
	assert_string_equal(get("fs/svc/jobs/7/cgroup.kill"), "1");
	cgroup_job_free(j, false);
}

static void
v2_without_its_controllers_is_not_delegated(void **state)
{
	char cause[256];

	(void)state;
	machine("0::/svc\n", "cgroup2 rw fs\n");
	put("fs/svc/cgroup.controllers", "cpu io\n");
	assert_int_equal(cgroup_init("cgroup2", "x", cause, sizeof(cause)), -1);
	assert_non_null(strstr(cause, "limits cgroup2: cgroup v2:"));
	assert_non_null(strstr(cause, "no memory and pids controllers"));
	/* auto: nothing better than rlimit here, and no cgroup per job */
	assert_int_equal(cgroup_init("auto", "x", cause, sizeof(cause)), 0);
	assert_int_equal(cgroup_level(), CGROUP_RLIMIT);
	assert_null(cgroup_job_new(1));
	assert_int_equal(cgroup_init("cgroup3", "x", cause, sizeof(cause)), -1);
	assert_non_null(strstr(cause, "no level \"cgroup3\""));
}

static void
v1_controllers_get_a_directory_per_instance_and_job(void **state)
{
	struct cgroup_limits lim = {.mem = 64 << 20, .pids = 3, .cpus = 1};
	struct cgroup_job *j;
	const char *dirs[4];
	char cause[256];

	(void)state;
	machine("8:pids:/\n4:memory:/a\n1:cpu,cpuacct:/a\n0::/\n",
	        "cgroup rw,memory mem\ncgroup rw,cpu,cpuacct cpu\n"
	        "cgroup rw,pids pids\n");
	put("mem/a/cgroup.procs", "");
	put("cpu/a/cgroup.procs", "");
	put("pids/cgroup.procs", "");
	/* the instance is a directory's name, whatever it holds */
	assert_int_equal(cgroup_init("auto", "in/st", cause, sizeof(cause)), 0);
	assert_int_equal(cgroup_level(), CGROUP_V1);
	put("mem/a/concd-in_st/5/cgroup.procs", "");
	put("mem/a/concd-in_st/5/memory.limit_in_bytes", "");
	put("mem/a/concd-in_st/5/memory.oom_control",
	    "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
	put("cpu/a/concd-in_st/5/cgroup.procs", "");
	put("cpu/a/concd-in_st/5/cpu.cfs_period_us", "");
	put("cpu/a/concd-in_st/5/cpu.cfs_quota_us", "");
	put("pids/concd-in_st/5/cgroup.procs", "");
	put("pids/concd-in_st/5/pids.max", "");
	assert_non_null(j = cgroup_job_new(5));
	/* no memsw file: swap is not accounted, and that is no failure */
	assert_int_equal(cgroup_job_make(j, &lim, cause, sizeof(cause)), 0);
	assert_string_equal(get("mem/a/concd-in_st/5/memory.limit_in_bytes"),
	                    "67108864");
	assert_string_equal(get("cpu/a/concd-in_st/5/cpu.cfs_period_us"),
	                    "100000");
	assert_string_equal(get("cpu/a/concd-in_st/5/cpu.cfs_quota_us"),
	                    "100000");
	assert_string_equal(get("pids/concd-in_st/5/pids.max"), "3");
	assert_int_equal(cgroup_job_procs(j, dirs, 4), 3);
	assert_false(cgroup_job_oom(j));
	put("mem/a/concd-in_st/5/memory.oom_control",
	    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
	assert_true(cgroup_job_oom(j));
	cgroup_job_free(j, false);
}

static void
v1_limit_without_its_controller_fails_the_job(void **state)
{
	struct cgroup_limits lim = {.pids = 3};
	struct cgroup_job *j;
	char cause[256];

	(void)state;
	machine("4:memory:/\n0::/\n", "cgroup rw,memory mem\n");
	put("mem/cgroup.procs", "");
	assert_int_equal(cgroup_init("cgroup1", "i", cause, sizeof(cause)), 0);
	put("mem/concd-i/9/cgroup.procs", "");
	assert_non_null(j = cgroup_job_new(9));
	assert_int_equal(cgroup_job_make(j, &lim, cause, sizeof(cause)), -1);
	assert_string_equal(cause, "exec: --pids: no cgroup pids controller "
	                           "to enforce it with");
	cgroup_job_free(j, false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        v2_delegated_subtree_gets_a_leaf_for_concd_and_limits_per_job,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        v2_without_its_controllers_is_not_delegated, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        v1_controllers_get_a_directory_per_instance_and_job, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        v1_limit_without_its_controller_fails_the_job, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
