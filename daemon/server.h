/*
 * server.h -- server.c: listening, accepting, signals and the orderly
 * stop.
 */
#ifndef SERVER_H
#define SERVER_H

#include <stdbool.h>
#include <stddef.h>

struct server_options;

int server_listen(const char *path, char *cause, size_t causelen);
const char *server_listen_names(void);
void server_start(struct server_options *);
void server_shutdown(const char *why, bool cancel_pending);
void server_free(void);

#endif
