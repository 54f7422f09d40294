/*
 * bench.c -- concd-bench, the figures of DESIGN.md section 9.  The
 * measurements come in suites (--suite; --help sums them up with their
 * targets): this file holds the program, the daemons it starts, its
 * connections and the noop suite; suite.c holds the others.
 *
 * The noop suite measures no-op jobs on one connection:
 *
 *   (a) a bare Unix-socket ping-pong between two processes, the baseline;
 *   (b) submit -> accepted -> end round trips, one job at a time, on the
 *       loop, thread and process executors, as ratios to the baseline;
 *   (c) pipelined jobs, a window of submits in flight, written in batches
 *       with one write() per batch and read back in large reads.
 *
 * A run's round trip is the median of its --rt samples; every figure
 * printed is the median of --runs runs.  The runs interleave the
 * measurements, so that a baseline and the round trips compared with it
 * share the scheduler's placement of the processes on the cores.  For
 * pipelined jobs the CPU time of concd (its threads and worker processes,
 * from /proc) and of the client is shown too: concd's CPU time per job is
 * the figure that survives a busy machine best.
 *
 * The client shares the machine with the daemon, so it stays cheap: a
 * submit is a template frame encoded once with proto_enc and patched with
 * each request id (ids from 2^32 up are always written as a uint64, nine
 * bytes), and replies are checked by a small walker over the map that
 * uses proto_scan to skip values it does not need.  --check decodes every
 * reply a second time with proto_decode, compares the two, checks the
 * job ids and the stream's order, and fences each measurement with a
 * ping; it is for correctness, not for figures.
 *
 * The other suites send their requests through the same templates and
 * walker, and account for replies in batches (jobs submitted together,
 * as submits or gathers) and single requests (a ping, a status, a ps).
 *
 * Every reply is checked in every mode: a wrong one ends the program
 * with exit status 1.  The targets are printed for information only.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BENCH_SPAWN_WAIT 5000 /* ms for a spawned concd to listen */
#define BENCH_STOP_WAIT  5000 /* ms for it to exit on SIGTERM */
/* ms for a cut to end its jobs: a million queued take about 8 s here */
#define BENCH_CUT_WAIT    60000
#define BENCH_MAX_DAEMONS 8

enum {
	OPT_BATCH = 256,
	OPT_FULL_DECODE,
	OPT_SUITE,
	OPT_WARM_JOBS,
	OPT_FRESH_JOBS,
	OPT_PRIMES,
	OPT_SLEEPERS,
	OPT_SLEEP_MS,
	OPT_EXECS,
	OPT_DEEP,
	OPT_CHAIN,
	OPT_NO_STORE,
};

static const struct option bench_longopts[] = {
    {"socket", required_argument, NULL, 's'},
    {"spawn", required_argument, NULL, 'S'},
    {"suite", required_argument, NULL, OPT_SUITE},
    {"runs", required_argument, NULL, 'r'},
    {"rt", required_argument, NULL, 'n'},
    {"pipelined", required_argument, NULL, 'p'},
    {"window", required_argument, NULL, 'w'},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"exec", required_argument, NULL, 'x'},
    {"warm-jobs", required_argument, NULL, OPT_WARM_JOBS},
    {"fresh-jobs", required_argument, NULL, OPT_FRESH_JOBS},
    {"primes", required_argument, NULL, OPT_PRIMES},
    {"sleepers", required_argument, NULL, OPT_SLEEPERS},
    {"sleep-ms", required_argument, NULL, OPT_SLEEP_MS},
    {"execs", required_argument, NULL, OPT_EXECS},
    {"deep", required_argument, NULL, OPT_DEEP},
    {"chain", required_argument, NULL, OPT_CHAIN},
    {"check", no_argument, NULL, 'c'},
    {"full-decode", no_argument, NULL, OPT_FULL_DECODE},
    {"no-store", no_argument, NULL, OPT_NO_STORE},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void bench_noop(const struct bench_opts *, const char *path);

/*
 * The suites, in the order they run.  A suite that spawns starts its own
 * concd for each configuration and needs --spawn; the others use the
 * concd of --socket, or one started with -t 2.
 */
static const struct bench_suite_row {
	const char *name;
	void (*run)(const struct bench_opts *, const char *path);
	bool spawns;
} bench_suites[SUITE_COUNT] = {
    [SUITE_NOOP] = {"noop", bench_noop, false},
    [SUITE_FRESH] = {"fresh", suite_fresh, false},
    [SUITE_CPU] = {"cpu", suite_cpu, true},
    [SUITE_SLEEP] = {"sleep", suite_sleep, true},
    [SUITE_EXEC] = {"exec", suite_exec, false},
    [SUITE_DEEP] = {"deep", suite_deep, true},
    [SUITE_GROUPS] = {"groups", suite_groups, true},
    [SUITE_IDLE] = {"idle", suite_idle, true},
    [SUITE_STORE] = {"store", suite_store, true},
    [SUITE_CHAIN] = {"chain", suite_chain, false},
    [SUITE_REMOTE] = {"remote", suite_remote, true},
};
_Static_assert(sizeof(bench_suites) / sizeof(bench_suites[0]) == SUITE_COUNT,
               "bench_suites rows");

/* Figures of one run of the noop suite. */
struct bench_run {
	double ping_us, ping_cpu_us; /* the echo process's cpu per trip */
	double rt_us[PX_COUNT], rt_cpu_us[PX_COUNT]; /* concd's cpu */
	double jobs_s[PX_COUNT];
	double cpu_daemon[PX_COUNT], cpu_client[PX_COUNT]; /* fractions */
	double per_read[PX_COUNT]; /* pipelined replies per read() */
};

static pid_t bench_echo = -1;
static struct bench_daemon bench_daemons[BENCH_MAX_DAEMONS];
static bool bench_quiet_daemons = true; /* their stderr to a log file */
static bool bench_no_store;             /* --no-store: concd --state-dir none */
static uint64_t bench_replies;          /* checked, all connections */

static void bench_cleanup(void);
static void bench_daemon_log(const struct bench_daemon *);

void
bench_die(int status, const char *fmt, ...)
{
	va_list ap;
	size_t i;

	fputs("concd-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	for (i = 0; i < BENCH_MAX_DAEMONS; i++)
		if (bench_daemons[i].pid > 0)
			bench_daemon_log(&bench_daemons[i]);
	bench_cleanup();
	exit(status);
}

static void __attribute__((noreturn)) bench_usage(int status)
{
	fprintf(
	    status ? stderr : stdout,
	    "concd-bench: the figures of DESIGN.md section 9, each against a "
	    "baseline\n"
	    "measured in the same run.  A suite prints the median, min and max "
	    "of --runs\n"
	    "runs, the ratio to its baseline (a median of per-run ratios, noop "
	    "excepted),\n"
	    "and PASS or MISS against its target; run it on an idle machine.\n"
	    "\n"
	    "Suites (--suite NAME, repeatable, or all; default noop):\n"
	    "  noop   no-op jobs, one connection, per executor: the round trip "
	    "of one job\n"
	    "         against a bare Unix-socket ping-pong (loop <= 1.2x, "
	    "thread and\n"
	    "         process <= 2x) and pipelined jobs/s (loop >= 500,000, "
	    "thread\n"
	    "         >= 250,000, process >= 150,000)\n"
	    "  fresh  warm workers against --fresh ones, one job at a time: "
	    "table\n"
	    "         n=1000000 (costly per-worker init: fresh/warm >= 50x) "
	    "and noop\n"
	    "         (process fresh/warm >= 2x; the thread ratio has no "
	    "target)\n"
	    "  cpu    8 x primes n=N in one gather, first submit to last end, "
	    "with 1 and\n"
	    "         with 2 workers, process (-p 1, -p 2) and thread (-t 1, "
	    "-t 2) pools:\n"
	    "         speed-up >= 1.9x on 2 cores (*); also the same sieve "
	    "in 1 and 2\n"
	    "         plain processes, the machine's own speed-up, as a "
	    "control\n"
	    "  sleep  N sleeps on the loop in gathers of 10,000, first submit "
	    "to last end,\n"
	    "         against one sleep: <= 1.3 s for 100,000 x 1 s; daemon "
	    "memory per job,\n"
	    "         (VmRSS peak while all sleep - VmRSS before) / N, <= 512 "
	    "bytes;\n"
	    "         concd --max-finished 0 (*)\n"
	    "  exec   N exec argv=[\"true\"] jobs in one gather on the loop, "
	    "against\n"
	    "         seq N | xargs -P2 -n1 true: <= 0.35 s for 1,000 "
	    "(skipped, not\n"
	    "         failed, when concd refuses the gather, e.g. no exec "
	    "task)\n"
	    "  deep   concd -t 1 --max-finished 0, one long sleep on the "
	    "thread, then N\n"
	    "         noop jobs submitted pipelined, unwatched: submit rate of "
	    "the first\n"
	    "         and last 10%% (at most 100,000; last/first >= 0.8), "
	    "status of the\n"
	    "         first and last job (<= 2x a ping), ps --limit 20 (<= 1 "
	    "ms), and\n"
	    "         the drain once the sleep is cancelled (>= 250,000 "
	    "jobs/s) (*)\n"
	    "  groups concd -t 1 -p 0 with 100 paused groups: N (--deep) noop "
	    "jobs\n"
	    "         submitted pipelined across them with 4 priorities: "
	    "submit rate of\n"
	    "         the first and last 10%% (last/first >= 0.8), then the "
	    "drain once\n"
	    "         every group is resumed without a limit (*)\n"
	    "  idle   concd with its defaults, fork to READY=1 (<= 50 ms) and "
	    "its VmRSS\n"
	    "         at rest (<= 5 MiB), against fork and exec of /bin/true "
	    "(*)\n"
	    "  store  concd -t 1 -p 0 with N (--deep) noop jobs queued in its "
	    "store,\n"
	    "         killed and started again on it: fork to READY=1 (<= 3 s "
	    "for\n"
	    "         1,000,000), every job queued again; bytes of jobs.db + "
	    "WAL per\n"
	    "         queued and per finished job; an idle concd with a new "
	    "store: fork\n"
	    "         to READY=1 (<= 50 ms) and VmRSS (<= 5 MiB), beside "
	    "--state-dir none (*)\n"
	    "  chain  N noop jobs on the loop in one gather, each after the "
	    "one before\n"
	    "         it (--after @k-1), first submit to last end: >= 100,000 "
	    "jobs/s,\n"
	    "         against the same N without dependencies\n"
	    "  remote 2 warm workers on Slurm's nodes (pool add --slurm 2; "
	    "Slurm from\n"
	    "         SLURM_CONF): pipelined no-ops >= 20,000 jobs/s, and the "
	    "round trip\n"
	    "         of one <= 1.5x a round trip through srun --unbuffered "
	    "cat (*)\n"
	    "(*) needs --spawn: starts a concd per configuration and run.\n"
	    "\n"
	    "usage: concd-bench [--socket PATH | --spawn CONCD] [--suite S] "
	    "[--runs R]\n"
	    "                   [--rt N] [--pipelined N] [--window W] "
	    "[--batch B]\n"
	    "                   [--exec loop|thread|process] [--warm-jobs N] "
	    "[--fresh-jobs N]\n"
	    "                   [--primes N] [--sleepers N] [--sleep-ms MS] "
	    "[--execs N]\n"
	    "                   [--deep N] [--chain N] [--check] [-v]\n"
	    "  --socket PATH     use the concd listening on PATH\n"
	    "  --spawn CONCD     start CONCD -f -t 2 on a private socket (the "
	    "suites\n"
	    "                    marked (*) start their own)\n"
	    "  --suite S         noop, fresh, cpu, sleep, exec, deep, groups, "
	    "idle, store,\n"
	    "                    chain, remote or all\n"
	    "  --runs R          runs; figures are medians (default 5)\n"
	    "noop:\n"
	    "  --rt N            round trips per run and kind, 0: none "
	    "(default 10000)\n"
	    "  --pipelined N     pipelined jobs per run and executor, 0: "
	    "none\n"
	    "                    (default 1000000)\n"
	    "  --window W        submits in flight (default 4096; deep "
	    "too)\n"
	    "  --batch B         submits per write (default W/4, at most "
	    "1024; deep too)\n"
	    "  --exec X          measure executor X: loop, thread or process\n"
	    "                    (repeatable; default all three)\n"
	    "others:\n"
	    "  --warm-jobs N     fresh: warm jobs per kind and run (default "
	    "300)\n"
	    "  --fresh-jobs N    fresh: fresh jobs per kind and run (default "
	    "30)\n"
	    "  --primes N        cpu: n of each primes job (default "
	    "300000000:\n"
	    "                    8 jobs take ~1.4 s on one core here)\n"
	    "  --sleepers N      sleep: jobs (default 100000)\n"
	    "  --sleep-ms MS     sleep: their ms (default 1000)\n"
	    "  --execs N         exec: jobs (default 1000)\n"
	    "  --deep N          deep, groups and store: queued jobs (default "
	    "1000000)\n"
	    "  --chain N         chain: jobs in the chain, at most 10000 "
	    "(default 10000)\n"
	    "  --check           decode every reply twice and check more: "
	    "for tests\n"
	    "  --full-decode     decode replies with proto_decode only\n"
	    "  --no-store        start concd with --state-dir none (jobs in "
	    "memory only);\n"
	    "                    by default each concd has a store of its own\n"
	    "  -v, --verbose     print every run, and concd's log\n"
	    "Exit status: 0, or 1 when a reply is wrong, 2 when the "
	    "benchmark cannot run.\n");
	exit(status);
}

static size_t
bench_number(const char *s, const char *what, size_t min, size_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *s == '\0' || *s == '-' || *end != '\0' || v < min ||
	    v > max)
		bench_die(2, "%s must be a number from %zu to %zu", what, min,
		          max);
	return (size_t)v;
}

