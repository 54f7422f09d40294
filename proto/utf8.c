/*
 * utf8.c -- text on the wire: every str value concd reads is checked to
 * be UTF-8, and what it echoes of a peer's input is quoted, so that it
 * never sends a string a strict decoder would refuse.
 */
#include "proto.h"

/* RFC 3629, table 3-7 of the Unicode standard. */
size_t
proto_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0; /* continuation, overlong lead, beyond U+10FFFF */
	len = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	if (p[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (p[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (p[0] == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

bool
proto_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = proto_utf8_seq(p + i, len - i)) == 0)
			return false;
		i += n;
	}
	return true;
}

const char *
proto_quote(char *dst, size_t size, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0, n;

	if (size == 0)
		return dst;
	while (i < len) {
		char esc[4];
		const char *from = esc;

		n = proto_utf8_seq(p + i, len - i);
		if (n == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
			n = 0; /* a control: escaped like a bad byte */
		} else if (n == 1 && (p[i] == '\\' || p[i] == '"')) {
			esc[0] = '\\';
			esc[1] = (char)p[i];
			n = 2;
		} else if (n > 0) {
			from = s + i;
		}
		if (n == 0) {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[p[i] >> 4];
			esc[3] = hex[p[i] & 0x0f];
			n = 4;
		}
		if (o + n >= size)
			break; /* cut between characters, never inside one */
		memcpy(dst + o, from, n);
		o += n;
		i += from == esc ? 1 : n;
	}
	dst[o] = '\0';
	return dst;
}
