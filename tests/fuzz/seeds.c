/*
 * seeds.c -- write fuzz_proto's seed corpus with the encoder: files that
 * together hold a valid frame of every message type (checked: a type
 * without a seed fails), plus a few streams and refusals, each checked to
 * decode the way it should before it is written.
 *   fuzz_proto_seeds DIR
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "proto.h"

struct seed {
	const char *name;
	enum proto_decode_result want; /* of every frame in the file */
	void (*build)(struct pbuf *);
};

static void
seed_begin_end(struct pbuf *b, enum proto_type t, uint64_t id)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, t, id);
	proto_enc_end(&e);
}

static void
seed_hello(struct pbuf *b)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_HELLO, 1);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	proto_enc_end(&e);
}

static void
seed_welcome(struct pbuf *b)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_WELCOME, 1);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	proto_enc_cstr(&e, PF_SERVER, "concd 0.1.0");
	proto_enc_u64(&e, PF_PID, 4242);
	proto_enc_end(&e);
}

static void
seed_ping(struct pbuf *b)
{
	seed_begin_end(b, PROTO_PING, 2);
}

static void
seed_submit(struct pbuf *b)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_SUBMIT, 3);
	proto_enc_cstr(&e, PF_TASK, "primes");
	proto_enc_key(&e, PF_ARGS);
	proto_enc_map_open(&e);
	proto_enc_u64(&e, PF_LIMIT, 2000000);
	proto_enc_cstr(&e, PF_NAME, "x");
	proto_enc_close(&e);
	proto_enc_cstr(&e, PF_EXEC, "thread");
	proto_enc_bool(&e, PF_WATCH, true);
	proto_enc_u64(&e, PF_TIMEOUT, 30000);
	proto_enc_end(&e);
}

static void
seed_job_requests(struct pbuf *b)
{
	static const enum proto_type t[] = {PROTO_WATCH, PROTO_STATUS,
	                                    PROTO_CANCEL, PROTO_RESULT};
	struct proto_enc e;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		proto_enc_begin(&e, b, t[i], 10 + i);
		proto_enc_u64(&e, PF_JOB, 7);
		if (t[i] == PROTO_WATCH)
			proto_enc_bool(&e, PF_FRESH, true);
		proto_enc_end(&e);
	}
}

/* A kept-output request: a tail of one stream, then a window, followed. */
static void
seed_log(struct pbuf *b)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_LOG, 30);
	proto_enc_u64(&e, PF_JOB, 7);
	proto_enc_cstr(&e, PF_STREAM, "stderr");
	proto_enc_u64(&e, PF_TAIL, 10);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_LOG, 31);
	proto_enc_u64(&e, PF_JOB, 7);
	proto_enc_u64(&e, PF_OFFSET, 4096);
	proto_enc_u64(&e, PF_LENGTH, 65536);
	proto_enc_bool(&e, PF_FOLLOW, true);
	proto_enc_end(&e);
}

static void
seed_lists(struct pbuf *b)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_PS, 20);
	proto_enc_bool(&e, PF_ALL, true);
	proto_enc_u64(&e, PF_LIMIT, 50);
	proto_enc_cstr(&e, PF_STATE, "failed");
	proto_enc_cstr(&e, PF_TASK, "exec");
	proto_enc_u64(&e, PF_UID, 1000);
	proto_enc_u64(&e, PF_SINCE, 1700000000000000);
	proto_enc_u64(&e, PF_UNTIL, 1800000000000000);
	proto_enc_end(&e);
	seed_begin_end(b, PROTO_TASKS, 21);
	seed_begin_end(b, PROTO_SHUTDOWN, 22);
}

