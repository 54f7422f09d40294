/*
 * job.c -- the job table: ids, states, watchers and the events sent to
 * them.  Lookups by id are O(1) through a hash table that doubles as it
 * fills; finished jobs are kept, oldest first, up to a bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "input.h"
#include "job.h"
#include "joblog.h"
#include "log.h"
#include "loop.h"
#include "store.h"
#include "task.h"

static struct {
	struct job **bucket;
	size_t nbucket; /* a power of two */
	size_t count;
	uint64_t next_id;
	struct job_queue finished; /* oldest first */
	size_t nfinished;
	size_t max_finished;
	uint64_t ttl_us; /* 0: no age limit */
	struct event *sweep;
	size_t states[PS_COUNT];
	uint64_t *held; /* ids of jobs whose output is held, see job_output */
	size_t nheld, capheld;
	struct job **dirty; /* the store is owed their rows; NULL: gone */
	size_t ndirty, capdirty;
	size_t ndeferred;  /* of them, held back by job_collect */
	uint64_t id_asked; /* the store's id reservation asked for */
} jobs;
/* The floor above: the executors that run the jobs (job_hook_sched). */
static const struct job_hooks *jobs_up;

/*
 * A gather request's jobs: with fail_fast, the first to fail cancels
 * the rest.  The request watches them all through one watch here, not
 * one per job, so a gather of 10,000 sleeps stays small.  left counts
 * the members not yet ended, plus holds while walking them; the gather
 * and its watch go when it drops to 0.
 */
struct gather {
	bool fail_fast;
	bool tripped;
	size_t n, left;
	struct watch_list watches;
	uint64_t ids[];
};

static void job_trim(void);
static void job_gather_put(struct gather *);
static void job_drained(struct conn *);
static uint64_t job_next_id(void);

/*
 * A job's watchers: its own, then those of its gather request.  The
 * loop body may not remove the watch it is on.
 */
static struct watch *
watch_first(struct job *j)
{
	struct watch *w = LIST_FIRST(&j->watches);

	return w != NULL || j->gather == NULL ? w
	                                      : LIST_FIRST(&j->gather->watches);
}

static struct watch *
watch_next(struct job *j, struct watch *w)
{
	struct watch *n = LIST_NEXT(w, by_job);

	if (n == NULL && w->index != WATCH_GATHER && j->gather != NULL)
		n = LIST_FIRST(&j->gather->watches);
	return n;
}

#define JOB_FOREACH_WATCH(w, j)                                                \
	for ((w) = watch_first(j); (w) != NULL; (w) = watch_next((j), (w)))

/* A watch on list l (a job's or a gather's) for connection c. */
static int
watch_add(struct watch_list *l, struct conn *c, uint64_t req, int32_t index,
          bool attached)
{
	struct watch *w;

	if ((w = malloc(sizeof(*w))) == NULL)
		return -1;
	w->conn = c;
	w->req = req;
	w->index = index;
	w->dropped = 0;
	w->attached = attached;
	w->logged = false;
	LIST_INSERT_HEAD(l, w, by_job);
	LIST_INSERT_HEAD(conn_watches(c), w, by_conn);
	return 0;
}

/* Off both its lists, and gone. */
static void
watch_free(struct watch *w)
{
	LIST_REMOVE(w, by_job);
	LIST_REMOVE(w, by_conn);
	free(w);
}

/* The index a watcher sees the job at: its place in the gather, if any. */
static int32_t
watch_index(const struct job *j, const struct watch *w)
{
	return w->index == WATCH_GATHER ? (int32_t)j->gindex : w->index;
}

/*
 * Unfinished jobs of each uid but concd's own, for user-job-limit: a
 * handful of users, looked up in a row.
 */
static struct {
	struct job_user {
		uid_t uid;
		size_t n;
	} * v;
	size_t n, cap, limit;
	uid_t self;
} users = {.limit = SIZE_MAX};

static struct job_user *
job_user(uid_t uid)
{
	size_t i;

	for (i = 0; i < users.n; i++)
		if (users.v[i].uid == uid)
			return &users.v[i];
	return NULL;
}

/* One more (up) or one fewer unfinished job of uid. */
static void
job_user_count(uid_t uid, bool up)
{
	struct job_user *u;

	if (uid == users.self)
		return;
	if ((u = job_user(uid)) == NULL) {
		if (!up)
			return;
		if (users.n == users.cap) {
			users.cap = users.cap > 0 ? 2 * users.cap : 16;
			users.v =
			    reallocarray(users.v, users.cap, sizeof(*users.v));
			if (users.v == NULL)
				abort(); /* out of memory */
		}
		u = &users.v[users.n++];
		*u = (struct job_user){.uid = uid};
	}
	if (up)
		u->n++;
	else if (--u->n == 0)
		*u = users.v[--users.n];
}

void
job_set_user_limit(size_t n)
{
	users.limit = n;
}

bool
job_user_room(uid_t uid, size_t n, size_t *has)
{
	const struct job_user *u = job_user(uid);

	*has = u != NULL ? u->n : 0;
	return uid == users.self || *has + n <= users.limit;
}

void
job_init(size_t max_finished, uint64_t finished_ttl_s)
{
	users.self = geteuid();
	jobs.nbucket = 1024;
	jobs.bucket = calloc(jobs.nbucket, sizeof(*jobs.bucket));
	if (jobs.bucket == NULL)
		fatal("job_init");
	jobs.next_id = store_enabled() ? store_next_id() : 1;
	TAILQ_INIT(&jobs.finished);
	store_hook_collect(job_collect);
	store_hook_next_id(job_next_id);
	conn_hook_drained(job_drained);
	job_set_retention(max_finished, finished_ttl_s);
}

void
job_hook_sched(const struct job_hooks *h)
{
	jobs_up = h;
}

static void
job_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	job_trim();
}

