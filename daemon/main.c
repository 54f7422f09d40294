/*
 * main.c -- concd's life: options, config, log, socket, plugins, pools,
 * signals, loop, shutdown.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "conn.h"
#include "executor.h"
#include "hook.h"
#include "job.h"
#include "joblog.h"
#include "log.h"
#include "logread.h"
#include "loop.h"
#include "loop_exec.h"
#include "notify.h"
#include "plugin.h"
#include "pool_process.h"
#include "pool_remote.h"
#include "pool_thread.h"
#include "queue.h"
#include "reap.h"
#include "recover.h"
#include "request.h"
#include "server.h"
#include "slurm.h"
#include "spawner.h"
#include "store.h"
#include "task.h"
#include "task_int.h"
#include "worker.h"

#define DEFAULT_MAX_FINISHED 10000
#define DEFAULT_STOP_TIMEOUT 60 /* below systemd's TimeoutStopSec=90 */
#define DEFAULT_QUEUE_LIMIT  1000000
#define DEFAULT_USER_JOBS    100000
#define DEFAULT_FINISHED_TTL 86400
#define DEFAULT_BUSY_POLL    50 /* µs */
#ifndef CONCD_CONFIG_FILE
#define CONCD_CONFIG_FILE "/etc/concd/concd.conf"
#endif
#ifndef CONCD_STATE_DIR
#define CONCD_STATE_DIR "/var/lib/concd"
#endif
#ifndef CONCD_PLUGIN_DIR
#define CONCD_PLUGIN_DIR "/usr/local/lib/concd/plugins"
#endif

enum {
	OPT_MAX_FINISHED = 256,
	OPT_PLUGIN_DIR,
	OPT_MAX_JOBS,
	OPT_STOP_TIMEOUT,
	OPT_QUEUE_LIMIT,
	OPT_USER_JOB_LIMIT,
	OPT_FINISHED_TTL,
	OPT_BUSY_POLL,
	OPT_LOG_LIMIT,
	OPT_LOG_TOTAL_LIMIT,
	OPT_STATE_DIR,
	OPT_STORE_FSYNC,
};

static const struct option longopts[] = {
    {"config", required_argument, NULL, 'c'},
    {"debug", no_argument, NULL, 'd'},
    {"foreground", no_argument, NULL, 'f'},
    {"help", no_argument, NULL, 'h'},
    {"processes", required_argument, NULL, 'p'},
    {"socket", required_argument, NULL, 's'},
    {"threads", required_argument, NULL, 't'},
    {"version", no_argument, NULL, 'V'},
    {"max-finished", required_argument, NULL, OPT_MAX_FINISHED},
    {"max-jobs-per-worker", required_argument, NULL, OPT_MAX_JOBS},
    {"plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR},
    {"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
    {"queue-limit", required_argument, NULL, OPT_QUEUE_LIMIT},
    {"user-job-limit", required_argument, NULL, OPT_USER_JOB_LIMIT},
    {"finished-ttl", required_argument, NULL, OPT_FINISHED_TTL},
    {"busy-poll", required_argument, NULL, OPT_BUSY_POLL},
    {"log-limit", required_argument, NULL, OPT_LOG_LIMIT},
    {"log-total-limit", required_argument, NULL, OPT_LOG_TOTAL_LIMIT},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"store-fsync", no_argument, NULL, OPT_STORE_FSYNC},
    {NULL, 0, NULL, 0},
};

/*
 * A running exec job holds three descriptors, so a gather of 1,000
 * commands needs more than the soft limit systemd gives (1024).  The hard
 * limit is the administrator's word; the soft one is ours to raise.  Our
 * commands start with the one we were given, as from a shell: a program
 * that uses select(2) must not get descriptors past FD_SETSIZE.
 */
static void
raise_nofile(void)
{
	struct rlimit rl;
	rlim_t given;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		given = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("setrlimit RLIMIT_NOFILE");
		else
			spawn_set_nofile(given);
	}
}

/* -h and -V: what they printed written, or status 1 and why not. */
static int
printed(int status)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return status;
	fprintf(stderr, "concd: cannot write the standard output: %s\n",
	        strerror(errno));
	return 1;
}