static void
seed_events(struct pbuf *b)
{
	struct proto_enc e;
	/* {"primes": 148933, "first": [2, -3, 1.5, nil]} */
	static const char result[] = "\x82\xa6primes\xce\x00\x02\x45\xc5"
	                             "\xa5"
	                             "first\x94\x02\xfd\xcb\x3f\xf8"
	                             "\x00\x00\x00\x00\x00\x00\xc0";

	proto_enc_begin(&e, b, PROTO_ACCEPTED, 3);
	proto_enc_u64(&e, PF_JOB, 7);
	proto_enc_cstr(&e, PF_STATE, "queued");
	proto_enc_cstr(&e, PF_EXEC, "thread");
	proto_enc_cstr(&e, PF_REQUESTED, "auto");
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_PROGRESS, 3);
	proto_enc_u64(&e, PF_JOB, 7);
	proto_enc_u64(&e, PF_DONE, 3);
	proto_enc_u64(&e, PF_TOTAL, 8);
	proto_enc_cstr(&e, PF_MSG, "sieving");
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_END, 3);
	proto_enc_u64(&e, PF_JOB, 7);
	proto_enc_cstr(&e, PF_STATE, "succeeded");
	proto_enc_raw(&e, PF_RESULT, result, sizeof(result) - 1);
	proto_enc_i64(&e, PF_WORKER, -1);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_END, 4);
	proto_enc_u64(&e, PF_JOB, 8);
	proto_enc_cstr(&e, PF_STATE, "failed");
	proto_enc_cstr(&e, PF_ERROR, "task_failed");
	proto_enc_cstr(&e, PF_MESSAGE, "no such file");
	proto_enc_end(&e);
}

static void
seed_job(struct pbuf *b)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_JOB, 12);
	proto_enc_u64(&e, PF_JOB, 5);
	proto_enc_cstr(&e, PF_TASK, "sleep");
	proto_enc_cstr(&e, PF_STATE, "running");
	proto_enc_cstr(&e, PF_EXEC, "process");
	proto_enc_u64(&e, PF_UID, 1000);
	proto_enc_i64(&e, PF_WORKER, 3);
	proto_enc_u64(&e, PF_TID, 9876);
	proto_enc_u64(&e, PF_SUBMITTED, 1700000000000);
	proto_enc_u64(&e, PF_STARTED, 1700000000100);
	proto_enc_u64(&e, PF_RUNTIME, 2500000);
	proto_enc_bool(&e, PF_CANCEL_PENDING, true);
	proto_enc_end(&e);
}

/* An exec job for Slurm, and its record: the Slurm job and its node. */
static void
seed_slurm(struct pbuf *b)
{
	struct proto_enc e;
	/* {"argv": ["hostname"]} */
	static const char args[] = "\x81\xa4"
	                           "argv\x91\xa8"
	                           "hostname";

	proto_enc_begin(&e, b, PROTO_SUBMIT, 30);
	proto_enc_cstr(&e, PF_TASK, "exec");
	proto_enc_raw(&e, PF_ARGS, args, sizeof(args) - 1);
	proto_enc_cstr(&e, PF_EXEC, "slurm");
	proto_enc_u64(&e, PF_CPUS, 4);
	proto_enc_u64(&e, PF_MEM, 8ull << 30);
	proto_enc_u64(&e, PF_TIMEOUT, 600000);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_JOB, 31);
	proto_enc_u64(&e, PF_JOB, 41);
	proto_enc_cstr(&e, PF_TASK, "exec");
	proto_enc_cstr(&e, PF_STATE, "failed");
	proto_enc_cstr(&e, PF_EXEC, "slurm");
	proto_enc_u64(&e, PF_SLURM_JOB, 4711);
	proto_enc_cstr(&e, PF_NODE, "node07");
	proto_enc_cstr(&e, PF_ERROR, "node_failed");
	proto_enc_cstr(&e, PF_MESSAGE, "node node07 failed (Slurm)");
	proto_enc_end(&e);
}

static void
seed_jobs(struct pbuf *b)
{
	struct proto_enc e;
	int i;

	proto_enc_begin(&e, b, PROTO_JOBS, 13);
	proto_enc_key(&e, PF_JOBS);
	proto_enc_array_open(&e);
	for (i = 0; i < 2; i++) {
		proto_enc_map_open(&e);
		proto_enc_u64(&e, PF_JOB, 100 + (uint64_t)i);
		proto_enc_cstr(&e, PF_TASK, "noop");
		proto_enc_cstr(&e, PF_STATE, proto_states[i]);
		proto_enc_close(&e);
	}
	proto_enc_close(&e);
	proto_enc_key(&e, PF_COUNTS);
	proto_enc_map_open(&e);
	for (i = 0; i < PS_COUNT; i++) {
		msgpack_pack_str_with_body(&e.pk, proto_states[i],
		                           strlen(proto_states[i]));
		msgpack_pack_uint32(&e.pk, (uint32_t)i);
		proto_enc_elem(&e);
	}
	proto_enc_close(&e);
	proto_enc_end(&e);
}

