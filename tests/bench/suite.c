/*
 * suite.c -- the suites of concd-bench beyond noop (bench.c):
 *
 *   fresh  warm workers against --fresh ones, one job at a time;
 *   cpu    primes on 1 and 2 workers of each pool, a concd for each;
 *   sleep  many sleeps on the loop: wall time and daemon memory per job;
 *   exec   many `exec true` on the loop against xargs -P2;
 *   deep   a million jobs queued on one thread: submit rate, lookups,
 *          ps and the drain;
 *   groups a million jobs queued in 100 paused groups: submit rate, and
 *          the drain once they are resumed;
 *   idle   start-up to READY=1 and the memory of a daemon doing nothing;
 *   store  a restart with a million jobs queued in the store, the store's
 *          bytes per job, and an idle daemon with a store and without;
 *   chain  a chain of dependent no-op jobs, each after the one before it,
 *          against as many without dependencies;
 *   remote no-ops on warm workers on Slurm's nodes, pipelined and one at a
 *          time, against a round trip through srun's relay.
 *
 * Each run of a suite measures its baseline too (the warm worker, one
 * worker, one sleep, xargs, a ping), and a ratio printed is the median
 * of the runs' ratios, so that a run compares only with itself.  Every
 * reply goes through bench.c's batches and single requests, which check
 * it; the figures here are only timed.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

extern char **environ;

/* A value per run, for bench_stats. */
static double *
suite_values(size_t runs)
{
	double *v = calloc(runs, sizeof(*v));

	if (v == NULL)
		bench_die(2, "out of memory");
	return v;
}

static struct bench_row
suite_row(const double *v, size_t n, double scale)
{
	struct bench_row row = bench_stats(v, n);

	row.med *= scale;
	row.lo *= scale;
	row.hi *= scale;
	return row;
}

/*
 * The row of one double field, at offset off, of n run records of size
 * bytes each (a suite's struct ..._run array), times scale.
 */
static struct bench_row
suite_field(const void *runs, size_t n, size_t size, size_t off, double scale)
{
	double *v = suite_values(n);
	struct bench_row row;
	size_t i;

	for (i = 0; i < n; i++)
		memcpy(&v[i], (const char *)runs + i * size + off,
		       sizeof(v[i]));
	row = suite_row(v, n, scale);
	free(v);
	return row;
}

static void
suite_conn(struct bench_conn *c, const char *path, const struct bench_opts *o)
{
	bench_conn_open(c, path, o);
	c->suite = true;
}

/* ---- fresh: warm workers against a worker made for the job ---- */

#define FRESH_TABLE_N  1000000
#define FRESH_TABLE_PI 78498 /* pi(1,000,000) */
#define FRESH_WARM_UP  16    /* jobs at once: every worker builds its table */

/* Each fresh row follows the warm row it is compared with. */
static const struct fresh_kind {
	const char *name;
	const char *task;
	enum proto_exec exec;
	bool fresh;
	double target; /* fresh/warm at least; 0: no target */
} fresh_kinds[] = {
    {"table thread warm", "table", PX_THREAD, false, 0},
    {"table thread fresh", "table", PX_THREAD, true, 50},
    {"table process warm", "table", PX_PROCESS, false, 0},
    {"table process fresh", "table", PX_PROCESS, true, 50},
    {"noop thread warm", "noop", PX_THREAD, false, 0},
    {"noop thread fresh", "noop", PX_THREAD, true, 0},
    {"noop process warm", "noop", PX_PROCESS, false, 0},
    {"noop process fresh", "noop", PX_PROCESS, true, 2},
};
#define FRESH_KINDS (sizeof(fresh_kinds) / sizeof(fresh_kinds[0]))

static void
fresh_batch(struct bench_batch *b, const struct fresh_kind *k, size_t n)
{
	bench_batch_init(b, n, 1);
	b->exec = k->exec;
	b->fresh = k->fresh;
	if (strcmp(k->task, "table") == 0) {
		b->check = CHECK_KEY;
		b->key = "primes";
		b->want = FRESH_TABLE_PI;
		b->info_key = "init_ms";
	} else
		b->check = CHECK_EMPTY;
}

/*
 * Warm the kind up: FRESH_WARM_UP jobs at once (one if fresh).  NULL, or
 * why concd refused them (e.g. no worker processes).
 */
static const char *
fresh_warm_up(struct bench_conn *c, const struct fresh_kind *k,
              const struct bench_tmpl *t, char *why, size_t len)
{
	struct bench_batch b;
	size_t n = k->fresh ? 1 : FRESH_WARM_UP;

	fresh_batch(&b, k, n);
	b.refusal_ok = true;
	bench_batch_attach(c, &b);
	bench_batch_submits(c, &b, t, n);
	bench_send(c);
	while (bench_batch_settled(&b) < n)
		bench_read_replies(c);
	snprintf(why, len, "%s", b.refusal);
	bench_batch_detach(c, &b);
	bench_fence(c);
	return why[0] != '\0' ? why : NULL;
}

/*
 * Microseconds from submit to end of each of n jobs of b, one at a time,
 * into us; b is attached, and detached after.  Their median.
 */
static double
suite_one_by_one(struct bench_conn *c, struct bench_batch *b,
                 const struct bench_tmpl *t, size_t n, double *us)
{
	double t0, lo, hi;
	size_t i;

	bench_batch_attach(c, b);
	for (i = 0; i < n; i++) {
		t0 = bench_now();
		bench_batch_submits(c, b, t, 1);
		bench_send(c);
		while (b->ended < i + 1)
			bench_read_replies(c);
		us[i] = (b->t_last_end - t0) * 1e6;
	}
	bench_batch_detach(c, b);
	bench_fence(c);
	return bench_median(us, n, &lo, &hi);
}

/* Median microseconds from submit to end, n jobs one at a time. */
static double
fresh_sample(struct bench_conn *c, const struct fresh_kind *k,
             const struct bench_tmpl *t, size_t n, double *us, double *init_ms)
{
	struct bench_batch b;
	double med;

	fresh_batch(&b, k, n);
	med = suite_one_by_one(c, &b, t, n, us);
	*init_ms = b.info_n > 0 ? b.info_sum / (double)b.info_n : -1;
	return med;
}

void
suite_fresh(const struct bench_opts *o, const char *path)
{
	struct bench_tmpl t[FRESH_KINDS];
	struct pbuf args = {0};
	struct bench_conn c;
	struct bench_row row;
	double *v[FRESH_KINDS], *ratio[FRESH_KINDS], *init[FRESH_KINDS];
	double *us;
	char why[FRESH_KINDS][320], what[96], target[32];
	const char *skip[FRESH_KINDS] = {0};
	size_t k, r, n;

	memset(t, 0, sizeof(t));
	suite_conn(&c, path, o);
	bench_args_uint(&args, "n", FRESH_TABLE_N);
	n = o->warm_jobs > o->fresh_jobs ? o->warm_jobs : o->fresh_jobs;
	if ((us = calloc(n, sizeof(*us))) == NULL)
		bench_die(2, "out of memory");
	printf("\nfresh: concd pid %d; one job at a time, submit to end: %zu "
	       "warm and %zu fresh\njobs per kind and run; table n=%d has a "
	       "costly per-worker init\n",
	       (int)c.daemon, o->warm_jobs, o->fresh_jobs, FRESH_TABLE_N);
	for (k = 0; k < FRESH_KINDS; k++) {
		const struct fresh_kind *fk = &fresh_kinds[k];
		const struct bench_spec s = {
		    .task = fk->task,
		    .args = strcmp(fk->task, "table") == 0 ? &args : NULL,
		    .exec = fk->exec,
		    .fresh = fk->fresh,
		    .watch = true,
		};

		bench_tmpl_make(&t[k], &s);
		v[k] = suite_values(o->runs);
		ratio[k] = suite_values(o->runs);
		init[k] = suite_values(o->runs);
		skip[k] = fresh_warm_up(&c, fk, &t[k], why[k], sizeof(why[k]));
	}
	for (r = 0; r < o->runs; r++) {
		for (k = 0; k < FRESH_KINDS; k++) {
			const struct fresh_kind *fk = &fresh_kinds[k];

			if (skip[k] != NULL || (fk->fresh && skip[k - 1]))
				continue;
			v[k][r] = fresh_sample(&c, fk, &t[k],
			                       fk->fresh ? o->fresh_jobs
			                                 : o->warm_jobs,
			                       us, &init[k][r]);
			if (fk->fresh)
				ratio[k][r] = v[k][r] / v[k - 1][r];
		}
		if (!o->verbose)
			continue;
		printf("run %zu:", r + 1);
		for (k = 0; k < FRESH_KINDS; k++)
			if (skip[k] == NULL)
				printf(" %s %.1f us;", fresh_kinds[k].name,
				       v[k][r]);
		printf("\n");
	}

	bench_head("");
	for (k = 0; k < FRESH_KINDS; k++) {
		const struct fresh_kind *fk = &fresh_kinds[k];

		if (skip[k] != NULL || (fk->fresh && skip[k - 1])) {
			printf("%-20s skipped: %s\n", fk->name,
			       skip[k] != NULL ? skip[k] : skip[k - 1]);
			continue;
		}
		row = bench_stats(v[k], o->runs);
		if (!fk->fresh) {
			bench_line(fk->name, row, 1, "us (the baseline)", NULL,
			           -1);
			continue;
		}
		{
			struct bench_row q = bench_stats(ratio[k], o->runs);
			struct bench_row in = bench_stats(init[k], o->runs);

			if (in.med >= 0)
				snprintf(what, sizeof(what),
				         "us (%.1fx warm; init %.0f ms)", q.med,
				         in.med);
			else
				snprintf(what, sizeof(what), "us (%.2fx warm)",
				         q.med);
			if (fk->target > 0)
				snprintf(target, sizeof(target), ">= %gx warm",
				         fk->target);
			bench_line(fk->name, row, 1, what,
			           fk->target > 0 ? target : "(no target)",
			           fk->target > 0 ? q.med >= fk->target : -1);
		}
	}
	for (k = 0; k < FRESH_KINDS; k++) {
		bench_tmpl_free(&t[k]);
		free(v[k]);
		free(ratio[k]);
		free(init[k]);
	}
	free(us);
	pbuf_free(&args);
	bench_conn_close(&c);
}

