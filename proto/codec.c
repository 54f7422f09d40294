/*
 * codec.c -- encode frames into a pbuf and decode them against the field
 * table.  Decoding validates everything the table says about a message
 * before the daemon or the client looks at it.  Both ends of a message are
 * on every job's path, so the scalars of a frame are written, and its
 * top-level map read, here rather than through msgpack-c's callbacks and
 * object tree; nested values still go through msgpack-c.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* ---- encoding ---- */

/* v as a big-endian number of the given size at p */
static inline void
put_be(char *p, uint64_t v, int bytes)
{
	int i;

	for (i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (char)v;
}

static void
count_one(struct proto_enc *e)
{
	if (e->depth > 0)
		e->level[e->depth - 1].count++;
}

static void
open_level(struct proto_enc *e, bool map)
{
	static const char hdr[2][3] = {{(char)0xdc, 0, 0}, {(char)0xde, 0, 0}};

	if (e->depth == PROTO_ENC_DEPTH) {
		e->failed = true;
		return;
	}
	e->level[e->depth].at = e->buf->len;
	e->level[e->depth].count = 0;
	e->level[e->depth].map = map;
	e->depth++;
	pbuf_append(e->buf, hdr[map], 3);
}

/* Field and type names packed once: a key is then one append. */
static struct {
	pthread_once_t once;
	char keys[PF_FIELD_COUNT][40];
	uint8_t key_len[PF_FIELD_COUNT];
	char types[PROTO_TYPE_COUNT][40];
	uint8_t type_len[PROTO_TYPE_COUNT];
} packed = {.once = PTHREAD_ONCE_INIT};

/* name as a msgpack fixstr: every name in the tables is under 32 bytes */
static uint8_t
pack_name(char *out, const char *name)
{
	size_t n = strlen(name);

	out[0] = (char)(0xa0 | n);
	memcpy(out + 1, name, n);
	return (uint8_t)(n + 1);
}

static void
pack_names(void)
{
	size_t i;

	for (i = 0; i < PF_FIELD_COUNT; i++)
		packed.key_len[i] =
		    pack_name(packed.keys[i], proto_fields[i].name);
	for (i = 0; i < PROTO_TYPE_COUNT; i++)
		packed.type_len[i] =
		    pack_name(packed.types[i], proto_types[i].name);
}

/*
 * The scalars are written straight into the buffer, in the shortest
 * form, as msgpack_pack_* would write them, without a callback per item.
 */
static void
put_uint(struct pbuf *b, uint64_t v)
{
	char *p;

	pbuf_reserve(b, 9);
	p = b->data + b->len;
	if (v < 0x80) {
		p[0] = (char)v;
		b->len += 1;
	} else if (v <= UINT8_MAX) {
		p[0] = (char)0xcc;
		p[1] = (char)v;
		b->len += 2;
	} else if (v <= UINT16_MAX) {
		p[0] = (char)0xcd;
		put_be(p + 1, v, 2);
		b->len += 3;
	} else if (v <= UINT32_MAX) {
		p[0] = (char)0xce;
		put_be(p + 1, v, 4);
		b->len += 5;
	} else {
		p[0] = (char)0xcf;
		put_be(p + 1, v, 8);
		b->len += 9;
	}
}

static void
put_int(struct pbuf *b, int64_t v)
{
	char *p;

	if (v >= 0) {
		put_uint(b, (uint64_t)v);
		return;
	}
	pbuf_reserve(b, 9);
	p = b->data + b->len;
	if (v >= -32) {
		p[0] = (char)v; /* negative fixint */
		b->len += 1;
	} else if (v >= INT8_MIN) {
		p[0] = (char)0xd0;
		p[1] = (char)v;
		b->len += 2;
	} else if (v >= INT16_MIN) {
		p[0] = (char)0xd1;
		put_be(p + 1, (uint64_t)v, 2);
		b->len += 3;
	} else if (v >= INT32_MIN) {
		p[0] = (char)0xd2;
		put_be(p + 1, (uint64_t)v, 4);
		b->len += 5;
	} else {
		p[0] = (char)0xd3;
		put_be(p + 1, (uint64_t)v, 8);
		b->len += 9;
	}
}

/* A str header for len bytes, with room for them after it. */
static void
put_str_head(struct pbuf *b, size_t len)
{
	char *p;

	pbuf_reserve(b, len + 5);
	p = b->data + b->len;
	if (len < 32) {
		p[0] = (char)(0xa0 | len);
		b->len += 1;
	} else if (len <= UINT8_MAX) {
		p[0] = (char)0xd9;
		p[1] = (char)len;
		b->len += 2;
	} else if (len <= UINT16_MAX) {
		p[0] = (char)0xda;
		put_be(p + 1, len, 2);
		b->len += 3;
	} else {
		p[0] = (char)0xdb;
		put_be(p + 1, len, 4);
		b->len += 5;
	}
}

static void
put_str(struct pbuf *b, const char *s, size_t len)
{
	put_str_head(b, len);
	memcpy(b->data + b->len, s, len);
	b->len += len;
}

void
proto_enc_begin(struct proto_enc *e, struct pbuf *b, enum proto_type type,
                uint64_t id)
{
	static const char zero[4];

	pthread_once(&packed.once, pack_names);
	pbuf_reserve(b, 256); /* most frames fit: one check, not many */
	e->buf = b;
	e->start = b->len;
	e->depth = 0;
	e->failed = false;
	msgpack_packer_init(&e->pk, b, pbuf_write_cb);
	pbuf_append(b, zero, sizeof(zero));
	open_level(e, true);
	proto_enc_key(e, PF_T);
	pbuf_append(b, packed.types[type], packed.type_len[type]);
	if (type != PROTO_PONG || id != 0)
		proto_enc_u64(e, PF_ID, id);
}

/* Keys are written after proto_enc_begin, which packed the names. */
void
proto_enc_key(struct proto_enc *e, enum proto_field f)
{
	count_one(e);
	pbuf_append(e->buf, packed.keys[f], packed.key_len[f]);
}

void
proto_enc_u64(struct proto_enc *e, enum proto_field f, uint64_t v)
{
	proto_enc_key(e, f);
	put_uint(e->buf, v);
}

void
proto_enc_i64(struct proto_enc *e, enum proto_field f, int64_t v)
{
	proto_enc_key(e, f);
	put_int(e->buf, v);
}

void
proto_enc_bool(struct proto_enc *e, enum proto_field f, bool v)
{
	proto_enc_key(e, f);
	pbuf_append(e->buf, v ? "\xc3" : "\xc2", 1);
}

/*
 * A string that is not UTF-8 (a plugin's message, say) goes out quoted,
 * as proto_quote writes it, at most size - 1 bytes of it: concd never
 * sends a str a peer cannot decode.  *q is what to free.
 */
static const char *
enc_utf8(const char *s, size_t *len, size_t size, char **q)
{
	*q = NULL;
	if (proto_utf8_valid(s, *len))
		return s;
	if ((*q = malloc(size)) == NULL)
		return NULL;
	s = proto_quote(*q, size, s, *len);
	*len = strlen(s);
	return s;
}

/*
 * A string goes out whole, never cut: one longer than its field allows
 * is refused by the peer (bad_field), where a cut one would name
 * something else (a group "aaa...-other" cut to the group "aaa...").
 */
void
proto_enc_str(struct proto_enc *e, enum proto_field f, const char *s,
              size_t len)
{
	char *q;

	if ((s = enc_utf8(s, &len, len * 4 + 1, &q)) == NULL) {
		e->failed = true;
		return;
	}
	proto_enc_key(e, f);
	put_str(e->buf, s, len);
	free(q);
}

/*
 * Text for people (an error's message, a progress message, a task's
 * summary): longer than its field allows, it is cut between characters
 * and ends in "...", so that its reader sees it was cut.
 */
void
proto_enc_text(struct proto_enc *e, enum proto_field f, const char *s,
               size_t len)
{
	static const char more[] = "...";
	size_t max = proto_fields[f].max, keep, n = len;
	const char *t;
	char *q;

	if ((t = enc_utf8(s, &n, len * 4 + 1, &q)) == NULL) {
		e->failed = true;
		return;
	}
	if (max < sizeof(more) || n <= max) {
		proto_enc_key(e, f);
		put_str(e->buf, t, n);
		free(q);
		return;
	}
	keep = max - (sizeof(more) - 1);
	if (q != NULL) {
		/* quoted again, shorter: cut between escapes, not inside */
		n = strlen(proto_quote(q, keep + 1, s, len));
	} else {
		n = keep;
		while (n > 0 && ((unsigned char)t[n] & 0xc0) == 0x80)
			n--;
	}
	proto_enc_key(e, f);
	put_str_head(e->buf, n + sizeof(more) - 1);
	pbuf_append(e->buf, t, n);
	pbuf_append(e->buf, more, sizeof(more) - 1);
	free(q);
}

void
proto_enc_cstr(struct proto_enc *e, enum proto_field f, const char *s)
{
	proto_enc_str(e, f, s, strlen(s));
}

void
proto_enc_ctext(struct proto_enc *e, enum proto_field f, const char *s)
{
	proto_enc_text(e, f, s, strlen(s));
}

void
proto_enc_raw(struct proto_enc *e, enum proto_field f, const void *p,
              size_t len)
{
	proto_enc_key(e, f);
	pbuf_append(e->buf, p, len);
}

void
proto_enc_map_open(struct proto_enc *e)
{
	if (e->depth > 0 && !e->level[e->depth - 1].map)
		count_one(e);
	open_level(e, true);
}

void
proto_enc_array_open(struct proto_enc *e)
{
	if (e->depth > 0 && !e->level[e->depth - 1].map)
		count_one(e);
	open_level(e, false);
}

void
proto_enc_elem(struct proto_enc *e)
{
	count_one(e);
}

void
proto_enc_close(struct proto_enc *e)
{
	if (e->depth == 0) {
		e->failed = true;
		return;
	}
	e->depth--;
	if (e->level[e->depth].count > 0xffff)
		e->failed = true;
	else
		put_be(e->buf->data + e->level[e->depth].at + 1,
		       e->level[e->depth].count, 2);
}

int
proto_enc_end(struct proto_enc *e)
{
	size_t n;

	while (e->depth > 0)
		proto_enc_close(e);
	n = e->buf->len - e->start - PROTO_HEADER_LEN;
	if (e->failed || n > PROTO_MAX_FRAME) {
		e->buf->len = e->start;
		return -1;
	}
	put_be(e->buf->data + e->start, n, PROTO_HEADER_LEN);
	return 0;
}

void
proto_enc_error(struct pbuf *b, uint64_t id, enum proto_error code,
                const char *message)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, PROTO_ERROR, id);
	proto_enc_cstr(&e, PF_ERROR, proto_errors[code].name);
	proto_enc_ctext(&e, PF_MESSAGE,
	                message != NULL ? message : proto_errors[code].text);
	proto_enc_end(&e);
}