static void
seed_tasklist(struct pbuf *b)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_TASKLIST, 14);
	proto_enc_key(&e, PF_TASKS);
	proto_enc_array_open(&e);
	proto_enc_map_open(&e);
	proto_enc_cstr(&e, PF_NAME, "primes");
	proto_enc_cstr(&e, PF_SUMMARY, "count primes");
	proto_enc_cstr(&e, PF_USAGE, "n=<limit>");
	proto_enc_key(&e, PF_TRAITS);
	proto_enc_array_open(&e);
	msgpack_pack_str_with_body(&e.pk, "cpu", 3);
	proto_enc_elem(&e);
	proto_enc_close(&e);
	proto_enc_key(&e, PF_EXECUTORS);
	proto_enc_array_open(&e);
	msgpack_pack_str_with_body(&e.pk, "thread", 6);
	proto_enc_elem(&e);
	msgpack_pack_str_with_body(&e.pk, "process", 7);
	proto_enc_elem(&e);
	proto_enc_close(&e);
	proto_enc_cstr(&e, PF_DEFAULT, "thread");
	proto_enc_close(&e);
	proto_enc_close(&e);
	proto_enc_end(&e);
}

static void
seed_replies(struct pbuf *b)
{
	seed_begin_end(b, PROTO_PONG, 2);
	seed_begin_end(b, PROTO_OK, 15);
	proto_enc_error(b, 16, PE_NO_SUCH_JOB, NULL);
}

static void
seed_pool_requests(struct pbuf *b)
{
	struct proto_enc e;
	int i;

	seed_begin_end(b, PROTO_POOL, 30);
	proto_enc_begin(&e, b, PROTO_RESIZE, 31);
	proto_enc_u64(&e, PF_THREADS, 4);
	proto_enc_u64(&e, PF_PROCESSES, 2);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_GATHER, 32);
	proto_enc_key(&e, PF_JOBS);
	proto_enc_array_open(&e);
	for (i = 0; i < 2; i++) {
		proto_enc_map_open(&e);
		proto_enc_cstr(&e, PF_TASK, i == 0 ? "sleep" : "exec");
		proto_enc_key(&e, PF_ARGS);
		proto_enc_map_open(&e);
		proto_enc_u64(&e, PF_LIMIT, 100);
		proto_enc_close(&e);
		proto_enc_cstr(&e, PF_EXEC, "loop");
		proto_enc_u64(&e, PF_RETRIES, 2);
		proto_enc_u64(&e, PF_RETRY_DELAY, 500);
		proto_enc_close(&e);
	}
	proto_enc_close(&e);
	proto_enc_bool(&e, PF_FAIL_FAST, true);
	proto_enc_bool(&e, PF_WATCH, true);
	proto_enc_end(&e);
}

/*
 * The queue: an exec job with its caller's context, group, priority,
 * limits and dependencies; its input; the group, hold, release, wait,
 * restart and clean requests; a group list.
 */
