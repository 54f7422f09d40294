/*
 * loop_exec.h -- loop_exec.c: the executor that runs jobs on the loop.
 */
#ifndef LOOP_EXEC_H
#define LOOP_EXEC_H

#include <stdint.h>

#include "executor.h"

extern const struct executor loop_executor;
extern const struct executor slurm_executor;
void loop_exec_init(void);
uint64_t loop_exec_served(void);

#endif