int
proto_enc_result_frame(struct pbuf *b, enum proto_type type, uint64_t id,
                       void (*fields)(struct proto_enc *, void *, bool),
                       void *arg)
{
	struct proto_enc e;

	proto_enc_begin(&e, b, type, id);
	fields(&e, arg, true);
	if (proto_enc_end(&e) == 0)
		return 0;
	proto_enc_begin(&e, b, type, id);
	fields(&e, arg, false);
	return proto_enc_end(&e) == 0 ? 1 : -1;
}

void
proto_enc_result_too_large(struct proto_enc *e, size_t len)
{
	char why[128];

	snprintf(why, sizeof(why),
	         "result too large to send: %zu bytes, and a frame holds %d",
	         len, PROTO_MAX_FRAME);
	proto_enc_cstr(e, PF_STATE, proto_states[PS_FAILED]);
	proto_enc_cstr(e, PF_ERROR, proto_errors[PE_INTERNAL].name);
	proto_enc_ctext(e, PF_MESSAGE, why);
	proto_enc_u64(e, PF_RESULT_OMITTED, len);
}

/* ---- decoding ---- */

static int
fault(struct proto_fault *f, enum proto_error code, const char *fmt,
      const char *arg)
{
	f->code = code;
	snprintf(f->message, sizeof(f->message), fmt, arg);
	return -1;
}

