/*
 * python.h -- what the python task's two halves share: python_shim.c,
 * the plugin concd loads (python.so, without libpython), and python.c,
 * the task itself (python/concd_python.so, linked against libpython3),
 * which the shim loads at a worker's first python job.
 */
#ifndef CONCD_PYTHON_H
#define CONCD_PYTHON_H

/* beside python.so in the plugin directory */
#define PYTHON_IMPL_PATH "python/concd_python.so"
/* the task python.c exports; the shim forwards to it */
#define PYTHON_IMPL_SYMBOL "concd_python_task"
/* bytes of per-job state the shim asks for, python.c's at most */
#define PYTHON_STATE_SIZE 64

#endif
