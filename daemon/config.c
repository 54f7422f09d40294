/*
 * config.c -- concd.conf: `key = value` lines, `#` comments.  One row per
 * key in the table below; concd.conf(5) documents the same rows.  Flags
 * on the command line win over the file.
 */
#include <sys/stat.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "proto.h"

enum config_type {
	CONFIG_INT,
	CONFIG_PATH,
	CONFIG_BOOL,
	CONFIG_GROUP,
	CONFIG_BYTES,  /* a uint64_t: a number, K, M, G or T after it */
	CONFIG_QGROUP, /* a queue group: NAME [parallel=N] [paused=yes] */
	CONFIG_STR,    /* a char *, as CONFIG_PATH: a word or a command */
	CONFIG_SOCKET, /* a CONFIG_PATH a socket address holds */
};

struct config_key {
	const char *name;
	enum config_type type;
	long min, max;
	size_t offset; /* into struct server_options */
	bool reloadable;
};

#define OPT(f) offsetof(struct server_options, f)

/* The bytes of a socket address's path, its NUL included. */
#define SUN_PATH (((struct sockaddr_un *)0)->sun_path)

/* A line, comment included, is at most this long (its newline aside). */
#define CONFIG_LINE_MAX 65536

static const struct config_key config_keys[] = {
    {"socket", CONFIG_SOCKET, 1, PATH_MAX - 1, OPT(socket_path), false},
    {"threads", CONFIG_INT, 1, POOL_MAX_THREADS, OPT(threads), true},
    {"processes", CONFIG_INT, 0, POOL_MAX_PROCESSES, OPT(processes), true},
    {"max-finished", CONFIG_INT, 0, 100000000, OPT(max_finished), false},
    {"max-jobs-per-worker", CONFIG_INT, 0, 1000000000, OPT(max_jobs_per_worker),
     true},
    {"user-worker-idle", CONFIG_INT, 0, 86400, OPT(user_worker_idle), true},
    {"plugin-dir", CONFIG_PATH, 1, PATH_MAX - 1, OPT(plugin_dir), false},
    {"stop-timeout", CONFIG_INT, 0, 3600, OPT(stop_timeout), true},
    {"queue-limit", CONFIG_INT, 1, 100000000, OPT(queue_limit), true},
    {"user-job-limit", CONFIG_INT, 1, 100000000, OPT(user_job_limit), true},
    {"finished-ttl", CONFIG_INT, 0, 100000000, OPT(finished_ttl), true},
    {"busy-poll", CONFIG_INT, 0, 100000, OPT(busy_poll), false},
    {"exec-other-users", CONFIG_BOOL, 0, 1, OPT(exec_other_users), true},
    {"admin-group", CONFIG_GROUP, 0, 0, OPT(admin_gid), true},
    {"state-dir", CONFIG_PATH, 1, PATH_MAX - 1, OPT(state_dir), false},
    {"store-fsync", CONFIG_BOOL, 0, 1, OPT(store_fsync), false},
    {"log-limit", CONFIG_BYTES, 4096, 0, OPT(log_limit), false},
    {"log-total-limit", CONFIG_BYTES, 0, 0, OPT(log_total_limit), false},
    {"group", CONFIG_QGROUP, 0, 0, OPT(groups), true},
    {"limits", CONFIG_STR, 1, 16, OPT(limits), false},
    {"on-end", CONFIG_STR, 1, 4096, OPT(on_end), true},
    {"slurm.enabled", CONFIG_BOOL, 0, 1, OPT(slurm.enabled), false},
    {"slurm.partition", CONFIG_STR, 1, 256, OPT(slurm.partition), false},
    {"slurm.account", CONFIG_STR, 1, 256, OPT(slurm.account), false},
    {"slurm.qos", CONFIG_STR, 1, 256, OPT(slurm.qos), false},
    {"slurm.srun-options", CONFIG_STR, 1, 4096, OPT(slurm.srun_options), false},
    {"slurm.salloc-options", CONFIG_STR, 1, 4096, OPT(slurm.salloc_options),
     false},
    {"slurm.worker-path", CONFIG_PATH, 1, PATH_MAX - 1, OPT(slurm.worker_path),
     false},
    {"slurm.max-workers", CONFIG_INT, 0, POOL_MAX_PROCESSES,
     OPT(slurm.max_workers), false},
    {"slurm.idle-release", CONFIG_INT, 0, 100000000, OPT(slurm.idle_release),
     false},
    {"slurm.auto-remote", CONFIG_BOOL, 0, 1, OPT(slurm.auto_remote), false},
};
#define CONFIG_NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))
_Static_assert(CONFIG_NKEYS <= 32, "config_set_mask holds 32 keys");

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* yes or no (true/false, on/off, 1/0 alike): 1 or 0, -1 if neither. */
static int
config_bool(const char *value)
{
	static const char *const words[][2] = {
	    {"no", "yes"}, {"false", "true"}, {"off", "on"}, {"0", "1"}};
	size_t i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcmp(value, words[i][0]) == 0)
			return 0;
		if (strcmp(value, words[i][1]) == 0)
			return 1;
	}
	return -1;
}

