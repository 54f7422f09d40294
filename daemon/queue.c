/*
 * queue.c -- the groups a job waits in for its CPU slots.
 *
 * Every job belongs to a group (`default` unless it names another).  A
 * group has a limit in CPU slots (0: none) and a paused flag; a job takes
 * its --cpus slots, by default 1 for a task that runs a command of its
 * own (exec) and 0 for a task that runs inside concd, whose pools bound
 * it already.  A job that finds room in its group goes to its executor at
 * once; the others wait in their group's heap, by priority (higher first)
 * then id (older first).  A job never overtakes the head of its group:
 * when the head needs more slots than are free, the group waits.  A job
 * that asks for more slots than its group's limit runs when the group has
 * nothing else running.
 *
 * When slots come free in several groups at once, the groups take turns,
 * one job each (a ring of the groups that can start one), so a group with
 * a long queue does not starve the others.  Each decision is O(log n):
 * a heap pop, a push, a ring step.
 *
 * A job with a start time (--at, --in) waits in one heap of its own, by
 * time, under one timer.  A held job waits in no heap until released.
 */
#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "conn.h"
#include "executor.h"
#include "job.h"
#include "log.h"
#include "loop.h"
#include "queue.h"
#include "store.h"
#include "task.h"

/* Where a job is, for queue.c (j->qstate). */
enum {
	Q_NEW,      /* not admitted yet */
	Q_ADMITTED, /* counted in its group; waits for its dependencies */
	Q_TIMED,    /* in the schedule, until its start time */
	Q_WAITING,  /* in its group's heap */
	Q_HELD,     /* held back, in no heap */
	Q_RUNNING,  /* given to its executor, with its slots */
	Q_ENDED,
};

struct heap {
	struct job **v;
	size_t n, cap;
	bool (*before)(const struct job *, const struct job *);
};

struct waiter {
	struct conn *conn;
	uint64_t req;
	LIST_ENTRY(waiter) by_group;
};

struct qgroup {
	char name[QUEUE_NAME_MAX + 1];
	struct qgroup *hnext;
	TAILQ_ENTRY(qgroup) ready; /* in the ring of groups that can start */
	LIST_HEAD(, waiter) waiters;
	struct heap heap;
	uint64_t parallel; /* slots; 0: no limit */
	uint64_t used;     /* slots its running jobs take */
	uint64_t mem;      /* its jobs' memory limit unless they ask; 0 */
	uint64_t pids;     /* likewise their processes */
	size_t live;       /* jobs not ended: admitted, waiting, running */
	size_t running;
	uid_t owner;
	bool paused;
	bool in_ready;
	bool config; /* from concd.conf */
};

#define QUEUE_BUCKETS 256
/* Groups a user who is not an admin may own; clients waiting at most. */
#define QUEUE_MAX_USER_GROUPS 64
#define QUEUE_MAX_WAITERS     65536
/* Scheduled jobs: how late a clock set forward may start them, at most. */
#define QUEUE_CLOCK_CHECK_US (10 * 1000000ull)

static struct {
	struct qgroup *bucket[QUEUE_BUCKETS];
	struct qgroup *dflt;
	size_t ngroups;
	TAILQ_HEAD(, qgroup) ready;
	struct heap timed; /* by start time */
	struct event *timer;
	uint64_t timer_at; /* what the timer is armed for; 0: not armed */
	size_t waiting;    /* jobs in heaps or held */
	size_t held;
	size_t nwaiters;
	bool dispatching;
	/* queue_defer: the jobs that entered meanwhile, in entry order */
	unsigned deferring;
	struct job **deferred;
	size_t ndeferred, capdeferred;
} q;

static void queue_dispatch(void);
static void queue_enter(struct job *);
static void queue_timer_cb(evutil_socket_t, short, void *);

/* A job that enters while queue_defer is on waits for it; false: no room. */
static bool
queue_defer_add(struct job *j)
{
	struct job **v;
	size_t cap;

	if (q.ndeferred == q.capdeferred) {
		cap = q.capdeferred > 0 ? 2 * q.capdeferred : 64;
		if ((v = reallocarray(q.deferred, cap, sizeof(*v))) == NULL)
			return false; /* it enters now, out of turn */
		q.deferred = v;
		q.capdeferred = cap;
	}
	q.deferred[q.ndeferred++] = j;
	return true;
}

/*
 * What a job asked for, in its extra fields; a job that asked for none of
 * it has the defaults.
 */
static const char *
job_group_name(const struct job *j)
{
	return j->extra != NULL ? j->extra->group : NULL;
}

static int64_t
job_priority(const struct job *j)
{
	return j->extra != NULL ? j->extra->priority : 0;
}

static uint64_t
job_at(const struct job *j)
{
	return j->extra != NULL ? j->extra->at : 0;
}

static bool
job_held(const struct job *j)
{
	return j->extra != NULL && j->extra->held;
}

uint32_t
queue_job_cpus(const struct job *j)
{
	/* the cluster's CPUs, which Slurm hands out, not this machine's */
	if (j->exec == PX_SLURM || j->exec == PX_REMOTE)
		return 0;
	if (j->extra != NULL && j->extra->cpus > 0)
		return j->extra->cpus;
	return (j->task->traits & TASK_COMMAND) ? 1 : 0;
}