static void
seed_queue(struct pbuf *b)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_SUBMIT, 40);
	proto_enc_cstr(&e, PF_TASK, "exec");
	/* {"argv": ["make"]} and {"CC": "clang"} */
	proto_enc_raw(&e, PF_ARGS,
	              "\x81\xa4"
	              "argv"
	              "\x91\xa4"
	              "make",
	              12);
	proto_enc_cstr(&e, PF_CWD, "/home/alice/src");
	proto_enc_u64(&e, PF_UMASK, 027);
	proto_enc_raw(&e, PF_ENV,
	              "\x81\xa2"
	              "CC"
	              "\xa5"
	              "clang",
	              10);
	proto_enc_cstr(&e, PF_STDIN, "stream");
	proto_enc_cstr(&e, PF_GROUP, "gpu");
	proto_enc_i64(&e, PF_PRIORITY, -5);
	proto_enc_u64(&e, PF_CPUS, 2);
	proto_enc_u64(&e, PF_MEM, UINT64_C(2) << 30);
	proto_enc_u64(&e, PF_PIDS, 64);
	proto_enc_cstr(&e, PF_LABEL, "nightly");
	proto_enc_u64(&e, PF_AT, UINT64_C(1797000000000000));
	proto_enc_bool(&e, PF_HELD, true);
	proto_enc_raw(&e, PF_AFTER, "\x92\x03\x04", 3); /* [3, 4] */
	proto_enc_bool(&e, PF_AFTER_ANY, false);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_INPUT, 41);
	proto_enc_u64(&e, PF_JOB, 9);
	proto_enc_raw(&e, PF_DATA,
	              "\xc4\x03"
	              "abc",
	              5);
	proto_enc_bool(&e, PF_EOF, true);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_GROUP, 42);
	proto_enc_cstr(&e, PF_OP, "add");
	proto_enc_cstr(&e, PF_NAME, "gpu");
	proto_enc_u64(&e, PF_PARALLEL, 1);
	proto_enc_bool(&e, PF_PAUSED, false);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_HOLD, 43);
	proto_enc_u64(&e, PF_JOB, 9);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_RELEASE, 44);
	proto_enc_u64(&e, PF_JOB, 9);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_WAIT, 45);
	proto_enc_cstr(&e, PF_GROUP, "gpu");
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_RESTART, 46);
	proto_enc_u64(&e, PF_JOB, 9);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_CLEAN, 47);
	proto_enc_cstr(&e, PF_STATE, "succeeded");
	proto_enc_u64(&e, PF_BEFORE, UINT64_C(1796000000000000));
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_GROUPLIST, 42);
	proto_enc_key(&e, PF_GROUPS);
	proto_enc_array_open(&e);
	proto_enc_map_open(&e);
	proto_enc_cstr(&e, PF_NAME, "gpu");
	proto_enc_u64(&e, PF_PARALLEL, 1);
	proto_enc_bool(&e, PF_PAUSED, true);
	proto_enc_u64(&e, PF_AHEAD, 3);
	proto_enc_close(&e);
	proto_enc_close(&e);
	proto_enc_cstr(&e, PF_LIMITS, "cgroup2");
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_END, 0);
	proto_enc_u64(&e, PF_JOB, 10);
	proto_enc_cstr(&e, PF_STATE, "failed");
	proto_enc_cstr(&e, PF_ERROR, "dependency_failed");
	proto_enc_u64(&e, PF_CAUSE, 9);
	proto_enc_u64(&e, PF_EXIT, 3);
	proto_enc_u64(&e, PF_SIGNAL, 9);
	proto_enc_u64(&e, PF_RESTART_OF, 2);
	proto_enc_u64(&e, PF_FORGOTTEN, 0);
	proto_enc_cstr(&e, PF_COMMAND, "sh -c 'exit 3'");
	proto_enc_end(&e);
}

static void
seed_poolinfo(struct pbuf *b)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_POOLINFO, 30);
	proto_enc_key(&e, PF_WORKERS);
	proto_enc_array_open(&e);
	proto_enc_map_open(&e);
	proto_enc_cstr(&e, PF_EXEC, "process");
	proto_enc_i64(&e, PF_WORKER, 1);
	proto_enc_u64(&e, PF_PID, 4243);
	proto_enc_cstr(&e, PF_STATE, "busy");
	proto_enc_u64(&e, PF_SERVED, 12);
	proto_enc_u64(&e, PF_UPTIME, 5000000);
	proto_enc_u64(&e, PF_JOB, 9);
	proto_enc_close(&e);
	proto_enc_close(&e);
	proto_enc_key(&e, PF_QUEUES);
	proto_enc_map_open(&e);
	msgpack_pack_str_with_body(&e.pk, "thread", 6);
	msgpack_pack_uint32(&e.pk, 3);
	proto_enc_elem(&e);
	proto_enc_close(&e);
	proto_enc_u64(&e, PF_THREADS, 2);
	proto_enc_u64(&e, PF_PROCESSES, 2);
	proto_enc_end(&e);
}

static void
seed_stream(struct pbuf *b)
{
	struct proto_enc e;
	/* bin 8 of 6 bytes: "line\n\xff", not UTF-8 */
	static const char data[] = "\xc4\x06line\n\xff";

	proto_enc_begin(&e, b, PROTO_OUTPUT, 3);
	proto_enc_u64(&e, PF_JOB, 7);
	proto_enc_cstr(&e, PF_STREAM, "stdout");
	proto_enc_raw(&e, PF_DATA, data, sizeof(data) - 1);
	proto_enc_u64(&e, PF_INDEX, 1);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_RETRY, 3);
	proto_enc_u64(&e, PF_JOB, 7);
	proto_enc_u64(&e, PF_ATTEMPT, 2);
	proto_enc_cstr(&e, PF_ERROR, "timed_out");
	proto_enc_cstr(&e, PF_MESSAGE, "job timed out");
	proto_enc_end(&e);
}