double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
bench_self_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * From /proc/PID/stat: user + system time of all its threads, plus that of
 * the children it reaped, in seconds, and its parent; -1 if unknown.
 */
static double
bench_stat_cpu(pid_t pid, pid_t *ppid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st, cut, cst;
	int parent;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after "pid (comm)": state, ppid, ... utime is field 14 */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1,
	           " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu "
	           "%llu",
	           &parent, &ut, &st, &cut, &cst) != 5)
		return -1;
	*ppid = parent;
	return (double)(ut + st + cut + cst) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * The CPU time of a process and of its live children (concd's worker
 * processes), in seconds; -1 if unknown.  Ticks of 10 ms: meaningful over
 * a second or more.
 */
double
bench_proc_cpu(pid_t pid)
{
	struct dirent *d;
	double sum, t;
	pid_t ppid, child;
	DIR *dir;

	if (pid <= 0 || (sum = bench_stat_cpu(pid, &ppid)) < 0)
		return -1;
	if ((dir = opendir("/proc")) == NULL)
		return sum;
	while ((d = readdir(dir)) != NULL) {
		if ((child = (pid_t)atoi(d->d_name)) <= 0 || child == pid)
			continue;
		if ((t = bench_stat_cpu(child, &ppid)) >= 0 && ppid == pid)
			sum += t;
	}
	closedir(dir);
	return sum;
}

