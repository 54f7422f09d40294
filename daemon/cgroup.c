/*
 * cgroup.c -- a job's resource limits, and one control group per exec
 * job that holds every process it starts.
 *
 * Three levels, the best the machine offers (or the one concd.conf's
 * limits names):
 *
 *  cgroup2	concd's own cgroup v2 is delegated to it (systemd's
 *		Delegate=yes) with the memory and pids controllers (cpu if
 *		there): concd moves itself into the leaf OWN/daemon, enables
 *		the controllers for OWN/jobs, and each job gets OWN/jobs/ID
 *		with memory.max (and memory.swap.max 0), cpu.max,
 *		pids.max and memory.oom.group; cgroup.kill ends it whole,
 *		memory.events tells of an OOM kill.
 *  cgroup1	the cgroup v1 memory controller (cpu and pids where they
 *		are mounted) is writable in concd's own groups: a job gets
 *		OWN/concd-INSTANCE/ID in each hierarchy a limit of it needs,
 *		with memory.limit_in_bytes (and memsw), cpu.cfs_quota_us and
 *		pids.max; memory.oom_control tells of an OOM kill.  Every job
 *		also gets a cgroup in the cgroup2 hierarchy of a hybrid
 *		layout when that is writable, with no controller, for
 *		cgroup.kill; without it, in the memory hierarchy, whose
 *		processes are killed one by one.
 *  rlimit	neither: the command gets RLIMIT_AS and RLIMIT_NPROC
 *		(spawn.c), and no cgroup.
 *
 * A job's cgroup is made by whoever spawns its command (a spawner
 * thread, a pool worker), which joins it before it execs; removed when
 * the job stops, with what is left in it killed.  A directory whose
 * processes are still dying is removed on a later call.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "log.h"

/* The hierarchies a job may have a directory in. */
enum { CG_KILL, CG_MEMORY, CG_CPU, CG_PIDS, CG_DIRS };

#define CG_PERIOD_US   100000 /* cpu.max's period */
#define CG_KILL_ROUNDS 64     /* passes over cgroup.procs without cgroup.kill */
#define CG_FINI_TRIES  50     /* 10 ms apart: the stop waits at most 0.5 s */

static const char *const cgroup_levels[CGROUP_LEVELS] = {
    [CGROUP_RLIMIT] = "rlimit",
    [CGROUP_V1] = "cgroup1",
    [CGROUP_V2] = "cgroup2",
};

/* The v1 hierarchies, by the controller named in mountinfo. */
static const char *const cgroup_v1_controllers[CG_DIRS] = {
    [CG_MEMORY] = "memory",
    [CG_CPU] = "cpu",
    [CG_PIDS] = "pids",
};

static struct {
	enum cgroup_level level;
	char *base[CG_DIRS]; /* the jobs' parent in each; NULL: not used */
	char *spec;
	const char *procdir; /* /proc/self, or a test's */
	pthread_mutex_t mu;  /* dying */
	char **dying;        /* directories left to remove */
	size_t ndying, cap;
} cg = {.procdir = "/proc/self", .mu = PTHREAD_MUTEX_INITIALIZER};

struct cgroup_job {
	char *dir[CG_DIRS]; /* NULL: none in that hierarchy */
	bool made[CG_DIRS];
};

const char *
cgroup_level_name(enum cgroup_level l)
{
	return l < CGROUP_LEVELS ? cgroup_levels[l] : NULL;
}

int
cgroup_level_lookup(const char *name)
{
	int i;

	for (i = 0; i < CGROUP_LEVELS; i++)
		if (strcmp(name, cgroup_levels[i]) == 0)
			return i;
	return -1;
}

void
cgroup_set_procdir(const char *dir)
{
	cg.procdir = dir;
}

enum cgroup_level
cgroup_level(void)
{
	return cg.level;
}

/* Write s to dir/file: 0, or -1 with errno. */
static int
cgroup_write(const char *dir, const char *file, const char *s)
{
	char path[4096];
	size_t len = strlen(s);
	ssize_t n;
	int fd, saved;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -1;
	while ((n = write(fd, s, len)) < 0 && errno == EINTR)
		;
	saved = errno;
	close(fd);
	if (n == (ssize_t)len)
		return 0;
	errno = n < 0 ? saved : EIO;
	return -1;
}

