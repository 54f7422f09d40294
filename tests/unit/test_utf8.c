/*
 * test_utf8.c -- strings on the wire: proto_utf8_valid and proto_quote
 * (utf8.c), the decoder's refusal of str fields that are not UTF-8, and
 * the encoder's quoting of a string that is not.
 */
#include "proto_fixture.h"

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

/*
 * Text that is not UTF-8, quoted, over its field's limit: cut between
 * escapes, never inside one, and "..." at the end.
 */
static void
enc_text_cuts_a_quoted_string_between_escapes(void **state)
{
	struct fx *fx = *state;
	size_t max = proto_fields[PF_MESSAGE].max;
	struct proto_enc e;
	char bad[2000];
	const char *s;
	size_t len, i;

	memset(bad, 0xff, sizeof(bad));
	proto_enc_begin(&e, &fx->out, PROTO_ERROR, 3);
	proto_enc_cstr(&e, PF_ERROR, "task_failed");
	proto_enc_text(&e, PF_MESSAGE, bad, sizeof(bad));
	assert_int_equal(proto_enc_end(&e), 0);
	assert_int_equal(decode_out(fx), PROTO_DECODE_OK);
	s = proto_str(&fx->m, PF_MESSAGE, &len);
	/* 1021 bytes hold 255 escapes of 4 */
	assert_int_equal(len, 4 * 255 + 3);
	for (i = 0; i < 255; i++)
		assert_memory_equal(s + 4 * i, "\\xff", 4);
	assert_memory_equal(s + 4 * 255, "...", 3);
	assert_true(len <= max);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
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
	        enc_text_cuts_a_quoted_string_between_escapes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
