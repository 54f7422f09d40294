/*
 * test_frame.c -- framing (frame.c): where a frame ends, the length
 * limit, and the byte buffer frames are written into.
 */
#include "proto_fixture.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
