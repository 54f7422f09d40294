/*
 * fuzz_proto.c -- libFuzzer entry point for proto/.  The input is what a
 * peer could write on the socket: a stream of frames.  Each frame found
 * is decoded, and the whole input also goes through proto_scan and, as
 * one payload, through proto_decode.  Beyond "no crash, no leak, no
 * overflow" the outcome must be consistent: BAD only with PE_BAD_FRAME,
 * REJECT only with a field or message fault, OK only with a known type,
 * its required fields and table-typed values (strings in UTF-8), and
 * every fault message in UTF-8; a name lookup matches only
 * that name; proto_scan never accepts what msgpack-c then refuses; every
 * accepted field is what msgpack-c's own unpacking gives; and the error
 * reply the daemon sends for a refused frame is itself a decodable frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto_check.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
require(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_proto: broken: %s\n", what);
		abort();
	}
}

/* A name lookup's answer, checked against the table by hand. */
static int
lookup_checked(int (*lookup)(const char *, size_t), const char *s, size_t len,
               const char *(*row)(int))
{
	int r = lookup(s, len);

	if (r >= 0)
		require(strlen(row(r)) == len && memcmp(row(r), s, len) == 0,
		        "a lookup matched a different name");
	return r;
}

static const char *
field_row(int i)
{
	return proto_fields[i].name;
}

static const char *
type_row(int i)
{
	return proto_types[i].name;
}

static const char *
state_row(int i)
{
	return proto_states[i];
}

static const char *
exec_row(int i)
{
	return proto_execs[i];
}

static const char *
error_row(int i)
{
	return proto_errors[i].name;
}

/* Every string key and value of the payload, looked up as a peer's name. */
static void
check_lookups(const char *p, size_t n)
{
	msgpack_zone zone;
	msgpack_object root;
	size_t off = 0;
	uint32_t i;

	if (!msgpack_zone_init(&zone, 4096))
		return;
	if (msgpack_unpack(p, n, &off, &zone, &root) ==
	        MSGPACK_UNPACK_SUCCESS &&
	    root.type == MSGPACK_OBJECT_MAP) {
		for (i = 0; i < root.via.map.size; i++) {
			const msgpack_object *k = &root.via.map.ptr[i].key;
			const msgpack_object *v = &root.via.map.ptr[i].val;

			if (k->type == MSGPACK_OBJECT_STR)
				lookup_checked(proto_field_lookup,
				               k->via.str.ptr, k->via.str.size,
				               field_row);
			if (v->type != MSGPACK_OBJECT_STR)
				continue;
			lookup_checked(proto_type_lookup, v->via.str.ptr,
			               v->via.str.size, type_row);
			lookup_checked(proto_state_lookup, v->via.str.ptr,
			               v->via.str.size, state_row);
			lookup_checked(proto_exec_lookup, v->via.str.ptr,
			               v->via.str.size, exec_row);
			lookup_checked(proto_error_lookup, v->via.str.ptr,
			               v->via.str.size, error_row);
		}
	}
	msgpack_zone_destroy(&zone);
}

/* What the daemon and the client do with the fields of a message. */
static void
use_fields(const struct proto_msg *m)
{
	char buf[64];
	const char *s;
	size_t len;
	int k;

	for (k = 0; k < PF_FIELD_COUNT; k++) {
		if (!proto_has(m, (enum proto_field)k))
			continue;
		(void)proto_u64(m, (enum proto_field)k, 0);
		(void)proto_i64(m, (enum proto_field)k, 0);
		(void)proto_bool(m, (enum proto_field)k, false);
		s = proto_str(m, (enum proto_field)k, &len);
		require(s != NULL || len == 0, "proto_str: NULL with a length");
		proto_strcpy(m, (enum proto_field)k, buf, sizeof(buf));
		require(strlen(buf) < sizeof(buf), "proto_strcpy: no NUL");
		if (s == NULL)
			continue;
		switch (k) {
		case PF_STATE:
			lookup_checked(proto_state_lookup, s, len, state_row);
			break;
		case PF_EXEC:
		case PF_REQUESTED:
		case PF_DEFAULT:
			lookup_checked(proto_exec_lookup, s, len, exec_row);
			break;
		case PF_ERROR:
			lookup_checked(proto_error_lookup, s, len, error_row);
			break;
		}
	}
}

/* Rows of "jobs" and "tasks" are decoded with proto_decode_fields. */
static void
use_rows(const struct proto_msg *m, enum proto_field f)
{
	const msgpack_object *a;
	struct proto_msg row;
	struct proto_fault fault;
	uint32_t i;

	if (!proto_has(m, f))
		return;
	a = &m->f[f];
	require(a->type == MSGPACK_OBJECT_ARRAY, "rows are not an array");
	for (i = 0; i < a->via.array.size; i++) {
		if (proto_decode_fields(&a->via.array.ptr[i], &row, &fault) <
		    0) {
			require(fault.code == PE_BAD_FRAME ||
			            fault.code == PE_BAD_FIELD,
			        "row fault code");
			continue;
		}
		use_fields(&row);
	}
}

/* The daemon answers a refused frame with an error: it must decode. */
static void
check_error_reply(uint64_t id, const struct proto_fault *f)
{
	struct pbuf out = {0};
	struct proto_msg m;
	struct proto_fault f2;
	msgpack_zone zone;
	const char *payload;
	size_t plen;

	require(proto_utf8_valid(f->message, strlen(f->message)),
	        "a fault message that is not UTF-8");
	proto_enc_error(&out, id, f->code, f->message);
	require(proto_frame_next(out.data, out.len, &payload, &plen) ==
	            (ssize_t)out.len,
	        "error reply is one frame");
	msgpack_zone_init(&zone, 1024);
	require(proto_decode(payload, plen, &zone, &m, &f2) ==
	                PROTO_DECODE_OK &&
	            m.type == PROTO_ERROR && m.id == id,
	        "error reply decodes");
	msgpack_zone_destroy(&zone);
	pbuf_free(&out);
}