/*
 * A group's gid, by name or number; -1 if there is no such group.  A
 * number names a group only if the group database has that gid, as a
 * name does: admin-group = 999999 with no such group is an error.
 */
static long
config_group(const char *value)
{
	struct group gr, *found = NULL;
	size_t size = 16384;
	char *buf = NULL, *nb, *end;
	unsigned long n = 0;
	bool number;
	long gid = -1;
	int rc;

	errno = 0;
	number = *value >= '0' && *value <= '9' &&
	         ((n = strtoul(value, &end, 10)), errno == 0) && *end == '\0' &&
	         n < (unsigned long)(gid_t)-1;
	/* a group with many members needs a larger buffer: grow it */
	do {
		if ((nb = realloc(buf, size)) == NULL)
			break;
		buf = nb;
		rc = getgrnam_r(value, &gr, buf, size, &found);
		if (rc != ERANGE && found == NULL && number)
			rc = getgrgid_r((gid_t)n, &gr, buf, size, &found);
		size *= 2;
	} while (rc == ERANGE && size <= 16 * 1024 * 1024);
	if (buf != NULL && found != NULL)
		gid = (long)found->gr_gid;
	free(buf);
	return gid;
}

/* A size: decimal digits, then K, M, G or T (powers of 1024) or none. */
static int
config_bytes(const char *value, long min, uint64_t *out)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	const char *u;
	char *end;
	int shift = 0;

	errno = 0;
	v = strtoull(value, &end, 10);
	if (!isdigit((unsigned char)*value) || errno != 0)
		return -1;
	if (*end != '\0') {
		if ((u = strchr(units, *end)) == NULL || end[1] != '\0')
			return -1;
		shift = 10 * (int)(u - units + 1);
	}
	if (v > (UINT64_MAX >> 1) >> shift || v << shift < (uint64_t)min)
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

/*
 * "gpu parallel=1 paused=no": a group's name (letters, digits, '.', '_'
 * and '-'), then its settings; a group named twice takes the last line.
 */
