/*
 * test_log.c -- the audit trail (log.c): the line each job event gets,
 * exec's command as a shell reads it back (checked by bash itself), the
 * journal's fields, and where log_job sends them: a line on stderr, or a
 * datagram to the journal's socket when stderr is the journal's stream.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "log.h"
#include "proto.h"

#define JOURNAL_DIR    "/run/systemd/journal"
#define JOURNAL_SOCKET JOURNAL_DIR "/socket"

static const struct log_job accepted = {
    .id = 42,
    .task = "exec",
    .uid = 1000,
    .event = "accepted",
    .state = "queued",
    .command = "sleep 1",
};
static const struct log_job failed = {
    .id = 42,
    .task = "exec",
    .uid = 1000,
    .event = "finished",
    .state = "failed",
    .error = "task_failed",
    .command = "sleep 1",
};

/* exec's arguments as the job record keeps them: {"argv": [words]} */
static void
pack_argv(msgpack_sbuffer *sb, const char *const *words, const size_t *lens,
          size_t n)
{
	msgpack_packer pk;
	size_t i;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "cwd", 3);
	msgpack_pack_str_with_body(&pk, "/", 1);
	msgpack_pack_str_with_body(&pk, "argv", 4);
	msgpack_pack_array(&pk, (uint32_t)n);
	for (i = 0; i < n; i++)
		msgpack_pack_str_with_body(
		    &pk, words[i], lens != NULL ? lens[i] : strlen(words[i]));
}