/* dir/file's first bytes, NUL-terminated: its length, or -1. */
static ssize_t
cgroup_read(const char *dir, const char *file, char *buf, size_t size)
{
	char path[4096];
	ssize_t n;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    sizeof(path))
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while ((n = read(fd, buf, size - 1)) < 0 && errno == EINTR)
		;
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* Whether the word w is in the list s (separated by spaces or commas). */
static bool
cgroup_has_word(const char *s, const char *w)
{
	size_t n = strlen(w);
	const char *p;

	for (p = s; (p = strstr(p, w)) != NULL; p += n)
		if ((p == s || p[-1] == ' ' || p[-1] == ',') &&
		    (p[n] == '\0' || p[n] == ' ' || p[n] == ',' ||
		     p[n] == '\n'))
			return true;
	return false;
}

/*
 * The directory of this process's own cgroup in the hierarchy that has
 * controller (NULL: the cgroup2 one): the mount point from mountinfo
 * joined to the path in /proc/self/cgroup.  NULL if there is none.
 */
static char *
cgroup_own_dir(const char *controller)
{
	char line[4096], mnt[1024], root[1024], fstype[64], opts[1024];
	char *path = NULL, *dir = NULL, *p, *ctrl;
	size_t rlen;
	FILE *f;

	snprintf(line, sizeof(line), "%s/cgroup", cg.procdir);
	if ((f = fopen(line, "re")) == NULL)
		return NULL;
	while (path == NULL && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if ((ctrl = strchr(line, ':')) == NULL ||
		    (p = strchr(ctrl + 1, ':')) == NULL)
			continue;
		*p++ = '\0';
		ctrl++;
		if (controller == NULL ? *ctrl == '\0'
		                       : cgroup_has_word(ctrl, controller))
			path = strdup(p);
	}
	fclose(f);
	if (path == NULL)
		return NULL;
	snprintf(line, sizeof(line), "%s/mountinfo", cg.procdir);
	if ((f = fopen(line, "re")) == NULL) {
		free(path);
		return NULL;
	}
	while (dir == NULL && fgets(line, sizeof(line), f) != NULL) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - TYPE SRC SUPER */
		if ((p = strstr(line, " - ")) == NULL ||
		    sscanf(line, "%*s %*s %*s %1023s %1023s", root, mnt) != 2 ||
		    sscanf(p, " - %63s %*s %1023s", fstype, opts) != 2)
			continue;
		if (controller == NULL ? strcmp(fstype, "cgroup2") != 0
		                       : strcmp(fstype, "cgroup") != 0 ||
		                             !cgroup_has_word(opts, controller))
			continue;
		/* a mount of a part of the hierarchy: the path below it */
		rlen = strcmp(root, "/") == 0 ? 0 : strlen(root);
		if (strncmp(path, root, rlen) != 0 ||
		    (path[rlen] != '/' && path[rlen] != '\0'))
			continue;
		if (asprintf(&dir, "%s%s", mnt,
		             strcmp(path + rlen, "/") == 0 ? "" : path + rlen) <
		    0)
			dir = NULL;
	}
	fclose(f);
	free(path);
	return dir;
}

static void
cgroup_base_free(void)
{
	size_t i;

	for (i = 0; i < CG_DIRS; i++) {
		free(cg.base[i]);
		cg.base[i] = NULL;
	}
}

/* Remove a directory now, or put it on the list for later. */
static void
cgroup_remove(char *dir)
{
	char **v;

	if (rmdir(dir) == 0 || errno == ENOENT) {
		free(dir);
		return;
	}
	pthread_mutex_lock(&cg.mu);
	if (cg.ndying == cg.cap) {
		size_t cap = cg.cap == 0 ? 16 : cg.cap * 2;

		if ((v = realloc(cg.dying, cap * sizeof(*v))) == NULL) {
			pthread_mutex_unlock(&cg.mu);
			log_warnx("cgroup: cannot remove %s: %s", dir,
			          strerror(EBUSY));
			free(dir);
			return;
		}
		cg.dying = v;
		cg.cap = cap;
	}
	cg.dying[cg.ndying++] = dir;
	pthread_mutex_unlock(&cg.mu);
}

/* Remove what dying directories are empty by now. */
static void
cgroup_sweep(void)
{
	size_t i, k = 0;

	pthread_mutex_lock(&cg.mu);
	for (i = 0; i < cg.ndying; i++) {
		if (rmdir(cg.dying[i]) == 0 || errno == ENOENT)
			free(cg.dying[i]);
		else
			cg.dying[k++] = cg.dying[i];
	}
	cg.ndying = k;
	pthread_mutex_unlock(&cg.mu);
}