/* What the daemon and a worker process say to each other. */
static void
seed_worker(struct pbuf *b)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_RUN, 0);
	proto_enc_u64(&e, PF_JOB, 7);
	proto_enc_cstr(&e, PF_TASK, "primes");
	proto_enc_key(&e, PF_ARGS);
	proto_enc_map_open(&e);
	proto_enc_u64(&e, PF_LIMIT, 1000);
	proto_enc_close(&e);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_STARTED, 0);
	proto_enc_u64(&e, PF_JOB, 7);
	proto_enc_u64(&e, PF_PID, 4243);
	proto_enc_u64(&e, PF_SERVED, 1);
	proto_enc_u64(&e, PF_STARTED, 1700000000100);
	proto_enc_end(&e);
	/* an idle worker takes jobs over: the busy one is asked for one back */
	proto_enc_begin(&e, b, PROTO_REVOKE, 0);
	proto_enc_u64(&e, PF_JOB, 8);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_RETURNED, 0);
	proto_enc_u64(&e, PF_JOB, 8);
	proto_enc_end(&e);
}

static void
seed_unknown_type(struct pbuf *b)
{
	static const char frame[] = "\x00\x00\x00\x12\x82\xa1t\xaa"
	                            "frobnicate\xa2id\x09";

	pbuf_append(b, frame, sizeof(frame) - 1);
}

static void
seed_missing_task(struct pbuf *b)
{
	seed_begin_end(b, PROTO_SUBMIT, 17);
}

/* One frame around the payload that pk_* built in p. */
static void
seed_frame(struct pbuf *b, struct pbuf *p)
{
	char hdr[4] = {(char)(p->len >> 24), (char)(p->len >> 16),
	               (char)(p->len >> 8), (char)p->len};

	pbuf_append(b, hdr, sizeof(hdr));
	pbuf_append(b, p->data, p->len);
	p->len = 0;
}

static void
pk_cstr(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/*
 * Strings that are not UTF-8, each refused with bad_field: as the type, as
 * a top-level str field, and inside args and a gather's jobs; then a NUL
 * in an unknown type, quoted in the reply.
 */
static void
seed_not_utf8(struct pbuf *b)
{
	static const struct {
		const char *s;
		size_t len;
	} bad[] = {
	    {"p\xffng", 4},          /* 0xff */
	    {"\xc0\x80", 2},         /* overlong NUL */
	    {"\xed\xa0\x80", 3},     /* surrogate */
	    {"\xf4\x90\x80\x80", 4}, /* above U+10FFFF */
	    {"ab\xe2\x82", 4},       /* cut short */
	};
	struct pbuf p = {0};
	msgpack_packer pk;
	size_t i;

	msgpack_packer_init(&pk, &p, pbuf_write_cb);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msgpack_pack_map(&pk, 2);
		pk_cstr(&pk, "t");
		msgpack_pack_str_with_body(&pk, bad[i].s, bad[i].len);
		pk_cstr(&pk, "id");
		msgpack_pack_uint8(&pk, (uint8_t)(20 + i));
		seed_frame(b, &p);

		msgpack_pack_map(&pk, 3);
		pk_cstr(&pk, "t");
		pk_cstr(&pk, "submit");
		pk_cstr(&pk, "task");
		msgpack_pack_str_with_body(&pk, bad[i].s, bad[i].len);
		pk_cstr(&pk, "exec");
		pk_cstr(&pk, "loop");
		seed_frame(b, &p);

		msgpack_pack_map(&pk, 3);
		pk_cstr(&pk, "t");
		pk_cstr(&pk, "submit");
		pk_cstr(&pk, "task");
		pk_cstr(&pk, "exec");
		pk_cstr(&pk, "args");
		msgpack_pack_map(&pk, 2);
		pk_cstr(&pk, "argv");
		msgpack_pack_array(&pk, 2);
		pk_cstr(&pk, "echo");
		msgpack_pack_str_with_body(&pk, bad[i].s, bad[i].len);
		msgpack_pack_str_with_body(&pk, bad[i].s, bad[i].len);
		msgpack_pack_uint8(&pk, 1);
		seed_frame(b, &p);

		msgpack_pack_map(&pk, 2);
		pk_cstr(&pk, "t");
		pk_cstr(&pk, "gather");
		pk_cstr(&pk, "jobs");
		msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, 1);
		pk_cstr(&pk, "task");
		msgpack_pack_str_with_body(&pk, bad[i].s, bad[i].len);
		seed_frame(b, &p);
	}
	msgpack_pack_map(&pk, 1);
	pk_cstr(&pk, "t");
	msgpack_pack_str_with_body(&pk, "pi\0ng", 5);
	seed_frame(b, &p);
	pbuf_free(&p);
}

