/*
 * test_tasks.c -- each built-in task driven step by step through the
 * task ABI, with a fake executor that records progress and waits
 * instead of sleeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "concd.h"

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
rec_wait(struct task_ctx *ctx, void *arg)
{
	if (rec.nwaits < 64)
		rec.waits[rec.nwaits++] = ctx->wait_ms;
	return true;
}

/* Build a job whose raw args are the msgpack map given as pairs. */
static struct job *
make_job(const char *task, int npairs, ...)
{
	struct job *j = calloc(1, sizeof(*j));
	struct pbuf b = {0};
	msgpack_packer pk;
	va_list ap;
	int i;

	assert_non_null(j);
	j->task = task_find(task, strlen(task));
	assert_non_null(j->task);
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
	j->args = b.data;
	j->args_len = (uint32_t)b.len;
	atomic_init(&j->ctx.cancel, false);
	memset(&rec, 0, sizeof(rec));
	return j;
}

static void
free_job(struct job *j)
{
	task_ctx_free(&j->ctx);
	free(j->args);
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
	assert_int_equal(task_run_blocking(&j->ctx, rec_wait, NULL),
	    TASK_DONE);
	msgpack_zone_init(&z, 256);
	assert_int_equal(msgpack_unpack(j->ctx.result.data, j->ctx.result.len,
			     &off, &z, &o),
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
	    262147, 524289, 524290, 524291, 786433, 99991, 99989};
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

static void
noop_returns_its_arguments(void **state)
{
	struct job *j = make_job("noop", 2, "a", 1LL, "b", -2LL);

	assert_int_equal(task_ctx_start(&j->ctx, j, &rec_ops, NULL), 0);
	assert_int_equal(task_run_blocking(&j->ctx, rec_wait, NULL),
	    TASK_DONE);
	assert_int_equal(j->ctx.result.len, j->args_len);
	assert_memory_equal(j->ctx.result.data, j->args, j->args_len);
	free_job(j);
}

/* ---- argument validation ---- */

static int
validate(const char *task, const char *json_like_pairs, ...)
{
	const struct task *t = task_find(task, strlen(task));
	struct pbuf b = {0};
	msgpack_packer pk;
	msgpack_zone z;
	msgpack_object o;
	size_t off = 0;
	char cause[256];
	int rc, n = 0;
	va_list ap;
	const char *p;

	for (p = json_like_pairs; *p; p++)
		n += *p == 'i' || *p == 's' || *p == 'b';
	msgpack_packer_init(&pk, &b, pbuf_write_cb);
	msgpack_pack_map(&pk, (size_t)n);
	va_start(ap, json_like_pairs);
	for (p = json_like_pairs; *p; p++) {
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
	va_end(ap);
	msgpack_zone_init(&z, 256);
	assert_int_equal(msgpack_unpack(b.data, b.len, &off, &z, &o),
	    MSGPACK_UNPACK_SUCCESS);
	rc = task_validate(t, &o, cause, sizeof(cause));
	msgpack_zone_destroy(&z);
	pbuf_free(&b);
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
	assert_int_equal(task_default_exec(task_find("primes", 6)),
	    PX_PROCESS);
	assert_null(task_find("prime", 5));
	assert_null(task_find("primesx", 7));
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
		cmocka_unit_test(noop_returns_its_arguments),
		cmocka_unit_test(validation_accepts_good_arguments),
		cmocka_unit_test(validation_rejects_wrong_types_ranges_and_names),
		cmocka_unit_test(validation_explains_the_problem),
		cmocka_unit_test(auto_picks_loop_for_waits_and_processes_for_cpu),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
