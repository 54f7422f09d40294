/*
 * test_tasks.c -- each built-in task driven step by step through the
 * task ABI, with a fake executor that records progress and waits
 * instead of sleeping.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "job.h"
#include "task.h"
#include "task_int.h"

struct rec {
	uint64_t waits[64];
	size_t nwaits;
	uint64_t progress[64];
	size_t nprogress;
	uint64_t total;
};

static struct rec rec;

static void
rec_progress(struct task_ctx *ctx, uint64_t done, uint64_t total,
             const char *msg)
{
	if (rec.nprogress < 64)
		rec.progress[rec.nprogress++] = done;
	rec.total = total;
}

static const struct exec_ops rec_ops = {.progress = rec_progress};

static bool
rec_wait(struct task_ctx *ctx, enum task_step st, void *arg)
{
	if (st != TASK_WAIT)
		return true;
	if (rec.nwaits < 64)
		rec.waits[rec.nwaits++] = ctx->wait_ms;
	return true;
}

/* A job of task with the arguments packed in b (freed), rec cleared. */
static struct job *
job_of(const char *task, struct pbuf *b)
{
	struct job *j =
	    job_alloc(task_find(task, strlen(task)), b->data, b->len);

	assert_non_null(j);
	assert_non_null(j->task);
	pbuf_free(b);
	memset(&rec, 0, sizeof(rec));
	return j;
}

/* Build a job whose raw args are the msgpack map given as pairs. */
static struct job *
make_job(const char *task, int npairs, ...)
{
	struct pbuf b = {0};
	msgpack_packer pk;
	va_list ap;
	int i;

	msgpack_packer_init(&pk, &b, pbuf_write_cb);
	msgpack_pack_map(&pk, (size_t)npairs);
	va_start(ap, npairs);
	for (i = 0; i < npairs; i++) {
		const char *k = va_arg(ap, const char *);
		long long v = va_arg(ap, long long);
		msgpack_pack_str_with_body(&pk, k, strlen(k));
		msgpack_pack_int64(&pk, v);
	}
	va_end(ap);
	return job_of(task, &b);
}

static void
free_job(struct job *j)
{
	task_ctx_free(&j->ctx);
	free(j);
}

/* Run to the end; returns the unsigned result. */
static uint64_t
run_u64(struct job *j)
{
	msgpack_zone z;
	msgpack_object o;
	size_t off = 0;
	uint64_t v;

	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, NULL), 0);
	assert_int_equal(task_run_blocking(&j->ctx, rec_wait, NULL), TASK_DONE);
	msgpack_zone_init(&z, 256);
	assert_int_equal(
	    msgpack_unpack(j->ctx.result.data, j->ctx.result.len, &off, &z, &o),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	v = o.via.u64;
	msgpack_zone_destroy(&z);
	return v;
}

static uint64_t
primes_of(long long n)
{
	struct job *j = make_job("primes", 1, "n", n);
	uint64_t v = run_u64(j);

	free_job(j);
	return v;
}

static uint64_t
naive_primes(uint64_t n)
{
	unsigned char *c = calloc(n + 1, 1);
	uint64_t i, k, count = 0;

	for (i = 2; i <= n; i++) {
		if (c[i])
			continue;
		count++;
		for (k = i * i; k <= n; k += i)
			c[k] = 1;
	}
	free(c);
	return count;
}

static void
primes_counts_known_values(void **state)
{
	assert_int_equal(primes_of(0), 0);
	assert_int_equal(primes_of(1), 0);
	assert_int_equal(primes_of(2), 1);
	assert_int_equal(primes_of(3), 2);
	assert_int_equal(primes_of(10), 4);
	assert_int_equal(primes_of(100), 25);
	assert_int_equal(primes_of(1000000), 78498);
	assert_int_equal(primes_of(5000000), 348513);
}

