/*
 * log.h -- log.c: concd's messages, to stderr, the journal or syslog.
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>

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

#endif
