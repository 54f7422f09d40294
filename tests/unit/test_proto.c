/*
 * test_proto.c -- the wire protocol library: tables and name lookups,
 * framing, the encoder, the decoder against well-formed, malformed and
 * hostile input, and interoperability with plain msgpack-c encodings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../proto_check.h"
#include "proto.h"

#define B(f) PF_BIT(PF_##f)

struct fx {
	struct pbuf out;    /* frames written by proto_enc_* */
	msgpack_sbuffer sb; /* payloads written by hand or by msgpack-c */
	msgpack_packer pk;
	msgpack_zone zone;
	struct proto_msg m;
	struct proto_fault f;
};

/* Long enough for any string the tests need, filled in by setup. */
static char filler[PROTO_MAX_STR + 1];

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	msgpack_sbuffer_init(&fx->sb);
	msgpack_packer_init(&fx->pk, &fx->sb, msgpack_sbuffer_write);
	assert_true(msgpack_zone_init(&fx->zone, 4096));
	memset(filler, 'a', sizeof(filler));
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	pbuf_free(&fx->out);
	msgpack_sbuffer_destroy(&fx->sb);
	msgpack_zone_destroy(&fx->zone);
	free(fx);
	return 0;
}

/* ---- helpers ---- */

static void
pk_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void
pk_bytes(struct fx *fx, const void *p, size_t n)
{
	msgpack_sbuffer_write(&fx->sb, p, n);
}

static enum proto_decode_result
decode_payload(struct fx *fx, const void *p, size_t n)
{
	memset(&fx->f, 0, sizeof(fx->f));
	return proto_decode(p, n, &fx->zone, &fx->m, &fx->f);
}

/* Decode the payload in fx->sb. */
static enum proto_decode_result
decode_sb(struct fx *fx)
{
	return decode_payload(fx, fx->sb.data, fx->sb.size);
}

/* fx->out must hold exactly one frame: take it apart and decode it. */
static enum proto_decode_result
decode_out(struct fx *fx)
{
	const char *payload = NULL;
	size_t plen = 0;
	ssize_t n;

	n = proto_frame_next(fx->out.data, fx->out.len, &payload, &plen);
	assert_true(n > 0);
	assert_int_equal((size_t)n, fx->out.len);
	assert_ptr_equal(payload, fx->out.data + PROTO_HEADER_LEN);
	assert_int_equal(plen, fx->out.len - PROTO_HEADER_LEN);
	return decode_payload(fx, payload, plen);
}

static void
assert_fault(const struct fx *fx, enum proto_error code, const char *message)
{
	assert_int_equal(fx->f.code, code);
	assert_string_equal(fx->f.message, message);
}

static void
assert_bad(struct fx *fx, const char *message)
{
	assert_int_equal(decode_sb(fx), PROTO_DECODE_BAD);
	assert_fault(fx, PE_BAD_FRAME, message);
}

static void
assert_str_obj(const msgpack_object *o, const char *want)
{
	assert_int_equal(o->type, MSGPACK_OBJECT_STR);
	assert_int_equal(o->via.str.size, strlen(want));
	assert_memory_equal(o->via.str.ptr, want, o->via.str.size);
}

static void
assert_str_field(const struct proto_msg *m, enum proto_field f,
                 const char *want)
{
	size_t len = 12345;
	const char *s = proto_str(m, f, &len);

	assert_non_null(s);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(s, want, len);
}