static void
primes_matches_naive_sieve_around_segment_edges(void **state)
{
	/* a segment holds 128 Ki odd numbers starting at 3 */
	static const uint64_t edges[] = {262143, 262144, 262145, 262146,
	                                 262147, 524289, 524290, 524291,
	                                 786433, 99991,  99989};
	size_t i;

	for (i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		assert_int_equal(primes_of((long long)edges[i]),
		                 naive_primes(edges[i]));
}

static void
primes_reports_progress_up_to_n(void **state)
{
	struct job *j = make_job("primes", 1, "n", 1000000LL);

	assert_int_equal(run_u64(j), 78498);
	assert_true(rec.nprogress >= 3);
	assert_int_equal(rec.progress[rec.nprogress - 1], 1000000);
	assert_int_equal(rec.total, 1000000);
	free_job(j);
}

static void
primes_stops_when_cancelled(void **state)
{
	struct job *j = make_job("primes", 1, "n", 4000000000LL);

	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, NULL), 0);
	assert_int_equal(task_ctx_step(&j->ctx), TASK_YIELD);
	atomic_store(&j->ctx.cancel, true);
	assert_int_equal(task_run_blocking(&j->ctx, rec_wait, NULL),
	                 TASK_FAILED);
	free_job(j);
}

static void
sleep_splits_the_wait_into_steps(void **state)
{
	struct job *j = make_job("sleep", 2, "ms", 1000LL, "steps", 3LL);
	uint64_t sum = 0;
	size_t i;

	assert_int_equal(run_u64(j), 1000);
	assert_int_equal(rec.nwaits, 3);
	for (i = 0; i < rec.nwaits; i++)
		sum += rec.waits[i];
	assert_int_equal(sum, 1000);
	assert_int_equal(rec.nprogress, 3);
	assert_int_equal(rec.progress[2], 3);
	assert_int_equal(rec.total, 3);
	free_job(j);
}

static void
sleep_defaults_to_one_step_without_progress(void **state)
{
	struct job *j = make_job("sleep", 1, "ms", 250LL);

	assert_int_equal(run_u64(j), 250);
	assert_int_equal(rec.nwaits, 1);
	assert_int_equal(rec.waits[0], 250);
	assert_int_equal(rec.nprogress, 0);
	free_job(j);
}

/* A task's state starts 8-byte aligned and zeroed after its arguments. */
static void
state_is_aligned_after_arguments_of_any_length(void **state)
{
	const struct task *t = task_find("sleep", 5);
	char args[40];
	size_t len, i;

	memset(args, 0x5a, sizeof(args));
	for (len = 1; len <= sizeof(args); len++) {
		struct job *j = job_alloc(t, args, len);
		const char *s;

		assert_non_null(j);
		s = job_state_buf(j);
		assert_non_null(s);
		assert_int_equal((uintptr_t)s % 8, 0);
		assert_true(s >= job_args(j) + len);
		assert_memory_equal(job_args(j), args, len);
		for (i = 0; i < t->state_size; i++)
			assert_int_equal(s[i], 0);
		free(j);
	}
}

static void
noop_returns_its_arguments(void **state)
{
	struct job *j = make_job("noop", 2, "a", 1LL, "b", -2LL);

	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, NULL), 0);
	assert_int_equal(task_run_blocking(&j->ctx, rec_wait, NULL), TASK_DONE);
	assert_int_equal(j->ctx.result.len, j->args_len);
	assert_memory_equal(j->ctx.result.data, job_args(j), j->args_len);
	free_job(j);
}

/* ---- argument validation ---- */

/*
 * Pack a map from pairs described by fmt: one letter per pair, i (long
 * long), b (int, as a boolean) or s (a C string), each after its key.
 */
static void
pack_pairs(struct pbuf *b, const char *fmt, va_list ap)
{
	msgpack_packer pk;
	const char *p;
	int n = 0;

	for (p = fmt; *p; p++)
		n += *p == 'i' || *p == 's' || *p == 'b';
	msgpack_packer_init(&pk, b, pbuf_write_cb);
	msgpack_pack_map(&pk, (size_t)n);
	for (p = fmt; *p; p++) {
		const char *k = va_arg(ap, const char *);
		msgpack_pack_str_with_body(&pk, k, strlen(k));
		if (*p == 'i') {
			msgpack_pack_int64(&pk, va_arg(ap, long long));
		} else if (*p == 'b') {
			if (va_arg(ap, int))
				msgpack_pack_true(&pk);
			else
				msgpack_pack_false(&pk);
		} else {
			const char *s = va_arg(ap, const char *);
			msgpack_pack_str_with_body(&pk, s, strlen(s));
		}
	}
}

