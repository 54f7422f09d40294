/*
 * main.c -- concctl's life: global options, the socket to use, signals,
 * then one command from the table in cmd.c.
 */
#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "concctl.h"

#ifndef CONCD_VERSION
#define CONCD_VERSION "unknown"
#endif

#define MAIN_SYSTEM_SOCKET "/run/concd/concd.sock"

volatile sig_atomic_t ctl_interrupted;
volatile sig_atomic_t ctl_output_gone;

/*
 * SIGPIPE: the reader of our output left (| head).  It counts once, as an
 * interrupt, so that run and gather cancel their jobs as they do at ^C
 * rather than leave them running unread; main dies of it at the end.
 */
static void
main_signal_cb(int sig)
{
	if (sig == SIGPIPE && ctl_output_gone)
		return;
	if (sig == SIGPIPE)
		ctl_output_gone = 1;
	ctl_interrupted++;
}

/*
 * $CONCD_SOCKET; else the user daemon's socket if there is one; else the
 * system daemon's.
 */
static const char *
main_socket(void)
{
	static char path[PATH_MAX];
	const char *s;
	struct stat sb;

	if ((s = getenv("CONCD_SOCKET")) != NULL && *s != '\0')
		return s;
	if ((s = getenv("XDG_RUNTIME_DIR")) != NULL && *s != '\0' &&
	    (size_t)snprintf(path, sizeof(path), "%s/concd/concd.sock", s) <
	        sizeof(path) &&
	    stat(path, &sb) == 0)
		return path;
	return MAIN_SYSTEM_SOCKET;
}

/*
 * Interrupts are blocked except while conn_recv waits in ppoll(), and
 * the handler only counts them, so no system call is restarted behind
 * our back and none is lost.  SIGPIPE comes from a write to our output
 * (the socket's sends say MSG_NOSIGNAL), which then fails with EPIPE: it
 * is never blocked.
 */
static void
main_signals(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	struct sigaction sa;
	sigset_t block;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = main_signal_cb;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART */
	sigemptyset(&block);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaction(sigs[i], &sa, NULL);
		sigaddset(&block, sigs[i]);
	}
	sigaction(SIGPIPE, &sa, NULL);
	sigprocmask(SIG_BLOCK, &block, NULL);
}

/*
 * Started with stdin, stdout or stderr closed, concctl would be given
 * that number for its socket, and would read the daemon's replies as a
 * job's input, or write output into the connection.  /dev/null goes
 * there first, opened the other way round, so that using the closed
 * stream still fails (EBADF): output to a closed stdout is an error
 * (status 7), and a job's input from a closed stdin is empty.
 */
static void
main_std_fds(void)
{
	int fd, n;

	for (fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		/* the lowest number free: fd, unless /dev/null is missing */
		n = open("/dev/null", fd == STDIN_FILENO ? O_WRONLY : O_RDONLY);
		if (n >= 0 && n != fd)
			close(n);
	}
}

/*
 * What is left of our standard output written, or an error: a full disk
 * must not pass for a whole log.  A reader gone is SIGPIPE's, below.
 */
static int
main_flush(const struct ctl *ctl, int rc)
{
	ctl_flush_stdout();
	if (ctl_output_gone || !ferror(stdout))
		return rc;
	if (ctl_stdout_errno() != 0)
		warnx("cannot write the standard output: %s",
		      strerror(ctl_stdout_errno()));
	else
		warnx("cannot write the standard output");
	return ctl->command_status ? CTL_CMD_FAILED : CTL_OUTPUT;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl ctl;
	int ch, rc;

	main_std_fds();
	memset(&ctl, 0, sizeof(ctl));
	ctl.conn.fd = -1;
	while ((ch = getopt_long(argc, argv, "+hqs:V", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			ctl.socket = optarg;
			break;
		case 'j':
			ctl.json = true;
			break;
		case 'q':
			ctl.quiet = true;
			break;
		case 'h':
			cmd_usage_all(stdout, true);
			return main_flush(&ctl, CTL_OK);
		case 'V':
			printf("concctl %s (protocol %d)\n", CONCD_VERSION,
			       PROTO_VERSION);
			return main_flush(&ctl, CTL_OK);
		default:
			cmd_usage_all(stderr, false);
			return CTL_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		cmd_usage_all(stderr, false);
		return CTL_USAGE;
	}
	if (ctl.socket == NULL)
		ctl.socket = main_socket();
	ctl.bar = isatty(STDERR_FILENO);
	main_signals();
	rc = main_flush(&ctl, cmd_run(&ctl, argc, argv));
	if (ctl_output_gone) {
		/* the status of any writer whose reader left */
		signal(SIGPIPE, SIG_DFL);
		raise(SIGPIPE);
	}
	return rc;
}