/* Finish an encoded frame, decode it and check its envelope. */
static void
end_and_decode(struct fx *fx, struct proto_enc *e, enum proto_type type,
               uint64_t id, uint64_t fields)
{
	assert_int_equal(proto_enc_end(e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, type);
	assert_int_equal(fx->m.id, id);
	assert_int_equal(fx->m.present, B(T) | B(ID) | fields);
	assert_str_field(&fx->m, PF_T, proto_types[type].name);
}

/* {"t": <type>, ...}: the start of a hand-written payload. */
static void
pk_msg(struct fx *fx, uint32_t pairs, const char *type)
{
	msgpack_pack_map(&fx->pk, pairs);
	pk_str(&fx->pk, "t");
	pk_str(&fx->pk, type);
}

/* n nested arrays; the innermost holds one integer unless empty. */
static void
pk_nested_arrays(msgpack_packer *pk, int n, bool empty)
{
	int i;

	for (i = 0; i < n - 1; i++)
		msgpack_pack_array(pk, 1);
	if (empty) {
		msgpack_pack_array(pk, 0);
	} else {
		msgpack_pack_array(pk, 1);
		msgpack_pack_uint8(pk, 1);
	}
}

static uint64_t
rng_next(uint64_t *s)
{
	/* xorshift64*: deterministic, so a failure reproduces */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* ---- tables and name lookups ---- */

static void
tables_name_every_row(void **state)
{
	int i;

	for (i = 0; i < PROTO_TYPE_COUNT; i++) {
		assert_non_null(proto_types[i].name);
		assert_true(proto_types[i].name[0] != '\0');
		assert_non_null(proto_types[i].doc);
	}
	for (i = 0; i < PF_FIELD_COUNT; i++) {
		assert_non_null(proto_fields[i].name);
		assert_true(proto_fields[i].name[0] != '\0');
		assert_in_range(proto_fields[i].type, PV_UINT, PV_ANY);
	}
	for (i = 0; i < PE_COUNT; i++) {
		assert_non_null(proto_errors[i].name);
		assert_true(proto_errors[i].name[0] != '\0');
		assert_non_null(proto_errors[i].text);
		assert_true(proto_errors[i].text[0] != '\0');
	}
	for (i = 0; i < PS_COUNT; i++)
		assert_true(proto_states[i] != NULL && proto_states[i][0]);
	for (i = 0; i < PX_COUNT; i++)
		assert_true(proto_execs[i] != NULL && proto_execs[i][0]);
}

static void
tables_hold_no_duplicate_names(void **state)
{
	int i, j;

	for (i = 0; i < PROTO_TYPE_COUNT; i++)
		for (j = i + 1; j < PROTO_TYPE_COUNT; j++)
			assert_string_not_equal(proto_types[i].name,
			                        proto_types[j].name);
	for (i = 0; i < PF_FIELD_COUNT; i++)
		for (j = i + 1; j < PF_FIELD_COUNT; j++)
			assert_string_not_equal(proto_fields[i].name,
			                        proto_fields[j].name);
	for (i = 0; i < PE_COUNT; i++)
		for (j = i + 1; j < PE_COUNT; j++)
			assert_string_not_equal(proto_errors[i].name,
			                        proto_errors[j].name);
	for (i = 0; i < PS_COUNT; i++)
		for (j = i + 1; j < PS_COUNT; j++)
			assert_string_not_equal(proto_states[i],
			                        proto_states[j]);
	for (i = 0; i < PX_COUNT; i++)
		for (j = i + 1; j < PX_COUNT; j++)
			assert_string_not_equal(proto_execs[i], proto_execs[j]);
}

static void
tables_list_requests_before_replies(void **state)
{
	int i;

	for (i = 0; i < PROTO_TYPE_COUNT; i++)
		assert_int_equal(proto_types[i].request, i < PROTO_WELCOME);
}

static void
tables_required_fields_are_real_fields(void **state)
{
	int i;

	for (i = 0; i < PROTO_TYPE_COUNT; i++)
		assert_int_equal(
		    proto_types[i].required & ~(PF_BIT(PF_FIELD_COUNT) - 1), 0);
}

static void
state_final_marks_only_terminal_states(void **state)
{
	assert_false(PROTO_STATE_FINAL(PS_QUEUED));
	assert_false(PROTO_STATE_FINAL(PS_RUNNING));
	assert_true(PROTO_STATE_FINAL(PS_SUCCEEDED));
	assert_true(PROTO_STATE_FINAL(PS_FAILED));
	assert_true(PROTO_STATE_FINAL(PS_CANCELLED));
	assert_true(PROTO_STATE_FINAL(PS_TIMED_OUT));
}

static void
lookups_round_trip_every_name(void **state)
{
	int i;

	for (i = 0; i < PROTO_TYPE_COUNT; i++)
		assert_int_equal(proto_type_lookup(proto_types[i].name,
		                                   strlen(proto_types[i].name)),
		                 i);
	for (i = 0; i < PF_FIELD_COUNT; i++)
		assert_int_equal(
		    proto_field_lookup(proto_fields[i].name,
		                       strlen(proto_fields[i].name)),
		    i);
	for (i = 0; i < PE_COUNT; i++)
		assert_int_equal(
		    proto_error_lookup(proto_errors[i].name,
		                       strlen(proto_errors[i].name)),
		    i);
	for (i = 0; i < PS_COUNT; i++)
		assert_int_equal(proto_state_lookup(proto_states[i],
		                                    strlen(proto_states[i])),
		                 i);
	for (i = 0; i < PX_COUNT; i++)
		assert_int_equal(
		    proto_exec_lookup(proto_execs[i], strlen(proto_execs[i])),
		    i);
}

static void
lookups_return_minus_one_for_unknown_names(void **state)
{
	static const char *const unknown[] = {
	    "",        "x",     "frobnicate", "PING",   "Task",
	    "pin",     "pings", "tas",        "tasks2", "queue",
	    "queuedd", "thr",   "bad_fram",   "none ",
	};
	size_t i;

	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		const char *s = unknown[i];

		assert_int_equal(proto_type_lookup(s, strlen(s)), -1);
		assert_int_equal(proto_field_lookup(s, strlen(s)), -1);
		assert_int_equal(proto_error_lookup(s, strlen(s)), -1);
		assert_int_equal(proto_state_lookup(s, strlen(s)), -1);
		assert_int_equal(proto_exec_lookup(s, strlen(s)), -1);
	}
	/* a name from one table is unknown to the others */
	assert_int_equal(proto_field_lookup("submit", 6), -1);
	assert_int_equal(proto_type_lookup("version", 7), -1);
	assert_int_equal(proto_state_lookup("loop", 4), -1);
	assert_int_equal(proto_exec_lookup("queued", 6), -1);
}

static void
lookups_compare_exactly_len_bytes(void **state)
{
	/* names on the wire are not NUL-terminated */
	assert_int_equal(proto_type_lookup("pingpong", 4), PROTO_PING);
	assert_int_equal(proto_type_lookup("tasks", 4), -1);
	assert_int_equal(proto_field_lookup("tasks", 4), PF_TASK);
	assert_int_equal(proto_field_lookup("tasks", 5), PF_TASKS);
	assert_int_equal(proto_error_lookup("internalXX", 8), PE_INTERNAL);
	assert_int_equal(proto_state_lookup("running!", 7), PS_RUNNING);
	assert_int_equal(proto_exec_lookup("loopy", 4), PX_LOOP);
	assert_int_equal(proto_exec_lookup("loop", 3), -1);
}

/*
 * A peer can put a NUL inside a key or a state/error/exec name: "queued\0"
 * is not "queued", and looking it up must not read past the table's name.
 * Returns the number of wrong answers, each reported on stderr.
 */
static int
nul_lookup_wrong(int (*lookup)(const char *, size_t), const char *row,
                 int extra)
{
	char name[80];
	size_t n = strlen(row);
	int r;

	memcpy(name, row, n + 1);
	name[n + 1] = (char)extra;
	r = lookup(name, extra < 0 ? n + 1 : n + 2);
	if (r == -1)
		return 0;
	fprintf(stderr, "lookup of \"%s\\0\" + byte %d returned %d\n", row,
	        extra, r);
	return 1;
}

static int
lookup_names_with_nul(void)
{
	int i, b, wrong = 0;

	for (i = 0; i < PS_COUNT; i++)
		wrong +=
		    nul_lookup_wrong(proto_state_lookup, proto_states[i], -1);
	for (i = 0; i < PX_COUNT; i++)
		wrong +=
		    nul_lookup_wrong(proto_exec_lookup, proto_execs[i], -1);
	for (i = 0; i < PE_COUNT; i++)
		wrong += nul_lookup_wrong(proto_error_lookup,
		                          proto_errors[i].name, -1);
	for (b = 0; b < 256; b++) {
		for (i = 0; i < PF_FIELD_COUNT; i++)
			wrong += nul_lookup_wrong(proto_field_lookup,
			                          proto_fields[i].name, b);
		for (i = 0; i < PROTO_TYPE_COUNT; i++)
			wrong += nul_lookup_wrong(proto_type_lookup,
			                          proto_types[i].name, b);
	}
	return wrong;
}

/*
 * A key is compared with the table's names for its whole length, and it
 * may be as long as PROTO_MAX_STR: "id\0" followed by 256 KiB is not "id",
 * and deciding so must not read 256 KiB past the string "id".  Every
 * last byte is tried so that one of the keys hashes into the chain that
 * holds "id", whatever the table's layout.  Returns the wrong answers.
 */
static int
decode_long_keys_with_nul(void)
{
	size_t klen = PROTO_MAX_STR, n;
	msgpack_zone zone;
	struct proto_msg m;
	struct proto_fault f;
	char *p;
	int b, wrong = 0;

	if ((p = malloc(klen + 32)) == NULL || !msgpack_zone_init(&zone, 4096))
		return 1;
	for (b = 0; b < 256; b++) {
		/* {"t": "ping", <str32 "id\0AAA...A" + b>: 1} */
		memcpy(p, "\x82\xa1t\xa4ping\xdb", 9);
		p[9] = (char)(klen >> 24);
		p[10] = (char)(klen >> 16);
		p[11] = (char)(klen >> 8);
		p[12] = (char)klen;
		memcpy(p + 13, "id", 3);
		memset(p + 16, 'A', klen - 4);
		p[13 + klen - 1] = (char)b;
		n = 13 + klen;
		p[n++] = 1;
		if (proto_decode(p, n, &zone, &m, &f) != PROTO_DECODE_OK ||
		    m.present != B(T)) {
			fprintf(stderr,
			        "key \"id\\0\" + %zu bytes ending in "
			        "%d: not ignored\n",
			        klen - 3, b);
			wrong++;
		}
	}
	msgpack_zone_destroy(&zone);
	free(p);
	return wrong;
}

/* Run fn in a child: a crash or a sanitizer's report fails one test. */
static void
assert_child_returns_zero(int (*fn)(void))
{
	pid_t pid;
	int status;

	fflush(NULL);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0)
		_exit(fn() == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
decode_ignores_a_max_length_key_starting_with_a_name_and_nul(void **state)
{
	assert_child_returns_zero(decode_long_keys_with_nul);
}

/*
 * In a child process, so that a sanitizer's report of a read past a
 * table name fails this test alone instead of ending the whole run.
 */
static void
lookups_treat_embedded_nul_as_a_different_name(void **state)
{
	assert_child_returns_zero(lookup_names_with_nul);
}

/* ---- framing ---- */

static void
frame_next_needs_a_whole_header(void **state)
{
	const char hdr[4] = {0, 0, 0, 1};
	const char *payload = NULL;
	size_t plen = 99, n;

	for (n = 0; n < PROTO_HEADER_LEN; n++)
		assert_int_equal(proto_frame_next(hdr, n, &payload, &plen), 0);
	assert_null(payload);
	assert_int_equal(plen, 99);
}

static void
frame_next_needs_the_whole_payload(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	const char *payload;
	size_t plen, n;

	proto_enc_begin(&e, &fx->out, PROTO_SUBMIT, 3);
	proto_enc_cstr(&e, PF_TASK, "primes");
	assert_int_equal(proto_enc_end(&e), 0);
	for (n = 0; n < fx->out.len; n++)
		assert_int_equal(
		    proto_frame_next(fx->out.data, n, &payload, &plen), 0);
	assert_int_equal(
	    proto_frame_next(fx->out.data, fx->out.len, &payload, &plen),
	    fx->out.len);
	assert_ptr_equal(payload, fx->out.data + PROTO_HEADER_LEN);
	assert_int_equal(plen, fx->out.len - PROTO_HEADER_LEN);
}

static void
frame_next_rejects_a_length_over_max_frame(void **state)
{
	const char *payload;
	size_t plen;
	/* PROTO_MAX_FRAME + 1, 0xffffffff, and PROTO_MAX_FRAME itself */
	const char over[4] = {0x00, 0x10, 0x00, 0x01};
	const char huge[4] = {(char)0xff, (char)0xff, (char)0xff, (char)0xff};
	const char max[4] = {0x00, 0x10, 0x00, 0x00};

	assert_int_equal(PROTO_MAX_FRAME, 0x100000);
	/* refused from the header alone, before the payload arrives */
	assert_int_equal(proto_frame_next(over, 4, &payload, &plen), -1);
	assert_int_equal(proto_frame_next(huge, 4, &payload, &plen), -1);
	assert_int_equal(proto_frame_next(max, 4, &payload, &plen), 0);
}

static void
frame_next_accepts_an_empty_payload(void **state)
{
	struct fx *fx = *state;
	const char zero[4] = {0};
	const char *payload = NULL;
	size_t plen = 99;

	assert_int_equal(proto_frame_next(zero, 4, &payload, &plen), 4);
	assert_int_equal(plen, 0);
	assert_ptr_equal(payload, zero + 4);
	/* ... which is not a message */
	assert_int_equal(decode_payload(fx, payload, plen), PROTO_DECODE_BAD);
	assert_fault(fx, PE_BAD_FRAME, "malformed frame: truncated value");
}

static void
frame_next_walks_back_to_back_frames(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	const char *payload;
	size_t plen, off = 0;
	ssize_t n;
	uint64_t id;

	for (id = 1; id <= 3; id++) {
		proto_enc_begin(&e, &fx->out, PROTO_PING, id);
		assert_int_equal(proto_enc_end(&e), 0);
	}
	/* a fourth frame's header, cut short */
	pbuf_append(&fx->out, "\0\0", 2);
	for (id = 1; id <= 3; id++) {
		n = proto_frame_next(fx->out.data + off, fx->out.len - off,
		                     &payload, &plen);
		assert_true(n > 0);
		assert_int_equal(decode_payload(fx, payload, plen),
		                 PROTO_DECODE_OK);
		assert_int_equal(fx->m.type, PROTO_PING);
		assert_int_equal(fx->m.id, id);
		off += (size_t)n;
	}
	assert_int_equal(proto_frame_next(fx->out.data + off, fx->out.len - off,
	                                  &payload, &plen),
	                 0);
	assert_int_equal(fx->out.len - off, 2);
}

static void
pbuf_consume_drops_leading_bytes(void **state)
{
	struct fx *fx = *state;

	pbuf_append(&fx->out, "abcdef", 6);
	pbuf_consume(&fx->out, 2);
	assert_int_equal(fx->out.len, 4);
	assert_memory_equal(fx->out.data, "cdef", 4);
	pbuf_consume(&fx->out, 10);
	assert_int_equal(fx->out.len, 0);
}

/* ---- the encoder's wire bytes ---- */

static void
enc_ping_has_the_documented_wire_bytes(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	/* 4-byte BE length, map16 of 2: "t": "ping", "id": 1 */
	static const unsigned char want[] = {
	    0x00, 0x00, 0x00, 0x0e, 0xde, 0x00, 0x02, 0xa1, 0x74,
	    0xa4, 'p',  'i',  'n',  'g',  0xa2, 'i',  'd',  0x01,
	};

	proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(fx->out.len, sizeof(want));
	assert_memory_equal(fx->out.data, want, sizeof(want));
}

/*
 * The encoder writes integers and strings itself, not through msgpack-c:
 * at every boundary of every form, its bytes must be msgpack-c's.
 */
/* A ping begun afresh in fx->out, fx->sb emptied: where its fields go. */
static size_t
enc_fresh(struct fx *fx, struct proto_enc *e)
{
	fx->out.len = 0;
	msgpack_sbuffer_clear(&fx->sb);
	proto_enc_begin(e, &fx->out, PROTO_PING, 1);
	return fx->out.len;
}

/* What the encoder wrote since before is what msgpack-c wrote to fx->sb. */
static void
assert_enc_is_sb(const struct fx *fx, size_t before)
{
	assert_int_equal(fx->out.len - before, fx->sb.size);
	assert_memory_equal(fx->out.data + before, fx->sb.data, fx->sb.size);
}

static void
enc_scalars_match_msgpack_c_at_every_boundary(void **state)
{
	struct fx *fx = *state;
	static const uint64_t us[] = {
	    0,          0x7f,           0x80,       0xff,
	    0x100,      0xffff,         0x10000,    0xffffffffULL,
	    1ULL << 32, UINT64_MAX - 1, UINT64_MAX,
	};
	static const int64_t is[] = {
	    -1,        -32,       -33,
	    -128,      -129,      -32768,
	    -32769,    INT32_MIN, INT32_MIN - 1LL,
	    INT64_MIN, 0,         5,
	    0x80,      INT64_MAX,
	};
	static const size_t lens[] = {0, 31, 32, 255, 256, 1024};
	struct proto_enc e;
	size_t i, before;

	for (i = 0; i < sizeof(us) / sizeof(us[0]); i++) {
		before = enc_fresh(fx, &e);
		proto_enc_u64(&e, PF_DONE, us[i]);
		pk_str(&fx->pk, "done");
		msgpack_pack_uint64(&fx->pk, us[i]);
		assert_enc_is_sb(fx, before);
	}
	for (i = 0; i < sizeof(is) / sizeof(is[0]); i++) {
		before = enc_fresh(fx, &e);
		proto_enc_i64(&e, PF_WORKER, is[i]);
		pk_str(&fx->pk, "worker");
		msgpack_pack_int64(&fx->pk, is[i]);
		assert_enc_is_sb(fx, before);
	}
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		before = enc_fresh(fx, &e);
		proto_enc_str(&e, PF_MESSAGE, filler, lens[i]);
		proto_enc_bool(&e, PF_ALL, lens[i] % 2 == 0);
		pk_str(&fx->pk, "message");
		msgpack_pack_str_with_body(&fx->pk, filler, lens[i]);
		pk_str(&fx->pk, "all");
		if (lens[i] % 2 == 0)
			msgpack_pack_true(&fx->pk);
		else
			msgpack_pack_false(&fx->pk);
		assert_enc_is_sb(fx, before);
		assert_int_equal(proto_enc_end(&e), 0);
		assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
		assert_int_equal(fx->m.f[PF_MESSAGE].via.str.size, lens[i]);
	}
}

/* ---- round trips, one per message type ---- */

static void
round_trip_hello(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_HELLO, 1);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	end_and_decode(fx, &e, PROTO_HELLO, 1, B(VERSION));
	assert_int_equal(proto_u64(&fx->m, PF_VERSION, 0), PROTO_VERSION);
}

static void
round_trip_ping(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PING, UINT64_MAX);
	end_and_decode(fx, &e, PROTO_PING, UINT64_MAX, 0);
}

static void
round_trip_submit_with_args(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	const msgpack_object *args;

	proto_enc_begin(&e, &fx->out, PROTO_SUBMIT, 2);
	proto_enc_cstr(&e, PF_TASK, "primes");
	proto_enc_key(&e, PF_ARGS);
	proto_enc_map_open(&e);
	proto_enc_u64(&e, PF_LIMIT, 2000000);
	proto_enc_cstr(&e, PF_NAME, "first");
	proto_enc_close(&e);
	proto_enc_cstr(&e, PF_EXEC, "thread");
	proto_enc_bool(&e, PF_WATCH, true);
	proto_enc_bool(&e, PF_DAEMON, false);
	proto_enc_u64(&e, PF_TIMEOUT, 30000);
	end_and_decode(fx, &e, PROTO_SUBMIT, 2,
	               B(TASK) | B(ARGS) | B(EXEC) | B(WATCH) | B(DAEMON) |
	                   B(TIMEOUT));
	assert_str_field(&fx->m, PF_TASK, "primes");
	assert_str_field(&fx->m, PF_EXEC, "thread");
	assert_true(proto_bool(&fx->m, PF_WATCH, false));
	assert_false(proto_bool(&fx->m, PF_DAEMON, true));
	assert_int_equal(proto_u64(&fx->m, PF_TIMEOUT, 0), 30000);
	args = &fx->m.f[PF_ARGS];
	assert_int_equal(args->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(args->via.map.size, 2);
	assert_str_obj(&args->via.map.ptr[0].key, "limit");
	assert_int_equal(args->via.map.ptr[0].val.type,
	                 MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(args->via.map.ptr[0].val.via.u64, 2000000);
	assert_str_obj(&args->via.map.ptr[1].key, "name");
	assert_str_obj(&args->via.map.ptr[1].val, "first");
}

static void
round_trip_watch(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_WATCH, 4);
	proto_enc_u64(&e, PF_JOB, 77);
	proto_enc_bool(&e, PF_FRESH, true);
	end_and_decode(fx, &e, PROTO_WATCH, 4, B(JOB) | B(FRESH));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 77);
	assert_true(proto_bool(&fx->m, PF_FRESH, false));
}

static void
round_trip_status(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_STATUS, 5);
	proto_enc_u64(&e, PF_JOB, UINT64_C(1) << 40);
	end_and_decode(fx, &e, PROTO_STATUS, 5, B(JOB));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), UINT64_C(1) << 40);
}

static void
round_trip_ps(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PS, 6);
	proto_enc_bool(&e, PF_ALL, true);
	proto_enc_u64(&e, PF_LIMIT, 50);
	end_and_decode(fx, &e, PROTO_PS, 6, B(ALL) | B(LIMIT));
	assert_true(proto_bool(&fx->m, PF_ALL, false));
	assert_int_equal(proto_u64(&fx->m, PF_LIMIT, 0), 50);
}