static bool
type_ok(const struct proto_field_info *fi, const msgpack_object *o)
{
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
		       (fi->max == 0 || o->via.str.size <= fi->max);
	case PV_MAP:
		return o->type == MSGPACK_OBJECT_MAP &&
		       (fi->max == 0 || o->via.map.size <= fi->max);
	case PV_ARRAY:
		return o->type == MSGPACK_OBJECT_ARRAY &&
		       (fi->max == 0 || o->via.array.size <= fi->max);
	case PV_ANY:
		return true;
	}
	return false;
}

static const char *const vtype_names[] = {
    [PV_UINT] = "a non-negative integer",
    [PV_INT] = "an integer",
    [PV_BOOL] = "a boolean",
    [PV_STR] = "a string",
    [PV_MAP] = "a map",
    [PV_ARRAY] = "an array",
    [PV_ANY] = "a value",
};

/* Whether every string in o, map keys included, is UTF-8. */
static bool
obj_utf8(const msgpack_object *o)
{
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		return proto_utf8_valid(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_ARRAY:
		for (i = 0; i < o->via.array.size; i++)
			if (!obj_utf8(&o->via.array.ptr[i]))
				return false;
		return true;
	case MSGPACK_OBJECT_MAP:
		for (i = 0; i < o->via.map.size; i++)
			if (!obj_utf8(&o->via.map.ptr[i].key) ||
			    !obj_utf8(&o->via.map.ptr[i].val))
				return false;
		return true;
	default:
		return true;
	}
}