/* ---- cpu: primes with 1 and 2 workers ---- */

#define CPU_JOBS 8

static const struct cpu_config {
	const char *name;
	const char *threads, *processes;
	enum proto_exec exec;
	int workers;
} cpu_configs[] = {
    {"process, 1 worker", "1", "1", PX_PROCESS, 1},
    {"process, 2 workers", "1", "2", PX_PROCESS, 2},
    {"thread, 1 worker", "1", "0", PX_THREAD, 1},
    {"thread, 2 workers", "2", "0", PX_THREAD, 2},
};
#define CPU_CONFIGS (sizeof(cpu_configs) / sizeof(cpu_configs[0]))

/* pi(n) for the n one is likely to pick */
static const struct {
	uint64_t n, pi;
} cpu_known[] = {
    {100000, 9592},         {200000, 17984},       {1000000, 78498},
    {2000000, 148933},      {10000000, 664579},    {100000000, 5761455},
    {200000000, 11078937},  {300000000, 16252325}, {500000000, 26355867},
    {1000000000, 50847534},
};

/*
 * The control: the primes task's sieve (odd numbers, segments of 128 KiB)
 * in plain processes, to tell concd's scaling from the machine's.
 */
static uint64_t
cpu_sieve(uint64_t n)
{
	const uint64_t seglen = 128 * 1024;
	uint64_t root = 1, count = n >= 2, lo, hi, span, m, k, i, nbase = 0;
	unsigned char *small, *seg;
	uint64_t *base, *next;

	while ((root + 1) * (root + 1) <= n)
		root++;
	small = calloc(root + 1, 1);
	base = malloc(sizeof(*base) * (root / 2 + 1));
	next = malloc(sizeof(*next) * (root / 2 + 1));
	seg = malloc(seglen);
	if (small == NULL || base == NULL || next == NULL || seg == NULL)
		_exit(2);
	for (i = 3; i <= root; i += 2) {
		if (small[i])
			continue;
		base[nbase] = i;
		next[nbase++] = i * i;
		for (k = i * i; k <= root; k += 2 * i)
			small[k] = 1;
	}
	for (lo = 3; lo <= n; lo = hi + 2) {
		hi = lo + 2 * (seglen - 1);
		if (hi > n)
			hi = n % 2 ? n : n - 1;
		span = (hi - lo) / 2 + 1;
		memset(seg, 0, span);
		for (i = 0; i < nbase; i++) {
			for (m = next[i]; m <= hi; m += 2 * base[i])
				seg[(m - lo) / 2] = 1;
			next[i] = m;
		}
		for (k = 0; k < span; k++)
			count += !seg[k];
	}
	free(small);
	free(base);
	free(next);
	free(seg);
	return count;
}

/* Seconds for jobs sieves of n shared by procs plain processes. */
static double
cpu_control(uint64_t n, size_t jobs, size_t procs, uint64_t pi)
{
	double t0 = bench_now();
	pid_t pid[2];
	size_t p, k;
	int status, bad = 0;

	fflush(stdout);
	for (p = 0; p < procs; p++) {
		if ((pid[p] = fork()) < 0)
			bench_die(2, "fork: %s", strerror(errno));
		if (pid[p] == 0) {
			for (k = p; k < jobs; k += procs)
				if (cpu_sieve(n) != pi)
					_exit(1);
			_exit(0);
		}
	}
	for (p = 0; p < procs; p++)
		if (waitpid(pid[p], &status, 0) != pid[p] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad = 1;
	if (bad)
		bench_die(2,
		          "the control sieve did not count pi(%" PRIu64
		          ") = %" PRIu64,
		          n, pi);
	return bench_now() - t0;
}

/*
 * Seconds from the gather to its last end; *cores: concd's cpu / wall,
 * *client: the benchmark's.
 */
static double
cpu_gather(struct bench_conn *c, const struct bench_spec *s, uint64_t n,
           size_t jobs, uint64_t *pi, bool *have_pi, double *cores,
           double *client)
{
	struct bench_batch b;
	double t0, cpu0, cpu1, wall, self0;
	size_t i;

	bench_batch_init(&b, jobs, jobs);
	b.exec = s->exec;
	b.check = *have_pi ? CHECK_UINT : CHECK_SAME;
	b.want = *pi;
	for (i = 0; i < sizeof(cpu_known) / sizeof(cpu_known[0]); i++)
		if (cpu_known[i].n == n) {
			b.check = CHECK_UINT;
			b.want = cpu_known[i].pi;
		}
	bench_batch_attach(c, &b);
	bench_batch_gathers(c, &b, s);
	cpu0 = bench_proc_cpu(c->daemon);
	self0 = bench_self_cpu();
	t0 = bench_now();
	bench_send(c);
	while (b.ended < jobs)
		bench_read_replies(c);
	wall = b.t_last_end - t0;
	*client = (bench_self_cpu() - self0) / wall;
	cpu1 = bench_proc_cpu(c->daemon);
	*cores =
	    cpu0 >= 0 && cpu1 >= 0 && wall >= 0.2 ? (cpu1 - cpu0) / wall : -1;
	*pi = b.want;
	*have_pi = true;
	bench_batch_detach(c, &b);
	bench_fence(c);
	return wall;
}

void
suite_cpu(const struct bench_opts *o, const char *unused)
{
	struct bench_daemon *d[CPU_CONFIGS];
	struct bench_conn c[CPU_CONFIGS];
	struct pbuf args = {0}, small = {0};
	struct bench_spec s[CPU_CONFIGS];
	double *wall[CPU_CONFIGS], *cores[CPU_CONFIGS], *speedup[CPU_CONFIGS];
	double *plain[2], *plain_up, *rel[CPU_CONFIGS], *cl[CPU_CONFIGS];
	struct bench_row clr;
	struct bench_row row, q, cpu;
	char what[96], busy[32], b[32];
	uint64_t pi = 0, spi = 0;
	bool have_pi = false, have_spi = false;
	size_t k, r;

	bench_args_uint(&args, "n", o->primes);
	bench_args_uint(&small, "n", o->primes < 1000000 ? o->primes : 1000000);
	printf("\ncpu: %d x primes n=%s in one gather, first submit to last "
	       "end; a concd\nper configuration, -t T -p P\n",
	       CPU_JOBS, bench_thousands((double)o->primes, b, sizeof(b)));
	for (k = 0; k < CPU_CONFIGS; k++) {
		const char *flags[] = {"-t", cpu_configs[k].threads, "-p",
		                       cpu_configs[k].processes, NULL};
		double x;

		d[k] = bench_daemon_start(o->spawn, flags);
		suite_conn(&c[k], d[k]->sock, o);
		s[k] = (struct bench_spec){.task = "primes",
		                           .args = &small,
		                           .exec = cpu_configs[k].exec};
		/* warm up: the workers page in, the loop is set */
		cpu_gather(
		    &c[k], &s[k], o->primes < 1000000 ? o->primes : 1000000,
		    (size_t)cpu_configs[k].workers, &spi, &have_spi, &x, &x);
		s[k].args = &args;
		wall[k] = suite_values(o->runs);
		cores[k] = suite_values(o->runs);
		speedup[k] = suite_values(o->runs);
		rel[k] = suite_values(o->runs);
		cl[k] = suite_values(o->runs);
	}
	plain[0] = suite_values(o->runs);
	plain[1] = suite_values(o->runs);
	plain_up = suite_values(o->runs);
	for (r = 0; r < o->runs; r++) {
		for (k = 0; k < CPU_CONFIGS; k++)
			wall[k][r] =
			    cpu_gather(&c[k], &s[k], o->primes, CPU_JOBS, &pi,
			               &have_pi, &cores[k][r], &cl[k][r]);
		plain[0][r] = cpu_control(o->primes, CPU_JOBS, 1, pi);
		plain[1][r] = cpu_control(o->primes, CPU_JOBS, 2, pi);
		plain_up[r] = plain[0][r] / plain[1][r];
		for (k = 0; k < CPU_CONFIGS; k++) {
			if (cpu_configs[k].workers != 2)
				continue;
			speedup[k][r] = wall[k - 1][r] / wall[k][r];
			rel[k][r] = speedup[k][r] / plain_up[r];
		}
		if (!o->verbose)
			continue;
		printf("run %zu:", r + 1);
		for (k = 0; k < CPU_CONFIGS; k++)
			printf(" %s %.3f s;", cpu_configs[k].name, wall[k][r]);
		printf(" plain %.3f and %.3f s\n", plain[0][r], plain[1][r]);
	}

	bench_head("");
	for (k = 0; k < CPU_CONFIGS; k++) {
		row = bench_stats(wall[k], o->runs);
		cpu = bench_stats(cores[k], o->runs);
		clr = bench_stats(cl[k], o->runs);
		if (cpu.med >= 0)
			snprintf(busy, sizeof(busy), "cores %.2f + %.2f",
			         cpu.med, clr.med);
		else
			snprintf(busy, sizeof(busy), "too short for cpu");
		if (cpu_configs[k].workers == 1) {
			snprintf(what, sizeof(what), "s (the baseline; %s)",
			         busy);
			bench_line(cpu_configs[k].name, row, 3, what, NULL, -1);
			continue;
		}
		q = bench_stats(speedup[k], o->runs);
		snprintf(what, sizeof(what), "s (%.2fx 1 worker; %s)", q.med,
		         busy);
		bench_line(cpu_configs[k].name, row, 3, what, ">= 1.9x",
		           q.med >= 1.9);
	}
	bench_line("plain, 1 process", bench_stats(plain[0], o->runs), 3,
	           "s (control: the sieve, no concd)", NULL, -1);
	snprintf(what, sizeof(what), "s (%.2fx: the machine's own)",
	         bench_stats(plain_up, o->runs).med);
	bench_line("plain, 2 processes", bench_stats(plain[1], o->runs), 3,
	           what, NULL, -1);
	printf(
	    "cores: concd's (loop, workers) + the benchmark's, busy over "
	    "the run\nspeed-up against the machine's: process %.2f, thread "
	    "%.2f; pi(%" PRIu64 ") = %" PRIu64 "\nin every end%s\n",
	    bench_stats(rel[1], o->runs).med, bench_stats(rel[3], o->runs).med,
	    o->primes, pi,
	    bench_stats(wall[0], o->runs).med >= 1.0
	        ? ""
	        : "; a run takes < 1 s with one worker: use a larger --primes");
	for (k = 0; k < CPU_CONFIGS; k++) {
		bench_conn_close(&c[k]);
		bench_daemon_stop(d[k]);
		free(wall[k]);
		free(cores[k]);
		free(speedup[k]);
		free(rel[k]);
		free(cl[k]);
	}
	free(plain[0]);
	free(plain[1]);
	free(plain_up);
	pbuf_free(&args);
	pbuf_free(&small);
}

/* ---- sleep: many sleeps on the loop ---- */

struct sleep_run {
	double base, wall;       /* s: one sleep, all of them */
	double rss0, peak, hwm;  /* kB */
	double per_job, per_hwm; /* bytes */
};

/* One run, on a concd of its own: its memory starts from nothing. */
static void
sleep_run(const struct bench_opts *o, struct sleep_run *u)
{
	static const char *const flags[] = {
	    "-t", "1", "-p", "0", "--max-finished", "0", NULL};
	struct bench_daemon *d = bench_daemon_start(o->spawn, flags);
	struct bench_conn c;
	struct bench_batch one, all;
	struct bench_tmpl t = {.id_at = 0};
	struct pbuf args = {0};
	struct bench_spec s = {
	    .task = "sleep", .args = &args, .exec = PX_LOOP, .watch = true};
	double t0, kb;
	long v;

	suite_conn(&c, d->sock, o);
	bench_args_uint(&args, "ms", o->sleep_ms);
	bench_tmpl_make(&t, &s);

	/* the baseline: one sleep */
	bench_batch_init(&one, 1, 1);
	one.exec = PX_LOOP;
	one.check = CHECK_UINT;
	one.want = o->sleep_ms;
	bench_batch_attach(&c, &one);
	bench_batch_submits(&c, &one, &t, 1);
	t0 = bench_now();
	bench_send(&c);
	while (one.ended < 1)
		bench_read_replies(&c);
	u->base = one.t_last_end - t0;
	bench_batch_detach(&c, &one);
	bench_fence(&c);

	/* all of them, in gathers of 10,000 */
	u->rss0 = (double)bench_vm_kb(d->pid, "VmRSS:");
	bench_batch_init(&all, o->sleepers, BENCH_GATHER_MAX);
	all.exec = PX_LOOP;
	all.check = CHECK_UINT;
	all.want = o->sleep_ms;
	bench_batch_attach(&c, &all);
	bench_batch_gathers(&c, &all, &s);
	u->peak = -1;
	t0 = bench_now();
	bench_send(&c);
	while (all.ended < o->sleepers) {
		/* the peak: sampled until the first job ends */
		if (all.ended == 0 &&
		    (kb = (double)bench_vm_kb(d->pid, "VmRSS:")) > u->peak)
			u->peak = kb;
		bench_poll_read(&c, 10);
	}
	u->wall = all.t_last_end - t0;
	u->hwm = (v = bench_vm_kb(d->pid, "VmHWM:")) >= 0 ? (double)v : -1;
	u->per_job = (u->peak - u->rss0) * 1024 / (double)o->sleepers;
	u->per_hwm = (u->hwm - u->rss0) * 1024 / (double)o->sleepers;
	bench_batch_detach(&c, &all);
	bench_fence(&c);
	bench_conn_close(&c);
	bench_tmpl_free(&t);
	pbuf_free(&args);
	bench_daemon_stop(d);
}

/* a field of struct sleep_run, for suite_field */
#define SLEEP_FIELD(f) sizeof(struct sleep_run), offsetof(struct sleep_run, f)

void
suite_sleep(const struct bench_opts *o, const char *unused)
{
	struct sleep_run *u = calloc(o->runs, sizeof(*u));
	struct bench_row base, wall, per, hwm, rss0, peak;
	double ratio[o->runs], target;
	char what[96], tgt[32], name[64], b[32];
	size_t r;

	if (u == NULL)
		bench_die(2, "out of memory");
	bench_thousands((double)o->sleepers, b, sizeof(b));
	printf("\nsleep: %s x sleep ms=%" PRIu64 " on the loop in gathers of "
	       "10,000, first submit to\nlast end; concd -t 1 -p 0 "
	       "--max-finished 0, a new one per run\n",
	       b, o->sleep_ms);
	for (r = 0; r < o->runs; r++) {
		sleep_run(o, &u[r]);
		ratio[r] = u[r].wall / u[r].base;
		if (o->verbose)
			printf("run %zu: one %.3f s, all %.3f s; VmRSS %.0f -> "
			       "%.0f kB, VmHWM %.0f kB: %.0f bytes/job\n",
			       r + 1, u[r].base, u[r].wall, u[r].rss0,
			       u[r].peak, u[r].hwm, u[r].per_job);
	}
	/* 1.3 s for 100,000 x 1 s: the sleep and 0.3 s per 100,000 */
	target =
	    (double)o->sleep_ms / 1000 + 0.3 * (double)o->sleepers / 100000;
	base = suite_field(u, o->runs, SLEEP_FIELD(base), 1);
	wall = suite_field(u, o->runs, SLEEP_FIELD(wall), 1);
	per = suite_field(u, o->runs, SLEEP_FIELD(per_job), 1);
	hwm = suite_field(u, o->runs, SLEEP_FIELD(per_hwm), 1);
	rss0 = suite_field(u, o->runs, SLEEP_FIELD(rss0), 1.0 / 1024);
	peak = suite_field(u, o->runs, SLEEP_FIELD(peak), 1.0 / 1024);

	bench_head("");
	bench_line("one sleep", base, 3, "s (the baseline)", NULL, -1);
	snprintf(name, sizeof(name), "%s sleeps", b);
	snprintf(what, sizeof(what), "s (%.2fx one sleep)",
	         bench_stats(ratio, o->runs).med);
	snprintf(tgt, sizeof(tgt), "<= %.3g s", target);
	bench_line(name, wall, 3, what, tgt, wall.med <= target);
	snprintf(what, sizeof(what), "bytes (VmRSS %.1f -> %.1f MiB)", rss0.med,
	         peak.med);
	bench_line("memory per job", per, 0, what, "<= 512 bytes",
	           per.med <= 512);
	bench_line("by VmHWM", hwm, 0, "bytes per job", NULL, -1);
	free(u);
}

/* ---- exec: `true` many times on the loop, against xargs ---- */

/* Seconds of `seq n | xargs -P2 -n1 true`; -1 if it failed. */
static double
exec_xargs(size_t n)
{
	char cmd[128];
	char *argv[] = {"sh", "-c", cmd, NULL};
	double t0 = bench_now();
	pid_t pid;
	int status;

	snprintf(cmd, sizeof(cmd), "seq %zu | xargs -P2 -n1 true", n);
	if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0)
		return -1;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return -1;
	return bench_now() - t0;
}