static void
round_trip_cancel(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_CANCEL, 7);
	proto_enc_u64(&e, PF_JOB, 9);
	end_and_decode(fx, &e, PROTO_CANCEL, 7, B(JOB));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 9);
}

static void
round_trip_result(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_RESULT, 8);
	proto_enc_u64(&e, PF_JOB, 10);
	end_and_decode(fx, &e, PROTO_RESULT, 8, B(JOB));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 10);
}

static void
round_trip_tasks(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_TASKS, 9);
	end_and_decode(fx, &e, PROTO_TASKS, 9, 0);
}

static void
round_trip_shutdown(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_SHUTDOWN, 10);
	end_and_decode(fx, &e, PROTO_SHUTDOWN, 10, 0);
}

static void
round_trip_welcome(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_WELCOME, 1);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	proto_enc_cstr(&e, PF_SERVER, "concd 0.1.0");
	proto_enc_u64(&e, PF_PID, 4242);
	end_and_decode(fx, &e, PROTO_WELCOME, 1,
	               B(VERSION) | B(SERVER) | B(PID));
	assert_int_equal(proto_u64(&fx->m, PF_VERSION, 0), PROTO_VERSION);
	assert_str_field(&fx->m, PF_SERVER, "concd 0.1.0");
	assert_int_equal(proto_u64(&fx->m, PF_PID, 0), 4242);
}

static void
round_trip_pong(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PONG, 11);
	end_and_decode(fx, &e, PROTO_PONG, 11, 0);
}

static void
pong_with_id_zero_carries_no_id(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PONG, 0);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_PONG);
	assert_int_equal(fx->m.id, 0);
	assert_int_equal(fx->m.present, B(T));
}

static void
round_trip_accepted(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_ACCEPTED, 2);
	proto_enc_u64(&e, PF_JOB, 1);
	proto_enc_cstr(&e, PF_STATE, proto_states[PS_QUEUED]);
	proto_enc_cstr(&e, PF_EXEC, proto_execs[PX_THREAD]);
	proto_enc_cstr(&e, PF_REQUESTED, proto_execs[PX_AUTO]);
	end_and_decode(fx, &e, PROTO_ACCEPTED, 2,
	               B(JOB) | B(STATE) | B(EXEC) | B(REQUESTED));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 1);
	assert_str_field(&fx->m, PF_STATE, "queued");
	assert_str_field(&fx->m, PF_EXEC, "thread");
	assert_str_field(&fx->m, PF_REQUESTED, "auto");
}

static void
round_trip_progress(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PROGRESS, 2);
	proto_enc_u64(&e, PF_JOB, 1);
	proto_enc_u64(&e, PF_DONE, 3);
	proto_enc_u64(&e, PF_TOTAL, 8);
	proto_enc_cstr(&e, PF_MSG, "sieving 3/8");
	end_and_decode(fx, &e, PROTO_PROGRESS, 2,
	               B(JOB) | B(DONE) | B(TOTAL) | B(MSG));
	assert_int_equal(proto_u64(&fx->m, PF_DONE, 0), 3);
	assert_int_equal(proto_u64(&fx->m, PF_TOTAL, 0), 8);
	assert_str_field(&fx->m, PF_MSG, "sieving 3/8");
}

static void
round_trip_end_with_raw_result(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	msgpack_object want;
	msgpack_zone z;
	size_t off = 0;

	/* a stored result, already msgpack */
	msgpack_pack_map(&fx->pk, 2);
	pk_str(&fx->pk, "count");
	msgpack_pack_uint32(&fx->pk, 148933);
	pk_str(&fx->pk, "first");
	msgpack_pack_array(&fx->pk, 3);
	msgpack_pack_int8(&fx->pk, 2);
	msgpack_pack_double(&fx->pk, 3.5);
	msgpack_pack_nil(&fx->pk);

	proto_enc_begin(&e, &fx->out, PROTO_END, 2);
	proto_enc_u64(&e, PF_JOB, 1);
	proto_enc_cstr(&e, PF_STATE, proto_states[PS_SUCCEEDED]);
	proto_enc_raw(&e, PF_RESULT, fx->sb.data, fx->sb.size);
	proto_enc_i64(&e, PF_WORKER, -1);
	end_and_decode(fx, &e, PROTO_END, 2,
	               B(JOB) | B(STATE) | B(RESULT) | B(WORKER));
	assert_str_field(&fx->m, PF_STATE, "succeeded");
	assert_int_equal(proto_i64(&fx->m, PF_WORKER, 0), -1);

	assert_true(msgpack_zone_init(&z, 1024));
	assert_int_equal(
	    msgpack_unpack(fx->sb.data, fx->sb.size, &off, &z, &want),
	    MSGPACK_UNPACK_SUCCESS);
	assert_true(msgpack_object_equal(want, fx->m.f[PF_RESULT]));
	msgpack_zone_destroy(&z);
}

static void
round_trip_end_of_a_failed_job(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_END, 3);
	proto_enc_u64(&e, PF_JOB, 4);
	proto_enc_cstr(&e, PF_STATE, proto_states[PS_FAILED]);
	proto_enc_cstr(&e, PF_ERROR, proto_errors[PE_TASK_FAILED].name);
	proto_enc_cstr(&e, PF_MESSAGE, "checksum: no such file");
	end_and_decode(fx, &e, PROTO_END, 3,
	               B(JOB) | B(STATE) | B(ERROR) | B(MESSAGE));
	assert_str_field(&fx->m, PF_STATE, "failed");
	assert_str_field(&fx->m, PF_ERROR, "task_failed");
	assert_str_field(&fx->m, PF_MESSAGE, "checksum: no such file");
}

static void
round_trip_job(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_JOB, 12);
	proto_enc_u64(&e, PF_JOB, 5);
	proto_enc_cstr(&e, PF_TASK, "sleep");
	proto_enc_cstr(&e, PF_STATE, "running");
	proto_enc_cstr(&e, PF_EXEC, "process");
	proto_enc_cstr(&e, PF_REQUESTED, "process");
	proto_enc_u64(&e, PF_UID, 1000);
	proto_enc_i64(&e, PF_WORKER, 3);
	proto_enc_u64(&e, PF_TID, 9876);
	proto_enc_u64(&e, PF_SUBMITTED, 1700000000000);
	proto_enc_u64(&e, PF_STARTED, 1700000000100);
	proto_enc_u64(&e, PF_DONE, 1);
	proto_enc_u64(&e, PF_TOTAL, 2);
	proto_enc_bool(&e, PF_CANCEL_PENDING, true);
	end_and_decode(fx, &e, PROTO_JOB, 12,
	               B(JOB) | B(TASK) | B(STATE) | B(EXEC) | B(REQUESTED) |
	                   B(UID) | B(WORKER) | B(TID) | B(SUBMITTED) |
	                   B(STARTED) | B(DONE) | B(TOTAL) | B(CANCEL_PENDING));
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 5);
	assert_str_field(&fx->m, PF_TASK, "sleep");
	assert_str_field(&fx->m, PF_STATE, "running");
	assert_str_field(&fx->m, PF_EXEC, "process");
	assert_str_field(&fx->m, PF_REQUESTED, "process");
	assert_int_equal(proto_u64(&fx->m, PF_UID, 0), 1000);
	assert_int_equal(proto_i64(&fx->m, PF_WORKER, -1), 3);
	assert_int_equal(proto_u64(&fx->m, PF_TID, 0), 9876);
	assert_int_equal(proto_u64(&fx->m, PF_SUBMITTED, 0), 1700000000000);
	assert_int_equal(proto_u64(&fx->m, PF_STARTED, 0), 1700000000100);
	assert_int_equal(proto_u64(&fx->m, PF_DONE, 0), 1);
	assert_int_equal(proto_u64(&fx->m, PF_TOTAL, 0), 2);
	assert_true(proto_bool(&fx->m, PF_CANCEL_PENDING, false));
}

