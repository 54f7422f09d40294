/*
 * request.c -- what the daemon does with each request: one row per
 * message type in the table at the bottom, one function per row.  A
 * user's mistake becomes an error reply; only framing faults and a
 * version mismatch end the connection.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "cgroup.h"
#include "conn.h"
#include "deps.h"
#include "executor.h"
#include "input.h"
#include "job.h"
#include "joblog.h"
#include "log.h"
#include "logread.h"
#include "loop.h"
#include "loop_exec.h"
#include "pool_process.h"
#include "pool_remote.h"
#include "pool_thread.h"
#include "queue.h"
#include "request.h"
#include "store.h"
#include "task.h"
#include "task_int.h"

#define PS_DEFAULT_LIMIT 1000

/*
 * Who may do what (concd.conf's admin-group and exec-other-users).  The
 * daemon's own uid counts only in a user instance: there its user is
 * admin; in a root instance that uid is root's.  Every exec job of another
 * user runs as that user under a root concd, and a concd that is not root
 * runs none unless exec-other-users lets them run as its own user.
 */
static struct {
	uid_t self; /* the uid concd runs as */
	bool exec_other_users;
	long admin_gid; /* -1: no admin group */
} policy = {.admin_gid = -1};

void
request_set_policy(bool exec_other_users, long admin_gid)
{
	policy.self = geteuid();
	policy.exec_other_users = exec_other_users;
	policy.admin_gid = admin_gid;
}

/* Root, a member of admin-group, or the user a user instance runs as. */
static bool
request_admin(const struct conn *c)
{
	uid_t uid = conn_uid(c);

	if (uid == 0 || (policy.self != 0 && uid == policy.self))
		return true;
	return policy.admin_gid >= 0 &&
	       conn_in_group(c, (gid_t)policy.admin_gid);
}

/* May uid's user code run here: as uid, or as concd when allowed? */
static bool
request_user_code_ok(uid_t uid)
{
	return policy.self == 0 || uid == policy.self ||
	       policy.exec_other_users;
}

/*
 * A task that runs the user's code inside concd's workers (python): on a
 * root concd, another user's jobs of it run only on the process executor,
 * in worker processes started as that user (pool_process.c); a thread is
 * concd's own, and a remote worker runs as concd's user.
 */
static bool
request_not_as_owner(const struct task *t, uid_t uid, enum proto_exec x,
                     char *cause, size_t len)
{
	if (!(t->traits & TASK_NOT_AS_OWNER) || policy.self != 0 || uid == 0 ||
	    x == PX_PROCESS)
		return false;
	snprintf(cause, len,
	         "%s jobs of uid %u run only on the process executor, in "
	         "worker processes started as uid %u: this concd runs as "
	         "root, and its %s",
	         t->name, (unsigned)uid, (unsigned)uid,
	         x == PX_THREAD ? "worker threads have root's rights"
	                        : "remote workers run as root");
	return true;
}

static void reply_error(struct conn *c, uint64_t id, enum proto_error code,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
reply_error(struct conn *c, uint64_t id, enum proto_error code, const char *fmt,
            ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	proto_enc_error(conn_out(c), id, code, message);
	conn_dirty(c);
}

/*
 * The replies that wait for the store (struct conn_reply's kind);
 * REPLY_ENDED: a cancel of a job that had ended before it.
 */
enum {
	REPLY_SUBMIT,
	REPLY_GATHER,
	REPLY_CANCEL,
	REPLY_ENDED,
	REPLY_HOLD,
	REPLY_RELEASE
};

/*
 * A reply once the store holds what it tells of: a submit's or a
 * gather's jobs, or the state a cancel left a job in.
 */
static void
request_fill(struct pbuf *b, const struct conn_reply *r)
{
	struct proto_enc e;
	uint32_t i;

	if (r->kind == REPLY_CANCEL || r->kind == REPLY_ENDED ||
	    r->kind == REPLY_HOLD || r->kind == REPLY_RELEASE) {
		proto_enc_begin(&e, b, PROTO_OK, r->req);
		proto_enc_u64(&e, PF_JOB, r->first);
		proto_enc_cstr(&e, PF_STATE, proto_states[r->state]);
		if (r->kind == REPLY_ENDED)
			proto_enc_bool(&e, PF_ALREADY, true);
		if (r->kind == REPLY_HOLD || r->kind == REPLY_RELEASE)
			proto_enc_bool(&e, PF_HELD, r->kind == REPLY_HOLD);
		proto_enc_end(&e);
		return;
	}
	proto_enc_begin(&e, b, PROTO_ACCEPTED, r->req);
	if (r->kind == REPLY_GATHER) {
		proto_enc_key(&e, PF_JOBS);
		proto_enc_array_open(&e);
		for (i = 0; i < r->n; i++) {
			msgpack_pack_uint64(&e.pk, r->first + i);
			proto_enc_elem(&e);
		}
		proto_enc_close(&e);
	} else
		proto_enc_u64(&e, PF_JOB, r->first);
	proto_enc_end(&e);
}

struct stored {
	struct conn *c;
	const struct proto_msg *m;
	bool found;
};

static void
stored_fields(struct proto_enc *e, void *arg, bool result)
{
	const struct store_row *r = arg;

	job_encode_row(e, r, result);
	job_encode_env(e, r->x);
}

/*
 * A finished job that is no longer in memory, as the store has it: the
 * requests about one job answer as they would from memory.
 */
static void
stored_reply(const struct store_row *r, void *arg)
{
	struct stored *a = arg;
	struct conn *c = a->c;
	struct conn_reply ok = {.req = a->m->id,
	                        .first = r->id,
	                        .kind = REPLY_ENDED,
	                        .state = r->state};
	char cause[256];

	if (!(r->uid == conn_uid(a->c) || request_admin(a->c)))
		return;
	a->found = true;
	switch (a->m->type) {
	case PROTO_STATUS:
		if (proto_enc_result_frame(conn_out(c), PROTO_JOB, a->m->id,
		                           stored_fields, (void *)r) < 0)
			reply_error(c, a->m->id, PE_INTERNAL,
			            "job %llu: its record does not fit in a "
			            "frame",
			            (unsigned long long)r->id);
		break;
	case PROTO_CANCEL: /* it has ended: the ok a cancel gets */
		request_fill(conn_out(c), &ok);
		break;
	case PROTO_HOLD:
	case PROTO_RELEASE: /* it has ended: as queue_hold refuses it */
		queue_hold_refused(r->id, r->state, false,
		                   a->m->type == PROTO_HOLD, cause,
		                   sizeof(cause));
		proto_enc_error(conn_out(c), a->m->id, PE_BAD_FIELD, cause);
		break;
	default: /* result, watch: it has ended */
		job_encode_row_end(conn_out(c), r, a->m->id);
		break;
	}
	conn_dirty(c);
}

/* Seen in the store, and the peer's to see. */
static void
stored_seen(const struct store_row *r, void *arg)
{
	struct stored *a = arg;

	a->found = r->uid == conn_uid(a->c) || request_admin(a->c);
}

/*
 * A read of the store that must agree with the job table: true once
 * SQLite has every row the table held when the request came, or has
 * refused a commit meanwhile (then the read takes what SQLite has);
 * false: the request waits for the store's thread, and is dispatched
 * again once SQLite has them (conn_again), the loop serving everyone
 * else meanwhile, even while another program holds SQLite locked.
 */
static bool
request_store_ready(struct conn *c)
{
	uint64_t seq;

	if (conn_retried(c) || (seq = store_behind()) == 0)
		return true;
	conn_again(c, seq);
	return false;
}

/*
 * Find a job the peer may see; replies with the error when not.  One
 * that is only in the store gets its reply from there, and NULL; NULL
 * also while the request waits for the store (request_store_ready).
 */
static struct job *
request_job(struct conn *c, const struct proto_msg *m)
{
	uint64_t id = proto_u64(m, PF_JOB, 0);
	struct job *j = job_find(id);
	struct stored a = {.c = c, .m = m};

	if (j != NULL && (job_visible(j, conn_uid(c)) || request_admin(c)))
		return j;
	if (j == NULL && store_enabled()) {
		if (!request_store_ready(c))
			return NULL;
		if (store_get(id, stored_reply, &a) == 0 && a.found)
			return NULL;
	}
	/* Another user's job is as good as absent. */
	reply_error(c, m->id, PE_NO_SUCH_JOB, "no such job: %llu",
	            (unsigned long long)id);
	return NULL;
}

static void
request_hello(struct conn *c, const struct proto_msg *m)
{
	struct proto_enc e;
	uint64_t v = proto_u64(m, PF_VERSION, 0);

	if (v != PROTO_VERSION) {
		reply_error(
		    c, m->id, PE_VERSION,
		    "protocol version %llu is not supported (concd speaks %d)",
		    (unsigned long long)v, PROTO_VERSION);
		conn_hangup(c);
		return;
	}
	proto_enc_begin(&e, conn_out(c), PROTO_WELCOME, m->id);
	proto_enc_u64(&e, PF_VERSION, PROTO_VERSION);
	proto_enc_cstr(&e, PF_SERVER, "concd " CONCD_VERSION);
	proto_enc_u64(&e, PF_PID, (uint64_t)getpid());
	proto_enc_end(&e);
	conn_dirty(c);
}

static void
request_ping(struct conn *c, const struct proto_msg *m)
{
	struct proto_enc e;

	proto_enc_begin(&e, conn_out(c), PROTO_PONG, m->id);
	proto_enc_end(&e);
	conn_dirty(c);
}

#define MAX_RETRIES 100
/* a year, as concctl's; libevent's timeval would overflow far beyond */
#define MAX_TIMEOUT 31536000000ULL /* ms */

#define MAX_PRIORITY 1000000
#define MAX_CPUS     4096

/* The fields of a job request that go in its extra (struct job_extra). */
static const enum proto_field extra_fields[] = {
    PF_CWD, PF_ENV,  PF_STDIN, PF_GROUP,     PF_LABEL, PF_PRIORITY, PF_CPUS,
    PF_AT,  PF_HELD, PF_AFTER, PF_AFTER_ANY, PF_MEM,   PF_PIDS,     PF_UMASK,
};

static char *
extra_str(const msgpack_object *o)
{
	char *p = malloc(o->via.str.size + 1);

	if (p != NULL) {
		memcpy(p, o->via.str.ptr, o->via.str.size);
		p[o->via.str.size] = '\0';
	}
	return p;
}

static bool
extra_has_nul(const msgpack_object *o)
{
	return memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL;
}

/* A group's name: letters, digits, '.', '_' and '-', not first. */
static bool
request_group_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 64 || s[0] == '-' || s[0] == '.')
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
		      s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

