/*
 * test_joblog.c -- kept output: streams kept apart and in order, offset,
 * length and tail, the per-job cap (head, gap, tail), the total cap, a
 * log taken over by the next run, in files and in memory.
 */
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "joblog.h"

static char dir[64];
static bool in_memory;

static int
setup_files(void **state)
{
	char err[256];

	strcpy(dir, "/tmp/test_joblog.XXXXXX");
	assert_non_null(mkdtemp(dir));
	strcat(dir, "/logs");
	in_memory = false;
	assert_int_equal(joblog_init(dir, JOBLOG_LIMIT, JOBLOG_TOTAL_LIMIT, err,
	                             sizeof(err)),
	                 0);
	return 0;
}

static int
setup_memory(void **state)
{
	char err[256];

	in_memory = true;
	assert_int_equal(joblog_init(NULL, JOBLOG_LIMIT, JOBLOG_TOTAL_LIMIT,
	                             err, sizeof(err)),
	                 0);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	joblog_shutdown();
	if (!in_memory) {
		*strrchr(dir, '/') = '\0';
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		assert_int_equal(system(cmd), 0);
	}
	return 0;
}

static void
restart(uint64_t limit, uint64_t total)
{
	char err[256];

	joblog_shutdown();
	assert_int_equal(
	    joblog_init(in_memory ? NULL : dir, limit, total, err, sizeof(err)),
	    0);
}

static void
put(uint64_t id, int stream, const char *s)
{
	joblog_write(id, 1000, stream, s, strlen(s));
}

/* Everything a cursor reads, runs marked "<1>" or "<2>", gaps "[N]". */
static char *
read_all(struct joblog_cursor *c, size_t cap)
{
	static char out[1 << 20];
	char *buf = malloc(cap);
	size_t len = 0, n;
	uint64_t skipped;
	int stream, last = 0;

	assert_non_null(buf);
	while ((n = joblog_read(c, buf, cap, &stream, &skipped)) > 0) {
		if (skipped > 0)
			len += (size_t)snprintf(out + len, sizeof(out) - len,
			                        "[%llu]",
			                        (unsigned long long)skipped);
		if (stream != last)
			len += (size_t)snprintf(out + len, sizeof(out) - len,
			                        "<%d>", stream);
		last = stream;
		assert_true(len + n < sizeof(out));
		memcpy(out + len, buf, n);
		len += n;
	}
	out[len] = '\0';
	free(buf);
	return out;
}

static char *
read_log(uint64_t id, unsigned streams, uint64_t offset, uint64_t length,
         uint64_t tail)
{
	struct joblog_cursor c;

	assert_int_equal(joblog_open(&c, id, streams, offset, length, tail), 0);
	return read_all(&c, 256 * 1024);
}

static void
streams_kept_apart_and_in_order(void **state)
{
	put(7, 1, "a\n");
	put(7, 2, "E1\n");
	put(7, 1, "b\n");
	put(7, 1, "c\n");
	assert_string_equal(read_log(7, JOBLOG_BOTH, 0, UINT64_MAX, UINT64_MAX),
	                    "<1>a\n<2>E1\n<1>b\nc\n");
	assert_string_equal(read_log(7, 1, 0, UINT64_MAX, UINT64_MAX),
	                    "<1>a\nb\nc\n");
	assert_string_equal(read_log(7, 2, 0, UINT64_MAX, UINT64_MAX),
	                    "<2>E1\n");
	/* a second cursor sees what came since */
	put(7, 2, "E2\n");
	assert_string_equal(read_log(7, 2, 0, UINT64_MAX, UINT64_MAX),
	                    "<2>E1\nE2\n");
	assert_int_equal(joblog_open(&(struct joblog_cursor){0}, 8, 3, 0,
	                             UINT64_MAX, UINT64_MAX),
	                 -1);
}

static void
offset_and_length_count_selected_bytes(void **state)
{
	put(1, 1, "0123");
	put(1, 2, "abcd");
	put(1, 1, "4567");
	assert_string_equal(read_log(1, JOBLOG_BOTH, 2, 4, UINT64_MAX),
	                    "<1>23<2>ab");
	assert_string_equal(read_log(1, 1, 3, 3, UINT64_MAX), "<1>345");
	assert_string_equal(read_log(1, 2, 4, UINT64_MAX, UINT64_MAX), "");
}