/* Finished jobs are kept up to a count and an age; a sweep ages them. */
void
job_set_retention(size_t max_finished, uint64_t finished_ttl_s)
{
	static const struct timeval every = {10, 0};

	jobs.max_finished = max_finished;
	jobs.ttl_us = finished_ttl_s * 1000000;
	if (jobs.sweep == NULL && loop_base != NULL && jobs.ttl_us > 0) {
		jobs.sweep =
		    event_new(loop_base, -1, EV_PERSIST, job_sweep_cb, NULL);
		event_add(jobs.sweep, &every);
	}
	job_trim();
}

size_t
job_total(void)
{
	return jobs.count;
}

static uint64_t
job_next_id(void)
{
	return jobs.next_id;
}

uint64_t
job_last_id(void)
{
	return jobs.next_id - 1;
}

/* Ids are handed out in order, so their low bits spread evenly. */
static size_t
job_slot(uint64_t id, size_t nbucket)
{
	return (size_t)id & (nbucket - 1);
}

static void
job_table_grow(void)
{
	size_t n = jobs.nbucket * 2, i;
	struct job **b = calloc(n, sizeof(*b)), *j, *next;

	if (b == NULL)
		return; /* longer chains, still correct */
	for (i = 0; i < jobs.nbucket; i++) {
		for (j = jobs.bucket[i]; j != NULL; j = next) {
			size_t s = job_slot(j->id, n);
			next = j->hnext;
			j->hnext = b[s];
			b[s] = j;
		}
	}
	free(jobs.bucket);
	jobs.bucket = b;
	jobs.nbucket = n;
}

struct job *
job_find(uint64_t id)
{
	struct job *j;

	for (j = jobs.bucket[job_slot(id, jobs.nbucket)]; j != NULL;
	     j = j->hnext)
		if (j->id == id)
			return j;
	return NULL;
}

/* The store is owed j's row: it gets it at the end of this loop pass. */
static void
job_dirty(struct job *j)
{
	struct job **p;
	size_t n;

	if (j->dirty || !store_wanted())
		return;
	if (jobs.ndirty == jobs.capdirty) {
		n = jobs.capdirty ? jobs.capdirty * 2 : 1024;
		if ((p = realloc(jobs.dirty, n * sizeof(*p))) == NULL)
			fatal("job_dirty");
		jobs.dirty = p;
		jobs.capdirty = n;
	}
	j->dslot = (uint32_t)jobs.ndirty;
	jobs.dirty[jobs.ndirty++] = j;
	j->dirty = true;
	store_mark();
}

static void
job_put(struct job *j)
{
	struct store_row r;

	job_row(j, &r);
	store_put(&r);
	j->stored = true;
	j->dirty = false;
}

/*
 * The rows of the jobs that changed go to the store.  With hold, a new
 * job that has not ended is held back (deferred), so that one that ends
 * soon is written once, ended, rather than twice; the store then waits
 * for the batch until they have all ended (job_set_state marks it) or a
 * short while has passed.  Returns how many were held back.
 */
size_t
job_collect(bool hold)
{
	struct job *j;
	size_t i, k = 0;

	jobs.ndeferred = 0;
	for (i = 0; i < jobs.ndirty; i++) {
		if ((j = jobs.dirty[i]) == NULL)
			continue;
		/*
		 * a job on Slurm or a remote worker ends a relay's round trip
		 * later at the soonest: it is written now, while it runs
		 */
		if (hold && !j->stored && !PROTO_STATE_FINAL(j->state) &&
		    j->exec != PX_REMOTE && j->exec != PX_SLURM) {
			j->deferred = true;
			j->dslot = (uint32_t)k;
			jobs.dirty[k++] = j;
			jobs.ndeferred++;
			continue;
		}
		j->deferred = false;
		job_put(j);
	}
	jobs.ndirty = k;
	return k;
}

void
job_changed(struct job *j)
{
	job_dirty(j);
	loop_changed();
}

static void
job_set_state(struct job *j, enum proto_state s)
{
	if (PROTO_STATE_FINAL(j->state) != PROTO_STATE_FINAL(s))
		job_user_count(j->uid, !PROTO_STATE_FINAL(s));
	jobs.states[j->state]--;
	jobs.states[s]++;
	j->state = (uint8_t)s;
	job_dirty(j);
	/* the last held-back job has ended: its batch need wait no more */
	if (j->deferred && PROTO_STATE_FINAL(s)) {
		j->deferred = false;
		if (--jobs.ndeferred == 0)
			store_mark();
	}
	loop_changed();
}

/*
 * An id may be seen (ps) before its job is committed: it is given out
 * only within the store's committed reservation, asked for well ahead.
 */
#define JOB_ID_BLOCK 65536

static void
job_reserve_id(void)
{
	if (!store_enabled())
		return;
	if (jobs.next_id + JOB_ID_BLOCK / 2 >= jobs.id_asked) {
		jobs.id_asked = jobs.next_id + JOB_ID_BLOCK;
		store_reserve_ids(jobs.id_asked);
	}
	if (jobs.next_id >= store_ids_reserved())
		store_seal();
}

struct job *
job_alloc(const struct task *task, const char *args, size_t len)
{
	size_t state = task != NULL ? task->state_size : 0;
	struct job *j;

	if (len > UINT32_MAX ||
	    (j = calloc(1, sizeof(*j) + JOB_ARGS_ROOM(len) + state)) == NULL)
		return NULL;
	if (len > 0) {
		memcpy(j + 1, args, len);
		j->args_len = (uint32_t)len;
	}
	j->task = task;
	atomic_init(&j->ctx.cancel, false);
	j->ctx.wait_fd = -1;
	return j;
}

void *
job_state_buf(struct job *j)
{
	return j->task != NULL && j->task->state_size > 0
	           ? (char *)(j + 1) + JOB_ARGS_ROOM(j->args_len)
	           : NULL;
}