/* A "VmRSS:"-like field of /proc/PID/status, in kB; -1 if unknown. */
long
bench_vm_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t flen = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, flen) == 0) {
			kb = strtol(line + flen, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

static int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v in place. */
double
bench_median(double *v, size_t n, double *min, double *max)
{
	qsort(v, n, sizeof(*v), bench_cmp_double);
	*min = v[0];
	*max = v[n - 1];
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median, min and max of n values, left as they are. */
struct bench_row
bench_stats(const double *v, size_t n)
{
	struct bench_row row;
	double w[n > 0 ? n : 1];

	if (n == 0)
		return (struct bench_row){-1, -1, -1};
	memcpy(w, v, n * sizeof(*v));
	row.med = bench_median(w, n, &row.lo, &row.hi);
	return row;
}

/* 1234567 -> "1,234,567" */
const char *
bench_thousands(double v, char *buf, size_t size)
{
	char digits[32];
	size_t n, i, o = 0;

	snprintf(digits, sizeof(digits), "%.0f", v);
	n = strlen(digits);
	for (i = 0; i < n && o + 2 < size; i++) {
		if (i > 0 && digits[i - 1] != '-' && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

/* The header of a suite's table. */
void
bench_head(const char *title)
{
	printf("%s\n%-20s %10s %10s %10s   %-38s %-13s\n", title, "", "median",
	       "min", "max", "", "target");
}

/*
 * One line of a suite's table: prec decimals, or thousands separators
 * when prec < 0; verdict 1 PASS, 0 MISS, -1 none.
 */
void
bench_line(const char *name, struct bench_row row, int prec, const char *what,
           const char *target, int verdict)
{
	char b[3][32];
	const double v[3] = {row.med, row.lo, row.hi};
	int i;

	for (i = 0; i < 3; i++)
		if (prec < 0)
			bench_thousands(v[i], b[i], sizeof(b[i]));
		else
			snprintf(b[i], sizeof(b[i]), "%.*f", prec, v[i]);
	printf("%-20s %10s %10s %10s   %-38s %-13s %s\n", name, b[0], b[1],
	       b[2], what, target != NULL ? target : "",
	       verdict < 0 ? ""
	       : verdict   ? "PASS"
	                   : "MISS");
	fflush(stdout);
}

/* ---- I/O ---- */

static void
bench_write_all(int fd, const char *p, size_t len, const char *what)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				bench_die(1, "%s: no progress for %d s", what,
				          BENCH_IO_TIMEOUT);
			bench_die(1, "%s: write: %s", what, strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
}

/* Reads what is there (at least one byte) into the tail of buf. */
static size_t
bench_read_some(int fd, char *buf, size_t room, const char *what)
{
	ssize_t n;

	for (;;) {
		if ((n = read(fd, buf, room)) > 0)
			return (size_t)n;
		if (n == 0)
			bench_die(1, "%s: connection closed", what);
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			bench_die(1, "%s: no reply for %d s", what,
			          BENCH_IO_TIMEOUT);
		bench_die(1, "%s: read: %s", what, strerror(errno));
	}
}

static void
bench_timeouts(int fd)
{
	struct timeval tv = {BENCH_IO_TIMEOUT, 0};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int
bench_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* ---- private concds ---- */

/* The tail of a daemon's log, on stderr: why it failed, maybe. */
static void
bench_daemon_log(const struct bench_daemon *d)
{
	char buf[2048];
	ssize_t n;
	off_t size;
	int fd;

	if (d->log[0] == '\0' || (fd = open(d->log, O_RDONLY)) < 0)
		return;
	if ((size = lseek(fd, 0, SEEK_END)) > 0) {
		lseek(fd,
		      size > (off_t)sizeof(buf) ? size - (off_t)sizeof(buf) : 0,
		      SEEK_SET);
		if ((n = read(fd, buf, sizeof(buf))) > 0) {
			fprintf(stderr, "concd-bench: the log of concd %d:\n",
			        (int)d->pid);
			fwrite(buf, 1, (size_t)n, stderr);
		}
	}
	close(fd);
}

static int
bench_rm(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)type;
	(void)f;
	remove(path);
	return 0;
}

/*
 * Start concd -f -s SOCK FLAGS... on a private socket and wait until it
 * listens.  Its stderr goes to a log file shown when something fails
 * (to the terminal with --verbose).
 */
struct bench_daemon *
bench_daemon_start(const char *concd, const char *const *flags)
{
	struct timespec tick = {0, 5 * 1000 * 1000};
	struct bench_daemon *d = NULL;
	const char *argv[32];
	int status, fd, waited;
	size_t i, n = 0;

	for (i = 0; i < BENCH_MAX_DAEMONS && d == NULL; i++)
		if (bench_daemons[i].pid == 0 && bench_daemons[i].dir[0] == 0)
			d = &bench_daemons[i];
	if (d == NULL)
		bench_die(2, "more than %d daemons at once", BENCH_MAX_DAEMONS);
	snprintf(d->dir, sizeof(d->dir), "/tmp/concd-bench.XXXXXX");
	if (mkdtemp(d->dir) == NULL) {
		d->dir[0] = '\0';
		bench_die(2, "mkdtemp: %s", strerror(errno));
	}
	snprintf(d->sock, sizeof(d->sock), "%s/sock", d->dir);
	if (bench_quiet_daemons)
		snprintf(d->log, sizeof(d->log), "%s/log", d->dir);
	argv[n++] = concd;
	argv[n++] = "-f";
	argv[n++] = "-s";
	argv[n++] = d->sock;
	/* a store of its own, in its directory, unless the flags say */
	snprintf(d->state, sizeof(d->state), "%s/state", d->dir);
	argv[n++] = "--state-dir";
	argv[n++] = bench_no_store ? "none" : d->state;
	for (i = 0; flags != NULL && flags[i] != NULL && n < 31; i++)
		argv[n++] = flags[i];
	argv[n] = NULL;
	fflush(stdout);
	if ((d->pid = fork()) < 0)
		bench_die(2, "fork: %s", strerror(errno));
	if (d->pid == 0) {
		/* do not outlive the benchmark, however it ends */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (d->log[0] != '\0' &&
		    (fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >=
		        0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		execv(concd, (char *const *)argv);
		fprintf(stderr, "concd-bench: %s: %s\n", concd,
		        strerror(errno));
		_exit(127);
	}
	for (waited = 0; waited < BENCH_SPAWN_WAIT; waited += 5) {
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			bench_daemon_log(d);
			d->pid = 0;
			bench_die(2, "%s exited before listening", concd);
		}
		if ((fd = bench_connect(d->sock)) >= 0) {
			close(fd);
			return d;
		}
		nanosleep(&tick, NULL);
	}
	bench_die(2, "%s did not listen on %s within %d ms", concd, d->sock,
	          BENCH_SPAWN_WAIT);
}

/* SIGTERM, then up to wait ms for pid to exit: whether it did */
static bool
bench_term(pid_t pid, int wait)
{
	struct timespec tick = {0, 5 * 1000 * 1000};
	int status, waited;

	kill(pid, SIGTERM);
	for (waited = 0; waited < wait; waited += 5) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return true;
		nanosleep(&tick, NULL);
	}
	return false;
}

/*
 * Stop pid.  A concd drains its jobs at the first SIGTERM; one that a job
 * keeps from stopping gets a second, which cuts its jobs off, so that it
 * exits taking what it made along (its commands, their cgroups).  SIGKILL
 * only when that fails too.
 */
static void
bench_reap(pid_t pid, const char *what)
{
	int status;

	if (bench_term(pid, BENCH_STOP_WAIT))
		return;
	fprintf(stderr,
	        "concd-bench: %s did not stop on SIGTERM within %d ms: a "
	        "second SIGTERM cuts its jobs off\n",
	        what, BENCH_STOP_WAIT);
	if (bench_term(pid, BENCH_STOP_WAIT))
		return;
	fprintf(stderr,
	        "concd-bench: %s did not stop on a second SIGTERM: "
	        "killed\n",
	        what);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

/*
 * Stop a concd whose jobs would not end by themselves: the first SIGTERM
 * begins the stop (its socket goes), the second cuts the jobs off, and it
 * exits as it should, taking what it made (its jobs' cgroups) along.  A
 * cut of many queued jobs takes a while: bench_reap only if it takes
 * longer than BENCH_CUT_WAIT.
 */
void
bench_reap_cut(pid_t pid, const char *sock, const char *what)
{
	struct timespec tick = {0, 5 * 1000 * 1000};
	int waited;

	kill(pid, SIGTERM);
	for (waited = 0; waited < BENCH_STOP_WAIT && access(sock, F_OK) == 0;
	     waited += 5)
		nanosleep(&tick, NULL);
	if (!bench_term(pid, BENCH_CUT_WAIT))
		bench_reap(pid, what);
}

void
bench_daemon_stop(struct bench_daemon *d)
{
	if (d->pid > 0)
		bench_reap(d->pid, "concd");
	if (d->dir[0] != '\0') {
		unlink(d->sock);
		if (d->log[0] != '\0')
			unlink(d->log);
		if (d->state[0] != '\0')
			nftw(d->state, bench_rm, 16, FTW_DEPTH | FTW_PHYS);
		rmdir(d->dir);
	}
	memset(d, 0, sizeof(*d));
}

static void
bench_cleanup(void)
{
	size_t i;

	if (bench_echo > 0) {
		bench_reap(bench_echo, "the echo process");
		bench_echo = -1;
	}
	for (i = 0; i < BENCH_MAX_DAEMONS; i++)
		if (bench_daemons[i].pid > 0 || bench_daemons[i].dir[0] != 0)
			bench_daemon_stop(&bench_daemons[i]);
}

/* ---- (a) the baseline: an echo process over a socketpair ---- */

static void __attribute__((noreturn)) bench_echo_main(int fd)
{
	char *buf = malloc(BENCH_RBUF);
	const char *payload;
	size_t len = 0, off, plen, w;
	ssize_t n, used;

	if (buf == NULL)
		_exit(1);
	for (;;) {
		if ((n = read(fd, buf + len, BENCH_RBUF - len)) <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			_exit(0);
		}
		len += (size_t)n;
		off = 0;
		while ((used = proto_frame_next(buf + off, len - off, &payload,
		                                &plen)) > 0)
			off += (size_t)used;
		if (used < 0)
			_exit(1);
		/* every complete frame back, in one write */
		for (w = 0; w < off; w += (size_t)n)
			if ((n = write(fd, buf + w, off - w)) <= 0)
				_exit(1);
		memmove(buf, buf + off, len - off);
		len -= off;
	}
}

static int
bench_echo_start(void)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		bench_die(2, "socketpair: %s", strerror(errno));
	fflush(stdout);
	if ((bench_echo = fork()) < 0)
		bench_die(2, "fork: %s", strerror(errno));
	if (bench_echo == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		close(sv[0]);
		bench_echo_main(sv[1]);
	}
	close(sv[1]);
	bench_timeouts(sv[0]);
	return sv[0];
}

/* Median microseconds per round trip of one submit-sized frame. */
static double
bench_pingpong(int fd, const struct pbuf *frame, size_t n, char *rbuf,
               double *us)
{
	const char *payload;
	size_t i, have, plen;
	double t0, lo, hi;
	ssize_t used;

	for (i = 0; i < n; i++) {
		t0 = bench_now();
		bench_write_all(fd, frame->data, frame->len, "echo");
		have = 0;
		while ((used = proto_frame_next(rbuf, have, &payload, &plen)) ==
		       0)
			have += bench_read_some(fd, rbuf + have,
			                        BENCH_RBUF - have, "echo");
		if (used < 0 || (size_t)used != frame->len ||
		    have != frame->len)
			bench_die(1, "echo: a frame came back changed");
		us[i] = (bench_now() - t0) * 1e6;
	}
	return bench_median(us, n, &lo, &hi);
}

/* ---- replies ---- */

static int
bench_mp_uint(const unsigned char **pp, const unsigned char *end, uint64_t *v)
{
	const unsigned char *p = *pp;
	int w, i;

	if (p >= end)
		return -1;
	if (*p <= 0x7f) {
		*v = *p;
		*pp = p + 1;
		return 0;
	}
	switch (*p) {
	case 0xcc:
		w = 1;
		break;
	case 0xcd:
		w = 2;
		break;
	case 0xce:
		w = 4;
		break;
	case 0xcf:
		w = 8;
		break;
	default:
		return -1;
	}
	if (end - p < 1 + w)
		return -1;
	for (*v = 0, i = 1; i <= w; i++)
		*v = *v << 8 | p[i];
	*pp = p + 1 + w;
	return 0;
}

/* Any integer that fits an int64_t. */
static int
bench_mp_int(const unsigned char **pp, const unsigned char *end, int64_t *v)
{
	const unsigned char *p = *pp;
	uint64_t u, sign;
	int w, i;

	if (p >= end)
		return -1;
	if (*p >= 0xe0) { /* negative fixint */
		*v = (int8_t)*p;
		*pp = p + 1;
		return 0;
	}
	switch (*p) {
	case 0xd0:
		w = 1;
		break;
	case 0xd1:
		w = 2;
		break;
	case 0xd2:
		w = 4;
		break;
	case 0xd3:
		w = 8;
		break;
	default:
		if (bench_mp_uint(pp, end, &u) < 0 || u > INT64_MAX)
			return -1;
		*v = (int64_t)u;
		return 0;
	}
	if (end - p < 1 + w)
		return -1;
	for (u = 0, i = 1; i <= w; i++)
		u = u << 8 | p[i];
	sign = UINT64_C(1) << (8 * w - 1);
	*v = (int64_t)((u ^ sign) - sign);
	*pp = p + 1 + w;
	return 0;
}

static int
bench_mp_str(const unsigned char **pp, const unsigned char *end, const char **s,
             size_t *len)
{
	const unsigned char *p = *pp;
	size_t hdr;

	if (p >= end)
		return -1;
	if ((*p & 0xe0) == 0xa0) {
		*len = *p & 0x1f;
		hdr = 1;
	} else if (*p == 0xd9 && end - p >= 2) {
		*len = p[1];
		hdr = 2;
	} else if (*p == 0xda && end - p >= 3) {
		*len = (size_t)p[1] << 8 | p[2];
		hdr = 3;
	} else
		return -1;
	if ((size_t)(end - p) - hdr < *len)
		return -1;
	*s = (const char *)p + hdr;
	*pp = p + hdr + *len;
	return 0;
}

/* The header of an array (map: pairs), any width. */
static int
bench_mp_count(const unsigned char **pp, const unsigned char *end, bool map,
               uint32_t *n)
{
	const unsigned char *p = *pp;
	unsigned char fix = map ? 0x80 : 0x90;
	unsigned char w16 = map ? 0xde : 0xdc;

	if (p >= end)
		return -1;
	if ((*p & 0xf0) == fix) {
		*n = *p & 0x0f;
		*pp = p + 1;
	} else if (*p == w16 && end - p >= 3) {
		*n = (uint32_t)p[1] << 8 | p[2];
		*pp = p + 3;
	} else if (*p == w16 + 1 && end - p >= 5) {
		*n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
		     (uint32_t)p[3] << 8 | p[4];
		*pp = p + 5;
	} else
		return -1;
	return 0;
}

static bool
bench_key(const char *k, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(k, name, klen) == 0;
}

/* The unsigned integer at key in a packed map of string keys. */
bool
bench_map_uint(const char *map, size_t len, const char *key, uint64_t *v)
{
	const unsigned char *p = (const unsigned char *)map, *end = p + len;
	const char *k, *cause;
	size_t klen;
	uint32_t pairs;
	ssize_t used;

	if (map == NULL || bench_mp_count(&p, end, true, &pairs) < 0)
		return false;
	while (pairs-- > 0) {
		if (bench_mp_str(&p, end, &k, &klen) < 0)
			return false;
		if (bench_key(k, klen, key))
			return bench_mp_uint(&p, end, v) == 0;
		if ((used = proto_scan((const char *)p, (size_t)(end - p),
		                       &cause)) < 0)
			return false;
		p += used;
	}
	return false;
}

/*
 * The walker: the fields of a reply the benchmark looks at, straight from
 * the bytes.  Other values are skipped with proto_scan.  -1: not a map of
 * string keys, or a field of the wrong type.
 */
static int
bench_walk(const char *payload, size_t len, struct bench_reply *r)
{
	const unsigned char *p = (const unsigned char *)payload;
	const unsigned char *end = p + len;
	const unsigned char *q;
	const char *k, *s, *cause;
	uint32_t pairs, n;
	size_t klen, slen;
	ssize_t used;

	memset(r, 0, sizeof(*r));
	r->type = -1;
	if (len == 0)
		return -1;
	if ((*p & 0xf0) == 0x80) {
		pairs = *p & 0x0f;
		p++;
	} else if (*p == 0xde && len >= 3) {
		pairs = (uint32_t)p[1] << 8 | p[2];
		p += 3;
	} else
		return -1;
	while (pairs-- > 0) {
		if (bench_mp_str(&p, end, &k, &klen) < 0)
			return -1;
		if (bench_key(k, klen, "t")) {
			if (bench_mp_str(&p, end, &s, &slen) < 0)
				return -1;
			r->type = proto_type_lookup(s, slen);
		} else if (bench_key(k, klen, "id")) {
			if (bench_mp_uint(&p, end, &r->id) < 0)
				return -1;
			r->has_id = true;
		} else if (bench_key(k, klen, "job")) {
			if (bench_mp_uint(&p, end, &r->job) < 0)
				return -1;
			r->has_job = true;
		} else if (bench_key(k, klen, "index")) {
			if (bench_mp_uint(&p, end, &r->index) < 0)
				return -1;
			r->has_index = true;
		} else if (bench_key(k, klen, "total")) {
			if (bench_mp_uint(&p, end, &r->total) < 0)
				return -1;
			r->has_total = true;
		} else if (bench_key(k, klen, "worker")) {
			if (bench_mp_int(&p, end, &r->worker) < 0)
				return -1;
			r->has_worker = true;
		} else if (bench_key(k, klen, "state")) {
			if (bench_mp_str(&p, end, &r->state, &r->state_len) < 0)
				return -1;
		} else if (bench_key(k, klen, "exec")) {
			if (bench_mp_str(&p, end, &r->exec, &r->exec_len) < 0)
				return -1;
		} else if (bench_key(k, klen, "error")) {
			if (bench_mp_str(&p, end, &r->error, &r->error_len) < 0)
				return -1;
		} else if (bench_key(k, klen, "message")) {
			if (bench_mp_str(&p, end, &r->message,
			                 &r->message_len) < 0)
				return -1;
		} else {
			if ((used = proto_scan((const char *)p,
			                       (size_t)(end - p), &cause)) < 0)
				return -1;
			if (bench_key(k, klen, "result")) {
				r->result = (const char *)p;
				r->result_len = (size_t)used;
			} else if (bench_key(k, klen, "counts")) {
				r->counts = (const char *)p;
				r->counts_len = (size_t)used;
			} else if (bench_key(k, klen, "jobs")) {
				q = p;
				if (bench_mp_count(&q, end, false, &n) < 0)
					return -1;
				r->has_jobs = true;
				r->njobs = n;
				r->jobs = (const char *)p;
				r->jobs_len = (size_t)used;
			}
			p += used;
		}
	}
	return p == end ? 0 : -1;
}

/* The same fields through the wire library's decoder. */
static int
bench_decode(struct bench_conn *c, const char *payload, size_t len,
             struct bench_reply *r, char *why, size_t whylen)
{
	static struct msgpack_sbuffer sb, sbc, sbj;
	struct proto_msg m;
	struct proto_fault f;
	msgpack_packer pk;

	memset(r, 0, sizeof(*r));
	r->type = -1;
	if (proto_decode(payload, len, &c->zone, &m, &f) != PROTO_DECODE_OK) {
		snprintf(why, whylen, "proto_decode: %s", f.message);
		return -1;
	}
	r->type = (int)m.type;
	r->has_id = proto_has(&m, PF_ID);
	r->id = m.id;
	r->has_job = proto_has(&m, PF_JOB);
	r->job = proto_u64(&m, PF_JOB, 0);
	r->has_index = proto_has(&m, PF_INDEX);
	r->index = proto_u64(&m, PF_INDEX, 0);
	r->has_total = proto_has(&m, PF_TOTAL);
	r->total = proto_u64(&m, PF_TOTAL, 0);
	r->has_worker = proto_has(&m, PF_WORKER);
	r->worker = proto_i64(&m, PF_WORKER, 0);
	r->has_jobs = proto_has(&m, PF_JOBS);
	r->njobs = r->has_jobs ? m.f[PF_JOBS].via.array.size : 0;
	r->state = proto_str(&m, PF_STATE, &r->state_len);
	r->exec = proto_str(&m, PF_EXEC, &r->exec_len);
	r->error = proto_str(&m, PF_ERROR, &r->error_len);
	r->message = proto_str(&m, PF_MESSAGE, &r->message_len);
	if (proto_has(&m, PF_RESULT)) {
		/* packed again: a map stays a map, {} stays 0x80 */
		msgpack_sbuffer_clear(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, m.f[PF_RESULT]);
		r->result = sb.data;
		r->result_len = sb.size;
	}
	if (r->has_jobs) {
		msgpack_sbuffer_clear(&sbj);
		msgpack_packer_init(&pk, &sbj, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, m.f[PF_JOBS]);
		r->jobs = sbj.data;
		r->jobs_len = sbj.size;
	}
	if (proto_has(&m, PF_COUNTS)) {
		msgpack_sbuffer_clear(&sbc);
		msgpack_packer_init(&pk, &sbc, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, m.f[PF_COUNTS]);
		r->counts = sbc.data;
		r->counts_len = sbc.size;
	}
	return 0;
}

static bool
bench_str_eq(const char *s, size_t len, const char *want)
{
	return s != NULL && strlen(want) == len && memcmp(s, want, len) == 0;
}

static bool
bench_same_str(const char *a, size_t alen, const char *b, size_t blen)
{
	if (a == NULL || b == NULL)
		return a == b;
	return alen == blen && memcmp(a, b, alen) == 0;
}

void
bench_wrong(const struct bench_reply *r, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (r != NULL && r->error != NULL)
		bench_die(1, "wrong reply: %s (error %.*s: %.*s)", what,
		          (int)r->error_len, r->error, (int)r->message_len,
		          r->message != NULL ? r->message : "");
	bench_die(1, "wrong reply: %s", what);
}

static const char *
bench_type_name(const struct bench_reply *r)
{
	return r->type >= 0 ? proto_types[r->type].name : "(unknown)";
}

/* The noop suite's replies: accepted and end of its submits. */
static void
bench_on_reply(struct bench_conn *c, const struct bench_reply *r)
{
	size_t i;

	if (r->type != PROTO_ACCEPTED && r->type != PROTO_END)
		bench_wrong(r, "type %s, expected accepted or end",
		            bench_type_name(r));
	if (!r->has_id || r->id < c->base || r->id - c->base >= c->sent)
		bench_wrong(r, "%s for id %" PRIu64 ", never sent",
		            proto_types[r->type].name, r->id);
	i = (size_t)(r->id - c->base);
	if (!r->has_job || r->job == 0)
		bench_wrong(r, "%s for id %" PRIu64 " without a job id",
		            proto_types[r->type].name, r->id);
	if (r->type == PROTO_ACCEPTED) {
		if (c->slot[i] != SLOT_SENT)
			bench_wrong(r, "a second accepted for id %" PRIu64,
			            r->id);
		/* concd numbers jobs in the order it reads the submits */
		if (c->opts->check && r->job <= c->last_job)
			bench_wrong(r,
			            "job %" PRIu64 " accepted after %" PRIu64,
			            r->job, c->last_job);
		c->last_job = r->job;
		c->job[i] = r->job;
		c->slot[i] = SLOT_ACCEPTED;
		c->accepted++;
		return;
	}
	if (c->slot[i] != SLOT_ACCEPTED)
		bench_wrong(r, "end for id %" PRIu64 " %s", r->id,
		            c->slot[i] == SLOT_ENDED ? "twice"
		                                     : "before accepted");
	if (r->job != c->job[i])
		bench_wrong(r,
		            "end of job %" PRIu64 " for id %" PRIu64
		            ", accepted as job %" PRIu64,
		            r->job, r->id, c->job[i]);
	if (!bench_str_eq(r->state, r->state_len, "succeeded"))
		bench_wrong(r, "job %" PRIu64 " ended %.*s", r->job,
		            (int)r->state_len,
		            r->state != NULL ? r->state : "");
	if (r->result_len != 1 || r->result[0] != '\x80')
		bench_wrong(r, "job %" PRIu64 " did not return {}", r->job);
	if ((r->exec != NULL || c->opts->check) &&
	    !bench_str_eq(r->exec, r->exec_len, proto_execs[c->exec]))
		bench_wrong(r, "job %" PRIu64 " ran on %.*s, not %s", r->job,
		            (int)r->exec_len,
		            r->exec != NULL ? r->exec : "nothing",
		            proto_execs[c->exec]);
	c->slot[i] = SLOT_ENDED;
	c->ended++;
}

/* ---- the other suites' replies: batches and single requests ---- */

static void
bench_batch_result(struct bench_batch *b, const struct bench_reply *r)
{
	const unsigned char *p = (const unsigned char *)r->result;
	const unsigned char *end = p + r->result_len;
	uint64_t v;

	if (b->info_key != NULL &&
	    bench_map_uint(r->result, r->result_len, b->info_key, &v)) {
		b->info_sum += (double)v;
		b->info_n++;
	}
	switch (b->check) {
	case CHECK_ANY:
		return;
	case CHECK_EMPTY:
		if (r->result_len != 1 || r->result[0] != '\x80')
			bench_wrong(r, "job %" PRIu64 " did not return {}",
			            r->job);
		return;
	case CHECK_KEY:
		if (!bench_map_uint(r->result, r->result_len, b->key, &v) ||
		    v != b->want)
			bench_wrong(r,
			            "job %" PRIu64
			            " did not return {%s: %" PRIu64 "}",
			            r->job, b->key, b->want);
		return;
	case CHECK_UINT:
	case CHECK_SAME:
		if (r->result == NULL || bench_mp_uint(&p, end, &v) < 0 ||
		    p != end)
			bench_wrong(r, "job %" PRIu64 " returned no number",
			            r->job);
		if (b->check == CHECK_SAME && !b->have_want) {
			b->want = v;
			b->have_want = true;
		}
		if (v != b->want)
			bench_wrong(r,
			            "job %" PRIu64 " returned %" PRIu64
			            ", not %" PRIu64,
			            r->job, v, b->want);
		return;
	}
}

static void
bench_batch_mark(struct bench_batch *b)
{
	size_t i;

	for (i = 0; i < 3; i++)
		if (b->marks[i] > 0 && b->mark_t[i] == 0 &&
		    b->accepted >= b->marks[i])
			b->mark_t[i] = bench_now();
}

/* Request q of b accepted: one job, or a gather's list of them. */
static void
bench_batch_accepted(struct bench_conn *c, struct bench_batch *b, size_t q,
                     const struct bench_reply *r)
{
	const unsigned char *p, *end;
	size_t first = q * b->per, size, k;
	uint64_t job, prev = 0;
	uint32_t n;

	size = b->n - first < b->per ? b->n - first : b->per;
	if (!b->gather) {
		if (!r->has_job || r->job == 0)
			bench_wrong(r, "accepted without a job id");
		if (b->slot[first] != SLOT_SENT)
			bench_wrong(r, "a second accepted for id %" PRIu64,
			            r->id);
		b->job[first] = r->job;
		b->slot[first] = SLOT_ACCEPTED;
		b->accepted++;
		bench_batch_mark(b);
		return;
	}
	if (!r->has_jobs || r->njobs != size)
		bench_wrong(r, "a gather of %zu accepted with %zu jobs", size,
		            r->njobs);
	p = (const unsigned char *)r->jobs;
	end = p + r->jobs_len;
	if (bench_mp_count(&p, end, false, &n) < 0)
		bench_wrong(r, "unreadable jobs");
	for (k = 0; k < size; k++) {
		if (bench_mp_uint(&p, end, &job) < 0 || job == 0)
			bench_wrong(r, "job %zu of a gather without an id", k);
		if (b->slot[first + k] != SLOT_SENT)
			bench_wrong(r, "a second accepted for gather %" PRIu64,
			            r->id);
		if (c->opts->check && job <= prev)
			bench_wrong(r, "gather job ids not ascending");
		prev = job;
		b->job[first + k] = job;
		b->slot[first + k] = SLOT_ACCEPTED;
	}
	b->accepted += size;
	bench_batch_mark(b);
}

static void
bench_batch_reply(struct bench_conn *c, struct bench_batch *b, size_t q,
                  const struct bench_reply *r)
{
	size_t first = q * b->per, size, i;

	size = b->n - first < b->per ? b->n - first : b->per;
	if (r->type == PROTO_ACCEPTED) {
		bench_batch_accepted(c, b, q, r);
		return;
	}
	if (r->type == PROTO_ERROR) {
		if (!b->refusal_ok)
			bench_wrong(r, "request %" PRIu64 " refused", r->id);
		for (i = first; i < first + size; i++) {
			if (b->slot[i] != SLOT_SENT)
				bench_wrong(r, "refused after accepted");
			b->slot[i] = SLOT_ENDED;
		}
		if (b->refused == 0)
			snprintf(b->refusal, sizeof(b->refusal), "%.*s: %.*s",
			         (int)r->error_len,
			         r->error != NULL ? r->error : "",
			         (int)r->message_len,
			         r->message != NULL ? r->message : "");
		b->refused += size;
		return;
	}
	if (r->type != PROTO_END && r->type != PROTO_PROGRESS &&
	    r->type != PROTO_OUTPUT)
		bench_wrong(r, "a %s for request %" PRIu64, bench_type_name(r),
		            r->id);
	if (b->gather && (!r->has_index || r->index >= size))
		bench_wrong(r, "a %s of a gather without a good index",
		            bench_type_name(r));
	if (!b->gather && r->has_index)
		bench_wrong(r, "a %s of a submit with an index",
		            bench_type_name(r));
	i = first + (b->gather ? (size_t)r->index : 0);
	if (b->slot[i] != SLOT_ACCEPTED)
		bench_wrong(r, "a %s of job %zu %s", bench_type_name(r), i,
		            b->slot[i] == SLOT_ENDED ? "after its end"
		                                     : "before accepted");
	if (!r->has_job || r->job != b->job[i])
		bench_wrong(r,
		            "a %s of job %" PRIu64 ", accepted as job %" PRIu64,
		            bench_type_name(r), r->job, b->job[i]);
	if (r->type != PROTO_END) {
		b->events++;
		return;
	}
	if (!b->watched)
		bench_wrong(r, "an end of job %" PRIu64 ", never watched",
		            r->job);
	if (!bench_str_eq(r->state, r->state_len, b->state))
		bench_wrong(r, "job %" PRIu64 " ended %.*s, not %s", r->job,
		            (int)r->state_len, r->state != NULL ? r->state : "",
		            b->state);
	if (!bench_str_eq(r->exec, r->exec_len, proto_execs[b->exec]))
		bench_wrong(r, "job %" PRIu64 " ran on %.*s, not %s", r->job,
		            (int)r->exec_len,
		            r->exec != NULL ? r->exec : "nothing",
		            proto_execs[b->exec]);
	if (b->fresh >= 0 &&
	    (!r->has_worker || (b->fresh ? r->worker != -1 : r->worker < 0)))
		bench_wrong(r,
		            "job %" PRIu64 " ran on worker %" PRId64
		            ", not on a %s one",
		            r->job, r->worker, b->fresh ? "fresh" : "warm");
	if (bench_str_eq(r->state, r->state_len, "succeeded"))
		bench_batch_result(b, r);
	b->slot[i] = SLOT_ENDED;
	b->ended++;
	b->t_last_end = bench_now();
}

static void
bench_rq_reply(struct bench_rq *q, const struct bench_reply *r)
{
	if (q->done)
		bench_wrong(r, "a second reply to request %" PRIu64, q->id);
	if (r->type != q->type)
		bench_wrong(r, "a %s for request %" PRIu64 ", expected %s",
		            bench_type_name(r), q->id,
		            proto_types[q->type].name);
	q->done = true;
	q->t_done = bench_now();
	q->job = r->job;
	q->total = r->total;
	q->rows = r->njobs;
	snprintf(q->state, sizeof(q->state), "%.*s", (int)r->state_len,
	         r->state != NULL ? r->state : "");
	if (r->counts != NULL &&
	    (!bench_map_uint(r->counts, r->counts_len, "queued", &q->queued) ||
	     !bench_map_uint(r->counts, r->counts_len, "running", &q->running)))
		bench_wrong(r, "counts without queued and running");
}

static void
bench_suite_reply(struct bench_conn *c, const struct bench_reply *r)
{
	struct bench_batch *b;
	size_t i;

	if (!r->has_id)
		bench_wrong(r, "a %s without an id", bench_type_name(r));
	for (i = 0; i < BENCH_MAX_RQ; i++)
		if (c->rq[i] != NULL && c->rq[i]->id == r->id) {
			bench_rq_reply(c->rq[i], r);
			return;
		}
	for (i = 0; i < BENCH_MAX_BATCHES; i++) {
		b = c->batch[i];
		if (b != NULL && r->id >= b->base &&
		    r->id - b->base < b->nreq) {
			bench_batch_reply(c, b, (size_t)(r->id - b->base), r);
			return;
		}
	}
	bench_wrong(r, "a %s for id %" PRIu64 ", never sent",
	            bench_type_name(r), r->id);
}

static void
bench_frame(struct bench_conn *c, const char *payload, size_t plen)
{
	struct bench_reply r, d;
	char why[256];

	c->replies++;
	bench_replies++;
	if (c->opts->full_decode) {
		if (bench_decode(c, payload, plen, &r, why, sizeof(why)) < 0)
			bench_wrong(NULL, "%s", why);
	} else if (bench_walk(payload, plen, &r) < 0) {
		/* proto_decode says what is wrong with it */
		if (bench_decode(c, payload, plen, &d, why, sizeof(why)) < 0)
			bench_wrong(NULL, "%s", why);
		bench_wrong(&d, "a %s the walker cannot read",
		            bench_type_name(&d));
	}
	if (c->opts->check && !c->opts->full_decode) {
		if (bench_decode(c, payload, plen, &d, why, sizeof(why)) < 0)
			bench_wrong(NULL, "%s", why);
		else if (d.type != r.type || d.has_id != r.has_id ||
		         d.id != r.id || d.has_job != r.has_job ||
		         d.job != r.job || d.has_index != r.has_index ||
		         d.index != r.index || d.has_total != r.has_total ||
		         d.total != r.total || d.has_worker != r.has_worker ||
		         d.worker != r.worker || d.has_jobs != r.has_jobs ||
		         d.njobs != r.njobs ||
		         !bench_same_str(d.state, d.state_len, r.state,
		                         r.state_len) ||
		         !bench_same_str(d.exec, d.exec_len, r.exec,
		                         r.exec_len) ||
		         !bench_same_str(d.result, d.result_len, r.result,
		                         r.result_len))
			bench_wrong(&d,
			            "proto_decode and the walker "
			            "disagree on a %s",
			            bench_type_name(&d));
	}
	/* --check: the fence's pong must come after everything else */
	if (c->fence != 0) {
		if (r.type == PROTO_PONG && r.has_id && r.id == c->fence) {
			c->fence = 0;
			return;
		}
		bench_wrong(&r, "a %s after the fence ping",
		            bench_type_name(&r));
	}
	if (c->suite)
		bench_suite_reply(c, &r);
	else
		bench_on_reply(c, &r);
}

/* One read, then every complete frame in the buffer. */
void
bench_read_replies(struct bench_conn *c)
{
	const char *payload;
	size_t off = 0, plen;
	ssize_t used;

	c->rlen += bench_read_some(c->fd, c->rbuf + c->rlen,
	                           BENCH_RBUF - c->rlen, "concd");
	c->reads++;
	while ((used = proto_frame_next(c->rbuf + off, c->rlen - off, &payload,
	                                &plen)) > 0) {
		off += (size_t)used;
		bench_frame(c, payload, plen);
	}
	if (used < 0)
		bench_wrong(NULL, "a frame larger than %d bytes",
		            PROTO_MAX_FRAME);
	if (off > 0) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
}

/* Replies, if any come within ms: true when some were read. */
bool
bench_poll_read(struct bench_conn *c, int ms)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};

	if (poll(&p, 1, ms) <= 0)
		return false;
	bench_read_replies(c);
	return true;
}

/* ---- requests ---- */

static void
bench_put_be64(char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (char)v;
}

/* {key: v}, packed. */
void
bench_args_uint(struct pbuf *b, const char *key, uint64_t v)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, b, pbuf_write_cb);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, key, strlen(key));
	msgpack_pack_uint64(&pk, v);
}

/* {key: [s...]}, packed. */
void
bench_args_list(struct pbuf *b, const char *key, const char *const *s, size_t n)
{
	msgpack_packer pk;
	size_t i;

	msgpack_packer_init(&pk, b, pbuf_write_cb);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, key, strlen(key));
	msgpack_pack_array(&pk, n);
	for (i = 0; i < n; i++)
		msgpack_pack_str_with_body(&pk, s[i], strlen(s[i]));
}