static size_t
command_of(char *buf, size_t len, const char *const *words, size_t n)
{
	msgpack_sbuffer sb;
	size_t r;

	pack_argv(&sb, words, NULL, n);
	r = log_command(buf, len, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

static void
accepted_line_says_who_ran_what(void **state)
{
	struct log_job noop = {7, "noop", 0, "accepted", "queued", NULL, NULL};
	char line[LOG_JOB_LINE];

	assert_int_equal(log_job_line(line, sizeof(line), &accepted), 38);
	assert_string_equal(line, "job 42 accepted: uid 1000 exec sleep 1");
	log_job_line(line, sizeof(line), &noop);
	assert_string_equal(line, "job 7 accepted: uid 0 noop");
}

static void
finished_line_says_the_outcome(void **state)
{
	struct log_job ok = {43,          "sleep", 1000, "finished",
	                     "succeeded", NULL,    NULL};
	char line[LOG_JOB_LINE];

	log_job_line(line, sizeof(line), &failed);
	assert_string_equal(line, "job 42 finished: failed (task_failed)");
	log_job_line(line, sizeof(line), &ok);
	assert_string_equal(line, "job 43 finished: succeeded");
}

static void
a_line_is_cut_to_its_buffer(void **state)
{
	struct log_job none = {1, NULL, 5, NULL, NULL, NULL, NULL};
	char line[16];

	assert_int_equal(log_job_line(line, sizeof(line), &accepted), 15);
	assert_string_equal(line, "job 42 accepted");
	/* fields left out show as "-", never as a crash */
	log_job_line(line, sizeof(line), &none);
	assert_string_equal(line, "job 1 -: -");
}

static const struct {
	const char *words[4];
	size_t n;
	const char *line;
} commands[] = {
    {{"sleep", "1"}, 2, "sleep 1"},
    {{"/usr/bin/env", "A=b", "x@y:1,2%"}, 3, "/usr/bin/env A=b x@y:1,2%"},
    {{"sh", "-c", "echo 'hi' $HOME"}, 3, "sh -c 'echo '\\''hi'\\'' $HOME'"},
    {{"printf", ""}, 2, "printf ''"},
    {{"a b", "*", "~"}, 3, "'a b' '*' '~'"},
    {{"echo", "h\xc3\xa9llo w\xc3\xb6rld"},
     2,
     "echo 'h\xc3\xa9llo w\xc3\xb6rld'"},
    {{"printf", "a\nb\tc\x01\x7f"}, 2, "printf $'a\\nb\\tc\\x01\\x7f'"},
    {{"x\r\n\\'y"}, 1, "$'x\\r\\n\\\\\\'y'"},
    {{"\xe2\x82\xac\n"}, 1, "$'\xe2\x82\xac\\n'"},
};

static void
command_words_are_quoted_only_when_they_need_it(void **state)
{
	char line[256];
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		size_t n = command_of(line, sizeof(line), commands[i].words,
		                      commands[i].n);

		assert_string_equal(line, commands[i].line);
		assert_int_equal(n, strlen(commands[i].line));
	}
}

static void
bytes_that_are_not_utf8_or_nul_are_escaped(void **state)
{
	const char *words[] = {"cat", "\xff\xfe", "a\0b"};
	const size_t lens[] = {3, 2, 3};
	msgpack_sbuffer sb;
	char line[64];

	pack_argv(&sb, words, lens, 3);
	log_command(line, sizeof(line), sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	assert_string_equal(line, "cat $'\\xff\\xfe' $'a\\x00b'");
}

/*
 * The independent check: bash reads each line back into the same words
 * (printf '%s\0' prints each argument and a NUL).
 */
static void
bash_reads_the_command_back_into_its_words(void **state)
{
	char line[256], script[] = "/tmp/concd-test-log-XXXXXX", out[512];
	size_t i, j, n, want;
	FILE *f, *p;
	int fd;

	if (access("/bin/bash", X_OK) != 0)
		skip();
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		char expect[512];

		command_of(line, sizeof(line), commands[i].words,
		           commands[i].n);
		assert_true((fd = mkstemp(script)) >= 0);
		assert_non_null(f = fdopen(fd, "w"));
		fprintf(f, "printf '%%s\\0' %s\n", line);
		fclose(f);
		snprintf(out, sizeof(out), "/bin/bash %s", script);
		assert_non_null(p = popen(out, "r"));
		n = fread(out, 1, sizeof(out), p);
		assert_int_equal(pclose(p), 0);
		unlink(script);
		strcpy(script, "/tmp/concd-test-log-XXXXXX");
		for (j = 0, want = 0; j < commands[i].n; j++) {
			size_t len = strlen(commands[i].words[j]) + 1;

			memcpy(expect + want, commands[i].words[j], len);
			want += len;
		}
		assert_int_equal(n, want);
		assert_memory_equal(out, expect, want);
	}
}

static void
a_long_command_is_cut_with_dots_between_characters(void **state)
{
	const char *words[] = {"echo", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	                               "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"};
	char line[64];
	size_t len, n;

	/* "echo '", eight two-byte characters, "'": cut in each place */
	for (len = 5; len <= 24; len++) {
		memset(line, 'X', sizeof(line));
		n = command_of(line, len, words, 2);
		assert_int_equal(strlen(line), n);
		assert_true(n < len);
		if (len < 24) {
			assert_true(n >= 3);
			assert_string_equal(line + n - 3, "...");
			assert_true(proto_utf8_valid(line, n));
			/* at most one character less than the room */
			assert_true(n >= len - 2);
		} else
			assert_string_equal(line,
			                    "echo '\xc3\xa9\xc3\xa9\xc3\xa9"
			                    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
			                    "\xc3\xa9'");
		assert_int_equal(line[len], 'X'); /* nothing past len */
	}
	/* nothing fits: an empty line, and no byte past len */
	line[0] = line[1] = 'X';
	assert_int_equal(command_of(line, 1, words, 2), 0);
	assert_int_equal(line[0], '\0');
	assert_int_equal(line[1], 'X');
	assert_int_equal(command_of(line, 0, words, 2), 0);
}

static void
arguments_without_an_argv_give_an_empty_command(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char line[32];

	assert_int_equal(log_command(line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "");
	assert_int_equal(log_command(line, sizeof(line), "\xc1", 1), 0);
	assert_string_equal(line, "");
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "ms", 2);
	msgpack_pack_int(&pk, 5);
	assert_int_equal(log_command(line, sizeof(line), sb.data, sb.size), 0);
	/* cut short: not a map */
	assert_int_equal(log_command(line, sizeof(line), sb.data, 1), 0);
	msgpack_sbuffer_clear(&sb);
	/* argv with an element that is not a string */
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "argv", 4);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_str_with_body(&pk, "ls", 2);
	msgpack_pack_int(&pk, 1);
	log_command(line, sizeof(line), sb.data, sb.size);
	assert_string_equal(line, "ls ?");
	msgpack_sbuffer_destroy(&sb);
}

/* The fields of iov as one string, "A=1|B=2". */
static void
join_fields(char *out, size_t size, const struct iovec *iov, size_t n)
{
	size_t i, off = 0;

	out[0] = '\0';
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(out + off, size - off, "%s%.*s",
		                        i > 0 ? "|" : "", (int)iov[i].iov_len,
		                        (const char *)iov[i].iov_base);
}