struct job *
job_new(const struct job_submit *js)
{
	struct job *j;
	size_t s;

	if ((j = job_alloc(js->task, js->args, js->args_len)) == NULL)
		return NULL;
	job_reserve_id();
	j->id = jobs.next_id++;
	j->attempt = 1;
	j->retries = js->retries;
	j->retry_delay_ms = js->retry_delay_ms;
	j->requested = (uint8_t)js->requested;
	j->exec = (uint8_t)js->exec;
	j->daemon = js->daemon;
	j->fresh = js->fresh;
	j->uid = js->uid;
	j->timeout_ms = js->timeout_ms;
	if (js->extra != NULL &&
	    (j->extra = job_extra_dup(js->extra)) == NULL) {
		jobs.next_id--;
		free(j);
		return NULL;
	}
	j->submitted = loop_now_us();
	j->worker = -1;
	j->state = PS_QUEUED;
	LIST_INIT(&j->watches);
	jobs.states[PS_QUEUED]++;
	job_user_count(j->uid, true);

	/* ids are dense, so two per bucket means chains of two */
	if (jobs.count >= 2 * jobs.nbucket)
		job_table_grow();
	s = job_slot(j->id, jobs.nbucket);
	j->hnext = jobs.bucket[s];
	jobs.bucket[s] = j;
	jobs.count++;
	job_dirty(j);
	loop_changed();
	return j;
}

uint64_t
job_admit(uint64_t first, size_t n)
{
	struct job *j = job_find(first);
	size_t k;

	if (j != NULL && j->gather != NULL)
		job_gather_submit(j->gather);
	else
		for (k = 0; k < n; k++)
			if ((j = job_find(first + k)) != NULL)
				jobs_up->submit(j);
	return store_enabled() ? store_seq() : 0;
}

/* Out of the id hash and the counts. */
static void
job_unlink(struct job *j)
{
	struct job **p;

	for (p = &jobs.bucket[job_slot(j->id, jobs.nbucket)]; *p != j;
	     p = &(*p)->hnext)
		;
	*p = j->hnext;
	jobs.count--;
	jobs.states[j->state]--;
	if (!PROTO_STATE_FINAL(j->state))
		job_user_count(j->uid, false);
}

static void
job_free(struct job *j)
{
	struct watch *w;

	/* a job kept queued through a stop still has its watchers then */
	while ((w = LIST_FIRST(&j->watches)) != NULL)
		watch_free(w);
	if (j->dirty) {
		jobs.dirty[j->dslot] = NULL;
		if (j->deferred && jobs.ndeferred > 0 && --jobs.ndeferred == 0)
			store_mark();
		job_put(j);
	}
	job_unlink(j);
	if (j->timer != NULL)
		event_free(j->timer);
	if (j->gather != NULL)
		job_gather_put(j->gather);
	jobs_up->free(&j->ctx);
	if (j->exec == PX_THREAD) {
		pbuf_free(&j->handoff.out);
		free(j->handoff.msg);
	}
	free(j->msg);
	job_extra_free(j->extra);
	free(j);
}

static char *
dup_or_null(const char *s, size_t n, bool *ok)
{
	char *p;

	if (s == NULL)
		return NULL;
	if ((p = malloc(n + 1)) == NULL) {
		*ok = false;
		return NULL;
	}
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

struct job_extra *
job_extra_dup(const struct job_extra *x)
{
	struct job_extra *c = malloc(sizeof(*c));
	bool ok = true;

	if (c == NULL)
		return NULL;
	*c = *x;
	c->cwd = dup_or_null(x->cwd, x->cwd ? strlen(x->cwd) : 0, &ok);
	c->env = dup_or_null(x->env, x->env_len, &ok);
	c->command =
	    dup_or_null(x->command, x->command ? strlen(x->command) : 0, &ok);
	c->group = dup_or_null(x->group, x->group ? strlen(x->group) : 0, &ok);
	c->label = dup_or_null(x->label, x->label ? strlen(x->label) : 0, &ok);
	c->node = dup_or_null(x->node, x->node ? strlen(x->node) : 0, &ok);
	c->after = NULL;
	if (x->nafter > 0) {
		if ((c->after = malloc(x->nafter * sizeof(*c->after))) == NULL)
			ok = false;
		else
			memcpy(c->after, x->after,
			       x->nafter * sizeof(*c->after));
	}
	if (!ok) {
		job_extra_free(c);
		return NULL;
	}
	return c;
}

void
job_extra_free(struct job_extra *x)
{
	if (x == NULL)
		return;
	free(x->cwd);
	free(x->env);
	free(x->command);
	free(x->group);
	free(x->label);
	free(x->node);
	free(x->after);
	free(x);
}

int
job_stdin(const struct job *j)
{
	return j->extra != NULL ? j->extra->stdin_pipe - 1 : -1;
}

int
job_set_stdin(struct job *j, int fd)
{
	if (fd < 0 && j->extra == NULL)
		return 0;
	if (job_extra(j) == NULL)
		return -1;
	j->extra->stdin_pipe = fd + 1; /* 0, what calloc gives: none */
	return 0;
}

struct job_extra *
job_extra(struct job *j)
{
	if (j->extra == NULL &&
	    (j->extra = calloc(1, sizeof(*j->extra))) != NULL) {
		j->extra->exit = -1;
		j->extra->signal = -1;
	}
	return j->extra;
}

void
job_placed(struct job *j, uint64_t slurm_id, const char *node)
{
	struct job_extra *x = job_extra(j);

	if (x == NULL)
		return; /* out of memory: where it ran goes unsaid */
	free(x->node);
	x->node = node != NULL && *node != '\0' ? strdup(node) : NULL;
	x->slurm_id = slurm_id;
	job_changed(j);
}

/*
 * At the stop: a job whose thread is stuck in a step leaves the table but
 * is never freed, since that thread may still touch it until concd exits.
 */
void
job_abandon(struct job *j)
{
	job_unlink(j);
	if (PROTO_STATE_FINAL(j->state))
		TAILQ_REMOVE(&jobs.finished, j, link);
}

struct job *
job_restore(const struct job_submit *js, const struct store_row *r)
{
	uint64_t next = jobs.next_id;
	struct job *j;

	jobs.next_id = r->id;
	j = job_new(js);
	jobs.next_id = next > r->id ? next : r->id + 1;
	if (j == NULL)
		return NULL;
	j->stored = true;
	j->attempt = r->attempt > 0 ? r->attempt : 1;
	j->submitted = r->submitted;
	j->started = r->started;
	j->worker = r->worker;
	j->tid = r->tid;
	j->served = r->served;
	/* nothing new to write yet: job_new's entry, the last one, goes */
	if (j->dirty) {
		jobs.ndirty--;
		j->dirty = false;
	}
	return j;
}

void
job_end_restored(struct job *j, enum proto_state s, enum proto_error err,
                 const char *message)
{
	j->err = (uint8_t)err;
	free(j->ctx.error);
	j->ctx.error = message != NULL ? strdup(message) : NULL;
	job_finish(j, s);
}

void
job_end_restored_exit(struct job *j, enum proto_state s, enum proto_error err,
                      const char *message, int exit, int sig)
{
	/* {"status": 0}, as tasks/exec.c gives a command that exited 0 */
	static const char ok[] = "\x81\xa6status\x00";

	j->ctx.exited = true;
	j->ctx.exit_code = (uint8_t)exit;
	j->ctx.exit_signal = (uint8_t)sig;
	if (s == PS_SUCCEEDED) {
		j->ctx.result.len = 0;
		pbuf_append(&j->ctx.result, ok, sizeof(ok) - 1);
	}
	job_end_restored(j, s, err, message);
}

static void
job_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	log_debug("job %llu: timed out after %llu ms",
	          (unsigned long long)j->id, (unsigned long long)j->timeout_ms);
	j->timing_out = true;
	job_cancel(j);
}

