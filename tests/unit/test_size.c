/*
 * test_size.c -- sizes as concctl's --mem and concd's limits read them
 * (proto_size_parse) and show them (proto_size_format).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "proto.h"

static void
size_parse_reads_bytes_and_binary_units(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
	    {"0", 0},
	    {"1", 1},
	    {"65536", 65536},
	    {"1K", 1024},
	    {"1k", 1024},
	    {"512M", UINT64_C(512) << 20},
	    {"2G", UINT64_C(2) << 30},
	    {"2GB", UINT64_C(2) << 30},
	    {"2GiB", UINT64_C(2) << 30},
	    {"2gib", UINT64_C(2) << 30},
	    {"3T", UINT64_C(3) << 40},
	    {"16777215T", UINT64_C(16777215) << 40},
	    {"18446744073709551615", UINT64_MAX},
	};
	uint64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 12345;
		if (proto_size_parse(ok[i].s, &v) != 0 || v != ok[i].v)
			fail_msg("\"%s\": got %llu, want %llu", ok[i].s,
			         (unsigned long long)v,
			         (unsigned long long)ok[i].v);
	}
}

static void
size_parse_refuses_what_is_not_a_size(void **state)
{
	static const char *const bad[] = {
	    "",
	    "M",
	    "-1",
	    "+1",
	    " 1",
	    "1 ",
	    "1.5G",
	    "1X",
	    "1KK",
	    "1Bi",
	    "1GiBs",
	    "0x10",
	    "16777216T", /* 2^64 */
	    "18446744073709551616",
	    "99999999999999999999999G",
	};
	uint64_t v = 7;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (proto_size_parse(bad[i], &v) == 0)
			fail_msg("\"%s\" taken as %llu", bad[i],
			         (unsigned long long)v);
		assert_int_equal(v, 7); /* untouched */
	}
	assert_int_equal(proto_size_parse(NULL, &v), -1);
}

static void
size_format_uses_the_largest_exact_unit(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(proto_size_format(buf, sizeof(buf), 0), "0");
	assert_string_equal(proto_size_format(buf, sizeof(buf), 1000), "1000");
	assert_string_equal(proto_size_format(buf, sizeof(buf), 1024), "1K");
	assert_string_equal(proto_size_format(buf, sizeof(buf), 1536), "1536");
	assert_string_equal(
	    proto_size_format(buf, sizeof(buf), UINT64_C(2) << 30), "2G");
	assert_string_equal(
	    proto_size_format(buf, sizeof(buf), UINT64_C(3) << 29), "1536M");
	assert_string_equal(proto_size_format(buf, sizeof(buf), UINT64_MAX),
	                    "18446744073709551615");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(size_parse_reads_bytes_and_binary_units),
	    cmocka_unit_test(size_parse_refuses_what_is_not_a_size),
	    cmocka_unit_test(size_format_uses_the_largest_exact_unit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
