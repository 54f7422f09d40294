/*
 * bench.c -- concd-bench, the figures of DESIGN.md section 9 for no-op
 * jobs on one connection:
 *
 *   (a) a bare Unix-socket ping-pong between two processes, the baseline;
 *   (b) submit -> accepted -> end round trips, one job at a time, on the
 *       loop and the thread executor (and the process one with --exec
 *       process), as ratios to the baseline;
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
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define BENCH_ID_BASE	  (UINT64_C(1) << 32) /* ids encode as 0xcf + 8 */
#define BENCH_RBUF	  (2 * 1024 * 1024)
#define BENCH_IO_TIMEOUT  30 /* seconds without a reply: give up */
#define BENCH_SPAWN_WAIT  5000 /* ms for a spawned concd to listen */
#define BENCH_STOP_WAIT	  5000 /* ms for it to exit on SIGTERM */

enum { OPT_BATCH = 256, OPT_FULL_DECODE };

static const struct option bench_longopts[] = {
	{"socket", required_argument, NULL, 's'},
	{"spawn", required_argument, NULL, 'S'},
	{"runs", required_argument, NULL, 'r'},
	{"rt", required_argument, NULL, 'n'},
	{"pipelined", required_argument, NULL, 'p'},
	{"window", required_argument, NULL, 'w'},
	{"batch", required_argument, NULL, OPT_BATCH},
	{"exec", required_argument, NULL, 'x'},
	{"check", no_argument, NULL, 'c'},
	{"full-decode", no_argument, NULL, OPT_FULL_DECODE},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

struct bench_opts {
	const char *socket;
	const char *spawn;
	size_t runs;
	size_t rt;
	size_t pipelined;
	size_t window;
	size_t batch;
	bool exec[PX_COUNT]; /* the executors measured */
	bool check;
	bool full_decode; /* proto_decode for every reply, no walker */
	bool verbose;
};

/* What the walker (or proto_decode) found in one reply. */
struct bench_reply {
	int type; /* enum proto_type, -1: unknown */
	uint64_t id, job;
	bool has_id, has_job;
	const char *state, *exec, *result, *error, *message;
	size_t state_len, exec_len, result_len, error_len, message_len;
};

enum bench_slot { SLOT_FREE, SLOT_SENT, SLOT_ACCEPTED, SLOT_ENDED };

/* One connection to concd and the bookkeeping of the current measurement. */
struct bench_conn {
	int fd;
	pid_t daemon; /* from SO_PEERCRED, for its CPU time */
	char *rbuf;
	size_t rlen;
	struct pbuf wbuf;
	msgpack_zone zone;
	uint64_t next_id;

	/* the submit frame, one per executor, and where its id sits */
	struct pbuf tmpl[PX_COUNT];
	size_t id_at[PX_COUNT];

	/* per request of the current measurement, indexed by id - base */
	uint8_t *slot;
	uint64_t *job;
	size_t cap;
	uint64_t base;
	size_t sent, accepted, ended;
	enum proto_exec exec;
	uint64_t last_job;
	uint64_t fence; /* id of the ping awaited, 0: none */
	size_t reads, writes;
	uint64_t replies; /* checked, all measurements */

	const struct bench_opts *opts;
};

/* Figures of one run. */
struct bench_run {
	double ping_us, ping_cpu_us; /* the echo process's cpu per trip */
	double rt_us[PX_COUNT], rt_cpu_us[PX_COUNT]; /* concd's cpu */
	double jobs_s[PX_COUNT];
	double cpu_daemon[PX_COUNT], cpu_client[PX_COUNT]; /* fractions */
	double per_read[PX_COUNT]; /* pipelined replies per read() */
};

static pid_t bench_spawned = -1;
static pid_t bench_echo = -1;
static char bench_tmpdir[64];
static char bench_sockpath[sizeof(((struct sockaddr_un *)0)->sun_path)];

static void bench_cleanup(void);

static void __attribute__((noreturn, format(printf, 2, 3)))
bench_die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("concd-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	bench_cleanup();
	exit(status);
}

static void __attribute__((noreturn))
bench_usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: concd-bench [--socket PATH | --spawn CONCD] [--runs R] "
	    "[--rt N]\n"
	    "                   [--pipelined N] [--window W] [--batch B]\n"
	    "                   [--exec loop|thread|process] [--check] "
	    "[-v]\n"
	    "  --socket PATH     use the concd listening on PATH\n"
	    "  --spawn CONCD     start CONCD -f -t 2 on a private socket\n"
	    "  --runs R          runs; figures are medians (default 5)\n"
	    "  --rt N            round trips per run and kind, 0: none "
	    "(default 10000)\n"
	    "  --pipelined N     pipelined jobs per run and executor, 0: "
	    "none\n"
	    "                    (default 1000000)\n"
	    "  --window W        submits in flight (default 4096)\n"
	    "  --batch B         submits per write (default W/4, at most "
	    "1024)\n"
	    "  --exec X          measure executor X: loop, thread or process\n"
	    "                    (repeatable; default loop and thread)\n"
	    "  --check           decode every reply twice and check more: "
	    "for tests\n"
	    "  --full-decode     decode replies with proto_decode only\n"
	    "  -v, --verbose     print every run\n"
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

static double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
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
static double
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

static int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v in place. */
static double
bench_median(double *v, size_t n, double *min, double *max)
{
	qsort(v, n, sizeof(*v), bench_cmp_double);
	*min = v[0];
	*max = v[n - 1];
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* 1234567 -> "1,234,567" */
static const char *
bench_thousands(double v, char *buf, size_t size)
{
	char digits[32];
	size_t n, i, o = 0;

	snprintf(digits, sizeof(digits), "%.0f", v);
	n = strlen(digits);
	for (i = 0; i < n && o + 2 < size; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
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

/* ---- a private concd ---- */

static void
bench_spawn(const char *concd)
{
	struct timespec tick = {0, 5 * 1000 * 1000};
	int status, fd, waited;

	snprintf(bench_tmpdir, sizeof(bench_tmpdir), "/tmp/concd-bench.XXXXXX");
	if (mkdtemp(bench_tmpdir) == NULL)
		bench_die(2, "mkdtemp: %s", strerror(errno));
	snprintf(bench_sockpath, sizeof(bench_sockpath), "%s/sock",
	    bench_tmpdir);
	if ((bench_spawned = fork()) < 0)
		bench_die(2, "fork: %s", strerror(errno));
	if (bench_spawned == 0) {
		/* do not outlive the benchmark, however it ends */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl(concd, concd, "-f", "-s", bench_sockpath, "-t", "2",
		    (char *)NULL);
		fprintf(stderr, "concd-bench: %s: %s\n", concd,
		    strerror(errno));
		_exit(127);
	}
	for (waited = 0; waited < BENCH_SPAWN_WAIT; waited += 5) {
		if (waitpid(bench_spawned, &status, WNOHANG) == bench_spawned) {
			bench_spawned = -1;
			bench_die(2, "%s exited before listening", concd);
		}
		if ((fd = bench_connect(bench_sockpath)) >= 0) {
			close(fd);
			return;
		}
		nanosleep(&tick, NULL);
	}
	bench_die(2, "%s did not listen on %s within %d ms", concd,
	    bench_sockpath, BENCH_SPAWN_WAIT);
}

static void
bench_reap(pid_t pid, const char *what)
{
	struct timespec tick = {0, 5 * 1000 * 1000};
	int status, waited;

	kill(pid, SIGTERM);
	for (waited = 0; waited < BENCH_STOP_WAIT; waited += 5) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return;
		nanosleep(&tick, NULL);
	}
	fprintf(stderr, "concd-bench: %s did not stop on SIGTERM: killed\n",
	    what);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

static void
bench_cleanup(void)
{
	if (bench_echo > 0) {
		bench_reap(bench_echo, "the echo process");
		bench_echo = -1;
	}
	if (bench_spawned > 0) {
		bench_reap(bench_spawned, "concd");
		bench_spawned = -1;
	}
	if (bench_tmpdir[0] != '\0') {
		unlink(bench_sockpath);
		rmdir(bench_tmpdir);
		bench_tmpdir[0] = '\0';
	}
}

/* ---- (a) the baseline: an echo process over a socketpair ---- */

static void __attribute__((noreturn))
bench_echo_main(int fd)
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

	for (i = 0; i < n; i++) {
		t0 = bench_now();
		bench_write_all(fd, frame->data, frame->len, "ping-pong");
		have = 0;
		do {
			have += bench_read_some(fd, rbuf + have,
			    BENCH_RBUF - have, "ping-pong");
		} while (proto_frame_next(rbuf, have, &payload, &plen) == 0);
		if (have != frame->len ||
		    memcmp(rbuf, frame->data, frame->len) != 0)
			bench_die(1, "ping-pong: the echo differs");
		us[i] = (bench_now() - t0) * 1e6;
	}
	return bench_median(us, n, &lo, &hi);
}

/* ---- replies ---- */

static int
bench_mp_uint(const unsigned char **pp, const unsigned char *end,
    uint64_t *v)
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
	case 0xcc: w = 1; break;
	case 0xcd: w = 2; break;
	case 0xce: w = 4; break;
	case 0xcf: w = 8; break;
	default: return -1;
	}
	if (end - p < 1 + w)
		return -1;
	for (*v = 0, i = 1; i <= w; i++)
		*v = *v << 8 | p[i];
	*pp = p + 1 + w;
	return 0;
}

static int
bench_mp_str(const unsigned char **pp, const unsigned char *end,
    const char **s, size_t *len)
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

static bool
bench_key(const char *k, size_t klen, const char *name)
{
	return strlen(name) == klen && memcmp(k, name, klen) == 0;
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
	const char *k, *s, *cause;
	uint32_t pairs;
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
	static struct msgpack_sbuffer sb;
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

static void __attribute__((noreturn, format(printf, 2, 3)))
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

static void
bench_on_reply(struct bench_conn *c, const struct bench_reply *r)
{
	size_t i;

	if (r->type == PROTO_PONG && c->fence != 0) {
		if (!r->has_id || r->id != c->fence)
			bench_wrong(r, "pong for id %" PRIu64
			    ", expected %" PRIu64, r->id, c->fence);
		c->fence = 0;
		return;
	}
	if (r->type != PROTO_ACCEPTED && r->type != PROTO_END)
		bench_wrong(r, "type %s, expected accepted or end",
		    r->type >= 0 ? proto_types[r->type].name : "(unknown)");
	if (c->fence != 0)
		bench_wrong(r, "%s after the fence ping",
		    proto_types[r->type].name);
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
			bench_wrong(r, "job %" PRIu64 " accepted after %"
			    PRIu64, r->job, c->last_job);
		c->last_job = r->job;
		c->job[i] = r->job;
		c->slot[i] = SLOT_ACCEPTED;
		c->accepted++;
		return;
	}
	if (c->slot[i] != SLOT_ACCEPTED)
		bench_wrong(r, "end for id %" PRIu64 " %s", r->id,
		    c->slot[i] == SLOT_ENDED ? "twice" : "before accepted");
	if (r->job != c->job[i])
		bench_wrong(r, "end of job %" PRIu64 " for id %" PRIu64
		    ", accepted as job %" PRIu64, r->job, r->id, c->job[i]);
	if (!bench_str_eq(r->state, r->state_len, "succeeded"))
		bench_wrong(r, "job %" PRIu64 " ended %.*s", r->job,
		    (int)r->state_len, r->state != NULL ? r->state : "");
	if (r->result_len != 1 || r->result[0] != '\x80')
		bench_wrong(r, "job %" PRIu64 " did not return {}", r->job);
	if ((r->exec != NULL || c->opts->check) &&
	    !bench_str_eq(r->exec, r->exec_len, proto_execs[c->exec]))
		bench_wrong(r, "job %" PRIu64 " ran on %.*s, not %s", r->job,
		    (int)r->exec_len, r->exec != NULL ? r->exec : "nothing",
		    proto_execs[c->exec]);
	c->slot[i] = SLOT_ENDED;
	c->ended++;
}

static void
bench_frame(struct bench_conn *c, const char *payload, size_t plen)
{
	struct bench_reply r, d;
	char why[256];

	c->replies++;
	if (c->opts->full_decode) {
		if (bench_decode(c, payload, plen, &r, why, sizeof(why)) < 0)
			bench_wrong(NULL, "%s", why);
		bench_on_reply(c, &r);
		return;
	}
	if (bench_walk(payload, plen, &r) < 0) {
		/* proto_decode says what is wrong with it */
		if (bench_decode(c, payload, plen, &d, why, sizeof(why)) < 0)
			bench_wrong(NULL, "%s", why);
		bench_wrong(&d, "a %s the walker cannot read",
		    d.type >= 0 ? proto_types[d.type].name : "frame");
	}
	if (c->opts->check) {
		if (bench_decode(c, payload, plen, &d, why, sizeof(why)) < 0)
			bench_wrong(NULL, "%s", why);
		if (d.type != r.type || d.has_id != r.has_id ||
		    d.id != r.id || d.has_job != r.has_job ||
		    d.job != r.job ||
		    !bench_same_str(d.state, d.state_len, r.state,
			r.state_len) ||
		    !bench_same_str(d.exec, d.exec_len, r.exec, r.exec_len) ||
		    !bench_same_str(d.result, d.result_len, r.result,
			r.result_len))
			bench_wrong(&d, "proto_decode and the walker "
			    "disagree on a %s",
			    d.type >= 0 ? proto_types[d.type].name : "frame");
	}
	bench_on_reply(c, &r);
}

/* One read, then every complete frame in the buffer. */
static void
bench_read_replies(struct bench_conn *c)
{
	const char *payload;
	size_t off = 0, plen;
	ssize_t used;

	c->rlen += bench_read_some(c->fd, c->rbuf + c->rlen,
	    BENCH_RBUF - c->rlen, "concd");
	c->reads++;
	while ((used = proto_frame_next(c->rbuf + off, c->rlen - off,
		    &payload, &plen)) > 0) {
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

/* ---- requests ---- */

static void
bench_put_be64(char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (char)v;
}

/* The submit frame for executor x, and the offset of its 8 id bytes. */
static void
bench_template(struct bench_conn *c, enum proto_exec x)
{
	static const char idkey[] = "\xa2id\xcf";
	struct proto_enc e;
	struct pbuf *b = &c->tmpl[x];
	size_t i;

	proto_enc_begin(&e, b, PROTO_SUBMIT, BENCH_ID_BASE);
	proto_enc_cstr(&e, PF_TASK, "noop");
	proto_enc_cstr(&e, PF_EXEC, proto_execs[x]);
	proto_enc_bool(&e, PF_WATCH, true);
	if (proto_enc_end(&e) < 0)
		bench_die(2, "cannot encode a submit");
	for (i = 0; i + 4 + 8 <= b->len; i++)
		if (memcmp(b->data + i, idkey, 4) == 0)
			break;
	if (i + 4 + 8 > b->len)
		bench_die(2, "no 64-bit id in the submit frame");
	c->id_at[x] = i + 4;
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
	const struct pbuf *t = &c->tmpl[c->exec];
	size_t i, at = c->id_at[c->exec];
	char *p;

	pbuf_reserve(&c->wbuf, k * t->len);
	p = c->wbuf.data + c->wbuf.len;
	for (i = 0; i < k; i++, p += t->len) {
		memcpy(p, t->data, t->len);
		bench_put_be64(p + at, c->base + c->sent + i);
		c->slot[c->sent + i] = SLOT_SENT;
	}
	c->wbuf.len += k * t->len;
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
 * --check: a ping after the measurement must be answered next, so no
 * reply is missing or left over.
 */
static void
bench_fence(struct bench_conn *c)
{
	struct proto_enc e;

	if (!c->opts->check)
		return;
	c->fence = c->next_id++;
	proto_enc_begin(&e, &c->wbuf, PROTO_PING, c->fence);
	proto_enc_end(&e);
	bench_flush(c);
	while (c->fence != 0)
		bench_read_replies(c);
	if (c->rlen != 0)
		bench_wrong(NULL, "%zu bytes after the pong", c->rlen);
}

/*
 * (b): median microseconds from writing a submit to reading its end, one
 * job at a time.
 */
static double
bench_round_trips(struct bench_conn *c, enum proto_exec x, size_t n,
    double *us)
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
	while ((used = proto_frame_next(c->rbuf, c->rlen, &payload,
		    &plen)) == 0)
		c->rlen += bench_read_some(c->fd, c->rbuf + c->rlen,
		    BENCH_RBUF - c->rlen, "hello");
	if (used < 0 || bench_decode(c, payload, plen, &r, why,
			    sizeof(why)) < 0)
		bench_wrong(NULL, "hello: %s", used < 0 ? "huge frame" : why);
	if (r.type != PROTO_WELCOME || r.id != 1)
		bench_wrong(&r, "hello answered by %s",
		    r.type >= 0 ? proto_types[r.type].name : "(unknown)");
	memmove(c->rbuf, c->rbuf + used, c->rlen - (size_t)used);
	c->rlen -= (size_t)used;
}

static void
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

static void
bench_conn_close(struct bench_conn *c)
{
	int i;

	close(c->fd);
	free(c->rbuf);
	free(c->slot);
	free(c->job);
	pbuf_free(&c->wbuf);
	for (i = 0; i < PX_COUNT; i++)
		pbuf_free(&c->tmpl[i]);
	msgpack_zone_destroy(&c->zone);
}

/* ---- report ---- */

struct bench_row {
	double med, lo, hi;
};

static struct bench_row
bench_row(const struct bench_run *runs, size_t n, size_t off)
{
	struct bench_row row;
	double v[n];
	size_t i;

	for (i = 0; i < n; i++)
		v[i] = *(const double *)((const char *)&runs[i] + off);
	row.med = bench_median(v, n, &row.lo, &row.hi);
	return row;
}

static void
bench_report(const struct bench_opts *o, const struct bench_run *runs,
    size_t n)
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

	printf("\n%-18s %10s %10s %10s   %-38s %-13s\n", "", "median",
	    "min", "max", "", "target");
	base = bench_row(runs, n, offsetof(struct bench_run, ping_us));
	if (o->rt > 0) {
		cpu = bench_row(runs, n,
		    offsetof(struct bench_run, ping_cpu_us));
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
		    offsetof(struct bench_run, rt_us) + x * sizeof(double));
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
		    offsetof(struct bench_run, jobs_s) + x * sizeof(double));
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
		u->ping_us = bench_pingpong(echo_fd, frame, o->rt, echo_buf,
		    us);
		u->ping_cpu_us = bench_cpu_per(cpu, bench_proc_cpu(bench_echo),
		    bench_now() - t0, o->rt);
	}
	for (x = 0; x < PX_COUNT && o->rt > 0; x++) {
		if (o->exec[x]) {
			cpu = bench_proc_cpu(c->daemon);
			t0 = bench_now();
			u->rt_us[x] = bench_round_trips(c, x, o->rt, us);
			u->rt_cpu_us[x] = bench_cpu_per(cpu,
			    bench_proc_cpu(c->daemon), bench_now() - t0, o->rt);
		}
	}
	for (x = 0; x < PX_COUNT && o->pipelined > 0; x++) {
		if (o->exec[x]) {
			u->jobs_s[x] = bench_pipelined(c, x, o->pipelined,
			    &u->cpu_daemon[x], &u->cpu_client[x]);
			u->per_read[x] = 2.0 * (double)o->pipelined /
			    (double)c->reads;
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
			printf(" %s rt %.2f us;", proto_execs[x],
			    u->rt_us[x]);
		if (o->pipelined > 0)
			printf(" %s %.0f jobs/s, %.0f replies per read;",
			    proto_execs[x], u->jobs_s[x], u->per_read[x]);
	}
	printf("\n");
	fflush(stdout);
}

int
main(int argc, char *argv[])
{
	struct bench_opts o = {
		.runs = 5,
		.rt = 10000,
		.pipelined = 1000000,
		.window = 4096,
	};
	struct bench_conn c;
	struct bench_run *runs;
	struct pbuf frame = {0};
	const char *path;
	char *echo_buf;
	double *us; /* one run's round trips */
	int ch, echo_fd;
	size_t r;

	while ((ch = getopt_long(argc, argv, "hv", bench_longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 's':
			o.socket = optarg;
			break;
		case 'S':
			o.spawn = optarg;
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
				bench_die(2,
				    "--exec must be loop, thread or process");
			o.exec[ch] = true;
			break;
		case 'c':
			o.check = true;
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
	if (!o.exec[PX_LOOP] && !o.exec[PX_THREAD] && !o.exec[PX_PROCESS])
		o.exec[PX_LOOP] = o.exec[PX_THREAD] = true;
	if (o.batch == 0)
		o.batch = o.window / 4 > 1024 ? 1024 : o.window / 4;
	if (o.batch == 0)
		o.batch = 1;
	if (o.batch > o.window)
		o.batch = o.window;
	signal(SIGPIPE, SIG_IGN);

	if (o.spawn != NULL) {
		bench_spawn(o.spawn);
		path = bench_sockpath;
	} else
		path = o.socket;
	echo_fd = bench_echo_start(); /* first: it inherits no connection */
	bench_conn_open(&c, path, &o);
	if ((echo_buf = malloc(BENCH_RBUF)) == NULL ||
	    (us = calloc(o.rt > 0 ? o.rt : 1, sizeof(*us))) == NULL ||
	    (runs = calloc(o.runs, sizeof(*runs))) == NULL)
		bench_die(2, "out of memory");
	/* the baseline's frame has the size of a submit */
	pbuf_append(&frame, c.tmpl[PX_LOOP].data, c.tmpl[PX_LOOP].len);

	printf("concd-bench: concd pid %d on %s; %zu runs of %zu round trips"
	    " and %zu pipelined jobs (window %zu, %zu per write)%s\n",
	    (int)c.daemon, path, o.runs, o.rt, o.pipelined, o.window, o.batch,
	    o.check ? "; checking" : "");
	fflush(stdout);

	bench_warm_up(&c, &o, echo_fd, &frame, echo_buf, us);
	for (r = 0; r < o.runs; r++)
		bench_one_run(&c, &o, echo_fd, &frame, echo_buf, us, &runs[r],
		    r);
	bench_report(&o, runs, o.runs);
	printf("%" PRIu64 " replies checked%s: all correct\n", c.replies,
	    o.check ? " by the walker and by proto_decode" : "");

	close(echo_fd);
	bench_conn_close(&c);
	pbuf_free(&frame);
	free(echo_buf);
	free(us);
	free(runs);
	bench_cleanup();
	return 0;
}