static int
config_qgroup(struct server_options *o, const char *value, char *cause,
              size_t causelen)
{
	struct config_group g = {0}, *ng;
	char buf[256], *word, *save, *end;
	size_t i, len;
	int b;

	if (strlen(value) >= sizeof(buf)) {
		snprintf(cause, causelen, "group: line too long");
		return -1;
	}
	strcpy(buf, value);
	if ((word = strtok_r(buf, " \t", &save)) == NULL ||
	    (len = strlen(word)) >= sizeof(g.name) || *word == '-' ||
	    *word == '.' ||
	    strspn(word, "abcdefghijklmnopqrstuvwxyz"
	                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != len) {
		snprintf(cause, causelen,
		         "group: a name of 1 to 64 letters, digits, '.', '_' "
		         "or '-' (not first) comes first");
		return -1;
	}
	memcpy(g.name, word, len);
	while ((word = strtok_r(NULL, " \t", &save)) != NULL) {
		if (strncmp(word, "parallel=", 9) == 0 &&
		    isdigit((unsigned char)word[9])) {
			errno = 0;
			g.parallel = strtoull(word + 9, &end, 10);
			if (errno == 0 && *end == '\0' &&
			    g.parallel <= PROTO_MAX_SLOTS)
				continue;
		} else if (strncmp(word, "paused=", 7) == 0 &&
		           (b = config_bool(word + 7)) >= 0) {
			g.paused = b != 0;
			continue;
		} else if (strncmp(word, "mem=", 4) == 0 &&
		           config_bytes(word + 4, 0, &g.mem) == 0)
			continue;
		else if (strncmp(word, "pids=", 5) == 0 &&
		         isdigit((unsigned char)word[5])) {
			errno = 0;
			g.pids = strtoull(word + 5, &end, 10);
			if (errno == 0 && *end == '\0' &&
			    g.pids <= PROTO_MAX_PIDS)
				continue;
		}
		snprintf(cause, causelen,
		         "group %s: \"%.32s\" is not parallel=N, "
		         "paused=yes|no, mem=SIZE or pids=N",
		         g.name, word);
		return -1;
	}
	for (i = 0; i < o->ngroups; i++)
		if (strcmp(o->groups[i].name, g.name) == 0) {
			o->groups[i] = g;
			return 0;
		}
	if (o->ngroups >= CONFIG_MAX_GROUPS) {
		snprintf(cause, causelen, "group: at most %d groups",
		         CONFIG_MAX_GROUPS);
		return -1;
	}
	if ((ng = reallocarray(o->groups, o->ngroups + 1, sizeof(*ng))) ==
	    NULL) {
		snprintf(cause, causelen, "group: out of memory");
		return -1;
	}
	o->groups = ng;
	o->groups[o->ngroups++] = g;
	return 0;
}

/*
 * Whether a socket's path fits in a socket address, once made absolute
 * as main.c makes it (the directory concd was started in, then the
 * path): checked here, where the file's line is known, and even when
 * -s overrides the key.
 */
static int
config_socket(const struct config_key *k, const char *value, char *cause,
              size_t causelen)
{
	size_t len = strlen(value), max = sizeof(SUN_PATH) - 1;
	char cwd[PATH_MAX];

	if (*value != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
		len += strlen(cwd) + 1;
	if (len <= max)
		return 0;
	snprintf(cause, causelen,
	         "%s: %zu bytes%s, longer than the %zu a socket address holds: "
	         "%.*s%s",
	         k->name, len, *value != '/' ? " made absolute" : "", max, 120,
	         value, strlen(value) > 120 ? "..." : "");
	return -1;
}

static int
config_set(struct server_options *o, const struct config_key *k,
           const char *value, char *cause, size_t causelen)
{
	char *end;
	long v;

	if (k->type == CONFIG_QGROUP)
		return config_qgroup(o, value, cause, causelen);
	if (k->type == CONFIG_BYTES) {
		if (config_bytes(value, k->min,
		                 (uint64_t *)(void *)((char *)o + k->offset)) <
		    0) {
			snprintf(cause, causelen,
			         "%s must be a size of at least %ld bytes, "
			         "with K, M, G or T after it or none",
			         k->name, k->min);
			return -1;
		}
		return 0;
	}

	if (k->type == CONFIG_BOOL) {
		if ((v = config_bool(value)) < 0) {
			snprintf(cause, causelen, "%s must be yes or no",
			         k->name);
			return -1;
		}
		*(int *)((char *)o + k->offset) = (int)v;
		return 0;
	}
	if (k->type == CONFIG_GROUP) {
		if ((v = config_group(value)) < 0) {
			snprintf(cause, causelen, "%s: no group \"%.64s\"",
			         k->name, value);
			return -1;
		}
		*(long *)((char *)o + k->offset) = v;
		return 0;
	}

	if (k->type == CONFIG_PATH || k->type == CONFIG_STR ||
	    k->type == CONFIG_SOCKET) {
		char **dst = (char **)((char *)o + k->offset);

		if (strlen(value) > (size_t)k->max || *value == '\0') {
			if (k->type != CONFIG_STR)
				snprintf(cause, causelen, "%s: bad path",
				         k->name);
			else
				snprintf(cause, causelen,
				         "%s must be 1 to %ld bytes long",
				         k->name, k->max);
			return -1;
		}
		if (k->type == CONFIG_SOCKET &&
		    config_socket(k, value, cause, causelen) < 0)
			return -1;
		free(*dst);
		*dst = strdup(value);
		return 0;
	}
	/* plain decimal: strtol alone would take "+3", " 3" and "-0" */
	errno = 0;
	v = strtol(value, &end, 10);
	if (!isdigit((unsigned char)*value) || errno != 0 || *end != '\0' ||
	    v < k->min || v > k->max) {
		snprintf(cause, causelen, "%s must be a number from %ld to %ld",
		         k->name, k->min, k->max);
		return -1;
	}
	if (k->offset == OPT(max_finished))
		o->max_finished = (size_t)v;
	else
		*(int *)((char *)o + k->offset) = (int)v;
	return 0;
}

/*
 * A key set on the command line (kept) keeps its value, but the file's
 * value is checked all the same: a mistake in the file is reported
 * even while a flag hides it.
 */
static int
config_check(struct server_options *o, const struct config_key *k, bool kept,
             const char *value, char *cause, size_t causelen)
{
	struct server_options scratch = {0};
	int rc;

	if (!kept)
		return config_set(o, k, value, cause, causelen);
	rc = config_set(&scratch, k, value, cause, causelen);
	config_free(&scratch);
	return rc;
}

/*
 * Read path into o, except for keys in keep (set on the command line).
 * Returns -1 with cause; a missing file is an error only if required.
 * A directory is an error, whether required or not.
 */
int
config_load(const char *path, bool required, struct server_options *o,
            uint32_t keep, char *cause, size_t causelen)
{
	struct stat st;
	FILE *f;
	int rc;

	if ((f = fopen(path, "re")) == NULL) {
		if (!required && errno == ENOENT)
			return 0;
		snprintf(cause, causelen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(cause, causelen, "%s: %s", path, strerror(EISDIR));
		fclose(f);
		return -1;
	}
	rc = config_load_stream(f, path, o, keep, cause, causelen);
	fclose(f);
	return rc;
}

enum { CONFIG_LINE = 0, CONFIG_EOF, CONFIG_LONG };

/*
 * The next line of f into line (CONFIG_LINE_MAX + 1 bytes), whole, its
 * newline taken off, its length in len: CONFIG_LINE; CONFIG_EOF; or
 * CONFIG_LONG, a line longer than CONFIG_LINE_MAX, not read to its end.
 * A fixed buffer for fgets read a long line (a comment, say) as two, and
 * refused the second half as a line of its own.
 */
static int
config_line(FILE *f, char *line, size_t *len)
{
	size_t n = 0;
	int c;

	while ((c = getc(f)) != EOF && c != '\n') {
		if (n == CONFIG_LINE_MAX)
			return CONFIG_LONG;
		line[n++] = (char)c;
	}
	if (c == EOF && n == 0)
		return CONFIG_EOF;
	line[n] = '\0';
	*len = n;
	return CONFIG_LINE;
}

int
config_load_stream(FILE *f, const char *path, struct server_options *o,
                   uint32_t keep, char *cause, size_t causelen)
{
	char *line, why[256], full[80];
	size_t len;
	int lineno = 0, rc = 0, got;
	bool slurm = false; /* in the [slurm] section */

	if ((line = malloc(CONFIG_LINE_MAX + 1)) == NULL) {
		snprintf(cause, causelen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((got = config_line(f, line, &len)) != CONFIG_EOF) {
		char *s, *eq, *key, *value;
		size_t i;

		lineno++;
		if (got == CONFIG_LONG) {
			snprintf(cause, causelen,
			         "%s:%d: the line is longer than %d bytes",
			         path, lineno, CONFIG_LINE_MAX);
			rc = -1;
			break;
		}
		if (memchr(line, '\0', len) != NULL) {
			snprintf(cause, causelen,
			         "%s:%d: the line holds a NUL byte", path,
			         lineno);
			rc = -1;
			break;
		}
		if ((s = strchr(line, '#')) != NULL)
			*s = '\0';
		s = trim(line);
		if (*s == '\0')
			continue;
		if (*s == '[') {
			/* the one section: what follows is slurm.KEY */
			if (strcmp(s, "[slurm]") != 0) {
				snprintf(cause, causelen,
				         "%s:%d: unknown section \"%.64s\" "
				         "(there is only [slurm])",
				         path, lineno, s);
				rc = -1;
				break;
			}
			slurm = true;
			continue;
		}
		if ((eq = strchr(s, '=')) == NULL) {
			snprintf(cause, causelen, "%s:%d: expected key = value",
			         path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		key = trim(s);
		value = trim(eq + 1);
		if (slurm && strchr(key, '.') == NULL &&
		    snprintf(full, sizeof(full), "slurm.%s", key) <
		        (int)sizeof(full))
			key = full;
		for (i = 0; i < CONFIG_NKEYS; i++)
			if (strcmp(key, config_keys[i].name) == 0)
				break;
		if (i == CONFIG_NKEYS) {
			snprintf(cause, causelen, "%s:%d: unknown key \"%s\"",
			         path, lineno, key);
			rc = -1;
			break;
		}
		if (config_check(o, &config_keys[i], (keep & (1u << i)) != 0,
		                 value, why, sizeof(why)) < 0) {
			snprintf(cause, causelen, "%s:%d: %s", path, lineno,
			         why);
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(cause, causelen, "%s: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	return rc;
}

/* The bit of a key, for config_load's keep mask. */
uint32_t
config_key_bit(const char *name)
{
	size_t i;

	for (i = 0; i < CONFIG_NKEYS; i++)
		if (strcmp(name, config_keys[i].name) == 0)
			return 1u << i;
	return 0;
}

/* Keys whose new values a reload cannot apply. */
uint32_t
config_fixed_mask(void)
{
	uint32_t m = 0;
	size_t i;

	for (i = 0; i < CONFIG_NKEYS; i++)
		if (!config_keys[i].reloadable)
			m |= 1u << i;
	return m;
}

void
config_free(struct server_options *o)
{
	free(o->socket_path);
	free(o->plugin_dir);
	free(o->config_path);
	free(o->state_dir);
	free(o->limits);
	free(o->on_end);
	o->socket_path = o->plugin_dir = o->config_path = o->state_dir = NULL;
	o->limits = o->on_end = NULL;
	free(o->slurm.partition);
	free(o->slurm.account);
	free(o->slurm.qos);
	free(o->slurm.srun_options);
	free(o->slurm.salloc_options);
	free(o->slurm.worker_path);
	o->slurm.partition = o->slurm.account = o->slurm.qos = NULL;
	o->slurm.srun_options = o->slurm.salloc_options = NULL;
	o->slurm.worker_path = NULL;
	free(o->groups);
	o->groups = NULL;
	o->ngroups = 0;
}
