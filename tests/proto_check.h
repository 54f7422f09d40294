/*
 * proto_check.h -- shared by the proto unit tests and the fuzz target.
 * proto_decode reads a frame's top-level map itself, not through
 * msgpack-c's object tree: proto_check_fields holds what it accepted to
 * what msgpack-c's own unpacking of the same payload gives.
 */
#ifndef PROTO_CHECK_H
#define PROTO_CHECK_H

#include <stdbool.h>
#include <string.h>

#include "proto.h"

/* Equal as msgpack bytes: a NaN equals itself, unlike with ==. */
static inline bool
proto_check_same(msgpack_object a, msgpack_object b)
{
	msgpack_sbuffer sa, sb;
	msgpack_packer pa, pb;
	bool same;

	msgpack_sbuffer_init(&sa);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pa, &sa, msgpack_sbuffer_write);
	msgpack_packer_init(&pb, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pa, a);
	msgpack_pack_object(&pb, b);
	same = sa.size == sb.size && memcmp(sa.data, sb.data, sa.size) == 0;
	msgpack_sbuffer_destroy(&sa);
	msgpack_sbuffer_destroy(&sb);
	return same;
}

/*
 * got is what proto_decode accepted from the n bytes at p: NULL when
 * every field is msgpack-c's, else what differs.
 */
static inline const char *
proto_check_fields(const char *p, size_t n, const struct proto_msg *got)
{
	const char *why = NULL;
	msgpack_zone zone;
	msgpack_object root;
	struct proto_msg want;
	struct proto_fault f;
	size_t off = 0;
	int k;

	if (!msgpack_zone_init(&zone, 4096))
		return NULL; /* out of memory: nothing to say */
	if (msgpack_unpack(p, n, &off, &zone, &root) !=
	        MSGPACK_UNPACK_SUCCESS ||
	    proto_decode_fields(&root, &want, &f) != 0)
		why = "msgpack-c refuses what proto_decode accepted";
	else if (got->present != want.present)
		why = "the fields present differ from msgpack-c's";
	for (k = 0; why == NULL && k < PF_FIELD_COUNT; k++)
		if (proto_has(&want, (enum proto_field)k) &&
		    !proto_check_same(got->f[k], want.f[k]))
			why = "a field differs from msgpack-c's";
	msgpack_zone_destroy(&zone);
	return why;
}

#endif
