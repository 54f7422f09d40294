/*
 * test_exec.c -- the exec task driven through the task ABI by a fake
 * executor that records output and really waits for the task's fd, as a
 * pool worker does.  It has no release hook, so a stopped command is
 * reaped on the spot (reap_now), which the tests can check.  Every test
 * runs twice: as on a thread or process, spawning on the caller, and as
 * on the loop, spawning through the spawner threads.  How a command is
 * started (PATH, descriptors, signals, its group) is test_spawn.c's.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "job.h"
#include "store.h"
#include "task.h"
#include "task_int.h"

#define BOUND_MS 30000 /* an upper bound for any wait, never a delay */

/* ---- the fake executor ---- */

struct piece {
	int stream;
	size_t len;
	char *data;
};

static struct {
	struct piece piece[1024];
	size_t npieces;
	struct pbuf all[3]; /* [1] stdout, [2] stderr: everything, in order */
	size_t waits;
} rec;

static void
rec_reset(void)
{
	size_t i;

	for (i = 0; i < rec.npieces; i++)
		free(rec.piece[i].data);
	pbuf_free(&rec.all[1]);
	pbuf_free(&rec.all[2]);
	memset(&rec, 0, sizeof(rec));
}

static void
rec_progress(struct task_ctx *ctx, uint64_t done, uint64_t total,
             const char *msg)
{
}

static void
rec_output(struct task_ctx *ctx, int stream, const void *data, size_t len)
{
	struct piece *p;

	assert_true(stream == 1 || stream == 2);
	assert_true(len > 0);
	pbuf_append(&rec.all[stream], data, len);
	if (rec.npieces == sizeof(rec.piece) / sizeof(rec.piece[0]))
		return; /* the bytes are in rec.all */
	p = &rec.piece[rec.npieces++];
	p->stream = stream;
	p->len = len;
	assert_non_null(p->data = malloc(len));
	memcpy(p->data, data, len);
}

static const struct exec_ops rec_ops = {
    .progress = rec_progress,
    .output = rec_output,
};

static const struct exec_ops rec_loop_ops = {
    .progress = rec_progress,
    .output = rec_output,
    .on_loop = true,
};

static const struct exec_ops *ops = &rec_ops; /* this run's */

/*
 * A wait for the task's fd, bounded.  exec waits for time only where
 * there is no pidfd_open (under valgrind): then it looks again after the
 * time it asks for, and so does this executor.
 */
static bool
fd_wait(struct task_ctx *ctx, enum task_step st, void *arg)
{
	struct pollfd pfd = {.fd = ctx->wait_fd};

	if (st != TASK_WAIT)
		return true;
	if (ctx->wait_fd < 0) {
		assert_true(ctx->wait_ms > 0 && ctx->wait_ms < BOUND_MS);
		(void)poll(NULL, 0, (int)ctx->wait_ms);
		rec.waits++;
		return true;
	}
	assert_false(ctx->wait_write);
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, BOUND_MS), 1);
	rec.waits++;
	return true;
}

/* ---- jobs ---- */

struct spec {
	const char *const *argv; /* NULL-terminated */
	const char *cwd;
	const char *const *env; /* name, value, ..., NULL */
	const char *in;         /* stdin= when non-NULL */
	size_t inlen;           /* 0: strlen(in) */
	long long grace;        /* -1: absent */
};

static struct job *
job_for(const struct spec *sp)
{
	struct job *j;
	struct pbuf b = {0};
	msgpack_packer pk;
	size_t n = 1, i;

	n += sp->cwd != NULL;
	n += sp->env != NULL;
	n += sp->in != NULL;
	n += sp->grace >= 0;
	msgpack_packer_init(&pk, &b, pbuf_write_cb);
	msgpack_pack_map(&pk, n);
	msgpack_pack_str_with_body(&pk, "argv", 4);
	for (n = 0; sp->argv[n] != NULL; n++)
		;
	msgpack_pack_array(&pk, n);
	for (i = 0; i < n; i++)
		msgpack_pack_str_with_body(&pk, sp->argv[i],
		                           strlen(sp->argv[i]));
	if (sp->cwd != NULL) {
		msgpack_pack_str_with_body(&pk, "cwd", 3);
		msgpack_pack_str_with_body(&pk, sp->cwd, strlen(sp->cwd));
	}
	if (sp->env != NULL) {
		for (n = 0; sp->env[n] != NULL; n += 2)
			;
		msgpack_pack_str_with_body(&pk, "env", 3);
		msgpack_pack_map(&pk, n / 2);
		for (i = 0; i < n; i++)
			msgpack_pack_str_with_body(&pk, sp->env[i],
			                           strlen(sp->env[i]));
	}
	if (sp->in != NULL) {
		size_t len = sp->inlen > 0 ? sp->inlen : strlen(sp->in);

		msgpack_pack_str_with_body(&pk, "stdin", 5);
		msgpack_pack_str_with_body(&pk, sp->in, len);
	}
	if (sp->grace >= 0) {
		msgpack_pack_str_with_body(&pk, "grace", 5);
		msgpack_pack_int64(&pk, sp->grace);
	}
	j = job_alloc(task_find("exec", 4), b.data, b.len);
	assert_non_null(j);
	assert_non_null(j->task);
	pbuf_free(&b);
	rec_reset();
	return j;
}