/* env: a map of names (no '=', no NUL) to values (no NUL). */
static int
extra_env(const msgpack_object *o, struct job_extra *x, char *cause, size_t len)
{
	struct pbuf b = {0};
	msgpack_packer pk;
	uint32_t i;

	for (i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key;
		const msgpack_object *v = &o->via.map.ptr[i].val;

		if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 ||
		    memchr(k->via.str.ptr, '=', k->via.str.size) != NULL ||
		    extra_has_nul(k)) {
			snprintf(cause, len,
			         "env: a name is a non-empty string without "
			         "'=' or NUL");
			return -1;
		}
		if (v->type != MSGPACK_OBJECT_STR || extra_has_nul(v)) {
			snprintf(cause, len,
			         "env: a value is a string without NUL");
			return -1;
		}
	}
	msgpack_packer_init(&pk, &b, pbuf_write_cb);
	msgpack_pack_object(&pk, *o);
	x->env = b.data; /* the pbuf's memory, owned by x now */
	x->env_len = (uint32_t)b.len;
	return 0;
}

/* after: job ids, or in a gather "@N", a line of the same gather. */
static int
extra_after(const msgpack_object *o, struct job_extra *x, bool in_gather,
            char *cause, size_t len)
{
	uint32_t i, n = o->via.array.size;

	if (n == 0)
		return 0;
	if ((x->after = calloc(n, sizeof(*x->after))) == NULL) {
		snprintf(cause, len, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		const msgpack_object *a = &o->via.array.ptr[i];
		char num[16];
		char *end;
		unsigned long line;

		if (a->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    a->via.u64 > 0 && !JOB_AFTER_IS_LINE(a->via.u64)) {
			x->after[x->nafter++] = a->via.u64;
			continue;
		}
		if (in_gather && a->type == MSGPACK_OBJECT_STR &&
		    a->via.str.size >= 2 && a->via.str.size < sizeof(num) &&
		    a->via.str.ptr[0] == '@') {
			memcpy(num, a->via.str.ptr + 1, a->via.str.size - 1);
			num[a->via.str.size - 1] = '\0';
			line = strtoul(num, &end, 10);
			if (*end == '\0' && num[0] >= '0' && num[0] <= '9') {
				x->after[x->nafter++] = JOB_AFTER_LINE | line;
				continue;
			}
		}
		snprintf(cause, len,
		         in_gather
		             ? "after: each element is a job id or \"@N\", "
		               "line N of this gather"
		             : "after: each element is a job id");
		return -1;
	}
	return 0;
}

/*
 * The fields of a job request beyond its task, checked, in *xp (NULL when
 * it has none of them).  -1 with the cause (bad_field).
 */
static int
parse_extra(const struct proto_msg *m, bool in_gather, struct job_extra **xp,
            char *cause, size_t len)
{
	struct job_extra *x;
	const msgpack_object *o;
	size_t i;

	*xp = NULL;
	for (i = 0; i < sizeof(extra_fields) / sizeof(extra_fields[0]); i++)
		if (proto_has(m, extra_fields[i]))
			break;
	if (i == sizeof(extra_fields) / sizeof(extra_fields[0]))
		return 0;
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		snprintf(cause, len, "out of memory");
		return -1;
	}
	*xp = x;
	x->exit = x->signal = -1;
	if (proto_has(m, PF_CWD)) {
		o = &m->f[PF_CWD];
		if (o->via.str.size == 0 || o->via.str.ptr[0] != '/' ||
		    extra_has_nul(o)) {
			snprintf(cause, len,
			         "cwd must be an absolute path without NUL");
			return -1;
		}
		if ((x->cwd = extra_str(o)) == NULL)
			goto oom;
	}
	if (proto_has(m, PF_ENV) && extra_env(&m->f[PF_ENV], x, cause, len) < 0)
		return -1;
	if (proto_has(m, PF_UMASK)) {
		if (proto_u64(m, PF_UMASK, 0) > 0777) {
			snprintf(cause, len,
			         "umask must be at most 0777 (511)");
			return -1;
		}
		x->umask = (uint16_t)(proto_u64(m, PF_UMASK, 0) + 1);
	}
	if (proto_has(m, PF_STDIN)) {
		if (proto_obj_streq(&m->f[PF_STDIN], "stream"))
			x->stdin_mode = JOB_STDIN_STREAM;
		else if (!proto_obj_streq(&m->f[PF_STDIN], "null")) {
			snprintf(cause, len,
			         "stdin must be \"null\" or \"stream\"");
			return -1;
		}
	}
	if (proto_has(m, PF_GROUP)) {
		o = &m->f[PF_GROUP];
		if (!request_group_name_ok(o->via.str.ptr, o->via.str.size)) {
			snprintf(cause, len,
			         "group: 1 to 64 letters, digits, '.', '_' or "
			         "'-', not starting with '-' or '.'");
			return -1;
		}
		if ((x->group = extra_str(o)) == NULL)
			goto oom;
	}
	if (proto_has(m, PF_LABEL)) {
		o = &m->f[PF_LABEL];
		for (i = 0; i < o->via.str.size; i++)
			if ((unsigned char)o->via.str.ptr[i] < 0x20 ||
			    o->via.str.ptr[i] == 0x7f) {
				snprintf(cause, len,
				         "label: no control characters");
				return -1;
			}
		if ((x->label = extra_str(o)) == NULL)
			goto oom;
	}
	if (proto_has(m, PF_PRIORITY)) {
		int64_t p = proto_i64(m, PF_PRIORITY, 0);

		if (p < -MAX_PRIORITY || p > MAX_PRIORITY) {
			snprintf(cause, len, "priority must be from -%d to %d",
			         MAX_PRIORITY, MAX_PRIORITY);
			return -1;
		}
		x->priority = p;
	}
	if (proto_u64(m, PF_CPUS, 0) > MAX_CPUS) {
		snprintf(cause, len, "cpus must be at most %d", MAX_CPUS);
		return -1;
	}
	x->cpus = (uint32_t)proto_u64(m, PF_CPUS, 0);
	x->at = proto_u64(m, PF_AT, 0);
	x->held = proto_bool(m, PF_HELD, false);
	if (proto_has(m, PF_AFTER) &&
	    extra_after(&m->f[PF_AFTER], x, in_gather, cause, len) < 0)
		return -1;
	x->after_any = proto_bool(m, PF_AFTER_ANY, false);
	x->mem = proto_u64(m, PF_MEM, 0);
	if (proto_u64(m, PF_PIDS, 0) > PROTO_MAX_PIDS) {
		snprintf(cause, len, "pids must be at most %d, not %llu",
		         PROTO_MAX_PIDS,
		         (unsigned long long)proto_u64(m, PF_PIDS, 0));
		return -1;
	}
	x->pids = proto_u64(m, PF_PIDS, 0);
	return 0;
oom:
	snprintf(cause, len, "out of memory");
	return -1;
}

/* A word as a POSIX shell reads it back: bare when that is safe. */
static void
request_quote(struct pbuf *b, const char *w, size_t n)
{
	static const char safe[] = "abcdefghijklmnopqrstuvwxyz"
	                           "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                           "0123456789_@%+=:,./-";
	static const char hex[] = "0123456789abcdef";
	bool bare = n > 0, control = false;
	size_t i;

	for (i = 0; i < n; i++) {
		if (memchr(safe, w[i], sizeof(safe) - 1) == NULL)
			bare = false;
		if ((unsigned char)w[i] < 0x20 || w[i] == 0x7f)
			control = true;
	}
	if (bare) {
		pbuf_append(b, w, n);
		return;
	}
	/* a control character would break a line: $'...' names it */
	pbuf_append(b, control ? "$'" : "'", control ? 2 : 1);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)w[i];

		if (control && (ch < 0x20 || ch == 0x7f)) {
			char esc[4] = {'\\', 'x', hex[ch >> 4], hex[ch & 15]};

			pbuf_append(b, esc, 4);
		} else if (control && (ch == '\'' || ch == '\\')) {
			pbuf_append(b, "\\", 1);
			pbuf_append(b, w + i, 1);
		} else if (ch == '\'') {
			pbuf_append(b, "'\\''", 4);
		} else {
			pbuf_append(b, w + i, 1);
		}
	}
	pbuf_append(b, "'", 1);
}

/*
 * The command line of a job that runs a command (argv in its arguments),
 * shell-quoted, for status and ps: in *xp (made if need be).  At most
 * the field's 4096 bytes, cut between characters with "..." at the end.
 * -1 when out of memory.
 */
static int
request_command(const struct proto_msg *m, struct job_extra **xp)
{
	const msgpack_object *args = &m->f[PF_ARGS], *argv = NULL;
	size_t max = proto_fields[PF_COMMAND].max;
	struct pbuf b = {0};
	uint32_t i;

	if (!proto_has(m, PF_ARGS))
		return 0;
	for (i = 0; i < args->via.map.size; i++)
		if (proto_obj_streq(&args->via.map.ptr[i].key, "argv"))
			argv = &args->via.map.ptr[i].val;
	if (argv == NULL || argv->type != MSGPACK_OBJECT_ARRAY)
		return 0;
	for (i = 0; i < argv->via.array.size; i++) {
		const msgpack_object *w = &argv->via.array.ptr[i];

		if (w->type != MSGPACK_OBJECT_STR)
			continue;
		if (i > 0)
			pbuf_append(&b, " ", 1);
		request_quote(&b, w->via.str.ptr, w->via.str.size);
		if (b.len > max)
			break;
	}
	if (b.len > max) {
		b.len = max - 3;
		while (b.len > 0 &&
		       ((unsigned char)b.data[b.len] & 0xc0) == 0x80)
			b.len--; /* not inside a character */
		pbuf_append(&b, "...", 3);
	}
	pbuf_append(&b, "", 1);
	if (*xp == NULL && (*xp = calloc(1, sizeof(**xp))) != NULL)
		(*xp)->exit = (*xp)->signal = -1;
	if (*xp == NULL) {
		pbuf_free(&b);
		return -1;
	}
	(*xp)->command = b.data;
	return 0;
}

