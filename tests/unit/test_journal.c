/*
 * test_journal.c -- the job store's journal: records come back whole and
 * in order, a torn or damaged end is dropped, a file that is no journal
 * is an error, and the files go once SQLite has what they hold.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"

static char dir[64], path[128], old[128];

/* What a replay gave back. */
struct got {
	size_t n;
	uint64_t seq[8];
	char text[8][64];
	int fail_at; /* the record fn fails on, or -1 */
};

static int
collect(uint64_t seq, const void *p, size_t len, void *arg)
{
	struct got *g = arg;

	if ((int)g->n == g->fail_at)
		return -1;
	if (g->n < 8) {
		g->seq[g->n] = seq;
		snprintf(g->text[g->n], sizeof(g->text[0]), "%.*s", (int)len,
		         (const char *)p);
	}
	g->n++;
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_journal.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/jobs.journal", dir);
	snprintf(old, sizeof(old), "%s/jobs.journal.1", dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static off_t
size_of(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? st.st_size : -1;
}

/* Appends "text" as a record of seq, in two parts and an empty one. */
static void
append(struct journal *j, uint64_t seq, const char *text)
{
	size_t half = strlen(text) / 2;
	struct iovec v[3] = {
	    {(void *)text, half},
	    {NULL, 0}, /* an empty part changes nothing of the checksum */
	    {(void *)(text + half), strlen(text) - half},
	};

	assert_int_equal(journal_append(j, seq, v, 3), 0);
	assert_int_equal(journal_last(j), seq);
}

/* A new journal with the records texts[0..n), seqs 1 to n, closed. */
static void
journal_of(const char *const *texts, size_t n)
{
	char cause[256] = "";
	struct journal *j = journal_open(dir, false, cause, sizeof(cause));
	size_t i;

	assert_non_null(j);
	for (i = 0; i < n; i++)
		append(j, i + 1, texts[i]);
	journal_close(j, false);
}

static int
replay(struct got *g, char *cause, size_t len)
{
	memset(g, 0, sizeof(*g));
	g->fail_at = -1;
	return journal_replay(dir, collect, g, cause, len);
}

static void
records_come_back_whole_and_in_order(void **state)
{
	char cause[256] = "";
	struct journal *j;
	struct got g;

	(void)state;
	j = journal_open(dir, false, cause, sizeof(cause));
	assert_non_null(j);
	append(j, 1, "the first record");
	append(j, 2, "a second");
	append(j, 5, "and a third, after a gap in seqs");
	journal_close(j, false);
	assert_int_equal(replay(&g, cause, sizeof(cause)), 3);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.seq[0], 1);
	assert_int_equal(g.seq[1], 2);
	assert_int_equal(g.seq[2], 5);
	assert_string_equal(g.text[0], "the first record");
	assert_string_equal(g.text[1], "a second");
	assert_string_equal(g.text[2], "and a third, after a gap in seqs");
}

static void
a_torn_end_is_dropped_and_what_is_before_it_kept(void **state)
{
	static const char *const texts[] = {"kept", "cut short by a crash"};
	char cause[256] = "";
	struct got g;
	off_t whole;

	(void)state;
	journal_of(texts, 2);
	whole = size_of(path);
	assert_int_equal(truncate(path, whole - 3), 0);
	assert_int_equal(replay(&g, cause, sizeof(cause)), 1);
	assert_string_equal(g.text[0], "kept");
	/* only a header's worth left of the second */
	assert_int_equal(truncate(path, whole - 20), 0);
	assert_int_equal(replay(&g, cause, sizeof(cause)), 1);
}

static void
a_damaged_record_ends_the_replay(void **state)
{
	static const char *const texts[] = {"kept", "damaged",
	                                    "after the damage: dropped"};
	char cause[256] = "";
	struct got g;
	int fd;

	(void)state;
	journal_of(texts, 3);
	/* one byte of the second record's payload: its checksum fails */
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 24 + 4 + 24 + 2), 1);
	close(fd);
	assert_int_equal(replay(&g, cause, sizeof(cause)), 1);
	assert_string_equal(g.text[0], "kept");
}