static void
round_trip_jobs_with_rows_and_counts(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	struct proto_msg row;
	struct proto_fault f;
	const msgpack_object *jobs, *counts;
	uint32_t i;

	proto_enc_begin(&e, &fx->out, PROTO_JOBS, 13);
	proto_enc_key(&e, PF_JOBS);
	proto_enc_array_open(&e);
	for (i = 0; i < 3; i++) {
		proto_enc_map_open(&e);
		proto_enc_u64(&e, PF_JOB, 100 + i);
		proto_enc_cstr(&e, PF_TASK, i == 1 ? "sleep" : "noop");
		proto_enc_cstr(&e, PF_STATE, proto_states[i]);
		proto_enc_u64(&e, PF_UID, 1000 + i);
		proto_enc_close(&e);
	}
	proto_enc_close(&e);
	proto_enc_key(&e, PF_COUNTS);
	proto_enc_map_open(&e);
	for (i = 0; i < PS_COUNT; i++) {
		pk_str(&e.pk, proto_states[i]);
		msgpack_pack_uint32(&e.pk, 10 * i);
		proto_enc_elem(&e);
	}
	proto_enc_close(&e);
	end_and_decode(fx, &e, PROTO_JOBS, 13, B(JOBS) | B(COUNTS));

	jobs = &fx->m.f[PF_JOBS];
	assert_int_equal(jobs->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(jobs->via.array.size, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(
		    proto_decode_fields(&jobs->via.array.ptr[i], &row, &f), 0);
		assert_int_equal(row.present,
		                 B(JOB) | B(TASK) | B(STATE) | B(UID));
		assert_int_equal(proto_u64(&row, PF_JOB, 0), 100 + i);
		assert_str_field(&row, PF_TASK, i == 1 ? "sleep" : "noop");
		assert_str_field(&row, PF_STATE, proto_states[i]);
		assert_int_equal(proto_u64(&row, PF_UID, 0), 1000 + i);
	}
	counts = &fx->m.f[PF_COUNTS];
	assert_int_equal(counts->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(counts->via.map.size, PS_COUNT);
	for (i = 0; i < PS_COUNT; i++) {
		const msgpack_object_kv *kv = &counts->via.map.ptr[i];

		assert_int_equal(proto_state_lookup(kv->key.via.str.ptr,
		                                    kv->key.via.str.size),
		                 i);
		assert_int_equal(kv->val.via.u64, 10 * i);
	}
}

static void
round_trip_tasklist_with_nested_arrays(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	struct proto_msg row;
	struct proto_fault f;
	const msgpack_object *tasks, *ex;
	uint32_t i;

	proto_enc_begin(&e, &fx->out, PROTO_TASKLIST, 14);
	proto_enc_key(&e, PF_TASKS);
	proto_enc_array_open(&e);
	for (i = 0; i < 2; i++) {
		proto_enc_map_open(&e);
		proto_enc_cstr(&e, PF_NAME, i ? "primes" : "noop");
		proto_enc_cstr(&e, PF_SUMMARY, "does a thing");
		proto_enc_cstr(&e, PF_USAGE, "n=<count>");
		proto_enc_key(&e, PF_TRAITS);
		proto_enc_array_open(&e);
		pk_str(&e.pk, "cpu");
		proto_enc_elem(&e);
		proto_enc_close(&e);
		proto_enc_key(&e, PF_EXECUTORS);
		proto_enc_array_open(&e);
		pk_str(&e.pk, "thread");
		proto_enc_elem(&e);
		pk_str(&e.pk, "process");
		proto_enc_elem(&e);
		proto_enc_close(&e);
		proto_enc_cstr(&e, PF_DEFAULT, "thread");
		proto_enc_close(&e);
	}
	proto_enc_close(&e);
	end_and_decode(fx, &e, PROTO_TASKLIST, 14, B(TASKS));

	tasks = &fx->m.f[PF_TASKS];
	assert_int_equal(tasks->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(tasks->via.array.size, 2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(
		    proto_decode_fields(&tasks->via.array.ptr[i], &row, &f), 0);
		assert_int_equal(row.present, B(NAME) | B(SUMMARY) | B(USAGE) |
		                                  B(TRAITS) | B(EXECUTORS) |
		                                  B(DEFAULT));
		assert_str_field(&row, PF_NAME, i ? "primes" : "noop");
		assert_str_field(&row, PF_SUMMARY, "does a thing");
		assert_str_field(&row, PF_USAGE, "n=<count>");
		assert_str_field(&row, PF_DEFAULT, "thread");
		assert_int_equal(row.f[PF_TRAITS].via.array.size, 1);
		assert_str_obj(&row.f[PF_TRAITS].via.array.ptr[0], "cpu");
		ex = &row.f[PF_EXECUTORS];
		assert_int_equal(ex->via.array.size, 2);
		assert_str_obj(&ex->via.array.ptr[0], "thread");
		assert_str_obj(&ex->via.array.ptr[1], "process");
	}
}

/*
 * Every row of the type table, including rows added after these tests
 * were written: the envelope and each required field, with a value of
 * the field's table type, survive the round trip.
 */
static void
round_trip_every_type_with_its_required_fields(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	int t, k;

	for (t = 0; t < PROTO_TYPE_COUNT; t++) {
		uint64_t req = proto_types[t].required & ~(B(T) | B(ID));
		uint64_t id = 1000 + (uint64_t)t;

		fx->out.len = 0;
		proto_enc_begin(&e, &fx->out, (enum proto_type)t, id);
		for (k = 0; k < PF_FIELD_COUNT; k++) {
			const struct proto_field_info *fi = &proto_fields[k];

			if (!(req & PF_BIT(k)))
				continue;
			switch (fi->type) {
			case PV_UINT:
				proto_enc_u64(&e, k, 3 * (uint64_t)k + 1);
				break;
			case PV_INT:
				proto_enc_i64(&e, k, -k);
				break;
			case PV_BOOL:
				proto_enc_bool(&e, k, true);
				break;
			case PV_STR:
				proto_enc_str(&e, k, fi->name,
				              fi->max &&
				                      strlen(fi->name) > fi->max
				                  ? fi->max
				                  : strlen(fi->name));
				break;
			case PV_MAP:
				proto_enc_key(&e, k);
				proto_enc_map_open(&e);
				proto_enc_close(&e);
				break;
			case PV_ARRAY:
				proto_enc_key(&e, k);
				proto_enc_array_open(&e);
				proto_enc_close(&e);
				break;
			case PV_ANY:
				proto_enc_key(&e, k);
				msgpack_pack_nil(&e.pk);
				break;
			}
		}
		end_and_decode(fx, &e, (enum proto_type)t, id, req);
		for (k = 0; k < PF_FIELD_COUNT; k++) {
			const struct proto_field_info *fi = &proto_fields[k];
			const msgpack_object *o = &fx->m.f[k];

			if (!(req & PF_BIT(k)))
				continue;
			switch (fi->type) {
			case PV_UINT:
				assert_int_equal(proto_u64(&fx->m, k, 0),
				                 3 * (uint64_t)k + 1);
				break;
			case PV_INT:
				assert_int_equal(proto_i64(&fx->m, k, 0), -k);
				break;
			case PV_BOOL:
				assert_true(proto_bool(&fx->m, k, false));
				break;
			case PV_STR:
				assert_int_equal(strncmp(o->via.str.ptr,
				                         fi->name,
				                         o->via.str.size),
				                 0);
				break;
			case PV_MAP:
				assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
				assert_int_equal(o->via.map.size, 0);
				break;
			case PV_ARRAY:
				assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
				assert_int_equal(o->via.array.size, 0);
				break;
			case PV_ANY:
				assert_int_equal(o->type, MSGPACK_OBJECT_NIL);
				break;
			}
		}
	}
}

static void
round_trip_ok(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_OK, 15);
	end_and_decode(fx, &e, PROTO_OK, 15, 0);
}

static void
round_trip_error_for_every_code(void **state)
{
	struct fx *fx = *state;
	int i;

	for (i = 0; i < PE_COUNT; i++) {
		fx->out.len = 0;
		proto_enc_error(&fx->out, 100 + (uint64_t)i,
		                (enum proto_error)i, "something went wrong");
		assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
		assert_int_equal(fx->m.type, PROTO_ERROR);
		assert_int_equal(fx->m.id, 100 + (uint64_t)i);
		assert_int_equal(fx->m.present,
		                 B(T) | B(ID) | B(ERROR) | B(MESSAGE));
		assert_str_field(&fx->m, PF_ERROR, proto_errors[i].name);
		assert_str_field(&fx->m, PF_MESSAGE, "something went wrong");
	}
}

static void
enc_error_uses_the_table_text_without_a_message(void **state)
{
	struct fx *fx = *state;

	proto_enc_error(&fx->out, 1, PE_QUEUE_FULL, NULL);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_str_field(&fx->m, PF_ERROR, "queue_full");
	assert_str_field(&fx->m, PF_MESSAGE, "queue is full");
}

/*
 * The daemon builds messages from what a user sent (a task's argument
 * error, a path): an error reply must stay decodable by the client
 * whatever the message's length.
 */
static void
enc_error_with_a_long_message_still_decodes(void **state)
{
	struct fx *fx = *state;
	size_t len;
	const char *s;

	filler[2000] = '\0';
	proto_enc_error(&fx->out, 1, PE_BAD_ARGS, filler);
	filler[2000] = 'a';
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_ERROR);
	assert_str_field(&fx->m, PF_ERROR, "bad_args");
	s = proto_str(&fx->m, PF_MESSAGE, &len);
	assert_non_null(s);
	assert_in_range(len, 1, proto_fields[PF_MESSAGE].max);
	assert_memory_equal(s, filler, len);
}

/* ---- the encoder's limits ---- */

static int
enc_big_end(struct fx *fx, size_t last)
{
	struct proto_enc e;
	int i;

	proto_enc_begin(&e, &fx->out, PROTO_END, 1);
	proto_enc_u64(&e, PF_JOB, 1);
	proto_enc_cstr(&e, PF_STATE, "succeeded");
	proto_enc_key(&e, PF_RESULT);
	proto_enc_array_open(&e);
	for (i = 0; i < 4; i++) {
		msgpack_pack_str_with_body(&e.pk, filler, 200000);
		proto_enc_elem(&e);
	}
	msgpack_pack_str_with_body(&e.pk, filler, last);
	proto_enc_elem(&e);
	proto_enc_close(&e);
	return proto_enc_end(&e);
}

static void
enc_end_accepts_a_frame_of_exactly_max_frame(void **state)
{
	struct fx *fx = *state;
	size_t last;

	assert_int_equal(enc_big_end(fx, 65536), 0);
	last = 65536 + (PROTO_MAX_FRAME - (fx->out.len - PROTO_HEADER_LEN));
	assert_true(last <= PROTO_MAX_STR);
	fx->out.len = 0;
	assert_int_equal(enc_big_end(fx, last), 0);
	assert_int_equal(fx->out.len, PROTO_HEADER_LEN + PROTO_MAX_FRAME);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_END);
	assert_int_equal(fx->m.f[PF_RESULT].via.array.size, 5);
	assert_int_equal(fx->m.f[PF_RESULT].via.array.ptr[4].via.str.size,
	                 last);
}

static void
enc_end_refuses_a_frame_over_max_frame_leaving_the_pbuf_as_it_was(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	struct pbuf copy = {0};
	size_t last;

	assert_int_equal(enc_big_end(fx, 65536), 0);
	last = 65536 + (PROTO_MAX_FRAME - (fx->out.len - PROTO_HEADER_LEN));
	/* one queued frame that must survive */
	fx->out.len = 0;
	proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
	assert_int_equal(proto_enc_end(&e), 0);
	pbuf_append(&copy, fx->out.data, fx->out.len);

	assert_int_equal(enc_big_end(fx, last + 1), -1);
	assert_int_equal(fx->out.len, copy.len);
	assert_memory_equal(fx->out.data, copy.data, copy.len);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_PING);

	/* and the next frame goes right after it */
	proto_enc_begin(&e, &fx->out, PROTO_PING, 2);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(fx->out.len, 2 * copy.len);
	pbuf_free(&copy);
}

static void
enc_end_refuses_nesting_beyond_enc_depth(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	int i;

	proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
	proto_enc_key(&e, PF_RESULT);
	for (i = 1; i < PROTO_ENC_DEPTH; i++)
		proto_enc_array_open(&e);
	/* one level too many */
	proto_enc_array_open(&e);
	assert_int_equal(proto_enc_end(&e), -1);
	assert_int_equal(fx->out.len, 0);

	/* PROTO_ENC_DEPTH levels, the top map included, are fine */
	proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
	proto_enc_key(&e, PF_RESULT);
	for (i = 1; i < PROTO_ENC_DEPTH; i++)
		proto_enc_array_open(&e);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
}

static void
enc_end_refuses_a_close_without_an_open(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
	proto_enc_close(&e); /* the top map */
	proto_enc_close(&e); /* nothing left */
	assert_int_equal(proto_enc_end(&e), -1);
	assert_int_equal(fx->out.len, 0);
}

static void
enc_end_refuses_more_than_65535_elements(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	uint32_t i, n;

	for (n = 65535; n <= 65536; n++) {
		fx->out.len = 0;
		proto_enc_begin(&e, &fx->out, PROTO_PING, 1);
		proto_enc_key(&e, PF_RESULT);
		proto_enc_array_open(&e);
		for (i = 0; i < n; i++) {
			msgpack_pack_uint8(&e.pk, 1);
			proto_enc_elem(&e);
		}
		proto_enc_close(&e);
		if (n == 65535) {
			assert_int_equal(proto_enc_end(&e), 0);
			assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
			assert_int_equal(fx->m.f[PF_RESULT].via.array.size,
			                 65535);
		} else {
			assert_int_equal(proto_enc_end(&e), -1);
			assert_int_equal(fx->out.len, 0);
		}
	}
}

/* ---- malformed frames: PROTO_DECODE_BAD ---- */

static void
decode_rejects_every_truncated_prefix_of_a_valid_frame(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	const char *payload;
	size_t plen, n;

	proto_enc_begin(&e, &fx->out, PROTO_TASKLIST, 300);
	proto_enc_key(&e, PF_TASKS);
	proto_enc_array_open(&e);
	proto_enc_map_open(&e);
	proto_enc_cstr(&e, PF_NAME, "checksum");
	proto_enc_key(&e, PF_TRAITS);
	proto_enc_array_open(&e);
	pk_str(&e.pk, "io");
	proto_enc_elem(&e);
	msgpack_pack_bin_with_body(&e.pk, "\0\1\2", 3);
	proto_enc_elem(&e);
	proto_enc_close(&e);
	proto_enc_close(&e);
	proto_enc_close(&e);
	proto_enc_u64(&e, PF_LIMIT, UINT64_MAX);
	proto_enc_i64(&e, PF_WORKER, INT64_MIN);
	proto_enc_key(&e, PF_RESULT);
	msgpack_pack_double(&e.pk, 1.5);
	proto_enc_key(&e, PF_ARGS);
	msgpack_pack_map(&e.pk, 1);
	msgpack_pack_str_with_body(&e.pk, filler, 300); /* str16 */
	msgpack_pack_float(&e.pk, 2.5f);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);

	payload = fx->out.data + PROTO_HEADER_LEN;
	plen = fx->out.len - PROTO_HEADER_LEN;
	for (n = 0; n < plen; n++) {
		assert_int_equal(decode_payload(fx, payload, n),
		                 PROTO_DECODE_BAD);
		assert_int_equal(fx->f.code, PE_BAD_FRAME);
		assert_int_equal(strncmp(fx->f.message, "malformed frame: ",
		                         strlen("malformed frame: ")),
		                 0);
		assert_int_equal(fx->m.present, 0);
	}
}

static void
decode_rejects_a_map32_claiming_800_million_entries(void **state)
{
	struct fx *fx = *state;
	/* 12 bytes: a map32 header for 800,000,000 pairs, then {"t" */
	static const char frame[] = {0x00, 0x00,       0x00, 0x08, (char)0xdf,
	                             0x2f, (char)0xaf, 0x08, 0x00, (char)0xa1,
	                             't',  (char)0xa4};
	const char *payload;
	size_t plen;

	assert_int_equal(
	    proto_frame_next(frame, sizeof(frame), &payload, &plen), 12);
	assert_int_equal(decode_payload(fx, payload, plen), PROTO_DECODE_BAD);
	assert_fault(fx, PE_BAD_FRAME, "malformed frame: container too large");
}

static void
decode_rejects_a_map16_claiming_more_pairs_than_bytes(void **state)
{
	struct fx *fx = *state;

	pk_bytes(fx, "\xde\xff\xff\xa1t\xa4ping", 9);
	assert_bad(fx, "malformed frame: container larger than frame");
}

static void
decode_rejects_a_str32_longer_than_the_frame(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "message");
	pk_bytes(fx,
	         "\xdb\x00\x00\x03\xe8"
	         "abc",
	         8); /* claims 1000 */
	assert_bad(fx, "malformed frame: string longer than frame");
}

static void
decode_rejects_a_str32_claiming_4_gib(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "message");
	pk_bytes(fx,
	         "\xdb\xff\xff\xff\xff"
	         "abc",
	         8);
	assert_bad(fx, "malformed frame: string too long");
}

static void
decode_rejects_a_bin32_longer_than_the_frame(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	pk_bytes(fx, "\xc6\x00\x01\x00\x00xyz", 8); /* claims 65536 bytes */
	assert_bad(fx, "malformed frame: string longer than frame");
}

static void
decode_rejects_an_array32_claiming_more_elements_than_bytes(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	pk_bytes(fx, "\xdd\x00\x00\x10\x00\x01\x02", 7); /* 4096 claimed */
	assert_bad(fx, "malformed frame: container larger than frame");
}

static void
decode_rejects_an_array32_over_max_items(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	pk_bytes(fx, "\xdd\x00\x01\x00\x01\x01", 6); /* 65537 claimed */
	assert_bad(fx, "malformed frame: container too large");
}

