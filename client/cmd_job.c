/*
 * cmd_job.c -- the commands that start, follow and end jobs: run,
 * submit, watch, wait, result and cancel.
 *
 * A job's final event decides the exit status through job_outcomes;
 * run and watch follow a job through job_follow, which draws progress,
 * passes the job's output on and, for run, cancels the job on an
 * interrupt.
 */
#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "concctl.h"

/* How long run waits for a cancelled job to end after an interrupt. */
#define JOB_CANCEL_WAIT 5

/* The task whose output is the point: no bar, no result printed. */
#define JOB_EXEC_TASK "exec"

/*
 * While the bar does not know when the job started (it may be queued),
 * it asks for the job's record: first this soon after following began,
 * then once a second.
 */
#define JOB_POLL_FIRST_US 150000
#define JOB_POLL_US       1000000

/* What each final state means for the exit status and the user. */
static const struct job_outcome {
	int exit;
	const char *what;  /* NULL: success */
	const char *usual; /* error code not worth repeating */
} job_outcomes[PS_COUNT] = {
    [PS_SUCCEEDED] = {.exit = CTL_OK},
    [PS_FAILED] = {.exit = CTL_FAILED, .what = "failed"},
    [PS_CANCELLED] = {.exit = CTL_CANCELLED,
                      .what = "cancelled",
                      .usual = "cancelled"},
    [PS_TIMED_OUT] = {.exit = CTL_TIMEOUT,
                      .what = "timed out",
                      .usual = "timed_out"},
};

/* From least to most severe, for wait, cancel and gather. */
static const int job_severity[] = {
    CTL_OK, CTL_CANCELLED, CTL_TIMEOUT, CTL_FAILED, CTL_REFUSED, CTL_CONNECT,
};

int
cmd_job_worse(int a, int b)
{
	size_t i;

	for (i = 0; i < sizeof(job_severity) / sizeof(job_severity[0]); i++) {
		if (job_severity[i] == a)
			return b;
		if (job_severity[i] == b)
			return a;
	}
	return a;
}

/* The exit status a final state means. */
int
cmd_job_exit(int state)
{
	return job_outcomes[state].exit;
}

/*
 * Whether the words of a run command name the exec task: its exit status
 * is then the command's, and concctl's own is kept apart from it even
 * when the words are not understood.
 */
bool
cmd_job_runs_exec(int argc, char **argv)
{
	const char *task = cmd_task_name(argc, argv);

	return task != NULL && strcmp(task, JOB_EXEC_TASK) == 0;
}

/*
 * concctl's own outcome where the command's exit status is expected
 * (run exec, wait for one exec job): one the command's cannot be
 * mistaken for, unless the command itself exits so.
 */
int
cmd_job_command_exit(int own)
{
	static const struct {
		int own, as;
	} codes[] = {
	    {CTL_OK, CTL_OK},
	    {CTL_TIMEOUT, CTL_CMD_TIMEOUT},
	    {CTL_INTERRUPTED, CTL_INTERRUPTED},
	};
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].own == own)
			return codes[i].as;
	return CTL_CMD_FAILED;
}

/*
 * The command's own exit status in an end event: its exit, 128 + N for
 * signal N; -1 when the command has none to give (it never ran) or the
 * job timed out (CTL_CMD_TIMEOUT says so).
 */
static int
job_command_status(const struct proto_msg *m, int state)
{
	if (state == PS_TIMED_OUT)
		return -1;
	if (proto_has(m, PF_EXIT))
		return (int)(proto_u64(m, PF_EXIT, 0) & 0xff);
	if (proto_has(m, PF_SIGNAL))
		return 128 + (int)(proto_u64(m, PF_SIGNAL, 0) & 0x7f);
	return -1;
}

/* The final state of an end event, or -1 after a message. */
int
cmd_job_state(const struct proto_msg *m)
{
	char state[17], shown[17];
	int st;

	proto_strcpy(m, PF_STATE, state, sizeof(state));
	st = proto_state_lookup(state, strlen(state));
	if (st < 0 || !PROTO_STATE_FINAL(st)) {
		render_safe(shown, sizeof(shown), state, strlen(state));
		warnx("protocol error: job %" PRIu64 " ended as \"%s\"",
		      proto_u64(m, PF_JOB, 0), shown);
		return -1;
	}
	return st;
}

/*
 * An end event: print the result or what went wrong; the exit status.
 * With status, the command's own status there (-1: none): a command
 * that exited non-zero is not reported, its status says it.
 */
