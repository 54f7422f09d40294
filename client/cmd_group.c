/*
 * cmd_group.c -- the groups jobs wait in: group list, add, set, pause,
 * resume, remove; pause and resume of queued jobs (hold, release); wait
 * --group.
 */
#include <err.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "concctl.h"

/* ---- group list ---- */

static const char *const group_titles[] = {
    "GROUP", "PARALLEL", "USED", "QUEUED", "RUNNING", "STATE", "OWNER",
};
static const bool group_right[] = {
    false, true, true, true, true, false, true,
};
#define GROUP_COLS (sizeof(group_titles) / sizeof(group_titles[0]))
_Static_assert(GROUP_COLS == sizeof(group_right) / sizeof(group_right[0]),
               "group columns");

/* A count of a group's counts map: queued or running. */
static uint64_t
group_count(const struct proto_msg *g, const char *state)
{
	const msgpack_object_map *counts;
	uint32_t i;

	if (!proto_has(g, PF_COUNTS))
		return 0;
	counts = &g->f[PF_COUNTS].via.map;
	for (i = 0; i < counts->size; i++)
		if (proto_obj_streq(&counts->ptr[i].key, state) &&
		    counts->ptr[i].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			return counts->ptr[i].val.via.u64;
	return 0;
}

static void
group_row(struct render_table *t, size_t r, const struct proto_msg *g)
{
	char buf[128];
	uint64_t parallel = proto_u64(g, PF_PARALLEL, 0);

	render_table_set(t, r, 0, render_str(g, PF_NAME, buf, sizeof(buf)));
	if (parallel == 0)
		snprintf(buf, sizeof(buf), "-");
	else
		snprintf(buf, sizeof(buf), "%" PRIu64, parallel);
	render_table_set(t, r, 1, buf);
	snprintf(buf, sizeof(buf), "%" PRIu64, proto_u64(g, PF_CPUS, 0));
	render_table_set(t, r, 2, buf);
	snprintf(buf, sizeof(buf), "%" PRIu64, group_count(g, "queued"));
	render_table_set(t, r, 3, buf);
	snprintf(buf, sizeof(buf), "%" PRIu64, group_count(g, "running"));
	render_table_set(t, r, 4, buf);
	render_table_set(t, r, 5,
	                 proto_bool(g, PF_PAUSED, false) ? "paused" : "active");
	snprintf(buf, sizeof(buf), "%" PRIu64, proto_u64(g, PF_UID, 0));
	render_table_set(t, r, 6, buf);
}

int
cmd_group_list(struct ctl *ctl, struct cmd_args *a)
{
	const msgpack_object_array *groups;
	struct render_table t;
	struct proto_msg m, row;
	struct proto_fault f;
	struct proto_enc e;
	uint64_t id;
	uint32_t i;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_GROUP);
	proto_enc_cstr(&e, PF_OP, "list");
	if (a->argc > 0)
		proto_enc_cstr(&e, PF_NAME, a->argv[0]);
	if ((ret = cmd_call(ctl, &e, id, PROTO_GROUPLIST, &m)) != CTL_OK)
		return ret;
	if (ctl->json)
		return CTL_OK;
	groups = &m.f[PF_GROUPS].via.array;
	render_table_init(&t, GROUP_COLS, groups->size, group_titles,
	                  group_right);
	for (i = 0; i < groups->size; i++) {
		if (proto_decode_fields(&groups->ptr[i], &row, &f) < 0) {
			render_table_free(&t);
			warnx("protocol error in a group: %s", f.message);
			return CTL_CONNECT;
		}
		group_row(&t, i, &row);
	}
	render_table_print(&t);
	render_table_free(&t);
	return CTL_OK;
}

/* ---- group add, set, pause, resume, remove ---- */

static int
group_call(struct ctl *ctl, struct cmd_args *a, const char *op,
           const char *done)
{
	struct proto_msg m;
	struct proto_enc e;
	uint64_t id;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_GROUP);
	proto_enc_cstr(&e, PF_OP, op);
	proto_enc_cstr(&e, PF_NAME, a->argv[0]);
	if (a->seen & CMD_OPT_PARALLEL)
		proto_enc_u64(&e, PF_PARALLEL, a->parallel);
	if ((ret = cmd_call(ctl, &e, id, PROTO_OK, &m)) != CTL_OK)
		return ret;
	if (!ctl->quiet && !ctl->json) {
		printf("group %s: %s (", a->argv[0], done);
		if (proto_u64(&m, PF_PARALLEL, 0) > 0)
			printf("parallel %" PRIu64,
			       proto_u64(&m, PF_PARALLEL, 0));
		else
			printf("no limit");
		printf(", %s)\n",
		       proto_bool(&m, PF_PAUSED, false) ? "paused" : "active");
	}
	return CTL_OK;
}

