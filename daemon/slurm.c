/*
 * slurm.c -- what concd knows of Slurm.  concd grows no cluster of its
 * own: an exec job on the slurm executor is an srun of its command, and
 * remote workers are `concd --worker` processes that srun starts on the
 * nodes.  This file holds the [slurm] settings, finds Slurm's commands
 * in PATH at start, and makes their command lines; it reads what srun
 * says on standard error (the mark a job's command writes first, and
 * slurmstepd's line on how a job was ended) and asks scancel and scontrol.
 *
 * A job's Slurm name is concd-INSTANCE-ID (INSTANCE: the first twelve
 * hex digits of the store's instance), so scancel finds it by name even
 * before Slurm has given it an id, and a restarted concd finds its own.
 */
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "reap.h"
#include "slurm.h"

extern char **environ;

#define SLURM_ARGS_MAX 64   /* words of srun-options */
#define SLURM_QUERY_MS 5000 /* a question to scontrol, at most */

static const char *const slurm_names[SLURM_NTOOLS] = {
    [SLURM_SRUN] = "srun",
    [SLURM_SCANCEL] = "scancel",
    [SLURM_SALLOC] = "salloc",
    [SLURM_SCONTROL] = "scontrol",
};

static struct {
	struct config_slurm cfg;
	char *tool[SLURM_NTOOLS];
	char instance[16];
	char *conf; /* concd's SLURM_CONF, which its sruns get too */
	char why[160];
	bool ready;
} sl;

/* name looked up in PATH as execvp would: a malloc'd path, or NULL. */
static char *
slurm_which(const char *name)
{
	const char *path = getenv("PATH"), *p, *e;
	char *full;

	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p != '\0'; p = *e != '\0' ? e + 1 : e) {
		e = strchrnul(p, ':');
		if (asprintf(&full, "%.*s%s%s", (int)(e - p), p,
		             e > p ? "/" : "./", name) < 0)
			return NULL;
		if (access(full, X_OK) == 0)
			return full;
		free(full);
	}
	return NULL;
}

static char *
slurm_strdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

int
slurm_init(const struct config_slurm *cfg, const char *instance,
           const char *self)
{
	int i;

	sl.cfg = *cfg;
	sl.cfg.partition = slurm_strdup(cfg->partition);
	sl.cfg.account = slurm_strdup(cfg->account);
	sl.cfg.qos = slurm_strdup(cfg->qos);
	sl.cfg.srun_options = slurm_strdup(cfg->srun_options);
	sl.cfg.salloc_options = slurm_strdup(cfg->salloc_options);
	sl.cfg.worker_path =
	    slurm_strdup(cfg->worker_path != NULL ? cfg->worker_path : self);
	snprintf(sl.instance, sizeof(sl.instance), "%.12s", instance);
	if (getenv("SLURM_CONF") != NULL &&
	    asprintf(&sl.conf, "SLURM_CONF=%s", getenv("SLURM_CONF")) < 0)
		sl.conf = NULL;
	if (!cfg->enabled) {
		snprintf(sl.why, sizeof(sl.why),
		         "Slurm is not enabled (slurm.enabled in concd.conf)");
		return 0;
	}
	for (i = 0; i < SLURM_NTOOLS; i++) {
		if ((sl.tool[i] = slurm_which(slurm_names[i])) == NULL) {
			snprintf(sl.why, sizeof(sl.why),
			         "Slurm is not available: %s is not in "
			         "concd's PATH",
			         slurm_names[i]);
			return 0;
		}
	}
	sl.ready = true;
	log_info("slurm: %s", sl.tool[SLURM_SRUN]);
	return 0;
}

void
slurm_fini(void)
{
	int i;

	for (i = 0; i < SLURM_NTOOLS; i++) {
		free(sl.tool[i]);
		sl.tool[i] = NULL;
	}
	free(sl.conf);
	sl.conf = NULL;
	free(sl.cfg.partition);
	free(sl.cfg.account);
	free(sl.cfg.qos);
	free(sl.cfg.srun_options);
	free(sl.cfg.salloc_options);
	free(sl.cfg.worker_path);
	memset(&sl.cfg, 0, sizeof(sl.cfg));
	sl.ready = false;
}

bool
slurm_ready(void)
{
	return sl.ready;
}

const char *
slurm_why(void)
{
	return sl.why[0] != '\0' ? sl.why : "Slurm is not set up";
}

const struct config_slurm *
slurm_config(void)
{
	return &sl.cfg;
}