/*
 * Seconds for this small process to posix_spawn n `true`s one after
 * another, then reap them: what one spawner costs on this machine.
 */
static double
exec_floor(size_t n)
{
	char *argv[] = {"true", NULL};
	pid_t *pid = calloc(n, sizeof(*pid));
	double t0 = bench_now();
	size_t i, made = 0;
	int rc = 0;

	if (pid == NULL)
		return -1;
	for (i = 0; i < n && rc == 0; i++)
		if ((rc = posix_spawn(&pid[i], "/bin/true", NULL, NULL, argv,
		                      environ)) == 0)
			made++;
	for (i = 0; i < made; i++)
		while (waitpid(pid[i], NULL, 0) < 0 && errno == EINTR)
			;
	free(pid);
	return rc == 0 ? bench_now() - t0 : -1;
}

void
suite_exec(const struct bench_opts *o, const char *path)
{
	static const char *const argv[] = {"true"};
	struct bench_conn c;
	struct bench_batch b;
	struct pbuf args = {0};
	struct bench_spec s = {.task = "exec", .args = &args, .exec = PX_LOOP};
	double *wall = suite_values(o->runs), *base = suite_values(o->runs);
	double *ratio = suite_values(o->runs), *floor = suite_values(o->runs);
	double *over = suite_values(o->runs), t0, target;
	struct bench_row row;
	char what[96], tgt[32], name[64], n[32];
	size_t r;

	suite_conn(&c, path, o);
	bench_args_list(&args, "argv", argv, 1);
	bench_thousands((double)o->execs, n, sizeof(n));
	printf("\nexec: concd pid %d; %s x exec argv=[\"true\"] in one "
	       "gather on the loop, first\nsubmit to last end, against seq "
	       "%zu | xargs -P2 -n1 true, and against posix_spawn\nof as "
	       "many from one small process (one spawner's floor)\n",
	       (int)c.daemon, n, o->execs);
	for (r = 0; r < o->runs; r++) {
		if ((base[r] = exec_xargs(o->execs)) < 0)
			bench_die(2, "seq | xargs -P2 -n1 true failed");
		if ((floor[r] = exec_floor(o->execs)) < 0)
			bench_die(2, "posix_spawn of true failed");
		bench_batch_init(&b, o->execs, BENCH_GATHER_MAX);
		b.exec = PX_LOOP;
		b.refusal_ok = true;
		bench_batch_attach(&c, &b);
		bench_batch_gathers(&c, &b, &s);
		t0 = bench_now();
		bench_send(&c);
		while (bench_batch_settled(&b) < o->execs)
			bench_read_replies(&c);
		if (b.refused > 0) {
			printf("exec: skipped: concd refused the gather: %s\n",
			       b.refusal);
			bench_batch_detach(&c, &b);
			goto out;
		}
		wall[r] = b.t_last_end - t0;
		ratio[r] = wall[r] / base[r];
		over[r] = wall[r] / floor[r];
		bench_batch_detach(&c, &b);
		bench_fence(&c);
		if (o->verbose)
			printf("run %zu: xargs %.3f s, posix_spawn %.3f s, "
			       "concd %.3f s\n",
			       r + 1, base[r], floor[r], wall[r]);
	}
	target = 0.35 * (double)o->execs / 1000;
	bench_head("");
	bench_line("xargs -P2", bench_stats(base, o->runs), 3,
	           "s (the baseline)", NULL, -1);
	bench_line("posix_spawn", bench_stats(floor, o->runs), 3,
	           "s (one spawner)", NULL, -1);
	row = bench_stats(wall, o->runs);
	snprintf(name, sizeof(name), "%s execs", n);
	snprintf(what, sizeof(what),
	         "s (%.2fx xargs, %.2fx posix_spawn; %.0f us/job)",
	         bench_stats(ratio, o->runs).med,
	         bench_stats(over, o->runs).med,
	         row.med * 1e6 / (double)o->execs);
	snprintf(tgt, sizeof(tgt), "<= %.3g s", target);
	bench_line(name, row, 3, what, tgt, row.med <= target);
out:
	free(wall);
	free(base);
	free(ratio);
	free(floor);
	free(over);
	pbuf_free(&args);
	bench_conn_close(&c);
}

