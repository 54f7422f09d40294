/*
 * proto.h -- the concd wire protocol, defined once.
 *
 * A frame is a 4-byte big-endian payload length followed by one msgpack
 * map with string keys.  Every map has "t" (the message type) and most
 * have "id" (a client-chosen request id, echoed in every reply to that
 * request).  Unknown keys are ignored.  Message types, field names,
 * error codes, job states, executors and limits are rows in the tables
 * of msg.c; the enums below index those tables.
 *
 * Bump PROTO_VERSION whenever a change here would confuse an older peer.
 * No I/O happens in proto/.
 */
#ifndef PROTO_H
#define PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <msgpack.h>

#define PROTO_VERSION 4

/* Limits: every input is bounded. */
#define PROTO_HEADER_LEN 4
#define PROTO_MAX_FRAME  (1024 * 1024) /* payload bytes */
#define PROTO_MAX_DEPTH  8             /* nesting of arrays and maps */
#define PROTO_MAX_ITEMS  65536         /* elements in one array or map */
#define PROTO_MAX_STR    (256 * 1024)  /* bytes in one string or bin */
#define PROTO_MAX_GATHER 10000         /* jobs in one gather request */
#define PROTO_MAX_PIDS   4194304       /* pids: Linux's PID_MAX_LIMIT */
#define PROTO_MAX_SLOTS  1000000       /* a group's parallel, in CPU slots */

/* A job's retry_delay, the longest wait between two attempts: an hour. */
#define PROTO_MAX_RETRY_DELAY 3600000 /* ms */

/* Message types.  Requests first, then replies and events. */
enum proto_type {
	/* requests: client -> daemon */
	PROTO_HELLO,
	PROTO_PING,
	PROTO_SUBMIT,
	PROTO_WATCH,
	PROTO_STATUS,
	PROTO_PS,
	PROTO_CANCEL,
	PROTO_RESULT,
	PROTO_TASKS,
	PROTO_SHUTDOWN,
	PROTO_POOL,
	PROTO_RESIZE,
	PROTO_GATHER,
	PROTO_LOG,
	PROTO_INPUT,
	PROTO_GROUP,
	PROTO_HOLD,
	PROTO_RELEASE,
	PROTO_WAIT,
	PROTO_RESTART,
	PROTO_CLEAN,
	PROTO_REMOTE,
	/* replies and events: daemon -> client */
	PROTO_WELCOME,
	PROTO_PONG,
	PROTO_ACCEPTED,
	PROTO_PROGRESS,
	PROTO_END,
	PROTO_JOB,
	PROTO_JOBS,
	PROTO_TASKLIST,
	PROTO_OK,
	PROTO_ERROR,
	PROTO_POOLINFO,
	PROTO_OUTPUT,
	PROTO_RETRY,
	PROTO_GROUPLIST,
	/* daemon <-> worker process (same framing) */
	PROTO_RUN,
	PROTO_STARTED,
	PROTO_REVOKE,
	PROTO_RETURNED,
	PROTO_TYPE_COUNT
};

/*
 * Top-level field names.  At most 128: a message's presence bitmask is two
 * words (struct proto_msg), and the fields a message type requires are
 * among the first 64.
 */
