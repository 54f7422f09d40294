/*
 * deps.c -- jobs that wait for other jobs (--after, --after-any).
 *
 * A job that runs after others waits here with a count of those that
 * have not ended; a job that others wait for has the list of them, found
 * by its id.  One table holds both, a node per id.  When a job ends, the
 * count of each job waiting for it goes down, and at 0 that job goes on
 * to its group (queue_submit).  A failure (failed, cancelled, timed_out)
 * ends every job waiting for it at once, failed with dependency_failed,
 * unless it runs after any end (after_any); and those waiting for them
 * after them, each naming the job that failed first (cause).  The ends
 * are worked off from a list, never by recursion, so a chain of any
 * length fails in one pass and a stack of any depth is never needed.
 *
 * A dependency that ended already counts as it ended, whether the job
 * table or only the store remembers it: nothing waits for a job that
 * will never end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deps.h"
#include "job.h"
#include "log.h"
#include "queue.h"
#include "store.h"

struct dnode {
	uint64_t id;
	struct dnode *hnext;
	struct job *job;   /* it waits here; NULL: it does not */
	uint64_t *waiters; /* ids of the jobs that wait for it */
	uint32_t n, cap;
	uint32_t unmet;  /* jobs it waits for that have not ended */
	uint32_t parked; /* deps.parked_gen: it waits for a parked job */
	bool after_any;
};

/* A job that ended, whose waiters are still to be told. */
struct dend {
	uint64_t id;
	uint64_t root;  /* the job that failed first */
	uint8_t rstate; /* its state; PS_COUNT: not known */
	bool ok;        /* it succeeded */
};

static struct {
	struct dnode **bucket;
	size_t nbucket, count;
	struct dend *ends; /* to be worked off, oldest first */
	size_t head, nends, capends;
	bool draining;
	uint32_t parked_gen; /* of the last deps_parked */
} deps;

/*
 * What a job asks for (struct job_extra): the jobs it runs after, whether
 * any end will do, and the job whose failure ended it.
 */
static const uint64_t *
deps_after(const struct job *j, size_t *n)
{
	*n = j->extra != NULL ? j->extra->nafter : 0;
	return *n > 0 ? j->extra->after : NULL;
}

static bool
deps_after_any(const struct job *j)
{
	return j->extra != NULL && j->extra->after_any;
}

static uint64_t
deps_cause(const struct job *j)
{
	return j->extra != NULL ? j->extra->cause : 0;
}

static void
deps_set_cause(struct job *j, uint64_t cause)
{
	struct job_extra *x = job_extra(j);

	if (x != NULL)
		x->cause = cause;
}

static size_t
deps_slot(uint64_t id)
{
	return (size_t)id & (deps.nbucket - 1);
}

static struct dnode *
deps_find(uint64_t id)
{
	struct dnode *d;

	if (deps.count == 0)
		return NULL;
	for (d = deps.bucket[deps_slot(id)]; d != NULL; d = d->hnext)
		if (d->id == id)
			return d;
	return NULL;
}

static void
deps_grow(void)
{
	size_t n = deps.nbucket ? deps.nbucket * 2 : 1024, i, s;
	struct dnode **b = calloc(n, sizeof(*b)), *d, *next;

	if (b == NULL) {
		if (deps.bucket == NULL)
			fatal("deps_grow");
		return; /* longer chains, still correct */
	}
	for (i = 0; i < deps.nbucket; i++)
		for (d = deps.bucket[i]; d != NULL; d = next) {
			next = d->hnext;
			s = (size_t)d->id & (n - 1);
			d->hnext = b[s];
			b[s] = d;
		}
	free(deps.bucket);
	deps.bucket = b;
	deps.nbucket = n;
}

static struct dnode *
deps_node(uint64_t id)
{
	struct dnode *d;
	size_t s;

	if ((d = deps_find(id)) != NULL)
		return d;
	if (deps.count >= 2 * deps.nbucket)
		deps_grow();
	if ((d = calloc(1, sizeof(*d))) == NULL)
		fatal("deps_node");
	d->id = id;
	s = deps_slot(id);
	d->hnext = deps.bucket[s];
	deps.bucket[s] = d;
	deps.count++;
	return d;
}

/* A node that neither waits nor is waited for goes. */
static void
deps_put(struct dnode *d)
{
	struct dnode **p;

	if (d->job != NULL || d->n > 0)
		return;
	for (p = &deps.bucket[deps_slot(d->id)]; *p != d; p = &(*p)->hnext)
		;
	*p = d->hnext;
	deps.count--;
	free(d->waiters);
	free(d);
}

static void
deps_add_waiter(struct dnode *d, uint64_t id)
{
	uint64_t *p;
	uint32_t n;

	if (d->n == d->cap) {
		n = d->cap ? d->cap * 2 : 2;
		if ((p = reallocarray(d->waiters, n, sizeof(*p))) == NULL)
			fatal("deps_add_waiter");
		d->waiters = p;
		d->cap = n;
	}
	d->waiters[d->n++] = id;
}