static void
free_job(struct job *j)
{
	task_ctx_free(&j->ctx);
	job_extra_free(j->extra);
	free(j);
}

/* Start a command and run it to the end; the final step. */
static enum task_step
run(struct job *j)
{
	assert_int_equal(task_ctx_start(&j->ctx, j, ops, NULL), 0);
	return task_run_blocking(&j->ctx, fd_wait, NULL);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The result must be exactly {status: 0}. */
static void
assert_status_0(struct job *j)
{
	msgpack_zone z;
	msgpack_object o;
	size_t off = 0;

	msgpack_zone_init(&z, 256);
	assert_int_equal(
	    msgpack_unpack(j->ctx.result.data, j->ctx.result.len, &off, &z, &o),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(o.type, MSGPACK_OBJECT_MAP);
	assert_int_equal(o.via.map.size, 1);
	assert_true(proto_obj_streq(&o.via.map.ptr[0].key, "status"));
	assert_int_equal(o.via.map.ptr[0].val.type,
	                 MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(o.via.map.ptr[0].val.via.u64, 0);
	msgpack_zone_destroy(&z);
}

static void
assert_stream(int stream, const char *want)
{
	assert_int_equal(rec.all[stream].len, strlen(want));
	assert_memory_equal(rec.all[stream].data, want, strlen(want));
}

/* ---- behaviour ---- */

static void
echo_streams_its_line_and_succeeds_with_status_0(void **state)
{
	struct job *j =
	    job_for(&(struct spec){ARGV("echo", "hello"), .grace = -1});

	assert_int_equal(run(j), TASK_DONE);
	assert_int_equal(rec.npieces, 1);
	assert_int_equal(rec.piece[0].stream, 1);
	assert_int_equal(rec.piece[0].len, 6);
	assert_memory_equal(rec.piece[0].data, "hello\n", 6);
	assert_null(j->ctx.error);
	assert_status_0(j);
	free_job(j);
}

static void
nonzero_exit_fails_with_its_status_after_both_streams(void **state)
{
	struct job *j = job_for(&(struct spec){
	    ARGV("sh", "-c", "echo out; echo err >&2; echo more; exit 3"),
	    .grace = -1});

	assert_int_equal(run(j), TASK_FAILED);
	assert_string_equal(j->ctx.error, "exited with status 3");
	assert_int_equal(j->ctx.result.len, 0);
	assert_stream(1, "out\nmore\n");
	assert_stream(2, "err\n");
	assert_int_equal(rec.npieces, 3);
	free_job(j);
}

static void
a_signal_death_is_named(void **state)
{
	struct job *j = job_for(&(struct spec){
	    ARGV("sh", "-c", "echo bye; kill -9 $$"), .grace = -1});

	assert_int_equal(run(j), TASK_FAILED);
	assert_string_equal(j->ctx.error, "killed by signal 9 (SIGKILL)");
	assert_stream(1, "bye\n");
	free_job(j);
}

static void
stdin_data_is_piped_through_then_closed(void **state)
{
	struct job *j = job_for(&(struct spec){
	    ARGV("cat"), .in = "one\ntwo\nno newline", .grace = -1});

	assert_int_equal(run(j), TASK_DONE);
	assert_int_equal(rec.npieces, 3);
	assert_memory_equal(rec.piece[0].data, "one\n", 4);
	assert_memory_equal(rec.piece[1].data, "two\n", 4);
	assert_int_equal(rec.piece[2].len, 10);
	assert_memory_equal(rec.piece[2].data, "no newline", 10);
	free_job(j);

	/* stdin="" is an empty pipe, closed at once */
	j = job_for(
	    &(struct spec){ARGV("sh", "-c", "test -p /dev/stdin && wc -c"),
	                   .in = "", .grace = -1});
	assert_int_equal(run(j), TASK_DONE);
	assert_stream(1, "0\n");
	free_job(j);

	/* no stdin=: /dev/null */
	j = job_for(&(struct spec){
	    ARGV("sh", "-c", "test -c /dev/stdin && readlink /proc/$$/fd/0"),
	    .grace = -1});
	assert_int_equal(run(j), TASK_DONE);
	assert_stream(1, "/dev/null\n");
	free_job(j);
}

static void
stdin_larger_than_a_pipe_flows_while_output_is_read(void **state)
{
	const size_t len = 200 * 1024; /* > the 64 KiB pipe buffer */
	char *in = malloc(len);
	struct job *j;
	size_t i;

	assert_non_null(in);
	for (i = 0; i < len; i++)
		in[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
	j = job_for(
	    &(struct spec){ARGV("cat"), .in = in, .inlen = len, .grace = -1});
	assert_int_equal(run(j), TASK_DONE);
	assert_int_equal(rec.all[1].len, len);
	assert_memory_equal(rec.all[1].data, in, len);
	assert_int_equal(rec.npieces, 1024); /* the record holds 1024 */
	assert_int_equal(rec.piece[0].len, 64);
	free_job(j);
	free(in);
}

static void
bytes_pass_through_unchanged(void **state)
{
	static const char in[] = "a\0b\377\r\n\001tail";
	struct job *j = job_for(&(struct spec){
	    ARGV("cat"), .in = in, .inlen = sizeof(in) - 1, .grace = -1});

	assert_int_equal(run(j), TASK_DONE);
	assert_int_equal(rec.npieces, 2);
	assert_int_equal(rec.piece[0].len, 6);
	assert_memory_equal(rec.piece[0].data, "a\0b\377\r\n", 6);
	assert_int_equal(rec.piece[1].len, 5);
	assert_memory_equal(rec.piece[1].data, "\001tail", 5);
	free_job(j);
}

static void
long_lines_come_in_4096_byte_pieces(void **state)
{
	struct job *j = job_for(&(struct spec){
	    ARGV("sh", "-c", "head -c 10000 /dev/zero | tr '\\0' x"),
	    .grace = -1});
	size_t i;

	assert_int_equal(run(j), TASK_DONE);
	assert_int_equal(rec.npieces, 3);
	assert_int_equal(rec.piece[0].len, 4096);
	assert_int_equal(rec.piece[1].len, 4096);
	assert_int_equal(rec.piece[2].len, 1808);
	for (i = 0; i < rec.all[1].len; i++)
		assert_int_equal(rec.all[1].data[i], 'x');
	free_job(j);

	/* with its newline, the last piece keeps it */
	j = job_for(&(struct spec){
	    ARGV("sh", "-c", "head -c 8192 /dev/zero | tr '\\0' y; echo"),
	    .grace = -1});
	assert_int_equal(run(j), TASK_DONE);
	assert_int_equal(rec.npieces, 3);
	assert_int_equal(rec.piece[0].len, 4096);
	assert_int_equal(rec.piece[1].len, 4096);
	assert_int_equal(rec.piece[2].len, 1);
	assert_memory_equal(rec.piece[2].data, "\n", 1);
	free_job(j);
}

static void
much_output_arrives_whole_and_in_order(void **state)
{
	struct job *j =
	    job_for(&(struct spec){ARGV("seq", "1", "300000"), .grace = -1});
	struct pbuf want = {0};
	char line[16];
	int i, n;

	for (i = 1; i <= 300000; i++) {
		n = snprintf(line, sizeof(line), "%d\n", i);
		pbuf_append(&want, line, (size_t)n);
	}
	assert_int_equal(run(j), TASK_DONE);
	assert_int_equal(rec.all[1].len, want.len);
	assert_memory_equal(rec.all[1].data, want.data, want.len);
	assert_int_equal(rec.piece[0].len, 2);
	assert_memory_equal(rec.piece[0].data, "1\n", 2);
	pbuf_free(&want);
	free_job(j);
}

static void
env_and_cwd_are_honoured(void **state)
{
	char dir[] = "/tmp/concd-exec-XXXXXX", want[128];
	struct job *j;

	assert_non_null(mkdtemp(dir));
	j = job_for(&(struct spec){
	    ARGV("sh", "-c", "echo $FOO; echo $HOME; pwd; echo ${PATH:+path}"),
	    .cwd = dir, .env = ARGV("FOO", "bar baz", "HOME", "/nowhere"),
	    .grace = -1});
	assert_int_equal(run(j), TASK_DONE);
	snprintf(want, sizeof(want), "bar baz\n/nowhere\n%s\npath\n", dir);
	assert_stream(1, want);
	free_job(j);
	assert_int_equal(rmdir(dir), 0);
}

static void skip_under_valgrind(void);

static void
the_exit_status_or_the_signal_is_recorded(void **state)
{
	static const struct {
		const char *script;
		int code, sig;
	} cases[] = {
	    {"exit 0", 0, 0},        {"exit 3", 3, 0},
	    {"exit 255", 255, 0},    {"kill -TERM $$", 0, 15},
	    {"kill -KILL $$", 0, 9},
	};
	struct job *j;
	size_t i;

	skip_under_valgrind(); /* its signals, and a child that is a fork */
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		j = job_for(&(struct spec){ARGV("sh", "-c", cases[i].script),
		                           .grace = -1});
		assert_false(j->ctx.exited);
		(void)run(j);
		assert_true(j->ctx.exited);
		assert_int_equal(j->ctx.exit_code, cases[i].code);
		assert_int_equal(j->ctx.exit_signal, cases[i].sig);
		free_job(j);
	}
	/* a command that never ran has none */
	j = job_for(&(struct spec){ARGV("/nonexistent/command"), .grace = -1});
	assert_int_equal(task_ctx_start(&j->ctx, j, ops, NULL) == 0
	                     ? task_run_blocking(&j->ctx, fd_wait, NULL)
	                     : TASK_FAILED,
	                 TASK_FAILED);
	assert_false(j->ctx.exited);
	free_job(j);
}

/* The caller's directory and environment, under the task's own. */
static void
the_callers_context_applies_under_cwd_and_env(void **state)
{
	char dir[] = "/tmp/concd-exec-XXXXXX", want[256];
	struct pbuf b = {0};
	msgpack_packer pk;
	struct job *j;

	assert_non_null(mkdtemp(dir));
	msgpack_packer_init(&pk, &b, pbuf_write_cb);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "A", 1);
	msgpack_pack_str_with_body(&pk, "caller", 6);
	msgpack_pack_str_with_body(&pk, "B", 1);
	msgpack_pack_str_with_body(&pk, "caller", 6);
	j = job_for(&(struct spec){ARGV("sh", "-c", "echo $A $B; pwd"),
	                           .env = ARGV("B", "task"), .grace = -1});
	assert_non_null(job_extra(j));
	j->extra->cwd = strdup(dir);
	j->extra->env = b.data;
	j->extra->env_len = (uint32_t)b.len;
	assert_int_equal(run(j), TASK_DONE);
	snprintf(want, sizeof(want), "caller task\n%s\n", dir);
	assert_stream(1, want);
	free_job(j);
	/* cwd= wins over the caller's */
	j = job_for(&(struct spec){ARGV("pwd"), .cwd = "/", .grace = -1});
	assert_non_null(job_extra(j));
	j->extra->cwd = strdup(dir);
	assert_int_equal(run(j), TASK_DONE);
	assert_stream(1, "/\n");
	free_job(j);
	assert_int_equal(rmdir(dir), 0);
}

/* A job's streamed standard input: the read end of its pipe. */
static void
a_streamed_stdin_is_read_from_the_jobs_pipe(void **state)
{
	struct job *j;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], "streamed\n", 9), 9);
	close(p[1]); /* its end: the command reads EOF after it */
	j = job_for(&(struct spec){ARGV("cat"), .grace = -1});
	assert_int_equal(job_set_stdin(j, p[0]), 0);
	assert_int_equal(run(j), TASK_DONE);
	assert_stream(1, "streamed\n");
	/* the job's own end stays open, the command had a copy */
	assert_int_equal(fcntl(p[0], F_GETFD), FD_CLOEXEC);
	close(p[0]);
	free_job(j);
}