static int
validatev(char *cause, size_t causelen, const char *task,
          const char *json_like_pairs, va_list ap)
{
	const struct task *t = task_find(task, strlen(task));
	struct pbuf b = {0};
	msgpack_zone z;
	msgpack_object o;
	size_t off = 0;
	int rc;

	assert_non_null(t);
	pack_pairs(&b, json_like_pairs, ap);
	msgpack_zone_init(&z, 256);
	assert_int_equal(msgpack_unpack(b.data, b.len, &off, &z, &o),
	                 MSGPACK_UNPACK_SUCCESS);
	cause[0] = '\0';
	rc = task_validate(t, &o, cause, causelen);
	msgpack_zone_destroy(&z);
	pbuf_free(&b);
	return rc;
}

static int
validate(const char *task, const char *json_like_pairs, ...)
{
	char cause[256];
	va_list ap;
	int rc;

	va_start(ap, json_like_pairs);
	rc = validatev(cause, sizeof(cause), task, json_like_pairs, ap);
	va_end(ap);
	return rc;
}

static void
validation_accepts_good_arguments(void **state)
{
	assert_int_equal(validate("primes", "i", "n", 100LL), 0);
	assert_int_equal(validate("sleep", "ii", "ms", 5LL, "steps", 5LL), 0);
	assert_int_equal(validate("noop", "isb", "x", 1LL, "y", "z", "w", 1),
	                 0);
}

static void
validation_rejects_wrong_types_ranges_and_names(void **state)
{
	assert_int_equal(validate("primes", "s", "n", "ten"), -1);
	assert_int_equal(validate("primes", "i", "n", -1LL), -1);
	assert_int_equal(validate("primes", "i", "n", 4000000001LL), -1);
	assert_int_equal(validate("primes", "", NULL), -1); /* n missing */
	assert_int_equal(validate("primes", "ii", "n", 1LL, "m", 2LL), -1);
	assert_int_equal(validate("sleep", "ii", "ms", 1LL, "steps", 0LL), -1);
	assert_int_equal(validate("sleep", "b", "ms", 1), -1);
}

static void
validation_explains_the_problem(void **state)
{
	const struct task *t = task_find("primes", 6);
	msgpack_object o = {.type = MSGPACK_OBJECT_MAP};
	msgpack_object_kv kv;
	char cause[256];

	kv.key.type = MSGPACK_OBJECT_STR;
	kv.key.via.str.ptr = "n";
	kv.key.via.str.size = 1;
	kv.val.type = MSGPACK_OBJECT_BOOLEAN;
	kv.val.via.boolean = true;
	o.via.map.size = 1;
	o.via.map.ptr = &kv;
	assert_int_equal(task_validate(t, &o, cause, sizeof(cause)), -1);
	assert_string_equal(cause, "primes: n must be an integer");
	o.via.map.size = 0;
	assert_int_equal(task_validate(t, &o, cause, sizeof(cause)), -1);
	assert_string_equal(cause, "primes: missing argument n");
}

static void
auto_picks_loop_for_waits_and_processes_for_cpu(void **state)
{
	assert_int_equal(task_default_exec(task_find("sleep", 5)), PX_LOOP);
	assert_int_equal(task_default_exec(task_find("noop", 4)), PX_LOOP);
	assert_int_equal(task_default_exec(task_find("primes", 6)), PX_PROCESS);
	assert_null(task_find("prime", 5));
	assert_null(task_find("primesx", 7));
}

/* ---- counter, checksum and table ---- */

