/*
 * bench.h -- what bench.c (the program, its daemons and connections, the
 * reply walker and the noop suite) shares with suite.c (the other
 * suites).
 */
#ifndef BENCH_H
#define BENCH_H

#include <sys/types.h>
#include <sys/un.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define BENCH_ID_BASE     (UINT64_C(1) << 32) /* ids encode as 0xcf + 8 */
#define BENCH_RBUF        (2 * 1024 * 1024)
#define BENCH_IO_TIMEOUT  30    /* seconds without a reply: give up */
#define BENCH_MAX_RQ      4     /* single requests awaited at once */
#define BENCH_MAX_BATCHES 4     /* batches of jobs awaited at once */
#define BENCH_GATHER_MAX  10000 /* jobs in one gather (concd's limit) */

enum bench_suite {
	SUITE_NOOP,
	SUITE_FRESH,
	SUITE_CPU,
	SUITE_SLEEP,
	SUITE_EXEC,
	SUITE_DEEP,
	SUITE_GROUPS,
	SUITE_IDLE,
	SUITE_STORE,
	SUITE_CHAIN,
	SUITE_REMOTE,
	SUITE_COUNT
};

struct bench_opts {
	const char *socket;
	const char *spawn;
	unsigned suites; /* 1 << enum bench_suite */
	size_t runs;
	/* noop */
	size_t rt;
	size_t pipelined;
	size_t window;
	size_t batch;
	bool exec[PX_COUNT]; /* the executors measured */
	/* fresh */
	size_t warm_jobs, fresh_jobs;
	/* cpu */
	uint64_t primes;
	/* sleep */
	size_t sleepers;
	uint64_t sleep_ms;
	/* exec */
	size_t execs;
	/* deep */
	size_t deep;
	/* chain */
	size_t chain;

	bool no_store; /* --no-store: concd --state-dir none */
	bool check;
	bool full_decode; /* proto_decode for every reply, no walker */
	bool verbose;
};

/* What the walker (or proto_decode) found in one reply. */
struct bench_reply {
	int type; /* enum proto_type, -1: unknown */
	uint64_t id, job, index, total;
	int64_t worker;
	bool has_id, has_job, has_index, has_total, has_worker, has_jobs;
	size_t njobs;     /* elements of "jobs" */
	const char *jobs; /* its bytes (from proto_decode: packed again) */
	const char *state, *exec, *result, *error, *message, *counts;
	size_t state_len, exec_len, result_len, error_len, message_len;
	size_t jobs_len, counts_len;
};

enum bench_slot { SLOT_FREE, SLOT_SENT, SLOT_ACCEPTED, SLOT_ENDED };

/* A submit frame encoded once, patched with each request id. */
struct bench_tmpl {
	struct pbuf frame;
	size_t id_at; /* offset of its 8 id bytes */
};

/* What each job of a batch asks for. */
struct bench_spec {
	const char *task;
	const struct pbuf *args; /* a packed map, or NULL */
	enum proto_exec exec;
	bool fresh;
	bool watch;        /* submits only: a gather watches all its jobs */
	const char *group; /* or NULL: the default group */
	int64_t priority;
};

/* How the result of every end of a batch is checked. */
enum bench_check {
	CHECK_ANY,   /* not looked at */
	CHECK_EMPTY, /* {} (noop) */
	CHECK_UINT,  /* the unsigned integer want */
	CHECK_SAME,  /* one unsigned integer, the same in every end */
	CHECK_KEY,   /* a map whose value at key is want */
};

/*
 * Jobs submitted together, as submits (request ids base, base + 1, ...,
 * one job each) or as gathers (per jobs each, ends tagged by index), and
 * what their replies must say.
 */
struct bench_batch {
	uint64_t base; /* request id of the first submit or gather */
	size_t n;      /* jobs */
	size_t per;    /* jobs per request */
	size_t nreq;
	bool gather;     /* gathers of per jobs, not submits (per 1) */
	bool watched;    /* ends are expected */
	bool refusal_ok; /* an error reply is noted, not wrong */
	enum proto_exec exec;
	int fresh; /* ends name worker -1 (1), a pool's worker (0), any (-1) */
	const char *state; /* every end's state */
	enum bench_check check;
	const char *key;
	uint64_t want;
	bool have_want;
	const char *info_key; /* a number of the result map, averaged */
	double info_sum;
	size_t info_n;