/* ---- deep: a million jobs queued behind one sleep ---- */

#define DEEP_SLEEP_MS 3600000
#define DEEP_LOOKUPS  50 /* status round trips per job and run */
#define DEEP_PS       5  /* ps round trips per run */
#define DEEP_PS_LIMIT 20

struct deep_run {
	double ping, first, last;     /* s: median round trips */
	double rate_first, rate_last; /* jobs/s */
	double ps;                    /* s: median */
	double drain;                 /* s */
	double per_job;               /* bytes of VmRSS per queued job */
};

static double
deep_status(struct bench_conn *c, uint64_t job, char *state, size_t len)
{
	struct bench_rq q;
	struct proto_enc e;
	double t;

	bench_rq_begin(c, &q, PROTO_JOB);
	proto_enc_begin(&e, &c->wbuf, PROTO_STATUS, q.id);
	proto_enc_u64(&e, PF_JOB, job);
	proto_enc_end(&e);
	t = bench_rq_wait(c, &q);
	if (q.job != job)
		bench_wrong(NULL,
		            "status of job %" PRIu64 " answered for %" PRIu64,
		            job, q.job);
	snprintf(state, len, "%s", q.state);
	return t;
}

/* ps as concctl ps -n limit sends it; the reply stays in q. */
static double
deep_ps(struct bench_conn *c, struct bench_rq *q, size_t limit)
{
	struct proto_enc e;

	bench_rq_begin(c, q, PROTO_JOBS);
	proto_enc_begin(&e, &c->wbuf, PROTO_PS, q->id);
	proto_enc_bool(&e, PF_ALL, false);
	proto_enc_u64(&e, PF_LIMIT, limit);
	proto_enc_end(&e);
	return bench_rq_wait(c, q);
}

static void
deep_run(const struct bench_opts *o, struct deep_run *u)
{
	char limit[32], state[16];
	const char *flags[] = {
	    "-t", "1", "-p", "0", "--queue-limit", limit, "--max-finished",
	    "0",  NULL};
	const size_t n = o->deep;
	const size_t k = n / 10 < 100000 ? (n / 10 > 0 ? n / 10 : 1) : 100000;
	struct bench_daemon *d;
	struct bench_conn c;
	struct bench_batch sleeper, jobs;
	struct bench_tmpl ts = {.id_at = 0}, tn = {.id_at = 0};
	struct pbuf args = {0};
	struct bench_spec ss = {
	    .task = "sleep", .args = &args, .exec = PX_THREAD, .watch = true};
	struct bench_spec sn = {.task = "noop", .exec = PX_THREAD};
	struct bench_rq watch, cancel, ps;
	struct proto_enc e;
	double t0, v[DEEP_LOOKUPS], w[DEEP_LOOKUPS], x[DEEP_LOOKUPS];
	double lo, hi;
	long rss0, rss1;
	size_t i, room, m;

	snprintf(limit, sizeof(limit), "%zu",
	         n * 2 > 2000000 ? n * 2 : 2000000);
	d = bench_daemon_start(o->spawn, flags);
	suite_conn(&c, d->sock, o);
	bench_args_uint(&args, "ms", DEEP_SLEEP_MS);
	bench_tmpl_make(&ts, &ss);
	bench_tmpl_make(&tn, &sn);

	/* the single thread sleeps */
	bench_batch_init(&sleeper, 1, 1);
	sleeper.exec = PX_THREAD;
	sleeper.state = "cancelled";
	bench_batch_attach(&c, &sleeper);
	bench_batch_submits(&c, &sleeper, &ts, 1);
	bench_send(&c);
	while (sleeper.accepted < 1)
		bench_read_replies(&c);
	for (i = 0;; i++) {
		deep_status(&c, sleeper.job[0], state, sizeof(state));
		if (strcmp(state, "running") == 0)
			break;
		if (i == 5000)
			bench_die(1, "the sleep job is %s after 5 s", state);
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}

	/* n jobs behind it, pipelined, not watched */
	rss0 = bench_vm_kb(d->pid, "VmRSS:");
	bench_batch_init(&jobs, n, 1);
	jobs.exec = PX_THREAD;
	jobs.watched = false;
	jobs.marks[0] = k;
	jobs.marks[1] = n - k;
	jobs.marks[2] = n;
	bench_batch_attach(&c, &jobs);
	t0 = bench_now();
	while (jobs.accepted < n) {
		room = o->window - (jobs.sent - jobs.accepted);
		m = n - jobs.sent < room ? n - jobs.sent : room;
		if (m > 0 && (m >= o->batch || jobs.sent + m == n)) {
			bench_batch_submits(&c, &jobs, &tn, m);
			bench_send(&c);
		}
		if (jobs.accepted < n)
			bench_read_replies(&c);
	}
	u->rate_first = (double)k / (jobs.mark_t[0] - t0);
	u->rate_last = (double)k / (jobs.mark_t[2] - jobs.mark_t[1]);
	rss1 = bench_vm_kb(d->pid, "VmRSS:");
	u->per_job = rss0 >= 0 && rss1 >= 0
	                 ? (double)(rss1 - rss0) * 1024 / (double)n
	                 : -1;
	bench_fence(&c);

	/* lookups of the first and the last, against a ping */
	for (i = 0; i < DEEP_LOOKUPS; i++) {
		x[i] = bench_ping(&c);
		v[i] = deep_status(&c, jobs.job[0], state, sizeof(state));
		if (strcmp(state, "queued") != 0)
			bench_wrong(NULL, "the first job is %s", state);
		w[i] = deep_status(&c, jobs.job[n - 1], state, sizeof(state));
		if (strcmp(state, "queued") != 0)
			bench_wrong(NULL, "the last job is %s", state);
	}
	u->ping = bench_median(x, DEEP_LOOKUPS, &lo, &hi);
	u->first = bench_median(v, DEEP_LOOKUPS, &lo, &hi);
	u->last = bench_median(w, DEEP_LOOKUPS, &lo, &hi);
	for (i = 0; i < DEEP_PS; i++) {
		v[i] = deep_ps(&c, &ps, DEEP_PS_LIMIT);
		if (ps.rows !=
		        (n + 1 < DEEP_PS_LIMIT ? n + 1 : DEEP_PS_LIMIT) ||
		    ps.total != n + 1 || ps.queued != n || ps.running != 1)
			bench_wrong(
			    NULL,
			    "ps: %zu rows of %" PRIu64 ", %" PRIu64
			    " queued and %" PRIu64 " running, expected %zu "
			    "queued and 1 running",
			    ps.rows, ps.total, ps.queued, ps.running, n);
	}
	u->ps = bench_median(v, DEEP_PS, &lo, &hi);

	/* the drain: watch the last, cancel the sleep */
	bench_rq_begin(&c, &watch, PROTO_END);
	proto_enc_begin(&e, &c.wbuf, PROTO_WATCH, watch.id);
	proto_enc_u64(&e, PF_JOB, jobs.job[n - 1]);
	proto_enc_end(&e);
	bench_rq_begin(&c, &cancel, PROTO_OK);
	proto_enc_begin(&e, &c.wbuf, PROTO_CANCEL, cancel.id);
	proto_enc_u64(&e, PF_JOB, sleeper.job[0]);
	proto_enc_end(&e);
	t0 = bench_now();
	bench_rq_wait(&c, &watch);
	u->drain = watch.t_done - t0;
	while (!cancel.done || sleeper.ended < 1)
		bench_read_replies(&c);
	if (strcmp(watch.state, "succeeded") != 0)
		bench_wrong(NULL, "the last job ended %s", watch.state);
	bench_rq_end(&c, &cancel);
	deep_ps(&c, &ps, 1);
	if (ps.queued != 0 || ps.running != 0)
		bench_wrong(NULL,
		            "ps: %" PRIu64 " queued and %" PRIu64
		            " running after the drain",
		            ps.queued, ps.running);
	bench_fence(&c);

	bench_batch_detach(&c, &sleeper);
	bench_batch_detach(&c, &jobs);
	bench_tmpl_free(&ts);
	bench_tmpl_free(&tn);
	pbuf_free(&args);
	bench_conn_close(&c);
	bench_daemon_stop(d);
}

/* a field of struct deep_run, for suite_field */
#define DEEP_FIELD(f) sizeof(struct deep_run), offsetof(struct deep_run, f)