const char *
slurm_tool(enum slurm_tool t)
{
	return sl.tool[t];
}

void
slurm_job_name(uint64_t id, char *buf, size_t len)
{
	snprintf(buf, len, "concd-%s-%" PRIu64, sl.instance, id);
}

/* A growing argv; on failure (out of memory) it stays failed. */
struct slurm_argv {
	char **v;
	size_t n, cap;
	bool failed;
};

static void
argv_add(struct slurm_argv *a, char *s)
{
	char **nv;

	if (s == NULL)
		a->failed = true;
	if (a->failed) {
		free(s);
		return;
	}
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 32;
		if ((nv = reallocarray(a->v, a->cap, sizeof(*nv))) == NULL) {
			a->failed = true;
			free(s);
			return;
		}
		a->v = nv;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void argv_fmt(struct slurm_argv *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
argv_fmt(struct slurm_argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	argv_add(a, s);
}

/* The words of a setting, split at spaces and tabs (no quoting). */
static void
argv_words(struct slurm_argv *a, const char *words)
{
	const char *p = words;
	size_t len, n = 0;

	while (p != NULL && *p != '\0' && n < SLURM_ARGS_MAX) {
		p += strspn(p, " \t");
		if ((len = strcspn(p, " \t")) == 0)
			break;
		argv_add(a, strndup(p, len));
		p += len;
		n++;
	}
}

/* The options every srun and salloc of concd's gets from concd.conf. */
static void
argv_site_partition(struct slurm_argv *a, const char *extra,
                    const char *partition)
{
	if (partition != NULL)
		argv_fmt(a, "--partition=%s", partition);
	else if (sl.cfg.partition != NULL)
		argv_fmt(a, "--partition=%s", sl.cfg.partition);
	if (sl.cfg.account != NULL)
		argv_fmt(a, "--account=%s", sl.cfg.account);
	if (sl.cfg.qos != NULL)
		argv_fmt(a, "--qos=%s", sl.cfg.qos);
	argv_words(a, extra);
}

static void
argv_site(struct slurm_argv *a, const char *extra)
{
	argv_site_partition(a, extra, NULL);
}

static char **
argv_done(struct slurm_argv *a)
{
	size_t i;

	if (!a->failed)
		return a->v;
	for (i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	return NULL;
}

static char *
slurm_tool_dup(enum slurm_tool t)
{
	return strdup(sl.tool[t] != NULL ? sl.tool[t] : slurm_names[t]);
}

void
slurm_pool_name(unsigned k, char *buf, size_t len)
{
	snprintf(buf, len, "concd-%s-pool-%u", sl.instance, k);
}

char **
slurm_alloc_argv(const char *name, unsigned ntasks, const char *partition,
                 const char *time_limit)
{
	struct slurm_argv a = {0};

	argv_add(&a, slurm_tool_dup(SLURM_SALLOC));
	/* the allocation alone: salloc exits once it is granted */
	argv_add(&a, strdup("--no-shell"));
	argv_fmt(&a, "--job-name=%s", name);
	argv_fmt(&a, "--ntasks=%u", ntasks);
	argv_site_partition(&a, sl.cfg.salloc_options, partition);
	if (time_limit != NULL)
		argv_fmt(&a, "--time=%s", time_limit);
	return argv_done(&a);
}

char **
slurm_worker_argv(uint64_t slurm_id, int index, const char *path,
                  const char *busy_poll, uint64_t nofile)
{
	struct slurm_argv a = {0};

	argv_add(&a, slurm_tool_dup(SLURM_SRUN));
	argv_fmt(&a, "--jobid=%" PRIu64, slurm_id);
	/* one task on one node, with its own CPU of the allocation */
	argv_add(&a, strdup("--ntasks=1"));
	argv_add(&a, strdup("--nodes=1"));
	argv_add(&a, strdup("--exact"));
	/* frames as they come; srun's own notes stay out of the channel */
	argv_add(&a, strdup("--unbuffered"));
	argv_add(&a, strdup("--quiet"));
	argv_add(&a, strdup(path));
	argv_add(&a, strdup("--worker"));
	argv_fmt(&a, "%d", index);
	argv_add(&a, strdup("--stdio"));
	if (busy_poll != NULL) {
		argv_add(&a, strdup("--busy-poll"));
		argv_add(&a, strdup(busy_poll));
	}
	if (nofile > 0) {
		argv_add(&a, strdup("--nofile"));
		argv_fmt(&a, "%" PRIu64, nofile);
	}
	return argv_done(&a);
}

uint64_t
slurm_parse_granted(const char *out, size_t len)
{
	static const char granted[] = "Granted job allocation ";
	const char *p = memmem(out, len, granted, sizeof(granted) - 1);
	uint64_t id = 0;

	if (p == NULL)
		return 0;
	p += sizeof(granted) - 1;
	while (p < out + len && *p >= '0' && *p <= '9' && id < UINT64_MAX / 10)
		id = id * 10 + (uint64_t)(*p++ - '0');
	return id;
}

char **
slurm_exec_argv(const struct slurm_request *r, char *const argv[])
{
	struct slurm_argv a = {0};
	char name[64];
	uint64_t s;
	size_t i;

	slurm_job_name(r->id, name, sizeof(name));
	if (sl.conf != NULL) {
		/* a job run as its owner has the account's environment only */
		argv_add(&a, strdup("/usr/bin/env"));
		argv_add(&a, strdup(sl.conf));
	}
	argv_add(&a, strdup(sl.tool[SLURM_SRUN] != NULL ? sl.tool[SLURM_SRUN]
	                                                : "srun"));
	/* output as it comes; srun's own notes stay out of the job's */
	argv_add(&a, strdup("--unbuffered"));
	argv_add(&a, strdup("--quiet"));
	argv_fmt(&a, "--job-name=%s", name);
	argv_add(&a, strdup("--ntasks=1"));
	argv_site(&a, sl.cfg.srun_options);
	if (r->cpus > 0)
		argv_fmt(&a, "--cpus-per-task=%" PRIu32, r->cpus);
	if (r->mem > 0) /* in KiB: Slurm's M would round a small one to 0 */
		argv_fmt(&a, "--mem=%" PRIu64 "K", (r->mem + 1023) / 1024);
	if (r->timeout_ms > 0) {
		/*
		 * Slurm's limit (whole minutes) is a backstop: concd's own
		 * ends the job, after the grace period at the latest
		 */
		s = (r->timeout_ms + r->grace_ms + 59999) / 60000 + 1;
		argv_fmt(&a, "--time=%" PRIu64, s);
	}
	argv_add(&a, strdup("/bin/sh"));
	argv_add(&a, strdup("-c"));
	argv_add(&a, strdup("printf '" SLURM_MARK "%s %s\\n' "
	                    "\"$SLURM_JOB_ID\" \"$SLURMD_NODENAME\" >&2; "
	                    "exec \"$@\""));
	argv_add(&a, strdup("concd"));
	for (i = 0; argv[i] != NULL; i++)
		argv_add(&a, strdup(argv[i]));
	return argv_done(&a);
}

bool
slurm_parse_mark(const char *line, size_t len, uint64_t *slurm_id, char *node,
                 size_t nodelen)
{
	char buf[256], *end;
	size_t n;

	if (len < SLURM_MARK_LEN || memcmp(line, SLURM_MARK, SLURM_MARK_LEN))
		return false;
	line += SLURM_MARK_LEN;
	len -= SLURM_MARK_LEN;
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, line, len);
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	errno = 0;
	*slurm_id = strtoull(buf, &end, 10);
	if (errno != 0 || end == buf || *end != ' ')
		*slurm_id = 0;
	end = strchr(buf, ' ');
	end = end != NULL ? end + 1 : buf + strlen(buf);
	n = strlen(end);
	if (nodelen > 0) {
		if (n >= nodelen)
			n = nodelen - 1;
		memcpy(node, end, n);
		node[n] = '\0';
	}
	return true;
}

/* Whether s holds word, within its first len bytes. */
static bool
has(const char *s, size_t len, const char *word)
{
	return memmem(s, len, word, strlen(word)) != NULL;
}

int
slurm_parse_signal(const char *line, size_t len)
{
	static const char head[] = "srun: error: ";
	const char *p;
	size_t n;
	int sig;

	if (len < sizeof(head) - 1 || memcmp(line, head, sizeof(head) - 1))
		return 0;
	if ((p = memmem(line, len, ": task 0: ", 10)) == NULL)
		return 0;
	p += 10;
	n = (size_t)(line + len - p);
	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	for (sig = 1; sig < 65; sig++) {
		const char *d = sigdescr_np(sig);

		if (d != NULL && strlen(d) == n && memcmp(d, p, n) == 0)
			return sig;
	}
	return 0;
}

enum slurm_end
slurm_parse_end(const char *line, size_t len)
{
	if (len < 10 || memcmp(line, "slurmstepd", 10) != 0 ||
	    !has(line, len, "*** ") || !has(line, len, " CANCELLED AT "))
		return SLURM_END_NONE;
	if (has(line, len, "DUE TO TIME LIMIT"))
		return SLURM_END_TIME_LIMIT;
	if (has(line, len, "DUE TO NODE FAILURE"))
		return SLURM_END_NODE_FAIL;
	if (has(line, len, "DUE TO PREEMPTION"))
		return SLURM_END_PREEMPTED;
	return SLURM_END_CANCELLED;
}

/* A standard descriptor of a spawned Slurm command: fd, or /dev/null. */
static void
slurm_spawn_fd(posix_spawn_file_actions_t *fa, int fd, int to)
{
	if (fd >= 0)
		posix_spawn_file_actions_adddup2(fa, fd, to);
	else if (fd == -1)
		posix_spawn_file_actions_addopen(
		    fa, to, "/dev/null", to == 0 ? O_RDONLY : O_WRONLY, 0);
	/* SLURM_SPAWN_KEEP: concd's own */
}

pid_t
slurm_spawn(char *const argv[], int in, int out, int err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	pid_t pid;
	int rc;

	if (argv[0] == NULL)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	/* its own process group: a terminal's ^C is concd's alone */
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
	                                    POSIX_SPAWN_SETSIGDEF |
	                                    POSIX_SPAWN_SETPGROUP);
	slurm_spawn_fd(&fa, in, 0);
	slurm_spawn_fd(&fa, out, 1);
	slurm_spawn_fd(&fa, err, 2);
	rc = posix_spawn(&pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		log_warnx("slurm: cannot run %s: %s", argv[0], strerror(rc));
		return -1;
	}
	return pid;
}

/* Reap pid on the loop, or here if there is no pidfd. */
static void
slurm_reap_later(pid_t pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (pidfd < 0) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return;
	}
	reap_later(pid, pidfd, 30000);
}