/* The byte MessagePack never uses, as a value. */
/*
 * Whole maps with a value over a limit, each answered under its id: args
 * nested one level too deep, an array of one element too many, a string
 * of one byte too many, the id before and after them.
 */
static void
seed_over_limits(struct pbuf *b)
{
	static char big[PROTO_MAX_STR + 1];
	struct pbuf p = {0};
	msgpack_packer pk;
	int i;

	msgpack_packer_init(&pk, &p, pbuf_write_cb);
	msgpack_pack_map(&pk, 4);
	pk_cstr(&pk, "t");
	pk_cstr(&pk, "submit");
	pk_cstr(&pk, "task");
	pk_cstr(&pk, "noop");
	pk_cstr(&pk, "args");
	msgpack_pack_map(&pk, 1);
	pk_cstr(&pk, "a");
	for (i = 0; i < PROTO_MAX_DEPTH - 1; i++)
		msgpack_pack_array(&pk, 1);
	msgpack_pack_nil(&pk);
	pk_cstr(&pk, "id");
	msgpack_pack_uint8(&pk, 40);
	seed_frame(b, &p);

	msgpack_pack_map(&pk, 3);
	pk_cstr(&pk, "id");
	msgpack_pack_uint32(&pk, 41);
	pk_cstr(&pk, "t");
	pk_cstr(&pk, "ping");
	pk_cstr(&pk, "list");
	msgpack_pack_array(&pk, PROTO_MAX_ITEMS + 1);
	for (i = 0; i <= PROTO_MAX_ITEMS; i++)
		msgpack_pack_true(&pk);
	seed_frame(b, &p);

	memset(big, 'x', sizeof(big));
	msgpack_pack_map(&pk, 3);
	pk_cstr(&pk, "t");
	pk_cstr(&pk, "ping");
	pk_cstr(&pk, "s");
	msgpack_pack_bin_with_body(&pk, big, sizeof(big));
	pk_cstr(&pk, "id");
	msgpack_pack_uint64(&pk, 42);
	seed_frame(b, &p);
	pbuf_free(&p);
}

static void
seed_byte_c1(struct pbuf *b)
{
	static const char frame[] = "\x00\x00\x00\x10\x82\xa1t\xa4"
	                            "ping\xa6result\xc1";

	pbuf_append(b, frame, sizeof(frame) - 1);
}

/* Remote workers: add and remove, a worker's hello, a pool row of one. */
static void
seed_remote(struct pbuf *b)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_REMOTE, 60);
	proto_enc_cstr(&e, PF_OP, "add");
	proto_enc_u64(&e, PF_COUNT, 2);
	proto_enc_cstr(&e, PF_PARTITION, "batch");
	proto_enc_cstr(&e, PF_TIME, "2:00:00");
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_REMOTE, 61);
	proto_enc_cstr(&e, PF_OP, "remove");
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_HELLO, 0);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	proto_enc_cstr(&e, PF_NODE, "node7");
	proto_enc_u64(&e, PF_PID, 4242);
	proto_enc_u64(&e, PF_WORKER, 1);
	proto_enc_end(&e);
	proto_enc_begin(&e, b, PROTO_POOLINFO, 30);
	proto_enc_key(&e, PF_WORKERS);
	proto_enc_array_open(&e);
	proto_enc_map_open(&e);
	proto_enc_cstr(&e, PF_EXEC, "remote");
	proto_enc_i64(&e, PF_WORKER, 0);
	proto_enc_u64(&e, PF_PID, 4242);
	proto_enc_cstr(&e, PF_NODE, "node7");
	proto_enc_u64(&e, PF_SLURM_JOB, 12);
	proto_enc_cstr(&e, PF_STATE, "idle");
	proto_enc_close(&e);
	proto_enc_close(&e);
	proto_enc_end(&e);
}