void
suite_deep(const struct bench_opts *o, const char *unused)
{
	struct deep_run *u = calloc(o->runs, sizeof(*u));
	const size_t n = o->deep;
	const size_t k = n / 10 < 100000 ? (n / 10 > 0 ? n / 10 : 1) : 100000;
	double q_rate[o->runs], q_first[o->runs], q_last[o->runs];
	double q_ps[o->runs], rate[o->runs];
	struct bench_row ping, row, q;
	char what[96], name[64], b[32], kb[32];
	size_t r;

	if (u == NULL)
		bench_die(2, "out of memory");
	bench_thousands((double)n, b, sizeof(b));
	bench_thousands((double)k, kb, sizeof(kb));
	printf("\ndeep: concd -t 1 -p 0 --max-finished 0, a new one per run; "
	       "a sleep holds the\nthread while %s noop -x thread jobs are "
	       "submitted pipelined, unwatched\n",
	       b);
	for (r = 0; r < o->runs; r++) {
		deep_run(o, &u[r]);
		q_rate[r] = u[r].rate_last / u[r].rate_first;
		q_first[r] = u[r].first / u[r].ping;
		q_last[r] = u[r].last / u[r].ping;
		q_ps[r] = u[r].ps / u[r].ping;
		rate[r] = (double)n / u[r].drain;
		if (o->verbose)
			printf("run %zu: submit %.0f then %.0f jobs/s; ping "
			       "%.1f us, status %.1f and %.1f us, ps %.3f ms; "
			       "drain %.3f s; %.0f bytes per queued job\n",
			       r + 1, u[r].rate_first, u[r].rate_last,
			       u[r].ping * 1e6, u[r].first * 1e6,
			       u[r].last * 1e6, u[r].ps * 1e3, u[r].drain,
			       u[r].per_job);
	}
	bench_head("");
	ping = suite_field(u, o->runs, DEEP_FIELD(ping), 1e6);
	bench_line("ping", ping, 1, "us (the baseline)", NULL, -1);

	snprintf(name, sizeof(name), "submit, first %s", kb);
	bench_line(name, suite_field(u, o->runs, DEEP_FIELD(rate_first), 1), -1,
	           "jobs/s (the baseline)", NULL, -1);
	q = bench_stats(q_rate, o->runs);
	snprintf(name, sizeof(name), "submit, last %s", kb);
	snprintf(what, sizeof(what), "jobs/s (%.2fx the first)", q.med);
	bench_line(name, suite_field(u, o->runs, DEEP_FIELD(rate_last), 1), -1,
	           what, ">= 0.8x first", q.med >= 0.8);

	q = bench_stats(q_first, o->runs);
	snprintf(what, sizeof(what), "us (%.2fx ping)", q.med);
	bench_line("status, first job",
	           suite_field(u, o->runs, DEEP_FIELD(first), 1e6), 1, what,
	           "<= 2x ping", q.med <= 2);
	q = bench_stats(q_last, o->runs);
	snprintf(what, sizeof(what), "us (%.2fx ping)", q.med);
	bench_line("status, last job",
	           suite_field(u, o->runs, DEEP_FIELD(last), 1e6), 1, what,
	           "<= 2x ping", q.med <= 2);

	row = suite_field(u, o->runs, DEEP_FIELD(ps), 1e3);
	q = bench_stats(q_ps, o->runs);
	snprintf(what, sizeof(what), "ms (%.0fx ping)", q.med);
	bench_line("ps --limit 20", row, 3, what, "<= 1 ms", row.med <= 1);

	row = bench_stats(rate, o->runs);
	snprintf(what, sizeof(what), "jobs/s (%.3f s)",
	         suite_field(u, o->runs, DEEP_FIELD(drain), 1).med);
	bench_line("drain", row, -1, what, ">= 250,000", row.med >= 250000);
	bench_line("memory per queued",
	           suite_field(u, o->runs, DEEP_FIELD(per_job), 1), 0,
	           "bytes of VmRSS per job", NULL, -1);
	free(u);
}

/* ---- groups: a million jobs queued in 100 groups ---- */

#define GROUPS_N          100
#define GROUPS_PRIORITIES 4
#define GROUPS_RUN        16 /* consecutive jobs of one group and priority */

struct groups_run {
	double rate_first, rate_last; /* jobs/s */
	double drain;                 /* s */
};

/* One group request (op on group g); its ok is checked. */
static void
groups_op(struct bench_conn *c, const char *op, size_t g, bool more)
{
	struct bench_rq q;
	struct proto_enc e;
	char name[16];

	snprintf(name, sizeof(name), "g%03zu", g);
	bench_rq_begin(c, &q, PROTO_OK);
	proto_enc_begin(&e, &c->wbuf, PROTO_GROUP, q.id);
	proto_enc_cstr(&e, PF_OP, op);
	proto_enc_cstr(&e, PF_NAME, name);
	if (more) {
		proto_enc_u64(&e, PF_PARALLEL, strcmp(op, "add") == 0 ? 1 : 0);
		proto_enc_bool(&e, PF_PAUSED, strcmp(op, "add") == 0);
	}
	proto_enc_end(&e);
	bench_rq_wait(c, &q);
}

/* Until group g has no queued or running job. */
static void
groups_wait(struct bench_conn *c, size_t g)
{
	struct bench_rq q;
	struct proto_enc e;
	char name[16];

	snprintf(name, sizeof(name), "g%03zu", g);
	bench_rq_begin(c, &q, PROTO_OK);
	proto_enc_begin(&e, &c->wbuf, PROTO_WAIT, q.id);
	proto_enc_cstr(&e, PF_GROUP, name);
	proto_enc_end(&e);
	bench_rq_wait(c, &q);
}

static void
groups_run(const struct bench_opts *o, struct groups_run *u)
{
	char limit[32], names[GROUPS_N][16];
	const char *flags[] = {
	    "-t", "1", "-p", "0", "--queue-limit", limit, "--max-finished",
	    "0",  NULL};
	const size_t n = o->deep, ntmpl = GROUPS_N * GROUPS_PRIORITIES;
	const size_t k = n / 10 < 100000 ? (n / 10 > 0 ? n / 10 : 1) : 100000;
	struct bench_tmpl *tmpl;
	struct bench_daemon *d;
	struct bench_conn c;
	struct bench_batch jobs;
	struct bench_rq ps;
	double t0;
	size_t i, room, m, step, t = 0, left = 0;

	snprintf(limit, sizeof(limit), "%zu",
	         n * 2 > 2000000 ? n * 2 : 2000000);
	d = bench_daemon_start(o->spawn, flags);
	suite_conn(&c, d->sock, o);
	if ((tmpl = calloc(ntmpl, sizeof(*tmpl))) == NULL)
		bench_die(2, "out of memory");
	for (i = 0; i < ntmpl; i++) {
		struct bench_spec sn = {.task = "noop", .exec = PX_THREAD};

		snprintf(names[i % GROUPS_N], sizeof(names[0]), "g%03zu",
		         i % GROUPS_N);
		sn.group = names[i % GROUPS_N];
		sn.priority = (int64_t)(i / GROUPS_N);
		bench_tmpl_make(&tmpl[i], &sn);
	}
	for (i = 0; i < GROUPS_N; i++)
		groups_op(&c, "add", i, true);

	/*
	 * n jobs, pipelined, unwatched: runs of GROUPS_RUN jobs of one group
	 * and priority, the templates in turn, so every heap holds every
	 * priority in an order of its own.
	 */
	bench_batch_init(&jobs, n, 1);
	jobs.exec = PX_THREAD;
	jobs.watched = false;
	jobs.marks[0] = k;
	jobs.marks[1] = n - k;
	jobs.marks[2] = n;
	bench_batch_attach(&c, &jobs);
	t0 = bench_now();
	while (jobs.accepted < n) {
		room = o->window - (jobs.sent - jobs.accepted);
		m = n - jobs.sent < room ? n - jobs.sent : room;
		if (m > 0 && (m >= o->batch || jobs.sent + m == n)) {
			while (m > 0) {
				if (left == 0) {
					left = GROUPS_RUN;
					t = (t + 37) % ntmpl;
				}
				step = m < left ? m : left;
				bench_batch_submits(&c, &jobs, &tmpl[t], step);
				m -= step;
				left -= step;
			}
			bench_send(&c);
		}
		if (jobs.accepted < n)
			bench_read_replies(&c);
	}
	u->rate_first = (double)k / (jobs.mark_t[0] - t0);
	u->rate_last = (double)k / (jobs.mark_t[2] - jobs.mark_t[1]);
	bench_fence(&c);
	deep_ps(&c, &ps, 1);
	if (ps.queued != n || ps.running != 0)
		bench_wrong(NULL,
		            "ps: %" PRIu64 " queued and %" PRIu64
		            " running, expected %zu queued in paused groups",
		            ps.queued, ps.running, n);

	/* every group resumed without a limit; then until each is idle */
	t0 = bench_now();
	for (i = 0; i < GROUPS_N; i++)
		groups_op(&c, "set", i, true);
	for (i = 0; i < GROUPS_N; i++)
		groups_wait(&c, i);
	u->drain = bench_now() - t0;
	deep_ps(&c, &ps, 1);
	if (ps.queued != 0 || ps.running != 0)
		bench_wrong(NULL,
		            "ps: %" PRIu64 " queued and %" PRIu64
		            " running after the drain",
		            ps.queued, ps.running);
	bench_fence(&c);

	bench_batch_detach(&c, &jobs);
	for (i = 0; i < ntmpl; i++)
		bench_tmpl_free(&tmpl[i]);
	free(tmpl);
	bench_conn_close(&c);
	bench_daemon_stop(d);
}

#define GROUPS_FIELD(f)                                                        \
	sizeof(struct groups_run), offsetof(struct groups_run, f)

void
suite_groups(const struct bench_opts *o, const char *unused)
{
	struct groups_run *u = calloc(o->runs, sizeof(*u));
	const size_t n = o->deep;
	const size_t k = n / 10 < 100000 ? (n / 10 > 0 ? n / 10 : 1) : 100000;
	double q_rate[o->runs], rate[o->runs];
	struct bench_row q, row;
	char what[96], name[64], b[32], kb[32];
	size_t r;

	if (u == NULL)
		bench_die(2, "out of memory");
	bench_thousands((double)n, b, sizeof(b));
	bench_thousands((double)k, kb, sizeof(kb));
	printf("\ngroups: concd -t 1 -p 0 --max-finished 0, a new one per "
	       "run; %s noop -x thread\njobs submitted pipelined, unwatched, "
	       "into %d paused groups with %d priorities\n",
	       b, GROUPS_N, GROUPS_PRIORITIES);
	for (r = 0; r < o->runs; r++) {
		groups_run(o, &u[r]);
		q_rate[r] = u[r].rate_last / u[r].rate_first;
		rate[r] = (double)n / u[r].drain;
		if (o->verbose)
			printf("run %zu: submit %.0f then %.0f jobs/s; drain "
			       "%.3f s\n",
			       r + 1, u[r].rate_first, u[r].rate_last,
			       u[r].drain);
	}
	bench_head("");
	snprintf(name, sizeof(name), "submit, first %s", kb);
	bench_line(name, suite_field(u, o->runs, GROUPS_FIELD(rate_first), 1),
	           -1, "jobs/s (the baseline)", NULL, -1);
	q = bench_stats(q_rate, o->runs);
	snprintf(name, sizeof(name), "submit, last %s", kb);
	snprintf(what, sizeof(what), "jobs/s (%.2fx the first)", q.med);
	bench_line(name, suite_field(u, o->runs, GROUPS_FIELD(rate_last), 1),
	           -1, what, ">= 0.8x first", q.med >= 0.8);
	row = bench_stats(rate, o->runs);
	snprintf(what, sizeof(what), "jobs/s (%.3f s)",
	         suite_field(u, o->runs, GROUPS_FIELD(drain), 1).med);
	bench_line("drain, groups resumed", row, -1, what, NULL, -1);
	free(u);
}