static void __attribute__((noreturn)) usage(int status)
{
	fprintf(
	    status ? stderr : stdout,
	    "usage: concd [-dfhV] [-c file] [-s path] [-t threads] "
	    "[-p processes]\n"
	    "             [--max-finished n] [--max-jobs-per-worker n] "
	    "[--plugin-dir dir]\n"
	    "             [--stop-timeout seconds] [--queue-limit n] "
	    "[--user-job-limit n]\n"
	    "             [--finished-ttl seconds] [--busy-poll microseconds]\n"
	    "             [--state-dir dir|none] [--store-fsync] "
	    "[--log-limit size]\n"
	    "             [--log-total-limit size]\n"
	    "  -f, --foreground             stay in the foreground\n"
	    "  -d, --debug                  log debug messages\n"
	    "  -c, --config FILE            read FILE (default %s)\n"
	    "  -s, --socket PATH            listen on PATH\n"
	    "  -t, --threads N              warm worker threads "
	    "(default: CPUs)\n"
	    "  -p, --processes N            warm worker processes "
	    "(default: CPUs)\n"
	    "      --max-finished N         finished jobs kept for queries "
	    "(default %d)\n"
	    "      --max-jobs-per-worker N  replace a process worker after "
	    "N jobs\n"
	    "      --plugin-dir DIR         load task plugins from DIR\n"
	    "                               (default %s)\n"
	    "      --stop-timeout SECONDS   drain jobs this long on stop "
	    "(default %d)\n"
	    "      --queue-limit N          queued jobs per executor "
	    "(default %d)\n"
	    "      --user-job-limit N       unfinished jobs of each user "
	    "but concd's own\n"
	    "                               (default %d)\n"
	    "      --finished-ttl SECONDS   forget finished jobs this old "
	    "(default %d, 0: never)\n"
	    "      --busy-poll USEC         poll this long after work "
	    "before sleeping\n"
	    "                               (default %d, 0: never)\n"
	    "      --state-dir DIR          keep jobs and their output in "
	    "DIR, none: in memory\n"
	    "                               (default %s)\n"
	    "      --store-fsync            sync every batch: jobs survive "
	    "a power loss\n"
	    "      --log-limit SIZE         output kept per job "
	    "(default 64M)\n"
	    "      --log-total-limit SIZE   output kept in all "
	    "(default 1G)\n"
	    "  -h, --help                   show this help\n"
	    "  -V, --version                show the version\n",
	    CONCD_CONFIG_FILE, DEFAULT_MAX_FINISHED, CONCD_PLUGIN_DIR,
	    DEFAULT_STOP_TIMEOUT, DEFAULT_QUEUE_LIMIT, DEFAULT_USER_JOBS,
	    DEFAULT_FINISHED_TTL, DEFAULT_BUSY_POLL,
	    geteuid() == 0 ? CONCD_STATE_DIR
	                   : "$XDG_STATE_HOME/concd, ~/.local/state/concd");
	exit(status != 0 ? status : printed(0));
}

/* A flag's value goes through the config table, so both check alike. */
static void
flag(struct server_options *o, const char *key, const char *value)
{
	char line[PATH_MAX + 64], cause[512];
	uint32_t bit = config_key_bit(key);
	int rc;
	FILE *f;

	/* one "key = value" line, parsed as the file would be */
	snprintf(line, sizeof(line), "%s = %s\n", key, value);
	if ((f = fmemopen(line, strlen(line), "r")) == NULL)
		fatal("fmemopen");
	rc = config_load_stream(f, "option", o, 0, cause, sizeof(cause));
	fclose(f);
	if (rc < 0) {
		fprintf(stderr, "concd: --%s: %s\n", key,
		        strchr(cause, ' ') ? strchr(cause, ' ') + 1 : cause);
		exit(2);
	}
	o->cmdline |= bit;
}

/*
 * The system instance keeps its jobs in /var/lib/concd (the unit's
 * StateDirectory=), a user's in $XDG_STATE_HOME/concd.
 */
static char *
default_state_dir(void)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char buf[PATH_MAX];

	if (geteuid() == 0)
		return strdup(CONCD_STATE_DIR);
	if (xdg != NULL && xdg[0] == '/') {
		(void)mkdir(xdg, 0700);
		snprintf(buf, sizeof(buf), "%s/concd", xdg);
	} else if (home != NULL && home[0] == '/') {
		/* its parents are the user's own, as XDG asks: 0700 */
		snprintf(buf, sizeof(buf), "%s/.local", home);
		(void)mkdir(buf, 0700);
		snprintf(buf, sizeof(buf), "%s/.local/state", home);
		(void)mkdir(buf, 0700);
		snprintf(buf, sizeof(buf), "%s/.local/state/concd", home);
	} else
		return NULL;
	return strdup(buf);
}

