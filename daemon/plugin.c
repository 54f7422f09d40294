/*
 * plugin.c -- tasks from shared objects.  concd loads every *.so in the
 * plugin directory at start-up.  A plugin exports
 *
 *	const int concd_plugin_abi = CONCD_TASK_ABI;
 *	const struct task *const concd_plugin_tasks[] = {&my_task, NULL};
 *
 * and its tasks join the built-in ones.  A plugin with the wrong ABI, a
 * malformed task or a name that exists already is refused with a log
 * line; the others still load.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "plugin.h"
#include "task.h"
#include "task_int.h"

#define PLUGIN_MAX 64

static struct {
	void *handle[PLUGIN_MAX];
	int n;
} plugins;

static int
plugin_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 3 &&
	       strcmp(d->d_name + n - 3, ".so") == 0;
}

static int
plugin_load(const char *path)
{
	const struct task *const *tasks;
	const int *abi;
	char cause[256];
	void *h;
	int added = 0, i;

	if (plugins.n == PLUGIN_MAX) {
		log_warnx("plugin %s: more than %d plugins", path, PLUGIN_MAX);
		return -1;
	}
	if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		log_warnx("plugin %s: %s", path, dlerror());
		return -1;
	}
	abi = dlsym(h, "concd_plugin_abi");
	tasks = dlsym(h, "concd_plugin_tasks");
	if (abi == NULL || tasks == NULL) {
		log_warnx("plugin %s: not a concd plugin (no concd_plugin_abi "
		          "or concd_plugin_tasks)",
		          path);
		dlclose(h);
		return -1;
	}
	if (*abi != CONCD_TASK_ABI) {
		log_warnx("plugin %s: refused: built for task ABI %d, concd "
		          "needs %d",
		          path, *abi, CONCD_TASK_ABI);
		dlclose(h);
		return -1;
	}
	for (i = 0; tasks[i] != NULL && i < TASK_MAX_TASKS; i++) {
		if (task_register(tasks[i], cause, sizeof(cause)) < 0)
			log_warnx("plugin %s: task refused: %s", path, cause);
		else {
			log_info("plugin %s: task %s", path, tasks[i]->name);
			added++;
		}
	}
	if (added == 0) {
		/* nothing of it is in use: let it go */
		dlclose(h);
		return -1;
	}
	plugins.handle[plugins.n++] = h;
	return 0;
}

int
plugin_load_dir(const char *dir)
{
	struct dirent **names;
	char path[PATH_MAX];
	int n, i, loaded = 0;

	if ((n = scandir(dir, &names, plugin_filter, alphasort)) < 0) {
		log_debug("plugin directory %s: cannot read it", dir);
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dir,
		             names[i]->d_name) < (int)sizeof(path) &&
		    plugin_load(path) == 0)
			loaded++;
		free(names[i]);
	}
	free(names);
	return loaded;
}

void
plugin_unload(void)
{
	int i;

	for (i = 0; i < plugins.n; i++)
		dlclose(plugins.handle[i]);
	plugins.n = 0;
}