static void
decode_rejects_a_cut_str16_header(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "message");
	pk_bytes(fx, "\xda\x00", 2);
	assert_bad(fx, "malformed frame: truncated header");
}

static void
decode_rejects_a_cut_uint64(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "id");
	pk_bytes(fx, "\xcf\x00\x00\x00", 4);
	assert_bad(fx, "malformed frame: truncated header");
}

static void
decode_accepts_a_string_of_exactly_max_str(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	msgpack_pack_str_with_body(&fx->pk, filler, PROTO_MAX_STR);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.f[PF_RESULT].via.str.size, PROTO_MAX_STR);
}

static void
decode_rejects_a_string_over_max_str_even_when_present(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	msgpack_pack_str_with_body(&fx->pk, filler, PROTO_MAX_STR + 1);
	assert_bad(fx, "malformed frame: string too long");
}

static void
decode_accepts_nesting_of_exactly_max_depth(void **state)
{
	struct fx *fx = *state;
	const msgpack_object *o;
	int i;

	/* the top-level map is one level */
	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	pk_nested_arrays(&fx->pk, PROTO_MAX_DEPTH - 1, false);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	o = &fx->m.f[PF_RESULT];
	for (i = 0; i < PROTO_MAX_DEPTH - 1; i++) {
		assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
		assert_int_equal(o->via.array.size, 1);
		o = &o->via.array.ptr[0];
	}
	assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
}

static void
decode_rejects_nesting_deeper_than_max_depth(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	pk_nested_arrays(&fx->pk, PROTO_MAX_DEPTH, false);
	assert_bad(fx, "malformed frame: nested too deeply");
}

static void
decode_rejects_nesting_of_maps_deeper_than_max_depth(void **state)
{
	struct fx *fx = *state;
	int i;

	pk_msg(fx, 2, "ping");
	for (i = 0; i < PROTO_MAX_DEPTH; i++) {
		pk_str(&fx->pk, i ? "k" : "result");
		msgpack_pack_map(&fx->pk, 1);
	}
	pk_str(&fx->pk, "k");
	msgpack_pack_nil(&fx->pk);
	assert_bad(fx, "malformed frame: nested too deeply");
}

/* An empty container is still one level of nesting. */
static void
decode_rejects_nesting_deeper_than_max_depth_ending_in_an_empty_array(
    void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	pk_nested_arrays(&fx->pk, PROTO_MAX_DEPTH, true);
	assert_bad(fx, "malformed frame: nested too deeply");
}

static void
decode_rejects_every_ext_type(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char *bytes;
		size_t len;
	} ext[] = {
	    {"\xd4\x01\x00", 3},                              /* fixext 1 */
	    {"\xd5\x01\x00\x00", 4},                          /* fixext 2 */
	    {"\xd6\x01\x00\x00\x00\x00", 6},                  /* fixext 4 */
	    {"\xd7\x01\0\0\0\0\0\0\0\0", 10},                 /* fixext 8 */
	    {"\xd8\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 18}, /* fixext 16 */
	    {"\xc7\x01\x01\x00", 4},                          /* ext 8 */
	    {"\xc8\x00\x01\x01\x00", 5},                      /* ext 16 */
	    {"\xc9\x00\x00\x00\x01\x01\x00", 7},              /* ext 32 */
	    {"\xd6\xff\x00\x00\x00\x00", 6},                  /* timestamp 32 */
	};
	size_t i;

	for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		msgpack_sbuffer_clear(&fx->sb);
		pk_msg(fx, 2, "ping");
		pk_str(&fx->pk, "result");
		pk_bytes(fx, ext[i].bytes, ext[i].len);
		assert_bad(fx,
		           "malformed frame: unsupported msgpack type (ext)");

		/* as the whole message, too */
		msgpack_sbuffer_clear(&fx->sb);
		pk_bytes(fx, ext[i].bytes, ext[i].len);
		assert_bad(fx,
		           "malformed frame: unsupported msgpack type (ext)");
	}
}

/* 0xc1 is no type at all, not an extension: the message says so */
static void
decode_rejects_byte_0xc1_naming_it(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	pk_bytes(fx, "\xc1", 1);
	assert_bad(fx, "malformed frame: byte 0xc1, which MessagePack never "
	               "uses");
	msgpack_sbuffer_clear(&fx->sb);
	pk_bytes(fx, "\xc1", 1);
	assert_bad(fx, "malformed frame: byte 0xc1, which MessagePack never "
	               "uses");
}

static const struct {
	const char *s;
	size_t len;
	bool valid;
	const char *what;
} utf8_cases[] = {
#define U(lit, ok, what)                                                       \
	{                                                                      \
		lit, sizeof(lit) - 1, ok, what                                 \
	}
    U("", true, "empty"),
    U("ping", true, "ASCII"),
    U("a\0b", true, "NUL is U+0000"),
    U("\x7f", true, "U+007F"),
    U("\xc2\x80", true, "U+0080, the first two-byte"),
    U("\xdf\xbf", true, "U+07FF"),
    U("\xe0\xa0\x80", true, "U+0800, the first three-byte"),
    U("\xed\x9f\xbf", true, "U+D7FF, below the surrogates"),
    U("\xee\x80\x80", true, "U+E000, above the surrogates"),
    U("\xef\xbf\xbf", true, "U+FFFF"),
    U("\xf0\x90\x80\x80", true, "U+10000, the first four-byte"),
    U("\xf4\x8f\xbf\xbf", true, "U+10FFFF, the last"),
    U("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", true, "mixed"),
    U("p\xffng", false, "0xff"),
    U("\xfe", false, "0xfe"),
    U("\x80", false, "a lone continuation byte"),
    U("a\xbf", false, "a continuation byte after ASCII"),
    U("\xc0\x80", false, "overlong NUL"),
    U("\xc0\xaf", false, "overlong slash, two bytes"),
    U("\xc1\xbf", false, "overlong U+007F"),
    U("\xe0\x80\xaf", false, "overlong slash, three bytes"),
    U("\xe0\x9f\xbf", false, "overlong U+07FF"),
    U("\xf0\x80\x80\xaf", false, "overlong slash, four bytes"),
    U("\xf0\x8f\xbf\xbf", false, "overlong U+FFFF"),
    U("\xed\xa0\x80", false, "U+D800, a high surrogate"),
    U("\xed\xbf\xbf", false, "U+DFFF, a low surrogate"),
    U("\xed\xa0\xbd\xed\xb8\x80", false, "a surrogate pair (CESU-8)"),
    U("\xf4\x90\x80\x80", false, "U+110000"),
    U("\xf5\x80\x80\x80", false, "lead 0xf5"),
    U("\xf7\xbf\xbf\xbf", false, "U+1FFFFF"),
    U("\xf8\x88\x80\x80\x80", false, "five bytes"),
    U("\xc3", false, "two-byte cut after its lead"),
    U("\xe2\x82", false, "three-byte cut short"),
    U("\xf0\x9f\x98", false, "four-byte cut short"),
    U("ok\xf0\x9f", false, "cut short at the end"),
    U("\xc3(", false, "lead followed by ASCII"),
    U("\xe2\x28\xa1", false, "bad second byte"),
    U("\xe2\x82\x28", false, "bad third byte"),
    U("\xf0\x9f\x98\x28", false, "bad fourth byte"),
#undef U
};

static void
utf8_valid_accepts_utf8_and_nothing_else(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		bool got = proto_utf8_valid(utf8_cases[i].s, utf8_cases[i].len);

		if (got != utf8_cases[i].valid)
			fail_msg("%s: got %s", utf8_cases[i].what,
			         got ? "valid" : "invalid");
	}
}

/* The length given, not a NUL, ends the string; no byte past it is read. */
static void
utf8_valid_reads_only_the_length_given(void **state)
{
	char *p = malloc(2);

	assert_non_null(p);
	memcpy(p, "\xc3\xa9", 2);
	assert_true(proto_utf8_valid(p, 2));
	assert_false(proto_utf8_valid(p, 1));
	assert_true(proto_utf8_valid(p, 0));
	free(p);
}

static void
quote_escapes_controls_quotes_and_bad_bytes(void **state)
{
	char out[64];

	assert_string_equal(proto_quote(out, sizeof(out), "caf\xc3\xa9", 5),
	                    "caf\xc3\xa9");
	assert_string_equal(proto_quote(out, sizeof(out), "a\0b", 3),
	                    "a\\x00b");
	assert_string_equal(proto_quote(out, sizeof(out), "t\tn\n\x7f", 5),
	                    "t\\x09n\\x0a\\x7f");
	assert_string_equal(proto_quote(out, sizeof(out), "\"q\\", 3),
	                    "\\\"q\\\\");
	assert_string_equal(proto_quote(out, sizeof(out), "p\xffng", 4),
	                    "p\\xffng");
	assert_string_equal(proto_quote(out, sizeof(out), "\xed\xa0\x80", 3),
	                    "\\xed\\xa0\\x80");
	assert_string_equal(proto_quote(out, sizeof(out), "\xe2\x82", 2),
	                    "\\xe2\\x82");
	/* every output is itself UTF-8, without a control character */
	assert_true(proto_utf8_valid(out, strlen(out)));
}

static void
quote_cuts_between_characters(void **state)
{
	char out[8];

	/* "ab" and a 3-byte euro sign need 6 bytes: 5 hold only "ab" ... */
	assert_string_equal(proto_quote(out, 5, "ab\xe2\x82\xac", 5), "ab");
	assert_string_equal(proto_quote(out, 6, "ab\xe2\x82\xac", 5),
	                    "ab\xe2\x82\xac");
	/* ... and an escape goes whole or not at all */
	assert_string_equal(proto_quote(out, 5, "a\x01", 2), "a");
	assert_string_equal(proto_quote(out, 6, "a\x01", 2), "a\\x01");
	assert_string_equal(proto_quote(out, 1, "abc", 3), "");
	out[0] = 'x';
	proto_quote(out, 0, "abc", 3); /* no room: dst untouched */
	assert_int_equal(out[0], 'x');
}

/* {"t": "ping", "id": 4, key: a string of the n bytes at s} */
static void
pk_ping_with(struct fx *fx, const char *key, const char *s, size_t n)
{
	pk_msg(fx, 3, "ping");
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 4);
	pk_str(&fx->pk, key);
	msgpack_pack_str_with_body(&fx->pk, s, n);
}

static void
decode_rejects_a_str_field_that_is_not_utf8_keeping_the_id(void **state)
{
	struct fx *fx = *state;
	size_t i;

	for (i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		msgpack_sbuffer_clear(&fx->sb);
		pk_ping_with(fx, "task", utf8_cases[i].s, utf8_cases[i].len);
		if (utf8_cases[i].valid) {
			assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
			continue;
		}
		assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
		assert_fault(fx, PE_BAD_FIELD,
		             "field \"task\" is not valid UTF-8");
		assert_int_equal(fx->m.id, 4);
	}
}

/* The report that started it: the type itself, never echoed. */
static void
decode_rejects_a_type_that_is_not_utf8_without_echoing_it(void **state)
{
	struct fx *fx = *state;

	msgpack_pack_map(&fx->pk, 2);
	pk_str(&fx->pk, "t");
	msgpack_pack_str_with_body(&fx->pk, "p\xffng", 4);
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 9);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD, "field \"t\" is not valid UTF-8");
	assert_int_equal(fx->m.id, 9);
}

static void
decode_rejects_strings_that_are_not_utf8_inside_args_and_jobs(void **state)
{
	struct fx *fx = *state;

	/* a value */
	pk_msg(fx, 3, "submit");
	pk_str(&fx->pk, "task");
	pk_str(&fx->pk, "exec");
	pk_str(&fx->pk, "args");
	msgpack_pack_map(&fx->pk, 1);
	pk_str(&fx->pk, "argv");
	msgpack_pack_array(&fx->pk, 2);
	pk_str(&fx->pk, "echo");
	msgpack_pack_str_with_body(&fx->pk, "\xed\xa0\x80", 3);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD,
	             "field \"args\" holds a string that is not valid UTF-8");

	/* a key */
	msgpack_sbuffer_clear(&fx->sb);
	pk_msg(fx, 3, "submit");
	pk_str(&fx->pk, "task");
	pk_str(&fx->pk, "noop");
	pk_str(&fx->pk, "args");
	msgpack_pack_map(&fx->pk, 1);
	msgpack_pack_str_with_body(&fx->pk, "\xc0\x80", 2);
	msgpack_pack_uint8(&fx->pk, 1);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD,
	             "field \"args\" holds a string that is not valid UTF-8");

	/* a gather's job */
	msgpack_sbuffer_clear(&fx->sb);
	pk_msg(fx, 2, "gather");
	pk_str(&fx->pk, "jobs");
	msgpack_pack_array(&fx->pk, 1);
	msgpack_pack_map(&fx->pk, 1);
	pk_str(&fx->pk, "task");
	msgpack_pack_str_with_body(&fx->pk, "no\xf4\x90\x80\x80op", 8);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD,
	             "field \"jobs\" holds a string that is not valid UTF-8");
}