static void
tail_gives_the_last_lines(void **state)
{
	char line[32];
	int i;

	for (i = 1; i <= 1000; i++) {
		snprintf(line, sizeof(line), "%d\n", i);
		put(3, i % 10 == 0 ? 2 : 1, line);
	}
	assert_string_equal(read_log(3, 1, 0, UINT64_MAX, 3),
	                    "<1>997\n998\n999\n");
	assert_string_equal(read_log(3, 2, 0, UINT64_MAX, 2), "<2>990\n1000\n");
	assert_string_equal(read_log(3, JOBLOG_BOTH, 0, UINT64_MAX, 2),
	                    "<1>999\n<2>1000\n");
	/* no last newline: the unfinished line counts */
	put(4, 1, "x\ny\nz");
	assert_string_equal(read_log(4, 1, 0, UINT64_MAX, 2), "<1>y\nz");
	/* more lines than there are: all; none: nothing; offset unused */
	assert_string_equal(read_log(4, 1, 0, UINT64_MAX, 10), "<1>x\ny\nz");
	assert_string_equal(read_log(4, 1, 2, UINT64_MAX, 10), "<1>x\ny\nz");
	assert_string_equal(read_log(4, 1, 2, UINT64_MAX, 0), "");
}

/*
 * Past the cap: the head and the tail are kept, the gap between them is
 * reported exactly, and the bytes kept are the original's.
 */
static void
cap_keeps_head_and_tail_and_counts_the_gap(void **state)
{
	static char all[200000];
	size_t len = 0, headlen, taillen;
	unsigned long long skipped;
	char line[32], *got, *gap, *tail;
	int i;

	restart(JOBLOG_LIMIT_MIN, JOBLOG_TOTAL_LIMIT);
	for (i = 0; len < 100000; i++) {
		snprintf(line, sizeof(line), "line %d\n", i);
		put(5, 1, line);
		memcpy(all + len, line, strlen(line));
		len += strlen(line);
	}
	joblog_end(5);
	got = read_log(5, 1, 0, UINT64_MAX, UINT64_MAX);
	assert_memory_equal(got, "<1>", 3);
	got += 3;
	gap = strchr(got, '[');
	assert_non_null(gap);
	headlen = (size_t)(gap - got);
	assert_true(headlen > 1000 && headlen <= JOBLOG_LIMIT_MIN / 2);
	assert_memory_equal(got, all, headlen);
	assert_int_equal(sscanf(gap, "[%llu]", &skipped), 1);
	tail = strchr(gap, ']') + 1;
	taillen = strlen(tail);
	assert_true(taillen >= JOBLOG_LIMIT_MIN / 4 - 200);
	assert_true(taillen <= JOBLOG_LIMIT_MIN / 2);
	assert_int_equal(headlen + skipped + taillen, len);
	assert_memory_equal(tail, all + len - taillen, taillen);
	/* what it takes stays within the cap */
	assert_true(joblog_total() <= JOBLOG_LIMIT_MIN);
	/* tail reaches into the kept tail; offset past the gap works too */
	snprintf(line, sizeof(line), "<1>line %d\n", i - 1);
	assert_string_equal(read_log(5, 1, 0, UINT64_MAX, 1), line);
	got = read_log(5, 1, len - 10, UINT64_MAX, UINT64_MAX);
	assert_string_equal(got + 3, all + len - 10);
	/* an offset inside the gap: from the tail on, the rest reported */
	got = read_log(5, 1, headlen + 10, UINT64_MAX, UINT64_MAX);
	assert_int_equal(sscanf(got, "[%llu]", &skipped), 1);
	assert_int_equal(headlen + 10 + skipped + taillen, len);
}

static void
total_cap_removes_the_oldest_ended_logs(void **state)
{
	char big[1500];

	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	restart(JOBLOG_LIMIT_MIN, 4000);
	put(10, 1, big);
	put(11, 1, big);
	joblog_end(11);
	joblog_end(10);  /* ended later: kept longer */
	put(12, 1, big); /* running: never removed for the total cap */
	joblog_end(12);
	assert_int_equal(joblog_open(&(struct joblog_cursor){0}, 11, 3, 0,
	                             UINT64_MAX, UINT64_MAX),
	                 -1);
	assert_string_equal(read_log(10, 1, 0, 3, UINT64_MAX), "<1>xxx");
	assert_true(joblog_total() <= 4000);
	joblog_forget(10);
	assert_int_equal(joblog_open(&(struct joblog_cursor){0}, 10, 3, 0,
	                             UINT64_MAX, UINT64_MAX),
	                 -1);
}