enum proto_field {
	PF_T,
	PF_ID,
	PF_VERSION,
	PF_SERVER,
	PF_PID,
	PF_TASK,
	PF_ARGS,
	PF_EXEC,
	PF_DAEMON,
	PF_WATCH,
	PF_FRESH,
	PF_TIMEOUT,
	PF_JOB,
	PF_STATE,
	PF_REQUESTED,
	PF_UID,
	PF_DONE,
	PF_TOTAL,
	PF_MSG,
	PF_RESULT,
	PF_ERROR,
	PF_MESSAGE,
	PF_WORKER,
	PF_TID,
	PF_SERVED,
	PF_SUBMITTED,
	PF_STARTED,
	PF_FINISHED,
	PF_ALL,
	PF_LIMIT,
	PF_JOBS,
	PF_COUNTS,
	PF_TASKS,
	PF_NAME,
	PF_SUMMARY,
	PF_USAGE,
	PF_TRAITS,
	PF_EXECUTORS,
	PF_DEFAULT,
	PF_CANCEL_PENDING,
	PF_WORKERS,
	PF_QUEUES,
	PF_THREADS,
	PF_PROCESSES,
	PF_UPTIME,
	PF_STREAM,
	PF_DATA,
	PF_INDEX,
	PF_ATTEMPT,
	PF_RETRIES,
	PF_RETRY_DELAY,
	PF_FAIL_FAST,
	PF_DROPPED,
	PF_RESULT_OMITTED,
	PF_OFFSET,
	PF_LENGTH,
	PF_TAIL,
	PF_FOLLOW,
	PF_SKIPPED,
	PF_SINCE,
	PF_UNTIL,
	/* fields a message requires must be among the first 64: these three */
	PF_OP,
	PF_GROUP,
	PF_GROUPS,
	/* the caller's context, exit status, stdin */
	PF_CWD,
	PF_ENV,
	PF_STDIN,
	PF_EOF,
	PF_EXIT,
	PF_SIGNAL,
	PF_COMMAND,
	/* groups, priorities, schedules, holds, labels */
	PF_PRIORITY,
	PF_CPUS,
	PF_LABEL,
	PF_AT,
	PF_HELD,
	PF_PARALLEL,
	PF_PAUSED,
	PF_AHEAD,
	/* dependencies, restart, clean */
	PF_AFTER,
	PF_AFTER_ANY,
	PF_CAUSE,
	PF_RESTART_OF,
	PF_BEFORE,
	PF_FORGOTTEN,
	/* resource limits */
	PF_MEM,
	PF_PIDS,
	PF_LIMITS,
	/* Slurm */
	PF_SLURM_JOB,
	PF_NODE,
	/* remote workers */
	PF_COUNT,
	PF_PARTITION,
	PF_TIME,
	PF_RUNTIME,
	PF_UMASK,
	PF_ALREADY,
	PF_FIELD_COUNT
};

enum proto_vtype {
	PV_UINT, /* non-negative integer */
	PV_INT,  /* any integer */
	PV_BOOL,
	PV_STR,
	PV_MAP,
	PV_ARRAY,
	PV_ANY
};

/* Error codes carried in "error" fields, as strings on the wire. */
enum proto_error {
	PE_NONE,
	PE_BAD_FRAME,
	PE_FRAME_TOO_LARGE,
	PE_VERSION,
	PE_UNKNOWN_MESSAGE,
	PE_BAD_FIELD,
	PE_UNKNOWN_TASK,
	PE_BAD_ARGS,
	PE_BAD_EXECUTOR,
	PE_NO_SUCH_JOB,
	PE_PERMISSION,
	PE_NOT_FINISHED,
	PE_SHUTTING_DOWN,
	PE_QUEUE_FULL,
	PE_TASK_FAILED,
	PE_CANCELLED,
	PE_TIMED_OUT,
	PE_WORKER_DIED,
	PE_INTERNAL,
	PE_INTERRUPTED,
	PE_STORE,
	PE_NO_SUCH_GROUP,
	PE_DEPENDENCY,
	PE_OOM,
	PE_NODE_FAILED,
	PE_PREEMPTED,
	PE_COUNT
};

/* Job states.  Everything from SUCCEEDED on is final. */
enum proto_state {
	PS_QUEUED,
	PS_RUNNING,
	PS_SUCCEEDED,
	PS_FAILED,
	PS_CANCELLED,
	PS_TIMED_OUT,
	PS_COUNT
};
#define PROTO_STATE_FINAL(s) ((s) >= PS_SUCCEEDED)

/* Executors a job may ask for. */
/*
 * Where a job runs.  slurm: an exec job as a Slurm job (srun); remote: a
 * warm worker process on a cluster node.  auto never picks either.
 */
enum proto_exec {
	PX_AUTO,
	PX_LOOP,
	PX_THREAD,
	PX_PROCESS,
	PX_SLURM,
	PX_REMOTE,
	PX_COUNT
};

struct proto_type_info {
	const char *name;
	bool request; /* sent by clients */
	uint64_t
	    required; /* PF_BIT of each field that must be present (< 64) */
	const char *doc;
};

struct proto_field_info {
	const char *name;
	enum proto_vtype type;
	uint32_t max; /* max string length or element count; 0: the limits */
};

struct proto_error_info {
	const char *name;
	const char *text;
};

extern const struct proto_type_info proto_types[PROTO_TYPE_COUNT];
extern const struct proto_field_info proto_fields[PF_FIELD_COUNT];
extern const struct proto_error_info proto_errors[PE_COUNT];
extern const char *const proto_states[PS_COUNT];
extern const char *const proto_execs[PX_COUNT];

/* The bit of field f < 64 (its own word for fields from 64 on). */
#define PF_BIT(f) (UINT64_C(1) << ((f)&63))
_Static_assert(PF_FIELD_COUNT <= 128, "two words of presence bits");