/*
 * A finished job keeps its state in its allocation while it is
 * retained: the line buffers (4096 bytes a stream) only come when a
 * line is left unfinished.
 */
static void
the_state_is_small_until_a_line_is_left_unfinished(void **state)
{
	assert_in_range(task_find("exec", 4)->state_size, 1, 256);
}

/*
 * The error start() gave, or "" when it started.  On the loop a command
 * that cannot run fails at its first steps instead, with the same error.
 */
static int
start_error(const struct spec *sp, char *err, size_t errlen)
{
	struct job *j = job_for(sp);
	int rc = task_ctx_start(&j->ctx, j, ops, NULL);

	if (rc == 0 && ops->on_loop &&
	    task_run_blocking(&j->ctx, fd_wait, NULL) == TASK_FAILED)
		rc = -1;

	snprintf(err, errlen, "%s", j->ctx.error != NULL ? j->ctx.error : "");
	free_job(j);
	return rc;
}

/* Under valgrind, valgrind runs the commands, with signals of its own. */
static void
skip_under_valgrind(void)
{
	if (getenv("CONCD_VALGRIND") != NULL)
		skip();
}

static void
start_fails_clearly_for_missing_commands_and_bad_cwd(void **state)
{
	char err[512];

	skip_under_valgrind();
	assert_int_equal(
	    start_error(&(struct spec){ARGV("nosuch"), .grace = -1}, err,
	                sizeof(err)),
	    -1);
	assert_string_equal(
	    err, "exec: cannot run \"nosuch\": No such file or directory");
	assert_int_equal(
	    start_error(&(struct spec){ARGV("/etc/passwd"), .grace = -1}, err,
	                sizeof(err)),
	    -1);
	assert_string_equal(
	    err, "exec: cannot run \"/etc/passwd\": Permission denied");
	assert_int_equal(
	    start_error(&(struct spec){ARGV("true"), .cwd = "/nonexistent",
	                               .grace = -1},
	                err, sizeof(err)),
	    -1);
	assert_string_equal(err, "exec: cannot use cwd \"/nonexistent\": No "
	                         "such file or directory");
	assert_int_equal(
	    start_error(
	        &(struct spec){ARGV("true"), .cwd = "/etc/passwd", .grace = -1},
	        err, sizeof(err)),
	    -1);
	assert_string_equal(
	    err, "exec: cannot use cwd \"/etc/passwd\": Not a directory");
	assert_int_equal(
	    start_error(&(struct spec){ARGV("true"), .env = ARGV("A=B", "c"),
	                               .grace = -1},
	                err, sizeof(err)),
	    -1);
	assert_string_equal(
	    err, "exec: \"A=B\" is not a valid environment variable name");
	assert_int_equal(start_error(&(struct spec){ARGV("", "x"), .grace = -1},
	                             err, sizeof(err)),
	                 -1);
	assert_string_equal(err, "exec: argv[0] must be at most 131071 bytes "
	                         "long (argv[0] not empty)");
}