static char *
default_socket(void)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char buf[PATH_MAX];

	if (geteuid() == 0 || rt == NULL || *rt == '\0')
		snprintf(buf, sizeof(buf), "/run/concd/concd.sock");
	else
		snprintf(buf, sizeof(buf), "%s/concd/concd.sock", rt);
	return strdup(buf);
}

/*
 * Started with stdin, stdout or stderr closed, concd would hand out
 * those numbers to its sockets and files, and a log line or a dup2 to
 * them would hit the wrong file: open /dev/null on them first.
 */
static void
std_fds_open(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= STDERR_FILENO)
		;
	if (fd > STDERR_FILENO)
		close(fd);
}

/*
 * A relative path given on the command line or in the file, made
 * absolute: without -f, concd leaves its working directory for /.
 */
static char *
absolute(char *path)
{
	char cwd[PATH_MAX], *abs;

	if (path == NULL || path[0] == '/')
		return path;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		fatal("getcwd");
	if (asprintf(&abs, "%s/%s", cwd, path) < 0)
		fatal("asprintf");
	free(path);
	return abs;
}

/*
 * Without -f: fork, and let the parent exit only once the child serves,
 * so `concd && concctl ...` works.  Called before any thread exists.
 * The child leaves the caller's session, working directory and files:
 * standard input and output are /dev/null at once, and standard error
 * too, while log lines go on to the caller's stderr until the child
 * serves (a failed start says why there), then to syslog(3).  Worker
 * processes and commands started later inherit none of the caller's.
 */
static int
background(void)
{
	int p[2], null, err;
	char c;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		fatal("pipe");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &c, 1) == 1)
			_exit(0);
		waitpid(pid, NULL, 0);
		_exit(1);
	}
	close(p[0]);
	setsid();
	if (chdir("/") < 0)
		fatal("chdir /");
	if ((null = open("/dev/null", O_RDWR)) < 0)
		fatal("/dev/null");
	/* the caller's stderr, until ready; none if it had none */
	if ((err = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)) >= 0)
		log_to_fd(err);
	if (dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
	    dup2(null, STDERR_FILENO) < 0)
		fatal("dup2 /dev/null");
	if (null > STDERR_FILENO)
		close(null);
	return p[1];
}

/* The logs directory in the state directory; NULL: in memory. */
static char *
logs_dir(const char *state_dir)
{
	char *dir;

	if (strcmp(state_dir, "none") == 0)
		return NULL;
	if (asprintf(&dir, "%s/logs", state_dir) < 0)
		fatal("asprintf");
	return dir;
}

/*
 * `concd --worker INDEX [--once] [--stdio] [--busy-poll USEC]
 * [--user UID] [--plugin-dir DIR] [--nofile SOFT] [--cgroup SPEC]`: see
 * worker.c; --nofile is the soft limit on open files its commands start
 * with, the one concd was started with.
 * --user comes before --plugin-dir: no plugin is loaded with root's
 * rights in a worker that runs a user's code, nor at all if the user's
 * identity cannot be taken.
 */
static int
worker_role(int argc, char *argv[])
{
	bool once = false, stdio = false, refused = false;
	int i, busy_poll = 0;

	log_silence();
	for (i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0)
			once = true;
		else if (strcmp(argv[i], "--stdio") == 0)
			stdio = true;
		else if (strcmp(argv[i], "--busy-poll") == 0 && i + 1 < argc)
			busy_poll = atoi(argv[++i]);
		else if (strcmp(argv[i], "--nofile") == 0 && i + 1 < argc)
			spawn_set_nofile(strtoull(argv[++i], NULL, 10));
		else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			refused = worker_become(
			              (uid_t)strtoul(argv[++i], NULL, 10)) < 0;
		else if (strcmp(argv[i], "--plugin-dir") == 0 && i + 1 < argc) {
			if (!refused)
				plugin_load_dir(argv[i + 1]);
			i++;
		} else if (strcmp(argv[i], "--cgroup") == 0 && i + 1 < argc &&
		           cgroup_adopt(argv[++i]) < 0)
			return 1;
	}
	i = worker_main(atoi(argv[2]), once, stdio, busy_poll);
	plugin_unload();
	return i;
}

