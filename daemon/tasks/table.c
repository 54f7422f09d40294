/*
 * table -- pi(n) from a prime table built once per worker: the task with
 * a deliberately costly init, to show warm pools against fresh workers.
 *
 * init() sieves every number up to TABLE_MAX (tens of milliseconds) into
 * a bitmap, one bit per number, and keeps the count of primes below each
 * 64-number block, so a job answers pi(n) with one lookup and one
 * popcount.  It counts its runs in this process, so a result tells how
 * often the work was paid for.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../task.h"

#define TABLE_MAX    10000000
#define TABLE_BLOCKS (TABLE_MAX / 64 + 1)

enum { TABLE_N };

static const struct task_arg table_args[] = {
    [TABLE_N] = {"n", TASK_ARG_INT, true, 0, TABLE_MAX, 0,
                 "count the primes up to and including n, from the table"},
};

struct table {
	uint64_t prime[TABLE_BLOCKS];  /* bit i of word b: 64b + i is prime */
	uint32_t before[TABLE_BLOCKS]; /* primes below 64b */
	uint64_t init_ms;              /* what building it cost */
};

struct table_state {
	uint64_t n;
};

/* init() runs in this process, over all workers and tasks' lifetimes */
static atomic_uint_fast64_t table_inits;

static uint64_t
table_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static void
table_clear(struct table *t, uint64_t i)
{
	t->prime[i / 64] &= ~(1ULL << (i % 64));
}

static int
table_init(void **worker_state, char *err, size_t errlen)
{
	uint64_t t0 = table_now_ns(), i, j, count = 0;
	struct table *t;
	size_t b;

	if ((t = malloc(sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (b = 0; b < TABLE_BLOCKS; b++)
		t->prime[b] = ~0ULL;
	table_clear(t, 0);
	table_clear(t, 1);
	for (i = 2; i * i <= TABLE_MAX; i++) {
		if (!(t->prime[i / 64] & (1ULL << (i % 64))))
			continue;
		for (j = i * i; j <= TABLE_MAX; j += i)
			table_clear(t, j);
	}
	/* nothing above TABLE_MAX in the last block */
	t->prime[TABLE_BLOCKS - 1] &= (1ULL << (TABLE_MAX % 64 + 1)) - 1;
	for (b = 0; b < TABLE_BLOCKS; b++) {
		t->before[b] = (uint32_t)count;
		count += (uint64_t)__builtin_popcountll(t->prime[b]);
	}
	t->init_ms = (table_now_ns() - t0) / 1000000;
	atomic_fetch_add(&table_inits, 1);
	*worker_state = t;
	return 0;
}

static void
table_fini(void *worker_state)
{
	free(worker_state);
}

static uint64_t
table_pi(const struct table *t, uint64_t n)
{
	uint64_t b = n / 64, r = n % 64;
	uint64_t upto = r == 63 ? ~0ULL : (1ULL << (r + 1)) - 1;

	return t->before[b] +
	       (uint64_t)__builtin_popcountll(t->prime[b] & upto);
}

static int
table_start(struct task_ctx *ctx, const union task_value *argv)
{
	struct table_state *s = task_state(ctx);

	if (task_worker_state(ctx) == NULL) {
		task_fail(ctx, "table: no table: init did not run");
		return -1;
	}
	s->n = (uint64_t)argv[TABLE_N].i;
	return 0;
}

static enum task_step
table_step(struct task_ctx *ctx)
{
	struct table_state *s = task_state(ctx);
	const struct table *t = task_worker_state(ctx);
	msgpack_packer *pk = task_result(ctx);

	msgpack_pack_map(pk, 4);
	msgpack_pack_str_with_body(pk, "n", 1);
	msgpack_pack_uint64(pk, s->n);
	msgpack_pack_str_with_body(pk, "primes", 6);
	msgpack_pack_uint64(pk, table_pi(t, s->n));
	msgpack_pack_str_with_body(pk, "inits", 5);
	msgpack_pack_uint64(pk, atomic_load(&table_inits));
	msgpack_pack_str_with_body(pk, "init_ms", 7);
	msgpack_pack_uint64(pk, t->init_ms);
	return TASK_DONE;
}

const struct task task_table = {
    .abi = CONCD_TASK_ABI,
    .name = "table",
    .summary = "pi(n) from a prime table built once per worker",
    .traits = TASK_CPU,
    .executors = TASK_ON_THREAD | TASK_ON_PROCESS,
    .state_size = sizeof(struct table_state),
    .args = table_args,
    .nargs = sizeof(table_args) / sizeof(table_args[0]),
    .init = table_init,
    .fini = table_fini,
    .start = table_start,
    .step = table_step,
};