/* The submit frame of a spec, and the offset of its 8 id bytes. */
void
bench_tmpl_make(struct bench_tmpl *t, const struct bench_spec *s)
{
	static const char idkey[] = "\xa2id\xcf";
	struct proto_enc e;
	struct pbuf *b = &t->frame;
	size_t i;

	b->len = 0;
	proto_enc_begin(&e, b, PROTO_SUBMIT, BENCH_ID_BASE);
	proto_enc_cstr(&e, PF_TASK, s->task);
	if (s->args != NULL && s->args->len > 0)
		proto_enc_raw(&e, PF_ARGS, s->args->data, s->args->len);
	proto_enc_cstr(&e, PF_EXEC, proto_execs[s->exec]);
	if (s->fresh)
		proto_enc_bool(&e, PF_FRESH, true);
	if (s->watch)
		proto_enc_bool(&e, PF_WATCH, true);
	if (s->group != NULL)
		proto_enc_cstr(&e, PF_GROUP, s->group);
	if (s->priority != 0)
		proto_enc_i64(&e, PF_PRIORITY, s->priority);
	if (proto_enc_end(&e) < 0)
		bench_die(2, "cannot encode a submit");
	for (i = 0; i + 4 + 8 <= b->len; i++)
		if (memcmp(b->data + i, idkey, 4) == 0)
			break;
	if (i + 4 + 8 > b->len)
		bench_die(2, "no 64-bit id in the submit frame");
	t->id_at = i + 4;
}

