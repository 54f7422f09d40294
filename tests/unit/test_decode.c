/*
 * test_decode.c -- the decoder (codec.c) against malformed and hostile
 * frames, well-formed but unacceptable messages, any valid msgpack
 * encoding of a message, and the accessors of a decoded message.
 */
#include "proto_fixture.h"

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

/*
 * A whole map with a value over a limit is refused under its id, with
 * bad_field: the connection goes on.
 */
static void
assert_over_limit(struct fx *fx, uint64_t id, const char *cause)
{
	char want[sizeof(fx->f.message)];

	snprintf(want, sizeof(want),
	         "a value over the protocol's limits: %s (limits: 8 levels of "
	         "arrays and maps, 65536 elements in one, 262144 bytes in a "
	         "string)",
	         cause);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_REJECT);
	assert_fault(fx, PE_BAD_FIELD, want);
	assert_int_equal(fx->m.id, id);
}

static void
decode_refuses_a_string_over_max_str_under_its_id(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 3, "ping");
	pk_str(&fx->pk, "result");
	msgpack_pack_str_with_body(&fx->pk, filler, PROTO_MAX_STR + 1);
	pk_str(&fx->pk, "id");
	msgpack_pack_uint16(&fx->pk, 700);
	assert_over_limit(fx, 700, "string too long");
}

static void
decode_refuses_an_array_over_max_items_under_its_id(void **state)
{
	struct fx *fx = *state;
	int i;

	msgpack_pack_map(&fx->pk, 3);
	pk_str(&fx->pk, "id");
	msgpack_pack_uint64(&fx->pk, UINT64_C(1) << 40);
	pk_str(&fx->pk, "t");
	pk_str(&fx->pk, "ping");
	pk_str(&fx->pk, "result");
	msgpack_pack_array(&fx->pk, PROTO_MAX_ITEMS + 1);
	for (i = 0; i <= PROTO_MAX_ITEMS; i++)
		msgpack_pack_nil(&fx->pk);
	assert_over_limit(fx, UINT64_C(1) << 40, "container too large");
}

/* No id, or an id that is not a number: refused under id 0. */
static void
decode_refuses_a_map_over_a_limit_without_an_id_under_id_0(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 3, "ping");
	pk_str(&fx->pk, "id");
	pk_str(&fx->pk, "seven");
	pk_str(&fx->pk, "result");
	pk_nested_arrays(&fx->pk, PROTO_MAX_DEPTH, false);
	assert_over_limit(fx, 0, "nested too deeply");
}

/* Over a limit, but not a whole map: malformed, the connection closes. */
static void
decode_rejects_a_map_over_a_limit_cut_short(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 3, "ping");
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 9);
	pk_str(&fx->pk, "result");
	pk_nested_arrays(&fx->pk, PROTO_MAX_DEPTH + 3, false);
	fx->sb.size -= 2; /* the innermost integer and an array header */
	assert_bad(fx, "malformed frame: nested too deeply");
	msgpack_sbuffer_clear(&fx->sb);

	pk_msg(fx, 2, "ping");
	pk_str(&fx->pk, "result");
	msgpack_pack_str_with_body(&fx->pk, filler, PROTO_MAX_STR + 1);
	msgpack_pack_nil(&fx->pk); /* trailing */
	assert_bad(fx, "malformed frame: string too long");
}

/*
 * Every kind of scalar, alone in the innermost array of the deepest
 * nesting allowed: a scalar is no level, whatever its first byte.
 */