/* The timeout counts from the start, not from submission. */
void
job_start(struct job *j)
{
	j->started = loop_now_us();
	j->ran = loop_mono_us();
	job_set_state(j, PS_RUNNING);
	if (j->timeout_ms > 0 && loop_base != NULL &&
	    (j->timer = evtimer_new(loop_base, job_timeout_cb, j)) != NULL)
		loop_wait_add(j->timer, j->timeout_ms);
}

/*
 * The span from the stamp to now, taken off the monotonic start; none if
 * the wall clock was set between them as far as the bound can tell.
 */
#define JOB_STAMP_AGO_MAX_US (60 * 1000000ULL)
void
job_started_at(struct job *j, uint64_t at)
{
	uint64_t now = loop_now_us();

	j->started = at;
	if (at < now && now - at < JOB_STAMP_AGO_MAX_US && now - at < j->ran)
		j->ran -= now - at;
}

static void
job_event_head(struct proto_enc *e, const struct job *j, int32_t index)
{
	proto_enc_u64(e, PF_JOB, j->id);
	if (index >= 0)
		proto_enc_u64(e, PF_INDEX, (uint64_t)index);
}

/* Every event about a job starts alike: its type, request, job, index. */
static void
job_event_begin(struct proto_enc *e, struct pbuf *b, enum proto_type type,
                const struct job *j, uint64_t req, int32_t index)
{
	proto_enc_begin(e, b, type, req);
	job_event_head(e, j, index);
}

static void
job_encode_progress(struct pbuf *b, const struct job *j, uint64_t req,
                    int32_t index)
{
	struct proto_enc e;

	job_event_begin(&e, b, PROTO_PROGRESS, j, req, index);
	proto_enc_u64(&e, PF_DONE, j->done);
	proto_enc_u64(&e, PF_TOTAL, j->total);
	if (j->msg != NULL)
		proto_enc_ctext(&e, PF_MSG, j->msg);
	if (j->started != 0) /* a rate counts from here */
		proto_enc_u64(&e, PF_STARTED, j->started);
	proto_enc_end(&e);
}

void
job_progress(struct job *j, uint64_t done, uint64_t total, const char *msg)
{
	struct watch *w;

	j->done = done;
	j->total = total;
	if (msg != NULL) {
		free(j->msg);
		j->msg = strndup(msg, 255);
	}
	/* A congested reader skips snapshots; the next one supersedes it. */
	JOB_FOREACH_WATCH(w, j) {
		if (conn_congested(w->conn))
			continue;
		job_encode_progress(conn_out(w->conn), j, w->req,
		                    watch_index(j, w));
		conn_dirty(w->conn);
	}
}

/* Is an attached watcher of j over its connection's high-water mark? */
static bool
job_backlogged(struct job *j)
{
	struct watch *w;

	JOB_FOREACH_WATCH(w, j) {
		if (w->attached && conn_backlogged(w->conn))
			return true;
	}
	return false;
}

static void
job_hold(struct job *j)
{
	uint64_t *p;
	size_t n;

	if (j->out_held)
		return;
	if (jobs.nheld == jobs.capheld) {
		n = jobs.capheld ? jobs.capheld * 2 : 64;
		if ((p = realloc(jobs.held, n * sizeof(*p))) == NULL)
			return; /* not held: its output may be dropped */
		jobs.held = p;
		jobs.capheld = n;
	}
	jobs.held[jobs.nheld++] = j->id;
	j->out_held = true;
}

/*
 * A connection drained, or a watch went: the held jobs whose attached
 * watchers have all caught up go on.  Their executors only arm what
 * lets them go on; nothing runs from here.
 */
static void
job_release_held(void)
{
	struct job *j;
	size_t i, k = 0;

	for (i = 0; i < jobs.nheld; i++) {
		if ((j = job_find(jobs.held[i])) == NULL || !j->out_held)
			continue;
		if (job_backlogged(j)) {
			jobs.held[k++] = jobs.held[i];
			continue;
		}
		j->out_held = false;
		jobs_up->resume(j);
	}
	jobs.nheld = k;
}

static void
job_drained(struct conn *c)
{
	(void)c;
	job_release_held();
}

bool
job_output_held(const struct job *j)
{
	return j->out_held;
}

/* A watcher missed len bytes of j's output: counted in its extra. */
static void
job_dropped(struct job *j, size_t len)
{
	struct job_extra *x = job_extra(j);

	if (x != NULL) /* else out of memory: the count goes unsaid */
		x->dropped += len;
}

/*
 * Output goes in full to the attached watchers: past the high-water mark
 * the job is held, and it stops once its executor sees that, so what an
 * attached connection queues stays bounded (a job that did not stop, or
 * a cancelled one winding down, is cut at CONN_HOLD_MAX).  Any other
 * watcher gets what it keeps up with: a congested one misses the rest,
 * counted in its end event as dropped.
 */