static int
job_end_status(struct ctl *ctl, const struct proto_msg *m, bool print,
               int *status)
{
	const struct job_outcome *o;
	char code[33], message[1025];
	uint64_t job = proto_u64(m, PF_JOB, 0);
	const char *s;
	size_t len;
	int st;

	if ((st = cmd_job_state(m)) < 0)
		return CTL_CONNECT;
	o = &job_outcomes[st];
	if (status != NULL)
		*status = job_command_status(m, st);
	if (status != NULL && *status >= 0 && proto_has(m, PF_EXIT))
		return o->exit; /* its status tells */
	if (o->what == NULL) {
		if (print && !ctl->json && proto_has(m, PF_RESULT)) {
			render_value(stdout, &m->f[PF_RESULT]);
			ctl_flush_stdout();
		}
		return CTL_OK;
	}
	s = proto_str(m, PF_ERROR, &len);
	render_safe(code, sizeof(code), s, len);
	if ((s = proto_str(m, PF_MESSAGE, &len)) == NULL) {
		s = code;
		len = strlen(code);
	}
	render_safe(message, sizeof(message), s, len);
	if (*message == '\0' ||
	    (o->usual != NULL && strcmp(code, o->usual) == 0))
		warnx("job %" PRIu64 " %s", job, o->what);
	else
		warnx("job %" PRIu64 " %s: %s", job, o->what, message);
	return o->exit;
}

static int
job_end(struct ctl *ctl, const struct proto_msg *m, bool print)
{
	return job_end_status(ctl, m, print, NULL);
}

/*
 * Output read from the job's kept output (log, watch) that comes after a
 * gap, past the daemon's log limit: say how much is missing, there.
 */
static void
job_output_gap(const struct proto_msg *m)
{
	uint64_t skipped = proto_u64(m, PF_SKIPPED, 0);

	if (skipped > 0)
		warnx("job %" PRIu64 ": %" PRIu64
		      " bytes of output not kept here",
		      proto_u64(m, PF_JOB, 0), skipped);
}

/* Whether two arguments are entries of the same map. */
static bool
job_same_map(const struct cmd_kv *a, const struct cmd_kv *b)
{
	return a->maplen > 0 && a->maplen == b->maplen &&
	       memcmp(a->key, b->key, a->maplen) == 0;
}

/* The end of a->kv[i]'s map: its entries are side by side (cmd_kv_order). */
static int
job_map_end(const struct cmd_args *a, int i)
{
	int j = i + 1;

	while (j < a->nkv && job_same_map(&a->kv[j], &a->kv[i]))
		j++;
	return j;
}

static void
job_pack_value(msgpack_packer *pk, const struct cmd_kv *kv)
{
	switch (kv->type) {
	case CMD_VALUE_INT:
		msgpack_pack_int64(pk, kv->i);
		break;
	case CMD_VALUE_BOOL:
		if (kv->i)
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		break;
	case CMD_VALUE_STR:
		msgpack_pack_str_with_body(pk, kv->s, kv->slen);
		break;
	}
}

/*
 * The task's arguments as one msgpack map: key=value, a map for the
 * map.key=value entries of each map, and argv for the words after "--".
 */
static void
job_pack_args(msgpack_packer *pk, const struct cmd_args *a)
{
	uint32_t n = 0;
	int i, j, end;

	for (i = 0; i < a->nkv; i = job_map_end(a, i))
		n++;
	msgpack_pack_map(pk, n + (a->cmdstart >= 0));
	for (i = 0; i < a->nkv; i = end) {
		const struct cmd_kv *kv = &a->kv[i];

		end = job_map_end(a, i);
		if (kv->maplen == 0) {
			msgpack_pack_str_with_body(pk, kv->key, kv->keylen);
			job_pack_value(pk, kv);
			continue;
		}
		msgpack_pack_str_with_body(pk, kv->key, kv->maplen);
		msgpack_pack_map(pk, (uint32_t)(end - i));
		for (j = i; j < end; j++) {
			const struct cmd_kv *e = &a->kv[j];

			msgpack_pack_str_with_body(pk, e->key + e->maplen + 1,
			                           e->keylen - e->maplen - 1);
			msgpack_pack_str_with_body(pk, e->s, e->slen);
		}
	}
	if (a->cmdstart >= 0) {
		msgpack_pack_str_with_body(pk, "argv", 4);
		msgpack_pack_array(pk, (size_t)(a->argc - a->cmdstart));
		for (i = a->cmdstart; i < a->argc; i++)
			msgpack_pack_str_with_body(pk, a->argv[i],
			                           strlen(a->argv[i]));
	}
}

static void
job_pack_key(msgpack_packer *pk, enum proto_field f)
{
	const char *name = proto_fields[f].name;

	msgpack_pack_str_with_body(pk, name, strlen(name));
}

/* The length of an --env word's name (up to its '=', if any). */
static size_t
job_env_name(const char *word)
{
	return strcspn(word, "=");
}

/*
 * Whether --env names the variable of the NAME=VALUE string var: a->env
 * is by name, each once (cmd_env_sort).
 */