/* A job whose raw args are packed as pack_pairs() does. */
static struct job *
make_jobf(const char *task, const char *fmt, ...)
{
	struct pbuf b = {0};
	va_list ap;

	va_start(ap, fmt);
	pack_pairs(&b, fmt, ap);
	va_end(ap);
	return job_of(task, &b);
}

/* A wait that really waits for the fd, as a pool worker does. */
static bool
fd_wait(struct task_ctx *ctx, enum task_step st, void *arg)
{
	struct pollfd pfd = {.fd = ctx->wait_fd};

	if (st != TASK_WAIT || ctx->wait_fd < 0)
		return rec_wait(ctx, st, arg);
	pfd.events = ctx->wait_write ? POLLOUT : POLLIN;
	assert_int_equal(poll(&pfd, 1, 60000), 1);
	return true;
}

/* The job's result, a map, decoded into z. */
static msgpack_object
result_map(struct job *j, msgpack_zone *z)
{
	msgpack_object o;
	size_t off = 0;

	msgpack_zone_init(z, 1024);
	assert_int_equal(
	    msgpack_unpack(j->ctx.result.data, j->ctx.result.len, &off, z, &o),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(o.type, MSGPACK_OBJECT_MAP);
	return o;
}

static const msgpack_object *
map_get(const msgpack_object *m, const char *key)
{
	uint32_t i;

	for (i = 0; i < m->via.map.size; i++)
		if (proto_obj_streq(&m->via.map.ptr[i].key, key))
			return &m->via.map.ptr[i].val;
	fail_msg("no key \"%s\" in the result", key);
	return NULL;
}

static uint64_t
map_u64(const msgpack_object *m, const char *key)
{
	const msgpack_object *v = map_get(m, key);

	assert_int_equal(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	return v->via.u64;
}

static bool
map_bool(const msgpack_object *m, const char *key)
{
	const msgpack_object *v = map_get(m, key);

	assert_int_equal(v->type, MSGPACK_OBJECT_BOOLEAN);
	return v->via.boolean;
}

/* The string at key, copied into buf. */
static const char *
map_str(const msgpack_object *m, const char *key, char *buf, size_t len)
{
	const msgpack_object *v = map_get(m, key);

	assert_int_equal(v->type, MSGPACK_OBJECT_STR);
	assert_true(v->via.str.size < len);
	memcpy(buf, v->via.str.ptr, v->via.str.size);
	buf[v->via.str.size] = '\0';
	return buf;
}

static void
counter_with_lock_counts_exactly(void **state)
{
	struct job *j = make_jobf("counter", "iib", "threads", 8LL, "iters",
	                          100000LL, "lock", 1);
	msgpack_zone z;
	msgpack_object m;

	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, NULL), 0);
	assert_int_equal(task_run_blocking(&j->ctx, fd_wait, NULL), TASK_DONE);
	m = result_map(j, &z);
	assert_int_equal(map_u64(&m, "expected"), 800000);
	assert_int_equal(map_u64(&m, "actual"), 800000);
	assert_int_equal(map_u64(&m, "lost"), 0);
	assert_true(map_bool(&m, "lock"));
	msgpack_zone_destroy(&z);
	/* progress counts threads joined */
	assert_true(rec.nprogress >= 1);
	assert_int_equal(rec.progress[rec.nprogress - 1], 8);
	assert_int_equal(rec.total, 8);
	free_job(j);
}

static void
counter_without_lock_reports_expected_actual_and_lost(void **state)
{
	/* the defaults: 4 threads, 1000000 increments each, no lock */
	struct job *j = make_jobf("counter", "");
	msgpack_zone z;
	msgpack_object m;
	uint64_t expected, actual;

	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, NULL), 0);
	assert_int_equal(task_run_blocking(&j->ctx, fd_wait, NULL), TASK_DONE);
	m = result_map(j, &z);
	expected = map_u64(&m, "expected");
	actual = map_u64(&m, "actual");
	assert_int_equal(expected, 4000000);
	/* updates may be lost, never invented; whether any are is luck */
	assert_true(actual > 0 && actual <= expected);
	assert_int_equal(map_u64(&m, "lost"), expected - actual);
	assert_false(map_bool(&m, "lock"));
	msgpack_zone_destroy(&z);
	assert_int_equal(rec.progress[rec.nprogress - 1], 4);
	assert_int_equal(rec.total, 4);
	free_job(j);
}