static void
the_next_run_takes_the_logs_over(void **state)
{
	uid_t owner = 0;
	struct stat st;
	char path[128];

	if (in_memory) {
		print_message("SKIP: %s -- files only: the memory variant "
		              "has none\n",
		              __func__);
		skip();
	}
	joblog_write(20, 4242, 1, "one\n", 4);
	joblog_write(20, 4242, 2, "two\n", 4);
	joblog_end(20);
	snprintf(path, sizeof(path), "%s/20.0", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	restart(JOBLOG_LIMIT, JOBLOG_TOTAL_LIMIT);
	assert_true(joblog_owner(20, &owner));
	assert_int_equal(owner, 4242);
	assert_string_equal(read_log(20, JOBLOG_BOTH, 0, UINT64_MAX, 1),
	                    "<2>two\n");
	/* it goes on (a re-queued job), after what was there */
	joblog_write(20, 4242, 1, "three\n", 6);
	assert_string_equal(
	    read_log(20, JOBLOG_BOTH, 0, UINT64_MAX, UINT64_MAX),
	    "<1>one\n<2>two\n<1>three\n");
	joblog_forget(20);
	assert_int_equal(stat(path, &st), -1);
}

/*
 * A record cut short by a crash of the machine: readers stop before it,
 * and once the job writes again (re-queued), it is cut off first.
 */
static void
a_torn_record_is_cut_off(void **state)
{
	char path[128], junk[] = {100, 0, 0, 0, 1, 'C', 'J', 'L', 'x', 'y'};
	FILE *f;

	if (in_memory) {
		print_message("SKIP: %s -- files only: the memory variant "
		              "has none\n",
		              __func__);
		skip();
	}
	put(40, 1, "whole\n");
	joblog_end(40);
	joblog_shutdown();
	snprintf(path, sizeof(path), "%s/40.0", dir);
	assert_non_null(f = fopen(path, "a"));
	assert_int_equal(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
	fclose(f);
	restart(JOBLOG_LIMIT, JOBLOG_TOTAL_LIMIT);
	assert_string_equal(
	    read_log(40, JOBLOG_BOTH, 0, UINT64_MAX, UINT64_MAX), "<1>whole\n");
	assert_string_equal(read_log(40, JOBLOG_BOTH, 0, UINT64_MAX, 1),
	                    "<1>whole\n");
	put(40, 2, "again\n");
	assert_string_equal(
	    read_log(40, JOBLOG_BOTH, 0, UINT64_MAX, UINT64_MAX),
	    "<1>whole\n<2>again\n");
}

/* A logs directory that is not concd's own is refused, not used. */
static void
a_logs_directory_of_another_user_is_refused(void **state)
{
	char err[256], link[128];

	if (in_memory || geteuid() != 0) {
		print_message("SKIP: %s -- %s\n", __func__,
		              in_memory ? "files only: the memory variant "
		                          "has none"
		                        : "needs root to chown");
		skip();
	}
	joblog_shutdown();
	assert_int_equal(chown(dir, 65534, 65534), 0);
	assert_int_equal(joblog_init(dir, JOBLOG_LIMIT, JOBLOG_TOTAL_LIMIT, err,
	                             sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "owned by uid 65534"));
	joblog_shutdown();
	/* nor is a symbolic link to a directory */
	assert_int_equal(chown(dir, 0, 0), 0);
	snprintf(link, sizeof(link), "%s.link", dir);
	assert_int_equal(symlink(dir, link), 0);
	assert_int_equal(joblog_init(link, JOBLOG_LIMIT, JOBLOG_TOTAL_LIMIT,
	                             err, sizeof(err)),
	                 -1);
	unlink(link);
	joblog_shutdown();
	assert_int_equal(joblog_init(dir, JOBLOG_LIMIT, JOBLOG_TOTAL_LIMIT, err,
	                             sizeof(err)),
	                 0);
}

/* A small buffer: records split across reads come out whole. */
static void
small_reads_lose_nothing(void **state)
{
	struct joblog_cursor c;
	char line[32];
	int i;

	for (i = 0; i < 500; i++) {
		snprintf(line, sizeof(line), "%d\n", i);
		put(30, i % 3 == 0 ? 2 : 1, line);
	}
	assert_int_equal(joblog_open(&c, 30, 1, 0, UINT64_MAX, UINT64_MAX), 0);
	char *a = strdup(read_all(&c, 100));
	assert_string_equal(a, read_log(30, 1, 0, UINT64_MAX, UINT64_MAX));
	free(a);
}

#define BOTH(t)                                                                \
	cmocka_unit_test_setup_teardown(t, setup_files, teardown),             \
	    cmocka_unit_test_setup_teardown(t, setup_memory, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    BOTH(streams_kept_apart_and_in_order),
	    BOTH(offset_and_length_count_selected_bytes),
	    BOTH(tail_gives_the_last_lines),
	    BOTH(cap_keeps_head_and_tail_and_counts_the_gap),
	    BOTH(total_cap_removes_the_oldest_ended_logs),
	    BOTH(the_next_run_takes_the_logs_over),
	    BOTH(small_reads_lose_nothing),
	    BOTH(a_torn_record_is_cut_off),
	    BOTH(a_logs_directory_of_another_user_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
