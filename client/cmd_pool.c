/*
 * cmd_pool.c -- the commands about the daemon's workers: pool lists every
 * worker with its job and each executor's queue; pool resize changes how
 * many warm threads and processes the daemon keeps.
 *
 * With --json the reply has already been printed by conn.c, so each
 * command only checks it and returns.
 */
#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "concctl.h"

static const char *const pool_titles[] = {
    "EXEC", "WORKER", "PID/TID", "STATE", "SERVED", "UPTIME", "JOB",
};
static const bool pool_right[] = {
    false, true, true, false, true, true, true,
};

/* The remote workers' own table: where each runs. */
static const char *const remote_titles[] = {
    "WORKER", "NODE", "SLURM JOB", "PID", "STATE", "SERVED", "UPTIME", "JOB",
};
static const bool remote_right[] = {
    true, false, true, true, false, true, true, true,
};
#define REMOTE_COLS (sizeof(remote_titles) / sizeof(remote_titles[0]))
_Static_assert(REMOTE_COLS == sizeof(remote_right) / sizeof(remote_right[0]),
               "remote columns");
#define POOL_COLS (sizeof(pool_titles) / sizeof(pool_titles[0]))
_Static_assert(POOL_COLS == sizeof(pool_right) / sizeof(pool_right[0]),
               "pool columns");

/* The executors of the queue line, in order. */
static const struct pool_queue {
	enum proto_exec exec;
	bool queues; /* has a queue: show its length even when empty */
} pool_queues[] = {
    {.exec = PX_LOOP, .queues = false},   {.exec = PX_THREAD, .queues = true},
    {.exec = PX_PROCESS, .queues = true}, {.exec = PX_SLURM, .queues = false},
    {.exec = PX_REMOTE, .queues = false},
};