void
job_output(struct job *j, int stream, const void *data, size_t len)
{
	static const char *const names[] = {"stdout", "stderr"};
	struct proto_enc e;
	struct watch *w;

	joblog_write(j->id, j->uid, stream, data, len);
	JOB_FOREACH_WATCH(w, j) {
		if (w->logged)
			continue; /* it reads the log */
		if (w->attached ? conn_overfull(w->conn)
		                : conn_congested(w->conn)) {
			job_dropped(j, len);
			w->dropped += len;
			continue;
		}
		job_event_begin(&e, conn_out(w->conn), PROTO_OUTPUT, j, w->req,
		                watch_index(j, w));
		proto_enc_cstr(&e, PF_STREAM, names[stream == 2]);
		proto_enc_key(&e, PF_DATA);
		msgpack_pack_bin_with_body(&e.pk, data, len);
		proto_enc_end(&e);
		conn_dirty(w->conn);
		if (w->attached && !atomic_load(&j->ctx.cancel) &&
		    conn_backlogged(w->conn))
			job_hold(j);
	}
}

size_t
job_result_size(const struct job *j)
{
	return j->state == PS_SUCCEEDED ? j->ctx.result.len : 0;
}

/* How long j ran, or has run so far; 0 before it starts. */
static uint64_t
job_runtime(const struct job *j)
{
	if (PROTO_STATE_FINAL(j->state))
		return j->ran;
	return j->state == PS_RUNNING && j->ran != 0 ? loop_mono_us() - j->ran
	                                             : 0;
}

/* A job as a store row: its pointers are the job's own. */
void
job_row(const struct job *j, struct store_row *r)
{
	r->id = j->id;
	r->task = j->task->name;
	r->args = job_args(j);
	r->args_len = j->args_len;
	/* a running job's context is its worker's: read once it has ended */
	r->error = PROTO_STATE_FINAL(j->state) ? j->ctx.error : NULL;
	r->msg = j->msg;
	r->result = j->state == PS_SUCCEEDED ? j->ctx.result.data : NULL;
	r->result_len =
	    j->state == PS_SUCCEEDED ? (uint32_t)j->ctx.result.len : 0;
	r->submitted = j->submitted;
	r->started = j->started;
	r->finished = j->finished;
	r->runtime = job_runtime(j);
	r->timeout_ms = j->timeout_ms;
	r->done = j->done;
	r->total = j->total;
	r->dropped = j->extra != NULL ? j->extra->dropped : 0;
	r->retry_delay_ms = j->retry_delay_ms;
	r->served = j->served;
	r->worker = j->worker;
	r->tid = j->tid;
	r->uid = j->uid;
	r->state = j->state;
	r->requested = j->requested;
	r->exec = j->exec;
	r->err = j->err;
	r->attempt = j->attempt;
	r->retries = j->retries;
	r->daemon = j->daemon;
	r->fresh = j->fresh;
	r->insert = !j->stored;
	r->x = j->extra;
}

static void
job_encode_outcome(struct proto_enc *e, const struct store_row *r,
                   uint64_t dropped, bool result)
{
	proto_enc_cstr(e, PF_STATE, proto_states[r->state]);
	proto_enc_cstr(e, PF_EXEC, proto_execs[r->exec]);
	if (r->tid != 0) { /* it ran; worker -1 means a fresh one */
		proto_enc_i64(e, PF_WORKER, r->worker);
		proto_enc_u64(e, PF_TID, (uint64_t)r->tid);
		proto_enc_u64(e, PF_SERVED, r->served);
	}
	proto_enc_u64(e, PF_SUBMITTED, r->submitted);
	if (r->started)
		proto_enc_u64(e, PF_STARTED, r->started);
	if (r->finished)
		proto_enc_u64(e, PF_FINISHED, r->finished);
	if (r->started)
		proto_enc_u64(e, PF_RUNTIME, r->runtime);
	if (dropped > 0)
		proto_enc_u64(e, PF_DROPPED, dropped);
	if (r->state == PS_SUCCEEDED) {
		if (r->result_len > 0 && !result)
			proto_enc_u64(e, PF_RESULT_OMITTED, r->result_len);
		else if (r->result_len > 0)
			proto_enc_raw(e, PF_RESULT, r->result, r->result_len);
		else
			proto_enc_raw(e, PF_RESULT, "\xc0", 1);
	} else if (PROTO_STATE_FINAL(r->state)) {
		proto_enc_cstr(e, PF_ERROR, proto_errors[r->err].name);
		proto_enc_ctext(e, PF_MESSAGE,
		                r->error != NULL ? r->error
		                                 : proto_errors[r->err].text);
	}
}

struct job_end {
	const struct store_row *r;
	uint64_t dropped;
	int32_t index;
};

/* A result too large for a frame: the job still ends. */
static void
job_end_fields(struct proto_enc *e, void *arg, bool result)
{
	const struct job_end *a = arg;

	proto_enc_u64(e, PF_JOB, a->r->id);
	if (a->index >= 0)
		proto_enc_u64(e, PF_INDEX, (uint64_t)a->index);
	/* how its command ended, which concctl run exits with */
	if (a->r->x != NULL && a->r->x->exit >= 0)
		proto_enc_u64(e, PF_EXIT, (uint64_t)a->r->x->exit);
	if (a->r->x != NULL && a->r->x->signal >= 0)
		proto_enc_u64(e, PF_SIGNAL, (uint64_t)a->r->x->signal);
	if (result)
		job_encode_outcome(e, a->r, a->dropped, true);
	else
		proto_enc_result_too_large(e, a->r->result_len);
}

/*
 * A watcher's own end says what it missed; a gather's watcher, and
 * anyone asking later, get what any watcher missed.
 */
void
job_encode_end(struct pbuf *b, const struct job *j, const struct watch *w,
               uint64_t req, int32_t index)
{
	struct store_row r;
	struct job_end a = {.r = &r, .index = index};

	job_row(j, &r);
	a.dropped =
	    w != NULL && w->index != WATCH_GATHER ? w->dropped : r.dropped;
	(void)proto_enc_result_frame(b, PROTO_END, req, job_end_fields, &a);
}