void
bench_tmpl_free(struct bench_tmpl *t)
{
	pbuf_free(&t->frame);
}

/* The noop submit frame for executor x. */
static void
bench_template(struct bench_conn *c, enum proto_exec x)
{
	const struct bench_spec s = {.task = "noop", .exec = x, .watch = true};

	bench_tmpl_make(&c->tmpl[x], &s);
}

/* k frames of t, ids from id on, at the end of b. */
static void
bench_tmpl_put(struct pbuf *b, const struct bench_tmpl *t, uint64_t id,
               size_t k)
{
	size_t i, len = t->frame.len;
	char *p;

	pbuf_reserve(b, k * len);
	p = b->data + b->len;
	for (i = 0; i < k; i++, p += len) {
		memcpy(p, t->frame.data, len);
		bench_put_be64(p + t->id_at, id + i);
	}
	b->len += k * len;
}

static void
bench_begin(struct bench_conn *c, enum proto_exec x, size_t n)
{
	if (n > c->cap) {
		free(c->slot);
		free(c->job);
		c->slot = malloc(n);
		c->job = malloc(n * sizeof(*c->job));
		if (c->slot == NULL || c->job == NULL)
			bench_die(2, "out of memory");
		c->cap = n;
	}
	memset(c->slot, SLOT_FREE, n);
	c->base = c->next_id;
	c->next_id += n;
	c->exec = x;
	c->sent = c->accepted = c->ended = 0;
	c->reads = c->writes = 0;
}