/*
 * One key and value of a message map: 0, or -1 with f set.  A str field,
 * and every string inside a map or array field (task arguments, a
 * gather's jobs), must be UTF-8; values of type any (a result, output
 * data) are passed on as they are.
 */
static int
decode_kv(const msgpack_object *key, const msgpack_object *val,
          struct proto_msg *m, struct proto_fault *f)
{
	const struct proto_field_info *fi;
	int k;

	if (key->type != MSGPACK_OBJECT_STR)
		return fault(f, PE_BAD_FRAME, "%s", "map key is not a string");
	k = proto_field_lookup(key->via.str.ptr, key->via.str.size);
	if (k < 0)
		return 0; /* unknown keys are ignored */
	fi = &proto_fields[k];
	if (!type_ok(fi, val)) {
		char what[96];

		snprintf(what, sizeof(what), "field \"%s\" must be %s%s",
		         fi->name, vtype_names[fi->type],
		         fi->max ? " (within its size limit)" : "");
		return fault(f, PE_BAD_FIELD, "%s", what);
	}
	if (fi->type != PV_ANY && !obj_utf8(val))
		return fault(f, PE_BAD_FIELD,
		             fi->type == PV_STR
		                 ? "field \"%s\" is not valid UTF-8"
		                 : "field \"%s\" holds a string that is not "
		                   "valid UTF-8",
		             fi->name);
	m->f[k] = *val;
	if (k < 64)
		m->present |= PF_BIT(k);
	else
		m->present_hi |= PF_BIT(k);
	return 0;
}

int
proto_decode_fields(const msgpack_object *map, struct proto_msg *m,
                    struct proto_fault *f)
{
	uint32_t i;

	m->present = m->present_hi = 0;
	if (map->type != MSGPACK_OBJECT_MAP)
		return fault(f, PE_BAD_FRAME, "%s", "message is not a map");
	for (i = 0; i < map->via.map.size; i++)
		if (decode_kv(&map->via.map.ptr[i].key,
		              &map->via.map.ptr[i].val, m, f) < 0)
			return -1;
	return 0;
}

/*
 * One value of a frame proto_scan has passed, at *off: scalars are read
 * here, pointing into the frame as msgpack-c would; maps and arrays go
 * to msgpack_unpack.  Returns 0, or -1 if msgpack-c refuses.
 */