static bool
job_env_given(const struct cmd_args *a, const char *var)
{
	size_t n = job_env_name(var), m;
	int lo = 0, hi = a->nenv, mid, c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		m = job_env_name(a->env[mid]);
		c = memcmp(a->env[mid], var, m < n ? m : n);
		if (c == 0)
			c = (m > n) - (m < n);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void
job_pack_var(msgpack_packer *pk, const char *name, size_t nlen,
             const char *value)
{
	msgpack_pack_str_with_body(pk, name, nlen);
	msgpack_pack_str_with_body(pk, value, strlen(value));
}

/*
 * The job's environment, from --env-all and --env: names to values.  A
 * variable that is not UTF-8 cannot travel (concd-protocol(7)): --env-all
 * leaves it out, saying so.  --env NAME of a variable not set here gives
 * nothing, as docker run -e does.
 */
static void
job_pack_env(msgpack_packer *pk, const struct cmd_args *a)
{
	extern char **environ;
	const char *value;
	size_t nlen;
	uint32_t n = 0;
	char **e;
	int i, pass;

	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			job_pack_key(pk, PF_ENV);
			msgpack_pack_map(pk, n);
		}
		for (e = environ; (a->seen & CMD_OPT_ENV_ALL) && *e != NULL;
		     e++) {
			nlen = job_env_name(*e);
			if ((*e)[nlen] != '=' || nlen == 0 ||
			    job_env_given(a, *e))
				continue;
			if (!proto_utf8_valid(*e, strlen(*e))) {
				if (pass == 0)
					warnx("--env-all: %.*s is not UTF-8: "
					      "left out",
					      (int)nlen, *e);
				continue;
			}
			if (pass == 0)
				n++;
			else
				job_pack_var(pk, *e, nlen, *e + nlen + 1);
		}
		for (i = 0; i < a->nenv; i++) {
			nlen = job_env_name(a->env[i]);
			if (a->env[i][nlen] == '=')
				value = a->env[i] + nlen + 1;
			else if ((value = getenv(a->env[i])) == NULL)
				continue;
			if (pass == 0)
				n++;
			else
				job_pack_var(pk, a->env[i], nlen, value);
		}
	}
}

/*
 * Ours, for an exec job's command, as at(1) keeps it; umask reads it only
 * by setting it.
 */
static mode_t
job_umask(void)
{
	mode_t m = umask(0);

	umask(m);
	return m;
}

/*
 * The directory a job runs in: --cwd (made absolute), else for an exec
 * job the current one; NULL: none is sent.  The current directory is
 * asked for once: a gather has it for each of its exec lines.
 */
static const char *
job_cwd(const struct cmd_args *a)
{
	static char here[4096], there[8192];
	static int known; /* 1: here holds it, -1: it cannot be had */

	if (a->cwd == NULL && strcmp(a->argv[0], JOB_EXEC_TASK) != 0)
		return NULL;
	if (a->cwd != NULL && *a->cwd == '/')
		return a->cwd;
	if (known == 0 && getcwd(here, sizeof(here)) == NULL) {
		warnx("the current directory: %s%s", strerror(errno),
		      a->cwd == NULL ? "; the job runs in the daemon's default"
		                     : "");
		known = -1;
	} else if (known == 0)
		known = 1;
	if (known < 0)
		return a->cwd; /* relative, the daemon says so; or none */
	if (a->cwd == NULL)
		return here;
	snprintf(there, sizeof(there), "%s/%s", strcmp(here, "/") ? here : "",
	         a->cwd);
	return there;
}

/*
 * Whether the directory a job runs in can be sent: the protocol carries
 * text as UTF-8, and a directory's name on Linux is bytes.  -1 after a
 * message that says what to do.
 */
int
cmd_job_check_cwd(const char *cmd, const struct cmd_args *a)
{
	const char *cwd = job_cwd(a);

	if (cwd == NULL || proto_utf8_valid(cwd, strlen(cwd)))
		return 0;
	warnx("%s: the job's directory is not UTF-8, which concd's protocol "
	      "cannot carry: %s; name another with --cwd",
	      cmd, cwd);
	return -1;
}

/*
 * The fields of a job request (task, args, executor, flags, timeout,
 * retries, directory, environment) as key-value pairs, without a map
 * header: a submit has them
 * at its top level, a gather entry in a map of its own.  Returns how
 * many pairs were packed.
 */
/* Where the job waits its turn: the fields of the queue's options. */
static size_t
job_pack_queue(msgpack_packer *pk, const struct cmd_args *a)
{
	size_t n = 0;

	if (a->group != NULL) {
		job_pack_key(pk, PF_GROUP);
		msgpack_pack_str_with_body(pk, a->group, strlen(a->group));
		n++;
	}
	if (a->label != NULL) {
		job_pack_key(pk, PF_LABEL);
		msgpack_pack_str_with_body(pk, a->label, strlen(a->label));
		n++;
	}
	if (a->seen & CMD_OPT_PRIORITY) {
		job_pack_key(pk, PF_PRIORITY);
		msgpack_pack_int64(pk, a->priority);
		n++;
	}
	if (a->seen & CMD_OPT_CPUS) {
		job_pack_key(pk, PF_CPUS);
		msgpack_pack_uint64(pk, a->cpus);
		n++;
	}
	if (a->seen & (CMD_OPT_AT | CMD_OPT_IN)) {
		job_pack_key(pk, PF_AT);
		msgpack_pack_uint64(pk, a->at);
		n++;
	}
	if (a->seen & CMD_OPT_HOLD) {
		job_pack_key(pk, PF_HELD);
		msgpack_pack_true(pk);
		n++;
	}
	return n;
}