/* Name lookups: return -1 when the name is unknown. */
int proto_type_lookup(const char *name, size_t len);
int proto_field_lookup(const char *name, size_t len);
int proto_error_lookup(const char *name, size_t len);
int proto_state_lookup(const char *name, size_t len);
int proto_exec_lookup(const char *name, size_t len);

/* ---- framing (frame.c) ---- */

/*
 * Look for one complete frame at the start of buf.  Returns the number
 * of bytes the whole frame takes (> 0) and sets *payload and *plen; 0 when
 * more bytes are needed; -1 when the header announces more than
 * PROTO_MAX_FRAME.
 */
ssize_t proto_frame_next(const char *buf, size_t len, const char **payload,
                         size_t *plen);

/*
 * Walk one msgpack value without allocating: checks nesting depth,
 * element counts and string lengths against the limits and against the
 * bytes actually present, and rejects ext types.  Returns the number of
 * bytes the value takes, or with *cause set: PROTO_SCAN_BAD when the bytes
 * are not such a value, PROTO_SCAN_LIMIT when the value breaks one of the
 * limits (depth, elements, string length) where the walk stopped.
 */
#define PROTO_SCAN_BAD   (-1)
#define PROTO_SCAN_LIMIT (-2)
ssize_t proto_scan(const char *buf, size_t len, const char **cause);

/*
 * Whether buf is exactly one well-formed msgpack map, of any depth and
 * size the bytes allow (0) or not (-1); *id its "id" when that is a
 * non-negative integer, else 0.  For a frame proto_scan refused for a
 * limit: its request can be answered without reading it.
 */
int proto_skim_id(const char *buf, size_t len, uint64_t *id);

/* The n-byte big-endian number at p (n <= 8). */
static inline uint64_t
proto_get_be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

/* ---- text (utf8.c) ---- */

/*
 * The length of the well-formed UTF-8 sequence at p: 1 to 4, or 0 for an
 * overlong form, a surrogate, a code point above U+10FFFF, a stray
 * continuation byte or a sequence cut short by the end of the n bytes.
 */
size_t proto_utf8_seq(const unsigned char *p, size_t n);

/*
 * Whether s holds well-formed UTF-8: no overlong forms, no surrogates,
 * nothing above U+10FFFF, no sequence cut short.  Every str value the
 * decoder hands on has passed this.
 */
bool proto_utf8_valid(const char *s, size_t len);

/*
 * s as text that is safe to echo in a message: well-formed UTF-8 is kept,
 * a backslash or a double quote gets a backslash, and a control character
 * or a byte that is not UTF-8 becomes \xNN.  The result is cut between
 * characters to fit size, and NUL-terminated; returns dst.
 */
const char *proto_quote(char *dst, size_t size, const char *s, size_t len);

/*
 * A size as people write it (size.c): decimal digits, then K, M, G or T
 * (powers of 1024; either case, "B" or "iB" may follow) or nothing for
 * bytes.  0, or -1 for anything else or a size past 2^64 - 1.
 */
int proto_size_parse(const char *s, uint64_t *out);
/* v in the largest of those units that divides it exactly: "2G". */
const char *proto_size_format(char *dst, size_t size, uint64_t v);

/* ---- growable byte buffer ---- */

struct pbuf {
	char *data;
	size_t len;
	size_t cap;
};

/* Room for more bytes, doubling; aborts when memory is out. */
void pbuf_grow(struct pbuf *, size_t more);

static inline void
pbuf_reserve(struct pbuf *b, size_t more)
{
	if (b->cap - b->len < more)
		pbuf_grow(b, more);
}

