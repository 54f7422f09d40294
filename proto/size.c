/*
 * size.c -- sizes as people write them: "512M", "2G", "65536".  concctl's
 * --mem and concd's limits read them the same way.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* A suffix and its power of 1024. */
static const struct {
	char unit;
	int shift;
} proto_size_units[] = {{'K', 10}, {'M', 20}, {'G', 30}, {'T', 40}};

int
proto_size_parse(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int shift = 0;
	size_t i;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0') {
		for (i = 0;
		     i < sizeof(proto_size_units) / sizeof(proto_size_units[0]);
		     i++)
			if (toupper((unsigned char)*end) ==
			    proto_size_units[i].unit)
				shift = proto_size_units[i].shift;
		if (shift == 0)
			return -1;
		end++;
		/* "2G", "2GB" and "2GiB" alike */
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (*end != '\0')
			return -1;
	}
	if (v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

const char *
proto_size_format(char *dst, size_t size, uint64_t v)
{
	size_t i = sizeof(proto_size_units) / sizeof(proto_size_units[0]);

	/* the largest unit that divides it exactly */
	while (i-- > 0) {
		uint64_t unit = UINT64_C(1) << proto_size_units[i].shift;

		if (v > 0 && v % unit == 0) {
			snprintf(dst, size, "%llu%c",
			         (unsigned long long)(v / unit),
			         proto_size_units[i].unit);
			return dst;
		}
	}
	snprintf(dst, size, "%llu", (unsigned long long)v);
	return dst;
}