static const char *
deps_state_words(int state)
{
	static const char *const words[PS_COUNT] = {
	    [PS_FAILED] = "failed",
	    [PS_CANCELLED] = "was cancelled",
	    [PS_TIMED_OUT] = "timed out",
	};

	return state >= 0 && state < PS_COUNT && words[state] != NULL
	           ? words[state]
	           : "did not succeed";
}

/*
 * End j, which waited for via: it fails with dependency_failed, naming
 * root, the job that failed first.  It is not retried.
 */
static void
deps_fail(struct job *j, uint64_t via, uint64_t root, int rstate)
{
	char message[192];

	if (via == root)
		snprintf(message, sizeof(message),
		         "job %llu, which it runs after, %s",
		         (unsigned long long)root, deps_state_words(rstate));
	else
		snprintf(message, sizeof(message),
		         "job %llu %s, and job %llu, which it runs after, "
		         "failed with it",
		         (unsigned long long)root, deps_state_words(rstate),
		         (unsigned long long)via);
	deps_set_cause(j, root);
	job_end_restored(j, PS_FAILED, PE_DEPENDENCY, message);
}

/* How a dependency ended: of the job table, or of the store. */
struct dstate {
	bool known, final;
	uint8_t state;
	uint8_t err;
	uint64_t cause;
};

static void
deps_row_cb(const struct store_row *r, void *arg)
{
	struct dstate *s = arg;

	s->known = true;
	s->final = PROTO_STATE_FINAL(r->state);
	s->state = r->state;
	s->err = r->err;
	s->cause = r->x != NULL ? r->x->cause : 0;
}

static void
deps_state_of(uint64_t id, struct dstate *s)
{
	struct job *d = job_find(id);

	memset(s, 0, sizeof(*s));
	if (d != NULL) {
		s->known = true;
		s->final = PROTO_STATE_FINAL(d->state);
		s->state = d->state;
		s->err = d->err;
		s->cause = deps_cause(d);
	} else if (store_enabled()) {
		/*
		 * What SQLite has, without waiting for it (a wait here would
		 * stop the loop while another program holds SQLite locked):
		 * a new job's request waited already (request_job_known) and
		 * deps_recovered syncs first; for the root of a failure that
		 * retention let go of, SQLite may lack its last row yet
		 */
		(void)store_get(id, deps_row_cb, s);
	}
}

/* The job that failed first, when a job that did not succeed ended. */
static uint64_t
deps_root(uint64_t id, const struct dstate *s)
{
	return s->err == PE_DEPENDENCY && s->cause != 0 ? s->cause : id;
}

bool
deps_hold(struct job *j)
{
	const uint64_t *after;
	struct dstate s;
	struct dnode *d;
	size_t n, i;
	bool any = deps_after_any(j);

	/* a retry runs again at once: what it waited for has ended */
	if (j->attempt > 1 || (after = deps_after(j, &n)) == NULL || n == 0)
		return false;
	/* one that failed already ends this one now */
	for (i = 0; i < n && !any; i++) {
		deps_state_of(after[i], &s);
		if (!s.known) {
			char message[128];

			snprintf(message, sizeof(message),
			         "job %llu, which it runs after, is no longer "
			         "known (cleaned)",
			         (unsigned long long)after[i]);
			deps_set_cause(j, after[i]);
			job_end_restored(j, PS_FAILED, PE_DEPENDENCY, message);
			return true;
		}
		if (s.final && s.state != PS_SUCCEEDED) {
			deps_fail(j, after[i], deps_root(after[i], &s),
			          s.err == PE_DEPENDENCY ? PS_COUNT : s.state);
			return true;
		}
	}
	d = NULL;
	for (i = 0; i < n; i++) {
		struct job *o = job_find(after[i]);

		/* a job the store has, not ended yet, comes back (recovery) */
		if (o == NULL) {
			deps_state_of(after[i], &s);
			if (!s.known || s.final)
				continue;
		} else if (PROTO_STATE_FINAL(o->state))
			continue;
		if (d == NULL)
			d = deps_node(j->id);
		deps_add_waiter(deps_node(after[i]), j->id);
		d->unmet++;
	}
	if (d == NULL)
		return false;
	d->job = j;
	d->after_any = any;
	return true;
}

static void
deps_push(uint64_t id, uint64_t root, int rstate, bool ok)
{
	struct dend *p;
	size_t n;

	if (deps.head == deps.nends)
		deps.head = deps.nends = 0;
	if (deps.nends == deps.capends) {
		n = deps.capends ? deps.capends * 2 : 64;
		if ((p = reallocarray(deps.ends, n, sizeof(*p))) == NULL)
			fatal("deps_push");
		deps.ends = p;
		deps.capends = n;
	}
	deps.ends[deps.nends++] = (struct dend){
	    .id = id, .root = root, .rstate = (uint8_t)rstate, .ok = ok};
}