static void
counter_stops_early_when_cancelled(void **state)
{
	/* 2 x 10^8 locked increments would take seconds */
	struct job *j = make_jobf("counter", "iib", "threads", 2LL, "iters",
	                          100000000LL, "lock", 1);
	unsigned long long done = 0, of = 0;

	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, NULL), 0);
	assert_int_equal(task_ctx_step(&j->ctx), TASK_WAIT);
	assert_true(j->ctx.wait_fd >= 0);
	atomic_store(&j->ctx.cancel, true);
	assert_int_equal(task_ctx_step(&j->ctx), TASK_FAILED);
	assert_non_null(j->ctx.error);
	assert_int_equal(
	    sscanf(j->ctx.error,
	           "counter: cancelled after %llu of %llu increments", &done,
	           &of),
	    2);
	assert_int_equal(of, 200000000);
	assert_true(done < of);
	free_job(j);
}

static void
counter_threads_stop_when_the_job_stops_mid_run(void **state)
{
	/* the executor's wait saw the cancel: stop() must join the threads */
	struct job *j = make_jobf("counter", "iib", "threads", 4LL, "iters",
	                          100000000LL, "lock", 0);

	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, NULL), 0);
	assert_int_equal(task_ctx_step(&j->ctx), TASK_WAIT);
	atomic_store(&j->ctx.cancel, true);
	task_ctx_stop(&j->ctx);
	assert_false(j->ctx.started);
	assert_null(j->ctx.result.data);
	free_job(j);
}

/* A file in a fresh directory holding len bytes of data. */
static char *
temp_file(char *dir, const void *data, size_t len)
{
	char *path;
	FILE *f;

	strcpy(dir, "/tmp/concd-test-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_true(asprintf(&path, "%s/data", dir) > 0);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void
temp_remove(char *dir, char *path)
{
	unlink(path);
	rmdir(dir);
	free(path);
}

/* checksum of the file at path: its fnv1a64 and size. */
static void
checksum_of(const char *path, char hex[17], uint64_t *size)
{
	struct job *j = make_jobf("checksum", "s", "path", path);
	msgpack_zone z;
	msgpack_object m;
	char got[4097];

	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, NULL), 0);
	assert_int_equal(task_run_blocking(&j->ctx, rec_wait, NULL), TASK_DONE);
	m = result_map(j, &z);
	assert_int_equal(m.via.map.size, 3);
	assert_string_equal(map_str(&m, "path", got, sizeof(got)), path);
	map_str(&m, "fnv1a64", hex, 17);
	*size = map_u64(&m, "size");
	msgpack_zone_destroy(&z);
	free_job(j);
}

static void
checksum_gives_published_fnv1a64_values(void **state)
{
	static const struct {
		const char *data, *fnv;
	} vec[] = {
	    {"", "cbf29ce484222325"},
	    {"a", "af63dc4c8601ec8c"},
	    {"foobar", "85944171f73967e8"},
	};
	char dir[32], hex[17], *path;
	uint64_t size;
	size_t i;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		path = temp_file(dir, vec[i].data, strlen(vec[i].data));
		checksum_of(path, hex, &size);
		assert_string_equal(hex, vec[i].fnv);
		assert_int_equal(size, strlen(vec[i].data));
		temp_remove(dir, path);
	}
}