static void
a_file_that_is_no_journal_is_an_error_naming_it(void **state)
{
	static const char junk[] = "SQLite format 3, or anything else at all";
	char cause[256] = "", zeros[4096] = {0};
	struct got g;
	int fd;

	(void)state;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);
	assert_int_equal(replay(&g, cause, sizeof(cause)), -1);
	assert_non_null(strstr(cause, path));
	assert_non_null(strstr(cause, "not a journal"));
	assert_int_equal(g.n, 0);
	/* zeros (a file extended, not yet written, at a power loss): empty */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, zeros, sizeof(zeros)), sizeof(zeros));
	close(fd);
	assert_int_equal(replay(&g, cause, sizeof(cause)), 0);
}

static void
a_record_that_cannot_be_read_back_is_an_error(void **state)
{
	static const char *const texts[] = {"good", "refused by the store"};
	char cause[256] = "";
	struct got g;

	(void)state;
	journal_of(texts, 2);
	memset(&g, 0, sizeof(g));
	g.fail_at = 1;
	assert_int_equal(journal_replay(dir, collect, &g, cause, sizeof(cause)),
	                 -1);
	assert_non_null(strstr(cause, "cannot be read back"));
}

static void
written_records_go_and_a_long_file_is_rotated(void **state)
{
	static char big[64 << 10];
	char cause[256] = "";
	struct iovec v = {big, sizeof(big)};
	struct journal *j;
	struct got g;
	uint64_t seq = 0;

	(void)state;
	memset(big, 'b', sizeof(big));
	j = journal_open(dir, false, cause, sizeof(cause));
	append(j, ++seq, "small");
	/* SQLite has all of it: the file is emptied */
	journal_written(j, seq);
	assert_int_equal(size_of(path), 0);
	/* past 8 MiB the next record begins a new file */
	while (size_of(path) < (8 << 20))
		assert_int_equal(journal_append(j, ++seq, &v, 1), 0);
	assert_int_equal(size_of(old), -1);
	append(j, ++seq, "in the new file");
	assert_true(size_of(old) >= (8 << 20));
	assert_true(size_of(path) > 0);
	/* a replay reads the old file, then the new one */
	memset(&g, 0, sizeof(g));
	g.fail_at = -1;
	assert_int_equal(journal_replay(dir, collect, &g, cause, sizeof(cause)),
	                 (int)seq - 1);
	/* SQLite has the old file's records, not the new one's */
	journal_written(j, seq - 1);
	assert_int_equal(size_of(old), -1);
	assert_true(size_of(path) > 0);
	assert_int_equal(replay(&g, cause, sizeof(cause)), 1);
	assert_string_equal(g.text[0], "in the new file");
	journal_written(j, seq);
	assert_int_equal(size_of(path), 0);
	/* a clean stop: the files go */
	journal_close(j, true);
	assert_int_equal(size_of(path), -1);
	assert_int_equal(replay(&g, cause, sizeof(cause)), 0);
}

static void
remove_takes_both_files(void **state)
{
	char cause[256] = "";
	struct journal *j;

	(void)state;
	j = journal_open(dir, true, cause, sizeof(cause));
	append(j, 1, "synced");
	journal_close(j, false);
	assert_int_equal(rename(path, old), 0);
	j = journal_open(dir, false, cause, sizeof(cause));
	append(j, 2, "new");
	journal_close(j, false);
	assert_true(size_of(old) > 0 && size_of(path) > 0);
	assert_int_equal(journal_remove(dir, cause, sizeof(cause)), 0);
	assert_int_equal(size_of(old), -1);
	assert_int_equal(size_of(path), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        records_come_back_whole_and_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        a_torn_end_is_dropped_and_what_is_before_it_kept, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(a_damaged_record_ends_the_replay,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        a_file_that_is_no_journal_is_an_error_naming_it, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        a_record_that_cannot_be_read_back_is_an_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        written_records_go_and_a_long_file_is_rotated, setup, teardown),
	    cmocka_unit_test_setup_teardown(remove_takes_both_files, setup,
	                                    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