/* The value under key in a msgpack map, or NULL. */
static const msgpack_object *
pool_map_get(const msgpack_object *map, const char *key)
{
	uint32_t i;

	if (map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (i = 0; i < map->via.map.size; i++) {
		if (proto_obj_streq(&map->via.map.ptr[i].key, key))
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

/* A count under key in a msgpack map; 0 when absent or not a count. */
static uint64_t
pool_map_count(const msgpack_object *map, const char *key)
{
	const msgpack_object *v = pool_map_get(map, key);

	if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return 0;
	return v->via.u64;
}

/* A user's worker: "0 (alice)", or "0 (uid 1000)" without an account. */
static void
pool_user_worker(const struct proto_msg *w, char *buf, size_t size)
{
	uid_t uid = (uid_t)proto_u64(w, PF_UID, 0);
	struct passwd *pw = getpwuid(uid);
	size_t n = strlen(buf);

	if (pw != NULL)
		snprintf(buf + n, size - n, " (%s)", pw->pw_name);
	else
		snprintf(buf + n, size - n, " (uid %u)", (unsigned)uid);
}

/* An id in cell c: "-" when absent or 0 (a thread or worker not known yet). */
static void
pool_id_cell(struct render_table *t, size_t r, size_t c,
             const struct proto_msg *w, enum proto_field f)
{
	char buf[24];

	if (proto_u64(w, f, 0) != 0)
		snprintf(buf, sizeof(buf), "%" PRIu64, proto_u64(w, f, 0));
	else
		snprintf(buf, sizeof(buf), "-");
	render_table_set(t, r, c, buf);
}

/* Every row's last cells, from c: STATE SERVED UPTIME JOB. */
static void
pool_tail_cells(struct render_table *t, size_t r, size_t c,
                const struct proto_msg *w)
{
	char buf[64];

	render_table_set(t, r, c, render_str(w, PF_STATE, buf, sizeof(buf)));
	snprintf(buf, sizeof(buf), "%" PRIu64, proto_u64(w, PF_SERVED, 0));
	render_table_set(t, r, c + 1, buf);
	render_age(buf, sizeof(buf), proto_u64(w, PF_UPTIME, 0));
	render_table_set(t, r, c + 2, buf);
	pool_id_cell(t, r, c + 3, w, PF_JOB);
}

static void
pool_row(struct render_table *t, size_t r, const struct proto_msg *w)
{
	char buf[64];

	render_table_set(t, r, 0, render_str(w, PF_EXEC, buf, sizeof(buf)));
	render_worker(w, buf, sizeof(buf));
	if (proto_has(w, PF_UID))
		pool_user_worker(w, buf, sizeof(buf));
	render_table_set(t, r, 1, buf);
	pool_id_cell(t, r, 2, w, proto_has(w, PF_PID) ? PF_PID : PF_TID);
	pool_tail_cells(t, r, 3, w);
}

static void
remote_row(struct render_table *t, size_t r, const struct proto_msg *w)
{
	char buf[272];

	render_worker(w, buf, sizeof(buf));
	render_table_set(t, r, 0, buf);
	render_table_set(t, r, 1,
	                 proto_has(w, PF_NODE)
	                     ? proto_strcpy(w, PF_NODE, buf, sizeof(buf))
	                     : "-");
	pool_id_cell(t, r, 2, w, PF_SLURM_JOB);
	pool_id_cell(t, r, 3, w, PF_PID);
	pool_tail_cells(t, r, 4, w);
}

static bool
pool_is_remote(const struct proto_msg *w)
{
	size_t len;
	const char *x = proto_str(w, PF_EXEC, &len);

	return x != NULL && len == 6 && memcmp(x, "remote", 6) == 0;
}

/* "queue: loop 0 running; thread 2 running, 5 queued; ..." */
static void
pool_print_queues(const struct proto_msg *m)
{
	const msgpack_object *q;
	size_t i;
	int n = 0;

	if (!proto_has(m, PF_QUEUES))
		return;
	for (i = 0; i < sizeof(pool_queues) / sizeof(pool_queues[0]); i++) {
		const struct pool_queue *pq = &pool_queues[i];
		const char *name = proto_execs[pq->exec];
		uint64_t queued;

		if ((q = pool_map_get(&m->f[PF_QUEUES], name)) == NULL)
			continue;
		queued = pool_map_count(q, "queued");
		/* the executors beyond this machine: only when they have jobs
		 */
		if (pq->exec >= PX_SLURM && queued == 0 &&
		    pool_map_count(q, "running") == 0)
			continue;
		printf("%s%s %" PRIu64 " running", n++ == 0 ? "queue: " : "; ",
		       name, pool_map_count(q, "running"));
		if (pq->queues || queued > 0)
			printf(", %" PRIu64 " queued", queued);
	}
	if (n > 0)
		printf("\n");
}

/* "threads 8, processes 4": the configured sizes. */
static void
pool_print_sizes(const char *lead, const struct proto_msg *m)
{
	printf("%sthreads %" PRIu64 ", processes %" PRIu64 "\n", lead,
	       proto_u64(m, PF_THREADS, 0), proto_u64(m, PF_PROCESSES, 0));
}

/* "limits: cgroup2": how the jobs' resource limits are enforced. */
static void
pool_print_limits(const struct proto_msg *m)
{
	char level[33];

	if (proto_has(m, PF_LIMITS))
		printf("limits: %s\n",
		       proto_strcpy(m, PF_LIMITS, level, sizeof(level)));
}

int
cmd_pool_show(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m, row;
	struct proto_fault f;
	struct render_table t, rt;
	const msgpack_object_array *workers;
	uint64_t id;
	uint32_t i, nlocal = 0, nremote = 0;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_POOL);
	if ((ret = cmd_call(ctl, &e, id, PROTO_POOLINFO, &m)) != CTL_OK)
		return ret;
	if (ctl->json)
		return CTL_OK;
	workers = &m.f[PF_WORKERS].via.array;
	for (i = 0; i < workers->size; i++) {
		if (proto_decode_fields(&workers->ptr[i], &row, &f) < 0) {
			warnx("protocol error in a worker: %s", f.message);
			return CTL_CONNECT;
		}
		if (pool_is_remote(&row))
			nremote++;
		else
			nlocal++;
	}
	render_table_init(&t, POOL_COLS, nlocal, pool_titles, pool_right);
	render_table_init(&rt, REMOTE_COLS, nremote, remote_titles,
	                  remote_right);
	nlocal = nremote = 0;
	for (i = 0; i < workers->size; i++) {
		(void)proto_decode_fields(&workers->ptr[i], &row, &f);
		if (pool_is_remote(&row))
			remote_row(&rt, nremote++, &row);
		else
			pool_row(&t, nlocal++, &row);
	}
	render_table_print(&t);
	render_table_free(&t);
	if (nremote > 0) {
		printf("\nremote workers:\n");
		render_table_print(&rt);
	}
	render_table_free(&rt);
	if (!ctl->quiet) {
		pool_print_queues(&m);
		pool_print_sizes("size: ", &m);
		pool_print_limits(&m);
	}
	return CTL_OK;
}

int
cmd_pool_resize(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_RESIZE);
	if (a->seen & CMD_OPT_THREADS)
		proto_enc_u64(&e, PF_THREADS, a->threads);
	if (a->seen & CMD_OPT_PROCESSES)
		proto_enc_u64(&e, PF_PROCESSES, a->processes);
	if ((ret = cmd_call(ctl, &e, id, PROTO_OK, &m)) != CTL_OK)
		return ret;
	if (!ctl->json)
		pool_print_sizes("", &m);
	return CTL_OK;
}

int
cmd_pool_add(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	char name[65], *end;
	uint64_t id, n;
	int ret;

	errno = 0;
	n = strtoull(a->argv[0], &end, 10);
	if (a->argv[0][0] < '0' || a->argv[0][0] > '9' || *end != '\0' ||
	    errno != 0 || n < 1) {
		warnx("pool add: invalid count: %s (1 or more)", a->argv[0]);
		return CTL_USAGE;
	}
	id = conn_begin(&ctl->conn, &e, PROTO_REMOTE);
	proto_enc_cstr(&e, PF_OP, "add");
	proto_enc_u64(&e, PF_COUNT, n);
	if (a->partition != NULL)
		proto_enc_cstr(&e, PF_PARTITION, a->partition);
	if (a->time_limit != NULL)
		proto_enc_cstr(&e, PF_TIME, a->time_limit);
	if ((ret = cmd_call(ctl, &e, id, PROTO_OK, &m)) != CTL_OK)
		return ret;
	if (!ctl->json)
		printf("%" PRIu64 " remote workers asked of Slurm (%s): see "
		       "concctl pool\n",
		       proto_u64(&m, PF_COUNT, n),
		       proto_strcpy(&m, PF_NAME, name, sizeof(name)));
	return CTL_OK;
}

int
cmd_pool_remove(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_REMOTE);
	proto_enc_cstr(&e, PF_OP, "remove");
	if ((ret = cmd_call(ctl, &e, id, PROTO_OK, &m)) != CTL_OK)
		return ret;
	if (!ctl->json)
		printf("%" PRIu64 " remote workers finish their jobs and exit; "
		       "then their allocations end\n",
		       proto_u64(&m, PF_COUNT, 0));
	return CTL_OK;
}