/* Append k submits, ids from c->base + c->sent on, to c->wbuf. */
static void
bench_queue_submits(struct bench_conn *c, size_t k)
{
	size_t i;

	bench_tmpl_put(&c->wbuf, &c->tmpl[c->exec], c->base + c->sent, k);
	for (i = 0; i < k; i++)
		c->slot[c->sent + i] = SLOT_SENT;
	c->sent += k;
}

static void
bench_flush(struct bench_conn *c)
{
	bench_write_all(c->fd, c->wbuf.data, c->wbuf.len, "concd");
	c->wbuf.len = 0;
	c->writes++;
}

/*
 * Write all of c->wbuf, reading replies whenever concd has some: however
 * much is written, neither side waits for the other.
 */
void
bench_send(struct bench_conn *c)
{
	struct pollfd p = {.fd = c->fd};
	size_t off = 0;
	ssize_t n;
	int rc;

	while (off < c->wbuf.len) {
		p.events = POLLIN | POLLOUT;
		if ((rc = poll(&p, 1, BENCH_IO_TIMEOUT * 1000)) < 0) {
			if (errno == EINTR)
				continue;
			bench_die(2, "poll: %s", strerror(errno));
		}
		if (rc == 0)
			bench_die(1, "concd: no progress for %d s",
			          BENCH_IO_TIMEOUT);
		if (p.revents & POLLIN) {
			bench_read_replies(c);
			continue;
		}
		n = send(c->fd, c->wbuf.data + off, c->wbuf.len - off,
		         MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			bench_die(1, "concd: write: %s", strerror(errno));
		off += (size_t)n;
	}
	c->wbuf.len = 0;
	c->writes++;
}

/*
 * --check: a ping after the measurement must be answered next, so no
 * reply is missing or left over.
 */
void
bench_fence(struct bench_conn *c)
{
	struct proto_enc e;

	if (!c->opts->check)
		return;
	c->fence = c->next_id++;
	proto_enc_begin(&e, &c->wbuf, PROTO_PING, c->fence);
	proto_enc_end(&e);
	bench_send(c);
	while (c->fence != 0)
		bench_read_replies(c);
	if (c->rlen != 0)
		bench_wrong(NULL, "%zu bytes after the pong", c->rlen);
}

/* ---- batches and single requests ---- */

/* n jobs, per in each request (1: submits, more: gathers). */
void
bench_batch_init(struct bench_batch *b, size_t n, size_t per)
{
	memset(b, 0, sizeof(*b));
	b->n = n;
	b->per = per;
	b->nreq = (n + per - 1) / per;
	b->watched = true;
	b->fresh = -1;
	b->state = "succeeded";
	if ((b->slot = calloc(n > 0 ? n : 1, 1)) == NULL ||
	    (b->job = calloc(n > 0 ? n : 1, sizeof(*b->job))) == NULL)
		bench_die(2, "out of memory");
}

/* Its replies go to b from now on: request ids are taken for it. */
void
bench_batch_attach(struct bench_conn *c, struct bench_batch *b)
{
	size_t i;

	for (i = 0; i < BENCH_MAX_BATCHES && c->batch[i] != NULL; i++)
		;
	if (i == BENCH_MAX_BATCHES)
		bench_die(2, "more than %d batches at once", BENCH_MAX_BATCHES);
	c->batch[i] = b;
	b->base = c->next_id;
	c->next_id += b->nreq;
}

void
bench_batch_detach(struct bench_conn *c, struct bench_batch *b)
{
	size_t i;

	for (i = 0; i < BENCH_MAX_BATCHES; i++)
		if (c->batch[i] == b)
			c->batch[i] = NULL;
	free(b->slot);
	free(b->job);
	b->slot = NULL;
	b->job = NULL;
}

/* The next k submits of b (per 1), from template t, into c->wbuf. */
void
bench_batch_submits(struct bench_conn *c, struct bench_batch *b,
                    const struct bench_tmpl *t, size_t k)
{
	size_t i;

	if (b->per != 1)
		bench_die(2, "submits are one job each");
	bench_tmpl_put(&c->wbuf, t, b->base + b->sent, k);
	for (i = 0; i < k; i++)
		b->slot[b->sent + i] = SLOT_SENT;
	b->sent += k;
}

/* All of b's gathers, each job as s says, into c->wbuf. */
void
bench_batch_gathers(struct bench_conn *c, struct bench_batch *b,
                    const struct bench_spec *s)
{
	struct proto_enc e;
	size_t q, k, size;

	b->gather = true;
	for (q = 0; q < b->nreq; q++) {
		size = b->n - q * b->per < b->per ? b->n - q * b->per : b->per;
		proto_enc_begin(&e, &c->wbuf, PROTO_GATHER, b->base + q);
		proto_enc_key(&e, PF_JOBS);
		proto_enc_array_open(&e);
		for (k = 0; k < size; k++) {
			proto_enc_map_open(&e);
			proto_enc_cstr(&e, PF_TASK, s->task);
			if (s->args != NULL && s->args->len > 0)
				proto_enc_raw(&e, PF_ARGS, s->args->data,
				              s->args->len);
			proto_enc_cstr(&e, PF_EXEC, proto_execs[s->exec]);
			if (s->fresh)
				proto_enc_bool(&e, PF_FRESH, true);
			proto_enc_close(&e);
			b->slot[q * b->per + k] = SLOT_SENT;
		}
		if (proto_enc_end(&e) < 0)
			bench_die(2, "a gather of %zu is too large", size);
		b->sent += size;
	}
}

/* Jobs whose story is told: ended (or accepted, unwatched) or refused. */
size_t
bench_batch_settled(const struct bench_batch *b)
{
	return (b->watched ? b->ended : b->accepted) + b->refused;
}

/* q awaits one reply of type t, to a request the caller queues next. */
void
bench_rq_begin(struct bench_conn *c, struct bench_rq *q, enum proto_type t)
{
	size_t i;

	memset(q, 0, sizeof(*q));
	q->id = c->next_id++;
	q->type = (int)t;
	for (i = 0; i < BENCH_MAX_RQ && c->rq[i] != NULL; i++)
		;
	if (i == BENCH_MAX_RQ)
		bench_die(2, "more than %d requests at once", BENCH_MAX_RQ);
	c->rq[i] = q;
}

/* q is answered: a reply with its id is wrong from now on. */
void
bench_rq_end(struct bench_conn *c, struct bench_rq *q)
{
	size_t i;

	for (i = 0; i < BENCH_MAX_RQ; i++)
		if (c->rq[i] == q)
			c->rq[i] = NULL;
}

/* Send what is queued, wait for q's reply; seconds it took. */
double
bench_rq_wait(struct bench_conn *c, struct bench_rq *q)
{
	double t0 = bench_now();

	bench_send(c);
	while (!q->done)
		bench_read_replies(c);
	bench_rq_end(c, q);
	return q->t_done - t0;
}

/* Seconds of one ping round trip to concd. */
double
bench_ping(struct bench_conn *c)
{
	struct bench_rq q;
	struct proto_enc e;

	bench_rq_begin(c, &q, PROTO_PONG);
	proto_enc_begin(&e, &c->wbuf, PROTO_PING, q.id);
	proto_enc_end(&e);
	return bench_rq_wait(c, &q);
}

/* ---- the noop suite's measurements ---- */

/*
 * (b): median microseconds from writing a submit to reading its end, one
 * job at a time.
 */
static double
bench_round_trips(struct bench_conn *c, enum proto_exec x, size_t n, double *us)
{
	size_t i;
	double t0, lo, hi;

	bench_begin(c, x, n);
	for (i = 0; i < n; i++) {
		t0 = bench_now();
		bench_queue_submits(c, 1);
		bench_flush(c);
		while (c->ended < i + 1)
			bench_read_replies(c);
		us[i] = (bench_now() - t0) * 1e6;
	}
	bench_fence(c);
	return bench_median(us, n, &lo, &hi);
}

/* (c): jobs per second with up to w submits in flight. */
static double
bench_pipelined(struct bench_conn *c, enum proto_exec x, size_t n,
                double *cpu_daemon, double *cpu_client)
{
	const struct bench_opts *o = c->opts;
	size_t room, k;
	double t0, t, c0, d0, d1;

	bench_begin(c, x, n);
	d0 = bench_proc_cpu(c->daemon);
	c0 = bench_self_cpu();
	t0 = bench_now();
	while (c->ended < n) {
		room = o->window - (c->sent - c->ended);
		k = n - c->sent < room ? n - c->sent : room;
		if (k > 0 && (k >= o->batch || c->sent + k == n)) {
			bench_queue_submits(c, k);
			bench_flush(c);
		}
		if (c->ended < n)
			bench_read_replies(c);
	}
	t = bench_now() - t0;
	*cpu_client = (bench_self_cpu() - c0) / t;
	d1 = bench_proc_cpu(c->daemon);
	*cpu_daemon = d0 >= 0 && d1 >= 0 && t >= 0.2 ? (d1 - d0) / t : -1;
	bench_fence(c);
	return (double)n / t;
}

static void
bench_hello(struct bench_conn *c)
{
	struct proto_enc e;
	struct bench_reply r;
	const char *payload;
	char why[256];
	size_t plen;
	ssize_t used;

	proto_enc_begin(&e, &c->wbuf, PROTO_HELLO, 1);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	proto_enc_end(&e);
	bench_flush(c);
	while ((used = proto_frame_next(c->rbuf, c->rlen, &payload, &plen)) ==
	       0)
		c->rlen += bench_read_some(c->fd, c->rbuf + c->rlen,
		                           BENCH_RBUF - c->rlen, "hello");
	if (used < 0 ||
	    bench_decode(c, payload, plen, &r, why, sizeof(why)) < 0)
		bench_wrong(NULL, "hello: %s", used < 0 ? "huge frame" : why);
	if (r.type != PROTO_WELCOME || r.id != 1)
		bench_wrong(&r, "hello answered by %s", bench_type_name(&r));
	memmove(c->rbuf, c->rbuf + used, c->rlen - (size_t)used);
	c->rlen -= (size_t)used;
}

void
bench_conn_open(struct bench_conn *c, const char *path,
                const struct bench_opts *o)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	memset(c, 0, sizeof(*c));
	c->opts = o;
	if ((c->fd = bench_connect(path)) < 0)
		bench_die(2, "connect %s: %s", path, strerror(errno));
	bench_timeouts(c->fd);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		c->daemon = cred.pid;
	if ((c->rbuf = malloc(BENCH_RBUF)) == NULL)
		bench_die(2, "out of memory");
	msgpack_zone_init(&c->zone, 4096);
	c->next_id = BENCH_ID_BASE;
	bench_template(c, PX_LOOP);
	bench_template(c, PX_THREAD);
	bench_template(c, PX_PROCESS);
	bench_hello(c);
}