/* The jobs waiting for e's job go on, or fail with it. */
static void
deps_tell(const struct dend *e)
{
	struct dnode *d = deps_find(e->id), *w;
	uint64_t *waiters;
	uint32_t n, i;
	struct job *j;

	if (d == NULL || d->n == 0)
		return;
	waiters = d->waiters;
	n = d->n;
	d->waiters = NULL;
	d->n = d->cap = 0;
	deps_put(d);
	for (i = 0; i < n; i++) {
		if ((w = deps_find(waiters[i])) == NULL || w->job == NULL)
			continue; /* it ended otherwise (cancelled) */
		j = w->job;
		if (e->ok || w->after_any) {
			if (--w->unmet > 0)
				continue;
			w->job = NULL;
			deps_put(w);
			queue_submit(j);
		} else {
			w->job = NULL;
			deps_put(w);
			deps_fail(j, e->id, e->root, e->rstate);
		}
	}
	free(waiters);
}

/* Tell the waiters of every end pushed, and of those it causes. */
static void
deps_drain(void)
{
	struct dend e;

	if (deps.draining)
		return; /* the loop below, further up, takes it */
	deps.draining = true;
	queue_defer(true); /* what they release starts by priority */
	while (deps.head < deps.nends) {
		e = deps.ends[deps.head++];
		/* a failed one's root and state stay its root's */
		if (!e.ok && e.rstate == PS_COUNT && e.root != e.id) {
			struct dstate s;

			deps_state_of(e.root, &s);
			if (s.known && s.err != PE_DEPENDENCY)
				e.rstate = s.state;
		}
		deps_tell(&e);
	}
	deps.head = deps.nends = 0;
	deps.draining = false;
	queue_defer(false);
}

void
deps_ended(struct job *j)
{
	uint64_t root;
	bool dep = j->err == PE_DEPENDENCY;

	if (deps.count == 0)
		return; /* nothing waits for anything */
	root = dep && deps_cause(j) != 0 ? deps_cause(j) : j->id;
	deps_push(j->id, root, dep ? PS_COUNT : j->state,
	          j->state == PS_SUCCEEDED);
	deps_drain();
}

/*
 * After a restart: a job waited for that did not come back into memory
 * (its task is gone, so recovery ended it in the store alone) never ends
 * here; what the store says of it counts instead.
 */
void
deps_recovered(void)
{
	struct dstate s;
	struct dnode *d;
	uint64_t *ids = NULL, *p;
	size_t i, n = 0, cap = 0;

	for (i = 0; i < deps.nbucket; i++)
		for (d = deps.bucket[i]; d != NULL; d = d->hnext) {
			if (d->n == 0 || job_find(d->id) != NULL)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				if ((p = reallocarray(ids, cap, sizeof(*p))) ==
				    NULL)
					fatal("deps_recovered");
				ids = p;
			}
			ids[n++] = d->id;
		}
	/* at the start, no client served yet: recovery's ends go in now */
	if (n > 0)
		store_sync();
	for (i = 0; i < n; i++) {
		deps_state_of(ids[i], &s);
		if (s.known && !s.final)
			continue; /* it comes back yet */
		deps_push(ids[i], deps_root(ids[i], &s),
		          !s.known || s.err == PE_DEPENDENCY ? PS_COUNT
		                                             : s.state,
		          s.known && s.state == PS_SUCCEEDED);
	}
	free(ids);
	deps_drain();
}

/* A stack of nodes to visit. */
struct dwalk {
	struct dnode **v;
	size_t n, cap;
};

static void
dwalk_push(struct dwalk *st, struct dnode *d)
{
	struct dnode **p;

	if (st->n == st->cap) {
		st->cap = st->cap ? st->cap * 2 : 64;
		if ((p = reallocarray(st->v, st->cap, sizeof(*p))) == NULL)
			fatal("deps_parked");
		st->v = p;
	}
	st->v[st->n++] = d;
}

/*
 * The jobs that wait for a job a stop leaves queued (queue_parked: held,
 * scheduled, in a paused group), or for one that waits so: they cannot
 * start before the next start either.  Marks them (deps_is_parked) and
 * counts them: from each parked job down its waiters.
 */