static void
journal_fields_name_the_job(void **state)
{
	struct log_job ok = {43,          "sleep", 0,   "finished",
	                     "succeeded", NULL,    NULL};
	struct iovec iov[LOG_JOB_FIELDS];
	char buf[4096], joined[4096];
	size_t n;

	n = log_job_fields(&failed, iov, buf, sizeof(buf));
	assert_int_equal(n, 10);
	join_fields(joined, sizeof(joined), iov, n);
	assert_string_equal(joined,
	                    "MESSAGE=job 42 finished: failed (task_failed)|"
	                    "PRIORITY=6|SYSLOG_IDENTIFIER=concd|JOB_ID=42|"
	                    "JOB_EVENT=finished|TASK=exec|OWNER_UID=1000|"
	                    "STATE=failed|ERROR=task_failed|COMMAND=sleep 1");
	n = log_job_fields(&ok, iov, buf, sizeof(buf));
	join_fields(joined, sizeof(joined), iov, n);
	assert_string_equal(joined, "MESSAGE=job 43 finished: succeeded|"
	                            "PRIORITY=6|SYSLOG_IDENTIFIER=concd|"
	                            "JOB_ID=43|JOB_EVENT=finished|TASK=sleep|"
	                            "OWNER_UID=0|STATE=succeeded");
	/* a small buffer: fewer fields, each whole or cut, never overrun */
	buf[40] = 'X';
	n = log_job_fields(&failed, iov, buf, 40);
	assert_true(n >= 1 && n < 10);
	assert_int_equal(buf[40], 'X');
	assert_memory_equal(iov[0].iov_base, "MESSAGE=job 42", 14);
}

/* stderr's device and inode as JOURNAL_STREAM names them. */
static void
set_journal_stream(int fd, bool match)
{
	struct stat st;
	char v[64];

	assert_int_equal(fstat(fd, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino + (match ? 0 : 1));
	assert_int_equal(setenv("JOURNAL_STREAM", v, 1), 0);
}

static void
without_the_journal_an_event_is_one_info_line(void **state)
{
	char out[512];
	int pfd[2];
	ssize_t n;

	assert_int_equal(pipe(pfd), 0);
	unsetenv("JOURNAL_STREAM");
	log_init(false);
	log_to_fd(pfd[1]);
	log_job(&accepted);
	log_job(&failed);
	/* JOURNAL_STREAM naming another stream: lines as well */
	set_journal_stream(STDERR_FILENO, false);
	log_init(false);
	log_job(&failed);
	log_to_fd(STDERR_FILENO);
	unsetenv("JOURNAL_STREAM");
	log_init(false);
	close(pfd[1]);
	n = read(pfd[0], out, sizeof(out) - 1);
	close(pfd[0]);
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out,
	                    "concd: job 42 accepted: uid 1000 exec sleep 1\n"
	                    "concd: job 42 finished: failed (task_failed)\n"
	                    "concd: job 42 finished: failed (task_failed)\n");
}

#define THREADS 4
#define EVENTS  2000

static void *
log_many(void *arg)
{
	struct log_job j = failed;
	int i;

	j.id = (uint64_t)(uintptr_t)arg;
	for (i = 0; i < EVENTS; i++)
		log_job(&j);
	return NULL;
}

/* log_job from several threads at once: every line arrives whole. */
static void
lines_from_several_threads_stay_whole(void **state)
{
	char path[] = "/tmp/concd-test-log-XXXXXX", line[128];
	size_t counts[THREADS] = {0}, i;
	pthread_t t[THREADS];
	unsigned long long id;
	FILE *f;
	int fd;

	assert_true((fd = mkstemp(path)) >= 0);
	unlink(path);
	assert_int_equal(fcntl(fd, F_SETFL, O_APPEND), 0);
	unsetenv("JOURNAL_STREAM");
	log_init(false);
	log_to_fd(fd);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, log_many, (void *)(uintptr_t)i),
		    0);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	log_to_fd(STDERR_FILENO);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_non_null(f = fdopen(fd, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		char rest[64];

		assert_int_equal(sscanf(line,
		                        "concd: job %llu finished: %63[^\n]",
		                        &id, rest),
		                 2);
		assert_string_equal(rest, "failed (task_failed)");
		assert_true(id < THREADS);
		counts[id]++;
	}
	fclose(f);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(counts[i], EVENTS);
}

/*
 * A stand-in for journald's socket, bound where sd_journal_sendv sends:
 * only as root and where no journal listens (else the test skips).
 */
struct fake_journal {
	int fd;
	bool made_dir;
};