size_t
cmd_job_pack(msgpack_packer *pk, const struct cmd_args *a)
{
	const char *cwd;
	size_t n = 2;

	job_pack_key(pk, PF_TASK);
	msgpack_pack_str_with_body(pk, a->argv[0], strlen(a->argv[0]));
	job_pack_key(pk, PF_ARGS);
	job_pack_args(pk, a);
	if (a->seen & CMD_OPT_EXEC) {
		job_pack_key(pk, PF_EXEC);
		msgpack_pack_str_with_body(pk, proto_execs[a->exec],
		                           strlen(proto_execs[a->exec]));
		n++;
	}
	if (a->seen & CMD_OPT_DAEMON) {
		job_pack_key(pk, PF_DAEMON);
		msgpack_pack_true(pk);
		n++;
	}
	if (a->seen & CMD_OPT_FRESH) {
		job_pack_key(pk, PF_FRESH);
		msgpack_pack_true(pk);
		n++;
	}
	if (a->timeout_ms != 0) {
		job_pack_key(pk, PF_TIMEOUT);
		msgpack_pack_uint64(pk, a->timeout_ms);
		n++;
	}
	if (a->seen & CMD_OPT_RETRIES) {
		job_pack_key(pk, PF_RETRIES);
		msgpack_pack_uint64(pk, a->retries);
		n++;
	}
	if (a->seen & CMD_OPT_RETRY_DELAY) {
		job_pack_key(pk, PF_RETRY_DELAY);
		msgpack_pack_uint64(pk, a->retry_delay_ms);
		n++;
	}
	if (a->seen & CMD_OPT_MEM) {
		job_pack_key(pk, PF_MEM);
		msgpack_pack_uint64(pk, a->mem);
		n++;
	}
	if (a->seen & CMD_OPT_PIDS) {
		job_pack_key(pk, PF_PIDS);
		msgpack_pack_uint64(pk, a->pids);
		n++;
	}
	if (a->nafter > 0) {
		cmd_job_pack_after(pk, a->after, a->nafter);
		n++;
	}
	if (a->seen & CMD_OPT_AFTER_ANY) {
		job_pack_key(pk, PF_AFTER_ANY);
		msgpack_pack_true(pk);
		n++;
	}
	if ((cwd = job_cwd(a)) != NULL) {
		job_pack_key(pk, PF_CWD);
		msgpack_pack_str_with_body(pk, cwd, strlen(cwd));
		n++;
	}
	if (strcmp(a->argv[0], JOB_EXEC_TASK) == 0) {
		job_pack_key(pk, PF_UMASK);
		msgpack_pack_uint64(pk, job_umask());
		n++;
	}
	if (a->seen & (CMD_OPT_ENV | CMD_OPT_ENV_ALL)) {
		job_pack_env(pk, a);
		n++;
	}
	return n + job_pack_queue(pk, a);
}

/* The after field: job ids, and "@N" for a line of the same gather. */
void
cmd_job_pack_after(msgpack_packer *pk, const struct cmd_dep *after, uint32_t n)
{
	char ref[24];
	uint32_t i;
	int len;

	job_pack_key(pk, PF_AFTER);
	msgpack_pack_array(pk, n);
	for (i = 0; i < n; i++) {
		if (!after[i].line) {
			msgpack_pack_uint64(pk, after[i].v);
			continue;
		}
		len = snprintf(ref, sizeof(ref), "@%" PRIu64, after[i].v);
		msgpack_pack_str_with_body(pk, ref, (size_t)len);
	}
}

static uint64_t
job_encode_submit(struct conn *c, struct proto_enc *e, const struct cmd_args *a,
                  bool watch, bool stream)
{
	uint64_t id;
	size_t n;

	id = conn_begin(c, e, PROTO_SUBMIT);
	for (n = cmd_job_pack(&e->pk, a); n > 0; n--)
		proto_enc_elem(e);
	proto_enc_bool(e, PF_WATCH, watch);
	if (stream)
		proto_enc_cstr(e, PF_STDIN, "stream");
	return id;
}

/* Whether the job's arguments give its standard input (stdin=). */
static bool
job_has_stdin(const struct cmd_args *a)
{
	int i;

	for (i = 0; i < a->nkv; i++)
		if (a->kv[i].maplen == 0 && a->kv[i].keylen == 5 &&
		    memcmp(a->kv[i].key, "stdin", 5) == 0)
			return true;
	return false;
}

/* Send a request that names one job; returns its id in *id. */
static enum conn_status
job_request(struct conn *c, enum proto_type type, uint64_t job, uint64_t *id)
{
	struct proto_enc e;
	uint64_t rid;

	rid = conn_begin(c, &e, type);
	proto_enc_u64(&e, PF_JOB, job);
	if (id != NULL)
		*id = rid;
	return conn_send(c, &e);
}

/* A retry event: "job 7: attempt 2 after: exited with status 1". */
void
cmd_job_retry_line(struct ctl *ctl, const struct proto_msg *m,
                   const char *prefix)
{
	char message[1025];
	const char *s;
	size_t len;

	if (ctl->quiet || ctl->json)
		return;
	if ((s = proto_str(m, PF_MESSAGE, &len)) == NULL)
		s = proto_str(m, PF_ERROR, &len);
	render_safe(message, sizeof(message), s, len);
	fprintf(stderr, "%sjob %" PRIu64 ": attempt %" PRIu64 " after: %s\n",
	        prefix, proto_u64(m, PF_JOB, 0), proto_u64(m, PF_ATTEMPT, 0),
	        *message != '\0' ? message : "failure");
}