static const struct seed seeds[] = {
    {"remote", PROTO_DECODE_OK, seed_remote},
    {"hello", PROTO_DECODE_OK, seed_hello},
    {"welcome", PROTO_DECODE_OK, seed_welcome},
    {"ping", PROTO_DECODE_OK, seed_ping},
    {"submit", PROTO_DECODE_OK, seed_submit},
    {"job-requests", PROTO_DECODE_OK, seed_job_requests},
    {"log", PROTO_DECODE_OK, seed_log},
    {"queue", PROTO_DECODE_OK, seed_queue},
    {"lists", PROTO_DECODE_OK, seed_lists},
    {"events", PROTO_DECODE_OK, seed_events},
    {"job", PROTO_DECODE_OK, seed_job},
    {"jobs", PROTO_DECODE_OK, seed_jobs},
    {"slurm", PROTO_DECODE_OK, seed_slurm},
    {"tasklist", PROTO_DECODE_OK, seed_tasklist},
    {"replies", PROTO_DECODE_OK, seed_replies},
    {"pool-requests", PROTO_DECODE_OK, seed_pool_requests},
    {"poolinfo", PROTO_DECODE_OK, seed_poolinfo},
    {"stream", PROTO_DECODE_OK, seed_stream},
    {"worker", PROTO_DECODE_OK, seed_worker},
    {"reject-unknown-type", PROTO_DECODE_REJECT, seed_unknown_type},
    {"reject-missing-task", PROTO_DECODE_REJECT, seed_missing_task},
    {"reject-not-utf8", PROTO_DECODE_REJECT, seed_not_utf8},
    {"reject-over-limits", PROTO_DECODE_REJECT, seed_over_limits},
    {"bad-byte-c1", PROTO_DECODE_BAD, seed_byte_c1},
};

/* The message types some seed has a valid frame of. */
static bool seeded[PROTO_TYPE_COUNT];

/* Every frame in b decodes to want, and nothing is left over. */
static int
seed_check(const struct seed *s, const struct pbuf *b)
{
	struct proto_msg m;
	struct proto_fault f;
	msgpack_zone zone;
	const char *payload;
	size_t off = 0, plen;
	ssize_t n;
	int frames = 0, rc = 0;

	msgpack_zone_init(&zone, 4096);
	while ((n = proto_frame_next(b->data + off, b->len - off, &payload,
	                             &plen)) > 0) {
		if (proto_decode(payload, plen, &zone, &m, &f) != s->want) {
			fprintf(stderr, "fuzz_proto_seeds: %s: frame %d: %s\n",
			        s->name, frames, f.message);
			rc = -1;
		} else if (s->want == PROTO_DECODE_OK) {
			seeded[m.type] = true;
		}
		off += (size_t)n;
		frames++;
	}
	msgpack_zone_destroy(&zone);
	if (off != b->len || frames == 0) {
		fprintf(stderr, "fuzz_proto_seeds: %s: not whole frames\n",
		        s->name);
		rc = -1;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	struct pbuf b = {0};
	char path[4096];
	size_t i;
	FILE *f;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_proto_seeds dir\n");
		return 2;
	}
	if (mkdir(argv[1], 0755) == -1 && errno != EEXIST) {
		fprintf(stderr, "fuzz_proto_seeds: %s: %s\n", argv[1],
		        strerror(errno));
		return 1;
	}
	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		b.len = 0;
		seeds[i].build(&b);
		if (seed_check(&seeds[i], &b) == -1) {
			rc = 1;
			continue;
		}
		snprintf(path, sizeof(path), "%s/seed-%s", argv[1],
		         seeds[i].name);
		if ((f = fopen(path, "wb")) == NULL ||
		    fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
			fprintf(stderr, "fuzz_proto_seeds: %s: %s\n", path,
			        strerror(errno));
			rc = 1;
		}
	}
	pbuf_free(&b);
	/* a new message type gets a seed of its own */
	for (i = 0; i < PROTO_TYPE_COUNT; i++) {
		if (!seeded[i]) {
			fprintf(stderr,
			        "fuzz_proto_seeds: no seed has a %s "
			        "message\n",
			        proto_types[i].name);
			rc = 1;
		}
	}
	return rc;
}
