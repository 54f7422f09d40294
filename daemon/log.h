/*
 * log.h -- log.c: concd's messages, to stderr, the journal or syslog.
 */
#ifndef LOG_H
#define LOG_H

#include <sys/types.h>
#include <sys/uio.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void log_init(bool debug);
void log_silence(void);
void log_to_fd(int);
void log_to_syslog(void);
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * The audit trail: an event in a job's life ("accepted", "finished").
 * log_job sends it to the journal with fields of its own (JOB_ID=,
 * TASK=, OWNER_UID=, STATE=, JOB_EVENT=, ERROR=, COMMAND=) when stderr
 * is the journal's stream, else logs one info line: "job 42 accepted:
 * uid 1000 exec sleep 1", "job 42 finished: failed (task_failed)".  Safe
 * from any thread.
 */
struct log_job {
	uint64_t id;
	const char *task;
	uid_t uid;
	const char *event; /* "accepted", "finished" */
	const char *state;
	const char *error;   /* its error code, or NULL */
	const char *command; /* exec's argv (log_command), or NULL */
};
void log_job(const struct log_job *);
void log_jobs(const struct log_job *, size_t n);
/*
 * The "argv" of a msgpack map of exec's arguments as one line, each word
 * quoted as a shell needs it, cut with "..." to fit len; its length.
 */
size_t log_command(char *buf, size_t len, const char *args, size_t args_len);

/* What log_job sends, for the tests: the line, and the journal's fields. */
#define LOG_JOB_LINE   1024
#define LOG_JOB_FIELDS 10
size_t log_job_line(char *buf, size_t len, const struct log_job *);
size_t log_job_fields(const struct log_job *, struct iovec iov[LOG_JOB_FIELDS],
                      char *buf, size_t len);

#endif