/* How run and watch follow a job. */
struct job_follow {
	uint64_t req;
	uint64_t job;
	bool own;              /* run: the job is ours to cancel */
	bool bar;              /* a live bar; not for a job that is output */
	bool queue;            /* a live line only while the job is queued */
	bool result;           /* print the result */
	bool feed;             /* run exec: stream the standard input */
	struct cmd_slot *slot; /* run: the submit, to send again */
	int status;            /* out: the command's exit status, or -1 */
};

/*
 * Whether the bar still needs the job's record: while it does not know
 * when the job started (with only a queued line, while it may be queued).
 */
static bool
job_poll_wanted(const struct job_follow *f, const struct render_progress *p,
                bool running)
{
	if (f->bar)
		return p->began == 0;
	return f->queue && !running;
}

/* Whether the live line is drawn now: the bar, or the queued line. */
static bool
job_drawn(const struct job_follow *f, const struct render_progress *p)
{
	return f->bar || (f->queue && p->queued);
}

/*
 * Follow the events of request f->req until the job's end.  For run
 * (own), the first interrupt cancels the job and waits a while for its
 * end; otherwise an interrupt leaves at once.  With a bar, the job's
 * record is asked for (status) until the job is known to have started,
 * for the "queued (N ahead)" line and for the time the rate counts from.
 */
static int
job_follow(struct ctl *ctl, struct job_follow *f)
{
	struct conn *c = &ctl->conn;
	struct render_progress p;
	struct proto_msg m;
	enum conn_status st;
	bool have_job = !f->own, cancelling = false, bol[2] = {true, true};
	bool running = false;
	int64_t deadline = -1, wake, due, poll_at;
	uint64_t job = f->job, poll = 0;
	int ret;

	render_progress_init(&p, job, NULL);
	poll_at = p.start + JOB_POLL_FIRST_US;
	f->status = -1;
	for (;;) {
		wake = deadline;
		if (job_drawn(f, &p) && have_job) {
			due = render_progress_due(&p);
			if (wake < 0 || due < wake)
				wake = due;
		}
		if (have_job && !cancelling && poll == 0 &&
		    job_poll_wanted(f, &p, running) &&
		    (wake < 0 || poll_at < wake))
			wake = poll_at;
		st = conn_recv(c, &m, wake);
		if (st == CONN_TIMEOUT) {
			if (deadline >= 0 && conn_now() >= deadline) {
				render_progress_clear(&p);
				warnx("job %" PRIu64 " did not end within %d "
				      "seconds of being cancelled",
				      job, JOB_CANCEL_WAIT);
				return CTL_INTERRUPTED;
			}
			if (have_job && !cancelling && poll == 0 &&
			    job_poll_wanted(f, &p, running) &&
			    conn_now() >= poll_at &&
			    job_request(c, PROTO_STATUS, job, &poll) != CONN_OK)
				goto lost;
			if (job_drawn(f, &p))
				render_progress_draw(&p);
			continue;
		}
		if (st == CONN_INTR) {
			conn_feed(c, -1, 0);
			if (!f->own || cancelling) {
				render_progress_clear(&p);
				return CTL_INTERRUPTED;
			}
			cancelling = true;
			deadline = conn_now() + JOB_CANCEL_WAIT * 1000000;
			if (have_job &&
			    job_request(c, PROTO_CANCEL, job, NULL) != CONN_OK)
				goto lost;
			continue;
		}
		if (st != CONN_OK) {
			render_progress_clear(&p);
			ret = cmd_conn_exit(ctl, st);
			return cancelling ? CTL_INTERRUPTED : ret;
		}
		if (poll != 0 && m.id == poll) {
			/* the job's record; an error (it ended) says nothing */
			poll = 0;
			poll_at = conn_now() + JOB_POLL_US;
			if (m.type == PROTO_JOB)
				render_progress_record(&p, &m);
			if (running) /* a record older than the events */
				p.queued = false;
			else if (m.type == PROTO_JOB && !p.queued)
				running = true; /* or over: no more asking */
			if (!p.queued && !f->bar)
				render_progress_clear(&p);
			continue;
		}
		if (m.id != f->req)
			continue; /* e.g. the reply to our cancel */
		switch (m.type) {
		case PROTO_ACCEPTED:
			job = p.job = proto_u64(&m, PF_JOB, 0);
			have_job = true;
			p.start = conn_now();
			if (f->feed && !cancelling)
				conn_feed(c, STDIN_FILENO, job);
			poll_at = p.start + JOB_POLL_FIRST_US;
			if (cancelling &&
			    job_request(c, PROTO_CANCEL, job, NULL) != CONN_OK)
				goto lost;
			break;
		case PROTO_PROGRESS:
			running = true;
			render_progress_update(&p, &m);
			if (f->bar)
				render_progress_draw(&p);
			else if (!ctl->quiet && !ctl->json)
				render_progress_line(&p);
			break;
		case PROTO_OUTPUT:
			running = true;
			p.queued = false;
			if (ctl->json)
				break;
			render_progress_clear(&p);
			job_output_gap(&m);
			if (render_output(&m, NULL, bol) < 0) {
				warnx("protocol error: output without data");
				return CTL_CONNECT;
			}
			break;
		case PROTO_RETRY:
			running = false;
			render_progress_clear(&p);
			render_progress_reset(&p);
			cmd_job_retry_line(ctl, &m, "");
			break;
		case PROTO_END:
			render_progress_clear(&p);
			if (proto_u64(&m, PF_DROPPED, 0) > 0 && !ctl->json)
				warnx("%" PRIu64
				      " bytes of output were dropped "
				      "(reader too slow)",
				      proto_u64(&m, PF_DROPPED, 0));
			conn_feed(c, -1, 0);
			if (cancelling) {
				/* the exit status is ours, 130: the end is told
				 * even where the command's status would be */
				job_end(ctl, &m, f->result);
				return CTL_INTERRUPTED;
			}
			return job_end_status(ctl, &m, f->result, &f->status);
		case PROTO_ERROR:
			render_progress_clear(&p);
			if (!have_job && !cancelling && f->slot != NULL)
				ret = cmd_slot_refused(ctl, f->slot, &m);
			else
				ret = cmd_refused(&m);
			if (ret < 0)
				break; /* sent again: read on */
			return cancelling ? CTL_INTERRUPTED : ret;
		default:
			break;
		}
		if (!f->own && ferror(stdout)) {
			/* watch: the rest would be lost too (printed here, or
			 * as JSON by conn_recv); run follows its job to its
			 * end, whose output concd keeps */
			render_progress_clear(&p);
			return CTL_OUTPUT;
		}
	}
lost:
	render_progress_clear(&p);
	warnx("cannot cancel job %" PRIu64 ": %s", job,
	      *c->cause != '\0' ? c->cause : "connection lost");
	return CTL_INTERRUPTED;
}