/* Bytes are bin, not str: output data and results pass as they are. */
static void
decode_passes_bin_and_any_values_that_are_not_utf8(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 4, "output");
	pk_str(&fx->pk, "job");
	msgpack_pack_uint8(&fx->pk, 1);
	pk_str(&fx->pk, "stream");
	pk_str(&fx->pk, "stdout");
	pk_str(&fx->pk, "data");
	msgpack_pack_bin_with_body(&fx->pk, "\xff\xfe\xc0\x80", 4);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.f[PF_DATA].type, MSGPACK_OBJECT_BIN);
	assert_memory_equal(fx->m.f[PF_DATA].via.bin.ptr, "\xff\xfe\xc0\x80",
	                    4);
}

static void
decode_quotes_a_nul_in_an_unknown_type(void **state)
{
	struct fx *fx = *state;

	msgpack_pack_map(&fx->pk, 1);
	pk_str(&fx->pk, "t");
	msgpack_pack_str_with_body(&fx->pk, "pi\0ng\"", 6);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_UNKNOWN_MESSAGE,
	             "unknown message type \"pi\\x00ng\\\"\"");
}

/* The encoder's own guard: what it writes as str is always UTF-8. */
static void
enc_str_quotes_a_string_that_is_not_utf8(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_ERROR, 3);
	proto_enc_cstr(&e, PF_ERROR, "task_failed");
	proto_enc_str(&e, PF_MESSAGE, "bad \xff\xfe byte\n", 12);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_str_obj(&fx->m.f[PF_MESSAGE], "bad \\xff\\xfe byte\\x0a");

	/* a valid string is written as it is, control characters too */
	pbuf_free(&fx->out);
	proto_enc_begin(&e, &fx->out, PROTO_ERROR, 3);
	proto_enc_cstr(&e, PF_ERROR, "task_failed");
	proto_enc_cstr(&e, PF_MESSAGE, "line\n\xc3\xa9");
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_str_obj(&fx->m.f[PF_MESSAGE], "line\n\xc3\xa9");
}

/* Quoting a string at a field's limit keeps within the limit. */
static void
enc_str_cuts_a_quoted_string_to_the_field_limit(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	char bad[2000];

	memset(bad, 0xff, sizeof(bad));
	proto_enc_begin(&e, &fx->out, PROTO_ERROR, 3);
	proto_enc_cstr(&e, PF_ERROR, "task_failed");
	proto_enc_str(&e, PF_MESSAGE, bad, sizeof(bad));
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	assert_true(fx->m.f[PF_MESSAGE].via.str.size <=
	            proto_fields[PF_MESSAGE].max);
	assert_int_equal(fx->m.f[PF_MESSAGE].via.str.size % 4, 0);
}

static void
decode_rejects_trailing_bytes_after_the_map(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 1);
	msgpack_pack_nil(&fx->pk);
	assert_bad(fx, "trailing bytes after the message");

	/* a second whole message in one frame is trailing bytes too */
	msgpack_sbuffer_clear(&fx->sb);
	pk_msg(fx, 1, "ping");
	pk_msg(fx, 1, "ping");
	assert_bad(fx, "trailing bytes after the message");
}

static void
decode_rejects_a_top_level_that_is_not_a_map(void **state)
{
	struct fx *fx = *state;

	msgpack_pack_array(&fx->pk, 2);
	pk_str(&fx->pk, "t");
	pk_str(&fx->pk, "ping");
	assert_bad(fx, "message is not a map");

	msgpack_sbuffer_clear(&fx->sb);
	pk_str(&fx->pk, "ping");
	assert_bad(fx, "message is not a map");

	msgpack_sbuffer_clear(&fx->sb);
	msgpack_pack_nil(&fx->pk);
	assert_bad(fx, "message is not a map");

	msgpack_sbuffer_clear(&fx->sb);
	msgpack_pack_uint8(&fx->pk, 7);
	assert_bad(fx, "message is not a map");
}

static void
decode_rejects_map_keys_that_are_not_strings(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	msgpack_pack_uint8(&fx->pk, 1);
	msgpack_pack_uint8(&fx->pk, 2);
	assert_bad(fx, "map key is not a string");

	/* "t" as bin is not the key "t" */
	msgpack_sbuffer_clear(&fx->sb);
	msgpack_pack_map(&fx->pk, 1);
	msgpack_pack_bin_with_body(&fx->pk, "t", 1);
	pk_str(&fx->pk, "ping");
	assert_bad(fx, "map key is not a string");

	msgpack_sbuffer_clear(&fx->sb);
	msgpack_pack_map(&fx->pk, 1);
	msgpack_pack_nil(&fx->pk);
	pk_str(&fx->pk, "ping");
	assert_bad(fx, "map key is not a string");
}

static void
decode_resets_id_and_presence_on_a_bad_frame(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 42);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.id, 42);
	assert_int_equal(decode_payload(fx, "\xc1", 1), PROTO_DECODE_BAD);
	assert_int_equal(fx->m.id, 0);
	assert_int_equal(fx->m.present, 0);
}

/*
 * Everything a peer can send is classified, the same way every time:
 * BAD with PE_BAD_FRAME, REJECT with a field or message fault, or OK with
 * a known type, its required fields, and every known field of the table's
 * type.  proto_scan and msgpack-c agree on what is well-formed.
 */
static bool
field_type_ok(enum proto_field k, const msgpack_object *o)
{
	const struct proto_field_info *fi = &proto_fields[k];

	switch (fi->type) {
	case PV_UINT:
		return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
	case PV_INT:
		return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
		       o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
	case PV_BOOL:
		return o->type == MSGPACK_OBJECT_BOOLEAN;
	case PV_STR:
		return o->type == MSGPACK_OBJECT_STR &&
		       (!fi->max || o->via.str.size <= fi->max);
	case PV_MAP:
		return o->type == MSGPACK_OBJECT_MAP &&
		       (!fi->max || o->via.map.size <= fi->max);
	case PV_ARRAY:
		return o->type == MSGPACK_OBJECT_ARRAY &&
		       (!fi->max || o->via.array.size <= fi->max);
	case PV_ANY:
		return true;
	}
	return false;
}

static void
check_classification(struct fx *fx, const char *p, size_t n, int seen[3])
{
	enum proto_decode_result r, again;
	struct proto_fault first;
	struct proto_msg m1;
	const char *cause = NULL;
	ssize_t scanned;
	int k;

	r = decode_payload(fx, p, n);
	first = fx->f;
	m1 = fx->m;
	again = decode_payload(fx, p, n);
	assert_int_equal(r, again);
	scanned = proto_scan(p, n, &cause);
	assert_true(scanned >= -1 && scanned <= (ssize_t)n);
	switch (r) {
	case PROTO_DECODE_BAD:
		seen[0]++;
		assert_int_equal(first.code, PE_BAD_FRAME);
		assert_int_equal(fx->f.code, PE_BAD_FRAME);
		assert_string_equal(first.message, fx->f.message);
		assert_string_not_equal(first.message,
		                        "malformed frame: cannot unpack");
		if (scanned < 0)
			assert_non_null(cause);
		else if ((size_t)scanned < n)
			assert_string_equal(first.message,
			                    "trailing bytes after the message");
		else
			assert_true(strcmp(first.message,
			                   "message is not a map") == 0 ||
			            strcmp(first.message,
			                   "map key is not a string") == 0);
		break;
	case PROTO_DECODE_REJECT:
		seen[1]++;
		assert_true(first.code == PE_BAD_FIELD ||
		            first.code == PE_UNKNOWN_MESSAGE);
		assert_int_equal(fx->f.code, first.code);
		assert_string_equal(first.message, fx->f.message);
		assert_int_equal(scanned, (ssize_t)n);
		break;
	case PROTO_DECODE_OK:
		seen[2]++;
		assert_int_equal(scanned, (ssize_t)n);
		assert_in_range(m1.type, 0, PROTO_TYPE_COUNT - 1);
		assert_int_equal(fx->m.type, m1.type);
		assert_int_equal(fx->m.id, m1.id);
		assert_int_equal(fx->m.present, m1.present);
		assert_int_equal(proto_types[m1.type].required & ~m1.present,
		                 0);
		for (k = 0; k < PF_FIELD_COUNT; k++)
			if (proto_has(&fx->m, (enum proto_field)k))
				assert_true(field_type_ok((enum proto_field)k,
				                          &fx->m.f[k]));
		assert_int_equal(fx->m.id, proto_u64(&fx->m, PF_ID, 0));
		assert_null(proto_check_fields(p, n, &fx->m));
		break;
	default:
		fail_msg("proto_decode returned %d", (int)r);
	}
}

static const char *
random_name(uint64_t *s)
{
	switch (rng_next(s) % 4) {
	case 0:
		return proto_types[rng_next(s) % PROTO_TYPE_COUNT].name;
	case 1:
		return proto_states[rng_next(s) % PS_COUNT];
	default:
		return proto_fields[rng_next(s) % PF_FIELD_COUNT].name;
	}
}

static void
pk_random_value(msgpack_packer *pk, uint64_t *s, int depth)
{
	unsigned char bytes[40];
	uint32_t i, n;

	switch (rng_next(s) % (depth < 10 ? 11 : 8)) {
	case 0:
		msgpack_pack_uint64(pk, rng_next(s) >> (rng_next(s) % 64));
		break;
	case 1:
		msgpack_pack_int64(
		    pk, -(int64_t)(rng_next(s) >> 1 >> (rng_next(s) % 63)));
		break;
	case 2:
		if (rng_next(s) & 1)
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		break;
	case 3:
		msgpack_pack_nil(pk);
		break;
	case 4:
	case 5:
		pk_str(pk, random_name(s));
		break;
	case 6:
		n = (uint32_t)(rng_next(s) % sizeof(bytes));
		for (i = 0; i < n; i++)
			bytes[i] = (unsigned char)rng_next(s);
		if (rng_next(s) & 1)
			msgpack_pack_str_with_body(pk, bytes, n);
		else
			msgpack_pack_bin_with_body(pk, bytes, n);
		break;
	case 7:
		msgpack_pack_double(pk, (double)rng_next(s) / 3.0);
		break;
	case 8:
		n = (uint32_t)(rng_next(s) % 5);
		msgpack_pack_array(pk, n);
		for (i = 0; i < n; i++)
			pk_random_value(pk, s, depth + 1);
		break;
	default:
		n = (uint32_t)(rng_next(s) % 5);
		msgpack_pack_map(pk, n);
		for (i = 0; i < n; i++) {
			if (rng_next(s) % 8)
				pk_str(pk, random_name(s));
			else
				pk_random_value(pk, s, depth + 1);
			pk_random_value(pk, s, depth + 1);
		}
		break;
	}
}

static void
pk_random_message(struct fx *fx, uint64_t *s)
{
	uint32_t i, n = (uint32_t)(rng_next(s) % 6);
	bool typed = rng_next(s) % 4 != 0;

	msgpack_pack_map(&fx->pk, n + typed);
	if (typed) {
		pk_str(&fx->pk, "t");
		pk_str(&fx->pk,
		       proto_types[rng_next(s) % PROTO_TYPE_COUNT].name);
	}
	for (i = 0; i < n; i++) {
		if (rng_next(s) % 16)
			pk_str(&fx->pk, random_name(s));
		else
			pk_random_value(&fx->pk, s, 1);
		pk_random_value(&fx->pk, s, 1);
	}
}

static void
decode_classifies_seeded_random_garbage_consistently(void **state)
{
	struct fx *fx = *state;
	uint64_t s = UINT64_C(0x636f6e6364); /* "concd" */
	unsigned char buf[96];
	int seen[3] = {0, 0, 0};
	size_t n, i;
	int iter;

	for (iter = 0; iter < 200000; iter++) {
		n = (size_t)(rng_next(&s) % sizeof(buf));
		for (i = 0; i < n; i++)
			buf[i] = (unsigned char)rng_next(&s);
		/* a map header first, most of the time */
		if (n > 0 && rng_next(&s) % 4 != 0)
			buf[0] = (unsigned char)(0x80 | (buf[0] & 0x0f));
		check_classification(fx, (const char *)buf, n, seen);
	}
	assert_true(seen[0] > 0);
}