static void
checksum_reads_large_files_in_steps_with_progress(void **state)
{
	const size_t len = 5 * 512 * 1024 + 7; /* 2.5 MiB and a bit */
	unsigned char *data = malloc(len);
	uint64_t h = 0xcbf29ce484222325ULL, size;
	char dir[32], hex[17], want[17], *path;
	size_t i;

	assert_non_null(data);
	for (i = 0; i < len; i++)
		data[i] = (unsigned char)(i * 7 + i / 251);
	for (i = 0; i < len; i++) {
		h ^= data[i];
		h *= 0x100000001b3ULL;
	}
	snprintf(want, sizeof(want), "%016llx", (unsigned long long)h);
	path = temp_file(dir, data, len);
	checksum_of(path, hex, &size);
	assert_string_equal(hex, want);
	assert_int_equal(size, len);
	assert_int_equal(rec.nprogress, 3);
	assert_int_equal(rec.progress[0], 1024 * 1024);
	assert_int_equal(rec.progress[1], 2 * 1024 * 1024);
	assert_int_equal(rec.progress[2], len);
	assert_int_equal(rec.total, len);
	temp_remove(dir, path);
	free(data);
}

/* Start checksum on path; -1 and the error it gave, or 0. */
static int
checksum_start_error(const char *path, char *err, size_t errlen)
{
	struct job *j = make_jobf("checksum", "s", "path", path);
	int rc = task_ctx_start(&j->ctx, j, &rec_ops, NULL);

	snprintf(err, errlen, "%s", j->ctx.error != NULL ? j->ctx.error : "");
	free_job(j);
	return rc;
}

static void
checksum_fails_at_start_on_missing_files_and_directories(void **state)
{
	char dir[32], err[512], want[512], *path;

	assert_int_equal(
	    checksum_start_error("/nonexistent/concd-test", err, sizeof(err)),
	    -1);
	assert_string_equal(err,
	                    "checksum: cannot open /nonexistent/concd-test:"
	                    " No such file or directory");

	path = temp_file(dir, "x", 1);
	assert_int_equal(checksum_start_error(dir, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "checksum: cannot open %s: Is a directory",
	         dir);
	assert_string_equal(err, want);
	temp_remove(dir, path);

	assert_int_equal(checksum_start_error("/dev/null", err, sizeof(err)),
	                 -1);
	assert_string_equal(
	    err, "checksum: cannot open /dev/null: not a regular file");
}

static void
checksum_reports_permission_errors(void **state)
{
	char dir[32], err[512], want[512], *path;
	pid_t pid;
	int status;

	path = temp_file(dir, "secret", 6);
	assert_int_equal(chmod(path, 0), 0);
	snprintf(want, sizeof(want),
	         "checksum: cannot open %s: Permission denied", path);
	if (geteuid() != 0) {
		assert_int_equal(checksum_start_error(path, err, sizeof(err)),
		                 -1);
		assert_string_equal(err, want);
	} else {
		/* root reads anything: try as nobody in a child */
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (setgid(65534) < 0 || setuid(65534) < 0)
				_exit(2);
			_exit(checksum_start_error(path, err, sizeof(err)) ==
			                  -1 &&
			              strcmp(err, want) == 0
			          ? 0
			          : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	temp_remove(dir, path);
}

static void
checksum_copies_the_path_and_refuses_nul_bytes(void **state)
{
	struct job *j;
	struct pbuf b = {0};
	msgpack_packer pk;

	/* {"path": "/etc/passwd\0x"}: not a path the kernel could open */
	msgpack_packer_init(&pk, &b, pbuf_write_cb);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "path", 4);
	msgpack_pack_str_with_body(&pk, "/etc/passwd\0x", 13);
	j = job_of("checksum", &b);
	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, NULL), -1);
	assert_string_equal(j->ctx.error, "checksum: path contains a NUL byte");
	free_job(j);
}

/* pi(n) from the table in worker state ws; the result in *m. */
static uint64_t
table_pi(void *ws, long long n, uint64_t *inits, uint64_t *init_ms)
{
	struct job *j = make_jobf("table", "i", "n", n);
	msgpack_zone z;
	msgpack_object m;
	uint64_t pi;

	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, ws), 0);
	assert_int_equal(task_run_blocking(&j->ctx, rec_wait, NULL), TASK_DONE);
	m = result_map(j, &z);
	assert_int_equal(map_u64(&m, "n"), (uint64_t)n);
	pi = map_u64(&m, "primes");
	if (inits != NULL)
		*inits = map_u64(&m, "inits");
	if (init_ms != NULL)
		*init_ms = map_u64(&m, "init_ms");
	msgpack_zone_destroy(&z);
	free_job(j);
	return pi;
}

