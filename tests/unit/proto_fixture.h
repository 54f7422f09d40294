/*
 * proto_fixture.h -- what the proto library's unit tests share: a
 * fixture holding an encoder's output, a hand-written payload and a
 * decoded message (setup, teardown), and helpers that write payloads
 * and decode them.
 */
#ifndef PROTO_FIXTURE_H
#define PROTO_FIXTURE_H

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

static inline int
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

static inline int
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

static inline void
pk_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

static inline void
pk_bytes(struct fx *fx, const void *p, size_t n)
{
	msgpack_sbuffer_write(&fx->sb, p, n);
}

static inline enum proto_decode_result
decode_payload(struct fx *fx, const void *p, size_t n)
{
	memset(&fx->f, 0, sizeof(fx->f));
	return proto_decode(p, n, &fx->zone, &fx->m, &fx->f);
}

/* Decode the payload in fx->sb. */
static inline enum proto_decode_result
decode_sb(struct fx *fx)
{
	return decode_payload(fx, fx->sb.data, fx->sb.size);
}

/* fx->out must hold exactly one frame: take it apart and decode it. */
static inline enum proto_decode_result
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

static inline void
assert_fault(const struct fx *fx, enum proto_error code, const char *message)
{
	assert_int_equal(fx->f.code, code);
	assert_string_equal(fx->f.message, message);
}

static inline void
assert_bad(struct fx *fx, const char *message)
{
	assert_int_equal(decode_sb(fx), PROTO_DECODE_BAD);
	assert_fault(fx, PE_BAD_FRAME, message);
}

static inline void
assert_str_obj(const msgpack_object *o, const char *want)
{
	assert_int_equal(o->type, MSGPACK_OBJECT_STR);
	assert_int_equal(o->via.str.size, strlen(want));
	assert_memory_equal(o->via.str.ptr, want, o->via.str.size);
}

static inline void
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
static inline void
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
static inline void
pk_msg(struct fx *fx, uint32_t pairs, const char *type)
{
	msgpack_pack_map(&fx->pk, pairs);
	pk_str(&fx->pk, "t");
	pk_str(&fx->pk, type);
}

/* n nested arrays; the innermost holds one integer unless empty. */
static inline void
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

static inline uint64_t
rng_next(uint64_t *s)
{
	/* xorshift64*: deterministic, so a failure reproduces */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

#endif