/* ---- heaps of jobs, each job knowing its place (j->qpos) ---- */

static bool
heap_by_priority(const struct job *a, const struct job *b)
{
	int64_t pa = job_priority(a), pb = job_priority(b);

	return pa != pb ? pa > pb : a->id < b->id;
}

static bool
heap_by_time(const struct job *a, const struct job *b)
{
	uint64_t ta = job_at(a), tb = job_at(b);

	return ta != tb ? ta < tb : a->id < b->id;
}

static void
heap_set(struct heap *h, size_t i, struct job *j)
{
	h->v[i] = j;
	j->qpos = (uint32_t)i;
}

static void
heap_up(struct heap *h, size_t i)
{
	struct job *j = h->v[i];

	while (i > 0 && h->before(j, h->v[(i - 1) / 2])) {
		heap_set(h, i, h->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(h, i, j);
}

static void
heap_down(struct heap *h, size_t i)
{
	struct job *j = h->v[i];
	size_t c;

	while ((c = 2 * i + 1) < h->n) {
		if (c + 1 < h->n && h->before(h->v[c + 1], h->v[c]))
			c++;
		if (!h->before(h->v[c], j))
			break;
		heap_set(h, i, h->v[c]);
		i = c;
	}
	heap_set(h, i, j);
}

static int
heap_push(struct heap *h, struct job *j)
{
	if (h->n == h->cap) {
		size_t cap = h->cap > 0 ? h->cap * 2 : 64;
		struct job **v;

		if (cap > UINT32_MAX ||
		    (v = reallocarray(h->v, cap, sizeof(*v))) == NULL)
			return -1;
		h->v = v;
		h->cap = cap;
	}
	h->n++;
	heap_set(h, h->n - 1, j);
	heap_up(h, h->n - 1);
	return 0;
}

static void
heap_remove(struct heap *h, struct job *j)
{
	size_t i = j->qpos;
	struct job *last = h->v[--h->n];

	if (i == h->n)
		return;
	heap_set(h, i, last);
	if (i > 0 && h->before(last, h->v[(i - 1) / 2]))
		heap_up(h, i);
	else
		heap_down(h, i);
}

static struct job *
heap_pop(struct heap *h)
{
	struct job *j = h->v[0];

	heap_remove(h, j);
	return j;
}

static void
heap_free(struct heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

/* ---- the groups ---- */

static size_t
group_slot(const char *name, size_t len)
{
	uint32_t h = 2166136261u;

	while (len-- > 0)
		h = (h ^ (unsigned char)*name++) * 16777619u;
	return h % QUEUE_BUCKETS;
}

static struct qgroup *
group_find(const char *name, size_t len)
{
	struct qgroup *g;

	for (g = q.bucket[group_slot(name, len)]; g != NULL; g = g->hnext)
		if (strlen(g->name) == len && memcmp(g->name, name, len) == 0)
			return g;
	return NULL;
}

static bool
group_name_ok(const char *name, size_t len)
{
	size_t i;

	if (len == 0 || len > QUEUE_NAME_MAX || name[0] == '-' ||
	    name[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyz"
		           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
		           name[i]) == NULL ||
		    name[i] == '\0')
			return false;
	return true;
}

static struct qgroup *
group_new(const char *name, size_t len, uid_t owner)
{
	struct qgroup *g;
	size_t s = group_slot(name, len);

	if (q.ngroups >= QUEUE_MAX_GROUPS ||
	    (g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	memcpy(g->name, name, len);
	g->owner = owner;
	g->heap.before = heap_by_priority;
	LIST_INIT(&g->waiters);
	g->hnext = q.bucket[s];
	q.bucket[s] = g;
	q.ngroups++;
	return g;
}

static void
group_free(struct qgroup *g)
{
	struct qgroup **p;

	for (p = &q.bucket[group_slot(g->name, strlen(g->name))]; *p != g;
	     p = &(*p)->hnext)
		;
	*p = g->hnext;
	q.ngroups--;
	if (g->in_ready)
		TAILQ_REMOVE(&q.ready, g, ready);
	heap_free(&g->heap);
	free(g);
}

/* The store keeps every group as it is now (nothing without a store). */
static void
group_persist(const struct qgroup *g)
{
	struct store_group sg = {
	    .name = g->name,
	    .parallel = g->parallel,
	    .mem = g->mem,
	    .pids = g->pids,
	    .uid = g->owner,
	    .paused = g->paused,
	};

	store_put_group(&sg);
}

/* A group of the store, at the start: as it was when concd stopped. */
static void
group_restore(const struct store_group *sg, void *arg)
{
	size_t len = strlen(sg->name);
	struct qgroup *g;

	if (!group_name_ok(sg->name, len)) {
		log_warnx("store: group \"%.64s\" has an invalid name; "
		          "left out",
		          sg->name);
		return;
	}
	if ((g = group_find(sg->name, len)) == NULL &&
	    (g = group_new(sg->name, len, sg->uid)) == NULL) {
		log_warnx("store: group %s left out: too many groups",
		          sg->name);
		return;
	}
	g->owner = sg->uid;
	g->parallel = sg->parallel;
	g->mem = sg->mem;
	g->pids = sg->pids;
	g->paused = sg->paused;
}

/* A job's group; `default` when it names none or one that has gone. */
static struct qgroup *
group_of(const struct job *j)
{
	const char *name = job_group_name(j);
	struct qgroup *g;

	if (name == NULL || (g = group_find(name, strlen(name))) == NULL)
		return q.dflt;
	return g;
}

const char *
queue_job_group(const struct job *j)
{
	return group_of(j)->name;
}

/* Room for n more slots: within the limit, or alone in the group. */
static bool
group_room(const struct qgroup *g, uint64_t n)
{
	return g->parallel == 0 || g->used == 0 || g->used + n <= g->parallel;
}

static bool
group_can_start(const struct qgroup *g)
{
	return !g->paused && g->heap.n > 0 &&
	       group_room(g, queue_job_cpus(g->heap.v[0]));
}

/* Into the ring of groups that can start a job, at its end. */
static void
group_kick(struct qgroup *g)
{
	if (!g->in_ready && group_can_start(g)) {
		TAILQ_INSERT_TAIL(&q.ready, g, ready);
		g->in_ready = true;
	}
}

/* Its last job ended: the clients waiting for it hear so. */
static void
group_idle(struct qgroup *g)
{
	struct proto_enc e;
	struct waiter *w;

	while ((w = LIST_FIRST(&g->waiters)) != NULL) {
		proto_enc_begin(&e, conn_out(w->conn), PROTO_OK, w->req);
		proto_enc_cstr(&e, PF_GROUP, g->name);
		proto_enc_end(&e);
		conn_dirty(w->conn);
		LIST_REMOVE(w, by_group);
		free(w);
		q.nwaiters--;
	}
}

/* ---- jobs through the groups ---- */

void
queue_init(unsigned ncpu)
{
	TAILQ_INIT(&q.ready);
	q.timed.before = heap_by_time;
	if (q.dflt == NULL &&
	    (q.dflt = group_new("default", strlen("default"), 0)) == NULL)
		fatalx("queue_init: out of memory");
	if (q.timer == NULL && loop_base != NULL &&
	    (q.timer = evtimer_new(loop_base, queue_timer_cb, NULL)) == NULL)
		fatalx("queue_init: out of memory");
	q.dflt->parallel = ncpu > 0 ? ncpu : 1;
	if (store_groups(group_restore, NULL) < 0)
		log_warnx("store: the groups cannot be read; only default "
		          "and those of concd.conf are there");
}

size_t
queue_waiting(void)
{
	return q.waiting;
}

bool
queue_parked(const struct job *j)
{
	return j->qstate == Q_HELD || j->qstate == Q_TIMED ||
	       (j->qstate == Q_WAITING && group_of(j)->paused);
}

size_t
queue_parked_count(void)
{
	struct qgroup *g;
	size_t i, n = q.held + q.timed.n;

	for (i = 0; i < QUEUE_BUCKETS; i++)
		for (g = q.bucket[i]; g != NULL; g = g->hnext)
			if (g->paused)
				n += g->heap.n;
	return n;
}

/* To its executor, with its slots. */
static void
queue_start(struct qgroup *g, struct job *j)
{
	/* the group's limits, for a job that asks for none of its own */
	if ((g->mem > 0 && (j->extra == NULL || j->extra->mem == 0)) ||
	    (g->pids > 0 && (j->extra == NULL || j->extra->pids == 0))) {
		if (job_extra(j) != NULL) {
			if (j->extra->mem == 0)
				j->extra->mem = g->mem;
			if (j->extra->pids == 0)
				j->extra->pids = g->pids;
			job_changed(j);
		}
	}
	g->used += queue_job_cpus(j);
	g->running++;
	j->qstate = Q_RUNNING;
	sched_submit(j);
}

/*
 * Counted in its group from now on.  A job whose group has gone (a job of
 * the store, or a restart of one) waits in default, and says so: its group
 * must not change under it until it ends.
 */
void
queue_admit(struct job *j)
{
	const char *name = job_group_name(j);

	if (j->qstate != Q_NEW)
		return;
	if (name != NULL && group_find(name, strlen(name)) == NULL) {
		log_warnx("job %llu: group %s is gone; it waits in default",
		          (unsigned long long)j->id, name);
		free(j->extra->group);
		j->extra->group = NULL;
		job_changed(j);
	}
	j->qstate = Q_ADMITTED;
	group_of(j)->live++;
}

/*
 * Every job passes here once its dependencies let it: it starts now if
 * its group has room and nothing waits before it, or waits its turn.
 */
static void
queue_enter(struct job *j)
{
	struct qgroup *g = group_of(j);
	uint32_t cpus = queue_job_cpus(j);
	uint64_t at = job_at(j);

	if (job_held(j)) {
		j->qstate = Q_HELD;
		q.waiting++;
		q.held++;
		return;
	}
	if (at > loop_now_us() && q.timer != NULL &&
	    heap_push(&q.timed, j) == 0) {
		j->qstate = Q_TIMED;
		q.waiting++;
		queue_dispatch(); /* arms the timer */
		return;
	}
	if (q.deferring > 0 && queue_defer_add(j))
		return;
	if (!g->paused &&
	    (cpus == 0 || (g->heap.n == 0 && group_room(g, cpus)))) {
		queue_start(g, j);
		return;
	}
	if (heap_push(&g->heap, j) < 0) {
		/* out of memory for the heap: it runs rather than waits */
		log_warnx("job %llu: no memory to queue it in group %s",
		          (unsigned long long)j->id, g->name);
		queue_start(g, j);
		return;
	}
	j->qstate = Q_WAITING;
	q.waiting++;
	group_kick(g);
	queue_dispatch();
}

static int
queue_defer_order(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a,
	                 *y = *(struct job *const *)b;

	return heap_by_priority(x, y) ? -1 : heap_by_priority(y, x) ? 1 : 0;
}

void
queue_defer(bool on)
{
	struct job **v;
	size_t i, n;

	if (on) {
		q.deferring++;
		return;
	}
	if (--q.deferring > 0)
		return;
	/* by priority, then id: the first of them takes a free slot */
	v = q.deferred;
	n = q.ndeferred;
	q.deferred = NULL;
	q.ndeferred = q.capdeferred = 0;
	if (n > 1)
		qsort(v, n, sizeof(*v), queue_defer_order);
	for (i = 0; i < n; i++)
		queue_enter(v[i]);
	free(v);
}

void
queue_submit(struct job *j)
{
	if (j->qstate == Q_NEW)
		queue_admit(j);
	else if (j->qstate == Q_RUNNING)
		queue_requeue(j);
	queue_enter(j);
}

/* Out of whichever heap it waits in; not held any longer. */
static void
queue_unlink(struct job *j)
{
	switch (j->qstate) {
	case Q_TIMED:
		heap_remove(&q.timed, j);
		break;
	case Q_WAITING:
		heap_remove(&group_of(j)->heap, j);
		break;
	case Q_HELD:
		q.held--;
		break;
	default:
		return;
	}
	q.waiting--;
	j->qstate = Q_ADMITTED;
}

/* Its slots go back; it stays counted in its group. */
void
queue_requeue(struct job *j)
{
	struct qgroup *g = group_of(j);

	if (j->qstate != Q_RUNNING)
		return;
	g->used -= queue_job_cpus(j);
	g->running--;
	j->qstate = Q_ADMITTED;
	group_kick(g);
	queue_dispatch();
}

void
queue_ended(struct job *j)
{
	struct qgroup *g = group_of(j);

	if (j->qstate == Q_NEW || j->qstate == Q_ENDED)
		return;
	queue_requeue(j);
	queue_unlink(j);
	j->qstate = Q_ENDED;
	if (g->live > 0 && --g->live == 0)
		group_idle(g);
	group_kick(g);
	queue_dispatch();
}

bool
queue_cancel(struct job *j)
{
	if (j->qstate != Q_TIMED && j->qstate != Q_WAITING &&
	    j->qstate != Q_HELD)
		return false;
	queue_unlink(j);
	atomic_store(&j->ctx.cancel, true);
	job_finish(j, PS_CANCELLED);
	return true;
}

/* ---- the schedule ---- */

static void
queue_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	q.timer_at = 0;
	queue_dispatch();
}

/*
 * The timer follows the earliest start time.  A start time is a time of
 * the wall clock and the timer runs on the monotonic one, which a clock
 * set forward (an NTP step, date -s) does not move and which stops while
 * the machine sleeps: a timer set for the whole wait would start the job
 * late by as much.  So it looks at the wall clock again at least every
 * QUEUE_CLOCK_CHECK_US.
 */
static void
queue_timer_arm(void)
{
	uint64_t at, now;
	struct timeval tv;

	if (q.timed.n == 0 || q.timer == NULL)
		return;
	at = job_at(q.timed.v[0]);
	if (q.timer_at == at)
		return;
	now = loop_now_us();
	at = at > now ? at - now : 0;
	if (at > QUEUE_CLOCK_CHECK_US)
		at = QUEUE_CLOCK_CHECK_US;
	tv.tv_sec = (time_t)(at / 1000000);
	tv.tv_usec = (suseconds_t)(at % 1000000);
	evtimer_add(q.timer, &tv);
	q.timer_at = job_at(q.timed.v[0]);
}

/*
 * Jobs whose time has come enter their groups; then the groups that can
 * start a job take turns, one job each, until none can.
 */
static void
queue_dispatch(void)
{
	struct qgroup *g;
	struct job *j;
	uint64_t now;

	if (q.dispatching)
		return;
	q.dispatching = true;
	if (q.timed.n > 0) {
		now = loop_now_us();
		/* all that are due, then by priority */
		queue_defer(true);
		while (q.timed.n > 0 && job_at(q.timed.v[0]) <= now) {
			j = heap_pop(&q.timed);
			q.waiting--;
			j->qstate = Q_ADMITTED;
			queue_enter(j);
		}
		queue_defer(false);
		queue_timer_arm();
	}
	while ((g = TAILQ_FIRST(&q.ready)) != NULL) {
		TAILQ_REMOVE(&q.ready, g, ready);
		g->in_ready = false;
		if (!group_can_start(g))
			continue;
		j = heap_pop(&g->heap);
		q.waiting--;
		queue_start(g, j);
		group_kick(g);
	}
	q.dispatching = false;
}

/* ---- what ps and status show ---- */

/*
 * Jobs before j in its group's heap: a walk of the heap that enters only
 * the parts with jobs before j, so it costs about as much as the answer.
 */
bool
queue_ahead(const struct job *j, uint64_t *ahead)
{
	const struct heap *h;
	size_t stack[64], n = 0, i;
	uint64_t count = 0;

	if (j->qstate != Q_WAITING)
		return false;
	h = &group_of(j)->heap;
	if (h->n > 0 && h->v[0] != j && h->before(h->v[0], j))
		stack[n++] = 0;
	while (n > 0) {
		i = stack[--n];
		count++;
		if (2 * i + 1 < h->n && h->before(h->v[2 * i + 1], j))
			stack[n++] = 2 * i + 1;
		if (2 * i + 2 < h->n && h->before(h->v[2 * i + 2], j))
			stack[n++] = 2 * i + 2;
	}
	*ahead = count;
	return true;
}

struct ahead_row {
	const struct job *j;
	size_t index;
};

static const struct heap *ahead_heap;

static int
ahead_cmp(const void *a, const void *b)
{
	const struct job *x = ((const struct ahead_row *)a)->j;
	const struct job *y = ((const struct ahead_row *)b)->j;

	if (x == y)
		return 0;
	return ahead_heap->before(x, y) ? -1 : 1;
}

/*
 * For many rows: the rows of one group sorted in its order, then one
 * pass over its heap that counts each job once, at the first row it is
 * before (a binary search), and sums.  O(n log rows) per group.
 */
void
queue_ahead_many(struct job *const *rows, size_t n, uint64_t *ahead,
                 bool *waiting)
{
	struct ahead_row *r;
	uint64_t *hits;
	size_t i, k, m, lo, hi;
	struct qgroup *g;

	for (i = 0; i < n; i++) {
		waiting[i] = rows[i]->qstate == Q_WAITING;
		ahead[i] = 0;
	}
	if ((r = calloc(n + 1, sizeof(*r))) == NULL ||
	    (hits = calloc(n + 1, sizeof(*hits))) == NULL) {
		free(r);
		for (i = 0; i < n; i++)
			if (waiting[i])
				waiting[i] = queue_ahead(rows[i], &ahead[i]);
		return;
	}
	for (i = 0; i < n; i++) {
		if (!waiting[i] || ahead[i] != 0)
			continue;
		/* the rows of this group, not done yet */
		g = group_of(rows[i]);
		for (m = 0, k = i; k < n; k++)
			if (waiting[k] && group_of(rows[k]) == g)
				r[m++] = (struct ahead_row){rows[k], k};
		ahead_heap = &g->heap;
		qsort(r, m, sizeof(*r), ahead_cmp);
		memset(hits, 0, (m + 1) * sizeof(*hits));
		for (k = 0; k < g->heap.n; k++) {
			const struct job *x = g->heap.v[k];

			/* the first row x is before */
			for (lo = 0, hi = m; lo < hi;) {
				size_t mid = (lo + hi) / 2;

				if (g->heap.before(x, r[mid].j))
					hi = mid;
				else
					lo = mid + 1;
			}
			hits[lo]++;
		}
		for (k = 0, lo = 0; k < m; k++) {
			lo += hits[k];
			/* a row counted as 0 ahead is marked done by +1 */
			ahead[r[k].index] = lo + 1;
		}
	}
	for (i = 0; i < n; i++)
		if (waiting[i])
			ahead[i]--;
	free(hits);
	free(r);
}

/* ---- requests ---- */

static void queue_error(struct conn *c, uint64_t req, enum proto_error code,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
queue_error(struct conn *c, uint64_t req, enum proto_error code,
            const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	proto_enc_error(conn_out(c), req, code, message);
	conn_dirty(c);
}

static void
group_encode(struct proto_enc *e, const struct qgroup *g)
{
	proto_enc_cstr(e, PF_NAME, g->name);
	proto_enc_u64(e, PF_PARALLEL, g->parallel);
	proto_enc_bool(e, PF_PAUSED, g->paused);
	proto_enc_u64(e, PF_UID, g->owner);
	proto_enc_u64(e, PF_CPUS, g->used);
	if (g->mem > 0)
		proto_enc_u64(e, PF_MEM, g->mem);
	if (g->pids > 0)
		proto_enc_u64(e, PF_PIDS, g->pids);
	proto_enc_key(e, PF_COUNTS);
	proto_enc_map_open(e);
	msgpack_pack_str_with_body(&e->pk, "queued", 6);
	msgpack_pack_uint64(&e->pk, g->live - g->running);
	proto_enc_elem(e);
	msgpack_pack_str_with_body(&e->pk, "running", 7);
	msgpack_pack_uint64(&e->pk, g->running);
	proto_enc_elem(e);
	proto_enc_close(e);
}

static int
group_name_cmp(const void *a, const void *b)
{
	return strcmp((*(struct qgroup *const *)a)->name,
	              (*(struct qgroup *const *)b)->name);
}

struct group_call {
	struct conn *c;
	const struct proto_msg *m;
	struct qgroup *g; /* the group it names, if it exists */
	const char *name;
	size_t len;
	bool admin;
};

static void
group_reply(struct group_call *r, struct qgroup *g)
{
	struct proto_enc e;

	proto_enc_begin(&e, conn_out(r->c), PROTO_OK, r->m->id);
	if (g != NULL)
		group_encode(&e, g);
	else
		proto_enc_str(&e, PF_NAME, r->name, r->len);
	proto_enc_end(&e);
	conn_dirty(r->c);
}

static int
group_op_list(struct group_call *r)
{
	struct qgroup **all, *g;
	struct proto_enc e;
	size_t i, n = 0;

	if ((all = calloc(q.ngroups, sizeof(*all))) == NULL) {
		queue_error(r->c, r->m->id, PE_INTERNAL, "out of memory");
		return -1;
	}
	for (i = 0; i < QUEUE_BUCKETS; i++)
		for (g = q.bucket[i]; g != NULL; g = g->hnext)
			all[n++] = g;
	qsort(all, n, sizeof(*all), group_name_cmp);
	proto_enc_begin(&e, conn_out(r->c), PROTO_GROUPLIST, r->m->id);
	proto_enc_key(&e, PF_GROUPS);
	proto_enc_array_open(&e);
	for (i = 0; i < n; i++) {
		if (r->len > 0 && all[i] != r->g)
			continue;
		proto_enc_map_open(&e);
		group_encode(&e, all[i]);
		proto_enc_close(&e);
	}
	proto_enc_close(&e);
	proto_enc_end(&e);
	conn_dirty(r->c);
	free(all);
	return 0;
}

/*
 * Whether the limits a request names are in range, as concd.conf(5)'s
 * are: -1 after the error reply.  Checked before a group is made or
 * changed, so that a refused request leaves none behind.
 */
static int
group_check(struct group_call *r)
{
	uint64_t parallel = proto_u64(r->m, PF_PARALLEL, 0);
	uint64_t pids = proto_u64(r->m, PF_PIDS, 0);

	if (parallel > PROTO_MAX_SLOTS) {
		queue_error(r->c, r->m->id, PE_BAD_FIELD,
		            "parallel must be from 0 to %d, not %llu",
		            PROTO_MAX_SLOTS, (unsigned long long)parallel);
		return -1;
	}
	if (pids > PROTO_MAX_PIDS) {
		queue_error(r->c, r->m->id, PE_BAD_FIELD,
		            "pids must be from 0 to %d, not %llu",
		            PROTO_MAX_PIDS, (unsigned long long)pids);
		return -1;
	}
	return 0;
}

/* The limit and paused flag the request names, on a group. */
static void
group_apply(struct qgroup *g, const struct proto_msg *m)
{
	if (proto_has(m, PF_PARALLEL))
		g->parallel = proto_u64(m, PF_PARALLEL, 0);
	if (proto_has(m, PF_PAUSED))
		g->paused = proto_bool(m, PF_PAUSED, false);
	if (proto_has(m, PF_MEM))
		g->mem = proto_u64(m, PF_MEM, 0);
	if (proto_has(m, PF_PIDS))
		g->pids = proto_u64(m, PF_PIDS, 0);
	group_kick(g);
	queue_dispatch();
}

static size_t
group_owned(uid_t uid)
{
	struct qgroup *g;
	size_t i, n = 0;

	for (i = 0; i < QUEUE_BUCKETS; i++)
		for (g = q.bucket[i]; g != NULL; g = g->hnext)
			n += g->owner == uid;
	return n;
}

static int
group_op_add(struct group_call *r)
{
	struct qgroup *g;

	if (r->g != NULL) {
		queue_error(r->c, r->m->id, PE_BAD_FIELD,
		            "group %s exists already", r->g->name);
		return -1;
	}
	if (group_check(r) < 0)
		return -1;
	if (!r->admin && group_owned(conn_uid(r->c)) >= QUEUE_MAX_USER_GROUPS) {
		queue_error(r->c, r->m->id, PE_QUEUE_FULL,
		            "uid %u owns %d groups already, the most a user "
		            "who is not an admin may own",
		            (unsigned)conn_uid(r->c), QUEUE_MAX_USER_GROUPS);
		return -1;
	}
	if ((g = group_new(r->name, r->len, conn_uid(r->c))) == NULL) {
		queue_error(r->c, r->m->id, PE_QUEUE_FULL,
		            "there are %d groups already, the most concd keeps",
		            QUEUE_MAX_GROUPS);
		return -1;
	}
	group_apply(g, r->m);
	group_persist(g);
	log_info("group %s added by uid %u: parallel %llu%s", g->name,
	         (unsigned)conn_uid(r->c), (unsigned long long)g->parallel,
	         g->paused ? ", paused" : "");
	group_reply(r, g);
	return 0;
}

static int
group_op_set(struct group_call *r)
{
	if (group_check(r) < 0)
		return -1;
	group_apply(r->g, r->m);
	group_persist(r->g);
	log_info("group %s set by uid %u: parallel %llu%s", r->g->name,
	         (unsigned)conn_uid(r->c), (unsigned long long)r->g->parallel,
	         r->g->paused ? ", paused" : "");
	group_reply(r, r->g);
	return 0;
}

static int
group_pause(struct group_call *r, bool paused)
{
	r->g->paused = paused;
	group_persist(r->g);
	group_kick(r->g);
	queue_dispatch();
	log_info("group %s %s by uid %u", r->g->name,
	         paused ? "paused" : "resumed", (unsigned)conn_uid(r->c));
	group_reply(r, r->g);
	return 0;
}

static int
group_op_pause(struct group_call *r)
{
	return group_pause(r, true);
}

static int
group_op_resume(struct group_call *r)
{
	return group_pause(r, false);
}

static int
group_op_remove(struct group_call *r)
{
	struct qgroup *g = r->g;

	if (g == q.dflt || g->config) {
		queue_error(r->c, r->m->id, PE_PERMISSION,
		            "group %s cannot be removed: %s", g->name,
		            g == q.dflt ? "it is the default group"
		                        : "it is set in concd.conf");
		return -1;
	}
	if (g->live > 0) {
		queue_error(r->c, r->m->id, PE_NOT_FINISHED,
		            "group %s has %zu jobs queued or running: cancel "
		            "them, or wait for them (concctl wait --group %s)",
		            g->name, g->live, g->name);
		return -1;
	}
	log_info("group %s removed by uid %u", g->name,
	         (unsigned)conn_uid(r->c));
	group_idle(g);
	store_delete_group(g->name);
	group_free(g);
	r->g = NULL;
	group_reply(r, NULL);
	return 0;
}

/* The ops of a group request: whether each needs the group, or changes it. */
static const struct group_op {
	const char *name;
	int (*fn)(struct group_call *);
	bool exists;  /* the group must exist */
	bool changes; /* only its creator or an admin */
} group_ops[] = {
    {"list", group_op_list, false, false},
    {"add", group_op_add, false, false},
    {"set", group_op_set, true, true},
    {"pause", group_op_pause, true, true},
    {"resume", group_op_resume, true, true},
    {"remove", group_op_remove, true, true},
};
#define GROUP_OP_COUNT (sizeof(group_ops) / sizeof(group_ops[0]))
_Static_assert(GROUP_OP_COUNT == 6, "group_ops rows");

void
queue_request_group(struct conn *c, const struct proto_msg *m, bool admin)
{
	struct group_call r = {.c = c, .m = m, .admin = admin};
	const struct group_op *op = NULL;
	char quoted[129];
	const char *name;
	size_t i, len;

	name = proto_str(m, PF_OP, &len);
	for (i = 0; i < GROUP_OP_COUNT; i++)
		if (strlen(group_ops[i].name) == len &&
		    memcmp(group_ops[i].name, name, len) == 0)
			op = &group_ops[i];
	if (op == NULL) {
		queue_error(c, m->id, PE_BAD_FIELD,
		            "unknown op \"%s\" (list, add, set, pause, resume, "
		            "remove)",
		            proto_quote(quoted, sizeof(quoted), name, len));
		return;
	}
	r.name = proto_str(m, PF_NAME, &r.len);
	if (r.name == NULL && op->fn != group_op_list) {
		queue_error(c, m->id, PE_BAD_FIELD,
		            "group %s needs the group's \"name\"", op->name);
		return;
	}
	if (r.name == NULL)
		r.name = "", r.len = 0;
	if ((r.name[0] != '\0' || op->fn != group_op_list) &&
	    !group_name_ok(r.name, r.len)) {
		queue_error(
		    c, m->id, PE_BAD_FIELD,
		    "invalid group name \"%s\": 1 to %d letters, digits, "
		    "'.', '_' or '-', not starting with '-' or '.'",
		    proto_quote(quoted, sizeof(quoted), r.name, r.len),
		    QUEUE_NAME_MAX);
		return;
	}
	r.g = r.len > 0 ? group_find(r.name, r.len) : NULL;
	if ((op->exists || (op->fn == group_op_list && r.len > 0)) &&
	    r.g == NULL) {
		queue_error(c, m->id, PE_NO_SUCH_GROUP,
		            "no such group \"%s\" (see concctl group list)",
		            proto_quote(quoted, sizeof(quoted), r.name, r.len));
		return;
	}
	if (op->changes && !admin && r.g->owner != conn_uid(c)) {
		queue_error(
		    c, m->id, PE_PERMISSION,
		    "group %s belongs to uid %u: only its creator or an "
		    "admin may change it (root, admin-group, a user "
		    "instance's user)",
		    r.g->name, (unsigned)r.g->owner);
		return;
	}
	op->fn(&r);
}

int
queue_check_group(const char *name, size_t len, char *cause, size_t size)
{
	char quoted[129];

	if (group_find(name, len) != NULL)
		return 0;
	snprintf(cause, size, "no such group \"%s\" (see concctl group list)",
	         proto_quote(quoted, sizeof(quoted), name, len));
	return -1;
}

void
queue_hold_refused(uint64_t id, int state, bool starting, bool hold,
                   char *cause, size_t len)
{
	const char *what = hold ? "held" : "released";

	if (PROTO_STATE_FINAL(state))
		snprintf(cause, len,
		         "job %llu has already ended (%s): only a queued job "
		         "can be %s",
		         (unsigned long long)id, proto_states[state], what);
	else
		snprintf(cause, len,
		         "job %llu is %s: only a queued job can be %s",
		         (unsigned long long)id,
		         starting ? "starting" : proto_states[state], what);
}

int
queue_hold(struct job *j, bool hold, enum proto_error *code, char *cause,
           size_t len)
{
	if (j->state != PS_QUEUED || j->qstate == Q_RUNNING) {
		*code = PE_BAD_FIELD;
		queue_hold_refused(j->id, j->state, j->state == PS_QUEUED, hold,
		                   cause, len);
		return -1;
	}
	if (job_held(j) == hold)
		return 0;
	if (job_extra(j) == NULL) {
		*code = PE_INTERNAL;
		snprintf(cause, len, "out of memory");
		return -1;
	}
	j->extra->held = hold;
	job_changed(j);
	if (hold && (j->qstate == Q_WAITING || j->qstate == Q_TIMED)) {
		queue_unlink(j);
		j->qstate = Q_HELD;
		q.waiting++;
		q.held++;
		group_kick(group_of(j));
		queue_dispatch();
	} else if (!hold && j->qstate == Q_HELD) {
		queue_unlink(j);
		queue_enter(j);
	}
	return 0;
}

void
queue_request_wait(struct conn *c, const struct proto_msg *m)
{
	char quoted[129];
	struct qgroup *g;
	struct waiter *w;
	const char *name;
	size_t len;

	name = proto_str(m, PF_GROUP, &len);
	if ((g = group_find(name, len)) == NULL) {
		queue_error(c, m->id, PE_NO_SUCH_GROUP,
		            "no such group \"%s\" (see concctl group list)",
		            proto_quote(quoted, sizeof(quoted), name, len));
		return;
	}
	if (q.nwaiters >= QUEUE_MAX_WAITERS) {
		queue_error(
		    c, m->id, PE_QUEUE_FULL,
		    "%d clients wait for groups already; try again later",
		    QUEUE_MAX_WAITERS);
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		queue_error(c, m->id, PE_INTERNAL, "out of memory");
		return;
	}
	q.nwaiters++;
	w->conn = c;
	w->req = m->id;
	LIST_INSERT_HEAD(&g->waiters, w, by_group);
	if (g->live == 0)
		group_idle(g);
}

void
queue_unwait_conn(struct conn *c)
{
	struct waiter *w, *next;
	struct qgroup *g;
	size_t i;

	for (i = 0; i < QUEUE_BUCKETS; i++)
		for (g = q.bucket[i]; g != NULL; g = g->hnext)
			for (w = LIST_FIRST(&g->waiters); w != NULL; w = next) {
				next = LIST_NEXT(w, by_group);
				if (w->conn == c) {
					LIST_REMOVE(w, by_group);
					free(w);
					q.nwaiters--;
				}
			}
}

int
queue_config(const struct config_group *cg, size_t n, char *cause, size_t len)
{
	struct qgroup *g;
	size_t i, nlen;

	/* a group taken out of the file is left as if added by root */
	for (i = 0; i < QUEUE_BUCKETS; i++)
		for (g = q.bucket[i]; g != NULL; g = g->hnext)
			g->config = false;
	for (i = 0; i < n; i++) {
		nlen = strlen(cg[i].name);
		if (!group_name_ok(cg[i].name, nlen)) {
			snprintf(cause, len, "invalid group name \"%.64s\"",
			         cg[i].name);
			return -1;
		}
		if ((g = group_find(cg[i].name, nlen)) == NULL &&
		    (g = group_new(cg[i].name, nlen, 0)) == NULL) {
			snprintf(cause, len, "too many groups (at most %d)",
			         QUEUE_MAX_GROUPS);
			return -1;
		}
		g->owner = 0;
		g->config = true;
		g->parallel = cg[i].parallel;
		g->paused = cg[i].paused;
		g->mem = cg[i].mem;
		g->pids = cg[i].pids;
		group_persist(g);
		group_kick(g);
	}
	queue_dispatch();
	return 0;
}

void
queue_shutdown(void)
{
	struct qgroup *g;
	struct waiter *w;
	size_t i;

	if (q.timer != NULL)
		event_free(q.timer);
	q.timer = NULL;
	for (i = 0; i < QUEUE_BUCKETS; i++)
		while ((g = q.bucket[i]) != NULL) {
			while ((w = LIST_FIRST(&g->waiters)) != NULL) {
				LIST_REMOVE(w, by_group);
				free(w);
			}
			group_free(g);
		}
	q.dflt = NULL;
	heap_free(&q.timed);
}
