/*
 * request.h -- request.c: the request table.
 */
#ifndef REQUEST_H
#define REQUEST_H

#include <stdbool.h>

#include "conn.h"

/* A client's connection: requests, and its watches ended on close. */
extern const struct conn_handler request_handler;
/* Register with the floors below: after job_init. */
void request_init(void);
/* What a `shutdown` request calls: server.c registers server_shutdown. */
void request_hook_shutdown(void (*)(const char *why, bool cancel_pending));

/*
 * Who may do what, from concd.conf: admin_gid (-1: none) names the group
 * whose members are admins besides root; exec_other_users lets a concd
 * that is not root run other users' user code, as itself.
 */
void request_set_policy(bool exec_other_users, long admin_gid);

#endif