static void
decode_classifies_random_and_mutated_messages_consistently(void **state)
{
	struct fx *fx = *state;
	uint64_t s = UINT64_C(0x70726f746f); /* "proto" */
	int seen[3] = {0, 0, 0};
	int iter;

	for (iter = 0; iter < 100000; iter++) {
		size_t n, j, flips;

		msgpack_sbuffer_clear(&fx->sb);
		pk_random_message(fx, &s);
		n = fx->sb.size;
		check_classification(fx, fx->sb.data, n, seen);
		if (n == 0)
			continue;
		/* a few flipped bytes, then a cut */
		flips = (size_t)(rng_next(&s) % 3) + 1;
		for (j = 0; j < flips; j++)
			fx->sb.data[rng_next(&s) % n] ^=
			    (char)(1u << (rng_next(&s) % 8));
		check_classification(fx, fx->sb.data, n, seen);
		check_classification(fx, fx->sb.data,
		                     (size_t)(rng_next(&s) % n), seen);
	}
	/* the generator reaches every outcome */
	assert_true(seen[0] > 1000);
	assert_true(seen[1] > 1000);
	assert_true(seen[2] > 1000);
}

/* ---- well-formed but unacceptable: PROTO_DECODE_REJECT ---- */

static void
decode_rejects_an_unknown_type_keeping_the_id(void **state)
{
	struct fx *fx = *state;

	/* the id is kept whether it comes before or after "t" */
	pk_msg(fx, 2, "frobnicate");
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 9);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_UNKNOWN_MESSAGE,
	             "unknown message type \"frobnicate\"");
	assert_int_equal(fx->m.id, 9);

	msgpack_sbuffer_clear(&fx->sb);
	msgpack_pack_map(&fx->pk, 2);
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 10);
	pk_str(&fx->pk, "t");
	pk_str(&fx->pk, "PING");
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_UNKNOWN_MESSAGE, "unknown message type \"PING\"");
	assert_int_equal(fx->m.id, 10);
}

static void
decode_quotes_an_unknown_type_of_the_longest_allowed_name(void **state)
{
	struct fx *fx = *state;
	char want[80];
	size_t max = proto_fields[PF_T].max;

	msgpack_pack_map(&fx->pk, 1);
	pk_str(&fx->pk, "t");
	msgpack_pack_str_with_body(&fx->pk, filler, max);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	snprintf(want, sizeof(want), "unknown message type \"%.*s\"", (int)max,
	         filler);
	assert_fault(fx, PE_UNKNOWN_MESSAGE, want);
}

static void
decode_rejects_a_message_without_a_type(void **state)
{
	struct fx *fx = *state;

	msgpack_pack_map(&fx->pk, 2);
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 3);
	pk_str(&fx->pk, "job");
	msgpack_pack_uint8(&fx->pk, 1);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD, "message has no type (\"t\")");
	assert_int_equal(fx->m.id, 3);

	/* an empty map too */
	msgpack_sbuffer_clear(&fx->sb);
	msgpack_pack_map(&fx->pk, 0);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD, "message has no type (\"t\")");
	assert_int_equal(fx->m.id, 0);
}

static void
decode_rejects_a_type_that_is_not_a_string(void **state)
{
	struct fx *fx = *state;

	msgpack_pack_map(&fx->pk, 1);
	pk_str(&fx->pk, "t");
	msgpack_pack_uint8(&fx->pk, PROTO_PING);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD,
	             "field \"t\" must be a string (within its size limit)");
}

static void
decode_rejects_a_string_job_naming_the_field(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 3, "status");
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 7);
	pk_str(&fx->pk, "job");
	pk_str(&fx->pk, "12");
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD,
	             "field \"job\" must be a non-negative integer");
}

/*
 * codec.c says "keep the id for the error reply when it is sound": a
 * client must be able to match the error to its request.
 */
static void
decode_keeps_a_sound_id_when_rejecting_a_mistyped_field(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 3, "status");
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 7);
	pk_str(&fx->pk, "job");
	pk_str(&fx->pk, "12");
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_int_equal(fx->f.code, PE_BAD_FIELD);
	assert_int_equal(fx->m.id, 7);

	/* also when the id comes after the mistyped field */
	msgpack_sbuffer_clear(&fx->sb);
	pk_msg(fx, 3, "status");
	pk_str(&fx->pk, "job");
	msgpack_pack_true(&fx->pk);
	pk_str(&fx->pk, "id");
	msgpack_pack_uint16(&fx->pk, 700);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD,
	             "field \"job\" must be a non-negative integer");
	assert_int_equal(fx->m.id, 700);
}

static void
decode_rejects_a_mistyped_id_leaving_id_zero(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "id");
	msgpack_pack_int8(&fx->pk, -1);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD,
	             "field \"id\" must be a non-negative integer");
	assert_int_equal(fx->m.id, 0);
}

static void
decode_names_the_field_in_every_type_error(void **state)
{
	struct fx *fx = *state;
	char want[128];
	static const char *const what[] = {
	    [PV_UINT] = "a non-negative integer",
	    [PV_INT] = "an integer",
	    [PV_BOOL] = "a boolean",
	    [PV_STR] = "a string",
	    [PV_MAP] = "a map",
	    [PV_ARRAY] = "an array",
	};
	int k;

	for (k = 0; k < PF_FIELD_COUNT; k++) {
		const struct proto_field_info *fi = &proto_fields[k];

		if (fi->type == PV_ANY)
			continue;
		msgpack_sbuffer_clear(&fx->sb);
		if (k == PF_T) {
			msgpack_pack_map(&fx->pk, 1);
			pk_str(&fx->pk, "t");
		} else {
			pk_msg(fx, 2, "ping");
			pk_str(&fx->pk, fi->name);
		}
		/* a string where it must not be, else a float */
		if (fi->type == PV_STR)
			msgpack_pack_double(&fx->pk, 1.0);
		else
			pk_str(&fx->pk, "x");
		assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
		snprintf(want, sizeof(want), "field \"%s\" must be %s%s",
		         fi->name, what[fi->type],
		         fi->max ? " (within its size limit)" : "");
		assert_fault(fx, PE_BAD_FIELD, want);
	}
}

static void
decode_rejects_a_negative_number_for_an_unsigned_field(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "cancel");
	pk_str(&fx->pk, "job");
	msgpack_pack_int8(&fx->pk, -5);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD,
	             "field \"job\" must be a non-negative integer");
}

static void
decode_rejects_a_float_for_an_integer_field(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "cancel");
	pk_str(&fx->pk, "job");
	msgpack_pack_double(&fx->pk, 5.0);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_int_equal(fx->f.code, PE_BAD_FIELD);
}

static void
decode_enforces_every_string_limit_in_the_table(void **state)
{
	struct fx *fx = *state;
	char want[128];
	int k;

	for (k = 0; k < PF_FIELD_COUNT; k++) {
		const struct proto_field_info *fi = &proto_fields[k];

		if (fi->type != PV_STR || k == PF_T)
			continue;
		assert_true(fi->max > 0);
		/* at the limit */
		msgpack_sbuffer_clear(&fx->sb);
		pk_msg(fx, 2, "ping");
		pk_str(&fx->pk, fi->name);
		msgpack_pack_str_with_body(&fx->pk, filler, fi->max);
		assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
		assert_int_equal(fx->m.f[k].via.str.size, fi->max);
		/* one over */
		msgpack_sbuffer_clear(&fx->sb);
		pk_msg(fx, 2, "ping");
		pk_str(&fx->pk, fi->name);
		msgpack_pack_str_with_body(&fx->pk, filler, fi->max + 1);
		assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
		snprintf(
		    want, sizeof(want),
		    "field \"%s\" must be a string (within its size limit)",
		    fi->name);
		assert_fault(fx, PE_BAD_FIELD, want);
	}
	/* "t" one over its limit */
	msgpack_sbuffer_clear(&fx->sb);
	msgpack_pack_map(&fx->pk, 1);
	pk_str(&fx->pk, "t");
	msgpack_pack_str_with_body(&fx->pk, filler, proto_fields[PF_T].max + 1);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD,
	             "field \"t\" must be a string (within its size limit)");
}

static void
decode_enforces_container_limits_in_the_table(void **state)
{
	struct fx *fx = *state;
	uint32_t i, max = proto_fields[PF_ARGS].max;
	char key[16];

	/* args: a map of at most 256 pairs */
	for (i = 0; i < 2; i++) {
		uint32_t n = max + i, j;

		msgpack_sbuffer_clear(&fx->sb);
		pk_msg(fx, 3, "submit");
		pk_str(&fx->pk, "task");
		pk_str(&fx->pk, "noop");
		pk_str(&fx->pk, "args");
		msgpack_pack_map(&fx->pk, n);
		for (j = 0; j < n; j++) {
			snprintf(key, sizeof(key), "k%u", j);
			pk_str(&fx->pk, key);
			msgpack_pack_uint32(&fx->pk, j);
		}
		if (i == 0) {
			assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
			assert_int_equal(fx->m.f[PF_ARGS].via.map.size, max);
		} else {
			assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
			assert_fault(
			    fx, PE_BAD_FIELD,
			    "field \"args\" must be a map (within its size "
			    "limit)");
		}
	}
}

static void
decode_fields_enforces_array_limits_in_rows(void **state)
{
	struct fx *fx = *state;
	struct proto_msg row;
	struct proto_fault f;
	uint32_t j, n = proto_fields[PF_TRAITS].max + 1;

	pk_msg(fx, 2, "tasklist");
	pk_str(&fx->pk, "tasks");
	msgpack_pack_array(&fx->pk, 1);
	msgpack_pack_map(&fx->pk, 1);
	pk_str(&fx->pk, "traits");
	msgpack_pack_array(&fx->pk, n);
	for (j = 0; j < n; j++)
		pk_str(&fx->pk, "cpu");
	/* the frame is fine, the row is not */
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(
	    proto_decode_fields(&fx->m.f[PF_TASKS].via.array.ptr[0], &row, &f),
	    -1);
	assert_int_equal(f.code, PE_BAD_FIELD);
	assert_string_equal(
	    f.message,
	    "field \"traits\" must be an array (within its size limit)");
}

static void
decode_fields_rejects_a_row_that_is_not_a_map(void **state)
{
	struct fx *fx = *state;
	struct proto_msg row;
	struct proto_fault f;

	pk_msg(fx, 2, "jobs");
	pk_str(&fx->pk, "jobs");
	msgpack_pack_array(&fx->pk, 1);
	msgpack_pack_uint8(&fx->pk, 5);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(
	    proto_decode_fields(&fx->m.f[PF_JOBS].via.array.ptr[0], &row, &f),
	    -1);
	assert_int_equal(f.code, PE_BAD_FRAME);
	assert_string_equal(f.message, "message is not a map");
	assert_int_equal(row.present, 0);
}

static void
decode_rejects_submit_without_task(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 3, "submit");
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 21);
	pk_str(&fx->pk, "exec");
	pk_str(&fx->pk, "loop");
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD, "missing field \"task\"");
	assert_int_equal(fx->m.type, PROTO_SUBMIT);
	assert_int_equal(fx->m.id, 21);
}

static void
decode_requires_the_required_fields_of_every_type(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;
	char want[64];
	int t;

	for (t = 0; t < PROTO_TYPE_COUNT; t++) {
		uint64_t req = proto_types[t].required;

		fx->out.len = 0;
		proto_enc_begin(&e, &fx->out, (enum proto_type)t, 5);
		assert_int_equal(proto_enc_end(&e), 0);
		if (req == 0) {
			assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
			assert_int_equal(fx->m.type, t);
			continue;
		}
		assert_int_equal(decode_out(fx), PROTO_DECODE_REJECT);
		snprintf(want, sizeof(want), "missing field \"%s\"",
		         proto_fields[__builtin_ctzll(req)].name);
		assert_fault(fx, PE_BAD_FIELD, want);
		assert_int_equal(fx->m.type, t);
		assert_int_equal(fx->m.id, 5);
	}
}

static void
decode_reports_the_first_missing_field_of_end(void **state)
{
	struct fx *fx = *state;
	struct proto_enc e;

	proto_enc_begin(&e, &fx->out, PROTO_END, 5);
	proto_enc_u64(&e, PF_JOB, 1);
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD, "missing field \"state\"");
}

static void
decode_ignores_unknown_keys_whatever_their_values(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 5, "ping");
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 1);
	pk_str(&fx->pk, "from_the_future");
	msgpack_pack_map(&fx->pk, 1);
	msgpack_pack_uint8(&fx->pk, 1); /* not a string, but not top-level */
	msgpack_pack_array(&fx->pk, 2);
	msgpack_pack_nil(&fx->pk);
	msgpack_pack_double(&fx->pk, 2.0);
	pk_str(&fx->pk, "Job"); /* case matters */
	pk_str(&fx->pk, "not a number");
	msgpack_pack_str_with_body(&fx->pk, "job\0", 4);
	pk_str(&fx->pk, "nor this");
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_PING);
	assert_int_equal(fx->m.id, 1);
	assert_int_equal(fx->m.present, B(T) | B(ID));
}

static void
decode_takes_the_last_of_duplicate_keys(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 3, "cancel");
	pk_str(&fx->pk, "job");
	msgpack_pack_uint8(&fx->pk, 1);
	pk_str(&fx->pk, "job");
	msgpack_pack_uint8(&fx->pk, 2);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 2);
}

/* ---- any valid msgpack encoding, not only ours ---- */