static int
take_value(const char *buf, size_t len, size_t *off, msgpack_zone *zone,
           msgpack_object *o)
{
	const unsigned char *p = (const unsigned char *)buf + *off;
	unsigned char c = p[0];
	size_t n;
	int w;

	if (c <= 0x7f) {
		o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = c;
		*off += 1;
		return 0;
	}
	if (c >= 0xe0) {
		o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
		o->via.i64 = (int8_t)c;
		*off += 1;
		return 0;
	}
	if (c >= 0xa0 && c <= 0xbf) {
		n = c & 0x1f;
		w = 0;
		goto str;
	}
	switch (c) {
	case 0xc0:
		o->type = MSGPACK_OBJECT_NIL;
		*off += 1;
		return 0;
	case 0xc2:
	case 0xc3:
		o->type = MSGPACK_OBJECT_BOOLEAN;
		o->via.boolean = c == 0xc3;
		*off += 1;
		return 0;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		w = 1 << (c - 0xcc);
		o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = proto_get_be(p + 1, w);
		*off += 1 + (size_t)w;
		return 0;
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		uint64_t u;
		int64_t v;

		w = 1 << (c - 0xd0);
		u = proto_get_be(p + 1, w);
		if (w < 8 && (u >> (8 * w - 1)) != 0)
			u |= ~0ULL << (8 * w); /* sign-extend */
		memcpy(&v, &u, sizeof(v));
		if (v < 0) {
			o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
			o->via.i64 = v;
		} else {
			o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
			o->via.u64 = (uint64_t)v;
		}
		*off += 1 + (size_t)w;
		return 0;
	}
	case 0xd9:
	case 0xda:
	case 0xdb:
		w = 1 << (c - 0xd9);
		n = (size_t)proto_get_be(p + 1, w);
		goto str;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		w = 1 << (c - 0xc4);
		o->type = MSGPACK_OBJECT_BIN;
		o->via.bin.size = (uint32_t)proto_get_be(p + 1, w);
		o->via.bin.ptr = (const char *)p + 1 + w;
		*off += 1 + (size_t)w + o->via.bin.size;
		return 0;
	default: /* floats, maps and arrays */
		switch (msgpack_unpack(buf, len, off, zone, o)) {
		case MSGPACK_UNPACK_SUCCESS:
		case MSGPACK_UNPACK_EXTRA_BYTES:
			return 0;
		default:
			return -1;
		}
	}
str:
	o->type = MSGPACK_OBJECT_STR;
	o->via.str.size = (uint32_t)n;
	o->via.str.ptr = (const char *)p + 1 + w;
	*off += 1 + (size_t)w + n;
	return 0;
}

/*
 * The top-level map of a scanned frame, key by key, without building the
 * map itself.  Returns 0, or -1 when the frame needs the full path: a
 * fault of any kind is reported by that path, with its wording.
 */
static int
decode_top(const char *buf, size_t len, msgpack_zone *zone, struct proto_msg *m,
           struct proto_fault *f)
{
	const unsigned char *p = (const unsigned char *)buf;
	msgpack_object key, val;
	size_t off, n;

	m->present = m->present_hi = 0;
	if (p[0] >= 0x80 && p[0] <= 0x8f) {
		n = p[0] & 0x0f;
		off = 1;
	} else if (p[0] == 0xde) {
		n = (size_t)proto_get_be(p + 1, 2);
		off = 3;
	} else if (p[0] == 0xdf) {
		n = (size_t)proto_get_be(p + 1, 4);
		off = 5;
	} else {
		return -1;
	}
	while (n-- > 0)
		if (take_value(buf, len, &off, zone, &key) < 0 ||
		    key.type != MSGPACK_OBJECT_STR ||
		    take_value(buf, len, &off, zone, &val) < 0 ||
		    decode_kv(&key, &val, m, f) < 0)
			return -1;
	return 0;
}

enum proto_decode_result
proto_decode(const char *payload, size_t len, msgpack_zone *zone,
             struct proto_msg *m, struct proto_fault *f)
{
	const char *cause;
	ssize_t used;
	size_t off = 0;
	msgpack_object root;
	const struct proto_type_info *ti;
	uint64_t missing;
	int t;