static void
table_answers_pi_from_its_table(void **state)
{
	const struct task *t = task_find("table", 5);
	static const long long edges[] = {2,   3,   62,  63,    64,    65,
	                                  127, 128, 129, 99991, 262143};
	char err[256] = "";
	void *ws = NULL;
	size_t i;

	assert_non_null(t->init);
	assert_int_equal(t->init(&ws, err, sizeof(err)), 0);
	assert_non_null(ws);
	assert_int_equal(table_pi(ws, 0, NULL, NULL), 0);
	assert_int_equal(table_pi(ws, 1, NULL, NULL), 0);
	assert_int_equal(table_pi(ws, 10, NULL, NULL), 4);
	assert_int_equal(table_pi(ws, 1000000, NULL, NULL), 78498);
	assert_int_equal(table_pi(ws, 9999991, NULL, NULL), 664579);
	assert_int_equal(table_pi(ws, 9999990, NULL, NULL), 664578);
	assert_int_equal(table_pi(ws, 10000000, NULL, NULL), 664579);
	for (i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		assert_int_equal(table_pi(ws, edges[i], NULL, NULL),
		                 naive_primes((uint64_t)edges[i]));
	t->fini(ws);
}

static void
table_init_runs_once_per_worker_not_per_job(void **state)
{
	const struct task *t = task_find("table", 5);
	uint64_t inits1, inits2, ms1, ms2;
	char err[256] = "";
	void *ws = NULL;

	assert_int_equal(t->init(&ws, err, sizeof(err)), 0);
	assert_int_equal(table_pi(ws, 100, &inits1, &ms1), 25);
	assert_true(inits1 >= 1);
	/* a second job on the same worker state: no init in between */
	assert_int_equal(table_pi(ws, 1000, &inits2, &ms2), 168);
	assert_int_equal(inits2, inits1);
	assert_int_equal(ms2, ms1);
	t->fini(ws);
	/* a fresh worker pays again */
	ws = NULL;
	assert_int_equal(t->init(&ws, err, sizeof(err)), 0);
	assert_int_equal(table_pi(ws, 100, &inits2, NULL), 25);
	assert_int_equal(inits2, inits1 + 1);
	t->fini(ws);
}

static void
table_fails_without_its_worker_state(void **state)
{
	struct job *j = make_jobf("table", "i", "n", 10LL);

	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, NULL), -1);
	assert_string_equal(j->ctx.error, "table: no table: init did not run");
	free_job(j);
}

/* task_validate's cause for args packed from fmt, "" if accepted. */
static const char *
why(char *cause, const char *task, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)validatev(cause, 256, task, fmt, ap);
	va_end(ap);
	return cause;
}