int
cmd_job_run(struct ctl *ctl, struct cmd_args *a)
{
	struct cmd_slot slot = {.wait = (a->seen & CMD_OPT_WAIT_SLOT) != 0};
	struct job_follow f = {.own = true, .slot = &slot};
	bool exec = strcmp(a->argv[0], JOB_EXEC_TASK) == 0;
	struct proto_enc e;
	enum conn_status st;
	int ret;

	/* exec reads this standard input, unless told or given another */
	f.feed = exec && !(a->seen & CMD_OPT_NO_STDIN) && !job_has_stdin(a);
	f.req = job_encode_submit(&ctl->conn, &e, a, true, f.feed);
	f.bar = ctl->bar && !exec;
	f.queue = ctl->bar && exec;
	f.result = !exec;
	f.status = -1;
	if ((st = cmd_slot_send(ctl, &slot, &e)) != CONN_OK)
		ret = cmd_conn_exit(ctl, st);
	else
		ret = job_follow(ctl, &f);
	cmd_slot_free(&slot);
	/* the command's status, unless concctl was interrupted (130) */
	if (exec && ret != CTL_INTERRUPTED && f.status >= 0)
		return f.status;
	if (exec)
		return cmd_job_command_exit(ret);
	return ret;
}

int
cmd_job_submit(struct ctl *ctl, struct cmd_args *a)
{
	struct cmd_slot slot = {.wait = (a->seen & CMD_OPT_WAIT_SLOT) != 0};
	struct proto_enc e;
	struct proto_msg m;
	enum conn_status st;
	uint64_t id;
	int ret = -1;

	id = job_encode_submit(&ctl->conn, &e, a, false, false);
	if ((st = cmd_slot_send(ctl, &slot, &e)) != CONN_OK)
		ret = cmd_conn_exit(ctl, st);
	while (ret < 0) {
		if ((st = conn_recv(&ctl->conn, &m, -1)) != CONN_OK) {
			ret = cmd_conn_exit(ctl, st);
			break;
		}
		if (m.id != id)
			continue;
		if (m.type == PROTO_ERROR)
			ret = cmd_slot_refused(ctl, &slot, &m);
		else if (m.type == PROTO_ACCEPTED) {
			if (!ctl->json)
				printf("%" PRIu64 "\n",
				       proto_u64(&m, PF_JOB, 0));
			ret = CTL_OK;
		} else {
			warnx("protocol error: %s instead of accepted",
			      proto_types[m.type].name);
			ret = CTL_CONNECT;
		}
	}
	cmd_slot_free(&slot);
	return ret;
}

int
cmd_job_watch(struct ctl *ctl, struct cmd_args *a)
{
	struct job_follow f = {
	    .job = a->jobs[0], .bar = ctl->bar, .result = true};
	enum conn_status st;

	st = job_request(&ctl->conn, PROTO_WATCH, a->jobs[0], &f.req);
	if (st != CONN_OK)
		return cmd_conn_exit(ctl, st);
	return job_follow(ctl, &f);
}