/* task_validate's cause for args packed by pack, "" if accepted. */
static const char *
why(char *cause, void (*pack)(msgpack_packer *))
{
	const struct task *t = task_find("exec", 4);
	struct pbuf b = {0};
	msgpack_packer pk;
	msgpack_zone z;
	msgpack_object o;
	size_t off = 0;

	msgpack_packer_init(&pk, &b, pbuf_write_cb);
	pack(&pk);
	msgpack_zone_init(&z, 4096);
	assert_int_equal(msgpack_unpack(b.data, b.len, &off, &z, &o),
	                 MSGPACK_UNPACK_SUCCESS);
	cause[0] = '\0';
	(void)task_validate(t, &o, cause, 256);
	msgpack_zone_destroy(&z);
	pbuf_free(&b);
	return cause;
}

static void
key(msgpack_packer *pk, const char *k)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
}

static void
pack_good(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 5);
	key(pk, "argv");
	msgpack_pack_array(pk, 2);
	key(pk, "echo");
	key(pk, "hi");
	key(pk, "cwd");
	key(pk, "/");
	key(pk, "env");
	msgpack_pack_map(pk, 1);
	key(pk, "A");
	key(pk, "b");
	key(pk, "stdin");
	key(pk, "");
	key(pk, "grace");
	msgpack_pack_int(pk, 0);
}