void
slurm_cancel(uint64_t id, int sig)
{
	char name[64], namearg[80], sigarg[32];
	char *drop[] = {sl.tool[SLURM_SCANCEL], "--quiet", "--state=PENDING",
	                namearg, NULL};
	char *signal[] = {sl.tool[SLURM_SCANCEL],
	                  "--quiet",
	                  "--state=RUNNING",
	                  sigarg,
	                  namearg,
	                  NULL};
	char *cancel[] = {sl.tool[SLURM_SCANCEL], "--quiet", namearg, NULL};
	pid_t pid;

	if (sl.tool[SLURM_SCANCEL] == NULL)
		return;
	slurm_job_name(id, name, sizeof(name));
	snprintf(namearg, sizeof(namearg), "--name=%s", name);
	snprintf(sigarg, sizeof(sigarg), "--signal=%d", sig);
	if (sig == 0) {
		if ((pid = slurm_spawn(cancel, -1, -1, -1)) > 0)
			slurm_reap_later(pid);
		return;
	}
	if ((pid = slurm_spawn(drop, -1, -1, -1)) > 0)
		slurm_reap_later(pid);
	if ((pid = slurm_spawn(signal, -1, -1, -1)) > 0)
		slurm_reap_later(pid);
}

static int64_t
slurm_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The value of "Key=" in scontrol's one-line output, into buf. */
static bool
field(const char *out, const char *key, char *buf, size_t len)
{
	const char *p = out;
	size_t klen = strlen(key), n;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == out || p[-1] == ' ') && p[klen] == '=') {
			p += klen + 1;
			n = strcspn(p, " \n");
			if (n >= len)
				n = len - 1;
			memcpy(buf, p, n);
			buf[n] = '\0';
			return true;
		}
		p += klen;
	}
	return false;
}