static void
decode_accepts_minimal_msgpack_c_headers(void **state)
{
	struct fx *fx = *state;
	const msgpack_object *args;

	/* fixmap, fixstr, positive fixint: what msgpack-c writes */
	msgpack_pack_map(&fx->pk, 6);
	pk_str(&fx->pk, "t");
	pk_str(&fx->pk, "submit");
	pk_str(&fx->pk, "id");
	msgpack_pack_uint64(&fx->pk, 7);
	pk_str(&fx->pk, "task");
	pk_str(&fx->pk, "counter");
	pk_str(&fx->pk, "args");
	msgpack_pack_map(&fx->pk, 1);
	pk_str(&fx->pk, "n");
	msgpack_pack_int(&fx->pk, 100);
	pk_str(&fx->pk, "timeout");
	msgpack_pack_uint64(&fx->pk, 65536);
	pk_str(&fx->pk, "watch");
	msgpack_pack_true(&fx->pk);
	assert_int_equal((unsigned char)fx->sb.data[0], 0x86);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_SUBMIT);
	assert_int_equal(fx->m.id, 7);
	assert_str_field(&fx->m, PF_TASK, "counter");
	assert_int_equal(proto_u64(&fx->m, PF_TIMEOUT, 0), 65536);
	assert_true(proto_bool(&fx->m, PF_WATCH, false));
	args = &fx->m.f[PF_ARGS];
	assert_int_equal(args->via.map.size, 1);
	assert_str_obj(&args->via.map.ptr[0].key, "n");
	assert_int_equal(args->via.map.ptr[0].val.via.u64, 100);
}

static void
decode_accepts_wide_headers_for_small_values(void **state)
{
	struct fx *fx = *state;
	/* map32, str32, str16, str8, uint64: legal, if not minimal */
	static const char payload[] = "\xdf\x00\x00\x00\x03"
	                              "\xdb\x00\x00\x00\x01t"
	                              "\xda\x00\x04ping"
	                              "\xd9\x02id"
	                              "\xcf\x00\x00\x00\x00\x00\x00\x00\x2a"
	                              "\xd9\x06result"
	                              "\xdd\x00\x00\x00\x01\xde\x00\x00";

	pk_bytes(fx, payload, sizeof(payload) - 1);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_PING);
	assert_int_equal(fx->m.id, 42);
	assert_int_equal(fx->m.f[PF_RESULT].via.array.size, 1);
	assert_int_equal(fx->m.f[PF_RESULT].via.array.ptr[0].type,
	                 MSGPACK_OBJECT_MAP);
}

static void
decode_accepts_signed_encodings_of_unsigned_values(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 3, "cancel");
	pk_str(&fx->pk, "id");
	pk_bytes(fx, "\xd0\x05", 2); /* int8 5 */
	pk_str(&fx->pk, "job");
	pk_bytes(fx, "\xd3\x00\x00\x00\x00\x00\x00\x01\x00", 9); /* int64 */
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.id, 5);
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 0), 256);
}

/* ---- accessors ---- */

static void
accessors_return_defaults_for_absent_fields(void **state)
{
	struct fx *fx = *state;
	char dst[8] = "junk";
	size_t len = 99;

	pk_msg(fx, 1, "ping");
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(proto_u64(&fx->m, PF_JOB, 17), 17);
	assert_int_equal(proto_i64(&fx->m, PF_WORKER, -17), -17);
	assert_true(proto_bool(&fx->m, PF_WATCH, true));
	assert_false(proto_bool(&fx->m, PF_WATCH, false));
	assert_null(proto_str(&fx->m, PF_TASK, &len));
	assert_int_equal(len, 0);
	assert_ptr_equal(proto_strcpy(&fx->m, PF_TASK, dst, sizeof(dst)), dst);
	assert_string_equal(dst, "");
}

static void
accessors_return_defaults_for_other_types(void **state)
{
	struct fx *fx = *state;
	size_t len = 99;

	/* PF_RESULT takes any value: the accessors check the type */
	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	pk_str(&fx->pk, "text");
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(proto_u64(&fx->m, PF_RESULT, 3), 3);
	assert_int_equal(proto_i64(&fx->m, PF_RESULT, -3), -3);
	assert_true(proto_bool(&fx->m, PF_RESULT, true));
	assert_int_equal(proto_u64(&fx->m, PF_T, 4), 4);

	msgpack_sbuffer_clear(&fx->sb);
	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	msgpack_pack_int8(&fx->pk, -2);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(proto_u64(&fx->m, PF_RESULT, 3), 3);
	assert_int_equal(proto_i64(&fx->m, PF_RESULT, 0), -2);
	assert_null(proto_str(&fx->m, PF_RESULT, &len));
	assert_int_equal(len, 0);
}

static void
i64_clamps_unsigned_values_above_int64_max(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "worker");
	msgpack_pack_uint64(&fx->pk, UINT64_MAX);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(proto_i64(&fx->m, PF_WORKER, 0), INT64_MAX);

	msgpack_sbuffer_clear(&fx->sb);
	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "worker");
	msgpack_pack_int64(&fx->pk, INT64_MIN);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_true(proto_i64(&fx->m, PF_WORKER, 0) == INT64_MIN);
}

static void
strcpy_truncates_and_always_terminates(void **state)
{
	struct fx *fx = *state;
	char dst[16];

	pk_msg(fx, 2, "submit");
	pk_str(&fx->pk, "task");
	pk_str(&fx->pk, "checksum");
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);

	assert_string_equal(proto_strcpy(&fx->m, PF_TASK, dst, sizeof(dst)),
	                    "checksum");
	assert_string_equal(proto_strcpy(&fx->m, PF_TASK, dst, 9), "checksum");
	assert_string_equal(proto_strcpy(&fx->m, PF_TASK, dst, 8), "checksu");
	assert_string_equal(proto_strcpy(&fx->m, PF_TASK, dst, 1), "");
	/* size 0: dst is not touched */
	dst[0] = 'Z';
	assert_ptr_equal(proto_strcpy(&fx->m, PF_TASK, dst, 0), dst);
	assert_int_equal(dst[0], 'Z');
}

static void
strcpy_copies_embedded_nul_bytes_as_they_are(void **state)
{
	struct fx *fx = *state;
	char dst[16];

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "msg");
	msgpack_pack_str_with_body(&fx->pk, "ab\0cd", 5);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	memset(dst, 'x', sizeof(dst));
	proto_strcpy(&fx->m, PF_MSG, dst, sizeof(dst));
	assert_memory_equal(dst, "ab\0cd\0", 6);
}

static void
obj_streq_compares_length_and_bytes(void **state)
{
	struct fx *fx = *state;
	const msgpack_object *o;

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	msgpack_pack_array(&fx->pk, 3);
	pk_str(&fx->pk, "abc");
	msgpack_pack_str_with_body(&fx->pk, "abc\0", 4);
	msgpack_pack_bin_with_body(&fx->pk, "abc", 3);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	o = fx->m.f[PF_RESULT].via.array.ptr;
	assert_true(proto_obj_streq(&o[0], "abc"));
	assert_false(proto_obj_streq(&o[0], "ab"));
	assert_false(proto_obj_streq(&o[0], "abcd"));
	assert_false(proto_obj_streq(&o[1], "abc"));
	assert_false(proto_obj_streq(&o[2], "abc"));
	assert_true(proto_obj_streq(&fx->m.f[PF_T], "ping"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tables_name_every_row),
	    cmocka_unit_test(tables_hold_no_duplicate_names),
	    cmocka_unit_test(tables_list_requests_before_replies),
	    cmocka_unit_test(tables_required_fields_are_real_fields),
	    cmocka_unit_test(state_final_marks_only_terminal_states),
	    cmocka_unit_test(lookups_round_trip_every_name),
	    cmocka_unit_test(lookups_return_minus_one_for_unknown_names),
	    cmocka_unit_test(lookups_compare_exactly_len_bytes),
	    cmocka_unit_test(lookups_treat_embedded_nul_as_a_different_name),
	    cmocka_unit_test(
	        decode_ignores_a_max_length_key_starting_with_a_name_and_nul),
	    cmocka_unit_test(frame_next_needs_a_whole_header),
	    cmocka_unit_test_setup_teardown(frame_next_needs_the_whole_payload,
	                                    setup, teardown),
	    cmocka_unit_test(frame_next_rejects_a_length_over_max_frame),
	    cmocka_unit_test_setup_teardown(frame_next_accepts_an_empty_payload,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        frame_next_walks_back_to_back_frames, setup, teardown),
	    cmocka_unit_test_setup_teardown(pbuf_consume_drops_leading_bytes,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_ping_has_the_documented_wire_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_scalars_match_msgpack_c_at_every_boundary, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_hello, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_ping, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_submit_with_args, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(round_trip_watch, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_ps, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_result, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_tasks, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_shutdown, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(round_trip_welcome, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(round_trip_pong, setup, teardown),
	    cmocka_unit_test_setup_teardown(pong_with_id_zero_carries_no_id,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_accepted, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(round_trip_progress, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(round_trip_end_with_raw_result,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_end_of_a_failed_job,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_job, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        round_trip_jobs_with_rows_and_counts, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        round_trip_tasklist_with_nested_arrays, setup, teardown),
	    cmocka_unit_test_setup_teardown(round_trip_ok, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        round_trip_every_type_with_its_required_fields, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(round_trip_error_for_every_code,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_error_uses_the_table_text_without_a_message, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_error_with_a_long_message_still_decodes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_end_accepts_a_frame_of_exactly_max_frame, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_end_refuses_a_frame_over_max_frame_leaving_the_pbuf_as_it_was,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_end_refuses_nesting_beyond_enc_depth, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_end_refuses_a_close_without_an_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_end_refuses_more_than_65535_elements, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_every_truncated_prefix_of_a_valid_frame, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_map32_claiming_800_million_entries, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_map16_claiming_more_pairs_than_bytes, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_str32_longer_than_the_frame, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_str32_claiming_4_gib, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_bin32_longer_than_the_frame, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_an_array32_claiming_more_elements_than_bytes,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_an_array32_over_max_items, setup, teardown),
	    cmocka_unit_test_setup_teardown(decode_rejects_a_cut_str16_header,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(decode_rejects_a_cut_uint64, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_accepts_a_string_of_exactly_max_str, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_string_over_max_str_even_when_present, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_accepts_nesting_of_exactly_max_depth, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_nesting_deeper_than_max_depth, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_nesting_of_maps_deeper_than_max_depth, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_nesting_deeper_than_max_depth_ending_in_an_empty_array,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(decode_rejects_every_ext_type,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(decode_rejects_byte_0xc1_naming_it,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        utf8_valid_accepts_utf8_and_nothing_else, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        utf8_valid_reads_only_the_length_given, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        quote_escapes_controls_quotes_and_bad_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(quote_cuts_between_characters,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_str_field_that_is_not_utf8_keeping_the_id,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_type_that_is_not_utf8_without_echoing_it,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_strings_that_are_not_utf8_inside_args_and_jobs,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_passes_bin_and_any_values_that_are_not_utf8, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_quotes_a_nul_in_an_unknown_type, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_str_quotes_a_string_that_is_not_utf8, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        enc_str_cuts_a_quoted_string_to_the_field_limit, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_trailing_bytes_after_the_map, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_top_level_that_is_not_a_map, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_map_keys_that_are_not_strings, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_resets_id_and_presence_on_a_bad_frame, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_classifies_seeded_random_garbage_consistently, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_classifies_random_and_mutated_messages_consistently,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_an_unknown_type_keeping_the_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_quotes_an_unknown_type_of_the_longest_allowed_name,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_message_without_a_type, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_type_that_is_not_a_string, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_string_job_naming_the_field, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_keeps_a_sound_id_when_rejecting_a_mistyped_field, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_mistyped_id_leaving_id_zero, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_names_the_field_in_every_type_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_negative_number_for_an_unsigned_field, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_float_for_an_integer_field, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_enforces_every_string_limit_in_the_table, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_enforces_container_limits_in_the_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_fields_enforces_array_limits_in_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_fields_rejects_a_row_that_is_not_a_map, setup, teardown),
	    cmocka_unit_test_setup_teardown(decode_rejects_submit_without_task,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_requires_the_required_fields_of_every_type, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_reports_the_first_missing_field_of_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_ignores_unknown_keys_whatever_their_values, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_takes_the_last_of_duplicate_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_accepts_minimal_msgpack_c_headers, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_accepts_wide_headers_for_small_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_accepts_signed_encodings_of_unsigned_values, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        accessors_return_defaults_for_absent_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        accessors_return_defaults_for_other_types, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        i64_clamps_unsigned_values_above_int64_max, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        strcpy_truncates_and_always_terminates, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        strcpy_copies_embedded_nul_bytes_as_they_are, setup, teardown),
	    cmocka_unit_test_setup_teardown(obj_streq_compares_length_and_bytes,
	                                    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