static void
pack_none(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 0);
}

static void
pack_empty_argv(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	key(pk, "argv");
	msgpack_pack_array(pk, 0);
}

static void
pack_int_in_argv(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	key(pk, "argv");
	msgpack_pack_array(pk, 2);
	key(pk, "echo");
	msgpack_pack_int(pk, 5);
}

static void
pack_string_argv(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	key(pk, "argv");
	key(pk, "echo hi");
}

static void
pack_args(msgpack_packer *pk, int n)
{
	int i;

	msgpack_pack_map(pk, 1);
	key(pk, "argv");
	msgpack_pack_array(pk, n);
	for (i = 0; i < n; i++)
		key(pk, "x");
}

static void
pack_65536_args(msgpack_packer *pk)
{
	pack_args(pk, 65536);
}

static void
pack_65537_args(msgpack_packer *pk)
{
	pack_args(pk, 65537);
}

static void
pack_4097_env(msgpack_packer *pk)
{
	char name[16];
	int i;

	msgpack_pack_map(pk, 2);
	key(pk, "argv");
	msgpack_pack_array(pk, 1);
	key(pk, "true");
	key(pk, "env");
	msgpack_pack_map(pk, 4097);
	for (i = 0; i < 4097; i++) {
		snprintf(name, sizeof(name), "V%d", i);
		key(pk, name);
		key(pk, "x");
	}
}

