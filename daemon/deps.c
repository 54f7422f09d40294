/*
 * deps.c -- jobs that wait for other jobs.
 *
 * For now no job waits: every job goes on to its group at once.
 */
#include "deps.h"

bool
deps_hold(struct job *j)
{
	(void)j;
	return false;
}

void
deps_ended(struct job *j)
{
	(void)j;
}

bool
deps_cancel(struct job *j)
{
	(void)j;
	return false;
}