/* n may be 0, p then NULL, on a buffer that has none yet. */
static inline void
pbuf_append(struct pbuf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	pbuf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void pbuf_consume(struct pbuf *, size_t);
void pbuf_free(struct pbuf *);
int pbuf_write_cb(void *data, const char *buf, size_t len); /* for packers */

/* ---- encoding (codec.c) ---- */

#define PROTO_ENC_DEPTH 4

/*
 * Builds one frame at the end of a pbuf.  Maps and arrays are written
 * with 16-bit counts that are filled in when they are closed, so callers
 * need not count ahead.  Every function is safe to call after an error;
 * proto_enc_end reports it and removes the partial frame.
 */
struct proto_enc {
	struct pbuf *buf;
	size_t start;
	msgpack_packer pk;
	int depth;
	struct {
		size_t at;
		uint32_t count;
		bool map;
	} level[PROTO_ENC_DEPTH];
	bool failed;
};

void proto_enc_begin(struct proto_enc *, struct pbuf *, enum proto_type,
                     uint64_t id);
void proto_enc_key(struct proto_enc *, enum proto_field);
void proto_enc_u64(struct proto_enc *, enum proto_field, uint64_t);
void proto_enc_i64(struct proto_enc *, enum proto_field, int64_t);
void proto_enc_bool(struct proto_enc *, enum proto_field, bool);
/*
 * A str field, whole: a string over the field's limit is never cut, and
 * its peer refuses it.  Not UTF-8, it goes out quoted (proto_quote).
 */
void proto_enc_str(struct proto_enc *, enum proto_field, const char *, size_t);
void proto_enc_cstr(struct proto_enc *, enum proto_field, const char *);
/*
 * Text for people (message, msg, summary, usage): over the field's limit,
 * it is cut between characters and ends in "...".
 */
void proto_enc_text(struct proto_enc *, enum proto_field, const char *, size_t);
void proto_enc_ctext(struct proto_enc *, enum proto_field, const char *);
/* A value that is already msgpack (e.g. a job's stored result). */
void proto_enc_raw(struct proto_enc *, enum proto_field, const void *, size_t);
/* Nested containers: after proto_enc_key, or as an array element. */
void proto_enc_map_open(struct proto_enc *);
void proto_enc_array_open(struct proto_enc *);
void proto_enc_close(struct proto_enc *);
/* Count one array element written directly with e->pk. */
void proto_enc_elem(struct proto_enc *);
/* Returns 0, or -1 if the frame exceeded PROTO_MAX_FRAME (then dropped). */
int proto_enc_end(struct proto_enc *);

/* Convenience: a complete error reply. */
void proto_enc_error(struct pbuf *, uint64_t id, enum proto_error,
                     const char *message);

/*
 * A frame that carries a job's result while it fits: fields(e, arg, true)
 * writes its fields with the result; should the frame exceed
 * PROTO_MAX_FRAME, it is made again with fields(e, arg, false), which
 * leaves the result out.  Returns 0 with the result, 1 without it, -1
 * if neither fitted (nothing written).
 */
int proto_enc_result_frame(struct pbuf *, enum proto_type, uint64_t id,
                           void (*fields)(struct proto_enc *, void *arg,
                                          bool result),
                           void *arg);

/*
 * The outcome an end carries in place of a result of len bytes that does
 * not fit in a frame: failed (internal), a message that gives the size,
 * and result_omitted.
 */
void proto_enc_result_too_large(struct proto_enc *, size_t len);

/* ---- decoding (codec.c) ---- */

struct proto_msg {
	enum proto_type type;
	uint64_t present;    /* PF_BIT(field) for each field < 64 seen */
	uint64_t present_hi; /* and for each field from 64 on */
	uint64_t id;
	msgpack_object f[PF_FIELD_COUNT];
};

struct proto_fault {
	enum proto_error code;
	char message[192];
};

enum proto_decode_result {
	PROTO_DECODE_OK = 0,
	PROTO_DECODE_REJECT = -1, /* well-formed, but not acceptable: reply */
	PROTO_DECODE_BAD = -2     /* malformed: reply, then close */
};

/*
 * Decode one frame payload.  Objects in msg point into payload and into
 * zone; both must outlive msg.  The zone is cleared first, so one zone
 * serves a whole connection.
 */
enum proto_decode_result proto_decode(const char *payload, size_t len,
                                      msgpack_zone *zone, struct proto_msg *,
                                      struct proto_fault *);

/* Decode the fields of a nested map (e.g. one row of "jobs"). */
int proto_decode_fields(const msgpack_object *map, struct proto_msg *,
                        struct proto_fault *);

static inline bool
proto_has(const struct proto_msg *m, enum proto_field f)
{
	return ((f < 64 ? m->present : m->present_hi) & PF_BIT(f)) != 0;
}

uint64_t proto_u64(const struct proto_msg *, enum proto_field, uint64_t def);
int64_t proto_i64(const struct proto_msg *, enum proto_field, int64_t def);
bool proto_bool(const struct proto_msg *, enum proto_field, bool def);
/* Returns the string (not NUL-terminated) and its length, or NULL. */
const char *proto_str(const struct proto_msg *, enum proto_field, size_t *len);
/* Copies a string field into dst (NUL-terminated, truncated); "" if absent. */
const char *proto_strcpy(const struct proto_msg *, enum proto_field, char *dst,
                         size_t size);

/* Compare a msgpack string object with a C string. */
bool proto_obj_streq(const msgpack_object *, const char *);

#endif