/*
 * Every process in dir gets sig, but those of process group except (0:
 * none), which the caller signals itself; how many there were.
 */
static size_t
cgroup_signal_dir(const char *dir, int sig, pid_t except)
{
	char path[4096], line[32];
	size_t n = 0;
	long pid;
	FILE *f;

	if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >=
	        sizeof(path) ||
	    (f = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if ((pid = strtol(line, NULL, 10)) <= 0 || pid == getpid())
			continue;
		n++;
		/* one signal each: a trap must not run twice */
		if (except == 0 || getpgid((pid_t)pid) != except)
			(void)kill((pid_t)pid, sig);
	}
	fclose(f);
	return n;
}

/* Kill every process in dir: cgroup.kill, or one by one until none. */
static void
cgroup_kill_dir(const char *dir)
{
	int i;

	if (cgroup_write(dir, "cgroup.kill", "1") == 0)
		return;
	for (i = 0;
	     i < CG_KILL_ROUNDS && cgroup_signal_dir(dir, SIGKILL, 0) > 0; i++)
		;
}

/*
 * What an earlier concd of this instance left under base (it crashed):
 * killed and removed.
 */
static void
cgroup_clear(const char *base)
{
	struct dirent *d;
	char *sub;
	DIR *dp;

	if ((dp = opendir(base)) == NULL)
		return;
	while ((d = readdir(dp)) != NULL) {
		if (d->d_type != DT_DIR ||
		    !isdigit((unsigned char)d->d_name[0]))
			continue;
		if (asprintf(&sub, "%s/%s", base, d->d_name) < 0)
			continue;
		cgroup_kill_dir(sub);
		cgroup_remove(sub);
	}
	closedir(dp);
}