static bool
fake_journal_open(struct fake_journal *fj)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 30}; /* a bound, not a delay */

	fj->made_dir = false;
	if (geteuid() != 0 || access(JOURNAL_SOCKET, F_OK) == 0)
		return false;
	if (mkdir(JOURNAL_DIR, 0755) == 0)
		fj->made_dir = true;
	else if (errno != EEXIST)
		return false;
	strcpy(sa.sun_path, JOURNAL_SOCKET);
	fj->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fj->fd < 0 ||
	    bind(fj->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fj->fd >= 0)
			close(fj->fd);
		if (fj->made_dir)
			rmdir(JOURNAL_DIR);
		return false;
	}
	setsockopt(fj->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return true;
}

static void
fake_journal_close(struct fake_journal *fj)
{
	close(fj->fd);
	unlink(JOURNAL_SOCKET);
	if (fj->made_dir)
		rmdir(JOURNAL_DIR);
}

/*
 * One datagram's fields as "A=1|B=2", from journald's native format:
 * NAME=value\n, or NAME\n, a little-endian 64-bit length, value, \n.
 */
static ssize_t
fake_journal_recv(struct fake_journal *fj, char *out, size_t size)
{
	char d[8192];
	ssize_t n = recv(fj->fd, d, sizeof(d), 0);
	size_t i = 0, off = 0;

	out[0] = '\0';
	while (n > 0 && i < (size_t)n) {
		char *nl = memchr(d + i, '\n', (size_t)n - i);
		char *eq = memchr(d + i, '=', (size_t)n - i);
		uint64_t len = 0;
		int b;

		if (nl == NULL)
			return -1;
		if (eq != NULL && eq < nl) {
			off += (size_t)snprintf(out + off, size - off, "%s%.*s",
			                        off > 0 ? "|" : "",
			                        (int)(nl - (d + i)), d + i);
			i = (size_t)(nl - d) + 1;
			continue;
		}
		for (b = 7; b >= 0; b--)
			len = len << 8 | (unsigned char)nl[1 + b];
		off += (size_t)snprintf(out + off, size - off, "%s%.*s=%.*s",
		                        off > 0 ? "|" : "", (int)(nl - (d + i)),
		                        d + i, (int)len, nl + 9);
		i = (size_t)(nl - d) + 9 + len + 1;
	}
	return n;
}

static void
with_stderr_the_journal_an_event_is_a_record_with_fields(void **state)
{
	struct fake_journal fj = {.fd = -1};
	struct log_job j = accepted;
	char fields[4096];

	if (!fake_journal_open(&fj))
		skip();
	set_journal_stream(STDERR_FILENO, true);
	log_init(false);
	log_job(&failed);
	j.command = "sh -c 'echo hi'";
	log_job(&j);
	unsetenv("JOURNAL_STREAM");
	log_init(false);
	assert_true(fake_journal_recv(&fj, fields, sizeof(fields)) > 0);
	assert_string_equal(fields,
	                    "MESSAGE=job 42 finished: failed (task_failed)|"
	                    "PRIORITY=6|SYSLOG_IDENTIFIER=concd|JOB_ID=42|"
	                    "JOB_EVENT=finished|TASK=exec|OWNER_UID=1000|"
	                    "STATE=failed|ERROR=task_failed|COMMAND=sleep 1");
	assert_true(fake_journal_recv(&fj, fields, sizeof(fields)) > 0);
	assert_string_equal(
	    fields, "MESSAGE=job 42 accepted: uid 1000 exec sh -c 'echo hi'|"
	            "PRIORITY=6|SYSLOG_IDENTIFIER=concd|JOB_ID=42|"
	            "JOB_EVENT=accepted|TASK=exec|OWNER_UID=1000|"
	            "STATE=queued|COMMAND=sh -c 'echo hi'");
	fake_journal_close(&fj);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(accepted_line_says_who_ran_what),
	    cmocka_unit_test(finished_line_says_the_outcome),
	    cmocka_unit_test(a_line_is_cut_to_its_buffer),
	    cmocka_unit_test(command_words_are_quoted_only_when_they_need_it),
	    cmocka_unit_test(bytes_that_are_not_utf8_or_nul_are_escaped),
	    cmocka_unit_test(bash_reads_the_command_back_into_its_words),
	    cmocka_unit_test(
	        a_long_command_is_cut_with_dots_between_characters),
	    cmocka_unit_test(arguments_without_an_argv_give_an_empty_command),
	    cmocka_unit_test(journal_fields_name_the_job),
	    cmocka_unit_test(without_the_journal_an_event_is_one_info_line),
	    cmocka_unit_test(lines_from_several_threads_stay_whole),
	    cmocka_unit_test(
	        with_stderr_the_journal_an_event_is_a_record_with_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