int
main(int argc, char *argv[])
{
	struct server_options opt = {0};
	char cause[512], instance[32], *logs;
	int ch, ready_fd = -1;
	char self_path[PATH_MAX];
	ssize_t self_len;
	long n;

	if (argc >= 3 && strcmp(argv[1], "--worker") == 0)
		return worker_role(argc, argv);
	std_fds_open();
	/*
	 * Large blocks (a burst's store batch) are mapped and unmapped, never
	 * kept in the heap: glibc would otherwise raise this bound once such a
	 * block is freed, and keep the next ones resident.
	 */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);

	n = sysconf(_SC_NPROCESSORS_ONLN);
	opt.threads = n > 0 ? (int)n : 1;
	opt.processes = opt.threads;
	opt.admin_gid = -1;
	opt.max_finished = DEFAULT_MAX_FINISHED;
	opt.stop_timeout = DEFAULT_STOP_TIMEOUT;
	opt.queue_limit = DEFAULT_QUEUE_LIMIT;
	opt.user_job_limit = DEFAULT_USER_JOBS;
	opt.finished_ttl = DEFAULT_FINISHED_TTL;
	opt.busy_poll = DEFAULT_BUSY_POLL;
	opt.user_worker_idle = 60;
	opt.slurm.max_workers = 64;
	opt.slurm.idle_release = 600;
	opt.log_limit = JOBLOG_LIMIT;
	opt.log_total_limit = JOBLOG_TOTAL_LIMIT;
	while ((ch = getopt_long(argc, argv, "c:dfhp:s:t:V", longopts, NULL)) !=
	       -1) {
		switch (ch) {
		case 'c':
			free(opt.config_path);
			opt.config_path = strdup(optarg);
			break;
		case 'd':
			opt.debug = true;
			break;
		case 'f':
			opt.foreground = true;
			break;
		case 'h':
			usage(0);
		case 'p':
			flag(&opt, "processes", optarg);
			break;
		case 's':
			flag(&opt, "socket", optarg);
			break;
		case 't':
			flag(&opt, "threads", optarg);
			break;
		case 'V':
			printf("concd %s (protocol %d, task ABI %d)\n",
			       CONCD_VERSION, PROTO_VERSION, CONCD_TASK_ABI);
			return printed(0);
		case OPT_MAX_FINISHED:
			flag(&opt, "max-finished", optarg);
			break;
		case OPT_MAX_JOBS:
			flag(&opt, "max-jobs-per-worker", optarg);
			break;
		case OPT_PLUGIN_DIR:
			flag(&opt, "plugin-dir", optarg);
			break;
		case OPT_STOP_TIMEOUT:
			flag(&opt, "stop-timeout", optarg);
			break;
		case OPT_QUEUE_LIMIT:
			flag(&opt, "queue-limit", optarg);
			break;
		case OPT_USER_JOB_LIMIT:
			flag(&opt, "user-job-limit", optarg);
			break;
		case OPT_FINISHED_TTL:
			flag(&opt, "finished-ttl", optarg);
			break;
		case OPT_BUSY_POLL:
			flag(&opt, "busy-poll", optarg);
			break;
		case OPT_LOG_LIMIT:
			flag(&opt, "log-limit", optarg);
			break;
		case OPT_LOG_TOTAL_LIMIT:
			flag(&opt, "log-total-limit", optarg);
			break;
		case OPT_STATE_DIR:
			flag(&opt, "state-dir", optarg);
			break;
		case OPT_STORE_FSYNC:
			flag(&opt, "store-fsync", "yes");
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);

	log_init(opt.debug);
	if (config_load(opt.config_path ? opt.config_path : CONCD_CONFIG_FILE,
	                opt.config_path != NULL, &opt, opt.cmdline, cause,
	                sizeof(cause)) < 0)
		fatalx("%s", cause);
	if (opt.config_path == NULL)
		opt.config_path = strdup(CONCD_CONFIG_FILE);
	if (opt.socket_path == NULL)
		opt.socket_path = default_socket();
	if (opt.plugin_dir == NULL)
		opt.plugin_dir = strdup(CONCD_PLUGIN_DIR);
	if (opt.state_dir == NULL &&
	    (opt.state_dir = default_state_dir()) == NULL)
		fatalx("no state directory: HOME is not set (--state-dir)");
	if (strcmp(opt.state_dir, "none") != 0)
		opt.state_dir = absolute(opt.state_dir);
	/* reloads, the stop and new workers use them after a chdir("/") */
	opt.config_path = absolute(opt.config_path);
	opt.socket_path = absolute(opt.socket_path);
	opt.plugin_dir = absolute(opt.plugin_dir);
	raise_nofile();
	if (server_listen(opt.socket_path, cause, sizeof(cause)) < 0)
		fatalx("%s", cause);
	plugin_load_dir(opt.plugin_dir);
	if (!opt.foreground)
		ready_fd = background();

	if (store_open(strcmp(opt.state_dir, "none") != 0 ? opt.state_dir
	                                                  : NULL,
	               opt.store_fsync != 0, cause, sizeof(cause)) < 0) {
		server_free(); /* no socket is left with no concd behind it */
		fatalx("%s", cause);
	}
	/* its commands carry it; it finds them after a crash */
	if (store_enabled() &&
	    setenv("CONCD_INSTANCE", store_instance(), 1) < 0)
		fatal("setenv");
	recover_kill_leftovers();
	/* before any thread or worker: at cgroup2 concd moves to a leaf */
	snprintf(instance, sizeof(instance), "%ld", (long)getpid());
	if (cgroup_init(opt.limits != NULL ? opt.limits : "auto",
	                store_enabled() ? store_instance() : instance, cause,
	                sizeof(cause)) < 0) {
		server_free();
		fatalx("%s", cause);
	}
	log_debug("limits: %s", cgroup_level_name(cgroup_level()));
	if (loop_init() < 0)
		fatalx("event_base_new");
	if (store_start() < 0)
		fatalx("cannot start the job store's thread");

	logs = logs_dir(opt.state_dir);
	if (joblog_init(logs, opt.log_limit, opt.log_total_limit, cause,
	                sizeof(cause)) < 0)
		fatalx("logs: %s", cause);
	logread_init();
	store_hook_forgotten(joblog_forget);
	job_init(opt.max_finished, (uint64_t)opt.finished_ttl);
	store_set_retention(opt.max_finished, (uint64_t)opt.finished_ttl);
	request_init();
	sched_init();
	sched_set_queue_limit((size_t)opt.queue_limit);
	job_set_user_limit((size_t)opt.user_job_limit);
	queue_init(n > 0 ? (unsigned)n : 1);
	if (queue_config(opt.groups, opt.ngroups, cause, sizeof(cause)) < 0)
		fatalx("%s", cause);
	loop_exec_init();
	reap_init(loop_base);
	if (pool_thread_init(loop_base, opt.threads) < 0)
		fatalx("cannot start the thread pool");
	if (pool_process_init(opt.processes, opt.plugin_dir,
	                      opt.max_jobs_per_worker, opt.busy_poll) < 0)
		fatalx("cannot start the process pool");
	pool_process_set_user_idle(opt.user_worker_idle);
	if (hook_set_on_end(opt.on_end) < 0)
		fatalx("out of memory");
	/* remote workers run the same binary, by default at the same path */
	self_len = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	self_path[self_len > 0 ? self_len : 0] = '\0';
	if (slurm_init(&opt.slurm,
	               store_enabled() ? store_instance() : instance,
	               self_path) < 0)
		fatalx("out of memory");
	pool_remote_init(opt.busy_poll);
	if (recover_jobs(cause, sizeof(cause)) < 0) {
		server_free(); /* its socket goes */
		fatalx("%s", cause);
	}
	server_start(&opt);

	if (ready_fd >= 0)
		log_to_syslog();
	log_info("ready: %d threads, %d processes, listening on %s",
	         opt.threads, opt.processes, server_listen_names());
	notify_ready();
	if (ready_fd >= 0) {
		(void)write(ready_fd, "r", 1);
		close(ready_fd);
	}

	loop_run(opt.busy_poll);

	sched_shutdown();
	hook_shutdown();
	queue_shutdown();
	reap_shutdown();
	cgroup_fini();
	slurm_fini();
	job_shutdown();
	joblog_shutdown();
	store_close();
	conn_close_all();
	server_free();
	loop_free();
	plugin_unload();
	config_free(&opt);
	free(logs);
	log_info("stopped");
	return 0;
}