/*
 * A job's kept output: the stdout data to the standard output, the
 * stderr data to the standard error, as they were written.  Without -f
 * the reply ends with ok; with it, with the job's end, whose outcome is
 * the exit status as for watch.
 */
int
cmd_job_log(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	enum conn_status st;
	bool bol[2] = {true, true};
	uint64_t id;

	id = conn_begin(&ctl->conn, &e, PROTO_LOG);
	proto_enc_u64(&e, PF_JOB, a->jobs[0]);
	if (a->seen & CMD_OPT_STDOUT)
		proto_enc_cstr(&e, PF_STREAM, "stdout");
	else if (a->seen & CMD_OPT_STDERR)
		proto_enc_cstr(&e, PF_STREAM, "stderr");
	if (a->seen & CMD_OPT_TAIL)
		proto_enc_u64(&e, PF_TAIL, a->tail);
	if (a->seen & CMD_OPT_FOLLOW)
		proto_enc_bool(&e, PF_FOLLOW, true);
	if ((st = conn_send(&ctl->conn, &e)) != CONN_OK)
		return cmd_conn_exit(ctl, st);
	for (;;) {
		if ((st = conn_recv(&ctl->conn, &m, -1)) != CONN_OK)
			return cmd_conn_exit(ctl, st);
		if (m.id != id)
			continue;
		switch (m.type) {
		case PROTO_OUTPUT:
			if (ctl->json)
				break;
			job_output_gap(&m);
			if (render_output(&m, NULL, bol) < 0) {
				warnx("protocol error: output without data");
				return CTL_CONNECT;
			}
			break;
		case PROTO_OK:
			return CTL_OK;
		case PROTO_END:
			return job_end(ctl, &m, false);
		case PROTO_ERROR:
			return cmd_refused(&m);
		default:
			break;
		}
		/* printed here, or as JSON by conn_recv: the rest would be
		 * lost too */
		if (ferror(stdout))
			return CTL_OUTPUT;
	}
}

int
cmd_job_result(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_RESULT);
	proto_enc_u64(&e, PF_JOB, a->jobs[0]);
	if ((ret = cmd_call(ctl, &e, id, PROTO_END, &m)) != CTL_OK)
		return ret;
	return job_end(ctl, &m, true);
}

/*
 * Send one request of type per job; the ids are consecutive, so the
 * reply to job i carries first + i.
 */
static int
job_send_all(struct ctl *ctl, enum proto_type type, struct cmd_args *a,
             uint64_t *first)
{
	enum conn_status st;
	uint64_t id;
	int i;

	for (i = 0; i < a->argc; i++) {
		if ((st = job_request(&ctl->conn, type, a->jobs[i], &id)) !=
		    CONN_OK)
			return cmd_conn_exit(ctl, st);
		if (i == 0)
			*first = id;
	}
	return CTL_OK;
}

static void
job_timed_out(const struct cmd_args *a, const bool *done)
{
	char list[256] = "";
	size_t off = 0;
	int i, n = 0;

	for (i = 0; i < a->argc; i++) {
		if (done[i])
			continue;
		if (off < sizeof(list))
			off += (size_t)snprintf(list + off, sizeof(list) - off,
			                        "%s%" PRIu64,
			                        n == 0 ? "" : ", ", a->jobs[i]);
		n++;
	}
	if (off >= sizeof(list))
		memcpy(list + sizeof(list) - 4, "...", 4);
	warnx("timed out waiting for job%s %s", n == 1 ? "" : "s", list);
}

static int job_wait(struct ctl *, struct cmd_args *, int *);

/*
 * Whether the one job wait waits for runs a command (its task is exec):
 * then wait exits with the command's status.  Asked with status, whose
 * reply is read before the watch's events.
 */
static int
job_wait_one_exec(struct ctl *ctl, uint64_t job, bool *exec)
{
	struct proto_enc e;
	struct proto_msg m;
	enum conn_status st;
	const char *task;
	uint64_t id;
	size_t len;

	*exec = false;
	id = conn_begin(&ctl->conn, &e, PROTO_STATUS);
	proto_enc_u64(&e, PF_JOB, job);
	if ((st = conn_send(&ctl->conn, &e)) != CONN_OK)
		return cmd_conn_exit(ctl, st);
	do {
		if ((st = conn_recv(&ctl->conn, &m, -1)) != CONN_OK)
			return cmd_conn_exit(ctl, st);
	} while (m.id != id);
	if (m.type == PROTO_ERROR)
		return cmd_refused(&m);
	task = proto_str(&m, PF_TASK, &len);
	*exec = task != NULL && len == strlen(JOB_EXEC_TASK) &&
	        memcmp(task, JOB_EXEC_TASK, len) == 0;
	return CTL_OK;
}

int
cmd_job_wait(struct ctl *ctl, struct cmd_args *a)
{
	bool exec = false;
	int ret, status = -1;

	if (a->argc == 1 && !(a->seen & CMD_OPT_ANY) &&
	    (ret = job_wait_one_exec(ctl, a->jobs[0], &exec)) != CTL_OK)
		return ret;
	ret = job_wait(ctl, a, exec ? &status : NULL);
	ctl->command_status = exec;
	if (exec)
		return status >= 0 ? status : cmd_job_command_exit(ret);
	return ret;
}