/* mkdir that takes an existing directory. */
static int
cgroup_mkdir(const char *dir)
{
	return mkdir(dir, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/*
 * cgroup v2 with a delegated subtree: the memory and pids controllers
 * available in concd's own cgroup, which it may write.
 */
static int
cgroup_init_v2(char *cause, size_t causelen)
{
	char *own = cgroup_own_dir(NULL), *leaf = NULL, *jobs = NULL;
	char ctl[512], pid[32], enable[64];
	bool cpu;

	if (own == NULL) {
		snprintf(cause, causelen, "no cgroup v2 hierarchy");
		goto fail;
	}
	if (cgroup_read(own, "cgroup.controllers", ctl, sizeof(ctl)) < 0 ||
	    !cgroup_has_word(ctl, "memory") || !cgroup_has_word(ctl, "pids")) {
		snprintf(cause, causelen,
		         "cgroup v2: %s has no memory and pids controllers "
		         "(not delegated: Delegate=yes)",
		         own);
		goto fail;
	}
	cpu = cgroup_has_word(ctl, "cpu");
	snprintf(enable, sizeof(enable), "+memory +pids%s", cpu ? " +cpu" : "");
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	if (asprintf(&leaf, "%s/daemon", own) < 0 ||
	    asprintf(&jobs, "%s/jobs", own) < 0) {
		leaf = jobs = NULL;
		snprintf(cause, causelen, "out of memory");
		goto fail;
	}
	/* no process in a cgroup whose controllers its children have */
	if (cgroup_mkdir(leaf) < 0 ||
	    cgroup_write(leaf, "cgroup.procs", pid) < 0) {
		snprintf(cause, causelen, "cgroup v2: cannot move into %s: %s",
		         leaf, strerror(errno));
		goto fail;
	}
	if (cgroup_write(own, "cgroup.subtree_control", enable) < 0 ||
	    cgroup_mkdir(jobs) < 0 ||
	    cgroup_write(jobs, "cgroup.subtree_control", enable) < 0) {
		snprintf(cause, causelen,
		         "cgroup v2: cannot enable the controllers in %s: %s",
		         own, strerror(errno));
		/* back where it was: another process shares the cgroup */
		(void)cgroup_write(own, "cgroup.procs", pid);
		(void)rmdir(leaf);
		goto fail;
	}
	cg.base[CG_KILL] = jobs;
	cgroup_clear(jobs);
	free(own);
	free(leaf);
	return 0;
fail:
	free(own);
	free(leaf);
	free(jobs);
	return -1;
}

/* The directory for this instance's jobs under concd's own cgroup. */
static char *
cgroup_v1_base(const char *controller, const char *instance)
{
	char *own = cgroup_own_dir(controller), *base;

	if (own == NULL)
		return NULL;
	if (asprintf(&base, "%s/concd-%s", own, instance) < 0)
		base = NULL;
	free(own);
	if (base != NULL && cgroup_mkdir(base) < 0) {
		free(base);
		return NULL;
	}
	return base;
}

/*
 * cgroup v1: the memory controller writable (as root); cpu and pids if
 * they are; the cgroup2 hierarchy of a hybrid layout for cgroup.kill.
 */
static int
cgroup_init_v1(const char *instance, char *cause, size_t causelen)
{
	size_t i;

	for (i = CG_MEMORY; i < CG_DIRS; i++)
		cg.base[i] = cgroup_v1_base(cgroup_v1_controllers[i], instance);
	if (cg.base[CG_MEMORY] == NULL) {
		snprintf(cause, causelen,
		         "cgroup v1: no writable memory controller");
		cgroup_base_free();
		return -1;
	}
	{
		char *own = cgroup_own_dir(NULL), *base = NULL;

		if (own != NULL &&
		    asprintf(&base, "%s/concd-%s", own, instance) >= 0 &&
		    cgroup_mkdir(base) == 0) {
			cg.base[CG_KILL] = base;
			base = NULL;
		}
		free(base);
		free(own);
	}
	for (i = 0; i < CG_DIRS; i++)
		if (cg.base[i] != NULL)
			cgroup_clear(cg.base[i]);
	return 0;
}

/* The spec a worker process adopts: the level, then a line per base. */
static int
cgroup_make_spec(void)
{
	size_t i, len = strlen(cgroup_levels[cg.level]) + 1;
	char *s;

	for (i = 0; i < CG_DIRS; i++)
		len += (cg.base[i] != NULL ? strlen(cg.base[i]) : 0) + 1;
	if ((s = malloc(len + 1)) == NULL)
		return -1;
	strcpy(s, cgroup_levels[cg.level]);
	for (i = 0; i < CG_DIRS; i++) {
		strcat(s, "\n");
		if (cg.base[i] != NULL)
			strcat(s, cg.base[i]);
	}
	free(cg.spec);
	cg.spec = s;
	return 0;
}

int
cgroup_init(const char *want, const char *given, char *cause, size_t causelen)
{
	int w = strcmp(want, "auto") == 0 ? -1 : cgroup_level_lookup(want);
	char why2[256] = "", why1[256] = "", instance[64];
	size_t i;

	/* a directory's name, whatever the store's instance holds */
	snprintf(instance, sizeof(instance), "%s", given);
	for (i = 0; instance[i] != '\0'; i++)
		if (!isalnum((unsigned char)instance[i]) && instance[i] != '-')
			instance[i] = '_';

	if (strcmp(want, "auto") != 0 && w < 0) {
		snprintf(cause, causelen,
		         "limits: no level \"%.32s\": auto, cgroup2, cgroup1 "
		         "or rlimit",
		         want);
		return -1;
	}
	cg.level = CGROUP_RLIMIT;
	if ((w < 0 || w == CGROUP_V2) &&
	    cgroup_init_v2(why2, sizeof(why2)) == 0)
		cg.level = CGROUP_V2;
	else if ((w < 0 || w == CGROUP_V1) &&
	         cgroup_init_v1(instance, why1, sizeof(why1)) == 0)
		cg.level = CGROUP_V1;
	if (w >= 0 && (int)cg.level != w) {
		snprintf(cause, causelen, "limits %s: %s", want,
		         w == CGROUP_V2 ? why2 : why1);
		return -1;
	}
	if (cg.level != CGROUP_V2 && why2[0] != '\0')
		log_debug("cgroup: %s", why2);
	if (cg.level == CGROUP_RLIMIT && why1[0] != '\0')
		log_debug("cgroup: %s", why1);
	if (cgroup_make_spec() < 0) {
		snprintf(cause, causelen, "out of memory");
		return -1;
	}
	return 0;
}

const char *
cgroup_spec(void)
{
	return cg.spec != NULL ? cg.spec : cgroup_levels[cg.level];
}

int
cgroup_adopt(const char *spec)
{
	const char *p = spec, *nl;
	size_t i, n;
	int l;
	char name[16];

	n = strcspn(p, "\n");
	if (n >= sizeof(name))
		return -1;
	memcpy(name, p, n);
	name[n] = '\0';
	if ((l = cgroup_level_lookup(name)) < 0)
		return -1;
	cgroup_base_free();
	cg.level = (enum cgroup_level)l;
	p += n;
	for (i = 0; i < CG_DIRS && *p == '\n'; i++) {
		p++;
		nl = p + strcspn(p, "\n");
		if (nl > p &&
		    (cg.base[i] = strndup(p, (size_t)(nl - p))) == NULL)
			return -1;
		p = nl;
	}
	return 0;
}

void
cgroup_fini(void)
{
	struct timespec pause = {0, 10 * 1000 * 1000};
	size_t i;
	int tries;

	/*
	 * What the jobs cut off at the stop left (their commands are
	 * reaped by now; what left their process groups is not), and what
	 * worker processes left to remove: killed, and given a moment to go.
	 */
	for (i = 0; i < CG_DIRS; i++)
		if (cg.base[i] != NULL)
			cgroup_clear(cg.base[i]);
	for (tries = 0; tries < CG_FINI_TRIES && cg.ndying > 0; tries++) {
		cgroup_sweep();
		if (cg.ndying > 0)
			nanosleep(&pause, NULL);
	}
	for (i = 0; i < CG_DIRS; i++)
		if (cg.base[i] != NULL && cg.level == CGROUP_V1)
			(void)rmdir(cg.base[i]);
	pthread_mutex_lock(&cg.mu);
	for (i = 0; i < cg.ndying; i++)
		free(cg.dying[i]);
	free(cg.dying);
	cg.dying = NULL;
	cg.ndying = cg.cap = 0;
	pthread_mutex_unlock(&cg.mu);
	cgroup_base_free();
	free(cg.spec);
	cg.spec = NULL;
}

struct cgroup_job *
cgroup_job_new(uint64_t id)
{
	struct cgroup_job *j;
	size_t i;

	if (cg.level == CGROUP_RLIMIT || (j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	for (i = 0; i < CG_DIRS; i++) {
		if (cg.base[i] != NULL &&
		    asprintf(&j->dir[i], "%s/%llu", cg.base[i],
		             (unsigned long long)id) < 0) {
			j->dir[i] = NULL;
			cgroup_job_free(j, false);
			return NULL;
		}
	}
	return j;
}

/* A limit's file: name, value, and what to say if it cannot be set. */
struct cgroup_set {
	int dir; /* CG_* */
	const char *file;
	char value[64];
	bool optional; /* memsw, swap.max: not every kernel accounts swap */
};

/* The files a job's limits write, at the level in force. */
static size_t
cgroup_sets(const struct cgroup_limits *l, struct cgroup_set *s)
{
	size_t n = 0;
	int at = cg.level == CGROUP_V2 ? CG_KILL : -1;

#define SET(d, f, opt, ...)                                                    \
	do {                                                                   \
		s[n].dir = at >= 0 ? at : (d);                                 \
		s[n].file = (f);                                               \
		s[n].optional = (opt);                                         \
		snprintf(s[n].value, sizeof(s[n].value), __VA_ARGS__);         \
		n++;                                                           \
	} while (0)
	if (cg.level == CGROUP_V2) {
		SET(CG_KILL, "memory.oom.group", false, "1");
		if (l->mem > 0) {
			SET(CG_MEMORY, "memory.max", false, "%llu",
			    (unsigned long long)l->mem);
			SET(CG_MEMORY, "memory.swap.max", true, "0");
		}
		if (l->cpus > 0)
			SET(CG_CPU, "cpu.max", false, "%llu %d",
			    (unsigned long long)l->cpus * CG_PERIOD_US,
			    CG_PERIOD_US);
		if (l->pids > 0)
			SET(CG_PIDS, "pids.max", false, "%llu",
			    (unsigned long long)l->pids);
	} else {
		if (l->mem > 0) {
			SET(CG_MEMORY, "memory.limit_in_bytes", false, "%llu",
			    (unsigned long long)l->mem);
			SET(CG_MEMORY, "memory.memsw.limit_in_bytes", true,
			    "%llu", (unsigned long long)l->mem);
		}
		if (l->cpus > 0) {
			SET(CG_CPU, "cpu.cfs_period_us", false, "%d",
			    CG_PERIOD_US);
			SET(CG_CPU, "cpu.cfs_quota_us", false, "%llu",
			    (unsigned long long)l->cpus * CG_PERIOD_US);
		}
		if (l->pids > 0)
			SET(CG_PIDS, "pids.max", false, "%llu",
			    (unsigned long long)l->pids);
	}
#undef SET
	return n;
}

int
cgroup_job_make(struct cgroup_job *j, const struct cgroup_limits *l,
                char *cause, size_t causelen)
{
	static const char *const what[CG_DIRS] = {[CG_KILL] = "cgroup",
	                                          [CG_MEMORY] = "--mem",
	                                          [CG_CPU] = "--cpus",
	                                          [CG_PIDS] = "--pids"};
	struct cgroup_set sets[8];
	bool need[CG_DIRS] = {false};
	size_t i, n;

	cgroup_sweep();
	n = cgroup_sets(l, sets);
	for (i = 0; i < n; i++)
		need[sets[i].dir] = true;
	/* one directory at least, to find every process of the job by */
	if (j->dir[CG_KILL] != NULL)
		need[CG_KILL] = true;
	else
		need[CG_MEMORY] = true;
	for (i = 0; i < CG_DIRS; i++) {
		if (!need[i])
			continue;
		if (j->dir[i] == NULL) {
			snprintf(cause, causelen,
			         "exec: %s: no cgroup %s controller to enforce "
			         "it with",
			         what[i],
			         i == CG_KILL ? "" : cgroup_v1_controllers[i]);
			return -1;
		}
		if (mkdir(j->dir[i], 0755) < 0 && errno != EEXIST) {
			snprintf(cause, causelen, "exec: cannot make %s: %s",
			         j->dir[i], strerror(errno));
			return -1;
		}
		j->made[i] = true;
	}
	for (i = 0; i < n; i++) {
		if (cgroup_write(j->dir[sets[i].dir], sets[i].file,
		                 sets[i].value) < 0 &&
		    !(sets[i].optional &&
		      (errno == ENOENT || errno == EACCES))) {
			snprintf(cause, causelen,
			         "exec: cannot set %s/%s to %s: %s",
			         j->dir[sets[i].dir], sets[i].file,
			         sets[i].value, strerror(errno));
			return -1;
		}
	}
	return 0;
}

size_t
cgroup_job_procs(const struct cgroup_job *j, const char **paths, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < CG_DIRS && n < max; i++)
		if (j->made[i])
			paths[n++] = j->dir[i];
	return n;
}

/* The directory that holds every process of the job. */
static const char *
cgroup_job_all(const struct cgroup_job *j)
{
	return j->made[CG_KILL] ? j->dir[CG_KILL] : j->dir[CG_MEMORY];
}

bool
cgroup_job_oom(const struct cgroup_job *j)
{
	const char *dir =
	    cg.level == CGROUP_V2 ? j->dir[CG_KILL] : j->dir[CG_MEMORY];
	const char *file =
	    cg.level == CGROUP_V2 ? "memory.events" : "memory.oom_control";
	char buf[1024], *p;

	if (dir == NULL || cgroup_read(dir, file, buf, sizeof(buf)) < 0)
		return false;
	for (p = buf; (p = strstr(p, "oom_kill ")) != NULL; p += 9)
		if ((p == buf || p[-1] == '\n') &&
		    strtoull(p + 9, NULL, 10) > 0)
			return true;
	return false;
}

void
cgroup_job_signal(const struct cgroup_job *j, int sig, pid_t except)
{
	const char *dir = cgroup_job_all(j);

	if (dir != NULL)
		(void)cgroup_signal_dir(dir, sig, except);
}

void
cgroup_job_kill(const struct cgroup_job *j)
{
	const char *dir = cgroup_job_all(j);

	if (dir != NULL)
		cgroup_kill_dir(dir);
}

void
cgroup_job_free(struct cgroup_job *j, bool kill)
{
	size_t i;

	if (j == NULL)
		return;
	if (kill)
		cgroup_job_kill(j);
	for (i = 0; i < CG_DIRS; i++) {
		if (j->made[i])
			cgroup_remove(j->dir[i]); /* taken over */
		else
			free(j->dir[i]);
	}
	free(j);
	cgroup_sweep();
}