/*
 * Check one job request (a submit, or one entry of a gather) and fill
 * js; its packed arguments are appended to args (js->args is set by the
 * caller once args stops moving).  -1 with code and cause.
 */
static int
parse_job(const struct proto_msg *m, uid_t uid, bool in_gather,
          struct job_submit *js, struct pbuf *args, enum proto_error *code,
          char *cause, size_t len)
{
	struct job_extra *extra;
	const char *name, *xname;
	char quoted[129]; /* what is echoed of a name */
	size_t nlen, xlen;
	int x = PX_AUTO;

	memset(js, 0, sizeof(*js));
	name = proto_str(m, PF_TASK, &nlen);
	if (name == NULL) {
		*code = PE_BAD_FIELD;
		snprintf(cause, len, "missing field \"task\"");
		return -1;
	}
	if ((js->task = task_find(name, nlen)) == NULL) {
		*code = PE_UNKNOWN_TASK;
		snprintf(cause, len, "no such task \"%s\" (see concctl tasks)",
		         proto_quote(quoted, sizeof(quoted), name, nlen));
		return -1;
	}
	if ((xname = proto_str(m, PF_EXEC, &xlen)) != NULL &&
	    (x = proto_exec_lookup(xname, xlen)) < 0) {
		*code = PE_BAD_EXECUTOR;
		snprintf(
		    cause, len,
		    "unknown executor \"%s\" (auto, loop, thread, process)",
		    proto_quote(quoted, sizeof(quoted), xname, xlen));
		return -1;
	}
	if ((js->task->traits & TASK_USER_CODE) && !request_user_code_ok(uid)) {
		*code = PE_PERMISSION;
		snprintf(
		    cause, len,
		    "%s jobs of uid %u are refused: this concd runs as uid "
		    "%u, not as root, and would run them as that user "
		    "(exec-other-users in concd.conf(5))",
		    js->task->name, (unsigned)uid, (unsigned)policy.self);
		return -1;
	}
	js->requested = (enum proto_exec)x;
	js->fresh = proto_bool(m, PF_FRESH, false);
	*code = PE_BAD_EXECUTOR;
	if (sched_choose(js->task, js->requested, js->fresh, &js->exec, cause,
	                 len) < 0)
		return -1;
	if (request_not_as_owner(js->task, uid, js->exec, cause, len)) {
		*code = PE_PERMISSION;
		return -1;
	}
	*code = PE_BAD_ARGS;
	if (task_validate(js->task,
	                  proto_has(m, PF_ARGS) ? &m->f[PF_ARGS] : NULL, cause,
	                  len) < 0)
		return -1;
	if (proto_has(m, PF_ARGS) && m->f[PF_ARGS].via.map.size > 0) {
		msgpack_packer pk;
		size_t before = args->len;

		msgpack_packer_init(&pk, args, pbuf_write_cb);
		msgpack_pack_object(&pk, m->f[PF_ARGS]);
		js->args_len = args->len - before;
	}
	*code = PE_BAD_FIELD;
	if (proto_u64(m, PF_RETRIES, 0) > MAX_RETRIES) {
		snprintf(cause, len, "retries must be at most %d", MAX_RETRIES);
		return -1;
	}
	if (proto_u64(m, PF_TIMEOUT, 0) > MAX_TIMEOUT) {
		snprintf(cause, len, "timeout must be at most %llu ms (a year)",
		         MAX_TIMEOUT);
		return -1;
	}
	if (proto_u64(m, PF_RETRY_DELAY, 0) > PROTO_MAX_RETRY_DELAY) {
		snprintf(cause, len, "retry_delay must be at most %d ms",
		         PROTO_MAX_RETRY_DELAY);
		return -1;
	}
	js->retries = (uint8_t)proto_u64(m, PF_RETRIES, 0);
	js->retry_delay_ms = (uint32_t)proto_u64(m, PF_RETRY_DELAY, 0);
	js->daemon = proto_bool(m, PF_DAEMON, false);
	js->uid = uid;
	js->timeout_ms = proto_u64(m, PF_TIMEOUT, 0);
	if (parse_extra(m, in_gather, &extra, cause, len) < 0) {
		job_extra_free(extra);
		return -1;
	}
	if (in_gather && extra != NULL &&
	    extra->stdin_mode == JOB_STDIN_STREAM) {
		snprintf(cause, len,
		         "stdin \"stream\" is for a submit: a gather's jobs "
		         "read /dev/null");
		job_extra_free(extra);
		return -1;
	}
	if (js->exec == PX_REMOTE && extra != NULL &&
	    extra->stdin_mode == JOB_STDIN_STREAM) {
		*code = PE_BAD_EXECUTOR;
		snprintf(cause, len,
		         "a remote worker cannot read a streamed standard "
		         "input (no descriptor crosses srun): give exec's "
		         "stdin= argument instead");
		job_extra_free(extra);
		return -1;
	}
	if (request_command(m, &extra) < 0) {
		snprintf(cause, len, "out of memory");
		job_extra_free(extra);
		return -1;
	}
	if (extra != NULL && extra->group != NULL &&
	    queue_check_group(extra->group, strlen(extra->group), cause, len) <
	        0) {
		*code = PE_NO_SUCH_GROUP;
		job_extra_free(extra);
		return -1;
	}
	js->extra = extra; /* the caller's to free: job_new copies it */
	return 0;
}

static void
queue_full(struct conn *c, uint64_t id, enum proto_exec x)
{
	reply_error(
	    c, id, PE_QUEUE_FULL,
	    "the %s executor's queue is full (queue-limit); try again later",
	    proto_execs[x]);
}

/*
 * user-job-limit: n more unfinished jobs of the connection's user would
 * be too many.  Refused as a full queue is, so that --wait-for-slot
 * waits for room here too.
 */
static bool
user_full(struct conn *c, uint64_t id, size_t n)
{
	size_t has;

	if (job_user_room(conn_uid(c), n, &has))
		return false;
	reply_error(c, id, PE_QUEUE_FULL,
	            "uid %u has %zu unfinished jobs, as many as each user may "
	            "(user-job-limit); try again later",
	            (unsigned)conn_uid(c), has);
	return true;
}

/* While the store cannot be written, no job is accepted. */
static bool
store_refuses(struct conn *c, uint64_t id)
{
	const char *why = store_failing();

	if (why != NULL)
		reply_error(c, id, PE_STORE, "job not accepted: %s", why);
	return why != NULL;
}

/*
 * A failed batch is written again with the next one: its replies wait
 * for that one.
 */
static void
request_committed(uint64_t seq, bool ok)
{
	if (ok)
		conn_release(seq, request_fill);
}

/*
 * New jobs go to their executors at once.  The client hears `accepted`
 * once they are in the store: the reply waits in the connection for
 * their batch, and their events queue behind it.  (Out of memory for the
 * waiting reply, it goes out before the commit.)
 */
/*
 * A reply that tells of a change waits in the connection until the change
 * is committed (at once without a store, or out of memory to wait).
 */
static void
request_reply_committed(struct conn *c, const struct conn_reply *r)
{
	if (!store_enabled() || conn_defer(c, store_seq(), r) < 0)
		request_fill(conn_out(c), r);
	else
		store_want();
	conn_dirty(c);
}

static void
request_admit(struct conn *c, const struct conn_reply *r)
{
	request_reply_committed(c, r);
	job_admit(r->first, r->n);
}

void
request_init(void)
{
	if (store_hook_committed(request_committed) < 0)
		fatalx("request_init: no room for a store hook");
	store_hook_written(conn_again_release);
}

/*
 * A submit's standard input: with stdin "stream", a pipe fed by this
 * connection's input messages (input.c).  -1 after an error reply.
 */