void
bench_conn_close(struct bench_conn *c)
{
	int i;

	close(c->fd);
	free(c->rbuf);
	free(c->slot);
	free(c->job);
	pbuf_free(&c->wbuf);
	for (i = 0; i < PX_COUNT; i++)
		bench_tmpl_free(&c->tmpl[i]);
	msgpack_zone_destroy(&c->zone);
}

/* ---- the noop suite's report ---- */

static struct bench_row
bench_row(const struct bench_run *runs, size_t n, size_t off)
{
	double v[n];
	size_t i;

	for (i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&runs[i] + off);
	return bench_stats(v, n);
}

static void
bench_report(const struct bench_opts *o, const struct bench_run *runs, size_t n)
{
	/* DESIGN.md section 9 */
	static const double rt_target[PX_COUNT] = {
	    [PX_LOOP] = 1.2,
	    [PX_THREAD] = 2.0,
	    [PX_PROCESS] = 2.0,
	};
	static const double pl_target[PX_COUNT] = {
	    [PX_LOOP] = 500000,
	    [PX_THREAD] = 250000,
	    [PX_PROCESS] = 150000,
	};
	static const enum proto_exec xs[] = {PX_LOOP, PX_THREAD, PX_PROCESS};
	struct bench_row base, row, cd, cc, cpu;
	char name[32], b[4][32], what[64];
	size_t k;

	printf("\n%-18s %10s %10s %10s   %-38s %-13s\n", "", "median", "min",
	       "max", "", "target");
	base = bench_row(runs, n, offsetof(struct bench_run, ping_us));
	if (o->rt > 0) {
		cpu =
		    bench_row(runs, n, offsetof(struct bench_run, ping_cpu_us));
		if (cpu.med >= 0)
			snprintf(what, sizeof(what), "us (echo cpu %.1f us)",
			         cpu.med);
		else
			snprintf(what, sizeof(what), "us");
		printf("%-18s %10.2f %10.2f %10.2f   %s\n", "ping-pong",
		       base.med, base.lo, base.hi, what);
	}
	for (k = 0; k < 3 && o->rt > 0; k++) {
		enum proto_exec x = xs[k];

		if (!o->exec[x])
			continue;
		row = bench_row(runs, n,
		                offsetof(struct bench_run, rt_us) +
		                    x * sizeof(double));
		snprintf(name, sizeof(name), "%s round trip", proto_execs[x]);
		cpu = bench_row(runs, n,
		                offsetof(struct bench_run, rt_cpu_us) +
		                    x * sizeof(double));
		if (cpu.med >= 0)
			snprintf(what, sizeof(what),
			         "us (%.2fx ping-pong, cpu %.1f us)",
			         row.med / base.med, cpu.med);
		else
			snprintf(what, sizeof(what), "us (%.2fx ping-pong)",
			         row.med / base.med);
		printf("%-18s %10.2f %10.2f %10.2f   %-38s <= %.1fx%6s %s\n",
		       name, row.med, row.lo, row.hi, what, rt_target[x], "",
		       row.med / base.med <= rt_target[x] ? "PASS" : "MISS");
	}
	for (k = 0; k < 3 && o->pipelined > 0; k++) {
		enum proto_exec x = xs[k];

		if (!o->exec[x])
			continue;
		row = bench_row(runs, n,
		                offsetof(struct bench_run, jobs_s) +
		                    x * sizeof(double));
		cd = bench_row(runs, n,
		               offsetof(struct bench_run, cpu_daemon) +
		                   x * sizeof(double));
		cc = bench_row(runs, n,
		               offsetof(struct bench_run, cpu_client) +
		                   x * sizeof(double));
		snprintf(name, sizeof(name), "%s pipelined", proto_execs[x]);
		if (cd.med >= 0)
			snprintf(what, sizeof(what),
			         "jobs/s (cpu %3.0f%% + %3.0f%%, %.2f us/job)",
			         cd.med * 100, cc.med * 100,
			         cd.med * 1e6 / row.med);
		else
			snprintf(what, sizeof(what), "jobs/s (client %.0f%%)",
			         cc.med * 100);
		printf("%-18s %10s %10s %10s   %-38s >= %-10s %s\n", name,
		       bench_thousands(row.med, b[0], sizeof(b[0])),
		       bench_thousands(row.lo, b[1], sizeof(b[1])),
		       bench_thousands(row.hi, b[2], sizeof(b[2])), what,
		       bench_thousands(pl_target[x], b[3], sizeof(b[3])),
		       row.med >= pl_target[x] ? "PASS" : "MISS");
	}
	if (o->pipelined > 0)
		printf("cpu: per round trip, of the echo process or concd; "
		       "pipelined, concd + client\nin %% of one core (the "
		       "machine has %ld), and concd's per job\n",
		       sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);
}