int
slurm_query(uint64_t slurm_id, int *exit, int *sig, char *state,
            size_t statelen)
{
	char idarg[32], out[8192], code[32];
	char *argv[] = {
	    sl.tool[SLURM_SCONTROL], "--oneliner", "show", "job", idarg, NULL};
	int64_t deadline = slurm_ms() + SLURM_QUERY_MS;
	bool late = false;
	size_t len = 0;
	ssize_t n;
	int p[2], status;
	pid_t pid;

	if (slurm_id == 0)
		return -1; /* it never started: Slurm never said its id */
	if (sl.tool[SLURM_SCONTROL] == NULL)
		return -2;
	snprintf(idarg, sizeof(idarg), "%" PRIu64, slurm_id);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -2;
	pid = slurm_spawn(argv, -1, p[1], p[1]);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -2;
	}
	/* a start waits for it: at most SLURM_QUERY_MS */
	while (len < sizeof(out) - 1 && !late) {
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		int64_t left = deadline - slurm_ms();

		if (left <= 0 || poll(&pf, 1, (int)left) == 0) {
			late = true;
			kill(pid, SIGKILL);
			break;
		}
		n = read(p[0], out + len, sizeof(out) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	out[len] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (late)
		return -2;
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
	    strstr(out, "Invalid job id") != NULL)
		return -1; /* gone: Slurm has forgotten it */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    !field(out, "JobState", state, statelen))
		return -2;
	if (strcmp(state, "PENDING") == 0 || strcmp(state, "RUNNING") == 0 ||
	    strcmp(state, "CONFIGURING") == 0 ||
	    strcmp(state, "COMPLETING") == 0 ||
	    strcmp(state, "SUSPENDED") == 0 || strcmp(state, "REQUEUED") == 0)
		return 1;
	*exit = *sig = 0;
	if (field(out, "ExitCode", code, sizeof(code)))
		(void)sscanf(code, "%d:%d", exit, sig);
	return 0;
}