	uint8_t *slot; /* per job: enum bench_slot */
	uint64_t *job;
	size_t sent, accepted, ended, events, refused;
	char refusal[320]; /* the first refusal: error and message */
	double t_last_end;
	size_t marks[3]; /* accepted counts whose times are wanted */
	double mark_t[3];
};

/* One request awaiting one reply of a known type. */
struct bench_rq {
	uint64_t id;
	int type;
	bool done;
	double t_done;
	char state[16];
	uint64_t job, total;
	size_t rows;
	uint64_t queued, running; /* from a jobs reply's counts */
};

/* One connection to concd and the bookkeeping of the current measurement. */
struct bench_conn {
	int fd;
	pid_t daemon; /* from SO_PEERCRED, for its CPU time */
	char *rbuf;
	size_t rlen;
	struct pbuf wbuf;
	msgpack_zone zone;
	uint64_t next_id;

	/* the noop submit frame, one per executor */
	struct bench_tmpl tmpl[PX_COUNT];

	/* noop suite: per request of the measurement, by id - base */
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

	/* other suites: replies go to these (bench_suite_reply) */
	bool suite;
	struct bench_rq *rq[BENCH_MAX_RQ];
	struct bench_batch *batch[BENCH_MAX_BATCHES];

	const struct bench_opts *opts;
};

/* A concd started by the benchmark on a private socket. */
struct bench_daemon {
	pid_t pid;
	char dir[64];
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char log[96];
	char state[96]; /* its --state-dir, made by the benchmark */
};

struct bench_row {
	double med, lo, hi;
};

/* bench.c */
void bench_die(int status, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));
void bench_wrong(const struct bench_reply *, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));
double bench_now(void);
double bench_proc_cpu(pid_t);
double bench_self_cpu(void);
long bench_vm_kb(pid_t, const char *field);
double bench_median(double *v, size_t n, double *min, double *max);
struct bench_row bench_stats(const double *v, size_t n);
const char *bench_thousands(double v, char *buf, size_t size);
void bench_head(const char *title);
void bench_line(const char *name, struct bench_row row, int prec,
                const char *what, const char *target, int verdict);

struct bench_daemon *bench_daemon_start(const char *concd,
                                        const char *const *flags);
void bench_daemon_stop(struct bench_daemon *);
/* SIGTERM, then once it stops listening a second one: its jobs cut off. */
void bench_reap_cut(pid_t pid, const char *sock, const char *what);

void bench_conn_open(struct bench_conn *, const char *path,
                     const struct bench_opts *);
void bench_conn_close(struct bench_conn *);
void bench_read_replies(struct bench_conn *);
bool bench_poll_read(struct bench_conn *, int ms);
void bench_send(struct bench_conn *);
void bench_fence(struct bench_conn *);

void bench_args_uint(struct pbuf *, const char *key, uint64_t);
void bench_args_list(struct pbuf *, const char *key, const char *const *,
                     size_t);
void bench_tmpl_make(struct bench_tmpl *, const struct bench_spec *);
void bench_tmpl_free(struct bench_tmpl *);

void bench_batch_init(struct bench_batch *, size_t n, size_t per);
void bench_batch_attach(struct bench_conn *, struct bench_batch *);
void bench_batch_detach(struct bench_conn *, struct bench_batch *);
void bench_batch_submits(struct bench_conn *, struct bench_batch *,
                         const struct bench_tmpl *, size_t k);
void bench_batch_gathers(struct bench_conn *, struct bench_batch *,
                         const struct bench_spec *);
size_t bench_batch_settled(const struct bench_batch *);

void bench_rq_begin(struct bench_conn *, struct bench_rq *, enum proto_type);
double bench_rq_wait(struct bench_conn *, struct bench_rq *);
void bench_rq_end(struct bench_conn *, struct bench_rq *);
double bench_ping(struct bench_conn *);
bool bench_map_uint(const char *map, size_t len, const char *key, uint64_t *);

/* suite.c */
void suite_fresh(const struct bench_opts *, const char *path);
void suite_cpu(const struct bench_opts *, const char *path);
void suite_sleep(const struct bench_opts *, const char *path);
void suite_exec(const struct bench_opts *, const char *path);
void suite_deep(const struct bench_opts *, const char *path);
void suite_groups(const struct bench_opts *, const char *path);
void suite_idle(const struct bench_opts *, const char *path);
void suite_store(const struct bench_opts *, const char *path);
void suite_chain(const struct bench_opts *, const char *path);
void suite_remote(const struct bench_opts *, const char *path);

#endif