/* Wait for the jobs; with status, the one job's command's status. */
static int
job_wait(struct ctl *ctl, struct cmd_args *a, int *status)
{
	struct proto_msg m;
	enum conn_status st;
	bool *done = a->done;
	int64_t deadline = -1;
	uint64_t first = 0, i;
	int ret, worst = CTL_OK, pending = a->argc;

	if (a->seen & CMD_OPT_GROUP)
		return cmd_group_wait(ctl, a);
	if (a->timeout_ms != 0)
		deadline = conn_now() + (int64_t)a->timeout_ms * 1000;
	memset(done, 0, (size_t)a->argc * sizeof(*done));
	if ((ret = job_send_all(ctl, PROTO_WATCH, a, &first)) != CTL_OK)
		return ret;
	while (pending > 0) {
		st = conn_recv(&ctl->conn, &m, deadline);
		if (st == CONN_TIMEOUT) {
			job_timed_out(a, done);
			return CTL_TIMEOUT;
		}
		if (st != CONN_OK)
			return cmd_conn_exit(ctl, st);
		i = m.id - first;
		if (m.id < first || i >= (uint64_t)a->argc || done[i])
			continue;
		if (m.type == PROTO_END)
			ret = job_end_status(ctl, &m, false, status);
		else if (m.type == PROTO_ERROR)
			ret = cmd_refused(&m);
		else
			continue;
		if ((a->seen & CMD_OPT_ANY) && m.type == PROTO_END) {
			/* the first to end decides */
			if (ret != CTL_CONNECT && !ctl->json)
				printf("%" PRIu64 " %s\n", a->jobs[i],
				       proto_states[cmd_job_state(&m)]);
			return ret;
		}
		if (a->seen & CMD_OPT_ANY)
			return ret;
		done[i] = true;
		pending--;
		worst = cmd_job_worse(worst, ret);
	}
	return worst;
}

int
cmd_job_cancel(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_msg m;
	enum conn_status st;
	bool *done = a->done;
	char state[17];
	uint64_t first = 0, i;
	int ret, s, worst = CTL_OK, pending = a->argc;

	memset(done, 0, (size_t)a->argc * sizeof(*done));
	if ((ret = job_send_all(ctl, PROTO_CANCEL, a, &first)) != CTL_OK)
		return ret;
	while (pending > 0) {
		if ((st = conn_recv(&ctl->conn, &m, -1)) != CONN_OK)
			return cmd_conn_exit(ctl, st);
		i = m.id - first;
		if (m.id < first || i >= (uint64_t)a->argc || done[i])
			continue;
		if (m.type == PROTO_ERROR)
			worst = cmd_job_worse(worst, cmd_refused(&m));
		else if (m.type != PROTO_OK)
			continue;
		else if (!ctl->quiet && !ctl->json) {
			proto_strcpy(&m, PF_STATE, state, sizeof(state));
			s = proto_state_lookup(state, strlen(state));
			if (s < 0)
				printf("job %" PRIu64 ": cancel requested\n",
				       a->jobs[i]);
			else if (!PROTO_STATE_FINAL(s))
				printf("job %" PRIu64 ": cancelling (%s)\n",
				       a->jobs[i], state);
			else if (s == PS_CANCELLED &&
			         !proto_bool(&m, PF_ALREADY, false))
				printf("job %" PRIu64 ": cancelled\n",
				       a->jobs[i]);
			else /* it had ended before: left as it ended */
				printf("job %" PRIu64 ": already %s\n",
				       a->jobs[i], state);
		}
		done[i] = true;
		pending--;
	}
	return worst;
}

/* Forget finished jobs: how many the daemon forgot. */
int
cmd_job_clean(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_CLEAN);
	if (a->seen & CMD_OPT_STATE)
		proto_enc_cstr(&e, PF_STATE, proto_states[a->state]);
	if (a->seen & CMD_OPT_BEFORE)
		proto_enc_u64(&e, PF_BEFORE, a->before);
	if (a->seen & CMD_OPT_USER)
		proto_enc_u64(&e, PF_UID, a->uid);
	if ((ret = cmd_call(ctl, &e, id, PROTO_OK, &m)) != CTL_OK)
		return ret;
	if (!ctl->json && !ctl->quiet)
		printf("%" PRIu64 " finished jobs forgotten\n",
		       proto_u64(&m, PF_FORGOTTEN, 0));
	return CTL_OK;
}

/* A finished job again, as a new job: its id. */
int
cmd_job_restart(struct ctl *ctl, struct cmd_args *a)
{
	struct proto_enc e;
	struct proto_msg m;
	uint64_t id;
	int ret;

	id = conn_begin(&ctl->conn, &e, PROTO_RESTART);
	proto_enc_u64(&e, PF_JOB, a->jobs[0]);
	if ((ret = cmd_call(ctl, &e, id, PROTO_ACCEPTED, &m)) != CTL_OK)
		return ret;
	if (!ctl->json)
		printf("%" PRIu64 "\n", proto_u64(&m, PF_JOB, 0));
	return CTL_OK;
}