void
slurm_cancel_job(uint64_t slurm_id, bool wait)
{
	char idarg[32];
	char *argv[] = {sl.tool[SLURM_SCANCEL], "--quiet", idarg, NULL};
	pid_t pid;

	if (sl.tool[SLURM_SCANCEL] == NULL || slurm_id == 0)
		return;
	snprintf(idarg, sizeof(idarg), "%" PRIu64, slurm_id);
	if ((pid = slurm_spawn(argv, -1, -1, -1)) <= 0)
		return;
	if (!wait)
		slurm_reap_later(pid);
	else
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

#define SLURM_LIST_MAX (16 * 1024 * 1024) /* bytes of scontrol's list */

/* Is the job of line one of this instance's pools, not ended yet? */
static uint64_t
slurm_leftover(const char *line, const char *prefix)
{
	char name[128], state[32], id[32];

	if (!field(line, "JobName", name, sizeof(name)) ||
	    strncmp(name, prefix, strlen(prefix)) != 0 ||
	    !field(line, "JobState", state, sizeof(state)) ||
	    !field(line, "JobId", id, sizeof(id)))
		return 0;
	if (strcmp(state, "PENDING") != 0 && strcmp(state, "RUNNING") != 0 &&
	    strcmp(state, "CONFIGURING") != 0 &&
	    strcmp(state, "SUSPENDED") != 0)
		return 0;
	return strtoull(id, NULL, 10);
}

int
slurm_cancel_leftovers(void)
{
	char *argv[] = {sl.tool[SLURM_SCONTROL], "--oneliner", "show", "jobs",
	                NULL};
	char prefix[64], *out = NULL, *line, *nl;
	size_t len = 0, cap = 0;
	ssize_t n;
	int p[2], status, count = 0;
	uint64_t id;
	pid_t pid;

	if (!sl.ready)
		return 0;
	snprintf(prefix, sizeof(prefix), "concd-%s-pool-", sl.instance);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = slurm_spawn(argv, -1, p[1], p[1]);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	for (;;) {
		if (cap - len < 4096 + 1) {
			char *nb;

			if (cap >= SLURM_LIST_MAX ||
			    (nb = realloc(out, cap = cap ? cap * 2 : 65536)) ==
			        NULL)
				break;
			out = nb;
		}
		n = read(p[0], out + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (out == NULL)
		return -1;
	out[len] = '\0';
	for (line = out; *line != '\0'; line = nl) {
		nl = strchrnul(line, '\n');
		if (*nl == '\n')
			*nl++ = '\0';
		if ((id = slurm_leftover(line, prefix)) == 0)
			continue;
		log_warnx("slurm: cancelling job %" PRIu64
		          ", remote workers an earlier concd left",
		          id);
		slurm_cancel_job(id, false);
		count++;
	}
	free(out);
	return count;
}

void
slurm_cancel_name(const char *name)
{
	char namearg[96];
	char *argv[] = {sl.tool[SLURM_SCANCEL], "--quiet", namearg, NULL};
	pid_t pid;

	if (sl.tool[SLURM_SCANCEL] == NULL)
		return;
	snprintf(namearg, sizeof(namearg), "--name=%s", name);
	if ((pid = slurm_spawn(argv, -1, -1, -1)) > 0)
		slurm_reap_later(pid);
}