static void
pack_int_env(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	key(pk, "argv");
	msgpack_pack_array(pk, 1);
	key(pk, "true");
	key(pk, "env");
	msgpack_pack_map(pk, 1);
	key(pk, "N");
	msgpack_pack_int(pk, 1);
}

static void
pack_big_grace(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 2);
	key(pk, "argv");
	msgpack_pack_array(pk, 1);
	key(pk, "true");
	key(pk, "grace");
	msgpack_pack_int(pk, 60001);
}

static void
validation_refuses_bad_argv_env_and_grace(void **state)
{
	char c[256];

	assert_string_equal(why(c, pack_good), "");
	assert_string_equal(why(c, pack_none), "exec: missing argument argv");
	assert_string_equal(why(c, pack_empty_argv),
	                    "exec: argv must have 1 to 65536 entries");
	assert_string_equal(why(c, pack_int_in_argv),
	                    "exec: argv must be a list of strings");
	assert_string_equal(why(c, pack_string_argv),
	                    "exec: argv must be a list of strings");
	/* as many strings as the wire holds in one list */
	assert_string_equal(why(c, pack_65536_args), "");
	assert_string_equal(why(c, pack_65537_args),
	                    "exec: argv must have 1 to 65536 entries");
	assert_string_equal(why(c, pack_4097_env),
	                    "exec: env must have 0 to 4096 entries");
	assert_string_equal(why(c, pack_int_env),
	                    "exec: env must be a map of strings to strings");
	assert_string_equal(why(c, pack_big_grace),
	                    "exec: grace must be at most 60000");
}