static void
decode_one(const char *p, size_t n, msgpack_zone *zone)
{
	enum proto_decode_result r, again;
	struct proto_msg m;
	struct proto_fault f, f2;
	const char *cause = NULL, *why;
	ssize_t scanned;
	int k;

	memset(&f, 0, sizeof(f));
	r = proto_decode(p, n, zone, &m, &f);
	scanned = proto_scan(p, n, &cause);
	require(scanned >= PROTO_SCAN_LIMIT && scanned <= (ssize_t)n,
	        "scan length");
	require(scanned >= 0 || cause != NULL, "scan failed without a cause");
	switch (r) {
	case PROTO_DECODE_BAD:
		require(f.code == PE_BAD_FRAME, "BAD without PE_BAD_FRAME");
		if (scanned == PROTO_SCAN_LIMIT) {
			uint64_t id;

			require(proto_skim_id(p, n, &id) < 0,
			        "BAD over a limit of a frame skim reads whole");
		}
		require(strcmp(f.message, "malformed frame: cannot unpack") !=
		            0,
		        "proto_scan accepted what msgpack-c refuses");
		if (scanned == (ssize_t)n)
			require(
			    strcmp(f.message, "message is not a map") == 0 ||
			        strcmp(f.message, "map key is not a string") ==
			            0,
			    "BAD frame that scans whole");
		check_error_reply(m.id, &f);
		break;
	case PROTO_DECODE_REJECT:
		require(f.code == PE_BAD_FIELD || f.code == PE_UNKNOWN_MESSAGE,
		        "REJECT fault code");
		if (scanned == PROTO_SCAN_LIMIT) {
			/* a whole map over a limit, answered under its id */
			uint64_t id;

			require(proto_skim_id(p, n, &id) == 0 && id == m.id,
			        "REJECT over a limit of a frame skim refuses");
			require(f.code == PE_BAD_FIELD,
			        "REJECT over a limit is not bad_field");
		} else {
			require(scanned == (ssize_t)n,
			        "REJECT of a frame scan refuses");
			check_lookups(p, n);
		}
		check_error_reply(m.id, &f);
		break;
	case PROTO_DECODE_OK:
		require(scanned == (ssize_t)n, "OK for a frame scan refuses");
		require(m.type < PROTO_TYPE_COUNT, "OK with a bad type");
		require((proto_types[m.type].required & ~m.present) == 0,
		        "OK without a required field");
		require(m.id == proto_u64(&m, PF_ID, 0), "id is not \"id\"");
		for (k = 0; k < PF_FIELD_COUNT; k++)
			if (proto_has(&m, (enum proto_field)k) &&
			    proto_fields[k].type == PV_STR)
				require(
				    m.f[k].type == MSGPACK_OBJECT_STR &&
				        m.f[k].via.str.size <=
				            proto_fields[k].max &&
				        proto_utf8_valid(m.f[k].via.str.ptr,
				                         m.f[k].via.str.size),
				    "string field over its limit or not "
				    "UTF-8");
		why = proto_check_fields(p, n, &m);
		require(why == NULL, why != NULL ? why : "");
		use_fields(&m);
		check_lookups(p, n);
		use_rows(&m, PF_JOBS);
		use_rows(&m, PF_TASKS);
		break;
	default:
		require(false, "unknown proto_decode result");
	}
	/* the same bytes, the same verdict (this clears the zone) */
	again = proto_decode(p, n, zone, &m, &f2);
	require(again == r, "decode is not deterministic");
	if (r != PROTO_DECODE_OK)
		require(f2.code == f.code && strcmp(f2.message, f.message) == 0,
		        "fault is not deterministic");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	const char *cause, *payload;
	size_t off = 0, plen;
	msgpack_zone zone;
	ssize_t n;

	n = proto_scan(buf, size, &cause);
	require(n == PROTO_SCAN_BAD || n == PROTO_SCAN_LIMIT ||
	            (n > 0 && (size_t)n <= size),
	        "raw scan length");
	if (n > 0) {
		uint8_t c = (uint8_t)buf[0];
		bool map = (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf;
		uint64_t id;

		/* a map the scan reads whole, the skim reads whole too */
		require((proto_skim_id(buf, (size_t)n, &id) == 0) == map,
		        "skim and scan disagree on a map");
	}

	if (!msgpack_zone_init(&zone, 4096))
		return 0;
	/* the input as a stream of frames, as the daemon reads it */
	while ((n = proto_frame_next(buf + off, size - off, &payload, &plen)) >
	       0) {
		require(payload == buf + off + PROTO_HEADER_LEN &&
		            (size_t)n == PROTO_HEADER_LEN + plen &&
		            plen <= PROTO_MAX_FRAME && (size_t)n <= size - off,
		        "frame bounds");
		decode_one(payload, plen, &zone);
		off += (size_t)n;
	}
	require(n == 0 || size - off >= PROTO_HEADER_LEN, "frame -1 early");
	/* and as one payload */
	if (size <= PROTO_MAX_FRAME)
		decode_one(buf, size, &zone);
	msgpack_zone_destroy(&zone);
	return 0;
}