/* ---- idle: start-up to READY=1, and the RSS of a daemon at rest ---- */

#define IDLE_READY_WAIT 10000 /* ms: an upper bound, never a delay */

struct idle_run {
	double exec_ms;    /* fork, exec and exit of true: the baseline */
	double ready_ms;   /* fork of concd to its READY=1 */
	double rss_kb;     /* concd's VmRSS, ready and idle */
	double workers_kb; /* its worker processes' VmRSS, summed */
};

/* Milliseconds to fork, exec and reap /bin/true. */
static double
idle_true_ms(void)
{
	double t0 = bench_now();
	pid_t pid;
	int status;

	if ((pid = fork()) < 0)
		bench_die(2, "fork: %s", strerror(errno));
	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	return (bench_now() - t0) * 1e3;
}

/* The VmRSS of pid's children, in kB, from /proc/PID/task/PID/children. */
static double
idle_children_kb(pid_t pid)
{
	char path[64], buf[4096], *p, *end;
	double kb = 0;
	ssize_t n;
	long child, v;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid,
	         (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	for (p = buf; (child = strtol(p, &end, 10)) > 0; p = end)
		if ((v = bench_vm_kb((pid_t)child, "VmRSS:")) > 0)
			kb += (double)v;
	return kb;
}

/*
 * Start concd -f -s DIR/sock [flags] with the private NOTIFY_SOCKET
 * DIR/notify and its stderr to /dev/null: its pid, and in *ready_ms the
 * milliseconds from the fork to its READY=1, in *notify the socket it
 * notifies, which the caller closes once it has stopped concd, and then
 * removes DIR/notify and DIR/sock.
 */
static pid_t
idle_spawn(const char *concd, const char *dir, const char *const *flags,
           double *ready_ms, int *notify)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct pollfd pfd = {.events = POLLIN};
	const char *argv[32];
	char sock[128], buf[512];
	double t0, left;
	size_t i, n = 0;
	pid_t pid;
	ssize_t len;
	int status, null;

	snprintf(sock, sizeof(sock), "%s/sock", dir);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify", dir);
	argv[n++] = concd;
	argv[n++] = "-f";
	argv[n++] = "-s";
	argv[n++] = sock;
	for (i = 0; flags != NULL && flags[i] != NULL && n < 31; i++)
		argv[n++] = flags[i];
	argv[n] = NULL;
	if ((pfd.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(pfd.fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		bench_die(2, "notify socket: %s", strerror(errno));
	fflush(stdout);
	t0 = bench_now();
	if ((pid = fork()) < 0)
		bench_die(2, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		setenv("NOTIFY_SOCKET", sun.sun_path, 1);
		if ((null = open("/dev/null", O_WRONLY)) >= 0)
			dup2(null, STDERR_FILENO);
		execv(concd, (char *const *)argv);
		_exit(127);
	}
	*ready_ms = -1;
	while ((left = IDLE_READY_WAIT - (bench_now() - t0) * 1e3) > 0 &&
	       poll(&pfd, 1, (int)left + 1) > 0) {
		if ((len = recv(pfd.fd, buf, sizeof(buf) - 1, 0)) < 0)
			continue;
		buf[len] = '\0';
		if (strstr(buf, "READY=1") != NULL) {
			*ready_ms = (bench_now() - t0) * 1e3;
			break;
		}
	}
	if (*ready_ms < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		bench_die(2, "%s sent no READY=1 within %d ms", concd,
		          IDLE_READY_WAIT);
	}
	*notify = pfd.fd;
	return pid;
}

/*
 * Start concd -f on a private socket with a private NOTIFY_SOCKET, time
 * it to READY=1, read its memory, stop it.
 */
static void
idle_once(const char *concd, const char *const *flags, struct idle_run *u)
{
	char dir[] = "/tmp/concd-bench.XXXXXX", path[64];
	pid_t pid;
	int status, notify;

	if (mkdtemp(dir) == NULL)
		bench_die(2, "mkdtemp: %s", strerror(errno));
	pid = idle_spawn(concd, dir, flags, &u->ready_ms, &notify);
	u->rss_kb = (double)bench_vm_kb(pid, "VmRSS:");
	u->workers_kb = idle_children_kb(pid);
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	close(notify);
	snprintf(path, sizeof(path), "%s/notify", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sock", dir);
	unlink(path);
	rmdir(dir);
}

/* A state directory a run made, removed with all it holds. */
static int
suite_rm(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* a field of struct idle_run, for suite_field */
#define IDLE_FIELD(f) sizeof(struct idle_run), offsetof(struct idle_run, f)

void
suite_idle(const struct bench_opts *o, const char *unused)
{
	struct idle_run *u = calloc(o->runs, sizeof(*u));
	struct bench_row base, ready, rss, workers;
	char what[96];
	size_t r;

	(void)unused;
	if (u == NULL)
		bench_die(2, "out of memory");
	printf("\nidle: concd -f with its defaults and a new store, a new one "
	       "per run: fork\nto READY=1 on a private NOTIFY_SOCKET, then "
	       "its VmRSS at rest; against fork and\nexec of /bin/true\n");
	for (r = 0; r < o->runs; r++) {
		char dir[] = "/tmp/concd-bench.XXXXXX", state[64];
		const char *flags[] = {"--state-dir", state, NULL};

		if (mkdtemp(dir) == NULL)
			bench_die(2, "mkdtemp: %s", strerror(errno));
		/* not the default /var/lib/concd of a root concd */
		snprintf(state, sizeof(state), "%s/state", dir);
		u[r].exec_ms = idle_true_ms();
		idle_once(o->spawn, flags, &u[r]);
		nftw(state, suite_rm, 16, FTW_DEPTH | FTW_PHYS);
		rmdir(dir);
		if (o->verbose)
			printf("run %zu: true %.2f ms, READY=1 after %.2f ms, "
			       "VmRSS %.0f kB\n",
			       r + 1, u[r].exec_ms, u[r].ready_ms, u[r].rss_kb);
	}
	base = suite_field(u, o->runs, IDLE_FIELD(exec_ms), 1);
	ready = suite_field(u, o->runs, IDLE_FIELD(ready_ms), 1);
	rss = suite_field(u, o->runs, IDLE_FIELD(rss_kb), 1.0 / 1024);
	workers = suite_field(u, o->runs, IDLE_FIELD(workers_kb), 1.0 / 1024);
	bench_head("");
	bench_line("exec of true", base, 2, "ms (the baseline)", NULL, -1);
	snprintf(what, sizeof(what), "ms (%.1fx exec of true)",
	         ready.med / base.med);
	bench_line("ready", ready, 2, what, "<= 50 ms", ready.med <= 50);
	bench_line("idle VmRSS", rss, 2, "MiB (the daemon)", "<= 5 MiB",
	           rss.med <= 5);
	bench_line("worker VmRSS", workers, 2,
	           "MiB (its worker processes, together)", NULL, -1);
	free(u);
}

/*
 * ---- store: the job store at a restart, on the disk, and at rest ----
 *
 * A restart: concd -t 1 -p 0 with n noop jobs queued behind a second
 * sleep, the first sleep holding the only thread, is killed (SIGKILL) and
 * started again on its state directory, timed from the fork to READY=1;
 * then ps must count the n jobs queued and the second sleep running (the
 * first one failed, interrupted).  The disk: bytes of jobs.db and its WAL
 * per job, for the n queued jobs and for n/10 noop jobs run to their end.
 * At rest: a concd with a new store, fork to READY=1 and its VmRSS, beside
 * one with --state-dir none, in the same run.
 */

#define STORE_HOLD_MS 3600000

struct store_run {
	double fill;          /* s to submit the n jobs */
	double ready_ms;      /* the restart: fork to READY=1 */
	double queued_bytes;  /* jobs.db + WAL per queued job */
	double done_bytes;    /* jobs.db + WAL per finished job */
	double idle_ready_ms; /* a new store: fork to READY=1 */
	double idle_rss_kb;
	double none_ready_ms; /* --state-dir none */
	double none_rss_kb;
};

/* Bytes of the store in dir: jobs.db and its WAL. */
static double
store_bytes(const char *dir)
{
	static const char *const names[] = {"jobs.db", "jobs.db-wal"};
	char path[160];
	struct stat st;
	double sum = 0;
	size_t i;

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0)
			sum += (double)st.st_size;
	}
	return sum;
}

/* Wait until job is running (a sleep taking the only thread). */
static void
store_wait_running(struct bench_conn *c, uint64_t job)
{
	char state[16];
	size_t i;

	for (i = 0;; i++) {
		deep_status(c, job, state, sizeof(state));
		if (strcmp(state, "running") == 0)
			return;
		if (i == 5000)
			bench_die(1, "job %" PRIu64 " is %s after 5 s", job,
			          state);
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
}

static void
store_restart(const struct bench_opts *o, struct store_run *u)
{
	char limit[32], path[160];
	/* and then --state-dir DIR, the first concd's, for the restart */
	const char *flags[] = {
	    "-t", "1",  "-p", "0", "--queue-limit", limit, "--stop-timeout",
	    "0",  NULL, NULL, NULL};
	const size_t n = o->deep;
	struct bench_daemon *d;
	struct bench_conn c;
	struct bench_batch hold, jobs;
	struct bench_tmpl ts = {.id_at = 0}, tn = {.id_at = 0};
	struct pbuf args = {0};
	struct bench_spec ss = {
	    .task = "sleep", .args = &args, .exec = PX_THREAD};
	struct bench_spec sn = {.task = "noop", .exec = PX_THREAD};
	struct bench_rq ps;
	double t0;
	size_t room, m;
	pid_t pid;
	int status, notify;

	snprintf(limit, sizeof(limit), "%zu",
	         n * 2 > 2000000 ? n * 2 : 2000000);
	d = bench_daemon_start(o->spawn, flags);
	suite_conn(&c, d->sock, o);
	bench_args_uint(&args, "ms", STORE_HOLD_MS);
	bench_tmpl_make(&ts, &ss);
	bench_tmpl_make(&tn, &sn);

	/* one sleep on the thread, the next one queued first */
	bench_batch_init(&hold, 2, 1);
	hold.exec = PX_THREAD;
	hold.watched = false;
	bench_batch_attach(&c, &hold);
	bench_batch_submits(&c, &hold, &ts, 1);
	bench_send(&c);
	while (hold.accepted < 1)
		bench_read_replies(&c);
	store_wait_running(&c, hold.job[0]);
	bench_batch_submits(&c, &hold, &ts, 1);
	bench_send(&c);
	while (hold.accepted < 2)
		bench_read_replies(&c);

	/* n jobs behind them, pipelined: each accepted once committed */
	bench_batch_init(&jobs, n, 1);
	jobs.exec = PX_THREAD;
	jobs.watched = false;
	bench_batch_attach(&c, &jobs);
	t0 = bench_now();
	while (jobs.accepted < n) {
		room = o->window - (jobs.sent - jobs.accepted);
		m = n - jobs.sent < room ? n - jobs.sent : room;
		if (m > 0 && (m >= o->batch || jobs.sent + m == n)) {
			bench_batch_submits(&c, &jobs, &tn, m);
			bench_send(&c);
		}
		if (jobs.accepted < n)
			bench_read_replies(&c);
	}
	u->fill = bench_now() - t0;
	bench_fence(&c);
	u->queued_bytes = store_bytes(d->state) / (double)n;
	bench_batch_detach(&c, &hold);
	bench_batch_detach(&c, &jobs);
	bench_conn_close(&c);

	/* the crash, and the restart on the same directory */
	kill(d->pid, SIGKILL);
	waitpid(d->pid, &status, 0);
	d->pid = 0;
	flags[8] = "--state-dir";
	flags[9] = d->state;
	pid = idle_spawn(o->spawn, d->dir, flags, &u->ready_ms, &notify);
	suite_conn(&c, d->sock, o);
	/* the second sleep is queued or, once the thread took it, running */
	deep_ps(&c, &ps, 1);
	if (ps.queued + ps.running != n + 1 || ps.running > 1)
		bench_wrong(NULL,
		            "after the restart ps counts %" PRIu64
		            " queued and %" PRIu64 " running, expected %zu "
		            "queued and 1 queued or running",
		            ps.queued, ps.running, n);
	bench_fence(&c);
	bench_conn_close(&c);
	bench_reap_cut(pid, d->sock, "the restarted concd");
	close(notify);
	snprintf(path, sizeof(path), "%s/notify", d->dir);
	unlink(path);
	bench_tmpl_free(&ts);
	bench_tmpl_free(&tn);
	pbuf_free(&args);
	bench_daemon_stop(d);
}

/* Bytes of the store per job, after n noop jobs ran to their end. */
static double
store_finished(const struct bench_opts *o, size_t n)
{
	char keep[32];
	const char *flags[] = {"-t", "2", "-p", "0", "--max-finished",
	                       keep, NULL};
	struct bench_daemon *d;
	struct bench_conn c;
	struct bench_batch b;
	struct bench_tmpl t = {.id_at = 0};
	struct bench_spec s = {.task = "noop", .exec = PX_LOOP, .watch = true};
	size_t room, m;
	double bytes;

	snprintf(keep, sizeof(keep), "%zu", n);
	d = bench_daemon_start(o->spawn, flags);
	suite_conn(&c, d->sock, o);
	bench_tmpl_make(&t, &s);
	bench_batch_init(&b, n, 1);
	b.exec = PX_LOOP;
	b.check = CHECK_EMPTY;
	bench_batch_attach(&c, &b);
	while (b.ended < n) {
		room = o->window - (b.sent - b.ended);
		m = n - b.sent < room ? n - b.sent : room;
		if (m > 0 && (m >= o->batch || b.sent + m == n)) {
			bench_batch_submits(&c, &b, &t, m);
			bench_send(&c);
		}
		if (b.ended < n)
			bench_read_replies(&c);
	}
	bench_fence(&c);
	/* an end goes out once the job's final row is committed */
	bytes = store_bytes(d->state) / (double)n;
	bench_batch_detach(&c, &b);
	bench_tmpl_free(&t);
	bench_conn_close(&c);
	bench_daemon_stop(d);
	return bytes;
}

/* a field of struct store_run, for suite_field */
#define STORE_FIELD(f) sizeof(struct store_run), offsetof(struct store_run, f)

void
suite_store(const struct bench_opts *o, const char *unused)
{
	struct store_run *u = calloc(o->runs, sizeof(*u));
	const size_t n = o->deep, done = o->deep / 10 > 0 ? o->deep / 10 : 1;
	char state[64], what[96];
	const char *flags[] = {"--state-dir", state, NULL};
	static const char *const none[] = {"--state-dir", "none", NULL};
	struct idle_run w;
	struct bench_row row, ready;
	size_t r;

	(void)unused;
	if (u == NULL)
		bench_die(2, "out of memory");
	if (o->no_store) {
		printf("\nstore: skipped: --no-store\n");
		free(u);
		return;
	}
	printf(
	    "\nstore: concd -t 1 -p 0 with %zu noop jobs queued in its store "
	    "is killed\n(SIGKILL) and started again on it: fork to READY=1, "
	    "every job queued;\nbytes of jobs.db + WAL per queued job and "
	    "per finished job (%zu noop);\nan idle concd with a new store "
	    "and with --state-dir none\n",
	    n, done);
	for (r = 0; r < o->runs; r++) {
		char dir[] = "/tmp/concd-bench.XXXXXX";

		store_restart(o, &u[r]);
		u[r].done_bytes = store_finished(o, done);
		if (mkdtemp(dir) == NULL)
			bench_die(2, "mkdtemp: %s", strerror(errno));
		snprintf(state, sizeof(state), "%s/state", dir);
		idle_once(o->spawn, flags, &w);
		u[r].idle_ready_ms = w.ready_ms;
		u[r].idle_rss_kb = w.rss_kb;
		nftw(state, suite_rm, 16, FTW_DEPTH | FTW_PHYS);
		rmdir(dir);
		idle_once(o->spawn, none, &w);
		u[r].none_ready_ms = w.ready_ms;
		u[r].none_rss_kb = w.rss_kb;
		if (o->verbose)
			printf("run %zu: filled in %.2f s, READY=1 after %.0f "
			       "ms; %.0f and %.0f bytes per queued and "
			       "finished job; idle %.2f ms, %.0f kB\n",
			       r + 1, u[r].fill, u[r].ready_ms,
			       u[r].queued_bytes, u[r].done_bytes,
			       u[r].idle_ready_ms, u[r].idle_rss_kb);
	}
	bench_head("");
	row = suite_field(u, o->runs, STORE_FIELD(fill), 1);
	bench_line("fill", row, 2, "s (each accepted once committed)", NULL,
	           -1);
	ready = suite_field(u, o->runs, STORE_FIELD(ready_ms), 1e-3);
	snprintf(what, sizeof(what), "s (%zu queued, all queued again)", n);
	bench_line("restart to READY=1", ready, 3, what, "<= 3 s",
	           ready.med <= 3);
	bench_line("disk per queued job",
	           suite_field(u, o->runs, STORE_FIELD(queued_bytes), 1), 0,
	           "bytes (jobs.db + WAL)", NULL, -1);
	bench_line("disk per finished",
	           suite_field(u, o->runs, STORE_FIELD(done_bytes), 1), 0,
	           "bytes (jobs.db + WAL, noop)", NULL, -1);
	ready = suite_field(u, o->runs, STORE_FIELD(idle_ready_ms), 1);
	bench_line("idle ready", ready, 2, "ms (a new store)", "<= 50 ms",
	           ready.med <= 50);
	row = suite_field(u, o->runs, STORE_FIELD(idle_rss_kb), 1.0 / 1024);
	bench_line("idle VmRSS", row, 2, "MiB (a new store)", "<= 5 MiB",
	           row.med <= 5);
	bench_line("idle ready, none",
	           suite_field(u, o->runs, STORE_FIELD(none_ready_ms), 1), 2,
	           "ms (--state-dir none)", NULL, -1);
	bench_line(
	    "idle VmRSS, none",
	    suite_field(u, o->runs, STORE_FIELD(none_rss_kb), 1.0 / 1024), 2,
	    "MiB (--state-dir none)", NULL, -1);
	free(u);
}

/* ---- chain: jobs that run one after another (--after) ---- */

/*
 * One gather of n noop jobs on the loop; with chained, job k runs after
 * job k - 1 ("@k-1").
 */
static void
chain_gather(struct bench_conn *c, struct bench_batch *b, size_t n,
             bool chained)
{
	struct proto_enc e;
	char ref[24];
	size_t k;
	int len;

	b->gather = true;
	proto_enc_begin(&e, &c->wbuf, PROTO_GATHER, b->base);
	proto_enc_key(&e, PF_JOBS);
	proto_enc_array_open(&e);
	for (k = 0; k < n; k++) {
		proto_enc_map_open(&e);
		proto_enc_cstr(&e, PF_TASK, "noop");
		proto_enc_cstr(&e, PF_EXEC, proto_execs[PX_LOOP]);
		if (chained && k > 0) {
			len = snprintf(ref, sizeof(ref), "@%zu", k - 1);
			proto_enc_key(&e, PF_AFTER);
			proto_enc_array_open(&e);
			msgpack_pack_str_with_body(&e.pk, ref, (size_t)len);
			proto_enc_elem(&e);
			proto_enc_close(&e);
		}
		proto_enc_close(&e);
		b->slot[k] = SLOT_SENT;
	}
	if (proto_enc_end(&e) < 0)
		bench_die(2, "a gather of %zu is too large", n);
	b->sent += n;
}

/* Seconds from the gather's send to its last end; -1: refused. */
static double
chain_run(struct bench_conn *c, size_t n, bool chained, char *why, size_t len)
{
	struct bench_batch b;
	double t0, wall;

	bench_batch_init(&b, n, BENCH_GATHER_MAX);
	b.exec = PX_LOOP;
	b.refusal_ok = true;
	bench_batch_attach(c, &b);
	chain_gather(c, &b, n, chained);
	t0 = bench_now();
	bench_send(c);
	while (bench_batch_settled(&b) < n)
		bench_read_replies(c);
	wall = b.t_last_end - t0;
	if (b.refused > 0) {
		snprintf(why, len, "%s", b.refusal);
		wall = -1;
	}
	bench_batch_detach(c, &b);
	bench_fence(c);
	return wall;
}

void
suite_chain(const struct bench_opts *o, const char *path)
{
	struct bench_conn c;
	double *wall = suite_values(o->runs), *base = suite_values(o->runs);
	double *rate = suite_values(o->runs), *ratio = suite_values(o->runs);
	struct bench_row row;
	char n[32], name[64], what[96], why[320];
	size_t r;

	suite_conn(&c, path, o);
	bench_thousands((double)o->chain, n, sizeof(n));
	printf("\nchain: concd pid %d; %s noop jobs on the loop in one "
	       "gather, each after the\none before it, first submit to last "
	       "end, against the same %s without\ndependencies\n",
	       (int)c.daemon, n, n);
	for (r = 0; r < o->runs; r++) {
		if ((base[r] = chain_run(&c, o->chain, false, why,
		                         sizeof(why))) < 0 ||
		    (wall[r] =
		         chain_run(&c, o->chain, true, why, sizeof(why))) < 0) {
			printf("chain: skipped: concd refused the gather: %s\n",
			       why);
			goto out;
		}
		rate[r] = (double)o->chain / wall[r];
		ratio[r] = wall[r] / base[r];
		if (o->verbose)
			printf("run %zu: without %.4f s, chained %.4f s\n",
			       r + 1, base[r], wall[r]);
	}
	bench_head("");
	bench_line("unchained", bench_stats(base, o->runs), 4,
	           "s (the baseline)", NULL, -1);
	bench_line("chained", bench_stats(wall, o->runs), 4, "s", NULL, -1);
	row = bench_stats(rate, o->runs);
	snprintf(name, sizeof(name), "%s in a chain", n);
	snprintf(what, sizeof(what), "jobs/s (%.2fx the time without)",
	         bench_stats(ratio, o->runs).med);
	bench_line(name, row, 0, what, ">= 100,000", row.med >= 100000);
out:
	free(wall);
	free(base);
	free(rate);
	free(ratio);
	bench_conn_close(&c);
}

/* ---- remote: warm workers on Slurm's nodes ---- */

#define REMOTE_WORKERS 2
#define REMOTE_ECHO    16    /* bytes of one srun cat round trip */
#define REMOTE_WARM_UP 64    /* jobs that wait for the workers to start */
#define REMOTE_JOBS    20000 /* pipelined no-ops per run */
#define REMOTE_RT      1000  /* round trips per run */

/* A Slurm cluster to ask: SLURM_CONF, or the default configuration. */
static bool
remote_cluster(void)
{
	return getenv("SLURM_CONF") != NULL ||
	       access("/etc/slurm/slurm.conf", R_OK) == 0;
}

static bool
remote_io(int fd, char *buf, size_t len, bool out)
{
	struct pollfd p = {.fd = fd, .events = out ? POLLOUT : POLLIN};
	size_t off = 0;
	ssize_t n;

	while (off < len) {
		if (poll(&p, 1, BENCH_IO_TIMEOUT * 1000) <= 0)
			return false;
		n = out ? write(fd, buf + off, len - off)
		        : read(fd, buf + off, len - off);
		if (n <= 0)
			return false;
		off += (size_t)n;
	}
	return true;
}

/*
 * The baseline: median microseconds of a 16-byte round trip through
 * `srun --unbuffered cat` (one job of one task), n after 10 to warm up;
 * -1 if srun cannot run it.
 */
static double
remote_srun_cat(size_t n, double *us)
{
	char *const argv[] = {"srun",       "--unbuffered", "--quiet",
	                      "--ntasks=1", "cat",          NULL};
	posix_spawn_file_actions_t fa;
	char buf[REMOTE_ECHO];
	int in[2], out[2], status;
	double t0, lo, hi, med = -1;
	bool ok = true;
	size_t i;
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		bench_die(2, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	if (posix_spawnp(&pid, "srun", &fa, NULL, argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	memset(buf, 'x', sizeof(buf));
	for (i = 0; pid > 0 && ok && i < n + 10; i++) {
		t0 = bench_now();
		ok = remote_io(in[1], buf, sizeof(buf), true) &&
		     remote_io(out[0], buf, sizeof(buf), false);
		if (i >= 10)
			us[i - 10] = (bench_now() - t0) * 1e6;
	}
	close(in[1]);
	close(out[0]);
	if (pid > 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	if (pid > 0 && ok && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		med = bench_median(us, n, &lo, &hi);
	return med;
}

/* concctl pool add --slurm n, and its ok. */
static void
remote_add(struct bench_conn *c, unsigned n)
{
	struct bench_rq q;
	struct proto_enc e;

	bench_rq_begin(c, &q, PROTO_OK);
	proto_enc_begin(&e, &c->wbuf, PROTO_REMOTE, q.id);
	proto_enc_cstr(&e, PF_OP, "add");
	proto_enc_u64(&e, PF_COUNT, n);
	proto_enc_end(&e);
	bench_rq_wait(c, &q);
}

/* n no-ops on remote in gathers, first submit to last end: seconds. */
static double
remote_pipelined(struct bench_conn *c, size_t n, char *why, size_t len)
{
	struct bench_spec s = {.task = "noop", .exec = PX_REMOTE};
	struct bench_batch b;
	double t0, wall;

	bench_batch_init(&b, n, BENCH_GATHER_MAX);
	b.exec = PX_REMOTE;
	b.check = CHECK_EMPTY;
	b.refusal_ok = true;
	bench_batch_attach(c, &b);
	bench_batch_gathers(c, &b, &s);
	t0 = bench_now();
	bench_send(c);
	while (bench_batch_settled(&b) < n)
		bench_read_replies(c);
	wall = b.t_last_end - t0;
	snprintf(why, len, "%s", b.refusal);
	if (b.refused > 0)
		wall = -1;
	bench_batch_detach(c, &b);
	bench_fence(c);
	return wall;
}

/* Median microseconds from submit to end of one no-op on remote. */
static double
remote_rt(struct bench_conn *c, const struct bench_tmpl *t, size_t n,
          double *us)
{
	struct bench_batch b;

	bench_batch_init(&b, n, 1);
	b.exec = PX_REMOTE;
	b.check = CHECK_EMPTY;
	return suite_one_by_one(c, &b, t, n, us);
}

void
suite_remote(const struct bench_opts *o, const char *unused)
{
	static const struct bench_spec noop = {
	    .task = "noop", .exec = PX_REMOTE, .watch = true};
	char conf[] = "/tmp/concd-bench-remote.XXXXXX";
	const char *flags[] = {"-c", conf, "-t", "2", NULL};
	double *cat = suite_values(o->runs), *rt = suite_values(o->runs);
	double *rate = suite_values(o->runs), *ratio = suite_values(o->runs);
	double *us = suite_values(REMOTE_RT), wall;
	struct bench_daemon *d;
	struct bench_tmpl t = {0};
	struct bench_conn c;
	struct bench_row row;
	char why[320], what[96];
	size_t r,
	    jobs = o->pipelined < REMOTE_JOBS ? o->pipelined : REMOTE_JOBS;
	size_t trips = o->rt < REMOTE_RT ? o->rt : REMOTE_RT;
	int fd;

	if (jobs == 0)
		jobs = REMOTE_JOBS;
	if (trips == 0)
		trips = REMOTE_RT;
	printf("\nremote: %d warm workers on Slurm's nodes (concctl pool add "
	       "--slurm %d): %zu\npipelined no-ops in gathers, first submit to "
	       "last end; the round trip of one\nno-op against a %d-byte round "
	       "trip through srun --unbuffered cat\n",
	       REMOTE_WORKERS, REMOTE_WORKERS, jobs, REMOTE_ECHO);
	if (!remote_cluster()) {
		printf("remote: skipped: no Slurm cluster (SLURM_CONF is not "
		       "set, no /etc/slurm/slurm.conf)\n");
		goto out;
	}
	/* the baseline first: concd's allocation will hold the CPUs */
	for (r = 0; r < o->runs; r++) {
		if ((cat[r] = remote_srun_cat(trips, us)) < 0) {
			printf(
			    "remote: skipped: srun --unbuffered cat failed\n");
			goto out;
		}
	}
	if ((fd = mkstemp(conf)) < 0)
		bench_die(2, "mkstemp: %s", strerror(errno));
	dprintf(fd, "[slurm]\nenabled = yes\nidle-release = 0\n");
	close(fd);
	d = bench_daemon_start(o->spawn, flags);
	suite_conn(&c, d->sock, o);
	remote_add(&c, REMOTE_WORKERS);
	/* jobs wait while the workers start: the first ones wait for them */
	if (remote_pipelined(&c, REMOTE_WARM_UP, why, sizeof(why)) < 0) {
		printf("remote: skipped: concd refused the jobs: %s\n", why);
		goto stop;
	}
	bench_tmpl_make(&t, &noop);
	for (r = 0; r < o->runs; r++) {
		if ((wall = remote_pipelined(&c, jobs, why, sizeof(why))) < 0)
			bench_die(2, "remote: refused: %s", why);
		rate[r] = (double)jobs / wall;
		rt[r] = remote_rt(&c, &t, trips, us);
		ratio[r] = rt[r] / cat[r];
		if (o->verbose)
			printf("run %zu: %.0f jobs/s, round trip %.1f us, srun "
			       "cat %.1f us\n",
			       r + 1, rate[r], rt[r], cat[r]);
	}
	bench_tmpl_free(&t);
	bench_head("");
	bench_line("srun cat", bench_stats(cat, o->runs), 1,
	           "us (the baseline)", NULL, -1);
	row = bench_stats(rt, o->runs);
	snprintf(what, sizeof(what), "us (%.2fx srun cat)",
	         bench_stats(ratio, o->runs).med);
	bench_line("round trip", row, 1, what, "<= 1.5x",
	           bench_stats(ratio, o->runs).med <= 1.5);
	row = bench_stats(rate, o->runs);
	bench_line("pipelined", row, 0, "jobs/s on 2 remote workers",
	           ">= 20,000", row.med >= 20000);
stop:
	bench_conn_close(&c);
	bench_daemon_stop(d);
	unlink(conf);
out:
	free(cat);
	free(rt);
	free(rate);
	free(ratio);
	free(us);
}