static void
decode_accepts_every_scalar_at_the_deepest_level(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
	} scalars[] = {
	    {"\x00", 1},
	    {"\x7f", 1},
	    {"\xe0", 1},
	    {"\xff", 1},
	    {"\xc0", 1},
	    {"\xc2", 1},
	    {"\xc3", 1},
	    {"\xcc\x01", 2},
	    {"\xd0\x80", 2},
	    {"\xcd\x01\x02", 3},
	    {"\xd1\x01\x02", 3},
	    {"\xce\x01\x02\x03\x04", 5},
	    {"\xd2\x01\x02\x03\x04", 5},
	    {"\xca\x3f\x80\x00\x00", 5},
	    {"\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9},
	    {"\xcf\x00\x00\x00\x00\x00\x00\x00\x01", 9},
	    {"\xd3\xff\xff\xff\xff\xff\xff\xff\xff", 9},
	    {"\xa1x", 2},
	    {"\xd9\x01x", 3},
	    {"\xc4\x01x", 3},
	};
	struct fx *fx = *state;
	size_t k;
	int i;

	for (k = 0; k < sizeof(scalars) / sizeof(scalars[0]); k++) {
		msgpack_sbuffer_clear(&fx->sb);
		pk_msg(fx, 2, "ping");
		pk_str(&fx->pk, "result");
		for (i = 0; i < PROTO_MAX_DEPTH - 1; i++)
			msgpack_pack_array(&fx->pk, 1);
		pk_bytes(fx, scalars[k].bytes, scalars[k].len);
		assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	}
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

	pk_msg(fx, 3, "ping");
	pk_str(&fx->pk, "result");
	pk_nested_arrays(&fx->pk, PROTO_MAX_DEPTH, false);
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 3);
	assert_over_limit(fx, 3, "nested too deeply");
}

static void
decode_rejects_nesting_of_maps_deeper_than_max_depth(void **state)
{
	struct fx *fx = *state;
	int i;

	pk_msg(fx, 3, "ping");
	pk_str(&fx->pk, "id");
	msgpack_pack_fix_uint8(&fx->pk, 4);
	for (i = 0; i < PROTO_MAX_DEPTH; i++) {
		pk_str(&fx->pk, i ? "k" : "result");
		msgpack_pack_map(&fx->pk, 1);
	}
	pk_str(&fx->pk, "k");
	msgpack_pack_nil(&fx->pk);
	assert_over_limit(fx, 4, "nested too deeply");
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
	assert_over_limit(fx, 0, "nested too deeply");
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
	assert_true(scanned >= PROTO_SCAN_LIMIT && scanned <= (ssize_t)n);
	switch (r) {
	case PROTO_DECODE_BAD:
		seen[0]++;
		assert_int_equal(first.code, PE_BAD_FRAME);
		assert_int_equal(fx->f.code, PE_BAD_FRAME);
		assert_string_equal(first.message, fx->f.message);
		assert_string_not_equal(first.message,
		                        "malformed frame: cannot unpack");
		if (scanned == PROTO_SCAN_LIMIT) {
			uint64_t id;

			assert_int_equal(proto_skim_id(p, n, &id), -1);
		}
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
		if (scanned == PROTO_SCAN_LIMIT) {
			uint64_t id;

			assert_int_equal(proto_skim_id(p, n, &id), 0);
			assert_int_equal(id, m1.id);
			assert_int_equal(first.code, PE_BAD_FIELD);
		} else {
			assert_int_equal(scanned, (ssize_t)n);
		}
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

/* Fields from the 65th on have their presence bits in a word of their own. */
static void
decode_marks_fields_past_the_first_64(void **state)
{
	struct fx *fx = *state;

	pk_msg(fx, 4, "input"); /* t, id, job, eof */
	pk_str(&fx->pk, "id");
	msgpack_pack_uint8(&fx->pk, 1);
	pk_str(&fx->pk, "job");
	msgpack_pack_uint8(&fx->pk, 9);
	pk_str(&fx->pk, "eof");
	msgpack_pack_true(&fx->pk);
	assert_true(PF_EOF >= 64);
	assert_int_equal(decode_sb(fx), PROTO_DECODE_OK);
	assert_int_equal(fx->m.type, PROTO_INPUT);
	assert_true(proto_has(&fx->m, PF_EOF));
	assert_true(proto_bool(&fx->m, PF_EOF, false));
	assert_true(proto_has(&fx->m, PF_JOB));
	/* its bit does not show up as the low field it would alias */
	assert_false(proto_has(&fx->m, (enum proto_field)(PF_EOF - 64)));
	assert_false(proto_has(&fx->m, PF_CWD));
	assert_int_equal(fx->m.present, B(T) | B(ID) | B(JOB));
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
	        decode_accepts_nesting_of_exactly_max_depth, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_nesting_deeper_than_max_depth, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_accepts_every_scalar_at_the_deepest_level, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_refuses_a_string_over_max_str_under_its_id, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_refuses_an_array_over_max_items_under_its_id, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_refuses_a_map_over_a_limit_without_an_id_under_id_0,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        decode_rejects_a_map_over_a_limit_cut_short, setup, teardown),
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
	        decode_marks_fields_past_the_first_64, setup, teardown),
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