static int
request_stdin(struct conn *c, const struct proto_msg *m,
              const struct job_submit *js, struct input **in)
{
	*in = NULL;
	if (js->extra == NULL || js->extra->stdin_mode != JOB_STDIN_STREAM)
		return 0;
	if ((*in = input_new(c)) == NULL) {
		reply_error(c, m->id, PE_INTERNAL,
		            "no pipe for the job's standard input: %s",
		            strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Is job id one the peer may name, in memory or only in the store: 1 or
 * 0; -1 while the request waits for the store (a row retention just let
 * go of must be in SQLite first).
 */
static int
request_job_known(struct conn *c, uint64_t id)
{
	struct stored a = {.c = c, .m = NULL};
	struct job *j = job_find(id);

	if (j != NULL)
		return job_visible(j, conn_uid(c)) || request_admin(c);
	if (!store_enabled())
		return 0;
	if (!request_store_ready(c))
		return -1;
	return store_get(id, stored_seen, &a) == 0 && a.found;
}

/*
 * The jobs a job runs after (--after): each must be a job the peer may
 * see, and in a gather of n jobs a line @N one of them.  Another user's
 * job is as good as absent.  -1 with the cause (bad_field); 1 while the
 * request waits for the store (request_job_known).
 */
static int
request_after_check(struct conn *c, const struct job_extra *x, size_t n,
                    char *cause, size_t len)
{
	uint32_t i;
	int known;

	for (i = 0; x != NULL && i < x->nafter; i++) {
		uint64_t a = x->after[i];

		if (JOB_AFTER_IS_LINE(a) && (a & ~JOB_AFTER_LINE) >= n) {
			snprintf(cause, len,
			         "after: @%llu: this gather has no such line "
			         "(@0 to @%zu)",
			         (unsigned long long)(a & ~JOB_AFTER_LINE),
			         n - 1);
			return -1;
		}
		if (JOB_AFTER_IS_LINE(a))
			continue;
		if ((known = request_job_known(c, a)) < 0)
			return 1;
		if (known == 0) {
			snprintf(cause, len,
			         "after: no such job: %llu (it never was, it "
			         "was cleaned, or it is another user's)",
			         (unsigned long long)a);
			return -1;
		}
	}
	return 0;
}

/*
 * The lines of a gather that name each other (@N) must not wait in a
 * cycle.  -1 with the cause, which names the lines of one.
 */
static int
request_after_order(const struct job_submit *js, size_t n, char *cause,
                    size_t len)
{
	uint32_t *first = calloc(n + 1, sizeof(*first)), *refs = NULL;
	size_t i, k, nrefs = 0;
	int rc = -1;

	if (first == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		const struct job_extra *x = js[i].extra;

		for (k = 0; x != NULL && k < x->nafter; k++)
			nrefs += JOB_AFTER_IS_LINE(x->after[k]);
		first[i + 1] = (uint32_t)nrefs;
	}
	if (nrefs == 0) {
		free(first);
		return 0;
	}
	if ((refs = calloc(nrefs, sizeof(*refs))) == NULL)
		goto nomem;
	for (i = 0, nrefs = 0; i < n; i++) {
		const struct job_extra *x = js[i].extra;

		for (k = 0; x != NULL && k < x->nafter; k++)
			if (JOB_AFTER_IS_LINE(x->after[k]))
				refs[nrefs++] =
				    (uint32_t)(x->after[k] & ~JOB_AFTER_LINE);
	}
	rc = deps_order_check(n, first, refs, cause, len);
	free(first);
	free(refs);
	return rc;
nomem:
	free(first);
	snprintf(cause, len, "out of memory");
	return -1;
}

/* A gather's job, its @N made the id of line N: its jobs' ids follow on. */
static void
request_after_resolve(struct job *j, uint64_t first)
{
	uint32_t i;

	for (i = 0; j->extra != NULL && i < j->extra->nafter; i++)
		if (JOB_AFTER_IS_LINE(j->extra->after[i]))
			j->extra->after[i] =
			    first + (j->extra->after[i] & ~JOB_AFTER_LINE);
}

static void
request_submit(struct conn *c, const struct proto_msg *m)
{
	static struct pbuf args;
	struct conn_reply r = {.n = 1};
	struct input *in;
	struct job_submit js;
	struct job *j;
	enum proto_error code;
	char cause[256];
	int rc;

	if (loop_stopping()) {
		reply_error(c, m->id, PE_SHUTTING_DOWN,
		            "concd is shutting down");
		return;
	}
	args.len = 0;
	if (parse_job(m, conn_uid(c), false, &js, &args, &code, cause,
	              sizeof(cause)) < 0) {
		reply_error(c, m->id, code, "%s", cause);
		return;
	}
	if ((rc = request_after_check(c, js.extra, 1, cause, sizeof(cause))) !=
	    0) {
		if (rc < 0)
			reply_error(c, m->id, PE_BAD_FIELD, "%s", cause);
		goto out;
	}
	if (!sched_has_room(js.exec, 1)) {
		queue_full(c, m->id, js.exec);
		goto out;
	}
	if (user_full(c, m->id, 1))
		goto out;
	if (store_refuses(c, m->id))
		goto out;
	if (request_stdin(c, m, &js, &in) < 0)
		goto out;
	js.args = args.data;
	if ((j = job_new(&js)) == NULL) {
		input_free(in);
		reply_error(c, m->id, PE_INTERNAL, "out of memory");
		goto out;
	}
	if (in != NULL && input_attach(in, j) < 0)
		input_free(in); /* out of memory: it reads /dev/null */
	r.req = m->id;
	r.first = j->id;
	if (proto_bool(m, PF_WATCH, false))
		job_watch(j, c, m->id, -1, true);
	request_admit(c, &r);
out:
	job_extra_free((struct job_extra *)js.extra);
}

/*
 * Many jobs in one request: all are checked before any is submitted;
 * their events come back under the gather's id, tagged with their index.
 */
static void
request_gather(struct conn *c, const struct proto_msg *m)
{
	const msgpack_object *list = &m->f[PF_JOBS];
	struct proto_msg *em = NULL;
	struct job_submit *js = NULL;
	size_t *off = NULL, per_exec[PX_COUNT] = {0};
	struct pbuf args = {0};
	struct proto_enc e;
	struct proto_fault f;
	struct gather *g = NULL;
	struct conn_reply r = {0};
	enum proto_error code;
	char cause[256];
	uint32_t n = list->via.array.size, i;
	int x, rc;

	if (loop_stopping()) {
		reply_error(c, m->id, PE_SHUTTING_DOWN,
		            "concd is shutting down");
		return;
	}
	if (n == 0 || n > PROTO_MAX_GATHER) {
		reply_error(c, m->id, PE_BAD_FIELD,
		            "a gather holds 1 to %d jobs", PROTO_MAX_GATHER);
		return;
	}
	em = malloc(sizeof(*em));
	js = calloc(n, sizeof(*js));
	off = calloc(n, sizeof(*off));
	g = job_gather_new(n, proto_bool(m, PF_FAIL_FAST, false));
	if (em == NULL || js == NULL || off == NULL || g == NULL) {
		reply_error(c, m->id, PE_INTERNAL, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		off[i] = args.len;
		if (proto_decode_fields(&list->via.array.ptr[i], em, &f) < 0) {
			code = f.code == PE_BAD_FRAME ? PE_BAD_FIELD : f.code;
			snprintf(cause, sizeof(cause), "%s", f.message);
		} else if (parse_job(em, conn_uid(c), true, &js[i], &args,
		                     &code, cause, sizeof(cause)) == 0) {
			code = PE_BAD_FIELD;
			if ((rc = request_after_check(c, js[i].extra, n, cause,
			                              sizeof(cause))) == 0) {
				per_exec[js[i].exec]++;
				continue;
			}
			if (rc > 0) /* dispatched again once the store has it */
				goto out;
		}
		/* the whole gather is refused, saying which entry */
		proto_enc_begin(&e, conn_out(c), PROTO_ERROR, m->id);
		proto_enc_cstr(&e, PF_ERROR, proto_errors[code].name);
		proto_enc_ctext(&e, PF_MESSAGE, cause);
		proto_enc_u64(&e, PF_INDEX, i);
		proto_enc_end(&e);
		conn_dirty(c);
		goto out;
	}
	if (request_after_order(js, n, cause, sizeof(cause)) < 0) {
		reply_error(c, m->id, PE_BAD_FIELD, "%s", cause);
		goto out;
	}
	for (x = 0; x < PX_COUNT; x++) {
		if (per_exec[x] > 0 && !sched_has_room(x, per_exec[x])) {
			queue_full(c, m->id, x);
			goto out;
		}
	}
	if (user_full(c, m->id, n))
		goto out;
	if (store_refuses(c, m->id))
		goto out;
	if (job_gather_watch(g, c, m->id) < 0) {
		reply_error(c, m->id, PE_INTERNAL, "out of memory");
		goto out;
	}
	r.req = m->id;
	r.kind = REPLY_GATHER;
	for (i = 0; i < n; i++) {
		struct job *j;

		js[i].args = args.data + off[i];
		if ((j = job_new(&js[i])) == NULL)
			break; /* out of memory: the ones made still run */
		job_gather_add(g, j); /* held until job_gather_submit */
		if (i == 0)
			r.first = j->id;
		request_after_resolve(j, r.first);
		r.n++;
	}
	if (r.n > 0)
		request_admit(c, &r);
	else
		request_fill(conn_out(c), &r);
	g = NULL;
out:
	for (i = 0; js != NULL && i < n; i++)
		job_extra_free((struct job_extra *)js[i].extra);
	free(g);
	free(em);
	free(js);
	free(off);
	pbuf_free(&args);
}

/* A job only the store has: whose it is, its state, its end. */
struct stored_log {
	uint64_t req;
	bool found;
	uid_t uid;
	int state;
	struct pbuf end;
};

static void
stored_log_row(const struct store_row *r, void *arg)
{
	struct stored_log *s = arg;

	s->found = true;
	s->uid = r->uid;
	s->state = r->state;
	job_encode_row_end(&s->end, r, s->req);
}

/*
 * Who owns job id, which is not in the table: the store says, or else
 * the log itself.  False if neither knows it.
 */
static bool
stored_log_find(uint64_t id, struct stored_log *s)
{
	uid_t owner;

	if (store_enabled() && store_get(id, stored_log_row, s) == 0 &&
	    s->found)
		return true;
	if (!joblog_owner(id, &owner))
		return false;
	s->found = true;
	s->uid = owner;
	return true;
}

/*
 * A watch replays the job's kept output, then follows it: its output
 * comes from the log, at the pace the peer reads, and its end after it.
 * A job no longer in the table is replayed with the store's end.
 */
static void
request_watch(struct conn *c, const struct proto_msg *m)
{
	struct logread_opts o = {.streams = JOBLOG_BOTH,
	                         .length = UINT64_MAX,
	                         .tail = UINT64_MAX,
	                         .watch = true,
	                         .state = -1};
	uint64_t id = proto_u64(m, PF_JOB, 0);
	struct stored_log s = {.req = m->id, .state = -1};
	struct job *j = job_find(id);
	int rc = 0;

	if (j != NULL) {
		if ((j = request_job(c, m)) != NULL)
			rc = logread_start(c, m->id, id, &o);
	} else if (stored_log_find(id, &s) && s.end.len > 0 &&
	           (s.uid == conn_uid(c) || request_admin(c))) {
		o.end = &s.end;
		rc = logread_start(c, m->id, id, &o);
	} else
		reply_error(c, m->id, PE_NO_SUCH_JOB, "no such job: %llu",
		            (unsigned long long)id);
	if (rc < 0)
		reply_error(c, m->id, PE_INTERNAL, "out of memory");
	pbuf_free(&s.end);
}

/*
 * A job's kept output: of a job in the table, or of one whose log alone
 * is left; either way only for its owner or an admin.
 */
static void
request_log(struct conn *c, const struct proto_msg *m)
{
	struct logread_opts o = {.streams = JOBLOG_BOTH,
	                         .offset = proto_u64(m, PF_OFFSET, 0),
	                         .length = proto_u64(m, PF_LENGTH, UINT64_MAX),
	                         .tail = proto_u64(m, PF_TAIL, UINT64_MAX),
	                         .follow = proto_bool(m, PF_FOLLOW, false)};
	uint64_t id = proto_u64(m, PF_JOB, 0);
	struct stored_log st = {.req = m->id, .state = -1};
	struct job *j = job_find(id);
	const char *s;
	size_t len;
	bool known = j != NULL, mine;

	if (j != NULL)
		mine = job_visible(j, conn_uid(c));
	else if ((known = stored_log_find(id, &st)))
		mine = st.uid == conn_uid(c);
	o.state = st.state;
	o.end = st.end.len > 0 ? &st.end : NULL;
	if (!known || !(mine || request_admin(c))) {
		/* another user's job is as good as absent */
		reply_error(c, m->id, PE_NO_SUCH_JOB, "no such job: %llu",
		            (unsigned long long)id);
		pbuf_free(&st.end);
		return;
	}
	if ((s = proto_str(m, PF_STREAM, &len)) != NULL) {
		if (len == 6 && memcmp(s, "stdout", 6) == 0)
			o.streams = 1u << (JOBLOG_STDOUT - 1);
		else if (len == 6 && memcmp(s, "stderr", 6) == 0)
			o.streams = 1u << (JOBLOG_STDERR - 1);
		else {
			reply_error(c, m->id, PE_BAD_FIELD,
			            "stream must be stdout or stderr");
			pbuf_free(&st.end);
			return;
		}
	}
	if (logread_start(c, m->id, id, &o) < 0)
		reply_error(c, m->id, PE_INTERNAL, "out of memory");
	pbuf_free(&st.end);
}

/* What queue.c knows of a job in memory: its place in its group's line. */
static void
request_queue_fields(struct proto_enc *e, bool waiting, uint64_t ahead)
{
	if (waiting)
		proto_enc_u64(e, PF_AHEAD, ahead);
}

static void
status_fields(struct proto_enc *e, void *arg, bool result)
{
	const struct job *j = arg;
	uint64_t ahead = 0;
	bool waiting = queue_ahead(j, &ahead);

	job_encode_record(e, j, result);
	request_queue_fields(e, waiting, ahead);
	job_encode_env(e, j->extra); /* status alone: ps rows stay small */
}

/* A record too large with its result goes without it. */
static void
request_status(struct conn *c, const struct proto_msg *m)
{
	struct job *j = request_job(c, m);

	if (j == NULL)
		return;
	if (proto_enc_result_frame(conn_out(c), PROTO_JOB, m->id, status_fields,
	                           j) < 0)
		reply_error(c, m->id, PE_INTERNAL,
		            "job %llu: its record does not fit in a frame",
		            (unsigned long long)j->id);
	conn_dirty(c);
}

/*
 * What a ps request asks for: whose jobs, in which states, of which task,
 * submitted when.  ps_match says whether a job in memory matches; the
 * store answers the same filter for the jobs it keeps.
 */
struct ps_filter {
	uid_t uid;        /* the owner asked for, or the caller */
	bool any_owner;   /* an admin who named no owner: every job */
	bool all;         /* finished jobs too (without a state) */
	int state;        /* enum proto_state; -1: any */
	const char *task; /* NULL: any task */
	size_t task_len;
	uint64_t since;  /* submitted at or after, µs since the epoch */
	uint64_t until;  /* submitted before; 0: no bound */
	char group[65];  /* "": any group */
	char label[129]; /* "": any label (a job without one never matches) */
	bool label_set;
};

/* Everything but the state: the jobs the per-state counts count. */
static bool
ps_match_scope(const struct ps_filter *f, const struct job *j)
{
	if (!f->any_owner && j->uid != f->uid)
		return false;
	if (f->task != NULL &&
	    (strlen(j->task->name) != f->task_len ||
	     memcmp(j->task->name, f->task, f->task_len) != 0))
		return false;
	if (j->submitted < f->since)
		return false;
	if (f->group[0] != '\0' && strcmp(queue_job_group(j), f->group) != 0)
		return false;
	if (f->label_set && (j->extra == NULL || j->extra->label == NULL ||
	                     strcmp(j->extra->label, f->label) != 0))
		return false;
	return f->until == 0 || j->submitted < f->until;
}

/* Does a job's state pass the filter: its state, or active unless all. */
static bool
ps_match_state(const struct ps_filter *f, int state)
{
	return f->state >= 0 ? state == f->state
	                     : f->all || !PROTO_STATE_FINAL(state);
}

static bool
ps_match(const struct ps_filter *f, const struct job *j)
{
	return ps_match_state(f, j->state) && ps_match_scope(f, j);
}

/* No filter narrows an admin's listing: the job table's counts serve. */
static bool
ps_filter_everything(const struct ps_filter *f)
{
	return f->any_owner && f->task == NULL && f->since == 0 &&
	       f->until == 0 && f->group[0] == '\0' && !f->label_set;
}

/*
 * The filter of a ps request.  A user who is not an admin sees only
 * their own jobs, and asking for another owner's is refused; an admin
 * sees everyone's, or one owner's.  -1 after an error reply.
 */
static int
ps_filter_parse(struct conn *c, const struct proto_msg *m, struct ps_filter *f)
{
	const char *sname;
	char quoted[129];
	size_t slen;
	bool admin = request_admin(c);

	memset(f, 0, sizeof(*f));
	f->uid = conn_uid(c);
	f->any_owner = admin;
	f->all = proto_bool(m, PF_ALL, false);
	f->state = -1;
	if ((sname = proto_str(m, PF_STATE, &slen)) != NULL &&
	    (f->state = proto_state_lookup(sname, slen)) < 0) {
		reply_error(c, m->id, PE_BAD_FIELD,
		            "unknown state \"%s\" (queued, running, succeeded, "
		            "failed, cancelled, timed_out)",
		            proto_quote(quoted, sizeof(quoted), sname, slen));
		return -1;
	}
	if (proto_has(m, PF_UID)) {
		uint64_t uid = proto_u64(m, PF_UID, 0);

		if (!admin && uid != f->uid) {
			reply_error(
			    c, m->id, PE_PERMISSION,
			    "only an admin may list the jobs of another "
			    "user (uid %llu): root, a member of "
			    "admin-group, or the user of a user instance",
			    (unsigned long long)uid);
			return -1;
		}
		if (uid > (uid_t)-2) { /* (uid_t)-1 is no uid */
			reply_error(c, m->id, PE_BAD_FIELD,
			            "uid %llu is out of range",
			            (unsigned long long)uid);
			return -1;
		}
		f->uid = (uid_t)uid;
		f->any_owner = false;
	}
	f->task = proto_str(m, PF_TASK, &f->task_len);
	proto_strcpy(m, PF_GROUP, f->group, sizeof(f->group));
	f->label_set = proto_has(m, PF_LABEL);
	proto_strcpy(m, PF_LABEL, f->label, sizeof(f->label));
	f->since = proto_u64(m, PF_SINCE, 0);
	f->until = proto_u64(m, PF_UNTIL, 0);
	if (proto_has(m, PF_UNTIL) && f->until <= f->since) {
		reply_error(c, m->id, PE_BAD_FIELD,
		            "until (%llu) must be later than since (%llu)",
		            (unsigned long long)f->until,
		            (unsigned long long)f->since);
		return -1;
	}
	return 0;
}

struct ps_walk {
	const struct ps_filter *filter;
	size_t counts[PS_COUNT];
};

static void
ps_count(struct job *j, void *arg)
{
	struct ps_walk *w = arg;

	if (ps_match_scope(w->filter, j))
		w->counts[j->state]++;
}

/* Rows that match a ps request, from the per-state counts. */
static size_t
ps_total(const size_t counts[PS_COUNT], const struct ps_filter *f)
{
	size_t total = 0;
	int i;

	for (i = 0; i < PS_COUNT; i++)
		if (ps_match_state(f, i))
			total += counts[i];
	return total;
}

/* A jobs reply after its rows: the total and the counts per state. */
static void
ps_encode_tail(struct proto_enc *e, size_t total, const size_t counts[PS_COUNT])
{
	int i;

	proto_enc_close(e); /* the rows */
	proto_enc_u64(e, PF_TOTAL, total);
	proto_enc_key(e, PF_COUNTS);
	proto_enc_map_open(e);
	for (i = 0; i < PS_COUNT; i++) {
		msgpack_pack_str_with_body(&e->pk, proto_states[i],
		                           strlen(proto_states[i]));
		msgpack_pack_uint64(&e->pk, counts[i]);
		proto_enc_elem(e);
	}
	proto_enc_close(e);
}

/*
 * The jobs reply; its rows carry their results, oldest first, while they
 * add up to at most room bytes, and say how large the others are.
 * Returns the frame's size, or -1 if it does not fit (then dropped).
 */
static ssize_t
ps_encode(struct conn *c, uint64_t id, struct job **rows, size_t n,
          size_t total, const size_t counts[PS_COUNT], size_t room,
          const uint64_t *ahead, const bool *waiting)
{
	struct proto_enc e;
	size_t i, size;

	proto_enc_begin(&e, conn_out(c), PROTO_JOBS, id);
	proto_enc_key(&e, PF_JOBS);
	proto_enc_array_open(&e);
	for (i = n; i-- > 0;) { /* oldest first */
		size = job_result_size(rows[i]);
		proto_enc_map_open(&e);
		job_encode_record(&e, rows[i], size <= room);
		request_queue_fields(&e, waiting[i], ahead[i]);
		room -= size <= room ? size : 0;
		proto_enc_close(&e);
	}
	ps_encode_tail(&e, total, counts);
	if (proto_enc_end(&e) < 0)
		return -1;
	return (ssize_t)(e.buf->len - e.start);
}

/*
 * The newest rows that match, found by walking ids down from the last
 * one (ids are dense, lookups O(1)), so a short listing stays cheap with
 * a million jobs.  Counts per state come with it, of the jobs that match
 * every filter but the state: kept by the job table for an admin's
 * unfiltered listing, counted otherwise.  They give the total, so the
 * walk stops at the limit.  Results that do not fit in the frame are
 * left out: the reply is made without any, and the room it leaves goes
 * to the results of the oldest rows.
 */
struct ps_stored {
	struct proto_enc *e;
	size_t room; /* bytes of results the rows may still carry */
};

static void
ps_stored_row(const struct store_row *r, void *arg)
{
	struct ps_stored *p = arg;
	size_t size = r->state == PS_SUCCEEDED ? r->result_len : 0;

	proto_enc_map_open(p->e);
	job_encode_row(p->e, r, size <= p->room);
	p->room -= size <= p->room ? size : 0;
	proto_enc_close(p->e);
}

/*
 * ps of finished jobs, with a store: the store answers, once it holds
 * what the job table holds.  The newest rows that match, oldest first;
 * if their results do not fit in the frame, without them.
 */
static void
ps_from_store(struct conn *c, const struct proto_msg *m,
              const struct ps_filter *f, size_t limit)
{
	struct store_filter sf = {
	    .state = f->state,
	    .all = f->all,
	    .uid = f->any_owner ? -1 : (int64_t)f->uid,
	    .since = f->since,
	    .until = f->until,
	    .group = f->group[0] != '\0' ? f->group : NULL,
	    .label = f->label_set ? f->label : NULL,
	    .limit = limit,
	};
	size_t counts[PS_COUNT] = {0}, bare = 0;
	struct proto_enc e;
	struct ps_stored p = {.e = &e, .room = SIZE_MAX};
	char task[65];
	int pass;

	if (!request_store_ready(c))
		return;
	if (f->task != NULL) {
		snprintf(task, sizeof(task), "%.*s", (int)f->task_len, f->task);
		sf.task = task;
	}
	if (store_count(&sf, counts) < 0)
		goto fail;
	/*
	 * With every result; else none, which gives the bare size; then the
	 * room that leaves goes to the oldest rows' results.
	 */
	for (pass = 0; pass < 3; pass++) {
		if (pass == 1)
			p.room = 0;
		else if (pass == 2)
			p.room = PROTO_MAX_FRAME + PROTO_HEADER_LEN - bare;
		proto_enc_begin(&e, conn_out(c), PROTO_JOBS, m->id);
		proto_enc_key(&e, PF_JOBS);
		proto_enc_array_open(&e);
		if (limit > 0 && store_list(&sf, ps_stored_row, &p) < 0) {
			conn_out(c)->len = e.start;
			goto fail;
		}
		ps_encode_tail(&e, ps_total(counts, f), counts);
		if (proto_enc_end(&e) < 0) {
			if (pass == 1)
				break;
			continue;
		}
		if (pass == 1) {
			/* the bare reply: made again with the room left */
			bare = conn_out(c)->len - e.start;
			conn_out(c)->len = e.start;
			continue;
		}
		conn_dirty(c);
		return;
	}
	reply_error(c, m->id, PE_INTERNAL,
	            "too many jobs for one reply: use a smaller limit");
	return;
fail:
	reply_error(c, m->id, PE_INTERNAL,
	            "the job store cannot be read (see concd's log)");
}

static void
request_ps(struct conn *c, const struct proto_msg *m)
{
	struct ps_filter f;
	struct ps_walk w = {.filter = &f};
	size_t limit = proto_u64(m, PF_LIMIT, PS_DEFAULT_LIMIT), n = 0;
	size_t total;
	struct job **rows = NULL;
	uint64_t *ahead = NULL;
	bool *waiting = NULL;
	ssize_t bare;
	uint64_t id;
	size_t seen;

	if (ps_filter_parse(c, m, &f) < 0)
		return;
	if (store_enabled() &&
	    (f.all || (f.state >= 0 && PROTO_STATE_FINAL(f.state)))) {
		ps_from_store(c, m, &f, limit);
		return;
	}
	if (ps_filter_everything(&f))
		job_counts(w.counts);
	else
		job_foreach(ps_count, &w);
	total = ps_total(w.counts, &f);
	/* rows for what matched, whatever limit the request named */
	limit = limit < total ? limit : total;
	if (limit > 0 &&
	    ((rows = calloc(limit, sizeof(*rows))) == NULL ||
	     (ahead = calloc(limit, sizeof(*ahead))) == NULL ||
	     (waiting = calloc(limit, sizeof(*waiting))) == NULL)) {
		free(rows);
		free(ahead);
		reply_error(c, m->id, PE_INTERNAL, "out of memory");
		return;
	}
	/* every job in the table is seen once we have met job_total() */
	for (id = job_last_id(), seen = 0;
	     id > 0 && seen < job_total() && n < limit; id--) {
		struct job *j = job_find(id);

		if (j == NULL)
			continue;
		seen++;
		if (ps_match(&f, j))
			rows[n++] = j;
	}
	queue_ahead_many(rows, n, ahead, waiting);
	if (ps_encode(c, m->id, rows, n, total, w.counts, SIZE_MAX, ahead,
	              waiting) < 0) {
		if ((bare = ps_encode(c, m->id, rows, n, total, w.counts, 0,
		                      ahead, waiting)) < 0) {
			reply_error(
			    c, m->id, PE_INTERNAL,
			    "too many jobs for one reply: use a smaller limit");
		} else {
			/*
			 * The room left goes to results: one adds at most its
			 * own size (its key is shorter than result_omitted).
			 */
			conn_out(c)->len -= (size_t)bare;
			if (ps_encode(c, m->id, rows, n, total, w.counts,
			              PROTO_MAX_FRAME + PROTO_HEADER_LEN -
			                  (size_t)bare,
			              ahead, waiting) < 0)
				ps_encode(c, m->id, rows, n, total, w.counts, 0,
				          ahead, waiting);
		}
	}
	conn_dirty(c);
	free(rows);
	free(ahead);
	free(waiting);
}

static void
request_cancel(struct conn *c, const struct proto_msg *m)
{
	struct job *j = request_job(c, m);
	struct conn_reply r = {.req = m->id, .kind = REPLY_CANCEL};

	if (j == NULL)
		return;
	if (job_cancel(j) < 0)
		r.kind = REPLY_ENDED; /* it keeps its final state */
	r.first = j->id;
	r.state = j->state;
	/* a job it ended is ended in the store before the client hears so */
	request_reply_committed(c, &r);
}

static void
request_result(struct conn *c, const struct proto_msg *m)
{
	struct job *j = request_job(c, m);

	if (j == NULL)
		return;
	if (!PROTO_STATE_FINAL(j->state)) {
		reply_error(c, m->id, PE_NOT_FINISHED, "job %llu is %s",
		            (unsigned long long)j->id, proto_states[j->state]);
		return;
	}
	job_encode_end(conn_out(c), j, NULL, m->id, -1);
	conn_dirty(c);
}

static void
enc_names(struct proto_enc *e, enum proto_field f, unsigned bits,
          const char *const *names, size_t n)
{
	size_t i;

	proto_enc_key(e, f);
	proto_enc_array_open(e);
	for (i = 0; i < n; i++) {
		if (bits & (1u << i)) {
			msgpack_pack_str_with_body(&e->pk, names[i],
			                           strlen(names[i]));
			proto_enc_elem(e);
		}
	}
	proto_enc_close(e);
}

static void
task_usage(const struct task *t, char *buf, size_t size)
{
	size_t i, n = 0;

	n += (size_t)snprintf(buf, size, "%s", t->name);
	if (t->any_args && n < size)
		n += (size_t)snprintf(buf + n, size - n, " [key=value ...]");
	for (i = 0; i < t->nargs && n < size; i++) {
		const struct task_arg *a = &t->args[i];
		static const char *const shapes[] = {
		    [TASK_ARG_INT] = "N",
		    [TASK_ARG_BOOL] = "true|false",
		    [TASK_ARG_STR] = "STR",
		    [TASK_ARG_LIST] = "[STR...]",
		    [TASK_ARG_MAP] = "{NAME:VALUE}",
		};
		const char *v = shapes[a->type];
		n += (size_t)snprintf(buf + n, size - n,
		                      a->required ? " %s=%s" : " [%s=%s]",
		                      a->name, v);
	}
}

static void
request_tasks(struct conn *c, const struct proto_msg *m)
{
	static const char *const traits[] = {"non-blocking", "blocking", "cpu",
	                                     "user-code"};
	static const char *const execs[] = {"loop", "thread", "process"};
	struct proto_enc e;
	char usage[256];
	size_t i;

	proto_enc_begin(&e, conn_out(c), PROTO_TASKLIST, m->id);
	proto_enc_key(&e, PF_TASKS);
	proto_enc_array_open(&e);
	for (i = 0; i < task_count(); i++) {
		const struct task *t = task_at(i);

		proto_enc_map_open(&e);
		proto_enc_cstr(&e, PF_NAME, t->name);
		proto_enc_ctext(&e, PF_SUMMARY, t->summary);
		task_usage(t, usage, sizeof(usage));
		proto_enc_ctext(&e, PF_USAGE, usage);
		enc_names(&e, PF_TRAITS, t->traits, traits, 4);
		enc_names(&e, PF_EXECUTORS, t->executors, execs, 3);
		proto_enc_cstr(&e, PF_DEFAULT,
		               proto_execs[task_default_exec(t)]);
		proto_enc_close(&e);
	}
	proto_enc_close(&e);
	proto_enc_end(&e);
	conn_dirty(c);
}

/* The floor that stops the daemon (server.c) registers how. */
static void (*request_shutdown_hook)(const char *why, bool cancel_pending);

void
request_hook_shutdown(void (*fn)(const char *why, bool cancel_pending))
{
	request_shutdown_hook = fn;
}

static void
request_shutdown(struct conn *c, const struct proto_msg *m)
{
	struct proto_enc e;

	if (!request_admin(c)) {
		reply_error(c, m->id, PE_PERMISSION,
		            "only an admin may shut concd down: root, a member "
		            "of admin-group, or the user of a user instance");
		return;
	}
	proto_enc_begin(&e, conn_out(c), PROTO_OK, m->id);
	proto_enc_end(&e);
	conn_dirty(c);
	if (request_shutdown_hook != NULL)
		request_shutdown_hook("shutdown requested",
		                      proto_bool(m, PF_CANCEL_PENDING, false));
}

struct pool_walk {
	struct proto_enc *e;
	uint64_t now;
	uid_t uid;
	bool admin; /* sees every job's id; others see only their own */
};

static void
pool_row(const struct pool_worker_info *w, void *arg)
{
	struct pool_walk *pw = arg;
	struct proto_enc *e = pw->e;

	proto_enc_map_open(e);
	proto_enc_cstr(e, PF_EXEC, proto_execs[w->exec]);
	proto_enc_i64(e, PF_WORKER, w->index);
	if (w->user)
		proto_enc_u64(e, PF_UID, w->uid);
	proto_enc_u64(
	    e, w->exec == PX_PROCESS || w->exec == PX_REMOTE ? PF_PID : PF_TID,
	    w->id);
	if (w->node != NULL)
		proto_enc_cstr(e, PF_NODE, w->node);
	if (w->slurm_job != 0)
		proto_enc_u64(e, PF_SLURM_JOB, w->slurm_job);
	proto_enc_cstr(e, PF_STATE, w->state);
	proto_enc_u64(e, PF_SERVED, w->served);
	proto_enc_u64(e, PF_UPTIME,
	              pw->now > w->since ? pw->now - w->since : 0);
	if (w->job != 0) {
		const struct job *j = job_find(w->job);

		if (pw->admin || (j != NULL && j->uid == pw->uid))
			proto_enc_u64(e, PF_JOB, w->job);
	}
	proto_enc_close(e);
}

static void
request_pool(struct conn *c, const struct proto_msg *m)
{
	struct proto_enc e;
	struct pool_walk pw = {&e, loop_now_us(), conn_uid(c),
	                       request_admin(c)};
	struct pool_worker_info loop = {
	    .exec = PX_LOOP,
	    .index = 0,
	    .id = (uint64_t)getpid(),
	    .state = "loop",
	    .since = loop_started_us(),
	};
	int x;

	proto_enc_begin(&e, conn_out(c), PROTO_POOLINFO, m->id);
	proto_enc_u64(&e, PF_THREADS, (uint64_t)pool_thread_size());
	proto_enc_u64(&e, PF_PROCESSES, (uint64_t)pool_process_size());
	proto_enc_cstr(&e, PF_LIMITS, cgroup_level_name(cgroup_level()));
	proto_enc_key(&e, PF_WORKERS);
	proto_enc_array_open(&e);
	loop.served = (uint32_t)loop_exec_served();
	pool_row(&loop, &pw);
	pool_thread_foreach(pool_row, &pw);
	pool_process_foreach(pool_row, &pw);
	pool_remote_foreach(pool_row, &pw);
	proto_enc_close(&e);
	proto_enc_key(&e, PF_QUEUES);
	proto_enc_map_open(&e);
	for (x = PX_LOOP; x < PX_COUNT; x++) {
		const struct executor *ex = sched_executor((enum proto_exec)x);

		if (ex == NULL)
			continue;
		/* a map 16, as every map concd writes */
		msgpack_pack_str_with_body(&e.pk, proto_execs[x],
		                           strlen(proto_execs[x]));
		proto_enc_map_open(&e);
		msgpack_pack_str_with_body(&e.pk, "queued", 6);
		msgpack_pack_uint64(&e.pk, ex->queued());
		proto_enc_elem(&e);
		msgpack_pack_str_with_body(&e.pk, "running", 7);
		msgpack_pack_uint64(&e.pk, ex->running());
		proto_enc_elem(&e);
		proto_enc_close(&e);
		proto_enc_elem(&e);
	}
	proto_enc_close(&e);
	proto_enc_end(&e);
	conn_dirty(c);
}

static void
request_resize(struct conn *c, const struct proto_msg *m)
{
	struct proto_enc e;
	uint64_t t = proto_u64(m, PF_THREADS, 0);
	uint64_t p = proto_u64(m, PF_PROCESSES, 0);

	if (!request_admin(c)) {
		reply_error(
		    c, m->id, PE_PERMISSION,
		    "only an admin may resize the pools: root, a member "
		    "of admin-group, or the user of a user instance");
		return;
	}
	if (proto_has(m, PF_THREADS) && (t < 1 || t > POOL_MAX_THREADS)) {
		reply_error(c, m->id, PE_BAD_FIELD,
		            "threads must be from 1 to %d", POOL_MAX_THREADS);
		return;
	}
	if (proto_has(m, PF_PROCESSES) && p > POOL_MAX_PROCESSES) {
		reply_error(c, m->id, PE_BAD_FIELD,
		            "processes must be from 0 to %d",
		            POOL_MAX_PROCESSES);
		return;
	}
	if ((proto_has(m, PF_THREADS) && pool_thread_resize((int)t) < 0) ||
	    (proto_has(m, PF_PROCESSES) && pool_process_resize((int)p) < 0)) {
		reply_error(c, m->id, PE_INTERNAL,
		            "could not start every worker: see concd's log");
		return;
	}
	log_info("pools resized by uid %u: %d threads, %d processes",
	         (unsigned)conn_uid(c), pool_thread_size(),
	         pool_process_size());
	proto_enc_begin(&e, conn_out(c), PROTO_OK, m->id);
	proto_enc_u64(&e, PF_THREADS, (uint64_t)pool_thread_size());
	proto_enc_u64(&e, PF_PROCESSES, (uint64_t)pool_process_size());
	proto_enc_end(&e);
	conn_dirty(c);
}

/*
 * "remote": op "add" asks Slurm for an allocation of count tasks, with a
 * warm worker in each (partition and time optional); op "remove" lets
 * every remote worker finish its jobs, then ends the allocations.  The
 * ok of an add comes at once, with the allocation's Slurm name: the
 * workers show in the pool as Slurm grants them.  Admins only.
 */
static void
request_remote(struct conn *c, const struct proto_msg *m)
{
	struct proto_enc e;
	char cause[256], name[64], part[129], tl[33];
	uint64_t n = proto_u64(m, PF_COUNT, 0);
	unsigned removed;

	if (!request_admin(c)) {
		reply_error(
		    c, m->id, PE_PERMISSION,
		    "only an admin may add or remove remote workers: root, a "
		    "member of admin-group, or the user of a user instance");
		return;
	}
	if (proto_obj_streq(&m->f[PF_OP], "remove")) {
		removed = pool_remote_remove();
		log_info("remote workers removed by uid %u: %u told to go",
		         (unsigned)conn_uid(c), removed);
		proto_enc_begin(&e, conn_out(c), PROTO_OK, m->id);
		proto_enc_u64(&e, PF_COUNT, removed);
		proto_enc_end(&e);
		conn_dirty(c);
		return;
	}
	if (!proto_obj_streq(&m->f[PF_OP], "add")) {
		reply_error(c, m->id, PE_BAD_FIELD,
		            "op must be \"add\" or \"remove\"");
		return;
	}
	if (n < 1 || n > POOL_MAX_PROCESSES) {
		reply_error(c, m->id, PE_BAD_FIELD,
		            "count must be from 1 to %d", POOL_MAX_PROCESSES);
		return;
	}
	proto_strcpy(m, PF_PARTITION, part, sizeof(part));
	proto_strcpy(m, PF_TIME, tl, sizeof(tl));
	if (strpbrk(part, " \t\n") != NULL || strpbrk(tl, " \t\n") != NULL) {
		reply_error(c, m->id, PE_BAD_FIELD,
		            "partition and time are single words");
		return;
	}
	if (pool_remote_add((unsigned)n, part[0] != '\0' ? part : NULL,
	                    tl[0] != '\0' ? tl : NULL, name, sizeof(name),
	                    cause, sizeof(cause)) < 0) {
		reply_error(c, m->id, PE_BAD_EXECUTOR, "%s", cause);
		return;
	}
	log_info("remote workers: %u asked for by uid %u (%s)", (unsigned)n,
	         (unsigned)conn_uid(c), name);
	proto_enc_begin(&e, conn_out(c), PROTO_OK, m->id);
	proto_enc_u64(&e, PF_COUNT, n);
	proto_enc_cstr(&e, PF_NAME, name);
	proto_enc_end(&e);
	conn_dirty(c);
}

/*
 * Bytes for a job's standard input, or its end: no reply unless refused,
 * so that a stream costs one frame a chunk.  Input for a job that has
 * ended meanwhile is dropped.
 */
static void
request_input(struct conn *c, const struct proto_msg *m)
{
	uint64_t id = proto_u64(m, PF_JOB, 0);
	struct job *j = job_find(id);
	const msgpack_object *d = &m->f[PF_DATA];
	const void *data = NULL;
	const char *cause;
	size_t len = 0;

	if (j == NULL || !job_visible(j, conn_uid(c))) {
		if (j == NULL && id != 0 && id <= job_last_id())
			return; /* ended and gone: the rest is dropped */
		reply_error(c, m->id, PE_NO_SUCH_JOB, "no such job: %llu",
		            (unsigned long long)id);
		return;
	}
	if (PROTO_STATE_FINAL(j->state))
		return;
	if (proto_has(m, PF_DATA) && d->type == MSGPACK_OBJECT_BIN) {
		data = d->via.bin.ptr;
		len = d->via.bin.size;
	} else if (proto_has(m, PF_DATA) && d->type == MSGPACK_OBJECT_STR) {
		data = d->via.str.ptr;
		len = d->via.str.size;
	} else if (proto_has(m, PF_DATA)) {
		reply_error(c, m->id, PE_BAD_FIELD,
		            "input: data must be bin or str");
		return;
	}
	if (input_put(c, id, data, len, proto_bool(m, PF_EOF, false), &cause) <
	    0)
		reply_error(c, m->id, PE_BAD_FIELD, "job %llu %s",
		            (unsigned long long)id, cause);
}

/* Groups: who may change one is queue.c's to say, told who is admin. */
static void
request_group(struct conn *c, const struct proto_msg *m)
{
	queue_request_group(c, m, request_admin(c));
}

/* A queued job held back, or let go; only its owner's or an admin's. */
static void
request_hold_release(struct conn *c, const struct proto_msg *m, bool hold)
{
	struct job *j = request_job(c, m);
	struct conn_reply r = {.req = m->id,
	                       .kind = hold ? REPLY_HOLD : REPLY_RELEASE};
	enum proto_error code;
	char cause[256];

	if (j == NULL)
		return;
	if (queue_hold(j, hold, &code, cause, sizeof(cause)) < 0) {
		reply_error(c, m->id, code, "%s", cause);
		return;
	}
	r.first = j->id;
	r.state = j->state;
	/* the hold is in the store before the client hears of it */
	request_reply_committed(c, &r);
}

/* The job a restart request names, as memory or the store has it. */
struct restart_src {
	struct conn *c;
	bool found;
	uint8_t state;
	char task[65];
	struct pbuf args;
	struct job_submit js;
	struct job_extra *x; /* a copy, or NULL */
};

/* Take what a new job needs of an old one, in memory or in the store. */
static void
restart_take(struct restart_src *s, const struct store_row *r)
{
	s->found = true;
	s->state = r->state;
	snprintf(s->task, sizeof(s->task), "%s", r->task);
	if (r->args_len > 0)
		pbuf_append(&s->args, r->args, r->args_len);
	s->js.retries = r->retries;
	s->js.retry_delay_ms = r->retry_delay_ms;
	s->js.requested = (enum proto_exec)r->requested;
	s->js.daemon = r->daemon;
	s->js.fresh = r->fresh;
	s->js.uid = r->uid;
	s->js.timeout_ms = r->timeout_ms;
	if (r->x != NULL)
		s->x = job_extra_dup(r->x);
}

static void
restart_row_cb(const struct store_row *r, void *arg)
{
	struct restart_src *s = arg;

	if (r->uid == conn_uid(s->c) || request_admin(s->c))
		restart_take(s, r);
}

/*
 * A finished job's request again, as a new job of the same owner: the
 * same task, arguments, options and context, with restart_of its id;
 * neither what it ran after nor its schedule or hold.
 */
static void
request_restart(struct conn *c, const struct proto_msg *m)
{
	uint64_t id = proto_u64(m, PF_JOB, 0);
	struct restart_src s = {.c = c};
	struct conn_reply r = {.req = m->id, .n = 1};
	struct store_row row;
	struct job *j = job_find(id);
	char cause[256];

	if (loop_stopping()) {
		reply_error(c, m->id, PE_SHUTTING_DOWN,
		            "concd is shutting down");
		return;
	}
	if (j != NULL && (job_visible(j, conn_uid(c)) || request_admin(c))) {
		job_row(j, &row);
		restart_take(&s, &row);
	} else if (j == NULL && store_enabled()) {
		if (!request_store_ready(c))
			return;
		(void)store_get(id, restart_row_cb, &s);
	}
	if (!s.found) {
		reply_error(c, m->id, PE_NO_SUCH_JOB, "no such job: %llu",
		            (unsigned long long)id);
		goto out;
	}
	if (!PROTO_STATE_FINAL(s.state)) {
		reply_error(c, m->id, PE_NOT_FINISHED,
		            "job %llu is %s: only a finished job is restarted",
		            (unsigned long long)id, proto_states[s.state]);
		goto out;
	}
	if ((s.js.task = task_find(s.task, strlen(s.task))) == NULL) {
		reply_error(
		    c, m->id, PE_UNKNOWN_TASK,
		    "job %llu's task \"%s\" is gone (see concctl tasks)",
		    (unsigned long long)id, s.task);
		goto out;
	}
	if ((s.js.task->traits & TASK_USER_CODE) &&
	    !request_user_code_ok(s.js.uid)) {
		reply_error(
		    c, m->id, PE_PERMISSION,
		    "%s jobs of uid %u are refused (exec-other-users in "
		    "concd.conf(5))",
		    s.js.task->name, (unsigned)s.js.uid);
		goto out;
	}
	if (sched_choose(s.js.task, s.js.requested, s.js.fresh, &s.js.exec,
	                 cause, sizeof(cause)) < 0) {
		reply_error(c, m->id, PE_BAD_EXECUTOR, "%s", cause);
		goto out;
	}
	if (request_not_as_owner(s.js.task, s.js.uid, s.js.exec, cause,
	                         sizeof(cause))) {
		reply_error(c, m->id, PE_PERMISSION, "%s", cause);
		goto out;
	}
	if (s.x == NULL && (s.x = job_extra_dup(&(struct job_extra){
	                        .exit = -1, .signal = -1})) == NULL) {
		reply_error(c, m->id, PE_INTERNAL, "out of memory");
		goto out;
	}
	s.x->nafter = 0;
	s.x->after_any = s.x->held = false;
	s.x->at = s.x->cause = 0;
	s.x->exit = s.x->signal = -1;
	s.x->restart_of = id;
	s.js.extra = s.x;
	s.js.args = s.args.data;
	s.js.args_len = s.args.len;
	if (!sched_has_room(s.js.exec, 1)) {
		queue_full(c, m->id, s.js.exec);
		goto out;
	}
	if (user_full(c, m->id, 1))
		goto out;
	if (store_refuses(c, m->id))
		goto out;
	if ((j = job_new(&s.js)) == NULL) {
		reply_error(c, m->id, PE_INTERNAL, "out of memory");
		goto out;
	}
	r.first = j->id;
	request_admit(c, &r);
out:
	job_extra_free(s.x);
	pbuf_free(&s.args);
}

/* Which finished jobs a clean request forgets. */
struct clean_filter {
	int state;       /* a final state; -1: any */
	uint64_t before; /* finished before, µs; 0: whenever */
	int64_t uid;     /* -1: anyone's (an admin's clean) */
};

static bool
clean_match(const struct job *j, void *arg)
{
	const struct clean_filter *f = arg;

	return (f->state < 0 || j->state == f->state) &&
	       (f->before == 0 || j->finished < f->before) &&
	       (f->uid < 0 || j->uid == (uid_t)f->uid);
}

static void
clean_forget_cb(uint64_t id, void *arg)
{
	(void)arg;
	joblog_forget(id);
}

/*
 * Forget finished jobs, in memory and in the store, and their logs: the
 * caller's own, or an admin's choice of owner (everyone's by default).
 */
static void
request_clean(struct conn *c, const struct proto_msg *m)
{
	struct clean_filter f = {.state = -1,
	                         .before = proto_u64(m, PF_BEFORE, 0),
	                         .uid = conn_uid(c)};
	struct proto_enc e;
	const char *sname;
	char quoted[129];
	size_t slen, n;
	int stored = 0;

	if ((sname = proto_str(m, PF_STATE, &slen)) != NULL &&
	    ((f.state = proto_state_lookup(sname, slen)) < 0 ||
	     !PROTO_STATE_FINAL(f.state))) {
		reply_error(c, m->id, PE_BAD_FIELD,
		            "clean forgets finished jobs: state must be "
		            "succeeded, failed, cancelled or timed_out, not "
		            "\"%s\"",
		            proto_quote(quoted, sizeof(quoted), sname, slen));
		return;
	}
	if (proto_has(m, PF_UID) && proto_u64(m, PF_UID, 0) > (uid_t)-2) {
		reply_error(c, m->id, PE_BAD_FIELD, "uid %llu is out of range",
		            (unsigned long long)proto_u64(m, PF_UID, 0));
		return;
	}
	if (request_admin(c))
		f.uid = proto_has(m, PF_UID) ? (int64_t)proto_u64(m, PF_UID, 0)
		                             : -1;
	else if (proto_has(m, PF_UID) &&
	         proto_u64(m, PF_UID, 0) != (uint64_t)conn_uid(c)) {
		reply_error(c, m->id, PE_PERMISSION,
		            "only an admin may clean the jobs of another user: "
		            "root, a member of admin-group, or the user of a "
		            "user instance");
		return;
	}
	/*
	 * What the journal holds goes into SQLite first, without stopping
	 * the loop; a SQLite that refuses writes (another program holds it
	 * locked, the disk is full) is an error before anything is forgotten.
	 * SQLite forgets first: memory forgets nothing that SQLite keeps.
	 */
	if (store_enabled()) {
		if (!request_store_ready(c))
			return;
		if (!store_writable()) {
			reply_error(c, m->id, PE_STORE,
			            "the job store cannot be written now (see "
			            "concd's log): nothing was cleaned");
			return;
		}
		if ((stored = store_clean(f.state, f.before, f.uid,
		                          clean_forget_cb, NULL)) < 0) {
			reply_error(c, m->id, PE_STORE,
			            "%s: nothing was cleaned",
			            stored == -2
			                ? "another program holds the job store "
			                  "locked; try again later"
			                : "the job store cannot be written "
			                  "(see concd's log)");
			return;
		}
	}
	n = job_clean(clean_match, &f);
	if (store_enabled())
		n = (size_t)stored;
	log_info("clean by uid %u: %zu finished jobs forgotten",
	         (unsigned)conn_uid(c), n);
	proto_enc_begin(&e, conn_out(c), PROTO_OK, m->id);
	proto_enc_u64(&e, PF_FORGOTTEN, n);
	proto_enc_end(&e);
	conn_dirty(c);
}

static void
request_hold(struct conn *c, const struct proto_msg *m)
{
	request_hold_release(c, m, true);
}

static void
request_release(struct conn *c, const struct proto_msg *m)
{
	request_hold_release(c, m, false);
}

static void
request_wait(struct conn *c, const struct proto_msg *m)
{
	queue_request_wait(c, m);
}

static void
request_not_a_request(struct conn *c, const struct proto_msg *m)
{
	reply_error(c, m->id, PE_UNKNOWN_MESSAGE,
	            "\"%s\" is a reply, not a request",
	            proto_types[m->type].name);
}

static void (*const request_table[PROTO_TYPE_COUNT])(
    struct conn *, const struct proto_msg *) = {
    [PROTO_HELLO] = request_hello,     [PROTO_PING] = request_ping,
    [PROTO_SUBMIT] = request_submit,   [PROTO_WATCH] = request_watch,
    [PROTO_STATUS] = request_status,   [PROTO_PS] = request_ps,
    [PROTO_CANCEL] = request_cancel,   [PROTO_RESULT] = request_result,
    [PROTO_TASKS] = request_tasks,     [PROTO_SHUTDOWN] = request_shutdown,
    [PROTO_POOL] = request_pool,       [PROTO_RESIZE] = request_resize,
    [PROTO_GATHER] = request_gather,   [PROTO_LOG] = request_log,
    [PROTO_GROUP] = request_group,     [PROTO_HOLD] = request_hold,
    [PROTO_RELEASE] = request_release, [PROTO_WAIT] = request_wait,
    [PROTO_CLEAN] = request_clean,     [PROTO_RESTART] = request_restart,
    [PROTO_INPUT] = request_input,     [PROTO_REMOTE] = request_remote,
};

static void
request_dispatch(struct conn *c, const struct proto_msg *m)
{
	if (request_table[m->type] != NULL)
		request_table[m->type](c, m);
	else
		request_not_a_request(c, m);
}

/* A client went away: its watches go with it. */
static void
request_closed(struct conn *c, void *arg)
{
	job_unwatch_conn(c);
	logread_unwatch_conn(c);
	input_conn_closed(c);
	queue_unwait_conn(c);
}

const struct conn_handler request_handler = {
    .dispatch = request_dispatch,
    .closed = request_closed,
    .paced = true,
};