void
job_encode_row_end(struct pbuf *b, const struct store_row *r, uint64_t req)
{
	struct job_end a = {.r = r, .dropped = r->dropped, .index = -1};

	(void)proto_enc_result_frame(b, PROTO_END, req, job_end_fields, &a);
}

/*
 * Whether an environment variable's name looks as if its value were a
 * secret: records give such a value as nil.
 */
static bool
job_env_secret(const char *name, size_t len)
{
	static const char *const words[] = {
	    "KEY",  "SECRET", "TOKEN",   "PASS",    "CREDENTIAL",
	    "AUTH", "COOKIE", "SESSION", "PRIVATE", "SIGNATURE",
	};
	size_t i, k, w;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		w = strlen(words[i]);
		for (k = 0; k + w <= len; k++)
			if (strncasecmp(name + k, words[i], w) == 0)
				return true;
	}
	return false;
}

void
job_encode_env(struct proto_enc *e, const struct job_extra *x)
{
	msgpack_zone zone;
	msgpack_object env;
	size_t off = 0;
	uint32_t i;

	if (x == NULL || x->env == NULL)
		return;
	msgpack_zone_init(&zone, 1024);
	if (msgpack_unpack(x->env, x->env_len, &off, &zone, &env) ==
	        MSGPACK_UNPACK_SUCCESS &&
	    env.type == MSGPACK_OBJECT_MAP) {
		proto_enc_key(e, PF_ENV);
		proto_enc_map_open(e);
		for (i = 0; i < env.via.map.size; i++) {
			const msgpack_object *k = &env.via.map.ptr[i].key;
			const msgpack_object *v = &env.via.map.ptr[i].val;

			if (k->type != MSGPACK_OBJECT_STR ||
			    v->type != MSGPACK_OBJECT_STR)
				continue;
			msgpack_pack_str_with_body(&e->pk, k->via.str.ptr,
			                           k->via.str.size);
			proto_enc_elem(e);
			if (job_env_secret(k->via.str.ptr, k->via.str.size))
				msgpack_pack_nil(&e->pk);
			else
				msgpack_pack_str_with_body(
				    &e->pk, v->via.str.ptr, v->via.str.size);
		}
		proto_enc_close(e);
	}
	msgpack_zone_destroy(&zone);
}

/* What a job asked beyond its task, as its record gives it. */
static void
job_encode_extra(struct proto_enc *e, const struct job_extra *x)
{
	uint32_t i;

	if (x->cwd != NULL)
		proto_enc_cstr(e, PF_CWD, x->cwd);
	if (x->umask != 0)
		proto_enc_u64(e, PF_UMASK, x->umask - 1u);
	if (x->command != NULL)
		proto_enc_cstr(e, PF_COMMAND, x->command);
	if (x->group != NULL)
		proto_enc_cstr(e, PF_GROUP, x->group);
	if (x->label != NULL)
		proto_enc_cstr(e, PF_LABEL, x->label);
	if (x->priority != 0)
		proto_enc_i64(e, PF_PRIORITY, x->priority);
	if (x->cpus != 0)
		proto_enc_u64(e, PF_CPUS, x->cpus);
	if (x->at != 0)
		proto_enc_u64(e, PF_AT, x->at);
	if (x->held)
		proto_enc_bool(e, PF_HELD, true);
	if (x->nafter > 0 && x->after != NULL) {
		proto_enc_key(e, PF_AFTER);
		proto_enc_array_open(e);
		for (i = 0; i < x->nafter; i++) {
			msgpack_pack_uint64(&e->pk, x->after[i]);
			proto_enc_elem(e);
		}
		proto_enc_close(e);
		if (x->after_any)
			proto_enc_bool(e, PF_AFTER_ANY, true);
	}
	if (x->restart_of != 0)
		proto_enc_u64(e, PF_RESTART_OF, x->restart_of);
	if (x->cause != 0)
		proto_enc_u64(e, PF_CAUSE, x->cause);
	if (x->mem != 0)
		proto_enc_u64(e, PF_MEM, x->mem);
	if (x->pids != 0)
		proto_enc_u64(e, PF_PIDS, x->pids);
	if (x->exit >= 0)
		proto_enc_u64(e, PF_EXIT, (uint64_t)x->exit);
	if (x->signal >= 0)
		proto_enc_u64(e, PF_SIGNAL, (uint64_t)x->signal);
	if (x->slurm_id != 0)
		proto_enc_u64(e, PF_SLURM_JOB, x->slurm_id);
	if (x->node != NULL)
		proto_enc_cstr(e, PF_NODE, x->node);
}

void
job_encode_row(struct proto_enc *e, const struct store_row *r, bool result)
{
	proto_enc_u64(e, PF_JOB, r->id);
	proto_enc_cstr(e, PF_TASK, r->task);
	proto_enc_cstr(e, PF_REQUESTED, proto_execs[r->requested]);
	proto_enc_bool(e, PF_DAEMON, r->daemon);
	proto_enc_u64(e, PF_UID, r->uid);
	if (r->retries > 0) {
		proto_enc_u64(e, PF_ATTEMPT, r->attempt);
		proto_enc_u64(e, PF_RETRIES, r->retries);
	}
	proto_enc_u64(e, PF_DONE, r->done);
	proto_enc_u64(e, PF_TOTAL, r->total);
	if (r->msg != NULL)
		proto_enc_ctext(e, PF_MSG, r->msg);
	if (r->x != NULL)
		job_encode_extra(e, r->x);
	job_encode_outcome(e, r, r->dropped, result);
}

void
job_encode_record(struct proto_enc *e, const struct job *j, bool result)
{
	struct store_row r;

	job_row(j, &r);
	job_encode_row(e, &r, result);
}