int
cmd_group_add(struct ctl *ctl, struct cmd_args *a)
{
	return group_call(ctl, a, "add", "added");
}

int
cmd_group_set(struct ctl *ctl, struct cmd_args *a)
{
	return group_call(ctl, a, "set", "set");
}

int
cmd_group_pause(struct ctl *ctl, struct cmd_args *a)
{
	return group_call(ctl, a, "pause", "paused");
}

int
cmd_group_resume(struct ctl *ctl, struct cmd_args *a)
{
	return group_call(ctl, a, "resume", "resumed");
}

int
cmd_group_remove(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_msg m;
	struct proto_enc e;
	uint64_t id;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_GROUP);
	proto_enc_cstr(&e, PF_OP, "remove");
	proto_enc_cstr(&e, PF_NAME, a->argv[0]);
	if ((ret = cmd_call(ctl, &e, id, PROTO_OK, &m)) != CTL_OK)
		return ret;
	if (!ctl->quiet && !ctl->json)
		printf("group %s: removed\n", a->argv[0]);
	return CTL_OK;
}

/* ---- pause ID, resume ID: hold and release ---- */

/* One request per job, all sent, then every reply; the worst exit. */
static int
group_each_job(struct ctl *ctl, struct cmd_args *a, enum proto_type type,
               const char *done)
{
	bool *seen = a->done;
	struct proto_msg m;
	struct proto_enc e;
	enum conn_status st;
	uint64_t first = 0, id, i;
	int k, worst = CTL_OK, pending = a->argc;

	memset(seen, 0, (size_t)a->argc * sizeof(*seen));
	for (k = 0; k < a->argc; k++) {
		id = conn_begin(&ctl->conn, &e, type);
		proto_enc_u64(&e, PF_JOB, a->jobs[k]);
		if ((st = conn_send(&ctl->conn, &e)) != CONN_OK)
			return cmd_conn_exit(ctl, st);
		if (k == 0)
			first = id;
	}
	while (pending > 0) {
		if ((st = conn_recv(&ctl->conn, &m, -1)) != CONN_OK)
			return cmd_conn_exit(ctl, st);
		i = m.id - first;
		if (m.id < first || i >= (uint64_t)a->argc || seen[i])
			continue;
		if (m.type == PROTO_ERROR) {
			int r = cmd_refused(&m);

			worst = worst > r ? worst : r;
		} else if (m.type != PROTO_OK)
			continue;
		else if (!ctl->quiet && !ctl->json)
			printf("job %" PRIu64 ": %s\n", a->jobs[i], done);
		seen[i] = true;
		pending--;
	}
	return worst;
}

int
cmd_group_hold(struct ctl *ctl, struct cmd_args *a)
{
	return group_each_job(ctl, a, PROTO_HOLD, "held");
}

int
cmd_group_release(struct ctl *ctl, struct cmd_args *a)
{
	return group_each_job(ctl, a, PROTO_RELEASE, "released");
}

/* ---- wait --group ---- */

/* Job ids or --group, one or the other, checked before connecting. */
int
cmd_group_wait_check(struct ctl *ctl, struct cmd_args *a)
{
	if ((a->seen & CMD_OPT_GROUP) && a->argc > 0) {
		warnx("wait: job ids and --group exclude each other");
		return CTL_USAGE;
	}
	if ((a->seen & CMD_OPT_GROUP) && (a->seen & CMD_OPT_ANY)) {
		warnx("wait: --any needs job ids, not --group");
		return CTL_USAGE;
	}
	if (!(a->seen & CMD_OPT_GROUP) && a->argc == 0) {
		warnx("wait: missing argument: job ids, or --group GROUP");
		return CTL_USAGE;
	}
	return CTL_OK;
}

/* Until the group has no queued or running job, or the timeout. */
int
cmd_group_wait(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_msg m;
	struct proto_enc e;
	enum conn_status st;
	int64_t deadline = -1;
	uint64_t id;

	if (a->timeout_ms != 0)
		deadline = conn_now() + (int64_t)a->timeout_ms * 1000;
	id = conn_begin(&ctl->conn, &e, PROTO_WAIT);
	proto_enc_cstr(&e, PF_GROUP, a->group);
	if ((st = conn_send(&ctl->conn, &e)) != CONN_OK)
		return cmd_conn_exit(ctl, st);
	for (;;) {
		st = conn_recv(&ctl->conn, &m, deadline);
		if (st == CONN_TIMEOUT) {
			if (!ctl->quiet)
				warnx("wait: group %s still has jobs after "
				      "the timeout",
				      a->group);
			return CTL_TIMEOUT;
		}
		if (st != CONN_OK)
			return cmd_conn_exit(ctl, st);
		if (m.id != id)
			continue;
		if (m.type == PROTO_ERROR)
			return cmd_refused(&m);
		if (m.type == PROTO_OK)
			return CTL_OK;
	}
}