static void
bench_warm_up(struct bench_conn *c, const struct bench_opts *o, int echo_fd,
              const struct pbuf *frame, char *echo_buf, double *us)
{
	size_t rt = o->rt < 1000 ? o->rt : 1000;
	size_t pl = o->pipelined < 4 * o->window ? o->pipelined : 4 * o->window;
	double d, cl;
	int x;

	if (rt > 0)
		bench_pingpong(echo_fd, frame, rt, echo_buf, us);
	for (x = 0; x < PX_COUNT; x++) {
		if (!o->exec[x])
			continue;
		if (rt > 0)
			bench_round_trips(c, x, rt, us);
		if (pl > 0)
			bench_pipelined(c, x, pl, &d, &cl);
	}
}

/* Microseconds of CPU per trip; -1 when too short to tell from ticks. */
static double
bench_cpu_per(double cpu0, double cpu1, double wall, size_t n)
{
	if (cpu0 < 0 || cpu1 < 0 || wall < 0.2)
		return -1;
	return (cpu1 - cpu0) * 1e6 / (double)n;
}

/* Run r: every measurement once, the baseline first. */
static void
bench_one_run(struct bench_conn *c, const struct bench_opts *o, int echo_fd,
              const struct pbuf *frame, char *echo_buf, double *us,
              struct bench_run *u, size_t r)
{
	double cpu, t0;
	int x;

	if (o->rt > 0) {
		cpu = bench_proc_cpu(bench_echo);
		t0 = bench_now();
		u->ping_us =
		    bench_pingpong(echo_fd, frame, o->rt, echo_buf, us);
		u->ping_cpu_us = bench_cpu_per(cpu, bench_proc_cpu(bench_echo),
		                               bench_now() - t0, o->rt);
	}
	for (x = 0; x < PX_COUNT && o->rt > 0; x++) {
		if (o->exec[x]) {
			cpu = bench_proc_cpu(c->daemon);
			t0 = bench_now();
			u->rt_us[x] = bench_round_trips(c, x, o->rt, us);
			u->rt_cpu_us[x] =
			    bench_cpu_per(cpu, bench_proc_cpu(c->daemon),
			                  bench_now() - t0, o->rt);
		}
	}
	for (x = 0; x < PX_COUNT && o->pipelined > 0; x++) {
		if (o->exec[x]) {
			u->jobs_s[x] = bench_pipelined(c, x, o->pipelined,
			                               &u->cpu_daemon[x],
			                               &u->cpu_client[x]);
			u->per_read[x] =
			    2.0 * (double)o->pipelined / (double)c->reads;
		}
	}
	if (!o->verbose)
		return;
	printf("run %zu:", r + 1);
	if (o->rt > 0)
		printf(" ping-pong %.2f us;", u->ping_us);
	for (x = 0; x < PX_COUNT; x++) {
		if (!o->exec[x])
			continue;
		if (o->rt > 0)
			printf(" %s rt %.2f us;", proto_execs[x], u->rt_us[x]);
		if (o->pipelined > 0)
			printf(" %s %.0f jobs/s, %.0f replies per read;",
			       proto_execs[x], u->jobs_s[x], u->per_read[x]);
	}
	printf("\n");
	fflush(stdout);
}

/* The noop suite: (a), (b) and (c) above. */
static void
bench_noop(const struct bench_opts *o, const char *path)
{
	struct bench_conn c;
	struct bench_run *runs;
	struct pbuf frame = {0};
	char *echo_buf;
	double *us; /* one run's round trips */
	int echo_fd;
	size_t r;

	echo_fd = bench_echo_start(); /* first: it inherits no connection */
	bench_conn_open(&c, path, o);
	if ((echo_buf = malloc(BENCH_RBUF)) == NULL ||
	    (us = calloc(o->rt > 0 ? o->rt : 1, sizeof(*us))) == NULL ||
	    (runs = calloc(o->runs, sizeof(*runs))) == NULL)
		bench_die(2, "out of memory");
	/* the baseline's frame has the size of a submit */
	pbuf_append(&frame, c.tmpl[PX_LOOP].frame.data,
	            c.tmpl[PX_LOOP].frame.len);

	printf("\nnoop: concd pid %d on %s; %zu runs of %zu round trips"
	       " and %zu pipelined jobs (window %zu, %zu per write)%s\n",
	       (int)c.daemon, path, o->runs, o->rt, o->pipelined, o->window,
	       o->batch, o->check ? "; checking" : "");
	fflush(stdout);

	bench_warm_up(&c, o, echo_fd, &frame, echo_buf, us);
	for (r = 0; r < o->runs; r++)
		bench_one_run(&c, o, echo_fd, &frame, echo_buf, us, &runs[r],
		              r);
	bench_report(o, runs, o->runs);

	close(echo_fd);
	bench_reap(bench_echo, "the echo process");
	bench_echo = -1;
	bench_conn_close(&c);
	pbuf_free(&frame);
	free(echo_buf);
	free(us);
	free(runs);
}

static void
bench_suite_option(struct bench_opts *o, const char *name)
{
	int i;

	if (strcmp(name, "all") == 0) {
		o->suites = (1u << SUITE_COUNT) - 1;
		return;
	}
	for (i = 0; i < SUITE_COUNT; i++)
		if (strcmp(name, bench_suites[i].name) == 0) {
			o->suites |= 1u << i;
			return;
		}
	bench_die(2,
	          "--suite must be noop, fresh, cpu, sleep, exec, deep, idle, "
	          "store or all");
}

int
main(int argc, char *argv[])
{
	struct bench_opts o = {
	    .runs = 5,
	    .rt = 10000,
	    .pipelined = 1000000,
	    .window = 4096,
	    .warm_jobs = 300,
	    .fresh_jobs = 30,
	    .primes = 300000000,
	    .sleepers = 100000,
	    .sleep_ms = 1000,
	    .execs = 1000,
	    .deep = 1000000,
	    .chain = 10000,
	};
	const struct bench_suite_row *s;
	struct bench_daemon *main_daemon = NULL;
	const char *path = NULL;
	static const char *const main_flags[] = {"-t", "2", NULL};
	bool own = false;
	int ch, i;

	while ((ch = getopt_long(argc, argv, "hv", bench_longopts, NULL)) !=
	       -1) {
		switch (ch) {
		case 's':
			o.socket = optarg;
			break;
		case 'S':
			o.spawn = optarg;
			break;
		case OPT_SUITE:
			bench_suite_option(&o, optarg);
			break;
		case 'r':
			o.runs = bench_number(optarg, "--runs", 1, 1000);
			break;
		case 'n':
			o.rt = bench_number(optarg, "--rt", 0, 100000000);
			break;
		case 'p':
			o.pipelined =
			    bench_number(optarg, "--pipelined", 0, 1000000000);
			break;
		case 'w':
			o.window = bench_number(optarg, "--window", 1, 1000000);
			break;
		case OPT_BATCH:
			o.batch = bench_number(optarg, "--batch", 1, 1000000);
			break;
		case 'x':
			if ((ch = proto_exec_lookup(optarg, strlen(optarg))) <
			        0 ||
			    ch == PX_AUTO)
				bench_die(
				    2,
				    "--exec must be loop, thread or process");
			o.exec[ch] = true;
			break;
		case OPT_WARM_JOBS:
			o.warm_jobs =
			    bench_number(optarg, "--warm-jobs", 1, 10000000);
			break;
		case OPT_FRESH_JOBS:
			o.fresh_jobs =
			    bench_number(optarg, "--fresh-jobs", 1, 100000);
			break;
		case OPT_PRIMES:
			o.primes =
			    bench_number(optarg, "--primes", 2, 4000000000ULL);
			break;
		case OPT_SLEEPERS:
			o.sleepers =
			    bench_number(optarg, "--sleepers", 1, 10000000);
			break;
		case OPT_SLEEP_MS:
			o.sleep_ms =
			    bench_number(optarg, "--sleep-ms", 1, 60000);
			break;
		case OPT_EXECS:
			o.execs = bench_number(optarg, "--execs", 1, 100000);
			break;
		case OPT_DEEP:
			o.deep = bench_number(optarg, "--deep", 10, 50000000);
			break;
		case OPT_CHAIN:
			o.chain = bench_number(optarg, "--chain", 2,
			                       BENCH_GATHER_MAX);
			break;
		case 'c':
			o.check = true;
			break;
		case OPT_NO_STORE:
			bench_no_store = o.no_store = true;
			break;
		case OPT_FULL_DECODE:
			o.full_decode = true;
			break;
		case 'v':
			o.verbose = true;
			break;
		case 'h':
			bench_usage(0);
		default:
			bench_usage(2);
		}
	}
	if (optind != argc || (o.socket != NULL) == (o.spawn != NULL))
		bench_usage(2);
	if (o.suites == 0)
		o.suites = 1u << SUITE_NOOP;
	if (!o.exec[PX_LOOP] && !o.exec[PX_THREAD] && !o.exec[PX_PROCESS])
		o.exec[PX_LOOP] = o.exec[PX_THREAD] = o.exec[PX_PROCESS] = true;
	if (o.batch == 0)
		o.batch = o.window / 4 > 1024 ? 1024 : o.window / 4;
	if (o.batch == 0)
		o.batch = 1;
	if (o.batch > o.window)
		o.batch = o.window;
	bench_quiet_daemons = !o.verbose;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("concd-bench: %ld cpus%s\n", sysconf(_SC_NPROCESSORS_ONLN),
	       o.check ? "; checking every reply" : "");
	for (i = 0; i < SUITE_COUNT; i++) {
		s = &bench_suites[i];
		if (!(o.suites & (1u << i)))
			continue;
		if (s->spawns) {
			if (o.spawn == NULL) {
				printf("\n%s: skipped: it needs --spawn (it "
				       "starts a concd per configuration)\n",
				       s->name);
				continue;
			}
			s->run(&o, NULL);
			continue;
		}
		if (path == NULL && o.spawn != NULL) {
			main_daemon = bench_daemon_start(o.spawn, main_flags);
			path = main_daemon->sock;
			own = true;
		} else if (path == NULL)
			path = o.socket;
		s->run(&o, path);
	}
	printf("\n%" PRIu64 " replies checked%s: all correct\n", bench_replies,
	       o.check ? " by the walker and by proto_decode" : "");
	if (own)
		bench_daemon_stop(main_daemon);
	bench_cleanup();
	return 0;
}