static void
job_trim(void)
{
	uint64_t now = loop_now_us();
	struct job *old;

	while ((old = TAILQ_FIRST(&jobs.finished)) != NULL &&
	       (jobs.nfinished > jobs.max_finished ||
	        (jobs.ttl_us > 0 && now - old->finished > jobs.ttl_us))) {
		TAILQ_REMOVE(&jobs.finished, old, link);
		jobs.nfinished--;
		/* the store, if any, keeps it, and forgets its log later */
		if (!store_enabled())
			joblog_forget(old->id);
		job_free(old);
	}
}

/*
 * Forget the finished jobs that match (concctl clean), and their logs:
 * their rows, if owed, go to the store first.  Returns how many.
 */
size_t
job_clean(bool (*match)(const struct job *, void *), void *arg)
{
	struct job *j, *next;
	size_t n = 0;

	for (j = TAILQ_FIRST(&jobs.finished); j != NULL; j = next) {
		next = TAILQ_NEXT(j, link);
		if (!match(j, arg))
			continue;
		TAILQ_REMOVE(&jobs.finished, j, link);
		jobs.nfinished--;
		joblog_forget(j->id);
		job_free(j);
		n++;
	}
	return n;
}

static void
job_retire(struct job *j)
{
	TAILQ_INSERT_TAIL(&jobs.finished, j, link);
	jobs.nfinished++;
	job_trim();
}

struct gather *
job_gather_new(size_t n, bool fail_fast)
{
	struct gather *g = calloc(1, sizeof(*g) + n * sizeof(g->ids[0]));

	if (g != NULL) {
		g->fail_fast = fail_fast;
		LIST_INIT(&g->watches);
	}
	return g;
}

/* Drop a hold on the gather; the last one frees it and its watches. */
static void
job_gather_put(struct gather *g)
{
	struct watch *w;

	if (--g->left > 0)
		return;
	while ((w = LIST_FIRST(&g->watches)) != NULL)
		watch_free(w);
	free(g);
}

int
job_gather_watch(struct gather *g, struct conn *c, uint64_t req)
{
	return watch_add(&g->watches, c, req, WATCH_GATHER, true);
}

void
job_gather_add(struct gather *g, struct job *j)
{
	j->gindex = (uint32_t)g->n;
	g->ids[g->n++] = j->id;
	g->left++;
	j->gather = g;
	j->held = true;
}

/*
 * Hand the jobs to their executors.  A job may end at once (on the loop)
 * and, with fail_fast, cancel the others: those still held end here.
 */
void
job_gather_submit(struct gather *g)
{
	size_t i;

	g->left++; /* hold the gather while walking it */
	for (i = 0; i < g->n; i++) {
		struct job *j = job_find(g->ids[i]);

		if (j != NULL && j->held) {
			j->held = false;
			jobs_up->submit(j);
		}
	}
	job_gather_put(g);
}

/* A member ended: maybe cancel the others; free the gather after the last. */
static void
job_gather_end(struct job *j)
{
	struct gather *g = j->gather;
	size_t i;

	j->gather = NULL;
	if (g->fail_fast && !g->tripped &&
	    (j->state == PS_FAILED || j->state == PS_TIMED_OUT)) {
		g->tripped = true;
		g->left++; /* hold it while cancelling the others */
		for (i = 0; i < g->n; i++) {
			struct job *o = job_find(g->ids[i]);

			if (o != NULL && o != j && o->gather == g &&
			    !PROTO_STATE_FINAL(o->state))
				job_cancel(o);
		}
		g->left--;
	}
	job_gather_put(g);
}

static void
job_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	event_free(j->timer);
	j->timer = NULL;
	j->retry_wait = false;
	jobs_up->submit(j);
}

/*
 * A failed or timed-out job with retries left runs again after its
 * delay, on a fresh worker where the executor has them.  Watchers see a
 * retry event; the end they get is the last attempt's.
 */
static bool
job_retry(struct job *j, enum proto_state s)
{
	struct proto_enc e;
	struct watch *w;

	/* a job that a dependency's failure ended would only fail again */
	if ((s != PS_FAILED && s != PS_TIMED_OUT) || j->attempt > j->retries ||
	    j->err == PE_DEPENDENCY || loop_stopping() ||
	    (atomic_load(&j->ctx.cancel) && !j->timing_out))
		return false;
	JOB_FOREACH_WATCH(w, j) {
		job_event_begin(&e, conn_out(w->conn), PROTO_RETRY, j, w->req,
		                watch_index(j, w));
		proto_enc_u64(&e, PF_ATTEMPT, (uint64_t)j->attempt + 1);
		proto_enc_cstr(&e, PF_ERROR, proto_errors[j->err].name);
		proto_enc_ctext(&e, PF_MESSAGE,
		                j->ctx.error != NULL ? j->ctx.error
		                                     : proto_states[s]);
		proto_enc_u64(&e, PF_RETRY_DELAY, j->retry_delay_ms);
		proto_enc_end(&e);
		conn_dirty(w->conn);
	}
	log_debug("job %llu: attempt %u %s; retrying",
	          (unsigned long long)j->id, j->attempt, proto_states[s]);
	/* back to a queued job, with a clean context */
	jobs_up->free(&j->ctx);
	memset(&j->ctx, 0, sizeof(j->ctx));
	atomic_init(&j->ctx.cancel, false);
	j->ctx.wait_fd = -1;
	j->attempt++;
	j->err = PE_NONE;
	j->timing_out = false;
	j->started = j->finished = j->ran = 0;
	j->worker = -1;
	j->tid = 0;
	j->done = j->total = 0;
	if (j->exec != PX_LOOP)
		j->fresh = true;
	job_set_state(j, PS_QUEUED);
	if (jobs_up->requeue != NULL)
		jobs_up->requeue(j);
	/*
	 * The delay is its start time, kept in the store: it waits as a
	 * scheduled job does, which a stop leaves queued for the next start
	 * and a restart, even after a crash, keeps waiting.
	 */
	if (j->retry_delay_ms > 0 && job_extra(j) != NULL) {
		j->extra->at =
		    loop_now_us() + (uint64_t)j->retry_delay_ms * 1000;
		job_changed(j);
		jobs_up->submit(j);
		return true;
	}
	j->retry_wait = true;
	j->timer = evtimer_new(loop_base, job_retry_cb, j);
	if (j->timer == NULL) {
		j->retry_wait = false;
		jobs_up->submit(j);
	} else
		loop_wait_add(j->timer, j->retry_delay_ms);
	return true;
}