/* Step until the command has said its pid (its first line). */
static pid_t
started_pid(struct job *j)
{
	enum task_step st;
	long pid;

	assert_int_equal(task_ctx_start(&j->ctx, j, ops, NULL), 0);
	for (;;) {
		st = task_ctx_step(&j->ctx);
		assert_true(st == TASK_WAIT || st == TASK_YIELD);
		if (rec.all[1].len > 0 &&
		    memchr(rec.all[1].data, '\n', rec.all[1].len) != NULL)
			break;
		if (st == TASK_WAIT)
			fd_wait(&j->ctx, st, NULL);
	}
	/* the recorded bytes are not a C string: end them first */
	pbuf_append(&rec.all[1], "", 1);
	assert_int_equal(sscanf(rec.all[1].data, "%ld", &pid), 1);
	rec.all[1].len--;
	assert_true(pid > 1);
	return (pid_t)pid;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The command is gone: reaped (not ours any more) and not running. */
static void
assert_gone(pid_t pid)
{
	errno = 0;
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
}

/* As an executor steps a cancelled exec job: on, until it ends. */
static enum task_step
wind_down(struct job *j)
{
	enum task_step st;

	atomic_store(&j->ctx.cancel, true);
	while ((st = task_ctx_step(&j->ctx)) == TASK_WAIT || st == TASK_YIELD)
		if (st == TASK_WAIT)
			fd_wait(&j->ctx, st, NULL);
	return st;
}

static void
a_cancelled_command_is_terminated_and_reaped(void **state)
{
	struct job *j = job_for(&(struct spec){
	    ARGV("sh", "-c", "echo $$; exec sleep 60"), .grace = -1});
	pid_t pid = started_pid(j);
	uint64_t t0 = now_ms();

	assert_int_equal(wind_down(j), TASK_FAILED);
	assert_null(j->ctx.error);         /* the executor says cancelled */
	assert_true(now_ms() - t0 < 1500); /* SIGTERM did it, not the grace */
	assert_gone(pid);                  /* before stop(): the job ended */
	task_ctx_stop(&j->ctx);
	free_job(j);
}

/* Wait until pid runs comm: it has exec'd, its signals are its own. */
static void
wait_execd(pid_t pid, const char *comm)
{
	char path[64], buf[64] = "";
	uint64_t t0 = now_ms();
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	while (strncmp(buf, comm, strlen(comm)) != 0) {
		assert_true(now_ms() - t0 < BOUND_MS);
		sched_yield();
		buf[0] = '\0';
		if ((f = fopen(path, "r")) != NULL) {
			if (fgets(buf, sizeof(buf), f) == NULL)
				buf[0] = '\0';
			fclose(f);
		}
	}
}

/*
 * Wait until pid is not running: gone, or a zombie (an orphan waits for
 * init to reap it).  Its pipes close before it is a zombie: it may be
 * still exiting when the job ends.
 */
static void
wait_dead(pid_t pid)
{
	char path[64], buf[512], *p;
	uint64_t t0 = now_ms();
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (;;) {
		if ((f = fopen(path, "r")) == NULL)
			return;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		if (p == NULL)
			return;
		assert_non_null(p = strrchr(buf, ')'));
		if (p[2] == 'Z' || p[2] == 'X')
			return;
		assert_true(now_ms() - t0 < BOUND_MS);
		sched_yield();
	}
}

static void
what_a_cancelled_command_writes_cleaning_up_is_passed_on(void **state)
{
	struct job *j = job_for(
	    &(struct spec){ARGV("sh", "-c",
	                        "trap 'echo bye; echo err >&2; exit 0' TERM; "
	                        "sleep 60 & echo $$ $!; wait"),
	                   .grace = 60000});
	pid_t pid = started_pid(j);
	long sleeper;

	/* SIGTERM must find the sleep exec'd, not the shell's fork of it */
	assert_int_equal(sscanf(rec.all[1].data, "%*d %ld", &sleeper), 1);
	wait_execd((pid_t)sleeper, "sleep");
	rec.all[1].len = 0; /* the pids */
	assert_int_equal(wind_down(j), TASK_FAILED);
	assert_gone(pid);
	wait_dead((pid_t)sleeper);
	assert_stream(1, "bye\n");
	assert_stream(2, "err\n");
	task_ctx_stop(&j->ctx);
	free_job(j);
}

/* A job the daemon cuts off, stopped without winding down. */
static void
a_command_cut_off_is_terminated_and_reaped(void **state)
{
	struct job *j = job_for(&(struct spec){
	    ARGV("sh", "-c", "echo $$; exec sleep 60"), .grace = -1});
	pid_t pid = started_pid(j);
	uint64_t t0;

	atomic_store(&j->ctx.cancel, true);
	t0 = now_ms();
	task_ctx_stop(&j->ctx);
	assert_true(now_ms() - t0 < 1500); /* SIGTERM did it, not the grace */
	assert_gone(pid);
	free_job(j);
}

static void
a_command_ignoring_sigterm_is_killed_after_its_grace(void **state)
{
	struct job *j;
	pid_t pid;
	uint64_t t0;

	skip_under_valgrind();
	j = job_for(&(struct spec){
	    ARGV("sh", "-c", "trap '' TERM; echo $$; exec sleep 60"),
	    .grace = 100});
	pid = started_pid(j);

	atomic_store(&j->ctx.cancel, true);
	t0 = now_ms();
	task_ctx_stop(&j->ctx);
	assert_true(now_ms() - t0 >= 100);
	assert_true(now_ms() - t0 < BOUND_MS);
	assert_gone(pid);
	free_job(j);
}

static void
a_command_that_closes_its_output_is_still_waited_for(void **state)
{
	struct job *j = job_for(&(struct spec){
	    ARGV("sh", "-c", "exec >&- 2>&-; sleep 0.2; exit 4"), .grace = -1});
	uint64_t t0 = now_ms();

	assert_int_equal(run(j), TASK_FAILED);
	assert_string_equal(j->ctx.error, "exited with status 4");
	assert_true(now_ms() - t0 >= 200);
	free_job(j);
}

static void
output_held_open_by_a_background_process_is_read_to_the_end(void **state)
{
	struct job *j = job_for(&(struct spec){
	    ARGV("sh", "-c", "(sleep 0.2; echo late) & echo early"),
	    .grace = -1});

	assert_int_equal(run(j), TASK_DONE);
	assert_stream(1, "early\nlate\n");
	assert_status_0(j);
	free_job(j);
}

static void
leftovers_of_an_exited_command_are_killed_at_once_on_cancel(void **state)
{
	struct job *j;
	pid_t sleeper;
	struct pollfd pfd = {.events = POLLIN};
	siginfo_t si;
	uint64_t t0;

	skip_under_valgrind(); /* and it has no pidfd_open */
	/* the shell exits, its background sleep keeps stdout open */
	j = job_for(
	    &(struct spec){ARGV("sh", "-c", "trap '' TERM; sleep 60 & echo $!"),
	                   .grace = 10000});

	/* orphans come to us, so that the test can reap the sleep */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	sleeper = started_pid(j);
	pfd.fd = (int)syscall(SYS_pidfd_open, sleeper, 0);
	assert_true(pfd.fd >= 0);
	/* wait for the shell's exit without reaping it */
	assert_int_equal(waitid(P_ALL, 0, &si, WEXITED | WNOWAIT), 0);
	assert_int_not_equal(si.si_pid, sleeper);

	atomic_store(&j->ctx.cancel, true);
	t0 = now_ms();
	task_ctx_stop(&j->ctx);
	assert_int_equal(poll(&pfd, 1, BOUND_MS), 1); /* SIGKILL, no grace */
	assert_true(now_ms() - t0 < 5000);
	assert_int_equal(waitpid(sleeper, NULL, 0), sleeper);
	assert_gone(si.si_pid);
	close(pfd.fd);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
	free_job(j);
}

static void
exec_may_run_on_every_executor_and_auto_picks_the_loop(void **state)
{
	const struct task *t = task_find("exec", 4);

	assert_non_null(t);
	assert_int_equal(t->executors, TASK_ON_ALL);
	assert_int_equal(task_default_exec(t), PX_LOOP);
}

/* The descriptors this process has open. */
static size_t
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/*
 * Jobs stopped at once, their spawns queued, taken up or done: none
 * leaves a process or a descriptor behind.
 */
static void
jobs_stopped_before_their_spawn_leave_nothing_behind(void **state)
{
	struct job *j[64];
	size_t before = open_fds(), i;
	uint64_t t0;

	for (i = 0; i < 64; i++) {
		j[i] = job_for(&(struct spec){ARGV("sleep", "60"), .grace = 0});
		assert_int_equal(task_ctx_start(&j[i]->ctx, j[i], ops, NULL),
		                 0);
	}
	for (i = 0; i < 64; i++) {
		atomic_store(&j[i]->ctx.cancel, true);
		task_ctx_stop(&j[i]->ctx);
		free_job(j[i]);
	}
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	/* dropped requests' pipe ends are closed by the spawner threads */
	for (t0 = now_ms(); open_fds() > before && now_ms() - t0 < BOUND_MS;)
		sched_yield();
	assert_int_equal(open_fds(), before);
}

static int
teardown(void **state)
{
	rec_reset();
	return 0;
}

static int
on_the_caller(void **state)
{
	ops = &rec_ops;
	return 0;
}

static int
on_the_loop(void **state)
{
	ops = &rec_loop_ops;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(echo_streams_its_line_and_succeeds_with_status_0),
	    cmocka_unit_test(
	        nonzero_exit_fails_with_its_status_after_both_streams),
	    cmocka_unit_test(a_signal_death_is_named),
	    cmocka_unit_test(stdin_data_is_piped_through_then_closed),
	    cmocka_unit_test(
	        stdin_larger_than_a_pipe_flows_while_output_is_read),
	    cmocka_unit_test(bytes_pass_through_unchanged),
	    cmocka_unit_test(long_lines_come_in_4096_byte_pieces),
	    cmocka_unit_test(much_output_arrives_whole_and_in_order),
	    cmocka_unit_test(env_and_cwd_are_honoured),
	    cmocka_unit_test(the_exit_status_or_the_signal_is_recorded),
	    cmocka_unit_test(the_callers_context_applies_under_cwd_and_env),
	    cmocka_unit_test(a_streamed_stdin_is_read_from_the_jobs_pipe),
	    cmocka_unit_test(
	        the_state_is_small_until_a_line_is_left_unfinished),
	    cmocka_unit_test(
	        start_fails_clearly_for_missing_commands_and_bad_cwd),
	    cmocka_unit_test(validation_refuses_bad_argv_env_and_grace),
	    cmocka_unit_test(a_cancelled_command_is_terminated_and_reaped),
	    cmocka_unit_test(
	        what_a_cancelled_command_writes_cleaning_up_is_passed_on),
	    cmocka_unit_test(a_command_cut_off_is_terminated_and_reaped),
	    cmocka_unit_test(
	        a_command_ignoring_sigterm_is_killed_after_its_grace),
	    cmocka_unit_test(
	        a_command_that_closes_its_output_is_still_waited_for),
	    cmocka_unit_test(
	        output_held_open_by_a_background_process_is_read_to_the_end),
	    cmocka_unit_test(
	        leftovers_of_an_exited_command_are_killed_at_once_on_cancel),
	    cmocka_unit_test(
	        exec_may_run_on_every_executor_and_auto_picks_the_loop),
	    cmocka_unit_test(
	        jobs_stopped_before_their_spawn_leave_nothing_behind),
	};

	return cmocka_run_group_tests_name("spawning on the caller", tests,
	                                   on_the_caller, teardown) +
	       cmocka_run_group_tests_name("spawning on spawner threads", tests,
	                                   on_the_loop, teardown);
}
