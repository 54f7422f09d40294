/*
 * main.c -- concd's life: options, log, socket, pools, signals, loop,
 * shutdown.
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/thread.h>

#include "concd.h"

#define DEFAULT_MAX_FINISHED 10000

enum { OPT_MAX_FINISHED = 256, OPT_WORKER };

static const struct option longopts[] = {
	{"debug", no_argument, NULL, 'd'},
	{"foreground", no_argument, NULL, 'f'},
	{"processes", required_argument, NULL, 'p'},
	{"help", no_argument, NULL, 'h'},
	{"socket", required_argument, NULL, 's'},
	{"threads", required_argument, NULL, 't'},
	{"version", no_argument, NULL, 'V'},
	{"max-finished", required_argument, NULL, OPT_MAX_FINISHED},
	{NULL, 0, NULL, 0},
};

static void __attribute__((noreturn))
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: concd [-dfhV] [-s path] [-t threads] [--max-finished n]\n"
	    "  -f, --foreground      stay in the foreground\n"
	    "  -d, --debug           log debug messages\n"
	    "  -s, --socket PATH     listen on PATH\n"
	    "  -t, --threads N       warm worker threads (default: CPUs)\n"
	    "  -p, --processes N     warm worker processes (default: CPUs)\n"
	    "      --max-finished N  finished jobs kept for queries "
	    "(default %d)\n"
	    "  -h, --help            show this help\n"
	    "  -V, --version         show the version\n",
	    DEFAULT_MAX_FINISHED);
	exit(status);
}

static long
number(const char *s, const char *what, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "concd: %s must be a number from %ld to %ld\n",
		    what, min, max);
		exit(2);
	}
	return v;
}

static void
default_socket(char *buf, size_t size)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");

	if (geteuid() == 0 || rt == NULL || *rt == '\0')
		snprintf(buf, size, "/run/concd/concd.sock");
	else
		snprintf(buf, size, "%s/concd/concd.sock", rt);
}

/*
 * Without -f: fork, and let the parent exit only once the child serves,
 * so `concd && concctl ...` works.  Called before any thread exists.
 */
static int
background(void)
{
	int p[2];
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
	return p[1];
}

int
main(int argc, char *argv[])
{
	struct server_options opt = {0};
	struct event_config *cfg;
	char path[PATH_MAX], cause[512];
	int ch, ready_fd = -1;
	long n;

	/* A worker process is concd re-executed in that role. */
	if (argc >= 3 && strcmp(argv[1], "--worker") == 0)
		return worker_main(atoi(argv[2]),
		    argc >= 4 && strcmp(argv[3], "--once") == 0);

	n = sysconf(_SC_NPROCESSORS_ONLN);
	opt.threads = n > 0 ? (int)n : 1;
	opt.processes = opt.threads;
	opt.max_finished = DEFAULT_MAX_FINISHED;
	default_socket(path, sizeof(path));
	opt.socket_path = path;
	while ((ch = getopt_long(argc, argv, "dfhp:s:t:V", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			opt.debug = true;
			break;
		case 'f':
			opt.foreground = true;
			break;
		case 'h':
			usage(0);
		case 's':
			opt.socket_path = optarg;
			break;
		case 't':
			opt.threads = (int)number(optarg, "threads", 1,
			    POOL_MAX_THREADS);
			break;
		case 'p':
			opt.processes = (int)number(optarg, "processes", 0,
			    POOL_MAX_PROCESSES);
			break;
		case 'V':
			printf("concd %s (protocol %d)\n", CONCD_VERSION,
			    PROTO_VERSION);
			return 0;
		case OPT_MAX_FINISHED:
			opt.max_finished =
			    (size_t)number(optarg, "max-finished", 0, 100000000);
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);

	log_init(opt.debug);
	if (server_listen(opt.socket_path, cause, sizeof(cause)) < 0)
		fatalx("%s", cause);
	if (!opt.foreground)
		ready_fd = background();

	evthread_use_pthreads();
	if ((cfg = event_config_new()) == NULL)
		fatalx("event_config_new");
	/* Look for I/O again after at most 64 callbacks: fairness. */
	event_config_set_max_dispatch_interval(cfg, NULL, 64, 0);
	server_base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (server_base == NULL)
		fatalx("event_base_new");

	job_init(opt.max_finished);
	loop_exec_init(server_base);
	if (pool_thread_init(server_base, opt.threads) < 0)
		fatalx("cannot start the thread pool");
	if (pool_process_init(opt.processes) < 0)
		fatalx("cannot start the process pool");
	server_start();

	log_info("ready: %d threads, %d processes, listening on %s",
	    opt.threads, opt.processes, opt.socket_path);
	notify_ready();
	if (ready_fd >= 0) {
		(void)write(ready_fd, "r", 1);
		close(ready_fd);
		if (freopen("/dev/null", "r", stdin) == NULL)
			log_warn("/dev/null");
	}

	event_base_loop(server_base, EVLOOP_NO_EXIT_ON_EMPTY);

	sched_shutdown();
	job_shutdown();
	conn_close_all();
	server_free();
	event_base_free(server_base);
	libevent_global_shutdown();
	log_info("stopped");
	return 0;
}