size_t
deps_parked(void)
{
	struct dwalk st = {NULL, 0, 0};
	struct dnode *d, *w;
	struct job *j;
	size_t i, k, count = 0;

	if (deps.count == 0)
		return 0; /* nothing waits for anything */
	if (++deps.parked_gen == 0)
		deps.parked_gen = 1; /* 0 marks nothing */
	for (i = 0; i < deps.nbucket; i++)
		for (d = deps.bucket[i]; d != NULL; d = d->hnext)
			if (d->n > 0 && (j = job_find(d->id)) != NULL &&
			    !PROTO_STATE_FINAL(j->state) && queue_parked(j))
				dwalk_push(&st, d);
	while (st.n > 0) {
		d = st.v[--st.n];
		for (k = 0; k < d->n; k++) {
			w = deps_find(d->waiters[k]);
			if (w == NULL || w->job == NULL ||
			    w->parked == deps.parked_gen)
				continue;
			w->parked = deps.parked_gen;
			count++;
			if (w->n > 0)
				dwalk_push(&st, w);
		}
	}
	free(st.v);
	return count;
}

bool
deps_is_parked(const struct job *j)
{
	const struct dnode *d = deps_find(j->id);

	return d != NULL && d->job == j && d->parked != 0 &&
	       d->parked == deps.parked_gen;
}

bool
deps_cancel(struct job *j)
{
	struct dnode *d = deps_find(j->id);

	if (d == NULL || d->job != j)
		return false;
	d->job = NULL;
	deps_put(d);
	job_end_restored(j, PS_CANCELLED, PE_CANCELLED, NULL);
	return true;
}

void
deps_shutdown(void)
{
	struct dnode *d;
	size_t i;

	for (i = 0; i < deps.nbucket; i++)
		while ((d = deps.bucket[i]) != NULL) {
			deps.bucket[i] = d->hnext;
			free(d->waiters);
			free(d);
		}
	free(deps.bucket);
	free(deps.ends);
	memset(&deps, 0, sizeof(deps));
}

/*
 * The lines of one gather that name each other (@N): refuse a cycle, and
 * name its lines.  Kahn's walk takes every line whose references are all
 * taken; what is left is on a cycle or behind one, and following
 * references among what is left must come round to a line seen before.
 */
int
deps_order_check(size_t n, const uint32_t *first, const uint32_t *refs,
                 char *cause, size_t len)
{
	uint32_t *left = calloc(n ? n : 1, sizeof(*left));
	uint32_t *stack = calloc(n ? n : 1, sizeof(*stack));
	uint32_t *users = NULL, *ufirst = calloc(n + 1, sizeof(*ufirst));
	uint32_t *seen = NULL;
	size_t i, k, top = 0, taken = 0, off;
	int rc = -1;

	if (left == NULL || stack == NULL || ufirst == NULL)
		goto nomem;
	/* who refers to each line: the reverse of refs, in the same form */
	for (i = 0; i < n; i++)
		for (k = first[i]; k < first[i + 1]; k++)
			ufirst[refs[k] + 1]++;
	for (i = 0; i < n; i++)
		ufirst[i + 1] += ufirst[i];
	if ((users = calloc(first[n] ? first[n] : 1, sizeof(*users))) == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		left[i] = first[i + 1] - first[i];
		for (k = first[i]; k < first[i + 1]; k++)
			users[ufirst[refs[k]] + stack[refs[k]]++] = (uint32_t)i;
	}
	memset(stack, 0, n * sizeof(*stack));
	for (i = 0; i < n; i++)
		if (left[i] == 0)
			stack[top++] = (uint32_t)i;
	while (top > 0) {
		uint32_t l = stack[--top];

		taken++;
		for (k = ufirst[l]; k < ufirst[l + 1]; k++)
			if (--left[users[k]] == 0)
				stack[top++] = users[k];
	}
	if (taken == n) {
		rc = 0;
		goto out;
	}
	/* walk back from a line left over until a line comes again */
	if ((seen = calloc(n, sizeof(*seen))) == NULL)
		goto nomem;
	for (i = 0; left[i] == 0; i++)
		;
	for (k = 1; seen[i] == 0; k++) {
		size_t r;

		seen[i] = (uint32_t)k;
		for (r = first[i]; left[refs[r]] == 0; r++)
			;
		i = refs[r];
	}
	/* i is on the cycle: name its lines from the lowest, as they wait */
	for (k = i, top = i;;) {
		size_t r;

		for (r = first[k]; left[refs[r]] == 0; r++)
			;
		k = refs[r];
		if (k < top)
			top = k;
		if (k == i)
			break;
	}
	i = top;
	off = (size_t)snprintf(cause, len, "after: a cycle: @%zu", i);
	for (k = i;;) {
		size_t r;

		for (r = first[k]; left[refs[r]] == 0; r++)
			;
		k = refs[r];
		if (off < len)
			off += (size_t)snprintf(cause + off, len - off,
			                        " waits for @%zu", k);
		if (k == i)
			break;
	}
	goto out;
nomem:
	snprintf(cause, len, "out of memory");
out:
	free(left);
	free(stack);
	free(users);
	free(ufirst);
	free(seen);
	return rc;
}
