/* bad_abi.c -- a plugin built for another task ABI: concd refuses it. */
#include <concd/task.h>

const int concd_plugin_abi = CONCD_TASK_ABI + 100;
const struct task *const concd_plugin_tasks[] = {NULL};