/* How the attempt's command ended, from its context, for its record. */
static void
job_exit_status(struct job *j)
{
	struct job_extra *x;

	if (!j->ctx.exited) {
		if (j->extra != NULL) /* an attempt before this one's */
			j->extra->exit = j->extra->signal = -1;
		return;
	}
	if ((x = job_extra(j)) == NULL)
		return; /* out of memory: the status goes unsaid */
	x->exit = j->ctx.exit_signal != 0 ? -1 : j->ctx.exit_code;
	x->signal = j->ctx.exit_signal != 0 ? j->ctx.exit_signal : -1;
}

void
job_finish(struct job *j, enum proto_state s)
{
	struct watch *w;

	j->out_held = false;
	j->finished = loop_now_us();
	if (j->started == 0)
		j->started = j->finished;
	/* one that ran before a restart: the wall clock is all there is */
	if (j->ran != 0)
		j->ran = loop_mono_us() - j->ran;
	else if (j->finished > j->started)
		j->ran = j->finished - j->started;
	if (j->timer != NULL) {
		event_free(j->timer);
		j->timer = NULL;
	}
	if (s == PS_CANCELLED && j->timing_out)
		s = PS_TIMED_OUT;
	/* a limit outside concd ran out (Slurm's time limit) */
	if (s == PS_FAILED && j->ctx.code == PE_TIMED_OUT)
		s = PS_TIMED_OUT;
	/* the task said why (an exec job's oom) */
	if (j->err == PE_NONE && s == PS_FAILED && j->ctx.code != PE_NONE)
		j->err = j->ctx.code;
	switch (j->err != PE_NONE ? PS_COUNT : s) {
	case PS_COUNT:
		break; /* the executor said why already */
	case PS_FAILED:
		j->err = PE_TASK_FAILED;
		break;
	case PS_CANCELLED:
		j->err = PE_CANCELLED;
		break;
	case PS_TIMED_OUT:
		j->err = PE_TIMED_OUT;
		break;
	default:
		j->err = PE_NONE;
	}
	jobs_up->stop(&j->ctx);
	job_exit_status(j);
	if (job_retry(j, s))
		return;
	job_set_state(j, s);
	joblog_end(j->id);
	input_ended(j);
	if (jobs_up->ended != NULL)
		jobs_up->ended(j);
	while ((w = LIST_FIRST(&j->watches)) != NULL) {
		if (!w->logged) {
			job_encode_end(conn_out(w->conn), j, w, w->req,
			               w->index);
			conn_dirty(w->conn);
		}
		watch_free(w);
	}
	if (j->gather != NULL) {
		/* the gather's watches stay until its last job has ended */
		LIST_FOREACH(w, &j->gather->watches, by_job) {
			job_encode_end(conn_out(w->conn), j, w, w->req,
			               (int32_t)j->gindex);
			conn_dirty(w->conn);
		}
		job_gather_end(j);
	}
	job_retire(j);
}

int
job_cancel(struct job *j)
{
	if (PROTO_STATE_FINAL(j->state))
		return -1;
	j->out_held = false; /* a cancelled job's output is not held */
	if (j->retry_wait || j->held) {
		/* between attempts, or not submitted yet: no executor has it */
		if (j->timer != NULL)
			event_free(j->timer);
		j->timer = NULL;
		j->retry_wait = j->held = false;
		atomic_store(&j->ctx.cancel, true);
		job_finish(j, PS_CANCELLED);
		return 0;
	}
	if (atomic_load(&j->ctx.cancel))
		return 0; /* cancelled already, and winding down */
	if (j->timer != NULL && !j->timing_out) {
		/* ending: its time limit no longer applies */
		event_free(j->timer);
		j->timer = NULL;
	}
	jobs_up->cancel(j);
	return 0;
}

bool
job_visible(const struct job *j, uid_t uid)
{
	return uid == 0 || uid == j->uid;
}

int
job_watch(struct job *j, struct conn *c, uint64_t req, int32_t index,
          bool attached)
{
	if (PROTO_STATE_FINAL(j->state)) {
		job_encode_end(conn_out(c), j, NULL, req, index);
		conn_dirty(c);
		return 0;
	}
	return watch_add(&j->watches, c, req, index, attached);
}

int
job_watch_logged(struct job *j, struct conn *c, uint64_t req)
{
	if (watch_add(&j->watches, c, req, -1, false) < 0)
		return -1;
	LIST_FIRST(&j->watches)->logged = true;
	return 0;
}

/* A connection closes: a job held for it alone goes on. */
void
job_unwatch_conn(struct conn *c)
{
	struct watch_list *l = conn_watches(c);
	struct watch *w;
	bool attached = false;

	while ((w = LIST_FIRST(l)) != NULL) {
		attached |= w->attached;
		watch_free(w);
	}
	if (attached && jobs.nheld > 0)
		job_release_held();
}

void
job_foreach(void (*fn)(struct job *, void *), void *arg)
{
	size_t i;
	struct job *j, *next;

	for (i = 0; i < jobs.nbucket; i++)
		for (j = jobs.bucket[i]; j != NULL; j = next) {
			next = j->hnext;
			fn(j, arg);
		}
}

void
job_counts(size_t counts[PS_COUNT])
{
	memcpy(counts, jobs.states, sizeof(jobs.states));
}

void
job_shutdown(void)
{
	struct job *j;
	uint64_t next;
	size_t i;

	for (i = 0; i < jobs.nbucket; i++)
		while ((j = jobs.bucket[i]) != NULL) {
			if (PROTO_STATE_FINAL(j->state))
				TAILQ_REMOVE(&jobs.finished, j, link);
			job_free(j);
		}
	free(jobs.bucket);
	free(jobs.held);
	free(jobs.dirty);
	if (jobs.sweep != NULL)
		event_free(jobs.sweep);
	next = jobs.next_id; /* the store's close writes it down */
	memset(&jobs, 0, sizeof(jobs));
	jobs.next_id = next;
}
