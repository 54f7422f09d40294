/*
 * primes -- count the primes <= n with a segmented sieve of Eratosthenes.
 * Each step sieves one segment, so on the loop other jobs run between
 * segments, and progress is the count of numbers sieved so far.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../task.h"

#define PRIMES_SEGMENT (128 * 1024) /* odd numbers per segment */

enum { PRIMES_N };

static const struct task_arg primes_args[] = {
    [PRIMES_N] = {"n", TASK_ARG_INT, true, 0, 4000000000LL, 0,
                  "count the primes up to and including n"},
};

struct primes_state {
	uint64_t n;
	uint64_t lo; /* next odd number to sieve */
	uint64_t count;
	uint32_t *base; /* odd primes <= sqrt(n) */
	size_t nbase;
	uint64_t *next; /* next odd multiple of each base prime */
	unsigned char *seg;
};

static int
primes_start(struct task_ctx *ctx, const union task_value *argv)
{
	struct primes_state *s = task_state(ctx);
	uint64_t root, i, j;
	unsigned char *small;

	s->n = (uint64_t)argv[PRIMES_N].i;
	s->count = s->n >= 2 ? 1 : 0; /* 2 is the only even prime */
	s->lo = 3;
	root = (uint64_t)sqrt((double)s->n);
	while (root * root > s->n)
		root--;
	while ((root + 1) * (root + 1) <= s->n)
		root++;
	/* simple sieve for the base primes */
	if ((small = calloc(root + 1, 1)) == NULL)
		goto nomem;
	s->base = malloc(sizeof(*s->base) * (root / 2 + 1));
	s->next = malloc(sizeof(*s->next) * (root / 2 + 1));
	s->seg = malloc(PRIMES_SEGMENT);
	if (s->base == NULL || s->next == NULL || s->seg == NULL) {
		free(small);
		goto nomem;
	}
	for (i = 3; i <= root; i += 2) {
		if (small[i])
			continue;
		s->base[s->nbase] = (uint32_t)i;
		s->next[s->nbase] = i * i;
		s->nbase++;
		for (j = i * i; j <= root; j += 2 * i)
			small[j] = 1;
	}
	free(small);
	return 0;
nomem:
	task_fail(ctx, "primes: out of memory");
	return -1;
}

/*
 * The segment, the base primes and the count are worked on through
 * locals: a store through the segment's unsigned char pointer may alias
 * anything in the state, so through s-> the compiler would reload the
 * pointer after every mark.
 */
static enum task_step
primes_step(struct task_ctx *ctx)
{
	struct primes_state *s = task_state(ctx);
	unsigned char *seg = s->seg;
	const uint32_t *base = s->base;
	uint64_t *next = s->next;
	uint64_t lo = s->lo, hi, k, m, span, marked = 0;
	size_t i, nbase = s->nbase;

	if (task_cancelled(ctx))
		return TASK_FAILED;
	if (lo > s->n) {
		msgpack_pack_uint64(task_result(ctx), s->count);
		return TASK_DONE;
	}
	/* odd numbers lo, lo+2, ... up to hi (inclusive) */
	span = PRIMES_SEGMENT;
	hi = lo + 2 * (span - 1);
	if (hi > s->n)
		hi = s->n % 2 ? s->n : s->n - 1;
	span = (hi - lo) / 2 + 1;
	memset(seg, 0, span);
	for (i = 0; i < nbase; i++) {
		uint64_t p2 = 2 * (uint64_t)base[i];

		for (m = next[i]; m <= hi; m += p2)
			seg[(m - lo) / 2] = 1;
		next[i] = m;
	}
	/* marks are 0 or 1: a multiply sums the 8 bytes of a word */
	for (k = 0; k + 8 <= span; k += 8) {
		uint64_t w;

		memcpy(&w, seg + k, sizeof(w));
		marked += (w * 0x0101010101010101ULL) >> 56;
	}
	for (; k < span; k++)
		marked += seg[k];
	s->count += span - marked;
	s->lo = hi + 2;
	task_progress(ctx, s->lo > s->n ? s->n : hi, s->n, NULL);
	return TASK_YIELD;
}

static void
primes_stop(struct task_ctx *ctx)
{
	struct primes_state *s = task_state(ctx);

	free(s->base);
	free(s->next);
	free(s->seg);
}

const struct task task_primes = {
    .abi = CONCD_TASK_ABI,
    .name = "primes",
    .summary = "count the primes up to n (CPU work)",
    .traits = TASK_CPU,
    .executors = TASK_ON_ALL,
    .state_size = sizeof(struct primes_state),
    .args = primes_args,
    .nargs = sizeof(primes_args) / sizeof(primes_args[0]),
    .start = primes_start,
    .step = primes_step,
    .stop = primes_stop,
};