	m->id = 0;
	m->present = m->present_hi = 0;
	used = proto_scan(payload, len, &cause);
	if (used == PROTO_SCAN_LIMIT &&
	    proto_skim_id(payload, len, &m->id) == 0) {
		/*
		 * A whole map with a value over a limit: its request is
		 * refused, under its id, and the connection goes on (the
		 * frame's length was sound).  The value is never read.
		 */
		char why[sizeof(f->message)];

		snprintf(why, sizeof(why),
		         "a value over the protocol's limits: %s (limits: %d "
		         "levels of arrays and maps, %d elements in one, %d "
		         "bytes in a string)",
		         cause, PROTO_MAX_DEPTH, PROTO_MAX_ITEMS,
		         PROTO_MAX_STR);
		fault(f, PE_BAD_FIELD, "%s", why);
		return PROTO_DECODE_REJECT;
	}
	if (used < 0) {
		m->id = 0;
		fault(f, PE_BAD_FRAME, "malformed frame: %s", cause);
		return PROTO_DECODE_BAD;
	}
	if ((size_t)used != len) {
		fault(f, PE_BAD_FRAME, "%s",
		      "trailing bytes after the message");
		return PROTO_DECODE_BAD;
	}
	msgpack_zone_clear(zone);
	if (decode_top(payload, len, zone, m, f) == 0)
		goto fields_done;
	msgpack_zone_clear(zone);
	if (msgpack_unpack(payload, len, &off, zone, &root) !=
	    MSGPACK_UNPACK_SUCCESS) {
		fault(f, PE_BAD_FRAME, "%s", "malformed frame: cannot unpack");
		return PROTO_DECODE_BAD;
	}
	if (proto_decode_fields(&root, m, f) < 0) {
		uint32_t i;

		if (f->code == PE_BAD_FRAME)
			return PROTO_DECODE_BAD;
		/* keep the id for the error reply when it is sound */
		for (i = 0; i < root.via.map.size; i++) {
			const msgpack_object_kv *kv = &root.via.map.ptr[i];

			if (proto_obj_streq(&kv->key, "id") &&
			    kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				m->id = kv->val.via.u64;
		}
		return PROTO_DECODE_REJECT;
	}
fields_done:
	if (proto_has(m, PF_ID))
		m->id = m->f[PF_ID].via.u64;
	if (!proto_has(m, PF_T)) {
		fault(f, PE_BAD_FIELD, "%s", "message has no type (\"t\")");
		return PROTO_DECODE_REJECT;
	}
	t = proto_type_lookup(m->f[PF_T].via.str.ptr, m->f[PF_T].via.str.size);
	if (t < 0) {
		char name[4 * 32 + 1]; /* "t" is at most 32 bytes */

		proto_quote(name, sizeof(name), m->f[PF_T].via.str.ptr,
		            m->f[PF_T].via.str.size);
		fault(f, PE_UNKNOWN_MESSAGE, "unknown message type \"%s\"",
		      name);
		return PROTO_DECODE_REJECT;
	}
	m->type = (enum proto_type)t;
	ti = &proto_types[t];
	missing = ti->required & ~m->present;
	if (missing != 0) {
		int k = __builtin_ctzll(missing);

		fault(f, PE_BAD_FIELD, "missing field \"%s\"",
		      proto_fields[k].name);
		return PROTO_DECODE_REJECT;
	}
	return PROTO_DECODE_OK;
}

uint64_t
proto_u64(const struct proto_msg *m, enum proto_field f, uint64_t def)
{
	if (!proto_has(m, f) || m->f[f].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return def;
	return m->f[f].via.u64;
}

int64_t
proto_i64(const struct proto_msg *m, enum proto_field f, int64_t def)
{
	if (!proto_has(m, f))
		return def;
	if (m->f[f].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return m->f[f].via.u64 > INT64_MAX ? INT64_MAX
		                                   : (int64_t)m->f[f].via.u64;
	if (m->f[f].type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return m->f[f].via.i64;
	return def;
}

bool
proto_bool(const struct proto_msg *m, enum proto_field f, bool def)
{
	if (!proto_has(m, f) || m->f[f].type != MSGPACK_OBJECT_BOOLEAN)
		return def;
	return m->f[f].via.boolean;
}

const char *
proto_str(const struct proto_msg *m, enum proto_field f, size_t *len)
{
	if (!proto_has(m, f) || m->f[f].type != MSGPACK_OBJECT_STR) {
		*len = 0;
		return NULL;
	}
	*len = m->f[f].via.str.size;
	return m->f[f].via.str.ptr;
}

const char *
proto_strcpy(const struct proto_msg *m, enum proto_field f, char *dst,
             size_t size)
{
	size_t len;
	const char *s = proto_str(m, f, &len);

	if (size == 0)
		return dst;
	if (s == NULL)
		len = 0;
	if (len >= size)
		len = size - 1;
	if (len > 0)
		memcpy(dst, s, len);
	dst[len] = '\0';
	return dst;
}

bool
proto_obj_streq(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);

	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	       memcmp(o->via.str.ptr, s, n) == 0;
}