static void
validation_of_counter_checksum_and_table(void **state)
{
	char c[256], *longpath;

	assert_int_equal(validate("counter", ""), 0);
	assert_int_equal(validate("counter", "iib", "threads", 64LL, "iters",
	                          100000000LL, "lock", 0),
	                 0);
	assert_int_equal(
	    validate("counter", "ii", "threads", 1LL, "iters", 1LL), 0);
	assert_string_equal(why(c, "counter", "i", "threads", 0LL),
	                    "counter: threads must be between 1 and 64");
	assert_string_equal(why(c, "counter", "i", "threads", 65LL),
	                    "counter: threads must be at most 64");
	assert_string_equal(why(c, "counter", "i", "iters", 0LL),
	                    "counter: iters must be between 1 and 100000000");
	assert_int_equal(validate("counter", "i", "iters", 100000001LL), -1);
	assert_string_equal(why(c, "counter", "i", "lock", 1LL),
	                    "counter: lock must be true or false");
	assert_string_equal(why(c, "counter", "s", "threads", "4"),
	                    "counter: threads must be an integer");

	assert_int_equal(validate("checksum", "s", "path", "/etc/passwd"), 0);
	assert_string_equal(why(c, "checksum", ""),
	                    "checksum: missing argument path");
	assert_string_equal(why(c, "checksum", "i", "path", 1LL),
	                    "checksum: path must be a string");
	assert_string_equal(why(c, "checksum", "s", "path", ""),
	                    "checksum: path must be 1 to 4096 bytes long");
	longpath = malloc(4098);
	assert_non_null(longpath);
	memset(longpath, 'a', 4097);
	longpath[4097] = '\0';
	assert_int_equal(validate("checksum", "s", "path", longpath), -1);
	longpath[4096] = '\0';
	assert_int_equal(validate("checksum", "s", "path", longpath), 0);
	free(longpath);

	assert_int_equal(validate("table", "i", "n", 0LL), 0);
	assert_int_equal(validate("table", "i", "n", 10000000LL), 0);
	assert_string_equal(why(c, "table", "i", "n", 10000001LL),
	                    "table: n must be at most 10000000");
	assert_int_equal(validate("table", "i", "n", -1LL), -1);
	assert_string_equal(why(c, "table", ""), "table: missing argument n");
	assert_string_equal(why(c, "table", "b", "n", 1),
	                    "table: n must be an integer");
}

static void
auto_runs_counter_and_table_on_processes_and_checksum_on_threads(void **state)
{
	const struct task *counter = task_find("counter", 7);
	const struct task *checksum = task_find("checksum", 8);
	const struct task *table = task_find("table", 5);

	assert_int_equal(task_default_exec(counter), PX_PROCESS);
	assert_int_equal(task_default_exec(checksum), PX_THREAD);
	assert_int_equal(task_default_exec(table), PX_PROCESS);
	/* none of them may block the loop */
	assert_false(counter->executors & TASK_ON_LOOP);
	assert_false(checksum->executors & TASK_ON_LOOP);
	assert_false(table->executors & TASK_ON_LOOP);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(primes_counts_known_values),
	    cmocka_unit_test(primes_matches_naive_sieve_around_segment_edges),
	    cmocka_unit_test(primes_reports_progress_up_to_n),
	    cmocka_unit_test(primes_stops_when_cancelled),
	    cmocka_unit_test(sleep_splits_the_wait_into_steps),
	    cmocka_unit_test(sleep_defaults_to_one_step_without_progress),
	    cmocka_unit_test(state_is_aligned_after_arguments_of_any_length),
	    cmocka_unit_test(noop_returns_its_arguments),
	    cmocka_unit_test(validation_accepts_good_arguments),
	    cmocka_unit_test(validation_rejects_wrong_types_ranges_and_names),
	    cmocka_unit_test(validation_explains_the_problem),
	    cmocka_unit_test(auto_picks_loop_for_waits_and_processes_for_cpu),
	    cmocka_unit_test(counter_with_lock_counts_exactly),
	    cmocka_unit_test(
	        counter_without_lock_reports_expected_actual_and_lost),
	    cmocka_unit_test(counter_stops_early_when_cancelled),
	    cmocka_unit_test(counter_threads_stop_when_the_job_stops_mid_run),
	    cmocka_unit_test(checksum_gives_published_fnv1a64_values),
	    cmocka_unit_test(checksum_reads_large_files_in_steps_with_progress),
	    cmocka_unit_test(
	        checksum_fails_at_start_on_missing_files_and_directories),
	    cmocka_unit_test(checksum_reports_permission_errors),
	    cmocka_unit_test(checksum_copies_the_path_and_refuses_nul_bytes),
	    cmocka_unit_test(table_answers_pi_from_its_table),
	    cmocka_unit_test(table_init_runs_once_per_worker_not_per_job),
	    cmocka_unit_test(table_fails_without_its_worker_state),
	    cmocka_unit_test(validation_of_counter_checksum_and_table),
	    cmocka_unit_test(
	        auto_runs_counter_and_table_on_processes_and_checksum_on_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
